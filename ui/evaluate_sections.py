"""Sections of the Evaluate page that stand on their own: confidence, a comparison with
another model, the int8 copy and the export."""

from collections.abc import Callable

import streamlit as st

from core import export, quantize, registry
from core.errors import CnnError
from core.evaluate import (
    Report,
    calibration,
    calibration_note,
    compare,
    selective,
    selective_at,
    too_few_to_calibrate,
)
from core.images import FITS
from ui import charts, state
from ui.report import FRAMING_LABELS, FRAMINGS
from ui.text import md, md_sentence


def confidence(entry: dict, report: Report, tempered: Report, split: str, own=True) -> None:
    """Reliability of the model's probabilities, before and after the card's temperature,
    and a button that fits one where the card has none and `own`: the report is of the
    model's own classes (not some of them)."""
    temperature = registry.temperature(entry)
    st.subheader("Confidence")
    views = {"as the model gives them": report.probs}
    if temperature != 1.0:
        views[f"after its temperature {temperature:g}"] = tempered.probs
    calibrations = {name: calibration(probs, report.y_true) for name, probs in views.items()}
    for name, calib in calibrations.items():
        st.caption(f"Probabilities {name}. {calib.summary()}")
    st.plotly_chart(charts.reliability(calibrations))
    if calib := entry["card"].get("calibration"):
        st.caption(
            "The temperature comes from the model card: fitted on the validation split (at the "
            "end of training, or here), it sharpens (below 1) or softens (above 1) every answer "
            "without changing which class wins. On that split the bars after it are measured on "
            f"the images it was fitted on; the card: {calibration_note(calib)}. The Classify page "
            "shows probabilities after it."
        )
    elif own and split == "val" and registry.validates_on(entry["card"], *state.held_out_split()):
        _offer_calibration(entry, report)
    if note := st.session_state.pop("evaluate_calibrated", None):
        st.success(f"Calibrated: {note}. The Classify page now shows probabilities after it.")
    _selective(tempered, temperature)


def _selective(tempered: Report, temperature: float) -> None:
    """How accurate the model is when it answers only the images it is surest of."""
    curve = selective(tempered.probs, tempered.y_true)
    if len(curve["coverage"]) < 10:
        return  # too few images for a curve
    st.markdown("**Answering only when sure**")
    st.plotly_chart(charts.selective(curve), key="evaluate_selective")
    said = []
    for share in (0.9, 0.5):
        answered, right, threshold = selective_at(curve, share)
        said.append(
            f"the {answered:.0%} it is surest of (top probability {threshold:.2f} or more), "
            f"it is right on {right:.1%}"
        )
    after = f" (after the temperature {temperature:g}, as Classify shows it)"
    st.caption(
        f"A model that may abstain: answering {said[0]}; answering {said[1]}; answering all, "
        f"{curve['accuracy'][-1]:.1%}. A threshold on the top probability"
        + (after if temperature != 1 else "")
        + " sets how often it answers and how often it is right, on images like these."
    )


def _offer_calibration(entry: dict, report: Report) -> None:
    """Fits a temperature on the model's validation split on a click, where one can be."""
    if reason := too_few_to_calibrate(report.probs, report.y_true):
        # The run had these images at its end: it could not fit one either.
        st.caption(f"This model's card has no temperature, and none can be fitted: {reason}")
        return
    # A stopped run, or a model from before cards carried a temperature.
    st.caption(
        "This model's card has no temperature (a run stopped early gets none). One can be "
        "fitted on this validation split, which the run held out from training."
    )
    if st.button("Fit a temperature on these images", key="evaluate_calibrate"):
        try:
            record = registry.write_calibration(entry["path"], report.probs, report.y_true)
            st.session_state["evaluate_calibrated"] = calibration_note(record)
            st.rerun()
        except CnnError as err:
            st.error(md_sentence(err))


def comparison(
    entry: dict,
    model,
    dataset,
    held_out: tuple | None,
    report: Report,
    report_of: Callable,
    gallery: Callable,
) -> dict | None:
    """Another model scored on the same images: accuracy, McNemar's test, recall per class
    and the images only one of the two gets right. `report_of(entry, model)` scores a model
    on the page's split of `dataset`; `gallery(indices, captions)` draws images of it.
    `held_out`: `(spec, class counts, fraction, seed)` of the validation split scored, to
    say whether the other model learnt from some of it (`registry.trained_on_held_out`);
    None for another split.

    Returns the other model's registry entry (the robustness section below draws its curves
    too), or None when none is chosen or it could not be loaded."""
    names = report.class_names
    st.subheader("Compare with another model")
    others = state.other_models(entry, dataset.class_names, int(model.input_shape[1]))
    other = st.selectbox(
        "Other model",
        others,
        index=None,
        format_func=lambda m: m["label"],
        key="evaluate_other",
        placeholder="Choose a model" if others else "No other model of these classes and size yet",
        help="Scores another model on the same images, split and test-time augmentation, and "
        "shows where the two differ.",
    )
    other_model = state.model_of(other) if other else None
    if other_model is None:
        return None
    other_report = report_of(other, other_model)
    diff = compare(report, other_report)
    # Names without the "(preset, accuracy)" of the labels: sentences and tabs stay short.
    a_name, b_name = (m["label"].rsplit(" (", 1)[0] for m in (entry, other))
    c = st.columns(4)
    c[0].metric(
        "Its accuracy",
        f"{other_report.accuracy:.2%}",
        delta=f"{(other_report.accuracy - report.accuracy) * 100:+.2f} points",
    )
    c[1].metric("Right only with it", f"{len(diff.only_b):,}")
    c[2].metric("Right only with the active model", f"{len(diff.only_a):,}")
    c[3].metric("McNemar p-value", f"{diff.p_value:.2g}")
    st.markdown(md_sentence(diff.verdict("the active model", b_name)))
    # As the note at the top of the page says of the active model.
    if held_out and (seen := registry.trained_on_held_out(other["card"], *held_out)):
        st.warning(
            f"{md(b_name)} held out other images than this page when it trained, and "
            f"learnt from {seen:,} of these {len(report.y_true):,}: its figures here "
            "flatter it."
        )
    recalls = {f"{a_name} (active)": report.per_class["recall"]}
    recalls[b_name] = other_report.per_class["recall"]
    recall = charts.grouped_bars(
        names,
        recalls,
        percent=True,
        title="Recall per class",
        legend=dict(orientation="h", y=-0.2),
        margin=dict(t=40),
    )
    st.plotly_chart(recall)

    def wrong_answers(indices, wrong: Report, who: str) -> list[str]:
        return [f"{names[wrong.y_true[i]]}; {who} said {wrong.top_k(i, 1)[0][0]}" for i in indices]

    fixed, broken = st.tabs([f"Right only with {md(b_name)}", "Right only with the active model"])
    with fixed:
        gallery(diff.only_b[:18], wrong_answers(diff.only_b[:18], report, "the active model"))
    with broken:
        gallery(diff.only_a[:18], wrong_answers(diff.only_a[:18], other_report, b_name))
    return other


def int8_copy(entry: dict) -> None:
    """The int8 copy the Classify page answers with: its figures, or a button to build it."""
    engine, record = state.int8_engine(entry)  # None, after a warning, where it is unusable
    if engine is not None:
        st.caption(
            f"This model has an int8 copy: {record['accuracy']:.1%} on {record['images']:,} "
            f"{record['check_split']} images (float32 {record['float32_accuracy']:.1%}), the "
            f"same top class on {record['agreement']:.1%}. {quantize.speed_note(record) or ''} "
            "The Classify page answers with it while its toggle is on."
        )
        return
    st.caption(
        "The Classify page answers with the float32 model. An 8-bit copy (ONNX Runtime) "
        "usually answers faster and nearly always with the same top class. It is calibrated "
        f"on {quantize.CALIBRATION_IMAGES:,} images of the sidebar dataset's training split "
        "as the model's run split it, then checked against the float32 model on the run's "
        "validation images (how much faster it is, too) and given its own check for "
        "unfamiliar pictures: from seconds to about a minute, depending on the net."
    )
    state.int8_build(entry, "Build the int8 copy", "evaluate_int8")


def export_box(entry: dict, model, names: list[str]) -> None:
    """Exports the model for another runtime, checks it, and offers the file and a snippet."""
    st.caption(
        "Writes the model for another runtime, loads it back with that runtime and checks "
        f"its probabilities against Keras on {export.VERIFY_IMAGES} images (the int8 copy: "
        "against its own answers where it was built)."
    )
    fmt = st.selectbox(
        "Format",
        export.ALL_FORMATS,
        format_func=export.FORMAT_LABELS.get,
        key="evaluate_export_format",
    )
    unavailable = export.onnx_unavailable_reason() if fmt in ("onnx", export.INT8) else None
    if not unavailable and fmt == export.INT8 and state.int8_record(entry) is None:
        unavailable = export.NO_INT8_COPY
    if unavailable:
        st.warning(unavailable)
    model_key = (entry["path"], registry.model_version(entry["path"]))
    if st.button("Export", key="evaluate_export_run", disabled=bool(unavailable)):
        st.session_state.evaluate_export = None
        with st.spinner(f"Exporting and checking {export.FORMAT_LABELS[fmt]}…"):
            try:
                result = export.export_model(entry["path"], fmt)
                # The project's layers a .keras file needs, read once, not on every rerun.
                project = export.project_layers(result.path) if fmt == "keras" else {}
                st.session_state.evaluate_export = {
                    "model": model_key,
                    "result": result,
                    "project": project,
                }
            except CnnError as err:
                st.error(md_sentence(err))
    done = st.session_state.get("evaluate_export")
    if done and done["model"] == model_key:  # not an export of another (or older) model
        result = done["result"]
        st.success(f"Exported and checked: `{result.path}`")
        e = st.columns(4)
        e[0].metric("Size", export.human_size(result.size_bytes))
        e[1].metric(
            "Max difference",
            f"{result.max_abs_diff:.1e}",
            help=f"Largest probability difference to {result.against} on {result.images} images.",
        )
        e[2].metric("Tolerance", f"{result.tolerance:.0e}")
        e[3].metric("Time", f"{result.seconds:.1f} s")
        st.caption(f"Checked with {result.runtime}. {result.note}")
        name, mime = export.download_name(result)
        st.download_button(
            f"Download {md(name)}",
            lambda: export.download_bytes(result),
            file_name=name,
            mime=mime,
            on_click="ignore",
            key="evaluate_export_download",
        )
        starts, head = registry.framing(entry["card"]), st.empty()  # the sentence, above
        fit = st.selectbox(
            "Framing of the photo",
            FITS,
            index=FITS.index(starts),
            format_func=FRAMING_LABELS.get,
            key="evaluate_snippet_fit",
            width=260,  # its longest choice, whole
            help="How the code below makes a photo that is not square into the model's "
            "square input, as the Classify page's Framing: it starts as that page starts "
            "for this model.",
        )
        project = done["project"]
        needs = (
            "its runtime, numpy, Pillow and this project's "
            + ", ".join(f"`{module}`" for module in project)
            + " (the .keras file is built of its layers)"
            if project
            else "only its runtime, numpy and Pillow"
        )
        as_page = "as the Classify page starts for this model" if fit == starts else "as chosen"
        head.markdown(
            f"**Use this model elsewhere** (needs {needs}; it reads a photo {as_page}: "
            f"{FRAMINGS[fit]}):"
        )
        st.code(
            export.snippet(
                result.format, result.path, model.input_shape[1], names, fit=fit, project=project
            ),
            language="python",
            wrap_lines=True,
        )
