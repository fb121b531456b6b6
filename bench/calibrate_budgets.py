"""Measure the worst error of each registered method per (dtype, value family, key-length bucket).

    python bench/calibrate_budgets.py                       # GPU: nightly corpus + nightly-profile fuzz
    python bench/calibrate_budgets.py --device cpu          # CPU interpreter: ci corpus + tiny shapes
    python bench/calibrate_budgets.py --methods int8 --out d/int8.json   # one method (run several at once)
    python bench/calibrate_budgets.py --merge d             # one table from every d/*.json

Every case goes through the harness exactly as `lowbit run` and `lowbit fuzz` would put it (same
distributions, same oracle, same metrics), with the accuracy budgets lifted, so the numbers are what the
method does rather than where it first crossed a line. The emulation budgets are not lifted: a case where
the kernel leaves its own algorithm is a bug, listed as such and kept out of the accuracy figures. The
fuzz part keeps Hypothesis's search towards larger error (`target()`), so the worst values are searched
for, not only sampled.

Measured per method, dtype, family and bucket of Nk (<= 1024, 2048, 4096, 16384, longer): examples,
worst whole-tensor rel-L2, max-abs and worst-row rel-L2 against the FP32/FP64 oracle, worst rel-L2 and
worst row against the method's float64 emulation, each with the case that gave it. Results are rewritten
every few examples, so a run stopped by a time limit keeps what it measured. ``--merge`` prints the table
with the declared budgets beside the measurements and flags every measurement over its budget.
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
BUCKETS = (1024, 2048, 4096, 16384)
METRICS = ("rel_l2", "max_abs", "worst_row_rel_l2", "emul_rel_l2", "emul_worst_row_rel_l2")
WRITE_EVERY_S = 10.0


def bucket_of(nk: int) -> str:
    """The key-length bucket a case's Nk falls in ("<=1024", ..., ">16384")."""
    for limit in BUCKETS:
        if nk <= limit:
            return f"<={limit}"
    return f">{BUCKETS[-1]}"


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


class Collector:
    """Worst value of each metric per (method, dtype, family, bucket), written to ``path`` as it goes."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path = path
        self.header = header
        self.cells: dict[tuple[str, str, str, str], dict] = defaultdict(
            lambda: {"examples": 0, **{m: 0.0 for m in METRICS}, **{f"{m}_case": None for m in METRICS}}
        )
        self.bugs: list[dict] = []
        self.crashes: list[dict] = []
        self.examples = 0
        self.last_write = time.monotonic()

    def add(self, method: str, result) -> None:
        if result.status == "unsupported" or result.phase == "shrink":
            return
        case = result.case
        self.examples += 1
        cell = self.cells[(method, case.dtype, case.family, bucket_of(case.nk))]
        cell["examples"] += 1
        if result.status != "pass":
            entry = {"property": result.failed_property, "message": result.message, "case": case.to_json()}
            (self.crashes if result.failed_property in ("crashed", "timed_out") else self.bugs).append(entry)
        else:
            for metric in METRICS:
                value = result.metrics.get(metric)
                if value is not None and math.isfinite(value) and value > cell[metric]:
                    cell[metric] = value
                    cell[f"{metric}_case"] = case.to_json()
        if time.monotonic() - self.last_write > WRITE_EVERY_S:
            self.write()

    def write(self, done: bool = False) -> None:
        rows = [
            {"method": m, "dtype": d, "family": f, "bucket": b, **cell}
            for (m, d, f, b), cell in sorted(self.cells.items())
        ]
        payload = {**self.header, "done": done, "examples": self.examples, "rows": rows}
        payload |= {"bugs": self.bugs, "crashes": self.crashes}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(self.path)
        self.last_write = time.monotonic()


def calibrate(methods, device: str, suite: str, profile: str, examples: int, seed: int, out: Path) -> None:
    from harness.run.corpus import build_corpus
    from harness.search.fuzz import fuzz
    from harness.search.properties import check_case
    from harness.search.targets import load_kernel

    for method in methods:
        header = {"method": method, "device": device, "suite": suite, "profile": profile, "seed": seed}
        header["environment"] = environment(device)
        collector = Collector(out / f"{method}.json" if out.is_dir() else out, header)
        target = load_kernel(method, max_rel_l2=UNLIMITED, max_abs=UNLIMITED)
        start = time.perf_counter()
        corpus = [] if suite == "none" else build_corpus(suite, device, target.head_dims, target.dtypes)
        for case in corpus:
            collector.add(method, check_case(target, case, device))
        collector.write()
        report = fuzz(
            target,
            examples=examples,
            seed=seed,
            device=device,
            profile=profile,
            database=False,
            on_result=lambda result, method=method, collector=collector: collector.add(method, result),
            keep_going=True,
        )
        collector.write(done=True)
        print(
            f"{method}: {len(corpus)} corpus cases + {report.examples} fuzz examples in "
            f"{time.perf_counter() - start:.0f} s; {len(collector.bugs)} emulation/property failures, "
            f"{len(collector.crashes)} crashes",
            flush=True,
        )


def environment(device: str) -> str:
    import torch
    import triton

    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU (Triton interpreter)"
    return f"{gpu}, torch {torch.__version__}, triton {triton.__version__}"


def merge(paths: list[Path]) -> tuple[str, int]:
    """Markdown of every measured cell beside its declared budget, and how many cells are over budget."""
    import torch

    from kernels.registry import REGISTRY

    lines, over = [], 0
    for path in sorted(paths):
        data = json.loads(path.read_text())
        method = data["method"]
        spec = REGISTRY.get(method)
        state = "complete" if data.get("done") else "stopped by its time limit"
        lines += [
            f"### {method}",
            "",
            f"{data['environment']}; {data['suite']} corpus + {data['profile']}-profile fuzz, seed "
            f"{data['seed']}: {data['examples']} examples ({state}).",
            "",
            "| dtype | family | Nk | n | rel-L2 (budget) | max-abs (budget) | worst row (budget) | "
            "emul rel-L2 | emul row |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in data["rows"]:
            dtype = getattr(torch, r["dtype"])
            budget = spec.budget_for(r["family"], dtype, _bucket_nk(r["bucket"])) if spec else None
            marks = []
            for metric, limit in (
                ("rel_l2", budget and budget.max_rel_l2),
                ("max_abs", budget and budget.max_abs),
                ("worst_row_rel_l2", budget and budget.row_limit),
            ):
                flag = "" if limit is None or r[metric] <= limit else " **over**"
                over += bool(flag)
                marks.append(f"{_fmt(r[metric])} ({_fmt(limit)}){flag}")
            lines.append(
                f"| {r['dtype']} | {r['family']} | {r['bucket']} | {r['examples']} | {' | '.join(marks)} | "
                f"{_fmt(r['emul_rel_l2'])} | {_fmt(r['emul_worst_row_rel_l2'])} |"
            )
        for kind in ("bugs", "crashes"):
            for entry in data.get(kind, []):
                lines.append(f"\n- {kind[:-1]}: `{entry['property']}`: {entry['message']} `{entry['case']}`")
        lines.append("")
    return "\n".join(lines) + "\n", over


def _bucket_nk(bucket: str) -> int:
    """The largest Nk of a bucket (the budget that applies to its longest rows)."""
    number = int(bucket.lstrip("<=>"))
    return number if bucket.startswith("<=") else number + 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--methods", default=None, help="comma-separated (default: every registered method)")
    parser.add_argument(
        "--suite", default=None, help="corpus suite (default: nightly on GPU, ci on CPU; none: fuzz only)"
    )
    parser.add_argument("--profile", default=None, help="fuzz profile (default: nightly on GPU, ci on CPU)")
    parser.add_argument("--examples", type=int, default=None, help="fuzz examples per method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="a .json file (one method) or a directory")
    parser.add_argument("--merge", type=Path, default=None, help="print the table of every DIR/*.json")
    args = parser.parse_args(argv)

    if args.merge is not None:
        markdown, over = merge(list(args.merge.glob("*.json")))
        print(markdown)
        print(f"{over} measurement(s) over the declared budget")
        return 1 if over else 0

    from harness.search.device import select_device

    device = select_device(args.device)
    import kernels

    methods = args.methods.split(",") if args.methods else sorted(kernels.REGISTRY)
    suite = args.suite or ("nightly" if device == "cuda" else "ci")
    profile = args.profile or ("nightly" if device == "cuda" else "ci")
    examples = args.examples or (300 if device == "cuda" else 60)
    out = args.out or Path(os.environ.get("OUT", "calibrate_out"))
    if out.suffix != ".json":
        out.mkdir(parents=True, exist_ok=True)
    calibrate(methods, device, suite, profile, examples, args.seed, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
