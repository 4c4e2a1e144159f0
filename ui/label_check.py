"""The Dataset page's search for label errors (`core.label_check`): its launch, its
progress in a process of its own, then the pictures whose class looks wrong."""

from pathlib import Path

import numpy as np
import streamlit as st

from core import datastats, jobs, label_check
from core.data import absolute_spec
from core.errors import CnnError
from core.fileio import read_json
from core.recipes import RECIPES
from core.words import counted
from ui import state
from ui.text import md, md_sentence

SHOWN = 24  # suspects drawn; the CSV holds them all
SIDE = 128  # each suspect's width on the page, in pixels: its caption wraps under it
PRESET = "quick"


def progress(path: str) -> None:
    status = jobs.status(path)
    if status["state"] not in jobs.ACTIVE:
        st.rerun()  # it ended: show what it found
    c = st.columns([4, 1], vertical_alignment="bottom")
    folds, epochs = status.get("folds") or label_check.FOLDS, status.get("epochs")
    fold, epoch = status.get("fold") or 0, status.get("epoch") or 0
    if status["state"] == "starting" or not epochs:
        done, text = 0.0, "starting"
    else:
        done = min(1.0, (fold * epochs + epoch) / (folds * epochs))
        text = f"model {fold + 1} of {folds}, epoch {epoch}/{epochs}"
    c[0].progress(done, text=f"Looking for label errors: {text}")
    c[1].button("Stop", key="dataset_labels_stop", on_click=jobs.stop, args=(path,))


def _readable(result, names: list[str]) -> bool:
    # Written by another version, cut short or edited by hand: a sentence, not a traceback.
    keys = ("split", "index", "file", "given", "likely", "p_given", "p_likely", "sure")
    return (
        isinstance(result, dict)
        and isinstance(result.get("suspects"), list)
        and all(isinstance(r, dict) and all(k in r for k in keys) for r in result["suspects"])
        and all(k in result for k in ("images", "folds", "epochs", "preset", "accuracy"))
        and result.get("class_names") == names
    )


def _still_there(ds, row: dict) -> bool:
    """Whether the dataset still holds the suspect where the search found it."""
    split, index = row["split"], row["index"]
    if split not in ds.splits or not 0 <= index < len(ds.splits[split][1]):
        return False
    files = ds.files.get(split)
    return files is None or str(files[index]) == row["file"]


def section(ds, fit: str, factor: int) -> None:
    """Launches the search for the sidebar's data, shows its progress, then its suspects."""
    st.subheader("Possible label errors")
    latest = jobs.latest_label_check()
    if latest is not None and latest["state"] in jobs.ACTIVE:
        st.fragment(progress, run_every=state.POLL_EVERY)(latest["path"])
        return
    spec = state.dataset_spec()
    images = label_check.images_of(ds)
    recipe = RECIPES[PRESET]
    batch, epochs = label_check.fold_sizes(images, recipe["batch_size"], recipe["epochs"])
    parts = {"train": "training", "val": "validation", "test": "test"}
    held = " and ".join(parts[p] for p in label_check.PARTS if p in ds.splits)
    st.caption(
        f"Trains {label_check.FOLDS} {PRESET} models, each on all but a "
        f"{label_check.FOLDS}th of the {images:,} {held} images for {epochs} epochs (batch "
        f"{batch}), and shows the pictures the model that did not train on them "
        "answers as another class, the likeliest label errors first (those it is sure of, by "
        "Confident Learning's rule, then the least sure of their own class). About 6.5 "
        "minutes for CIFAR-10's 50,000 on 2 cores, under a minute for a few hundred; in a "
        "process of its own, so the other pages stay usable meanwhile. Nothing is moved."
    )
    if latest is not None and latest["state"] != "running":
        _ended(ds, latest, absolute_spec(spec), factor, fit)
    if st.button("Look for label errors", key="dataset_labels_start"):
        # Keras, imported here only: the Dataset page runs without it (tests/e2e/test_pages).
        from core.train import preset_defaults

        config = preset_defaults(PRESET)
        config.data, config.image_size, config.fit = spec, ds.image_size, fit
        # Split as the page splits: a suspect's split and index are the page's.
        config.val_fraction, config.seed = state.held_out_split()
        try:
            jobs.launch_label_check(config)
        except CnnError as err:
            st.error(md_sentence(err))
            return
        st.rerun()


def _ended(ds, latest: dict, spec: str, factor: int, fit: str) -> None:
    """What the newest search found, where it searched the sidebar's data."""
    folder = Path(latest["path"])
    if latest["state"] == "stopped":
        st.caption("The last search for label errors was stopped.")
        return
    if latest["state"] != "completed":
        st.error(md_sentence(latest.get("message") or "The search for label errors failed."))
        with st.expander("The end of its log"):
            st.code(jobs.log_tail(folder) or "(empty)", language=None)
        return
    result = read_json(folder / label_check.RESULT_FILE)
    if isinstance(result, dict) and result.get("data") != spec:
        return  # another dataset's: the button looks in this one
    if not _readable(result, ds.class_names):
        st.warning("The last search's result cannot be read: look again.")
        return
    st.markdown(md_sentence(label_check.describe(result)))
    same_split = result.get("split") == list(state.held_out_split())  # else other indices
    found = [row for row in result["suspects"] if same_split and _still_there(ds, row)]
    if len(found) < len(result["suspects"]) or result["images"] != label_check.images_of(ds):
        st.info("The data has changed since this search: look again for what it holds now.")
    if not found:
        return
    shown = found[:SHOWN]
    pixels = {}
    for split in {row["split"] for row in shown}:
        rows = [row["index"] for row in shown if row["split"] == split]
        for index, image in zip(rows, state.framed(ds, split, np.array(rows), fit), strict=True):
            pixels[split, index] = image
    side = max(SIDE, ds.image_size * factor)  # a caption wider than its picture widened it
    st.image(
        [datastats.enlarge(pixels[row["split"], row["index"]], factor) for row in shown],
        caption=[
            f"filed as {md(row['given'])} ({row['p_given']:.0%}), looks like "
            f"{md(row['likely'])} ({row['p_likely']:.0%}{', sure' if row['sure'] else ''}) · "
            + md(Path(row["file"]).name if row["file"] else f"{row['split']} #{row['index']}")
            for row in shown
        ],
        width=side,
    )
    if len(found) > SHOWN:
        st.caption(f"The {SHOWN} likeliest label errors; the CSV lists all {len(found):,}.")
    # As a sample above: its answer and evidence on Classify, its feature maps on Filters.
    pick = st.selectbox(
        "Open a suspect",
        range(len(shown)),
        format_func=lambda n: (
            f"{ds.image_name(shown[n]['split'], shown[n]['index'])} · looks "
            f"like {shown[n]['likely']}"
        ),
        key="dataset_suspect",
    )
    row = shown[pick]
    where = (ds, row["split"], row["index"])
    left, right = st.columns(2)
    if left.button("Open on Filters page", key="dataset_suspect_filters"):
        state.open_probe(*where, "pages/filters.py", pixels[row["split"], row["index"]])
    if right.button("Open on Classify page", key="dataset_suspect_classify"):
        state.open_probe(*where, "pages/classify.py", pixels[row["split"], row["index"]])
    st.download_button(
        f"Download the {counted(len(found), 'suspect')} (CSV)",
        label_check.as_csv({"suspects": found}),
        file_name="label_suspects.csv",
        mime="text/csv",
        key="dataset_labels_csv",
    )
