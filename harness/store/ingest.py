"""`lowbit ingest`: import a pytest-benchmark JSON file (``pytest --benchmark-json``) into the history.

Mapping onto lowbit's tables, so a team's existing benchmarks show up next to lowbit's own runs:

- one run (suite "bench", status "complete") for the file, at the commit given on the command line
  (`lowbit check` and the other verdicts judge lowbit's own runs only, never these)
  (the CLI expands a short SHA through git first); the run keeps a content hash of the file and the
  commit, so ingesting the same file for the same commit again records nothing new;
- the environment is the file's ``machine_info`` (host, CPU, Python; plus gpu/cuda/torch/triton/driver
  when a ``pytest_benchmark_update_machine_info`` hook added them);
- one kernel per benchmark group (the ``group`` field; without one, the test's fullname without its
  ``[params]`` suffix), source hash "";
- one case per benchmark: its id is a hash of the benchmark's fullname and params, its params are
  ``{"benchmark": fullname, "params": {...}}``, family "bench", shape class the group;
- one result per benchmark: phase "bench", status "pass", latency kind "bench" with p20/p50/p80 computed
  from the raw per-iteration samples when the file has them (``stats.data``), otherwise p50 = median
  only; mean, stddev; tflops from ``extra_info["tflops"]`` if present; other numeric ``extra_info`` go to
  the metrics. Times in the file are seconds, lowbit stores milliseconds.

The whole file is parsed and checked before anything is written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.stats import percentile
from harness.store import ResultRow, StoreError, open_store, validate_commit
from harness.store.history import BENCH_SUITE

SUITE = BENCH_SUITE
_ENV_KEYS = ("gpu", "compute_capability", "driver", "cuda", "torch", "triton")


class IngestError(ValueError):
    """The file is not a usable pytest-benchmark JSON file (the CLI exits 2)."""


@dataclass
class Benchmark:
    kernel: str
    row: ResultRow


@dataclass
class IngestSummary:
    run_id: int
    benchmarks: int
    kernels: list[str]
    already: bool = False  # the same file was ingested for the same commit before: nothing written


def content_hash(data: bytes, commit: str) -> str:
    """What makes two ingests the same: the file's bytes and the commit they are recorded at."""
    return hashlib.sha256(commit.encode() + b"\0" + data).hexdigest()


def _number(stats: dict, key: str, where: str) -> float:
    value = stats.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise IngestError(f"{where}: stats.{key} must be a number, got {value!r}")
    return float(value)


def _benchmark(entry: Any, index: int) -> Benchmark:
    where = f"benchmarks[{index}]"
    if not isinstance(entry, dict):
        raise IngestError(f"{where} must be an object")
    fullname = entry.get("fullname") or entry.get("name")
    if not isinstance(fullname, str) or not fullname:
        raise IngestError(f"{where} has no fullname/name")
    stats = entry.get("stats")
    if not isinstance(stats, dict):
        raise IngestError(f"{where} ({fullname}) has no stats object")
    median = _number(stats, "median", where)
    mean = _number(stats, "mean", where)
    stddev = _number(stats, "stddev", where)
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise IngestError(f"{where} ({fullname}): params must be an object or null")
    group = entry.get("group")
    if group is not None and not isinstance(group, str):
        raise IngestError(f"{where} ({fullname}): group must be a string or null")
    kernel = group or fullname.split("[", 1)[0]

    latency: dict[str, Any] = {
        "kind": "bench",
        "p50_ms": median * 1e3,
        "mean_ms": mean * 1e3,
        "stddev_ms": stddev * 1e3,
        "samples_ms": [],
    }
    data = stats.get("data")
    if data is not None:
        if not isinstance(data, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in data
        ):
            raise IngestError(f"{where} ({fullname}): stats.data must be a list of numbers")
        samples = [float(x) * 1e3 for x in data]
        if samples:
            latency.update(
                p20_ms=percentile(samples, 20),
                p50_ms=percentile(samples, 50),
                p80_ms=percentile(samples, 80),
                samples_ms=samples,
            )
    extra = entry.get("extra_info") or {}
    if not isinstance(extra, dict):
        raise IngestError(f"{where} ({fullname}): extra_info must be an object")
    tflops = extra.get("tflops")
    latency["tflops"] = (
        float(tflops) if isinstance(tflops, (int, float)) and not isinstance(tflops, bool) else None
    )
    metrics = {
        str(k): float(v)
        for k, v in extra.items()
        if k != "tflops" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    for key in ("min", "max", "rounds", "iterations", "ops"):
        value = stats.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[f"bench_{key}"] = float(value)

    case_params = {"benchmark": fullname, "params": params}
    canonical = json.dumps(case_params, sort_keys=True, separators=(",", ":"), default=str)
    row = ResultRow(
        case_id=hashlib.sha256(canonical.encode()).hexdigest()[:16],
        case_params=json.loads(canonical),
        family="bench",
        shape_class=(group or "")[:128],
        phase="bench",
        status="pass",
        failed_property=None,
        verdicts={},
        metrics=metrics,
        message="",
        latency=latency,
    )
    return Benchmark(kernel=kernel[:255], row=row)


def parse_benchmark_json(path: Path) -> tuple[dict, list[Benchmark]]:
    """(environment fingerprint, benchmarks) of a pytest-benchmark JSON file; IngestError if unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IngestError(f"cannot read {path}: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(
            f"{path} is not JSON ({exc.msg} at line {exc.lineno}): expected `pytest --benchmark-json` output"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list) or "machine_info" not in doc:
        raise IngestError(
            f"{path} is not a pytest-benchmark JSON file: expected an object with 'machine_info' and a "
            "'benchmarks' list (from `pytest --benchmark-json FILE`)"
        )
    if not doc["benchmarks"]:
        raise IngestError(f"{path} holds no benchmarks")
    benchmarks = [_benchmark(entry, i) for i, entry in enumerate(doc["benchmarks"])]
    return _fingerprint(doc), benchmarks


def _fingerprint(doc: dict) -> dict:
    info = doc.get("machine_info") if isinstance(doc.get("machine_info"), dict) else {}
    cpu = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    fingerprint = {
        "source": "pytest-benchmark",
        "host": info.get("node"),
        "cpu": cpu.get("brand_raw") or info.get("processor") or info.get("machine"),
        "python": info.get("python_version"),
        "python_implementation": info.get("python_implementation"),
        "system": info.get("system"),
        "release": info.get("release"),
        "machine": info.get("machine"),
    }
    for key in _ENV_KEYS:
        if info.get(key) is not None:
            fingerprint[key] = info[key]
    return {k: v for k, v in fingerprint.items() if v not in (None, "")}


def ingest(
    path: Path,
    *,
    url: str,
    commit: str,
    branch: str | None = None,
    lowbit_version: str = "",
    subject: str | None = None,
) -> IngestSummary:
    """Record the benchmarks of ``path`` as one run at ``commit`` (whose subject line is ``subject``, where
    the caller's git knows it).

    IngestError for a bad file, StoreError for a bad commit or database. Everything is validated
    before the first write; the results go in in one transaction.
    """
    commit = validate_commit(commit)
    fingerprint, benchmarks = parse_benchmark_json(path)
    digest = content_hash(Path(path).read_bytes(), commit)
    by_kernel: dict[str, list[ResultRow]] = {}
    for bench in benchmarks:
        by_kernel.setdefault(bench.kernel, []).append(bench.row)

    def summary(run_id: int, already: bool) -> IngestSummary:
        return IngestSummary(run_id, len(benchmarks), sorted(by_kernel), already=already)

    with open_store(url) as store:
        earlier = store.run_with_content_hash(digest)
        if earlier is not None:
            return summary(earlier["id"], True)
        try:
            run_id = store.start_run(
                commit=commit,
                parents=[],
                branch=branch,
                suite=SUITE,
                shard=None,
                environment=fingerprint,
                lowbit_version=lowbit_version,
                content_hash=digest,
                subject=subject,
            )
        except StoreError:
            # A concurrent ingest of the same file took the hash first (unique): that run is this one.
            earlier = store.run_with_content_hash(digest)
            if earlier is not None:
                return summary(earlier["id"], True)
            raise
        try:
            store.record_batches(run_id, [(store.kernel_id(k, ""), rows) for k, rows in by_kernel.items()])
        except (StoreError, ValueError) as exc:
            # The hash is freed, so the same file can be ingested again once the cause is fixed.
            store.finish_run(
                run_id, "crashed", note=f"ingest of {Path(path).name} failed: {exc}", keep_content_hash=False
            )
            raise
        store.finish_run(run_id, "complete", note=f"ingested from {Path(path).name}")
    return summary(run_id, False)
