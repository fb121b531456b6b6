"""Synthetic result rows for the store's tests (no kernels, no torch: the store must not need them)."""

from __future__ import annotations

import hashlib
import json

from harness.store import ResultRow


def case_params(index: int) -> dict:
    """Params shaped like ``Case.params()`` (canonical, sorted keys), distinct per ``index``."""
    return {
        "batch": 1,
        "causal": bool(index % 2),
        "distribution": "gaussian",
        "dtype": "float16",
        "head_dim": 64,
        "hkv": 2,
        "hq": 4,
        "nk": 64 + index,
        "nq": 64,
        "seed": index,
        "sm_scale": None,
    }


def case_id(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def make_rows(
    n: int, *, first_case: int = 0, n_cases: int | None = None, fail_every: int = 0, tag: str = ""
) -> list[ResultRow]:
    """``n`` rows over cases ``first_case ..`` (cycling over ``n_cases`` if given); every
    ``fail_every``-th row fails "error_budget". ``message`` is ``f"{tag}#{i}"`` so rows can be counted."""
    rows = []
    for i in range(n):
        index = first_case + (i % n_cases if n_cases else i)
        params = case_params(index)
        failing = fail_every > 0 and i % fail_every == 0
        rows.append(
            ResultRow(
                case_id=case_id(params),
                case_params=params,
                family="gaussian",
                shape_class="gqa/nq<nk/causal" if params["causal"] else "gqa/nq<nk",
                phase="corpus",
                status="fail" if failing else "pass",
                failed_property="error_budget" if failing else None,
                verdicts={"finite": True, "error_budget": not failing, "deterministic": None},
                metrics={"rel_l2": 1e-3 * (i % 7), "max_abs": 2e-3, "kernel_rel_l2": 5e-4, "extra": i},
                message=f"{tag}#{i}",
                latency={
                    "kind": "cpu-interpreter",
                    "p20_ms": 1.0,
                    "p50_ms": 1.5,
                    "p80_ms": 2.0,
                    "mean_ms": 1.6,
                    "stddev_ms": 0.2,
                    "samples_ms": [1.0, 1.5, 2.0],
                    "tflops": None,
                },
            )
        )
    return rows


FINGERPRINT = {
    "gpu": None,
    "python": "3.11",
    "torch": "2.13.0",
    "triton": "3.6.0",
    "cpu": "test",
    "host": "ci",
}


def start_run(store, commit: str = "a" * 40, **overrides) -> int:
    kwargs = {
        "commit": commit,
        "parents": [],
        "branch": "main",
        "suite": "quick",
        "shard": None,
        "environment": FINGERPRINT,
        "lowbit_version": "0.1.0",
    }
    kwargs.update(overrides)
    return store.start_run(**kwargs)
