"""Machine fingerprint: complete, and hashed stably."""

from __future__ import annotations

import platform

import torch
import triton

from harness.run.environment import (
    FINGERPRINT_KEYS,
    comparison_hash,
    cpu_model,
    fingerprint,
    fingerprint_hash,
)


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


def test_hash_is_stable_and_sensitive():
    info = fingerprint("cpu")
    again = fingerprint("cpu")
    assert fingerprint_hash(info) == fingerprint_hash(again)
    assert fingerprint_hash(dict(reversed(list(info.items())))) == fingerprint_hash(info)
    for key in ("torch", "triton", "host", "gpu"):
        assert fingerprint_hash({**info, key: "other"}) != fingerprint_hash(info)
    assert len(fingerprint_hash(info)) == 16


def test_comparison_hash_ignores_only_the_host():
    info = fingerprint("cpu")
    assert comparison_hash({**info, "host": "runner-1"}) == comparison_hash({**info, "host": "runner-2"})
    for key in ("device", "gpu", "driver", "cuda", "torch", "triton", "python", "cpu"):
        assert comparison_hash({**info, key: "other"}) != comparison_hash(info)
    gpu = {**info, "device": "cuda", "gpu": "NVIDIA H200"}
    assert comparison_hash(gpu) != comparison_hash(info)
