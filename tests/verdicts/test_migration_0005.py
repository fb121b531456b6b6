"""Revision 0005 (change_points) upgrades a database at 0003 with history in it, and downgrades."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from harness.store import current, head_revision, migrate, open_store, upgrade
from harness.store import history as hist
from harness.store.engine import create_engine
from tests.harness.postgres import postgres_url_fixture  # noqa: F401
from tests.verdicts.synthetic import cid, record


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lowbit.db'}"
    return request.getfixturevalue("postgres_url")


def _migrate(url: str, target: str, *, down: bool = False) -> None:
    from alembic import command

    engine = create_engine(url)
    with engine.connect() as conn, conn.begin():
        if down:
            cfg = migrate.alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, target)
        else:
            migrate.upgrade_in(conn, target)
    engine.dispose()


def test_0005_adds_change_points_to_a_0003_database(db_url):
    assert "0005" in migrate.known_revisions()
    _migrate(db_url, "0003")
    engine = create_engine(db_url)
    assert "change_points" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    upgrade(db_url)
    assert current(db_url) == (head_revision(), head_revision())
    with open_store(db_url) as store:
        run = record(store, "a" * 40)
        env = store.runs()[0]["environment_id"]
        point = {"run_id": run, "commit": "a" * 40, "before": 1.0, "after": 1.2, "ratio": 1.2}
        hist.replace_change_points(
            store, "k", cid(0), "p50_ms", env, [{**point, "direction": "up", "method": "m"}]
        )
        (row,) = hist.stored_change_points(store, kernel="k")
        assert (row["case_id"], row["metric"], row["ratio"], row["environment_id"]) == (
            cid(0),
            "p50_ms",
            1.2,
            env,
        )


def test_0005_downgrades(tmp_path):
    url = f"sqlite:///{tmp_path / 'lowbit.db'}"
    upgrade(url)
    _migrate(url, "0003", down=True)
    engine = create_engine(url)
    assert "change_points" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    assert current(url)[0] == "0003"
