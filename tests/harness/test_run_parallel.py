"""Several `lowbit run` processes at once (the shards of one CI run) writing to one database.

Each shard is a separate `python -m harness.cli run` process, as on separate CI runners; against SQLite
(WAL, busy timeout) and against a real PostgreSQL server. Every corpus case of every kernel must land
exactly once, in the run of the shard it belongs to.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.corpus import build_corpus, shard_of
from harness.search.device import select_device
from harness.search.targets import DEFAULT_HEAD_DIMS
from harness.store import open_store
from tests.harness.postgres import postgres_url_fixture  # noqa: F401
from tests.pythonpath import repo_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CK = "tests.harness.crashing_kernels"
SHARDS = 3


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


def test_concurrent_shards_account_for_every_case(db_url):
    env = repo_env()
    kernels = [f"--kernel=ok={CK}:correct", f"--kernel=exc={CK}:raises_on_second"]
    base = [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--db",
        db_url,
        "--commit",
        "ab" * 20,
        "--fuzz-examples",
        "0",
    ]
    commands = [[*base, "--shard", f"{i}/{SHARDS}", *kernels] for i in range(1, SHARDS + 1)]
    procs = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for command in commands
    ]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    codes = [p.returncode for p in procs]
    # Exit 1 is "a case failed" (exc fails on purpose), but also what Python exits with on an uncaught
    # exception, e.g. an import error: only a runner that reported its run counts.
    assert all(code in (0, 1) for code in codes), outputs
    for out in outputs:
        assert "Traceback" not in out and "lowbit run: commit" in out, out

    store = open_store(db_url, create=False)
    runs = store.runs(commit="ab" * 20)
    assert sorted(r["shard"] for r in runs) == [f"{i}/{SHARDS}" for i in range(1, SHARDS + 1)]
    assert {r["status"] for r in runs} == {"complete"}
    ids = [
        c.case_id
        for c in build_corpus("quick", select_device(None), DEFAULT_HEAD_DIMS, ("float16", "bfloat16"))
    ]
    for run in runs:
        index = int(run["shard"].split("/")[0])
        rows = store.results(run["id"])
        for kernel in ("ok", "exc"):
            got = sorted(r["case_id"] for r in rows if r["kernel"] == kernel)
            assert got == sorted(c for c in ids if shard_of(c, SHARDS) == index)
        # A shard's exit code follows from what it recorded.
        failed = any(r["status"] == "fail" for r in rows)
        assert codes[index - 1] == (1 if failed else 0)
    assert sum(len(store.results(r["id"])) for r in runs) == 2 * len(ids)
