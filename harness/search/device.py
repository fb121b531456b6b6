"""Choose where kernels run, and configure Triton for it before any kernel is defined.

Triton decides at ``@triton.jit`` time whether a function is compiled for the GPU or run by its CPU
interpreter (``TRITON_INTERPRET=1``). So the choice must be made before :mod:`kernels` is imported;
:func:`select_device` does that and refuses to change its mind afterwards.
"""

from __future__ import annotations

import os

from kernels.backend import interpreting, jit_modules_loaded

DEVICES = ("cpu", "cuda")


class DeviceError(ValueError):
    """The requested device cannot be used."""


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def select_device(requested: str | None = None) -> str:
    """Resolve ``requested`` ("cpu", "cuda" or None for "cuda if there is one") and set up Triton.

    On "cpu" the Triton interpreter is switched on. Raises :class:`DeviceError` for an unknown name,
    for "cuda" without a GPU, and when kernels were already imported for the other backend.
    """
    if requested is not None and requested not in DEVICES:
        raise DeviceError(f"unknown device {requested!r}: expected one of {', '.join(DEVICES)}")
    has_cuda = cuda_available()
    if requested == "cuda" and not has_cuda:
        raise DeviceError("device 'cuda' requested but torch sees no CUDA GPU")
    device = requested or ("cuda" if has_cuda else "cpu")
    want_interpret = device == "cpu"
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


__all__ = ["DEVICES", "DeviceError", "cuda_available", "interpreting", "select_device"]
