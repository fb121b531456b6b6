"""``lowbit demo``: a real history to browse, made by running the harness over labelled demo commits.

A throwaway git repository gets one commit per step of :data:`STEPS`; each commit is measured by the real
runner (worker processes, the regression corpus, fuzzing, counterexample replay) in the CPU interpreter,
with the demo kernel of that step recorded under one alias, ``attn``, next to the shipped ``fp16``
baseline. The demo kernels below are plain wrappers of the shipped fp16 Triton kernel, each changed the way
real commits change kernels:

- ``baseline``: the shipped kernel as is;
- ``slower``: computes the attention twice (same output, twice the time);
- ``less_precise``: rounds its output through bfloat16 (about seven times the error, still in budget);
- ``planted_bug``: drops the causal mask when Nq != Nk (fails those cases; a counterexample is stored);
- ``fixed``: the bug fixed; the stored counterexamples are replayed and pass again.

This module imports torch and the kernels lazily (inside the wrappers), so listing the steps is cheap.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALIAS = "attn"
BASELINE = "fp16"
BRANCH = "main"
FUZZ_EXAMPLES = 6
SEED = 20261123


def _fp16(q: Any, k: Any, v: Any, causal: bool, sm_scale: float | None) -> Any:
    from kernels import attention

    return attention(q, k, v, causal=causal, sm_scale=sm_scale, method="fp16")


def baseline(q, k, v, *, causal=False, sm_scale=None):
    """The shipped fp16 kernel."""
    return _fp16(q, k, v, causal, sm_scale)


def slower(q, k, v, *, causal=False, sm_scale=None):
    """A needless second pass: the same output, twice the latency."""
    _fp16(q, k, v, causal, sm_scale)
    return _fp16(q, k, v, causal, sm_scale)


def less_precise(q, k, v, *, causal=False, sm_scale=None):
    """Output rounded through bfloat16 (8 significant bits instead of fp16's 11)."""
    import torch

    out = _fp16(q, k, v, causal, sm_scale)
    return out.to(torch.bfloat16).to(out.dtype)


def planted_bug(q, k, v, *, causal=False, sm_scale=None):
    """The bug: the causal mask is dropped whenever the query and key lengths differ."""
    ragged = q.shape[2] != k.shape[2]
    return _fp16(q, k, v, causal and not ragged, sm_scale)


def fixed(q, k, v, *, causal=False, sm_scale=None):
    """The fix: back to the shipped kernel."""
    return _fp16(q, k, v, causal, sm_scale)


@dataclass(frozen=True)
class Step:
    message: str
    kernel: Callable

    @property
    def ref(self) -> str:
        return f"{ALIAS}={__name__}:{self.kernel.__name__}"


STEPS = (
    Step("demo 1: baseline attention (the shipped fp16 kernel)", baseline),
    Step("demo 2: refactor launch code (adds a second pass by mistake: slower)", slower),
    Step("demo 3: round the output through bf16 (less precise)", less_precise),
    Step("demo 4: skip the causal mask for ragged lengths (planted bug)", planted_bug),
    Step("demo 5: restore the causal mask (fixed)", fixed),
)


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=lowbit demo", "-c", "user.email=demo@lowbit.invalid", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


def make_repository(where: Path) -> list[str]:
    """A git repository at ``where`` with one empty commit per step; returns their SHAs, oldest first."""
    _git(where, "init", "-q", "-b", BRANCH)
    shas = []
    for step in STEPS:
        _git(where, "commit", "-q", "--allow-empty", "-m", step.message)
        shas.append(_git(where, "rev-parse", "HEAD"))
    return shas


def run_demo(db: str, progress_for: Callable[[Step, int], Any] | None = None) -> list[tuple[Step, Any]]:
    """Measure every step into ``db``; returns (step, RunOutcome) pairs. Raises RunUsageError."""
    from harness.run.runner import Progress, RunConfig, execute, prepare

    outcomes = []
    with tempfile.TemporaryDirectory(prefix="lowbit-demo-") as tmp:
        repo = Path(tmp)
        shas = make_repository(repo)
        for index, (step, sha) in enumerate(zip(STEPS, shas, strict=True)):
            config = RunConfig(
                db=db,
                commit=sha,
                branch=BRANCH,
                suite="quick",
                kernels=(step.ref, BASELINE),
                device="cpu",
                fuzz_examples=FUZZ_EXAMPLES,
                seed=SEED,
                cwd=repo,
            )
            plan = prepare(config)
            try:
                progress = progress_for(step, index) if progress_for else Progress()
                outcomes.append((step, execute(plan, progress)))
            finally:
                plan.store.close()
    return outcomes
