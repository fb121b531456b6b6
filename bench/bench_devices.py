"""`lowbit run --devices` on a multi-GPU host: the same run on one GPU and spread over several.

Runs ``lowbit run`` twice on the same commit, into two fresh SQLite files, each with a fresh Triton cache
(both runs compile everything, as a runner without a warm cache would): ``--devices 0``, then
``--devices 0,1``. Prints the wall time of each, the speed-up, the device each kernel ran on and when it
finished (its last rows written, from the run's start), and checks that both runs recorded the same
cases (kernel, phase, case id) with the same statuses.
Writes ``bench_devices.json``, ``bench_devices.md`` and the two runs' logs to ``$OUT`` (or ``--out``).

On two H200s (about 7 minutes at most; each run is stopped with SIGTERM after ``--timeout`` seconds and
then counts as incomplete)::

    python bench/bench_devices.py

On the CPU, to check the script itself (the interpreter, parallel worker slots, tiny plain torch kernels)::

    python bench/bench_devices.py --device cpu --suite quick --fuzz-examples 0 \\
        --kernel a=tests.harness.crashing_kernels:correct --kernel b=tests.harness.crashing_kernels:correct

Exit status: 0 both runs complete with the same cases and statuses; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Four kernels of about equal work, so two GPUs can share them evenly; the GPU ci corpus is ~30 cases each.
DEFAULT_KERNELS = ("fp16", "int8", "int8_qk", "sage_fp8")
DEFAULT_FUZZ_EXAMPLES = 10
# Recorded when git cannot name the commit (a copy of the tree without .git): both runs use the same one.
PLACEHOLDER_COMMIT = "de71ce5" + "0" * 33


def head_commit() -> str | None:
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and len(sha) == 40 else None


def versions(device: str, devices: list[str]) -> dict:
    import torch
    import triton

    info = {"torch": torch.__version__, "triton": triton.__version__, "python": sys.version.split()[0]}
    if device == "cuda":
        info["gpus"] = {
            f"cuda:{i}": torch.cuda.get_device_name(int(i)) for i in devices if i.strip().isdigit()
        }
        info["cuda"] = torch.version.cuda
    return info


def timed_run(args: argparse.Namespace, devices: str, db: Path, log: Path, commit: str) -> dict:
    """One ``lowbit run``: wall seconds, exit status, whether it had to be stopped."""
    command = [sys.executable, "-m", "harness.cli", "run", "--db", f"sqlite:///{db}", "--commit", commit]
    command += ["--suite", args.suite, "--device", args.device, "--devices", devices]
    if args.fuzz_examples is not None:
        command += ["--fuzz-examples", str(args.fuzz_examples)]
    for kernel in args.kernels:
        command += ["--kernel", kernel]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    stopped = False
    with tempfile.TemporaryDirectory(prefix="lowbit-triton-cache-") as cache, log.open("w") as out:
        if not args.shared_triton_cache:
            env["TRITON_CACHE_DIR"] = cache
        start = time.monotonic()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            stopped = True
            proc.send_signal(signal.SIGTERM)  # the run records what it measured and ends interrupted
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        wall = time.monotonic() - start
    return {
        "devices": devices,
        "command": command,
        "wall_s": wall,
        "exit": proc.returncode,
        "stopped": stopped,
    }


def _when(stamp: object) -> datetime:
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else stamp


def recorded(db: Path) -> dict:
    """What a run stored: its status, per kernel the devices, rows, statuses and end time, every case."""
    from harness.store import open_store

    if not db.exists():
        return {"status": "nothing recorded", "kernels": {}, "cases": Counter()}
    with open_store(f"sqlite:///{db}", create=False) as store:
        runs = store.runs()
        if not runs:
            return {"status": "nothing recorded", "kernels": {}, "cases": Counter()}
        run = runs[0]
        rows = store.results(run["id"])
    kernels: dict[str, dict] = defaultdict(lambda: {"devices": set(), "rows": 0, "statuses": Counter()})
    times: dict[str, list] = defaultdict(list)
    for row in rows:
        k = kernels[row["kernel"]]
        k["rows"] += 1
        k["statuses"][row["status"]] += 1
        index = (row["metrics"] or {}).get("device_index")
        k["devices"].add("default" if index is None else f"{int(index)}")
        times[row["kernel"]].append(_when(row["recorded_at"]))
    started = _when(run["started_at"])
    for name, k in kernels.items():
        stamps = sorted(times[name])
        # Rows are written in batches (25 rows or 2 s): the time its last batch was written, from the
        # run's start, says when the kernel finished to within a batch.
        k["done_at_s"] = (stamps[-1] - started).total_seconds()
        k["devices"] = sorted(k["devices"])
        k["statuses"] = dict(sorted(k["statuses"].items()))
    cases = Counter((r["kernel"], r["phase"], r["case_id"], r["status"]) for r in rows)
    return {"status": run["status"], "kernels": dict(sorted(kernels.items())), "cases": cases}


def compare(single: Counter, spread: Counter) -> list[str]:
    """Cases recorded differently by the two runs (missing on one side, or another status)."""
    return [
        f"{kernel} {phase} {case_id} {status}: {single[key]} in the single run, {spread[key]} spread"
        for key in sorted(set(single) | set(spread))
        if single[key] != spread[key]
        for kernel, phase, case_id, status in [key]
    ]


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(result: dict) -> str:
    single, spread = result["runs"]
    lines = [
        "## lowbit run --devices",
        "",
        f"Commit `{result['commit'][:12]}`, suite `{result['suite']}`, device `{result['device']}`, "
        f"fuzz examples {result['fuzz_examples']}, kernels {', '.join(result['kernels'])}; "
        f"{json.dumps(result['versions'])}.",
        "",
        "| --devices | wall s | exit | run status | kernel: device, done at s |",
        "|---|---|---|---|---|",
    ]
    for run in (single, spread):
        per_kernel = "; ".join(
            f"{name}: {'/'.join(k['devices'])}, {k['done_at_s']:.0f}" for name, k in run["kernels"].items()
        )
        lines.append(
            f"| {run['devices']} | {run['wall_s']:.1f} | {run['exit']} | {run['status']}"
            f"{' (stopped at the time limit)' if run['stopped'] else ''} | {per_kernel} |"
        )
    lines += [
        "",
        f"Speed-up: **{result['speedup']:.2f}x** ({single['wall_s']:.1f} s / {spread['wall_s']:.1f} s); "
        f"cases run per second {single['cases_per_s']:.2f} and {spread['cases_per_s']:.2f} "
        f"({_ratio(result['throughput_ratio'])}).",
        f"Both runs complete: **{result['complete']}**. Same cases and statuses in both runs: "
        f"**{result['same_cases']}** "
        f"({result['cases']} case rows; {len(result['differences'])} difference(s)).",
    ]
    lines += [f"- {d}" for d in result["differences"][:20]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--suite", choices=("quick", "ci", "nightly"), default="ci")
    parser.add_argument("--fuzz-examples", type=int, default=DEFAULT_FUZZ_EXAMPLES)
    parser.add_argument("--kernel", dest="kernels", action="append", help="repeatable (default: four)")
    parser.add_argument("--single", default="0", help="--devices of the first run (default 0)")
    parser.add_argument("--spread", default="0,1", help="--devices of the second run (default 0,1)")
    parser.add_argument("--commit", help="commit to record (default: git HEAD, else a placeholder)")
    parser.add_argument("--timeout", type=float, default=200.0, help="seconds per run before SIGTERM")
    parser.add_argument("--shared-triton-cache", action="store_true", help="keep the user's Triton cache")
    parser.add_argument("--out", type=Path, default=None, help="result folder (default: $OUT, else none)")
    args = parser.parse_args(argv)
    args.kernels = args.kernels or list(DEFAULT_KERNELS)
    commit = args.commit or head_commit() or PLACEHOLDER_COMMIT
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)

    runs = []
    with tempfile.TemporaryDirectory(prefix="lowbit-bench-devices-") as work:
        logs = Path(out) if out else Path(work)
        logs.mkdir(parents=True, exist_ok=True)
        for label, devices in (("single", args.single), ("spread", args.spread)):
            db = Path(work) / f"{label}.db"
            run = timed_run(args, devices, db, logs / f"bench_devices_{label}.log", commit)
            stored = recorded(db)
            run.update(status=stored["status"], kernels=stored["kernels"], cases_counter=stored["cases"])
            # Cases run to an end per second: still comparable when a run was stopped at the time limit.
            ran = sum(n for k in run["kernels"].values() for s, n in k["statuses"].items() if s != "skipped")
            run["cases_per_s"] = ran / run["wall_s"]
            runs.append(run)
            print(
                f"--devices {devices}: {run['wall_s']:.1f} s, exit {run['exit']}, run {run['status']}"
                + (" (stopped at the time limit)" if run["stopped"] else ""),
                flush=True,
            )
            for name, k in run["kernels"].items():
                print(
                    f"  {name:<16} device {'/'.join(k['devices']):<8} {k['rows']:>4} rows "
                    f"done at {k['done_at_s']:6.1f} s  {k['statuses']}",
                    flush=True,
                )
    single, spread = runs
    differences = compare(single.pop("cases_counter"), spread.pop("cases_counter"))
    complete = all(r["status"] == "complete" and not r["stopped"] and r["exit"] in (0, 1) for r in runs)
    result = {
        "commit": commit,
        "suite": args.suite,
        "device": args.device,
        "fuzz_examples": args.fuzz_examples,
        "kernels": args.kernels,
        "versions": versions(args.device, args.spread.split(",")),
        "runs": runs,
        "speedup": single["wall_s"] / spread["wall_s"],
        "throughput_ratio": spread["cases_per_s"] / single["cases_per_s"] if single["cases_per_s"] else None,
        "cases": sum(k["rows"] for k in single["kernels"].values()),
        "complete": complete,
        "same_cases": not differences,
        "differences": differences,
    }
    print(
        f"speed-up {result['speedup']:.2f}x (cases per second {_ratio(result['throughput_ratio'])}); "
        f"both runs complete: {complete}; "
        f"same cases and statuses: {result['same_cases']} ({result['cases']} case rows)"
    )
    for line in differences[:20]:
        print(f"  {line}")
    if out:
        (out / "bench_devices.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / "bench_devices.md").write_text(markdown(result))
    return 0 if complete and result["same_cases"] and result["cases"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
