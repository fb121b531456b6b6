"""Which Triton backend kernels run on. Imports neither torch nor triton, so anything may ask.

Triton decides at ``@triton.jit`` time whether a function is compiled for the GPU or run by its CPU
interpreter (``TRITON_INTERPRET=1``); a module that defines jit functions is bound to the backend that was
set when it was first imported.
"""

from __future__ import annotations

import os
import sys


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def jit_modules_loaded() -> list[str]:
    """Names of the ``kernels`` modules already imported that define Triton jit functions."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith("kernels.") and module is not None and "triton" in vars(module)
    )
