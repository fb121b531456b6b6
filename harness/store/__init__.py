"""lowbit's history database: every SQL statement of the project lives in this package.

SQLAlchemy 2 typed models (:mod:`harness.store.models`), Alembic migrations shipped inside the package
(``harness/store/migrations``), and the API the runner, ``lowbit ingest`` and ``lowbit export`` use.
SQLite (default, ``./lowbit.db``) and PostgreSQL (psycopg 3) are supported.
"""

from harness.store import api, engine, migrate, upsert
from harness.store.api import Store, current, open_store, upgrade
from harness.store.engine import ENV_VAR, redact_url, resolve_url
from harness.store.errors import StoreError
from harness.store.migrate import head_revision, known_revisions
from harness.store.rows import ResultRow
from harness.store.validate import validate_commit

__all__ = [
    "ENV_VAR",
    "ResultRow",
    "Store",
    "StoreError",
    "api",
    "current",
    "engine",
    "head_revision",
    "known_revisions",
    "migrate",
    "open_store",
    "redact_url",
    "resolve_url",
    "upgrade",
    "upsert",
    "validate_commit",
]
