"""What ``lowbit run`` was asked to do, and the defaults that size it (examples, batches); case time-outs
come from :mod:`harness.core.timeouts`, shared with ``lowbit fuzz``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.core import timeouts
from harness.core.timeouts import case_timeout, compile_grace, default_case_timeout

__all__ = [
    "RunConfig",
    "RunUsageError",
    "case_timeout",
    "compile_grace",
    "configured_case_timeout",
    "default_case_timeout",
]

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
    # --devices: "all" or comma-separated indices (harness.run.devices); None runs one kernel at a time.
    devices: str | None = None
    fuzz_examples: int | None = None
    seed: int | None = None
    cwd: Path | None = None
    # Seconds per case (None: $LOWBIT_CASE_TIMEOUT, else sized by device and shape).
    case_timeout_s: float | None = None
    allow_short: bool = False
    batch_rows: int = BATCH_ROWS
    batch_seconds: float = BATCH_SECONDS


def configured_case_timeout(given: float | None) -> float | None:
    """The case time-out the user set (``--case-timeout``, else $LOWBIT_CASE_TIMEOUT); None for default."""
    try:
        return timeouts.configured_case_timeout(given)
    except ValueError as exc:
        raise RunUsageError(str(exc)) from None
