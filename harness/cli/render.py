"""Rendering of fuzz results: live progress bar, failure report, coverage table, kernel table, JSON.

Human output is written through rich consoles handed in by the caller (the CLI sends the progress bar
to stderr and reports to stdout); :func:`fuzz_json` and :func:`case_json` build the one object that
``--json`` prints.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
)
from rich.table import Table
from rich.text import Text

from harness.search.properties import PROPERTIES, CaseResult

if TYPE_CHECKING:
    from harness.search.fuzz import FuzzReport
    from harness.search.targets import KernelTarget


class _RateColumn(ProgressColumn):
    """Examples per second since the task started (rich's speed column is smoothed over bytes)."""

    def render(self, task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:6.1f} ex/s", style="progress.data.speed")


class FuzzProgress:
    """Progress of a fuzz run on ``console``: examples checked of planned, failures, examples/s, phase.

    On a terminal, a live bar. Elsewhere (a CI log, a pipe) rich's bar would stay silent until the end, so
    plain lines are printed instead: one at the start, one whenever ``interval`` seconds passed without
    one (from a timer thread: a kernel stuck in one long case still shows the run is alive), and one at
    the end.
    """

    def __init__(self, console: Console, total: int, label: str, interval: float = 30.0) -> None:
        self.console = console
        self.total = total
        self.label = label
        self.interval = interval
        self.lines = not console.is_terminal
        self.done = 0
        self.failures = 0
        self.shrink_steps = 0
        self.unsupported = 0
        self.started = time.perf_counter()
        self._last_line = time.monotonic()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._progress: Progress | None = None
        if not self.lines:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                _RateColumn(),
                TextColumn("failures {task.fields[failures]} {task.fields[phase]}"),
                console=console,
                transient=False,
            )
            short = label if len(label) <= 24 else label[:23] + "…"
            self._task = self._progress.add_task(short, total=total, failures=0, phase="")

    def __enter__(self) -> FuzzProgress:
        self.started = time.perf_counter()
        if self._progress is not None:
            self._progress.start()
        else:
            self._line("started")
            self._timer = threading.Thread(target=self._beat, name="lowbit-fuzz-progress", daemon=True)
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            return
        self._stop.set()
        if self._timer is not None:
            self._timer.join()
        self._line("finished")

    @property
    def phase(self) -> str:
        """What the run is doing now, in words."""
        if self.shrink_steps:
            return f"shrinking a failure ({self.shrink_steps} steps)"
        if self.done == 0:
            return "starting (worker, domain probe, first case)"
        return "exploring"

    def _line(self, state: str) -> None:
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.console.print(
            f"lowbit fuzz: {self.label}: {self.done}/{self.total} examples, failures {self.failures}, "
            f"{rate:.2f} ex/s, {elapsed:.0f} s, {state if state != 'running' else self.phase}",
            highlight=False,
            markup=False,
        )
        self._last_line = time.monotonic()

    def _beat(self) -> None:
        while not self._stop.wait(max(0.01, self._last_line + self.interval - time.monotonic())):
            if time.monotonic() - self._last_line >= self.interval:
                self._line("running")

    def update(self, result: CaseResult) -> None:
        if result.phase == "shrink":
            self.shrink_steps += 1
            if self._progress is not None:
                self._progress.update(self._task, phase=f"(shrinking: {self.shrink_steps} steps)")
            return
        self.done += 1
        if result.status == "fail":
            self.failures += 1
        if result.status == "unsupported":
            self.unsupported += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, failures=self.failures)


def _fmt(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return f"{x:.4g}"


def case_table(result: CaseResult) -> Table:
    """Every parameter of the case, one per row."""
    table = Table(title=f"case {result.case.case_id}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in result.case.params().items():
        table.add_row(key, "default (1/sqrt(D))" if key == "sm_scale" and value is None else str(value))
    table.add_row("family", result.case.family)
    table.add_row("shape class", result.case.shape_class)
    return table


def verdict_table(result: CaseResult) -> Table:
    table = Table(title="properties", title_justify="left")
    table.add_column("property")
    table.add_column("verdict")
    for name in PROPERTIES:
        v = result.verdicts.get(name)
        shown = {True: "[green]pass", False: "[red]FAIL", None: "[dim]not checked"}[v]
        table.add_row(name, shown)
    return table


def metrics_table(result: CaseResult) -> Table:
    table = Table(title="error vs budget", title_justify="left")
    table.add_column("metric")
    table.add_column("measured", justify="right")
    table.add_column("allowed", justify="right")
    allowed = {"rel_l2": result.budget.max_rel_l2, "max_abs": result.budget.max_abs}
    for key, value in result.metrics.items():
        table.add_row(key, _fmt(value), _fmt(allowed[key]) if key in allowed else "")
    return table


def render_case_result(console: Console, result: CaseResult, *, title: str | None = None) -> None:
    """Full account of one example: which property, measured vs allowed, the case, the repro."""
    status = {"fail": "[bold red]FAILED", "pass": "[bold green]passed", "unsupported": "[yellow]unsupported"}
    head = title or f"{result.kernel}: {status[result.status]}"
    if result.failed_property:
        head += f" [bold]{result.failed_property}[/bold]"
    console.print(head)
    console.print(Text(result.message))
    console.print(verdict_table(result))
    console.print(metrics_table(result))
    console.print(case_table(result))
    console.print("[bold]repro:[/bold]")
    console.print(Text(result.repro_command), soft_wrap=True)


def coverage_table(report: FuzzReport, key: str, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(key.replace("_", " "))
    table.add_column("cases", justify="right")
    counts = report.coverage.get(key, {})
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(name, str(n))
    return table


def render_report(console: Console, report: FuzzReport) -> None:
    """Summary, coverage per family and shape class, and the shrunk failure if there is one."""
    console.print(coverage_table(report, "family", "coverage by distribution family"))
    console.print(coverage_table(report, "shape_class", "coverage by shape class"))
    rate = report.examples / report.elapsed_s if report.elapsed_s > 0 else 0.0
    console.print(
        f"{report.kernel}: {report.examples} examples ({report.passed} passed, {report.unsupported} "
        f"unsupported), {report.shrink_steps} shrink steps, {report.elapsed_s:.1f}s, {rate:.1f} examples/s "
        f"[{report.profile} profile, {report.device}]"
    )
    if report.worst is not None and report.ok:
        w = report.worst
        console.print(
            f"worst passing error: {w.error_ratio:.3g} of budget "
            f"(rel_l2 {_fmt(w.metrics['rel_l2'])}, max_abs {_fmt(w.metrics['max_abs'])}) on {w.case}"
        )
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for failure in report.failures:
        render_case_result(console, failure, title=f"[bold red]{report.kernel}: property failed")
    if report.ok:
        console.print("[bold green]no property failed")


def fuzz_json(report: FuzzReport) -> dict:
    """The ``--json`` object of a search: the report plus the first failure's repro at top level."""
    out = report.to_dict()
    first = report.failures[0] if report.failures else None
    out["failed_property"] = first.failed_property if first else None
    out["repro_command"] = first.repro_command if first else None
    return out


def case_json(result: CaseResult) -> dict:
    """The ``--json`` object of a single replayed case."""
    out = result.to_dict()
    out["ok"] = result.ok
    return out


def _bits(bits) -> str:
    return "/".join(str(bits.get(k, "?")) for k in ("q", "k", "p", "v"))


def _families() -> list[str]:
    from harness.search.distributions import DISTRIBUTIONS

    return list(dict.fromkeys(f for f, _ in DISTRIBUTIONS.values()))


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def kernels_table(targets: Iterable[KernelTarget]) -> Table:
    """The registry, one row per kernel and dtype: bit widths, head dims, budgets by family."""
    families = _families()
    table = Table(title="registered kernels (budget cells: max rel_l2 / max abs)")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("bits q/k/p/v", no_wrap=True)
    table.add_column("head dims")
    table.add_column("dtype", no_wrap=True)
    for family in families:
        table.add_column(family, justify="right")
    for t in targets:
        for i, dt in enumerate(t.dtypes):
            first = i == 0
            budgets = [t.budget_for(f, dt) for f in families]
            table.add_row(
                t.name if first else "",
                (_bits(t.spec.bits) if t.spec is not None else "-") if first else "",
                ", ".join(map(str, t.head_dims)) if first else "",
                dt,
                *(f"{b.max_rel_l2:g} / {b.max_abs:g}" for b in budgets),
                end_section=i == len(t.dtypes) - 1,
            )
    return table


def console(stderr: bool = False) -> Console:
    """A console that keeps tables and the progress line readable when not writing to a terminal."""
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, width=None if probe.is_terminal else 200, soft_wrap=not stderr)


def kernels_json(targets: Iterable[KernelTarget]) -> list[dict]:
    families = _families()
    out = []
    for t in targets:
        out.append(
            {
                "name": t.name,
                "bits": dict(t.spec.bits) if t.spec is not None else None,
                "head_dims": list(t.head_dims),
                "dtypes": list(t.dtypes),
                "description": t.spec.description if t.spec is not None else "",
                "source_hash": t.source_hash,
                "budgets": {
                    dt: {
                        f: {
                            "max_rel_l2": _finite_or_none(t.budget_for(f, dt).max_rel_l2),
                            "max_abs": _finite_or_none(t.budget_for(f, dt).max_abs),
                        }
                        for f in families
                    }
                    for dt in t.dtypes
                },
            }
        )
    return out
