"""Overview: the newest measurement per branch and environment, what it found, and what changed."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, frames, loaders
from dashboard.views import common
from harness.store.history import FINISHED_RUN_STATUSES

SUMMARY_COLUMNS = {
    "kernel": "kernel",
    "cases": "cases",
    "pass": "pass",
    "fail": "fail",
    "error": "error",
    "crash": "crash",
    "unsupported": "unsupported",
    "rel_l2": "worst rel-L2",
    "max_abs": "worst max-abs",
    "error_ratio": "worst error / budget",
    "p50_ms": "mean p50 (ms)",
    "latency_kind": "timer",
}


def baseline_of(measured: pd.Series, candidates: pd.DataFrame) -> pd.Series | None:
    """The measurement a commit is judged against: its nearest earlier commit (git order) in the same
    environment and branch whose runs all finished ("complete" or "failed", as ``lowbit check`` requires;
    crashed, interrupted and abandoned runs are never a baseline)."""
    earlier = candidates[
        (candidates["environment_id"] == measured["environment_id"])
        & (candidates["branch"] == measured["branch"])
        & (candidates["position"] < measured["position"])
        & (candidates["status"].isin(FINISHED_RUN_STATUSES))
    ]
    if earlier.empty:
        return None
    return earlier.sort_values(["position", "last_id"]).iloc[-1]


def render() -> None:
    url, token = common.header("Overview", "what the newest run on each branch and machine found")
    latest = common.measurements(url, token)
    every = common.commit_measurements(url, token)
    fails = loaders.failures(url, token)
    open_cx = int(fails["open"].sum()) if not fails.empty else 0

    top = st.columns(4)
    top[0].metric("branches × environments", len(latest))
    top[1].metric("runs recorded", token[0])
    top[2].metric("open counterexamples", open_cx)
    top[3].metric("unfinished runs", int(token[4] or 0))

    for row in latest.itertuples(index=False):
        measured = every[
            (every["commit"] == row.commit)
            & (every["branch"] == row.branch)
            & (every["environment_id"] == row.environment_id)
        ].iloc[0]
        run_ids = tuple(row.run_ids)
        title = f"{row.branch} · {frames.commit_label(row.commit, row.subject, limit=None)}"
        st.subheader(frames.markdown_escape(title))
        st.caption(
            f"{row.environment} · recorded {frames.recorded_at(row.started_at)} UTC · runs {list(run_ids)}"
        )
        if row.status in frames.UNFINISHED_RUN_STATUSES:
            st.warning(f"This measurement is {row.status}: its counts are partial, not a verdict.")
        summary = loaders.kernel_summary(url, token, run_ids)
        if summary.empty:
            st.info("No results recorded yet for this run.")
            continue
        counts = st.columns(4)
        counts[0].metric("pass", int(summary["pass"].sum()))
        counts[1].metric("fail", int(summary["fail"].sum() + summary["error"].sum()))
        counts[2].metric("crashed", int(summary["crash"].sum()))
        counts[3].metric("run status", row.status)
        left, right = st.columns([3, 2])
        long = summary.melt(
            id_vars=["kernel"], value_vars=list(charts.STATUS_COLOURS), var_name="status", value_name="count"
        )
        common.chart(left, charts.status_chart(long[long["count"] > 0]))
        speed = loaders.baseline_speed(url, token, run_ids)
        if speed.empty:
            right.caption("No baseline kernel (fp16, SDPA) timed on the same cases in this run.")
        else:
            common.chart(right, charts.speed_chart(speed))
            if set(speed["latency_kind"]) - set(frames.COMPARABLE_LATENCY_KINDS):
                right.caption("Timed in the CPU interpreter: ratios describe the interpreter, not a GPU.")
        st.dataframe(
            summary[list(SUMMARY_COLUMNS)].rename(columns=SUMMARY_COLUMNS),
            hide_index=True,
            width="stretch",
        )
        base = baseline_of(measured, every)
        if base is None:
            st.caption("No earlier finished measurement on this branch and machine to compare against.")
            continue
        changes = loaders.case_changes(url, token, tuple(base["run_ids"]), run_ids)
        found = changes[changes["change"].isin(["newly failing", "less precise", "slower"])]
        against = frames.markdown_escape(frames.commit_label(base["commit"], base["subject"]))
        label = f"new regressions against {against}: {len(found)}"
        with st.expander(label, expanded=bool(len(found))):
            if found.empty:
                st.write("None: no case got worse.")
            else:
                shown = found[
                    ["kernel", "case_id", "family", "shape_class", "change", "status_a", "status_b"]
                ]
                shown = shown.assign(
                    error_ratio=found["error_ratio"], speed_ratio=found["speed_ratio"]
                ).sort_values(["change", "kernel"])
                st.dataframe(shown, hide_index=True, width="stretch")
