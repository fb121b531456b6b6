"""Cached loaders over the read-only history: small pre-aggregated frames, invalidated by new data.

- The open database (:class:`History`) lives in ``st.cache_resource``: one engine per URL per server.
- Every frame is computed in SQL (see ``harness.store.dashboard_queries``) and cached with
  ``st.cache_data``, keyed by the URL, the query's arguments and the history's *state* (newest run id,
  newest result id, unfinished runs). The state itself is re-read at most every
  :data:`STATE_TTL_S` seconds, so a run landing (or a result of a running run) invalidates every frame
  within that time, and nothing else does.
- ``st.cache_data`` pickles each hit: only small frames go in (one row per run, per cell, per case of
  two runs), never raw result rows.

The database URL comes from ``$LOWBIT_DASHBOARD_DB`` (set by ``lowbit dashboard``), else the store's
default (``$LOWBIT_DB_URL``, else ``./lowbit.db``). It is never shown: pages show the redacted form.
"""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from dashboard import frames
from harness.store import resolve_url
from harness.store.dashboard_queries import CaseFilter, History, open_history

DB_ENV = "LOWBIT_DASHBOARD_DB"
STATE_TTL_S = 5.0
CACHE_ENTRIES = 64


def db_url() -> str:
    return os.environ.get(DB_ENV, "").strip() or resolve_url(None)


@st.cache_resource(show_spinner=False)
def history(url: str) -> History:
    """The open history; raises NoHistory/StoreError (not cached: the next rerun tries again)."""
    return open_history(url)


@st.cache_data(ttl=STATE_TTL_S, show_spinner=False)
def state(url: str) -> tuple:
    s = history(url).state()
    return (s["runs"], s["last_run_id"], s["last_result_id"], s["last_ended_at"], s["unfinished"])


def current() -> tuple[str, tuple]:
    """The URL and the history's current state: the pair every cached loader is keyed by."""
    url = db_url()
    return url, state(url)


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def runs(url: str, token: tuple) -> pd.DataFrame:
    """Every run with its environment, its label and its commit's position in git order."""
    frame = pd.DataFrame(history(url).runs())
    order = frames.git_order(frame)
    frame["position"] = frame["commit"].map(order)
    frame["short"] = frame["commit"].map(frames.short_sha)
    frame["environment"] = [frames.environment_label(r) for r in frame.to_dict("records")]
    frame["branch"] = frame["branch"].fillna("(no branch)")
    return frame


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def commit_measurements(url: str, token: tuple) -> pd.DataFrame:
    return frames.commit_measurements(runs(url, token))


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def kernels(url: str, token: tuple) -> list[str]:
    return history(url).kernels()


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def facets(url: str, token: tuple) -> dict[str, list]:
    return history(url).facets()


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def kernel_summary(url: str, token: tuple, run_ids: tuple[int, ...]) -> pd.DataFrame:
    return pd.DataFrame(history(url).kernel_summary(run_ids))


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def baseline_speed(url: str, token: tuple, run_ids: tuple[int, ...]) -> pd.DataFrame:
    return pd.DataFrame(history(url).baseline_speed(run_ids))


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def trend(
    url: str,
    token: tuple,
    kernel: str,
    flt: CaseFilter,
    branches: tuple[str, ...],
    environment_ids: tuple[int, ...],
) -> pd.DataFrame:
    """Per run of ``kernel`` over the filtered cases, in git order, with its series label."""
    frame = pd.DataFrame(history(url).trend(kernel, flt, branches=branches, environment_ids=environment_ids))
    if frame.empty:
        return frame
    all_runs = runs(url, token)
    frame = frame.merge(all_runs[["id", "position", "short", "environment"]], left_on="run_id", right_on="id")
    frame["branch"] = frame["branch"].fillna("(no branch)")
    frame["series"] = frame["branch"] + " · " + frame["environment"]
    frame["note"] = frame["note"].fillna("")
    # What a point's tooltip names the commit by: short sha (the x axis), subject line and time.
    frame["subject"] = frame["subject"].map(frames.subject_text)
    frame["recorded"] = frame["started_at"].map(frames.recorded_at)
    return frame.sort_values(["position", "run_id"]).reset_index(drop=True)


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def change_points(
    url: str, token: tuple, kernel: str, flt: CaseFilter, environment_ids: tuple[int, ...]
) -> pd.DataFrame:
    return pd.DataFrame(
        history(url).change_points(kernel, flt, environment_ids=environment_ids),
        columns=["run_id", "metric", "direction", "environment_id", "cases", "largest_step"],
    )


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def heatmap(url: str, token: tuple, run_ids: tuple[int, ...], kernel: str) -> pd.DataFrame:
    return pd.DataFrame(history(url).heatmap(run_ids, kernel))


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def cell_cases(
    url: str, token: tuple, run_ids: tuple[int, ...], kernel: str, family: str, shape_class: str
) -> pd.DataFrame:
    return pd.DataFrame(history(url).cell_cases(run_ids, kernel, family, shape_class))


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def case_history(url: str, token: tuple, kernel: str, case_id: str) -> pd.DataFrame:
    frame = pd.DataFrame(history(url).case_history(kernel, case_id))
    if not frame.empty:
        frame["position"] = range(len(frame))
        frame["short"] = frame["commit"].map(frames.short_sha)
    return frame


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def case_params(url: str, token: tuple, case_id: str) -> dict | None:
    return history(url).case_params(case_id)


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def failures(url: str, token: tuple) -> pd.DataFrame:
    return pd.DataFrame(history(url).failures())


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def compare(url: str, token: tuple, run_ids_a: tuple[int, ...], run_ids_b: tuple[int, ...]) -> pd.DataFrame:
    return pd.DataFrame(history(url).compare(run_ids_a, run_ids_b))


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def case_changes(
    url: str, token: tuple, run_ids_a: tuple[int, ...], run_ids_b: tuple[int, ...]
) -> pd.DataFrame:
    """:func:`frames.case_changes` of two measurements: judging thousands of cases by the rules of
    ``lowbit check`` costs a few hundred milliseconds, so a rerun reuses it (without the raw samples it
    judged, which no page shows)."""
    changes = frames.case_changes(compare(url, token, run_ids_a, run_ids_b))
    return changes.drop(columns=["samples_a", "samples_b"], errors="ignore")
