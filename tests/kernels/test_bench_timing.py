"""bench/timing.py: rows in pytest-benchmark's JSON form, as `lowbit ingest` reads them."""

from __future__ import annotations

import json

import pytest

from harness.store.ingest import parse_benchmark_json
from tests.scripts import load_script


def test_records_round_trip_through_the_ingest_parser(tmp_path):
    timing = load_script("bench/timing.py")
    env = timing.environment(interpret=True)
    assert env["gpu"] == "CPU (Triton interpreter)" and env["torch"] and env["triton"]
    a = timing.benchmark_record(
        "kv int4", "bench/x.py", {"Nk": 4096, "Nq": 1}, [0.03, 0.01, 0.02], {"rel_l2": 0.1}
    )
    b = timing.benchmark_record("sdpa", "bench/x.py", {"Nk": 4096, "Nq": 1}, [0.04], {}, tag="n4k")
    assert a["name"] == "kv int4[Nk=4096,Nq=1]" and b["fullname"] == "bench/x.py::sdpa[n4k]"
    assert a["stats"]["data"] == [1e-5, 2e-5, 3e-5] and a["stats"]["median"] == 2e-5
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(timing.benchmark_document(env, [a, b], "bench/x.py")))
    machine, benchmarks = parse_benchmark_json(path)
    assert machine["gpu"] == env["gpu"]
    rows = {x.kernel: x.row for x in benchmarks}
    assert set(rows) == {"kv int4", "sdpa"}
    assert rows["kv int4"].latency["p50_ms"] == pytest.approx(0.02)
    assert rows["kv int4"].metrics["rel_l2"] == 0.1 and rows["kv int4"].case_params["params"]["Nk"] == 4096
    assert rows["kv int4"].case_id != rows["sdpa"].case_id


def test_a_record_needs_samples():
    timing = load_script("bench/timing.py")
    with pytest.raises(ValueError, match="at least one sample"):
        timing.benchmark_record("g", "s.py", {}, [], {})
