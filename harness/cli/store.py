"""Commands `lowbit db upgrade|current`, `lowbit ingest`, `lowbit export`.

Every database problem is a :class:`harness.store.StoreError`: printed (never with a password) and exit
status 2, like any unusable input. A short commit SHA is expanded to the full one through the git
repository here (outside one it is refused unless ``--allow-short``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from harness import __version__
from harness.cli.errors import fail_usage
from harness.store import StoreError, current, open_store, redact_url, resolve_url, upgrade
from harness.store.migrate import check_known

DB_HELP = "Database URL (any SQLAlchemy URL). Default: $LOWBIT_DB_URL, else ./lowbit.db (SQLite)."


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


@contextmanager
def _exit_2_on_bad_input() -> Iterator[None]:
    from harness.store.ingest import IngestError

    try:
        yield
    except (StoreError, IngestError, ValueError) as exc:
        fail_usage(str(exc))


ALLOW_SHORT_HELP = "Accept a short SHA that git cannot expand here (recorded/matched as given)."


def _full_commit(commit: str, allow_short: bool) -> str:
    """``commit`` expanded to the full SHA through git (see harness.run.gitinfo.expand_sha)."""
    from harness.run.gitinfo import GitInfoError, expand_sha

    try:
        return expand_sha(commit, allow_short=allow_short)
    except GitInfoError as exc:
        fail_usage(str(exc))


@click.group("db")
def db_group() -> None:
    """Manage the history database's schema."""


@db_group.command("upgrade")
@click.option("--db", "db_url", metavar="URL", help=DB_HELP)
def db_upgrade(db_url: str | None) -> None:
    """Create or migrate the database to this lowbit's schema."""
    url = resolve_url(db_url)
    with _exit_2_on_bad_input():
        before, after = upgrade(url)
    shown = escape(redact_url(url))
    if before == after:
        _out().print(f"{shown}: schema already at revision [bold]{after}[/] (up to date)")
    else:
        _out().print(
            f"{shown}: upgraded schema from revision [bold]{before or 'empty'}[/] to [bold]{after}[/]"
        )


@db_group.command("current")
@click.option("--db", "db_url", metavar="URL", help=DB_HELP)
def db_current(db_url: str | None) -> None:
    """Show the database's schema revision and this lowbit's."""
    url = resolve_url(db_url)
    with _exit_2_on_bad_input():
        revision, head = current(url)
        # A newer schema: `lowbit db upgrade` cannot help, a newer lowbit can.
        check_known(revision)
    state = (
        "up to date" if revision == head else ("empty" if revision is None else "needs `lowbit db upgrade`")
    )
    _out().print(
        f"{escape(redact_url(url))}: revision [bold]{revision or 'none'}[/], lowbit knows {head} ({state})"
    )


@click.command("ingest")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--commit", required=True, help="Commit the benchmarks were measured at (hex SHA).")
@click.option("--branch", default=None, help="Branch name to record.")
@click.option("--db", "db_url", metavar="URL", help=DB_HELP)
@click.option("--allow-short", is_flag=True, help=ALLOW_SHORT_HELP)
def ingest_command(
    file: Path, commit: str, branch: str | None, db_url: str | None, allow_short: bool
) -> None:
    """Import a pytest-benchmark JSON file (pytest --benchmark-json FILE) as one run at COMMIT.

    Ingesting the same file for the same commit again records nothing new.
    """
    from harness.run.gitinfo import commit_subject
    from harness.store.ingest import ingest

    url = resolve_url(db_url)
    with _exit_2_on_bad_input():
        commit = _full_commit(commit, allow_short)
        summary = ingest(
            file,
            url=url,
            commit=commit,
            branch=branch,
            lowbit_version=__version__,
            subject=commit_subject(commit),
        )
    if summary.already:
        _out().print(
            f"{escape(str(file))} was already ingested for commit {commit[:12]} as run "
            f"[bold]{summary.run_id}[/]: nothing new recorded"
        )
        return
    _out().print(
        f"ingested {summary.benchmarks} benchmark(s) of {len(summary.kernels)} group(s) as run "
        f"[bold]{summary.run_id}[/] into {escape(redact_url(url))}"
    )


@click.command("export")
@click.option("--db", "db_url", metavar="URL", help=DB_HELP)
@click.option("--run", "run_id", type=int, default=None, help="Export this run.")
@click.option("--commit", default=None, help="Export every run of this commit (a unique prefix works).")
@click.option(
    "--commits",
    default=None,
    metavar="A..B",
    help="Export runs in recording order from the first run of A through the last run of B (inclusive).",
)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write here instead of stdout.",
)
@click.option("--allow-short", is_flag=True, help=ALLOW_SHORT_HELP)
def export_command(
    db_url: str | None,
    run_id: int | None,
    commit: str | None,
    commits: str | None,
    fmt: str,
    output: Path | None,
    allow_short: bool,
) -> None:
    """Write the results of a run, a commit, or a commit range as CSV or JSON."""
    from harness.store.export import export

    if sum(x is not None for x in (run_id, commit, commits)) != 1:
        fail_usage("give exactly one of --run ID, --commit SHA, --commits A..B")
    if commit is not None:
        commit = _full_commit(commit, allow_short)
    if commits is not None and ".." in commits:
        first, _, last = commits.partition("..")
        commits = f"{_full_commit(first, allow_short)}..{_full_commit(last, allow_short)}"
    url = resolve_url(db_url)
    with _exit_2_on_bad_input(), open_store(url, create=False) as store:
        text, n_runs, n_results = export(store, fmt, run_id=run_id, commit=commit, commits=commits)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail_usage(f"cannot write {output}: {exc}")
    _err().print(f"wrote {n_results} result(s) of {n_runs} run(s) to {escape(str(output))}")


def store_commands() -> list[click.Command]:
    return [db_group, ingest_command, export_command]
