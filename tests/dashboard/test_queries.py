"""The dashboard's SQL: aggregates match the planted history, filters narrow, the database stays read-only."""

from __future__ import annotations

import math
import sqlite3

import pytest
import sqlalchemy as sa

from harness.store import StoreError, open_store
from harness.store.dashboard_queries import CaseFilter, NoHistory, open_history
from tests.dashboard.history import BUDGET, FAMILIES, HEAD_DIMS, SHAPES


@pytest.fixture(scope="module")
def history(history_db):
    url, _ = history_db
    h = open_history(url)
    yield h
    h.close()


def test_state_counts_runs_and_unfinished(history, history_db):
    _, planted = history_db
    state = history.state()
    assert state["runs"] == len(planted.run_ids)
    assert state["last_run_id"] == planted.run_ids[-1]
    assert state["unfinished"] == 1


def test_runs_carry_status_environment_and_parents(history, history_db):
    _, planted = history_db
    runs = history.runs()
    assert [r["id"] for r in runs] == planted.run_ids
    assert runs[-1]["status"] == "running"
    assert {r["gpu"] for r in runs} == {None, "NVIDIA H200"}
    second_main = [r for r in runs if r["branch"] == "main"][1]
    assert second_main["parents"] == [planted.commits[0]]


def test_kernel_summary_counts_and_worst_ratio(history, history_db):
    _, planted = history_db
    newest = planted.run_ids[-1]
    rows = {r["kernel"]: r for r in history.kernel_summary([newest])}
    assert set(rows) == {"fp16", "int8", "attn", "int8_qk"}
    int8 = rows["int8"]
    assert int8["cases"] == planted.cases_per_run
    assert int8["fail"] == 1 and int8["pass"] == planted.cases_per_run - 1
    # The planted failure is at 1.7x its rel-L2 budget and 5x that in max-abs against a 0.5 budget.
    rel_budget, abs_budget = BUDGET["int8"]
    expected = max(1.7, rel_budget * 1.7 * 5 / abs_budget)
    assert int8["error_ratio"] == pytest.approx(expected)
    assert math.isinf(int8["worst_row_rel_l2"])
    assert rows["fp16"]["fail"] == 0


def test_baseline_speed_on_common_cases(history, history_db):
    _, planted = history_db
    rows = {(r["kernel"], r["baseline"]): r for r in history.baseline_speed([planted.run_ids[-1]])}
    assert ("fp16", "fp16") not in rows
    attn = rows[("attn", "fp16")]
    assert attn["cases"] == planted.cases_per_run
    # attn is planted 1.6x slower than its 42 ms base against fp16's 40 ms.
    assert attn["ratio"] == pytest.approx(40 / (42 * 1.6), rel=0.05)


def test_trend_one_row_per_run_and_regression_visible(history, history_db):
    _, planted = history_db
    rows = history.trend("int8", CaseFilter(families=("outliers",)), branches=("main",))
    assert len(rows) == 8
    before, after = rows[planted.regress_at - 1], rows[planted.regress_at]
    assert after["rel_l2"] > 2.5 * before["rel_l2"]
    assert after["fail"] == 1 and before["fail"] == 0
    others = history.trend("int8", CaseFilter(families=("gaussian",)), branches=("main",))
    assert others[planted.regress_at]["rel_l2"] == pytest.approx(others[planted.regress_at - 1]["rel_l2"])


def test_trend_filters_narrow_the_cases(history):
    per_run = len(FAMILIES) * len(SHAPES) * len(HEAD_DIMS) * 2
    full = history.trend("fp16", CaseFilter(), branches=("main",))[0]
    assert full["cases"] == per_run
    assert history.trend("fp16", CaseFilter(head_dims=(128,)))[0]["cases"] == per_run // 2
    causal = sum(1 for s in SHAPES if s[4])
    assert history.trend("fp16", CaseFilter(causal=(True,)))[0]["cases"] == per_run * causal // len(SHAPES)
    # Of variants 0 and 1, only variant 1 records a layout ("bhsd"); variant 0's cases have none.
    assert history.trend("fp16", CaseFilter(layouts=("bhsd",)))[0]["cases"] == per_run // 2
    assert history.trend("fp16", CaseFilter(length_buckets=("1k–4k",)))[0]["cases"] == per_run // len(SHAPES)
    with_fuzz = history.trend("fp16", CaseFilter(phases=("corpus", "fuzz")))[0]["cases"]
    assert with_fuzz == per_run + 2
    gpu = history.trend("fp16", CaseFilter(), branches=("gpu-nightly",))
    assert len(gpu) == 2 and {r["gpu"] for r in gpu} == {"NVIDIA H200"}


def test_case_filter_rejects_unknown_values():
    with pytest.raises(ValueError, match="phases"):
        CaseFilter(phases=("warmup",))
    with pytest.raises(ValueError, match="length_buckets"):
        CaseFilter(length_buckets=("huge",))


def test_facets_list_filter_values(history):
    facets = history.facets()
    assert facets["families"] == sorted(FAMILIES)
    assert facets["head_dims"] == list(HEAD_DIMS)
    assert facets["layouts"] == ["bhsd"]
    assert facets["causal"] == [False, True]
    assert facets["length_buckets"] == ["≤64", "65–256", "257–1k", "1k–4k"]


def test_heatmap_cell_and_case_history(history, history_db):
    _, planted = history_db
    newest = [planted.run_ids[-1]]
    cells = history.heatmap(newest, "int8")
    worst = max(cells, key=lambda c: c["error_ratio"])
    assert (worst["family"], worst["shape_class"], worst["fail"]) == ("outliers", "mha/nq=nk/full", 1)
    listed = history.cell_cases(newest, "int8", "outliers", "mha/nq=nk/full")
    assert listed[0]["case_id"] == planted.failing_case and listed[0]["status"] == "fail"
    assert listed[0]["error_ratio"] >= listed[-1]["error_ratio"]
    past = history.case_history("int8", planted.failing_case)
    assert [r["status"] for r in past if r["commit"] == planted.commits[0]] == ["pass", "pass"]
    assert past[-1]["status"] == "fail" and "error_budget" in past[-1]["message"]
    assert history.case_params(planted.failing_case)["distribution"] == "outliers"


def test_failures_open_with_measured_and_allowed(history, history_db):
    _, planted = history_db
    rows = history.failures()
    assert len(rows) == 1
    row = rows[0]
    assert row["open"] and row["kernel"] == "int8" and row["property"] == "error_budget"
    assert row["first_seen_commit"] == planted.commits[planted.regress_at]
    assert row["last_commit"] == planted.commits[-1] and row["last_status"] == "fail"
    assert row["budget_rel_l2"] == BUDGET["int8"][0]
    assert row["rel_l2"] > row["budget_rel_l2"]


def test_compare_pairs_cases_of_two_runs(history, history_db):
    _, planted = history_db
    first_main, newest = planted.run_ids[0], planted.run_ids[-1]
    rows = history.compare([first_main], [newest])
    assert len(rows) == 4 * planted.cases_per_run - 4 * 2  # fuzz cases differ per commit
    attn = [r for r in rows if r["kernel"] == "attn"]
    assert all(r["p50_ms_b"] > 1.4 * r["p50_ms_a"] for r in attn)
    assert all(len(r["samples_a"]) == 5 for r in attn)


def test_missing_file_is_never_created(tmp_path):
    path = tmp_path / "absent.db"
    with pytest.raises(NoHistory, match="lowbit demo"):
        open_history(f"sqlite:///{path}")
    assert not path.exists()


def test_empty_database_says_what_fills_it(empty_db):
    with pytest.raises(NoHistory, match="lowbit run"):
        open_history(empty_db)


def test_opened_read_only(history):
    with (
        pytest.raises(sa.exc.OperationalError, match=r"readonly|read-only|read only"),
        history.engine.connect() as conn,
    ):
        conn.execute(sa.text("DELETE FROM runs"))


def test_foreign_database_refused(tmp_path):
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StoreError, match="not a lowbit database"):
        open_history(f"sqlite:///{path}")


def test_password_never_in_errors():
    url = "postgresql+psycopg://ci:hunter2secret@127.0.0.1:1/lowbit"
    with pytest.raises(StoreError) as err:
        open_history(url)
    assert "hunter2secret" not in str(err.value)
    assert "***" in str(err.value)


def test_older_schema_refused_with_upgrade_hint(tmp_path):
    from harness.store import migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    open_store(url).close()
    revisions = migrate.known_revisions()
    if len(revisions) < 2:
        pytest.fail("lowbit ships several revisions; this test needs an older one")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revisions[-2]})
    engine.dispose()
    with pytest.raises(StoreError, match="lowbit db upgrade"):
        open_history(url)


def test_change_points_grouped_per_run_and_filtered(history, history_db):
    _, planted = history_db
    regress_run = next(r["id"] for r in history.runs() if r["commit"] == planted.commits[planted.regress_at])
    rows = history.change_points("int8")
    outliers = 6 * 2 * 2  # shapes x head dims x variants
    assert rows == [
        {
            "run_id": regress_run,
            "metric": "rel_l2",
            "direction": "up",
            "environment_id": 1,
            "cases": outliers,
            "largest_step": 3.0,
        }
    ]
    assert history.change_points("int8", CaseFilter(families=("gaussian",))) == []
    assert history.change_points("fp16") == []
