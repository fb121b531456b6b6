"""Streamlit page scripts, one per page (``dashboard/app.py`` registers them through ``st.navigation``);
each only calls its view in :mod:`dashboard.views`."""
