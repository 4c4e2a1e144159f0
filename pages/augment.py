"""Augmentations: try the random changes training applies, on dataset or uploaded images."""

from dataclasses import fields

import numpy as np
import streamlit as st

from core import datastats
from core.augment import CONTROLS, AugmentConfig, augment_images, describe_shares
from core.data import UPLOAD_TYPES
from core.errors import ImageError
from core.images import FORMAT_NAMES, decode_image
from ui import state
from ui.text import md, md_sentence

state.ensure_routed()

DISPLAY_PX = 96  # shown size of one image; pixels are repeated, never blurred
UPLOAD_SIZE = 32  # uploads are squashed to the input size every preset is built for
# Flip plus 4-pixel pad-and-crop: the classic CIFAR-10 recipe (He et al., 2016).
STARTING_POINT = AugmentConfig(flip=True, crop_pad=4)
SOURCES = {
    "dataset": "Dataset images",
    "probe": "Image sent from the Dataset or Evaluate page",
    "upload": "Upload an image",
}


@st.cache_data(max_entries=16, show_spinner="Augmenting…")
def _variants(images, config: dict, variants: int, seed: int, labels=None, partners=None):
    config = AugmentConfig.from_dict(config)
    return augment_images(images, config, variants, seed, labels, partners)


def _mixing(images, labels, variants: int, seed: int):
    """What MixUp and CutMix mix the shown images with: their labels (an upload's is a
    class of its own, "this image"), training images of the dataset drawn by `seed` with
    their labels, and the class names; no labels where there is no dataset to mix with."""
    if not state.dataset_spec():
        st.info(
            "MixUp and CutMix mix each image with another image of its training batch: "
            "choose a dataset in the sidebar to see them."
        )
        return None, None, None
    fit = st.session_state.get("augment_fit", "squash")
    ds = state.require_dataset(images.shape[1])  # a probe may be at a larger model's size
    y = ds.split("train")[1]
    count = min(len(y), max(32, 2 * len(images) * variants))
    rows = np.sort(np.random.default_rng(seed).choice(len(y), count, False))
    st.caption(
        f"Each copy is mixed with another image of a batch of {len(images) * variants} "
        f"copies and {count} training images drawn at random, as a training batch mixes "
        "its images; under each copy, the shares of its label."
    )
    labels = [len(ds.class_names)] if labels is None else labels
    partners = np.stack(state.framed(ds, "train", rows, fit)), y[rows]
    return labels, partners, [*ds.class_names, "this image"]


def _settings(start: AugmentConfig) -> AugmentConfig:
    values, row = {}, state.settings_row()
    for f in fields(AugmentConfig):
        c, current, key = CONTROLS[f.name], getattr(start, f.name), f"augment_{f.name}"
        if f.type == "bool":
            values[f.name] = row.checkbox(
                c.label, current, key=key, help=c.help, width=state.CONTROL
            )
            continue
        cast = int if f.type == "int" else float
        values[f.name] = row.slider(
            c.label,
            cast(0),
            cast(c.maximum),
            cast(current),
            cast(c.step),
            key=key,
            help=c.help,
            width=state.CONTROL,
        )
    return AugmentConfig(**values)


def _dataset_images():
    ds = state.require_dataset()
    y = ds.split("train")[1]
    count = st.slider(
        "How many images", 1, 8, 3, key="augment_count", help="One class after the other."
    )
    st.button(
        "Other images",
        key="augment_other",
        on_click=lambda: st.session_state.update(
            augment_pick=st.session_state.get("augment_pick", 0) + 1
        ),
    )
    fit = state.fit_select(
        st,
        ds,
        "augment_fit",
        "A run reads them as the Train page's choice says: see what augmentation does to either.",
        width=320,
    )
    picked = datastats.round_robin_sample(y, count, st.session_state.get("augment_pick", 0))
    images = np.stack(state.framed(ds, "train", picked, fit))
    return images, [ds.image_name("train", i) for i in picked], y[picked]


def _uploaded_image():
    upload = st.file_uploader(
        "Image",
        type=UPLOAD_TYPES,
        key="augment_upload",
        max_upload_size=state.PHOTO_UPLOAD_MB,
    )
    if upload is None:
        kinds = f"{', '.join(FORMAT_NAMES[:-1])} or {FORMAT_NAMES[-1]}"
        st.info(f"Upload a {kinds} image to see its variants.")
        st.stop()
    try:
        pixels = decode_image(upload.getvalue(), UPLOAD_SIZE, filename=upload.name)
    except ImageError as err:
        st.error(md_sentence(err))
        st.stop()
    return pixels[None], [upload.name], None


st.title("Augmentations")
st.caption(
    "The variants come from `core.augment.augment_images`, which builds the same Keras "
    "layers that training applies to every batch: what you see is what the model sees. "
    "The same seed gives the same variants."
)
start = AugmentConfig.from_dict(st.session_state.get("train_augment", STARTING_POINT.to_dict()))
with st.container(border=True):
    config = _settings(start)
    left, right, _ = st.columns([2, 1, 3], vertical_alignment="bottom")
    variants = left.slider("Variants per image", 1, 12, 6, key="augment_variants")
    seed = right.number_input("Seed", 0, 2**31 - 1, 0, key="augment_seed")
if st.button("Use these settings for training", key="augment_use", type="primary"):
    st.session_state["train_augment"] = config.to_dict()
    if fit := st.session_state.get("augment_fit"):  # chosen below, for pictures not square
        st.session_state["train_fit_sent"] = fit
    st.switch_page("pages/train.py")
if config.is_identity():
    st.info("Every setting is off: training would see the images unchanged.")

sources = [s for s in SOURCES if s != "probe" or "probe" in st.session_state]
preferred = "probe" if "probe" in sources else "dataset" if state.dataset_spec() else "upload"
source = st.radio(
    "Images",
    sources,
    index=sources.index(preferred),
    format_func=SOURCES.get,
    horizontal=True,
    key="augment_source",
)
if source == "dataset":
    images, captions, labels = _dataset_images()
elif source == "probe":
    probe = st.session_state["probe"]
    images, captions, labels = probe["pixels"][None], [probe["caption"]], [probe["label"]]
else:
    images, captions, labels = _uploaded_image()

partners, names = None, None
if config.mixes():
    labels, partners, names = _mixing(images, labels, variants, int(seed))
out = _variants(images, config.to_dict(), variants, int(seed), labels, partners)
factor = max(1, DISPLAY_PX // images.shape[1])
for k, (original, copies, caption) in enumerate(zip(images, out.images, captions, strict=True)):
    st.markdown(f"**{md(caption)}**")
    below = [f"variant {v + 1}" for v in range(variants)]
    if out.shares is not None:
        below = [describe_shares(shares, names) for shares in out.shares[k]]
    st.image(
        [datastats.enlarge(img, factor) for img in [original, *copies]],
        caption=["original", *below],
        width=DISPLAY_PX,
    )
