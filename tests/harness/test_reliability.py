"""Nothing lost, nothing silent: runners stopped by signals or killed, kernels that crash on some shapes,
abandoned runs, idempotent ingests, full SHAs, one error prefix (the quick, deterministic versions; the
seeded fault-injection sweep over PostgreSQL shards is in test_fault_injection.py, marked slow).

Runners here are real ``python -m harness.cli run`` processes; a kernel of tests/harness/crashing_kernels
writes a marker file when it starts hanging, so a signal reaches the runner at a known point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.cli.run import LineProgress
from harness.run.config import RunUsageError, case_timeout, configured_case_timeout, default_case_timeout
from harness.run.corpus import build_corpus
from harness.search.device import select_device
from harness.search.targets import DEFAULT_HEAD_DIMS
from harness.store import open_store
from harness.store.engine import create_engine
from tests.harness.crashing_kernels import MARKER_ENV
from tests.pythonpath import repo_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CK = "tests.harness.crashing_kernels"
COMMIT = "5eed" * 10
DEVICE = select_device(None)


def corpus_ids() -> list[str]:
    return [c.case_id for c in build_corpus("quick", DEVICE, DEFAULT_HEAD_DIMS, ("float16", "bfloat16"))]


def start_runner(db: str, marker: Path, *kernels: str) -> subprocess.Popen:
    env = repo_env(**{MARKER_ENV: str(marker)})
    command = [sys.executable, "-m", "harness.cli", "run", "--db", db, "--commit", COMMIT]
    command += ["--fuzz-examples", "0", "--case-timeout", "600", *[f"--kernel={k}" for k in kernels]]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(marker: Path, proc: subprocess.Popen, limit_s: float = 180) -> int:
    """The pid of the worker hanging in its second case, once it wrote the marker."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        if proc.poll() is not None:
            pytest.fail(f"runner ended early: {proc.stdout.read().decode()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the kernel never reached its second case")


def gone(pid: int, limit_s: float = 15) -> bool:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_signal_writes_what_was_measured_and_ends_the_run_interrupted(tmp_path, signum):
    db, marker = f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "marker"
    proc = start_runner(db, marker, f"hang={CK}:hang_on_second_marked", f"ok={CK}:correct")
    worker = wait_for(marker, proc)
    proc.send_signal(signum)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 128 + signum, output
    assert gone(worker)

    with open_store(db, create=False) as store:
        (run,) = store.runs()
        assert run["status"] == "interrupted"
        assert f"interrupted by {signal.Signals(signum).name}" in run["note"]
        rows = store.results(run["id"])
    ids = corpus_ids()
    hang = [r for r in rows if r["kernel"] == "hang"]
    ok = [r for r in rows if r["kernel"] == "ok"]
    # The case measured before the signal is written; every other planned case is there as skipped.
    assert [r["case_id"] for r in hang] == ids and [r["case_id"] for r in ok] == ids
    assert [r["status"] for r in hang] == ["pass"] + ["skipped"] * (len(ids) - 1)
    assert {r["status"] for r in ok} == {"skipped"}
    assert all("interrupted" in r["message"] for r in rows if r["status"] == "skipped")


def test_sigkill_leaves_a_run_that_the_next_open_marks_abandoned(tmp_path, monkeypatch):
    db, marker = f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "marker"
    proc = start_runner(db, marker, f"hang={CK}:hang_on_second_marked")
    worker = wait_for(marker, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert gone(worker)  # the worker notices its parent is gone and exits: no hung kernel left behind

    with open_store(db, create=False) as store:
        assert [r["status"] for r in store.runs()] == ["running"]  # its heartbeat is still fresh
    time.sleep(1.2)
    monkeypatch.setenv("LOWBIT_ABANDON_AFTER", "1")
    with open_store(db, create=False) as store:
        (run,) = store.runs()
        assert run["status"] == "abandoned"
        assert "no heartbeat" in run["note"]
        assert store.heartbeat(run["id"]) is False  # a run that ended no longer beats


def test_heartbeat_keeps_a_run_alive(tmp_path):
    db = f"sqlite:///{tmp_path / 'h.db'}"
    with open_store(db) as store:
        run = store.start_run(
            commit=COMMIT,
            parents=[],
            branch=None,
            suite="quick",
            shard=None,
            environment={"device": "cpu"},
            lowbit_version="t",
        )
        time.sleep(0.3)
        assert store.heartbeat(run)
        assert store.mark_abandoned(0.25) == []
        time.sleep(0.3)
        assert store.mark_abandoned(0.25) == [run]
        store.finish_run(run, "complete")  # the runner that did finish knows better
        assert store.runs()[0]["status"] == "complete"


def test_kernel_crashing_on_every_third_length_has_every_case_accounted_for(tmp_path):
    """The issue's case: 5 of 31 cases recorded and the rest silently absent. Now every case is a row."""
    from harness.run.runner import RunConfig, execute, prepare

    db = f"sqlite:///{tmp_path / 'h.db'}"
    config = RunConfig(
        db=db, commit=COMMIT, kernels=(f"c3={CK}:crash_on_every_third_length",), fuzz_examples=0
    )
    outcome = execute(prepare(config))
    assert outcome.status == "complete" and outcome.exit_code == 1
    cases = build_corpus("quick", DEVICE, DEFAULT_HEAD_DIMS, ("float16", "bfloat16"))
    rows = open_store(db, create=False).results(outcome.run_id)
    assert [r["case_id"] for r in rows] == [c.case_id for c in cases]
    expected = ["crash" if c.nk % 3 == 1 else "pass" for c in cases]
    assert [r["status"] for r in rows] == expected
    assert "crash" in expected and "pass" in expected
    (summary,) = outcome.summaries
    assert (summary.crashed, summary.passed, summary.skipped) == (
        expected.count("crash"),
        expected.count("pass"),
        0,
    )


def test_case_timeout_setting_and_default():
    assert configured_case_timeout(2.5) == 2.5
    with pytest.raises(RunUsageError, match="--case-timeout: expected a number of seconds > 0"):
        configured_case_timeout(0)
    small = {"batch": 1, "hq": 2, "nq": 64, "nk": 64, "head_dim": 64}
    big = {**small, "nq": 4096, "nk": 4096}
    # Sized by device and shape: a bigger case gets longer; the user's setting wins.
    assert case_timeout(None, "cpu", big) > case_timeout(None, "cpu", small) >= default_case_timeout("cpu", 1)
    assert case_timeout(7.0, "cpu", big) == 7.0


def test_case_timeout_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOWBIT_CASE_TIMEOUT", "12")
    assert configured_case_timeout(None) == 12.0
    monkeypatch.setenv("LOWBIT_CASE_TIMEOUT", "soon")
    result = CliRunner().invoke(
        cli,
        ["run", "--db", f"sqlite:///{tmp_path / 'h.db'}", "--commit", COMMIT, f"--kernel=ok={CK}:correct"],
    )
    assert result.exit_code == 2
    assert "lowbit: error: $LOWBIT_CASE_TIMEOUT: expected a number of seconds > 0" in result.stderr
    assert not (tmp_path / "h.db").exists()


def test_progress_lines_when_output_is_not_a_terminal():
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    progress = LineProgress(Console(file=buf, width=200), interval=0.05)
    progress.kernel_started("int8", 3)
    progress.phase("int8", "corpus")
    progress.case_started("int8", "abc123")
    time.sleep(0.06)
    progress.tick()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "lowbit run: int8: started, 3 case(s) planned"
    assert lines[1].startswith(
        "lowbit run: int8: corpus 0/3 case(s) done, 0 not passing, case abc123 running"
    )
    progress.tick()  # less than the interval since the last line: nothing printed
    assert len(buf.getvalue().splitlines()) == 2


def git_head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()


def test_ingest_expands_short_shas_and_is_idempotent(tmp_path, monkeypatch):
    bench = tmp_path / "bench.json"
    bench.write_text(
        '{"machine_info": {"node": "h"}, "benchmarks": [{"fullname": "t::a", "stats": '
        '{"median": 0.001, "mean": 0.001, "stddev": 0.0}}]}'
    )
    url = f"sqlite:///{tmp_path / 'h.db'}"
    head = git_head()
    monkeypatch.chdir(ROOT)
    first = CliRunner().invoke(cli, ["ingest", str(bench), "--commit", head[:7], "--db", url])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli, ["ingest", str(bench), "--commit", head[:9], "--db", url])
    assert again.exit_code == 0 and "already ingested" in again.output
    with open_store(url, create=False) as store:
        assert [r["commit"] for r in store.runs()] == [head]
        assert store.count("results") == 1
    export = CliRunner().invoke(cli, ["export", "--db", url, "--commit", head[:7], "--format", "json"])
    assert export.exit_code == 0 and head in export.output

    monkeypatch.chdir(tmp_path)  # not a git repository: a short SHA is refused unless --allow-short
    refused = CliRunner().invoke(cli, ["ingest", str(bench), "--commit", "abcdef1", "--db", url])
    assert refused.exit_code == 2
    assert refused.stderr.startswith("lowbit: error: short commit abcdef1 cannot be resolved")
    allowed = CliRunner().invoke(
        cli, ["ingest", str(bench), "--commit", "abcdef1", "--db", url, "--allow-short"]
    )
    assert allowed.exit_code == 0
    with open_store(url, create=False) as store:
        assert sorted(r["commit"] for r in store.runs()) == sorted([head, "abcdef1"])


def test_db_current_on_a_newer_schema_says_upgrade_lowbit(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    open_store(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    result = CliRunner().invoke(cli, ["db", "current", "--db", url])
    assert result.exit_code == 2
    assert "newer than this lowbit" in result.stderr and "upgrade lowbit" in result.stderr
    assert "lowbit db upgrade" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--shard", "9/2", "--commit", COMMIT, f"--kernel=ok={CK}:correct"],
        ["db", "current", "--db", "nope://x"],
        ["export", "--run", "1", "--commit", COMMIT],
        ["ingest", "/no/such/file.json", "--commit", COMMIT],
        ["fuzz", "--kernel", "no_such_kernel"],
        ["run", "--suite", "enormous"],  # click's own usage error
    ],
)
def test_every_command_reports_errors_with_one_prefix(args, tmp_path, monkeypatch):
    monkeypatch.setenv("LOWBIT_DB_URL", f"sqlite:///{tmp_path / 'h.db'}")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "lowbit: error: " in result.stderr
    assert "Error:" not in result.stderr
