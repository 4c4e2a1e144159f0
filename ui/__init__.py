"""Streamlit helpers shared by app.py and the pages: the sidebar and cached loaders."""
