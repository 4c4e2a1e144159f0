"""Placeholder until its page lands."""

import streamlit as st

st.title("classify")
st.info("This page is being built.")
