"""`lowbit export`: a run, a commit, or a commit range (by recording order) as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.store import open_store
from harness.store.export import CSV_COLUMNS
from tests.harness.postgres import postgres_url_fixture  # noqa: F401
from tests.harness.store_rows import make_rows, start_run

COMMITS = ["1111111", "2222222", "3333333", "4444444"]


@pytest.fixture(params=["sqlite", "postgresql"])
def history(request, tmp_path):
    """Four commits, one run each (two runs for the second), five results per run."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lowbit.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    run_ids = {}
    with open_store(url) as store:
        kernel = store.kernel_id("int8", "s")
        for commit in [COMMITS[0], COMMITS[1], COMMITS[1], COMMITS[2], COMMITS[3]]:
            run = start_run(store, commit=commit + "0" * 33)
            rows = make_rows(5, fail_every=5, tag=f"run{run}")
            rows[1].metrics["rel_l2"] = math.inf
            store.record_results(run, kernel, rows)
            store.finish_run(run, "complete")
            run_ids.setdefault(commit, []).append(run)
    return url, run_ids


def _export(url, *args):
    # The commits here are made up: prefixes unknown to git are matched as given (--allow-short).
    result = CliRunner().invoke(cli, ["export", "--db", url, "--allow-short", *args])
    return result


def test_run_as_csv(history):
    url, run_ids = history
    result = _export(url, "--run", str(run_ids[COMMITS[0]][0]), "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 5
    assert {r["commit"] for r in rows} == {COMMITS[0] + "0" * 33}
    assert rows[0]["status"] == "fail" and rows[0]["failed_property"] == "error_budget"
    assert rows[1]["rel_l2"] == "inf"
    assert json.loads(rows[2]["samples_ms"]) == [1.0, 1.5, 2.0]
    assert json.loads(rows[2]["params"])["seed"] == 2
    assert json.loads(rows[3]["metrics"]) == {"extra": 3}


def test_commit_range_is_inclusive_by_recording_order(history, tmp_path):
    url, run_ids = history
    out = tmp_path / "range.json"
    result = _export(url, "--commits", f"{COMMITS[1]}..{COMMITS[2]}", "--format", "json", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())  # strict JSON: inf was written as a string
    got = [run["id"] for run in doc["runs"]]
    assert got == [*run_ids[COMMITS[1]], *run_ids[COMMITS[2]]]
    assert all(len(run["results"]) == 5 for run in doc["runs"])
    assert doc["runs"][0]["results"][1]["metrics"]["rel_l2"] == "inf"
    assert "wrote 15 result(s) of 3 run(s)" in result.stderr


def test_single_commit_prefix(history):
    url, run_ids = history
    result = _export(url, "--commit", COMMITS[1], "--format", "json")
    assert result.exit_code == 0
    assert [r["id"] for r in json.loads(result.output)["runs"]] == run_ids[COMMITS[1]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "999"], "no run with id 999"),
        (["--commit", "abcdef9"], "no runs recorded for commit"),
        (["--commits", f"{COMMITS[2]}..{COMMITS[0]}"], "comes after"),
        (["--commits", "1111111"], "malformed commit range"),
        (["--run", "1", "--commit", COMMITS[0]], "exactly one of"),
        ([], "exactly one of"),
    ],
)
def test_bad_selection_exit_2(history, args, message):
    url, _ = history
    result = _export(url, *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_export_of_missing_database_creates_nothing(tmp_path):
    result = _export(f"sqlite:///{tmp_path / 'none.db'}", "--run", "1")
    assert result.exit_code == 2 and "no lowbit database" in result.stderr
    assert not (tmp_path / "none.db").exists()
