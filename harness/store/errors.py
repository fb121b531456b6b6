"""The one exception the store raises, and the password hygiene every message goes through."""

from __future__ import annotations

import re

# user:password@ in anything that looks like a URL; used on text we did not write ourselves.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")


class StoreError(Exception):
    """A database problem the user has to fix. The message is printable: it never holds a password.

    The command line turns it into a clear message and exit status 2.
    """


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with URL passwords and every string in ``secrets`` replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
