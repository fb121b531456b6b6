"""One way to say "no" on the command line: ``lowbit: error: <what was expected>`` on stderr.

Every command reports bad usage and unusable input through :func:`fail_usage` (exit status 2), and the
``lowbit`` group prints click's own usage errors with the same prefix.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

PREFIX = "lowbit: error:"


def fail_usage(message: str, code: int = 2) -> NoReturn:
    click.echo(f"{PREFIX} {message}", err=True)
    sys.exit(code)


class LowbitGroup(click.Group):
    """A click group whose usage errors carry lowbit's error prefix instead of click's ``Error:``."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if exc.ctx is not None:
                click.echo(exc.ctx.get_usage(), err=True)
            fail_usage(exc.format_message(), exc.exit_code)
        except click.ClickException as exc:
            fail_usage(exc.format_message(), exc.exit_code)
        except click.Abort:
            fail_usage("aborted", 1)
        sys.exit(code if isinstance(code, int) else 0)
