"""Adversarial examples on the pages: the smallest change that fools the model, for one
photo (Classify) and over a split (Evaluate)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from core import evaluate, registry
from core.adversarial import EPSILONS, STEPS
from core.datastats import enlarge
from core.inspect import curve_rows
from ui import charts, state
from ui.text import md

LADDER = ", ".join(str(e) for e in EPSILONS)
HOW = (
    f"The search follows the float32 model's gradient: {STEPS} steps that nudge every pixel "
    "a whole level or more the way that most raises another class's score over the "
    "answer's (or the chosen class's over every other's), keeping each pixel within ε "
    f"levels of the original, tried at ε = {LADDER} "
    "(of 255) until the answer changes."
)
ROBUSTNESS_IMAGES = (200, 500, 1000)
EXAMPLES = 6  # fooled images shown under the robustness curve
KEPT = "once; kept until the model or the images change"  # the progress bars' note


@st.cache_data(max_entries=64, show_spinner="Looking for the smallest change that fools it…")
def _fool(model_path: str, version: int, views, temperature: float, target, _model):
    from core.adversarial import fool, fool_views

    if len(views) == 1:
        return fool(_model, views[0], temperature, target)
    return fool_views(_model, views, temperature, target)


def fooled(entry: dict, model, views, target: int | None = None):
    """`core.adversarial.fool` of a picture's one view at the model's size, `fool_views` of
    its squares (`views`: uint8 `(V, S, S, 3)`), to `target` or away from the model's
    answer, after the card's temperature; computed once per picture, model and target
    (about 0.1 s for the shipped model here, and a second more for a model's first
    picture, which compiles its gradient)."""
    version = registry.model_version(entry["path"])
    return _fool(entry["path"], version, views, registry.temperature(entry), target, model)


def difference_image(original: np.ndarray, changed: np.ndarray, epsilon: float) -> np.ndarray:
    """The change as a picture: grey where nothing changed, each channel brighter or darker
    by how far it moved, a change of `epsilon` drawn 127 levels from grey."""
    moved = changed.astype(np.float32) - original.astype(np.float32)
    return np.clip(np.rint(128 + moved * (127 / epsilon)), 0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def fool_row(
    entry, model, pred, class_names: list[str], answer: Callable, how: str, name: str, slot: str
):
    """Under a photo's answer on the Classify page: the smallest change found that changes
    the float32 model's answer (to any other class, or to one chosen), the change itself,
    and what the page answers for it.

    Args:
        pred: the photo's `core.classify.Prediction`.
        answer: a picture's views `(V, S, S, 3)` -> the page's `Prediction` (its engine,
            test-time augmentation, temperature and check for unfamiliar pictures).
        how: what answers on the page, e.g. "int8 copy, flip test-time augmentation".
        name: the file's name, for the download.
        slot: tells this photo's widgets from another's of the same name.
    """
    # A photo read as three squares: all three change, answered together, side by side.
    views = pred.pixels[None] if pred.views is None else pred.views
    found = fooled(entry, model, views)
    own = found.class_before
    target = st.columns([1, 2])[0].selectbox(
        "Make it answer",
        [None, *(k for k in range(len(class_names)) if k != own)],
        format_func=lambda k: "any other class" if k is None else class_names[k],
        key=f"classify_fool_target_{slot}",
        help="Any other class: the smallest change that moves the answer anywhere. A class: "
        "the smallest change that makes the model answer that class (usually more).",
    )
    if target is not None:
        found = fooled(entry, model, views, target)
    was = f"**{md(class_names[own])}** ({found.before[own]:.1%})"
    if np.isinf(found.epsilon):
        goal = (
            f"turns the float32 model's answer away from {was}"
            if target is None
            else f"makes the float32 model answer **{md(class_names[target])}** instead of {was}"
        )
        st.info(
            f"No change of up to {EPSILONS[-1]} of 255 levels in each pixel that the search "
            f"found {goal}. {HOW}"
        )
        return
    eps = int(found.epsilon)
    again = answer(np.stack(np.split(found.image, len(views), axis=1)))  # the views changed
    squares = len(views) > 1
    side = ", the squares side by side" if squares else ""
    # Three squares side by side are wide: the words go under them, not in a narrow column.
    cols = [*st.columns(2), st.container()] if squares else st.columns([1, 1, 3])
    cols[0].image(enlarge(found.image, 5), caption=f"Changed by at most {eps} of 255{side}")
    cols[1].image(
        enlarge(difference_image(np.concatenate(list(views), axis=1), found.image, eps), 5),
        caption=f"The change, {127 / eps:.0f}x stronger (grey: none)",
    )
    now = f"**{md(class_names[found.class_after])}** ({found.after[found.class_after]:.1%})"
    level = "level" if eps == 1 else "levels"
    lines = [
        f"Moving no pixel more than **{eps} {level} of 255** turns the float32 model's "
        f"{was} into {now}.",
        f"This page ({how}) answers the changed picture **{md(again.label)}** "
        f"({again.confidence:.1%})"
        + (
            ", and flags it as unlike the training images."
            if again.unfamiliar
            else "."
            if again.novelty is None
            else "; the check for unfamiliar pictures does not flag it."
        ),
    ]
    cols[2].markdown("  \n".join(lines))
    unseen = (
        " A change this small is invisible to us; models trained only on clean pictures are "
        "this fragile."
        if eps <= 4
        else ""
    )
    again_how = (
        "upload it again, read as three squares, and the model answers as here"
        if squares
        else "upload it again and the model answers as here"
    )
    cols[2].caption(f"{HOW}{unseen} The PNG below is exactly this picture: {again_how}.")
    cols[2].download_button(
        "Download the changed picture (PNG)",
        png_bytes(found.image),
        file_name=f"{Path(name).stem}-changed-{eps}.png",
        mime="image/png",
        key=f"classify_fool_png_{slot}",
    )


def robustness_section(
    entry: dict, model, x_split, y_split, names: list[str], what: tuple, other=None, outputs=None
) -> None:
    """The Evaluate page's "Robustness to small changes": accuracy on a stratified share of
    the split when each pixel may change by at most 1, 2, 4, 8 or 16 levels, by the
    gradient attack and by random noise of that size; measured on a button, then kept.

    Args:
        y_split, names: the split's labels and the dataset's class names.
        what: names the images (the dataset and split), for the session's memory.
        other: `(entry, images)` of the model chosen under "Compare with another model"
            and the split's images as it reads them, or None: its curves, once measured on
            their own button, are drawn beside these.
        outputs: the model's output of each of the dataset's classes where it knows more
            (`core.evaluate.class_subset`), else None: it is attacked on its own outputs,
            `other` (of the dataset's classes) on the labels.
    """
    st.subheader("Robustness to small changes")
    st.caption(
        "How much of its accuracy the model keeps when each pixel may move a few levels: "
        "moved the way its gradient says hurts most (an adversarial attack), or at random "
        "by the same amount. Measured on the float32 model without test-time augmentation, "
        f"so at 0 it may differ a little from the accuracy above; each point's bar is its "
        f"95% interval over the images measured (more images, narrower bars). {HOW}"
    )
    total = len(y_split)
    sizes = sorted({min(n, total) for n in ROBUSTNESS_IMAGES})
    count = st.selectbox(
        "Images",
        sizes,
        key="evaluate_robust_images",
        format_func=lambda n: f"all {n:,}" if n == total else f"{n:,} (as many of each class)",
    )
    rows = np.arange(total) if count == total else curve_rows(y_split, count)
    x, truth = x_split[rows], y_split[rows]
    y = truth if outputs is None else np.asarray(outputs)[truth]
    answers_in = names if outputs is None else entry["card"]["class_names"]
    version = registry.model_version(entry["path"])
    key = ("robustness", *what, len(rows), entry["path"], version)
    memory = st.session_state.setdefault("_evaluate_robustness", {})
    found = state.kept_or_button(
        memory,
        key,
        lambda: evaluate.robustness_if_kept(entry["path"], x, y),
        lambda bar: evaluate.kept_robustness(model, entry["path"], x, y, progress=bar),
        ("Measure robustness", "evaluate_robust_run"),
        f"Attacking {len(rows):,} images",
        KEPT,
    )
    if found is None:
        st.caption(
            f"Attacks each of {len(rows):,} images (about 0.1 s an image for the shipped "
            "model on 2 cores); kept until the model or the images change."
        )
        return
    their_x = x
    if other is not None:  # the images as the other model reads them
        other, their_x = other[0], other[1][rows]
    theirs = _other_robustness(other, their_x, truth, memory, key)
    labels = (_short(entry), _short(other)) if theirs is not None else ()
    st.plotly_chart(charts.robustness(found, theirs, labels), key="evaluate_robust_chart")
    st.markdown(robustness_summary(found))
    if theirs is not None:
        st.markdown(f"{md(labels[1])}: {robustness_summary(theirs, lesson=False)}")
    elif other is None and state.other_models(entry, names, int(model.input_shape[1])):
        st.caption(
            'Choose a model under "Compare with another model" above to draw its curves '
            "on the same images beside these."
        )
    fallen = np.flatnonzero(np.isfinite(found["needed"]) & (found["needed"] > 0))
    if not len(fallen):
        return
    picks = fallen[np.linspace(0, len(fallen) - 1, min(EXAMPLES, len(fallen))).round().astype(int)]
    changed, needed, answers = _changed(entry["path"], version, x[picks], y[picks], model)
    st.caption(
        f"{len(picks)} of the {len(fallen):,} images the attack fooled, each as it is (left) "
        "and changed by the least that fooled the model (right):"
    )
    for col, n in zip(st.columns(EXAMPLES), range(len(picks)), strict=False):
        if not np.isfinite(needed[n]):
            continue  # found again in another batch, the search can end elsewhere
        eps = int(needed[n])
        level = "level" if eps == 1 else "levels"
        pair = np.concatenate([x[picks[n]], changed[n]], axis=1)
        col.image(
            enlarge(pair, 3),
            caption=md(f"{answers_in[y[picks[n]]]} → {answers_in[answers[n]]}, {eps} {level}"),
            width="stretch",
        )


@st.cache_data(max_entries=16, show_spinner=False)
def _changed(model_path: str, version: int, images, labels, _model):
    """The pictures `smallest_change` finds for a few images, their epsilons and the
    model's answers for them."""
    from core.adversarial import smallest_change
    from core.classify import predict_pixels

    found = smallest_change(_model, images, labels)
    return found.images, found.epsilon, predict_pixels(_model, found.images).argmax(-1)


def robustness_summary(found: dict, lesson: bool = True) -> str:
    """A sentence on the curve: where the attack has taken half the accuracy, and what
    noise of that size leaves; `lesson`, with what that says about classifiers."""
    eps, attacked, noise = found["epsilons"], found["attacked"], found["noise"]
    plain = attacked[0]
    if plain == 0:
        return "The model gets none of these images right, so there is nothing to take away."
    half = next((i for i in range(1, len(eps)) if attacked[i] <= plain / 2), None)
    if half is None:
        return (
            f"Even with each pixel moved up to {eps[-1]} levels, the attack leaves "
            f"{attacked[-1]:.1%} of {plain:.1%} right (random noise of that size: {noise[-1]:.1%})."
        )
    level = "level" if eps[half] == 1 else "levels"
    return (
        f"Moving each pixel by at most **{eps[half]} {level} of 255** takes accuracy from "
        f"{plain:.1%} to **{attacked[half]:.1%}**; random noise of the same size leaves "
        f"{noise[half]:.1%}."
        + (
            " The direction matters, not the size: a classifier's answer can sit very close "
            "to another class's along a direction we cannot see."
            if lesson
            else ""
        )
    )


def _short(entry: dict) -> str:
    """A model's label without its "(preset, accuracy)"."""
    return entry["label"].rsplit(" (", 1)[0]


def _other_robustness(other, x, y, memory: dict, key: tuple):
    """The robustness of `other` (the model chosen under "Compare with another model",
    or None) on the same images, measured on its own button and kept; None until then."""
    if other is None:
        return None
    their_key = (*key[:-2], other["path"], registry.model_version(other["path"]))

    def attack(bar):
        loaded = state.model_of(other)  # None: it could not be loaded, and it said why
        if loaded is None:
            return None
        return evaluate.kept_robustness(loaded, other["path"], x, y, progress=bar)

    return state.kept_or_button(
        memory,
        their_key,
        lambda: evaluate.robustness_if_kept(other["path"], x, y),
        attack,
        (f"Measure the robustness of {_short(other)} too", "evaluate_robust_other_run"),
        f"Attacking {len(y):,} images with {_short(other)}",
        KEPT,
    )
