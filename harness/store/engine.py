"""Database URLs and engines: where the history lives, and how each backend is set up.

SQLite (the default) is set up for several writer processes at once: WAL journal (readers never block the
writer), a 30 s busy timeout, ``BEGIN IMMEDIATE`` for every transaction (a transaction takes the write lock
up front, so two writers never deadlock upgrading read locks; read-only connections begin deferred
transactions and never wait), foreign keys on, and ``synchronous=FULL`` so
a committed batch survives even an OS crash. PostgreSQL goes through psycopg 3 with a short connect
timeout so an unreachable server fails fast.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from harness.store.errors import StoreError, scrub

ENV_VAR = "LOWBIT_DB_URL"
DEFAULT_SQLITE_NAME = "lowbit.db"
SQLITE_BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 3
# Execution option marking a connection that only reads (SQLite then begins deferred transactions).
READ_ONLY = "lowbit_read_only"


def resolve_url(url: str | None) -> str:
    """The database to use: ``url`` (``--db``), else ``$LOWBIT_DB_URL``, else ``./lowbit.db`` (SQLite)."""
    if url:
        return url
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return from_env
    return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_NAME}"


# Query parameters that carry a password (libpq/psycopg accept them in the URL's query string).
SECRET_QUERY_KEYS = ("password", "passwd", "sslpassword")


def redact_url(url: str | URL) -> str:
    """``url`` for display: the password (user:PASSWORD@ or ?password=...) replaced by ``***``."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except Exception:
        return scrub(str(url))
    hidden = {k: "***" for k in parsed.query if k.lower() in SECRET_QUERY_KEYS}
    if hidden:
        parsed = parsed.update_query_dict(hidden)
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


def parse_url(url: str) -> URL:
    """Parse and normalise ``url``; StoreError for anything that is not a usable database URL.

    A bare ``postgresql://`` means psycopg 3 (the driver lowbit ships with), not SQLAlchemy's psycopg2
    default.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # SQLAlchemy's own message repeats the raw URL, password included: never show it.
        raise StoreError(
            f"malformed database URL {scrub(str(url))!r}: expected e.g. sqlite:///path/lowbit.db "
            "or postgresql+psycopg://user@host:5432/dbname"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise StoreError(
            f"unsupported database URL {redact_url(parsed)!r}: unknown dialect/driver {parsed.drivername!r}"
        ) from None
    return parsed


def secrets_of(url: URL) -> tuple[str, ...]:
    """Strings that must never appear in a message about ``url``."""
    secrets = [str(url.password)] if url.password else []
    for key, value in url.query.items():
        if key.lower() in SECRET_QUERY_KEYS:
            secrets += [value] if isinstance(value, str) else list(value)
    return tuple(s for s in secrets if s)


def create_engine(url: str | URL) -> Engine:
    """An engine for ``url`` with lowbit's per-backend settings (see module docstring)."""
    parsed = url if isinstance(url, URL) else parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    kwargs: dict = {"pool_pre_ping": True}
    if backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        return sa.create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError, TypeError) as exc:
        raise StoreError(
            f"cannot use database URL {redact_url(parsed)!r}: {scrub(str(exc), secrets_of(parsed))}"
        ) from None


def _set_wal(cur) -> None:
    """Switch a SQLite file to WAL (persistent: once one process did, the others find it so).

    Switching needs an exclusive lock and SQLite answers "database is locked" at once, without its busy
    handler, while another process holds any lock (as when eight processes open a new file together):
    retry for up to the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)


def _sqlite_engine(url: URL) -> Engine:
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys = ON")
        if url.database not in (None, "", ":memory:"):
            _set_wal(cur)
        cur.execute("PRAGMA synchronous = FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # Readers (connections marked READ_ONLY) take no lock in WAL mode: they never wait for writers.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for other backends and in-memory databases."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)
