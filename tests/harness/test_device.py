"""Device selection: a Triton/numpy pair known to break the CPU interpreter is refused with its versions and
the fix (CLI exit 2), and the root conftest deselects what a machine cannot run, saying why."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.search import device
from harness.search.device import DeviceError, interpreter_problem, select_device

BROKEN = ("3.6.0", "2.5.2")


@pytest.mark.parametrize(
    ("triton", "numpy", "broken"),
    [
        ("3.6.0", "2.5.2", True),
        ("3.6.0", "2.4.0", True),
        ("3.8.1+git1a2b3c", "2.4.0rc1", True),
        ("3.6.0", "2.3.5", False),
        ("3.9.0", "2.5.2", False),
        ("4.0.0", "3.0.0", False),
        (None, "2.5.2", False),  # no Triton: nothing to run anyway
        ("3.6.0", None, False),
    ],
)
def test_known_broken_pairs(triton, numpy, broken):
    problem = interpreter_problem(triton, numpy)
    assert (problem is not None) == broken
    if broken:
        assert f"Triton {triton}" in problem and f"numpy {numpy}" in problem
        assert "numpy<2.4 or triton>=3.9" in problem


@pytest.mark.interpreter
def test_this_machine_runs_the_interpreter():
    # CI pins numpy < 2.4 for Triton < 3.9: the installed pair must be a working one (on a GPU machine
    # without one, this test is deselected with the other `interpreter` tests).
    assert interpreter_problem() is None, interpreter_problem()


@pytest.fixture
def broken_pair(monkeypatch):
    monkeypatch.setattr(device, "installed_versions", lambda: BROKEN)


def test_cpu_is_refused_with_both_versions_and_the_fix(broken_pair):
    with pytest.raises(DeviceError) as info:
        select_device("cpu")
    message = str(info.value)
    assert "Triton 3.6.0" in message and "numpy 2.5.2" in message and "numpy<2.4 or triton>=3.9" in message


@pytest.mark.parametrize("command", ["fuzz", "run"])
def test_cli_exits_2_naming_the_fix(broken_pair, tmp_path, command):
    bk = "tests.harness.broken_kernels"
    args = {
        "fuzz": ["fuzz", "--kernel", f"{bk}:correct_fp32", "--device", "cpu", "--no-database"],
        "run": ["run", "--db", f"sqlite:///{tmp_path / 'h.db'}", "--commit", "ab" * 20, "--device", "cpu"],
    }[command]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "numpy 2.5.2" in result.output and "numpy<2.4 or triton>=3.9" in result.output
    assert not (tmp_path / "h.db").exists()  # a refused run writes nothing


# The repository's root conftest.py (pytest imports it as the top-level module "conftest").
root_conftest = sys.modules["conftest"]


class _Item:
    def __init__(self, *markers: str) -> None:
        self.markers = markers

    def get_closest_marker(self, name: str):
        return name if name in self.markers else None


def _collect(monkeypatch, device_name: str, problem: str | None, workers: str | None):
    monkeypatch.setattr(root_conftest, "DEVICE", device_name)
    monkeypatch.setattr(root_conftest, "INTERPRETER_PROBLEM", problem)
    monkeypatch.setattr(root_conftest, "_deselected", {})
    if workers is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", workers)
    dropped = []
    config = SimpleNamespace(
        option=SimpleNamespace(numprocesses=None),
        hook=SimpleNamespace(pytest_deselected=lambda items: dropped.extend(items)),
    )
    items = [_Item(), _Item("gpu"), _Item("interpreter"), _Item("e2e", "interpreter")]
    kept = list(items)
    root_conftest.pytest_collection_modifyitems(config, kept)
    header = root_conftest.pytest_report_header(config)
    return [i.markers for i in kept], [i.markers for i in dropped], header


def test_gpu_machine_with_a_broken_interpreter_deselects_interpreter_tests(monkeypatch):
    kept, dropped, header = _collect(monkeypatch, "cuda", "Triton 3.6.0's CPU interpreter ...", None)
    assert kept == [(), ("gpu",)]
    assert dropped == [("interpreter",), ("e2e", "interpreter")]
    assert any("`interpreter` tests deselected" in line and "Triton 3.6.0" in line for line in header)


def test_gpu_machine_under_xdist_deselects_gpu_tests_and_says_how_to_run_them(monkeypatch):
    kept, dropped, header = _collect(monkeypatch, "cuda", None, "14")
    assert dropped == [("gpu",)] and len(kept) == 3
    assert any("14 pytest-xdist processes" in line and "pytest -m gpu" in line for line in header)


def test_gpu_machine_alone_runs_everything(monkeypatch):
    kept, dropped, header = _collect(monkeypatch, "cuda", None, "1")
    assert dropped == [] and len(kept) == 4
    assert not any("deselected" in line for line in header)


def test_cpu_machine_deselects_only_gpu_tests(monkeypatch):
    kept, dropped, header = _collect(monkeypatch, "cpu", None, "2")
    assert dropped == [("gpu",)] and len(kept) == 3
    assert any("torch sees no CUDA GPU" in line for line in header)
