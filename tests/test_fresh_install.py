"""The README's two commands in a brand-new virtual environment, installed from ci/constraints.txt.

The venv sees the system's site-packages only for torch and Triton (multi-GB wheels ci/install.sh skips
when the pinned versions are already there); every test and dev tool comes in at the lock file's exact
version, which the test checks. The second command runs ci/test.sh (ruff, ruff format, import contracts)
on a slice of the suite that includes the test pytest 9 used to break; the full suite is CI's own run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "ci" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_readme_commands_pass_in_a_new_venv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": str(python),
        "LOWBIT_DB_URL": f"sqlite:///{tmp_path / 'lowbit.db'}",
        "VIRTUAL_ENV": str(venv),
    }
    env.pop("PYTHONPATH", None)

    def sh(command: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode in ok, f"{command}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        return proc

    # Exit 1 means the fuzzer found a kernel breaking a property: a verdict on the kernels, not on the
    # install; the run must still be complete, with every case measured (no crash, time-out or skip).
    run = sh("bash ci/install.sh && lowbit run --suite quick", ok=(0, 1))
    check = (
        f"{python} -c 'from harness.store import open_store, resolve_url; s = open_store(resolve_url(None)); "
        'r = s.runs()[-1]; bad = {x["status"] for x in s.results(r["id"])} & '
        '{"crash", "timeout", "skipped", "error"}; print(r["status"], sorted(bad))\''
    )
    assert sh(check).stdout.split() == ["complete", "[]"], run.stdout[-3000:]
    frozen = sh(f"{python} -m pip freeze --disable-pip-version-check").stdout
    installed = {}
    for line in frozen.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            installed[name.lower().replace("_", "-")] = version
    for tool in ("pytest", "ruff", "import-linter", "hypothesis", "pytest-benchmark", "sqlalchemy"):
        assert installed.get(tool) == pins()[tool], tool
    sh("bash ci/install.sh && bash ci/test.sh -q -p no:cacheprovider tests/harness/test_distributions.py")
