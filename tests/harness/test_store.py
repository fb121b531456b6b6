"""The store's API on SQLite and on a real PostgreSQL: recording, reading back, atomic batches, errors."""

from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from harness.cli import cli
from harness.store import ResultRow, StoreError, api, engine, open_store, redact_url, resolve_url, upsert
from tests.harness import postgres
from tests.harness.postgres import postgres_url_fixture  # noqa: F401
from tests.harness.store_rows import FINGERPRINT, case_params, make_rows, start_run


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lowbit.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'lowbit.db'}"


def test_roundtrip_run_results_counterexamples(db_url):
    with open_store(db_url) as store:
        run = start_run(store, commit="c0ffee1", shard="1/2")
        kernel = store.kernel_id("int8", "abc")
        assert store.kernel_id("int8", "abc") == kernel
        assert store.kernel_id("int8", "def") != kernel
        rows = make_rows(30, fail_every=10, tag="r1")
        store.record_results(run, kernel, rows)
        store.finish_run(run, "interrupted", note="error_budget failed")

        [info] = store.runs(commit="c0ffee1")
        assert info["id"] == run
        assert (info["status"], info["shard"], info["note"]) == ("interrupted", "1/2", "error_budget failed")
        assert info["ended_at"] is not None and info["environment"]["torch"] == "2.13.0"

        got = store.results(run)
        assert [r["message"] for r in got] == [f"r1#{i}" for i in range(30)]
        first = got[0]
        assert first["kernel"] == "int8" and first["source_hash"] == "abc"
        assert first["params"] == rows[0].case_params
        assert first["status"] == "fail" and first["failed_property"] == "error_budget"
        assert first["verdicts"] == {"finite": True, "error_budget": False, "deterministic": None}
        assert first["metrics"] == {"rel_l2": 0.0, "max_abs": 2e-3, "kernel_rel_l2": 5e-4, "extra": 0}
        assert first["latency"]["kind"] == "cpu-interpreter"
        assert first["latency"]["p50_ms"] == 1.5 and first["latency"]["samples_ms"] == [1.0, 1.5, 2.0]

        # Rows 0, 10, 20 failed on three distinct cases: three counterexamples, params intact.
        assert store.counterexamples("int8") == [
            rows[0].case_params,
            rows[10].case_params,
            rows[20].case_params,
        ]
        assert store.counterexamples("other") == []
        assert store.count("cases") == 30 and store.count("environments") == 1


def test_counterexample_first_and_last_seen_across_runs(db_url):
    with open_store(db_url) as store:
        kernel = store.kernel_id("fp8", "")
        failing = make_rows(1, fail_every=1, tag="x")
        run1 = start_run(store, commit="1111111")
        store.record_results(run1, kernel, failing + failing)  # same case twice in one batch
        run2 = start_run(store, commit="2222222")
        new_source = store.kernel_id("fp8", "changed")  # the kernel's source changed; same name
        store.record_results(run2, new_source, failing)
        [record] = store.counterexample_records("fp8")
        assert (record["first_seen_run_id"], record["last_seen_run_id"]) == (run1, run2)
        assert record["occurrences"] == 3 and record["property"] == "error_budget"
        assert store.counterexamples("fp8") == [failing[0].case_params]


def test_environment_dedup_ignores_key_order(db_url):
    with open_store(db_url) as store:
        long_driver = {**FINGERPRINT, "driver": "d" * 500}
        env = store.environment_id(long_driver)  # the column keeps a prefix, the JSON all of it
        assert store.environment_id(long_driver) == env
        reordered = dict(reversed(list(FINGERPRINT.items())))
        assert store.environment_id(FINGERPRINT) == store.environment_id(reordered)
        assert store.environment_id({**FINGERPRINT, "gpu": "H100"}) != store.environment_id(FINGERPRINT)
        assert store.count("environments") == 3


def test_non_finite_metrics(db_url):
    row = make_rows(1)[0]
    row.metrics = {"rel_l2": math.inf, "max_abs": math.nan, "custom": -math.inf}
    row.latency = {"kind": "cuda", "p50_ms": math.nan, "samples_ms": [1.0, math.inf], "tflops": 3.5}
    with open_store(db_url) as store:
        run = start_run(store)
        store.record_results(run, store.kernel_id("k", ""), [row])
        [got] = store.results(run)
    # inf survives (real column and JSON), NaN becomes "missing" (NULL).
    assert got["metrics"]["rel_l2"] == math.inf and "max_abs" not in got["metrics"]
    assert got["metrics"]["custom"] == -math.inf
    assert got["latency"]["p50_ms"] is None and got["latency"]["samples_ms"] == [1.0, math.inf]
    assert got["latency"]["tflops"] == 3.5


def test_failed_batch_writes_nothing(db_url):
    with open_store(db_url) as store:
        kernel = store.kernel_id("k", "")
        # Cases are inserted before the results; the results then violate the run foreign key.
        with pytest.raises(StoreError):
            store.record_results(987654, kernel, make_rows(50))
        assert store.count("cases") == 0 and store.count("results") == 0
        with pytest.raises(StoreError, match="no kernel with id"):
            store.record_results(start_run(store), 424242, make_rows(5))
        assert store.count("cases") == 0


def test_invalid_rows_and_statuses_are_value_errors(sqlite_url):
    with open_store(sqlite_url) as store:
        run = start_run(store)
        kernel = store.kernel_id("k", "")
        bad = make_rows(3)
        bad[2].status = "exploded"
        with pytest.raises(ValueError, match="status must be one of"):
            store.record_results(run, kernel, bad)
        bad[2].status, bad[1].phase = "pass", "warmup"
        with pytest.raises(ValueError, match="phase must be one of"):
            store.record_results(run, kernel, bad)
        assert store.count("results") == 0
        bad[1].phase, bad[0].shape_class = "corpus", "x" * 500
        with pytest.raises(ValueError, match="shape_class must be at most 128 characters"):
            store.record_results(run, kernel, bad)
        with pytest.raises(ValueError, match="branch must be at most 255"):
            start_run(store, branch="b" * 300)
        with pytest.raises(ValueError, match="kernel name must be at most 255"):
            store.kernel_id("k" * 256, "")
        assert store.count("results") == 0 and store.count("runs") == 1
        with pytest.raises(ValueError, match="status must be one of"):
            store.finish_run(run, "running")
        with pytest.raises(StoreError, match="no run with id"):
            store.finish_run(run + 100, "complete")


def test_twenty_thousand_rows_land(sqlite_url):
    with open_store(sqlite_url) as store:
        run = start_run(store)
        store.record_results(run, store.kernel_id("k", ""), make_rows(20_000, n_cases=500, fail_every=1000))
        assert store.count("results") == 20_000
        assert store.count("cases") == 500
        # Failing rows 0, 1000, 2000, ... all map to case 0 (1000 % 500 == 0): one counterexample.
        assert store.count("counterexamples") == 1
        messages = {r["message"] for r in store.results(run)}
        assert len(messages) == 20_000


def test_record_batches_is_one_transaction(sqlite_url):
    with open_store(sqlite_url) as store:
        run = start_run(store)
        good = store.kernel_id("good", "")
        with pytest.raises(StoreError):
            store.record_batches(run, [(good, make_rows(10)), (99999, make_rows(10, first_case=10))])
        assert store.count("results") == 0
        store.record_batches(run, [(good, make_rows(10)), (store.kernel_id("b", ""), make_rows(5))])
        assert store.count("results") == 15


def test_sqlite_pragmas(sqlite_url):
    with open_store(sqlite_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_sqlite_retries_when_locked(sqlite_url, monkeypatch):
    """With the busy wait exhausted, a locked database is retried, not reported."""
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    backoffs, real_sleep = [], time.sleep
    monkeypatch.setattr(api.time, "sleep", lambda s: (backoffs.append(s), real_sleep(s)))
    with open_store(sqlite_url) as store:
        run = start_run(store)
        kernel = store.kernel_id("k", "")
        path = sqlite_url.removeprefix("sqlite:///")
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.4, blocker.execute, args=("COMMIT",))
        release.start()
        store.record_results(run, kernel, make_rows(10))
        release.join()
        assert backoffs  # the first attempt(s) hit "database is locked" and were retried
        blocker.close()
        assert store.count("results") == 10


# --------------------------------------------------------------------------------------------------
# URLs and bad databases.


def test_resolve_url_precedence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOWBIT_DB_URL", raising=False)
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'lowbit.db'}"
    monkeypatch.setenv("LOWBIT_DB_URL", "postgresql://u@h/db")
    assert resolve_url(None) == "postgresql://u@h/db"
    assert resolve_url("sqlite:///x.db") == "sqlite:///x.db"


def test_redact_url():
    assert (
        redact_url("postgresql+psycopg://alice:s3cr%40t@db:5432/x")
        == "postgresql+psycopg://alice:***@db:5432/x"
    )
    assert redact_url("sqlite:///a.db") == "sqlite:///a.db"
    assert "hunter2" not in redact_url("postgresql://u:hunter2@host:notaport/x")
    assert redact_url("postgresql+psycopg://u@h/x?password=hunter2&sslmode=disable") == (
        "postgresql+psycopg://u@h/x?password=***&sslmode=disable"
    )


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "nosuchdialect://u:hunter2@h/x",
        "postgresql://u:hunter2@host:notaport/x",
        "sqlite+nodriver:///x",
    ],
)
def test_malformed_url(url):
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert "hunter2" not in str(info.value)


def test_unreachable_server_fails_fast_without_password():
    url = "postgresql+psycopg://lowbit:hunter2@127.0.0.1:1/lowbit"
    with pytest.raises(StoreError, match="cannot connect") as info:
        open_store(url)
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_corrupt_sqlite_file_is_reported_and_left_alone(tmp_path):
    path = tmp_path / "lowbit.db"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        open_store(f"sqlite:///{path}")
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lowbit.db"]


def test_foreign_database_is_refused(sqlite_url):
    raw = sa.create_engine(sqlite_url)
    with raw.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    raw.dispose()
    with pytest.raises(StoreError, match="not a lowbit database"):
        open_store(sqlite_url)


def test_missing_directory_and_missing_file(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'nope' / 'lowbit.db'}")
    with pytest.raises(StoreError, match="no lowbit database"):
        open_store(f"sqlite:///{tmp_path / 'lowbit.db'}", create=False)
    assert not (tmp_path / "lowbit.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["db", "upgrade", "--db", "postgresql+psycopg://lowbit:hunter2@127.0.0.1:1/lowbit"],
        ["db", "current", "--db", "postgresql://lowbit:hunter2@127.0.0.1:1/lowbit"],
        ["export", "--run", "1", "--db", "postgresql://lowbit:hunter2@127.0.0.1:1/lowbit"],
        ["db", "upgrade", "--db", "postgresql://lowbit:hunter2@127.0.0.1:port/lowbit"],
        ["db", "upgrade", "--db", "postgresql://lowbit@127.0.0.1:1/lowbit?password=hunter2"],
    ],
)
def test_cli_never_prints_the_password(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "hunter2" not in result.output and "hunter2" not in result.stderr
    assert "error:" in result.stderr


def test_cli_exit_2_on_corrupt_file(tmp_path):
    path = tmp_path / "lowbit.db"
    path.write_bytes(b"\x00not sqlite at all" * 100)
    result = CliRunner().invoke(cli, ["db", "upgrade", "--db", f"sqlite:///{path}"])
    assert result.exit_code == 2
    assert "not a usable SQLite database" in result.stderr


def test_result_row_defaults():
    row = ResultRow(
        case_id="abc",
        case_params=case_params(0),
        family="gaussian",
        shape_class="mha",
        phase="fuzz",
        status="pass",
        failed_property=None,
        verdicts={},
        metrics={},
    )
    assert row.message == "" and row.latency is None
    row.validate()


def test_store_needs_neither_torch_nor_triton():
    code = (
        "import sys, harness.store, harness.store.ingest, harness.store.export, harness.cli.store; "
        "bad = [m for m in ('torch', 'triton', 'kernels') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_postgres_fixture_fails_on_ci_without_binaries(monkeypatch):
    """CI must never skip the PostgreSQL tests into green; elsewhere a skip says why."""
    monkeypatch.setattr(postgres, "_server", None)
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must test against a real PostgreSQL"):
        postgres.start_server()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="binaries"):
        postgres.start_server()


def test_sqlite_readers_do_not_wait_for_writers(sqlite_url, monkeypatch):
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    with open_store(sqlite_url) as store:
        run = start_run(store)
        blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # a writer holds the write lock
        try:
            # Reads are not retried: if they needed the lock they would fail after the 50 ms busy wait.
            assert [r["id"] for r in store.runs()] == [run]
            assert store.results(run) == [] and store.count("results") == 0
            open_store(sqlite_url, create=False).close()  # opening an up-to-date database only reads
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()


def test_portable_path_for_backends_without_on_conflict(db_url, monkeypatch):
    """Backends other than SQLite/PostgreSQL get-or-create by lookup + insert; same results."""
    monkeypatch.setattr(upsert, "UPSERT_DIALECTS", frozenset())
    with open_store(db_url) as store:
        assert store.environment_id(FINGERPRINT) == store.environment_id(dict(reversed(FINGERPRINT.items())))
        kernel = store.kernel_id("int8", "s")
        assert store.kernel_id("int8", "s") == kernel
        run1, run2 = start_run(store, commit="1111111"), start_run(store, commit="2222222")
        store.record_results(run1, kernel, make_rows(40, n_cases=20, fail_every=10, tag="a"))
        store.record_results(run2, kernel, make_rows(40, n_cases=30, fail_every=10, tag="b"))
        assert store.count("cases") == 30 and store.count("results") == 80
        records = {r["case_id"]: r for r in store.counterexample_records("int8")}
        # Failing rows 0, 10, 20, 30 hit cases 0, 10, 0, 10 (run 1) and 0, 10, 20, 0 (run 2).
        assert sorted(r["occurrences"] for r in records.values()) == [1, 3, 4]
        assert {r["last_seen_run_id"] for r in records.values()} == {run2}
        assert {r["first_seen_run_id"] for r in records.values()} == {run1, run2}


def test_worst_row_and_error_ratio_are_columns_and_stay_in_the_metrics(db_url):
    """Revision 0006 copies two metrics into columns (the dashboard aggregates them); readers of the
    metrics see them as before, non-finite values included."""
    with open_store(db_url) as store:
        run = start_run(store)
        rows = make_rows(3)
        rows[0].metrics.update(worst_row_rel_l2=0.5, error_ratio=math.inf)
        rows[1].metrics.update(worst_row_rel_l2=math.nan, error_ratio=0.25)
        store.record_results(run, store.kernel_id("int8", "s"), rows)
        with store.engine.connect() as conn:
            copied = conn.execute(
                sa.text("SELECT worst_row_rel_l2, error_ratio FROM results WHERE run_id = :r ORDER BY id"),
                {"r": run},
            ).all()
        assert [tuple(r) for r in copied] == [(0.5, math.inf), (None, 0.25), (None, None)]
        read = store.results(run)
        assert read[0]["metrics"]["error_ratio"] == math.inf and read[0]["metrics"]["worst_row_rel_l2"] == 0.5
        assert math.isnan(read[1]["metrics"]["worst_row_rel_l2"])
        assert "error_ratio" not in read[2]["metrics"]
