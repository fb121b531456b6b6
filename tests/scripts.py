"""Import one of the repository's stand-alone scripts (bench/, ci/) by path, as its tests need."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """The module at ``REPO / relative_path``, executed fresh; registered in ``sys.modules`` under its file
    name while it runs, as dataclasses defined in it look their module up there."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
