"""`lowbit run` end to end on SQLite: what lands in the store, exit codes, and survival of kernel faults.

Kernels here are the torch "kernels" of tests/harness/crashing_kernels.py (correct on the first case a
worker runs, misbehaving on the second) run with --fuzz-examples 0, so each run costs about a second per
kernel (a worker start-up plus six tiny corpus cases).
"""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.run.corpus import build_corpus, in_shard, parse_shard
from harness.run.gitinfo import BRANCH_ENV_VARS
from harness.search.device import select_device
from harness.search.targets import DEFAULT_HEAD_DIMS
from harness.store import open_store

pytestmark = pytest.mark.e2e

CK = "tests.harness.crashing_kernels"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def invoke(*args: str):
    return CliRunner().invoke(cli, ["run", *args], catch_exceptions=False)


# The device this test session runs kernels on (the CPU interpreter without a GPU).
DEVICE = select_device(None)


def quick_corpus_ids(head_dims=DEFAULT_HEAD_DIMS, shard: str | None = None) -> list[str]:
    # Bare callables claim the loader's default head dims and both dtypes.
    cases = build_corpus("quick", DEVICE, head_dims, ("float16", "bfloat16"))
    where = parse_shard(shard) if shard else None
    return [c.case_id for c in cases if in_shard(c.case_id, where)]


# On a GPU the quick corpus sweeps every head dim a bare callable claims (18 cases where the interpreter
# runs 6), and each crashing kernel starts a worker (a CUDA context) per two cases: the fault tests run
# one shard of it there (4 cases), about as many worker starts as on the CPU.
FAULT_SHARD = None if DEVICE == "cpu" else "3/3"
SHARD_ARGS = () if FAULT_SHARD is None else ("--shard", FAULT_SHARD)


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'history.db'}"


def by_kernel(store, run_id):
    out: dict[str, list[dict]] = {}
    for row in store.results(run_id):
        out.setdefault(row["kernel"], []).append(row)
    return out


def test_faults_are_recorded_against_the_case_in_flight(db):
    """Exception, NaN, segfault, abort, SIGKILL, exit: each recorded, nothing before it lost, run goes on."""
    kernels = {
        "ok": "correct",
        "exc": "raises_on_second",
        "nan": "nan_on_second",
        "segv": "segfault_on_second",
        "abrt": "abort_on_second",
        "kill": "sigkill_on_second",
        "exit": "exit_on_second",
    }
    args = [f"--kernel={alias}={CK}:{fn}" for alias, fn in kernels.items()]
    result = invoke(
        "--db", db, "--commit", COMMIT, "--branch", "main", "--fuzz-examples", "0", *SHARD_ARGS, *args
    )  # fmt: skip
    assert result.exit_code == 1, result.output

    store = open_store(db, create=False)
    (run,) = store.runs()
    assert run["status"] == "complete"  # every case accounted for; the failures are in the results
    assert (run["commit"], run["branch"], run["suite"]) == (COMMIT, "main", "quick")
    for alias in ("segv", "abrt", "kill", "exit"):
        assert alias in run["note"]
    rows = by_kernel(store, run["id"])
    ids = quick_corpus_ids(shard=FAULT_SHARD)
    second = ids[1]

    assert [r["case_id"] for r in rows["ok"]] == ids
    assert {r["status"] for r in rows["ok"]} == {"pass"}
    assert all(r["latency"]["kind"] == ("cpu-interpreter" if DEVICE == "cpu" else "cuda") for r in rows["ok"])

    # A Python exception is a property failure; the worker keeps going through the corpus.
    assert [r["case_id"] for r in rows["exc"]] == ids
    assert [r["status"] for r in rows["exc"]] == ["pass", "fail"] + ["pass"] * (len(ids) - 2)
    assert rows["exc"][1]["failed_property"] == "supported_or_raises"
    assert "deliberate failure" in rows["exc"][1]["message"]

    assert [r["status"] for r in rows["nan"]] == ["pass", "fail"] + ["pass"] * (len(ids) - 2)
    assert rows["nan"][1]["failed_property"] == "finite"

    # A dying worker: the case before the fault is kept, the case in flight is a crash, and a new worker
    # goes on with the rest (each worker crashes on its own second case): every case is accounted for.
    expected = ["pass" if i % 2 == 0 else "crash" for i in range(len(ids))]
    for alias, cause in (
        ("segv", "killed by SIGSEGV"),
        ("abrt", "killed by SIGABRT"),
        ("kill", "killed by SIGKILL"),
        ("exit", "exited with status 7"),
    ):
        got = rows[alias]
        assert [r["case_id"] for r in got] == ids, alias
        assert [r["status"] for r in got] == expected, alias
        assert got[1]["failed_property"] == "crashed"
        assert cause in got[1]["message"]
    # faulthandler's traceback from the worker's log is quoted in the crash record.
    assert "segfault_on_second" in rows["segv"][1]["message"]

    cx = {(r["kernel"], r["case_id"], r["property"]) for r in store.counterexample_records()}
    crashed = {ids[i] for i in range(1, len(ids), 2)}
    assert cx == {
        ("exc", second, "supported_or_raises"),
        ("nan", second, "finite"),
        *{(alias, case, "crashed") for alias in ("segv", "abrt", "kill", "exit") for case in crashed},
    }
    assert "SIGSEGV" in result.output  # the summary table and notes reach the user
    assert "timeout" in result.output and "skipped" in result.output


def test_counterexamples_are_replayed_first_on_the_next_run(db):
    ref = f"--kernel=exc={CK}:raises_on_second"
    assert invoke("--db", db, "--commit", "a" * 40, "--fuzz-examples", "0", ref).exit_code == 1
    second = quick_corpus_ids()[1]
    result = invoke("--db", db, "--commit", "b" * 40, "--fuzz-examples", "0", ref)
    assert result.exit_code == 1

    store = open_store(db, create=False)
    run = store.runs(commit="b" * 40)[0]
    assert run["status"] == "complete"
    rows = store.results(run["id"])
    # The stored counterexample runs first (and, being this worker's first case, passes now); the corpus
    # follows without running it again; the kernel's fault now hits the first corpus case.
    assert [(r["phase"], r["case_id"]) for r in rows[:2]] == [
        ("replay", second),
        ("corpus", quick_corpus_ids()[0]),
    ]
    assert [r["status"] for r in rows[:2]] == ["pass", "fail"]
    assert len(rows) == len(quick_corpus_ids())


def test_wrong_kernel_fails_and_correct_one_completes(db):
    result = invoke("--db", db, "--commit", "c" * 40, "--fuzz-examples", "0", f"--kernel=bad={CK}:wrong")
    assert result.exit_code == 1
    assert "fail" in result.output
    result = invoke("--db", db, "--commit", "d" * 40, "--fuzz-examples", "0", f"--kernel=good={CK}:correct")
    assert result.exit_code == 0, result.output
    store = open_store(db, create=False)
    statuses = {r["commit"]: r["status"] for r in store.runs()}
    # Both runs went through every case: "complete"; the failures are in the results (and the exit code).
    assert statuses == {"c" * 40: "complete", "d" * 40: "complete"}
    bad = store.results(store.runs(commit="c" * 40)[0]["id"])
    assert {r["status"] for r in bad} == {"fail"}
    # 1.5x overflows float16 on the fp16-limit case: there the first failing property is "finite".
    assert {r["failed_property"] for r in bad} <= {"error_budget", "finite"}
    assert sum(r["failed_property"] == "error_budget" for r in bad) >= len(bad) - 1


def test_shards_partition_the_corpus(db):
    seen = []
    for shard in ("1/2", "2/2"):
        result = invoke(
            "--db",
            db,
            "--commit",
            "e" * 40,
            "--shard",
            shard,
            "--fuzz-examples",
            "0",
            f"--kernel=ok={CK}:correct",
        )
        assert result.exit_code == 0, result.output
    store = open_store(db, create=False)
    runs = store.runs()
    assert [r["shard"] for r in runs] == ["1/2", "2/2"]
    for run in runs:
        seen.append({r["case_id"] for r in store.results(run["id"])})
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(quick_corpus_ids())


def test_commit_parents_branch_and_subject_come_from_git(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=repo, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q", "-b", "topic")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "one")
    git("-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "two\n\nbody")
    for var in BRANCH_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("LOWBIT_DB_URL", raising=False)
    monkeypatch.chdir(repo)
    # No --db: the default SQLite file in the working directory.
    result = invoke("--fuzz-examples", "0", f"--kernel=ok={CK}:correct", "--shard", "1/3")
    assert result.exit_code == 0, result.output
    store = open_store(f"sqlite:///{repo / 'lowbit.db'}", create=False)
    (run,) = store.runs()
    assert run["commit"] == git("rev-parse", "HEAD")
    assert run["parents"] == [git("rev-parse", "HEAD~1")]
    assert run["branch"] == "topic"
    assert run["subject"] == "two"
    assert run["status"] == "complete"
    assert run["environment"]["device"] == ("cpu-interpreter" if DEVICE == "cpu" else "cuda")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kernel", "no_such_kernel"], "unknown kernel 'no_such_kernel'"),
        (["--kernel", "x=tests.harness.nope:fn"], "cannot import module"),
        (["--commit", "not-a-sha"], "malformed commit"),
        (["--commit", "abc"], "7 to 40"),
        (["--shard", "3/2"], "malformed shard"),
        (["--shard", "0/2"], "malformed shard"),
        (["--shard", "two"], "malformed shard"),
    ],
)
def test_bad_usage_exits_2_and_writes_nothing(tmp_path, args, message):
    path = tmp_path / "h.db"
    full = ["--db", f"sqlite:///{path}", "--fuzz-examples", "0", *args]
    if "--commit" not in args:
        full += ["--commit", COMMIT]
    if "--kernel" not in args:
        full += [f"--kernel=ok={CK}:correct"]
    result = invoke(*full)
    assert result.exit_code == 2
    assert message in result.output
    assert not path.exists()


def test_outside_git_without_commit_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("--db", f"sqlite:///{tmp_path / 'h.db'}", f"--kernel=ok={CK}:correct")
    assert result.exit_code == 2
    assert "not inside a git repository" in result.output


def test_database_errors_exit_2_without_the_password(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    result = invoke("--db", f"sqlite:///{corrupt}", "--commit", COMMIT, f"--kernel=ok={CK}:correct")
    assert result.exit_code == 2
    assert "error" in result.output
    unreachable = "postgresql+psycopg://lowbit:hunter2secret@127.0.0.1:1/lowbit"
    result = invoke("--db", unreachable, "--commit", COMMIT, f"--kernel=ok={CK}:correct")
    assert result.exit_code == 2
    assert "hunter2secret" not in result.output
    assert "127.0.0.1" in result.output


def test_hung_worker_is_killed_and_the_kernel_goes_on(db, monkeypatch):
    from harness.core import timeouts
    from harness.run.runner import RunConfig, execute, prepare

    # The hang is in a case's first kernel call, which on a GPU gets a compile grace (minutes) on top of
    # the time-out; these torch kernels compile nothing, so the grace is dropped and the time-out alone
    # kills them. On the GPU a case's time also covers starting CUDA in a fresh worker: 10 s, not 3.
    monkeypatch.setitem(timeouts.COMPILE_GRACE_S, "cuda", 0.0)
    limit_s = 3 if DEVICE == "cpu" else 10
    config = RunConfig(
        db=db,
        commit=COMMIT,
        kernels=(f"hang={CK}:hang_on_second",),
        fuzz_examples=0,
        case_timeout_s=limit_s,
        shard=FAULT_SHARD,
    )
    outcome = execute(prepare(config))
    assert outcome.status == "complete"
    assert outcome.exit_code == 1
    rows = open_store(db, create=False).results(outcome.run_id)
    ids = quick_corpus_ids(shard=FAULT_SHARD)
    assert [r["case_id"] for r in rows] == ids
    assert [r["status"] for r in rows] == ["pass" if i % 2 == 0 else "timeout" for i in range(len(ids))]
    assert rows[1]["failed_property"] == "timed_out"
    assert f"timed out after {limit_s} s" in rows[1]["message"]
    assert outcome.summaries[0].timed_out == len(ids) // 2


def test_real_triton_kernel_with_fuzzing(db):
    """One registered Triton kernel (in the interpreter without a GPU): corpus and fuzz examples recorded.

    Whether the kernel meets its budgets is tests/kernels' business; here the run must measure every
    case, never crash, and report a status and exit code consistent with what it recorded.
    """
    from kernels import get_spec

    result = invoke("--db", db, "--commit", COMMIT, "--kernel", "fp16", "--fuzz-examples", "2", "--seed", "7")
    store = open_store(db, create=False)
    (run,) = store.runs()
    rows = store.results(run["id"])
    phases = [r["phase"] for r in rows]
    assert phases.count("corpus") == len(quick_corpus_ids(get_spec("fp16").head_dims))
    assert phases.count("fuzz") >= 1
    assert {r["kernel"] for r in rows} == {"fp16"}
    statuses = {r["status"] for r in rows}
    assert statuses <= {"pass", "fail", "unsupported"}
    failed = "fail" in statuses
    assert run["status"] == "complete"
    assert result.exit_code == (1 if failed else 0), result.output
    for r in rows:
        if r["status"] != "unsupported":
            assert r["metrics"]["rel_l2"] >= 0
            assert r["latency"]["kind"] == ("cpu-interpreter" if DEVICE == "cpu" else "cuda")
            assert r["latency"]["p50_ms"] > 0
            assert len(r["latency"]["samples_ms"]) >= 2  # the determinism check calls the kernel twice


def test_fuzzing_that_stops_at_its_first_failure_says_how_much_of_its_budget_ran(db):
    from harness.run.runner import RunConfig, execute, prepare

    config = RunConfig(
        db=db, commit=COMMIT, kernels=(f"wrong={CK}:wrong",), fuzz_examples=20, shard=FAULT_SHARD
    )
    outcome = execute(prepare(config))
    (summary,) = outcome.summaries
    fuzz_rows = [r for r in open_store(db, create=False).results(outcome.run_id) if r["phase"] == "fuzz"]
    assert 0 < len(fuzz_rows) < 20
    assert f"fuzzing stopped at its first failure: {len(fuzz_rows)} of 20 planned example(s) run" in (
        summary.notes
    )
