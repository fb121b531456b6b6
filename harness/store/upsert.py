"""Get-or-create and upsert statements, per backend.

SQLite and PostgreSQL speak ``INSERT ... ON CONFLICT``; any other SQLAlchemy backend takes a portable
path (look up, insert what is missing, update-then-insert counterexamples). There a concurrent insert of
the same key fails the transaction with an integrity error, and the caller retries the whole
transaction (see :func:`is_retryable`). Rows are always written in key order, so concurrent writers of
overlapping cases take their row locks in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from harness.store.models import Counterexample

# Rows per INSERT statement execution: bounds memory for huge batches, same transaction throughout.
CHUNK = 5000
# Keys per lookup on backends without ON CONFLICT (keeps bound parameters well under driver limits).
LOOKUP_CHUNK = 500

_counterexamples = Counterexample.__table__


# Dialects with INSERT ... ON CONFLICT; others take the portable path.
UPSERT_DIALECTS = frozenset({"sqlite", "postgresql"})


def _upsert_insert(conn: Connection, table: sa.Table):
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert(table)


def has_upsert(conn: Connection) -> bool:
    return conn.dialect.name in UPSERT_DIALECTS


def insert_ignore(conn: Connection, table: sa.Table, rows: list[dict], keys: Sequence[str]) -> None:
    """Insert ``rows`` whose ``keys`` are not in ``table`` yet; leave existing rows alone."""
    if not rows:
        return
    if has_upsert(conn):
        stmt = _upsert_insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))
        for start in range(0, len(rows), CHUNK):
            conn.execute(stmt, rows[start : start + CHUNK])
        return
    columns = [table.c[k] for k in keys]
    missing = []
    for start in range(0, len(rows), LOOKUP_CHUNK):
        chunk = rows[start : start + LOOKUP_CHUNK]
        wanted = [tuple(r[k] for k in keys) for r in chunk]
        query = sa.select(*columns).where(sa.tuple_(*columns).in_(wanted))
        existing = set(map(tuple, conn.execute(query)))
        missing += [r for r, key in zip(chunk, wanted, strict=True) if key not in existing]
    for start in range(0, len(missing), CHUNK):
        conn.execute(table.insert(), missing[start : start + CHUNK])


def is_retryable(exc: sa_exc.DBAPIError, dialect: str) -> bool:
    if isinstance(exc, sa_exc.IntegrityError) and dialect not in UPSERT_DIALECTS:
        return True  # the portable get-or-create lost a race: the retry finds the row
    text = str(exc.orig).lower()
    if "database is locked" in text or "database is busy" in text:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in ("40001", "40P01")  # serialization failure, deadlock detected


def upsert_counterexamples(
    conn: Connection, kernel_name: str, run_id: int, failures: dict[tuple[str, str], int], now: datetime
) -> None:
    rows = [
        {
            "kernel_name": kernel_name,
            "case_id": case_id,
            "property": prop,
            "first_seen_run_id": run_id,
            "last_seen_run_id": run_id,
            "first_seen_at": now,
            "last_seen_at": now,
            "occurrences": count,
        }
        for (case_id, prop), count in sorted(failures.items())
    ]
    if not has_upsert(conn):
        _update_or_insert_counterexamples(conn, rows)
        return
    stmt = _upsert_insert(conn, _counterexamples)
    stmt = stmt.on_conflict_do_update(
        index_elements=["kernel_name", "case_id", "property"],
        set_={
            "last_seen_run_id": stmt.excluded.last_seen_run_id,
            "last_seen_at": stmt.excluded.last_seen_at,
            "occurrences": _counterexamples.c.occurrences + stmt.excluded.occurrences,
        },
    )
    for start in range(0, len(rows), CHUNK):
        conn.execute(stmt, rows[start : start + CHUNK])


def _update_or_insert_counterexamples(conn: Connection, rows: list[dict]) -> None:
    cx = _counterexamples
    for row in rows:
        updated = conn.execute(
            cx.update()
            .where(
                cx.c.kernel_name == row["kernel_name"],
                cx.c.case_id == row["case_id"],
                cx.c.property == row["property"],
            )
            .values(
                last_seen_run_id=row["last_seen_run_id"],
                last_seen_at=row["last_seen_at"],
                occurrences=cx.c.occurrences + row["occurrences"],
            )
        )
        if updated.rowcount == 0:
            conn.execute(cx.insert(), [row])
