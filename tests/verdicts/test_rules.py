"""The decision rules on their own: the latency rule's false-alarm rate and power under GPU-like noise,
and the precision rule's threshold and floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.verdicts import Thresholds, latency_rule, precision_rule
from harness.verdicts.rules import min_samples_for

RULE = Thresholds()  # 5%, p < 0.002


def gpu_like(rng: np.random.Generator, n: int, median_ms: float) -> list[float]:
    """Timings as CUDA events give them: ~2% log-normal jitter, a run-wide offset of up to ~1% (clocks,
    neighbours: the same on every sample of one run), and 5% of samples hit by a 0-30% stall."""
    run_offset = math.exp(rng.normal(0, 0.005))
    base = median_ms * run_offset * np.exp(rng.normal(0, 0.02, n))
    stalls = rng.random(n) < 0.05
    base[stalls] *= 1 + rng.uniform(0, 0.3, stalls.sum())
    return base.tolist()


def test_aa_false_alarm_rate_is_below_one_percent():
    """1,000 A/A comparisons (both sides drawn from one distribution): almost never a verdict."""
    rng = np.random.default_rng(20261123)
    trials, flagged = 1000, 0
    for _ in range(trials):
        n = int(rng.integers(10, 60))
        v = latency_rule(gpu_like(rng, n, 1.0), gpu_like(rng, n, 1.0), RULE)
        flagged += v.direction != "same"
    assert flagged / trials < 0.01


def test_ten_percent_slowdown_is_flagged():
    rng = np.random.default_rng(7)
    trials, flagged = 300, 0
    for _ in range(trials):
        v = latency_rule(gpu_like(rng, 30, 1.0), gpu_like(rng, 30, 1.10), RULE)
        flagged += v.direction == "slower"
        assert v.direction != "faster"
    assert flagged / trials >= 0.99


def test_slowdown_below_the_threshold_is_not_flagged_even_when_significant():
    rng = np.random.default_rng(3)
    v = latency_rule(gpu_like(rng, 200, 1.0), gpu_like(rng, 200, 1.03), RULE)
    assert v.p_value is not None and v.p_value < RULE.p_value  # the rank test alone would flag 3%
    assert v.direction == "same"


def test_speedup_is_faster_and_ratio_is_of_medians():
    base = [1.0 + 0.001 * i for i in range(20)]
    now = [0.8 + 0.001 * i for i in range(20)]
    v = latency_rule(base, now, RULE)
    assert v.direction == "faster"
    assert v.ratio == pytest.approx((0.8 + 0.0095) / (1.0 + 0.0095))
    assert (v.n_base, v.n_now) == (20, 20)


def test_too_few_samples_are_not_compared_and_say_why():
    assert min_samples_for(0.002) == 7  # exact two-sided p of total separation: 2/C(14,7) < 0.002
    v = latency_rule([1.0] * 6, [2.0] * 6, RULE)
    assert v.direction == "not-compared" and "at least 7" in v.reason
    # Non-finite samples are dropped, not compared.
    v = latency_rule([1.0, math.nan] * 6, [2.0] * 7, RULE)
    assert v.direction == "not-compared" and (v.n_base, v.n_now) == (6, 7)


def test_precision_rule_threshold_and_floor():
    t = Thresholds(precision=0.10)
    assert precision_rule({"rel_l2": 1e-3}, {"rel_l2": 1.2e-3}, t).direction == "worse"
    assert precision_rule({"rel_l2": 1e-3}, {"rel_l2": 1.05e-3}, t).direction == "same"
    # Tripling a negligible error stays below the absolute floor.
    assert precision_rule({"rel_l2": 1e-8}, {"rel_l2": 3e-8}, t).direction == "same"
    assert precision_rule({"rel_l2": 2e-3}, {"rel_l2": 1e-3}, t).direction == "better"
    # max_abs worse, rel_l2 better: worse wins (a regression is never hidden by an improvement).
    v = precision_rule({"rel_l2": 2e-3, "max_abs": 1e-2}, {"rel_l2": 1e-3, "max_abs": 5e-2}, t)
    assert (v.direction, v.metric) == ("worse", "max_abs") and v.ratio == pytest.approx(5)
    # A NaN output was recorded as inf: worse than anything.
    assert precision_rule({"rel_l2": 1e-3}, {"rel_l2": math.inf}, t).direction == "worse"
    assert precision_rule({"rel_l2": None}, {"rel_l2": 1e-3}, t).direction == "not-compared"


@pytest.mark.parametrize(
    "kwargs", [{"latency": -0.1}, {"precision": math.nan}, {"p_value": 0}, {"p_value": 1.5}]
)
def test_thresholds_refuse_nonsense(kwargs):
    with pytest.raises(ValueError):
        Thresholds(**kwargs)
