"""Fault injection: eight ``lowbit run`` shards at once on PostgreSQL, planted faulty kernels, runners
killed with SIGKILL, SIGTERM and SIGINT at seeded random moments. Afterwards every corpus case of every
shard is accounted for, no row is duplicated, and every run ended complete, interrupted or abandoned.
A killed shard gets its signal a seeded 0.5-15 s after its run row appears (on a loaded machine the
runner's start-up alone can take longer than a fixed delay).

Slow (minutes on two cores): the nightly job runs it. The quick, deterministic versions of each fault are
in test_reliability.py, test_run.py and test_isolation.py. ``FAULT_SEED`` picks the kill schedule.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.run.corpus import build_corpus, shard_of
from harness.search.device import select_device
from harness.search.targets import DEFAULT_HEAD_DIMS
from harness.store import open_store
from tests.harness.postgres import postgres_url_fixture  # noqa: F401
from tests.pythonpath import repo_env

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
CK = "tests.harness.crashing_kernels"
SHARDS = 8
SUITE = "ci"
COMMIT = "fa17" * 10
FAULT_SEED = int(os.environ.get("LOWBIT_FAULT_SEED", "9"))
KERNELS = {
    "ok": "correct",
    "segv": "crash_on_every_third_length",
    "abrt": "abort_on_second",
    "hang": "hang_on_second",
    "nan": "nan_on_second",
    "exc": "raises_on_second",
}
ACCOUNTED = {"pass", "fail", "unsupported", "error", "crash", "timeout", "skipped"}


def schedule(rng: random.Random) -> dict[int, tuple[signal.Signals | None, float]]:
    """Shard -> (signal or None, seconds after its run row appeared): three left alone, five killed."""
    kinds = [None, None, None, signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGTERM, signal.SIGINT]
    rng.shuffle(kinds)
    return {i + 1: (kind, rng.uniform(0.5, 15.0)) for i, kind in enumerate(kinds)}


def kill_after_start(
    url: str, shard: int, proc: subprocess.Popen, kind: signal.Signals, delay: float, stopped: threading.Event
) -> None:
    """Wait until the shard has written its run row, then ``delay`` seconds, then send ``kind``."""
    with open_store(url, create=False) as store:
        while not stopped.is_set() and proc.poll() is None:
            if any(r["shard"] == f"{shard}/{SHARDS}" for r in store.runs(commit=COMMIT)):
                break
            time.sleep(0.2)
    if stopped.wait(delay) or proc.poll() is not None:
        return
    proc.send_signal(kind)


def test_eight_shards_with_faulty_kernels_and_killed_runners(postgres_url, monkeypatch, tmp_path):
    rng = random.Random(FAULT_SEED)
    plan = schedule(rng)
    env = repo_env()
    base = [sys.executable, "-m", "harness.cli", "run", "--db", postgres_url, "--commit", COMMIT]
    base += ["--suite", SUITE, "--fuzz-examples", "0", "--case-timeout", "3"]
    base += [f"--kernel={alias}={CK}:{fn}" for alias, fn in KERNELS.items()]
    open_store(postgres_url).close()  # the schema exists before the killers start polling for runs
    procs: dict[int, subprocess.Popen] = {}
    killers = []
    stopped = threading.Event()
    for shard in range(1, SHARDS + 1):
        log = open(tmp_path / f"shard{shard}.log", "w")  # noqa: SIM115 (closed with the process)
        procs[shard] = subprocess.Popen(
            [*base, "--shard", f"{shard}/{SHARDS}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        kind, delay = plan[shard]
        if kind is not None:
            args = (postgres_url, shard, procs[shard], kind, delay, stopped)
            killer = threading.Thread(target=kill_after_start, args=args)
            killer.start()
            killers.append(killer)
    codes = {shard: proc.wait(timeout=900) for shard, proc in procs.items()}
    stopped.set()
    for killer in killers:
        killer.join()

    time.sleep(1.5)
    monkeypatch.setenv("LOWBIT_ABANDON_AFTER", "1")  # SIGKILLed runs: their heartbeat stopped
    with open_store(postgres_url, create=False) as store:
        runs = {int(r["shard"].split("/")[0]): r for r in store.runs(commit=COMMIT)}
        assert len(runs) == len(store.runs(commit=COMMIT))  # at most one run per shard
        results = {shard: store.results(run["id"]) for shard, run in runs.items()}
    device = select_device(None)
    corpus = [c.case_id for c in build_corpus(SUITE, device, DEFAULT_HEAD_DIMS, ("float16", "bfloat16"))]

    figures = {"seed": FAULT_SEED, "shards": {}}
    for shard in range(1, SHARDS + 1):
        kind, delay = plan[shard]
        planned = sorted(c for c in corpus if shard_of(c, SHARDS) == shard)
        run = runs.get(shard)
        line = {"signal": kind.name if kind else None, "after_s": round(delay, 1), "exit": codes[shard]}
        figures["shards"][shard] = line
        assert run is not None, f"shard {shard} left no run (exit {codes[shard]})"
        rows = results[shard]
        line["run"] = run["status"]
        line["statuses"] = dict(Counter(r["status"] for r in rows))
        assert run["status"] in ("complete", "interrupted", "crashed", "abandoned")
        assert {r["status"] for r in rows} <= ACCOUNTED
        for alias in KERNELS:
            got = [r["case_id"] for r in rows if r["kernel"] == alias]
            assert len(got) == len(set(got)), f"shard {shard} {alias}: a case recorded twice"
            if run["status"] == "abandoned":
                # SIGKILL loses at most the batch that was not yet written; nothing is invented.
                assert set(got) <= set(planned)
            else:
                assert sorted(got) == planned, f"shard {shard} {alias}: {len(got)} of {len(planned)} cases"
        if kind is None:
            assert run["status"] == "complete" and codes[shard] == 1  # the planted faults fail the run
        elif run["status"] == "abandoned":
            # SIGKILL (or a signal in the instant between the run row and lowbit's handlers).
            assert codes[shard] == -kind
        elif run["status"] == "interrupted":
            assert codes[shard] == 128 + kind
        else:
            # The signal came after the run had finished its cases.
            assert run["status"] == "complete" and codes[shard] in (1, -kind)
    (tmp_path / "figures.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))
