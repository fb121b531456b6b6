"""Trends: one kernel's error and speed across commits, for the case group the filters select."""

from __future__ import annotations

import streamlit as st

from dashboard import charts, frames, loaders
from dashboard.views import common
from harness.store.dashboard_queries import ALL_PHASES, FIXED_PHASES, CaseFilter

# A point is flagged when its metric grew by more than this over the previous commit in its series.
JUMP = {"rel_l2": 0.10, "max_abs": 0.10, "worst_row_rel_l2": 0.10, "error_ratio": 0.10, "p50_ms": 0.05}
# Drawn unless the sidebar asks for others: few charts keep the page readable (and quick to draw).
DEFAULT_CHARTS = ("rel_l2", "max_abs", "error_ratio", "p50_ms")
CHARTS = (
    ("rel_l2", "worst rel-L2 over the cases", True),
    ("max_abs", "worst max-abs", True),
    ("worst_row_rel_l2", "worst single query row (rel-L2)", True),
    ("error_ratio", "worst error as a share of budget (1 = at budget)", False),
    ("p50_ms", "mean median latency (ms)", False),
    ("tflops", "mean TFLOPS", False),
)


def filters(url: str, token: tuple) -> tuple[str, CaseFilter, tuple, tuple]:
    side = st.sidebar
    side.header("Filters")
    kernels = loaders.kernels(url, token)
    kernel = side.selectbox("kernel", kernels, key="trend_kernel")
    all_runs = loaders.runs(url, token)
    envs = all_runs.drop_duplicates("environment_id")[["environment_id", "environment"]]
    env_names = dict(zip(envs["environment"], envs["environment_id"], strict=True))
    chosen_envs = side.multiselect("environment", list(env_names), key="trend_env")
    branches = side.multiselect("branch", sorted(all_runs["branch"].unique()), key="trend_branch")
    f = loaders.facets(url, token)
    flt = CaseFilter(
        families=tuple(side.multiselect("distribution family", f["families"], key="trend_family")),
        head_dims=tuple(side.multiselect("head dim", f["head_dims"], key="trend_head_dim")),
        causal=tuple(
            side.multiselect(
                "causal", f["causal"], format_func=lambda c: "causal" if c else "full", key="trend_causal"
            )
        ),
        layouts=tuple(side.multiselect("layout", f["layouts"], key="trend_layout")),
        length_buckets=tuple(side.multiselect("sequence length (Nk)", f["length_buckets"], key="trend_len")),
        phases=ALL_PHASES if side.checkbox("include fuzzed cases", key="trend_fuzz") else FIXED_PHASES,
    )
    return kernel, flt, tuple(branches), tuple(env_names[e] for e in chosen_envs)


def chosen_charts() -> list[str]:
    titles = {metric: title for metric, title, _ in CHARTS}
    return st.sidebar.multiselect(
        "charts", list(titles), default=list(DEFAULT_CHARTS), format_func=titles.get, key="trend_charts"
    )


def render() -> None:
    url, token = common.header("Trends", "error and speed across commits, git order, newest on the right")
    kernel, flt, branches, envs = filters(url, token)
    wanted = chosen_charts()
    frame = loaders.trend(url, token, kernel, flt, branches, envs)
    if frame.empty:
        st.info(f"No results of {kernel} match these filters.")
        return
    marks = {f"flag_{m}": frames.mark_jumps(frame, m, t, by="series") for m, t in JUMP.items()}
    # Change points stored by `lowbit history` (harness.verdicts) mark the run where a new level starts.
    steps = loaders.change_points(url, token, kernel, flt, envs)
    for metric, group in steps.groupby("metric"):
        stepped = frame["run_id"].isin(group["run_id"])
        key = f"flag_{metric}"
        marks[key] = (marks[key] | stepped) if key in marks else stepped
    frame = frame.assign(**marks)
    frame["flag"] = frame[list(marks)].any(axis=1)
    cols = st.columns(4)
    cols[0].metric("commits", frame["commit"].nunique())
    cols[1].metric("series", frame["series"].nunique())
    cols[2].metric("cases in newest run", int(frame.iloc[-1]["cases"]))
    cols[3].metric("marked jumps", int(frame["flag"].sum()))
    st.caption(
        "▲ marks a commit where a metric grew past its threshold over the previous commit of the same "
        "series, or where `lowbit history` found a change point."
    )
    shown = frames.downsample(frame, keep="flag").assign(no_flag=False)
    if len(shown) < len(frame):
        st.caption(f"{len(frame)} runs thinned to {len(shown)} points; every marked point is kept.")
    left, right = st.columns(2)
    slot = 0
    for metric, title, log in CHARTS:
        if metric not in wanted or metric not in shown or shown[metric].notna().sum() == 0:
            continue
        positive = shown[metric].dropna()
        target = left if slot % 2 == 0 else right
        common.chart(
            target,
            charts.trend_chart(
                shown,
                metric,
                title,
                log=log and bool((positive > 0).all()),
                flag=f"flag_{metric}" if f"flag_{metric}" in shown else "no_flag",
            ),
            # Hundreds of points per chart: canvas draws them faster than SVG (about 0.5 s of the
            # page's warm first paint on the 1,000,000-row history, docs/perf.md).
            canvas=True,
        )
        slot += 1
    kinds = set(frame["latency_kind"].dropna())
    if kinds - set(frames.COMPARABLE_LATENCY_KINDS):
        st.caption(
            "Latencies from the CPU interpreter measure the interpreter; they are never compared to GPU."
        )
    if not steps.empty:
        st.subheader(f"Change points ({len(steps)})")
        shown_steps = steps.merge(frame[["run_id", "short", "subject", "series"]], on="run_id", how="left")
        st.dataframe(
            shown_steps[["short", "subject", "series", "metric", "direction", "cases", "largest_step"]],
            hide_index=True,
            width="stretch",
        )
    flagged = frame[frame["flag"]]
    st.subheader(f"Marked jumps ({len(flagged)})")
    if flagged.empty:
        st.write("No metric grew past its threshold between consecutive commits of a series.")
    else:
        st.dataframe(
            flagged[
                [
                    "short",
                    "subject",
                    "recorded",
                    "series",
                    "run_status",
                    "rel_l2",
                    "max_abs",
                    "p50_ms",
                    "fail",
                ]
            ],
            hide_index=True,
            width="stretch",
        )
