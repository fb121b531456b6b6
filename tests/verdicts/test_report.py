"""Reports: Markdown readable at 1,000 cases (summary first, new failures, regressions, improvements,
folded details), JUnit XML with one test case per kernel x case, JSON with everything."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from harness.store import open_store
from harness.verdicts import COMMENT_MARKER, compare, to_json, to_junit, to_markdown
from tests.verdicts.synthetic import cid, record

A, B = "a" * 40, "b" * 40
N = 1000
SLOWER = range(100, 180)  # 80 slower cases: more than a section shows
FAILING = (3, 500, 999)
FIXED = (7,)
BETTER = range(200, 210)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('report') / 'r.db'}")
    record(store, A, cases=N, samples=20, failing=FIXED)
    record(
        store,
        B,
        [A],
        cases=N,
        samples=20,
        failing=FAILING,
        latencies={i: 1.25 for i in SLOWER},
        errors={i: 1e-4 for i in BETTER},
    )
    yield compare(store, B)
    store.close()


def test_markdown_at_a_thousand_cases(comparison):
    text = to_markdown(comparison)
    assert text.startswith(COMMENT_MARKER)
    assert len(text) < 65_536  # GitHub's PR comment limit
    order = [
        text.index("regressed"),
        text.index("| new failures |"),
        text.index("### ❌ New failures (3)"),
        text.index("### 📉 Regressions (80)"),
        text.index("### 📈 Improvements (1 fixed, 10 improved)"),
        text.index("<details><summary>Unchanged: 906</summary>"),
    ]
    assert order == sorted(order)
    # Every new failure with its repro command; regressions capped, the rest counted.
    assert text.count("lowbit fuzz --kernel k --case '") == 3
    assert "…and 30 more" in text
    assert "p=" in text and "+25" in text
    # The whole unchanged list is folded into one line per kernel.
    assert "- `k`: 906 case(s)" in text


def test_counts_and_exit(comparison):
    counts = comparison.counts
    assert counts["new-failure"] == 3 and counts["latency"] == 80 and counts["fixed"] == 1
    assert counts["improvement"] == 10 and counts["unchanged"] == N - 3 - 80 - 1 - 10
    assert comparison.exit_code == 1
    assert {e.case_id for e in comparison.of_kind("new-failure")} == {cid(i) for i in FAILING}


def test_junit_has_one_testcase_per_kernel_and_case(comparison):
    suite = ET.fromstring(to_junit(comparison).split("\n", 1)[1])
    cases = list(suite.iter("testcase"))
    assert len(cases) == N == int(suite.get("tests"))
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert len(failed) == int(suite.get("failures")) == 83
    assert {cid(i) for i in FAILING} <= failed


def test_json_has_everything(comparison):
    data = json.loads(to_json(comparison))
    assert data["status"] == "regressed" and data["exit_code"] == 1
    assert len(data["entries"]) == N
    assert data["thresholds"] == {"latency": 0.05, "precision": 0.1, "p_value": 0.002}
    slow = [e for e in data["entries"] if e["kind"] == "latency"]
    assert all(e["latency"]["p_value"] < 0.002 and e["latency"]["ratio"] > 1.05 for e in slow)
