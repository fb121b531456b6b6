"""lowbit's Streamlit dashboard: every kernel's error and speed over time, read-only over the store.

``lowbit dashboard`` starts it (``streamlit run dashboard/app.py``). Imports the store and the verdicts,
never kernels, torch or triton: it starts fast and needs no GPU stack.
"""
