"""The two decision rules: latency (rank test and threshold) and precision (threshold with a floor).

Latency is noisy: a GPU's clocks, its neighbours and the timer scatter repeated timings of one kernel on
one case by a few percent, and runs on different days move by a percent or two as a whole. A regression is
therefore called only when both hold, as asv does: the Mann-Whitney U rank test says the two samples differ
(two-sided p below ``p_value``, asv's default 0.002), AND the median moved by more than ``threshold``
(default 5%). The test alone would flag a 1% day-to-day drift once samples are many; the threshold alone
would flag noise when samples are few. Rank tests need no normality and shrug off the long right tail
of GPU timings (a preempted launch, a clock ramp).

Precision needs no statistics: the kernel is deterministic and a case fixes its inputs (the case id
includes the seed), so an error is an exact number, equal on every re-run of the same build. Any change
is real; the rule only decides which changes matter: the error grew by more than ``threshold`` relative
to the baseline AND by more than an absolute floor (an error of 1e-8 tripling is still nothing).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

DEFAULT_P_VALUE = 0.002  # asv's default for `asv continuous` / `asv compare`
DEFAULT_LATENCY_THRESHOLD = 0.05
DEFAULT_PRECISION_THRESHOLD = 0.10
# Absolute floors per error metric: changes smaller than these never count, whatever the ratio. fp16's
# own rounding is ~5e-4 relative; 1e-5 is well below any budget lowbit checks.
PRECISION_FLOORS = {"rel_l2": 1e-5, "max_abs": 1e-4}
# Timings that are comparable at all: GPU events and pytest-benchmark. Interpreter timings measure
# the Triton interpreter, not the kernel, and are never judged.
COMPARABLE_LATENCY_KINDS = ("cuda", "bench")


@dataclass(frozen=True)
class Thresholds:
    """What counts as a change. Fractions, not percent (0.05 = 5%)."""

    latency: float = DEFAULT_LATENCY_THRESHOLD
    precision: float = DEFAULT_PRECISION_THRESHOLD
    p_value: float = DEFAULT_P_VALUE

    def __post_init__(self) -> None:
        for name in ("latency", "precision"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} threshold: expected a fraction >= 0, got {value!r}")
        if not (0 < self.p_value < 1):
            raise ValueError(f"p-value: expected a number in (0, 1), got {self.p_value!r}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LatencyVerdict:
    """Latency now vs baseline on one case. ``direction``: "slower", "faster", "same" or "not-compared"."""

    direction: str
    base_median_ms: float | None
    now_median_ms: float | None
    ratio: float | None  # now / base medians
    p_value: float | None
    n_base: int
    n_now: int
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PrecisionVerdict:
    """Error now vs baseline on one case (the worst of its error metrics). ``direction``: "worse",
    "better", "same" or "not-compared"."""

    direction: str
    metric: str | None
    base: float | None
    now: float | None
    ratio: float | None  # now / base
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _finite(values: Sequence[float] | None) -> list[float]:
    return [float(v) for v in (values or []) if v is not None and math.isfinite(float(v))]


def min_samples_for(p_value: float) -> int:
    """Smallest n (equal sizes) at which a two-sided Mann-Whitney U test can reach ``p_value`` at all:
    the exact p of total separation is 2 / C(2n, n)."""
    n = 2
    while 2 / math.comb(2 * n, n) >= p_value:
        n += 1
    return n


def latency_rule(base: Sequence[float], now: Sequence[float], thresholds: Thresholds) -> LatencyVerdict:
    """asv's rule on two samples of one case's timings (ms): slower/faster only if the Mann-Whitney U
    test is significant at ``thresholds.p_value`` AND the medians differ by more than the threshold."""
    from scipy.stats import mannwhitneyu

    b, n = _finite(base), _finite(now)
    need = min_samples_for(thresholds.p_value)
    if len(b) < need or len(n) < need:
        return LatencyVerdict(
            "not-compared",
            statistics.median(b) if b else None,
            statistics.median(n) if n else None,
            None,
            None,
            len(b),
            len(n),
            f"needs at least {need} timing samples on each side to reach p < {thresholds.p_value:g} "
            f"(baseline {len(b)}, now {len(n)})",
        )
    mb, mn = statistics.median(b), statistics.median(n)
    ratio = mn / mb if mb > 0 else math.inf
    # Exact p-values for small samples without ties, the normal approximation with tie correction
    # otherwise (GPU timers quantize, so ties happen).
    p = float(mannwhitneyu(n, b, alternative="two-sided", method="auto").pvalue)
    significant = p < thresholds.p_value
    if significant and ratio > 1 + thresholds.latency:
        direction = "slower"
    elif significant and ratio < 1 / (1 + thresholds.latency):
        direction = "faster"
    else:
        direction = "same"
    return LatencyVerdict(direction, mb, mn, ratio, p, len(b), len(n))


def precision_rule(
    base: dict[str, float | None], now: dict[str, float | None], thresholds: Thresholds
) -> PrecisionVerdict:
    """Compare error metrics (``rel_l2``, ``max_abs``) of one case: worse if any metric grew by more than
    the relative threshold and its absolute floor; better if one shrank by as much and none grew."""
    worse: list[tuple[float, str, float, float]] = []
    better: list[tuple[float, str, float, float]] = []
    compared = None
    for metric, floor in PRECISION_FLOORS.items():
        b, n = base.get(metric), now.get(metric)
        if b is None or n is None or math.isnan(b) or math.isnan(n):
            continue
        ratio = n / b if b > 0 else (math.inf if n > 0 else 1.0)
        compared = compared or (metric, b, n, ratio)
        if n > b * (1 + thresholds.precision) and n - b > floor:
            worse.append((ratio, metric, b, n))
        elif b > n * (1 + thresholds.precision) and b - n > floor:
            better.append((-ratio, metric, b, n))
    if compared is None:
        return PrecisionVerdict("not-compared", None, None, None, None, "no error measured on both sides")
    if worse:
        ratio, metric, b, n = max(worse)
        return PrecisionVerdict("worse", metric, b, n, ratio)
    if better:
        _, metric, b, n = max(better)
        return PrecisionVerdict("better", metric, b, n, n / b)
    metric, b, n, ratio = compared
    return PrecisionVerdict("same", metric, b, n, ratio)
