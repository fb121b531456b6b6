"""The pure frame transformations behind the pages."""

from __future__ import annotations

import json
import math
import shlex

import pandas as pd
import pytest

from dashboard import frames


def _runs(rows, subjects=None):
    frame = pd.DataFrame(
        rows, columns=["id", "commit", "parents", "branch", "environment_id", "shard", "status", "started_at"]
    )
    return frame.assign(subject=subjects if subjects is not None else [None] * len(frame))


def test_git_order_follows_parents_not_recording_order():
    # c was recorded first but is the child of b, which is the child of a.
    runs = _runs(
        [
            (1, "c", ["b"], "main", 1, None, "complete", "t1"),
            (2, "a", [], "main", 1, None, "complete", "t2"),
            (3, "b", ["a"], "main", 1, None, "complete", "t3"),
            (4, "x", ["unmeasured"], "main", 1, None, "complete", "t4"),
        ]
    )
    order = frames.git_order(runs)
    assert order["a"] < order["b"] < order["c"]
    assert sorted(order.values()) == [0, 1, 2, 3]


def test_git_order_merge_after_both_parents():
    runs = _runs(
        [
            (1, "a", [], "main", 1, None, "complete", ""),
            (2, "m", ["a", "f"], "main", 1, None, "complete", ""),
            (3, "f", ["a"], "feat", 1, None, "complete", ""),
        ]
    )
    order = frames.git_order(runs)
    assert order["a"] < order["f"] < order["m"]


def test_latest_measurement_is_never_complete_while_a_shard_runs():
    runs = _runs(
        [
            (1, "a", [], "main", 1, "1/2", "complete", ""),
            (2, "a", [], "main", 1, "2/2", "complete", ""),
            (3, "b", ["a"], "main", 1, "1/2", "complete", ""),
            (4, "b", ["a"], "main", 1, "2/2", "interrupted", ""),
            (5, "b", ["a"], "gpu", 2, None, "abandoned", ""),
        ]
    )
    latest = frames.latest_measurements(runs).set_index("branch")
    assert latest.loc["main", "commit"] == "b"
    assert latest.loc["main", "run_ids"] == [3, 4]
    assert latest.loc["main", "status"] == "interrupted"
    assert latest.loc["gpu", "status"] == "abandoned"


def test_retried_shard_replaces_the_failed_one():
    runs = _runs(
        [
            (1, "a", [], "main", 1, "1/2", "crashed", ""),
            (2, "a", [], "main", 1, "2/2", "complete", ""),
            (3, "a", [], "main", 1, "1/2", "complete", ""),
        ]
    )
    latest = frames.latest_measurements(runs).iloc[0]
    assert sorted(latest["run_ids"]) == [2, 3]
    assert latest["status"] == "complete"


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["complete", "complete"], "complete"),
        (["complete", "failed"], "failed"),
        (["failed", "crashed"], "crashed"),
        (["complete", "running"], "running"),
        (["complete", "abandoned"], "abandoned"),
        ([], "none"),
    ],
)
def test_worst_status(statuses, expected):
    assert frames.worst_status(statuses) == expected


def test_downsample_keeps_ends_and_marked_rows():
    frame = pd.DataFrame({"x": range(1000), "flag": [i == 517 for i in range(1000)]})
    thin = frames.downsample(frame, max_points=100, keep="flag")
    assert len(thin) <= 102
    assert {0, 517, 999} <= set(thin["x"])
    assert frames.downsample(frame.head(50), max_points=100) is not None
    assert len(frames.downsample(frame.head(50), max_points=100)) == 50


def test_mark_jumps_per_series():
    frame = pd.DataFrame(
        {
            "series": ["a", "b", "a", "b", "a"],
            "rel_l2": [1.0, 5.0, 1.05, 5.0, 2.0],
        }
    )
    marks = frames.mark_jumps(frame, "rel_l2", 0.10, by="series")
    # a: 1.0 -> 1.05 is within 10%, 1.05 -> 2.0 is a jump; b never moves; b's 5.0 is no jump over a's 1.0.
    assert marks.tolist() == [False, False, False, False, True]
    inf = pd.DataFrame({"series": ["a", "a"], "rel_l2": [0.1, math.inf]})
    assert frames.mark_jumps(inf, "rel_l2", 0.1, by="series").tolist() == [False, True]


def test_repro_command_round_trips_the_case():
    params = {"seed": 7, "causal": True, "distribution": "zero_tokens", "nq": 4, "sm_scale": None}
    words = shlex.split(frames.repro_command("my kernel", params))
    assert words[:4] == ["lowbit", "fuzz", "--kernel", "my kernel"]
    assert words[4] == "--case" and json.loads(words[5]) == params


def test_environment_label_prefers_gpu():
    assert frames.environment_label({"gpu": "NVIDIA H200", "torch": "2.11", "triton": "3.6"}) == (
        "NVIDIA H200, torch 2.11, triton 3.6"
    )
    assert frames.environment_label({"gpu": None, "cpu": "EPYC"}) == "CPU EPYC"


def _pairs(**overrides):
    row = {
        "kernel": "k",
        "case_id": "c1",
        "family": "gaussian",
        "shape_class": "mha/nq=nk/full",
        "phase": "corpus",
        "status_a": "pass",
        "status_b": "pass",
        "rel_l2_a": 1e-3,
        "rel_l2_b": 1e-3,
        "max_abs_a": 1e-2,
        "max_abs_b": 1e-2,
        "p50_ms_a": 1.0,
        "p50_ms_b": 1.0,
        "latency_kind": "cuda",
        "samples_a": [1.0 + 0.001 * i for i in range(12)],
        "samples_b": [1.0 + 0.001 * i for i in range(12)],
    }
    row.update(overrides)
    return pd.DataFrame([row])


@pytest.mark.parametrize(
    ("overrides", "change"),
    [
        ({}, ""),
        ({"status_b": "fail"}, "newly failing"),
        ({"status_a": "crash"}, "fixed"),
        ({"rel_l2_b": 2e-3}, "less precise"),
        ({"rel_l2_b": 5e-4}, "more precise"),
        ({"rel_l2_b": 1e-3 + 1e-6}, ""),
        ({"p50_ms_b": 1.5, "samples_b": [1.5 + 0.001 * i for i in range(12)]}, "slower"),
        ({"p50_ms_b": 0.5, "samples_b": [0.5 + 0.001 * i for i in range(12)]}, "faster"),
        (
            {
                "p50_ms_b": 1.5,
                "samples_b": [1.5 + 0.001 * i for i in range(12)],
                "latency_kind": "cpu-interpreter",
            },
            "",
        ),
    ],
)
def test_case_changes(overrides, change):
    assert frames.case_changes(_pairs(**overrides))["change"].tolist() == [change]


def test_case_changes_latency_needs_significance():
    # Medians 50% apart, but three samples a side cannot reach p < 0.002: not judged, no change.
    few = _pairs(p50_ms_b=1.5, samples_a=[1.0, 1.1, 0.9], samples_b=[1.5, 1.6, 1.4])
    out = frames.case_changes(few)
    assert out["change"].tolist() == [""]
    assert out["significant"].tolist() == [None]
    assert out["speed_ratio"].tolist() == [1.5]
    same = frames.case_changes(_pairs())
    assert same["significant"].tolist() == [False]


def test_ratio_edge_cases():
    assert frames.ratio(0.0, 0.0) == 1.0
    assert math.isinf(frames.ratio(1.0, 0.0))
    assert frames.ratio(None, 1.0) is None
    assert frames.ratio(math.nan, 1.0) is None


def test_commit_measurements_one_row_per_commit_environment_newest_first():
    runs = _runs(
        [
            (1, "a", [], "main", 1, "1/2", "complete", "t1"),
            (2, "a", [], "main", 1, "2/2", "crashed", "t2"),
            (3, "a", [], "main", 1, "2/2", "complete", "t3"),
            (4, "b", ["a"], "main", 1, None, "running", "t4"),
            (5, "a", [], "main", 2, None, "failed", "t5"),
        ]
    ).assign(environment=lambda f: "env " + f["environment_id"].astype(str))
    runs["position"] = runs["commit"].map(frames.git_order(runs))
    out = frames.commit_measurements(runs)
    assert list(zip(out["commit"], out["environment_id"], strict=True)) == [("b", 1), ("a", 2), ("a", 1)]
    row = out[(out["commit"] == "a") & (out["environment_id"] == 1)].iloc[0]
    assert row["run_ids"] == (1, 3) and row["status"] == "complete"  # the retried shard replaced run 2
    assert out.iloc[0]["status"] == "running"


def test_commit_subjects_follow_the_measurement_even_where_an_older_run_lacks_one():
    runs = _runs(
        [
            (1, "a", [], "main", 1, "1/2", "complete", "2026-11-23T05:01:02.5+00:00"),
            (2, "a", [], "main", 1, "2/2", "complete", "2026-11-23T05:03:00+00:00"),
            (3, "b", ["a"], "main", 1, None, "complete", "2026-11-23T06:00:00+00:00"),
        ],
        subjects=[None, "fix: int8 P scale", None],
    ).assign(environment="cpu")
    runs["position"] = runs["commit"].map(frames.git_order(runs))
    every = frames.commit_measurements(runs).set_index("commit")
    assert every.loc["a", "subject"] == "fix: int8 P scale"  # shard 1/2 predates revision 0006
    assert frames.commit_label("b" * 40, every.loc["b", "subject"]) == "bbbbbbbb · (no subject recorded)"
    latest = frames.latest_measurements(runs.assign(commit=["a", "a", "a"], parents=[[]] * 3))
    assert latest.loc[0, "subject"] == "fix: int8 P scale"
    assert frames.recorded_at("2026-11-23T05:01:02.5+00:00") == "2026-11-23 05:01"


def test_subject_text_cuts_long_lines_and_joins_whitespace():
    assert frames.subject_text("a  b\tc") == "a b c"
    assert frames.subject_text("x" * 100, limit=10) == "x" * 9 + "…"
    assert frames.subject_text("", limit=10) == frames.NO_SUBJECT
    assert frames.subject_text(math.nan) == frames.NO_SUBJECT


def test_markdown_escape_shows_a_subject_as_written():
    text = "int8: **fast** path for $x$ [wip] <b>"
    escaped = frames.markdown_escape(text)
    assert "**" not in escaped and "$x$" not in escaped and "<b>" not in escaped
    assert escaped.replace("\\", "") == text


HEATMAP = "cell"


def _event(*points):
    return {"selection": {HEATMAP: list(points)}}


@pytest.mark.parametrize(
    "state, expected",
    [
        (None, None),
        ({}, None),
        ({"selection": {}}, None),
        ({"selection": {HEATMAP: {}}}, None),  # Streamlit's state before any click
        (_event(), None),
        (_event({"family": "outliers"}), None),  # a point without its shape class is no cell
        (_event({"family": "outliers", "shape_class": 3}), None),
        (_event({"family": "outliers", "shape_class": "mha/nq=nk/full"}), ("outliers", "mha/nq=nk/full")),
        (
            _event({"family": "a", "shape_class": "x"}, {"family": "b", "shape_class": "y"}),
            ("b", "y"),
        ),
        ({"selection": {"other": [{"family": "a", "shape_class": "x"}]}}, None),
    ],
)
def test_clicked_cell_reads_the_point_selection(state, expected):
    assert frames.clicked_cell(state, HEATMAP) == expected


OPTIONS = ["outliers × mha/nq=nk/full", "gaussian × gqa/nq<nk/full", "small × mqa/nq<nk/full"]


def test_choose_cell_a_new_click_chooses_its_cell():
    choice = frames.choose_cell(OPTIONS, OPTIONS[0], ("small", "mqa/nq<nk/full"), None)
    assert choice == frames.CellChoice(OPTIONS[2], ("small", "mqa/nq<nk/full"), reset_chart=False)
    # The next rerun reports the same click: still that cell, nothing to reset.
    again = frames.choose_cell(OPTIONS, choice.cell, ("small", "mqa/nq<nk/full"), choice.applied)
    assert again == choice


def test_choose_cell_the_selectbox_moves_away_from_an_old_click_and_resets_the_chart():
    clicked = ("small", "mqa/nq<nk/full")
    choice = frames.choose_cell(OPTIONS, OPTIONS[1], clicked, clicked)
    assert choice.cell == OPTIONS[1] and choice.applied is None and choice.reset_chart
    # After the reset the chart reports no click; a click on the same cell as before is news again.
    assert frames.choose_cell(OPTIONS, OPTIONS[1], None, None) == frames.CellChoice(OPTIONS[1], None, False)
    assert frames.choose_cell(OPTIONS, OPTIONS[1], clicked, None).cell == OPTIONS[2]


def test_choose_cell_without_a_click_keeps_the_selectbox_or_falls_back_to_the_worst():
    assert frames.choose_cell(OPTIONS, OPTIONS[1], None, None).cell == OPTIONS[1]
    assert frames.choose_cell(OPTIONS, "gone × cell", None, None).cell == OPTIONS[0]
    assert frames.choose_cell(OPTIONS, None, None, None).cell == OPTIONS[0]


def test_choose_cell_a_stale_click_elsewhere_changes_nothing_but_is_reset():
    choice = frames.choose_cell(OPTIONS, OPTIONS[1], ("degenerate", "mha/nq=nk/causal"), None)
    assert choice.cell == OPTIONS[1] and choice.reset_chart and choice.applied is None
    with pytest.raises(ValueError, match="at least one cell"):
        frames.choose_cell([], None, None, None)
