"""AppTest: the Evaluate page shows exactly what core.evaluate computes."""

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from core.data import load_dataset
from core.evaluate import evaluate, wilson_interval
from core.model import load_model
from tests.conftest import ROOT, as_read, plotly_values
from tests.mounts import needs_root, read_only
from ui.text import md, probability


def _top(pairs) -> str:
    """A gallery caption's first line as the page builds it: the answer, then runners-up of
    1% or more, each with `ui.text.probability`."""
    first, *others = pairs
    shown = [first, *(pair for pair in others if pair[1] >= 0.01)]
    return " · ".join(f"{c} {probability(q)}" for c, q in shown)


def _said(caption: str) -> str:
    """An image caption's first line: what the model said (the second is its file)."""
    return caption.split("  \n")[0]


def _expected(trained_run, image_folder, split="val", tta="none", seed=0, fraction=0.1):
    ds = load_dataset(image_folder, val_fraction=fraction, seed=seed)
    x, y = ds.split(split)
    return evaluate(load_model(trained_run / "model.keras"), x, y, ds.class_names, tta=tta)


def test_metrics_match_core_for_the_same_model_and_data(app, trained_run, image_folder):
    app.switch_page("pages/evaluate.py").run()
    assert not app.exception
    report = _expected(trained_run, image_folder)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Accuracy"] == f"{report.accuracy:.2%}"
    assert "Top-3 accuracy" not in metrics  # of three classes: always 100%
    assert metrics["Loss"] == f"{report.loss:.4f}"
    assert metrics["Images"] == f"{len(report.y_true):,}"
    assert "Balanced accuracy" not in metrics  # classes of one size: the accuracy says it
    assert app.toggle(key="evaluate_norm").value is False
    table = app.dataframe[0].value
    np.testing.assert_allclose(table["recall"].to_numpy(), report.per_class["recall"])
    # How sure those figures are: 3 images leave a wide interval.
    n = len(report.y_true)
    low, high = wilson_interval(round(report.accuracy * n), n)
    assert n == 3 and high - low > 0.4
    assert (
        f"On other images like these, drawn the same way, the accuracy would likely be between "
        f"{low:.1%} and {high:.1%} (95% Wilson interval of 3 images; four times as many "
        "images halve its width)."
    ) in [c.value for c in app.caption]
    low, high = report.recall_intervals()
    assert table["recall 95% interval"].tolist() == [
        f"{a:.3f}-{b:.3f}" for a, b in zip(low, high, strict=True)
    ]
    assert "recall_low" not in table.columns

    downloads = [b.label for b in app.get("download_button")]
    assert "Download a report (HTML)" in downloads  # its contents: tests/test_report.py, e2e
    app.selectbox(key="evaluate_tta").select("flip+shift").run()
    assert not app.exception
    shifted = _expected(trained_run, image_folder, tta="flip+shift")
    assert shifted.loss != report.loss  # six views, not one
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Loss"] == f"{shifted.loss:.4f}"
    assert metrics["Accuracy"] == f"{shifted.accuracy:.2%}"


def test_a_restarted_server_reads_the_predictions_from_disk(app, monkeypatch):
    import streamlit as st

    from core import evaluate as ev

    calls = []

    def counting(*args, **kwargs):
        calls.append(kwargs.get("progress", args[4] if len(args) > 4 else None))
        return predict_probs(*args, **kwargs)

    predict_probs = ev.predict_probs
    monkeypatch.setattr(ev, "predict_probs", counting)
    app.switch_page("pages/evaluate.py").run()
    assert not app.exception
    assert len(calls) == 1 and calls[0] is not None  # under the progress bar
    shown = {m.label: m.value for m in app.metric}
    st.cache_data.clear()
    st.cache_resource.clear()  # as after a restart: nothing left in memory
    app.run()
    assert not app.exception
    assert len(calls) == 1
    assert {m.label: m.value for m in app.metric} == shown


def test_another_model_is_compared_on_the_same_images(app, trained_run, image_folder):
    from core.evaluate import compare

    other = trained_run.parent / "20260101-000000-other_b"
    shutil.copytree(trained_run, other)
    model = load_model(other / "model.keras")
    kernel = model.layers[-1].kernel
    kernel.assign(kernel.numpy()[:, ::-1])  # another model: classes' weights swapped about
    model.save(other / "model.keras")
    app.switch_page("pages/evaluate.py").run()
    box = app.selectbox(key="evaluate_other")
    index = next(i for i, label in enumerate(box.options) if label.startswith(other.name))
    box.select_index(index).run()
    assert not app.exception
    mine = _expected(trained_run, image_folder)
    ds = load_dataset(image_folder, val_fraction=0.1, seed=0)
    x, y = ds.split("val")
    theirs = evaluate(load_model(other / "model.keras"), x, y, ds.class_names)
    diff = compare(mine, theirs)
    assert len(diff.only_a) + len(diff.only_b) > 0  # the two differ somewhere
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Its accuracy"] == f"{theirs.accuracy:.2%}"
    assert metrics["Right only with it"] == f"{len(diff.only_b):,}"
    assert metrics["Right only with the active model"] == f"{len(diff.only_a):,}"
    assert metrics["McNemar p-value"] == f"{diff.p_value:.2g}"
    said = diff.verdict("the active model", other.name).replace("_", "\\_")  # not emphasis
    assert said in [m.value for m in app.markdown]
    assert not [w for w in app.warning if "flatter" in w.value]  # it learnt from a twin folder

    # As if it had learnt from this folder, holding out a quarter of it with seed 1.
    card = json.loads((other / "model_card.json").read_text())
    card["train_config"] |= {"data": str(image_folder), "val_fraction": 0.25, "seed": 1}
    (other / "model_card.json").write_text(json.dumps(card))
    app.run()
    box = app.selectbox(key="evaluate_other")  # a changed card is a new option: chosen again
    box.select_index(next(i for i, o in enumerate(box.options) if o.startswith(other.name))).run()
    assert not app.exception
    its_training = load_dataset(image_folder, val_fraction=0.25, seed=1).files["train"]
    learnt = len(set(ds.files["val"]) & set(its_training))
    [warned] = [w.value for w in app.warning if "flatter" in w.value]  # the active one: none
    name = other.name.replace("_", "\\_")  # markdown's escape, as above
    assert warned == (
        f"{name} held out other images than this page when it trained, and learnt from "
        f"{learnt} of these 3: its figures here flatter it."
    )


def test_the_confidence_section_shows_calibration_before_and_after_the_temperature(
    app, trained_run, image_folder
):
    from core.evaluate import calibration, with_temperature

    app.switch_page("pages/evaluate.py").run()
    report = _expected(trained_run, image_folder)
    before = calibration(report.probs, report.y_true).summary()
    captions = [c.value for c in app.caption]
    assert f"Probabilities as the model gives them. {before}" in captions
    assert not any("after its temperature" in c for c in captions)  # none in the card
    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    card["calibration"] = {"temperature": 2.5, "images": 5000, "ece": 0.2, "ece_scaled": 0.01}
    card_path.write_text(json.dumps(card))
    app.run()
    after = calibration(with_temperature(report.probs, 2.5), report.y_true).summary()
    assert after != before
    captions = [c.value for c in app.caption]
    assert f"Probabilities after its temperature 2.5. {after}" in captions
    assert any(
        "measured on the images it was fitted on; the card: temperature 2.5, fitted on 5,000 "
        "validation images; calibration error 0.200 before it, 0.010 after (on the images it "
        "was fitted on)." in c
        for c in captions
    )


def test_answering_only_when_sure_is_measured_on_the_split(app, trained_run, image_folder):
    from core.evaluate import selective, with_temperature

    app.switch_page("pages/evaluate.py").run()
    assert not any(c.proto.id.endswith("evaluate_selective") for c in app.get("plotly_chart"))
    app.selectbox(key="evaluate_split").select("train").run()  # 3 val images: too few
    assert not app.exception
    report = _expected(trained_run, image_folder, split="train")
    curve = selective(report.probs, report.y_true)
    [said] = [c.value for c in app.caption if c.value.startswith("A model that may abstain")]
    i = int(np.searchsorted(curve["coverage"], 0.9 - 1e-9))
    assert (
        f"answering the {curve['coverage'][i]:.0%} it is surest of (top probability "
        f"{curve['threshold'][i]:.2f} or more), it is right on {curve['accuracy'][i]:.1%}"
    ) in said
    assert f"answering all, {report.accuracy:.1%}." in said and "temperature" not in said
    chart = next(c for c in app.get("plotly_chart") if "evaluate_selective" in c.proto.id)
    assert plotly_values(json.loads(chart.proto.spec)["data"][0]["y"]) == pytest.approx(
        curve["accuracy"].tolist()
    )
    # After a temperature the thresholds are those Classify shows; the curve is the same.
    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    card["calibration"] = {"temperature": 0.5, "images": 500, "ece": 0.2, "ece_scaled": 0.01}
    card_path.write_text(json.dumps(card))
    app.run()
    sharp = selective(with_temperature(report.probs, 0.5), report.y_true)
    [said] = [c.value for c in app.caption if c.value.startswith("A model that may abstain")]
    assert f"(top probability {sharp['threshold'][i]:.2f} or more)" in said
    assert "(after the temperature 0.5, as Classify shows it)" in said


def test_photos_of_some_of_its_classes_are_framed_as_the_classify_page_frames_them(
    tmp_path, monkeypatch, capsys
):
    """The shipped model learnt from square CIFAR-10 images and its run squashed: the Classify
    page crops a photo's centre square for it, and so does the Evaluate page for a folder of
    some of its classes (not its own data), and says so; so does the command line."""
    from streamlit.testing.v1 import AppTest

    from core import evaluate as ev
    from tests.conftest import write_framed_folder

    folder = tmp_path / "framed"
    write_framed_folder(folder, per_class=12)  # 2:1, red ends a crop cuts off
    monkeypatch.setenv("CNN_DATA", str(folder))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    model = load_model(ROOT / "assets/default_model/model.keras")
    figures = {}
    for fit in ("crop", "squash"):
        x, y = load_dataset(folder, val_fraction=0.1, seed=0, fit=fit).split("val")
        probs = ev.restricted(ev.predict_probs(model, x), [3, 5, 6])
        figures[fit] = ev.report_from_probs(probs, y, ["cat", "dog", "frog"]).loss
    assert figures["crop"] != figures["squash"]
    assert {m.label: m.value for m in at.metric}["Loss"] == f"{figures['crop']:.4f}"
    said = "The pictures were cut to their centre squares, as the Classify page frames a photo"
    assert said in at.info[0].value
    shipped = ROOT / "assets/default_model/model.keras"
    assert ev.main([str(shipped), "--data", str(folder), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert said in out and f"loss {figures['crop']:.4f}" in out
    # A run on the folder (squashing), compared beside it, reads the folder its own way.
    from core.train import TrainConfig, start_run, train

    config = TrainConfig(data=str(folder), epochs=1, batch_size=16)
    run = train(config, load_dataset(folder, val_fraction=0.1, seed=0), start_run(config))
    x, y = load_dataset(folder, val_fraction=0.1, seed=0).split("val")
    own = ev.evaluate(load_model(run / "model.keras"), x, y, ["cat", "dog", "frog"])
    at.run()
    choice = at.selectbox(key="evaluate_other")
    choice.select(next(o for o in choice.options if run.name in o)).run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Its accuracy"] == f"{own.accuracy:.2%}"
    at.button(key="evaluate_robust_run").click().run()
    at.button(key="evaluate_robust_other_run").click().run()  # on its own reading too
    assert not at.exception
    [chart] = [c for c in at.get("plotly_chart") if "evaluate_robust_chart" in c.proto.id]
    attacked = plotly_values(json.loads(chart.proto.spec)["data"][3]["y"])
    assert attacked[0] == pytest.approx(own.accuracy)


def test_no_temperature_is_fitted_on_some_of_the_models_classes(
    app, trained_run, tmp_path, monkeypatch
):
    """A model without a temperature, scored on a folder of two of its three classes: no
    offer to fit one there (the card's temperature is for all its classes)."""
    import core.evaluate as ev
    from tests.conftest import write_image_folder

    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    card["train_config"]["val_fraction"] = 0.1  # its validation split, as the page splits
    card_path.write_text(json.dumps(card))
    monkeypatch.setattr(ev, "MIN_CALIBRATION_IMAGES", 1)
    monkeypatch.setattr(ev, "MIN_CALIBRATION_MISTAKES", 0)
    folder = tmp_path / "two"
    write_image_folder(folder, per_class=12, classes=("cat", "dog", "frog"), size=40)
    shutil.rmtree(folder / "dog")
    monkeypatch.setenv("CNN_DATA", str(folder))
    app.switch_page("pages/evaluate.py").run()
    assert not app.exception
    assert "the dataset has 2 of them (cat, frog)" in app.info[0].value
    assert not [b for b in app.button if b.key == "evaluate_calibrate"]
    assert "calibration" not in json.loads(card_path.read_text())


def test_choosing_a_cell_shows_its_images(app, trained_run, image_folder):
    app.switch_page("pages/evaluate.py").run()
    report = _expected(trained_run, image_folder)
    true, pred = np.unravel_index(np.argmax(report.confusion), report.confusion.shape)
    names = report.class_names
    first = "the most confident mistakes" if report.accuracy < 1 else "the least confident correct"
    assert app.selectbox(key="evaluate_why_from").value == first
    app.selectbox(key="evaluate_true").select(names[1]).run()  # the default is the first
    assert app.selectbox(key="evaluate_why_from").value == "the chosen cell"  # looked at below
    app.selectbox(key="evaluate_true").select(names[true]).run()
    app.selectbox(key="evaluate_pred").select(names[pred]).run()
    count = int(report.confusion[true, pred])
    assert any(
        f"**{count} image{'' if count == 1 else 's'}** of *{names[true]}* predicted as "
        f"*{names[pred]}*" in m.value
        for m in app.markdown
    )
    assert not app.exception


def test_a_cell_gallery_reads_in_rows_left_to_right(app, trained_run, image_folder):
    app.switch_page("pages/evaluate.py").run()
    app.selectbox(key="evaluate_split").select("train").run()
    report = _expected(trained_run, image_folder, split="train")
    names = report.class_names
    right = int(np.argmax(np.diag(report.confusion)))  # the largest cell: over one row
    app.selectbox(key="evaluate_true").select(names[right]).run()
    app.selectbox(key="evaluate_pred").select(names[right]).run()
    assert not app.exception
    cell = report.cell(right, right)[:24]
    assert len(cell) > 6
    expected = [_top(report.top_k(i)) for i in cell]
    shown = [img.captions[0] for img in app.image if img.captions and "·" in img.captions[0]]
    assert [_said(c) for c in shown] == expected  # row after row, not column by column
    # Under each, its file: where to fix a wrong label. "0.png in cat": a browser breaks
    # no line between "/" and a digit, and cut "train/horse/2694.jpg" after "2694.jp".
    files = [Path(f) for f in load_dataset(image_folder, val_fraction=0.1, seed=0).files["train"]]
    assert [c.split("  \n")[1] for c in shown] == [
        md(f"{files[i].name} in {files[i].parent}") for i in cell
    ]


def test_a_model_without_a_temperature_gets_one_fitted_on_its_validation_split(
    app, trained_run, image_folder, monkeypatch
):
    import core.evaluate as ev

    def offered():
        return [b for b in app.button if b.key == "evaluate_calibrate"]

    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    assert "calibration" not in card  # too few validation images at the end of training
    app.switch_page("pages/evaluate.py").run()
    # The run held out 25% of the folder; the page's 10% split is not its validation split.
    assert card["train_config"]["val_fraction"] == 0.25 and not offered()
    card["train_config"]["val_fraction"] = 0.1  # as a run started from the Train page
    card_path.write_text(json.dumps(card))
    app.run()
    # Its 3 validation images: no button that could only fail, and the reason why.
    assert not offered()
    assert (
        "This model's card has no temperature, and none can be fitted: 3 validation images "
        "are too few to fit a temperature on (it takes 200 or more)."
    ) in [c.value for c in app.caption]
    monkeypatch.setattr(ev, "MIN_CALIBRATION_IMAGES", 1)
    monkeypatch.setattr(ev, "MIN_CALIBRATION_MISTAKES", 0)
    app.run()
    app.button(key="evaluate_calibrate").click().run()
    assert not app.exception
    report = _expected(trained_run, image_folder)
    record = json.loads(card_path.read_text())["calibration"]
    assert record == ev.calibration_record(report.probs, report.y_true)
    note = ev.calibration_note(record)
    assert f"Calibrated: {note}. The Classify page now shows probabilities after it." in [
        s.value for s in app.success
    ]
    assert not offered()  # it has one now
    card_path.write_text(json.dumps(card))  # without it again
    app.selectbox(key="evaluate_split").select("train").run()
    assert not app.exception and not offered()  # never fitted on training images
    app.selectbox(key="evaluate_split").select("val").run()
    assert offered()


def test_gallery_percentages_follow_the_cards_temperature(app, trained_run, image_folder):
    from core.evaluate import mistakes, with_temperature

    def captions():
        return [_said(i.proto.imgs[0].caption) for i in app.get("image")]

    app.switch_page("pages/evaluate.py").run()
    report = _expected(trained_run, image_folder)
    names = report.class_names
    first = report.cell(0, 0)[0]  # the default cell: the first class predicted as itself
    raw = _top(report.top_k(first))
    assert captions()[0] == raw
    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    card["calibration"] = {"temperature": 0.25, "images": 5000, "ece": 0.2, "ece_scaled": 0.01}
    card_path.write_text(json.dumps(card))
    app.run()
    assert not app.exception
    sharp = with_temperature(report.probs, 0.25)
    order = np.argsort(-sharp[first])[:3]
    assert captions()[0] == _top([(names[c], sharp[first, c]) for c in order])
    assert captions()[0] != raw
    assert "Percentages after the model's temperature 0.25, as on Classify." in [
        c.value for c in app.caption
    ]
    wrong = mistakes(sharp, report.y_true)
    if len(wrong["index"]):  # the most confident mistake, as sharpened
        t, p, conf = wrong["true"][0], wrong["pred"][0], wrong["confidence"][0]
        assert f"{names[t]} → {names[p]} {probability(conf)}" in captions()


def _default_model_app(tmp_path, monkeypatch):
    """The Evaluate page with the shipped model, on a folder of CIFAR-10's ten class names."""
    from streamlit.testing.v1 import AppTest

    from core import export
    from tests.conftest import ROOT, write_image_folder

    write_image_folder(tmp_path / "ten", per_class=10, classes=export.EXAMPLE_CLASSES, size=32)
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "ten"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["sidebar_model"] = "default"
    return at.switch_page("pages/evaluate.py").run()


def test_export_section_exports_the_default_model(tmp_path, monkeypatch):
    import subprocess
    import sys

    from PIL import Image

    from core import export
    from core.classify import classify_bytes
    from core.model import load_model
    from core.registry import DEFAULT_MODEL_DIR
    from tests.conftest import ROOT

    at = _default_model_app(tmp_path, monkeypatch)
    at.selectbox(key="evaluate_export_format").select("keras").run()
    at.button(key="evaluate_export_run").click().run()
    assert not at.exception and not at.error

    written = Path(os.environ["CNN_RUNS_DIR"]) / "default-model/exports/keras/model.keras"
    assert written.read_bytes() == (DEFAULT_MODEL_DIR / "model.keras").read_bytes()
    assert not (DEFAULT_MODEL_DIR / "exports").exists()
    assert any(str(written) in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Max difference"] == "0.0e+00"
    # The shipped fast model computes in bf16, so its exports are held to the bf16 tolerance.
    bf16 = export.is_bfloat16(load_model(DEFAULT_MODEL_DIR / "model.keras", as_saved=True))
    tolerance = export.BFLOAT16_TOLERANCE if bf16 else export.FLOAT32_TOLERANCE
    assert metrics["Tolerance"] == f"{tolerance:.0e}"
    assert metrics["Size"] == export.human_size(written.stat().st_size)
    assert "Download model.keras" in [b.label for b in at.get("download_button")]
    # The shipped model learnt from CIFAR-10's square images: its snippet crops, as the
    # Classify page starts for it.
    code = export.snippet(
        "keras",
        written,
        32,
        export.EXAMPLE_CLASSES,
        fit="crop",
        project=export.project_layers(written),
    )
    assert code.strip() in [c.value.strip() for c in at.code]
    assert "\nimport core.model  # this project's ScaledBias" in code  # Keras needs it to load
    assert "photo = photo.crop((left, top, left + side, top + side))" in code
    said = " ".join(m.value for m in at.markdown)
    assert "(needs its runtime, numpy, Pillow and this project's `core.model` (the" in said
    assert "as the Classify page starts for this model: the photo's centre square, cropped" in said
    # Three squares, chosen: the code reads a wide photo as the Classify page does.
    at.selectbox(key="evaluate_snippet_fit").select("three").run()
    assert not at.exception
    photo = tmp_path / "wide.jpg"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (60, 150, 3), np.uint8)).save(photo)
    code = export.snippet(
        "keras",
        written,
        32,
        export.EXAMPLE_CLASSES,
        image=str(photo),
        fit="three",
        project=export.project_layers(written),
    )
    shown = [c.value.strip() for c in at.code]
    assert code.replace(str(photo), "photo.jpg").strip() in shown
    said = " ".join(m.value for m in at.markdown)
    assert "it reads a photo as chosen: three squares of the photo (both ends and the" in said
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    name, prob = ran.stdout.split()
    expected = classify_bytes(
        load_model(DEFAULT_MODEL_DIR / "model.keras"),
        photo.read_bytes(),
        list(export.EXAMPLE_CLASSES),
        fit="three",
    )
    assert name == expected.label  # the file computes in bf16: the bf16 tolerance
    assert float(prob) == pytest.approx(expected.confidence, abs=export.BFLOAT16_TOLERANCE)


def test_export_section_says_why_onnx_is_unavailable(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as where tf2onnx is not installed
    at = _default_model_app(tmp_path, monkeypatch)
    at.selectbox(key="evaluate_export_format").select("onnx").run()
    assert any(w.value.startswith("ONNX export is unavailable here") for w in at.warning)
    assert at.button(key="evaluate_export_run").disabled
    assert not at.exception


def test_a_64_pixel_model_is_evaluated_on_the_dataset_resized_to_64(data_app, image_folder):
    from core.train import TrainConfig, start_run, train

    config = TrainConfig(data=str(image_folder), epochs=1, batch_size=16, image_size=64)
    dataset = load_dataset(image_folder, image_size=64, val_fraction=0.1, seed=0)
    run = train(config, dataset, start_run(config))
    data_app.session_state["sidebar_model"] = run.name
    data_app.switch_page("pages/evaluate.py").run()
    assert not data_app.exception
    x, y = dataset.split("val")
    assert x.shape[1:] == (64, 64, 3)
    report = evaluate(load_model(run / "model.keras"), x, y, dataset.class_names)
    assert {m.label: m.value for m in data_app.metric}["Accuracy"] == f"{report.accuracy:.2%}"


@pytest.fixture
def mislabelled(image_folder):
    """`image_folder` with four cat images filed as dogs: mistakes the model is sure of."""
    for path in sorted((image_folder / "cat").iterdir())[:4]:
        path.rename(image_folder / "dog" / f"was-cat-{path.name}")
    return image_folder


def _explained(monkeypatch) -> list[tuple[int, np.ndarray, bool]]:
    """The class, image and whether any evidence was found, of every Grad-CAM the page
    computes through the real function."""
    from core import inspect

    calls, grad_cam = [], inspect.grad_cam

    def recording(model, pixels, **kwargs):
        result = grad_cam(model, pixels, **kwargs)
        calls.append((kwargs["class_index"], np.array(pixels), bool(result[0].max() > 0)))
        return result

    monkeypatch.setattr(inspect, "grad_cam", recording)
    return calls


def _why_captions(app) -> list[str]:
    return [_said(i.proto.imgs[0].caption) for i in app.get("image")][-3:]


def test_why_this_answer_sets_a_mistakes_answer_against_its_label(
    app, trained_run, mislabelled, monkeypatch
):
    from core.data import load_dataset
    from core.evaluate import mistakes

    calls = _explained(monkeypatch)
    app.switch_page("pages/evaluate.py").run()  # the val split first
    calls.clear()  # those of the train split from here
    app.selectbox(key="evaluate_split").select("train").run()
    assert not app.exception
    report = _expected(trained_run, mislabelled, split="train")
    names, probs = report.class_names, report.probs
    wrong = mistakes(probs, report.y_true)
    assert len(wrong["index"]) > 1  # the cats filed as dogs
    chosen = app.selectbox(key="evaluate_why_mistakes")
    assert (
        chosen.options
        == [
            f"#{i}: {names[t]} → {names[p]} {probability(c)}"
            for i, t, p, c in zip(
                wrong["index"], wrong["true"], wrong["pred"], wrong["confidence"], strict=True
            )
        ][:18]
    )
    x, _ = load_dataset(mislabelled, val_fraction=0.1, seed=0).split("train")
    expected = []
    for i, t, p in zip(wrong["index"][:2], wrong["true"], wrong["pred"], strict=False):
        chosen.set_value(int(i)).run()  # the first is the one shown at first
        assert not app.exception
        expected += [(p, i), (t, i)]  # the answer, then the label
        assert [c for c, _, _ in calls] == [c for c, _ in expected]
        for (_, pixels, _), (_, shown) in zip(calls, expected, strict=True):
            np.testing.assert_array_equal(pixels, x[shown])
        captions = _why_captions(app)
        for caption, (_, _, found) in zip(captions[1:], calls[-2:], strict=True):
            assert caption.endswith(": none found") != found
        assert captions[0] == f"train #{i}, labelled {names[t]}"
        answer, label = probability(probs[i, p]), probability(probs[i, t])
        assert captions[1].startswith(f"Evidence for {names[p]} (the answer, {answer})")
        assert captions[2].startswith(f"Evidence for {names[t]} (the label, {label})")
    chosen.set_value(int(wrong["index"][0])).run()
    assert not app.exception and len(calls) == 4  # kept: not computed again


def test_why_this_answer_keeps_the_group_a_user_chose(app, trained_run, mislabelled):
    app.switch_page("pages/evaluate.py").run()
    why_from = lambda: app.selectbox(key="evaluate_why_from")  # noqa: E731
    assert why_from().value == "the least confident correct"  # no mistake on val: shown
    why_from().select("the chosen cell").run()
    why_from().select("the least confident correct").run()  # now chosen
    app.selectbox(key="evaluate_split").select("train").run()  # the cats filed as dogs
    assert why_from().value == "the least confident correct"
    why_from().select("the most confident mistakes").run()
    app.selectbox(key="evaluate_split").select("val").run()  # none there: chosen all the same
    assert why_from().value == "the most confident mistakes"
    assert "No images in the most confident mistakes." in [i.value for i in app.info]
    app.selectbox(key="evaluate_split").select("train").run()
    assert why_from().value == "the most confident mistakes"


def test_why_this_answer_sets_a_right_answer_against_its_runner_up(
    app, trained_run, image_folder, monkeypatch
):
    from core.evaluate import least_confident_correct

    calls = _explained(monkeypatch)
    app.switch_page("pages/evaluate.py").run()
    app.selectbox(key="evaluate_split").select("train").run()
    report = _expected(trained_run, image_folder, split="train")
    assert report.accuracy == 1.0  # the folder the model was trained on: no mistake
    assert f"No mistakes on these {len(report.y_true)} images." in [c.value for c in app.caption]
    # No mistake to show: the least confident right answers instead, without a choice.
    assert app.selectbox(key="evaluate_why_from").value == "the least confident correct"
    assert not app.info
    unsure = least_confident_correct(report.probs, report.y_true, 18)
    # The Image kept from the val split, where there were no mistakes either: one of these.
    i = int(re.match(r"train #(\d+), labelled ", _why_captions(app)[0]).group(1))
    assert i in unsure.tolist()
    answer, runner_up = np.argsort(-report.probs[i])[:2]
    assert answer == report.y_true[i]
    assert [c for c, _, _ in calls][-2:] == [answer, runner_up]
    name = report.class_names[runner_up]
    assert _why_captions(app)[2].startswith(
        f"Evidence for {name} (the runner-up, {probability(report.probs[i, runner_up])})"
    )


def test_why_this_answer_by_occlusion_hides_each_part_for_both_classes(
    app, trained_run, mislabelled
):
    from core import inspect
    from core.data import load_dataset
    from core.evaluate import mistakes

    app.switch_page("pages/evaluate.py").run()
    app.selectbox(key="evaluate_split").select("train").run()
    app.radio(key="evaluate_why_method").set_value("Occlusion").run()
    assert not app.exception
    report = _expected(trained_run, mislabelled, split="train")
    wrong = mistakes(report.probs, report.y_true)
    i, t, p = (int(wrong[k][0]) for k in ("index", "true", "pred"))
    x, _ = load_dataset(mislabelled, val_fraction=0.1, seed=0).split("train")
    hidden = inspect.occlusions(load_model(trained_run / "model.keras"), x[i])
    names, probs = report.class_names, report.probs
    captions = _why_captions(app)
    assert captions[1] == (
        f"Evidence for {names[p]} (the answer, {probability(probs[i, p])}): hiding one square "
        f"leaves {probability(hidden[p].lowest)}"
    )
    label = probability(probs[i, t])
    assert captions[2].startswith(f"Evidence for {names[t]} (the label, {label}): ")
    assert captions[2].endswith(f"leaves {probability(hidden[t].lowest)}")
    strongest = max(np.abs(hidden[p].drop).max(), np.abs(hidden[t].drop).max())
    [caption] = [c.value for c in app.caption if c.value.startswith("Occlusion hides each 8×8")]
    assert caption.endswith(f"a change of {strongest * 100:.1f} points.")


def test_why_this_answer_follows_the_chosen_cell(app, trained_run, mislabelled):
    app.switch_page("pages/evaluate.py").run()
    app.selectbox(key="evaluate_split").select("train").run()
    report = _expected(trained_run, mislabelled, split="train")
    names = report.class_names
    cells = [(t, p) for t in range(3) for p in range(3) if len(report.cell(t, p))]
    assert len(cells) > 1
    app.selectbox(key="evaluate_why_from").select("the chosen cell").run()
    for t, p in cells:
        app.selectbox(key="evaluate_true").select(names[t]).run()
        app.selectbox(key="evaluate_pred").select(names[p]).run()
        assert not app.exception
        chosen = app.selectbox(key="evaluate_why_cell")
        assert [int(o.split(":")[0][1:]) for o in chosen.options] == list(report.cell(t, p))
        assert chosen.value in report.cell(t, p)  # the choice in another cell is not kept
        assert _why_captions(app)[0] == f"train #{chosen.value}, labelled {names[t]}"
    empty = [(t, p) for t in range(3) for p in range(3) if not len(report.cell(t, p))]
    if empty:
        app.selectbox(key="evaluate_true").select(names[empty[0][0]]).run()
        app.selectbox(key="evaluate_pred").select(names[empty[0][1]]).run()
        assert not app.exception
        assert "No images in the chosen cell." in [i.value for i in app.info]


def test_the_most_frequent_mistakes_open_their_cell(app, trained_run, mislabelled):
    from core.evaluate import top_confusions

    app.switch_page("pages/evaluate.py").run()
    app.selectbox(key="evaluate_split").select("train").run()
    report = _expected(trained_run, mislabelled, split="train")
    names, support = report.class_names, report.per_class["support"]
    pairs = top_confusions(report.confusion)
    assert pairs and pairs[0][:2] == (1, 0)  # the cats filed as dogs: labelled dog, said cat
    buttons = [b for b in app.button if b.key.startswith("evaluate_pair_")]
    assert [b.label for b in buttons] == [f"{names[t]} → {names[p]} · {n:,}" for t, p, n in pairs]
    t, p, n = pairs[0]
    assert buttons[0].help == (
        f"{n:,} of the {support[t]:,} {names[t]} images ({n / support[t]:.0%}) were answered "
        f"{names[p]}. Show them."
    )
    app.selectbox(key="evaluate_why_from").select("the most confident mistakes").run()
    t, p, n = pairs[-1]
    app.button(key=f"evaluate_pair_{t}_{p}").click().run()
    assert not app.exception
    assert (app.selectbox(key="evaluate_true").value, app.selectbox(key="evaluate_pred").value) == (
        names[t],
        names[p],
    )
    images = "1 image" if n == 1 else f"{n} images"
    assert f"**{images}** of *{names[t]}* predicted as *{names[p]}*" in [
        m.value for m in app.markdown
    ]
    assert app.selectbox(key="evaluate_why_from").value == "the chosen cell"


@pytest.mark.parametrize(
    "button, title", [("evaluate_open_filters", "Filters"), ("evaluate_open_classify", "Classify")]
)
def test_why_this_answer_opens_the_image_on_another_page(
    app, trained_run, mislabelled, button, title
):
    from core.data import load_dataset
    from core.evaluate import mistakes

    app.switch_page("pages/evaluate.py").run()
    app.selectbox(key="evaluate_split").select("train").run()
    report = _expected(trained_run, mislabelled, split="train")
    i = int(mistakes(report.probs, report.y_true)["index"][1])
    app.selectbox(key="evaluate_why_mistakes").set_value(i).run()
    app.button(key=button).click().run()
    assert not app.exception
    probe = app.session_state["probe"]
    ds = load_dataset(mislabelled, val_fraction=0.1, seed=0)
    x, y = ds.split("train")
    said = f"train #{i} ({report.class_names[y[i]]}) · {ds.files['train'][i]}"
    assert probe["label"] == int(y[i]) and probe["caption"] == said
    np.testing.assert_array_equal(probe["pixels"], x[i])
    assert title in app.title[0].value


def test_the_feature_space_places_each_image_where_core_does(app, trained_run, mislabelled):
    from core.data import load_dataset
    from core.inspect import feature_space
    from tests.conftest import plotly_values

    app.switch_page("pages/evaluate.py").run()
    app.selectbox(key="evaluate_split").select("train").run()
    charts = len(app.get("plotly_chart"))
    kept = Path(os.environ["CNN_CACHE_DIR"]).glob("space-*.npz")
    assert len(list(kept)) == 2  # the predictions of val and train kept their spaces
    app.toggle(key="evaluate_space").set_value(True).run()
    assert not app.exception
    assert len(app.get("plotly_chart")) == charts + 1
    specs = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    [spec] = [s for s in specs if any(t["type"] == "scattergl" for t in s["data"])]
    traces = spec["data"]
    x, _ = load_dataset(mislabelled, val_fraction=0.1, seed=0).split("train")
    report = _expected(trained_run, mislabelled, split="train")
    expected = feature_space(load_model(trained_run / "model.keras"), x)
    shown = {
        int(i): (px, py, t["name"], t["marker"]["symbol"])
        for t in traces
        for i, px, py in zip(
            [c[0] for c in t.get("customdata", [])],
            plotly_values(t.get("x", [])),
            plotly_values(t.get("y", [])),
            strict=True,
        )
    }
    assert sorted(shown) == list(range(len(x)))  # every image once
    answers = report.probs.argmax(axis=1)
    for i, (px, py, name, symbol) in shown.items():
        np.testing.assert_allclose([px, py], expected["xy"][i], rtol=1e-4, atol=1e-4)
        assert name == report.class_names[report.y_true[i]]
        assert symbol == ("circle" if answers[i] == report.y_true[i] else "x")
    assert {"circle", "x"} <= {s for *_, s in shown.values()}  # the cats filed as dogs
    layout = spec["layout"]
    assert layout["xaxis"]["title"]["text"] == (
        f"first direction ({expected['explained'][0]:.0%} of the variance)"
    )
    assert any(
        f"The model's classifier reads {expected['dims']:,} numbers per image" in c.value
        for c in app.caption
    )


def test_a_model_without_a_dense_layer_has_no_feature_space_and_says_so(app, trained_run):
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(3, 3, name="conv1_1")(x)  # one map per class, averaged: no Dense
    x = layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, layers.Activation("softmax")(x)).save(trained_run / "model.keras")
    app.switch_page("pages/evaluate.py").run()
    app.toggle(key="evaluate_space").set_value(True).run()
    assert not app.exception
    assert any(
        i.value.startswith("No feature space for this model:") and "has no Dense layer" in i.value
        for i in app.info
    )


def test_the_least_typical_images_are_those_the_novelty_check_scores_highest(
    app, trained_run, image_folder
):
    from core import novelty
    from tests.conftest import class_images

    app.switch_page("pages/evaluate.py").run()
    assert any(c.value.startswith("No check for unfamiliar pictures:") for c in app.caption)
    model = load_model(trained_run / "model.keras")
    check = novelty.fit(model, class_images(100, 3)[0])  # as `core.registry novelty` would
    check.save(trained_run / novelty.FILE, trained_run / "model.keras")
    app.run()
    app.toggle(key="evaluate_novelty").set_value(True).run()
    assert not app.exception
    x, _ = load_dataset(image_folder, val_fraction=0.1, seed=0).split("val")
    scores = check.scores(x)
    flagged = check.unfamiliar(scores)
    [said] = [c.value for c in app.caption if "less typical than 99% of held-out" in c.value]
    assert said.startswith(f"{flagged.sum():,} of these {len(x):,} images ({flagged.mean():.1%})")
    expected = [f"{scores[i]:.1f}" for i in np.argsort(-scores, kind="stable")]
    tails = [_said(c).rsplit(" · ", 1)[-1] for img in app.image for c in img.captions]
    runs = [tails[k : k + len(x)] for k in range(len(tails))]
    assert expected in runs  # the gallery, least typical first
    assert "the least typical" in app.selectbox(key="evaluate_why_from").options
    assert list(Path(os.environ["CNN_CACHE_DIR"]).glob("novelty-*.npy"))  # kept on disk


def test_a_trained_model_gets_an_int8_copy_that_the_classify_page_then_answers_with(
    app, trained_run, image_folder
):
    from core import builds, quantize

    def offered():
        return app.button(key="evaluate_int8")

    model_path = trained_run / "model.keras"
    app.switch_page("pages/classify.py").run()
    assert not [t for t in app.toggle if t.key == "classify_int8"]
    assert any("this model has no int8 copy" in c.value for c in app.caption)

    card_path = trained_run / "model_card.json"
    app.switch_page("pages/evaluate.py").run()
    assert not offered().disabled
    offered().click().run()
    assert not app.exception and not app.error
    assert builds.status(model_path)["state"] in ("building", "done")
    assert any("Building the int8 copy in its own process" in c.value for c in app.caption)
    assert builds.wait(model_path, timeout=120)["state"] == "done"
    app.run()
    record = quantize.read_record(model_path)
    # Checked on what the run held out (25% of the folder), not on the sidebar's 10% split.
    assert record is not None and record["check_split"] == "val"
    held_out = load_dataset(image_folder, val_fraction=0.25, seed=0).split("val")[1]
    assert record["images"] == len(held_out)
    assert json.loads(card_path.read_text())["int8"]["agreement"] == record["agreement"]
    shown = f"This model has an int8 copy: {record['accuracy']:.1%} on {record['images']:,} val"
    assert any(c.value.startswith(shown) for c in app.caption)
    assert not [b for b in app.button if b.key == "evaluate_int8"]  # built: nothing to offer

    app.switch_page("pages/classify.py").run()
    assert not app.exception
    assert app.toggle(key="classify_int8").value
    assert not any("this model has no int8 copy" in c.value for c in app.caption)

    # A copy that computes otherwise on this CPU (as one built elsewhere) is built again here.
    halved = record | {"probe_probs": (np.asarray(record["probe_probs"]) * 0.5).tolist()}
    (trained_run / "int8.json").write_text(json.dumps(halved))
    app.switch_page("pages/evaluate.py").run()
    assert any("int8 copy computes differently on this CPU" in w.value for w in app.warning)
    offered().click().run()
    assert builds.wait(model_path, timeout=120)["state"] == "done"
    app.run()
    assert not app.exception and not app.warning
    assert quantize.read_record(model_path)["probe_probs"] == record["probe_probs"]


def test_a_build_in_progress_is_shown_with_its_steps_and_stops_from_the_page(app, trained_run):
    from core import builds, quantize
    from core.fileio import read_json

    model_path = trained_run / "model.keras"
    app.switch_page("pages/evaluate.py").run()
    app.button(key="evaluate_int8").click().run()
    deadline = time.monotonic() + 60
    while not builds.status(model_path)["lines"]:  # its first line: loading the data
        assert time.monotonic() < deadline
        time.sleep(0.05)
    app.run()
    [steps] = [c.value for c in app.code if "for the int8 copy of" in c.value]
    assert steps.startswith("Loading ")
    # Held where it is: on 27 images the build can end before the page's rerun reaches
    # the Stop button (seen under a full suite's load). Stop's SIGCONT lets it end.
    os.kill(read_json(model_path.parent / builds.JOB_FILE)["pid"], signal.SIGSTOP)
    app.button(key="evaluate_int8_stop").click().run()
    assert builds.status(model_path)["state"] == "stopped"
    assert quantize.read_record(model_path) is None
    assert app.button(key="evaluate_int8")  # offered again
    assert "The last int8 build was stopped; nothing it wrote is used." in [
        c.value for c in app.caption
    ]


@needs_root
def test_an_int8_copy_that_cannot_be_written_is_a_sentence_and_nothing_is_written(app, trained_run):
    before = sorted(p.name for p in trained_run.iterdir())
    app.switch_page("pages/evaluate.py").run()
    with read_only(trained_run):
        app.button(key="evaluate_int8").click().run()
    assert not app.exception
    assert [as_read(e.value) for e in app.error] == [
        f"The int8 copy could not be written to {trained_run}: Read-only file system."
    ]
    assert sorted(p.name for p in trained_run.iterdir()) == before
    assert app.button(key="evaluate_int8")  # offered again


def test_the_export_section_offers_the_int8_copy_once_there_is_one(app, trained_run, image_folder):
    from core import export, quantize

    app.switch_page("pages/evaluate.py").run()
    app.selectbox(key="evaluate_export_format").select(export.INT8).run()
    assert export.NO_INT8_COPY in [w.value for w in app.warning]
    assert app.button(key="evaluate_export_run").disabled
    assert quantize.main([str(trained_run), "--data", str(image_folder)]) == 0
    app.run()
    assert not app.warning and not app.button(key="evaluate_export_run").disabled
    app.button(key="evaluate_export_run").click().run()
    assert not app.exception and not app.error
    written = trained_run / "exports" / export.INT8 / "model.int8.onnx"
    assert written.read_bytes() == (trained_run / quantize.INT8_FILE).read_bytes()
    assert f"Exported and checked: `{written}`" in [s.value for s in app.success]
    assert {m.label: m.value for m in app.metric}["Tolerance"] == "1e-02"
    assert any("The model's int8 copy:" in c.value for c in app.caption)
    code = export.snippet(export.INT8, written, 32, ["cat", "dog", "frog"], fit="crop")
    assert code.strip() in [c.value.strip() for c in app.code]  # a run of square images


def test_robustness_is_measured_on_a_click_and_then_read_from_disk(
    app, trained_run, image_folder, monkeypatch
):
    import streamlit as st

    from core import adversarial
    from core import evaluate as core_evaluate
    from core.classify import predict_pixels
    from tests.conftest import plotly_values
    from ui.adversarial import robustness_summary

    looked = []
    real_if_kept = core_evaluate.robustness_if_kept
    monkeypatch.setattr(
        core_evaluate,
        "robustness_if_kept",
        lambda *a, **k: looked.append(1) or real_if_kept(*a, **k),
    )
    app.switch_page("pages/evaluate.py").run()
    app.toggle(key="evaluate_norm").set_value(True).run()  # a rerun before the click
    assert not app.exception
    assert len(looked) == 1  # the disk is looked at once a session, not on every rerun
    assert not [c for c in app.get("plotly_chart") if "evaluate_robust" in c.proto.id]
    app.button(key="evaluate_robust_run").click().run()
    assert not app.exception
    ds = load_dataset(image_folder, val_fraction=0.1, seed=0)
    x, y = ds.split("val")
    assert app.selectbox(key="evaluate_robust_images").options == [f"all {len(y)}"]
    rows = np.arange(len(y))  # a split under 200 images is measured whole
    model = load_model(trained_run / "model.keras")
    expected = adversarial.robustness(model, x[rows], y[rows])
    [chart] = [c for c in app.get("plotly_chart") if "evaluate_robust_chart" in c.proto.id]
    noise, attacked = json.loads(chart.proto.spec)["data"]
    np.testing.assert_allclose(plotly_values(attacked["y"]), expected["attacked"])
    np.testing.assert_allclose(plotly_values(noise["y"]), expected["noise"])
    # Each point's bar: its 95% interval over the 3 images (wide).
    low, high = wilson_interval(np.round(expected["attacked"] * len(y)), len(y))
    bars = attacked["error_y"]
    np.testing.assert_allclose(plotly_values(bars["array"]), high - expected["attacked"])
    np.testing.assert_allclose(plotly_values(bars["arrayminus"]), expected["attacked"] - low)
    assert robustness_summary(expected) in [m.value for m in app.markdown]
    assert not [b for b in app.button if b.key == "evaluate_robust_run"]  # done: no button
    # Under it, fooled images as they are and as changed, with what the model answers.
    fallen = np.flatnonzero(np.isfinite(expected["needed"]) & (expected["needed"] > 0))
    picks = fallen[np.linspace(0, len(fallen) - 1, min(6, len(fallen))).round().astype(int)]
    again = adversarial.smallest_change(model, x[rows][picks], y[rows][picks])
    answers = predict_pixels(model, again.images).argmax(-1)
    names = ds.class_names
    captions = [
        f"{names[y[rows][p]]} → {names[a]}, {int(e)} level{'' if e == 1 else 's'}"
        for p, a, e in zip(picks, answers, again.epsilon, strict=True)
    ]
    shown = [i.captions[0] for i in app.image if i.captions and " → " in i.captions[0]]
    assert shown and shown == captions and len(shown) == min(6, len(fallen))

    def refuse(*args, **kwargs):
        raise AssertionError("attacked again")

    monkeypatch.setattr(adversarial, "robustness", refuse)
    st.cache_data.clear()
    st.cache_resource.clear()
    app.session_state["_evaluate_robustness"] = {}  # as a new session after a restart
    app.run()
    assert not app.exception
    assert robustness_summary(expected) in [m.value for m in app.markdown]


def test_robustness_is_compared_with_another_model_on_the_same_images(
    app, trained_run, image_folder
):
    import shutil

    from core import adversarial
    from tests.conftest import plotly_values

    other = trained_run.with_name(trained_run.name + "-other")
    shutil.copytree(trained_run, other)
    changed = load_model(other / "model.keras")  # another model: kept results are by content
    kernel, bias = changed.get_layer("conv1_1").get_weights()
    changed.get_layer("conv1_1").set_weights([kernel * 0.5, bias])
    changed.save(other / "model.keras")
    app.switch_page("pages/evaluate.py").run()
    app.button(key="evaluate_robust_run").click().run()
    assert not app.exception
    hint = 'Choose a model under "Compare with another model" above'
    assert any(c.value.startswith(hint) for c in app.caption)
    choice = app.selectbox(key="evaluate_other")  # one choice for the comparisons above
    [label] = [o for o in choice.options if other.name in o]
    choice.select(label).run()
    assert not app.exception
    assert not any(c.value.startswith(hint) for c in app.caption)
    assert app.button(key="evaluate_robust_other_run").label.endswith(f"{other.name} too")
    [chart] = [c for c in app.get("plotly_chart") if "evaluate_robust_chart" in c.proto.id]
    assert len(json.loads(chart.proto.spec)["data"]) == 2  # not measured yet: one model
    app.button(key="evaluate_robust_other_run").click().run()
    assert not app.exception
    ds = load_dataset(image_folder, val_fraction=0.1, seed=0)
    x, y = ds.split("val")
    theirs = adversarial.robustness(load_model(other / "model.keras"), x, y)
    [chart] = [c for c in app.get("plotly_chart") if "evaluate_robust_chart" in c.proto.id]
    traces = json.loads(chart.proto.spec)["data"]
    assert len(traces) == 4 and traces[2]["name"].startswith(other.name)
    np.testing.assert_allclose(plotly_values(traces[3]["y"]), theirs["attacked"])
    np.testing.assert_allclose(plotly_values(traces[2]["y"]), theirs["noise"])
    assert traces[3]["line"]["dash"] == "dash"
    from ui.adversarial import robustness_summary

    assert f"{other.name}: {robustness_summary(theirs, lesson=False)}" in [
        m.value for m in app.markdown
    ]


def test_near_duplicates_of_training_images_are_scored_apart(app, trained_run, image_folder):
    from PIL import Image

    from core import near_duplicates as nd

    for path in sorted(image_folder.glob("cat/*.png")):  # a recompressed copy of each cat
        Image.open(path).save(path.with_name(f"copy-{path.stem}.jpg"), quality=95)
    app.switch_page("pages/evaluate.py").run()
    assert not app.exception
    app.button(key="evaluate_near_run").click().run()
    assert not app.exception
    ds = load_dataset(image_folder, val_fraction=0.1, seed=0)
    shared = nd.in_split(nd.near_duplicates(ds), "val", "train")
    assert 0 < shared.sum() < len(shared)
    report = evaluate(load_model(trained_run / "model.keras"), *ds.split("val"), ds.class_names)
    right = report.y_true == report.probs.argmax(axis=1)
    on, off = nd.accuracy_by_duplicate(right, shared)
    low, high = wilson_interval(right[shared].sum(), shared.sum())
    assert (
        f"{int(shared.sum())} of the {len(shared)} val images ({shared.mean():.1%}) are "
        f"near-duplicates of training images: accuracy {on:.1%} on them (95% interval "
        f"{low:.1%} to {high:.1%}), {off:.1%} on the others."
    ) in [c.value for c in app.caption]
    n = int(shared.sum())
    assert (
        f"The {n} most alike of the {n} val images with a near-duplicate in the training split: "
        "the model may remember them."
    ) in [c.value for c in app.caption]
    assert "the ones seen in training" in app.selectbox(key="evaluate_why_from").options
    app.selectbox(key="evaluate_why_from").select("the ones seen in training").run()
    assert not app.exception
    shown = app.selectbox(key="evaluate_why_training").options
    assert sorted(int(o.split(":")[0][1:]) for o in shown) == np.flatnonzero(shared).tolist()


def test_a_model_trained_without_the_copies_says_it_never_saw_them(app, trained_run, image_folder):
    from PIL import Image

    from core import near_duplicates as nd
    from core import train as train_mod

    for path in sorted(image_folder.glob("cat/*.png")):  # a recompressed copy of each cat
        Image.open(path).save(path.with_name(f"copy-{path.stem}.jpg"), quality=95)
    argv = ["--data", str(image_folder), "--epochs", "1", "--batch-size", "8", "--quiet"]
    assert train_mod.main([*argv, "--drop-near-duplicates", "--name", "unseen"]) == 0
    [run] = [p for p in trained_run.parent.iterdir() if p.name.endswith("-unseen")]
    left_out = json.loads((run / "model_card.json").read_text())["data"]["near_duplicates_left_out"]
    app.session_state["sidebar_model"] = run.name
    app.switch_page("pages/evaluate.py").run()
    assert not app.exception
    # The run found them for these images and kept them: the page reads them, no button.
    assert "evaluate_near_run" not in [b.key for b in app.button]
    ds = load_dataset(image_folder, val_fraction=0.1, seed=0)
    found = nd.near_duplicates(ds)
    shared = nd.in_split(found, "val", "train")
    # The run left out exactly the training images that copy a validation image.
    assert left_out == int(nd.in_split(found, "train", "val").sum()) >= shared.sum() > 0
    report = evaluate(load_model(run / "model.keras"), *ds.split("val"), ds.class_names)
    right = report.y_true == report.probs.argmax(axis=1)
    on, off = nd.accuracy_by_duplicate(right, shared)
    low, high = wilson_interval(right[shared].sum(), shared.sum())
    n = int(shared.sum())
    captions = [c.value for c in app.caption]
    assert (
        f"{n} of the {len(shared)} val images ({shared.mean():.1%}) have a near-duplicate among "
        f"the training images, which this model's run left out ({left_out} training images): "
        f"accuracy {on:.1%} on them (95% interval {low:.1%} to {high:.1%}), {off:.1%} on the "
        "others."
    ) in captions
    assert (
        f"The {n} most alike of the {n} val images with a near-duplicate in the training split: "
        "this model's run left those training images out: it never saw them."
    ) in captions
    # Other data of the same classes (six more cats: three val cats, not two): the page no
    # longer says what the run left out.
    for i in range(6):
        Image.open(image_folder / "cat" / "000.png").rotate(90 * (i % 3 + 1)).save(
            image_folder / "cat" / f"more-{i}.png"
        )
    import streamlit as st

    st.cache_data.clear()  # the folder's signature is looked at every 30 s at most
    st.cache_resource.clear()
    app.switch_page("pages/evaluate.py").run()
    assert {m.label: m.value for m in app.metric}["Images"] == "5"
    app.button(key="evaluate_near_run").click().run()
    assert not app.exception
    assert not [c.value for c in app.caption if "left out" in c.value or "never saw" in c.value]
    assert any("are near-duplicates of training images" in c.value for c in app.caption)


def test_uneven_classes_get_a_balanced_accuracy_beside_the_accuracy(app, trained_run, image_folder):
    from PIL import Image

    from core.datastats import imbalance

    for i, path in enumerate(sorted(image_folder.glob("cat/*.png")) * 3):  # 48 cats, 12 others
        Image.open(path).point(lambda v, k=i: min(255, v + 1 + k % 5)).save(
            path.with_name(f"more-{i}.png")
        )
    app.switch_page("pages/evaluate.py").run()
    assert not app.exception
    report = _expected(trained_run, image_folder)
    support = report.confusion.sum(axis=1)
    assert imbalance(support) >= 1.5
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Balanced accuracy"] == f"{report.balanced_accuracy():.2%}"
    assert [m.label for m in app.metric][:2] == ["Accuracy", "Balanced accuracy"]
    assert app.toggle(key="evaluate_norm").value is True  # the matrix in shares of each row
    assert any(
        "The balanced accuracy is the mean of the per-class recalls" in c.value
        and f"the largest class has {imbalance(support):.1f}x the images" in c.value
        for c in app.caption
    )


def test_a_model_of_other_classes_is_refused_with_both_lists(data_app, image_folder):
    """The shipped model (10 CIFAR-10 classes) on a folder with a class it does not know: a
    sentence, no page."""
    (image_folder / "frog").rename(image_folder / "unicorn")
    at = data_app
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception
    assert at.error[0].value == (
        "The model's 10 classes (airplane, automobile, bird, cat, deer, dog, frog, horse, "
        "ship, truck) are not the dataset's 3 (cat, dog, unicorn): train a model on it on the "
        "Train page, or choose another dataset."
    )


def test_a_model_of_more_classes_is_scored_among_the_datasets(
    data_app, trained_run, image_folder, monkeypatch
):
    """The shipped model on the cat, dog and frog folder: its answers among those three (its
    outputs 3, 5 and 6), how it answered over all ten, Grad-CAM and the attack on its own
    outputs; Home names the run of these classes alone."""
    from core import registry, runs
    from core.evaluate import (
        all_answers,
        predict_probs,
        report_from_probs,
        restricted,
        subset_sentence,
    )

    calls = _explained(monkeypatch)
    cifar = registry.available_models(runs.default_runs_dir())[0]["card"]["class_names"]
    at = data_app
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception and not at.error
    x, y = load_dataset(image_folder, val_fraction=0.1, seed=0).split("val")
    probs = predict_probs(load_model(ROOT / "assets/default_model/model.keras"), x)
    among = report_from_probs(restricted(probs, [3, 5, 6]), y, ["cat", "dog", "frog"])
    answers = all_answers(probs, y, [3, 5, 6], cifar)
    assert as_read(at.info[0].value) == subset_sentence(answers, cifar, ["cat", "dog", "frog"])
    assert {m.label: m.value for m in at.metric}["Accuracy"] == f"{among.accuracy:.2%}"
    assert at.expander[0].label == "Every answer, over all 10 of the model's classes"
    matrix = at.get("plotly_chart")[1].proto.spec
    assert '"x":["airplane","automobile","bird","cat"' in matrix.replace(" ", "")
    assert calls and {c for c, _, _ in calls} <= {3, 5, 6}  # Grad-CAM of the model's outputs
    at.button(key="evaluate_robust_run").click().run()
    assert not at.exception
    attacked = at.session_state["_evaluate_robustness"]
    (found,) = attacked.values()
    assert found["attacked"][0] == pytest.approx(answers["right"])  # at 0: its own outputs
    # Compared with the run of these three classes: scored, and attacked, on the labels.
    choice = at.selectbox(key="evaluate_other")
    [run_label] = [o for o in choice.options if trained_run.name in o]
    choice.select(run_label).run()
    at.button(key="evaluate_robust_other_run").click().run()
    assert not at.exception
    theirs = evaluate(load_model(trained_run / "model.keras"), x, y, ["cat", "dog", "frog"])
    [chart] = [c for c in at.get("plotly_chart") if "evaluate_robust_chart" in c.proto.id]
    attacked = plotly_values(json.loads(chart.proto.spec)["data"][3]["y"])
    assert theirs.accuracy > 0 and attacked[0] == pytest.approx(theirs.accuracy)
    label = next(m["label"] for m in registry.available_models(runs.default_runs_dir())[1:])
    assert trained_run.name in label
    at.switch_page("pages/home.py").run()
    assert [as_read(i.value) for i in at.info] == [
        "The dataset has 3 of the model's 10 classes (cat, dog, frog): the Evaluate page "
        "scores its answers among them, the Classify page answers with all 10. For a model "
        f"of these alone, choose {label} as the sidebar's Active model."
    ]


def test_a_model_that_learnt_from_centre_squares_is_evaluated_on_centre_squares(
    app, trained_run, image_folder
):
    from tests.conftest import write_framed_folder

    for name in ("model_card.json", "config.json"):
        path = trained_run / name
        saved = json.loads(path.read_text())
        (saved.get("train_config") or saved)["fit"] = "crop"  # as `--fit crop` writes it
        path.write_text(json.dumps(saved))
    shutil.rmtree(image_folder)
    write_framed_folder(image_folder, per_class=12)
    app.switch_page("pages/evaluate.py").run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")

    def loss(fit):
        ds = load_dataset(image_folder, val_fraction=0.1, seed=0, fit=fit)
        return evaluate(model, *ds.split("val"), ds.class_names).loss

    shown = {m.label: m.value for m in app.metric}["Loss"]
    assert shown == f"{loss('crop'):.4f}" != f"{loss('squash'):.4f}"


def test_a_run_that_held_out_other_images_is_said_to_be_flattered(app, trained_run, image_folder):
    app.switch_page("pages/evaluate.py").run()
    assert not [w for w in app.warning if "flatter" in w.value]  # it learnt from a twin folder
    # As if it had learnt from this folder, holding out a quarter of it with seed 1.
    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    card["train_config"] |= {"data": str(image_folder), "val_fraction": 0.25, "seed": 1}
    card_path.write_text(json.dumps(card))
    app.run()
    assert not app.exception
    here = load_dataset(image_folder, val_fraction=0.1, seed=0).files["val"]
    its_training = load_dataset(image_folder, val_fraction=0.25, seed=1).files["train"]
    trained_on = len(set(here) & set(its_training))
    assert trained_on  # of the three
    [said] = [w.value for w in app.warning if "flatter" in w.value]
    assert f"the run trained on {trained_on} of these 3 images, so the figures" in said
    assert f"(or `python -m core.evaluate {trained_run}`)" in said
    # Every page split as the run did: the page scores it on the images it held out.
    assert "sidebar_split" not in app.session_state
    app.button(key="evaluate_run_split").click().run()
    assert not app.exception and not [w for w in app.warning if "flatter" in w.value]
    own = _expected(trained_run, image_folder, seed=1, fraction=0.25)
    metrics = {m.label: m.value for m in app.metric}
    assert (metrics["Accuracy"], metrics["Images"]) == (f"{own.accuracy:.2%}", "9")
    shown = " ".join(c.caption for i in app.get("image") for c in i.proto.imgs)
    theirs = load_dataset(image_folder, val_fraction=0.25, seed=1).files["val"]

    def in_gallery(f):
        return md(f"{Path(f).name} in {Path(f).parent}") in shown

    assert any(map(in_gallery, theirs)) and not any(map(in_gallery, set(here) - set(theirs)))
    assert (
        "Split as the run chosen on the Evaluate page: a validation fraction of 0.25, seed 1."
        in [c.value for c in app.sidebar.caption]
    )
    app.switch_page("pages/dataset.py").run()  # every page splits so
    assert {m.label: m.value for m in app.metric}["val images"] == "9"
    assert (
        "Validation images: 25% of each class's, held out with seed 1 as the run chosen on the "
        "Evaluate page did; the Evaluate page scores models on them."
    ) in [c.value for c in app.caption]
    app.switch_page("pages/evaluate.py").run()
    app.sidebar.button(key="sidebar_default_split").click().run()  # back to the defaults
    assert [w for w in app.warning if "flatter" in w.value]
    assert app.session_state["sidebar_split"] is None
    # Another dataset is split as usual: the run's split was this folder's.
    app.button(key="evaluate_run_split").click().run()
    twin = image_folder.parent / "twin"
    shutil.copytree(image_folder, twin)
    app.sidebar.text_input(key="sidebar_path").set_value(str(twin)).run()
    assert not app.exception and not [c for c in app.sidebar.caption if "Split as" in c.value]
