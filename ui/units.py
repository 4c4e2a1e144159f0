"""The Filters page's "What units look for" tab: pictures made to excite each channel of a
layer, or each class (`core.visualise`)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import registry, visualise
from core.datastats import enlarge
from core.inspect import curve_rows
from ui import state
from ui.text import md

PER_PAGE = 16  # pictures drawn at a time: a few seconds for the shipped model here
COLUMNS = 8
EXAMPLE_POOL = 2000  # validation images searched for each layer's strongest examples
SILENT = 0.01  # a channel's mean activation on its own picture below which it never woke


def _layer_label(layer: str) -> str:
    return "Classes (the answer)" if layer == visualise.CLASSES else layer


def tab(entry: dict, model, class_names: list[str]) -> None:
    """Draws the tab: a layer and a group of its units, a button that makes their pictures
    (under a progress bar; kept on disk until the model changes), and the pictures."""
    st.caption(
        "Each picture starts as grey noise and is changed, step by step, to excite one unit "
        f"as strongly as it can ({visualise.STEPS} steps up the gradient of the unit's mean "
        "response, read before its activation function so that a unit that is off on grey "
        f"can still wake). Between steps it is shifted by up to {visualise.JITTER} pixels and now "
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
    with_examples = _examples_toggle()  # drawn before the button, so it keeps its state
    found = state.kept_or_button(
        st.session_state.setdefault("_filters_units", {}),
        key,
        lambda: visualise.preferred_images_if_kept(entry["path"], layer, units),
        lambda bar: visualise.kept_preferred_images(
            model, entry["path"], layer, units, progress=bar
        ),
        ("Draw what these units look for", "filters_units_run"),
        f"Drawing {len(units)} pictures",
        "steps up the gradient; kept until the model changes",
    )
    if found is None:
        return
    pictures, activations = found
    examples = _examples(entry, model, layer, units) if with_examples else None
    if layer == visualise.CLASSES:
        names = [class_names[u] for u in units]
        captions = [f"{md(n)} · {a:.1f}" for n, a in zip(names, activations, strict=True)]
    else:
        # GELU dips a little below 0: "-0.00" would read as a sign that means something.
        captions = [
            f"channel {u} · {max(a, 0.0):.2f}" for u, a in zip(units, activations, strict=True)
        ]
    for row in range(0, len(units), COLUMNS):
        shown = range(row, min(row + COLUMNS, len(units)))
        for n, col in zip(shown, st.columns(COLUMNS), strict=False):  # a last row is shorter
            col.image(
                enlarge(visualise.stretched(pictures[n]), 3), caption=captions[n], width="stretch"
            )
            if examples:
                col.image(examples[0][n], caption=examples[1][n], width="stretch")
    if layer == visualise.CLASSES:
        st.caption(
            "After each class, its score before the softmax on its picture"
            + (
                "; under it, the images that score highest for it, and how many of them "
                "are of the class most of them are."
                if examples
                else "."
            )
        )
        return
    silent = int((activations < SILENT).sum())
    st.caption(
        "After each channel, its mean activation on its picture"
        + (
            "; under it, the images it answers most strongly, and how many of them are of "
            "the class most of them are."
            if examples
            else "."
        )
        + (
            f" {silent} of these {len(units)} stay below {SILENT} on their own picture: the "
            "climb did not find what wakes them"
            + ("; the images under them did." if examples else ".")
            if silent
            else ""
        )
    )


@st.cache_data(max_entries=16, show_spinner="Finding the images that excite each unit most…")
def _strongest(model_path: str, version: int, data_key: str, split: str, layer: str, _model, _x):
    return visualise.strongest_images(_model, layer, _x)


def mosaic(images) -> np.ndarray:
    """`k` images of one size as a square grid, row by row (black where it is not full)."""
    side = int(np.ceil(np.sqrt(len(images))))
    size = images.shape[1]
    grid = np.zeros((side * size, side * size, 3), np.uint8)
    for n, image in enumerate(images):
        r, c = divmod(n, side)
        grid[r * size : (r + 1) * size, c * size : (c + 1) * size] = image
    return grid


def _examples_toggle() -> bool:
    """The toggle for the dataset examples, or a sentence when no dataset is ready."""
    if not state.dataset_ready():
        st.caption(
            "Choose a dataset in the sidebar to see, beside each picture, the images that "
            "excite the unit most."
        )
        return False
    return st.toggle(
        "Beside each picture, the images that excite the unit most",
        key="filters_units_examples",
        help=f"Up to {EXAMPLE_POOL:,} images of the validation split, as many of each class; "
        f"the {visualise.TOP_IMAGES} where the unit's mean activation (a class's score) is "
        "highest.",
    )


def _examples(entry, model, layer, units):
    """`(mosaics, captions)`: for each unit, the images of the validation split (or the
    dataset's first split) that excite it most, and which class most of them are."""
    size = int(model.input_shape[1])
    dataset = state.require_dataset(image_size=size, fit=registry.trained_fit(entry["card"]))
    split = "val" if "val" in dataset.splits else next(iter(dataset.splits))
    x, y = dataset.split(split)
    rows = curve_rows(y, EXAMPLE_POOL)
    version = registry.model_version(entry["path"])
    index, _ = _strongest(entry["path"], version, state.dataset_key(), split, layer, model, x[rows])
    mosaics, captions = [], []
    for u in units:
        found = rows[index[u]]
        labels = np.bincount(y[found], minlength=len(dataset.class_names))
        top = int(labels.argmax())
        mosaics.append(mosaic(x[found]))
        captions.append(f"{labels[top]} of {len(found)}: {md(dataset.class_names[top])}")
    return mosaics, captions


STRONGEST = 8  # channels of a layer shown for the image on the Feature maps tab


def strongest_for_image(entry: dict, model, layer: str, maps: np.ndarray) -> None:
    """Under an image's feature maps: its `STRONGEST` channels of the layer (by mean
    activation) and, on a button, what each of them looks for.

    Args:
        maps: float `(h, w, C)`, the image's maps at `layer`.
    """
    means = maps.reshape(-1, maps.shape[-1]).mean(axis=0)
    top = [int(c) for c in np.argsort(-means, kind="stable")[:STRONGEST]]
    listed = ", ".join(f"{c} ({means[c]:.2f})" for c in top)
    st.markdown(f"**Strongest channels here**, by mean activation: {listed}.")
    version = registry.model_version(entry["path"])
    key = (entry["path"], version, layer, tuple(top))
    memory = st.session_state.setdefault("_filters_units", {})
    if key not in memory:
        if st.button("Draw what they look for", key="filters_maps_units"):
            with state.progress_bar(f"Drawing {len(top)} pictures", "steps up the gradient") as bar:
                memory[key] = visualise.preferred_images(model, layer, top, progress=bar)
            st.rerun()
        return
    pictures, _ = memory[key]
    for col, c, picture in zip(st.columns(STRONGEST), top, pictures, strict=False):
        col.image(enlarge(visualise.stretched(picture), 3), caption=f"#{c}", width="stretch")
    st.caption(
        "The channels of this layer that this image excites most, each drawn as what it "
        "looks for (as on the What units look for tab)."
    )
