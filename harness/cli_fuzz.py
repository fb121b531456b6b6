"""Commands `lowbit kernels` and `lowbit fuzz` (to be written)."""

import click


def fuzz_commands() -> list[click.Command]:
    return []
