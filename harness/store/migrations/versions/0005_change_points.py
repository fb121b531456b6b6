"""Change points: where a kernel x case series of one metric stepped, in one environment.

``lowbit history`` detects them (harness.verdicts.changepoints) and stores them here so the dashboard can
mark them without re-running the detector. One row per (kernel name, case, metric, environment, run at
which the new level starts); re-detecting a series replaces its rows.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_points",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kernel_name", sa.String(255), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("commit", sa.String(64), nullable=False),
        sa.Column("previous_commit", sa.String(64), nullable=True),
        sa.Column("before", sa.Float(), nullable=True),
        sa.Column("after", sa.Float(), nullable=True),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_change_points_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environments.id"],
            name=op.f("fk_change_points_environment_id_environments"),
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_change_points_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_change_points")),
        sa.UniqueConstraint(
            "kernel_name",
            "case_id",
            "metric",
            "environment_id",
            "run_id",
            name=op.f("uq_change_points_kernel_name_case_id_metric_environment_id_run_id"),
        ),
    )
    op.create_index(
        "ix_change_points_kernel_name_case_id", "change_points", ["kernel_name", "case_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_change_points_kernel_name_case_id", table_name="change_points")
    op.drop_table("change_points")
