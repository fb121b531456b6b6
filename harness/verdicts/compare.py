"""Judge one commit against a baseline, per kernel x case: correctness, precision, latency, trades.

Entry kinds (``Entry.kind``), most urgent first:

- ``new-failure``: a property fails now on a case that passed at the baseline, or on a case the baseline
  never measured (a new fuzz case, a new counterexample). Regression.
- ``trade``: one of precision and latency got worse while the other got better. Regression: something got
  worse beyond its threshold; the report says what was bought with it.
- ``precision``: the error grew beyond the rule of :func:`harness.verdicts.rules.precision_rule`. Regression.
- ``latency``: slower by asv's rule (:func:`harness.verdicts.rules.latency_rule`). Regression.
- ``fixed``: failed at the baseline, passes now.
- ``still-failing``: fails at both (known; not a regression).
- ``improvement``: more precise or faster, nothing worse.
- ``missing``: measured at the baseline, not now (a case dropped from the corpus, a crashed worker).
- ``new-case``: passes now, never measured at the baseline.
- ``unchanged``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.store import Store
from harness.store import history as hist
from harness.store.rows import FAILING_STATUSES
from harness.verdicts.baseline import Baseline, Measurement, VerdictError, measurements, pick_baseline
from harness.verdicts.rules import (
    COMPARABLE_LATENCY_KINDS,
    LatencyVerdict,
    PrecisionVerdict,
    Thresholds,
    latency_rule,
    precision_rule,
)

KINDS = (
    "new-failure",
    "trade",
    "precision",
    "latency",
    "fixed",
    "still-failing",
    "improvement",
    "missing",
    "new-case",
    "unchanged",
)
REGRESSION_KINDS = ("new-failure", "trade", "precision", "latency")

EXIT_CLEAN = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_NOT_COMPARABLE = 3


@dataclass
class CaseMeasure:
    """One kernel x case as measured by one commit's runs (several results are folded: worst wins)."""

    kernel: str
    case_id: str
    params: dict
    family: str
    shape_class: str
    failing: bool
    status: str
    failed_property: str | None
    message: str
    rel_l2: float | None
    max_abs: float | None
    latency_kind: str | None
    samples_ms: list[float]


@dataclass
class Entry:
    """The verdict on one kernel x case."""

    kernel: str
    case_id: str
    kind: str
    family: str
    shape_class: str
    params: dict
    status_now: str | None
    status_base: str | None
    failed_property: str | None = None
    message: str = ""
    precision: PrecisionVerdict | None = None
    latency: LatencyVerdict | None = None
    repro: str | None = None

    @property
    def regression(self) -> bool:
        return self.kind in REGRESSION_KINDS

    def as_dict(self) -> dict:
        out = asdict(self)
        out["regression"] = self.regression
        return out


@dataclass
class Comparison:
    """Everything ``lowbit check`` decides about one commit."""

    commit: str
    environment: dict
    measurement: Measurement | None
    baseline: Baseline
    thresholds: Thresholds
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # why (part of) the comparison could not be made
    latency_compared: bool = False
    precision_compared: bool = False

    def of_kind(self, *kinds: str) -> list[Entry]:
        return [e for e in self.entries if e.kind in kinds]

    @property
    def counts(self) -> dict[str, int]:
        return {k: sum(e.kind == k for e in self.entries) for k in KINDS}

    @property
    def regressions(self) -> list[Entry]:
        return [e for e in self.entries if e.regression]

    @property
    def compared(self) -> int:
        """Cases measured on both sides."""
        return sum(e.status_base is not None and e.status_now is not None for e in self.entries)

    @property
    def status(self) -> str:
        """ "regressed", "not-comparable" or "clean" (see :attr:`exit_code`)."""
        if self.regressions:
            return "regressed"
        if self.measurement is None or not self.measurement.complete or self.baseline.measurement is None:
            return "not-comparable"
        if self.baseline.environment_changes or self.compared == 0:
            return "not-comparable"
        return "clean"

    @property
    def exit_code(self) -> int:
        """0 clean, 1 a regression or new failure, 3 nothing comparable measured (no baseline, another
        environment, no overlapping cases, missing shards): never "clean" nor "regressed" by default."""
        return {"regressed": EXIT_REGRESSION, "clean": EXIT_CLEAN}.get(self.status, EXIT_NOT_COMPARABLE)

    def as_dict(self) -> dict:
        return {
            "commit": self.commit,
            "status": self.status,
            "exit_code": self.exit_code,
            "environment": self.environment,
            "measurement": self.measurement.as_dict() if self.measurement else None,
            "baseline": self.baseline.as_dict(),
            "thresholds": self.thresholds.as_dict(),
            "latency_compared": self.latency_compared,
            "precision_compared": self.precision_compared,
            "problems": list(self.problems),
            "counts": self.counts,
            "compared": self.compared,
            "entries": [e.as_dict() for e in self.entries],
        }


def repro_command(kernel: str, params: dict) -> str:
    """The line that re-runs exactly this case (``lowbit fuzz --case``)."""
    case = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return f"lowbit fuzz --kernel {kernel} --case '{case}'"


def _worst(a: float | None, b: float | None) -> float | None:
    # NULL (not measured) never hides a measured number; inf (a NaN output) is the worst of all.
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def fold(rows: Sequence[dict]) -> dict[tuple[str, str], CaseMeasure]:
    """Per (kernel, case): failing if any result failed; the largest errors; every timing sample."""
    out: dict[tuple[str, str], CaseMeasure] = {}
    for r in rows:
        key = (r["kernel"], r["case_id"])
        failing = r["status"] in FAILING_STATUSES
        samples = [float(s) for s in r["samples_ms"] if s is not None and math.isfinite(float(s))]
        m = out.get(key)
        if m is None:
            out[key] = CaseMeasure(
                kernel=r["kernel"],
                case_id=r["case_id"],
                params=r["params"] or {},
                family=r["family"],
                shape_class=r["shape_class"],
                failing=failing,
                status=r["status"],
                failed_property=r["failed_property"],
                message=r["message"] or "",
                rel_l2=r["rel_l2"],
                max_abs=r["max_abs"],
                latency_kind=r["latency_kind"],
                samples_ms=samples,
            )
            continue
        if failing and not m.failing:
            m.failing, m.status, m.failed_property, m.message = (
                True,
                r["status"],
                r["failed_property"],
                r["message"],
            )
        m.rel_l2 = _worst(m.rel_l2, r["rel_l2"])
        m.max_abs = _worst(m.max_abs, r["max_abs"])
        if r["latency_kind"] == m.latency_kind:
            m.samples_ms.extend(samples)
    return out


def _judge(
    now: CaseMeasure | None,
    base: CaseMeasure | None,
    thresholds: Thresholds,
    *,
    precision: bool,
    latency: bool,
) -> Entry:
    ref = now or base
    assert ref is not None
    entry = Entry(
        kernel=ref.kernel,
        case_id=ref.case_id,
        kind="unchanged",
        family=ref.family,
        shape_class=ref.shape_class,
        params=ref.params,
        status_now=now.status if now else None,
        status_base=base.status if base else None,
    )
    if now is None:
        entry.kind = "missing"
        return entry
    entry.failed_property, entry.message = now.failed_property, now.message
    if now.failing:
        entry.repro = repro_command(now.kernel, now.params)
        entry.kind = "still-failing" if base is not None and base.failing else "new-failure"
        return entry
    if base is None:
        entry.kind = "new-case"
        return entry
    if base.failing:
        entry.kind = "fixed"
        entry.failed_property, entry.message = base.failed_property, base.message
        return entry
    if precision:
        entry.precision = precision_rule(
            {"rel_l2": base.rel_l2, "max_abs": base.max_abs},
            {"rel_l2": now.rel_l2, "max_abs": now.max_abs},
            thresholds,
        )
    if latency:
        if (
            now.latency_kind == base.latency_kind
            and now.latency_kind in COMPARABLE_LATENCY_KINDS
            and now.samples_ms
            and base.samples_ms
        ):
            entry.latency = latency_rule(base.samples_ms, now.samples_ms, thresholds)
        elif now.latency_kind or base.latency_kind:
            kinds = f"{base.latency_kind or 'none'} -> {now.latency_kind or 'none'}"
            why = (
                "interpreter timings are never judged"
                if "cpu-interpreter" in (now.latency_kind, base.latency_kind)
                else f"timings not comparable ({kinds}, or no raw samples)"
            )
            entry.latency = LatencyVerdict("not-compared", None, None, None, None, 0, 0, why)
    worse_p = entry.precision is not None and entry.precision.direction == "worse"
    better_p = entry.precision is not None and entry.precision.direction == "better"
    slower = entry.latency is not None and entry.latency.direction == "slower"
    faster = entry.latency is not None and entry.latency.direction == "faster"
    if (worse_p and faster) or (slower and better_p):
        entry.kind = "trade"
    elif worse_p:
        entry.kind = "precision"
    elif slower:
        entry.kind = "latency"
    elif better_p or faster:
        entry.kind = "improvement"
    if entry.kind in ("trade", "precision"):
        entry.repro = repro_command(now.kernel, now.params)
    return entry


def _sort_key(e: Entry) -> tuple:
    severity = 0.0
    if e.precision is not None and e.precision.ratio is not None:
        severity = max(severity, e.precision.ratio)
    if e.latency is not None and e.latency.ratio is not None:
        severity = max(severity, e.latency.ratio)
    return (KINDS.index(e.kind), -severity, e.kernel, e.case_id)


def compare(
    store: Store,
    commit: str,
    baseline: str = "auto",
    *,
    thresholds: Thresholds | None = None,
    kernels: Sequence[str] | None = None,
    cwd: Path | None = None,
    environment_id: int | None = None,
) -> Comparison:
    """Judge ``commit`` (full SHA or unique prefix) against ``baseline`` (a commit or ``"auto"``).

    Uses the newest measurement of ``commit`` (all its shards); a commit never measured gives a
    "not-comparable" Comparison without entries (exit 3), an ambiguous prefix raises VerdictError.
    Correctness is judged against any baseline; precision and latency only against a baseline measured in
    the same environment (otherwise the changed fingerprint fields are named as the likely cause).
    Latency only on GPU-class timings with raw samples on both sides. A commit measured in several
    environments is judged in ``environment_id`` (default: the one measured last); the others are named.
    """
    thresholds = thresholds or Thresholds()
    runs = hist.measured_runs(store)
    found = measurements(runs, commit)
    if not found:
        # Nothing measured is not a usage error: the run may have died before it recorded anything.
        why = f"no run of commit {commit} in the database"
        return Comparison(commit, {}, None, Baseline(None, why), thresholds, problems=[why])
    full = {m.commit for m in found}
    if len(full) > 1:
        raise VerdictError(f"commit {commit} is ambiguous: {', '.join(sorted(c[:12] for c in full))}")
    if environment_id is not None:
        chosen = [m for m in found if m.environment_id == environment_id]
        if not chosen:
            measured = ", ".join(str(m.environment_id) for m in found)
            raise VerdictError(
                f"commit {commit} was not measured in environment {environment_id} (measured in: {measured})"
            )
        found = chosen + [m for m in found if m.environment_id != environment_id]
    current = found[0]
    env = hist.environments(store, [current.environment_id]).get(current.environment_id, {})
    base = pick_baseline(store, current, baseline, cwd=cwd, runs=runs)
    comparison = Comparison(current.commit, env, current, base, thresholds)
    comparison.problems.extend(
        f"shard {s} of {current.commit[:12]} has no run" for s in current.missing_shards
    )
    comparison.problems.extend(current.unfinished)
    others = sorted(m.environment_id for m in found[1:])
    if others:
        comparison.problems.append(
            f"{current.commit[:12]} was also measured in environment(s) {', '.join(map(str, others))}; this "
            f"report judges environment {current.environment_id} (choose with --environment)"
        )
    if base.measurement is None:
        comparison.problems.append(base.reason)
    if base.environment_changes:
        fields = ", ".join(
            f"{c['field']} {c['baseline']!r} -> {c['now']!r}" for c in base.environment_changes
        )
        comparison.problems.append(
            f"baseline measured in another environment ({fields}): precision and latency not compared; "
            "the environment change, not the commit, is the likely cause of any difference"
        )
    now_rows = fold(hist.case_results(store, current.run_ids, kernels))
    if base.measurement is None:
        # Nothing to compare with; failures now are still failures.
        comparison.entries = sorted(
            (_judge(m, None, thresholds, precision=False, latency=False) for m in now_rows.values()),
            key=_sort_key,
        )
        return comparison
    base_rows = fold(hist.case_results(store, base.measurement.run_ids, kernels))
    same_env = not base.environment_changes
    comparison.precision_compared = same_env
    comparison.latency_compared = same_env
    keys = list(dict.fromkeys([*now_rows, *base_rows]))
    comparison.entries = sorted(
        (
            _judge(now_rows.get(k), base_rows.get(k), thresholds, precision=same_env, latency=same_env)
            for k in keys
        ),
        key=_sort_key,
    )
    if comparison.compared == 0 and not comparison.regressions:
        other = (base.commit or "?")[:12]
        comparison.problems.append(f"no kernel x case was measured by both {current.commit[:12]} and {other}")
    return comparison


__all__ = [
    "EXIT_CLEAN",
    "EXIT_NOT_COMPARABLE",
    "EXIT_REGRESSION",
    "EXIT_USAGE",
    "KINDS",
    "REGRESSION_KINDS",
    "Comparison",
    "Entry",
    "VerdictError",
    "compare",
    "repro_command",
]
