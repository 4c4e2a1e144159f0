"""Dataset: your own images, what they look like, how many of each class, pixel statistics,
and what their files were like before they became squares of the model's size."""

from pathlib import Path

import numpy as np
import streamlit as st

from core import data, datastats, filestats, registry, userdata
from core.errors import CnnError
from core.words import counted
from ui import charts, label_check, near_duplicates, state
from ui.text import md, md_sentence

state.ensure_routed()

DISPLAY_PX = 96  # shown size of one sample; pixels are repeated, never blurred
# With many classes (as the charts count them) the samples start with the first few: 100
# classes drew 900 pictures on a 20,000 px page that took the browser 7 s at each visit.
FIRST_SHOWN = 10


def _key(ds) -> tuple:
    # Splits are a pure function of the files (state loads with a fixed fraction and seed),
    # which the key follows.
    return state.dataset_key(), tuple((k, len(v[1])) for k, v in ds.splits.items())


@st.cache_data(show_spinner="Counting classes…", max_entries=4)
def _counts(key, _ds):
    return datastats.class_counts(_ds)


@st.cache_data(show_spinner="Computing pixel statistics…", max_entries=8)
def _pixel_stats(key, split, _ds):
    x, y = _ds.split(split)
    means = datastats.mean_image_per_class(x, y, _ds.num_classes)
    return datastats.channel_histograms(x), np.rint(means).astype(np.uint8)


@st.cache_data(show_spinner=False, max_entries=4)
def _files_stored(key, _ds):
    stored, y = filestats.dataset_files(_ds, grey_pixels=True)
    return (
        filestats.summary(stored, _ds.image_size),
        filestats.class_differences(stored, y, _ds.class_names),
        filestats.class_table(stored, y, _ds.class_names),
        filestats.size_counts(stored),
    )


def _files_tab(ds):
    sentences, differences, table, sizes = _files_stored(_key(ds), ds)
    st.markdown("\n".join(f"- {md_sentence(sentence)}" for sentence in sentences))
    for sentence in differences:
        st.warning(md_sentence(sentence))
    if len(sizes[2]) == 1 and not any(row[k] for row in table for k in filestats.KINDS):
        return  # one size, no greyscale, no transparency: the sentence says all
    if len(sizes[2]) > 1:  # one size is one dot: the sentence says it
        st.plotly_chart(charts.file_sizes(*sizes, ds.image_size), key="dataset_sizes_chart")
    percent = st.column_config.NumberColumn(format="%.0f%%")
    st.dataframe(
        table,
        hide_index=True,
        column_config={"files": st.column_config.NumberColumn(format="localized")}
        | {k: percent for k in filestats.KINDS},
    )
    st.caption("Every file of the folder, in all splits; the table has a row per class.")


def _zip_uploader():
    upload = st.file_uploader(
        "A .zip of class folders",
        type="zip",
        key="dataset_zip",
        max_upload_size=userdata.MAX_ZIP_MB,
        help=f"{userdata.LAYOUT} Up to {userdata.MAX_ZIP_MB} MB.",
    )
    if error := state.take_zip_upload(upload):
        st.error(md_sentence(error))


def _folder_check(path):
    try:
        report = state.folder_report(path)
    except CnnError as err:
        st.error(md_sentence(err))
        st.stop()
    for problem in report.problems:
        st.error(md_sentence(problem))
    if not report.ok:
        state.folder_buttons(path)
    for warning in report.warnings:
        st.warning(md_sentence(warning))
    if not report.class_names:  # nothing was read: the error above says why
        st.stop()
    with st.expander(
        f"Folder check: {report.summary()}", expanded=not report.ok or bool(report.unreadable)
    ):
        st.dataframe(report.class_table(), hide_index=True)
        if report.unreadable:
            st.markdown(f"**{counted(len(report.unreadable), 'unreadable file')}**, left out:")
            rows = [{"file": path, "reason": reason} for path, reason in report.unreadable]
            st.dataframe(rows, hide_index=True)
    if not report.ok:
        st.stop()


st.title("Dataset")
if st.session_state.sidebar_source == "upload":
    st.subheader("Your own images")
    _zip_uploader()
else:
    with st.expander("Use your own images (.zip)"):
        _zip_uploader()
spec = state.dataset_spec()
if spec != "cifar10" and userdata.is_image_folder(spec):
    _folder_check(spec)
ds = state.require_dataset()
counts = _counts(_key(ds), ds)
factor = max(1, DISPLAY_PX // ds.image_size)

st.caption(f"Source: {md(ds.source)} · {ds.image_size}x{ds.image_size} pixels")
# Of many classes the first few: the picker below and the Class distribution tab name all.
st.write("**Classes:** " + md(registry.class_list(ds.class_names)))
columns = st.columns(len(ds.splits) + 1)
for column, (name, (_, y)) in zip(columns, ds.splits.items(), strict=False):
    column.metric(f"{name} images", f"{len(y):,}")
columns[-1].metric("Skipped files", len(ds.skipped))  # listed by the folder check above
fraction, seed = state.held_out_split()
chosen = (
    "as the run chosen on the Evaluate page did"
    if state.chosen_split()
    else "as the Train form does by default"
)
if ds.val_folder:
    st.caption(
        f"Validation images: the folder's own {md(ds.val_folder)}/"
        + ("" if "val" in ds.splits else ", which holds no readable image")
        + "; the Evaluate page scores models on them."
    )
elif "val" in ds.splits:
    st.caption(
        f"Validation images: {fraction * 100:g}% of each class's, held out with seed {seed} "
        f"{chosen}; the Evaluate page scores models on them."
    )
elif fraction > 0:
    st.caption(
        f"No validation images: {fraction * 100:g}% of a class holds out none below "
        f"{data.fewest_to_hold_out(fraction)} images, and no class here has that many."
    )

st.header("Samples")
if st.session_state.get("dataset_classes_of") != ds.class_names:
    # Another dataset (say, a new upload): its classes replace the old choice, which
    # Streamlit would otherwise keep, filtered down to nothing.
    st.session_state.pop("dataset_classes", None)
    st.session_state["dataset_classes_of"] = ds.class_names
# Rows that wrap where the page is narrow (columns cut "train" and "Reshuffle" short at
# 1024 pixels with the sidebar open).
row = st.container(horizontal=True, gap="medium", vertical_alignment="bottom")
split = row.selectbox(
    "Split",
    list(ds.splits),
    key="dataset_split",
    width=160 if ds.val_folder else 120,
    format_func=state.split_name(ds),
)
per_class = row.slider("Images per class", 1, 20, 8, key="dataset_per_class", width=200)
seed = row.number_input("Seed", 0, 2**31 - 1, 0, key="dataset_seed", width=140)
row.button(
    "Reshuffle",
    key="dataset_reshuffle",
    help="Draw other images (the seed goes up by one).",
    on_click=lambda: st.session_state.update(dataset_seed=st.session_state.dataset_seed + 1),
)
many = len(ds.class_names) > charts.MANY_CLASSES
default = ds.class_names[:FIRST_SHOWN] if many else ds.class_names
# A row of its own, its chips wrapping: beside the other settings (where Streamlit keeps
# them on one line that scrolls sideways) CIFAR-10's showed "airplane" to "deer" at 1280 px.
chosen = st.multiselect(
    "Classes", ds.class_names, default=default, key="dataset_classes", wrap=True
)

y = ds.split(split)[1]
files = ds.files.get(split)  # an image folder's paths; None for CIFAR-10 archives
fit = state.fit_select(
    row,
    ds,
    "dataset_fit",
    "The Train page asks which way a run reads them: see both here before you choose. The "
    "statistics below count them squashed.",
    width=320,
)


def sample_name(i: int) -> str:
    """A sample by its file's name in an image folder (where to find it), else by index."""
    return f"#{i}" if files is None else Path(str(files[i])).name


labels = [ds.class_names.index(name) for name in chosen]
picked = datastats.balanced_sample(y, per_class, int(seed), classes=labels)
if not len(picked):
    st.info("Choose at least one class to see samples.")
elif many and len(chosen) < len(ds.class_names):
    st.caption(f"{len(chosen)} of the {len(ds.class_names)} classes: choose others above.")
pixels = dict(zip(map(int, picked), state.framed(ds, split, picked, fit), strict=True))
for label in sorted(labels):
    rows = picked[y[picked] == label]
    of = counts[split][label]
    st.markdown(
        f"**{md(ds.class_names[label])}** · "
        + (f"{len(rows)} of {of:,}" if of else f"no {split} images of it in this folder")
    )
    shown = [datastats.enlarge(pixels[i], factor) for i in rows]
    st.image(shown, caption=[md(sample_name(i)) for i in rows])

if len(picked):
    st.subheader("Open a sample")
    options = [int(i) for i in picked]
    index = st.selectbox(
        "Sample",
        options,
        format_func=lambda i: ds.image_name(split, i),
        key="dataset_probe",
    )
    left, right = st.columns(2)
    if left.button("Open on Filters page", key="dataset_open_filters"):
        state.open_probe(ds, split, index, "pages/filters.py", pixels[index])
    if right.button("Open on Classify page", key="dataset_open_classify"):
        state.open_probe(ds, split, index, "pages/classify.py", pixels[index])

st.header("Statistics")
histograms, means = _pixel_stats(_key(ds), split, ds)
tabs = ["Class distribution", "Pixel histograms", "Mean images"] + ["Image files"] * bool(ds.stored)
tab_counts, tab_hist, tab_mean, *tab_files = st.tabs(tabs)
with tab_counts:
    fig = charts.grouped_bars(ds.class_names, counts, xaxis_title="class", yaxis_title="images")
    st.plotly_chart(fig, key="dataset_counts_chart")
    if "train" in counts:
        sizes = datastats.imbalance_summary(counts["train"], ds.class_names)
        if datastats.imbalance(counts["train"]) >= datastats.UNEVEN:
            sizes += (
                " A model learns to favour the common classes: the Train page's \"Balance "
                "the classes\" weighs every class the same, and the Evaluate page's balanced "
                "accuracy counts every class the same."
            )
        st.caption(md_sentence(sizes))
with tab_hist:
    edges = histograms["edges"]
    fig = charts.pixel_histograms(edges, histograms["counts"])
    st.plotly_chart(fig, key="dataset_hist_chart")
    counted, total = histograms["images"], len(ds.split(split)[1])
    share = f"all {total:,}" if counted == total else f"a random {counted:,} of the {total:,}"
    st.caption(f"Pixel values of {share} {split} images, in bins of {edges[1] - edges[0]:g}.")
with tab_mean:
    held = [i for i in range(ds.num_classes) if counts[split][i]]  # a valid/ may lack some
    st.image(
        [datastats.enlarge(means[i], factor) for i in held],
        caption=[md(ds.class_names[i]) for i in held],
    )
    none = datastats.without_images(ds.class_names, counts[split])
    st.caption(
        f"The average of every {split} image of each class, pixel by pixel"
        + (f" (there are none of {', '.join(map(md, none))})." if none else ".")
    )
for tab in tab_files:  # an image folder's: CIFAR-10's arrays are all 32 x 32 colour
    with tab:
        _files_tab(ds)

near_duplicates.dataset_section(ds, factor)
label_check.section(ds, fit, factor)
