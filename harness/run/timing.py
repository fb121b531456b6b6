"""Latency of one attention call: GPU timing that the regression checks can trust, and its statistics.

On a GPU each repeat is timed with CUDA events around the kernel alone, after a write to a buffer larger
than the L2 cache so every repeat starts cold (a warm L2 would flatter small shapes). After warm-up,
repeats come in rounds until the median moves by less than ``rel_tol`` from one round to the next (or a
time cap or repeat cap is hit); p20/p50/p80 and every raw sample are kept, since a regression check
compares distributions, not single numbers.

In the Triton CPU interpreter a "latency" is the interpreter's wall time. It is recorded with kind
``"cpu-interpreter"`` and must never be compared with ``"cuda"`` numbers.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

from harness.core.stats import percentile

KIND_CUDA = "cuda"
KIND_CPU = "cpu-interpreter"


def attention_flops(batch: int, heads_q: int, n_q: int, n_k: int, head_dim: int, causal: bool) -> int:
    """FLOPs of one attention forward: two matmuls (QK^T and PV), 2 FLOPs per multiply-add.

    Causal attention only computes the unmasked (query, key) pairs. Queries are aligned to the end of
    the keys (query i sees keys j <= i + n_k - n_q), so with n_q == n_k this is the lower triangle,
    and queries that see no key at all contribute nothing.
    """
    if causal:
        offset = n_k - n_q
        pairs = sum(min(max(i + offset + 1, 0), n_k) for i in range(n_q))
    else:
        pairs = n_q * n_k
    return 4 * batch * heads_q * pairs * head_dim


def tflops(flops: int, milliseconds: float) -> float | None:
    """Throughput in TFLOP/s for ``flops`` done in ``milliseconds``; None for a non-positive time."""
    if not milliseconds > 0:
        return None
    return flops / (milliseconds * 1e-3) / 1e12


def summarize(samples_ms: Sequence[float], *, kind: str, flops: int | None = None) -> dict:
    """Latency statistics of raw samples in milliseconds: the ``latency`` dict stored with a result.

    TFLOPS-equivalent is derived from the median and only reported for GPU timings: the interpreter's
    wall time says nothing about arithmetic throughput.
    """
    samples = [float(s) for s in samples_ms]
    if not samples:
        raise ValueError("summarize: expected at least one sample, got none")
    p50 = percentile(samples, 50)
    return {
        "kind": kind,
        "p20_ms": percentile(samples, 20),
        "p50_ms": p50,
        "p80_ms": percentile(samples, 80),
        "mean_ms": statistics.fmean(samples),
        "stddev_ms": statistics.pstdev(samples) if len(samples) > 1 else 0.0,
        "samples_ms": samples,
        "tflops": tflops(flops, p50) if (flops is not None and kind == KIND_CUDA) else None,
    }


def median_is_stable(samples: Sequence[float], round_size: int, rel_tol: float) -> bool:
    """True when adding the last ``round_size`` samples moved the median by at most ``rel_tol``."""
    if round_size <= 0 or len(samples) < 2 * round_size:
        return False
    before = statistics.median(samples[:-round_size])
    after = statistics.median(samples)
    if before == 0:
        return after == 0
    return abs(after - before) / abs(before) <= rel_tol


def adaptive_repeats(
    measure_once: Callable[[], float],
    *,
    min_repeats: int = 10,
    max_repeats: int = 200,
    round_size: int = 10,
    rel_tol: float = 0.01,
    time_cap_s: float = 2.0,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Call ``measure_once`` (returns one sample) in rounds until the median is stable or a cap is hit.

    Stops after a round once at least ``min_repeats`` samples exist and the median is stable, or when
    ``max_repeats`` samples exist, or when ``time_cap_s`` of wall time has been spent (always after at
    least one full round).
    """
    if min_repeats < 1 or max_repeats < min_repeats or round_size < 1:
        raise ValueError(
            "adaptive_repeats: expected 1 <= min_repeats <= max_repeats and round_size >= 1, got "
            f"min_repeats={min_repeats}, max_repeats={max_repeats}, round_size={round_size}"
        )
    samples: list[float] = []
    start = clock()
    while len(samples) < max_repeats:
        for _ in range(min(round_size, max_repeats - len(samples))):
            samples.append(measure_once())
        if len(samples) >= min_repeats and median_is_stable(samples, round_size, rel_tol):
            break
        if clock() - start >= time_cap_s:
            break
    return samples


class L2Flusher:
    """Evicts the GPU's L2 cache by writing a buffer twice its size, then keeps the GPU busy a moment.

    The busy wait (``torch.cuda._sleep``, ``pad_ms`` long) is queued after the flush and before the start
    event: while the GPU spins, the host enqueues the start event and the kernel's launches, so the
    sample measures the kernel on the GPU rather than Python launch overhead (which, for a 0.1 ms
    kernel, would otherwise dominate and hide real kernel regressions).
    """

    def __init__(self, device: str = "cuda", pad_ms: float = 1.0) -> None:
        import torch

        props = torch.cuda.get_device_properties(torch.device(device))
        l2_bytes = int(getattr(props, "L2_cache_size", 0)) or 64 * 1024 * 1024
        self.buffer = torch.empty(2 * l2_bytes // 4, dtype=torch.int32, device=device)
        self.pad_cycles = int(pad_ms * _sleep_cycles_per_ms()) if pad_ms > 0 else 0

    def flush(self) -> None:
        import torch

        self.buffer.zero_()
        if self.pad_cycles:
            torch.cuda._sleep(self.pad_cycles)


def _sleep_cycles_per_ms() -> float:
    """GPU clock cycles per millisecond of ``torch.cuda._sleep``, measured once with CUDA events."""
    import torch

    cycles = 2_000_000
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    torch.cuda._sleep(cycles)  # first call: module load
    start.record()
    torch.cuda._sleep(cycles)
    end.record()
    end.synchronize()
    return cycles / max(start.elapsed_time(end), 1e-3)


def time_cuda(
    fn: Callable[[], object],
    *,
    flops: int | None = None,
    warmup: int = 5,
    min_repeats: int = 10,
    max_repeats: int = 200,
    rel_tol: float = 0.01,
    time_cap_s: float = 1.0,
    flusher: L2Flusher | None = None,
) -> dict:
    """Time ``fn()`` (one kernel launch) on the current CUDA device; returns :func:`summarize`'s dict.

    Each sample: flush L2 (and pad, see :class:`L2Flusher`), record a start event, call ``fn``, record an
    end event, synchronize, read the elapsed time. Flush and pad come before the start event, so they are
    not part of the sample.
    """
    import torch

    flusher = flusher or L2Flusher()
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def measure_once() -> float:
        flusher.flush()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))

    samples = adaptive_repeats(
        measure_once,
        min_repeats=min_repeats,
        max_repeats=max_repeats,
        rel_tol=rel_tol,
        time_cap_s=time_cap_s,
    )
    return summarize(samples, kind=KIND_CUDA, flops=flops)


def cpu_interpreter_latency(samples_s: Sequence[float]) -> dict | None:
    """Latency record of kernel calls timed by wall clock in the CPU interpreter (seconds in)."""
    if not samples_s:
        return None
    return summarize([s * 1e3 for s in samples_s], kind=KIND_CPU)
