"""The Overview page (registered by dashboard/app.py through st.navigation)."""

from dashboard.views.overview import render

render()
