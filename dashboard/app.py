"""Entry point: ``streamlit run dashboard/app.py`` (``lowbit dashboard`` does it). One ``st.navigation``
per run; each page is a function in :mod:`dashboard.views`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import loaders
from dashboard.views import empty
from harness.store import StoreError
from harness.store.dashboard_queries import NoHistory

# (script under dashboard/page_scripts, title, icon); the first is the default page. The folder is not
# named `pages`: Streamlit serves a `pages` folder beside the main script as pages of its own, and a first
# visit of /cases on a fresh server ran that script bare (no page config, no navigation).
PAGES = (
    ("page_scripts/overview.py", "Overview", ":material/dashboard:"),
    ("page_scripts/trends.py", "Trends", ":material/show_chart:"),
    ("page_scripts/cases.py", "Cases", ":material/grid_on:"),
    ("page_scripts/failures.py", "Failures", ":material/bug_report:"),
    ("page_scripts/compare.py", "Compare", ":material/compare_arrows:"),
)
HERE = Path(__file__).parent


def main() -> None:
    st.set_page_config(page_title="lowbit dashboard", page_icon=":material/speed:", layout="wide")
    try:
        loaders.history(loaders.db_url())
    except NoHistory as exc:
        message = str(exc)
        st.navigation(
            [st.Page(lambda: empty.render(message), title="Getting started", url_path="start")]
        ).run()
        return
    except StoreError as exc:
        st.title("lowbit dashboard")
        st.error(f"The history cannot be read: {exc}")
        return
    pages = [
        st.Page(HERE / script, title=title, icon=icon, default=(i == 0))
        for i, (script, title, icon) in enumerate(PAGES)
    ]
    st.navigation(pages).run()


main()
