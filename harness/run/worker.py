"""Kernel worker: runs one kernel's cases in a subprocess and reports each one to the parent as it goes.

A kernel may crash the process that calls it (a segfault in a bad launch, a CUDA fault, the OOM killer),
so the runner never calls kernels itself. It starts ``python -m harness.run.worker --fd N`` with the job as
JSON on stdin and reads JSON lines from file descriptor ``N`` (not stdout: a kernel or a library may print
there). Messages, in order:

- ``{"type": "ready", "name", "source_hash"}`` once the kernel is loaded;
- ``{"type": "start", "phase", "case_id", "params"}`` before a case runs: if the worker dies now, the
  parent records a crash against exactly this case;
- ``{"type": "first_call_done"}`` when the case's first kernel call returned: that call may have
  compiled, so the parent starts the case's time-out only now (the first call has a grace of its own);
- ``{"type": "result", "phase", "row", "budget"}`` after it ran; ``row`` holds the fields of
  :class:`harness.store.ResultRow`, ``budget`` the error budget it was judged against;
- ``{"type": "error", "phase", "message"}`` when the harness itself failed outside a case;
- ``{"type": "fuzz_report", "examples", "failures", "elapsed_s"}`` when the fuzz budget is spent;
- ``{"type": "context_lost", "phase", "message"}`` when a case left the CUDA context unusable (an
  illegal address): the worker exits with status 4 and the parent goes on in a fresh one;
- ``{"type": "done"}`` at the end.

The worker runs in a session of its own; it exits if its parent goes away (a runner killed with
SIGKILL must not leave a hung kernel behind).

A Python exception raised by the kernel is a property failure that
:func:`harness.search.properties.check_case` records; the worker goes on with the next case. Each line is
flushed before the case runs, so the parent never loses what was reported before a fault.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

# Exit status of a worker whose CUDA context a kernel broke (after reporting that kernel's case).
EXIT_CONTEXT_LOST = 4


class Reporter:
    """Writes protocol messages, one JSON object per line, flushed at once."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def send(self, message: dict) -> None:
        self.stream.write(json.dumps(message, allow_nan=True, default=_json_default) + "\n")
        self.stream.flush()


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


class CallTimer:
    """Wraps a kernel callable and keeps the wall time of each call (the interpreter's "latency").

    ``after_first`` runs once the first call since the last :meth:`reset` has returned.
    """

    def __init__(self, fn: Callable, after_first: Callable[[], None] | None = None) -> None:
        self.fn = fn
        self.after_first = after_first
        self.samples_s: list[float] = []

    def reset(self) -> None:
        self.samples_s.clear()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.samples_s.append(time.perf_counter() - start)
        if len(self.samples_s) == 1 and self.after_first is not None:
            self.after_first()
        return out


def exit_with_parent(poll_s: float = 1.0) -> None:
    """Exit at once when the parent process goes away (checked from a daemon thread)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="lowbit-parent-watch", daemon=True).start()


def _case_fields(case: Any, phase: str) -> dict:
    return {
        "case_id": case.case_id,
        "case_params": case.params(),
        "family": case.family,
        "shape_class": case.shape_class,
        "phase": phase,
    }


def result_row(result: Any, phase: str, latency: dict | None) -> dict:
    """Fields of a ``ResultRow`` from a :class:`harness.search.properties.CaseResult`."""
    return {
        **_case_fields(result.case, phase),
        "status": result.status,
        "failed_property": result.failed_property,
        "verdicts": dict(result.verdicts),
        "metrics": {key: float(value) for key, value in result.metrics.items()},
        "message": _with_repro(result),
        "latency": latency,
    }


def _with_repro(result: Any) -> str:
    repro = getattr(result, "repro_command", "")
    if result.status in ("pass", "unsupported") or not repro:
        return result.message
    return f"{result.message}\nrepro: {repro}"


def error_row(case: Any, phase: str, message: str) -> dict:
    """A case the harness could not judge (it raised outside the kernel): status "error"."""
    return {
        **_case_fields(case, phase),
        "status": "error",
        "failed_property": None,
        "verdicts": {},
        "metrics": {},
        "message": message,
        "latency": None,
    }


def _budget(result: Any) -> dict | None:
    """The budget a result was judged against, and how much of it the worse of its two errors used."""
    budget = getattr(result, "budget", None)
    if budget is None:
        return None
    ratio = getattr(result, "error_ratio", None)
    return {
        "max_rel_l2": float(budget.max_rel_l2),
        "max_abs": float(budget.max_abs),
        "error_ratio": None if ratio is None else float(ratio),
    }


class Worker:
    """Runs a job: replayed and corpus cases in order, then the fuzz budget."""

    def __init__(self, job: dict, reporter: Reporter) -> None:
        from harness.search.targets import load_kernel

        self.job = job
        self.reporter = reporter
        self.device = job["device"]
        loaded = load_kernel(job["kernel_ref"])
        self.timer = CallTimer(loaded.fn, after_first=lambda: reporter.send({"type": "first_call_done"}))
        # The harness calls the timed wrapper: every kernel call of a case is also a latency sample.
        self.target = dataclasses.replace(loaded, fn=self.timer)
        self.raw_fn = loaded.fn
        self.phase = "corpus"
        self.flusher: Any = None  # harness.run.timing.L2Flusher, made on the first GPU timing
        reporter.send({"type": "ready", "name": loaded.name, "source_hash": loaded.source_hash})

    def announce(self, case: Any) -> None:
        self.timer.reset()
        self.reporter.send(
            {
                "type": "start",
                "phase": self.phase,
                "case_id": case.case_id,
                "params": case.params(),
                "family": case.family,
                "shape_class": case.shape_class,
            }
        )

    def latency(self, result: Any) -> dict | None:
        from harness.run import timing

        if result.status == "unsupported":
            return None
        if self.device != "cuda":
            return timing.cpu_interpreter_latency(self.timer.samples_s)
        if result.failed_property in ("supported_or_raises", "shape_dtype_device"):
            return None
        case = result.case
        q, k, v = case.make_inputs(self.device)
        flops = timing.attention_flops(case.batch, case.hq, case.nq, case.nk, case.head_dim, case.causal)
        if self.flusher is None:
            self.flusher = timing.L2Flusher(self.device)
        try:
            return timing.time_cuda(
                lambda: self.raw_fn(q, k, v, causal=case.causal, sm_scale=case.sm_scale),
                flops=flops,
                flusher=self.flusher,
            )
        except Exception:
            # The kernel raised while being timed: check_case already judged (and recorded) the case.
            return None

    def report(self, result: Any, phase: str) -> None:
        from harness.search.isolation import cuda_context_error

        self.reporter.send(
            {
                "type": "result",
                "phase": phase,
                "row": result_row(result, phase, self.latency(result)),
                "budget": _budget(result),
            }
        )
        broken = cuda_context_error(self.device)
        if broken is not None:
            # Every later CUDA call in this process would fail: end here; the parent starts a fresh
            # worker for the cases not yet run.
            self.reporter.send({"type": "context_lost", "phase": phase, "message": broken})
            sys.stdout.flush()
            os._exit(EXIT_CONTEXT_LOST)

    def run_cases(self, phase: str, cases_params: list[dict]) -> None:
        from harness.search.cases import Case
        from harness.search.properties import check_case

        self.phase = phase
        for params in cases_params:
            case = Case.from_params(params)
            self.announce(case)
            try:
                result = check_case(self.target, case, self.device)
            except Exception as exc:
                self.reporter.send(
                    {
                        "type": "result",
                        "phase": phase,
                        "row": error_row(case, phase, _exception_text(exc)),
                        "budget": None,
                    }
                )
                continue
            self.report(result, phase)

    def run_fuzz(self, spec: dict) -> None:
        from harness.search.fuzz import fuzz

        self.phase = "fuzz"
        recorded: set[str] = set()

        def on_result(result: Any) -> None:
            # Shrinking steps are not recorded: each failing one would become a stored counterexample.
            # The minimal failures fuzz() returns are recorded below.
            if getattr(result, "phase", "explore") == "shrink":
                return
            recorded.add(result.case.case_id)
            self.report(result, "fuzz")

        sizes = None
        if spec.get("tiny"):
            from harness.search.profiles import TINY

            sizes = TINY
        try:
            # Each example is announced before it runs, so the parent attributes a crash to it.
            report = fuzz(
                self.target,
                examples=spec["examples"],
                seed=spec["seed"],
                device=self.device,
                profile=spec["profile"],
                sizes=sizes,
                on_result=on_result,
                database=False,
                before_case=self.announce,
            )
        except Exception as exc:
            self.reporter.send({"type": "error", "phase": "fuzz", "message": _exception_text(exc)})
            return
        for failure in report.failures:
            if failure.case.case_id not in recorded:
                recorded.add(failure.case.case_id)
                self.timer.reset()  # its kernel calls were not the last ones timed
                self.report(failure, "fuzz")
        self.reporter.send(
            {
                "type": "fuzz_report",
                "examples": report.examples,
                "failures": len(report.failures),
                "elapsed_s": report.elapsed_s,
            }
        )

    def run(self) -> None:
        for phase in self.job["phases"]:
            self.run_cases(phase["phase"], phase["cases"])
        fuzz_spec = self.job.get("fuzz")
        if fuzz_spec and fuzz_spec["examples"] > 0:
            self.run_fuzz(fuzz_spec)
        self.reporter.send({"type": "done"})


def _exception_text(exc: BaseException) -> str:
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return f"{type(exc).__name__}: {exc}\n{''.join(frames[-3:])}".strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.run.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="file descriptor to write messages to")
    args = parser.parse_args(argv)
    # On a segfault or abort, Python's traceback goes to the worker's log, which the parent quotes in
    # the crash record.
    faulthandler.enable()
    exit_with_parent()
    job = json.load(sys.stdin)
    reporter = Reporter(os.fdopen(args.fd, "w", encoding="utf-8"))

    # The Triton backend must be chosen before the kernel's module is imported.
    from harness.search.device import DeviceError, select_device

    try:
        select_device(job["device"])
    except DeviceError as exc:
        # The runner checks the device before starting workers; a worker started anyway says why it
        # cannot run (an unusable Triton interpreter) instead of failing every case obscurely.
        reporter.send({"type": "error", "phase": "load", "message": f"DeviceError: {exc}"})
        return 3
    try:
        worker = Worker(job, reporter)
    except Exception as exc:
        reporter.send({"type": "error", "phase": "load", "message": _exception_text(exc)})
        return 3
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
