"""Commit subjects on runs; two metrics as columns and a covering index for the dashboard's Trends.

- ``runs.subject``: the first line of the measured commit's message, as git told the recorder (``lowbit
  run``, ``lowbit ingest`` where git knows the commit). Nullable: runs recorded before this revision, and
  commits git did not know, have none; nothing is invented for them.
- ``results.worst_row_rel_l2`` and ``results.error_ratio``: copies of the metrics of the same name, which
  stay in ``results.metrics`` as well. Filled here from that JSON (the store's "inf"/"-inf" strings as
  infinities, "nan" as NULL) and by every write from now on.
- ``ix_results_kernel_trend``: one kernel's results in run order with every column the Trends aggregate
  reads, so it scans this index instead of the wide rows (on a 1,083,600-row SQLite history the
  per-run aggregate of one kernel went from 1.9 s to 0.3 s; see docs/perf.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COPIED = ("worst_row_rel_l2", "error_ratio")
TREND_COLUMNS = [
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
]


def _json_float(metrics, key: str):
    """The float under ``key`` in the JSON column, on SQLite and PostgreSQL alike: the store writes
    non-finite values as the strings "inf", "-inf", "nan"; anything else is the number itself."""
    raw = metrics[key].as_string()
    return sa.case(
        (raw == "inf", sa.literal(math.inf, sa.Float)),
        (raw == "-inf", sa.literal(-math.inf, sa.Float)),
        (raw == "nan", sa.null()),
        else_=metrics[key].as_float(),
    )


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (no batch copy): runs and results are referenced by foreign keys
    # (see 0003), and a nullable column without a default changes no stored row.
    op.add_column("runs", sa.Column("subject", sa.Text(), nullable=True))
    for name in COPIED:
        op.add_column("results", sa.Column(name, sa.Float(), nullable=True))
    results = sa.table("results", sa.column("metrics", sa.JSON), *[sa.column(n, sa.Float) for n in COPIED])
    op.execute(results.update().values(**{n: _json_float(results.c.metrics, n) for n in COPIED}))
    op.create_index("ix_results_kernel_trend", "results", TREND_COLUMNS)


def downgrade() -> None:
    # The copies go; the metrics JSON still holds every value they were filled from or written with.
    op.drop_index("ix_results_kernel_trend", table_name="results")
    with op.batch_alter_table("results", recreate="never") as batch:
        for name in reversed(COPIED):
            batch.drop_column(name)
    with op.batch_alter_table("runs", recreate="never") as batch:
        batch.drop_column("subject")
