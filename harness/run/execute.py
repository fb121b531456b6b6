"""Executing a planned run: the run row, its heartbeat, one kernel after another, signals, the end state.

Each kernel's cases run in worker processes (:mod:`harness.run.protocol`). A worker that dies or runs
past its case's time-out is killed, the case in flight is recorded (``crash`` or ``timeout``), and a new
worker goes on with the cases not yet run; a worker that dies twice in a row without finishing a case
ends the kernel, and its remaining cases are recorded as ``skipped`` with the reason. SIGINT and SIGTERM
stop the run between two polls: what was measured is written, the cases never run are recorded as
skipped, and the run ends ``interrupted``. A heartbeat thread refreshes the run row, so a runner that
vanishes (kill -9) is marked ``abandoned`` by the next command that opens the database.

With several slots (``--devices``, :mod:`harness.run.devices`) one thread per slot takes the next kernel
(the longest planned first) and runs it with its slot's workers; results go through the one store. The
main thread keeps the signal handlers and waits on the slot threads; a slot that fails (the database
went away) stops the others, whose unfinished cases are recorded as skipped, and the run ends as it would
with one slot.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from harness.run.config import FUZZ_PROFILE, RunUsageError, case_timeout, compile_grace
from harness.run.devices import Slot, default_slot
from harness.run.plan import KernelPlan, RunPlan, derive_seed
from harness.run.protocol import IDLE, WorkerProcess, crash_row, describe_exit, log_tail, skipped_row
from harness.run.summary import KernelSummary, Progress, RunOutcome

POLL_S = 0.25
# A worker that dies this many times in a row without finishing a case ends its kernel.
MAX_FRUITLESS_WORKERS = 2


class Stop:
    """Set by SIGINT/SIGTERM, or by a slot that failed; polled by the kernel loops."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.failure: str | None = None  # another slot's error: this one stops too

    def __bool__(self) -> bool:
        return self.signum is not None or self.failure is not None

    def reason(self) -> str:
        if self.signum is not None:
            return f"the run was interrupted by {signal.Signals(self.signum).name}"
        return f"the run stopped after an error in another slot ({self.failure})"


@contextlib.contextmanager
def _signals_stop(stop: Stop) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` instead of killing the runner (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        stop.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Heartbeat:
    """Refreshes the run's heartbeat every ``interval`` seconds from a thread."""

    def __init__(self, store: Any, run_id: int, interval: float) -> None:
        self.store, self.run_id, self.interval = store, run_id, interval
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="lowbit-heartbeat", daemon=True)

    def _beat(self) -> None:
        from harness.store import StoreError

        while not self.done.wait(self.interval):
            try:
                self.store.heartbeat(self.run_id)
            except StoreError:
                continue  # a busy or briefly unreachable database: the next beat tries again

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=5)


def execute(plan: RunPlan, progress: Progress | None = None) -> RunOutcome:
    """Start the run row, measure every kernel, finish the run row with how it ended."""
    from harness import __version__
    from harness.store import StoreError
    from harness.store.api import HEARTBEAT_S

    progress = progress or Progress()
    config = plan.config
    shard_label = f"{plan.shard[0]}/{plan.shard[1]}" if plan.shard else None
    try:
        run_id = plan.store.start_run(
            commit=plan.commit.commit,
            parents=plan.commit.parents,
            branch=plan.commit.branch,
            subject=plan.commit.subject,
            suite=config.suite,
            shard=shard_label,
            environment=plan.environment,
            lowbit_version=__version__,
        )
    except StoreError as exc:
        raise RunUsageError(str(exc)) from None

    notes: list[str] = []
    stop = Stop()
    slots = _Slots(plan, run_id, progress, stop)
    try:
        with _signals_stop(stop), Heartbeat(plan.store, run_id, HEARTBEAT_S):
            slots.run()
    except StoreError as exc:
        notes.extend(slots.notes())
        notes.append(f"database error: {exc}")
        _finish_quietly(plan.store, run_id, "crashed", "; ".join(notes))
        raise RunUsageError(str(exc)) from None
    except BaseException as exc:
        notes.extend(slots.notes())
        notes.append(f"run aborted: {type(exc).__name__}: {exc}")
        _finish_quietly(plan.store, run_id, "crashed", "; ".join(notes))
        raise
    summaries = slots.summaries()
    notes.extend(slots.notes())
    status = "complete"
    if stop.signum is not None:
        status = "interrupted"
        notes.append(f"interrupted by {signal.Signals(stop.signum).name}")
    try:
        plan.store.finish_run(run_id, status, "; ".join(notes))
    except StoreError as exc:
        raise RunUsageError(str(exc)) from None
    return RunOutcome(
        run_id=run_id,
        status=status,
        summaries=summaries,
        notes=notes,
        signal=stop.signum,
        slots=len(slots.slots),
    )


class _Slots:
    """The run's kernels spread over its slots: one kernel at a time per slot, one thread per slot."""

    def __init__(self, plan: RunPlan, run_id: int, progress: Progress, stop: Stop) -> None:
        self.plan, self.run_id, self.progress, self.stop = plan, run_id, progress, stop
        self.slots: list[Slot] = list(plan.slots) or [default_slot(plan.device)]
        order = list(range(len(plan.kernels)))
        if len(self.slots) > 1:
            # The longest kernels first, so a long one does not start last and leave the other slots idle.
            order.sort(key=lambda i: -plan.kernels[i].planned)
        self.queue: deque[int] = deque(order)
        self.finished: dict[int, KernelSummary] = {}
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def run(self) -> None:
        if len(self.slots) == 1:
            self._work(self.slots[0])  # in the main thread, exceptions and all
            return
        threads = [
            threading.Thread(target=self._guarded, args=(slot,), name=f"lowbit-{slot.label}", daemon=True)
            for slot in self.slots
        ]
        for thread in threads:
            thread.start()
        # Joined with a time-out: the main thread must stay free to take SIGINT/SIGTERM.
        for thread in threads:
            while thread.is_alive():
                thread.join(POLL_S)
        if self.error is not None:
            raise self.error

    def _next(self) -> int | None:
        with self.lock:
            if self.error is not None or not self.queue:
                return None
            return self.queue.popleft()

    def _work(self, slot: Slot) -> None:
        while (index := self._next()) is not None:
            run = KernelRun(self.plan, self.plan.kernels[index], self.run_id, self.progress, self.stop, slot)
            self.finished[index] = run.run()

    def _guarded(self, slot: Slot) -> None:
        try:
            self._work(slot)
        except BaseException as exc:
            with self.lock:
                if self.error is None:
                    self.error = exc
                    self.stop.failure = f"{slot.label}: {type(exc).__name__}: {exc}"

    def summaries(self) -> list[KernelSummary]:
        """Every kernel's summary, in the order the kernels were given."""
        return [self.finished[i] for i in sorted(self.finished)]

    def notes(self) -> list[str]:
        return [f"{s.name}: {note}" for s in self.summaries() for note in s.notes]


def _finish_quietly(store: Any, run_id: int, status: str, note: str) -> None:
    try:
        store.finish_run(run_id, status, note)
    except Exception:
        # The database is what failed: the run row stays "running" until the next open marks it abandoned.
        return


class KernelRun:
    """One kernel: its workers in turn, their results written in batches, every case accounted for."""

    def __init__(
        self,
        plan: RunPlan,
        kernel: KernelPlan,
        run_id: int,
        progress: Progress,
        stop: Stop,
        slot: Slot | None = None,
    ) -> None:
        self.plan = plan
        self.kernel = kernel
        self.run_id = run_id
        self.progress = progress
        self.stop = stop
        self.slot = slot or default_slot(plan.device)
        self.name = kernel.target.name
        self.summary = KernelSummary(self.name, skipped_replay=kernel.skipped_replay, device=self.slot.label)
        self.pending: list[Any] = []
        self.pending_since: float | None = None
        self.kernel_id: int | None = None

    # -- writing ------------------------------------------------------------------------------------
    def flush(self) -> None:
        from harness.store import ResultRow

        if not self.pending:
            return
        if self.kernel_id is None:
            self.kernel_id = self.plan.store.kernel_id(self.name, self.kernel.target.source_hash)
        rows = [ResultRow(**row) for row in self.pending]
        self.plan.store.record_results(self.run_id, self.kernel_id, rows)
        self.pending.clear()
        self.pending_since = None

    def add(self, row: dict, budget: dict | None) -> None:
        if budget:
            # Stored with the row, so readers (the dashboard) can show errors as a share of the budget
            # the case was judged against without importing the kernels' registry.
            extra = {
                "budget_rel_l2": budget.get("max_rel_l2"),
                "budget_max_abs": budget.get("max_abs"),
                "error_ratio": budget.get("error_ratio"),
            }
            row["metrics"] = {**row.get("metrics", {}), **{k: v for k, v in extra.items() if v is not None}}
        if self.slot.index is not None:
            # Which of the host's devices measured the row (--devices): GPUs of one model still differ.
            row["metrics"] = {**row.get("metrics", {}), "device_index": self.slot.index}
        self.pending.append(row)
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        self.summary.add(row, budget)
        self.progress.case_done(self.name, row)
        if len(self.pending) >= self.plan.config.batch_rows:
            self.flush()

    # -- the kernel's cases -------------------------------------------------------------------------
    def run(self) -> KernelSummary:
        if self.kernel.skipped_replay:
            self.summary.notes.append(
                f"{self.kernel.skipped_replay} stored counterexample(s) not replayed (unreadable or too "
                "large for the CPU interpreter)"
            )
        # The device is named only when --devices spread the run (the default slot's output is unchanged).
        device = self.slot.label if self.slot.index is not None else None
        self.progress.kernel_started(self.name, self.kernel.planned, device=device)
        with tempfile.TemporaryFile(mode="w+", prefix="lowbit-worker-") as log:
            self._run_all(log)
        self.flush()
        self.progress.kernel_finished(self.summary)
        return self.summary

    def _run_all(self, log: Any) -> None:
        # Each counterexample that crashed or hung before gets a worker of its own.
        for case in self.kernel.isolated:
            self._run_fixed(log, [("replay", case)], fuzz_examples=0)
        fixed = [("replay", c) for c in self.kernel.replay] + [("corpus", c) for c in self.kernel.corpus]
        self._run_fixed(log, fixed, fuzz_examples=self.kernel.fuzz_examples)

    def _run_fixed(self, log: Any, fixed: list[tuple[str, Any]], fuzz_examples: int) -> None:
        """Run ``fixed`` cases in order, then ``fuzz_examples``, starting new workers as old ones die."""
        remaining = list(fixed)
        fuzz_left = fuzz_examples
        fruitless = 0
        attempt = 0
        while (remaining or fuzz_left > 0) and not self.stop:
            fuzz_seed = self.kernel.fuzz_seed if attempt == 0 else derive_seed(self.kernel.fuzz_seed, attempt)
            attempt += 1
            worker = _Attempt(self, log, remaining, fuzz_left, fuzz_seed)
            worker.drive()
            done_ids = worker.finished_fixed
            remaining = remaining[done_ids:]
            fuzz_left = 0 if worker.fuzz_finished else max(fuzz_left - worker.fuzz_examples_seen, 0)
            if worker.clean_exit or self.stop:
                break
            if not remaining and fuzz_left <= 0:
                break  # the worker died on the last case: nothing is left to restart it for
            self.summary.worker_restarts += 1
            fruitless = 0 if worker.progressed else fruitless + 1
            if fruitless >= MAX_FRUITLESS_WORKERS:
                reason = (
                    f"not run: the kernel's worker died {fruitless} times in a row without finishing a case"
                )
                self._skip(remaining, fuzz_left, reason)
                return
        if self.stop:
            self._skip(remaining, fuzz_left, f"not run: {self.stop.reason()}")

    def _skip(self, remaining: list[tuple[str, Any]], fuzz_left: int, reason: str) -> None:
        for phase, case in remaining:
            self.add(skipped_row(case, phase, reason), None)
        if fuzz_left > 0:
            self.summary.fuzz_examples_not_run += fuzz_left
            self.summary.notes.append(f"{fuzz_left} fuzz example(s) {reason}")
        if remaining:
            self.summary.notes.append(f"{len(remaining)} case(s) {reason}")


class _Attempt:
    """One worker's life: drive it until it finishes, dies, hangs past its case's time-out, or is stopped."""

    def __init__(
        self, run: KernelRun, log: Any, fixed: list[tuple[str, Any]], fuzz_examples: int, fuzz_seed: int
    ) -> None:
        self.run = run
        self.log = log
        self.fixed = fixed
        self.fuzz_examples = fuzz_examples
        self.fuzz_seed = fuzz_seed
        self.finished_fixed = 0  # leading cases of ``fixed`` accounted for
        self.fuzz_examples_seen = 0
        self.fuzz_finished = False
        self.clean_exit = False
        self.progressed = False

    def job(self) -> dict:
        plan, kernel = self.run.plan, self.run.kernel
        phases: list[dict] = []
        for phase, case in self.fixed:
            if not phases or phases[-1]["phase"] != phase:
                phases.append({"phase": phase, "cases": []})
            phases[-1]["cases"].append(case.params())
        return {
            "kernel_ref": kernel.target.ref,
            "device": plan.device,
            "phases": phases,
            "fuzz": {
                "examples": self.fuzz_examples,
                "seed": self.fuzz_seed,
                "profile": FUZZ_PROFILE[plan.config.suite],
                # The quick suite on the interpreter draws the fuzzer's tiny shapes (well under a second
                # per example); the others draw the profile's shapes for the device.
                "tiny": plan.device == "cpu" and plan.config.suite == "quick",
            },
        }

    def drive(self) -> None:
        run, plan = self.run, self.run.plan
        worker = WorkerProcess(self.job(), plan.device, self.log, plan.config.cwd, run.slot.env)
        in_flight: dict | None = None
        deadline = 0.0
        timeout = 0.0
        timed_out = False
        done = False
        try:
            while True:
                message = worker.get(POLL_S)
                if message is None:
                    break
                kind = message.get("type")
                if kind == "start":
                    in_flight = message
                    timeout = case_timeout(plan.case_timeout_s, plan.device, message["params"])
                    # The first kernel call may compile: it is not counted against the case.
                    deadline = time.monotonic() + timeout + compile_grace(plan.device)
                    run.progress.phase(run.name, message["phase"])
                    run.progress.case_started(run.name, message["case_id"])
                elif kind == "first_call_done" and in_flight is not None:
                    deadline = time.monotonic() + timeout
                elif kind == "result":
                    in_flight = None
                    self._accept(message["row"], message.get("budget"))
                elif kind == "error":
                    run.summary.errors += 1
                    run.summary.notes.append(f"harness error in {message.get('phase')}: {message['message']}")
                elif kind == "fuzz_report":
                    self.fuzz_finished = True
                    if message.get("failures") and self.fuzz_examples_seen < self.fuzz_examples:
                        # The search ends at its first failure (shrunk, recorded): the rest of the fuzz
                        # budget was not spent, and the planned count says so instead of going quiet.
                        run.summary.notes.append(
                            f"fuzzing stopped at its first failure: {self.fuzz_examples_seen} of "
                            f"{self.fuzz_examples} planned example(s) run"
                        )
                elif kind == "done":
                    done = True
                elif kind == "context_lost":
                    run.summary.notes.append(
                        f"a {message.get('phase')} case left the CUDA context unusable "
                        f"({message.get('message')}): the next cases run in a fresh worker"
                    )
                elif kind == "garbage":
                    run.summary.notes.append(f"unreadable worker message: {message['text'][:200]}")
                if message is IDLE:
                    run.progress.tick()
                if run.pending_since is not None and (
                    time.monotonic() - run.pending_since >= plan.config.batch_seconds
                ):
                    run.flush()
                if run.stop:
                    worker.kill()
                    break
                if in_flight is not None and time.monotonic() > deadline and not timed_out:
                    timed_out = True
                    worker.kill()
        except BaseException:
            worker.kill()
            worker.wait()
            raise
        returncode = worker.wait()
        if done and returncode == 0:
            self.clean_exit = True
            return
        if run.stop:
            return  # the case in flight, if any, is recorded as skipped with the rest
        cause = f"timed out after {timeout:.0f} s and was killed" if timed_out else describe_exit(returncode)
        tail = log_tail(self.log)
        if in_flight is not None:
            message = f"worker {cause} while running this case"
            if tail:
                message += f"\n--- worker output (tail) ---\n{tail}"
            self._accept(crash_row(in_flight, message, timed_out=timed_out), None)
            run.summary.notes.append(f"worker {cause} on case {in_flight['case_id']} ({in_flight['phase']})")
        elif not done:
            run.summary.notes.append(f"worker {cause} outside a case" + (f": {tail}" if tail else ""))
        else:
            run.summary.notes.append(f"worker {cause} after finishing its cases")
            self.clean_exit = True

    def _accept(self, row: dict, budget: dict | None) -> None:
        """Record a row and account for it against the fixed cases or the fuzz budget."""
        self.progressed = True
        if self.finished_fixed < len(self.fixed) and row["phase"] == self.fixed[self.finished_fixed][0]:
            if row["case_id"] == self.fixed[self.finished_fixed][1].case_id:
                self.finished_fixed += 1
        elif row["phase"] == "fuzz":
            self.fuzz_examples_seen += 1
        self.run.add(row, budget)
