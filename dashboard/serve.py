"""``python -m dashboard.serve ARGS``: ``streamlit run dashboard/app.py ARGS`` with the dashboard's heavy
modules imported first.

Streamlit imports a page's modules on the first visit; pandas, Altair, SQLAlchemy and Alembic's migration
scripts take seconds to import on a small machine. Importing them before the server starts listening
moves that cost to start-up, so the first visitor's page paints as fast as the queries allow.
"""

from __future__ import annotations

import sys
from pathlib import Path


def preload() -> None:
    import altair  # noqa: F401
    import pandas  # noqa: F401

    import dashboard.charts
    import dashboard.frames  # noqa: F401
    from harness.store import migrate
    from harness.store.dashboard_queries import History  # noqa: F401

    migrate.known_revisions()  # parses the migration scripts once


def main(argv: list[str]) -> None:
    preload()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(Path(__file__).with_name("app.py")), *argv]
    cli.main()


if __name__ == "__main__":
    main(sys.argv[1:])
