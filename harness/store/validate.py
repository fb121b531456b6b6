"""Checks on values that identify history (commits), shared by `lowbit run` and `lowbit ingest`."""

from __future__ import annotations

import re

from harness.store.errors import StoreError

_SHA = re.compile(r"[0-9a-f]{7,64}")


def validate_commit(commit: str) -> str:
    """``commit`` lower-cased if it is a hex git object name (7 to 64 digits); StoreError otherwise."""
    value = (commit or "").strip().lower()
    if not _SHA.fullmatch(value):
        raise StoreError(f"malformed commit {commit!r}: expected a hex git SHA (7 to 64 hex digits)")
    return value
