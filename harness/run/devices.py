"""``lowbit run --devices``: the slots a run spreads its kernels over, one kernel at a time per slot.

Kernels are independent, so a host with several GPUs measures several at once. On ``cuda`` a slot is one
GPU: its workers see only that GPU (``CUDA_VISIBLE_DEVICES`` set to the id the index names, an existing
``CUDA_VISIBLE_DEVICES`` respected) and run as device 0. On ``cpu`` (the Triton interpreter) a slot is
one more interpreter worker running at once; ``all`` is one per usable core. Without ``--devices`` a run
has one slot and its workers inherit this process's environment, as before the option existed.

A run records one environment fingerprint, so every selected GPU must be the same model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Slot", "default_slot", "plan_slots", "resolve_slots", "usable_cores", "visible_ids"]

EXPECTED = "expected 'all' or comma-separated device indices such as 0,1"


@dataclass(frozen=True)
class Slot:
    """Where one kernel at a time runs: its label, the index given to --devices, its workers' env."""

    label: str  # "cuda:1", "cpu:0"; the device name alone for the default slot
    index: int | None = None  # None: the default slot (no --devices)
    env: dict[str, str] = field(default_factory=dict)  # set in each worker's environment


def default_slot(device: str) -> Slot:
    return Slot(label=device)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; os.cpu_count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def visible_ids(cuda_visible_devices: str | None, count: int) -> list[str]:
    """The id (number, ``GPU-<uuid>`` or ``MIG-<uuid>``) each of torch's ``count`` GPU indices names.

    With CUDA_VISIBLE_DEVICES set, index i is its i-th entry (CUDA stops at the first invalid entry, so
    only the first ``count`` are used); without it, index i is GPU i.
    """
    if cuda_visible_devices is None:
        return [str(i) for i in range(count)]
    entries = [e.strip() for e in cuda_visible_devices.split(",")]
    return entries[:count]


def _indices(spec: str, count: int) -> list[int]:
    text = spec.strip()
    if text == "all":
        return list(range(count))
    items = [item.strip() for item in text.split(",")]
    if not text or any(not (item.isascii() and item.isdigit()) for item in items):
        raise ValueError(f"--devices: {EXPECTED}; got {spec!r}")
    indices = [int(item) for item in items]
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise ValueError(f"--devices: index {repeated[0]} given more than once in {spec!r}")
    return indices


def plan_slots(
    spec: str | None,
    device: str,
    count: int,
    *,
    ids: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
) -> list[Slot]:
    """The slots ``spec`` selects out of ``count`` devices; ValueError naming what was expected.

    ``ids`` and ``names`` (cuda only) are, per torch index, the id a worker's CUDA_VISIBLE_DEVICES gets
    and the GPU model.
    """
    if spec is None:
        return [default_slot(device)]
    indices = _indices(spec, count)
    if device == "cpu":
        beyond = f"the {count} usable CPU core(s) (interpreter worker slots 0-{count - 1})"
    else:
        beyond = f"the {count} GPU(s) torch sees (indices 0-{count - 1})"
    for index in indices:
        if index >= count:
            raise ValueError(f"--devices: index {index} is beyond {beyond}")
    if not indices:
        raise ValueError(f"--devices: no {device} device to run on")
    if device == "cpu":
        return [Slot(label=f"cpu:{i}", index=i) for i in indices]
    ids = list(ids) if ids is not None else [str(i) for i in range(count)]
    names = list(names) if names is not None else [""] * count
    first = indices[0]
    for index in indices[1:]:
        if names[index] != names[first]:
            raise ValueError(
                f"--devices: the selected GPUs differ (cuda:{first} is {names[first]}, cuda:{index} is "
                f"{names[index]}); a run records one environment, so measure each model in a run of its own"
            )
    return [Slot(label=f"cuda:{i}", index=i, env={"CUDA_VISIBLE_DEVICES": ids[i]}) for i in indices]


def resolve_slots(spec: str | None, device: str) -> list[Slot]:
    """``--devices`` on this machine: :func:`plan_slots` with the counts and GPU models torch reports."""
    if spec is None:
        return [default_slot(device)]
    if device == "cpu":
        return plan_slots(spec, device, usable_cores())
    import torch

    count = torch.cuda.device_count()
    names = [torch.cuda.get_device_name(i) for i in range(count)]
    ids = visible_ids(os.environ.get("CUDA_VISIBLE_DEVICES"), count)
    return plan_slots(spec, device, count, ids=ids, names=names)
