"""Verdicts on histories written through the store API: GPU latency, trades, environments, shards,
git ancestry, change points and bisect."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.store import history as hist
from harness.store import open_store
from harness.verdicts import (
    Thresholds,
    bisect,
    change_points,
    change_points_of,
    compare,
    stored_change_points,
)
from tests.verdicts.synthetic import GPU_ENV, cid, record

A, B, C, D, E = (c * 40 for c in "abcde")


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'h.db'}"


@pytest.fixture
def store(db):
    s = open_store(db)
    yield s
    s.close()


def by_case(comparison):
    return {e.case_id: e for e in comparison.entries}


def test_gpu_latency_regression_is_flagged_with_ratio_and_p_value(store):
    record(store, A)
    record(store, B, [A])  # A/A
    record(store, C, [B], latencies={1: 1.10})  # case 1 is 10% slower
    aa = compare(store, B)
    assert aa.status == "clean" and aa.exit_code == 0 and aa.latency_compared
    assert all(e.latency.direction == "same" for e in aa.entries)
    c = compare(store, C)
    assert c.exit_code == 1
    entries = by_case(c)
    slow = entries[cid(1)]
    assert slow.kind == "latency" and slow.latency.direction == "slower"
    assert slow.latency.ratio == pytest.approx(1.10, abs=0.03) and slow.latency.p_value < 0.002
    assert {e.kind for k, e in entries.items() if k != cid(1)} == {"unchanged"}


def test_trade_is_called_out(store):
    record(store, A)
    record(store, B, [A], latencies={0: 0.7}, errors={0: 2e-3})  # faster, less precise
    e = by_case(compare(store, B))[cid(0)]
    assert e.kind == "trade" and e.regression
    assert e.latency.direction == "faster" and e.precision.direction == "worse"


def test_another_environment_names_the_field_and_is_not_comparable(store):
    record(store, A)
    record(store, B, [A], env={**GPU_ENV, "torch": "2.12.0", "host": "runner-9"}, latency_ms=2.0)
    c = compare(store, B)
    assert c.exit_code == 3 and c.status == "not-comparable"
    assert [ch["field"] for ch in c.baseline.environment_changes] == ["torch"]
    assert any("torch '2.11.0' -> '2.12.0'" in p for p in c.problems)
    assert not c.latency_compared and all(e.latency is None for e in c.entries)
    # The host alone never splits an environment.
    record(store, C, [B], env={**GPU_ENV, "torch": "2.12.0", "host": "runner-3"})
    assert compare(store, C).exit_code == 0
    # A failure is a failure in any environment.
    record(store, D, [A], env={**GPU_ENV, "driver": "580.0"}, failing=(2,))
    c = compare(store, D)
    assert c.exit_code == 1 and [e.case_id for e in c.of_kind("new-failure")] == [cid(2)]


def test_missing_and_unfinished_shards_are_reported(db, store):
    record(store, A)
    record(store, B, [A], shard="1/3", cases=2)
    record(store, B, [A], shard="3/3", cases=2, status="running")
    c = compare(store, B)
    assert c.exit_code == 3
    assert c.measurement.missing_shards == ["2/3"]
    assert any("shard 2/3" in p for p in c.problems) and any("is running" in p for p in c.problems)
    result = CliRunner().invoke(cli, ["check", "--db", db, "--commit", B, "--wait-shards", "0.2"])
    assert result.exit_code == 3 and "shard 2/3 missing" in result.output
    record(store, B, [A], shard="2/3", cases=4)
    record(store, B, [A], shard="3/3", cases=2)
    c = compare(store, B)
    assert c.measurement.complete and sorted(c.measurement.shards) == ["1/3", "2/3", "3/3"]
    assert c.exit_code == 0


def test_crashed_baseline_is_skipped_for_an_older_finished_one(store):
    record(store, A)
    record(store, B, [A], status="crashed")
    record(store, C, [B])
    c = compare(store, C)
    assert c.baseline.commit == A and "2 commits back" in c.baseline.reason


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_git_ancestry_picks_the_baseline_and_bisect_names_the_unrecorded_range(tmp_path, store):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    shas = []
    for i in range(5):
        (repo / "f").write_text(str(i))
        git(repo, "add", "f")
        git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"c{i}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    # Recorded: c0, c1 and c4 (c2, c3 never measured); the error stepped somewhere after c1.
    record(store, shas[0], [])
    record(store, shas[1], [])
    record(store, shas[4], [], errors={0: 5e-3})
    c = compare(store, shas[4], cwd=repo)
    assert c.baseline.commit == shas[1] and "3 commits back, by git" in c.baseline.reason
    assert c.of_kind("precision")[0].case_id == cid(0)
    result = bisect(store, "k", cid(0), "rel_l2", cwd=repo)
    assert (result.good, result.bad, result.unrecorded_between) == (shas[1], shas[4], 2)
    assert result.git_bisect == f"git bisect start {shas[4]} {shas[1]}"
    # Without git, the recorded parents decide; here none were recorded: still a bisect line.
    assert bisect(store, "k", cid(0), "rel_l2", cwd=tmp_path).git_bisect is not None


def test_change_points_of_a_noisy_latency_series():
    rng = np.random.default_rng(11)
    flat = [
        {"run_id": i, "commit": f"{i:040x}", "value": v} for i, v in enumerate(1.0 + rng.normal(0, 0.02, 40))
    ]
    assert change_points_of(flat, "p50_ms") == []
    values = [*(1.0 + rng.normal(0, 0.02, 20)), *(1.12 + rng.normal(0, 0.02, 20))]
    stepped = [{"run_id": i, "commit": f"{i:040x}", "value": v} for i, v in enumerate(values)]
    (cp,) = change_points_of(stepped, "p50_ms")
    assert cp.index == 20 and cp.direction == "up" and cp.ratio == pytest.approx(1.12, abs=0.03)
    assert cp.commit == f"{20:040x}" and cp.previous_commit == f"{19:040x}"
    # A 3% step is below the 5% threshold: no change point, however clean.
    small = [{"run_id": i, "commit": str(i), "value": 1.0 if i < 20 else 1.03} for i in range(40)]
    assert change_points_of(small, "p50_ms", Thresholds()) == []


def test_change_points_are_stored_and_replaced(store):
    record(store, A)
    record(store, B, [A])
    record(store, C, [B], errors={1: 3e-3}, failing=(2,))
    record(store, D, [C], errors={1: 3e-3})
    found = change_points(store, "k", cid(1), "rel_l2")
    (env_id,) = found
    assert [(p.commit, p.direction) for p in found[env_id]] == [(C, "up")]
    stored = stored_change_points(store, kernel="k", case_id=cid(1))
    assert [(s["commit"], s["metric"], s["previous_commit"]) for s in stored] == [(C, "rel_l2", B)]
    # The failing blip on case 2: up at C, back down at D.
    fails = change_points(store, "k", cid(2), hist.FAILURES)[env_id]
    assert [(p.commit, p.direction) for p in fails] == [(C, "up"), (D, "down")]
    # Re-detecting replaces (no duplicates).
    change_points(store, "k", cid(1), "rel_l2")
    assert len(stored_change_points(store, kernel="k", case_id=cid(1), metric="rel_l2")) == 1


def test_a_commit_measured_on_two_gpus_is_judged_per_environment(store):
    h200 = {**GPU_ENV, "gpu": "NVIDIA H200"}
    record(store, A)
    record(store, A, env=h200)
    record(store, B, [A], latencies={0: 1.3})  # slower on the H100 only
    record(store, B, [A], env=h200)
    h200_run, h100_run = (r for r in store.runs(commit=B)[::-1])
    newest = compare(store, B)
    assert newest.measurement.environment_id == h200_run["environment_id"]
    assert newest.exit_code == 0 and any("also measured in environment" in p for p in newest.problems)
    h100 = compare(store, B, environment_id=h100_run["environment_id"])
    assert h100.exit_code == 1 and [e.case_id for e in h100.of_kind("latency")] == [cid(0)]
    assert h100.baseline.commit == A and not h100.baseline.environment_changes


def test_ingested_benchmarks_never_stand_in_for_a_measurement(store, db, tmp_path):
    # A benchmark file ingested at the commit a `lowbit run` measured (the GPU workflow records decode
    # timings so) is a newer run of that commit, unsharded and in another environment. The verdicts
    # judge lowbit's own runs: the check neither picks the file's run nor names its environment.
    record(store, A, shard="1/2")
    record(store, A, shard="2/2", seed=1)
    record(store, B, [A], shard="1/2", latencies={1: 1.10})
    record(store, B, [A], shard="2/2", seed=1)
    bench = tmp_path / "bench.json"
    stats = {"min": 1e-4, "max": 1e-4, "mean": 1e-4, "stddev": 0.0, "median": 1e-4, "rounds": 1}
    doc = {
        "machine_info": {"gpu": "NVIDIA H200", "torch": "2.11.0"},
        "benchmarks": [{"group": "decode int4", "name": "d", "fullname": "bench/x.py::d", "stats": stats}],
    }
    bench.write_text(json.dumps(doc))
    result = CliRunner().invoke(cli, ["ingest", str(bench), "--commit", B, "--db", db])
    assert result.exit_code == 0, result.output
    assert [r["suite"] for r in store.runs()][-1] == "bench"
    c = compare(store, B)
    assert c.problems == [] and c.latency_compared
    assert c.measurement.run_ids == [r["id"] for r in store.runs() if r["commit"] == B and r["suite"] == "ci"]
    assert by_case(c)[cid(1)].latency.direction == "slower" and c.exit_code == 1
    bench_ids = {r["id"] for r in store.runs() if r["suite"] == hist.BENCH_SUITE}
    assert len(bench_ids) == 1 and len(hist.commit_runs(store)) == 5
    assert not bench_ids & {r["id"] for r in hist.measured_runs(store)}
