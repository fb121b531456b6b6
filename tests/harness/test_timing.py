"""Latency statistics, adaptive repeats and FLOP accounting; the CUDA timer itself runs on a GPU only."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest

from harness.run import timing


def test_percentile_interpolates_between_ranks():
    samples = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert timing.percentile(samples, 0) == 1.0
    assert timing.percentile(samples, 50) == 3.0
    assert timing.percentile(samples, 100) == 5.0
    assert timing.percentile(samples, 20) == pytest.approx(1.8)
    assert timing.percentile(samples, 80) == pytest.approx(4.2)
    assert timing.percentile([7.0], 20) == 7.0
    with pytest.raises(ValueError, match="at least one sample"):
        timing.percentile([], 50)
    with pytest.raises(ValueError, match=r"q in \[0, 100\]"):
        timing.percentile(samples, 101)


def test_summarize_keeps_samples_and_orders_percentiles():
    rng = random.Random(3)
    samples = [1.0 + rng.random() for _ in range(57)]
    s = timing.summarize(samples, kind=timing.KIND_CUDA, flops=2 * 10**12)
    assert s["samples_ms"] == samples
    assert s["p20_ms"] <= s["p50_ms"] <= s["p80_ms"]
    assert s["p50_ms"] == pytest.approx(statistics.median(samples))
    assert s["mean_ms"] == pytest.approx(statistics.fmean(samples))
    assert s["stddev_ms"] == pytest.approx(statistics.pstdev(samples))
    # 2 TFLOP in p50 milliseconds.
    assert s["tflops"] == pytest.approx(2.0 / (s["p50_ms"] * 1e-3))


def test_interpreter_latency_has_no_throughput():
    s = timing.cpu_interpreter_latency([0.1, 0.2, 0.3])
    assert s["kind"] == "cpu-interpreter"
    assert s["p50_ms"] == pytest.approx(200.0)
    assert s["tflops"] is None
    assert timing.cpu_interpreter_latency([]) is None


def test_attention_flops_counts_unmasked_pairs():
    full = timing.attention_flops(2, 3, 8, 8, 16, causal=False)
    assert full == 4 * 2 * 3 * 8 * 8 * 16
    # Square causal: the lower triangle including the diagonal, n(n+1)/2 pairs.
    assert timing.attention_flops(2, 3, 8, 8, 16, causal=True) == 4 * 2 * 3 * 36 * 16
    # Bottom-right alignment: one query over 10 keys sees all of them.
    assert timing.attention_flops(1, 1, 1, 10, 4, causal=True) == 4 * 10 * 4
    # More queries than keys: the first nq - nk queries see nothing.
    assert timing.attention_flops(1, 1, 5, 2, 4, causal=True) == 4 * (1 + 2) * 4
    assert timing.tflops(10**12, 1000.0) == pytest.approx(1.0)
    assert timing.tflops(10**12, 0.0) is None


def test_adaptive_repeats_stop_when_median_is_stable():
    calls = itertools.count()
    samples = timing.adaptive_repeats(lambda: 1.0 + 0 * next(calls), min_repeats=10, round_size=5)
    assert len(samples) == 10  # two rounds: the second left the median where it was


def test_adaptive_repeats_continue_while_median_drifts_until_cap():
    # A steadily slowing kernel never settles: stops at max_repeats.
    values = itertools.count(1)
    samples = timing.adaptive_repeats(
        lambda: float(next(values)), min_repeats=5, max_repeats=40, round_size=5, rel_tol=0.01, time_cap_s=1e9
    )
    assert len(samples) == 40


def test_adaptive_repeats_respect_time_cap():
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731 -- one second per clock read
    values = itertools.count(1)
    samples = timing.adaptive_repeats(
        lambda: float(next(values)), min_repeats=5, max_repeats=1000, round_size=5, time_cap_s=3, clock=clock
    )
    assert 5 <= len(samples) < 1000
    assert len(samples) % 5 == 0


def test_adaptive_repeats_reject_bad_limits():
    with pytest.raises(ValueError, match="min_repeats"):
        timing.adaptive_repeats(lambda: 1.0, min_repeats=10, max_repeats=5)


def test_median_is_stable_needs_two_rounds():
    assert not timing.median_is_stable([1.0] * 9, 5, 0.01)
    assert timing.median_is_stable([1.0] * 10, 5, 0.01)
    assert not timing.median_is_stable([1.0] * 5 + [2.0] * 5, 5, 0.01)


@pytest.mark.gpu
def test_cuda_timing_of_a_matmul():
    import torch

    a = torch.randn(2048, 2048, device="cuda", dtype=torch.float16)
    flops = 2 * 2048**3
    s = timing.time_cuda(lambda: a @ a, flops=flops, time_cap_s=1.0)
    assert s["kind"] == "cuda"
    assert len(s["samples_ms"]) >= 10
    assert 0 < s["p20_ms"] <= s["p50_ms"] <= s["p80_ms"]
    # An H100 or H200 does a 2048^3 fp16 matmul at tens to hundreds of TFLOP/s.
    assert 5 < s["tflops"] < 2000
    flusher = timing.L2Flusher()
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    assert flusher.buffer.numel() * 4 >= 2 * l2


@pytest.mark.gpu
def test_cuda_timing_excludes_host_launch_overhead():
    import time

    import torch

    x = torch.ones(1024, device="cuda")

    def slow_launch():
        time.sleep(0.0003)  # 0.3 ms of host work before a ~microsecond kernel
        return x.add_(1)

    s = timing.time_cuda(slow_launch, time_cap_s=0.5)
    # The pad keeps the GPU busy while the host launches: the sample is the kernel, not the host's sleep.
    assert s["p50_ms"] < 0.2
    unpadded = timing.time_cuda(slow_launch, time_cap_s=0.5, flusher=timing.L2Flusher(pad_ms=0))
    assert unpadded["p50_ms"] > 0.25
