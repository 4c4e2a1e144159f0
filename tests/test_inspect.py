"""core.inspect on real tiny Keras models: filters, maps, Grad-CAM, the hand convolution."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import layers

from core import inspect
from core.model import build_model, preset_config


@pytest.fixture(scope="module")
def seed_model():
    keras.utils.set_random_seed(0)
    return build_model(preset_config("seed", num_classes=3))


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def corner_model():
    """A 16x16 model whose class 0 is "red", class 1 "green", read by 1x1 convolutions."""
    inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = layers.Conv2D(2, 1, name="conv1_1")(x)
    x = layers.Activation("relu", name="act1_1")(x)
    x = layers.GlobalAveragePooling2D(name="features")(x)
    outputs = layers.Dense(2, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs)
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0, 0] = kernel[0, 0, 1, 1] = 1.0
    model.get_layer("conv1_1").set_weights([kernel, np.zeros(2, np.float32)])
    model.get_layer("probs").set_weights([np.array([[4.0, -4], [-4, 4]]), np.zeros(2)])
    return model


def test_layer_lists_of_the_seed_preset(seed_model):
    assert inspect.conv_layers(seed_model) == ["conv1_1", "conv2_1"]
    assert inspect.map_layers(seed_model) == ["act1_1", "pool1", "act2_1", "pool2"]
    assert inspect.cam_layer(seed_model) == "act2_1"


def test_layer_lists_of_a_batch_norm_net():
    model = build_model(preset_config("vgg_bn", input_size=16, num_classes=3))
    assert inspect.conv_layers(model)[:2] == ["conv1_1", "conv1_2"]
    assert inspect.map_layers(model)[:3] == ["act1_1", "act1_2", "pool1"]


def test_first_layer_tiles_are_symmetric_around_grey(seed_model):
    model = keras.models.clone_model(seed_model)
    kernel, bias = model.get_layer("conv1_1").get_weights()
    kernel[..., 0] = 0.0
    kernel[..., 1] = 0.0
    kernel[0, 0, 0, 1], kernel[1, 1, 2, 1] = 0.5, -0.25
    model.get_layer("conv1_1").set_weights([kernel, bias])
    tiles = inspect.first_layer_filter_tiles(model)
    assert tiles.shape == (32, 3, 3, 3) and tiles.dtype == np.uint8
    assert (tiles[0] == 128).all()
    assert tiles[1, 0, 0, 0] == 255 and tiles[1, 1, 1, 2] == round(128 - 63.5)
    assert tiles[1, 2, 2, 1] == 128


def test_filter_grid_and_histograms(seed_model):
    grid = inspect.filter_grid(seed_model, "conv2_1")
    kernel = seed_model.get_layer("conv2_1").get_weights()[0]
    assert grid.shape == (64, 32, 3, 3)
    np.testing.assert_array_equal(grid[5, 7], kernel[:, :, 7, 5])
    hists = inspect.weight_histograms(seed_model)
    assert list(hists) == ["conv1_1", "conv2_1", "dense1", "probs"]
    assert hists["conv1_1"].shape == (3 * 3 * 3 * 32,) and hists["probs"].shape == (64 * 3,)
    with pytest.raises(ValueError, match="not a convolution"):
        inspect.filter_grid(seed_model, "pool1")


def test_feature_maps_have_the_layer_output_shapes(seed_model, image):
    maps = inspect.feature_maps(seed_model, image)
    assert list(maps) == inspect.map_layers(seed_model)
    for name, values in maps.items():
        assert values.shape == tuple(seed_model.get_layer(name).output.shape[1:])
    assert maps["act1_1"].shape == (30, 30, 32) and maps["act1_1"].min() >= 0
    one = inspect.feature_maps(seed_model, image, ["pool1"])
    np.testing.assert_allclose(one["pool1"], maps["pool1"], atol=1e-6)
    np.testing.assert_allclose(
        maps["pool1"][0, 0], maps["act1_1"][:2, :2].max(axis=(0, 1)), atol=1e-6
    )


def test_map_helpers():
    maps = np.stack([np.arange(4.0).reshape(2, 2), np.full((2, 2), 7.0)], axis=-1)
    scaled = inspect.normalise_maps(maps)
    np.testing.assert_allclose(scaled[..., 0], [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)
    assert (scaled[..., 1] == 0).all()
    grid = inspect.mosaic(np.ones((3, 2, 2)), columns=2)
    assert grid.shape == (5, 5)
    assert np.isnan(grid[2]).all() and np.isnan(grid[3:, 3:]).all() and grid[4, 1] == 1
    big = inspect.upscale(np.arange(4, dtype=np.uint8).reshape(2, 2), 3)
    assert big.shape == (6, 6) and (big[:3, 3:] == 1).all()


def test_grad_cam_peaks_where_the_evidence_is():
    model = corner_model()
    img = np.zeros((16, 16, 3), np.uint8)
    img[:4, :4, 0] = 255  # a red patch top-left, nothing else
    heat, cls, probs = inspect.grad_cam(model, img)
    assert heat.shape == (16, 16) and heat.dtype == np.float32
    assert cls == 0 == int(np.argmax(probs)) and probs.shape == (2,)
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert heat[:3, :3].min() > 0.9 and heat[8:, 8:].max() == 0
    green, cls, _ = inspect.grad_cam(model, img, class_index=1)
    assert cls == 1 and (green == 0).all()  # nothing green: no evidence for class 1


def test_occlusion_finds_the_patch_the_answer_rests_on():
    model = corner_model()
    img = np.zeros((16, 16, 3), np.uint8)
    img[:4, 12:, 0] = 255  # a red patch top-right: class 0
    found = inspect.occlusion(model, img)
    assert found.drop.shape == (16, 16) and found.drop.dtype == np.float32
    assert found.class_index == 0 == int(np.argmax(found.probs))
    np.testing.assert_allclose(found.probs, model(img[None].astype("float32"))[0], atol=1e-6)
    # Hiding the patch costs most where every square over a pixel hides all of it (only
    # one covers the corner); hiding black elsewhere (filled with the mean colour, a little
    # red) adds a little evidence for red.
    assert np.unravel_index(found.drop.argmax(), found.drop.shape) == (0, 15)
    assert found.drop[:4, 12:].min() > 0
    assert found.drop[8:, :8].max() < 0 and -found.drop[8:, :8].min() < 0.1 * found.drop.max()
    assert found.lowest == pytest.approx(found.probs[0] - found.drop[0, 15], abs=1e-6)
    green = inspect.occlusion(model, img, class_index=1)
    assert green.class_index == 1 and green.drop[:4, 12:].max() < 0  # red argued against it
    # One set of hidden copies for both: two probabilities that sum to 1 move oppositely.
    red_and_green = inspect.occlusions(model, img)
    np.testing.assert_array_equal(red_and_green[0].drop, found.drop)
    np.testing.assert_allclose(red_and_green[1].drop, -found.drop, atol=1e-6)
    with pytest.raises(ValueError, match="not one of 2 classes"):
        inspect.occlusion(model, img, class_index=2)


def test_occlusion_after_a_temperature(seed_model, image):
    from core.evaluate import with_temperature

    raw = inspect.occlusion(seed_model, image, batch_size=50)  # 169 squares in 4 batches
    soft = inspect.occlusion(seed_model, image, class_index=raw.class_index, temperature=3.0)
    np.testing.assert_allclose(soft.probs, with_temperature(raw.probs, 3.0), atol=1e-6)
    assert not np.allclose(soft.drop, raw.drop)
    assert raw.drop.shape == (32, 32) and np.abs(raw.drop).max() <= 1


def test_signed_overlay_colours_by_sign_and_strength():
    img = np.full((2, 2, 3), 100, np.uint8)
    values = np.array([[0.0, 1.0], [-1.0, 0.5]])
    out = inspect.signed_overlay(img, values, alpha=0.5)
    assert (out[0, 0] == 100).all()  # nothing hidden mattered: the image as it is
    assert out[0, 1, 0] > 150 > out[0, 1, 2] and out[1, 0, 2] > 150 > out[1, 0, 0]
    assert 100 < out[1, 1, 0] < out[0, 1, 0]  # half as strong
    # On another scale: a tenth of these values drawn with scale 0.1 is the same picture.
    np.testing.assert_array_equal(inspect.signed_overlay(img, values / 10, 0.5, scale=0.1), out)
    assert (inspect.signed_overlay(img, np.zeros((2, 2)), scale=0.0) == 100).all()


def test_strongest_change_is_the_largest_over_all_maps():
    def found(drop):
        return inspect.Occlusion(np.array(drop, np.float32), 0, np.ones(1), 0.0, 1)

    assert inspect.strongest_change(found([[0.1, -0.3]]), found([[0.2, 0.0]])) == pytest.approx(0.3)
    assert inspect.strongest_change(found([[0.0, 0.0]])) == 0.0  # nothing moved: said as 0


def test_grad_cam_on_the_seed_preset(seed_model, image):
    heat, cls, probs = inspect.grad_cam(seed_model, image)
    assert heat.shape == (32, 32) and heat.min() >= 0 and heat.max() <= 1
    assert cls == int(np.argmax(probs))
    np.testing.assert_allclose(probs, seed_model(image[None].astype("float32"))[0], atol=1e-5)
    assert inspect.grad_cam(seed_model, image, class_index=2)[1] == 2
    with pytest.raises(ValueError, match="not one of 3 classes"):
        inspect.grad_cam(seed_model, image, class_index=3)


def test_overlay_and_colormap():
    assert inspect.colormap(np.array([0.0, 0.5, 1.0])).tolist() == [
        [0, 0, 128],
        [128, 255, 128],
        [128, 0, 0],
    ]
    img = np.full((2, 2, 3), 200, np.uint8)
    assert (inspect.overlay(img, np.zeros((2, 2)), alpha=0.0) == 200).all()
    assert inspect.overlay(img, np.ones((2, 2)), alpha=1.0)[0, 0].tolist() == [128, 0, 0]


def test_conv_explainer_matches_the_model(seed_model, image):
    for layer, row, col, channel in [("conv1_1", 4, 7, 3), ("conv2_1", 12, 0, 63)]:
        got = inspect.conv_explainer(seed_model, image, layer, row, col, channel)
        assert got["z"] == pytest.approx(got["model_z"], abs=1e-4)
        assert got["z"] == pytest.approx(got["sum"] + got["bias"])
        assert got["a"] == pytest.approx(got["model_a"], abs=1e-4)
        assert got["activation"] == "relu" and got["bn"] is None
    assert got["source"] == "drop1" and got["patch"].shape == (3, 3, 32)
    first = inspect.conv_explainer(seed_model, image, "conv1_1", 4, 7, 3)
    np.testing.assert_allclose(first["patch"], image[4:7, 7:10] / 255, atol=1e-6)
    assert first["source"] == "rescale" and first["origin"] == (4, 7)
    np.testing.assert_allclose(first["products"], first["patch"] * first["kernel"])
    with pytest.raises(ValueError, match="outside"):
        inspect.conv_explainer(seed_model, image, "conv1_1", 30, 0, 0)


def test_conv_explainer_with_same_padding_stride_and_batch_norm():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((7, 7, 3))
    x = layers.Conv2D(4, 3, strides=2, padding="same", name="conv1_1")(inputs)
    x = layers.BatchNormalization(name="bn1_1")(x)
    x = layers.Activation("relu", name="act1_1")(x)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax")(layers.Flatten()(x)))
    bn = model.get_layer("bn1_1")
    bn.set_weights([np.full(4, 1.5), np.full(4, 0.2), np.full(4, 10.0), np.full(4, 4.0)])
    img = np.random.default_rng(1).integers(0, 256, (7, 7, 3), dtype=np.uint8)
    for row, col in [(0, 0), (3, 3), (1, 2)]:
        got = inspect.conv_explainer(model, img, "conv1_1", row, col, 1)
        assert got["z"] == pytest.approx(got["model_z"], rel=1e-5, abs=1e-3)
        assert got["bn"]["value"] == pytest.approx(got["bn"]["model_value"], abs=1e-3)
        assert got["a"] == pytest.approx(got["model_a"], abs=1e-3)
    assert got["origin"] == (1, 3)  # (1, 2) * stride 2, one row/column of padding
    corner = inspect.conv_explainer(model, img, "conv1_1", 3, 3, 0)
    assert (corner["patch"][2] == 0).all() and (corner["patch"][:, 2] == 0).all()


def test_speed_net_maps_and_explainer_see_the_separate_batch_norm_shift(image):
    keras.utils.set_random_seed(2)
    model = build_model(preset_config("quick", num_classes=3))  # float32 policy in tests
    assert inspect.map_layers(model)[:4] == ["act0", "conv1_1", "pool1", "act1_2"]
    shift = model.get_layer("shift1_2")
    shift.bias.assign(np.linspace(-0.5, 0.5, shift.bias.shape[0]))
    got = inspect.conv_explainer(model, image, "conv1_2", 5, 7, 3)
    assert got["bn"]["beta"] == pytest.approx(float(shift.bias[3]) * shift.scale)
    assert got["bn"]["beta"] != 0
    assert got["bn"]["value"] == pytest.approx(got["bn"]["model_value"], abs=1e-3)
    assert got["activation"] == "gelu"
    assert got["a"] == pytest.approx(got["model_a"], abs=1e-3)


def test_replay_walks_the_checkpoints(trained_run, image):
    assert inspect.checkpoint_epochs(trained_run) == [1, 2]
    epochs = inspect.replay(trained_run, image[:20, :20])
    assert [e["epoch"] for e in epochs] == [1, 2]
    one, two = epochs
    assert one["tiles"].shape == (32, 3, 3, 3) and one["layer"] == "act1_1"
    assert one["maps"].shape == (30, 30, 32) and one["probs"].shape == (3,)
    assert one["class_names"] == ["cat", "dog", "frog"]
    assert (one["tiles"] != two["tiles"]).any()
    assert sum(two["probs"]) == pytest.approx(1.0, abs=1e-5)


def test_the_classifier_reads_the_last_hidden_layer_or_the_pooled_features(seed_model):
    assert inspect.classifier_input(seed_model).shape == (None, 64)  # seed: Dense 64
    fast = build_model(preset_config("quick", num_classes=3))
    assert inspect.classifier_input(fast) is fast.get_layer("features").output
    inputs = keras.Input((8, 8, 3))
    convs_only = keras.Model(inputs, layers.Conv2D(2, 3)(inputs), name="convs_only")
    with pytest.raises(ValueError, match="convs_only has no Dense layer"):
        inspect.classifier_input(convs_only)


def test_feature_space_is_the_principal_plane_of_the_classifiers_input(seed_model):
    images = np.random.default_rng(1).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    calls = []
    space = inspect.feature_space(
        seed_model, images, batch_size=8, progress=lambda *a: calls.append(a)
    )
    assert calls == [(8, 30), (16, 30), (24, 30), (30, 30)]
    assert space["dims"] == 64 and space["xy"].shape == (30, 2)
    np.testing.assert_array_equal(space["index"], np.arange(30))
    # Independently: the covariance's two largest eigenvectors, signs as they fall.
    reader = keras.Model(seed_model.input, seed_model.get_layer("dense_drop1").output)
    features = np.asarray(reader.predict(images.astype(np.float32), verbose=0), np.float64)
    centred = features - features.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    expected = centred @ vectors[:, ::-1][:, :2]
    np.testing.assert_allclose(np.abs(space["xy"]), np.abs(expected), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(space["explained"], values[::-1][:2] / values.sum(), rtol=1e-4)
    assert space["explained"][0] >= space["explained"][1] > 0


def test_feature_space_draws_at_most_limit_images_reproducibly(seed_model):
    images = np.random.default_rng(2).integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    space = inspect.feature_space(seed_model, images, limit=10, seed=3)
    index = space["index"]
    assert len(index) == len(set(index.tolist())) == 10 and (np.diff(index) > 0).all()
    again = inspect.feature_space(seed_model, images, limit=10, seed=3)
    np.testing.assert_array_equal(again["index"], index)
    alone = inspect.feature_space(seed_model, images[index])  # fitted on the same images
    np.testing.assert_allclose(np.abs(space["xy"]), np.abs(alone["xy"]), atol=1e-4)
    assert inspect.feature_space(seed_model, images[:1])["xy"].shape == (1, 2)


def test_space_rows_are_all_images_or_a_seeded_draw():
    np.testing.assert_array_equal(inspect.space_rows(4, limit=4), np.arange(4))
    rows = inspect.space_rows(100, limit=7, seed=1)
    assert len(set(rows.tolist())) == 7 and (np.diff(rows) > 0).all() and rows.max() < 100
    np.testing.assert_array_equal(rows, inspect.space_rows(100, limit=7, seed=1))
    assert not np.array_equal(rows, inspect.space_rows(100, limit=7, seed=2))


def test_a_space_of_fewer_than_two_images_sits_at_the_origin():
    one = inspect.space_of(np.array([3]), np.ones((1, 5), np.float32))
    assert one["xy"].tolist() == [[0.0, 0.0]] and one["dims"] == 5
    assert one["explained"].tolist() == [0.0, 0.0] and one["index"].dtype == np.int64
    assert inspect.space_of(np.array([], int), np.zeros((0, 5)))["xy"].shape == (0, 2)


def test_feature_space_separates_what_the_model_tells_apart():
    model = corner_model()  # red images raise one feature, green images the other
    rng = np.random.default_rng(4)
    images = rng.integers(0, 60, (20, 16, 16, 3), dtype=np.uint8)
    images[:10, :, :, 0] += 180
    images[10:, :, :, 1] += 180
    first = inspect.feature_space(model, images)["xy"][:, 0]
    assert (np.sign(first[:10]) == -np.sign(first[10:])).all()  # two clouds either side
    assert len(set(np.sign(first[:10]).tolist())) == 1


def test_curve_rows_take_as_many_of_each_class():
    labels = np.array([0, 0, 1, 2, 2, 2, 1, 0])
    np.testing.assert_array_equal(inspect.curve_rows(labels, 6), [0, 1, 2, 3, 4, 6])
    np.testing.assert_array_equal(inspect.curve_rows(labels, 100), np.arange(8))
    assert inspect.curve_rows(np.zeros(0, int)).size == 0


def test_class_curves_score_each_checkpoint_once(trained_run, image_folder):
    import os

    from core.data import load_dataset
    from core.evaluate import predict_probs
    from core.model import load_model

    x, y = load_dataset(image_folder, val_fraction=0.25, seed=0).split("val")
    calls = []
    curves = inspect.class_curves(trained_run, x, y, 3, progress=lambda *a: calls.append(a))
    assert calls == [(0, 2), (1, 2), (2, 2)] and curves["epochs"] == [1, 2]
    assert curves["images"] == 9
    for row, epoch in enumerate([1, 2]):
        checkpoint = load_model(trained_run / "checkpoints" / f"epoch_{epoch:03d}.keras")
        answers = predict_probs(checkpoint, x).argmax(axis=1)
        recall = [np.mean(answers[y == c] == c) for c in range(3)]
        np.testing.assert_allclose(curves["recall"][row], recall, atol=1e-6)
        assert curves["accuracy"][row] == pytest.approx(np.mean(answers == y))
        for t, a in [(0, 0), (1, 2), (2, 1)]:
            assert curves["confusion"][row, t, a] == np.sum((y == t) & (answers == a))

    # Kept in the run's folder: asked again, nothing is loaded; a checkpoint written again
    # (a resumed run), other images or an unreadable file are scored again.
    assert inspect.curves_to_score(trained_run, x, y) == []
    calls.clear()
    again = inspect.class_curves(trained_run, x, y, 3, progress=lambda *a: calls.append(a))
    assert calls == [] and np.array_equal(again["recall"], curves["recall"])
    four = inspect.class_curves(trained_run, x, y, 4, progress=lambda *a: calls.append(a))
    assert calls == [(0, 2), (1, 2), (2, 2)] and four["confusion"].shape == (2, 4, 4)
    np.testing.assert_array_equal(four["confusion"][:, :3, :3], curves["confusion"])
    assert np.isnan(four["recall"][:, 3]).all()  # no image of the fourth: no recall, not 0
    calls.clear()
    second = trained_run / "checkpoints" / "epoch_002.keras"
    os.utime(second, ns=(second.stat().st_atime_ns, second.stat().st_mtime_ns + 10**9))
    assert inspect.curves_to_score(trained_run, x, y) == [2]
    assert inspect.curves_to_score(trained_run, x[:6], y[:6]) == [1, 2]
    kept = json.loads((trained_run / inspect.CURVES_FILE).read_text())
    kept["epochs"]["1"]["confusion"][0][0] += 1  # counts one image too many
    (trained_run / inspect.CURVES_FILE).write_text(json.dumps(kept))
    assert inspect.curves_to_score(trained_run, x, y) == [1, 2]
    (trained_run / inspect.CURVES_FILE).write_text("{not json")
    assert inspect.curves_to_score(trained_run, x, y) == [1, 2]


def test_class_curves_resize_images_to_the_checkpoint(trained_run):
    from core.evaluate import predict_probs
    from core.model import load_model

    big = np.random.default_rng(2).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 0, 1, 2])
    curves = inspect.class_curves(trained_run, big, labels, 3)
    checkpoint = load_model(trained_run / "checkpoints" / "epoch_002.keras")
    seen = np.stack([inspect.model_image(checkpoint, i) for i in big])
    answers = predict_probs(checkpoint, seen).argmax(axis=1)
    assert curves["accuracy"][1] == pytest.approx(np.mean(answers == labels))


def test_class_curves_without_checkpoints_and_in_a_sentence(tmp_path):
    from core.errors import RunError

    with pytest.raises(RunError, match="has no checkpoint yet"):
        inspect.class_curves(tmp_path, np.zeros((1, 8, 8, 3), np.uint8), np.zeros(1, int), 2)
    curves = {
        "epochs": [1, 5],
        "recall": np.array([[0.2, 0.6], [0.9, 0.7]], np.float32),
        "accuracy": np.array([0.4, 0.8], np.float32),
        "images": 20,
    }
    assert inspect.curves_summary(curves, ["cat", "dog"]) == (
        "Each checkpoint as saved, on 20 held-out images, as many of each class. First "
        "epoch 1, 40% in all, from cat 20% to dog 60%; last epoch 5, 80% in all, from dog "
        "70% to cat 90%."
    )
    one = {k: v[:1] for k, v in curves.items() if k != "images"} | {"images": 20}
    # A class without images here (NaN) is neither the best nor the worst.
    gap = curves | {"recall": np.array([[0.2, np.nan, 0.6], [0.9, np.nan, 0.7]], np.float32)}
    assert inspect.curves_summary(gap, ["cat", "cow", "dog"]) == inspect.curves_summary(
        curves, ["cat", "dog"]
    ).replace("of each class.", "of each class (none of cow).")
    assert inspect.curves_summary(one, ["cat", "dog"]).endswith(
        "So far one checkpoint: epoch 1, 40% in all, from cat 20% to dog 60%."
    )
