"""How the runner writes: bounded batches, one store call each; a database failure mid-run."""

from __future__ import annotations

import pytest

from harness.run.runner import RunConfig, RunUsageError, execute, prepare
from harness.store import StoreError, open_store

CK = "tests.harness.crashing_kernels"
COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def planned(db: str, **kwargs):
    config = RunConfig(db=db, commit=COMMIT, kernels=(f"ok={CK}:correct",), fuzz_examples=0, **kwargs)
    return prepare(config)


def test_results_are_written_in_bounded_batches(tmp_path):
    db = f"sqlite:///{tmp_path / 'h.db'}"
    plan = planned(db, batch_rows=2, batch_seconds=3600)
    batches: list[int] = []
    record = plan.store.record_results

    def counting(run_id, kernel_id, rows):
        batches.append(len(rows))
        record(run_id, kernel_id, rows)

    plan.store.record_results = counting
    outcome = execute(plan)
    assert outcome.status == "complete"
    n = len(open_store(db, create=False).results(outcome.run_id))
    assert n == outcome.summaries[0].cases >= 4
    assert sum(batches) == n
    assert max(batches) <= 2
    assert len(batches) == (n + 1) // 2


def test_database_failure_mid_run_marks_the_run_crashed(tmp_path):
    db = f"sqlite:///{tmp_path / 'h.db'}"
    plan = planned(db, batch_rows=1)
    record = plan.store.record_results
    calls = []

    def failing_second_batch(run_id, kernel_id, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise StoreError("database is unreachable (simulated)")
        record(run_id, kernel_id, rows)

    plan.store.record_results = failing_second_batch
    with pytest.raises(RunUsageError, match="simulated"):
        execute(plan)
    store = open_store(db, create=False)
    (run,) = store.runs()
    assert run["status"] == "crashed"
    assert "database error" in run["note"]
    assert len(store.results(run["id"])) == 1  # the batch written before the failure is kept
