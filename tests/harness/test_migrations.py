"""Migrations, tested from the first revision on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

from harness.cli import cli
from harness.store import StoreError, current, head_revision, known_revisions, migrate, open_store, upgrade
from harness.store.engine import create_engine
from harness.store.models import Base
from tests.harness.postgres import postgres_url_fixture  # noqa: F401
from tests.harness.store_rows import make_rows, start_run


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lowbit.db'}"
    return request.getfixturevalue("postgres_url")


def _migrate_to(url: str, target: str) -> None:
    engine = create_engine(url)
    with engine.connect() as conn, conn.begin():
        migrate.upgrade_in(conn, target)
    engine.dispose()


def _populate_first_revision(url: str) -> None:
    """Rows as lowbit at revision 0001 wrote them (no occurrences column yet); ids come out as 1."""
    now = datetime.now(timezone.utc)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO environments (fingerprint_hash, fingerprint, created_at) "
                "VALUES ('h', '{}', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                'INSERT INTO runs ("commit", parents, suite, started_at, status, note, lowbit_version, '
                "environment_id) VALUES ('aaaaaaa', '[]', 'ci', :now, 'complete', '', '0.0.1', 1)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text("INSERT INTO kernels (name, source_hash, created_at) VALUES ('int8', 's', :now)"),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO cases (id, params, family, shape_class, created_at) "
                "VALUES ('c1', '{\"seed\": 1}', 'g', 'mha', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO results (run_id, kernel_id, case_id, phase, status, failed_property, verdicts, "
                "rel_l2, metrics, message, recorded_at) "
                "VALUES (1, 1, 'c1', 'corpus', 'fail', 'finite', '{}', 0.5, '{}', 'old', :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO counterexamples (kernel_name, case_id, property, first_seen_run_id, "
                "last_seen_run_id, first_seen_at, last_seen_at) "
                "VALUES ('int8', 'c1', 'finite', 1, 1, :now, :now)"
            ),
            {"now": now},
        )
    engine.dispose()


def test_ships_at_least_two_revisions():
    revisions = known_revisions()
    assert len(revisions) >= 2 and revisions[0] == "0001" and revisions[-1] == head_revision()


def test_upgrade_from_first_revision_keeps_data(db_url):
    _migrate_to(db_url, "0001")
    _populate_first_revision(db_url)
    assert current(db_url) == ("0001", head_revision())
    with pytest.raises(StoreError, match="run `lowbit db upgrade`"):
        open_store(db_url)

    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert f"from revision 0001 to {head_revision()}" in " ".join(result.output.split())

    with open_store(db_url) as store:
        [old] = store.counterexample_records("int8")
        assert old["occurrences"] == 1  # rows from before 0002 count as seen once
        assert store.results(1)[0]["message"] == "old"
        run = start_run(store, commit="b" * 40)
        failing = make_rows(1, fail_every=1)
        failing[0].case_id, failing[0].failed_property = "c1", "finite"
        store.record_results(run, store.kernel_id("int8", "s"), failing)
        [again] = store.counterexample_records("int8")
        assert again["occurrences"] == 2 and again["last_seen_run_id"] == run
        indexes = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("results")}
        assert "ix_results_kernel_id_case_id_run_id" in indexes

    again = CliRunner().invoke(cli, ["db", "upgrade", "--db", db_url])
    assert again.exit_code == 0 and "up to date" in again.output


def test_models_match_migrated_schema(db_url):
    """Autogenerate finds nothing to do: the models and the migrations describe the same schema."""
    assert upgrade(db_url) == (None, head_revision())
    engine = create_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_first_and_back(tmp_path):
    url = f"sqlite:///{tmp_path / 'lowbit.db'}"
    upgrade(url)
    engine = create_engine(url)
    from alembic import command

    with engine.connect() as conn, conn.begin():
        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    engine.dispose()
    assert current(url)[0] == "0001"
    assert upgrade(url) == ("0001", head_revision())


def test_newer_schema_is_refused(db_url):
    upgrade(db_url)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed9999'"))
    engine.dispose()
    message = "revision f00dfeed9999, newer than this lowbit"
    with pytest.raises(StoreError, match=message):
        open_store(db_url)
    with pytest.raises(StoreError, match=message):
        upgrade(db_url)
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", db_url])
    assert result.exit_code == 2 and "upgrade lowbit" in result.stderr
    # Refusing changed nothing.
    assert current(db_url)[0] == "f00dfeed9999"


def test_db_current_reports_state(tmp_path):
    url = f"sqlite:///{tmp_path / 'lowbit.db'}"
    missing = CliRunner().invoke(cli, ["db", "current", "--db", url])
    assert missing.exit_code == 2 and "no lowbit database" in missing.stderr
    upgrade(url)
    result = CliRunner().invoke(cli, ["db", "current", "--db", url])
    assert result.exit_code == 0 and "up to date" in result.output


def test_upgrade_to_0003_merges_environments_that_differ_only_by_host(db_url):
    _migrate_to(db_url, "0002")
    now = datetime.now(timezone.utc)
    stack = {"device": "cuda", "gpu": "NVIDIA H200", "torch": "2.11.0"}
    engine = create_engine(db_url)
    with engine.begin() as conn:
        for i, fingerprint in enumerate(
            [{**stack, "host": "runner-a"}, {**stack, "host": "runner-b"}, {**stack, "gpu": "NVIDIA H100"}]
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO environments (fingerprint_hash, fingerprint, host, created_at) "
                    "VALUES (:h, :fp, :host, :now)"
                ),
                {"h": f"old{i}", "fp": json.dumps(fingerprint), "host": fingerprint.get("host"), "now": now},
            )
            conn.execute(
                sa.text(
                    'INSERT INTO runs ("commit", parents, suite, started_at, status, note, lowbit_version, '
                    "environment_id) VALUES (:c, '[]', 'ci', :now, 'complete', '', '0.0.1', :env)"
                ),
                {"c": f"{i}" * 40, "now": now, "env": i + 1},
            )
    engine.dispose()
    upgrade(db_url)
    with open_store(db_url) as store:
        runs = store.runs()
        assert [r["environment"].get("host") for r in runs] == ["runner-a", "runner-b", None]
        assert store.count("environments") == 2
        # The two H200 runs now share one environment; the H100 run keeps its own.
        env_of = {r["id"]: r["environment"]["gpu"] for r in runs}
        assert env_of == {1: "NVIDIA H200", 2: "NVIDIA H200", 3: "NVIDIA H100"}
        # A new run on a third runner with the same stack joins the same environment.
        new = store.environment_id({**stack, "host": "runner-c"})
        assert new == store.environment_id({**stack, "host": "runner-a"})


def test_upgrade_to_0004_ends_old_runs_honestly(db_url, monkeypatch):
    """ "failed" (every case run, some failing) becomes "complete"; a run left "running" by an old lowbit
    has no heartbeat and is marked abandoned at the first open; ingest hashes are unique."""
    _migrate_to(db_url, "0003")
    now = datetime.now(timezone.utc)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO environments (fingerprint_hash, fingerprint, created_at) "
                "VALUES ('h', '{}', :now)"
            ),
            {"now": now},
        )
        for i, status in enumerate(["failed", "crashed", "running", "complete"]):
            conn.execute(
                sa.text(
                    'INSERT INTO runs ("commit", parents, suite, started_at, status, note, lowbit_version, '
                    "environment_id) VALUES (:c, '[]', 'ci', :started, :status, '', '0.0.1', 1)"
                ),
                {"c": f"{i}" * 40, "started": now - timedelta(hours=1), "status": status},
            )
    engine.dispose()
    upgrade(db_url)
    with open_store(db_url) as store:
        runs = store.runs()
        assert [r["status"] for r in runs] == ["complete", "crashed", "abandoned", "complete"]
        assert all(r["heartbeat_at"] is None for r in runs)
        fresh = start_run(store, commit="e" * 40)
        assert store.runs(run_ids=[fresh])[0]["heartbeat_at"] is not None
        store.start_run(
            commit="f" * 40,
            parents=[],
            branch=None,
            suite="bench",
            shard=None,
            environment={},
            lowbit_version="t",
            content_hash="1" * 64,
        )
        with pytest.raises(StoreError):
            store.start_run(
                commit="f" * 40,
                parents=[],
                branch=None,
                suite="bench",
                shard=None,
                environment={},
                lowbit_version="t",
                content_hash="1" * 64,
            )
        assert store.run_with_content_hash("1" * 64)["commit"] == "f" * 40


def _populate_0005(url: str) -> None:
    """A small history as lowbit at revision 0005 wrote it: two runs, results, a counterexample and a
    stored change point."""
    now = datetime.now(timezone.utc)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO environments (fingerprint_hash, fingerprint, created_at) "
                "VALUES ('h', '{}', :now)"
            ),
            {"now": now},
        )
        for i in (1, 2):
            conn.execute(
                sa.text(
                    'INSERT INTO runs ("commit", parents, branch, suite, started_at, ended_at, status, note, '
                    "lowbit_version, environment_id, heartbeat_at) VALUES "
                    "(:c, :p, 'main', 'ci', :now, :now, 'complete', '', '0.0.5', 1, :now)"
                ),
                {"c": f"{i}" * 40, "p": json.dumps([] if i == 1 else ["1" * 40]), "now": now},
            )
        conn.execute(
            sa.text("INSERT INTO kernels (name, source_hash, created_at) VALUES ('int8', 's', :now)"),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO cases (id, params, family, shape_class, created_at) "
                "VALUES ('c1', '{\"seed\": 1}', 'outliers', 'mha', :now)"
            ),
            {"now": now},
        )
        # The store's JSON writes non-finite metrics as strings; the second row has no worst row.
        metrics = ({"error_ratio": 0.3, "worst_row_rel_l2": "inf"}, {"error_ratio": "nan"})
        for run, rel in ((1, 0.01), (2, 0.03)):
            conn.execute(
                sa.text(
                    "INSERT INTO results (run_id, kernel_id, case_id, phase, status, verdicts, rel_l2, "
                    "metrics, message, recorded_at) "
                    "VALUES (:run, 1, 'c1', 'corpus', 'pass', '{}', :rel, :metrics, '', :now)"
                ),
                {"run": run, "rel": rel, "metrics": json.dumps(metrics[run - 1]), "now": now},
            )
        conn.execute(
            sa.text(
                "INSERT INTO counterexamples (kernel_name, case_id, property, first_seen_run_id, "
                "last_seen_run_id, first_seen_at, last_seen_at, occurrences) "
                "VALUES ('int8', 'c1', 'finite', 1, 1, :now, :now, 3)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                'INSERT INTO change_points (kernel_name, case_id, metric, environment_id, run_id, "commit", '
                'previous_commit, "before", "after", ratio, direction, method, detected_at) VALUES '
                "('int8', 'c1', 'rel_l2', 1, 2, :c2, :c1, 0.01, 0.03, 3.0, 'up', 'pelt', :now)"
            ),
            {"c1": "1" * 40, "c2": "2" * 40, "now": now},
        )
    engine.dispose()


NEW_IN_0006 = {"subject", "worst_row_rel_l2", "error_ratio"}


def _snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table of revision 0005, in id order (the columns 0005 had)."""
    engine = create_engine(url)
    out = {}
    with engine.connect() as conn:
        for table in (
            "environments",
            "runs",
            "kernels",
            "cases",
            "results",
            "counterexamples",
            "change_points",
        ):
            columns = [c["name"] for c in sa.inspect(conn).get_columns(table) if c["name"] not in NEW_IN_0006]
            quoted = ", ".join(f'"{c}"' for c in columns)
            rows = conn.execute(sa.text(f"SELECT {quoted} FROM {table} ORDER BY id"))
            out[table] = [tuple(r) for r in rows]
    engine.dispose()
    return out


def _downgrade(url: str, target: str) -> None:
    from alembic import command

    engine = create_engine(url)
    with engine.connect() as conn, conn.begin():
        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, target)
    engine.dispose()


def test_upgrade_to_0006_keeps_every_row_and_records_subjects_from_then_on(db_url):
    _migrate_to(db_url, "0005")
    _populate_0005(db_url)
    before = _snapshot(db_url)
    assert sum(len(rows) for rows in before.values()) == 9
    upgrade(db_url)
    assert current(db_url)[0] == "0006"
    assert _snapshot(db_url) == before
    engine = create_engine(db_url)
    with engine.connect() as conn:
        copied = conn.execute(sa.text("SELECT worst_row_rel_l2, error_ratio FROM results ORDER BY id")).all()
    engine.dispose()
    # The metrics copied into columns, from the JSON they stay in: "inf" is infinite, "nan" is NULL.
    assert [tuple(r) for r in copied] == [(math.inf, 0.3), (None, None)]
    with open_store(db_url) as store:
        assert [r["metrics"]["error_ratio"] for r in store.results(1)] == [0.3]
        # Runs recorded before 0006 have no subject: none is invented for them.
        assert [r["subject"] for r in store.runs()] == [None, None]
        run = start_run(store, commit="3" * 40, subject="int8: per-block P, shared scale")
        assert store.runs(run_ids=[run])[0]["subject"] == "int8: per-block P, shared scale"
        assert start_run(store, commit="4" * 40, subject=None) > run
        with pytest.raises(ValueError, match="subject must be a string"):
            start_run(store, commit="5" * 40, subject=b"bytes")

    # Down again: the column goes, every row of 0005's tables (and the runs recorded since) stays.
    _downgrade(db_url, "0005")
    assert current(db_url)[0] == "0005"
    engine = create_engine(db_url)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("runs")}
    engine.dispose()
    assert "subject" not in columns
    after = _snapshot(db_url)
    assert all(after[t][: len(rows)] == rows for t, rows in before.items())
    assert len(after["runs"]) == 4 and len(after["results"]) == len(before["results"])
    assert upgrade(db_url) == ("0005", head_revision())
