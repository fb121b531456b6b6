"""Read queries for judging history (harness.verdicts) and the change points it stores.

Everything here reads runs and results as verdicts need them: the runs of one commit, every commit with a
finished run (for picking a baseline), one kernel x case per run (the comparison), and one metric of one
kernel x case per run (a series; aggregated in SQL). Change points are the only thing written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from harness.store.api import Store
from harness.store.models import ChangePoint, Environment, Kernel, Result, Run
from harness.store.rows import FAILING_STATUSES, from_json_float, utc_iso, utc_now

# A run whose every case was accounted for: "complete" (whether or not a property failed; revision 0004
# folded the older "failed" status into it). "running", "interrupted" (SIGINT/SIGTERM: cases skipped),
# "crashed" and "abandoned" (the runner vanished) are never comparable.
FINISHED_RUN_STATUSES = ("complete",)

# Metrics a series can follow: the error columns, the latency columns, and "failures" (failing results
# of the case in that run: 0 or more).
SERIES_METRICS = (
    "rel_l2",
    "max_abs",
    "kernel_rel_l2",
    "kernel_max_abs",
    "p20_ms",
    "p50_ms",
    "p80_ms",
    "tflops",
)
FAILURES = "failures"

_runs = Run.__table__
_results = Result.__table__
_kernels = Kernel.__table__
_env = Environment.__table__
_cp = ChangePoint.__table__


# The suite of runs that `lowbit ingest` records (benchmark files measured outside lowbit). They sit
# beside lowbit's own runs of the same commit in the history; verdicts do not judge them.
BENCH_SUITE = "bench"


def commit_runs(
    store: Store, *, statuses: Sequence[str] | None = None, exclude_suites: Sequence[str] = ()
) -> list[dict]:
    """Every run (id, commit, parents, shard, status, environment id, started_at), oldest first, except
    those of ``exclude_suites``."""
    query = sa.select(
        _runs.c.id,
        _runs.c.commit,
        _runs.c.parents,
        _runs.c.shard,
        _runs.c.status,
        _runs.c.environment_id,
        _runs.c.started_at,
        _runs.c.branch,
    ).order_by(_runs.c.id)
    if statuses is not None:
        query = query.where(_runs.c.status.in_(list(statuses)))
    if exclude_suites:
        query = query.where(_runs.c.suite.notin_(list(exclude_suites)))

    def work(conn: Connection) -> list[dict]:
        out = []
        for r in conn.execute(query).mappings():
            row = dict(r)
            row["started_at"] = utc_iso(row["started_at"])
            row["parents"] = list(row["parents"] or [])
            out.append(row)
        return out

    return store._read(work)


def measured_runs(store: Store) -> list[dict]:
    """The runs verdicts judge: :func:`commit_runs` without ingested benchmark files (suite
    :data:`BENCH_SUITE`), which would otherwise stand in for a commit's measurement."""
    return commit_runs(store, exclude_suites=(BENCH_SUITE,))


def environments(store: Store, ids: Sequence[int]) -> dict[int, dict]:
    """Fingerprints (without host) of the environments ``ids``."""
    query = sa.select(_env.c.id, _env.c.fingerprint).where(_env.c.id.in_(list(ids)))
    return store._read(lambda conn: {r.id: dict(r.fingerprint or {}) for r in conn.execute(query)})


def case_results(store: Store, run_ids: Sequence[int], kernels: Sequence[str] | None = None) -> list[dict]:
    """The results of ``run_ids`` needed to judge them, one row per result, in recording order.

    Each row: run_id, kernel, case_id, params, family, shape_class, phase, status, failed_property,
    message, rel_l2, max_abs, latency_kind, p50_ms, samples_ms.
    """
    from harness.store.models import Case

    cases = Case.__table__
    query = (
        sa.select(
            _results.c.run_id,
            _kernels.c.name.label("kernel"),
            _results.c.case_id,
            cases.c.params,
            cases.c.family,
            cases.c.shape_class,
            _results.c.phase,
            _results.c.status,
            _results.c.failed_property,
            _results.c.message,
            _results.c.rel_l2,
            _results.c.max_abs,
            _results.c.latency_kind,
            _results.c.p50_ms,
            _results.c.samples_ms,
        )
        .join(_kernels, _kernels.c.id == _results.c.kernel_id)
        .join(cases, cases.c.id == _results.c.case_id)
        .where(_results.c.run_id.in_(list(run_ids)))
        .order_by(_results.c.run_id, _results.c.id)
    )
    if kernels:
        query = query.where(_kernels.c.name.in_(list(kernels)))

    def work(conn: Connection) -> list[dict]:
        out = []
        for r in conn.execute(query).mappings():
            row = dict(r)
            row["samples_ms"] = [from_json_float(v) for v in (row["samples_ms"] or [])]
            out.append(row)
        return out

    return store._read(work)


def series(
    store: Store,
    kernel: str,
    case_id: str,
    metric: str,
    *,
    environment_id: int | None = None,
    statuses: Sequence[str] = FINISHED_RUN_STATUSES,
) -> list[dict]:
    """One point per finished run that measured ``kernel`` on ``case_id``: run_id, commit, parents,
    environment_id, started_at, value; oldest run first.

    ``value`` is the run's worst (largest) error or latency for the case, or the run's smallest TFLOPS;
    for ``metric="failures"`` it is the number of failing results. Runs where the metric is not
    measured (NULL) are left out.
    """
    if metric == FAILURES:
        value = sa.func.sum(sa.case((_results.c.status.in_(FAILING_STATUSES), 1), else_=0))
    elif metric in SERIES_METRICS:
        column = _results.c[metric]
        value = sa.func.min(column) if metric == "tflops" else sa.func.max(column)
    else:
        raise ValueError(
            f"unknown metric {metric!r}: expected one of {', '.join((*SERIES_METRICS, FAILURES))}"
        )
    query = (
        sa.select(
            _runs.c.id.label("run_id"),
            _runs.c.commit,
            _runs.c.parents,
            _runs.c.environment_id,
            _runs.c.started_at,
            value.label("value"),
        )
        .join(_results, _results.c.run_id == _runs.c.id)
        .join(_kernels, _kernels.c.id == _results.c.kernel_id)
        .where(
            _kernels.c.name == kernel,
            _results.c.case_id == case_id,
            _runs.c.status.in_(list(statuses)),
        )
        .group_by(_runs.c.id, _runs.c.commit, _runs.c.parents, _runs.c.environment_id, _runs.c.started_at)
        .order_by(_runs.c.id)
    )
    if environment_id is not None:
        query = query.where(_runs.c.environment_id == environment_id)

    def work(conn: Connection) -> list[dict]:
        out = []
        for r in conn.execute(query).mappings():
            if r["value"] is None:
                continue
            out.append(
                {
                    "run_id": r["run_id"],
                    "commit": r["commit"],
                    "parents": list(r["parents"] or []),
                    "environment_id": r["environment_id"],
                    "started_at": utc_iso(r["started_at"]),
                    "value": float(r["value"]),
                }
            )
        return out

    return store._read(work)


def kernel_cases(store: Store, kernel: str, *, statuses: Sequence[str] = FINISHED_RUN_STATUSES) -> list[dict]:
    """Cases measured for ``kernel`` in finished runs, with how many runs measured each (most first)."""
    n_runs = sa.func.count(sa.distinct(_results.c.run_id))
    query = (
        sa.select(_results.c.case_id, n_runs.label("runs"))
        .join(_kernels, _kernels.c.id == _results.c.kernel_id)
        .join(_runs, _runs.c.id == _results.c.run_id)
        .where(_kernels.c.name == kernel, _runs.c.status.in_(list(statuses)))
        .group_by(_results.c.case_id)
        .order_by(n_runs.desc(), _results.c.case_id)
    )
    return store._read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])


def kernel_names(store: Store) -> list[str]:
    """Every kernel name ever recorded, sorted."""
    query = sa.select(_kernels.c.name).distinct().order_by(_kernels.c.name)
    return store._read(lambda conn: [r[0] for r in conn.execute(query)])


def replace_change_points(
    store: Store, kernel: str, case_id: str, metric: str, environment_id: int, points: Sequence[dict]
) -> None:
    """Store ``points`` as the change points of one series, replacing what was stored for it.

    Each point: run_id, commit, previous_commit, before, after, ratio, direction, method.
    """
    now = utc_now()
    rows = [
        {
            "kernel_name": kernel,
            "case_id": case_id,
            "metric": metric,
            "environment_id": environment_id,
            "run_id": p["run_id"],
            "commit": p["commit"],
            "previous_commit": p.get("previous_commit"),
            "before": p.get("before"),
            "after": p.get("after"),
            "ratio": p.get("ratio"),
            "direction": p["direction"],
            "method": p["method"],
            "detected_at": now,
        }
        for p in points
    ]

    def work(conn: Connection) -> None:
        conn.execute(
            _cp.delete().where(
                _cp.c.kernel_name == kernel,
                _cp.c.case_id == case_id,
                _cp.c.metric == metric,
                _cp.c.environment_id == environment_id,
            )
        )
        if rows:
            conn.execute(_cp.insert(), rows)

    store._write(work)


def stored_change_points(
    store: Store,
    *,
    kernel: str | None = None,
    case_id: str | None = None,
    metric: str | None = None,
    environment_id: int | None = None,
) -> list[dict]:
    """Stored change points matching every filter given, in run order."""
    query = sa.select(_cp).order_by(_cp.c.run_id, _cp.c.id)
    for column, wanted in (
        (_cp.c.kernel_name, kernel),
        (_cp.c.case_id, case_id),
        (_cp.c.metric, metric),
        (_cp.c.environment_id, environment_id),
    ):
        if wanted is not None:
            query = query.where(column == wanted)

    def work(conn: Connection) -> list[dict[str, Any]]:
        out = []
        for r in conn.execute(query).mappings():
            row = dict(r)
            row["kernel"] = row.pop("kernel_name")
            row["detected_at"] = utc_iso(row["detected_at"])
            out.append(row)
        return out

    return store._read(work)
