"""Kernel calls isolated from the search: each case is checked in a worker process.

``lowbit fuzz`` and the pytest plugin search in this process and judge each case in a child
(:class:`IsolatedChecker`, passed to :func:`harness.search.fuzz.fuzz` as ``check``). A kernel that
segfaults, aborts, hits a CUDA fault or hangs takes only the child down: the case becomes a failure with
the property ``crashed`` or ``timed_out``, Hypothesis shrinks it like any other failure (each re-run in
a fresh child), and the search process lives on to print the repro line.

The child is started with ``spawn`` (never ``fork``: CUDA and threads do not survive it), chooses its
Triton backend before the kernel's module is imported, and serves cases until told to stop or killed. A
kernel the child cannot receive (a lambda or a closure: not importable by name) is checked in this
process instead, and :attr:`IsolatedChecker.note` says so.
"""

from __future__ import annotations

import multiprocessing
import pickle
import time
from typing import Any

from harness.core.timeouts import case_timeout, compile_grace, describe_exit
from harness.search.cases import Case
from harness.search.properties import CaseResult, check_case
from harness.search.targets import KernelTarget

POLL_S = 0.25
# A worker whose CUDA caching allocator holds more than this between cases gives the memory back, so
# fuzzers sharing one GPU do not each keep the peak of their largest case.
RESERVED_LIMIT_BYTES = 4 * 2**30
# A worker's start-up (interpreter, torch, the kernel's module) is not counted against a case.
STARTUP_LIMIT_S = 600.0


def _serve(conn: Any, blob: bytes, device: str) -> None:
    """The child: check each case sent as params; report the first kernel call's end, then the result."""
    import faulthandler
    import os
    import threading

    faulthandler.enable()
    parent = os.getppid()

    def exit_with_parent() -> None:
        # A search killed with SIGKILL must not leave a kernel hung in its worker.
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    from harness.search.device import select_device

    select_device(device)  # before the kernel's module is imported by unpickling the target
    target: KernelTarget = pickle.loads(blob)
    fn = target.fn
    calls = [0]

    def announced(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        calls[0] += 1
        if calls[0] == 1:
            conn.send(("first_call_done", None))
        return out

    import dataclasses

    timed = dataclasses.replace(target, fn=announced)
    conn.send(("ready", None))
    while True:
        try:
            params = conn.recv()
        except EOFError:
            return
        if params is None:
            return
        calls[0] = 0
        case = Case.from_params(params)
        start = time.monotonic()
        try:
            result = check_case(timed, case, device)
        except Exception as exc:
            # The checks catch the kernel's own exceptions; what escapes is the process failing under
            # them (a kernel that hit an illegal address poisons every later CUDA call, the checks' too).
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            message = f"the kernel's worker failed while checking this case: {reason}"
            result = fault_result(target, case, "crashed", message, time.monotonic() - start, device)
        _release_cached_memory(device)
        if cuda_context_error(device) is not None:
            # The next case needs a fresh worker (and a fresh CUDA context): say so with the result, so
            # the parent never hands a case to this worker while it exits.
            conn.send(("last_result", result))
            return
        conn.send(("result", result))


def _release_cached_memory(device: str) -> None:
    import torch

    if torch.device(device).type != "cuda" or not torch.cuda.is_initialized():
        return
    try:
        if torch.cuda.memory_reserved() > RESERVED_LIMIT_BYTES:
            torch.cuda.empty_cache()
    except RuntimeError:
        pass  # a lost context: cuda_context_error reports it next


def cuda_context_error(device: str) -> str | None:
    """Why the CUDA context is unusable (a kernel hit an illegal address, ...), or None if it is fine.

    After such a fault every later CUDA call in the process fails too: the worker must end after
    reporting the case that caused it, and a fresh worker goes on.
    """
    if not device.startswith("cuda"):
        return None
    import torch

    try:
        torch.cuda.synchronize()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def fault_result(
    target: KernelTarget, case: Case, prop: str, message: str, elapsed: float, device: str
) -> CaseResult:
    """A failed case whose kernel killed or hung its worker: no metrics, just the property and why."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    return CaseResult(
        kernel=target.name,
        case=case,
        status="fail",
        failed_property=prop,
        verdicts={prop: False},
        metrics={"rel_l2": float("nan"), "max_abs": float("nan")},
        budget=target.budget_for(case.family, case.dtype),
        message=message,
        elapsed_s=elapsed,
        # The device is part of the repro, as for every other failure.
        repro_command=case.repro_command(target.ref, [*target.override_args(), "--device", kind]),
        error_ratio=float("inf"),
    )


class IsolatedChecker:
    """``check(target, case, device)`` that runs the kernel in a worker process (see module docstring).

    ``timeout_s``: seconds per case (None: sized by device and shape); the first kernel call of a case
    may compile and is not counted against it.
    """

    def __init__(self, target: KernelTarget, device: str, timeout_s: float | None = None) -> None:
        self.target = target
        self.device = device
        self.timeout_s = timeout_s
        self.note = ""
        self.workers_started = 0
        self._proc: Any = None
        self._conn: Any = None
        try:
            self._blob: bytes | None = pickle.dumps(target)
        except Exception as exc:
            self._blob = None
            self.note = (
                f"kernel {target.name} cannot be sent to a worker process ({type(exc).__name__}: {exc}); "
                "it runs in this process, unprotected from crashes and hangs: pass a module-level "
                "function or a 'module:function' reference to isolate it"
            )

    @property
    def isolated(self) -> bool:
        return self._blob is not None

    def _start(self) -> str | None:
        """Start a worker and wait until it is ready; the reason if it died or never got ready."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self._blob, self.device), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        self.workers_started += 1
        end = time.monotonic() + STARTUP_LIMIT_S
        try:
            while time.monotonic() < end:
                if parent.poll(POLL_S):
                    parent.recv()  # ("ready", None)
                    return None
                if not self._proc.is_alive():
                    break
        except (EOFError, OSError):
            pass
        self._proc.join(timeout=10)
        if self._proc.exitcode is None:
            return f"did not get ready within {STARTUP_LIMIT_S:.0f} s"
        return describe_exit(self._proc.exitcode) + " while starting"

    def _discard(self) -> None:
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(timeout=5)
            except (OSError, EOFError):
                pass
        self._discard()

    def __enter__(self) -> IsolatedChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, target: KernelTarget, case: Case, device: str) -> CaseResult:
        if self._blob is None:
            return check_case(target, case, device)
        if self._proc is None or not self._proc.is_alive():
            self._discard()
            failure = self._start()
            if failure is not None:
                self._discard()
                message = f"the kernel's worker process {failure} (before this case ran)"
                return fault_result(target, case, "crashed", message, 0.0, device)
        timeout = case_timeout(self.timeout_s, self.device, case.params())
        start = time.monotonic()
        deadline = start + timeout + compile_grace(self.device)
        try:
            self._conn.send(case.params())
            while True:
                if self._conn.poll(POLL_S):
                    kind, payload = self._conn.recv()
                    if kind == "result":
                        return payload
                    if kind == "last_result":
                        self._discard()
                        return payload
                    deadline = time.monotonic() + timeout  # the first (compiling) call is over
                elif not self._proc.is_alive():
                    break
                if time.monotonic() > deadline:
                    self._discard()
                    message = (
                        f"the kernel ran past the case time-out of {timeout:.0f} s; its worker was killed"
                    )
                    return fault_result(target, case, "timed_out", message, time.monotonic() - start, device)
        except (EOFError, OSError, BrokenPipeError):
            pass
        self._proc.join(timeout=10)
        cause = describe_exit(self._proc.exitcode if self._proc.exitcode is not None else -9)
        self._discard()
        message = f"the kernel's worker process {cause} while running this case"
        return fault_result(target, case, "crashed", message, time.monotonic() - start, device)
