"""The Compare page (registered by dashboard/app.py through st.navigation)."""

from dashboard.views.compare import render

render()
