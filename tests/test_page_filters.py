"""AppTest checks of the Filters & feature maps page on a real trained run."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import inspect, registry
from core.classify import classify_bytes
from core.model import load_model
from tests.conftest import ROOT, as_read, plotly_values
from ui.text import probability

PAGE = "pages/filters.py"


def probe_pixels():
    return np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def metrics(app):
    return {m.label: m.value for m in app.metric}


def opening_tab(app) -> str:
    """The label of the tab the page opens on."""
    [box] = [n for n in app.main.children.values() if n.type == "tab_container"]
    return [t.label for t in app.tabs][box.proto.tab_container.default_tab_index]


def test_filters_maps_and_grad_cam(app, trained_run):
    app.switch_page(PAGE).run()
    assert not app.exception
    assert app.title[0].value == "Filters & feature maps"
    assert [t.label for t in app.tabs] == [
        "Filters",
        "What units look for",
        "Feature maps",
        "Convolution explainer",
        "Learning replay",
    ]
    first_layer = app.get("image")[0]
    assert len(first_layer.value) == 32 and first_layer.captions[-1] == "31"
    assert app.caption[0].value.startswith("32 filters of 3×3×3")
    # No probe: a dataset sample, the image folder's first training image.
    assert app.radio(key="filters_source").value == "Dataset sample"
    assert opening_tab(app) == "Filters"
    assert metrics(app)["Predicted class"] in {"cat", "dog", "frog"}
    assert any(c.value.startswith("act1_1: 30×30×32") for c in app.caption)
    # Each layer's weights: how many, then their mean and spread, on a line of their own.
    [chart] = [c for c in app.get("plotly_chart") if c.key == "filters_hist_conv1_1"]
    weights = load_model(trained_run / "model.keras").get_layer("conv1_1").kernel.numpy()
    assert json.loads(chart.proto.spec)["layout"]["title"]["text"] == (
        f"conv1_1: {weights.size:,} weights<br><sup>mean {weights.mean():.3f}, std "
        f"{weights.std():.3f}</sup>"
    )

    app.selectbox(key="filters_cam_class").set_value(2)
    app.selectbox(key="filters_map_layer").set_value("pool2")
    app.selectbox(key="filters_layer").set_value("conv2_1").run()
    assert not app.exception
    captions = [c.value for c in app.caption]
    assert any(c.startswith("conv2_1: 64 filters × 32 input channels of 3×3") for c in captions)
    assert any("the first 16 × 16 shown" in c for c in captions)
    assert any(c.startswith("pool2: 6×6×64") for c in captions)
    assert "Evidence for frog (act2_1)" in as_read(app.get("image")[2].captions[0])


def test_upload_explains_refusals_and_accepts_images(app, trained_run):
    app.switch_page(PAGE).run()
    app.radio(key="filters_source").set_value("Upload").run()
    assert any("Choose an image" in i.value for i in app.info)
    app.file_uploader(key="filters_upload").set_value(("notes.png", b"hello", "image/png")).run()
    assert not app.exception
    assert app.error[0].value.startswith("notes.png: This file is not an image")

    wide = Image.new("RGB", (96, 32), (220, 20, 20))  # red sides, a green centre square
    wide.paste((20, 200, 30), (32, 0, 64, 32))
    png = io.BytesIO()
    wide.save(png, "PNG")
    app.file_uploader(key="filters_upload").set_value(("ok.png", png.getvalue(), "image/png"))
    app.run()
    assert not app.exception and not app.error
    # The run learnt from square images: the upload is cropped, as the Classify page starts.
    assert app.file_uploader(key="filters_upload").proto.help.endswith("centre square, cropped.")
    card = json.loads((trained_run / "model_card.json").read_text())
    model, t = load_model(trained_run / "model.keras"), registry.card_temperature(card)
    shown = [
        f"{probability(p.confidence)} probability"
        for p in (
            classify_bytes(model, png.getvalue(), card["class_names"], temperature=t, fit=fit)
            for fit in ("crop", "squash")
        )
    ]
    assert shown[0] != shown[1]  # the framings differ here: the check bites
    assert app.metric[0].label == "Predicted class" and app.metric[0].proto.delta == shown[0]


def test_explainer_and_replay_show_the_real_numbers(app, trained_run):
    pixels = probe_pixels()
    app.session_state["probe"] = {"pixels": pixels, "caption": "probe #7", "label": None}
    app.switch_page(PAGE).run()
    assert app.radio(key="filters_source").value == "Probe"
    assert opening_tab(app) == "Feature maps"  # the image sent is what the user came for
    assert "The image sent here: probe #7" in app.radio(key="filters_source").proto.options[0]
    app.selectbox(key="filters_ex_layer").set_value("conv2_1").run()
    app.number_input(key="filters_ex_channel").set_value(5)
    app.number_input(key="filters_ex_row").set_value(12)
    app.number_input(key="filters_ex_col").set_value(3)
    app.number_input(key="filters_ex_in").set_value(31).run()
    assert not app.exception

    expected = inspect.conv_explainer(
        load_model(trained_run / "model.keras"), pixels, "conv2_1", 12, 3, 5
    )
    shown = metrics(app)
    assert shown["z"] == f"{expected['z']:.4f}"
    assert shown["Σ x·w"] == f"{expected['sum']:.4f}"
    assert shown["a = relu(·)"] == f"{max(expected['z'], 0):.4f}"
    assert any("probe #7" in c.value and "rows 12…14" in c.value for c in app.caption)

    assert app.select_slider(key="filters_replay_epoch").value == 2
    assert "Epoch 2" in [s.value for s in app.main.subheader]
    app.select_slider(key="filters_replay_epoch").set_value(1).run()
    assert not app.exception
    assert "Epoch 1" in [s.value for s in app.main.subheader]
    tiles, probe = app.get("image")[-2:]
    assert len(tiles.value) == 32
    # The replay says which image its answers are for, and shows it.
    assert "Predicted probabilities for probe #7" in [c.value for c in app.caption]
    assert len(probe.value) == 1

    # Play steps through the epochs, from the last back to the first, at each run.
    app.toggle(key="filters_replay_play").set_value(True).run()
    assert app.select_slider(key="filters_replay_epoch").value == 2
    app.run()
    assert app.select_slider(key="filters_replay_epoch").value == 1
    assert "Epoch 1" in [s.value for s in app.main.subheader]
    app.toggle(key="filters_replay_play").set_value(False).run()
    app.run()
    assert app.select_slider(key="filters_replay_epoch").value == 1


def test_a_run_of_one_checkpoint_says_whether_more_may_come(app, trained_run):
    from core import runs

    (trained_run / "checkpoints" / "epoch_002.keras").unlink()  # a run of one epoch
    app.session_state["probe"] = {"pixels": probe_pixels(), "caption": "probe", "label": None}
    app.switch_page(PAGE).run()
    assert not app.exception
    captions = [c.value for c in app.caption]
    assert "The run kept one checkpoint, of epoch 1: nothing to play." in captions
    assert not app.select_slider  # no epochs to choose between
    runs.write_status(trained_run, state="running", **runs.process_identity())
    app.run()
    assert "Only epoch 1 has a checkpoint so far." in [c.value for c in app.caption]


def test_the_explainer_grids_show_three_digits_and_the_image_at_its_brightness(app):
    app.session_state["probe"] = {"pixels": probe_pixels(), "caption": "probe", "label": None}
    app.switch_page(PAGE).run()
    app.selectbox(key="filters_ex_layer").set_value("conv1_1").run()
    assert not app.exception
    grids = {}
    for chart in app.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec["layout"].get("title", {}).get("text", "")
        if spec["data"][0]["type"] == "heatmap" and title:
            grids[title.split(" ")[0]] = spec["data"][0]
    image, kernel = grids["input"], grids["kernel"]
    assert image["texttemplate"] == kernel["texttemplate"] == "%{z:.3~g}"
    assert (image["zmin"], image["zmax"]) == (0, 1)  # a pixel of 0.8 is light, as it looks
    assert "zmin" not in kernel and kernel["zmid"] == 0  # weights: white at zero


def test_how_typical_the_image_is_at_each_layer_as_the_check_says(
    app, trained_run, image_folder, monkeypatch
):
    from core import novelty
    from core.data import load_dataset
    from tests.conftest import class_images

    scored = []
    layer_scores = novelty.Novelty.layer_scores

    def counting(self, images):
        scored.append(len(images))
        return layer_scores(self, images)

    monkeypatch.setattr(novelty.Novelty, "layer_scores", counting)
    app.switch_page(PAGE).run()
    assert not app.exception and not [s for s in app.subheader if "layer by layer" in s.value]
    model_path = trained_run / "model.keras"
    check = novelty.fit(load_model(model_path), class_images(100, 3)[0])
    check.save(trained_run / novelty.FILE, model_path)
    app.run()
    assert not app.exception
    [spec] = [
        json.loads(c.proto.spec)
        for c in app.get("plotly_chart")
        if json.loads(c.proto.spec)["layout"].get("yaxis", {}).get("title", {}).get("text")
        == "novelty"
    ]
    x, _ = load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")  # the sidebar's
    expected = layer_scores(check, x[:1])[0]  # the page's default: the first training image
    assert spec["data"][0]["x"] == ["act1_1", "act2_1"]
    np.testing.assert_allclose(spec["data"][0]["y"], expected, rtol=1e-4)
    worst = check.layers[int(expected.argmax())]
    assert any(f"Most unusual at {worst} ({expected.max():.2f})" in c.value for c in app.caption)
    app.run()
    assert scored == [1]  # once for this image, not on every rerun
    refit = novelty.fit(load_model(model_path), class_images(100, 3, seed=7)[0])
    refit.save(trained_run / novelty.FILE, model_path)
    app.run()
    assert not app.exception and scored == [1, 1]  # a check fitted again scores anew


def _calibrated(run_dir, temperature: float) -> None:
    """Gives a run's card a calibration temperature, which the page applies."""
    card_path = run_dir / "model_card.json"
    card = json.loads(card_path.read_text())
    card["calibration"] = {
        "temperature": temperature,
        "images": 500,
        "ece": 0.2,
        "ece_scaled": 0.01,
    }
    card_path.write_text(json.dumps(card))


def test_probabilities_follow_the_cards_temperature_as_on_classify(app, trained_run, image_folder):
    from core.data import load_dataset
    from core.evaluate import with_temperature

    _calibrated(trained_run, 0.5)
    app.switch_page(PAGE).run()
    assert not app.exception
    x, _ = load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")
    _, _, raw = inspect.grad_cam(load_model(trained_run / "model.keras"), x[0])
    sharp = with_temperature(raw, 0.5)
    [metric] = [m for m in app.metric if m.label == "Predicted class"]
    said = f"{probability(sharp.max())} probability"
    assert metric.proto.delta == said != f"{probability(raw.max())} probability"


def test_occlusion_shows_what_hiding_each_part_costs(app, trained_run, image_folder):
    from core.data import load_dataset

    _calibrated(trained_run, 0.5)
    app.switch_page(PAGE).run()
    app.selectbox(key="filters_cam_class").set_value(1)
    app.radio(key="filters_cam_method").set_value("Occlusion").run()
    assert not app.exception
    x, _ = load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")
    found = inspect.occlusion(load_model(trained_run / "model.keras"), x[0], 1, temperature=0.5)
    name = app.selectbox(key="filters_cam_class").format_func(1)
    [image] = [i for i in app.get("image") if "(occlusion)" in i.captions[0]]
    assert image.captions[0] == f"Evidence for {name} (occlusion): red for, blue against"
    [caption] = [c.value for c in app.caption if c.value.startswith("Each pixel is coloured")]
    assert f"the probability of {name} ({found.probs[1]:.1%})" in caption
    assert f"a change of {np.abs(found.drop).max() * 100:.1f} points" in caption
    assert caption.endswith(f"leaves {found.lowest:.1%}.")
    assert "a square of 8×8 pixels" in caption  # a quarter of the 32-pixel input


def test_a_folders_own_validation_images_score_a_run_split_any_way(app, trained_run, image_folder):
    from core.data import load_dataset
    from core.fileio import atomic_write_json, read_json
    from tests.conftest import write_image_folder

    shutil.rmtree(image_folder)
    write_image_folder(image_folder / "train", per_class=12, size=40)
    write_image_folder(image_folder / "valid", per_class=3, size=40)
    config = read_json(trained_run / "config.json")  # a quarter held out, seed 0
    atomic_write_json(trained_run / "config.json", config | {"data": str(image_folder)})
    app.switch_page(PAGE).run()
    assert not [i for i in app.info if i.value.startswith("This run held out")]
    app.toggle(key="filters_curves").set_value(True).run()
    assert not app.exception
    _, y = load_dataset(image_folder, val_fraction=0.25).split("val")
    assert len(y) == 9  # valid/'s, whatever the fraction
    [chart] = [c for c in app.get("plotly_chart") if "Recall per class" in c.proto.spec]
    assert inspect.curves_summary(
        inspect.class_curves(trained_run, *load_dataset(image_folder).split("val"), 3),
        ["cat", "dog", "frog"],
    ) in [c.value for c in app.caption]


def test_how_each_class_was_learned_on_the_images_the_run_held_out(app, trained_run, image_folder):
    from core.data import load_dataset
    from core.fileio import atomic_write_json, read_json

    app.switch_page(PAGE).run()
    # The session's run trained on a twin folder with a quarter held out: not the sidebar's.
    [info] = [as_read(i.value) for i in app.info if i.value.startswith("This run trained on")]
    assert read_json(trained_run / "config.json")["data"] in info
    assert not [t for t in app.toggle if t.key == "filters_curves"]

    config = read_json(trained_run / "config.json")
    atomic_write_json(trained_run / "config.json", config | {"data": str(image_folder)})
    app.run()
    [info] = [i.value for i in app.info if i.value.startswith("This run held out")]
    assert info.startswith("This run held out 25% of its images (seed 0)")

    config |= {"data": str(image_folder), "val_fraction": 0.1}
    atomic_write_json(trained_run / "config.json", config)
    app.run()
    app.toggle(key="filters_curves").set_value(True).run()
    assert not app.exception
    x, y = load_dataset(image_folder, val_fraction=0.1, seed=0).split("val")
    assert (trained_run / inspect.CURVES_FILE).is_file()  # kept by the page
    (trained_run / inspect.CURVES_FILE).unlink()
    rows = inspect.curve_rows(y)
    expected = inspect.class_curves(trained_run, x[rows], y[rows], 3)
    [chart] = [c for c in app.get("plotly_chart") if "Recall per class" in c.proto.spec]
    lines = {t["name"]: plotly_values(t["y"]) for t in json.loads(chart.proto.spec)["data"]}
    assert list(lines) == ["cat", "dog", "frog", "all classes"]
    np.testing.assert_allclose(lines["dog"], expected["recall"][:, 1], atol=1e-6)
    np.testing.assert_allclose(lines["all classes"], expected["accuracy"], atol=1e-6)
    summary = inspect.curves_summary(expected, ["cat", "dog", "frog"])
    assert summary in [c.value for c in app.caption]

    # One checkpoint's confusions, the last at first, then the one chosen.
    def shown_confusions():
        [cm] = [c for c in app.get("plotly_chart") if c.key == "filters_curves_cm"]
        return np.reshape(plotly_values(json.loads(cm.proto.spec)["data"][0]["z"]), (3, 3))

    for epoch in (2, 1):
        counts = expected["confusion"][epoch - 1]
        rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        np.testing.assert_allclose(shown_confusions(), rows, atol=1e-9)
        assert any(c.value.startswith(f"Epoch {epoch}: ") for c in app.caption)
        app.select_slider(key="filters_curves_epoch").set_value(1).run()

    # A checkpoint that cannot be loaded (cut short, say) is a sentence, not a traceback.
    (trained_run / "checkpoints" / "epoch_002.keras").write_bytes(b"not a model")
    app.run()
    assert not app.exception
    [error] = [as_read(e.value) for e in app.error if e.value.startswith("The run's checkpoints")]
    assert "epoch_002.keras could not be loaded" in error  # the replay's own error above too
    # One listed but gone when read (a dangling link stands in for a file deleted meanwhile).
    (trained_run / "checkpoints" / "epoch_002.keras").unlink()
    (trained_run / "checkpoints" / "epoch_003.keras").symlink_to(trained_run / "gone.keras")
    app.run()
    assert not app.exception
    [error] = [as_read(e.value) for e in app.error if e.value.startswith("The run's checkpoints")]
    assert error.endswith(f"No such file or directory: {trained_run}/checkpoints/epoch_003.keras")


def _class_captions(app, names) -> list[str]:
    return [
        i.captions[0] for i in app.image if i.captions and i.captions[0].split(" · ")[0] in names
    ]


def test_what_units_look_for_draws_core_s_pictures_on_a_click(app, trained_run, monkeypatch):
    from core import visualise

    app.switch_page(PAGE).run()
    assert app.selectbox(key="filters_units_layer").value == visualise.CLASSES
    assert app.selectbox(key="filters_units_from").disabled  # 3 classes: one group
    app.button(key="filters_units_run").click().run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")
    _, scores = visualise.preferred_images(model, visualise.CLASSES, [0, 1, 2])
    names = ["cat", "dog", "frog"]
    assert _class_captions(app, names) == [
        f"{n} · {s:.1f}" for n, s in zip(names, scores, strict=True)
    ]
    assert not [b for b in app.button if b.key == "filters_units_run"]  # drawn: no button

    # A layer of 64 channels, drawn 16 at a time; the second group is another question.
    app.selectbox(key="filters_units_layer").select("act2_1").run()
    assert [o for o in app.selectbox(key="filters_units_from").options][:2] == [
        "0 to 15 of 64",
        "16 to 31 of 64",
    ]
    app.selectbox(key="filters_units_from").select(16).run()
    app.button(key="filters_units_run").click().run()
    assert not app.exception
    _, activations = visualise.preferred_images(model, "act2_1", list(range(16, 32)))
    shown = [i.captions[0] for i in app.image if i.captions and i.captions[0].startswith("channel")]
    assert shown == [
        f"channel {u} · {max(a, 0.0):.2f}" for u, a in zip(range(16, 32), activations, strict=True)
    ]
    # Back to the classes: kept for the session, drawn without another click.
    app.selectbox(key="filters_units_layer").select(visualise.CLASSES).run()
    assert len(_class_captions(app, names)) == 3
    # And on disk: a new session (a restarted dashboard) draws them without the button.
    monkeypatch.setattr(visualise, "preferred_images", lambda *a, **k: pytest.fail("climbed"))
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    fresh.session_state["sidebar_model"] = trained_run.name
    fresh.switch_page(PAGE).run()
    assert not fresh.exception
    assert _class_captions(fresh, names) == _class_captions(app, names)
    assert not [b for b in fresh.button if b.key == "filters_units_run"]


def test_beside_each_unit_the_validation_images_that_excite_it_most(app, trained_run, image_folder):
    from core import visualise
    from core.data import load_dataset
    from core.inspect import curve_rows

    app.switch_page(PAGE).run()
    app.toggle(key="filters_units_examples").set_value(True).run()
    app.button(key="filters_units_run").click().run()
    assert not app.exception
    ds = load_dataset(image_folder, val_fraction=0.1, seed=0)
    x, y = ds.split("val")
    model = load_model(trained_run / "model.keras")

    def expected(layer, units):
        rows = curve_rows(y, 2000)
        index, _ = visualise.strongest_images(model, layer, x[rows])
        captions = []
        for u in units:
            labels = np.bincount(y[rows[index[u]]], minlength=3)
            captions.append(f"{labels.max()} of {len(index[u])}: {ds.class_names[labels.argmax()]}")
        return captions

    def shown():
        return [i.captions[0] for i in app.image if i.captions and " of " in i.captions[0]]

    assert shown() == expected(visualise.CLASSES, [0, 1, 2])
    # Another layer waits for its button; the toggle stays on meanwhile.
    app.selectbox(key="filters_units_layer").select("act1_1").run()
    assert app.toggle(key="filters_units_examples").value
    app.button(key="filters_units_run").click().run()
    assert not app.exception
    assert shown() == expected("act1_1", range(16))
    app.toggle(key="filters_units_examples").set_value(False).run()
    assert not shown()


def test_the_channels_an_image_excites_most_and_what_they_look_for(app, trained_run, image_folder):
    from core.data import load_dataset

    app.switch_page(PAGE).run()
    app.selectbox(key="filters_map_layer").set_value("act2_1").run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")
    x, _ = load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")
    maps = inspect.feature_maps(model, x[0])["act2_1"]  # the page's default image
    means = maps.mean(axis=(0, 1))
    top = np.argsort(-means, kind="stable")[:8]
    listed = ", ".join(f"{c} ({means[c]:.2f})" for c in top)
    expected = f"**Strongest channels here**, by mean activation: {listed}."
    assert expected in [m.value for m in app.markdown]
    app.button(key="filters_maps_units").click().run()
    assert not app.exception
    shown = [i.captions[0] for i in app.image if i.captions and i.captions[0].startswith("#")]
    assert shown == [f"#{c}" for c in top]
    assert not [b for b in app.button if b.key == "filters_maps_units"]
