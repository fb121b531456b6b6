"""A throwaway PostgreSQL server for the store's tests, started from the installed binaries.

The server runs from a fresh ``initdb`` in a temporary directory, listens on 127.0.0.1 at a free port
(unix socket inside that directory), trusts local connections, and is stopped when the test session
ends. Under root it runs as the ``postgres`` OS user (PostgreSQL refuses to run as root).

Missing binaries: with ``CI`` set the tests FAIL (CI must test PostgreSQL for real); elsewhere they are
skipped with the reason.

Use it from a test module with ``from tests.harness.postgres import postgres_url_fixture  # noqa: F401``
and a ``postgres_url`` argument: each test gets its own fresh database on the shared server.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "lowbit"
_counter = itertools.count()


def find_bindir() -> Path | None:
    """Directory of ``initdb``/``pg_ctl``: $LOWBIT_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin,
    else PATH."""
    candidates = []
    if os.environ.get("LOWBIT_PG_BINDIR"):
        candidates.append(Path(os.environ["LOWBIT_PG_BINDIR"]))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0))
    candidates += [Path(p) for p in reversed(versions)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for cand in candidates:
        if (cand / "initdb").is_file() and (cand / "pg_ctl").is_file():
            return cand
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int
    as_user: list[str]

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [*args]
        if self.as_user == ["su"]:  # no runuser: su takes one shell string
            command = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(args)]
        elif self.as_user:
            command = [*self.as_user, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=self.root)

    def start(self) -> None:
        init = self._run(
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=100"
        )
        start = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        if start.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{log}")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"lowbit_test_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


_server: PostgresServer | None = None


def start_server() -> PostgresServer:
    """The session's server, started on first use (missing binaries: pytest.fail on CI, else skip)."""
    global _server
    if _server is not None:
        return _server
    bindir = find_bindir()
    if bindir is None:
        reason = "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI must test against a real PostgreSQL (install postgresql)")
        pytest.skip(reason)
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL will not run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running the tests as root needs a 'postgres' OS user to run the PostgreSQL server")
        as_user = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else ["su"]
    failures = []
    for _ in range(3):  # the free port may be taken between probing and binding: try another
        root = Path(tempfile.mkdtemp(prefix="lowbit-pg-"))
        if as_user:
            shutil.chown(root, user="postgres", group="postgres")
        server = PostgresServer(bindir=bindir, root=root, port=_free_port(), as_user=as_user)
        try:
            server.start()
        except RuntimeError as exc:
            failures.append(str(exc))
            server.stop()
            continue
        atexit.register(server.stop)
        _server = server
        return server
    raise RuntimeError("could not start PostgreSQL:\n" + "\n".join(failures))


@pytest.fixture(name="postgres_url")
def postgres_url_fixture() -> str:
    """URL (``postgresql+psycopg://...``) of a fresh, empty database on the session's server."""
    server = start_server()
    return server.url(server.create_database())
