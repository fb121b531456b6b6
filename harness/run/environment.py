"""Fingerprint of the machine a run measured on, so latencies are only compared like with like.

The fingerprint names the GPU (model, compute capability), its driver, the CUDA, torch, triton and Python
versions, the CPU model and the host. Its hash is stable: the same machine and software stack always
give the same hash, and any change of one of them gives another.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import socket
import subprocess
from pathlib import Path

from harness.store.rows import ENVIRONMENT_COLUMNS

# What the store keeps as columns, plus the device kind ("cuda" or "cpu-interpreter").
FINGERPRINT_KEYS = ("device", *ENVIRONMENT_COLUMNS)


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


def fingerprint(device: str) -> dict[str, str | None]:
    """Describe this machine for ``device`` ("cpu": the Triton interpreter, or "cuda")."""
    import torch
    import triton

    info: dict[str, str | None] = dict.fromkeys(FINGERPRINT_KEYS)
    info["device"] = "cpu-interpreter" if device == "cpu" else device
    if device == "cuda":
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


def fingerprint_hash(info: dict) -> str:
    """Stable 16-hex-digit hash of a fingerprint: canonical JSON, sorted keys."""
    canonical = json.dumps(info, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Keys that say nothing about a latency: CI runners are often fresh machines with random host names.
_NOT_COMPARED = ("host",)


def comparison_hash(info: dict) -> str:
    """Hash of the keys that decide whether two latencies are comparable (all but the host name).

    Two runs on different hosts with the same GPU, driver and software stack get the same value; a
    CPU-interpreter run never shares one with a GPU run (the ``device`` key differs).
    """
    return fingerprint_hash({k: v for k, v in info.items() if k not in _NOT_COMPARED})
