"""The Filters page's "What units look for" tab: pictures made to excite each channel of a
layer, or each class (`core.visualise`)."""

from __future__ import annotations

import streamlit as st

from core import registry, visualise
from core.datastats import enlarge
from ui import state

PER_PAGE = 16  # pictures drawn at a time: a few seconds for the shipped model here
COLUMNS = 8
SILENT = 0.01  # a channel's mean activation on its own picture below which it never woke


def _layer_label(layer: str) -> str:
    return "Classes (the answer)" if layer == visualise.CLASSES else layer


def tab(entry: dict, model, class_names: list[str]) -> None:
    """Draws the tab: a layer and a group of its units, a button that makes their pictures
    (under a progress bar; kept for the session), and the pictures."""
    st.caption(
        "Each picture starts as grey noise and is changed, step by step, to excite one unit "
        f"as strongly as it can ({visualise.STEPS} steps up the gradient of the unit's mean "
        f"activation). Between steps it is shifted by up to {visualise.JITTER} pixels and now "
        "and then blurred a little, so that it shows patterns the unit answers to wherever "
        "they are rather than noise that happens to excite it (Olah, Mordvintsev and "
        "Schubert, Distill 2017). Early layers look for colours and edges, later ones for "
        "textures and parts; a class's picture is what most convinces the model of that "
        "class. Contrast stretched for display."
    )
    layers = visualise.unit_layers(model)
    cols = st.columns([2, 1])
    layer = cols[0].selectbox(
        "Layer",
        layers,
        index=len(layers) - 1,
        format_func=_layer_label,
        key="filters_units_layer",
    )
    count = visualise.unit_count(model, layer)
    starts = list(range(0, count, PER_PAGE))
    if st.session_state.get("filters_units_from") not in starts:
        st.session_state["filters_units_from"] = 0  # another layer has fewer units
    start = cols[1].selectbox(
        "Units",
        starts,
        format_func=lambda s: f"{s} to {min(s + PER_PAGE, count) - 1} of {count}",
        key="filters_units_from",
        disabled=len(starts) == 1,
    )
    units = list(range(start, min(start + PER_PAGE, count)))
    version = registry.model_version(entry["path"])
    key = (entry["path"], version, layer, start)
    memory = st.session_state.setdefault("_filters_units", {})
    if key not in memory:
        if not st.button("Draw what these units look for", key="filters_units_run"):
            return
        doing = f"Drawing {len(units)} pictures"
        with state.progress_bar(doing, "steps up the gradient") as progress:
            memory[key] = visualise.preferred_images(model, layer, units, progress=progress)
        st.rerun()  # drawn without the button that started it
    pictures, activations = memory[key]
    if layer == visualise.CLASSES:
        names = [class_names[u] for u in units]
        captions = [f"{n} · score {a:.1f}" for n, a in zip(names, activations, strict=True)]
    else:
        # GELU dips a little below 0: "-0.00" would read as a sign that means something.
        captions = [
            f"channel {u} · {max(a, 0.0):.2f}" for u, a in zip(units, activations, strict=True)
        ]
    for row in range(0, len(units), COLUMNS):
        for col, picture, caption in zip(
            st.columns(COLUMNS),
            pictures[row : row + COLUMNS],
            captions[row : row + COLUMNS],
            strict=False,  # the last row may be shorter
        ):
            col.image(enlarge(visualise.stretched(picture), 3), caption=caption, width="stretch")
    if layer == visualise.CLASSES:
        st.caption("After each class, its score before the softmax on its picture.")
        return
    silent = int((activations < SILENT).sum())
    st.caption(
        "After each channel, its mean activation on its picture."
        + (
            f" {silent} of these {len(units)} stay below {SILENT} on their own picture: the "
            "climb did not find what wakes them."
            if silent
            else ""
        )
    )
