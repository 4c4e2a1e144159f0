"""CNN Lab: see, train and use a convolutional image classifier. `streamlit run app.py`."""

from pathlib import Path

import streamlit as st

from ui import state

# The favicon is a file beside the app: Streamlit turns it into a data URL, so it shows
# offline (a `:material/...:` icon is fetched from fonts.gstatic.com).
ICON = Path(__file__).parent / "assets" / "icon.svg"
st.set_page_config(page_title="CNN Lab", page_icon=str(ICON), layout="wide")
state.keep_keras_between_runs()

PAGES = {
    "": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Data": [
        st.Page("pages/dataset.py", title="Dataset", icon=":material/grid_view:"),
        st.Page("pages/augment.py", title="Augmentations", icon=":material/auto_fix_high:"),
    ],
    "Model": [
        st.Page("pages/filters.py", title="Filters & feature maps", icon=":material/filter:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    ],
    "Use": [st.Page("pages/classify.py", title="Classify", icon=":material/image_search:")],
}

navigation = st.navigation(PAGES)
state.sidebar()
with state.routed():
    navigation.run()
