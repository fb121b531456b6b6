"""``lowbit``: the one command-line entry point.

Each group of commands lives in its own module; this file only assembles them. Exit codes: 0 success,
1 a property failed (or a regression was found), 2 bad usage or an unusable input, reported as
``lowbit: error: ...`` by every command (:mod:`harness.cli.errors`); ``lowbit check`` adds 3, nothing
comparable was measured.
"""

from __future__ import annotations

import click

from harness import __version__
from harness.cli.check import check_commands
from harness.cli.dashboard import dashboard_commands
from harness.cli.errors import LowbitGroup
from harness.cli.fuzz import fuzz_commands
from harness.cli.run import run_commands
from harness.cli.store import store_commands


@click.group(cls=LowbitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lowbit")
def cli() -> None:
    """Prove low-bit attention kernels correct and fast, commit after commit."""


for _command in (
    *fuzz_commands(),
    *run_commands(),
    *store_commands(),
    *check_commands(),
    *dashboard_commands(),
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="lowbit")
