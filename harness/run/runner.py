"""``lowbit run``: measure every kernel on one commit and record each case's result in the store.

For each kernel: replay the stored counterexamples, run the regression corpus, spend the fuzz budget.
The parts, one concern each:

- :mod:`harness.run.config`: the request (:class:`RunConfig`) and the defaults that size it, time-outs
  included;
- :mod:`harness.run.plan`: validation and the list of every kernel's cases (:func:`prepare`); a bad
  request writes nothing;
- :mod:`harness.run.protocol` and :mod:`harness.run.worker`: the worker processes kernels run in;
- :mod:`harness.run.devices`: the slots ``--devices`` spreads kernels over (GPUs, or parallel interpreter
  workers);
- :mod:`harness.run.execute`: the run row, its heartbeat, one thread per slot, workers restarted after a
  crash or a time-out, signals, the end state (:func:`execute`);
- :mod:`harness.run.summary`: per-kernel counts and the outcome.

This module is the entry point the CLI and tests use: ``execute(prepare(RunConfig(...)))``.
"""

from __future__ import annotations

from harness.run.config import RunConfig, RunUsageError
from harness.run.execute import execute
from harness.run.plan import KernelPlan, RunPlan, prepare, registry_names
from harness.run.protocol import describe_exit, worker_env
from harness.run.summary import KernelSummary, Progress, RunOutcome

__all__ = [
    "KernelPlan",
    "KernelSummary",
    "Progress",
    "RunConfig",
    "RunOutcome",
    "RunPlan",
    "RunUsageError",
    "describe_exit",
    "execute",
    "prepare",
    "registry_names",
    "worker_env",
]
