"""Command `lowbit run` (to be written)."""

import click


def run_commands() -> list[click.Command]:
    return []
