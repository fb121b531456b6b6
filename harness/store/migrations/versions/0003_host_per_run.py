"""The host name moves from the environment to the run; environments are keyed without it.

CI runners are ephemeral machines with fresh names: keyed with the host, every new runner was a new
environment and no two runs would ever be compared. Each run now records its own host. Environments that
differed only by host are merged into the oldest of them, and their runs are pointed at it.

The key function is frozen here (migrations are history): SHA-256 of the canonical JSON of the
fingerprint without "host", as harness.core.fingerprint.environment_key computes it today.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(fingerprint: dict) -> str:
    body = {k: v for k, v in fingerprint.items() if k != "host"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _fingerprint(value) -> dict:
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): environments and runs are referenced by foreign keys, which
    # SQLite would check when a batch operation drops and recreates the table.
    op.add_column("runs", sa.Column("host", sa.String(200), nullable=True))
    conn = op.get_bind()
    envs = sa.table(
        "environments",
        sa.column("id", sa.Integer),
        sa.column("fingerprint_hash", sa.String),
        sa.column("fingerprint", sa.JSON),
        sa.column("host", sa.String),
    )
    runs = sa.table("runs", sa.column("environment_id", sa.Integer), sa.column("host", sa.String))
    rows = conn.execute(sa.select(envs.c.id, envs.c.fingerprint, envs.c.host).order_by(envs.c.id)).all()
    keeper: dict[str, int] = {}
    for env_id, fingerprint, host in rows:
        fp = _fingerprint(fingerprint)
        conn.execute(runs.update().where(runs.c.environment_id == env_id).values(host=host or fp.get("host")))
        key = _key(fp)
        if key in keeper:
            conn.execute(
                runs.update().where(runs.c.environment_id == env_id).values(environment_id=keeper[key])
            )
            conn.execute(envs.delete().where(envs.c.id == env_id))
            continue
        keeper[key] = env_id
        body = {k: v for k, v in fp.items() if k != "host"}
        conn.execute(envs.update().where(envs.c.id == env_id).values(fingerprint_hash=key, fingerprint=body))
    op.drop_column("environments", "host")


def downgrade() -> None:
    # Environments merged on upgrade stay merged; the host returns to the environment from its runs.
    op.add_column("environments", sa.Column("host", sa.String(200), nullable=True))
    op.execute(
        "UPDATE environments SET host = "
        "(SELECT MAX(runs.host) FROM runs WHERE runs.environment_id = environments.id)"
    )
    op.drop_column("runs", "host")
