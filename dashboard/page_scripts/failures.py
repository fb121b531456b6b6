"""The Failures page (registered by dashboard/app.py through st.navigation)."""

from dashboard.views.failures import render

render()
