"""`lowbit ingest`: a real pytest-benchmark JSON file lands in lowbit's tables; bad files exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from harness.cli import cli
from harness.store import open_store
from harness.store.ingest import IngestError, parse_benchmark_json
from tests.harness.postgres import postgres_url_fixture  # noqa: F401

BENCH_FILE = textwrap.dedent(
    """
    import pytest

    @pytest.mark.parametrize("n", [10, 1000])
    def test_sum(benchmark, n):
        benchmark.extra_info["tflops"] = 0.25
        benchmark.extra_info["elements"] = n
        benchmark(sum, range(n))

    @pytest.mark.benchmark(group="noop")
    def test_noop(benchmark):
        benchmark(lambda: None)
    """
)


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    """A file written by pytest-benchmark itself, from a tiny benchmark run in a subprocess."""
    root = tmp_path_factory.mktemp("bench")
    (root / "test_tiny_bench.py").write_text(BENCH_FILE)
    out = root / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(root),
         "--benchmark-json", str(out), "--benchmark-max-time=0.002", "--benchmark-min-rounds=7",
         "--benchmark-warmup=off", str(root / "test_tiny_bench.py")],
        cwd=root, capture_output=True, text=True, timeout=120,
        # Run as a plain pytest: under pytest-xdist the worker's variables would switch benchmarks off.
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_parse_real_file(bench_json):
    fingerprint, benchmarks = parse_benchmark_json(bench_json)
    assert fingerprint["source"] == "pytest-benchmark" and fingerprint["python"]
    assert sorted(b.kernel for b in benchmarks) == [
        "noop",
        "test_tiny_bench.py::test_sum",
        "test_tiny_bench.py::test_sum",
    ]
    raw = {b["fullname"]: b for b in json.loads(bench_json.read_text())["benchmarks"]}
    for bench in benchmarks:
        entry = raw[bench.row.case_params["benchmark"]]
        assert bench.row.phase == "bench" and bench.row.latency["kind"] == "bench"
        assert bench.row.latency["mean_ms"] == pytest.approx(entry["stats"]["mean"] * 1e3)
        samples = bench.row.latency["samples_ms"]
        if entry["stats"].get("data"):
            assert len(samples) == len(entry["stats"]["data"]) >= 7
            assert min(samples) <= bench.row.latency["p20_ms"] <= bench.row.latency["p50_ms"]
            assert bench.row.latency["p50_ms"] <= bench.row.latency["p80_ms"] <= max(samples)
        else:
            assert bench.row.latency["p50_ms"] == pytest.approx(entry["stats"]["median"] * 1e3)
    ids = {b.row.case_id for b in benchmarks}
    assert len(ids) == 3  # the two params of test_sum are distinct cases


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lowbit.db'}"
    return request.getfixturevalue("postgres_url")


def test_ingest_command_records_a_run(bench_json, db_url):
    url = db_url
    result = CliRunner().invoke(
        cli, ["ingest", str(bench_json), "--commit", "ABCDEF1" + "0" * 33, "--db", url, "--branch", "dev"]
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert "ingested 3 benchmark(s)" in result.output
    with open_store(url, create=False) as store:
        [run] = store.runs()
        assert (run["commit"], run["branch"], run["suite"], run["status"]) == (
            "abcdef1" + "0" * 33,
            "dev",
            "bench",
            "complete",
        )
        results = store.results(run["id"])
        assert len(results) == 3
        by_kernel = {r["kernel"]: r for r in results}
        summed = [r for r in results if r["kernel"] == "test_tiny_bench.py::test_sum"]
        assert {r["params"]["params"]["n"] for r in summed} == {10, 1000}
        assert all(r["latency"]["tflops"] == 0.25 for r in summed)
        assert {r["metrics"]["elements"] for r in summed} == {10.0, 1000.0}
        assert by_kernel["noop"]["shape_class"] == "noop"
        assert store.count("kernels") == 2

    # The same file again at another commit: same cases and kernels, a second run.
    again = CliRunner().invoke(
        cli, ["ingest", str(bench_json), "--commit", "abcdef2" + "0" * 33, "--db", url]
    )
    assert again.exit_code == 0
    with open_store(url, create=False) as store:
        assert store.count("runs") == 2 and store.count("cases") == 3 and store.count("kernels") == 2


def test_ingest_records_the_subject_where_git_knows_the_commit(bench_json, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (
        ["init", "-q"],
        ["commit", "-q", "--allow-empty", "-m", "bench: time the int8 path\n\nbody"],
    ):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True
        )
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    url = f"sqlite:///{tmp_path / 'lowbit.db'}"
    known = CliRunner().invoke(cli, ["ingest", str(bench_json), "--commit", head[:8], "--db", url])
    assert known.exit_code == 0, known.output + known.stderr
    unknown = CliRunner().invoke(cli, ["ingest", str(bench_json), "--commit", "f" * 40, "--db", url])
    assert unknown.exit_code == 0, unknown.output + unknown.stderr
    with open_store(url, create=False) as store:
        assert [(r["commit"], r["subject"]) for r in store.runs()] == [
            (head, "bench: time the int8 path"),
            ("f" * 40, None),
        ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("this is not json", "is not JSON"),
        ('{"hello": 1}', "is not a pytest-benchmark JSON file"),
        ('{"machine_info": {}, "benchmarks": []}', "holds no benchmarks"),
        (
            '{"machine_info": {}, "benchmarks": [{"fullname": "t", "stats": {"mean": "fast"}}]}',
            "stats.median",
        ),
        ('{"machine_info": {}, "benchmarks": [{"name": "t"}]}', "has no stats"),
    ],
)
def test_bad_files_exit_2_and_write_nothing(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    url = f"sqlite:///{tmp_path / 'lowbit.db'}"
    result = CliRunner().invoke(cli, ["ingest", str(bad), "--commit", "abcdef1" + "0" * 33, "--db", url])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "lowbit.db").exists()
    with pytest.raises(IngestError):
        parse_benchmark_json(bad)


def test_missing_file_and_bad_commit_exit_2(bench_json, tmp_path):
    url = f"sqlite:///{tmp_path / 'lowbit.db'}"
    missing = CliRunner().invoke(
        cli, ["ingest", str(tmp_path / "nope.json"), "--commit", "abcdef1" + "0" * 33, "--db", url]
    )
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    bad_commit = CliRunner().invoke(cli, ["ingest", str(bench_json), "--commit", "not-a-sha", "--db", url])
    assert bad_commit.exit_code == 2 and "malformed commit" in bad_commit.stderr
    assert not (tmp_path / "lowbit.db").exists()
