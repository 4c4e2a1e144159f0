"""The Filters page's "How each class was learned": a run's checkpoints scored on the images
it held out (`core.inspect.class_curves`), as curves and one checkpoint's confusions."""

from pathlib import Path

import streamlit as st

from core import data, inspect, registry
from core.errors import CnnError
from core.evaluate import row_shares, top_confusions
from core.fileio import read_json
from ui import charts, state
from ui.text import md, md_sentence


def section(run_dir, image_size: int) -> None:
    """Each class's recall at every checkpoint of a run, on the images it held out, and
    one checkpoint's confusions; `image_size` where the run's config names none."""
    st.subheader("How each class was learned")
    try:
        config = read_json(Path(run_dir) / "config.json") or {}
    except (OSError, ValueError):  # gone or cut short: the sentence below says no more
        config = {}
    if why_not := held_out_mismatch(config):
        st.info(md_sentence(why_not))
        return
    if not st.toggle(
        "Score every checkpoint on held-out images",
        key="filters_curves",
        help=f"Loads each checkpoint and classifies up to {inspect.CURVE_IMAGES:,} of the "
        "images the run held out, as many of each class; kept in the run's folder, so only "
        "new checkpoints are scored next time.",
    ):
        return
    size = int(config.get("image_size") or image_size)
    ds = state.require_dataset(image_size=size, fit=registry.config_fit(config))
    x, y = ds.split("val")
    rows = inspect.curve_rows(y)
    x, y = x[rows], y[rows]
    classes = (config.get("model") or {}).get("num_classes", len(ds.class_names))
    if classes != len(ds.class_names):
        st.info(f"This run learned {classes} classes; the folder now has {len(ds.class_names)}.")
        return
    note = f"{len(x):,} images each"
    try:  # a run deleted meanwhile, a checkpoint being written: a sentence
        with state.progress_bar("Scoring checkpoints", note, lazy=True) as progress:
            curves = inspect.class_curves(run_dir, x, y, classes, progress)
    except CnnError as err:
        st.error(f"The run's checkpoints cannot be read: {md_sentence(err)}")
        return
    except OSError as err:  # deleted between the listing and the read
        st.error(f"The run's checkpoints cannot be read: {err.strerror}: {md(err.filename)}")
        return
    st.plotly_chart(charts.class_curves(curves, ds.class_names), key="filters_curves_chart")
    st.caption(md_sentence(inspect.curves_summary(curves, ds.class_names)))
    confusions_at(curves, ds.class_names)


def confusions_at(curves: dict, names: list[str]) -> None:
    """One checkpoint's confusion matrix on the same images, row-normalised, and its most
    frequent mistakes."""
    epochs = curves["epochs"]
    if st.session_state.get("filters_curves_epoch") not in epochs:  # another run, say
        st.session_state["filters_curves_epoch"] = epochs[-1]
    epoch = epochs[0]
    if len(epochs) > 1:
        epoch = st.select_slider("Confusions at epoch", epochs, key="filters_curves_epoch")
    cm = curves["confusion"][epochs.index(epoch)]
    shares = row_shares(cm)
    st.plotly_chart(charts.confusion_matrix(shares, names, True), key="filters_curves_cm")
    mistakes = [
        f"{md(names[t])} → {md(names[p])} {n / max(cm[t].sum(), 1):.1%}"
        for t, p, n in top_confusions(cm, 3)
    ]
    st.caption(
        f"Epoch {epoch}: each row is a true class, as shares of its images. Most frequent "
        f"mistakes: {', '.join(mistakes)}."
        if mistakes
        else f"Epoch {epoch}: no mistakes."
    )


def held_out_mismatch(config: dict) -> str | None:
    """Why the sidebar's validation split is not the images a run held out, or None."""
    spec, trained_on = state.dataset_spec(), str(config.get("data", ""))
    if not (spec and state.dataset_ready()) or data.absolute_spec(spec) != data.absolute_spec(
        trained_on
    ):
        return (
            f"This run trained on {trained_on or 'another dataset'}: choose it in the "
            "sidebar to score its checkpoints on the images it held out."
        )
    if data.validation_folder(spec):  # its own validation images: no split chooses them
        return None
    split = (config.get("val_fraction"), config.get("seed"))
    if not all(isinstance(v, int | float) for v in split):
        return "This run's config does not say which images it held out."
    fraction, seed = state.held_out_split()
    if split != (fraction, seed):
        return (
            f"This run held out {split[0]:.0%} of its images (seed {split[1]}); the "
            f"dashboard's validation split ({fraction:.0%}, seed {seed}) would hold images "
            "it trained on."
        )
    return None
