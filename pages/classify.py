"""Classify: upload photos (or take one) and see what the active model says, and why."""

import hashlib

import numpy as np
import streamlit as st

from core import novelty, registry
from core.classify import classify_batch, results_csv, results_table
from core.data import UPLOAD_TYPES
from core.datastats import enlarge, image_grid
from core.errors import CnnError
from core.evaluate import calibration_note
from core.images import FITS, FORMAT_NAMES, dim_outside_centre, open_image
from core.inspect import model_image, signed_overlay, strongest_change
from ui import adversarial, charts, report, state
from ui.report import FRAMING_LABELS
from ui.text import md, md_sentence, probability

state.ensure_routed()

DETAILED = 12  # files shown with pictures; the table lists them all
FRAMING_ADVICE = {  # why the page starts with the framing `registry.framing` suggests
    "crop": "This model learnt from square images, so it starts cropped: CIFAR-10 validation "
    "images made into 16:9 photos cost the shipped model 18-19 points of accuracy squashed, "
    "none cropped with the subject in the middle (with it at one edge, cropping lost 7-9 "
    "points more than squashing; `benchmarks/framing.py`).",
    "squash": "This model starts squashed: most of its training images were not square and "
    "were squashed too, or its card does not say.",
    "trained cropped": "This model starts cropped: its run cut the centre square out of each "
    "of its training pictures.",
}
# The uploaded photo beside what the model sees fills its column (about 170 CSS pixels on a
# wide window, 110 at 1024: a fixed 160 ran over the next picture there); decoded at twice
# this width, it stays sharp on sharp screens.
ORIGINAL_WIDTH = 160
OPTION_WIDTH = 220  # each select of the options row: its longest choice and label, whole

st.title("Classify")
model, entry = state.require_model()
class_names = entry["card"].get("class_names") or [str(i) for i in range(model.output_shape[-1])]
st.caption(f"Model: {md(entry['label'])} · classes: {md(registry.class_list(class_names))}")
engine, record = state.int8_engine(entry)
fast = engine is not None and st.toggle(
    "Fast int8 answers",
    value=True,
    key="classify_int8",
    help=(
        "An 8-bit copy of the model (ONNX Runtime), several times faster on large batches. "
        "Off: every answer from the float32 model, as on the Evaluate page."
    ),
)
if fast:
    st.caption(
        f"int8 copy: {record['accuracy']:.1%} on {record['images']:,} {record['check_split']} "
        f"images (float32: {record['float32_accuracy']:.1%}); same top class on "
        f"{record['agreement']:.1%} of them. Grad-CAM and occlusion are computed on the "
        "float32 model."
    )
elif engine is None and state.int8_record(entry) is None:
    st.caption(
        "Answers from the float32 model: this model has no int8 copy, which usually answers "
        "faster and nearly always with the same top class. Building one calibrates it on the "
        "sidebar's dataset and checks it on the images the model's run held out (the "
        'Evaluate page\'s "Fast int8 answers" section shows its figures).'
    )
    state.int8_build(entry, "Build an int8 copy", "classify_int8_build")
answerer = engine if fast else model
calib = entry["card"].get("calibration")
temperature = registry.temperature(entry)
if calib:
    st.caption(
        f"Probabilities calibrated: {calibration_note(calib)}. See the Evaluate page's "
        "Confidence section."
    )
else:
    st.caption(
        "Probabilities as the model gives them: its card has no calibration temperature "
        f"({registry.no_temperature_reason(entry['card'])})."
    )
# The int8 copy's own check reads its channel means in the pass that answers; a copy
# without one (too few training images to fit it) leaves the check to the float model.
check = state.novelty_check(entry, engine) if fast else None
fitted, seen_by = (record.get("novelty"), "int8 copy's") if check is not None else (None, "")
if check is None:
    check = state.novelty_check(entry, model)
    fitted, seen_by = entry["card"].get("novelty"), "model's"
if check is None:
    st.caption(f"No check for unfamiliar pictures: {novelty.why_none(entry['card'])}")
else:
    flagged = (fitted or {}).get("val_flagged")
    st.caption(
        f"Pictures unlike the training images are flagged: what the {seen_by} "
        f"{', '.join(check.layers)} layers see is compared with {check.fit_images:,} training "
        f"images, and {len(check.calibration):,} others set the line"
        + (f" (it flags {flagged:.1%} of validation images)." if flagged is not None else ".")
    )
# A row that wraps where the page is narrow (four columns cut "Try to fool it" short at 1024
# pixels with the sidebar open).
options = st.container(horizontal=True, gap="medium")
suggested = registry.framing(entry["card"])
advice = "trained cropped" if registry.trained_fit(entry["card"]) == "crop" else suggested
fit = options.selectbox(
    "Framing",
    FITS,
    index=FITS.index(suggested),
    key="classify_fit",
    width=OPTION_WIDTH,
    format_func=FRAMING_LABELS.get,
    help="How a photo that is not square becomes the model's square input. **Whole photo**: "
    "all of it, squashed (objects look narrower or taller), as image folders are read for "
    "training unless a run crops them. **Centre square**: objects keep their shape, the "
    "edges of the longer side are left out (dimmed on the original). **Three squares**: both "
    "ends and the middle of the longer side, their answers averaged: for a subject that may "
    "not be in the middle (CIFAR-10 images made into 16:9 photos with the subject at one "
    "edge: 83-85% right, against 60-64% cropped and 70-71% squashed; 5-6 points below the "
    'crop with it in the middle), three times the work. "What the model sees" shows the '
    "result. " + FRAMING_ADVICE[advice],
)
tta = state.tta_select(options, "classify_tta", width=OPTION_WIDTH)
evidence = state.evidence_method(options, "classify_evidence")
fooling = options.toggle(
    "Try to fool it",
    key="classify_fool",
    help="For each picture, search for the smallest change to its pixels that changes the "
    "float32 model's answer (an adversarial example), and show it with the change. About "
    "0.1 s a picture for the shipped model, 0.25 s read as three squares (the first takes a "
    "second more).",
)

uploads = st.file_uploader(
    "Images",
    type=UPLOAD_TYPES,
    accept_multiple_files=True,
    key="classify_files",
    max_upload_size=state.PHOTO_UPLOAD_MB,
    help=f"{', '.join(FORMAT_NAMES)}; up to 10 MB each. Nothing leaves this server.",
)
files = [(f.name, f.getvalue()) for f in uploads or []]
if st.toggle("Use the camera", key="classify_camera_on"):
    shot = st.camera_input("Take a photo", key="classify_camera")
    if shot is not None:
        files.append(("camera.jpg", shot.getvalue()))
probe = st.session_state.get("probe")

if not files and probe is None:
    st.info(
        "Upload one or more images, take a photo, or open an image from the Dataset or "
        "Evaluate page."
    )
    st.stop()


@st.cache_data(show_spinner="Classifying…", max_entries=32)
def _classify(key: tuple, t: float, tta: str, fit: str, _files, _model, _names, _check):
    """`key`: what else decides the answers (the files, model, engine and check)."""
    k = min(5, len(_names))
    return classify_batch(
        _model, _files, _names, k=k, tta=tta, temperature=t, check=_check, fit=fit
    )


# The names too: the answers carry them, and the cache is shared by every session.
digest = hashlib.sha256(
    b"".join(
        hashlib.sha256(name.encode()).digest() + hashlib.sha256(d).digest() for name, d in files
    )
).hexdigest()
version = registry.model_version(entry["path"])
# A refitted check has other calibration scores, so its answers are not reused.
answered_by = (entry["path"], version, fast, None if check is None else check.calibration)
key = (digest, *answered_by)
results = (
    _classify(key, temperature, tta, fit, files, answerer, class_names, check) if files else []
)


@st.cache_data(max_entries=DETAILED, show_spinner=False)
def _original(data: bytes, fit: str):
    """The uploaded photo for display, or None; framed by cropping, its edges left out dimmed.
    Twice the shown width is enough for sharp screens: a 12-megapixel JPEG decodes at 1/8
    of its size, about 10x faster than whole."""
    try:
        photo = open_image(data, at_least=2 * ORIGINAL_WIDTH)
    except CnnError:
        return None
    return dim_outside_centre(photo) if fit == "crop" else photo


SCALE = 5  # the model's pixels as 5 x 5 squares of the screen's


def side_by_side(images: list) -> np.ndarray:
    """One picture of a photo's views (three squares') in a row, a white column between
    them (one of the model's pixels wide); a single view as it is."""
    return images[0] if len(images) == 1 else image_grid(images, len(images), pad=SCALE)


def evidence_for(pred) -> tuple:
    """The image and caption of the evidence for the class shown (which the int8 copy may
    rank first where the float32 model does not), by the method chosen: of each square,
    side by side as "What the model sees" shows them, when three squares answered."""
    shown = int(pred.probs.argmax())
    views = [pred.pixels] if pred.views is None else list(pred.views)
    each = "" if len(views) == 1 else ", each square's own"
    if evidence == "Grad-CAM":
        maps = [state.grad_cam_view(entry, model, view, shown)[0] for view in views]
        return side_by_side(maps), f"Grad-CAM: {md(pred.label)}{each}"
    found = [state.occlusions(entry, model, view)[shown] for view in views]
    scale = strongest_change(*found)  # one colour scale for the squares
    maps = [
        enlarge(signed_overlay(view, f.drop, scale=scale), SCALE)
        for view, f in zip(views, found, strict=True)
    ]
    lowest = probability(min(f.lowest for f in found))
    leaves = (
        f"hiding one square leaves {lowest}"
        if len(views) == 1
        else f"hiding one patch of a square leaves as little as {lowest}"
    )
    return side_by_side(maps), (
        f"Occlusion: {md(pred.label)}{each}, red for, blue against ({leaves})"
    )


@st.cache_data(show_spinner=False, max_entries=64)
def _answer(key: tuple, views, tta: str, t: float, _answerer, _names, _check):
    """`key`: what else decides the answer (model, engine and check), as for `_classify`."""
    from core.classify import classify_views

    return classify_views(_answerer, views, _names, tta=tta, temperature=t, check=_check)


def answer(views):
    """The page's `Prediction` for a picture's uint8 views `(V, S, S, 3)` at the model's
    size: its engine, test-time augmentation, temperature and check for unfamiliar
    pictures; once per picture, not on every rerun (a changed picture under each photo, a
    sample sent from another page)."""
    return _answer(answered_by, views, tta, temperature, answerer, class_names, check)


ANSWERED_BY = ("int8 copy" if fast else "float32 model") + (
    "" if tta == "none" else f", {state.TTA_LABELS[tta].lower()} test-time augmentation"
)


def show(name, original, pred, slot: str):
    st.markdown(f"**{md(name)}** → **{md(pred.label)}** ({pred.confidence:.1%})")
    if pred.unfamiliar:
        share = check.typical_share(pred.novelty)
        than = (
            f"every one of the {len(check.calibration):,}" if share == 1 else f"{share:.1%} of the"
        )
        st.warning(
            f"This picture is unlike the images the model learnt from: less typical than "
            f"{than} training images that set the line. The model still answers with one of its "
            f'{len(class_names)} classes (it has no "none of these"), so this answer is a '
            "guess, however confident it looks."
        )
    elif pred.unsure:
        st.warning(
            f"The model is unsure (top probability {pred.confidence:.0%}, entropy "
            f"{pred.entropy:.0%} of the maximum): this may not be one of the classes it knows."
        )
    cols = st.columns([1, 1, 1, 2])
    if original is not None:
        cropped = fit == "crop" and original.width != original.height
        caption = "Original, dimmed where cropped" if cropped else "Original"
        cols[0].image(original, caption=caption, width="stretch")
    if pred.views is None:
        seen, said = [enlarge(pred.pixels, SCALE)], f"What the model sees ({len(pred.pixels)} px)"
    else:
        seen = [enlarge(view, SCALE) for view in pred.views]
        said = f"What the model sees: {len(pred.views)} squares, answers averaged"
    cols[1].image(side_by_side(seen), caption=said)
    cols[2].image(*evidence_for(pred))
    cols[3].plotly_chart(charts.top_answers(pred.top), key=f"classify_top_{name}_{id(pred)}")
    if fooling:
        adversarial.fool_row(entry, model, pred, class_names, answer, ANSWERED_BY, name, slot)


if probe is not None:
    pred = answer(model_image(model, probe["pixels"])[None])  # a sample may be smaller
    with st.container(border=True):
        show(probe["caption"], None, pred, "probe")
        if st.button("Clear this sample", key="classify_clear_probe"):
            st.session_state.pop("probe")
            st.rerun()

for n, (name, pred, error) in enumerate(results[:DETAILED]):
    with st.container(border=True):
        if error:
            st.error(f"{md(name)}: {md_sentence(error)}")
            continue
        show(name, _original(files[n][1], fit), pred, str(n))

if len(results) > 1:
    st.subheader("All results")
    st.dataframe(
        results_table(results),
        hide_index=True,
        column_config={"confidence": st.column_config.ProgressColumn(min_value=0, max_value=1)},
    )
    downloads = st.container(horizontal=True)
    downloads.download_button(
        "Download results (CSV)",
        results_csv(results, class_names),
        file_name="predictions.csv",
        mime="text/csv",
        help="One row per photo, with each class's probability in a column of its own.",
    )
    downloads.download_button(
        "Download a contact sheet (HTML)",
        lambda: report.classification_html(  # written on the click, not every rerun
            results,
            f"{entry['label']}: {len(results):,} photos",
            report.classification_facts(entry["label"], ANSWERED_BY, temperature, check, fit),
        ),
        file_name="predictions.html",
        mime="text/html",
        on_click="ignore",
        help="Every photo as the model saw it, with its answer, the runners-up and what it "
        "flagged, in one file to print or send; it opens in any browser, offline.",
    )
