"""A synthetic lowbit history written through the store's public API (no kernels, no torch).

Shapes follow what the runner records: case params like ``Case.params()`` (some with the ``layout``
parameter, some without), budgets in each row's metrics, CPU-interpreter latencies with raw samples.
Planted on purpose, so tests and the benchmark have something to find:

- ``int8`` at commit index ``regress_at`` and later: rel_l2 three times higher on the "outliers" family,
  and one case failing its error budget (a counterexample that stays open);
- ``attn`` at ``slow_at`` and later: 1.6x the latency on every case;
- a second environment (an H200) on a second branch every ``gpu_every`` commits;
- a stored change point (as ``lowbit history`` writes) for each int8 "outliers" case at ``regress_at``;
- the newest run "running" (results still landing) when ``running_tail``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass

from harness.store import ResultRow, Store
from harness.store.history import replace_change_points

FAMILIES = ("gaussian", "small", "saturating", "outliers", "degenerate")
SHAPES = (  # (hq, hkv, nq, nk, causal)
    (2, 2, 64, 64, False),
    (4, 2, 16, 80, False),
    (2, 1, 37, 37, True),
    (2, 2, 48, 32, False),
    (2, 2, 300, 300, True),
    (4, 1, 1, 2048, False),
)
HEAD_DIMS = (64, 128)
KERNELS = ("fp16", "int8", "attn", "int8_qk")
BUDGET = {"fp16": (2e-3, 1e-2), "int8": (1.2e-1, 0.5), "attn": (1e-2, 5e-2), "int8_qk": (3e-2, 0.2)}
BASE_ERR = {"fp16": 3e-4, "int8": 2e-2, "attn": 3e-4, "int8_qk": 1.2e-2}
BASE_MS = {"fp16": 40.0, "int8": 60.0, "attn": 42.0, "int8_qk": 50.0}
CPU_ENV = {"gpu": None, "cpu": "x86_64 test cpu", "torch": "2.13.0", "triton": "3.6.0", "python": "3.11"}
GPU_ENV = {"gpu": "NVIDIA H200", "cpu": "x86_64", "torch": "2.11.0", "triton": "3.6.0", "python": "3.12"}


def case_params(family_index: int, shape_index: int, head_dim: int, variant: int) -> dict:
    hq, hkv, nq, nk, causal = SHAPES[shape_index]
    params = {
        "batch": 1,
        "causal": causal,
        "distribution": FAMILIES[family_index],
        "dtype": "float16",
        "head_dim": head_dim,
        "hkv": hkv,
        "hq": hq,
        "nk": nk,
        "nq": nq,
        "seed": variant,
        "sm_scale": None,
    }
    if variant % 2:  # half the cases come from a newer lowbit that records the memory layout
        params["layout"] = "bhsd" if variant % 4 == 1 else "bshd"
    return dict(sorted(params.items()))


def shape_class(params: dict) -> str:
    layout = "mha" if params["hq"] == params["hkv"] else ("mqa" if params["hkv"] == 1 else "gqa")
    nq, nk = params["nq"], params["nk"]
    rel = "nq=nk" if nq == nk else ("nq<nk" if nq < nk else "nq>nk")
    return f"{layout}/{rel}/{'causal' if params['causal'] else 'full'}"


def case_id(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def all_cases(variants: int) -> list[dict]:
    return [
        case_params(f, s, d, v)
        for f in range(len(FAMILIES))
        for s in range(len(SHAPES))
        for d in HEAD_DIMS
        for v in range(variants)
    ]


@dataclass
class Planted:
    commits: list[str]
    run_ids: list[int]
    regress_at: int
    slow_at: int
    failing_case: str
    cases_per_run: int


def commit_sha(i: int) -> str:
    return hashlib.sha1(f"synthetic commit {i}".encode()).hexdigest()


# Every seventh commit was recorded without a subject (git did not know it): pages must cope.
NO_SUBJECT_EVERY = 7


def commit_subject(i: int, planted: Planted) -> str | None:
    """The subject line recorded for commit ``i``: what the planted change did, else a routine one."""
    if i == planted.regress_at:
        return "int8: quantize P per block with a shared scale (planted regression on outliers)"
    if i == planted.slow_at:
        return "attn: refactor the launch grid (planted slowdown)"
    if i % NO_SUBJECT_EVERY == NO_SUBJECT_EVERY - 1:
        return None
    return f"routine change {i}: tidy kernel launch code"


def _row(kernel: str, params: dict, i: int, planted: Planted, rng: random.Random, phase: str) -> ResultRow:
    rel_budget, abs_budget = BUDGET[kernel]
    cid = case_id(params)
    # Errors are deterministic per case (a case fixes its inputs); only timings scatter between runs.
    rel = BASE_ERR[kernel] * (1 + 0.2 * (int(cid[:4], 16) / 0xFFFF))
    if kernel == "int8" and i >= planted.regress_at and params["distribution"] == "outliers":
        rel *= 3
    ms = BASE_MS[kernel] * (1 + 0.03 * rng.random()) * (params["nk"] / 64) ** 0.5
    if kernel == "attn" and i >= planted.slow_at:
        ms *= 1.6
    failing = kernel == "int8" and i >= planted.regress_at and cid == planted.failing_case
    if failing:
        rel = rel_budget * 1.7
    max_abs = rel * 5
    ratio = max(rel / rel_budget, max_abs / abs_budget)
    samples = [ms * (1 + 0.02 * rng.random()) for _ in range(5)]
    return ResultRow(
        case_id=cid,
        case_params=params,
        family=params["distribution"],
        shape_class=shape_class(params),
        phase=phase,
        status="fail" if failing else "pass",
        failed_property="error_budget" if failing else None,
        verdicts={"finite": True, "error_budget": not failing},
        metrics={
            "rel_l2": rel,
            "max_abs": max_abs,
            "worst_row_rel_l2": math.inf if failing else rel * 2,
            "budget_rel_l2": rel_budget,
            "budget_max_abs": abs_budget,
            "error_ratio": ratio,
        },
        message=f"error_budget: rel_l2 {rel:.3g} > {rel_budget:.3g}" if failing else "",
        latency={
            "kind": "cpu-interpreter",
            "p20_ms": min(samples),
            "p50_ms": sorted(samples)[2],
            "p80_ms": max(samples),
            "mean_ms": sum(samples) / 5,
            "stddev_ms": 0.01,
            "samples_ms": samples,
            "tflops": 1e-3 / sorted(samples)[2],
        },
    )


def build_history(
    store: Store,
    *,
    commits: int = 8,
    variants: int = 1,
    regress_at: int = 5,
    slow_at: int = 3,
    gpu_every: int = 4,
    fuzz_rows: int = 2,
    running_tail: bool = False,
    kernels: tuple[str, ...] = KERNELS,
) -> Planted:
    """Write ``commits`` runs (plus a GPU run every ``gpu_every`` commits) of every kernel on every case."""
    rng = random.Random(1234)
    cases = all_cases(variants)
    planted = Planted(
        [], [], regress_at, slow_at, case_id(case_params(FAMILIES.index("outliers"), 0, 64, 0)), 0
    )
    kernel_ids = {k: store.kernel_id(k, f"src-{k}") for k in kernels}
    parent: list[str] = []
    for i in range(commits):
        sha = commit_sha(i)
        planted.commits.append(sha)
        envs = [("main", CPU_ENV)] + ([("gpu-nightly", GPU_ENV)] if gpu_every and i % gpu_every == 0 else [])
        for branch, env in envs:
            run_id = store.start_run(
                commit=sha,
                parents=parent,
                branch=branch,
                subject=commit_subject(i, planted),
                suite="ci",
                shard=None,
                environment=env,
                lowbit_version="0.1.0",
            )
            planted.run_ids.append(run_id)
            env_id = store.runs(run_ids=[run_id])[0]["environment_id"]
            for kernel in kernels:
                rows = [_row(kernel, p, i, planted, rng, "corpus") for p in cases]
                for j in range(fuzz_rows):
                    fuzz = case_params(j % len(FAMILIES), j % len(SHAPES), 64, 1000 + i * 100 + j)
                    rows.append(_row(kernel, fuzz, i, planted, rng, "fuzz"))
                store.record_results(run_id, kernel_ids[kernel], rows)
                planted.cases_per_run = len(rows)
            if branch == "main" and i == regress_at and "int8" in kernels:
                # What `lowbit history` stores: int8's outliers cases stepped up in rel-L2 here.
                for params in cases:
                    if params["distribution"] == "outliers":
                        replace_change_points(
                            store,
                            "int8",
                            case_id(params),
                            "rel_l2",
                            env_id,
                            [
                                {
                                    "run_id": run_id,
                                    "commit": sha,
                                    "previous_commit": parent[0],
                                    "before": 1.0,
                                    "after": 3.0,
                                    "ratio": 3.0,
                                    "direction": "up",
                                    "method": "synthetic",
                                }
                            ],
                        )
            last = running_tail and i == commits - 1 and branch == "main"
            if not last:
                store.finish_run(run_id, "complete")
        parent = [sha]
    return planted
