"""Initial schema: environments, runs, kernels, cases, results, counterexamples.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint_hash", sa.String(64), nullable=False),
        sa.Column("gpu", sa.String(200), nullable=True),
        sa.Column("compute_capability", sa.String(20), nullable=True),
        sa.Column("driver", sa.String(100), nullable=True),
        sa.Column("cuda", sa.String(100), nullable=True),
        sa.Column("torch", sa.String(100), nullable=True),
        sa.Column("triton", sa.String(100), nullable=True),
        sa.Column("python", sa.String(100), nullable=True),
        sa.Column("cpu", sa.String(200), nullable=True),
        sa.Column("host", sa.String(200), nullable=True),
        sa.Column("fingerprint", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_environments"),
        sa.UniqueConstraint("fingerprint_hash", name="uq_environments_fingerprint_hash"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("commit", sa.String(64), nullable=False),
        sa.Column("parents", sa.JSON(), nullable=False),
        sa.Column("branch", sa.String(255), nullable=True),
        sa.Column("suite", sa.String(32), nullable=False),
        sa.Column("shard", sa.String(32), nullable=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("lowbit_version", sa.String(64), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"], ["environments.id"], name="fk_runs_environment_id_environments"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_commit", "runs", ["commit"])
    op.create_index("ix_runs_branch_started_at", "runs", ["branch", "started_at"])
    op.create_table(
        "kernels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kernels"),
        sa.UniqueConstraint("name", "source_hash", name="uq_kernels_name_source_hash"),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("shape_class", sa.String(128), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
    )
    op.create_table(
        "results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("kernel_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failed_property", sa.String(64), nullable=True),
        sa.Column("verdicts", sa.JSON(), nullable=False),
        sa.Column("rel_l2", sa.Float(), nullable=True),
        sa.Column("max_abs", sa.Float(), nullable=True),
        sa.Column("kernel_rel_l2", sa.Float(), nullable=True),
        sa.Column("kernel_max_abs", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("latency_kind", sa.String(32), nullable=True),
        sa.Column("p20_ms", sa.Float(), nullable=True),
        sa.Column("p50_ms", sa.Float(), nullable=True),
        sa.Column("p80_ms", sa.Float(), nullable=True),
        sa.Column("mean_ms", sa.Float(), nullable=True),
        sa.Column("stddev_ms", sa.Float(), nullable=True),
        sa.Column("tflops", sa.Float(), nullable=True),
        sa.Column("samples_ms", sa.JSON(), nullable=True),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_results_run_id_runs"),
        sa.ForeignKeyConstraint(["kernel_id"], ["kernels.id"], name="fk_results_kernel_id_kernels"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_results_case_id_cases"),
        sa.PrimaryKeyConstraint("id", name="pk_results"),
    )
    op.create_index("ix_results_run_id", "results", ["run_id"])
    op.create_index("ix_results_kernel_id", "results", ["kernel_id"])
    op.create_index("ix_results_case_id", "results", ["case_id"])
    op.create_table(
        "counterexamples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kernel_name", sa.String(255), nullable=False),
        sa.Column("case_id", sa.String(64), nullable=False),
        sa.Column("property", sa.String(64), nullable=False),
        sa.Column("first_seen_run_id", sa.Integer(), nullable=False),
        sa.Column("last_seen_run_id", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_counterexamples_case_id_cases"),
        sa.ForeignKeyConstraint(
            ["first_seen_run_id"], ["runs.id"], name="fk_counterexamples_first_seen_run_id_runs"
        ),
        sa.ForeignKeyConstraint(
            ["last_seen_run_id"], ["runs.id"], name="fk_counterexamples_last_seen_run_id_runs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_counterexamples"),
        sa.UniqueConstraint(
            "kernel_name", "case_id", "property", name="uq_counterexamples_kernel_name_case_id_property"
        ),
    )


def downgrade() -> None:
    op.drop_table("counterexamples")
    op.drop_index("ix_results_case_id", table_name="results")
    op.drop_index("ix_results_kernel_id", table_name="results")
    op.drop_index("ix_results_run_id", table_name="results")
    op.drop_table("results")
    op.drop_table("cases")
    op.drop_table("kernels")
    op.drop_index("ix_runs_branch_started_at", table_name="runs")
    op.drop_index("ix_runs_commit", table_name="runs")
    op.drop_table("runs")
    op.drop_table("environments")
