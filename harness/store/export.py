"""`lowbit export`: write the results of a run, a commit, or a commit range as CSV or JSON.

Selecting runs:
- ``--run ID``: that run.
- ``--commit SHA``: every run of that commit (a unique prefix is enough).
- ``--commits A..B``: runs in the order they were recorded in the database, from the FIRST run of
  commit A through the LAST run of commit B, both inclusive. (Unlike ``git log A..B``, A's runs are
  included: the range is about recorded history, not about git ancestry.)

CSV has one row per result (run and kernel columns repeated; verdicts, extra metrics, case params and raw
latency samples as JSON strings). JSON is ``{"runs": [{...run, "results": [...]}]}``; non-finite numbers
are written as the strings "inf", "-inf", "nan" so the file is strict JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from harness.store import Store, StoreError, head_revision

CSV_COLUMNS = (
    "run_id",
    "commit",
    "branch",
    "suite",
    "shard",
    "run_status",
    "run_started_at",
    "kernel",
    "source_hash",
    "case_id",
    "family",
    "shape_class",
    "phase",
    "status",
    "failed_property",
    "rel_l2",
    "max_abs",
    "kernel_rel_l2",
    "kernel_max_abs",
    "latency_kind",
    "p20_ms",
    "p50_ms",
    "p80_ms",
    "mean_ms",
    "stddev_ms",
    "tflops",
    "n_samples",
    "metrics",
    "verdicts",
    "params",
    "samples_ms",
    "message",
)
FORMATS = ("csv", "json")


def select_runs(
    store: Store, *, run_id: int | None = None, commit: str | None = None, commits: str | None = None
) -> list[dict]:
    """The runs named by exactly one of the selectors (see module docstring); StoreError if none match."""
    given = [x is not None for x in (run_id, commit, commits)]
    if sum(given) != 1:
        raise ValueError("select exactly one of a run id, a commit, or a commit range A..B")
    if run_id is not None:
        runs = store.runs(run_ids=[run_id])
        if not runs:
            raise StoreError(f"no run with id {run_id}")
        return runs
    if commit is not None:
        return _runs_of(store, commit)
    assert commits is not None
    first, sep, last = commits.partition("..")
    if not sep or not first or not last or "." in last:
        raise ValueError(f"malformed commit range {commits!r}: expected A..B")
    start = _runs_of(store, first)[0]["id"]
    end = _runs_of(store, last)[-1]["id"]
    if start > end:
        raise StoreError(
            f"commit range {commits}: the first run of {first} comes after the last run of {last}"
        )
    return store.runs(id_range=(start, end))


def _runs_of(store: Store, commit: str) -> list[dict]:
    runs = store.runs(commit=commit.strip().lower())
    if not runs:
        raise StoreError(f"no runs recorded for commit {commit!r}")
    distinct = sorted({r["commit"] for r in runs})
    if len(distinct) > 1:
        raise StoreError(f"commit prefix {commit!r} is ambiguous: {', '.join(c[:12] for c in distinct[:5])}")
    return runs


def _safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(_safe(value), sort_keys=True, allow_nan=False)


def to_csv(runs: list[dict], results_by_run: dict[int, list[dict]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for run in runs:
        for res in results_by_run.get(run["id"], []):
            metrics = dict(res["metrics"])
            latency = res["latency"] or {}
            row = {
                "run_id": run["id"],
                "commit": run["commit"],
                "branch": run["branch"] or "",
                "suite": run["suite"],
                "shard": run["shard"] or "",
                "run_status": run["status"],
                "run_started_at": run["started_at"],
                "kernel": res["kernel"],
                "source_hash": res["source_hash"],
                "case_id": res["case_id"],
                "family": res["family"],
                "shape_class": res["shape_class"],
                "phase": res["phase"],
                "status": res["status"],
                "failed_property": res["failed_property"] or "",
                "latency_kind": latency.get("kind", ""),
                "n_samples": len(latency.get("samples_ms") or []),
                "verdicts": _dumps(res["verdicts"]),
                "params": _dumps(res["params"]),
                "samples_ms": _dumps(latency.get("samples_ms") or []),
                "message": res["message"],
            }
            for name in ("rel_l2", "max_abs", "kernel_rel_l2", "kernel_max_abs"):
                value = metrics.pop(name, None)
                row[name] = "" if value is None else repr(float(value))
            for name in ("p20_ms", "p50_ms", "p80_ms", "mean_ms", "stddev_ms", "tflops"):
                value = latency.get(name)
                row[name] = "" if value is None else repr(float(value))
            row["metrics"] = _dumps(metrics)
            writer.writerow(row)
    return buffer.getvalue()


def to_json(runs: list[dict], results_by_run: dict[int, list[dict]]) -> str:
    doc = {
        "schema_revision": head_revision(),
        "runs": [{**run, "results": results_by_run.get(run["id"], [])} for run in runs],
    }
    return json.dumps(_safe(doc), indent=1, allow_nan=False) + "\n"


def export(
    store: Store,
    fmt: str,
    *,
    run_id: int | None = None,
    commit: str | None = None,
    commits: str | None = None,
) -> tuple[str, int, int]:
    """(document text, number of runs, number of results) for the selected runs in format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: expected one of {FORMATS}")
    runs = select_runs(store, run_id=run_id, commit=commit, commits=commits)
    results = store.results([r["id"] for r in runs])
    by_run: dict[int, list[dict]] = {}
    for res in results:
        by_run.setdefault(res["run_id"], []).append(res)
    text = to_csv(runs, by_run) if fmt == "csv" else to_json(runs, by_run)
    return text, len(runs), len(results)
