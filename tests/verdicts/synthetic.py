"""Runs written straight through the store API, for the rules that the CPU interpreter cannot exercise
(GPU timings) and for history shapes (shards, environments, ancestry) that need no kernel at all."""

from __future__ import annotations

import zlib

import numpy as np

from harness.store import ResultRow
from tests.harness.store_rows import case_id, case_params

GPU_ENV = {
    "device": "cuda",
    "gpu": "NVIDIA H100 80GB HBM3",
    "compute_capability": "9.0",
    "driver": "570.1",
    "cuda": "12.8",
    "torch": "2.11.0",
    "triton": "3.6.0",
    "python": "3.12",
    "cpu": "x86_64",
    "host": "runner-1",
}


def gpu_samples(rng: np.random.Generator, n: int, median_ms: float) -> list[float]:
    """~2% log-normal jitter, a run-wide offset, 5% of samples stalled by up to 30%."""
    out = median_ms * np.exp(rng.normal(0, 0.005)) * np.exp(rng.normal(0, 0.02, n))
    stalls = rng.random(n) < 0.05
    out[stalls] *= 1 + rng.uniform(0, 0.3, stalls.sum())
    return out.tolist()


def record(
    store,
    commit: str,
    parents: list[str] | None = None,
    *,
    cases: int = 4,
    kernel: str = "k",
    env: dict | None = None,
    error: float = 1e-3,
    errors: dict[int, float] | None = None,
    latency_ms: float = 1.0,
    latencies: dict[int, float] | None = None,
    failing: tuple[int, ...] = (),
    shard: str | None = None,
    status: str | None = None,
    samples: int = 30,
    seed: int = 0,
) -> int:
    """One run of ``kernel`` on ``cases`` fixed cases; per-case overrides of error and median latency."""
    rng = np.random.default_rng(zlib.crc32(f"{commit}/{shard}/{seed}".encode()))
    run_id = store.start_run(
        commit=commit,
        parents=list(parents or []),
        branch="main",
        suite="ci",
        shard=shard,
        environment=env or GPU_ENV,
        lowbit_version="0.1.0",
    )
    kid = store.kernel_id(kernel, "src")
    rows = []
    for i in range(cases):
        params = case_params(i)
        err = (errors or {}).get(i, error)
        fail = i in failing
        latency = (latencies or {}).get(i, latency_ms)
        timings = gpu_samples(rng, samples, latency)
        rows.append(
            ResultRow(
                case_id=case_id(params),
                case_params=params,
                family="gaussian",
                shape_class="gqa/nq<nk",
                phase="corpus",
                status="fail" if fail else "pass",
                failed_property="error_budget" if fail else None,
                verdicts={"error_budget": not fail},
                metrics={"rel_l2": 0.5 if fail else err, "max_abs": 2 * err},
                message="rel_l2 0.5 > 1e-2" if fail else "",
                latency={"kind": "cuda", "p50_ms": float(np.median(timings)), "samples_ms": timings},
            )
        )
    store.record_results(run_id, kid, rows)
    if status != "running":
        store.finish_run(run_id, status or ("failed" if failing else "complete"))
    return run_id


def cid(i: int) -> str:
    return case_id(case_params(i))
