"""Many writer processes on one database, and writers killed mid-batch (SQLite and real PostgreSQL).

Workers are separate processes started with ``spawn`` (as CI runners are separate processes), open the
store themselves (the first ones race to create the schema), and write overlapping cases, shared
kernels and a shared environment, so every get-or-create and upsert path is contended.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sqlite3
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from harness.store import open_store, upsert
from tests.harness.postgres import postgres_url_fixture  # noqa: F401
from tests.harness.store_rows import make_rows, start_run

pytestmark = pytest.mark.e2e  # real writer processes against real database servers

WRITERS = 8
RUNS_PER_WRITER = 2
BATCHES_PER_RUN = 4
ROWS_PER_BATCH = 100
SHARED_CASES = 60  # every batch cycles over the same cases: heavy overlap between writers
FAIL_EVERY = 25


def _writer(url: str, worker: int, go, portable: bool = False) -> None:
    if portable:  # the lookup-then-insert path other SQLAlchemy backends take
        upsert.UPSERT_DIALECTS = frozenset()
    go.wait(60)
    with open_store(url) as store:
        kernels = [store.kernel_id("int8", "src1"), store.kernel_id("fp8", "src1")]
        for r in range(RUNS_PER_WRITER):
            run = start_run(store, commit=f"{worker:02d}{r:02d}abc", shard=f"{worker + 1}/{WRITERS}")
            for b in range(BATCHES_PER_RUN):
                rows = make_rows(
                    ROWS_PER_BATCH, n_cases=SHARED_CASES, fail_every=FAIL_EVERY, tag=f"w{worker}r{r}b{b}"
                )
                store.record_results(run, kernels[b % 2], rows)
            store.finish_run(run, "complete")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lowbit.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", "postgresql", "postgresql-portable"])
def writers_db(request, tmp_path) -> tuple[str, bool]:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lowbit.db'}", False
    return request.getfixturevalue("postgres_url"), request.param.endswith("portable")


def test_concurrent_writers_every_row_accounted_for(writers_db):
    """8 writer processes; "portable" runs them through the path for backends without ON CONFLICT,
    where racing get-or-creates are resolved by retrying the transaction."""
    db_url, portable = writers_db
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(db_url, w, go, portable)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    go.set()  # all start together (each still pays its own interpreter start-up)
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS

    with open_store(db_url, create=False) as store:
        runs = store.runs()
        assert len(runs) == WRITERS * RUNS_PER_WRITER
        assert {r["status"] for r in runs} == {"complete"}
        assert len({r["commit"] for r in runs}) == len(runs)
        total = WRITERS * RUNS_PER_WRITER * BATCHES_PER_RUN * ROWS_PER_BATCH
        assert store.count("results") == total
        assert store.count("environments") == 1
        assert store.count("kernels") == 2
        assert store.count("cases") == SHARED_CASES
        with store.engine.connect() as conn:
            messages = conn.execute(sa.text("SELECT message FROM results")).scalars().all()
            per_run = Counter(conn.execute(sa.text("SELECT run_id FROM results")).scalars())
        assert len(set(messages)) == total  # no row written twice
        assert set(per_run.values()) == {BATCHES_PER_RUN * ROWS_PER_BATCH}
        # Failing rows i = 0, 25, 50, 75 hit cases i % 60 = 0, 25, 50, 15: one counterexample each per kernel.
        records = store.counterexample_records()
        failing_cases = len({i % SHARED_CASES for i in range(0, ROWS_PER_BATCH, FAIL_EVERY)})
        assert len(records) == 2 * failing_cases
        fails_per_batch = len(range(0, ROWS_PER_BATCH, FAIL_EVERY))
        assert sum(r["occurrences"] for r in records) == total // ROWS_PER_BATCH * fails_per_batch


SMALL_BATCH = 500
BIG_BATCH = 40_000


def _doomed_writer(url: str, events) -> None:
    """Commits three small batches, then starts a big one and reports once it is inside its transaction."""
    from sqlalchemy import event

    with open_store(url) as store:
        run = start_run(store, commit="deadbee")
        kernel = store.kernel_id("int8", "")
        for b in range(3):
            store.record_results(run, kernel, make_rows(SMALL_BATCH, first_case=b * SMALL_BATCH, tag=f"b{b}"))
            events.put(("committed", b))

        @event.listens_for(store.engine, "after_cursor_execute")
        def _inside(conn, cursor, statement, *args) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO RESULTS"):
                events.put(("in-flight", 3))

        store.record_results(run, kernel, make_rows(BIG_BATCH, first_case=10_000, tag="b3"))
        events.put(("committed", 3))  # not reached: killed before the commit
        time.sleep(60)


def test_kill_9_loses_at_most_the_batch_in_flight(db_url):
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    proc = ctx.Process(target=_doomed_writer, args=(db_url, events))
    proc.start()
    seen = []
    try:
        while True:
            kind, batch = events.get(timeout=60)
            seen.append((kind, batch))
            if kind == "in-flight":
                os.kill(proc.pid, signal.SIGKILL)
                break
    except queue.Empty:
        pytest.fail(f"writer never reached its big batch; events: {seen}")
    finally:
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert seen[:3] == [("committed", 0), ("committed", 1), ("committed", 2)]

    if db_url.startswith("sqlite"):
        raw = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        raw.close()
    with open_store(db_url, create=False) as store:
        with store.engine.connect() as conn:
            tags = Counter(
                m.split("#")[0] for m in conn.execute(sa.text("SELECT message FROM results")).scalars()
            )
        assert tags == {"b0": SMALL_BATCH, "b1": SMALL_BATCH, "b2": SMALL_BATCH}
        assert store.count("cases") == 3 * SMALL_BATCH
        [run] = store.runs()
        assert run["status"] == "running"  # the runner marks it crashed; the store just keeps what landed
        # The database is still writable.
        store.finish_run(run["id"], "crashed", note="writer killed")
        assert store.runs()[0]["status"] == "crashed"


OPENERS = 8


def _opener(urls: list[str], barrier, errors) -> None:
    """Opens each fresh database in turn, released together with the other openers by the barrier."""
    for url in urls:
        barrier.wait(120)
        try:
            open_store(url).close()
        except Exception as exc:
            errors.put(f"{url.rsplit('/', 1)[-1]}: {type(exc).__name__}: {exc}")


def _first_open_race(backend: str, rounds: int, tmp_path, request) -> None:
    if backend == "sqlite":
        urls = [f"sqlite:///{tmp_path / f'race{r}.db'}" for r in range(rounds)]
    else:
        from tests.harness.postgres import start_server

        server = start_server()
        urls = [server.url(server.create_database()) for _ in range(rounds)]
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(OPENERS), ctx.Queue()
    procs = [ctx.Process(target=_opener, args=(urls, barrier, errors)) for _ in range(OPENERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert [p.exitcode for p in procs] == [0] * OPENERS
    assert failures == []
    for url in urls:
        with open_store(url, create=False) as store:
            assert store.runs() == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_first_opens_of_a_new_database_do_not_race(backend, tmp_path, request):
    """8 processes open the same brand-new database at once, several rounds: every open succeeds."""
    _first_open_race(backend, 2, tmp_path, request)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_first_opens_do_not_race_many_rounds(backend, tmp_path, request):
    _first_open_race(backend, 40, tmp_path, request)
