"""What a run reports: per-kernel counts (measured, failed, crashed, timed out, skipped), the outcome,
and the progress interface the CLI draws."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field


@dataclass
class KernelSummary:
    name: str
    cases: int = 0  # rows recorded, skipped ones included
    passed: int = 0
    failed: int = 0
    unsupported: int = 0
    crashed: int = 0
    timed_out: int = 0
    skipped: int = 0
    errors: int = 0
    skipped_replay: int = 0
    worker_restarts: int = 0
    fuzz_examples_not_run: int = 0
    worst_rel_l2: float | None = None
    worst_budget: float | None = None
    worst_ratio: float | None = None
    latency_kind: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    device: str | None = None  # the slot it ran on: "cuda:1" with --devices, else the device

    @property
    def measured(self) -> int:
        """Cases the kernel ran to a verdict (passed, failed, unsupported or a harness error)."""
        return self.passed + self.failed + self.unsupported + self.errors

    @property
    def ok(self) -> bool:
        bad = self.failed + self.errors + self.crashed + self.timed_out + self.skipped
        return bad == 0 and self.fuzz_examples_not_run == 0

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
        elif status == "timeout":
            self.timed_out += 1
        elif status == "skipped":
            self.skipped += 1
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
    status: str  # "complete" | "interrupted" | "crashed"
    summaries: list[KernelSummary]
    notes: list[str]
    signal: int | None = None  # the signal that interrupted the run
    slots: int = 1  # kernels measured at once (--devices)

    @property
    def exit_code(self) -> int:
        """0 every case measured and every property held; 1 otherwise; 128+N when stopped by signal N."""
        if self.status == "interrupted" and self.signal is not None:
            return 128 + self.signal
        return 0 if self.status == "complete" and all(s.ok for s in self.summaries) else 1


class Progress:
    """What the runner reports while it goes; the CLI draws it. The base class draws nothing.

    With several slots (--devices) kernels run at once and these are called from their threads."""

    def kernel_started(self, name: str, total: int, device: str | None = None) -> None:
        """``device``: the slot the kernel runs on, given only with --devices."""

    def phase(self, name: str, phase: str) -> None: ...

    def case_started(self, name: str, case_id: str) -> None: ...

    def case_done(self, name: str, row: dict) -> None: ...

    def tick(self) -> None:
        """Called a few times a second while a kernel runs (a line-based display prints from here)."""

    def kernel_finished(self, summary: KernelSummary) -> None: ...
