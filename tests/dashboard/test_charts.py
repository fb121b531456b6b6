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
            "started_at": ["t0", "t1", "t2"],
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
