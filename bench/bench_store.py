"""How long recording 100k results into SQLite takes (the issue's bar: seconds, not minutes).

    pytest bench/bench_store.py --benchmark-only

Each round writes 100k results (1,000 distinct cases, 1% failing, each with verdicts, extra metrics and
20 latency samples) into a fresh SQLite file with the store's production settings (WAL,
synchronous=FULL, foreign keys on), through the public API: one ``record_results`` call per batch of
10,000 rows, i.e. ten transactions, as a runner flushing large batches would. Building the rows is not
timed; opening the database is not timed.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest

from harness.store import ResultRow, open_store

TOTAL = 100_000
BATCH = 10_000
CASES = 1_000


def _rows() -> list[ResultRow]:
    rows = []
    for i in range(TOTAL):
        c = i % CASES
        params = {"batch": 1, "hq": 8, "hkv": 2, "nq": 64 + c, "nk": 128, "head_dim": 64, "dtype": "float16",
                  "causal": bool(c % 2), "sm_scale": None, "distribution": "gaussian", "seed": c}  # fmt: skip
        failing = i % 100 == 0
        rows.append(
            ResultRow(
                case_id=hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:16],
                case_params=params,
                family="gaussian",
                shape_class="gqa/nq<nk",
                phase="corpus",
                status="fail" if failing else "pass",
                failed_property="error_budget" if failing else None,
                verdicts={"finite": True, "error_budget": not failing, "deterministic": True},
                metrics={
                    "rel_l2": 1e-3,
                    "max_abs": 4e-3,
                    "kernel_rel_l2": 9e-4,
                    "kernel_max_abs": 3e-3,
                    "scale_err": 1e-5,
                },
                latency={
                    "kind": "cuda",
                    "p20_ms": 0.10,
                    "p50_ms": 0.11,
                    "p80_ms": 0.12,
                    "mean_ms": 0.11,
                    "stddev_ms": 0.01,
                    "samples_ms": [0.1 + j * 1e-3 for j in range(20)],
                    "tflops": 310.0,
                },
            )
        )
    return rows


@pytest.fixture(scope="module")
def rows() -> list[ResultRow]:
    return _rows()


def test_record_100k_results_sqlite(benchmark, rows, tmp_path_factory):
    stores = []

    def setup():
        path = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())) / "lowbit.db"
        store = open_store(f"sqlite:///{path}")
        run = store.start_run(commit="0" * 40, parents=[], branch="main", suite="ci", shard=None,
                              environment={"host": "bench"}, lowbit_version="bench")  # fmt: skip
        stores.append(store)
        return (store, run, store.kernel_id("int8", "bench")), {}

    def record(store, run, kernel):
        for start in range(0, TOTAL, BATCH):
            store.record_results(run, kernel, rows[start : start + BATCH])

    benchmark.extra_info["results"] = TOTAL
    benchmark.extra_info["batch"] = BATCH
    benchmark.pedantic(record, setup=setup, rounds=3, iterations=1)
    for store in stores:
        assert store.count("results") == TOTAL
        assert store.count("cases") == CASES
        store.close()
    benchmark.extra_info["results_per_s"] = TOTAL / benchmark.stats.stats.median
