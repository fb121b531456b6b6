"""The store's public face: open a database, record runs and results, read them back.

All writes of one call happen in one transaction, so a crash (kill -9, power loss) loses at most the
call in flight. Writes are retried when SQLite reports the database locked (after its own 30 s busy
wait), PostgreSQL reports a deadlock/serialisation failure, or a portable get-or-create lost a race.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from harness.core.fingerprint import ENVIRONMENT_FIELDS, HOST_FIELD, environment_key, without_host
from harness.store import migrate
from harness.store.engine import READ_ONLY, create_engine, parse_url, redact_url, secrets_of, sqlite_path
from harness.store.errors import StoreError, scrub
from harness.store.models import Case, Counterexample, Environment, Kernel, Result, Run
from harness.store.rows import (
    ResultRow,
    check_length,
    json_safe,
    prepare_batch,
    result_dict,
    run_dict,
    utc_iso,
    utc_now,
)
from harness.store.upsert import CHUNK, insert_ignore, is_retryable, upsert_counterexamples

T = TypeVar("T")

FINISHED_STATUSES = ("complete", "interrupted", "crashed", "abandoned")
WRITE_ATTEMPTS = 8
# The runner refreshes its run's heartbeat this often; a "running" run whose heartbeat is older than
# ABANDON_AFTER_S (default; $LOWBIT_ABANDON_AFTER overrides) is marked "abandoned" by the next open.
HEARTBEAT_S = 10.0
ABANDON_AFTER_S = 120.0
ABANDON_ENV_VAR = "LOWBIT_ABANDON_AFTER"

_cases = Case.__table__
_results = Result.__table__
_counterexamples = Counterexample.__table__
_env = Environment.__table__


class Store:
    """An open lowbit database. Create with :func:`open_store`; close with :meth:`close` (or ``with``)."""

    def __init__(self, url: URL, engine: Engine) -> None:
        self._url = url
        self.url = redact_url(url)
        self.engine = engine

    # -- plumbing -----------------------------------------------------------------------------------
    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except sa_exc.SQLAlchemyError as exc:
            raise translate_error(exc, self._url) from None

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction, retrying the whole transaction on lock contention."""
        delay = 0.05
        with self._errors():
            for attempt in range(WRITE_ATTEMPTS):
                try:
                    with self.engine.begin() as conn:
                        return work(conn)
                except sa_exc.DBAPIError as exc:
                    if attempt == WRITE_ATTEMPTS - 1 or not is_retryable(exc, self.engine.dialect.name):
                        raise
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[Connection], T]) -> T:
        with self._errors(), self.engine.connect() as conn:
            return work(conn.execution_options(**{READ_ONLY: True}))

    # -- writing ------------------------------------------------------------------------------------
    def environment_id(self, fingerprint: dict) -> int:
        """Id of the environment with this fingerprint (host name aside), created if new."""
        digest = environment_key(fingerprint)
        fingerprint = without_host(fingerprint)
        row = {
            "fingerprint_hash": digest,
            "fingerprint": json_safe(fingerprint),
            "created_at": utc_now(),
            # The searchable columns hold a prefix; the JSON keeps the full fingerprint.
            **{
                c: (None if fingerprint.get(c) is None else str(fingerprint[c])[: _env.c[c].type.length])
                for c in ENVIRONMENT_FIELDS
            },
        }
        table = Environment.__table__

        def work(conn: Connection) -> int:
            insert_ignore(conn, table, [row], ["fingerprint_hash"])
            return conn.execute(sa.select(table.c.id).where(table.c.fingerprint_hash == digest)).scalar_one()

        return self._write(work)

    def kernel_id(self, name: str, source_hash: str) -> int:
        """Id of kernel ``name`` at source version ``source_hash``, created if new."""
        if not name:
            raise ValueError("kernel name must be a non-empty string")
        check_length("kernel name", name, Kernel.__table__.c.name)
        check_length("kernel source hash", source_hash, Kernel.__table__.c.source_hash)
        table = Kernel.__table__
        row = {"name": name, "source_hash": source_hash or "", "created_at": utc_now()}

        def work(conn: Connection) -> int:
            insert_ignore(conn, table, [row], ["name", "source_hash"])
            query = sa.select(table.c.id).where(
                table.c.name == name, table.c.source_hash == row["source_hash"]
            )
            return conn.execute(query).scalar_one()

        return self._write(work)

    def start_run(
        self,
        *,
        commit: str,
        parents: list[str],
        branch: str | None,
        suite: str,
        shard: str | None,
        environment: dict,
        lowbit_version: str,
        content_hash: str | None = None,
        subject: str | None = None,
    ) -> int:
        """Record a new run with status "running" and a fresh heartbeat; returns its id.

        ``content_hash`` (ingests) is unique: StoreError if a run with that hash exists already.
        ``subject`` is the commit's subject line (first line of its message) where git knew it.
        """
        if not commit:
            raise ValueError("start_run: commit must be a non-empty string")
        for name, value in (
            ("commit", commit),
            ("branch", branch),
            ("suite", suite),
            ("shard", shard),
            ("lowbit_version", lowbit_version),
        ):
            check_length(f"start_run: {name}", value, Run.__table__.c[name])
        for parent in parents:
            check_length("start_run: parent commit", parent, Run.__table__.c.commit)
        if subject is not None and not isinstance(subject, str):
            raise ValueError(f"start_run: subject must be a string or None, got {type(subject).__name__}")
        env_id = self.environment_id(environment)
        now = utc_now()
        values = {
            "commit": commit,
            "parents": list(parents),
            "branch": branch,
            "suite": suite,
            "shard": shard,
            "started_at": now,
            "heartbeat_at": now,
            "content_hash": content_hash,
            "subject": subject,
            "status": "running",
            "note": "",
            "lowbit_version": lowbit_version,
            "environment_id": env_id,
            "host": None if environment.get(HOST_FIELD) is None else str(environment[HOST_FIELD])[:200],
        }
        table = Run.__table__

        def work(conn: Connection) -> int:
            return conn.execute(table.insert().values(**values)).inserted_primary_key[0]

        return self._write(work)

    def record_results(self, run_id: int, kernel_id: int, rows: list[ResultRow]) -> None:
        """Record one batch of results in ONE transaction: all rows land, or none.

        Cases are inserted if new (by case id); every failing row (status fail, error or crash) creates
        or refreshes the counterexample (kernel name, case, property; property = the failed property,
        else the status).
        """
        self.record_batches(run_id, [(kernel_id, rows)])

    def record_batches(self, run_id: int, batches: Sequence[tuple[int, list[ResultRow]]]) -> None:
        """Like :meth:`record_results` for several kernels at once, still in ONE transaction."""
        for _, rows in batches:
            for row in rows:
                row.validate()
        prepared = [prepare_batch(run_id, kernel_id, rows) for kernel_id, rows in batches if rows]
        if not prepared:
            return

        def work(conn: Connection) -> None:
            for kernel_id, case_rows, results, failures, now in prepared:
                kernel_name = conn.execute(
                    sa.select(Kernel.__table__.c.name).where(Kernel.__table__.c.id == kernel_id)
                ).scalar_one_or_none()
                if kernel_name is None:
                    raise StoreError(f"record_results: no kernel with id {kernel_id}")
                insert_ignore(conn, _cases, case_rows, ["id"])
                for start in range(0, len(results), CHUNK):
                    conn.execute(_results.insert(), results[start : start + CHUNK])
                if failures:
                    upsert_counterexamples(conn, kernel_name, run_id, failures, now)

        self._write(work)

    def finish_run(self, run_id: int, status: str, note: str = "", *, keep_content_hash: bool = True) -> None:
        """Close a run: "complete", "interrupted", "crashed" (or "abandoned").

        A run another process marked abandoned (its heartbeat looked stale) is closed all the same: the
        runner that finishes it knows better. ``keep_content_hash=False`` frees the hash of a failed
        ingest, so the same file can be ingested again.
        """
        if status not in FINISHED_STATUSES:
            raise ValueError(f"finish_run: status must be one of {FINISHED_STATUSES}, got {status!r}")
        table = Run.__table__
        values: dict = {"status": status, "note": note, "ended_at": utc_now()}
        if not keep_content_hash:
            values["content_hash"] = None

        def work(conn: Connection) -> None:
            done = conn.execute(table.update().where(table.c.id == run_id).values(**values))
            if done.rowcount != 1:
                raise StoreError(f"finish_run: no run with id {run_id}")

        self._write(work)

    def heartbeat(self, run_id: int) -> bool:
        """Refresh a running run's heartbeat; False if the run is no longer "running"."""
        table = Run.__table__

        def work(conn: Connection) -> bool:
            done = conn.execute(
                table.update()
                .where(table.c.id == run_id, table.c.status == "running")
                .values(heartbeat_at=utc_now())
            )
            return done.rowcount == 1

        return self._write(work)

    def mark_abandoned(self, older_than_s: float) -> list[int]:
        """Mark "abandoned" every running run whose heartbeat (or start) is older than ``older_than_s``."""
        table = Run.__table__
        cutoff = utc_now() - timedelta(seconds=older_than_s)
        last_sign = sa.func.coalesce(table.c.heartbeat_at, table.c.started_at)

        stale = sa.select(table.c.id).where(table.c.status == "running", last_sign < cutoff)
        # Looked up first without a write lock: opening a database whose runs are alive only reads.
        if not self._read(lambda conn: list(conn.execute(stale).scalars())):
            return []

        def work(conn: Connection) -> list[int]:
            ids = list(conn.execute(stale).scalars())
            if ids:
                note = f"abandoned: no heartbeat for more than {older_than_s:.0f} s (process gone?)"
                conn.execute(
                    table.update()
                    .where(table.c.id.in_(ids), table.c.status == "running")
                    .values(status="abandoned", ended_at=utc_now(), note=note)
                )
            return ids

        return self._write(work)

    def run_with_content_hash(self, content_hash: str) -> dict | None:
        """The run recorded with this content hash (an earlier ingest of the same file), if any."""
        found = self.runs(content_hash=content_hash)
        return found[0] if found else None

    def commits_with_prefix(self, prefix: str) -> list[str]:
        """Distinct recorded commits starting with ``prefix``."""
        table = Run.__table__
        query = sa.select(table.c.commit).where(table.c.commit.startswith(prefix, autoescape=True)).distinct()
        return self._read(lambda conn: sorted(conn.execute(query).scalars()))

    # -- reading ------------------------------------------------------------------------------------
    def counterexamples(self, kernel_name: str) -> list[dict]:
        """Case params of every stored counterexample of ``kernel_name`` (one per case, oldest first).

        Each dict is exactly what ``Case.params()`` returned, so ``Case.from_params`` rebuilds the case.
        """
        return [rec["params"] for rec in self.counterexample_records(kernel_name, one_per_case=True)]

    def counterexample_records(
        self, kernel_name: str | None = None, *, one_per_case: bool = False
    ) -> list[dict]:
        """Full counterexample rows (kernel, case id, params, property, first/last seen, occurrences)."""
        cx, cases = _counterexamples, _cases
        query = (
            sa.select(cx, cases.c.params, cases.c.family, cases.c.shape_class)
            .join(cases, cases.c.id == cx.c.case_id)
            .order_by(cx.c.first_seen_run_id, cx.c.id)
        )
        if kernel_name is not None:
            query = query.where(cx.c.kernel_name == kernel_name)

        def work(conn: Connection) -> list[dict]:
            out, seen = [], set()
            for r in conn.execute(query).mappings():
                if one_per_case:
                    if r["case_id"] in seen:
                        continue
                    seen.add(r["case_id"])
                out.append(
                    {
                        "kernel": r["kernel_name"],
                        "case_id": r["case_id"],
                        "params": r["params"],
                        "family": r["family"],
                        "shape_class": r["shape_class"],
                        "property": r["property"],
                        "first_seen_run_id": r["first_seen_run_id"],
                        "last_seen_run_id": r["last_seen_run_id"],
                        "first_seen_at": utc_iso(r["first_seen_at"]),
                        "last_seen_at": utc_iso(r["last_seen_at"]),
                        "occurrences": r["occurrences"],
                    }
                )
            return out

        return self._read(work)

    def results(self, run_id: int | Sequence[int]) -> list[dict]:
        """Every result of a run (or of several runs), in recording order, joined with kernel and case."""
        run_ids = [run_id] if isinstance(run_id, int) else list(run_id)
        res, ker, cases = _results, Kernel.__table__, _cases
        query = (
            sa.select(
                res,
                ker.c.name.label("kernel"),
                ker.c.source_hash,
                cases.c.params,
                cases.c.family,
                cases.c.shape_class,
            )
            .join(ker, ker.c.id == res.c.kernel_id)
            .join(cases, cases.c.id == res.c.case_id)
            .where(res.c.run_id.in_(run_ids))
            .order_by(res.c.run_id, res.c.id)
        )
        return self._read(lambda conn: [result_dict(r) for r in conn.execute(query).mappings()])

    def runs(
        self,
        *,
        run_ids: Sequence[int] | None = None,
        id_range: tuple[int, int] | None = None,
        commit: str | None = None,
        branch: str | None = None,
        status: str | None = None,
        content_hash: str | None = None,
        limit: int | None = None,
    ) -> list[dict]:
        """Runs matching every filter given, oldest first (``limit`` keeps the newest ``limit``).

        ``id_range`` is inclusive; ``commit`` matches a full SHA or a prefix of one.
        """
        runs, env = Run.__table__, Environment.__table__
        query = sa.select(runs, env.c.fingerprint).join(env, env.c.id == runs.c.environment_id)
        if run_ids is not None:
            query = query.where(runs.c.id.in_(list(run_ids)))
        if id_range is not None:
            query = query.where(runs.c.id.between(*id_range))
        if commit is not None:
            query = query.where(runs.c.commit.startswith(commit, autoescape=True))
        if branch is not None:
            query = query.where(runs.c.branch == branch)
        if status is not None:
            query = query.where(runs.c.status == status)
        if content_hash is not None:
            query = query.where(runs.c.content_hash == content_hash)
        query = query.order_by(runs.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        rows = self._read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])
        return [run_dict(r) for r in reversed(rows)]

    def count(self, table: str) -> int:
        """Number of rows in one of lowbit's tables."""
        tables = {t.name: t for t in Result.metadata.sorted_tables}
        if table not in tables:
            raise ValueError(f"unknown table {table!r}: expected one of {sorted(tables)}")
        return self._read(
            lambda conn: conn.execute(sa.select(sa.func.count()).select_from(tables[table])).scalar_one()
        )


def translate_error(exc: BaseException, url: URL, *, connecting: bool = False) -> StoreError:
    """A printable StoreError for a driver/SQLAlchemy error on ``url`` (passwords scrubbed)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    detail = scrub("; ".join(lines[:2]) or type(orig).__name__, secrets_of(url))
    shown = redact_url(url)
    path = sqlite_path(url)
    if path is not None and ("file is not a database" in detail or "malformed" in detail):
        return StoreError(
            f"{path} is not a usable SQLite database (corrupt, or another kind of file): {detail}"
        )
    if connecting:
        return StoreError(f"cannot connect to database {shown}: {detail}")
    return StoreError(f"database error on {shown}: {detail}")


def _engine_for(url: str) -> tuple[URL, Engine]:
    parsed = parse_url(url)
    path = sqlite_path(parsed)
    if path is not None and not path.parent.is_dir():
        raise StoreError(f"cannot create SQLite database {path}: directory {path.parent} does not exist")
    return parsed, create_engine(parsed)


def abandon_after_s() -> float:
    """Seconds without a heartbeat after which a running run counts as abandoned ($LOWBIT_ABANDON_AFTER)."""
    text = os.environ.get(ABANDON_ENV_VAR, "").strip()
    if not text:
        return ABANDON_AFTER_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise StoreError(f"${ABANDON_ENV_VAR}: expected a number of seconds > 0, got {text!r}")
    return value


def open_store(url: str, *, create: bool = True) -> Store:
    """Open the lowbit database at ``url``; runs whose heartbeat went stale are marked abandoned.

    ``create=True``: a missing SQLite file or an empty database gets the current schema. StoreError for a
    malformed URL, an unreachable server, a corrupt SQLite file, a foreign database, a schema newer than
    this lowbit, or an older schema (run ``lowbit db upgrade``).
    """
    parsed, engine = _engine_for(url)
    path = sqlite_path(parsed)
    if path is not None and not create and not path.exists():
        raise StoreError(f"no lowbit database at {path}")
    try:
        _check_schema(engine, parsed, create)
        store = Store(parsed, engine)
        store.mark_abandoned(abandon_after_s())
    except BaseException:
        engine.dispose()
        raise
    return store


def _connect(engine: Engine, url: URL) -> Connection:
    try:
        return engine.connect()
    except sa_exc.SQLAlchemyError as exc:
        raise translate_error(exc, url, connecting=True) from None


def _check_schema(engine: Engine, url: URL, create: bool) -> None:
    """Refuse unusable schemas; create the schema in an empty database when ``create``.

    The version and the table list are always read in ONE transaction, so a process never sees half of a
    schema another process is creating. PostgreSQL reads each statement's own snapshot, so that
    transaction first takes the schema's advisory lock (and waits for a creator to commit). SQLite reads
    one snapshot per transaction and an open only reads (readers never wait for writers); creating takes
    the write lock (``BEGIN IMMEDIATE``) and checks again under it.
    """
    head = migrate.head_revision()
    with _connect(engine, url) as conn:
        try:
            with conn.execution_options(**{READ_ONLY: True}).begin():
                migrate.lock_schema(conn)
                revision = migrate.current_revision(conn)
            if revision is None and create:
                with conn.execution_options(**{READ_ONLY: False}).begin():
                    migrate.lock_schema(conn)
                    revision = migrate.current_revision(conn)
                    if revision is None:
                        migrate.upgrade_in(conn)
                        revision = head
        except sa_exc.SQLAlchemyError as exc:
            raise translate_error(exc, url) from None
    migrate.check_known(revision)
    if revision is None:
        raise StoreError(f"database {redact_url(url)} is empty: run `lowbit db upgrade`")
    if revision != head:
        raise StoreError(
            f"database schema is at revision {revision}, older than this lowbit's {head}: "
            "run `lowbit db upgrade`"
        )


def upgrade(url: str) -> tuple[str | None, str]:
    """Migrate the database at ``url`` to this lowbit's head revision: ``(from_revision, to_revision)``."""
    parsed, engine = _engine_for(url)
    try:
        with _connect(engine, parsed) as conn:
            try:
                with conn.begin():
                    return migrate.upgrade_in(conn)
            except sa_exc.SQLAlchemyError as exc:
                raise translate_error(exc, parsed) from None
    finally:
        engine.dispose()


def current(url: str) -> tuple[str | None, str]:
    """``(database revision or None, this lowbit's head revision)``; the database is not changed."""
    parsed, engine = _engine_for(url)
    path = sqlite_path(parsed)
    if path is not None and not path.exists():
        raise StoreError(f"no lowbit database at {path}")
    try:
        with _connect(engine, parsed) as conn:
            try:
                revision = migrate.current_revision(conn.execution_options(**{READ_ONLY: True}))
                conn.rollback()
            except sa_exc.SQLAlchemyError as exc:
                raise translate_error(exc, parsed) from None
        return revision, migrate.head_revision()
    finally:
        engine.dispose()
