"""The tables of lowbit's history, as SQLAlchemy 2 typed models.

One row in ``runs`` per ``lowbit run`` (or shard of one, or ``lowbit ingest``); its ``results`` hold one
measured case each. ``cases`` are keyed by the stable case id (a hash of the case parameters), so the same
case lines up across commits; ``kernels`` are keyed by (name, source hash), so a kernel's history can be
split at the commits that changed its source. ``counterexamples`` are keyed by kernel *name*: a failure
found on one commit is replayed on every later commit, whatever the source hash.

The metrics every query filters or plots on are real columns; everything else (property verdicts, extra
metrics, raw latency samples) is JSON. Non-finite floats: the real columns store +-inf as such and NaN as
NULL; JSON columns store them as the strings "inf", "-inf", "nan" (JSON has no non-finite numbers, and
PostgreSQL rejects them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so migrations and models agree on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; elsewhere results get 64-bit ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# How a run ended (revision 0004): "complete" every planned case accounted for, "interrupted" stopped by
# SIGINT/SIGTERM after writing what was measured, "crashed" the runner itself failed, "abandoned" its
# process vanished (stale heartbeat). What the cases found is in the results, not here.
RUN_STATUSES = ("running", "complete", "interrupted", "crashed", "abandoned")
# "timeout": the kernel ran past the case time-out and its worker was killed; "skipped": a planned case
# never measured (its worker kept dying, or the run was interrupted first), with the reason.
RESULT_STATUSES = ("pass", "fail", "unsupported", "error", "crash", "timeout", "skipped")
PHASES = ("replay", "corpus", "fuzz", "bench")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Environment(Base):
    """What a run ran on: the hardware and software stack, deduplicated by its key.

    The key (:func:`harness.core.fingerprint.environment_key`) leaves out the host name, which each run
    records for itself (revision 0003): ephemeral CI runners with the same stack share one environment.
    """

    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint_hash: Mapped[str] = mapped_column(String(64), unique=True)
    gpu: Mapped[str | None] = mapped_column(String(200))
    compute_capability: Mapped[str | None] = mapped_column(String(20))
    driver: Mapped[str | None] = mapped_column(String(100))
    cuda: Mapped[str | None] = mapped_column(String(100))
    torch: Mapped[str | None] = mapped_column(String(100))
    triton: Mapped[str | None] = mapped_column(String(100))
    python: Mapped[str | None] = mapped_column(String(100))
    cpu: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Run(Base):
    """One recording session: a whole ``lowbit run``, one shard of it, or one ``lowbit ingest``."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_commit", "commit"),
        Index("ix_runs_branch_started_at", "branch", "started_at"),
        Index("ix_runs_status", "status"),  # revision 0004
        Index("ix_runs_content_hash", "content_hash", unique=True),  # revision 0004
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    commit: Mapped[str] = mapped_column(String(64))
    parents: Mapped[list[str]] = mapped_column(JSON)
    branch: Mapped[str | None] = mapped_column(String(255))
    suite: Mapped[str] = mapped_column(String(32))
    shard: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    lowbit_version: Mapped[str] = mapped_column(String(64))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    host: Mapped[str | None] = mapped_column(String(200))  # revision 0003
    # Revision 0004: refreshed by the runner while it works; a stale one on a "running" run means abandoned.
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Revision 0004: SHA-256 of an ingested file and its commit (NULL for `lowbit run`); unique.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # Revision 0006: the commit's subject line (first line of its message) as git told the recorder;
    # NULL where git did not know the commit (ingests from elsewhere, older runs).
    subject: Mapped[str | None] = mapped_column(Text)


class Kernel(Base):
    """A kernel as of one version of its source."""

    __tablename__ = "kernels"
    __table_args__ = (UniqueConstraint("name", "source_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    source_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Case(Base):
    """A test case; ``id`` is the stable case id derived from ``params``."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    family: Mapped[str] = mapped_column(String(64))
    shape_class: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Result(Base):
    """One case measured for one kernel in one run."""

    __tablename__ = "results"
    __table_args__ = (
        # Revision 0002: a case's history for one kernel across runs (the dashboard's main query).
        Index("ix_results_kernel_id_case_id_run_id", "kernel_id", "case_id", "run_id"),
        # Revision 0006: covers the dashboard's per-run aggregate of one kernel (Trends), so it reads this
        # narrow index in run order instead of every wide row (JSON metrics, verdicts, samples).
        Index(
            "ix_results_kernel_trend",
            "kernel_id",
            "run_id",
            "phase",
            "case_id",
            "status",
            "rel_l2",
            "max_abs",
            "worst_row_rel_l2",
            "error_ratio",
            "p50_ms",
            "tflops",
            "latency_kind",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    kernel_id: Mapped[int] = mapped_column(ForeignKey("kernels.id"), index=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    phase: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    failed_property: Mapped[str | None] = mapped_column(String(64))
    verdicts: Mapped[dict[str, Any]] = mapped_column(JSON)
    rel_l2: Mapped[float | None] = mapped_column(Float)
    max_abs: Mapped[float | None] = mapped_column(Float)
    kernel_rel_l2: Mapped[float | None] = mapped_column(Float)
    kernel_max_abs: Mapped[float | None] = mapped_column(Float)
    # Revision 0006: copies of two metrics that stay in ``metrics`` too (COPIED_METRIC_COLUMNS), as
    # columns so the dashboard aggregates them without a JSON extraction per row.
    worst_row_rel_l2: Mapped[float | None] = mapped_column(Float)
    error_ratio: Mapped[float | None] = mapped_column(Float)  # the share of its budget the row used
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)  # every metric not in a column above
    message: Mapped[str] = mapped_column(Text, default="")
    latency_kind: Mapped[str | None] = mapped_column(String(32))  # "cuda" | "cpu-interpreter" | "bench"
    p20_ms: Mapped[float | None] = mapped_column(Float)
    p50_ms: Mapped[float | None] = mapped_column(Float)
    p80_ms: Mapped[float | None] = mapped_column(Float)
    mean_ms: Mapped[float | None] = mapped_column(Float)
    stddev_ms: Mapped[float | None] = mapped_column(Float)
    tflops: Mapped[float | None] = mapped_column(Float)
    samples_ms: Mapped[list[float] | None] = mapped_column(JSON)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Counterexample(Base):
    """A (kernel name, case, property) that failed at least once; replayed by every later run."""

    __tablename__ = "counterexamples"
    __table_args__ = (UniqueConstraint("kernel_name", "case_id", "property"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kernel_name: Mapped[str] = mapped_column(String(255))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    property: Mapped[str] = mapped_column(String(64))
    first_seen_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    last_seen_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Revision 0002: how many failing results were recorded for it (existing rows start at 1).
    occurrences: Mapped[int] = mapped_column(Integer, server_default="1")


class ChangePoint(Base):
    """Where one kernel x case series of one metric stepped to a new level, in one environment.

    Revision 0005. ``run_id``/``commit`` is the first run at the new level, ``previous_commit`` the last
    run before it; ``before``/``after`` are the medians of the two segments, ``ratio`` = after / before.
    """

    __tablename__ = "change_points"
    __table_args__ = (
        UniqueConstraint("kernel_name", "case_id", "metric", "environment_id", "run_id"),
        Index("ix_change_points_kernel_name_case_id", "kernel_name", "case_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kernel_name: Mapped[str] = mapped_column(String(255))
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    metric: Mapped[str] = mapped_column(String(32))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    commit: Mapped[str] = mapped_column(String(64))
    previous_commit: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[float | None] = mapped_column(Float)
    after: Mapped[float | None] = mapped_column(Float)
    ratio: Mapped[float | None] = mapped_column(Float)
    direction: Mapped[str] = mapped_column(String(16))  # "up" | "down"
    method: Mapped[str] = mapped_column(String(64))
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# The metrics that have a real column; anything else goes to Result.metrics.
METRIC_COLUMNS = ("rel_l2", "max_abs", "kernel_rel_l2", "kernel_max_abs")
# Revision 0006: metrics copied into a column of their own AND kept in Result.metrics, where every
# reader before 0006 finds them (and where a downgrade leaves them).
COPIED_METRIC_COLUMNS = ("worst_row_rel_l2", "error_ratio")
LATENCY_COLUMNS = ("p20_ms", "p50_ms", "p80_ms", "mean_ms", "stddev_ms", "tflops")
