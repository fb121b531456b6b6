"""Machine fingerprint: complete, and hashed stably."""

from __future__ import annotations

import platform

import torch
import triton

from harness.core.fingerprint import environment_key
from harness.run.environment import FINGERPRINT_KEYS, cpu_model, fingerprint


def test_cpu_fingerprint_names_the_software_stack():
    info = fingerprint("cpu")
    assert set(info) == set(FINGERPRINT_KEYS)
    assert info["device"] == "cpu-interpreter"
    assert info["torch"] == torch.__version__
    assert info["triton"] == triton.__version__
    assert info["python"] == platform.python_version()
    assert info["cpu"] == cpu_model() and info["cpu"]
    assert info["host"]
    assert info["gpu"] is None and info["compute_capability"] is None


def test_key_is_stable_and_ignores_only_the_host():
    info = fingerprint("cpu")
    assert environment_key(info) == environment_key(fingerprint("cpu"))
    assert environment_key(dict(reversed(list(info.items())))) == environment_key(info)
    assert environment_key({**info, "host": "runner-1"}) == environment_key({**info, "host": "runner-2"})
    for key in ("device", "gpu", "driver", "cuda", "torch", "triton", "python", "cpu"):
        assert environment_key({**info, key: "other"}) != environment_key(info)
    gpu = {**info, "device": "cuda", "gpu": "NVIDIA H200"}
    assert environment_key(gpu) != environment_key(info)
    assert len(environment_key(info)) == 64
