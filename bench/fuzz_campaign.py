"""A fuzz campaign: `lowbit fuzz` of every registered method over several seeds, several at a time.

    python bench/fuzz_campaign.py --out camp                      # GPU: nightly, 400 examples, seeds 11-13
    python bench/fuzz_campaign.py --methods int8,mixed --seeds 11 --lanes 2 --out camp
    python bench/fuzz_campaign.py --summarize camp                # the table of a finished (or partial) run

Each run is exactly what a user types (`lowbit fuzz --kernel M --device D --profile P --examples N
--seed S --json`); its JSON lands in ``OUT/M-S.json`` and its progress in ``OUT/M-S.log``. Runs go
seed-major over ``--lanes`` processes, so a campaign cut short still covers every method. On a GPU the
2^31-offset cases are the same for every seed: each method checks them once (``OUT/long-M.json``, one
lane of its own, started first) and the seeded runs pass ``--no-long-cases``. Several lanes share one
GPU: `lowbit fuzz` retries a case that ran out of GPU memory and its workers give back cached memory
between cases; on an 80 GB GPU keep lanes at 4 or fewer while the long cases run.

The summary (also written to ``OUT/summary.md``) lists every run: examples, failure (with its repro
line), time, and the case closest to its budget. Exit status 1 if any run failed or did not finish.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _lowbit(args: list[str], out: Path, name: str, log: Path) -> int:
    with open(out / f"{name}.json", "w") as stdout, open(out / f"{name}.log", "w") as stderr:
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        rc = subprocess.call(
            [sys.executable, "-m", "harness.cli", "fuzz", *args, "--json"],
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=ROOT,
        )
    with open(log, "a") as fh:
        fh.write(f"{time.strftime('%H:%M:%S')} {name} exit {rc}\n")
    return rc


def run_campaign(
    methods: list[str],
    seeds: list[int],
    *,
    out: Path,
    device: str,
    profile: str,
    examples: int,
    lanes: int,
    long_cases: bool,
) -> None:
    """Every (method, seed) run on ``lanes`` threads, each a `lowbit fuzz` process; long cases once."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "campaign.log"
    base = ["--device", device, "--profile", profile]
    jobs = [(m, s) for s in seeds for m in methods]
    lock = threading.Lock()

    def lane() -> None:
        while True:
            with lock:
                if not jobs:
                    return
                method, seed = jobs.pop(0)
            args = ["--kernel", method, *base, "--examples", str(examples), "--seed", str(seed)]
            _lowbit([*args, "--no-long-cases"] if long_cases else args, out, f"{method}-{seed}", log)

    def long_lane() -> None:
        # One example besides the 2^31-offset cases: the search needs one, and it costs little.
        for method in methods:
            args = ["--kernel", method, *base, "--examples", "1", "--seed", str(min(seeds) - 1)]
            _lowbit(args, out, f"long-{method}", log)

    threads = [threading.Thread(target=lane) for _ in range(max(1, lanes))]
    if long_cases:
        threads.insert(0, threading.Thread(target=long_lane))
    for t in threads:
        t.start()
        time.sleep(1.0)
    for t in threads:
        t.join()


def summarize(out: Path) -> tuple[str, bool]:
    """The Markdown table of every run's JSON in ``out``, and whether every run finished without failure."""
    lines = [
        "| run | examples | passed | unsupported | failure | time (s) | closest to budget |",
        "|---|---|---|---|---|---|---|",
    ]
    ok = True
    for path in sorted(out.glob("*.json")):
        name = path.stem
        try:
            report = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            lines.append(f"| {name} | - | - | - | did not finish (no JSON) | - | - |")
            ok = False
            continue
        failure = report.get("failed_property")
        if failure:
            ok = False
            cell = f"{failure}: `{report.get('repro_command')}`"
        else:
            cell = "none"
        worst = report.get("worst") or {}
        closest = f"{worst.get('family')} {worst.get('error_ratio', 0):.2f}" if worst else "-"
        lines.append(
            f"| {name} | {report.get('examples')} | {report.get('passed')} | {report.get('unsupported')} | "
            f"{cell} | {report.get('elapsed_s', 0):.0f} | {closest} |"
        )
    if len(lines) == 2:
        return "no run results in " + str(out), False
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="all", help="comma-separated registry names, or all")
    p.add_argument("--seeds", default="11,12,13")
    p.add_argument("--examples", type=int, default=400)
    p.add_argument("--profile", default="nightly", choices=("dev", "ci", "nightly"))
    p.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    p.add_argument("--lanes", type=int, default=6, help="`lowbit fuzz` processes at once")
    p.add_argument("--no-long-cases", action="store_true", help="leave the 2^31-offset cases out entirely")
    p.add_argument("--out", type=Path, help="directory for each run's JSON and log")
    p.add_argument("--summarize", type=Path, metavar="DIR", help="only print the table of DIR")
    args = p.parse_args(argv)

    if args.summarize is not None:
        table, ok = summarize(args.summarize)
        print(table)
        return 0 if ok else 1
    if args.out is None:
        p.error("--out is required unless --summarize is given")
    if args.examples < 1 or args.lanes < 1:
        p.error("--examples and --lanes must be at least 1")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds: expected comma-separated integers, got {args.seeds!r}")
    if not seeds or min(seeds) < 1:
        p.error("--seeds: expected at least one seed, each at least 1")

    from kernels.registry import REGISTRY

    methods = list(REGISTRY) if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in methods if m not in REGISTRY]
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; registered: {', '.join(REGISTRY)}")

    start = time.perf_counter()
    run_campaign(
        methods,
        seeds,
        out=args.out,
        device=args.device,
        profile=args.profile,
        examples=args.examples,
        lanes=args.lanes,
        long_cases=args.device == "cuda" and not args.no_long_cases,
    )
    table, ok = summarize(args.out)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)
    print(f"\n{len(methods)} methods x {len(seeds)} seeds in {time.perf_counter() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
