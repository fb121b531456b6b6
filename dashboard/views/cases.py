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
    common.chart(st, charts.heatmap_chart(cells))
    st.caption("1.00 = the case used its whole error budget; above 1 it failed. Grey: no budget recorded.")

    ranked = cells.assign(rank=cells["error_ratio"].astype(float).fillna(-math.inf)).sort_values(
        "rank", ascending=False
    )
    options = [f"{r.family} × {r.shape_class}" for r in ranked.itertuples(index=False)]
    # A new kernel or measurement starts again from its worst cell and worst case.
    context = (kernel, label)
    if st.session_state.get("cases_context") != context:
        st.session_state["cases_context"] = context
        st.session_state["cases_cell"] = options[0]
        st.session_state.pop("cases_case", None)
    cell = st.selectbox("cell (worst first)", options, key="cases_cell")
    family, shape_class = cell.split(" × ", 1)
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
        common.chart(st, charts.history_chart(history))
    st.markdown("Re-run exactly this case:")
    st.code(frames.repro_command(kernel, loaders.case_params(url, token, case_id) or {}), language="bash")
