"""The pytest11 plugin: a user fuzzes a kernel from their own suite with the lowbit_fuzz fixture."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.pythonpath import repo_env

REPO = Path(__file__).resolve().parents[2]

# max_n: the interpreter's ci lengths on every device (on a GPU the ci profile's own shapes would also bring
# its 2^31-offset cases, tens of GiB each, which this test is not about).
USER_TESTS = """
from tests.harness import broken_kernels as bk


def test_correct_callable(lowbit_fuzz):
    report = lowbit_fuzz(bk.correct_fp32, examples=40, name="correct", max_n=160)
    assert report.ok and report.examples == 40 and report.profile == "ci"


def test_correct_by_reference(lowbit_fuzz):
    assert lowbit_fuzz("tests.harness.broken_kernels:correct_fp32", examples=20, max_n=32).ok


def test_broken_kernel_fails_with_a_repro(lowbit_fuzz):
    lowbit_fuzz(bk.gqa_wrong_heads, head_dims=(32,), dtypes=("float16",), max_n=160)
"""


def test_plugin_module_is_import_light():
    code = "import sys, harness.pytest_plugin; print(sorted({'torch','triton','kernels'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


@pytest.mark.e2e
def test_fixture_passes_correct_kernels_and_fails_a_broken_one(tmp_path):
    (tmp_path / "test_user_kernel.py").write_text(textwrap.dedent(USER_TESTS))
    env = repo_env()
    env.pop("CI", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--lowbit-profile",
            "ci",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            "test_user_kernel.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "2 passed" in out and "1 failed" in out
    assert "error_budget" in out
    assert "lowbit fuzz --kernel tests.harness.broken_kernels:gqa_wrong_heads" in out


@pytest.mark.e2e
def test_profile_option_is_validated(tmp_path):
    (tmp_path / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-c",
            os.devnull,
            "--lowbit-profile",
            "weekly",
            "test_nothing.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4 and "weekly" in proc.stderr
