"""Harness overhead and fuzzing throughput.

Run as a script for a summary (``python bench/bench_fuzz_overhead.py [--examples N] [--device D]``), or
under pytest-benchmark (``pytest bench/bench_fuzz_overhead.py --benchmark-json out.json``).

Measured on a plain torch kernel (the correct float32 kernel of the harness tests), so the numbers are
the harness's own cost -- Hypothesis drawing a case, building its tensors from the seed, two kernel
calls, the oracle and the property checks -- plus a kernel that costs about as much as the oracle:

* ``examples_per_s``: examples checked per second by ``lowbit fuzz`` (the CLI, in-process, progress bar
  included), profile ``ci``; the requirement is at least 20 examples/s on a 2-core CPU.
* ``overhead_ms``: per example, wall time not spent inside the kernel.
* a breakdown of one example of a fixed mid-size case: make_inputs, oracle, check_case.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from harness.search.device import select_device  # noqa: E402

DEVICE = select_device(None)

import torch  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from harness.cli.fuzz import fuzz_command  # noqa: E402
from harness.search.cases import Case  # noqa: E402
from harness.search.fuzz import cpu_threads, fuzz  # noqa: E402
from harness.search.oracle import reference_attention  # noqa: E402
from harness.search.properties import check_case  # noqa: E402
from harness.search.targets import target_from_callable  # noqa: E402
from tests.harness.broken_kernels import correct_fp32  # noqa: E402

KERNEL_REF = "tests.harness.broken_kernels:correct_fp32"
MID_CASE = Case(1, 4, 2, 128, 128, 64, "float16", True, None, "gaussian", 1)


def cli_examples_per_s(examples: int, device: str) -> dict:
    """Run ``lowbit fuzz --json`` in-process; its report carries examples and elapsed time."""
    args = ["--kernel", KERNEL_REF, "--profile", "ci", "--examples", str(examples), "--json"]
    args += ["--no-database", "--device", device]
    # The `lowbit fuzz` command itself, without the store commands the full CLI also loads.
    result = CliRunner().invoke(fuzz_command, args, catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(f"lowbit fuzz exited {result.exit_code}: {result.output[-2000:]}")
    report = json.loads(result.stdout)
    return {
        "examples": report["examples"],
        "elapsed_s": report["elapsed_s"],
        "examples_per_s": report["examples_per_s"],
    }


def overhead_ms(examples: int, device: str) -> dict:
    """Per-example wall time outside the kernel (strategy, inputs, oracle, checks, bookkeeping)."""
    spent = [0.0]

    def timed(q, k, v, **kw):
        start = time.perf_counter()
        out = correct_fp32(q, k, v, **kw)
        if out.is_cuda:
            torch.cuda.synchronize()
        spent[0] += time.perf_counter() - start
        return out

    target = target_from_callable(timed, name="timed_fp32")
    report = fuzz(target, examples=examples, seed=None, device=device, profile="ci", database=False)
    return {
        "examples": report.examples,
        "elapsed_s": report.elapsed_s,
        "kernel_s": spent[0],
        "overhead_ms": 1e3 * (report.elapsed_s - spent[0]) / report.examples,
    }


def breakdown_ms(device: str, repeats: int = 20) -> dict:
    target = target_from_callable(correct_fp32, name="fp32")

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return 1e3 * min(times)

    with cpu_threads(1 if device == "cpu" else None):
        q, k, v = MID_CASE.make_inputs(device)
        return {
            "make_inputs_ms": best(lambda: MID_CASE.make_inputs(device)),
            "oracle_ms": best(lambda: reference_attention(q, k, v, causal=True)),
            "kernel_call_ms": best(lambda: correct_fp32(q, k, v, causal=True)),
            "check_case_ms": best(lambda: check_case(target, MID_CASE, device)),
        }


def registered_throughput(examples: int, device: str) -> dict:
    """Fuzz every registered kernel with the ci profile: examples/s and the verdict, per method."""
    from harness.search.targets import load_kernel, registry

    out = {}
    for name in registry():
        report = fuzz(
            load_kernel(name), examples=examples, seed=None, device=device, profile="ci", database=False
        )
        first = report.failures[0] if report.failures else None
        out[name] = {
            "ok": report.ok,
            "examples": report.examples,
            "examples_per_s": report.examples_per_s,
            "worst_ratio": report.worst.error_ratio if report.worst else None,
            "failure": f"{first.failed_property}: {first.message} | {first.repro_command}" if first else None,
        }
    return out


def test_bench_lowbit_fuzz_throughput(benchmark):
    stats = benchmark.pedantic(lambda: cli_examples_per_s(200, DEVICE), rounds=3, iterations=1)
    benchmark.extra_info.update(stats)
    assert stats["examples"] == 200


def test_bench_harness_overhead_per_example(benchmark):
    stats = benchmark.pedantic(lambda: overhead_ms(200, DEVICE), rounds=3, iterations=1)
    benchmark.extra_info.update(stats)


def test_bench_check_case_mid_size(benchmark):
    target = target_from_callable(correct_fp32, name="fp32")
    with cpu_threads(1 if DEVICE == "cpu" else None):
        result = benchmark(check_case, target, MID_CASE, DEVICE)
    assert result.status == "pass"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--registered", type=int, default=0, metavar="N", help="also fuzz each registered kernel, N examples"
    )
    args = parser.parse_args()
    runs = [cli_examples_per_s(args.examples, DEVICE) for _ in range(args.rounds)]
    over = [overhead_ms(args.examples, DEVICE) for _ in range(args.rounds)]
    summary = {
        "device": DEVICE,
        "torch_threads": torch.get_num_threads(),
        "lowbit_fuzz_examples_per_s": {
            "best": max(r["examples_per_s"] for r in runs),
            "median": sorted(r["examples_per_s"] for r in runs)[len(runs) // 2],
        },
        "overhead_ms_per_example": min(o["overhead_ms"] for o in over),
        "kernel_share": min(o["kernel_s"] / o["elapsed_s"] for o in over),
        "breakdown_mid_case": breakdown_ms(DEVICE),
        "mid_case": str(MID_CASE),
    }
    if args.registered:
        summary["registered"] = registered_throughput(args.registered, DEVICE)
    if args.json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
