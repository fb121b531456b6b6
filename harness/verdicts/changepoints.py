"""Change points in one kernel x case series (one metric, one environment), with ``ruptures``' PELT.

Why ruptures and not apache-otava: otava's E-divisive with a t-test suits the job, but otava 0.8.0 is an
application (its own config, BigQuery/PostgreSQL/Slack connectors) that pins numpy 2.2 and scipy < 1.17,
which would clash with the numpy the Triton interpreter needs; ruptures is a small library on numpy
and scipy. PELT finds the exact optimal segmentation for a penalty, deterministically, in about linear
time. We choose the penalty from the noise of the series itself, and then keep only the steps that our
own rules call a change (the same thresholds as ``lowbit check``), so a change point in ``history`` and a
regression in ``check`` mean the same thing.

Series are segmented on the log of the values: errors and latencies are ratio-scale (a 10% step is a
10% step at any level). The penalty is BIC's for a mean shift in noise of scale sigma. For latency, sigma
is estimated robustly from first differences (MAD, so the steps themselves do not inflate it); errors of a
deterministic kernel on a fixed case have no noise at all, so their sigma is only the floor every series
gets: a third of the threshold (log scale).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from harness.store import Store
from harness.store import history as hist
from harness.verdicts.rules import PRECISION_FLOORS, Thresholds

METHOD = "ruptures-pelt-l2-log"
LATENCY_METRICS = ("p20_ms", "p50_ms", "p80_ms", "tflops")
# Smallest value taken for the log of an error (an exact 0 error would otherwise be -inf).
_TINY = 1e-12


@dataclass(frozen=True)
class ChangePoint:
    """The series stepped between ``previous_commit`` and ``commit`` (first run at the new level)."""

    index: int  # position in the series of the first point at the new level
    run_id: int
    commit: str
    previous_commit: str | None
    before: float  # median of the segment before
    after: float  # median of the segment after
    ratio: float | None  # after / before
    direction: str  # "up" | "down"
    method: str = METHOD

    def as_dict(self) -> dict:
        return asdict(self)


def _threshold(metric: str, thresholds: Thresholds) -> float:
    return thresholds.latency if metric in LATENCY_METRICS else thresholds.precision


def _transform(values: Sequence[float], metric: str) -> list[float]:
    if metric == hist.FAILURES:
        return [float(v > 0) for v in values]
    return [math.log(max(v, _TINY)) if math.isfinite(v) else math.log(1e300) for v in values]


def _is_step(before: float, after: float, metric: str, thresholds: Thresholds) -> bool:
    if metric == hist.FAILURES:
        return (before > 0) != (after > 0)
    lo, hi = min(before, after), max(before, after)
    if math.isinf(hi):
        return not math.isinf(lo)
    relative = hi > lo * (1 + _threshold(metric, thresholds)) if lo > 0 else hi > 0
    return relative and hi - lo > PRECISION_FLOORS.get(metric, 0.0)


def detect(values: Sequence[float], metric: str, thresholds: Thresholds | None = None) -> list[int]:
    """Indexes where a new level starts in ``values`` (each > 0 and < len(values))."""
    import numpy as np
    import ruptures

    thresholds = thresholds or Thresholds()
    n = len(values)
    if n < 2:
        return []
    signal = np.asarray(_transform(values, metric), dtype=float).reshape(-1, 1)
    floor = 0.25 if metric == hist.FAILURES else math.log1p(_threshold(metric, thresholds)) / 3
    sigma = floor
    if metric in LATENCY_METRICS:
        # Timings are noisy: estimate the noise from first differences (MAD, so steps do not inflate it).
        # Errors are exact numbers on a fixed case: their only "noise" is the threshold's floor.
        diffs = np.diff(signal[:, 0])
        mad = float(np.median(np.abs(diffs - np.median(diffs))))
        sigma = max(mad / (0.6745 * math.sqrt(2)), floor)
    # BIC-style penalty for a mean shift in Gaussian noise of scale sigma.
    penalty = 2 * sigma**2 * math.log(max(n, 2))
    breaks = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(signal).predict(pen=penalty)
    cuts = [b for b in breaks if 0 < b < n]
    # Keep only steps our rule calls a change; merging a rejected cut joins its two segments.
    kept: list[int] = []
    bounds = [0, *cuts, n]
    i = 1
    while i < len(bounds) - 1:
        start = kept[-1] if kept else 0
        before = statistics.median(values[start : bounds[i]])
        after = statistics.median(values[bounds[i] : bounds[i + 1]])
        if _is_step(before, after, metric, thresholds):
            kept.append(bounds[i])
        i += 1
    return kept


def change_points_of(
    points: Sequence[dict], metric: str, thresholds: Thresholds | None = None
) -> list[ChangePoint]:
    """Change points of a series (``points`` as :func:`harness.store.history.series` returns them)."""
    values = [p["value"] for p in points]
    cuts = detect(values, metric, thresholds)
    bounds = [0, *cuts, len(values)]
    out = []
    for j, cut in enumerate(cuts):
        before = statistics.median(values[bounds[j] : cut])
        after = statistics.median(values[cut : bounds[j + 2]])
        ratio = after / before if before not in (0, 0.0) and math.isfinite(before) else None
        out.append(
            ChangePoint(
                index=cut,
                run_id=points[cut]["run_id"],
                commit=points[cut]["commit"],
                previous_commit=points[cut - 1]["commit"],
                before=before,
                after=after,
                ratio=ratio,
                direction="up" if after > before else "down",
            )
        )
    return out


def series(
    store: Store, kernel: str, case_id: str, metric: str, *, environment_id: int | None = None
) -> dict[int, list[dict]]:
    """The series of ``metric`` for ``kernel`` on ``case_id``, one per environment (finished runs only)."""
    out: dict[int, list[dict]] = {}
    for p in hist.series(store, kernel, case_id, metric, environment_id=environment_id):
        out.setdefault(p["environment_id"], []).append(p)
    return out


def change_points(
    store: Store,
    kernel: str,
    case_id: str,
    metric: str,
    *,
    environment_id: int | None = None,
    thresholds: Thresholds | None = None,
    save: bool = True,
) -> dict[int, list[ChangePoint]]:
    """Detect the change points of every environment's series of ``metric`` for ``kernel`` x ``case_id``;
    with ``save``, store them (replacing what was stored for those series) so the dashboard can mark them.
    """
    out: dict[int, list[ChangePoint]] = {}
    for env_id, points in series(store, kernel, case_id, metric, environment_id=environment_id).items():
        found = change_points_of(points, metric, thresholds)
        out[env_id] = found
        if save:
            hist.replace_change_points(store, kernel, case_id, metric, env_id, [c.as_dict() for c in found])
    return out


def stored_change_points(
    store: Store,
    *,
    kernel: str | None = None,
    case_id: str | None = None,
    metric: str | None = None,
    environment_id: int | None = None,
) -> list[dict]:
    """Change points stored by earlier detections (what the dashboard marks), in run order."""
    return hist.stored_change_points(
        store, kernel=kernel, case_id=case_id, metric=metric, environment_id=environment_id
    )
