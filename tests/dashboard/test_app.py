"""Every page under Streamlit's AppTest: no exception, the expected widgets, tables and metrics, and
filters that change what is shown. One synthetic history (tests/dashboard/history.py) backs them all."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
from streamlit.testing.v1 import AppTest

import dashboard
from dashboard.loaders import DB_ENV
from tests.dashboard.history import commit_subject

APP = Path(dashboard.__file__).parent / "app.py"
TIMEOUT_S = 60


def _app(monkeypatch, url: str, page: str | None = None) -> AppTest:
    monkeypatch.setenv(DB_ENV, url)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    if page is not None:
        at.switch_page(f"page_scripts/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))


def _chart_data(chart) -> pd.DataFrame:
    """The rows a chart sends to the browser (its one dataset, as Arrow)."""
    [dataset] = chart.proto.datasets
    return pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()


def _chart_digest(at: AppTest) -> list[str]:
    """What the charts draw: a hash of each chart's data and spec, to tell a changed chart apart."""
    return [
        hashlib.sha256(c.proto.spec.encode() + b"".join(d.data.data for d in c.proto.datasets)).hexdigest()
        for c in _charts(at)
    ]


def test_overview(monkeypatch, history_db):
    url, planted = history_db
    at = _app(monkeypatch, url)
    assert at.title[0].value == "Overview"
    metrics = _metrics(at)
    assert metrics["open counterexamples"] == "1"
    assert metrics["unfinished runs"] == "1"
    assert metrics["branches × environments"] == "2"
    # One summary table per (branch, environment), and a regressions table for main (int8 failing).
    assert len(at.dataframe) >= 2
    kernels = set(at.dataframe[0].value["kernel"])
    assert kernels == {"fp16", "int8", "attn", "int8_qk"}
    assert any("running" in w.value for w in at.warning)
    assert "run status" in metrics
    assert len(_charts(at)) >= 4  # status and speed per measurement
    # The password-free database name is shown; the caption names the runs.
    assert any(f"{len(planted.run_ids)} runs" in c.value for c in at.caption)
    # Each measurement is headed by its commit's short sha and subject line (Markdown-escaped).
    newest = planted.commits[-1]
    subject = commit_subject(len(planted.commits) - 1, planted)
    heads = [h.value.replace("\\", "") for h in at.subheader]
    assert f"main · {newest[:8]} · {subject}" in heads


def test_trends_filters_change_the_charts(monkeypatch, history_db):
    url, planted = history_db
    at = _app(monkeypatch, url, "trends")
    assert at.title[0].value == "Trends"
    labels = {w.label for w in at.multiselect} | {s.label for s in at.selectbox}
    assert {
        "kernel",
        "environment",
        "branch",
        "distribution family",
        "head dim",
        "causal",
        "layout",
    } <= labels
    assert {"sequence length (Nk)"} <= labels
    at.selectbox(key="trend_kernel").set_value("int8").run()
    everything = _chart_digest(at)
    assert len(everything) >= 4
    cases_all = int(_metrics(at)["cases in newest run"])
    at.multiselect(key="trend_family").set_value(["outliers"]).run()
    at.multiselect(key="trend_branch").set_value(["main"]).run()
    assert not at.exception
    outliers = _chart_digest(at)
    assert outliers != everything
    metrics = _metrics(at)
    assert int(metrics["cases in newest run"]) < cases_all
    assert metrics["commits"] == str(len(planted.commits))
    assert int(metrics["marked jumps"]) >= 1  # the planted error jump at regress_at
    steps, flagged = at.dataframe[0].value, at.dataframe[1].value
    assert list(steps["short"]) == [planted.commits[planted.regress_at][:8]]
    assert list(steps["metric"]) == ["rel_l2"]
    assert planted.commits[planted.regress_at][:8] in set(flagged["short"])
    # Every point's tooltip names its commit: short sha, subject line and time.
    chart = _charts(at)[0]
    tooltip = json.loads(chart.proto.spec)["layer"][0]["encoding"]["tooltip"]
    assert [t["field"] for t in tooltip][:3] == ["short", "subject", "recorded"]
    points = _chart_data(chart)
    [regressed] = points[points["short"] == planted.commits[planted.regress_at][:8]].to_dict("records")
    assert regressed["subject"] == commit_subject(planted.regress_at, planted)
    assert len(regressed["recorded"]) == len("2026-11-23 05:00") and regressed["recorded"][:2] == "20"
    assert "(no subject recorded)" in set(points["subject"])  # commit 6 was recorded without one
    assert list(steps["subject"]) == [commit_subject(planted.regress_at, planted)]
    at.multiselect(key="trend_head_dim").set_value([128]).run()
    assert int(_metrics(at)["cases in newest run"]) < int(metrics["cases in newest run"])
    shown = len(_charts(at))
    at.multiselect(key="trend_charts").select("worst_row_rel_l2").select("tflops").run()
    assert len(_charts(at)) == shown + 2


def test_trends_empty_selection_says_so(monkeypatch, history_db):
    url, _ = history_db
    at = _app(monkeypatch, url, "trends")
    at.multiselect(key="trend_len").set_value(["1k–4k"]).run()
    at.multiselect(key="trend_causal").set_value([True]).run()
    assert any("No results" in i.value for i in at.info)


def test_cases_heatmap_cell_case_and_repro(monkeypatch, history_db):
    url, planted = history_db
    at = _app(monkeypatch, url, "cases")
    at.selectbox(key="cases_kernel").set_value("int8").run()
    main = next(o for o in at.selectbox(key="cases_measurement").options if o.startswith("main"))
    at.selectbox(key="cases_measurement").set_value(main).run()
    heatmap = json.loads(_charts(at)[0].proto.spec)
    assert heatmap["layer"][0]["mark"]["type"] == "rect"
    # A click selects a cell: the chart is drawn with its point selection turned on.
    assert [p["name"] for p in heatmap["params"]] == ["cell"]
    assert list(_charts(at)[0].proto.selection_mode) == ["cell"]
    # Cells are offered worst first: the planted failure's cell leads, and is the one outlined.
    assert at.selectbox(key="cases_cell").value == "outliers × mha/nq=nk/full"
    chosen = _chart_data(_charts(at)[0]).query("chosen")
    assert list(zip(chosen["family"], chosen["shape_class"], strict=True)) == [("outliers", "mha/nq=nk/full")]
    assert at.selectbox(key="cases_case").value == planted.failing_case
    listed = at.dataframe[0].value
    assert listed.iloc[0]["status"] == "fail"
    repro = at.code[0].value
    assert repro.startswith("lowbit fuzz --kernel int8 --case ")
    assert '"distribution":"outliers"' in repro
    assert any(planted.failing_case in s.value for s in at.subheader)
    before = _chart_digest(at)
    at.selectbox(key="cases_cell").set_value("gaussian × mha/nq=nk/full").run()
    assert at.dataframe[0].value.iloc[0]["status"] == "pass"
    # The selectbox and the heatmap stay in sync: the outline follows the keyboard's choice.
    chosen = _chart_data(_charts(at)[0]).query("chosen")
    assert list(chosen["family"]) == ["gaussian"]
    assert _chart_digest(at) != before  # the chosen case's history is another case's


def test_failures_lists_open_counterexample(monkeypatch, history_db):
    url, planted = history_db
    at = _app(monkeypatch, url, "failures")
    metrics = _metrics(at)
    assert metrics["open"] == "1" and metrics["fixed"] == "0"
    table = at.dataframe[0].value
    assert list(table["kernel"]) == ["int8"] and list(table["property"]) == ["error_budget"]
    assert table.iloc[0]["first_seen"] == planted.commits[planted.regress_at][:8]
    assert "0.204" in table.iloc[0]["measured"] and "0.12" in table.iloc[0]["allowed"]
    assert at.code[0].value.startswith("lowbit fuzz --kernel int8 --case ")
    at.multiselect(key="failures_kernel").set_value(["int8"]).run()
    assert _metrics(at)["open"] == "1"


def test_compare_two_commits(monkeypatch, history_db):
    url, planted = history_db
    at = _app(monkeypatch, url, "compare")
    options = at.selectbox(key="compare_b").options
    newest_main = next(o for o in options if o.startswith(planted.commits[-1][:8]) and "· main ·" in o)
    first_main = next(o for o in options if o.startswith(planted.commits[0][:8]) and "· main ·" in o)
    # The pickers name each commit by short sha, subject and time.
    regressed = next(o for o in options if o.startswith(planted.commits[planted.regress_at][:8]))
    assert commit_subject(planted.regress_at, planted)[:40] in regressed
    at.selectbox(key="compare_b").set_value(newest_main).run()
    at.selectbox(key="compare_a").set_value(first_main).run()
    metrics = _metrics(at)
    assert metrics["newly failing"] == "1"  # the planted int8 failure
    assert int(metrics["less precise"]) >= 1  # int8 on outliers, 3x rel-L2
    table = at.dataframe[0].value
    assert {"speed_ratio", "error_ratio", "significant"} <= set(table.columns)
    attn = table[table["kernel"] == "attn"]
    assert (attn["speed_ratio"] > 1.4).all()  # the planted 1.6x slowdown
    spec = json.loads(_charts(at)[0].proto.spec)
    assert spec["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    before = _chart_digest(at)
    at.multiselect(key="compare_kernel").set_value(["attn"]).run()
    assert _chart_digest(at) != before
    assert set(at.dataframe[0].value["kernel"]) == {"attn"}


def test_empty_database_page(monkeypatch, empty_db):
    at = _app(monkeypatch, empty_db)
    assert any("holds no runs" in i.value for i in at.info)
    assert "lowbit demo" in at.code[0].value


def test_unusable_database_hides_password(monkeypatch):
    monkeypatch.setenv(DB_ENV, "postgresql+psycopg://ci:s3cretpw@127.0.0.1:1/lowbit")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert "cannot be read" in shown and "s3cretpw" not in shown


def test_pages_import_no_gpu_stack(history_db, tmp_path):
    """The dashboard never imports torch or triton: every page run in a fresh interpreter leaves them out."""
    url, _ = history_db
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"os.environ[{DB_ENV!r}] = {url!r}\n"
        f"at = AppTest.from_file({str(APP)!r}, default_timeout={TIMEOUT_S}).run()\n"
        "for page in ('overview', 'trends', 'cases', 'failures', 'compare'):\n"
        "    at.switch_page(f'page_scripts/{page}.py').run()\n"
        "    assert not at.exception, (page, [e.value for e in at.exception])\n"
        "    assert at.title[0].value == page.capitalize(), page\n"
        "print(sorted(m for m in ('torch', 'triton', 'kernels') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
