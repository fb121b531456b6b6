"""How long one case may run before its worker is killed, shared by ``lowbit run`` and ``lowbit fuzz``.

A case runs the kernel two or three times, the FP64 oracle and, on a GPU under ``lowbit run``, the timing
loop. The default is a base plus a share proportional to the case's work (B*Hq*Nq*Nk*D multiply-adds of
QK^T). The CPU interpreter measured ~7 s per kernel call at B*H=16, N=256, D=64 (6.7e7 units) on an idle
core, about 0.1 us per unit; 2 us per unit leaves a wide margin for loaded two-core CI machines. On a GPU
the FP64 oracle dominates large cases (~1e-11 s per unit on an H100-class part; 1e-10 leaves x10).
"""

from __future__ import annotations

import math
import os
import signal

CASE_TIMEOUT_ENV = "LOWBIT_CASE_TIMEOUT"
CASE_TIMEOUT_BASE_S = {"cpu": 120.0, "cuda": 60.0}
CASE_TIMEOUT_PER_WORK_S = {"cpu": 2e-6, "cuda": 1e-10}
# The first kernel call of a case may compile (Triton specialises per dtype, head dim, causal and the
# divisibility of the lengths): it gets this long on top of the time-out, which then restarts for the
# rest of the case. The CPU interpreter compiles nothing.
COMPILE_GRACE_S = {"cpu": 0.0, "cuda": 300.0}


def parse_seconds(text: str, where: str) -> float:
    """Seconds > 0 (finite) from ``text``; ValueError naming ``where`` otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{where}: expected a number of seconds > 0, got {text!r}")
    return value


def configured_case_timeout(given: float | None, option: str = "--case-timeout") -> float | None:
    """The time-out the user set (``option``, else $LOWBIT_CASE_TIMEOUT); None: size each case."""
    if given is not None:
        return parse_seconds(str(given), option)
    text = os.environ.get(CASE_TIMEOUT_ENV, "").strip()
    return parse_seconds(text, f"${CASE_TIMEOUT_ENV}") if text else None


def default_case_timeout(device: str, case_work: int) -> float:
    """Seconds one case of ``case_work`` units may take on ``device``."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return CASE_TIMEOUT_BASE_S[kind] + CASE_TIMEOUT_PER_WORK_S[kind] * case_work


def compile_grace(device: str) -> float:
    return COMPILE_GRACE_S["cuda" if device.startswith("cuda") else "cpu"]


def params_work(params: dict) -> int:
    """B*Hq*Nq*Nk*D of a case given as its params (missing fields count as 1)."""
    work = 1
    for key in ("batch", "hq", "nq", "nk", "head_dim"):
        value = params.get(key, 1)
        work *= value if isinstance(value, int) and value > 0 else 1
    return work


def case_timeout(configured: float | None, device: str, params: dict) -> float:
    """The time-out of one case: the user's setting, else sized by device and shape."""
    return configured if configured is not None else default_case_timeout(device, params_work(params))


def describe_exit(returncode: int) -> str:
    """Human description of a process's exit status (negative: killed by a signal)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} (exit status {returncode})"
    return f"exited with status {returncode}"
