"""Commands `lowbit run`, `lowbit db`, `lowbit ingest`, `lowbit export` (to be written)."""

import click


def store_commands() -> list[click.Command]:
    return []
