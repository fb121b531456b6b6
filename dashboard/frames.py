"""Pure transformations of the small frames the loaders return (no Streamlit, no database).

Kept apart from the pages so each can be tested on a hand-made frame.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Iterable

import pandas as pd

from harness.verdicts.rules import COMPARABLE_LATENCY_KINDS, Thresholds, latency_rule, precision_rule

# Points a trend chart sends to the browser at most; longer series are thinned (marked points kept).
MAX_POINTS = 400
UNFINISHED_RUN_STATUSES = ("running", "interrupted", "abandoned")


def short_sha(commit: str) -> str:
    return str(commit)[:8]


def git_order(runs: pd.DataFrame) -> dict[str, int]:
    """Position of each commit in git order: parents before children, recorded order among equals.

    Uses the parents each run recorded; commits whose parents were never measured start a chain of their
    own at the position they were first recorded. Kahn's algorithm over the recorded graph, ties broken
    by first recording, so the order is deterministic.
    """
    if runs.empty:
        return {}
    first_seen: dict[str, int] = {}
    parents: dict[str, list[str]] = {}
    for position, row in enumerate(runs.sort_values("id").itertuples(index=False)):
        first_seen.setdefault(row.commit, position)
        parents.setdefault(row.commit, [])
        for parent in row.parents or []:
            if parent not in parents[row.commit]:
                parents[row.commit].append(parent)
    known = set(first_seen)
    children: dict[str, list[str]] = {c: [] for c in known}
    waiting = {}
    for commit, ps in parents.items():
        measured = [p for p in ps if p in known and p != commit]
        waiting[commit] = len(measured)
        for p in measured:
            children[p].append(commit)
    ready = sorted((c for c, n in waiting.items() if n == 0), key=first_seen.__getitem__)
    order: dict[str, int] = {}
    while ready:
        commit = ready.pop(0)
        order[commit] = len(order)
        for child in children[commit]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
        ready.sort(key=first_seen.__getitem__)
    # A cycle cannot happen in git; recorded parents could still be inconsistent: append the rest.
    for commit in sorted(known - set(order), key=first_seen.__getitem__):
        order[commit] = len(order)
    return order


def latest_measurements(runs: pd.DataFrame) -> pd.DataFrame:
    """The newest commit per (branch, environment) and every run of it there (shards, retries).

    One row per (branch, environment): ``commit``, ``run_ids`` (list), ``status`` (the worst of its
    runs: an unfinished or crashed shard makes the whole measurement so), ``started_at``.
    """
    if runs.empty:
        return pd.DataFrame(columns=["branch", "environment_id", "commit", "run_ids", "status", "started_at"])
    runs = runs.assign(branch=runs["branch"].fillna("(no branch)"))
    newest = runs.sort_values("id").groupby(["branch", "environment_id"], as_index=False).last()
    out = []
    for row in newest.itertuples(index=False):
        same = runs[
            (runs["branch"] == row.branch)
            & (runs["environment_id"] == row.environment_id)
            & (runs["commit"] == row.commit)
        ]
        # Per shard label, only the newest run counts (a retried shard replaces the failed one).
        same = same.assign(shard=same["shard"].fillna("all")).sort_values("id").groupby("shard").last()
        out.append(
            {
                "branch": row.branch,
                "environment_id": row.environment_id,
                "commit": row.commit,
                "run_ids": [int(i) for i in same["id"]],
                "status": worst_status(same["status"]),
                "started_at": row.started_at,
            }
        )
    return pd.DataFrame(out).sort_values(["branch", "environment_id"]).reset_index(drop=True)


_STATUS_RANK = {
    "complete": 0,
    "failed": 1,
    "crashed": 2,
    "running": 3,
    "interrupted": 4,
    "abandoned": 5,
}


def worst_status(statuses: Iterable[str]) -> str:
    """The status that describes a set of runs: any unfinished run makes it unfinished, never complete."""
    statuses = list(statuses)
    if not statuses:
        return "none"
    return max(statuses, key=lambda s: _STATUS_RANK.get(s, 6))


def environment_label(row: dict | pd.Series) -> str:
    """A short name for an environment: the GPU (or the CPU), torch and triton versions."""
    device = row.get("gpu") or (f"CPU {row.get('cpu')}" if row.get("cpu") else "CPU")
    parts = [str(device)]
    if row.get("torch"):
        parts.append(f"torch {row['torch']}")
    if row.get("triton"):
        parts.append(f"triton {row['triton']}")
    return ", ".join(parts)


def downsample(frame: pd.DataFrame, max_points: int = MAX_POINTS, keep: str | None = None) -> pd.DataFrame:
    """At most about ``max_points`` rows, evenly spaced, always keeping the first, the last and every row
    where column ``keep`` is true (regressions, change points)."""
    if len(frame) <= max_points:
        return frame
    step = math.ceil(len(frame) / max_points)
    positions = pd.Series(range(len(frame)), index=frame.index)
    mask = (positions % step == 0) | (positions == len(frame) - 1)
    if keep is not None and keep in frame:
        mask |= frame[keep].fillna(False).astype(bool)
    return frame[mask]


def mark_jumps(
    frame: pd.DataFrame, metric: str, threshold: float, *, by: str = "environment_id"
) -> pd.Series:
    """True where ``metric`` grew by more than ``threshold`` (a fraction) over the previous point of the
    same series (``by``); the frame must be in git order. A finite value turning infinite is a jump."""
    if frame.empty or metric not in frame:
        return pd.Series(False, index=frame.index, dtype=bool)
    previous = frame.groupby(by)[metric].shift(1)
    current = frame[metric]
    grew = (current > previous * (1 + threshold)) & previous.notna() & current.notna()
    return grew.fillna(False).astype(bool)


def repro_command(kernel: str, params: dict) -> str:
    """The shell line that re-runs exactly this case (``lowbit fuzz --case``), as the fuzzer prints it."""
    case = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return " ".join(shlex.quote(w) for w in ["lowbit", "fuzz", "--kernel", kernel, "--case", case])


def case_label(params: dict) -> str:
    """One line naming a case's shape, masking, dtype, distribution and seed."""
    if not params:
        return "?"
    layout = f" {params['layout']}" if params.get("layout") else ""
    return (
        f"B={params.get('batch')} Hq={params.get('hq')} Hkv={params.get('hkv')} Nq={params.get('nq')} "
        f"Nk={params.get('nk')} D={params.get('head_dim')} {params.get('dtype')}"
        f"{' causal' if params.get('causal') else ''}{layout} {params.get('distribution')} "
        f"seed={params.get('seed')}"
    )


def ratio(new: float | None, old: float | None) -> float | None:
    """new / old, with 0/0 = 1 and x/0 = inf; None when either side is missing or NaN."""
    if new is None or old is None or (isinstance(new, float) and math.isnan(new)):
        return None
    if isinstance(old, float) and math.isnan(old):
        return None
    if old == 0:
        return 1.0 if new == 0 else math.inf
    return new / old


FAILING_STATUSES = ("fail", "error", "crash")


def case_changes(pairs: pd.DataFrame, thresholds: Thresholds | None = None) -> pd.DataFrame:
    """Per case measured on both sides (columns of ``History.compare``): ratios B/A and what changed,
    judged by ``harness.verdicts.rules`` (the rules ``lowbit check`` applies).

    ``speed_ratio`` = p50 B / p50 A (above 1: slower), ``error_ratio`` = rel-L2 B / A (above 1: less
    precise). ``significant``: whether the latency rule (Mann-Whitney U and a threshold on the medians)
    called the change, None where it cannot judge (interpreter timings, too few samples).
    ``change``: "newly failing", "fixed", "less precise", "more precise", "slower", "faster" or "".
    """
    thresholds = thresholds or Thresholds()
    if pairs.empty:
        return pairs.assign(speed_ratio=[], error_ratio=[], significant=[], change=[], case=[])
    out = pairs.copy()
    out["speed_ratio"] = [ratio(b, a) for a, b in zip(out["p50_ms_a"], out["p50_ms_b"], strict=True)]
    out["error_ratio"] = [ratio(b, a) for a, b in zip(out["rel_l2_a"], out["rel_l2_b"], strict=True)]
    significant, changes = [], []
    for row in out.itertuples(index=False):
        latency = None
        if row.latency_kind in COMPARABLE_LATENCY_KINDS:
            latency = latency_rule(row.samples_a, row.samples_b, thresholds)
        significant.append(
            None if latency is None or latency.direction == "not-compared" else latency.direction != "same"
        )
        precision = precision_rule(
            {"rel_l2": _num(row.rel_l2_a), "max_abs": _num(row.max_abs_a)},
            {"rel_l2": _num(row.rel_l2_b), "max_abs": _num(row.max_abs_b)},
            thresholds,
        )
        a_fails, b_fails = row.status_a in FAILING_STATUSES, row.status_b in FAILING_STATUSES
        if b_fails and not a_fails:
            changes.append("newly failing")
        elif a_fails and not b_fails:
            changes.append("fixed")
        elif precision.direction == "worse":
            changes.append("less precise")
        elif precision.direction == "better":
            changes.append("more precise")
        elif latency is not None and latency.direction in ("slower", "faster"):
            changes.append(latency.direction)
        else:
            changes.append("")
    out["significant"] = significant
    out["change"] = changes
    out["case"] = out["case_id"]
    return out


def _num(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def commit_measurements(runs: pd.DataFrame) -> pd.DataFrame:
    """Every (commit, branch, environment) measured, newest first (git order), one row each.

    Columns: ``commit``, ``branch``, ``environment_id``, ``environment``, ``position``, ``run_ids``
    (tuple: per shard label only its newest run), ``last_id``, ``status`` (:func:`worst_status` of those
    runs), ``started_at``. ``runs`` needs the columns of ``loaders.runs``.
    """
    keys = ["commit", "branch", "environment_id"]
    ordered = runs.assign(shard=runs["shard"].fillna("all")).sort_values("id")
    newest = ordered.groupby([*keys, "shard"], sort=False).tail(1)
    grouped = newest.groupby(keys, sort=False)
    out = grouped.agg(
        environment=("environment", "first"),
        position=("position", "first"),
        last_id=("id", "max"),
        started_at=("started_at", "first"),
        status=("status", worst_status),
    ).reset_index()
    ids = grouped["id"].agg(lambda s: tuple(int(i) for i in s))
    out["run_ids"] = [ids[(r.commit, r.branch, r.environment_id)] for r in out.itertuples(index=False)]
    out["position"] = out["position"].astype(int)
    return out.sort_values(["position", "last_id"], ascending=False).reset_index(drop=True)
