"""Pure transformations of the small frames the loaders return (no Streamlit, no database).

Kept apart from the pages so each can be tested on a hand-made frame.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from harness.verdicts.rules import COMPARABLE_LATENCY_KINDS, Thresholds, latency_rule, precision_rule

# Points a trend chart sends to the browser at most; longer series are thinned (marked points kept).
MAX_POINTS = 400
UNFINISHED_RUN_STATUSES = ("running", "interrupted", "abandoned")


def short_sha(commit: str) -> str:
    return str(commit)[:8]


# Where a subject is cut in choosers (the whole subject stays in tooltips and captions).
SUBJECT_CHARS = 60
NO_SUBJECT = "(no subject recorded)"


def subject_text(subject: object, limit: int | None = None) -> str:
    """A commit's subject line for display: :data:`NO_SUBJECT` where none was recorded (git did not know
    the commit, or the run predates revision 0006), cut to ``limit`` characters with an ellipsis."""
    if subject is None or (isinstance(subject, float) and math.isnan(subject)) or not str(subject).strip():
        return NO_SUBJECT
    text = " ".join(str(subject).split())
    if limit is not None and len(text) > limit:
        return text[: limit - 1].rstrip() + "…"
    return text


_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:")


def markdown_escape(text: str) -> str:
    """``text`` with every character Streamlit's Markdown would interpret backslash-escaped: a subject
    line is the author's text, shown as written (``$x$`` is not LaTeX, ``**`` not bold)."""
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in text)


def recorded_at(started_at: object) -> str:
    """A run's start as ``YYYY-MM-DD HH:MM`` (UTC): the store's ISO strings, minutes precision."""
    if started_at is None or (isinstance(started_at, float) and math.isnan(started_at)):
        return "?"
    return str(started_at)[:16].replace("T", " ")


def commit_label(commit: str, subject: object, limit: int | None = SUBJECT_CHARS) -> str:
    """``short sha · subject``: how a page names a commit."""
    return f"{short_sha(commit)} · {subject_text(subject, limit)}"


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

    One row per (branch, environment): ``commit``, ``subject`` (its subject line, None if never
    recorded), ``run_ids`` (list), ``status`` (the worst of its runs: an unfinished or crashed shard makes
    the whole measurement so), ``started_at``.
    """
    if runs.empty:
        return pd.DataFrame(
            columns=["branch", "environment_id", "commit", "subject", "run_ids", "status", "started_at"]
        )
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
                # Every run of one commit records the same subject; an older run may lack it.
                "subject": next((x for x in same["subject"] if isinstance(x, str) and x), None),
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


CELL_SEPARATOR = " × "


def cell_label(family: str, shape_class: str) -> str:
    """How the Cases page names a heatmap cell in its selectbox."""
    return f"{family}{CELL_SEPARATOR}{shape_class}"


def clicked_cell(state: Mapping | None, selection: str) -> tuple[str, str] | None:
    """The (family, shape class) a click on the heatmap selected, from the chart's event state
    (``st.session_state[key]`` of a chart drawn with ``on_select="rerun"``), or None when nothing is
    selected. Streamlit hands a point selection over as a list of the selected points' fields; the
    newest point wins. Anything else (no state yet, an empty selection, a point without both fields)
    is no click."""
    if not isinstance(state, Mapping):
        return None
    chosen = state.get("selection")
    points = chosen.get(selection) if isinstance(chosen, Mapping) else None
    if not isinstance(points, Sequence) or isinstance(points, str) or not points:
        return None
    point = points[-1]
    if not isinstance(point, Mapping):
        return None
    family, shape_class = point.get("family"), point.get("shape_class")
    if not isinstance(family, str) or not isinstance(shape_class, str):
        return None
    return family, shape_class


@dataclass(frozen=True)
class CellChoice:
    """What the Cases page does with its heatmap on one rerun (see :func:`choose_cell`)."""

    cell: str  # the label of the cell whose cases are listed (and shown in the selectbox)
    applied: tuple[str, str] | None  # the click this choice has consumed, to remember for the next rerun
    reset_chart: bool  # the chart's selection no longer shows the chosen cell: draw it with a fresh one


def choose_cell(
    options: Sequence[str], current: str | None, clicked: tuple[str, str] | None, applied: object
) -> CellChoice:
    """Which cell the Cases page lists, given the heatmap's click and the selectbox.

    ``options`` are the cells' labels (worst first), ``current`` the selectbox's value, ``clicked`` the
    cell the heatmap's selection holds (:func:`clicked_cell`), ``applied`` the click consumed on an
    earlier rerun. The chart reports its selection on every rerun, so only a click not yet applied is
    news: it chooses its cell. Otherwise the selectbox (the keyboard's way to choose) decides, and a
    selection left showing another cell is reset, so that a click on that cell is news again. A click
    on a cell that is not an option (a stale selection) changes nothing but is reset; a ``current`` that
    is no longer an option falls back to the worst cell.
    """
    if not options:
        raise ValueError("choose_cell: expected at least one cell label, got none")
    if clicked is not None and clicked != applied and cell_label(*clicked) in options:
        return CellChoice(cell_label(*clicked), clicked, reset_chart=False)
    cell = current if current in options else options[0]
    stale = clicked is not None and cell_label(*clicked) != cell
    return CellChoice(cell, None if stale else clicked, reset_chart=stale)


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

    Columns: ``commit``, ``subject``, ``branch``, ``environment_id``, ``environment``, ``position``,
    ``run_ids`` (tuple: per shard label only its newest run), ``last_id``, ``status``
    (:func:`worst_status` of those runs), ``started_at``. ``runs`` needs the columns of ``loaders.runs``.
    """
    keys = ["commit", "branch", "environment_id"]
    ordered = runs.assign(shard=runs["shard"].fillna("all")).sort_values("id")
    newest = ordered.groupby([*keys, "shard"], sort=False).tail(1)
    grouped = newest.groupby(keys, sort=False)
    out = grouped.agg(
        environment=("environment", "first"),
        subject=("subject", "first"),  # the first recorded one: runs before revision 0006 have none
        position=("position", "first"),
        last_id=("id", "max"),
        started_at=("started_at", "first"),
        status=("status", worst_status),
    ).reset_index()
    ids = grouped["id"].agg(lambda s: tuple(int(i) for i in s))
    out["run_ids"] = [ids[(r.commit, r.branch, r.environment_id)] for r in out.itertuples(index=False)]
    out["position"] = out["position"].astype(int)
    return out.sort_values(["position", "last_id"], ascending=False).reset_index(drop=True)
