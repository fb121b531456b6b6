"""Torch attention "kernels" for the `lowbit run --devices` tests: correct (or crashing on some shapes, as
in :mod:`tests.harness.crashing_kernels`), but each worker's first case waits at a barrier until a worker
of another kernel is alive too, which proves that two slots measure at once.
"""

from __future__ import annotations

import os
import time

from tests.harness.crashing_kernels import correct, crash_on_every_third_length

# Where the barrier kernels meet: each worker of one writes a file named by its pid here on its first case,
# then waits until a worker of another process has written one too.
BARRIER_ENV = "LOWBIT_TEST_BARRIER_DIR"
BARRIER_WAIT_S = 60.0
_met = False


def _barrier() -> None:
    """Return once another worker reached its barrier too: two kernels' workers alive at the same time.

    A run that measures kernels one after another never gets past the first one's barrier: it raises
    (an ``error`` row) after BARRIER_WAIT_S instead.
    """
    global _met
    if _met:
        return
    folder = os.environ[BARRIER_ENV]
    mine = os.path.join(folder, str(os.getpid()))
    with open(mine, "w") as f:
        f.write(f"{time.time()}\n")
    deadline = time.monotonic() + BARRIER_WAIT_S
    while time.monotonic() < deadline:
        if any(name != str(os.getpid()) for name in os.listdir(folder)):
            _met = True
            return
        time.sleep(0.05)
    raise RuntimeError(f"no other kernel's worker started within {BARRIER_WAIT_S:.0f} s")


def barrier_correct(q, k, v, *, causal=False, sm_scale=None):
    _barrier()
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)


def barrier_crash_on_every_third_length(q, k, v, *, causal=False, sm_scale=None):
    _barrier()
    return crash_on_every_third_length(q, k, v, causal=causal, sm_scale=sm_scale)
