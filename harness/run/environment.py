"""Fingerprint of the machine a run measured on, so latencies are only compared like with like.

The fields and the key that decides "same environment" (everything but the host name) are in
:mod:`harness.core.fingerprint`; this module only measures them.
"""

from __future__ import annotations

import platform
import shutil
import socket
import subprocess
from pathlib import Path

from harness.core.fingerprint import ENVIRONMENT_FIELDS, HOST_FIELD

# The device kind ("cuda" or "cpu-interpreter"), the compared fields, and the host (recorded only).
FINGERPRINT_KEYS = ("device", *ENVIRONMENT_FIELDS, HOST_FIELD)


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what :mod:`platform` reports."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def nvidia_driver_version() -> str | None:
    """Driver version as nvidia-smi reports it, or None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.strip().splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else None


def fingerprint(device: str, index: int | None = None) -> dict[str, str | None]:
    """Describe this machine for ``device`` ("cpu": the Triton interpreter, or "cuda").

    ``index``: the GPU (torch's numbering) the run measures on; default the current one. A run spread
    over several GPUs (``--devices``) checked that they are one model and describes the first.
    """
    import torch
    import triton

    info: dict[str, str | None] = dict.fromkeys(FINGERPRINT_KEYS)
    info["device"] = "cpu-interpreter" if device == "cpu" else device
    if device == "cuda":
        if index is None:
            index = torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        info["gpu"] = torch.cuda.get_device_name(index)
        info["compute_capability"] = f"{major}.{minor}"
        info["driver"] = nvidia_driver_version()
        info["cuda"] = torch.version.cuda
    info["torch"] = torch.__version__
    info["triton"] = triton.__version__
    info["python"] = platform.python_version()
    info["cpu"] = cpu_model()
    info["host"] = socket.gethostname()
    return info
