"""Torch attention "kernels" that misbehave on purpose, for the runner's fault-handling tests.

Each has the signature of :func:`kernels.attention` and computes correct attention (the FP32 oracle
rounded to the input dtype) on the first case it sees. On the second distinct case (a new set of inputs,
not a repeated call on the same inputs, which is how the harness checks determinism) it misbehaves:
raises, returns NaN, segfaults, aborts, kills itself with SIGKILL, exits, or hangs. Each worker process
starts with a fresh count, so "second case" means the second case a worker runs.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time

import torch

from harness.search.oracle import reference_attention

_seen: list[str] = []


def _signature(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, sm_scale) -> str:
    h = hashlib.sha256()
    for t in (q, k, v):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    h.update(f"{causal}:{sm_scale}".encode())
    return h.hexdigest()


def _case_number(q, k, v, causal, sm_scale) -> int:
    """1 for the first distinct inputs this process saw, 2 for the second, ..."""
    sig = _signature(q, k, v, causal, sm_scale)
    if sig not in _seen:
        _seen.append(sig)
    return _seen.index(sig) + 1


def correct(q, k, v, *, causal=False, sm_scale=None):
    """Attention computed in float32 by the oracle, rounded to q's dtype."""
    return reference_attention(q, k, v, causal=causal, sm_scale=sm_scale, dtype=torch.float32).to(q.dtype)


def raises_on_second(q, k, v, *, causal=False, sm_scale=None):
    if _case_number(q, k, v, causal, sm_scale) == 2:
        raise RuntimeError("deliberate failure on the second case")
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)


def nan_on_second(q, k, v, *, causal=False, sm_scale=None):
    out = correct(q, k, v, causal=causal, sm_scale=sm_scale)
    if _case_number(q, k, v, causal, sm_scale) == 2:
        out = torch.full_like(out, float("nan"))
    return out


def segfault_on_second(q, k, v, *, causal=False, sm_scale=None):
    if _case_number(q, k, v, causal, sm_scale) == 2:
        os.kill(os.getpid(), signal.SIGSEGV)
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)


def abort_on_second(q, k, v, *, causal=False, sm_scale=None):
    if _case_number(q, k, v, causal, sm_scale) == 2:
        os.abort()
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)


def sigkill_on_second(q, k, v, *, causal=False, sm_scale=None):
    if _case_number(q, k, v, causal, sm_scale) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)


def exit_on_second(q, k, v, *, causal=False, sm_scale=None):
    if _case_number(q, k, v, causal, sm_scale) == 2:
        os._exit(7)
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)


def hang_on_second(q, k, v, *, causal=False, sm_scale=None):
    if _case_number(q, k, v, causal, sm_scale) == 2:
        time.sleep(3600)
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)


# Where hang_on_second_marked writes its marker: a test waits for the file, then knows the runner is
# inside the second case (and sends it a signal).
MARKER_ENV = "LOWBIT_TEST_HANG_MARKER"


def hang_on_second_marked(q, k, v, *, causal=False, sm_scale=None):
    if _case_number(q, k, v, causal, sm_scale) == 2:
        marker = os.environ.get(MARKER_ENV)
        if marker:
            with open(marker, "a") as f:
                f.write(f"{os.getpid()}\n")
        time.sleep(3600)
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)


def crash_on_every_third_length(q, k, v, *, causal=False, sm_scale=None):
    """Segfaults on every third key length (Nk = 1, 4, 7, ...): a kernel broken on some shapes only."""
    if k.shape[2] % 3 == 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    return correct(q, k, v, causal=causal, sm_scale=sm_scale)


def wrong(q, k, v, *, causal=False, sm_scale=None):
    """Off by far more than any budget on every case: every corpus case fails error_budget."""
    return (correct(q, k, v, causal=causal, sm_scale=sm_scale).float() * 1.5 + 0.5).to(q.dtype)
