"""Home: what this is, the active model's card, and a way into every page."""

import streamlit as st

from core import data, registry
from ui import state
from ui.text import md

state.ensure_routed()

st.title("CNN Lab")
st.markdown(
    "See, train and use a convolutional image classifier. Look at the data and at what "
    "augmentation does to it, look inside the network, train with live curves, read an "
    "honest evaluation, and classify your own photos."
)

entry = state.active_model_entry()
if entry is None:
    st.info("No model yet: train one on the Train page.")
else:
    card = entry["card"]
    metrics = card.get("metrics") or {}
    st.subheader("Active model")
    # Each as wide as it is, in a row that wraps: four columns cut "1,973,944" to "1,973,…"
    # at 1024 pixels with the sidebar open.
    row = st.container(horizontal=True, gap="medium")  # "large" left an 80 px gap between rows
    row.metric("Preset", md(card.get("preset", "?")), width="content")  # a card from elsewhere
    row.metric("Parameters", f"{card.get('params', 0):,}", width="content")
    acc = metrics.get("val_accuracy")
    row.metric("Validation accuracy", f"{acc:.1%}" if acc is not None else "–", width="content")
    row.metric("Epochs", card.get("epochs", "–"), width="content")
    st.caption(md(f"{entry['label']} · {registry.provenance(card)}"))
    if card.get("command"):
        st.code(card["command"], language="bash", wrap_lines=True)
    names = data.class_names_of(state.dataset_spec()) if state.dataset_ready() else None
    if names and card.get("class_names") and names != card["class_names"]:
        models = state.available_models()
        st.info(md(registry.classes_differ(card["class_names"], names, models)))

st.subheader("Pages")
links = [
    ("pages/dataset.py", "Dataset", "Samples, class balance, near-duplicates, label errors."),
    ("pages/augment.py", "Augmentations", "What each random change does to an image."),
    (
        "pages/filters.py",
        "Filters & feature maps",
        "Inside the network: filters, maps, Grad-CAM and occlusion, training replayed.",
    ),
    (
        "pages/train.py",
        "Train",
        "Time a run beforehand, find a learning rate, train with live curves, stop, resume.",
    ),
    (
        "pages/evaluate.py",
        "Evaluate",
        "Confusion matrix, per-class scores, why each answer, a report.",
    ),
    ("pages/classify.py", "Classify", "Upload your own photos and see what the model says."),
]
for row in range(0, len(links), 3):  # row by row, so that a row's links line up
    for col, (page, label, text) in zip(st.columns(3), links[row : row + 3], strict=True):
        with col:
            st.page_link(page, label=label)
            st.caption(text)

# Keras and TensorFlow for the next page, imported while the user reads this one.
state.warm_up()
