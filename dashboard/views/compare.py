"""Compare: two measured commits side by side, case by case, and the trades between speed and error."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, frames, loaders
from dashboard.views import common


def render() -> None:
    url, token = common.header("Compare", "any two commits, case by case (B against A)")
    every = common.commit_measurements(url, token)
    side = st.sidebar
    side.header("Commits")
    labels = list(every["label"])
    label_b = side.selectbox("B (newer)", labels, index=0, key="compare_b")
    label_a = side.selectbox("A (baseline)", labels, index=min(1, len(labels) - 1), key="compare_a")
    a = every[every["label"] == label_a].iloc[0]
    b = every[every["label"] == label_b].iloc[0]
    named = {
        side_name: frames.markdown_escape(
            f"{frames.commit_label(row['commit'], row['subject'], limit=None)} · "
            f"{frames.recorded_at(row['started_at'])} UTC"
        )
        for side_name, row in (("B", b), ("A", a))
    }
    st.markdown(f"**B** {named['B']}  \n**A** {named['A']}")
    if a["environment_id"] != b["environment_id"]:
        st.warning("A and B ran in different environments: latency ratios compare machines, not commits.")
    changes = loaders.case_changes(url, token, tuple(a["run_ids"]), tuple(b["run_ids"]))
    if changes.empty:
        st.info("The two commits share no measured case.")
        return
    kernels = st.sidebar.multiselect("kernel", sorted(changes["kernel"].unique()), key="compare_kernel")
    if kernels:
        changes = changes[changes["kernel"].isin(kernels)]
    counts = changes["change"].value_counts()
    cols = st.columns(5)
    for col, name in zip(cols, ["newly failing", "less precise", "slower", "faster", "fixed"], strict=True):
        col.metric(name, int(counts.get(name, 0)))
    common.chart(
        st, charts.tradeoff_chart(changes.assign(significant=changes["significant"].map(_significance)))
    )
    st.caption(
        "Each point is one case: right of the dashed line B is slower, above it B is less precise. "
        "Latency significance needs GPU timings; interpreter timings are shown but never judged."
    )
    st.dataframe(
        changes[
            [
                "kernel",
                "case_id",
                "family",
                "shape_class",
                "change",
                "status_a",
                "status_b",
                "rel_l2_a",
                "rel_l2_b",
                "error_ratio",
                "p50_ms_a",
                "p50_ms_b",
                "speed_ratio",
                "significant",
            ]
        ].sort_values(["change", "kernel"], ascending=[False, True]),
        hide_index=True,
        width="stretch",
    )


def _significance(value: object) -> str:
    return {True: "yes", False: "no"}.get(value, "not judged")  # type: ignore[arg-type]
