"""Altair chart builders: a data frame in, a chart out. No Streamlit and no database here.

Each builder documents the columns it needs and raises ValueError naming the missing ones, so a page
that hands over the wrong frame fails loudly instead of drawing an empty chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import altair as alt
import pandas as pd

# Heatmap colour scale: share of the error budget used; 1 is the budget, anything past 2 is saturated.
BUDGET_DOMAIN = (0.0, 1.0, 2.0)
BUDGET_RANGE = ("#e8f5e9", "#fdd835", "#c62828")
STATUS_COLOURS = {
    "pass": "#43a047",
    "fail": "#e53935",
    "error": "#fb8c00",
    "crash": "#6d4c41",
    "unsupported": "#bdbdbd",
}


def _require(frame: pd.DataFrame, columns: Sequence[str], chart: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{chart}: frame lacks column(s) {missing}; it has {list(frame.columns)}")


def _finite(frame: pd.DataFrame, column: str, cap: float | None = None) -> pd.Series:
    """``column`` with infinities replaced by ``cap`` (or dropped to NaN): Vega-Lite cannot draw inf."""
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    fill = math.nan if cap is None else cap
    return values.mask(values.isin([math.inf, -math.inf]), fill)


def trend_chart(
    frame: pd.DataFrame, metric: str, title: str, *, log: bool = False, flag: str = "flag"
) -> alt.LayerChart:
    """One metric across commits in git order, one line per series, jumps and change points marked.

    Needs: ``position`` (git order), ``short`` (short sha), ``subject`` (the commit's subject line),
    ``recorded`` (when the run started, as shown), ``series`` (line label), ``metric``, ``note``,
    ``run_status`` and the boolean column ``flag`` (a regression or change point of this metric here).
    The tooltip of every point names its commit by short sha, subject and time.
    """
    _require(
        frame,
        ["position", "short", "subject", "recorded", "series", metric, "note", "run_status", flag],
        "trend_chart",
    )
    # Only the columns the chart encodes go into the spec: the page's frame carries thirty more per run,
    # and every chart would ship them all to the browser.
    data = frame[["position", "short", "subject", "recorded", "series", "note", "run_status"]].assign(
        value=_finite(frame, metric),
        infinite=pd.to_numeric(frame[metric], errors="coerce").astype(float).isin([math.inf]),
        marked=frame[flag].fillna(False).astype(bool),
    )
    top = data["value"].max() if data["value"].notna().any() else 1.0
    # An infinite error (NaN output) is drawn above the highest finite point, in the regression marker.
    data["value"] = data["value"].where(~data["infinite"], top * 1.5 if top and top > 0 else 1.0)
    data["marked"] = data["marked"] | data["infinite"]
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    x = alt.X(
        "short:O",
        title="commit (git order, oldest left)",
        sort=alt.EncodingSortField(field="position", op="min"),
        axis=alt.Axis(labelAngle=-45, labelOverlap="greedy"),
    )
    tooltip = [
        alt.Tooltip("short:N", title="commit"),
        alt.Tooltip("subject:N", title="subject"),
        alt.Tooltip("recorded:N", title="recorded (UTC)"),
        alt.Tooltip("value:Q", title=metric, format=".3~g"),
        alt.Tooltip("series:N", title="branch · environment"),
        alt.Tooltip("run_status:N", title="run"),
        alt.Tooltip("note:N", title="note"),
    ]
    base = alt.Chart(data).encode(x=x, y=alt.Y("value:Q", title=metric, scale=scale))
    lines = base.mark_line(point=True).encode(
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=600)),
        detail="series:N",
        tooltip=tooltip,
    )
    flags = (
        base.transform_filter(alt.datum.marked)
        .mark_point(shape="triangle-up", size=180, filled=True, color="#c62828", opacity=1)
        .encode(tooltip=tooltip)
    )
    return alt.layer(lines, flags).properties(title=title, height=260)


def status_chart(frame: pd.DataFrame) -> alt.Chart:
    """Stacked case counts per kernel by status. Needs ``kernel``, ``status``, ``count``."""
    _require(frame, ["kernel", "status", "count"], "status_chart")
    order = list(STATUS_COLOURS)
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("kernel:N", title=None),
            x=alt.X("count:Q", title="cases"),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(domain=order, range=[STATUS_COLOURS[s] for s in order]),
                title="status",
            ),
            order=alt.Order("status_rank:Q"),
            tooltip=["kernel:N", "status:N", "count:Q"],
        )
        .transform_calculate(status_rank=f"indexof({order!r}, datum.status)")
        .properties(height=alt.Step(26))
    )


def speed_chart(frame: pd.DataFrame) -> alt.Chart:
    """Speed-up of each kernel over each baseline (1 = as fast). Needs ``kernel``, ``baseline``, ``ratio``."""
    _require(frame, ["kernel", "baseline", "ratio"], "speed_chart")
    data = frame.assign(ratio=_finite(frame, "ratio"))
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("kernel:N", title=None),
            x=alt.X("ratio:Q", title="speed-up over baseline (×, higher is faster)"),
            color=alt.Color("baseline:N", title="baseline"),
            yOffset="baseline:N",
            tooltip=["kernel:N", "baseline:N", alt.Tooltip("ratio:Q", format=".2f"), "cases:Q"],
        )
    )
    one = alt.Chart(pd.DataFrame({"x": [1.0]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    return alt.layer(bars, one).properties(height=alt.Step(14))


# The heatmap's point selection: a click picks one (family, shape class) cell.
CELL_SELECTION = "cell"


def heatmap_chart(frame: pd.DataFrame, chosen: tuple[str, str] | None = None) -> alt.LayerChart:
    """Worst error as a share of budget by family × shape class, labelled with the share.

    Needs ``family``, ``shape_class``, ``error_ratio``, ``cases``, ``fail``. Cells without a budget are grey.
    A click on a cell selects it through the point selection :data:`CELL_SELECTION` (fields ``family``
    and ``shape_class``; one cell at a time); ``chosen`` (family, shape class), the cell whose cases the
    page lists, is outlined, however it was chosen (a click or the page's selectbox).
    """
    _require(frame, ["family", "shape_class", "error_ratio", "cases", "fail"], "heatmap_chart")
    data = frame[["family", "shape_class", "error_ratio", "cases", "fail"]].assign(
        shown=_finite(frame, "error_ratio", cap=BUDGET_DOMAIN[-1] * 10)
    )
    raw = pd.to_numeric(data["error_ratio"], errors="coerce").astype(float)
    data["label"] = ["—" if math.isnan(r) else ("∞" if math.isinf(r) else f"{r:.2f}") for r in raw.tolist()]
    data["chosen"] = (data["family"] == chosen[0]) & (data["shape_class"] == chosen[1]) if chosen else False
    # Drawn last, so no neighbouring cell paints over its outline.
    data = data.sort_values("chosen", kind="stable")
    pick = alt.selection_point(
        name=CELL_SELECTION, fields=["family", "shape_class"], on="click", toggle=False, clear=False
    )
    base = alt.Chart(data).encode(
        x=alt.X("shape_class:N", title="shape class (heads / lengths / masking)"),
        y=alt.Y("family:N", title="distribution family"),
    )
    cells = (
        base.mark_rect(cursor="pointer")
        .encode(
            color=alt.Color(
                "shown:Q",
                title="worst error / budget",
                scale=alt.Scale(domain=list(BUDGET_DOMAIN), range=list(BUDGET_RANGE), clamp=True),
            ),
            # The chosen cell is outlined in near-black, every other cell separated by white.
            stroke=alt.condition(alt.datum.chosen, alt.value("#212121"), alt.value("white")),
            strokeWidth=alt.condition(alt.datum.chosen, alt.value(3), alt.value(1)),
            tooltip=[
                "family:N",
                "shape_class:N",
                alt.Tooltip("label:N", title="worst error / budget"),
                "cases:Q",
                alt.Tooltip("fail:Q", title="failing"),
            ],
        )
        .add_params(pick)
    )
    text = base.mark_text(fontSize=12, cursor="pointer").encode(text="label:N")
    return alt.layer(cells, text).properties(height=alt.Step(34))


def tradeoff_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """Per case: latency ratio (x) against error ratio (y), B over A, both on log scales; quadrants show
    trades (faster but less precise, …). Needs ``kernel``, ``speed_ratio``, ``error_ratio``, ``case``,
    ``significant``."""
    _require(frame, ["kernel", "speed_ratio", "error_ratio", "case", "significant"], "tradeoff_chart")
    # Only what the chart draws: the page's frame also carries each case's raw latency samples.
    data = (
        frame[["kernel", "case", "significant"]]
        .assign(speed_ratio=_finite(frame, "speed_ratio"), error_ratio=_finite(frame, "error_ratio"))
        .dropna(subset=["speed_ratio", "error_ratio"])
    )
    data = data[(data["speed_ratio"] > 0) & (data["error_ratio"] > 0)]
    points = (
        alt.Chart(data)
        .mark_point(filled=True, size=70)
        .encode(
            x=alt.X("speed_ratio:Q", title="latency B / A (right = slower)", scale=alt.Scale(type="log")),
            y=alt.Y("error_ratio:Q", title="rel-L2 B / A (up = less precise)", scale=alt.Scale(type="log")),
            color=alt.Color("kernel:N", title="kernel"),
            shape=alt.Shape("significant:N", title="latency change significant"),
            tooltip=[
                "kernel:N",
                "case:N",
                alt.Tooltip("speed_ratio:Q", format=".3f"),
                alt.Tooltip("error_ratio:Q", format=".3f"),
                "significant:N",
            ],
        )
    )
    rules = alt.Chart(pd.DataFrame({"one": [1.0]}))
    return (
        points
        + rules.mark_rule(strokeDash=[4, 4]).encode(x="one:Q")
        + rules.mark_rule(strokeDash=[4, 4]).encode(y="one:Q")
    ).properties(height=360)


def history_chart(frame: pd.DataFrame) -> alt.LayerChart:
    """One case's error across its recorded runs (oldest left), points coloured by status. Needs
    ``position`` (run index), ``short`` (commit), ``rel_l2``, ``status``."""
    _require(frame, ["position", "short", "rel_l2", "status"], "history_chart")
    data = frame[["position", "short", "status"]].assign(rel_l2=_finite(frame, "rel_l2"))
    order = list(STATUS_COLOURS)
    base = alt.Chart(data).encode(
        x=alt.X(
            "position:Q", title="recorded result (oldest → newest)", axis=alt.Axis(tickMinStep=1, format="d")
        ),
        y=alt.Y("rel_l2:Q", title="rel-L2", scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip("short:N", title="commit"), "status:N", alt.Tooltip("rel_l2:Q", format=".3~g")],
    )
    line = base.mark_line(color="#9e9e9e")
    points = base.mark_point(size=90, filled=True, opacity=1).encode(
        color=alt.Color("status:N", scale=alt.Scale(domain=order, range=[STATUS_COLOURS[s] for s in order]))
    )
    return alt.layer(line, points).properties(height=220)
