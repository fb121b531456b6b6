"""The Altair builders: a frame in, a chart out, with the encodings and data each page relies on."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd
import pytest

from dashboard import charts


def _trend():
    return pd.DataFrame(
        {
            "position": [0, 1, 2],
            "short": ["aaaa", "bbbb", "cccc"],
            "series": ["main · CPU"] * 3,
            "rel_l2": [1e-3, 3e-3, math.inf],
            "commit": ["a" * 40, "b" * 40, "c" * 40],
            "subject": ["int8: baseline", "int8: shared P scale", "(no subject recorded)"],
            "recorded": ["2026-11-23 05:00", "2026-11-23 06:00", "2026-11-23 07:00"],
            "note": ["", "", ""],
            "run_status": ["complete"] * 3,
            "flag": [False, True, False],
        }
    )


def _layer_data(chart):
    spec = chart.to_dict()
    return spec, spec["datasets"][next(iter(spec["datasets"]))]


def test_trend_chart_marks_flags_and_draws_infinity_on_top():
    chart = charts.trend_chart(_trend(), "rel_l2", "worst rel-L2", log=True)
    assert isinstance(chart, alt.LayerChart)
    spec, data = _layer_data(chart)
    values = [row["value"] for row in data]
    assert values[2] > max(values[:2])  # inf drawn above every finite point
    assert [row["marked"] for row in data] == [False, True, True]
    assert spec["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"
    assert spec["layer"][1]["mark"]["shape"] == "triangle-up"


def test_trend_chart_tooltip_names_short_sha_subject_and_time():
    spec, data = _layer_data(charts.trend_chart(_trend(), "rel_l2", "t"))
    for layer in spec["layer"]:
        fields = [t["field"] for t in layer["encoding"]["tooltip"]]
        assert fields[:3] == ["short", "subject", "recorded"]
    assert data[1]["subject"] == "int8: shared P scale" and data[1]["recorded"] == "2026-11-23 06:00"
    # Only what the chart draws travels to the browser: not the full sha, not the page's other columns.
    assert "commit" not in data[0]


def test_trend_chart_uses_the_named_flag_column():
    frame = _trend().assign(flag_p50=[True, False, False])
    _, data = _layer_data(charts.trend_chart(frame, "rel_l2", "t", flag="flag_p50"))
    assert [row["marked"] for row in data] == [True, False, True]


def test_trend_chart_missing_column_is_a_clear_error():
    with pytest.raises(ValueError, match="lacks column"):
        charts.trend_chart(_trend().drop(columns=["series"]), "rel_l2", "t")


def test_status_chart_colours_by_status():
    frame = pd.DataFrame({"kernel": ["a", "a"], "status": ["pass", "fail"], "count": [3, 1]})
    spec = charts.status_chart(frame).to_dict()
    scale = spec["encoding"]["color"]["scale"]
    assert scale["domain"][:2] == ["pass", "fail"]
    assert scale["range"][1] == charts.STATUS_COLOURS["fail"]


def test_heatmap_labels_and_caps_infinite_ratios():
    frame = pd.DataFrame(
        {
            "family": ["gaussian", "outliers", "small"],
            "shape_class": ["mha/nq=nk/full"] * 3,
            "error_ratio": [0.25, math.inf, None],
            "cases": [3, 3, 3],
            "fail": [0, 1, 0],
        }
    )
    spec, data = _layer_data(charts.heatmap_chart(frame))
    assert [row["label"] for row in data] == ["0.25", "∞", "—"]
    assert math.isfinite(data[1]["shown"]) and data[1]["shown"] > charts.BUDGET_DOMAIN[-1]
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == list(charts.BUDGET_DOMAIN)


def test_heatmap_click_selects_a_cell_and_outlines_the_chosen_one():
    frame = pd.DataFrame(
        {
            "family": ["gaussian", "outliers", "small"],
            "shape_class": ["mha/nq=nk/full"] * 3,
            "error_ratio": [0.25, 1.5, 0.1],
            "cases": [3, 3, 3],
            "fail": [0, 1, 0],
        }
    )
    chart = charts.heatmap_chart(frame, chosen=("gaussian", "mha/nq=nk/full"))
    chart.to_dict(validate=True)  # the page sends it unvalidated: the schema is checked here
    spec, data = _layer_data(chart)
    [param] = spec["params"]
    assert param["name"] == charts.CELL_SELECTION
    assert param["select"]["type"] == "point" and param["select"]["fields"] == ["family", "shape_class"]
    assert param["select"]["toggle"] is False  # one cell at a time
    assert [row["chosen"] for row in data] == [False, False, True]  # the outlined cell is drawn last
    assert data[-1]["family"] == "gaussian"
    stroke = spec["layer"][0]["encoding"]["strokeWidth"]
    assert stroke["condition"]["test"] == "datum.chosen" and stroke["condition"]["value"] > stroke["value"]
    _, unchosen = _layer_data(charts.heatmap_chart(frame))
    assert not any(row["chosen"] for row in unchosen)


def test_speed_chart_has_the_parity_rule():
    frame = pd.DataFrame({"kernel": ["int8"], "baseline": ["fp16"], "ratio": [0.6], "cases": [4]})
    spec = charts.speed_chart(frame).to_dict()
    assert spec["layer"][1]["mark"]["type"] == "rule"


def test_tradeoff_chart_drops_unplottable_points():
    frame = pd.DataFrame(
        {
            "kernel": ["k"] * 4,
            "speed_ratio": [1.2, None, 0.0, math.inf],
            "error_ratio": [0.9, 1.0, 1.0, 1.0],
            "case": ["a", "b", "c", "d"],
            "significant": ["yes", "no", "no", "no"],
        }
    )
    _, data = _layer_data(charts.tradeoff_chart(frame))
    assert [row["case"] for row in data] == ["a"]


def test_history_chart_plots_in_recording_order_coloured_by_status():
    frame = pd.DataFrame(
        {"position": [0, 1], "short": ["b", "a"], "rel_l2": [1e-3, math.inf], "status": ["pass", "fail"]}
    )
    spec, data = _layer_data(charts.history_chart(frame))
    assert spec["layer"][0]["encoding"]["x"]["field"] == "position"
    assert spec["layer"][1]["encoding"]["color"]["field"] == "status"
    assert data[1]["rel_l2"] is None  # Vega-Lite cannot draw inf: it is left out, the status still shows
