"""What the attention benchmarks share: SDPA's backends as callables, one timed and checked row,
CUDA-graph timing samples, the environment a table is measured in, and rows in pytest-benchmark's
JSON form, which ``lowbit ingest FILE --commit SHA`` records into the history."""

from __future__ import annotations

import datetime
import functools
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence


def _sdpa(sdpa_kernel, backend, q, k, v, causal, gqa):
    import torch

    kwargs = {"enable_gqa": True} if gqa else {}
    with sdpa_kernel(backend):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, **kwargs)


def sdpa_backends(q, k, v, causal: bool, *, gqa: bool = False) -> dict[str, Callable]:
    """SDPA's flash and cuDNN backends on ``q``, ``k``, ``v`` as zero-argument callables (GPU only);
    ``gqa``: K and V may have fewer heads than Q (SDPA's ``enable_gqa``, as a decode cache has)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = (("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION))
    return {name: functools.partial(_sdpa, sdpa_kernel, b, q, k, v, causal, gqa) for name, b in backends}


def graph_samples_ms(fn: Callable, interpret: bool) -> list[float]:
    """Sorted samples of ``fn``'s time in ms: CUDA-graph replays on a GPU (GPU time without launch
    overhead, do_bench_cudagraph); in the interpreter, one call's wall time."""
    import time

    import triton

    if interpret:
        start = time.perf_counter()
        fn()
        return [(time.perf_counter() - start) * 1e3]
    return sorted(float(t) for t in triton.testing.do_bench_cudagraph(fn, rep=100, return_mode="all"))


def timed_row(
    fn: Callable, ref, *, interpret: bool, flops: float, select=None, **labels
) -> tuple[dict, object]:
    """Run ``fn`` once, time it (do_bench median on a GPU, NaN in the interpreter) and measure its rel-L2
    against ``ref`` on ``select(output)`` (the whole output by default). Returns the row (``labels``
    first) and the output."""
    import triton

    out = fn()
    ms = float("nan") if interpret else triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")
    o = (out if select is None else select(out)).float()
    row = dict(labels, ms=ms, tflops=flops / ms / 1e9, rel_l2=float((o - ref).norm() / ref.norm()))
    return row, out


def environment(interpret: bool = False) -> dict:
    """GPU name, compute capability, CUDA, torch, triton and ptxas versions, Python and host: a
    pytest-benchmark ``machine_info``. In the interpreter, gpu is "CPU (Triton interpreter)"."""
    import torch
    import triton

    env = {
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "node": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
    }
    if interpret:
        return {"gpu": "CPU (Triton interpreter)", **env}
    try:
        out = subprocess.run([triton.knobs.nvidia.ptxas.path, "--version"], capture_output=True, text=True)
        ptxas = out.stdout.strip().splitlines()[-1]
    except Exception as exc:  # report, do not fail the benchmark
        ptxas = f"unknown ({exc.__class__.__name__})"
    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(),
        "compute_capability": f"{props.major}.{props.minor}",
        "cuda": torch.version.cuda,
        "ptxas": ptxas,
        **env,
    }


def benchmark_record(
    group: str, script: str, params: dict, samples_ms: Sequence[float], extra: dict, tag: str | None = None
) -> dict:
    """One benchmark of pytest-benchmark's JSON (times in seconds, every sample kept): ``group`` is the
    history's kernel, ``params`` name the case (``tag``, default ``k=v,...``, is the name's suffix and,
    with the script, the case's identity in the history); ``extra`` numbers become the result's metrics."""
    data = sorted(float(x) * 1e-3 for x in samples_ms)
    if not data:
        raise ValueError(f"benchmark_record: expected at least one sample for {group}, got none")
    tag = ",".join(f"{k}={v}" for k, v in params.items()) if tag is None else tag
    return {
        "group": group,
        "name": f"{group}[{tag}]",
        "fullname": f"{script}::{group}[{tag}]",
        "params": params,
        "stats": {
            "min": data[0],
            "max": data[-1],
            "mean": statistics.fmean(data),
            "stddev": statistics.stdev(data) if len(data) > 1 else 0.0,
            "median": statistics.median(data),
            "rounds": len(data),
            "iterations": 1,
            "data": data,
        },
        "extra_info": {**params, **extra},
    }


def benchmark_document(env: dict, benchmarks: list[dict], script: str) -> dict:
    """A pytest-benchmark JSON document of ``benchmarks`` measured in ``env``."""
    return {
        "machine_info": env,
        "commit_info": {},
        "benchmarks": benchmarks,
        "datetime": datetime.datetime.now(datetime.UTC).isoformat(),
        "version": f"lowbit {script}",
    }
