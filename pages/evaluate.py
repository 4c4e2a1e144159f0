"""Evaluate: the active model on a split of the active dataset, honestly scored."""

import json
from pathlib import Path

import numpy as np
import streamlit as st

from core import datastats, inspect, novelty, registry
from core.datastats import enlarge
from core.errors import DataError
from core.evaluate import (
    Report,
    all_answers,
    class_subset,
    kept_novelty,
    kept_probs,
    kept_space,
    least_confident_correct,
    mistakes,
    report_from_probs,
    restricted,
    row_shares,
    subset_sentence,
    top_confusions,
    with_temperature,
)
from core.words import counted
from ui import adversarial, charts, evaluate_sections, near_duplicates, state
from ui import report as report_page
from ui.text import md, md_sentence, probability

state.ensure_routed()

# Sources of "Why this answer?": the first two it starts on, and those other sections choose
# (a cell, dots in the space).
MISTAKES, UNSURE = "the most confident mistakes", "the least confident correct"
CELL = "the chosen cell"
SPACE = "the points selected in the feature space"
PICK = 320  # CSS pixels: SPACE whole in its selectbox

st.title("Evaluate")
model, entry = state.require_model()
dataset = state.require_dataset(
    image_size=int(model.input_shape[1]), fit=registry.trained_fit(entry["card"])
)
card_classes = entry["card"].get("class_names") or []


def subset_of(model_entry: dict, loaded) -> tuple | None:
    """The model's outputs of the dataset's classes when it knows more (the shipped model on
    a folder of cat and dog photos), None when they are its own classes."""
    known, outputs = model_entry["card"].get("class_names") or [], int(loaded.output_shape[-1])
    subset = class_subset(known, outputs, dataset.class_names)
    return None if subset is None else tuple(subset)  # hashable: a cache key


try:
    subset = subset_of(entry, model)
except DataError as err:
    models = state.available_models()
    said = registry.classes_differ(card_classes, dataset.class_names, models)
    st.error(md(said if card_classes else str(err)))
    st.stop()
reframed = None
fit = registry.data_fit(entry["card"], dataset.class_names)
if fit != registry.trained_fit(entry["card"]) and dataset.summary()["not_square"] > 0:
    reframed = fit  # not its own data: framed as the Classify page frames a photo for it
    dataset = state.require_dataset(int(model.input_shape[1]), reframed)

# A row that wraps where the page is narrow (three columns cut "Row-normalised" short at
# 1024 pixels with the sidebar open), as the Classify page's options.
options = st.container(horizontal=True, gap="medium", vertical_alignment="bottom")
split = options.selectbox(
    "Split",
    list(dataset.splits),
    key="evaluate_split",
    index=list(dataset.splits).index("val") if "val" in dataset.splits else 0,
    format_func=state.split_name(dataset),
    width=260,
)
tta = state.tta_select(options, "evaluate_tta", width=220)
# Uneven classes: the accuracy rewards favouring the large ones; the balanced one does not.
counts = datastats.class_counts(dataset)
uneven = datastats.imbalance(counts[split])
normalise = options.toggle(
    "Row-normalised",
    value=uneven >= datastats.UNEVEN,
    key="evaluate_norm",
    help="Show each true class's row as shares that sum to 1. On at first when the classes "
    "are uneven: in counts, a small class's row would look empty.",
)
# A run that split the data another way trained on some of the images held out here.
every = counts["train"] + counts.get("val", 0)
run_dir, spec, page_split = Path(entry["path"]).parent, state.dataset_spec(), state.held_out_split()
if note := registry.held_out_note(entry["card"], run_dir, spec, every, split, *page_split):
    st.warning(md_sentence(note))
    own = registry.run_split(entry["card"])
    if own and own[0] > 0 and own != page_split:
        st.button(
            "Split every page as this run did",
            key="evaluate_run_split",
            on_click=state.split_as,
            args=(own,),
            help=f"A validation fraction of {own[0]:g} and seed {own[1]}, until the sidebar's "
            "button takes the pages back to the Train form's defaults.",
        )


@st.cache_data(show_spinner="Evaluating…", max_entries=8)
def _report(
    model_path: str, version: int, data_key: str, split: str, tta: str, subset, _model, _data
):
    x, y = _data.split(split)
    probs = kept_probs(_model, model_path, x, tta)
    return report_from_probs(
        probs if subset is None else restricted(probs, list(subset)), y, _data.class_names
    )


def data_for(model_entry: dict):
    """The dataset as `model_entry`'s model reads it: another model than the page's (one of
    these classes and size) reads the folder as its own run did; the page's may frame it
    as for a photo (`reframed`)."""
    if model_entry["path"] == entry["path"]:
        return dataset
    fit = registry.trained_fit(model_entry["card"])
    return state.require_dataset(int(model.input_shape[1]), fit)


def report_of(model_entry: dict, loaded) -> Report:
    """A model's report on the chosen split: predicted under a progress bar the first time;
    among the dataset's classes when the model knows more."""
    where = (state.dataset_key(), split)
    data = data_for(model_entry)
    state.predict_with_progress(model_entry, loaded, data.split(split)[0], tta, where)
    version = registry.model_version(model_entry["path"])
    chosen = subset_of(model_entry, loaded)
    return _report(model_entry["path"], version, *where, tta, chosen, loaded, data)


@st.cache_data(show_spinner=False, max_entries=8)
def _all_answers(
    model_path: str, version: int, data_key: str, split: str, tta: str, subset, _model, _data
):
    x, y = _data.split(split)
    return all_answers(kept_probs(_model, model_path, x, tta), y, list(subset), card_classes)


def model_class(c: int) -> int:
    """The model's output of the dataset's class `c`."""
    return c if subset is None else subset[c]


x_split, _ = dataset.split(split)
split_files = dataset.files.get(split)  # an image folder's paths; None for CIFAR-10 archives
report = report_of(entry, model)
names = report.class_names
# Galleries show percentages as the Classify page does: after the card's temperature (it
# changes no answer). Metrics, the matrix and the Confidence section's first bars use the
# model's own probabilities.
temperature = registry.temperature(entry)
tempered = report_from_probs(with_temperature(report.probs, temperature), report.y_true, names)

if subset is not None:
    answers = _all_answers(
        entry["path"],
        registry.model_version(entry["path"]),
        *(state.dataset_key(), split),
        tta,
        subset,
        model,
        dataset,
    )
    among = subset_sentence(answers, card_classes, dataset.class_names, reframed)
    st.info(md(among))
scored_among = {} if subset is None else {"Classes": among}  # the HTML report says so too
figures = report_page.figures(report)  # the downloadable report shows the same
for column, (label, value) in zip(st.columns(len(figures)), figures.items(), strict=True):
    column.metric(label, value)
st.caption(
    report_page.interval_sentence(report)
    + (
        f" The balanced accuracy is the mean of the per-class recalls: every class counts the "
        f"same, where the accuracy counts every image (here the largest class has "
        f"{uneven:.1f}x the images of the smallest, so a model that favours it scores a "
        "higher accuracy than it deserves)."
        if "Balanced accuracy" in figures
        else ""
    )
)
near_duplicates.evaluate_line(dataset, split, report, entry["card"])


def look_at_the_cell() -> None:
    """A cell just chosen (a click or a picker) is what "Why this answer?" looks at."""
    st.session_state["evaluate_why_from"] = CELL


st.subheader("Confusion matrix")
cm = report.confusion.astype(float)
shown = row_shares(cm) if normalise else cm
fig = charts.confusion_matrix(shown, names, normalise)
event = st.plotly_chart(fig, key="evaluate_cm", on_select="rerun", selection_mode="points")
points = (event or {}).get("selection", {}).get("points", []) if event else []
clicked = [points[0]["y"], points[0]["x"]] if points else None
# The chart keeps a clicked cell selected through later reruns: only a new click sets the
# pair, so the pickers below can still choose another one.
if clicked and clicked != st.session_state.get("_evaluate_clicked"):
    st.session_state.evaluate_true, st.session_state.evaluate_pred = clicked
    look_at_the_cell()
st.session_state["_evaluate_clicked"] = clicked
if subset is not None:
    with st.expander(f"Every answer, over all {len(card_classes)} of the model's classes"):
        st.plotly_chart(charts.answers_matrix(answers["matrix"], names, card_classes))


def gallery(indices, captions, columns=6):
    # A row of columns per row of images, each image stretched to its column: a caption
    # that wraps ("truck → automobile 99%") then neither widens its image nor shifts the
    # rows below in its column alone.
    items = list(zip(indices, captions, strict=True))
    for start in range(0, len(items), columns):
        row = items[start : start + columns]  # the last row may be shorter
        for col, (i, caption) in zip(st.columns(columns), row, strict=False):
            said = md(caption) + file_line(i, narrow=True)
            col.image(enlarge(x_split[i], 4), caption=said, width="stretch")


def top_answers(i: int) -> str:
    """An image's likeliest classes, "cat 48% · frog 34% · dog 18%", after the card's
    temperature; runners-up under 1% left out ("airplane >99%")."""
    (first, p), *others = tempered.top_k(i)
    shown = [(first, p)] + [(c, q) for c, q in others if q >= 0.01]
    return " · ".join(f"{c} {probability(q)}" for c, q in shown)


def file_line(i: int, narrow: bool = False) -> str:
    """An image folder's file of image `i`, as a caption's second line: where to fix a
    wrong label. Nothing for CIFAR-10 archives, whose images have no files.

    `narrow`: for a gallery's column, "2694.jpg in train/horse". A browser breaks no line
    between "/" and a digit: "train/horse/2694.jpg" was cut as "train/horse/2694.jp", "g"."""
    if split_files is None:
        return ""
    path = Path(split_files[i])
    said = f"{path.name} in {path.parent}" if narrow and path.parent.name else str(path)
    return f"  \n{md(said)}"


def look_at(true_name: str, pred_name: str) -> None:
    st.session_state.evaluate_true, st.session_state.evaluate_pred = true_name, pred_name
    look_at_the_cell()


if confusions := top_confusions(report.confusion, 5):
    st.caption("The most frequent mistakes, true → predicted:")
    pairs = st.container(horizontal=True, gap="small")  # wraps: five columns cut the counts
    for t, p, n in confusions:
        of = int(report.per_class["support"][t])
        pairs.button(
            f"{md(names[t])} → {md(names[p])} · {n:,}",
            help=f"{n:,} of the {of:,} {md(names[t])} images ({n / of:.0%}) were answered "
            f"{md(names[p])}. Show them.",
            key=f"evaluate_pair_{t}_{p}",
            on_click=look_at,
            args=(names[t], names[p]),
        )
st.caption("Select a cell to see its images, or pick the pair here.")
pick = st.columns(2)
true_name = pick[0].selectbox("True class", names, key="evaluate_true", on_change=look_at_the_cell)
pred_name = pick[1].selectbox(
    "Predicted class", names, key="evaluate_pred", on_change=look_at_the_cell
)
cell = report.cell(names.index(true_name), names.index(pred_name))
st.write(
    f"**{counted(len(cell), 'image')}** of *{md(true_name)}* "
    f"predicted as *{md(pred_name)}*" + (" (first 24 shown)" if len(cell) > 24 else "")
)
if temperature != 1.0 and len(cell):
    st.caption(f"Percentages after the model's temperature {temperature:g}, as on Classify.")
gallery(cell[:24], [top_answers(i) for i in cell[:24]])


def shown_row(row: dict) -> dict:
    """A per-class row with its recall's interval as one column of text."""
    low, high = row.pop("recall_low"), row.pop("recall_high")
    return row | {"recall 95% interval": f"{low:.3f}-{high:.3f}" if row["support"] else "—"}


st.subheader("Per class")
st.dataframe(
    [shown_row(row) for row in report.per_class_rows()],
    hide_index=True,
    column_order=("class", "precision", "recall", "recall 95% interval", "f1", "support"),
    column_config={
        k: st.column_config.ProgressColumn(format="%.3f", min_value=0, max_value=1)
        for k in ("precision", "recall", "f1")
    }
    | {
        "recall 95% interval": st.column_config.TextColumn(
            help="Where the class's recall would likely lie on other images of it: the "
            "fewer its images (support), the wider."
        )
    },
)
st.caption(md(report.averages_summary()))
downloads = st.container(horizontal=True)  # each button as wide as its label, wrapped
downloads.download_button(
    "Download per-class metrics (CSV)",
    report.per_class_csv(),
    file_name=f"metrics-{split}.csv",
    mime="text/csv",
)
downloads.download_button(
    "Download all metrics (JSON)",
    json.dumps(report.to_dict(), indent=2),
    file_name=f"metrics-{split}.json",
    mime="application/json",
)
downloads.download_button(
    "Download every image's answer (CSV)",
    lambda: tempered.predictions_csv(split_files),  # written on the click, not every rerun
    file_name=f"answers-{split}.csv",
    mime="text/csv",
    on_click="ignore",
    help="One row per image: "
    + ("its file, " if split_files is not None else "")
    + "its label, the answer, whether it is right and each class's probability"
    + (f" (after the temperature {temperature:g})" if temperature != 1.0 else "")
    + ". Sorted by probability, the confident mistakes are where wrong labels are found.",
)
downloads.download_button(
    "Download a report (HTML)",
    lambda: report_page.evaluation_html(  # written on the click, not every rerun
        report,
        tempered,
        x_split,
        split_files,
        f"{entry['label']}: {split} split",
        report_page.facts(entry["label"], entry["card"], dataset.source, split, tta, temperature)
        | scored_among,
        normalise,
        temperature,
    ),
    file_name=f"evaluation-{split}.html",
    mime="text/html",
    on_click="ignore",
    help="This page's figures in one file to keep, print or send: the metrics, the "
    "confusion matrix as chosen above, the per-class table, how far the probabilities can be "
    "trusted (calibration, answering only when sure) and the most confident mistakes. "
    "It opens in any browser, offline (about 5 MB: the chart's script is inside).",
)
# A temperature is the model's, fitted on its own classes: not on some of them.
evaluate_sections.confidence(entry, report, tempered, split, own=subset is None)


@st.cache_data(show_spinner=False, max_entries=8)
def _space(model_path: str, version: int, data_key: str, split: str, _model, _data) -> dict:
    x, _ = _data.split(split)
    return kept_space(_model, model_path, x)


def feature_space() -> dict:
    """The feature space of the split: kept on disk by the prediction, or computed under a
    progress bar the first time."""
    where = (state.dataset_key(), split)
    state.space_with_progress(entry, model, x_split, where)
    return _space(entry["path"], registry.model_version(entry["path"]), *where, model, dataset)


def draw_space(space: dict) -> list[int]:
    """Draws the feature space, a colour per true class and a cross per mistake; returns
    the images selected in it (a click, a box or a lasso), ascending."""
    index = space["index"]
    truth, answers = report.y_true[index], tempered.probs[index].argmax(axis=1)
    fig = charts.feature_space(space, truth, answers, names, [why_caption(i) for i in index])
    event = st.plotly_chart(
        fig,
        key="evaluate_space_chart",
        on_select="rerun",
        selection_mode=("points", "lasso", "box"),
    )
    of = "" if len(index) == len(x_split) else f" (a random {len(index):,} of the {len(x_split):,})"
    st.caption(
        f"Each dot is an image of the {split} split{of}, in its true class's colour; a cross "
        f"marks a mistake. The model's classifier reads {space['dims']:,} numbers per image; "
        "the axes are the two directions along which those vary most (PCA), so clouds apart "
        "here are told apart, while clouds that overlap may still be apart in the other "
        "directions. Select dots (click, lasso or box) to look at them below."
    )
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    return sorted({int(p["customdata"][0]) for p in points if p.get("customdata")})


def why_caption(i: int) -> str:
    """A mistake as "horse → deer 99%", a right answer as "cat 41%": after the card's
    temperature, as all the galleries show them."""
    true, answer = names[report.y_true[i]], names[int(tempered.probs[i].argmax())]
    said = true if answer == true else f"{true} → {answer}"
    return f"{said} {probability(tempered.probs[i].max())}"


@st.cache_data(show_spinner=False, max_entries=8)
def _novelty(model_path: str, version: int, data_key: str, split: str, fitted, _check, _data):
    x, _ = _data.split(split)
    return kept_novelty(_check, model_path, x)


def least_typical(check) -> list[int]:
    """Scores the split with the model's novelty check (under a progress bar the first
    time), says how many it flags and how the model does on them; returns the 18 least
    typical images, least typical first."""
    where = (state.dataset_key(), split)
    state.novelty_with_progress(entry, check, x_split, where)
    version = registry.model_version(entry["path"])
    scores = _novelty(entry["path"], version, *where, check.calibration, check, dataset)
    flagged, right = check.unfamiliar(scores), report.probs.argmax(axis=1) == report.y_true
    on_them = ""
    if flagged.any():
        on_them = f" The model is right on {right[flagged].mean():.0%} of them"
        on_them += f", {right[~flagged].mean():.0%} of the others." if (~flagged).any() else "."
    st.caption(
        f"{flagged.sum():,} of these {len(scores):,} images ({flagged.mean():.1%}) are less "
        "typical than 99% of held-out training images, the line above which the Classify "
        f"page calls a picture unfamiliar.{on_them} After each caption, the image's novelty: "
        "1.0 is as unusual as the 99th percentile training image, at the layer where the "
        "image is most unusual."
    )
    strange = [int(i) for i in np.argsort(-scores, kind="stable")[:18]]
    gallery(strange, [f"{why_caption(i)} · {scores[i]:.1f}" for i in strange])
    return strange


wrong = mistakes(tempered.probs, report.y_true)
tabs = st.tabs(
    ["Most confident mistakes", "Least confident correct", "Least typical", "Seen in training"]
)
with tabs[0]:
    gallery(wrong["index"][:18], [why_caption(i) for i in wrong["index"][:18]])
    if not len(wrong["index"]):
        st.caption(f"No mistakes on these {len(report.y_true):,} images.")
with tabs[1]:
    unsure = least_confident_correct(tempered.probs, report.y_true, 18)
    gallery(unsure, [why_caption(i) for i in unsure])
with tabs[2]:
    strange, check = [], state.novelty_check(entry, model)
    if check is None:
        st.caption(f"No check for unfamiliar pictures: {novelty.why_none(entry['card'])}")
    elif st.toggle(
        "Find the images least like the training images",
        key="evaluate_novelty",
        help="Scores every image of the split with the model's check for unfamiliar "
        "pictures, as the Classify page does for uploads (a forward pass; kept with the "
        "predictions).",
    ):
        strange = least_typical(check)
with tabs[3]:
    seen = near_duplicates.seen_in_training(dataset, split)
    if split == "train":
        st.caption("Near-duplicates of training images are looked for in the other splits.")
    elif seen is None:
        st.caption("The images with a near-duplicate in the training split, once found (above).")
    elif not seen:
        st.caption(f"No {split} image has a near-duplicate in the training split.")
    else:
        gallery(seen[:18], [why_caption(i) for i in seen[:18]])
        remembered = (
            "this model's run left those training images out: it never saw them"
            if near_duplicates.left_out_by(entry["card"], dataset) is not None
            else "the model may remember them"
        )
        st.caption(
            f"The {min(len(seen), 18)} most alike of the {len(seen):,} {split} images with a "
            f"near-duplicate in the training split: {remembered}."
        )

st.subheader("Feature space")
picked = []
if st.toggle(
    "Show where the model places each image",
    key="evaluate_space",
    help="One dot per image, placed by what the model's classifier reads of it (a forward "
    f"pass over up to {inspect.SPACE_LIMIT:,} images, kept with the predictions).",
):
    try:
        picked = draw_space(feature_space())
    except ValueError as err:  # a model without a Dense layer has no classifier input
        st.info(f"No feature space for this model: {md_sentence(err)}")
    if picked and picked != st.session_state.get("_evaluate_picked"):
        st.session_state["evaluate_why_from"] = SPACE  # a new selection: look at it below
    st.session_state["_evaluate_picked"] = picked

st.subheader("Why this answer?")
groups = {MISTAKES: wrong["index"][:18], CELL: cell[:24], UNSURE: unsure}
if strange:
    groups["the least typical"] = strange
if seen:
    groups["the ones seen in training"] = seen[:24]
if picked:
    groups[SPACE] = picked
# A row that wraps: a quarter of the page cut "the most confident mistakes" short at 1024 px.
choose = st.container(horizontal=True, gap="medium")
# The mistakes, or what it nearly got wrong where it made none, as the images change; until
# the user chooses a source here (`auto` then False), or another section does.
now, auto = st.session_state.get("evaluate_why_from"), "_evaluate_why_auto"
if now is None or (now in (MISTAKES, UNSURE) and st.session_state.get(auto)):
    start = UNSURE if not len(wrong["index"]) and len(unsure) else MISTAKES
    st.session_state.update({"evaluate_why_from": start, auto: True})
group = choose.selectbox(
    "Images from",
    list(groups),
    key="evaluate_why_from",
    width=PICK,
    on_change=st.session_state.update,
    kwargs={auto: False},
)
shown = [int(i) for i in groups[group]]
if not shown:
    st.info(f"No images in {group}.")
else:
    index = choose.selectbox(
        "Image",
        shown,
        format_func=lambda i: f"#{i}: {why_caption(i)}",
        key=f"evaluate_why_{group.split()[-1]}",  # one choice per group, kept while switching
        width=PICK,
    )
    true, answer = int(report.y_true[index]), int(tempered.probs[index].argmax())
    # A mistake against its label; a right answer against the class it almost chose.
    rival = true if answer != true else int(np.argsort(-tempered.probs[index])[1])
    method = state.evidence_method(choose, "evaluate_why_method", horizontal=False)
    scale = max(1, 320 // x_split.shape[1])  # about a column's width: sharp when stretched
    cols = st.columns(3)
    cols[0].image(
        enlarge(x_split[index], scale),
        caption=md(f"{split} #{index}, labelled {names[true]}") + file_line(index),
        width="stretch",  # three equal images: a long caption widens none of them
    )
    pairs = [
        (cols[1], answer, "the answer"),
        (cols[2], rival, "the label" if rival == true else "the runner-up"),
    ]
    if method == "Grad-CAM":
        for col, c, role in pairs:
            view, found = state.grad_cam_view(entry, model, x_split[index], model_class(c), scale)
            col.image(
                view,
                caption=md(
                    f"Evidence for {names[c]} ({role}, {probability(tempered.probs[index, c])})"
                    + ("" if found else ": none found")
                ),
                width="stretch",
            )
        st.caption(
            "Grad-CAM weighs the last convolution's feature maps by how much each raises a "
            "class's score: red is where the model found evidence for that class, blue where "
            "it found none. The Filters page explains any class and shows the feature maps."
        )
    else:
        hidden = state.occlusions(entry, model, x_split[index])
        # One colour scale for both: the stronger evidence looks stronger.
        hidden = {c: hidden[model_class(c)] for _, c, _ in pairs}  # the dataset's classes
        strongest = inspect.strongest_change(*hidden.values())
        for col, c, role in pairs:
            view = inspect.signed_overlay(x_split[index], hidden[c].drop, scale=strongest)
            col.image(
                enlarge(view, scale),
                caption=md(
                    f"Evidence for {names[c]} ({role}, {probability(tempered.probs[index, c])}): "
                    f"hiding one square leaves {probability(hidden[c].lowest)}"
                    + ("" if subset is None else f" (among all {len(card_classes)} classes)")
                ),
                width="stretch",
            )
        side = hidden[answer].side
        st.caption(
            f"Occlusion hides each {side}×{side} square of the image in turn (filled with its "
            "mean colour) and watches the class's probability: red where hiding a part lowers "
            "it (evidence for the class), blue where hiding it raises it (evidence against). "
            f"Both on one scale: the strongest colour is a change of {strongest * 100:.1f} "
            "points."
        )
    go_to = st.columns(2)
    if go_to[0].button("Open on Filters page", key="evaluate_open_filters"):
        state.open_probe(dataset, split, index, "pages/filters.py")
    if go_to[1].button("Open on Classify page", key="evaluate_open_classify"):
        state.open_probe(dataset, split, index, "pages/classify.py")


held_out = (spec, every, *page_split) if split == "val" else None  # the images it holds out
other = evaluate_sections.comparison(entry, model, dataset, held_out, report, report_of, gallery)
theirs = None if other is None else (other, data_for(other).split(split)[0])
adversarial.robustness_section(
    entry, model, x_split, report.y_true, names, (state.dataset_key(), split), theirs, subset
)
with st.expander("Fast int8 answers for the Classify page"):
    evaluate_sections.int8_copy(entry)
with st.expander("Export this model"):
    evaluate_sections.export_box(entry, model, card_classes or names)
