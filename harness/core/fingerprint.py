"""What makes two measurements comparable: the fields of an environment fingerprint and its key.

The fingerprint names the device kind, the GPU (model, compute capability), its driver, the CUDA, torch,
triton and Python versions, the CPU model and the host. The host is recorded but is not part of the
environment's identity: CI runners are ephemeral machines with fresh names, and two runners with the same
GPU, driver and software stack measure the same thing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# Fields the store keeps as searchable columns (the full fingerprint is kept as JSON as well).
ENVIRONMENT_FIELDS: tuple[str, ...] = (
    "gpu",
    "compute_capability",
    "driver",
    "cuda",
    "torch",
    "triton",
    "python",
    "cpu",
)
HOST_FIELD = "host"


def without_host(fingerprint: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint minus the host name: what decides "same environment"."""
    return {k: v for k, v in fingerprint.items() if k != HOST_FIELD}


def environment_key(fingerprint: Mapping[str, Any]) -> str:
    """Stable 64-hex SHA-256 of the canonical JSON of the fingerprint without its host.

    Key order does not matter; any change of a field other than the host gives another key.
    """
    canonical = json.dumps(without_host(fingerprint), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
