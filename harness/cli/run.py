"""Command ``lowbit run``: measure the kernels on one commit and record every case in the store."""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass, field

import click

from harness.cli.errors import fail_usage

# Same as harness.run.corpus.SUITES (a test checks), spelled out to keep `lowbit --help` free of torch
# imports.
SUITE_CHOICES = ("quick", "ci", "nightly")


def _format_worst(summary) -> str:
    """rel_l2 of the case that used most of its budget, its rel_l2 budget, and the share used."""
    if summary.worst_rel_l2 is None:
        return "-"
    return f"{summary.worst_rel_l2:.2e} / {summary.worst_budget:.1e} ({summary.worst_ratio:.0%} used)"


def _format_latency(summary) -> str:
    median = summary.median_latency_ms
    if median is None:
        return "-"
    kind = " (interp)" if summary.latency_kind == "cpu-interpreter" else ""
    return f"{median:.3g} ms{kind}"


def _console(*, stderr: bool):
    """A rich console; logs (CI, files) get a wide fixed width instead of rich's 80 columns."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=160)
    return console


class RichProgress:
    """Per-kernel progress lines on stderr: phase, cases done of planned, failures so far.

    Kernels on several slots (--devices) report from their own threads: one lock serialises them."""

    def __init__(self, console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[kernel]:<12}"),
            TextColumn("{task.fields[phase]:<7}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failures]} failing"),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.lock = threading.RLock()

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def case_started(self, name: str, case_id: str) -> None: ...

    def tick(self) -> None: ...

    def kernel_started(self, name: str, total: int, device: str | None = None) -> None:
        label = f"{name} ({device})" if device else name
        with self.lock:
            self.failures[name] = 0
            self.tasks[name] = self.progress.add_task(
                name, total=total, kernel=label, phase="start", failures=0
            )

    def phase(self, name: str, phase: str) -> None:
        with self.lock:
            self.progress.update(self.tasks[name], phase=phase)

    def case_done(self, name: str, row: dict) -> None:
        with self.lock:
            task = self.tasks[name]
            if row["status"] in ("fail", "error", "crash", "timeout", "skipped"):
                self.failures[name] += 1
            # Fuzzing may check more examples than planned (shrinking): grow the bar rather than overflow.
            current = self.progress.tasks[self.progress.task_ids.index(task)]
            if current.total is not None and current.completed + 1 > current.total:
                self.progress.update(task, total=current.completed + 1)
            self.progress.update(task, advance=1, failures=self.failures[name])

    def kernel_finished(self, summary) -> None:
        with self.lock:
            task = self.tasks[summary.name]
            current = self.progress.tasks[self.progress.task_ids.index(task)]
            self.progress.update(task, total=current.completed, phase="done")
            for note in summary.notes:
                self.console.print(f"[yellow]{summary.name}[/]: {note}", markup=True, highlight=False)


@dataclass
class _KernelState:
    """One running kernel as LineProgress reports it."""

    total: int
    done: int = 0
    failing: int = 0
    phase: str = ""
    case_id: str = ""
    case_since: float = field(default_factory=time.monotonic)


class LineProgress:
    """Progress for logs (output not a terminal): plain lines, at least one every ``interval`` seconds.

    Each running kernel gets its own line (several run at once with --devices; their threads report
    through one lock)."""

    def __init__(self, console, interval: float = 30.0) -> None:
        self.console = console
        self.interval = interval
        self.last = time.monotonic()
        self.running: dict[str, _KernelState] = {}
        self.lock = threading.RLock()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _line(self, text: str) -> None:
        self.console.print(f"lowbit run: {text}", highlight=False, markup=False)
        self.last = time.monotonic()

    def kernel_started(self, name: str, total: int, device: str | None = None) -> None:
        with self.lock:
            self.running[name] = _KernelState(total)
            where = f" on {device}" if device else ""
            self._line(f"{name}: started{where}, {total} case(s) planned")

    def phase(self, name: str, phase: str) -> None:
        with self.lock:
            if name in self.running:
                self.running[name].phase = phase

    def case_started(self, name: str, case_id: str) -> None:
        with self.lock:
            if name in self.running:
                self.running[name].case_id, self.running[name].case_since = case_id, time.monotonic()

    def case_done(self, name: str, row: dict) -> None:
        with self.lock:
            state = self.running.get(name)
            if state is not None:
                state.done += 1
                if row["status"] in ("fail", "error", "crash", "timeout", "skipped"):
                    state.failing += 1
                state.case_id = ""
            self.tick()

    def tick(self) -> None:
        with self.lock:
            now = time.monotonic()
            if now - self.last < self.interval:
                return
            for name, state in self.running.items():
                running = (
                    f", case {state.case_id} running for {now - state.case_since:.0f} s"
                    if state.case_id
                    else ""
                )
                self._line(
                    f"{name}: {state.phase} {state.done}/{state.total} case(s) done, "
                    f"{state.failing} not passing{running}"
                )

    def kernel_finished(self, summary) -> None:
        with self.lock:
            self.running.pop(summary.name, None)
            self._line(
                f"{summary.name}: finished, {summary.measured} measured, {summary.failed + summary.errors} "
                f"failed, {summary.crashed} crashed, {summary.timed_out} timed out, {summary.skipped} skipped"
            )
            for note in summary.notes:
                self._line(f"{summary.name}: {note}")


def _slots_text(plan) -> str:
    """The devices --devices selected, with the GPU each one is when CUDA_VISIBLE_DEVICES remaps it."""
    explicit = [slot for slot in plan.slots if slot.index is not None]
    if not explicit:
        return ""
    labels = []
    for slot in explicit:
        visible = slot.env.get("CUDA_VISIBLE_DEVICES")
        remapped = visible is not None and visible != str(slot.index)
        labels.append(f"{slot.label} (CUDA_VISIBLE_DEVICES={visible})" if remapped else slot.label)
    return f" on {len(explicit)} slot(s): {', '.join(labels)}"


def summary_table(outcome):
    from rich.table import Table

    table = Table(title=f"lowbit run {outcome.run_id}: {outcome.status}")
    # Which device measured each kernel matters only when they were spread over several (--devices).
    spread = outcome.slots > 1
    columns = ("kernel", "device") if spread else ("kernel",)
    columns += ("measured", "pass", "fail", "unsupported", "crash", "timeout", "skipped")
    for column in (*columns, "worst rel_l2 / budget"):
        table.add_column(column, justify="left" if column in ("kernel", "device") else "right")
    table.add_column("median latency", justify="right")
    for s in outcome.summaries:
        over = s.worst_ratio is not None and (math.isinf(s.worst_ratio) or s.worst_ratio > 1)
        ratio = _format_worst(s)
        table.add_row(
            s.name,
            *((s.device or "-",) if spread else ()),
            str(s.measured),
            str(s.passed),
            str(s.failed + s.errors),
            str(s.unsupported),
            str(s.crashed),
            str(s.timed_out),
            str(s.skipped + s.fuzz_examples_not_run),
            f"[red]{ratio}[/]" if over else ratio,
            _format_latency(s),
        )
    return table


def run_commands() -> list[click.Command]:
    @click.command("run")
    @click.option(
        "--db", "db", metavar="URL", help="SQLAlchemy URL (default: $LOWBIT_DB_URL, else ./lowbit.db)."
    )
    @click.option(
        "--commit", metavar="SHA", help="Commit to record (default: HEAD of the git repository here)."
    )
    @click.option(
        "--branch", metavar="NAME", help="Branch to record (default: from git or the CI's environment)."
    )
    @click.option(
        "--suite",
        type=click.Choice(SUITE_CHOICES),
        default="quick",
        show_default=True,
        help="Size of the regression corpus and fuzz budget.",
    )
    @click.option(
        "--kernel",
        "kernels",
        metavar="SPEC",
        multiple=True,
        help="Registry name, module:function or alias=module:function; repeatable (default: the registry).",
    )
    @click.option("--shard", metavar="I/N", help="Run shard I of N (1-based) of every kernel's cases.")
    @click.option(
        "--device",
        type=click.Choice(("cpu", "cuda")),
        default=None,
        help="Where kernels run (default: cuda if torch sees a GPU, else the CPU interpreter).",
    )
    @click.option(
        "--devices",
        metavar="LIST",
        default=None,
        help="Spread the kernels over several devices, one kernel at a time on each: 'all' or indices "
        "such as 0,1 (cuda: the GPUs torch sees, all one model; cpu: parallel interpreter workers, 'all' "
        "= the usable cores). Default: one kernel at a time.",
    )
    @click.option(
        "--fuzz-examples",
        type=click.IntRange(min=0),
        default=None,
        metavar="N",
        help="Fuzz examples per kernel (default by suite and device; 0 disables fuzzing).",
    )
    @click.option(
        "--seed",
        type=click.IntRange(min=0),
        default=None,
        metavar="S",
        help="Fuzz seed (default: from the commit).",
    )
    @click.option(
        "--case-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Kill a kernel's worker when one case runs longer (first, possibly compiling, call not "
        "counted). Default: $LOWBIT_CASE_TIMEOUT, else sized by device and shape.",
    )
    @click.option(
        "--allow-short", is_flag=True, help="Record a short --commit that git cannot expand as given."
    )
    def run(
        db,
        commit,
        branch,
        suite,
        kernels,
        shard,
        device,
        devices,
        fuzz_examples,
        seed,
        case_timeout,
        allow_short,
    ) -> None:
        """Measure kernels on one commit: replay counterexamples, run the corpus, fuzz; record it all.

        Exit status: 0 every case measured and every property held; 1 a property failed, a case crashed,
        timed out or was skipped; 2 bad usage (unknown kernel, malformed commit, shard or device list,
        GPUs of different models, unusable database); 128+N when signal N (SIGINT, SIGTERM) stopped the
        run, which is then recorded as interrupted with everything measured so far.
        """
        from harness.run.runner import RunConfig, RunUsageError, execute, prepare

        err = _console(stderr=True)
        config = RunConfig(
            db=db,
            commit=commit,
            branch=branch,
            suite=suite,
            kernels=tuple(kernels),
            shard=shard,
            device=device,
            devices=devices,
            fuzz_examples=fuzz_examples,
            seed=seed,
            case_timeout_s=case_timeout,
            allow_short=allow_short,
        )
        try:
            plan = prepare(config)
            from harness.store import redact_url

            err.print(
                f"lowbit run: commit {plan.commit.commit[:12]} ({plan.commit.branch or 'no branch'}), "
                f"suite {suite}, device {plan.device}{_slots_text(plan)}, {len(plan.kernels)} kernel(s), "
                f"db {redact_url(plan.store.url)}",
                highlight=False,
            )
            try:
                display = RichProgress(err) if err.is_terminal else LineProgress(err)
                with display as progress:
                    outcome = execute(plan, progress)
            finally:
                plan.store.close()
        except RunUsageError as exc:
            fail_usage(str(exc))
        _console(stderr=False).print(summary_table(outcome))
        sys.exit(outcome.exit_code)

    return [run]
