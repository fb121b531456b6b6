"""`lowbit fuzz` and `lowbit kernels` end to end: exit codes, JSON, and a repro command that re-runs
exactly the reported case."""

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from rich.console import Console

from harness.cli import cli
from harness.cli.render import FuzzProgress
from harness.search.cases import Case
from harness.search.profiles import size_limits

REPO = Path(__file__).resolve().parents[2]
BROKEN = "tests.harness.broken_kernels"
# The interpreter's ci lengths on every device: on a GPU the ci profile's own shapes would also bring its
# 2^31-offset cases (tens of GiB each, minutes with these torch kernels), which these tests are not about.
CI_SHAPES = ("--max-n", str(size_limits("ci", "cpu").max_n))


def run(*args):
    return CliRunner().invoke(cli, ["fuzz", *args], catch_exceptions=False)


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def test_failure_json_and_repro_re_runs_exactly_that_case():
    top = f"top={BROKEN}:causal_top_left"
    result = run("--kernel", top, "--profile", "ci", *CI_SHAPES, "--json", "--no-database")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["failed_property"] == "error_budget"
    failure = report["failures"][0]
    case = Case.from_params(failure["case"])
    assert failure["case_id"] == case.case_id
    assert failure["metrics"]["rel_l2"] > failure["budget"]["max_rel_l2"]
    words = shlex.split(report["repro_command"])
    assert words[:4] == ["lowbit", "fuzz", "--kernel", f"top={BROKEN}:causal_top_left"]
    again = run(*words[2:], "--json")
    assert again.exit_code == 1
    replayed = json.loads(again.stdout)
    assert replayed["case_id"] == case.case_id and replayed["kernel"] == "top"
    assert replayed["failed_property"] == "error_budget"
    assert replayed["metrics"] == failure["metrics"]


def test_human_failure_report_names_property_case_and_repro():
    result = run("--kernel", f"{BROKEN}:k_modified_in_place", "--profile", "ci", *CI_SHAPES, "--no-database")
    assert result.exit_code == 1
    out = result.stdout
    assert "inputs_unchanged" in out and "repro:" in out and "lowbit fuzz --kernel" in out
    for field in (
        "batch",
        "hq",
        "hkv",
        "nq",
        "nk",
        "head_dim",
        "dtype",
        "causal",
        "sm_scale",
        "distribution",
        "seed",
    ):
        assert field in out
    assert "coverage by distribution family" in out and "coverage by shape class" in out


def test_correct_kernel_exits_0_with_coverage_and_progress_on_stderr():
    args = ["--kernel", f"{BROKEN}:correct_fp32", "--profile", "ci", *CI_SHAPES, "--examples", "60"]
    result = run(*args, "--no-database")
    assert result.exit_code == 0, result.output
    assert "no property failed" in result.stdout and "coverage by shape class" in result.stdout
    assert "ex/s" in result.stderr and "failures 0" in result.stderr
    # stderr is not a terminal here: progress comes as log lines, the last one the final count.
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lowbit fuzz: fuzz") and "60/60 examples" in last and last.endswith("finished")


def test_json_stdout_is_one_object_and_respects_budget_overrides_and_max_n():
    args = ["--kernel", f"{BROKEN}:correct_fp32", "--profile", "ci", "--examples", "30", "--json"]
    result = run(*args, "--max-n", "24", "--max-rel-l2", "0.5", "--no-database")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["examples"] == 30 and report["limits"]["max_n"] == 24
    assert report["worst"]["case"]["nq"] <= 24 and report["worst"]["budget"]["max_rel_l2"] == 0.5
    assert sum(report["coverage"]["family"].values()) == 30


def test_passing_case_replay_exits_0():
    case = Case(1, 2, 1, 5, 9, 16, "bfloat16", True, 0.5, "attention_sink", 11)
    result = run("--kernel", f"{BROKEN}:correct_fp32", "--case", case.to_json(), "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "pass"


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--kernel", "no_such_kernel"], "unknown kernel"),
        (["--kernel", "no_such_module_xyz:fn"], "cannot import module"),
        (["--kernel", f"{BROKEN}:correct_fp32", "--case", "{bad"], "--case"),
        (["--kernel", f"{BROKEN}:correct_fp32", "--case", '{"batch": 1}'], "missing"),
        (["--kernel", f"{BROKEN}:correct_fp32", "--device", "tpu"], "tpu"),
        (["--kernel", f"{BROKEN}:correct_fp32", "--examples", "0"], "examples"),
        (["--kernel", f"{BROKEN}:correct_fp32", "--max-abs", "-1"], "max-abs"),
        (["--examples", "3"], "--kernel"),
    ],
)
def test_bad_usage_exits_2_with_a_message_on_stderr(args, needle):
    result = run(*args)
    assert result.exit_code == 2
    assert needle in result.stderr and result.stdout == ""


def test_kernels_lists_the_registry():
    from harness.search.targets import registry

    result = CliRunner().invoke(cli, ["kernels", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert [k["name"] for k in listed] == list(registry())
    first = listed[0]
    assert set(first["bits"]) == {"q", "k", "p", "v"} and first["head_dims"] and first["dtypes"]
    assert set(first["budgets"][first["dtypes"][0]]) >= {"gaussian", "extreme"}
    table = CliRunner().invoke(cli, ["kernels"], catch_exceptions=False)
    assert table.exit_code == 0 and all(name in table.stdout for name in registry())


@pytest.mark.e2e
def test_printed_repro_line_runs_in_a_shell():
    lowbit = shutil.which("lowbit")
    assert lowbit, "the lowbit console script is not installed"
    found = subprocess.run(
        [
            lowbit,
            "fuzz",
            "--kernel",
            f"{BROKEN}:gqa_wrong_heads",
            "--profile",
            "ci",
            *CI_SHAPES,
            "--json",
            "--no-database",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert found.returncode == 1, found.stderr
    report = json.loads(found.stdout)
    repro = subprocess.run(
        report["repro_command"] + " --json", shell=True, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert repro.returncode == 1, repro.stderr
    assert json.loads(repro.stdout)["case_id"] == report["failures"][0]["case_id"]


@pytest.mark.e2e
@pytest.mark.interpreter
def test_device_is_selected_before_the_kernels_are_imported():
    # A fresh process: `--device cpu` must switch Triton to its interpreter before `kernels` is
    # imported, or the registered kernel could not run on a machine without a GPU.
    code = "import sys, harness.cli.fuzz; print('kernels' in sys.modules)"
    light = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert light.stdout.strip() == "False"
    case = Case(1, 2, 1, 17, 33, 32, "float16", True, None, "channel_outliers", 5)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "fuzz",
            "--kernel",
            "int8",
            "--device",
            "cpu",
            "--case",
            case.to_json(),
            "--json",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "pass"


def _result(phase: str, status: str):
    # FuzzProgress reads only these two fields of a CaseResult.
    return SimpleNamespace(phase=phase, status=status)


def _wait_for(buffer: io.StringIO, needle: str, limit_s: float = 30.0) -> list[str]:
    end = time.monotonic() + limit_s
    while needle not in buffer.getvalue() and time.monotonic() < end:
        time.sleep(0.01)
    return buffer.getvalue().splitlines()


def test_fuzz_progress_prints_lines_in_logs_even_while_a_case_runs():
    """Not a terminal (a CI log): lines, not rich's bar, and one per interval while nothing finishes."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    with FuzzProgress(console, 400, "fuzz k", interval=0.05) as progress:
        assert _wait_for(buffer, "started")[0].startswith("lowbit fuzz: fuzz k: 0/400 examples, failures 0")
        # Nothing finishes for a while (a slow first case): the timer still reports.
        assert "starting" in _wait_for(buffer, "starting")[-1]
        progress.update(_result("explore", "pass"))
        progress.update(_result("explore", "fail"))
        line = next(x for x in _wait_for(buffer, "exploring") if "exploring" in x)
        assert "2/400 examples, failures 1" in line and "ex/s" in line
        progress.update(_result("shrink", "fail"))
        assert any("shrinking a failure (1 steps)" in x for x in _wait_for(buffer, "shrinking"))
    last = buffer.getvalue().splitlines()[-1]
    assert "2/400 examples, failures 1" in last and last.endswith("finished")


def test_fuzz_progress_on_a_terminal_is_the_live_bar():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    with FuzzProgress(console, 3, "fuzz k", interval=0.01) as progress:
        progress.update(_result("explore", "pass"))
        time.sleep(0.05)
    assert "lowbit fuzz:" not in buffer.getvalue() and "ex/s" in buffer.getvalue()
