"""`lowbit run --devices`: kernels spread over slots (GPUs, or parallel interpreter workers here).

The runs use plain torch kernels of tests/harness/crashing_kernels and slot_kernels: the barrier ones only
get past their first case when a worker of another kernel is alive at the same moment, which proves that
two slots measure at once. The subprocess tests need two usable cores (CI has two); the in-process ones
pretend to have them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from rich.console import Console

from harness.cli import cli
from harness.cli.run import LineProgress, summary_table
from harness.run import devices
from harness.run.corpus import build_corpus, in_shard
from harness.run.devices import Slot, plan_slots, visible_ids
from harness.run.runner import KernelSummary, RunConfig, RunOutcome, RunUsageError, execute, prepare
from harness.search.device import select_device
from harness.search.targets import DEFAULT_HEAD_DIMS
from harness.store import StoreError, open_store
from tests.harness.crashing_kernels import MARKER_ENV
from tests.harness.slot_kernels import BARRIER_ENV
from tests.harness.test_reliability import gone
from tests.pythonpath import repo_env
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
CK = "tests.harness.crashing_kernels"
COMMIT = "d0d0" * 10
DEVICE = select_device(None)
# Two slots on the session's device: interpreter workers here; on a GPU machine, two GPUs.
_GPUS = torch.cuda.device_count() if DEVICE == "cuda" else 0
two_slots = pytest.mark.skipif(
    DEVICE == "cuda" and _GPUS < 2,
    reason=f"two slots on cuda need two GPUs (this machine has {_GPUS}); bench/bench_devices.py runs there",
)


def corpus_ids(shard: tuple[int, int] | None = None) -> list[str]:
    cases = build_corpus("quick", DEVICE, DEFAULT_HEAD_DIMS, ("float16", "bfloat16"))
    return [c.case_id for c in cases if in_shard(c.case_id, shard)]


# -- the device list -----------------------------------------------------------------------------------


def test_device_lists_select_slots():
    assert plan_slots(None, "cpu", 4) == [Slot("cpu")]
    assert [s.label for s in plan_slots("all", "cpu", 3)] == ["cpu:0", "cpu:1", "cpu:2"]
    assert [s.index for s in plan_slots(" 2, 0 ", "cpu", 3)] == [2, 0]
    assert all(s.env == {} for s in plan_slots("all", "cpu", 2))
    # cuda: each slot's workers see only its GPU, named by the id CUDA_VISIBLE_DEVICES gave that index.
    ids = visible_ids("3,GPU-8a1b,1", 2)
    assert ids == ["3", "GPU-8a1b"]
    slots = plan_slots("0,1", "cuda", 2, ids=ids, names=["NVIDIA H200"] * 2)
    assert [(s.label, s.env) for s in slots] == [
        ("cuda:0", {"CUDA_VISIBLE_DEVICES": "3"}),
        ("cuda:1", {"CUDA_VISIBLE_DEVICES": "GPU-8a1b"}),
    ]
    assert visible_ids(None, 2) == ["0", "1"]
    assert [s.env for s in plan_slots("1", "cuda", 2)] == [{"CUDA_VISIBLE_DEVICES": "1"}]


@pytest.mark.parametrize(
    ("spec", "device", "message"),
    [
        ("", "cpu", "expected 'all' or comma-separated device indices such as 0,1; got ''"),
        ("0,,1", "cpu", "got '0,,1'"),
        ("-1", "cpu", "got '-1'"),
        ("one", "cpu", "got 'one'"),
        ("0,1,0", "cpu", "index 0 given more than once in '0,1,0'"),
        ("2", "cpu", "index 2 is beyond the 2 usable CPU core(s) (interpreter worker slots 0-1)"),
        ("0,2", "cuda", "index 2 is beyond the 2 GPU(s) torch sees (indices 0-1)"),
    ],
)
def test_bad_device_lists_name_what_was_expected(spec, device, message):
    with pytest.raises(ValueError, match=r"^--devices: ") as info:
        plan_slots(spec, device, 2, names=["NVIDIA H200"] * 2)
    assert message in str(info.value)


def test_gpus_of_different_models_are_refused_naming_both():
    names = ["NVIDIA H200", "NVIDIA H100 80GB HBM3", "NVIDIA H200"]
    assert len(plan_slots("0,2", "cuda", 3, names=names)) == 2
    with pytest.raises(ValueError, match=r"cuda:0 is NVIDIA H200, cuda:1 is NVIDIA H100 80GB HBM3"):
        plan_slots("all", "cuda", 3, names=names)


@pytest.mark.parametrize("spec", ["x", "0,0", "4096", ""])
def test_bad_devices_exit_2_and_write_nothing(tmp_path, spec):
    db = tmp_path / "h.db"
    args = ["run", "--db", f"sqlite:///{db}", "--commit", COMMIT, "--devices", spec]
    args.append(f"--kernel=ok={CK}:correct")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "lowbit: error: --devices: " in result.stderr
    assert not db.exists()


# -- progress and the summary table ------------------------------------------------------------------


def test_line_progress_reports_each_running_kernel():
    buf = StringIO()
    progress = LineProgress(Console(file=buf, width=200), interval=0.05)
    progress.kernel_started("int8", 3, device="cuda:0")
    progress.kernel_started("fp16", 2, device="cuda:1")
    progress.phase("int8", "corpus")
    progress.phase("fp16", "fuzz")
    progress.case_started("fp16", "abc123")
    progress.case_done("int8", {"status": "fail"})
    time.sleep(0.06)
    progress.tick()
    progress.kernel_finished(KernelSummary("int8", passed=2, failed=1, device="cuda:0"))
    time.sleep(0.06)
    progress.tick()
    lines = buf.getvalue().splitlines()
    assert lines[:2] == [
        "lowbit run: int8: started on cuda:0, 3 case(s) planned",
        "lowbit run: fp16: started on cuda:1, 2 case(s) planned",
    ]
    assert lines[2] == "lowbit run: int8: corpus 1/3 case(s) done, 1 not passing"
    assert lines[3].startswith("lowbit run: fp16: fuzz 0/2 case(s) done, 0 not passing, case abc123 running")
    assert lines[4].startswith("lowbit run: int8: finished, 3 measured, 1 failed")
    # Once int8 finished, only fp16 is still reported.
    assert [line.split(":")[1].strip() for line in lines[5:]] == ["fp16"]


def render(outcome: RunOutcome) -> str:
    buf = StringIO()
    Console(file=buf, width=250).print(summary_table(outcome))
    return buf.getvalue()


def test_summary_table_shows_devices_only_when_spread():
    one = RunOutcome(1, "complete", [KernelSummary("ok", passed=1, device="cpu")], [])
    assert "device" not in render(one)


# -- runs ---------------------------------------------------------------------------------------------


@two_slots
def test_two_slots_measure_at_once_and_a_crash_stays_in_its_slot(tmp_path, monkeypatch):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    monkeypatch.setenv(BARRIER_ENV, str(barrier))
    monkeypatch.setattr(devices, "usable_cores", lambda: 2)
    db = f"sqlite:///{tmp_path / 'h.db'}"
    sk = "tests.harness.slot_kernels"
    kernels = (f"ok={sk}:barrier_correct", f"c3={sk}:barrier_crash_on_every_third_length")
    config = RunConfig(db=db, commit=COMMIT, kernels=kernels, devices="0,1", fuzz_examples=0)
    outcome = execute(prepare(config))
    assert outcome.status == "complete" and outcome.exit_code == 1  # c3's crashes

    # Summaries in the order the kernels were given, each with the slot it ran on.
    assert [s.name for s in outcome.summaries] == ["ok", "c3"]
    assert sorted(s.device for s in outcome.summaries) == [f"{DEVICE}:0", f"{DEVICE}:1"]
    ok, c3 = outcome.summaries
    ids = corpus_ids()
    # The barrier let every worker through: the two kernels' workers were alive at the same time.
    assert (ok.passed, ok.cases, ok.worker_restarts, ok.notes) == (len(ids), len(ids), 0, [])
    rows = open_store(db, create=False).results(outcome.run_id)
    by_kernel = {name: [r for r in rows if r["kernel"] == name] for name in ("ok", "c3")}
    # Every case exactly once per kernel; c3's worker crashing did not touch ok's slot.
    assert [r["case_id"] for r in by_kernel["ok"]] == ids == [r["case_id"] for r in by_kernel["c3"]]
    nk = {c.case_id: c.nk for c in build_corpus("quick", DEVICE, DEFAULT_HEAD_DIMS, ("float16", "bfloat16"))}
    assert [r["status"] for r in by_kernel["c3"]] == ["crash" if nk[i] % 3 == 1 else "pass" for i in ids]
    # A worker is restarted after each crash but one on the last case (the GPU corpus ends with one).
    last_crashed = nk[ids[-1]] % 3 == 1
    assert c3.worker_restarts == c3.crashed - last_crashed > 0
    # Each row says which device measured it.
    for summary in outcome.summaries:
        index = int(summary.device.split(":")[1])
        assert {r["metrics"]["device_index"] for r in by_kernel[summary.name]} == {index}
    # Every worker reached the barrier: ok's one, and c3's first plus each restarted one.
    assert len(os.listdir(barrier)) == 2 + c3.worker_restarts

    table = render(outcome)
    assert "device" in table and f"{DEVICE}:0" in table and f"{DEVICE}:1" in table


@two_slots
def test_a_failing_slot_stops_the_others_and_the_run_crashes(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "usable_cores", lambda: 2)
    db = f"sqlite:///{tmp_path / 'h.db'}"
    kernels = (f"ok={CK}:correct", f"hang={CK}:hang_on_second")
    config = RunConfig(db=db, commit=COMMIT, kernels=kernels, devices="0,1", fuzz_examples=0)
    config.case_timeout_s, config.batch_rows = 600, 1
    plan = prepare(config)
    record, ok_batches, written = plan.store.record_results, [], []
    ok_target = next(k.target for k in plan.kernels if k.target.name == "ok")
    ok_id = plan.store.kernel_id("ok", ok_target.source_hash)

    def failing_second_ok_batch(run_id, kernel_id, rows):
        # One row per batch. ok's slot fails on its second batch, whatever hang's slot has written by
        # then (its first case, or nothing yet): the failing slot is always ok's.
        if kernel_id == ok_id:
            ok_batches.append(len(rows))
            if len(ok_batches) == 2:
                raise StoreError("database is unreachable (simulated)")
        record(run_id, kernel_id, rows)
        written.extend(rows)

    plan.store.record_results = failing_second_ok_batch
    start = time.monotonic()
    with pytest.raises(RunUsageError, match="simulated"):
        execute(plan)
    assert time.monotonic() - start < 120  # the hung worker was stopped, not waited for
    store = open_store(db, create=False)
    (run,) = store.runs()
    assert run["status"] == "crashed" and "database error" in run["note"]
    rows = store.results(run["id"])
    hang = [r for r in rows if r["kernel"] == "hang"]
    # The other slot's kernel stopped: its unfinished cases are recorded as skipped, with the reason.
    assert [r["case_id"] for r in hang] == corpus_ids()
    assert hang[-1]["status"] == "skipped" and {r["status"] for r in hang} <= {"pass", "skipped"}
    assert "error in another slot" in hang[-1]["message"]
    assert len(rows) == len(written)  # every batch written before and after the failure is kept
    assert len([r for r in rows if r["kernel"] == "ok"]) == 1


@two_slots
@pytest.mark.e2e
def test_sigterm_during_a_two_slot_run_ends_interrupted_with_nothing_lost(tmp_path):
    marker = tmp_path / "marker"
    env = {**repo_env(), MARKER_ENV: str(marker)}
    db = f"sqlite:///{tmp_path / 'h.db'}"
    command = [sys.executable, "-m", "harness.cli", "run", "--db", db, "--commit", COMMIT, "--devices", "0,1"]
    command += ["--shard", "1/2", "--fuzz-examples", "0", "--case-timeout", "600"]
    command += [f"--kernel=h1={CK}:hang_on_second_marked", f"--kernel=h2={CK}:hang_on_second_marked"]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # Both kernels' workers hang in their second case at once: one per slot.
    deadline = time.monotonic() + 120
    while not (marker.exists() and len(marker.read_text().split()) == 2):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"both kernels never hung at once: {proc.communicate()[0].decode()}")
        time.sleep(0.1)
    workers = [int(pid) for pid in marker.read_text().split()]
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert all(gone(pid) for pid in workers)

    with open_store(db, create=False) as store:
        (run,) = store.runs()
        assert run["status"] == "interrupted" and run["shard"] == "1/2"
        rows = store.results(run["id"])
    ids = corpus_ids((1, 2))
    for name in ("h1", "h2"):
        mine = [r for r in rows if r["kernel"] == name]
        assert [r["case_id"] for r in mine] == ids
        assert [r["status"] for r in mine] == ["pass"] + ["skipped"] * (len(ids) - 1)
        assert all("interrupted by SIGTERM" in r["message"] for r in mine[1:])


# -- bench/bench_devices.py (the lead runs it on two GPUs) -----------------------------------------------


def bench_module():
    return load_script("bench/bench_devices.py")


def test_bench_compares_cases_and_statuses():
    bench = bench_module()
    single = Counter({("int8", "corpus", "c1", "pass"): 1, ("int8", "corpus", "c2", "pass"): 1})
    assert bench.compare(single, Counter(single)) == []
    spread = Counter({("int8", "corpus", "c1", "pass"): 1, ("int8", "corpus", "c2", "timeout"): 1})
    assert bench.compare(single, spread) == [
        "int8 corpus c2 pass: 1 in the single run, 0 spread",
        "int8 corpus c2 timeout: 0 in the single run, 1 spread",
    ]


@pytest.mark.slow
def test_bench_script_runs_on_the_cpu(tmp_path):
    command = [sys.executable, str(ROOT / "bench" / "bench_devices.py"), "--device", "cpu"]
    command += ["--suite", "quick", "--fuzz-examples", "0", "--commit", COMMIT, "--out", str(tmp_path)]
    command += [f"--kernel=a={CK}:correct", f"--kernel=b={CK}:crash_on_every_third_length"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "bench_devices.json").read_text())
    single, spread = result["runs"]
    assert result["complete"] and result["same_cases"] and result["differences"] == []
    assert result["cases"] == 2 * len(corpus_ids())
    assert {k: v["devices"] for k, v in single["kernels"].items()} == {"a": ["0"], "b": ["0"]}
    assert sorted(v["devices"][0] for v in spread["kernels"].values()) == ["0", "1"]
    assert single["kernels"]["b"]["statuses"] == spread["kernels"]["b"]["statuses"] == {"crash": 3, "pass": 3}
    assert result["speedup"] == pytest.approx(single["wall_s"] / spread["wall_s"])
    assert "Speed-up:" in (tmp_path / "bench_devices.md").read_text()
    assert (tmp_path / "bench_devices_spread.log").read_text().startswith("lowbit run: commit")
