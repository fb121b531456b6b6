"""What every page shares: the header naming the database, and measurement choosers."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import frames, loaders


def header(title: str, caption: str) -> tuple[str, tuple]:
    """The page title and a caption; returns ``(url, token)`` for the loaders."""
    url, token = loaders.current()
    st.title(title)
    history = loaders.history(url)
    st.caption(f"{caption} · database {history.url} · {token[0]} runs")
    return url, token


def measurements(url: str, token: tuple) -> pd.DataFrame:
    """Newest measurement per (branch, environment), labelled for choosers."""
    all_runs = loaders.runs(url, token)
    latest = frames.latest_measurements(all_runs)
    env = all_runs.drop_duplicates("environment_id").set_index("environment_id")["environment"]
    latest["environment"] = latest["environment_id"].map(env)
    latest["label"] = [
        f"{r.branch} · {r.environment} · {frames.commit_label(r.commit, r.subject)} ({r.status})"
        for r in latest.itertuples(index=False)
    ]
    return latest


def commit_measurements(url: str, token: tuple) -> pd.DataFrame:
    """Every (commit, branch, environment) measured, newest first, labelled for choosers."""
    out = loaders.commit_measurements(url, token)
    out["label"] = [
        f"{frames.commit_label(r.commit, r.subject)} · {frames.recorded_at(r.started_at)} · {r.branch} · "
        f"{r.environment} ({r.status})"
        for r in out.itertuples(index=False)
    ]
    return out


def chart(target, built, *, canvas: bool = False, **selection) -> object:
    """Draw an Altair chart built by :mod:`dashboard.charts`; returns what Streamlit returns (the
    selection state when ``selection`` passes ``key``, ``on_select="rerun"`` and ``selection_mode``).

    The builders' specs are validated against the Vega-Lite schema in their unit tests; validating again
    on every page run costs about a third of a second per chart, so the page sends the spec unvalidated
    through ``st.vega_lite_chart``, which takes the same selection arguments as ``st.altair_chart``.
    ``canvas`` asks Vega for its canvas renderer (Streamlit's default is SVG below 2,000 marks): faster
    for charts of hundreds of points, but its marks are not elements a test or a screen reader can find.
    """
    spec = built.to_dict(validate=False)
    if canvas:
        spec["usermeta"] = {"embedOptions": {"renderer": "canvas"}}
    return target.vega_lite_chart(spec, width="stretch", **selection)
