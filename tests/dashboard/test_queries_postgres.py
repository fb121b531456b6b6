"""The dashboard's queries on PostgreSQL: JSON metrics, non-finite values and read-only sessions."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from harness.store import open_store
from harness.store.dashboard_queries import CaseFilter, open_history
from tests.dashboard.history import build_history
from tests.harness.postgres import postgres_url_fixture  # noqa: F401


def test_history_on_postgresql(postgres_url):
    with open_store(postgres_url) as store:
        planted = build_history(store, commits=6, regress_at=3, slow_at=2, gpu_every=0)
    history = open_history(postgres_url)
    try:
        newest = planted.run_ids[-1]
        int8 = {r["kernel"]: r for r in history.kernel_summary([newest])}["int8"]
        assert int8["fail"] == 1 and int8["error_ratio"] == pytest.approx(1.7 * 0.12 * 5 / 0.5)
        assert math.isinf(int8["worst_row_rel_l2"])
        rows = history.trend("int8", CaseFilter(families=("outliers",), head_dims=(64,), causal=(False,)))
        assert len(rows) == 6 and rows[3]["rel_l2"] > 2.5 * rows[2]["rel_l2"]
        assert history.trend("fp16", CaseFilter(length_buckets=("1k–4k",)))[0]["cases"] == 10
        assert [f["open"] for f in history.failures()] == [True]
        assert history.change_points("int8")[0]["cases"] == 12
        assert len(history.compare([planted.run_ids[0]], [newest])) == 4 * 60
        with pytest.raises(sa.exc.DBAPIError, match="read-only"), history.engine.connect() as conn:
            conn.execute(sa.text("DELETE FROM runs"))
    finally:
        history.close()
