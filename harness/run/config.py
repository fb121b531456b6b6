"""What ``lowbit run`` was asked to do, and the defaults that size it (examples, batches, time-outs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Fuzz examples per kernel when --fuzz-examples is not given: the interpreter is ~1000x slower than a GPU.
DEFAULT_FUZZ_EXAMPLES = {
    "cpu": {"quick": 25, "ci": 50, "nightly": 200},
    "cuda": {"quick": 25, "ci": 100, "nightly": 1000},
}
# Fuzzer profile (harness.search.profiles) of each suite: shape limits and Hypothesis settings.
FUZZ_PROFILE = {"quick": "dev", "ci": "ci", "nightly": "nightly"}
# Stored counterexamples bigger than this are not replayed in the CPU interpreter (they come from GPU
# runs sharing the database and would take minutes each); they are counted as skipped.
CPU_REPLAY_MAX_WORK = 4 * 96 * 160 * 256
BATCH_ROWS = 25
BATCH_SECONDS = 2.0

CASE_TIMEOUT_ENV = "LOWBIT_CASE_TIMEOUT"
# Default time-out of one case: a base plus a share proportional to the case's work (B*Hq*Nq*Nk*D
# multiply-adds of QK^T). A case runs the kernel two or three times, the FP64 oracle and, on a GPU, the
# timing loop. The CPU interpreter measured ~7 s per kernel call at B*H=16, N=256, D=64 (6.7e7) on an idle
# core, about 0.1 us per unit; 2 us per unit leaves a wide margin for loaded two-core CI machines. On a
# GPU the FP64 oracle dominates large cases (~1e-11 s per unit on an H100 class part, x10 margin).
CASE_TIMEOUT_BASE_S = {"cpu": 120.0, "cuda": 60.0}
CASE_TIMEOUT_PER_WORK_S = {"cpu": 2e-6, "cuda": 1e-10}
# The first kernel call of a case may compile (Triton specialises per dtype, head dim, causal and
# divisibility of the lengths): it gets this long on top of the time-out, which then restarts for the rest.
# The CPU interpreter compiles nothing.
COMPILE_GRACE_S = {"cpu": 0.0, "cuda": 300.0}


class RunUsageError(Exception):
    """The request cannot be run as given (bad kernel spec, commit, shard, device, database): exit 2."""


@dataclass
class RunConfig:
    db: str | None = None
    commit: str | None = None
    branch: str | None = None
    suite: str = "quick"
    kernels: tuple[str, ...] = ()
    shard: str | None = None
    device: str | None = None
    fuzz_examples: int | None = None
    seed: int | None = None
    cwd: Path | None = None
    # Seconds per case (None: $LOWBIT_CASE_TIMEOUT, else sized by device and shape).
    case_timeout_s: float | None = None
    allow_short: bool = False
    batch_rows: int = BATCH_ROWS
    batch_seconds: float = BATCH_SECONDS


def parse_case_timeout(text: str, where: str) -> float:
    """Seconds > 0 from ``text``; RunUsageError naming ``where`` otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise RunUsageError(f"{where}: expected a number of seconds > 0, got {text!r}")
    return value


def configured_case_timeout(given: float | None) -> float | None:
    """The case time-out the user set (``--case-timeout``, else $LOWBIT_CASE_TIMEOUT); None for default."""
    if given is not None:
        return parse_case_timeout(str(given), "--case-timeout")
    text = os.environ.get(CASE_TIMEOUT_ENV, "").strip()
    return parse_case_timeout(text, f"${CASE_TIMEOUT_ENV}") if text else None


def default_case_timeout(device: str, case_work: int) -> float:
    """Seconds one case of ``case_work`` units may take on ``device`` (see CASE_TIMEOUT_BASE_S)."""
    return CASE_TIMEOUT_BASE_S[device] + CASE_TIMEOUT_PER_WORK_S[device] * case_work


def case_timeout(configured: float | None, device: str, params: dict[str, Any]) -> float:
    """The time-out of one case (given as its params): the user's setting, else sized by its shape."""
    if configured is not None:
        return configured
    work = 1
    for key in ("batch", "hq", "nq", "nk", "head_dim"):
        value = params.get(key, 1)
        work *= value if isinstance(value, int) and value > 0 else 1
    return default_case_timeout(device, work)
