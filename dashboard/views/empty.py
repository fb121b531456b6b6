"""The page shown when there is no history yet: what to run to fill one."""

from __future__ import annotations

import streamlit as st


def render(message: str) -> None:
    st.title("lowbit dashboard")
    st.info(message)
    st.markdown("Fill a database, then reload this page:")
    st.code(
        "lowbit demo --db sqlite:///demo.db      # a demo history with real regressions (a few minutes)\n"
        "lowbit run                              # this commit, every registered kernel, into ./lowbit.db",
        language="bash",
    )
