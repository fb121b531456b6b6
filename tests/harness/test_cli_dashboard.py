"""`lowbit dashboard` refuses what it must refuse; `lowbit demo`'s repository and kernels do what they say."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from harness.cli import cli
from harness.run import demo
from tests.conftest import DEVICE
from tests.pythonpath import repo_env


def test_dashboard_refuses_a_non_loopback_host():
    result = CliRunner().invoke(cli, ["dashboard", "--host", "0.0.0.0", "--db", "sqlite:///x.db"])
    assert result.exit_code == 2
    assert "not a loopback address" in result.output


def test_dashboard_unusable_database_exit_2_without_password():
    result = CliRunner().invoke(cli, ["dashboard", "--db", "postgresql://ci:t0psecret@127.0.0.1:1/lowbit"])
    assert result.exit_code == 2
    assert "t0psecret" not in result.output
    assert "***" in result.output


def test_demo_repository_has_one_labelled_commit_per_step(tmp_path):
    shas = demo.make_repository(tmp_path)
    assert len(shas) == len(demo.STEPS) == len(set(shas))
    log = subprocess.run(
        ["git", "log", "--format=%s", "--reverse"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert log == [step.message for step in demo.STEPS]
    assert [s.ref for s in demo.STEPS][3] == "attn=harness.run.demo:planted_bug"


def _inputs(nq: int, nk: int):
    """Drawn on the CPU from a seed, then moved to the device the kernels were imported for."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, nq, 32, generator=gen).half()
    k = torch.randn(1, 2, nk, 32, generator=gen).half()
    v = torch.randn(1, 2, nk, 32, generator=gen).half()
    return q.to(DEVICE), k.to(DEVICE), v.to(DEVICE)


def _rel(a, b) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_demo_kernels_differ_from_the_baseline_as_labelled():
    q, k, v = _inputs(8, 24)
    base = demo.baseline(q, k, v, causal=True)
    assert torch.equal(demo.slower(q, k, v, causal=True), base)
    assert torch.equal(demo.fixed(q, k, v, causal=True), base)
    # The planted bug only bites causal attention with Nq != Nk.
    assert _rel(demo.planted_bug(q, k, v, causal=True), base) > 0.05
    assert torch.equal(demo.planted_bug(q, k, v, causal=False), demo.baseline(q, k, v))
    sq, sk, sv = _inputs(16, 16)
    assert torch.equal(demo.planted_bug(sq, sk, sv, causal=True), demo.baseline(sq, sk, sv, causal=True))
    # bf16 rounding: clearly worse than fp16's own rounding, still far inside a 1e-2 budget.
    rough = _rel(demo.less_precise(q, k, v, causal=True), base)
    assert 3e-4 < rough < 5e-3


@pytest.mark.slow
@pytest.mark.interpreter
def test_lowbit_demo_fills_a_history(tmp_path):
    from harness.store.dashboard_queries import open_history

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    # `lowbit demo` measures in the CPU interpreter: a fresh process, since this one may have imported the
    # kernels for the GPU.
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "demo", "--db", url],
        env=repo_env(),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    history = open_history(url)
    runs = history.runs()
    # Revision 0004: a run's status says how it ended; the planted bug's failures are in its results.
    assert [r["status"] for r in runs] == ["complete"] * len(demo.STEPS)
    assert all(r["branch"] == "main" for r in runs) and runs[1]["parents"] == [runs[0]["commit"]]
    # Each labelled demo commit carries its subject line into the history.
    assert [r["subject"] for r in runs] == [step.message for step in demo.STEPS]
    failures = history.failures()
    assert [f["kernel"] for f in failures] == ["attn"] and not failures[0]["open"]
    first, slow = (history.baseline_speed([r["id"]]) for r in runs[:2])
    assert slow[0]["ratio"] < 0.75 * first[0]["ratio"]  # the second pass shows against fp16
    history.close()
