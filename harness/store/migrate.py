"""Schema versions: where a database stands, and bringing it to this lowbit's head revision.

Every check-then-migrate runs in one transaction that first takes a database-wide lock (SQLite:
``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock), so any number of processes may open
or upgrade the same fresh database at once and exactly one of them creates the schema.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from harness.store.errors import StoreError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary constant: the PostgreSQL advisory lock that serialises lowbit schema changes.
_PG_LOCK_KEY = 0x10B17_5C4E


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None, "lowbit ships at least one migration"
    return head


def known_revisions() -> list[str]:
    """Revisions this lowbit knows, oldest first."""
    return [s.revision for s in reversed(list(_script().walk_revisions()))]


def lock_schema(conn: Connection) -> None:
    """Serialise schema checks/changes between processes (call inside a transaction)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    # SQLite: the engine begins every transaction with BEGIN IMMEDIATE, which already is the lock.


def current_revision(conn: Connection) -> str | None:
    """The database's revision; None for an empty database. StoreError for a foreign database."""
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None:
        tables = set(sa.inspect(conn).get_table_names())
        if tables - {"alembic_version"}:
            raise StoreError(
                "the database holds tables but no lowbit schema version: it is not a lowbit database "
                f"(tables: {', '.join(sorted(tables)[:6])})"
            )
    return revision


def check_known(revision: str | None) -> None:
    """StoreError when ``revision`` comes from a newer lowbit."""
    if revision is not None and revision not in known_revisions():
        raise StoreError(
            f"database schema is at revision {revision}, newer than this lowbit (knows up to "
            f"{head_revision()}): upgrade lowbit"
        )


def upgrade_in(conn: Connection, target: str = "head") -> tuple[str | None, str]:
    """Migrate the database behind ``conn`` (inside its open transaction) to ``target``."""
    lock_schema(conn)
    before = current_revision(conn)
    check_known(before)
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, target)
    after = MigrationContext.configure(conn).get_current_revision()
    assert after is not None
    return before, after
