"""Every bench/ script with a ``main`` runs as the command its docstring shows: ``--help`` prints usage.

Tests call most scripts' ``main()`` in-process, which cannot notice a script that no longer calls it
when run from the command line (bench/ab_decode.py once lost its ``__main__`` guard and ran nothing,
exiting 0).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.scripts import REPO

SCRIPTS = sorted(p for p in (REPO / "bench").glob("*.py") if "\ndef main(" in p.read_text())


def test_scripts_are_found():
    assert len(SCRIPTS) >= 10 and REPO / "bench" / "ab_decode.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_prints_usage(script):
    out = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("usage:"), out.stdout[:500]
