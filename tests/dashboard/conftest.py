"""Databases the dashboard's tests read: one synthetic history per session, written through the store."""

from __future__ import annotations

import pytest

from harness.store import open_store
from tests.dashboard.history import Planted, build_history


@pytest.fixture(scope="session")
def history_db(tmp_path_factory) -> tuple[str, Planted]:
    """A history of 8 commits (4 kernels, 2 environments) with planted regressions; the newest run is
    still "running"."""
    path = tmp_path_factory.mktemp("dashboard") / "history.db"
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        planted = build_history(store, variants=2, running_tail=True)
    return url, planted


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory) -> str:
    """A database with lowbit's schema and no runs."""
    url = f"sqlite:///{tmp_path_factory.mktemp('empty') / 'empty.db'}"
    open_store(url).close()
    return url
