"""Run lifecycle: a heartbeat, honest end states, and a content hash for idempotent ingests.

- ``runs.heartbeat_at``: the runner refreshes it while it works; a ``running`` run whose heartbeat went
  stale (kill -9, a lost CI runner) is marked ``abandoned`` by the next command that opens the database.
- A run's status now says how it *ended*, not what its results found: ``complete`` (every planned case
  accounted for), ``interrupted`` (SIGINT/SIGTERM: what was measured is written), ``crashed`` (the runner
  itself failed), ``abandoned``. Failing properties live in the results. Runs recorded as ``failed`` by
  older lowbit did finish every case, so they become ``complete``.
- ``runs.content_hash``: SHA-256 of an ingested file and its commit, unique, so ingesting the same file
  for the same commit twice records one run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): runs is referenced by foreign keys (see 0003).
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("content_hash", sa.String(64), nullable=True))
    op.create_index("ix_runs_content_hash", "runs", ["content_hash"], unique=True)
    op.create_index("ix_runs_status", "runs", ["status"])
    runs = sa.table("runs", sa.column("status", sa.String))
    op.execute(runs.update().where(runs.c.status == "failed").values(status="complete"))


def downgrade() -> None:
    # Runs converted from "failed" stay "complete": which of them had failing results is in the results.
    runs = sa.table("runs", sa.column("status", sa.String))
    op.execute(runs.update().where(runs.c.status.in_(("interrupted", "abandoned"))).values(status="crashed"))
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_index("ix_runs_content_hash", table_name="runs")
    with op.batch_alter_table("runs", recreate="never") as batch:
        batch.drop_column("content_hash")
        batch.drop_column("heartbeat_at")
