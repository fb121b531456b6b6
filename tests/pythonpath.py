"""The environment of a child Python process that must import this checkout first."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def repo_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with the repository prepended to PYTHONPATH (the caller's entries kept after it:
    packages installed with ``pip install --target`` are found through them) and ``extra`` set."""
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths = [str(REPO), *(p for p in current if p != str(REPO))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}
