"""Choose where kernels run, and configure Triton for it before any kernel is defined.

Triton decides at ``@triton.jit`` time whether a function is compiled for the GPU or run by its CPU
interpreter (``TRITON_INTERPRET=1``). So the choice must be made before :mod:`kernels` is imported;
:func:`select_device` does that and refuses to change its mind afterwards.
"""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata

from kernels.backend import interpreting, jit_modules_loaded

DEVICES = ("cpu", "cuda")

# Triton's CPU interpreter before 3.9 turns 1-element numpy arrays into Python scalars (loop bounds,
# pointer offsets); numpy 2.4 made that an error (a DeprecationWarning before), so every kernel run by
# that interpreter fails with "only 0-dimensional arrays can be converted to Python scalars".
BROKEN_INTERPRETER = {"triton_before": (3, 9), "numpy_from": (2, 4)}
INTERPRETER_FIX = "numpy<2.4 or triton>=3.9"


class DeviceError(ValueError):
    """The requested device cannot be used."""


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _release(version: str) -> tuple[int, ...]:
    """The leading numeric release of a version string ("3.6.0+git1a2b" -> (3, 6, 0))."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def installed_versions() -> tuple[str | None, str | None]:
    """(triton, numpy) versions in use (None when absent): the imported module's when it is loaded, else
    the installed distribution's (this imports neither package)."""
    found: list[str | None] = []
    for name in ("triton", "numpy"):
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None)
        if not isinstance(version, str):
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                version = None
        found.append(version)
    return found[0], found[1]


def interpreter_problem(triton_version: str | None = None, numpy_version: str | None = None) -> str | None:
    """Why Triton's CPU interpreter cannot run kernels with these versions (default: the installed ones),
    or None when the pair is not known to be broken."""
    if triton_version is None and numpy_version is None:
        triton_version, numpy_version = installed_versions()
    if triton_version is None or numpy_version is None:
        return None
    triton_release, numpy_release = _release(triton_version), _release(numpy_version)
    if not triton_release or not numpy_release:
        return None
    if (
        triton_release < BROKEN_INTERPRETER["triton_before"]
        and numpy_release >= BROKEN_INTERPRETER["numpy_from"]
    ):
        return (
            f"Triton {triton_version}'s CPU interpreter cannot run kernels with numpy {numpy_version} "
            f"(it fails with 'only 0-dimensional arrays can be converted to Python scalars'): "
            f"install {INTERPRETER_FIX}"
        )
    return None


def check_interpreter() -> None:
    """Raise :class:`DeviceError` if the installed Triton/numpy pair cannot run the CPU interpreter."""
    problem = interpreter_problem()
    if problem is not None:
        raise DeviceError(f"device 'cpu' (the Triton interpreter) is unusable here: {problem}")


def select_device(requested: str | None = None) -> str:
    """Resolve ``requested`` ("cpu", "cuda" or None for "cuda if there is one") and set up Triton.

    On "cpu" the Triton interpreter is switched on. Raises :class:`DeviceError` for an unknown name,
    for "cuda" without a GPU, for "cpu" where the installed Triton/numpy pair breaks the interpreter
    (:func:`interpreter_problem`), and when kernels were already imported for the other backend.
    """
    if requested is not None and requested not in DEVICES:
        raise DeviceError(f"unknown device {requested!r}: expected one of {', '.join(DEVICES)}")
    has_cuda = cuda_available()
    if requested == "cuda" and not has_cuda:
        raise DeviceError("device 'cuda' requested but torch sees no CUDA GPU")
    device = requested or ("cuda" if has_cuda else "cpu")
    want_interpret = device == "cpu"
    if want_interpret:
        check_interpreter()
    loaded = jit_modules_loaded()
    if loaded:
        if interpreting() != want_interpret:
            mode = "the Triton interpreter" if interpreting() else "the GPU"
            raise DeviceError(
                f"kernels ({', '.join(loaded)}) were already imported for {mode}; cannot switch to {device!r}"
            )
        return device
    if want_interpret:
        os.environ["TRITON_INTERPRET"] = "1"
    else:
        os.environ.pop("TRITON_INTERPRET", None)
    return device


__all__ = [
    "DEVICES",
    "INTERPRETER_FIX",
    "DeviceError",
    "check_interpreter",
    "cuda_available",
    "installed_versions",
    "interpreter_problem",
    "interpreting",
    "select_device",
]
