"""The Cases page (registered by dashboard/app.py through st.navigation)."""

from dashboard.views.cases import render

render()
