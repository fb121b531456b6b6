"""Kernel faults are verdicts in ``lowbit fuzz`` and the pytest plugin: the kernel runs in a worker.

The quick tests drive :class:`IsolatedChecker` case by case; the end-to-end ones (slow: shrinking a
crash re-runs it in fresh workers, a few seconds each) drive the CLI and a user's pytest session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.search.cases import Case
from harness.search.isolation import IsolatedChecker
from harness.search.targets import load_kernel, target_from_callable
from tests.pythonpath import repo_env

REPO = Path(__file__).resolve().parents[2]
CK = "tests.harness.crashing_kernels"


def case(nk: int, seed: int = 1) -> Case:
    return Case(
        batch=1,
        hq=2,
        hkv=2,
        nq=16,
        nk=nk,
        head_dim=64,
        dtype="float16",
        causal=False,
        sm_scale=None,
        distribution="gaussian",
        seed=seed,
    )


@pytest.mark.interpreter
def test_segfault_is_a_crashed_failure_and_the_next_case_gets_a_fresh_worker():
    target = load_kernel(f"c3={CK}:crash_on_every_third_length")
    with IsolatedChecker(target, "cpu", timeout_s=60) as check:
        assert check.isolated and not check.note
        ok = check(target, case(17), "cpu")
        assert ok.status == "pass", ok.message
        crashed = check(target, case(16), "cpu")
        assert (crashed.status, crashed.failed_property) == ("fail", "crashed")
        assert "killed by SIGSEGV" in crashed.message
        assert "lowbit fuzz --kernel" in crashed.repro_command
        again = check(target, case(18), "cpu")
        assert again.status == "pass"
        assert check.workers_started == 2


@pytest.mark.interpreter
def test_hang_is_a_timed_out_failure():
    target = load_kernel(f"h={CK}:hang_on_second")
    with IsolatedChecker(target, "cpu", timeout_s=1.5) as check:
        assert check.isolated
        assert check(target, case(16), "cpu").status == "pass"
        hung = check(target, case(17), "cpu")
        assert (hung.status, hung.failed_property) == ("fail", "timed_out")
        assert "time-out of 2 s" in hung.message


def test_a_kernel_that_cannot_be_sent_runs_here_and_says_so():
    from tests.harness.crashing_kernels import correct

    target = target_from_callable(lambda q, k, v, **kw: correct(q, k, v, **kw), name="anon")
    with IsolatedChecker(target, "cpu") as check:
        assert not check.isolated
        assert "cannot be sent to a worker process" in check.note
        assert check(target, case(16), "cpu").status == "pass"


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.interpreter
def test_lowbit_fuzz_reports_a_crash_with_a_shrunk_case_and_a_repro_line():
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "harness.cli", "fuzz", "--kernel", f"{CK}:crash_on_every_third_length"),
            *("--examples", "20", "--seed", "3", "--max-n", "48", "--profile", "ci", "--device", "cpu"),
        ],
        cwd=REPO,
        env=repo_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "crashed" in proc.stdout
    assert "lowbit fuzz --kernel" in proc.stdout and "--case" in proc.stdout


PLUGIN_TESTS = f"""
def test_crashing_kernel_fails_the_test(lowbit_fuzz):
    lowbit_fuzz("{CK}:crash_on_every_third_length", examples=10, max_n=48)


def test_the_session_goes_on():
    assert True
"""


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.interpreter
def test_pytest_plugin_survives_a_segfaulting_kernel(tmp_path):
    (tmp_path / "test_user_kernel.py").write_text(textwrap.dedent(PLUGIN_TESTS))
    env = repo_env()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--lowbit-profile", "ci"),
            *("--lowbit-device", "cpu", "--rootdir", str(tmp_path), "-c", os.devnull, "test_user_kernel.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout
    assert "crashed" in proc.stdout


@pytest.mark.interpreter
def test_domain_probes_run_in_the_worker_and_a_probe_crash_is_survived():
    from harness.search.domain import probe_domain

    target = load_kernel(f"n={CK}:narrow_segfaults_on_d256")
    with IsolatedChecker(target, "cpu", timeout_s=60) as check:
        probe = probe_domain(target, "cpu", stated={"dtypes": ["float16"]}, check=check)
        assert probe.domain.head_dims == (32, 64, 256)  # the crash counts as accepted: the search judges it
        crashed = [r for r in probe.rows if r["value"] == 256]
        assert crashed and "crashed in its worker" in crashed[0]["said"]
        refused = {r["value"] for r in probe.rows if not r["accepted"]}
        assert {80, 96, 128, 160, 192} <= refused
        assert check.workers_started >= 2  # the probe's worker died; a fresh one went on
