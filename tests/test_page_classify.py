"""AppTest: uploads on the Classify page give predictions; bad files get their sentence."""

import io
import json

import numpy as np
from PIL import Image

from core import inspect
from core.classify import classify_bytes
from core.evaluate import with_temperature
from core.images import decode_views
from core.model import load_model
from ui.text import probability


def _temperature(run_dir) -> float:
    """The calibration temperature of a run's card, which the page applies (1 without)."""
    card = json.loads((run_dir / "model_card.json").read_text())
    return (card.get("calibration") or {}).get("temperature", 1.0)


def _png(colour, fmt="PNG"):
    buf = io.BytesIO()
    Image.new("RGB", (48, 36), colour).save(buf, fmt)
    return buf.getvalue()


def test_no_upload_shows_how_to_start(app, trained_run):
    from core.novelty import MIN_IMAGES

    app.switch_page("pages/classify.py").run()
    assert not app.exception
    assert "Upload one or more images" in app.info[0].value
    # A run of a few dozen training images is too small for a novelty check: the page says so.
    card = json.loads((trained_run / "model_card.json").read_text())
    trained = card["data"]["split_sizes"]["train"]
    assert trained < MIN_IMAGES and not (trained_run / "novelty.npz").exists()
    assert (
        f"No check for unfamiliar pictures: its run learnt from {trained} training images, too "
        f"few to learn what they look like (it takes {MIN_IMAGES})."
    ) in [c.value for c in app.caption]


def test_probe_from_the_dataset_page_is_classified_like_core_does(app, trained_run):
    pixels = np.full((32, 32, 3), (20, 200, 30), np.uint8)
    app.session_state["probe"] = {"pixels": pixels, "caption": "val #3 (dog)", "label": 1}
    app.switch_page("pages/classify.py").run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    expected = classify_bytes(
        model, buf.getvalue(), ["cat", "dog", "frog"], temperature=_temperature(trained_run)
    )
    shown = [m.value for m in app.markdown if m.value.startswith("**val #3")]
    assert shown == [f"**val #3 (dog)** → **{expected.label}** ({expected.confidence:.1%})"]
    chart = json.loads(app.get("plotly_chart")[0].proto.spec)
    bars = chart["data"][0]
    assert bars["y"][0] == expected.label and bars["text"][0] == f"{expected.confidence:.1%}"
    assert chart["layout"]["yaxis"]["autorange"] == "reversed"  # the likeliest on top
    assert chart["layout"]["xaxis"] == {"range": [0, 1], "tickformat": ".0%"}  # as the labels


def test_a_32_pixel_probe_is_resized_for_a_64_pixel_model(data_app, image_folder):
    from core.data import load_dataset
    from core.train import TrainConfig, start_run, train

    config = TrainConfig(data=str(image_folder), epochs=1, batch_size=16, image_size=64)
    dataset = load_dataset(image_folder, image_size=64, val_fraction=0.1, seed=0)
    run = train(config, dataset, start_run(config))
    data_app.session_state["sidebar_model"] = run.name
    pixels = np.full((32, 32, 3), (20, 200, 30), np.uint8)
    data_app.session_state["probe"] = {"pixels": pixels, "caption": "val #1 (dog)", "label": 1}
    data_app.switch_page("pages/classify.py").run()
    assert not data_app.exception
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    expected = classify_bytes(load_model(run / "model.keras"), buf.getvalue(), dataset.class_names)
    assert f"**val #1 (dog)** → **{expected.label}** ({expected.confidence:.1%})" in [
        m.value for m in data_app.markdown
    ]


def test_uploads_are_classified_and_a_bad_file_gets_its_own_sentence(app, trained_run):
    app.switch_page("pages/classify.py").run()
    files = [
        ("green.png", _png((20, 200, 30)), "image/png"),
        ("notes.png", b"hello, I am text", "image/png"),
        ("my_[red].png", _png((220, 20, 20)), "image/png"),  # shown as named, not as markup
        ("blue.avif", _png((20, 30, 210), "AVIF"), "image/avif"),
    ]
    app.file_uploader(key="classify_files").set_value(files).run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")
    for name, data, _ in (files[0], files[2], files[3]):
        expected = classify_bytes(
            model, data, ["cat", "dog", "frog"], temperature=_temperature(trained_run)
        )
        shown = {"my_[red].png": r"my\_\[red\].png"}.get(name, name)
        line = f"**{shown}** → **{expected.label}** ({expected.confidence:.1%})"
        assert line in [m.value for m in app.markdown], line
    [error] = [e.value for e in app.error]
    assert error.startswith("notes.png: This file is not an image (it looks like text).")
    table = app.dataframe[0].value
    assert table["file"].tolist() == ["green.png", "notes.png", "my_[red].png", "blue.avif"]
    assert table["prediction"].tolist()[1] == ""
    downloads = [b.label for b in app.get("download_button")]
    assert downloads == ["Download results (CSV)", "Download a contact sheet (HTML)"]


def test_the_same_photo_under_another_name_is_shown_under_that_name(app, trained_run):
    # The answers are cached across sessions by what decides them: once by the bytes alone,
    # which showed a second user the first one's file name.
    app.switch_page("pages/classify.py").run()
    green, blue = _png((20, 200, 30)), _png((20, 30, 210))
    for names in (("IMG_0001.png", "blue.png"), ("cat.png", "sky.png")):
        files = [(name, data, "image/png") for name, data in zip(names, (green, blue), strict=True)]
        app.file_uploader(key="classify_files").set_value(files).run()
        assert not app.exception
        assert app.dataframe[0].value["file"].tolist() == list(names)


def test_the_cards_temperature_calibrates_the_probabilities_shown(app, trained_run):
    app.switch_page("pages/classify.py").run()
    assert (  # a completed run, but on a folder of 36 images
        "Probabilities as the model gives them: its card has no calibration temperature (its "
        "run's 9 validation images were too few to fit one on: it takes 200 or more)."
    ) in [c.value for c in app.caption]
    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    card["calibration"] = {
        "temperature": 0.5,
        "images": 5000,
        "ece": 0.2,
        "ece_scaled": 0.01,
        "ece_held_out": 0.015,
    }
    card_path.write_text(json.dumps(card))  # as `python -m core.registry calibrate` writes it
    app.run()
    assert (
        "Probabilities calibrated: temperature 0.5, fitted on 5,000 validation images; "
        "calibration error 0.200 before it, 0.015 after (on images it was not fitted on)."
    ) in " ".join(c.value for c in app.caption)
    data = _png((20, 200, 30))
    app.file_uploader(key="classify_files").set_value([("green.png", data, "image/png")]).run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")
    raw = classify_bytes(model, data, ["cat", "dog", "frog"])
    sharp = classify_bytes(model, data, ["cat", "dog", "frog"], temperature=0.5)
    assert sharp.label == raw.label and sharp.confidence > raw.confidence
    assert f"**green.png** → **{sharp.label}** ({sharp.confidence:.1%})" in [
        m.value for m in app.markdown
    ]


def test_framing_crops_each_photo_to_its_centre_square(app, trained_run):
    image = Image.new("RGB", (96, 32), (220, 20, 20))  # red sides, a green centre square
    image.paste((20, 200, 30), (32, 0, 64, 32))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    app.switch_page("pages/classify.py").run()
    app.file_uploader(key="classify_files").set_value([("wide.png", buf.getvalue(), "image/png")])
    app.run()
    # The run learnt from square images (its card says none were not): cropped first.
    assert json.loads((trained_run / "model_card.json").read_text())["data"]["not_square"] == 0
    assert app.selectbox(key="classify_fit").value == "crop"
    model = load_model(trained_run / "model.keras")
    lines = []
    for fit in ("squash", "crop", "three"):
        app.selectbox(key="classify_fit").set_value(fit).run()
        assert not app.exception
        t = _temperature(trained_run)
        pred = classify_bytes(model, buf.getvalue(), ["cat", "dog", "frog"], temperature=t, fit=fit)
        lines.append(f"**wide.png** → **{pred.label}** ({pred.confidence:.1%})")
        assert lines[-1] in [m.value for m in app.markdown], lines[-1]
        original, seen = (app.get("image")[i].proto.imgs[0].caption for i in (0, 1))
        dimmed = "Original, dimmed where cropped"
        assert original == {"squash": "Original", "crop": dimmed, "three": "Original"}[fit]
        three = "What the model sees: 3 squares, answers averaged"
        assert seen == (three if fit == "three" else "What the model sees (32 px)")
        evidence = app.get("image")[2].proto.imgs[0].caption
        each = ", each square's own" if fit == "three" else ""
        assert evidence == f"Grad-CAM: {pred.label}{each}"
    assert len(set(lines)) == 3  # the framings answer differently: the check bites
    # Three squares' occlusion: each square answered alone, on one colour scale.
    app.radio(key="classify_evidence").set_value("Occlusion").run()
    assert not app.exception
    views = decode_views(buf.getvalue(), 32, "three")
    t = _temperature(trained_run)
    found = [
        inspect.occlusions(model, view, temperature=t)[["cat", "dog", "frog"].index(pred.label)]
        for view in views
    ]
    lowest = min(f.lowest for f in found)
    assert app.get("image")[2].proto.imgs[0].caption == (
        f"Occlusion: {pred.label}, each square's own, red for, blue against (hiding one patch "
        f"of a square leaves as little as {probability(lowest)})"
    )


def test_flip_tta_averages_the_answer_with_the_mirror_images(app, trained_run):
    """Both ways in, a dataset sample and an upload, answer from the image and its mirror."""
    from core.classify import describe, predict_pixels

    pixels = np.zeros((32, 32, 3), np.uint8)
    pixels[:, :12] = (20, 200, 30)  # not its own mirror image
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    app.session_state["probe"] = {"pixels": pixels, "caption": "val #5 (frog)", "label": 2}
    app.switch_page("pages/classify.py").run()
    app.file_uploader(key="classify_files").set_value([("half.png", buf.getvalue(), "image/png")])
    app.selectbox(key="classify_tta").set_value("flip").run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")
    views = predict_pixels(model, np.stack([pixels, pixels[:, ::-1]]))
    t = _temperature(trained_run)
    plain, flip = (
        describe(pixels, with_temperature(p, t), ["cat", "dog", "frog"])
        for p in (views[0], views.mean(0))
    )
    shown = [m.value for m in app.markdown]
    for name in ("val #5 (frog)", "half.png"):
        lines = [f"**{name}** → **{p.label}** ({p.confidence:.1%})" for p in (plain, flip)]
        assert lines[0] != lines[1]  # the mirror changes the answer shown: the check bites
        assert lines[1] in shown, lines[1]


def test_grad_cam_is_computed_once_per_image_not_on_every_rerun(app, monkeypatch):
    from core import inspect

    calls, grad_cam = [], inspect.grad_cam

    def counting(model, pixels, **kwargs):  # the real Grad-CAM, its calls counted
        calls.append(kwargs.get("class_index"))
        return grad_cam(model, pixels, **kwargs)

    monkeypatch.setattr(inspect, "grad_cam", counting)
    app.switch_page("pages/classify.py").run()
    files = [(f"{c}.png", _png(c), "image/png") for c in ((20, 200, 30), (220, 20, 20))]
    app.file_uploader(key="classify_files").set_value(files).run()
    assert not app.exception and len(calls) == 2
    captions = [img.captions for img in app.image]
    app.run()  # any widget change reruns the page
    assert not app.exception and len(calls) == 2
    assert [img.captions for img in app.image] == captions  # the same three pictures each


def test_a_picture_unlike_the_training_images_is_flagged(data_app):
    """The shipped model and its checks: with int8 answers the copy's own
    (assets/default_model/novelty.int8.npz), without them the float model's (novelty.npz).
    Noise is flagged as the check in core flags it, and the table says so for each file."""
    from core import novelty, quantize
    from core.registry import default_model_path

    data_app.switch_page("pages/classify.py").run()
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    files = [("noise.png", buf.getvalue(), "image/png"), ("grey.png", _png((90, 90, 90)), "")]
    data_app.file_uploader(key="classify_files").set_value(files).run()
    path = default_model_path()
    model = load_model(path)
    pixels = np.stack([classify_bytes(model, d, list("0123456789")).pixels for _, d, _ in files])
    int8 = quantize.Int8Model(quantize.int8_path(path))
    for fast, check, seen_by in (
        (True, novelty.load(quantize.novelty_path(path), int8, int8.path), "int8 copy's"),
        (False, novelty.load(path.parent / novelty.FILE, model, path), "model's"),
    ):
        data_app.toggle(key="classify_int8").set_value(fast).run()
        assert not data_app.exception
        captions = " ".join(c.value for c in data_app.caption)
        assert f"Pictures unlike the training images are flagged: what the {seen_by}" in captions
        flagged = check.unfamiliar(check.scores(pixels))
        assert flagged[0]  # noise
        warnings = [
            w.value for w in data_app.warning if "unlike the images the model learnt" in w.value
        ]
        assert len(warnings) == flagged.sum()
        assert "less typical than every one of the 2,000 training images that set" in warnings[0]
        assert f"compared with {check.fit_images:,} training images, and 2,000 others" in captions
        assert data_app.dataframe[0].value["unfamiliar"].tolist() == flagged.tolist()


def test_an_int8_copy_that_computes_otherwise_on_this_cpu_is_not_used(
    app, trained_run, image_folder
):
    """The copy's answers to fixed pictures where it was built are in its record; answers
    here further apart (as the 8-bit copies gave on CPUs without VNNI) leave it unused."""
    from core import quantize

    assert quantize.main([str(trained_run), "--data", str(image_folder)]) == 0
    record = json.loads((trained_run / "int8.json").read_text())
    int8 = quantize.Int8Model(trained_run / quantize.INT8_FILE)
    assert quantize.drift(int8, record) < 1e-5  # the same CPU
    app.switch_page("pages/classify.py").run()
    assert [t.key for t in app.toggle if t.key == "classify_int8"] == ["classify_int8"]
    record["probe_probs"] = (np.asarray(record["probe_probs"]) * 0.5).tolist()  # another CPU's
    (trained_run / "int8.json").write_text(json.dumps(record))
    assert quantize.drift(int8, record) > quantize.PROBE_TOLERANCE
    app.run()
    assert not app.exception
    assert any("int8 copy computes differently on this CPU" in w.value for w in app.warning)
    assert not [t for t in app.toggle if t.key == "classify_int8"]  # float32 answers


def test_a_build_from_data_of_other_classes_fails_with_a_sentence(app, trained_run):
    from core import builds, quantize

    model_path = trained_run / "model.keras"
    app.switch_page("pages/classify.py").run()
    assert any("this model has no int8 copy" in c.value for c in app.caption)
    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps(card | {"class_names": ["ant", "bee", "cow"]}))
    app.run()
    app.button(key="classify_int8_build").click().run()  # the sidebar's data has other classes
    assert builds.wait(model_path, timeout=120)["state"] == "failed"
    app.run()
    assert [e.value for e in app.error] == [
        "The last int8 build failed: The data has other classes than the model: build its "
        "int8 copy from the data it was trained on."
    ]
    assert not (trained_run / quantize.INT8_FILE).exists()
    assert app.button(key="classify_int8_build")  # offered again
    app.text_input(key="sidebar_path").input("").run()  # no data: refused, and why
    assert app.button(key="classify_int8_build").disabled
    assert [i.value for i in app.info][:1] == [
        "Choose the model's data in the sidebar: the copy is calibrated on its images."
    ]
    # A build that succeeds: tests/e2e/test_int8_build.py presses this button in Chromium.


def test_a_copy_that_is_not_the_one_its_record_checked_is_not_used(app, trained_run, image_folder):
    from core import quantize

    assert quantize.main([str(trained_run), "--data", str(image_folder)]) == 0
    app.switch_page("pages/classify.py").run()
    assert app.toggle(key="classify_int8").value
    copy = trained_run / quantize.INT8_FILE
    copy.write_bytes(copy.read_bytes() + b"\0")  # a build ended between the copy and its record
    app.run()
    assert not app.exception
    assert not [t for t in app.toggle if t.key == "classify_int8"]
    assert any("this model has no int8 copy" in c.value for c in app.caption)


def test_occlusion_shows_what_hiding_each_part_of_an_upload_costs(app, trained_run):
    from core import inspect
    from core.images import decode_image

    app.switch_page("pages/classify.py").run()
    app.radio(key="classify_evidence").set_value("Occlusion")
    files = [(f"{c}.png", _png(c), "image/png") for c in ((20, 200, 30), (220, 20, 20))]
    app.file_uploader(key="classify_files").set_value(files).run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")
    t = _temperature(trained_run)
    for (name, data, _), image in zip(files, app.image[2::3], strict=True):
        hidden = inspect.occlusions(model, decode_image(data, 32), t)  # as the page reads it
        shown = int(np.argmax(hidden[0].probs))
        label = ["cat", "dog", "frog"][shown]
        assert image.captions == [
            f"Occlusion: {label}, red for, blue against (hiding one square leaves "
            f"{probability(hidden[shown].lowest)})"
        ], name


def test_try_to_fool_it_shows_the_smallest_change_core_finds(app, trained_run):
    from core.adversarial import EPSILONS, fool
    from core.images import decode_image
    from ui.adversarial import png_bytes

    app.switch_page("pages/classify.py").run()
    app.toggle(key="classify_fool").set_value(True)
    files = [(f"{c}.png", _png(c), "image/png") for c in ((128, 128, 128), (20, 200, 30))]
    app.file_uploader(key="classify_files").set_value(files).run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")
    t = _temperature(trained_run)
    names = ["cat", "dog", "frog"]
    found = [fool(model, decode_image(data, 32), t) for _, data, _ in files]  # as the page reads
    # This 2-epoch model answers grey near a tie and green by a margin 16 levels cannot close.
    assert np.isfinite(found[0].epsilon) and np.isinf(found[1].epsilon)
    eps = int(found[0].epsilon)
    level = "level" if eps == 1 else "levels"
    was, now = (
        f"**{names[k]}** ({p[k]:.1%})"
        for k, p in (
            (found[0].class_before, found[0].before),
            (found[0].class_after, found[0].after),
        )
    )
    again = classify_bytes(model, png_bytes(found[0].image), names, temperature=t)
    [text] = [m.value for m in app.markdown if m.value.startswith("Moving no pixel")]
    assert text.split("  \n") == [
        f"Moving no pixel more than **{eps} {level} of 255** turns the float32 model's {was} "
        f"into {now}.",
        # No int8 copy, no check for unfamiliar pictures (too few images to fit one).
        f"This page (float32 model) answers the changed picture **{again.label}** "
        f"({again.confidence:.1%}).",
    ]
    captions = [c for image in app.image for c in image.captions]
    assert f"Changed by at most {eps} of 255" in captions
    assert f"The change, {127 / eps:.0f}x stronger (grey: none)" in captions
    green = found[1].class_before
    [info] = [i.value for i in app.info]
    assert info.startswith(
        f"No change of up to {EPSILONS[-1]} of 255 levels in each pixel that the search found "
        f"turns the float32 model's answer away from **{names[green]}** "
        f"({found[1].before[green]:.1%})."
    )
    # A class of one's choosing for the grey picture: the search aims at it.
    chooser = app.selectbox(key="classify_fool_target_0")
    assert chooser.options == ["any other class"] + [
        n for k, n in enumerate(names) if k != found[0].class_before
    ]
    target = names.index(chooser.options[2])  # the second class it does not answer
    chooser.select(target).run()
    assert not app.exception
    aimed = fool(model, decode_image(files[0][1], 32), t, target)
    grey = f"**{names[aimed.class_before]}** ({aimed.before[aimed.class_before]:.1%})"
    if np.isfinite(aimed.epsilon):
        assert aimed.class_after == target
        level = "level" if aimed.epsilon == 1 else "levels"
        line = (
            f"Moving no pixel more than **{int(aimed.epsilon)} {level} of 255** turns the "
            f"float32 model's {grey} into **{names[target]}** ({aimed.after[target]:.1%})."
        )
        assert line in [m.value.split("  \n")[0] for m in app.markdown]
    else:
        assert any(
            i.value.startswith(
                f"No change of up to {EPSILONS[-1]} of 255 levels in each pixel that the search "
                f"found makes the float32 model answer **{names[target]}** instead of {grey}."
            )
            for i in app.info
        )
    app.toggle(key="classify_fool").set_value(False).run()
    assert not [m for m in app.markdown if m.value.startswith("Moving no pixel")]
    assert not app.info


def test_three_squares_are_fooled_together_and_the_picture_found_holds_all_three(app, trained_run):
    from core.adversarial import fool_views
    from core.images import decode_views
    from ui.adversarial import png_bytes

    image = Image.new("RGB", (96, 32), (128, 128, 128))  # grey: near a tie (above)
    image.paste((120, 136, 128), (64, 0, 96, 32))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    app.switch_page("pages/classify.py").run()
    app.selectbox(key="classify_fit").set_value("three")
    app.toggle(key="classify_fool").set_value(True)
    app.file_uploader(key="classify_files").set_value([("wide.png", buf.getvalue(), "image/png")])
    app.run()
    assert not app.exception
    model, names = load_model(trained_run / "model.keras"), ["cat", "dog", "frog"]
    t = _temperature(trained_run)
    found = fool_views(model, decode_views(buf.getvalue(), 32, "three"), t)
    assert np.isfinite(found.epsilon) and found.image.shape == (32, 96, 3)
    eps = int(found.epsilon)
    # The page's answer for the PNG of the squares side by side, read as three squares.
    again = classify_bytes(model, png_bytes(found.image), names, temperature=t, fit="three")
    assert again.label == names[found.class_after]
    [text] = [m.value for m in app.markdown if m.value.startswith("Moving no pixel")]
    assert text.split("  \n")[1] == (
        f"This page (float32 model) answers the changed picture **{again.label}** "
        f"({again.confidence:.1%})."
    )
    before = found.before[found.class_before]
    assert f"float32 model's **{names[found.class_before]}** ({before:.1%})" in text
    captions = [c for image in app.image for c in image.captions]
    assert f"Changed by at most {eps} of 255, the squares side by side" in captions
    [note] = [c.value for c in app.caption if "The PNG below" in c.value]
    assert note.endswith("upload it again, read as three squares, and the model answers as here.")


def test_the_changed_pictures_answers_are_not_computed_again_on_a_rerun(app, monkeypatch):
    from core import classify

    calls, predict_checked = [], classify.predict_checked

    def counting(model, pixels, *args, **kwargs):  # the real answer, its calls counted
        calls.append(len(pixels))
        return predict_checked(model, pixels, *args, **kwargs)

    monkeypatch.setattr(classify, "predict_checked", counting)
    app.switch_page("pages/classify.py").run()
    app.toggle(key="classify_fool").set_value(True)
    files = [("grey.png", _png((128, 128, 128)), "image/png")]  # fooled: see the test above
    app.file_uploader(key="classify_files").set_value(files).run()
    assert not app.exception
    assert [m for m in app.markdown if m.value.startswith("Moving no pixel")]
    answered = len(calls)
    app.run()  # any widget change reruns the page
    assert not app.exception and len(calls) == answered


def test_a_model_whose_run_cropped_its_pictures_starts_cropped_and_says_why(app, trained_run):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    card["data"]["not_square"] = 1.0  # every picture was wide: squashed, it would start so
    card_path.write_text(json.dumps(card))
    app.switch_page("pages/classify.py").run()
    assert app.selectbox(key="classify_fit").value == "squash"
    card["train_config"]["fit"] = "crop"  # as `--fit crop` writes it
    card_path.write_text(json.dumps(card))
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)  # a new session
    fresh.session_state["sidebar_model"] = trained_run.name
    fresh.switch_page("pages/classify.py").run()
    assert not fresh.exception
    fit = fresh.selectbox(key="classify_fit")
    assert fit.value == "crop"
    assert fit.help.endswith(
        "This model starts cropped: its run cut the centre square out of each of its training "
        "pictures."
    )
