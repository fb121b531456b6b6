"""The worker protocol: every case is announced before it runs, so a dying worker names its case."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness.run.corpus import build_corpus
from harness.run.runner import describe_exit, worker_env

CK = "tests.harness.crashing_kernels"


def run_worker(kernel_ref: str, n_cases: int = 3, fuzz_examples: int = 0):
    cases = build_corpus("quick", "cpu", (64,), ("float16", "bfloat16"))[:n_cases]
    job = {
        "kernel_ref": kernel_ref,
        "device": "cpu",
        "phases": [{"phase": "corpus", "cases": [c.params() for c in cases]}],
        "fuzz": {"examples": fuzz_examples, "seed": 5, "profile": "dev", "tiny": True},
    }
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.run.worker", "--fd", str(write_fd)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=(write_fd,),
        env=worker_env("cpu"),
        text=True,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as stream:
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        messages = [json.loads(line) for line in stream]
    output = proc.stdout.read()
    proc.stdout.close()
    return messages, proc.wait(), output, [c.case_id for c in cases]


@pytest.mark.interpreter
def test_protocol_announces_each_case_then_reports_it():
    messages, rc, _, case_ids = run_worker(f"ok={CK}:correct", fuzz_examples=2)
    assert rc == 0
    assert messages[0] == {"type": "ready", "name": "ok", "source_hash": messages[0]["source_hash"]}
    assert messages[-1] == {"type": "done"}
    body = messages[1:-1]
    corpus = body[: 3 * len(case_ids)]
    # Between announcing a case and its result: the first (possibly compiling) kernel call returned.
    assert [m["type"] for m in corpus] == ["start", "first_call_done", "result"] * len(case_ids)
    corpus = [m for m in corpus if m["type"] != "first_call_done"]
    for start, result in zip(corpus[::2], corpus[1::2], strict=True):
        assert start["case_id"] == result["row"]["case_id"]
        assert result["row"]["status"] == "pass"
        assert result["row"]["phase"] == "corpus"
        assert result["budget"]["max_rel_l2"] > 0
    assert [start["case_id"] for start in corpus[::2]] == case_ids
    fuzz = body[3 * len(case_ids) :]
    fuzz_results = [m for m in fuzz if m["type"] == "result"]
    assert len(fuzz_results) >= 1
    assert all(m["row"]["phase"] == "fuzz" for m in fuzz_results)
    assert fuzz[-1]["type"] == "fuzz_report"
    # Every fuzz result was announced first.
    announced = {m["case_id"] for m in fuzz if m["type"] == "start"}
    assert {m["row"]["case_id"] for m in fuzz_results} <= announced


@pytest.mark.interpreter
def test_segfault_leaves_the_case_in_flight_announced():
    messages, rc, output, case_ids = run_worker(f"seg={CK}:segfault_on_second")
    assert rc == -signal.SIGSEGV
    assert [m["type"] for m in messages] == ["ready", "start", "first_call_done", "result", "start"]
    assert messages[-1]["case_id"] == case_ids[1]
    assert "Fatal Python error" in output  # faulthandler's report, quoted in the crash record


@pytest.mark.interpreter
def test_exception_is_a_failure_and_the_worker_goes_on():
    messages, rc, _, _ = run_worker(f"exc={CK}:raises_on_second")
    assert rc == 0
    results = [m["row"] for m in messages if m["type"] == "result"]
    assert [r["status"] for r in results] == ["pass", "fail", "pass"]
    assert "repro: lowbit fuzz" in results[1]["message"]


@pytest.mark.interpreter
def test_unloadable_kernel_is_reported():
    messages, rc, _, _ = run_worker("x=tests.harness.no_such_module:fn")
    assert rc == 3
    assert messages[-1]["type"] == "error"
    assert messages[-1]["phase"] == "load"
    assert "no_such_module" in messages[-1]["message"]


@pytest.mark.parametrize(
    ("rc", "text"),
    [
        (-11, "killed by SIGSEGV"),
        (-9, "killed by SIGKILL"),
        (-6, "killed by SIGABRT"),
        (7, "exited with status 7"),
    ],
)
def test_describe_exit(rc, text):
    assert text in describe_exit(rc)


def test_worker_env_fixes_triton_backend(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert worker_env("cpu")["TRITON_INTERPRET"] == "1"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert "TRITON_INTERPRET" not in worker_env("cuda")
    # The worker imports what this process imports (the user's kernel modules included).
    paths = worker_env("cpu")["PYTHONPATH"].split(os.pathsep)
    assert [p or os.getcwd() for p in sys.path if (p or os.getcwd()) in paths] == [
        p or os.getcwd() for p in sys.path
    ]


@pytest.mark.interpreter
def test_worker_exits_when_its_parent_dies(tmp_path):
    """A runner killed with SIGKILL must not leave its worker hung in a kernel forever."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import json, os, subprocess, sys\n"
        "from harness.run.corpus import build_corpus\n"
        "cases = build_corpus('quick', 'cpu', (64,), ('float16',))[:3]\n"
        f"job = {{'kernel_ref': 'h={CK}:hang_on_second', 'device': 'cpu', 'fuzz': None,\n"
        "       'phases': [{'phase': 'corpus', 'cases': [c.params() for c in cases]}]}\n"
        "r, w = os.pipe()\n"
        "p = subprocess.Popen([sys.executable, '-m', 'harness.run.worker', '--fd', str(w)],\n"
        "                     stdin=subprocess.PIPE, pass_fds=(w,), text=True, start_new_session=True)\n"
        "p.stdin.write(json.dumps(job)); p.stdin.close()\n"
        "stream = os.fdopen(r)\n"
        "starts = 0\n"
        "for line in stream:\n"
        "    if json.loads(line)['type'] == 'start':\n"
        "        starts += 1\n"
        "    if starts == 2:\n"
        "        break\n"
        "print(p.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=worker_env("cpu"), timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = int(proc.stdout.split()[0])
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")
