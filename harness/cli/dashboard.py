"""Commands ``lowbit dashboard`` (browse the history in Streamlit) and ``lowbit demo`` (fill a database
with a real demo history)."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import sys
from pathlib import Path

import click

DEMO_DB_NAME = "lowbit-demo.db"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def streamlit_command(host: str, port: int) -> list[str]:
    """The server's command line: ``streamlit run dashboard/app.py`` with the dashboard's modules
    imported before it listens (:mod:`dashboard.serve`)."""
    return [
        sys.executable,
        "-m",
        "dashboard.serve",
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        # Streamlit turns its development mode on when it is imported from outside site-packages (a
        # `pip install --target` directory on PYTHONPATH, a source checkout), and that mode refuses
        # --server.port: the dashboard is never Streamlit's own development.
        "--global.developmentMode",
        "false",
    ]


def dashboard_commands() -> list[click.Command]:
    @click.command("dashboard")
    @click.option(
        "--db", "db", metavar="URL", help="SQLAlchemy URL (default: $LOWBIT_DB_URL, else ./lowbit.db)."
    )
    @click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
    @click.option(
        "--host",
        default="127.0.0.1",
        show_default=True,
        help="Address to listen on; anything but loopback needs --allow-remote.",
    )
    @click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --host (the page has no login).")
    def dashboard(db, port, host, allow_remote) -> None:
        """Browse the recorded history in the browser (Streamlit; opens the database read-only).

        Needs the dashboard extra: pip install 'lowbit[dashboard]'.
        """
        from harness.store import StoreError, redact_url, resolve_url
        from harness.store.dashboard_queries import NoHistory, open_history

        if any(importlib.util.find_spec(m) is None for m in ("streamlit", "altair", "dashboard")):
            click.echo(
                "error: the dashboard needs Streamlit and Altair: pip install 'lowbit[dashboard]'", err=True
            )
            sys.exit(2)
        if not _is_loopback(host) and not allow_remote:
            click.echo(
                f"error: --host {host} is not a loopback address; the dashboard has no login, pass "
                "--allow-remote to serve it beyond this machine",
                err=True,
            )
            sys.exit(2)
        url = resolve_url(db)
        try:
            open_history(url).close()
        except NoHistory as exc:
            click.echo(f"note: {exc}", err=True)
        except StoreError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        click.echo(f"lowbit dashboard: {redact_url(url)} at http://{host}:{port}", err=True)
        env = {**os.environ, "LOWBIT_DASHBOARD_DB": url}
        sys.stdout.flush()
        sys.stderr.flush()
        # Become the server: signals (Ctrl-C, a supervisor's SIGTERM) reach Streamlit itself.
        command = streamlit_command(host, port)
        os.execve(command[0], command, env)

    @click.command("demo")
    @click.option(
        "--db",
        "db",
        metavar="URL",
        default=None,
        help=f"SQLAlchemy URL to fill (default: sqlite:///./{DEMO_DB_NAME}).",
    )
    def demo(db) -> None:
        """Fill a database with a real demo history: five labelled commits of one kernel (a baseline, a
        slower one, a less precise one, a planted bug, the fix), measured by the harness in the CPU
        interpreter next to the fp16 baseline. Takes a few minutes on a CPU.
        """
        from harness.cli.run import RichProgress, _console, summary_table
        from harness.run.demo import STEPS, run_demo
        from harness.run.runner import RunUsageError
        from harness.store import redact_url

        url = db or f"sqlite:///{Path.cwd() / DEMO_DB_NAME}"
        err = _console(stderr=True)
        err.print(f"lowbit demo: {len(STEPS)} commits into {redact_url(url)}", highlight=False)

        def progress_for(step, index):
            err.print(f"[bold]{step.message}[/]", highlight=False)
            return RichProgress(err)

        try:
            outcomes = _run_with_progress(url, progress_for, run_demo)
        except RunUsageError as exc:
            err.print(f"[red]error:[/] {exc}", highlight=False)
            sys.exit(2)
        out = _console(stderr=False)
        for step, outcome in outcomes:
            out.print(f"{step.message}: run {outcome.run_id} {outcome.status}", highlight=False)
        out.print(summary_table(outcomes[-1][1]))
        out.print(f"Now browse it:  lowbit dashboard --db {redact_url(url)}", highlight=False)

    return [dashboard, demo]


def _run_with_progress(url, progress_for, run_demo):
    """Run the demo with one live progress display per step (opened and closed around each run)."""
    live = []

    def opened(step, index):
        if live:
            live.pop().__exit__(None, None, None)
        progress = progress_for(step, index).__enter__()
        live.append(progress)
        return progress

    try:
        return run_demo(url, opened)
    finally:
        while live:
            live.pop().__exit__(None, None, None)
