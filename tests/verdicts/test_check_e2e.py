"""`lowbit check` on a REAL history: the harness records one alias through a correct kernel, a re-run of
it, a planted bug, the fix, and a planted precision loss (tests/verdicts/variants.py), each as its own
commit on the CPU interpreter; `check` must flag exactly what changed, with the right exit code.

Five `lowbit run`s of one kernel over the quick corpus with no fuzzing (about 5 s each on two cores).
"""

from __future__ import annotations

import json
import statistics
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.store import open_store
from tests.conftest import DEVICE

pytestmark = pytest.mark.e2e

V = "tests.verdicts.variants"
C1, C2, C3, C4, C5 = (c * 40 for c in "12345")
HISTORY = (
    (C1, None, "correct"),
    (C2, C1, "correct"),  # A/A: the same kernel again
    (C3, C2, "planted_bug"),
    (C4, C3, "correct"),  # the fix
    (C5, C4, "precision_loss"),
)


def lowbit(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """The database after the five runs, and each run's results by case id."""
    db = f"sqlite:///{tmp_path_factory.mktemp('verdicts') / 'history.db'}"
    for commit, parent, variant in HISTORY:
        # Runs record parents from git; these fake commits get theirs from the previous run's commit via
        # --commit only, so write them afterwards (what `lowbit run` records for a real git history).
        result = lowbit(
            "run", "--db", db, "--commit", commit, f"--kernel=k={V}:{variant}", "--fuzz-examples", "0"
        )
        assert result.exit_code == (1 if variant == "planted_bug" else 0), result.output
        _set_parents(db, commit, [parent] if parent else [])
    store = open_store(db, create=False)
    by_commit = {}
    for run in store.runs():
        by_commit[run["commit"]] = {r["case_id"]: r for r in store.results(run["id"])}
    store.close()
    return db, by_commit


def _set_parents(db: str, commit: str, parents: list[str]) -> None:
    import sqlalchemy as sa

    from harness.store.models import Run

    store = open_store(db, create=False)
    with store.engine.begin() as conn:
        conn.execute(sa.update(Run.__table__).where(Run.__table__.c.commit == commit).values(parents=parents))
    store.close()


# Interpreter timings are never judged. On a GPU they are, and these runs share it with whatever else the
# machine runs (pytest -n puts other test processes on it): scheduling noise, not the kernels, would move
# the medians. So on a GPU the latency rule is switched off here by a threshold no A/A difference reaches;
# failures and precision are judged as everywhere. (bench/gpu_verdicts.sh checks GPU latency verdicts, A/A
# and a planted slowdown, on an idle GPU.)
LATENCY_OFF = () if DEVICE == "cpu" else ("--latency-threshold", "1000000")


def check(db: str, commit: str, *extra: str):
    result = lowbit("check", "--db", db, "--commit", commit, "--format", "json", *LATENCY_OFF, *extra)
    return result.exit_code, json.loads(result.stdout)


def kinds(report: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in report["entries"]:
        out.setdefault(e["kind"], set()).add(e["case_id"])
    return out


def test_first_commit_has_nothing_to_compare_with(history):
    db, _ = history
    code, report = check(db, C1)
    assert code == 3
    assert report["status"] == "not-comparable"
    assert report["baseline"]["commit"] is None
    assert set(kinds(report)) == {"new-case"}


def test_same_kernel_again_is_clean(history):
    db, runs = history
    code, report = check(db, C2)
    assert code == 0, report["problems"]
    assert report["baseline"]["commit"] == C1
    assert "nearest ancestor" in report["baseline"]["reason"]
    assert kinds(report) == {"unchanged": set(runs[C2])}
    if DEVICE == "cpu":
        # Interpreter timings are recorded but never judged.
        assert all(e["latency"]["direction"] == "not-compared" for e in report["entries"])
    else:
        # GPU timings are compared (here with the rule off), and none is a regression.
        assert all(e["latency"]["direction"] != "not-compared" for e in report["entries"])


def test_planted_bug_is_a_new_failure_on_exactly_the_failing_cases(history, tmp_path):
    db, runs = history
    failing = {cid for cid, r in runs[C3].items() if r["status"] == "fail"}
    causal = {cid for cid, r in runs[C3].items() if r["params"]["causal"]}
    assert failing == causal and failing  # the bug: causal ignored
    md, junit = tmp_path / "r.md", tmp_path / "r.xml"
    code, report = check(db, C3, "--markdown", str(md), "--junit", str(junit))
    assert code == 1
    assert report["baseline"]["commit"] == C2
    got = kinds(report)
    assert got["new-failure"] == failing
    assert got["unchanged"] == set(runs[C3]) - failing
    for e in report["entries"]:
        if e["kind"] == "new-failure":
            assert e["failed_property"] == runs[C3][e["case_id"]]["failed_property"]
            assert e["repro"].startswith("lowbit fuzz --kernel k --case '")
            assert (
                json.loads(e["repro"].split("--case ", 1)[1].strip("'")) == runs[C3][e["case_id"]]["params"]
            )
    text = md.read_text()
    assert text.index("New failures") < text.index("Unchanged")
    assert f"New failures ({len(failing)})" in text
    suite = ET.parse(junit).getroot()
    assert int(suite.get("tests")) == len(runs[C3]) and int(suite.get("failures")) == len(failing)
    failed_cases = {tc.get("name") for tc in suite.iter("testcase") if tc.find("failure") is not None}
    assert failed_cases == failing


def test_the_fix_shows_as_fixed(history):
    db, runs = history
    code, report = check(db, C4)
    assert code == 0
    failing_before = {cid for cid, r in runs[C3].items() if r["status"] == "fail"}
    got = kinds(report)
    assert got["fixed"] == failing_before
    assert got["unchanged"] == set(runs[C4]) - failing_before


def test_planted_precision_loss_is_flagged_as_precision_only(history):
    db, runs = history
    code, report = check(db, C5)
    assert code == 1
    got = kinds(report)
    assert "new-failure" not in got and "latency" not in got
    # Every case whose error grew by more than 10% and the floor; an exact-zero-error case stays put.
    grew = {
        cid
        for cid, r in runs[C5].items()
        if r["metrics"]["rel_l2"] > 1.1 * runs[C4][cid]["metrics"]["rel_l2"] + 1e-5
        or r["metrics"]["max_abs"] > 1.1 * runs[C4][cid]["metrics"]["max_abs"] + 1e-4
    }
    assert grew and got["precision"] == grew
    for e in report["entries"]:
        if e["kind"] == "precision":
            ratio = e["precision"]["ratio"]  # "inf" where the error was exactly 0 at the baseline
            assert e["precision"]["direction"] == "worse" and (ratio == "inf" or ratio > 1.1)
    # A looser threshold lets the same change through, except where the error was exactly zero before:
    # any relative threshold is exceeded there, and only the absolute floor judges.
    zero = {cid for cid in grew if runs[C4][cid]["metrics"]["rel_l2"] == 0}
    code, report = check(db, C5, "--precision-threshold", "100000")
    assert kinds(report).get("precision", set()) == zero
    assert code == (1 if zero else 0)


def test_explicit_baseline_and_kernel_filter(history):
    db, _ = history
    code, report = check(db, C5, "--baseline", C3[:10])
    assert code == 1 and report["baseline"]["commit"] == C3
    assert "--baseline" in report["baseline"]["reason"]
    code, report = check(db, C2, "--kernel", "nothing-like-it")
    assert code == 3 and report["entries"] == []


def test_history_and_bisect_find_the_precision_step(history):
    db, runs = history
    case = next(
        cid for cid, r in runs[C5].items() if r["metrics"]["rel_l2"] > 2 * runs[C4][cid]["metrics"]["rel_l2"]
    )
    result = lowbit("history", "--db", db, "--kernel", "k", "--case", case, "--metric", "rel_l2", "--json")
    assert result.exit_code == 0, result.output
    (series,) = json.loads(result.stdout)
    (env,) = series["environments"]
    assert [p["commit"] for p in env["points"]][-1] == C5
    assert [c["commit"] for c in env["change_points"]][-1] == C5
    result = lowbit("bisect", "--db", db, "--kernel", "k", "--case", case, "--metric", "rel_l2")
    assert result.exit_code == 0, result.output
    assert f"at commit {C5}" in result.stdout and C4 in result.stdout
    # The planted bug's failures stepped up at C3 and back down at C4; non-causal cases never failed.
    causal = next(cid for cid, r in runs[C3].items() if r["status"] == "fail")
    steady = next(cid for cid, r in runs[C3].items() if r["status"] == "pass")
    result = lowbit("history", "--db", db, "--kernel", "k", "--metric", "failures", "--json")
    found = {s["case_id"]: s["environments"][0]["change_points"] for s in json.loads(result.stdout)}
    assert steady not in found
    assert [(c["commit"], c["direction"]) for c in found[causal]] == [(C3, "up"), (C4, "down")]
    result = lowbit("bisect", "--db", db, "--kernel", "k", "--case", steady, "--metric", "failures")
    assert result.exit_code == 1 and "nothing to bisect" in result.stdout
    assert lowbit("history", "--db", db, "--kernel", "nope").exit_code == 2


def test_usage_errors_exit_2(history, tmp_path):
    db, _ = history
    assert lowbit("check", "--db", db, "--commit", "not-a-sha").exit_code == 2
    never = lowbit("check", "--db", db, "--commit", "f" * 40, "--format", "json")
    assert never.exit_code == 3 and "no run of commit" in never.output  # nothing measured: not clean
    assert lowbit("check", "--db", db, "--commit", C2, "--baseline", "e" * 40).exit_code == 2
    assert lowbit("check", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--commit", C2).exit_code == 2
    assert lowbit("check", "--db", db, "--commit", C2, "--latency-threshold", "-5").exit_code == 2
    assert lowbit("check", "--db", db, "--commit", C2, "--p-value", "2").exit_code == 2


@pytest.mark.slow
def test_interpreter_slowdown_is_recorded_but_never_judged(tmp_path):
    """A kernel 20 ms slower per call in the CPU interpreter: the timings show it, the gate does not
    judge interpreter timings (they measure the interpreter), so the check is clean and says why."""
    db = f"sqlite:///{tmp_path / 'slow.db'}"
    for commit, parent, variant in ((C1, None, "correct"), (C2, C1, "slowdown")):
        result = lowbit(
            "run", "--db", db, "--commit", commit, f"--kernel=k={V}:{variant}", "--fuzz-examples", "0"
        )
        assert result.exit_code == 0, result.output
        _set_parents(db, commit, [parent] if parent else [])
    store = open_store(db, create=False)
    first, second = (store.results(r["id"]) for r in store.runs())
    store.close()
    # Per case, the interpreter's first call carries start-up noise; across cases the sleep shows.
    p50 = [statistics.median(r["latency"]["p50_ms"] for r in run) for run in (first, second)]
    assert p50[1] > p50[0] + 10
    code, report = check(db, C2)
    assert code == 0
    assert all(e["kind"] == "unchanged" for e in report["entries"])
    assert {e["latency"]["reason"] for e in report["entries"]} == {"interpreter timings are never judged"}
