"""The Trends page (registered by dashboard/app.py through st.navigation)."""

from dashboard.views.trends import render

render()
