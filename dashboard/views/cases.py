"""Cases: where in the case space a kernel is worst, down to one case's history and its repro command."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import charts, frames, loaders
from dashboard.views import common


def render() -> None:
    url, token = common.header("Cases", "worst error as a share of budget, by distribution family and shape")
    latest = common.measurements(url, token)
    side = st.sidebar
    side.header("Filters")
    kernel = side.selectbox("kernel", loaders.kernels(url, token), key="cases_kernel")
    label = side.selectbox("measurement", list(latest["label"]), key="cases_measurement")
    run_ids = tuple(latest.loc[latest["label"] == label, "run_ids"].iloc[0])
    cells = loaders.heatmap(url, token, run_ids, kernel)
    if cells.empty:
        st.info(f"{kernel} has no results in this measurement.")
        return
    ranked = cells.assign(rank=cells["error_ratio"].astype(float).fillna(-math.inf)).sort_values(
        "rank", ascending=False
    )
    options = [frames.cell_label(r.family, r.shape_class) for r in ranked.itertuples(index=False)]
    state = st.session_state
    # A new kernel or measurement starts again from its worst cell and worst case, with a fresh chart.
    context = (kernel, label)
    if state.get("cases_context") != context:
        state["cases_context"] = context
        state["cases_cell"] = options[0]
        state["cases_clicked"] = None
        state["cases_chart"] = state.get("cases_chart", 0) + 1
        state.pop("cases_case", None)
    # A click on the heatmap and the selectbox below choose the same thing: the cell whose cases are
    # listed. The chart's selection lives under a key of its own; a newer key gives it a fresh one.
    chart_key = f"cases_heatmap_{state.get('cases_chart', 0)}"
    choice = frames.choose_cell(
        options,
        state.get("cases_cell"),
        frames.clicked_cell(state.get(chart_key), charts.CELL_SELECTION),
        state.get("cases_clicked"),
    )
    state["cases_cell"], state["cases_clicked"] = choice.cell, choice.applied
    if choice.reset_chart:
        state["cases_chart"] = state.get("cases_chart", 0) + 1
        chart_key = f"cases_heatmap_{state['cases_chart']}"
    family, shape_class = choice.cell.split(frames.CELL_SEPARATOR, 1)
    common.chart(
        st,
        charts.heatmap_chart(cells, chosen=(family, shape_class)),
        key=chart_key,
        on_select="rerun",
        selection_mode=charts.CELL_SELECTION,
    )
    st.caption(
        "1.00 = the case used its whole error budget; above 1 it failed. Grey: no budget recorded. "
        "Click a cell (or pick it below) to list its cases; the outlined cell is the one listed."
    )
    cell = st.selectbox("cell (worst first)", options, key="cases_cell")
    family, shape_class = cell.split(frames.CELL_SEPARATOR, 1)
    listed = loaders.cell_cases(url, token, run_ids, kernel, family, shape_class)
    listed = listed.assign(case=[frames.case_label(p) for p in listed["params"]])
    if st.session_state.get("cases_case") not in set(listed["case_id"]):
        st.session_state["cases_case"] = listed["case_id"].iloc[0]
    st.dataframe(
        listed[["case_id", "case", "phase", "status", "failed_property", "rel_l2", "max_abs", "error_ratio"]],
        hide_index=True,
        width="stretch",
    )
    case_id = st.selectbox(
        "case",
        list(listed["case_id"]),
        format_func=lambda c: f"{c} · {listed.loc[listed['case_id'] == c, 'case'].iloc[0]}",
        key="cases_case",
    )
    history = loaders.case_history(url, token, kernel, case_id)
    st.subheader(f"History of {case_id} ({kernel}, {len(history)} results)")
    if not history.empty:
        common.chart(st, charts.history_chart(history), canvas=True)
    st.markdown("Re-run exactly this case:")
    st.code(frames.repro_command(kernel, loaders.case_params(url, token, case_id) or {}), language="bash")
