"""Rows in and out: the runner's ResultRow, and its conversion to and from the tables' columns.

Non-finite floats: real columns keep +-inf and store NaN as NULL; JSON columns get the strings "inf",
"-inf", "nan" (JSON has no non-finite numbers and PostgreSQL rejects them); reading converts back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from harness.store.models import (
    COPIED_METRIC_COLUMNS,
    LATENCY_COLUMNS,
    METRIC_COLUMNS,
    PHASES,
    RESULT_STATUSES,
    Case,
    Result,
)

FAILING_STATUSES = ("fail", "error", "crash", "timeout")


@dataclass
class ResultRow:
    """One measured case, as the runner (or ``lowbit ingest``) hands it to :meth:`Store.record_results`."""

    case_id: str
    case_params: dict
    family: str
    shape_class: str
    phase: str  # "replay" | "corpus" | "fuzz" | "bench"
    status: str  # one of harness.store.models.RESULT_STATUSES
    failed_property: str | None
    verdicts: dict[str, bool | None]
    metrics: dict[str, float]  # inf allowed; NaN is stored as NULL
    message: str = ""
    # {"kind": "cuda"|"cpu-interpreter"|"bench", "p20_ms", "p50_ms", "p80_ms", "mean_ms", "stddev_ms",
    #  "samples_ms": [...], "tflops": float | None}
    latency: dict | None = field(default=None)

    def validate(self) -> None:
        if not isinstance(self.case_id, str) or not self.case_id:
            raise ValueError(f"ResultRow.case_id must be a non-empty string, got {self.case_id!r}")
        for name, column in (
            ("case_id", Case.id),
            ("family", Case.family),
            ("shape_class", Case.shape_class),
            ("failed_property", Result.failed_property),
        ):
            check_length(f"ResultRow.{name}", getattr(self, name), column)
        if self.phase not in PHASES:
            raise ValueError(f"ResultRow.phase must be one of {PHASES}, got {self.phase!r}")
        if self.status not in RESULT_STATUSES:
            raise ValueError(f"ResultRow.status must be one of {RESULT_STATUSES}, got {self.status!r}")
        if not isinstance(self.case_params, dict):
            raise ValueError(f"ResultRow.case_params must be a dict, got {type(self.case_params).__name__}")
        if self.latency is not None and not isinstance(self.latency, dict):
            raise ValueError(f"ResultRow.latency must be a dict or None, got {type(self.latency).__name__}")


def check_length(what: str, value: str | None, column: Any) -> None:
    """ValueError when ``value`` is not a string fitting the String(n) ``column`` (None passes)."""
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    limit = column.type.length
    if limit is not None and len(value) > limit:
        raise ValueError(f"{what} must be at most {limit} characters, got {len(value)}: {value[:40]!r}...")


def column_float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def json_safe(value: Any) -> Any:
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return json_safe(value.item())
    return str(value)


def samples_json(values: Sequence[Any] | None) -> list | None:
    if values is None:
        return None
    out = list(map(float, values))
    return out if all(map(math.isfinite, out)) else json_safe(out)


_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def from_json_float(value: Any) -> Any:
    return _NONFINITE.get(value, value) if isinstance(value, str) else value


def utc_iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; lowbit always stores UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def prepare_batch(run_id: int, kernel_id: int, rows: list[ResultRow]):
    now = utc_now()
    cases: dict[str, dict] = {}
    results: list[dict] = []
    failures: dict[tuple[str, str], int] = {}
    for row in rows:
        if row.case_id not in cases:
            cases[row.case_id] = {
                "id": row.case_id,
                "params": json_safe(row.case_params),
                "family": row.family,
                "shape_class": row.shape_class,
                "created_at": now,
            }
        results.append(result_values(run_id, kernel_id, row, now))
        if row.status in FAILING_STATUSES:
            key = (row.case_id, row.failed_property or row.status)
            failures[key] = failures.get(key, 0) + 1
    # Key order: concurrent writers of overlapping cases then lock rows in the same order.
    return kernel_id, [cases[k] for k in sorted(cases)], results, failures, now


def _metric_float(value: Any) -> float | None:
    """A metric for a Float column: numbers (and the store's "inf"/"-inf" strings) as floats, NaN and
    anything that is not a number as NULL (the JSON copy keeps whatever was given)."""
    value = from_json_float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return column_float(value)


def result_values(run_id: int, kernel_id: int, row: ResultRow, now: datetime) -> dict:
    metrics = dict(row.metrics or {})
    values: dict[str, Any] = {
        "run_id": run_id,
        "kernel_id": kernel_id,
        "case_id": row.case_id,
        "phase": row.phase,
        "status": row.status,
        "failed_property": row.failed_property,
        "verdicts": json_safe(row.verdicts or {}),
        "message": row.message or "",
        "recorded_at": now,
    }
    for name in METRIC_COLUMNS:
        values[name] = column_float(metrics.pop(name, None))
    for name in COPIED_METRIC_COLUMNS:
        values[name] = _metric_float(metrics.get(name))
    values["metrics"] = json_safe(metrics)
    latency = dict(row.latency or {})
    # A latency dict without a kind still keeps its numbers (kind "unknown", never compared).
    values["latency_kind"] = (latency.pop("kind", None) or "unknown") if row.latency is not None else None
    for name in LATENCY_COLUMNS:
        values[name] = column_float(latency.get(name))
    values["samples_ms"] = samples_json(latency.get("samples_ms"))
    return values


def result_dict(r: Any) -> dict:
    metrics = {k: from_json_float(v) for k, v in (r["metrics"] or {}).items()}
    for name in METRIC_COLUMNS:
        if r[name] is not None:
            metrics[name] = r[name]
    latency = None
    if r["latency_kind"] is not None:
        latency = {"kind": r["latency_kind"], **{c: r[c] for c in LATENCY_COLUMNS}}
        latency["samples_ms"] = [from_json_float(v) for v in (r["samples_ms"] or [])]
    return {
        "id": r["id"],
        "run_id": r["run_id"],
        "kernel": r["kernel"],
        "kernel_id": r["kernel_id"],
        "source_hash": r["source_hash"],
        "case_id": r["case_id"],
        "params": r["params"],
        "family": r["family"],
        "shape_class": r["shape_class"],
        "phase": r["phase"],
        "status": r["status"],
        "failed_property": r["failed_property"],
        "verdicts": r["verdicts"],
        "metrics": metrics,
        "message": r["message"],
        "latency": latency,
        "recorded_at": utc_iso(r["recorded_at"]),
    }


def run_dict(r: dict) -> dict:
    return {
        "id": r["id"],
        "commit": r["commit"],
        "parents": r["parents"],
        "branch": r["branch"],
        "suite": r["suite"],
        "shard": r["shard"],
        "started_at": utc_iso(r["started_at"]),
        "ended_at": utc_iso(r["ended_at"]),
        "status": r["status"],
        "heartbeat_at": utc_iso(r.get("heartbeat_at")),
        "note": r["note"],
        "lowbit_version": r["lowbit_version"],
        "subject": r.get("subject"),
        "environment_id": r["environment_id"],
        "environment": {**(r["fingerprint"] or {}), "host": r["host"]},
    }
