"""``lowbit run``: measure every kernel on one commit and record each case's result in the store.

For each kernel: replay the stored counterexamples, run the regression corpus, spend the fuzz budget.
Kernels run in a worker subprocess (:mod:`harness.run.worker`) that announces each case before running it;
this process writes what the worker reports to the store in batches (one transaction each), so a worker
that dies loses nothing already reported, and the case it died on is recorded as a ``crash``.

Everything that can be wrong with the request (device, commit, shard, kernel spec, database) is checked
before the run row is written: a bad request writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.run import corpus

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
# A case running longer than this is treated as a hung worker: killed and recorded as a crash.
DEFAULT_CASE_TIMEOUT_S = {"cpu": 900.0, "cuda": 600.0}
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
    fuzz_examples: int | None = None
    seed: int | None = None
    cwd: Path | None = None
    case_timeout_s: float | None = None
    batch_rows: int = BATCH_ROWS
    batch_seconds: float = BATCH_SECONDS


@dataclass
class KernelPlan:
    target: Any  # harness.search.targets.KernelTarget
    replay: list[Any]  # Cases
    corpus: list[Any]
    fuzz_examples: int
    fuzz_seed: int
    skipped_replay: int = 0

    @property
    def planned(self) -> int:
        return len(self.replay) + len(self.corpus) + self.fuzz_examples


@dataclass
class KernelSummary:
    name: str
    cases: int = 0
    passed: int = 0
    failed: int = 0
    unsupported: int = 0
    crashed: int = 0
    errors: int = 0
    skipped_replay: int = 0
    worker_died: bool = False
    worst_rel_l2: float | None = None
    worst_budget: float | None = None
    worst_ratio: float | None = None
    latency_kind: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median_latency_ms(self) -> float | None:
        return statistics.median(self.latencies_ms) if self.latencies_ms else None

    def add(self, row: dict, budget: dict | None) -> None:
        self.cases += 1
        status = row["status"]
        if status == "pass":
            self.passed += 1
        elif status == "fail":
            self.failed += 1
        elif status == "unsupported":
            self.unsupported += 1
        elif status == "crash":
            self.crashed += 1
        else:
            self.errors += 1
        rel_l2 = row.get("metrics", {}).get("rel_l2")
        # NaN means "not measured" (the kernel raised); a NaN output is measured as inf.
        if rel_l2 is not None and budget and status != "unsupported" and not math.isnan(float(rel_l2)):
            rel = float(rel_l2)
            allowed = float(budget["max_rel_l2"])
            # The share of the budget used by the worse of rel_l2 and max_abs, as the properties judge it.
            ratio = budget.get("error_ratio")
            if ratio is None or math.isnan(ratio):
                ratio = rel / allowed if allowed > 0 else math.inf
            if self.worst_ratio is None or ratio > self.worst_ratio:
                self.worst_ratio, self.worst_rel_l2, self.worst_budget = ratio, rel, allowed
        latency = row.get("latency")
        if latency and latency.get("p50_ms") is not None:
            self.latency_kind = latency.get("kind")
            self.latencies_ms.append(float(latency["p50_ms"]))


@dataclass
class RunOutcome:
    run_id: int
    status: str
    summaries: list[KernelSummary]
    notes: list[str]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "complete" else 1


@dataclass
class RunPlan:
    config: RunConfig
    device: str
    commit: Any  # harness.run.gitinfo.CommitInfo
    shard: tuple[int, int] | None
    seed: int
    kernels: list[KernelPlan]
    store: Any
    environment: dict


class Progress:
    """What the runner reports while it goes; the CLI draws it with rich. The base class draws nothing."""

    def kernel_started(self, name: str, total: int) -> None: ...

    def phase(self, name: str, phase: str) -> None: ...

    def case_done(self, name: str, row: dict) -> None: ...

    def kernel_finished(self, summary: KernelSummary) -> None: ...


def _derive_seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def registry_names() -> list[str]:
    """Names of the registered kernels, in registry order; KernelLoadError if the registry is unusable."""
    from harness.search.targets import registry

    return list(registry())


def _stored_case_params(entry: dict) -> dict:
    for key in ("case_params", "params"):
        if isinstance(entry.get(key), dict):
            return entry[key]
    return entry


def prepare(config: RunConfig) -> RunPlan:
    """Validate the request and plan every kernel's cases; raises RunUsageError, writes nothing."""
    from harness.run.gitinfo import GitInfoError, resolve_commit
    from harness.search.device import DeviceError, select_device

    if config.suite not in corpus.SUITES:
        raise RunUsageError(f"unknown suite {config.suite!r}: expected one of {', '.join(corpus.SUITES)}")
    try:
        shard = corpus.parse_shard(config.shard) if config.shard is not None else None
    except ValueError as exc:
        raise RunUsageError(str(exc)) from None
    if config.fuzz_examples is not None and config.fuzz_examples < 0:
        raise RunUsageError(f"--fuzz-examples: expected a count >= 0, got {config.fuzz_examples}")
    try:
        device = select_device(config.device)
    except DeviceError as exc:
        raise RunUsageError(str(exc)) from None
    try:
        commit = resolve_commit(config.commit, config.branch, config.cwd)
    except GitInfoError as exc:
        raise RunUsageError(str(exc)) from None

    # Only now may kernels be imported: select_device configured Triton for the chosen device.
    from harness.run.environment import fingerprint
    from harness.search.targets import KernelLoadError, load_kernel

    targets = []
    try:
        for ref in list(config.kernels) or registry_names():
            targets.append(load_kernel(ref))
    except KernelLoadError as exc:
        raise RunUsageError(str(exc)) from None
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RunUsageError(f"kernel name(s) given more than once: {', '.join(duplicates)} (use alias=spec)")

    store = _open_store(config.db)
    seed = config.seed if config.seed is not None else int(commit.commit[:8], 16)
    examples = (
        config.fuzz_examples
        if config.fuzz_examples is not None
        else DEFAULT_FUZZ_EXAMPLES[device][config.suite]
    )
    if shard is not None:
        examples = math.ceil(examples / shard[1])
    plans = [_plan_kernel(target, store, config.suite, device, shard, examples, seed) for target in targets]
    return RunPlan(
        config=config,
        device=device,
        commit=commit,
        shard=shard,
        seed=seed,
        kernels=plans,
        store=store,
        environment=fingerprint(device),
    )


def _open_store(db: str | None) -> Any:
    from harness.store import StoreError, open_store, resolve_url

    try:
        return open_store(resolve_url(db))
    except StoreError as exc:
        raise RunUsageError(str(exc)) from None


def _plan_kernel(
    target: Any,
    store: Any,
    suite: str,
    device: str,
    shard: tuple[int, int] | None,
    examples: int,
    seed: int,
) -> KernelPlan:
    from harness.search.cases import Case
    from harness.store import StoreError

    try:
        stored = store.counterexamples(target.name)
    except StoreError as exc:
        raise RunUsageError(str(exc)) from None
    replay, seen, skipped = [], set(), 0
    for entry in stored:
        try:
            case = Case.from_params(_stored_case_params(entry))
        except (ValueError, TypeError, KeyError):
            skipped += 1
            continue
        if case.case_id in seen or not corpus.in_shard(case.case_id, shard):
            continue
        if device == "cpu" and corpus.case_work(case) > CPU_REPLAY_MAX_WORK:
            skipped += 1
            continue
        seen.add(case.case_id)
        replay.append(case)
    regression = [
        case
        for case in corpus.build_corpus(suite, device, target.head_dims, target.dtypes)
        if case.case_id not in seen and corpus.in_shard(case.case_id, shard)
    ]
    shard_label = f"{shard[0]}/{shard[1]}" if shard else "all"
    return KernelPlan(
        target=target,
        replay=replay,
        corpus=regression,
        fuzz_examples=examples,
        fuzz_seed=_derive_seed(seed, target.name, shard_label),
        skipped_replay=skipped,
    )


def execute(plan: RunPlan, progress: Progress | None = None) -> RunOutcome:
    """Start the run row, measure every kernel, finish the run row with its status."""
    from harness import __version__
    from harness.store import StoreError

    progress = progress or Progress()
    config = plan.config
    shard_label = f"{plan.shard[0]}/{plan.shard[1]}" if plan.shard else None
    try:
        run_id = plan.store.start_run(
            commit=plan.commit.commit,
            parents=plan.commit.parents,
            branch=plan.commit.branch,
            suite=config.suite,
            shard=shard_label,
            environment=plan.environment,
            lowbit_version=__version__,
        )
    except StoreError as exc:
        raise RunUsageError(str(exc)) from None

    summaries: list[KernelSummary] = []
    notes: list[str] = []
    status = "crashed"
    try:
        for kernel_plan in plan.kernels:
            summary = KernelRun(plan, kernel_plan, run_id, progress).run()
            summaries.append(summary)
            notes.extend(f"{summary.name}: {note}" for note in summary.notes)
        crashed = any(s.crashed or s.worker_died for s in summaries)
        failed = any(s.failed or s.errors for s in summaries)
        status = "crashed" if crashed else "failed" if failed else "complete"
    except StoreError as exc:
        notes.append(f"database error: {exc}")
        _finish_quietly(plan.store, run_id, "crashed", "; ".join(notes))
        raise RunUsageError(str(exc)) from None
    except BaseException as exc:
        notes.append(f"run aborted: {type(exc).__name__}: {exc}")
        _finish_quietly(plan.store, run_id, "crashed", "; ".join(notes))
        raise
    try:
        plan.store.finish_run(run_id, status, "; ".join(notes))
    except StoreError as exc:
        raise RunUsageError(str(exc)) from None
    return RunOutcome(run_id=run_id, status=status, summaries=summaries, notes=notes)


def _finish_quietly(store: Any, run_id: int, status: str, note: str) -> None:
    try:
        store.finish_run(run_id, status, note)
    except Exception:
        # The database is what failed: the run row stays "running", which readers show as unfinished.
        return


def describe_exit(returncode: int) -> str:
    """Human description of a worker's exit status (negative: killed by a signal)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} (exit status {returncode})"
    return f"exited with status {returncode}"


def worker_env(device: str) -> dict[str, str]:
    """Environment of a worker: Triton's backend fixed before it imports anything, our import path."""
    env = dict(os.environ)
    if device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)
    # The worker must import exactly what this process validated (kernel specs from the user's tree).
    paths = [p or os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


class KernelRun:
    """One kernel's worker: spawn it, relay its results to the store in batches, account for its death."""

    def __init__(self, plan: RunPlan, kernel: KernelPlan, run_id: int, progress: Progress) -> None:
        self.plan = plan
        self.kernel = kernel
        self.run_id = run_id
        self.progress = progress
        self.name = kernel.target.name
        self.summary = KernelSummary(self.name, skipped_replay=kernel.skipped_replay)
        self.pending: list[Any] = []
        self.pending_since: float | None = None
        self.kernel_id: int | None = None

    def job(self) -> dict:
        target = self.kernel.target
        return {
            "kernel_ref": target.ref,
            "device": self.plan.device,
            "phases": [
                {"phase": "replay", "cases": [c.params() for c in self.kernel.replay]},
                {"phase": "corpus", "cases": [c.params() for c in self.kernel.corpus]},
            ],
            "fuzz": {
                "examples": self.kernel.fuzz_examples,
                "seed": self.kernel.fuzz_seed,
                "profile": FUZZ_PROFILE[self.plan.config.suite],
                # The quick suite on the interpreter draws the fuzzer's tiny shapes (well under a second
                # per example); the others draw the profile's shapes for the device.
                "tiny": self.plan.device == "cpu" and self.plan.config.suite == "quick",
            },
        }

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
        self.pending.append(row)
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        self.summary.add(row, budget)
        self.progress.case_done(self.name, row)
        if len(self.pending) >= self.plan.config.batch_rows:
            self.flush()

    def run(self) -> KernelSummary:
        if self.kernel.skipped_replay:
            self.summary.notes.append(
                f"{self.kernel.skipped_replay} stored counterexample(s) not replayed (unreadable or too "
                "large for the CPU interpreter)"
            )
        self.progress.kernel_started(self.name, self.kernel.planned)
        with tempfile.TemporaryFile(mode="w+", prefix="lowbit-worker-") as log:
            self._drive(log)
        self.flush()
        self.progress.kernel_finished(self.summary)
        return self.summary

    def _drive(self, log: Any) -> None:
        config = self.plan.config
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.run.worker", "--fd", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                cwd=str(config.cwd) if config.cwd else None,
                env=worker_env(self.plan.device),
                text=True,
            )
        finally:
            os.close(write_fd)
        messages: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_read_messages, args=(read_fd, messages.put), daemon=True)
        reader.start()
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(self.job()))
            proc.stdin.close()
        except BrokenPipeError:
            pass  # died at start-up: accounted for below from its exit status
        timeout = config.case_timeout_s or DEFAULT_CASE_TIMEOUT_S[self.plan.device]
        in_flight: dict | None = None
        started_at = 0.0
        done = False
        timed_out = False
        try:
            while True:
                try:
                    message = messages.get(timeout=0.25)
                except queue.Empty:
                    message = {"type": "idle"}
                if message is None:
                    break
                kind = message.get("type")
                if kind == "start":
                    in_flight, started_at = message, time.monotonic()
                    self.progress.phase(self.name, message["phase"])
                elif kind == "result":
                    in_flight = None
                    self.add(message["row"], message.get("budget"))
                elif kind == "error":
                    self.summary.errors += 1
                    self.summary.notes.append(
                        f"harness error in {message.get('phase')}: {message['message']}"
                    )
                elif kind == "done":
                    done = True
                elif kind == "garbage":
                    self.summary.notes.append(f"unreadable worker message: {message['text'][:200]}")
                if self.pending_since is not None and (
                    time.monotonic() - self.pending_since >= config.batch_seconds
                ):
                    self.flush()
                if in_flight is not None and time.monotonic() - started_at > timeout and not timed_out:
                    timed_out = True
                    proc.kill()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        returncode = proc.wait()
        reader.join(timeout=5)
        if done and returncode == 0:
            return
        self.summary.worker_died = True
        cause = f"timed out after {timeout:.0f} s and was killed" if timed_out else describe_exit(returncode)
        tail = _tail(log)
        if in_flight is not None:
            message = f"worker {cause} while running this case"
            if tail:
                message += f"\n--- worker output (tail) ---\n{tail}"
            self.add(_crash_row(in_flight, message), None)
            self.summary.notes.append(f"worker {cause} on case {in_flight['case_id']} ({in_flight['phase']})")
        elif not done:
            self.summary.notes.append(f"worker {cause} outside a case" + (f": {tail}" if tail else ""))
        else:
            self.summary.notes.append(f"worker {cause} after finishing its cases")


def _crash_row(start: dict, message: str) -> dict:
    return {
        "case_id": start["case_id"],
        "case_params": start["params"],
        "family": start.get("family", ""),
        "shape_class": start.get("shape_class", ""),
        "phase": start["phase"],
        "status": "crash",
        "failed_property": None,
        "verdicts": {},
        "metrics": {},
        "message": message,
        "latency": None,
    }


def _read_messages(fd: int, put: Callable[[dict | None], None]) -> None:
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                put(json.loads(line))
            except json.JSONDecodeError:
                put({"type": "garbage", "text": line})
    put(None)


def _tail(log: Any, limit: int = 2000) -> str:
    log.flush()
    log.seek(0)
    text = log.read()
    return text[-limit:].strip()
