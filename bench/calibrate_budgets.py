"""Measure the worst error of each registered method per (dtype, value family), to set its budgets.

    python bench/calibrate_budgets.py                 # on the GPU: nightly corpus + fuzz, long sequences
    python bench/calibrate_budgets.py --device cpu    # CPU interpreter: the ci corpus + tiny fuzz shapes

Every case goes through the harness exactly as `lowbit run` and `lowbit fuzz` would put it (same
distributions, same oracle, same metrics), but with the budgets lifted, so the numbers are what the
kernel does rather than where it first crossed a line. The fuzz part keeps Hypothesis's search towards
larger error (`target()`), so the worst values are searched for, not just sampled.

Prints, per method, dtype and family: examples, worst rel-L2 and max-abs (with the case that gave each),
the declared budget and the headroom left. Writes calibrate.json and calibrate.md under $OUT (or
./calibrate_out).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

UNLIMITED = 1e30


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def calibrate(methods, device: str, suite: str, examples: int, seed: int) -> list[dict]:
    from harness.run.corpus import build_corpus
    from harness.search.fuzz import fuzz
    from harness.search.properties import check_case
    from harness.search.targets import load_kernel

    worst: dict[tuple[str, str, str], dict] = defaultdict(
        lambda: {"examples": 0, "rel_l2": 0.0, "max_abs": 0.0, "rel_case": None, "abs_case": None}
    )
    failures: list[str] = []

    for method in methods:
        declared = load_kernel(method)
        target = load_kernel(method, max_rel_l2=UNLIMITED, max_abs=UNLIMITED)

        def collect(result, method=method, declared=declared):
            if result.status == "unsupported":
                return
            case = result.case
            key = (method, case.dtype, case.family)
            row = worst[key]
            row["budget"] = declared.budget_for(case.family, case.dtype)
            row["examples"] += 1
            if result.status != "pass":
                failures.append(f"{method}: {result.failed_property}: {result.message} {case.to_json()}")
                return
            for metric, case_key in (("rel_l2", "rel_case"), ("max_abs", "abs_case")):
                if result.metrics[metric] > row[metric]:
                    row[metric] = result.metrics[metric]
                    row[case_key] = case.to_json()

        start = time.perf_counter()
        corpus = build_corpus(suite, device, declared.head_dims, declared.dtypes)
        for case in corpus:
            collect(check_case(target, case, device))
        report = fuzz(
            target,
            examples=examples,
            seed=seed,
            device=device,
            profile="ci",
            database=False,
            on_result=collect,
            keep_going=True,
        )
        print(
            f"{method}: {len(corpus)} corpus cases + {report.examples} fuzz examples in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )

    rows = []
    for (method, dtype, family), row in sorted(worst.items()):
        budget = row.pop("budget")
        rows.append(
            {
                "method": method,
                "dtype": dtype,
                "family": family,
                **row,
                "budget_rel_l2": budget.max_rel_l2,
                "budget_max_abs": budget.max_abs,
                "headroom_rel_l2": budget.max_rel_l2 / row["rel_l2"] if row["rel_l2"] else math.inf,
                "headroom_max_abs": budget.max_abs / row["max_abs"] if row["max_abs"] else math.inf,
            }
        )
    for line in failures:
        print("NOT PASSING (non-budget property):", line, flush=True)
    return rows


def to_markdown(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "",
        "| method | dtype | family | examples | worst rel-L2 | budget | worst max-abs | budget |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['dtype']} | {r['family']} | {r['examples']} | {_fmt(r['rel_l2'])} | "
            f"{_fmt(r['budget_rel_l2'])} | {_fmt(r['max_abs'])} | {_fmt(r['budget_max_abs'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    parser.add_argument("--suite", default=None, help="corpus suite (default: nightly on GPU, ci on CPU)")
    parser.add_argument("--examples", type=int, default=None, help="fuzz examples per method")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from harness.search.device import select_device

    device = select_device(args.device)
    import torch
    import triton

    import kernels

    methods = args.methods.split(",") if args.methods else sorted(kernels.REGISTRY)
    suite = args.suite or ("nightly" if device == "cuda" else "ci")
    examples = args.examples or (300 if device == "cuda" else 60)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU (Triton interpreter)"
    header = (
        f"Calibration on {gpu}, torch {torch.__version__}, triton {triton.__version__}: "
        f"{suite} corpus + {examples} fuzz examples per method (seed {args.seed})."
    )
    print(header, flush=True)
    rows = calibrate(methods, device, suite, examples, args.seed)
    md = to_markdown(rows, header)
    out = Path(os.environ.get("OUT", "calibrate_out"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibrate.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    (out / "calibrate.md").write_text(md)
    print(md)
    over = [r for r in rows if r["headroom_rel_l2"] < 1 or r["headroom_max_abs"] < 1]
    for r in over:
        print(f"OVER BUDGET: {r['method']} {r['dtype']} {r['family']}: {r['rel_case'] or r['abs_case']}")
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
