"""Verdicts over recorded history: what regressed between two commits, change points, bisect hints.

Reads the store only; imports no kernels, torch or triton, so a machine that only judges history needs no
GPU stack. The public API (stable; additions only):

- :func:`compare` (store, commit, baseline="auto", thresholds=Thresholds(), kernels=None)
  -> :class:`Comparison`, with one :class:`Entry` per kernel x case. ``Entry.kind`` is one of
  :data:`KINDS`: "new-failure", "trade", "precision", "latency", "fixed", "still-failing",
  "improvement", "missing", "new-case", "unchanged". ``Comparison.status`` is "clean", "regressed"
  or "not-comparable", and ``Comparison.exit_code`` 0, 1 or 3.
- :func:`pick_baseline` and :func:`measurements`: which runs measure a commit (all shards) and which
  ancestor it is judged against, and why.
- :func:`series` (store, kernel, case_id, metric) -> {environment_id: [points]}; :func:`change_points`
  detects (and stores) change points per environment; :func:`stored_change_points` reads stored ones;
  :func:`change_points_of` works on points already loaded.
- :func:`bisect`: the first recorded commit at the new level, and the ``git bisect start`` line.
- :func:`latency_rule`, :func:`precision_rule`, :class:`Thresholds`: the rules themselves.
- :func:`to_markdown`, :func:`to_junit`, :func:`to_json`: reports.
"""

from harness.verdicts.baseline import Baseline, Measurement, VerdictError, measurements, pick_baseline
from harness.verdicts.bisect import BisectResult, bisect
from harness.verdicts.changepoints import (
    ChangePoint,
    change_points,
    change_points_of,
    detect,
    series,
    stored_change_points,
)
from harness.verdicts.compare import (
    EXIT_CLEAN,
    EXIT_NOT_COMPARABLE,
    EXIT_REGRESSION,
    EXIT_USAGE,
    KINDS,
    REGRESSION_KINDS,
    Comparison,
    Entry,
    compare,
    repro_command,
)
from harness.verdicts.report import COMMENT_MARKER, RENDERERS, to_json, to_junit, to_markdown
from harness.verdicts.rules import (
    DEFAULT_LATENCY_THRESHOLD,
    DEFAULT_P_VALUE,
    DEFAULT_PRECISION_THRESHOLD,
    LatencyVerdict,
    PrecisionVerdict,
    Thresholds,
    latency_rule,
    precision_rule,
)

__all__ = [
    "COMMENT_MARKER",
    "DEFAULT_LATENCY_THRESHOLD",
    "DEFAULT_PRECISION_THRESHOLD",
    "DEFAULT_P_VALUE",
    "EXIT_CLEAN",
    "EXIT_NOT_COMPARABLE",
    "EXIT_REGRESSION",
    "EXIT_USAGE",
    "KINDS",
    "REGRESSION_KINDS",
    "RENDERERS",
    "Baseline",
    "BisectResult",
    "ChangePoint",
    "Comparison",
    "Entry",
    "LatencyVerdict",
    "Measurement",
    "PrecisionVerdict",
    "Thresholds",
    "VerdictError",
    "bisect",
    "change_points",
    "change_points_of",
    "compare",
    "detect",
    "latency_rule",
    "measurements",
    "pick_baseline",
    "precision_rule",
    "repro_command",
    "series",
    "stored_change_points",
    "to_json",
    "to_junit",
    "to_markdown",
]
