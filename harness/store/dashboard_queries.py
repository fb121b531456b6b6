"""The dashboard's reads: small, pre-aggregated answers computed in SQL over a database opened read-only.

Every query here is a SQLAlchemy construct with bound parameters; nothing the page sends is ever spliced
into SQL text. Aggregation (counts, worst errors, latency sums) happens in the database, so a page never
pulls raw result rows: the largest answer is one row per run of one kernel (Trends) or one row per case
of two runs (Compare).

The database is opened read-only: SQLite through a ``mode=ro`` URI (a missing file is never created) and
PostgreSQL with ``default_transaction_read_only``. Errors carry the redacted URL only.

Worst error as a share of budget: the ``error_ratio`` the runner stores with each row next to the budget
it was judged against (``metrics.budget_rel_l2``, ``metrics.budget_max_abs``), i.e. the worse of
rel_l2 / budget and max_abs / budget; since revision 0006 it (and ``worst_row_rel_l2``) is a column too,
so aggregates read no JSON. Rows recorded without a budget (ingested benchmarks, older runs)
have no ratio. A NaN output is recorded as an infinite error, so its ratio is infinite, never missing.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from harness.store import migrate
from harness.store.api import translate_error
from harness.store.engine import CONNECT_TIMEOUT_S, parse_url, redact_url, sqlite_path
from harness.store.errors import StoreError
from harness.store.models import Case, ChangePoint, Counterexample, Environment, Kernel, Result, Run
from harness.store.rows import from_json_float, utc_iso

T = TypeVar("T")

# Kernels whose latency other kernels are measured against, where a run recorded them.
BASELINE_KERNELS = ("fp16", "sdpa", "sdpa_flash", "sdpa_cudnn")
# Phases whose cases are the same on every commit (the fuzz phase draws new cases per commit).
FIXED_PHASES = ("replay", "corpus", "bench")
ALL_PHASES = ("replay", "corpus", "fuzz", "bench")
FAILING = ("fail", "error", "crash")
# Sequence-length buckets on the key length Nk: (upper bound inclusive, label).
LENGTH_BUCKETS = ((64, "≤64"), (256, "65–256"), (1024, "257–1k"), (4096, "1k–4k"))
LONGEST_BUCKET = ">4k"

R = Result.__table__
K = Kernel.__table__
C = Case.__table__
RUN = Run.__table__
ENV = Environment.__table__
CX = Counterexample.__table__
CP = ChangePoint.__table__


class NoHistory(StoreError):
    """Nothing to show yet: no database file, no schema, or no runs. The message says what fills it."""


@dataclass(frozen=True)
class CaseFilter:
    """Which cases a query covers; an empty tuple means "any". Cases lacking a parameter (older cases
    have no ``layout``) match only when that filter is empty."""

    families: tuple[str, ...] = ()
    head_dims: tuple[int, ...] = ()
    causal: tuple[bool, ...] = ()
    layouts: tuple[str, ...] = ()
    length_buckets: tuple[str, ...] = ()
    phases: tuple[str, ...] = FIXED_PHASES

    def __post_init__(self) -> None:
        unknown = set(self.phases) - set(ALL_PHASES)
        if unknown:
            raise ValueError(f"CaseFilter.phases: expected some of {ALL_PHASES}, got {sorted(unknown)}")
        labels = {label for _, label in LENGTH_BUCKETS} | {LONGEST_BUCKET}
        if set(self.length_buckets) - labels:
            raise ValueError(
                f"CaseFilter.length_buckets: expected some of {sorted(labels)}, got {self.length_buckets}"
            )


# -- SQL expressions --------------------------------------------------------------------------------
def _json_float(column: Any, key: str) -> Any:
    """A float from a JSON column, with the store's "inf"/"-inf"/"nan" strings mapped back."""
    raw = column[key].as_string()
    return sa.case(
        (raw == "inf", sa.literal(math.inf, sa.Float)),
        (raw == "-inf", sa.literal(-math.inf, sa.Float)),
        (raw == "nan", sa.null()),
        else_=column[key].as_float(),
    )


def error_ratio_expr() -> Any:
    """The share of its budget a result used, as the runner stored it (the ``error_ratio`` column,
    revision 0006; a copy of ``metrics.error_ratio``)."""
    return R.c.error_ratio


def length_bucket_expr() -> Any:
    nk = C.c.params["nk"].as_integer()
    return sa.case(*[(nk <= bound, label) for bound, label in LENGTH_BUCKETS], else_=LONGEST_BUCKET)


def _case_ids(flt: CaseFilter) -> Any | None:
    """A subquery of the case ids matching ``flt``'s case parameters, or None when it filters none."""
    conditions = []
    if flt.families:
        conditions.append(C.c.family.in_(flt.families))
    if flt.head_dims:
        conditions.append(C.c.params["head_dim"].as_integer().in_([int(d) for d in flt.head_dims]))
    if flt.causal:
        conditions.append(C.c.params["causal"].as_boolean().in_([bool(c) for c in flt.causal]))
    if flt.layouts:
        conditions.append(C.c.params["layout"].as_string().in_(flt.layouts))
    if flt.length_buckets:
        conditions.append(length_bucket_expr().in_(flt.length_buckets))
    if not conditions:
        return None
    return sa.select(C.c.id).where(*conditions)


def _status_counts() -> list[Any]:
    return [
        sa.func.count().label("cases"),
        *[
            sa.func.sum(sa.case((R.c.status == s, 1), else_=0)).label(s)
            for s in ("pass", "fail", "error", "crash", "unsupported")
        ],
    ]


def _error_aggregates() -> list[Any]:
    return [
        sa.func.max(R.c.rel_l2).label("rel_l2"),
        sa.func.max(R.c.max_abs).label("max_abs"),
        sa.func.max(R.c.worst_row_rel_l2).label("worst_row_rel_l2"),
        sa.func.max(error_ratio_expr()).label("error_ratio"),
    ]


def _latency_aggregates() -> list[Any]:
    return [
        sa.func.avg(R.c.p50_ms).label("p50_ms"),
        sa.func.avg(R.c.tflops).label("tflops"),
        sa.func.count(R.c.p50_ms).label("timed"),
        sa.func.max(R.c.latency_kind).label("latency_kind"),
    ]


def _clean(row: Any) -> dict:
    """A plain dict with datetimes as UTC ISO strings and JSON's non-finite strings as floats."""
    out = {}
    for key, value in dict(row).items():
        if hasattr(value, "isoformat"):
            value = utc_iso(value)
        elif isinstance(value, str) and key not in _TEXT_KEYS:
            value = from_json_float(value)
        out[key] = value
    return out


_TEXT_KEYS = {
    "commit",
    "subject",
    "branch",
    "status",
    "kernel",
    "case_id",
    "family",
    "shape_class",
    "phase",
    "failed_property",
    "message",
    "note",
    "suite",
    "shard",
    "host",
    "gpu",
    "torch",
    "triton",
    "python",
    "cpu",
    "cuda",
    "driver",
    "latency_kind",
    "property",
    "length_bucket",
    "layout",
    "baseline",
    "first_seen_commit",
    "last_status",
    "last_commit",
    "metric",
    "direction",
}


def _read_only_engine(url: URL) -> Engine:
    path = sqlite_path(url)
    if url.get_backend_name() == "sqlite":
        if path is None:
            raise StoreError("the dashboard needs a SQLite file or a server database, not an in-memory one")
        if not path.exists():
            raise NoHistory(
                f"no lowbit database at {path}: fill one with `lowbit demo --db sqlite:///{path}` "
                "(a demo history) or `lowbit run` (this commit)"
            )
        target = f"file:{quote(str(path.resolve()))}?mode=ro"

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(target, uri=True, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA query_only = 1")
            return conn

        return sa.create_engine("sqlite://", creator=connect)
    connect_args: dict = {}
    if url.get_backend_name() == "postgresql":
        connect_args = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": "-c default_transaction_read_only=on",
        }
    try:
        return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    except (sa_exc.ArgumentError, ImportError, TypeError) as exc:
        raise StoreError(f"cannot use database URL {redact_url(url)!r}: {type(exc).__name__}") from None


class History:
    """A lowbit database opened read-only for browsing. Every method returns plain lists of dicts."""

    def __init__(self, url: str) -> None:
        self._url = parse_url(url)
        self.url = redact_url(self._url)
        self.engine = _read_only_engine(self._url)
        try:
            revision = self._read(migrate.current_revision)
        except BaseException:
            self.engine.dispose()
            raise
        if revision is None:
            self.engine.dispose()
            raise NoHistory(
                f"database {self.url} has no lowbit history yet: fill it with `lowbit demo --db URL` or "
                "`lowbit run --db URL`"
            )
        migrate.check_known(revision)
        if revision != migrate.head_revision():
            self.engine.dispose()
            raise StoreError(
                f"database schema is at revision {revision}, older than this lowbit's "
                f"{migrate.head_revision()}: run `lowbit db upgrade` (the dashboard never writes)"
            )

    def close(self) -> None:
        self.engine.dispose()

    def _read(self, work: Callable[[Connection], T]) -> T:
        try:
            with self.engine.connect() as conn:
                try:
                    return work(conn)
                finally:
                    conn.rollback()
        except StoreError:
            raise
        except sa_exc.SQLAlchemyError as exc:
            raise translate_error(exc, self._url) from None

    def _rows(self, query: Any) -> list[dict]:
        return self._read(lambda conn: [_clean(r) for r in conn.execute(query).mappings()])

    # -- what there is ------------------------------------------------------------------------------
    def state(self) -> dict:
        """A cheap fingerprint of the history's contents: it changes whenever a run or result lands."""
        unfinished = sa.func.sum(sa.case((RUN.c.ended_at.is_(None), 1), else_=0))
        runs = sa.select(
            sa.func.count().label("runs"),
            sa.func.max(RUN.c.id).label("last_run_id"),
            sa.func.max(RUN.c.ended_at).label("last_ended_at"),
            unfinished.label("unfinished"),
        )
        results = sa.select(sa.func.max(R.c.id).label("last_result_id"))

        def work(conn: Connection) -> dict:
            out = _clean(conn.execute(runs).mappings().one())
            out.update(_clean(conn.execute(results).mappings().one()))
            return out

        return self._read(work)

    def runs(self, run_ids: Sequence[int] | None = None) -> list[dict]:
        """Every run (or those given), oldest first, with its environment's searchable fields."""
        query = (
            sa.select(
                RUN.c.id,
                RUN.c.commit,
                RUN.c.parents,
                RUN.c.branch,
                RUN.c.suite,
                RUN.c.shard,
                RUN.c.status,
                RUN.c.note,
                RUN.c.subject,
                RUN.c.host,
                RUN.c.started_at,
                RUN.c.ended_at,
                RUN.c.environment_id,
                ENV.c.gpu,
                ENV.c.cuda,
                ENV.c.driver,
                ENV.c.torch,
                ENV.c.triton,
                ENV.c.python,
                ENV.c.cpu,
            )
            .join(ENV, ENV.c.id == RUN.c.environment_id)
            .order_by(RUN.c.id)
        )
        if run_ids is not None:
            query = query.where(RUN.c.id.in_([int(i) for i in run_ids]))
        return self._rows(query)

    def kernels(self) -> list[str]:
        query = sa.select(K.c.name).distinct().order_by(K.c.name)
        return self._read(lambda conn: [r[0] for r in conn.execute(query)])

    def facets(self) -> dict[str, list]:
        """The values each case filter can take, from the cases table (small: one row per case)."""
        head_dim = C.c.params["head_dim"].as_integer()
        layout = C.c.params["layout"].as_string()
        causal = C.c.params["causal"].as_boolean()

        def distinct(conn: Connection, expr: Any) -> list:
            rows = conn.execute(sa.select(expr).distinct().where(expr.is_not(None)).order_by(expr))
            return [r[0] for r in rows]

        def work(conn: Connection) -> dict[str, list]:
            buckets = set(distinct(conn, length_bucket_expr()))
            order = [label for _, label in LENGTH_BUCKETS] + [LONGEST_BUCKET]
            return {
                "families": distinct(conn, C.c.family),
                "shape_classes": distinct(conn, C.c.shape_class),
                "head_dims": [int(d) for d in distinct(conn, head_dim)],
                "layouts": distinct(conn, layout),
                "causal": [bool(c) for c in distinct(conn, causal)],
                "length_buckets": [b for b in order if b in buckets],
            }

        return self._read(work)

    # -- per run ------------------------------------------------------------------------------------
    def kernel_summary(self, run_ids: Sequence[int]) -> list[dict]:
        """Per (run, kernel): status counts, worst errors, mean latency."""
        query = (
            sa.select(
                R.c.run_id,
                K.c.name.label("kernel"),
                *_status_counts(),
                *_error_aggregates(),
                *_latency_aggregates(),
            )
            .join(K, K.c.id == R.c.kernel_id)
            .where(R.c.run_id.in_([int(i) for i in run_ids]))
            .group_by(R.c.run_id, K.c.name)
            .order_by(R.c.run_id, K.c.name)
        )
        return self._rows(query)

    def baseline_speed(self, run_ids: Sequence[int]) -> list[dict]:
        """Per (run, kernel, baseline kernel): summed median latency over the cases both timed.

        ``ratio = baseline_ms / kernel_ms`` is the kernel's speed-up over the baseline on exactly the same
        cases, same run, same machine (values above 1 mean faster). The pairing is done here on the
        timed rows of these runs alone (read through the run index: a self-join of the results table
        lets SQLite walk every run's copy of each case).
        """
        query = (
            sa.select(R.c.run_id, K.c.name.label("kernel"), R.c.case_id, R.c.p50_ms, R.c.latency_kind)
            .join(K, K.c.id == R.c.kernel_id)
            .where(R.c.run_id.in_([int(i) for i in run_ids]), R.c.p50_ms.is_not(None))
            .order_by(R.c.id)
        )
        timed: dict[tuple[int, str], dict[str, tuple[float, str]]] = {}
        for row in self._rows(query):
            timed.setdefault((row["run_id"], row["kernel"]), {})[row["case_id"]] = (
                row["p50_ms"],
                row["latency_kind"],
            )
        out = []
        for (run_id, kernel), cases in timed.items():
            for baseline in BASELINE_KERNELS:
                base = timed.get((run_id, baseline))
                if base is None or baseline == kernel:
                    continue
                common = [c for c in cases if c in base and cases[c][1] == base[c][1]]
                if not common:
                    continue
                kernel_ms = sum(cases[c][0] for c in common)
                baseline_ms = sum(base[c][0] for c in common)
                out.append(
                    {
                        "run_id": run_id,
                        "kernel": kernel,
                        "baseline": baseline,
                        "cases": len(common),
                        "kernel_ms": kernel_ms,
                        "baseline_ms": baseline_ms,
                        "latency_kind": cases[common[0]][1],
                        "ratio": baseline_ms / kernel_ms if kernel_ms else None,
                    }
                )
        return sorted(out, key=lambda r: (r["run_id"], r["kernel"], r["baseline"]))

    def trend(
        self,
        kernel: str,
        flt: CaseFilter = CaseFilter(),
        *,
        branches: Sequence[str] = (),
        environment_ids: Sequence[int] = (),
    ) -> list[dict]:
        """One row per run of ``kernel``: status counts, worst errors and mean latency over the cases
        ``flt`` selects, with the run's commit, parents, branch, environment and time."""
        conditions = [K.c.name == kernel, R.c.phase.in_(flt.phases)]
        cases = _case_ids(flt)
        if cases is not None:
            conditions.append(R.c.case_id.in_(cases))
        per_run = (
            sa.select(R.c.run_id, *_status_counts(), *_error_aggregates(), *_latency_aggregates())
            .join(K, K.c.id == R.c.kernel_id)
            .where(*conditions)
            .group_by(R.c.run_id)
            .subquery()
        )
        query = (
            sa.select(
                per_run,
                RUN.c.commit,
                RUN.c.parents,
                RUN.c.branch,
                RUN.c.status.label("run_status"),
                RUN.c.started_at,
                RUN.c.note,
                RUN.c.subject,
                RUN.c.environment_id,
                ENV.c.gpu,
                ENV.c.cpu,
            )
            .join(RUN, RUN.c.id == per_run.c.run_id)
            .join(ENV, ENV.c.id == RUN.c.environment_id)
            .order_by(RUN.c.id)
        )
        if branches:
            query = query.where(RUN.c.branch.in_(list(branches)))
        if environment_ids:
            query = query.where(RUN.c.environment_id.in_([int(e) for e in environment_ids]))
        return self._rows(query)

    def change_points(
        self, kernel: str, flt: CaseFilter = CaseFilter(), *, environment_ids: Sequence[int] = ()
    ) -> list[dict]:
        """Stored change points of ``kernel`` (``lowbit history`` detects them) over the cases ``flt``
        selects, per (run where the new level starts, metric, direction): how many cases stepped and the
        largest step (after / before, or before / after for steps down)."""
        step = sa.case((CP.c.direction == "up", CP.c.ratio), else_=1.0 / sa.func.nullif(CP.c.ratio, 0.0))
        query = (
            sa.select(
                CP.c.run_id,
                CP.c.metric,
                CP.c.direction,
                CP.c.environment_id,
                sa.func.count().label("cases"),
                sa.func.max(step).label("largest_step"),
            )
            .where(CP.c.kernel_name == kernel)
            .group_by(CP.c.run_id, CP.c.metric, CP.c.direction, CP.c.environment_id)
            .order_by(CP.c.run_id, CP.c.metric)
        )
        cases = _case_ids(flt)
        if cases is not None:
            query = query.where(CP.c.case_id.in_(cases))
        if environment_ids:
            query = query.where(CP.c.environment_id.in_([int(e) for e in environment_ids]))
        return self._rows(query)

    def heatmap(self, run_ids: Sequence[int], kernel: str, phases: Sequence[str] = ALL_PHASES) -> list[dict]:
        """Per (family, shape class) of ``kernel`` in these runs: worst share of budget, counts."""
        query = (
            sa.select(C.c.family, C.c.shape_class, *_status_counts(), *_error_aggregates())
            .select_from(R.join(K, K.c.id == R.c.kernel_id).join(C, C.c.id == R.c.case_id))
            .where(R.c.run_id.in_([int(i) for i in run_ids]), K.c.name == kernel, R.c.phase.in_(phases))
            .group_by(C.c.family, C.c.shape_class)
            .order_by(C.c.family, C.c.shape_class)
        )
        return self._rows(query)

    def cell_cases(self, run_ids: Sequence[int], kernel: str, family: str, shape_class: str) -> list[dict]:
        """The results of one heatmap cell, worst first."""
        ratio = error_ratio_expr().label("error_ratio")
        query = (
            sa.select(
                R.c.case_id,
                R.c.run_id,
                R.c.phase,
                R.c.status,
                R.c.failed_property,
                R.c.rel_l2,
                R.c.max_abs,
                ratio,
                R.c.p50_ms,
                C.c.params,
            )
            .select_from(R.join(K, K.c.id == R.c.kernel_id).join(C, C.c.id == R.c.case_id))
            .where(
                R.c.run_id.in_([int(i) for i in run_ids]),
                K.c.name == kernel,
                C.c.family == family,
                C.c.shape_class == shape_class,
            )
            .order_by(ratio.desc().nulls_last(), R.c.id)
            .limit(500)
        )
        return self._rows(query)

    def case_history(self, kernel: str, case_id: str, limit: int = 500) -> list[dict]:
        """Every recorded result of one case for ``kernel`` (newest ``limit``), oldest first."""
        query = (
            sa.select(
                R.c.run_id,
                RUN.c.commit,
                RUN.c.branch,
                RUN.c.started_at,
                R.c.status,
                R.c.failed_property,
                R.c.rel_l2,
                R.c.max_abs,
                error_ratio_expr().label("error_ratio"),
                R.c.p50_ms,
                R.c.message,
            )
            .select_from(R.join(K, K.c.id == R.c.kernel_id).join(RUN, RUN.c.id == R.c.run_id))
            .where(K.c.name == kernel, R.c.case_id == case_id)
            .order_by(R.c.run_id.desc(), R.c.id.desc())
            .limit(limit)
        )
        return list(reversed(self._rows(query)))

    def case_params(self, case_id: str) -> dict | None:
        query = sa.select(C.c.params).where(C.c.id == case_id)
        return self._read(lambda conn: conn.execute(query).scalar_one_or_none())

    # -- failures -----------------------------------------------------------------------------------
    def failures(self) -> list[dict]:
        """Every counterexample with its latest result for that kernel name and case.

        A counterexample is open while its latest result still fails (or there is none yet). The
        latest result's metrics are "measured"; the budget stored with it is "allowed".
        """
        latest = (
            sa.select(K.c.name.label("kernel_name"), R.c.case_id, sa.func.max(R.c.id).label("result_id"))
            .join(K, K.c.id == R.c.kernel_id)
            .where(R.c.case_id.in_(sa.select(CX.c.case_id)))
            .group_by(K.c.name, R.c.case_id)
            .subquery()
        )
        first_run, last_run = RUN.alias("first_run"), RUN.alias("last_run")
        query = (
            sa.select(
                CX.c.kernel_name.label("kernel"),
                CX.c.case_id,
                CX.c.property,
                CX.c.occurrences,
                CX.c.first_seen_at,
                CX.c.last_seen_at,
                first_run.c.commit.label("first_seen_commit"),
                last_run.c.commit.label("last_commit"),
                R.c.status.label("last_status"),
                R.c.rel_l2,
                R.c.max_abs,
                _json_float(R.c.metrics, "budget_rel_l2").label("budget_rel_l2"),
                _json_float(R.c.metrics, "budget_max_abs").label("budget_max_abs"),
                error_ratio_expr().label("error_ratio"),
                R.c.message,
                C.c.params,
                C.c.family,
                C.c.shape_class,
            )
            .select_from(CX)
            .join(C, C.c.id == CX.c.case_id)
            .join(first_run, first_run.c.id == CX.c.first_seen_run_id)
            .outerjoin(
                latest, sa.and_(latest.c.kernel_name == CX.c.kernel_name, latest.c.case_id == CX.c.case_id)
            )
            .outerjoin(R, R.c.id == latest.c.result_id)
            .outerjoin(last_run, last_run.c.id == R.c.run_id)
            .order_by(CX.c.last_seen_at.desc(), CX.c.id)
        )
        rows = self._rows(query)
        for row in rows:
            row["open"] = row["last_status"] is None or row["last_status"] in FAILING
        return rows

    # -- two commits --------------------------------------------------------------------------------
    def compare(self, run_ids_a: Sequence[int], run_ids_b: Sequence[int]) -> list[dict]:
        """Per (kernel, case) measured in both sets of runs: errors, latency and raw samples of each side.

        Each side is read through the run index and the two are paired here: bounded by the number of
        cases two measurements hold (thousands), never by the history's size. Where a side measured a
        case twice (a replayed counterexample that is also a corpus case), the later result counts.
        """

        def side(run_ids: Sequence[int]) -> dict[tuple[str, str], dict]:
            query = (
                sa.select(
                    K.c.name.label("kernel"),
                    R.c.case_id,
                    C.c.family,
                    C.c.shape_class,
                    R.c.phase,
                    R.c.status,
                    R.c.rel_l2,
                    R.c.max_abs,
                    R.c.p50_ms,
                    R.c.latency_kind,
                    R.c.samples_ms,
                )
                .select_from(R.join(K, K.c.id == R.c.kernel_id).join(C, C.c.id == R.c.case_id))
                .where(R.c.run_id.in_([int(i) for i in run_ids]))
                .order_by(R.c.id)
            )
            return {(r["kernel"], r["case_id"]): r for r in self._rows(query)}

        a, b = side(run_ids_a), side(run_ids_b)
        rows = []
        for key in sorted(a.keys() & b.keys()):
            ra, rb = a[key], b[key]
            rows.append(
                {
                    "kernel": key[0],
                    "case_id": key[1],
                    "family": ra["family"],
                    "shape_class": ra["shape_class"],
                    "phase": rb["phase"],
                    "status_a": ra["status"],
                    "status_b": rb["status"],
                    "rel_l2_a": ra["rel_l2"],
                    "rel_l2_b": rb["rel_l2"],
                    "max_abs_a": ra["max_abs"],
                    "max_abs_b": rb["max_abs"],
                    "p50_ms_a": ra["p50_ms"],
                    "p50_ms_b": rb["p50_ms"],
                    "latency_kind": ra["latency_kind"] if ra["latency_kind"] == rb["latency_kind"] else None,
                    "samples_a": [float(from_json_float(v)) for v in (ra["samples_ms"] or [])],
                    "samples_b": [float(from_json_float(v)) for v in (rb["samples_ms"] or [])],
                }
            )
        return rows


def open_history(url: str) -> History:
    """:class:`History` at ``url``; :class:`NoHistory` when there is nothing to show, StoreError else."""
    history = History(url)
    if history.state()["runs"] == 0:
        history.close()
        raise NoHistory(
            f"database {history.url} holds no runs yet: fill it with `lowbit demo --db URL` (a demo "
            "history in a few minutes on a CPU) or `lowbit run --db URL` (this commit)"
        )
    return history
