"""Failures: counterexamples still failing, what they measured against what they were allowed, and how
to reproduce each one."""

from __future__ import annotations

import streamlit as st

from dashboard import frames, loaders
from dashboard.views import common

SHOWN_REPROS = 20


def render() -> None:
    url, token = common.header("Failures", "counterexamples whose latest result still fails")
    table = loaders.failures(url, token)
    side = st.sidebar
    side.header("Filters")
    if table.empty:
        st.success("No counterexample has ever been recorded.")
        return
    kernels = side.multiselect("kernel", sorted(table["kernel"].unique()), key="failures_kernel")
    show_closed = side.checkbox("also show fixed ones", key="failures_closed")
    if kernels:
        table = table[table["kernel"].isin(kernels)]
    cols = st.columns(3)
    cols[0].metric("open", int(table["open"].sum()))
    cols[1].metric("fixed", int((~table["open"]).sum()))
    cols[2].metric("kernels affected", table.loc[table["open"], "kernel"].nunique())
    if not show_closed:
        table = table[table["open"]]
    if table.empty:
        st.success("Every recorded counterexample passes on its latest run.")
        return
    table = table.assign(
        case=[frames.case_label(p) for p in table["params"]],
        first_seen=table["first_seen_commit"].map(frames.short_sha),
        measured=[
            f"rel-L2 {r:.3g}, max-abs {a:.3g}" if r == r and a == a else "—"
            for r, a in zip(table["rel_l2"].astype(float), table["max_abs"].astype(float), strict=True)
        ],
        allowed=[
            f"rel-L2 {r:.3g}, max-abs {a:.3g}" if r == r and a == a else "—"
            for r, a in zip(
                table["budget_rel_l2"].astype(float), table["budget_max_abs"].astype(float), strict=True
            )
        ],
        repro=[frames.repro_command(k, p) for k, p in zip(table["kernel"], table["params"], strict=True)],
    )
    st.dataframe(
        table[
            ["kernel", "property", "last_status", "measured", "allowed", "first_seen", "occurrences", "case"]
        ],
        hide_index=True,
        width="stretch",
        column_config={"first_seen": "first seen", "last_status": "latest"},
    )
    st.subheader("Reproduce")
    for row in table.head(SHOWN_REPROS).itertuples(index=False):
        with st.expander(f"{row.kernel} · {row.property} · {row.case}"):
            st.code(row.repro, language="bash")
            if row.message:
                st.text(row.message)
