"""Commit subjects on runs, and the indexes the dashboard's slowest reads need.

- ``runs.subject``: the first line of the measured commit's message, as git told the recorder (``lowbit
  run``, ``lowbit ingest`` where git knows the commit). Nullable: runs recorded before this revision, and
  commits git did not know, have none; nothing is invented for them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (no batch copy): runs is referenced by foreign keys (see 0003), and a
    # nullable column without a default is a metadata-only change on SQLite and PostgreSQL alike.
    op.add_column("runs", sa.Column("subject", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", recreate="never") as batch:
        batch.drop_column("subject")
