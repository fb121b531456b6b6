"""The parent's side of the worker protocol (:mod:`harness.run.worker` describes the messages).

A :class:`WorkerProcess` is one ``python -m harness.run.worker`` child: started in its own session (a
Ctrl-C in the terminal reaches the runner, which decides what happens to the worker), fed its job on
stdin, read line by line from a private pipe by a thread, killed on demand. Rows the parent writes on the
worker's behalf (a crash, a time-out, a case never run) are built here.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from harness.core.timeouts import describe_exit

__all__ = ["IDLE", "WorkerProcess", "crash_row", "describe_exit", "log_tail", "skipped_row", "worker_env"]

# Returned by WorkerProcess.get when no message arrived in time; None means the worker closed its pipe.
IDLE: dict = {"type": "idle"}


def worker_env(device: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a worker: Triton's backend fixed before it imports anything, our import path;
    ``extra`` on top (a slot's CUDA_VISIBLE_DEVICES)."""
    env = {**os.environ, **(extra or {})}
    if device == "cpu":
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)
    # The worker must import exactly what this process validated (kernel specs from the user's tree).
    paths = [p or os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


class WorkerProcess:
    """One worker child running one job; messages come through :meth:`get`."""

    def __init__(
        self,
        job: dict,
        device: str,
        log: IO[str],
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.run.worker", "--fd", str(write_fd)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                cwd=str(cwd) if cwd else None,
                env=worker_env(device, env),
                text=True,
                start_new_session=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.messages: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=read_messages, args=(read_fd, self.messages.put), daemon=True)
        self.reader.start()
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps(job))
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # died at start-up: its exit status tells why

    def get(self, timeout: float) -> dict | None:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return IDLE

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def wait(self) -> int:
        returncode = self.proc.wait()
        self.reader.join(timeout=5)
        return returncode


def read_messages(fd: int, put: Callable[[dict | None], None]) -> None:
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                put(json.loads(line))
            except json.JSONDecodeError:
                put({"type": "garbage", "text": line})
    put(None)


def log_tail(log: Any, limit: int = 2000) -> str:
    log.flush()
    log.seek(0)
    text = log.read()
    return text[-limit:].strip()


def _row(
    case_id: str, params: dict, phase: str, status: str, prop: str | None, message: str, **extra
) -> dict:
    return {
        "case_id": case_id,
        "case_params": params,
        "family": extra.get("family", ""),
        "shape_class": extra.get("shape_class", ""),
        "phase": phase,
        "status": status,
        "failed_property": prop,
        "verdicts": {},
        "metrics": {},
        "message": message,
        "latency": None,
    }


def crash_row(start: dict, message: str, *, timed_out: bool) -> dict:
    """The case in flight when its worker died (``crash``) or was killed for its time-out (``timeout``)."""
    status, prop = ("timeout", "timed_out") if timed_out else ("crash", "crashed")
    return _row(
        start["case_id"],
        start["params"],
        start["phase"],
        status,
        prop,
        message,
        family=start.get("family", ""),
        shape_class=start.get("shape_class", ""),
    )


def skipped_row(case: Any, phase: str, reason: str) -> dict:
    """A planned case that was never measured, and why."""
    return _row(
        case.case_id,
        case.params(),
        phase,
        "skipped",
        None,
        reason,
        family=case.family,
        shape_class=case.shape_class,
    )
