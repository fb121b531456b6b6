"""Case history index on results; occurrence count on counterexamples.

The dashboard reads one case's history for one kernel across runs (kernel_id, case_id, run_id), which
the single-column indexes of 0001 answer only by scanning. Counterexamples gain the number of failing
results recorded for them; rows that exist already were seen at least once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_results_kernel_id_case_id_run_id", "results", ["kernel_id", "case_id", "run_id"])
    with op.batch_alter_table("counterexamples") as batch:
        batch.add_column(sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("counterexamples") as batch:
        batch.drop_column("occurrences")
    op.drop_index("ix_results_kernel_id_case_id_run_id", table_name="results")
