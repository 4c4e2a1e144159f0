"""core.visualise on real Keras models: on a hand-set model whose units read one colour
each, the picture that excites a unit is that colour."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from core import visualise
from core.model import build_model, preset_config
from tests.test_inspect import corner_model


def test_a_unit_that_reads_red_is_drawn_red_and_one_that_reads_green_green():
    model = corner_model()  # act1_1: channel 0 is relu(red), channel 1 relu(green)
    assert visualise.unit_layers(model) == ["act1_1", visualise.CLASSES]
    pictures, activations = visualise.preferred_images(model, "act1_1", [0, 1], steps=40)
    assert pictures.shape == (2, 16, 16, 3) and pictures.dtype == np.uint8
    red, green = pictures.astype(float).mean(axis=(1, 2))
    assert red[0] > 250 and green[1] > 250  # each climbs its own channel to the top
    assert abs(red[1] - 128) < 12 and abs(green[0] - 128) < 12  # nothing asks for the other
    # Blue is read by nothing: it keeps its grey start, the noise blurred away.
    assert abs(pictures[..., 2].astype(float).mean() - 128) < 4
    # What is reported is the unit's activation on the picture returned.
    maps = keras.Model(model.input, model.get_layer("act1_1").output)(pictures.astype("float32"))
    np.testing.assert_allclose(
        activations, np.asarray(maps).mean(axis=(1, 2))[[0, 1], [0, 1]], rtol=1e-5
    )


def test_a_class_is_drawn_as_what_raises_its_score():
    model = corner_model()  # class 0's logit: 4 (mean red - mean green) / 255; class 1 -that
    pictures, scores = visualise.preferred_images(model, visualise.CLASSES, [0, 1], steps=60)
    means = pictures.astype(float).mean(axis=(1, 2)) / 255
    assert means[0, 0] > 0.98 and means[0, 1] < 0.02  # red, no green
    assert means[1, 1] > 0.98 and means[1, 0] < 0.02
    # The score reported is the logit on the picture, not a probability.
    np.testing.assert_allclose(scores[0], 4 * (means[0, 0] - means[0, 1]), rtol=1e-5)
    np.testing.assert_allclose(scores[1], 4 * (means[1, 1] - means[1, 0]), rtol=1e-5)


def test_a_unit_that_is_off_on_grey_still_wakes():
    # relu(-red): off on grey and on every picture but black; the climb reads the
    # activation's input, so it still finds that black is what turns the unit on.
    model = corner_model()
    kernel, bias = model.get_layer("conv1_1").get_weights()
    kernel[0, 0, 0, 0], bias[0] = -1.0, 0.4  # on only where red < 0.4 * 255
    model.get_layer("conv1_1").set_weights([kernel, bias])
    pictures, activations = visualise.preferred_images(model, "act1_1", [0], steps=60)
    assert pictures[0, ..., 0].mean() < 5 and activations[0] > 0.35


def test_units_are_checked_and_progress_is_reported():
    keras.utils.set_random_seed(0)
    model = build_model(preset_config("seed", num_classes=3))
    assert visualise.unit_layers(model) == ["act1_1", "act2_1", visualise.CLASSES]
    # A speed net: each block's activation after its pooling and batch norm, not the
    # convolution's raw output (which the feature maps show for the blocks' first conv).
    fast = build_model(preset_config("quick", num_classes=3))
    assert visualise.unit_layers(fast) == [
        "act0",
        "act1_1",
        "act1_2",
        "act2_1",
        "act2_2",
        "act3_1",
        "act3_2",
        visualise.CLASSES,
    ]
    assert visualise.unit_count(model, "act2_1") == 64
    assert visualise.unit_count(model, visualise.CLASSES) == 3
    with pytest.raises(ValueError, match="units 0 to 2"):
        visualise.preferred_images(model, visualise.CLASSES, [3])
    calls = []
    first, _ = visualise.preferred_images(
        model, "act2_1", [5, 9], steps=4, progress=lambda *a: calls.append(a)
    )
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    # Traced once per model and layer: the first call's function is the one kept.
    kept = model._cnn_lab_kept[("objective", "act2_1")]
    assert visualise._objective(model, "act2_1") is kept
    again, _ = visualise.preferred_images(model, "act2_1", [5, 9], steps=4)
    np.testing.assert_array_equal(again, first)  # seeded: the same pictures each time
    other, _ = visualise.preferred_images(model, "act2_1", [5, 9], steps=4, seed=1)
    assert not np.array_equal(other, first)


def test_stretched_spans_black_to_white_and_keeps_the_colour_balance():
    picture = np.zeros((10, 10, 3), np.uint8)
    picture[..., 0] = np.arange(100).reshape(10, 10) + 100  # 100..199
    picture[..., 1] = 150
    out = visualise.stretched(picture)
    assert out.max() == 255 and out.min() == 0
    assert (out[..., 1] == out[0, 0, 1]).all()  # one level for one level
    flat = np.full((4, 4, 3), 90, np.uint8)
    assert (visualise.stretched(flat) == 0).all()  # nothing to stretch: no division by 0


def test_the_strongest_images_of_a_unit_are_the_ones_it_answers_most():
    model = corner_model()  # act1_1: channel 0 reads red, channel 1 green
    rng = np.random.default_rng(0)
    images = np.zeros((12, 16, 16, 3), np.uint8)
    images[..., 0] = rng.permutation(12)[:, None, None] * 20  # red 0, 20, ..., 220
    images[..., 1] = 240 - images[..., 0]
    calls = []
    index, strength = visualise.strongest_images(
        model, "act1_1", images, k=3, batch_size=5, progress=lambda *a: calls.append(a)
    )
    assert calls == [(5, 12), (10, 12), (12, 12)]
    assert index.shape == (2, 3) and strength.shape == (2, 3)
    red = images[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(red[index[0]], [220, 200, 180])  # reddest first
    np.testing.assert_array_equal(red[index[1]], [0, 20, 40])  # greenest first
    np.testing.assert_allclose(strength[0], red[index[0]] / 255, rtol=1e-5)
    # Classes rank by their score: class 0's is red minus green.
    index, strength = visualise.strongest_images(model, visualise.CLASSES, images, k=20)
    assert index.shape == (2, 12)  # k larger than the images: all of them, ranked
    np.testing.assert_array_equal(red[index[0]], np.arange(220, -1, -20))
    np.testing.assert_allclose(strength[0], 4 * (2 * red[index[0]] - 240) / 255, rtol=1e-5)


def test_pictures_of_a_saved_model_are_kept_on_disk_until_the_model_changes(
    trained_run, tmp_path, monkeypatch
):
    from core.model import load_model

    path = trained_run / "model.keras"
    model = load_model(path)
    assert visualise.preferred_images_if_kept(path, "act1_1", [0, 1], tmp_path) is None
    calls = []
    pictures, activations = visualise.kept_preferred_images(
        model, path, "act1_1", [0, 1], tmp_path, progress=lambda d, n: calls.append(d)
    )
    expected = visualise.preferred_images(model, "act1_1", [0, 1])
    np.testing.assert_array_equal(pictures, expected[0])
    np.testing.assert_allclose(activations, expected[1], rtol=1e-6)
    assert calls[-1] == visualise.STEPS
    monkeypatch.setattr(visualise, "preferred_images", lambda *a, **k: pytest.fail("climbed"))
    again = visualise.kept_preferred_images(model, path, "act1_1", [0, 1], tmp_path)
    np.testing.assert_array_equal(again[0], pictures)
    kept = visualise.preferred_images_if_kept(path, "act1_1", [0, 1], tmp_path)
    np.testing.assert_array_equal(kept[1], activations)
    # Other units, another layer, or another model are other questions.
    assert visualise.preferred_images_if_kept(path, "act1_1", [1, 2], tmp_path) is None
    assert visualise.preferred_images_if_kept(path, "act2_1", [0, 1], tmp_path) is None
    kernel, bias = model.get_layer("conv1_1").get_weights()
    model.get_layer("conv1_1").set_weights([kernel * 0.5, bias])
    model.save(path)
    assert visualise.preferred_images_if_kept(path, "act1_1", [0, 1], tmp_path) is None
