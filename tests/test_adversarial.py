"""core.adversarial on real Keras models: on a hand-set model whose answer is a difference
of two colours, the smallest fooling change is known exactly."""

from __future__ import annotations

import io

import keras
import numpy as np
import pytest
from PIL import Image

from core import adversarial, evaluate
from core.classify import classify_bytes, predict_pixels
from core.model import build_model, preset_config
from tests.test_inspect import corner_model


def flat(red: int, green: int) -> np.ndarray:
    """A 16x16 picture of one colour for `corner_model`: class 0 while red > green."""
    image = np.zeros((16, 16, 3), np.uint8)
    image[..., 0], image[..., 1] = red, green
    return image


# The model's margin for class 0 is 8 (red - green) / 255: moving every pixel by e levels
# (red down, green up) takes 2e from red - green, so it flips at the first e > (red -
# green) / 2 (at e = (red - green) / 2 the two classes tie, and a tie is not a new answer).
CASES = [
    (flat(130, 128), 2),  # 1 level only ties them
    (flat(140, 128), 8),  # needs 7: the first rung above is 8
    (flat(255, 0), np.inf),  # needs 128, beyond the ladder
    (flat(128, 131), 0),  # already answered green
]


@pytest.fixture(scope="module")
def model():
    return corner_model()


def test_the_smallest_change_is_the_first_rung_that_crosses_the_boundary(model):
    images = np.stack([image for image, _ in CASES])
    found = adversarial.smallest_change(model, images, np.zeros(len(CASES), int))
    np.testing.assert_array_equal(found.epsilon, [needed for _, needed in CASES])
    assert found.images.dtype == np.uint8
    # At 2 levels the only picture the bounds allow that flips it: red 128, green 130.
    np.testing.assert_array_equal(found.images[0], flat(128, 130))
    changed = found.images[1].astype(int) - images[1]
    assert np.abs(changed).max() <= 8 and (changed[..., 2] == 0).all()  # blue reads nothing
    assert (found.images[1][..., 0] < found.images[1][..., 1]).all()  # now green
    np.testing.assert_array_equal(found.images[2:], images[2:])  # not fooled, already wrong
    answers = predict_pixels(model, found.images).argmax(-1)
    np.testing.assert_array_equal(answers, [1, 1, 0, 1])


def test_one_level_is_not_enough_where_the_bound_binds(model):
    # Red 130 against green 128 can at most tie at one level, however many steps.
    changed, fooled = adversarial.attack(model, flat(130, 128)[None], np.array([0]), 1, steps=30)
    assert not fooled[0]
    np.testing.assert_array_equal(changed[0], flat(129, 129))


def test_fool_moves_away_from_the_models_own_answer(model, monkeypatch):
    from core.evaluate import with_temperature

    batches = []
    real = evaluate.predict_probs
    monkeypatch.setattr(
        evaluate, "predict_probs", lambda *a, **k: batches.append(1) or real(*a, **k)
    )
    found = adversarial.fool(model, flat(140, 128), temperature=0.5)
    assert not batches  # the photo's answer is predicted once, for its probabilities
    assert (found.epsilon, found.class_before, found.class_after) == (8.0, 0, 1)
    np.testing.assert_allclose(
        found.after, with_temperature(predict_pixels(model, found.image[None]), 0.5)[0], atol=1e-6
    )
    assert found.before[0] == pytest.approx(
        with_temperature(predict_pixels(model, flat(140, 128)[None]), 0.5)[0, 0]
    )
    untouched = adversarial.fool(model, flat(255, 0))
    assert np.isinf(untouched.epsilon) and untouched.class_after == 0 == untouched.class_before
    np.testing.assert_array_equal(untouched.image, flat(255, 0))


def test_three_squares_are_changed_together_against_their_averaged_answer(model):
    from core.evaluate import with_temperature
    from core.images import decode_views
    from ui.adversarial import png_bytes

    # Red over green by 12, 2 and 8: the middle square alone flips at 2 levels (one ties);
    # the average of the three first at 4 (probabilities 0.531, 0.453 and 0.5).
    views = np.stack([flat(140, 128), flat(130, 128), flat(136, 128)])
    assert adversarial.fool(model, views[1]).epsilon == 2.0
    found = adversarial.fool_views(model, views, temperature=0.5)
    assert (found.epsilon, found.class_before, found.class_after) == (4.0, 0, 1)
    assert found.image.shape == (16, 48, 3)  # the squares side by side
    moved = found.image.astype(int) - np.concatenate(views, axis=1)
    assert np.abs(moved).max() == 4 and (moved[..., 2] == 0).all()
    # Read as three squares, the picture is these squares again, with the answer found.
    again = decode_views(png_bytes(found.image), 16, "three")
    np.testing.assert_array_equal(np.concatenate(again, axis=1), found.image)
    averaged = predict_pixels(model, again).mean(axis=0, keepdims=True)
    np.testing.assert_allclose(found.after, with_temperature(averaged, 0.5)[0], atol=1e-6)
    before = predict_pixels(model, views).mean(axis=0, keepdims=True)
    np.testing.assert_allclose(found.before, with_temperature(before, 0.5)[0], atol=1e-6)
    # Out of reach for the average, though not for its middle square alone.
    strong = np.stack([flat(255, 0), flat(130, 128), flat(255, 0)])
    assert np.isinf(adversarial.fool_views(model, strong).epsilon)


def test_the_changed_picture_fools_the_model_as_a_png_file():
    from ui.adversarial import png_bytes

    keras.utils.set_random_seed(0)
    model = build_model(preset_config("seed", num_classes=3))
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    found = adversarial.fool(model, image)
    assert np.isfinite(found.epsilon) and found.class_after != found.class_before
    diff = found.image.astype(int) - image
    assert np.abs(diff).max() <= found.epsilon and np.abs(diff).max() > 0
    uploaded = classify_bytes(model, png_bytes(found.image), ["a", "b", "c"])
    np.testing.assert_array_equal(uploaded.pixels, found.image)
    assert int(uploaded.probs.argmax()) == found.class_after


def test_the_attack_keeps_every_pixel_within_its_bound_and_the_valid_range():
    keras.utils.set_random_seed(0)
    model = build_model(preset_config("seed", num_classes=3))
    images = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    images[:3, :8] = 0  # black and white rows: the bounds are clipped to 0..255 there
    images[3:, :8] = 255
    labels = predict_pixels(model, images).argmax(-1)
    for epsilon in (1, 4):
        changed, fooled = adversarial.attack(model, images, labels, epsilon, steps=5)
        diff = changed.astype(int) - images
        assert np.abs(diff).max() <= epsilon
        assert (diff[:3, :8] >= 0).all() and (diff[3:, :8] <= 0).all()
        answers = predict_pixels(model, changed).argmax(-1)
        np.testing.assert_array_equal(answers != labels, fooled)


def test_robustness_is_the_accuracy_left_at_each_rung(model):
    images = np.stack([image for image, _ in CASES])
    found = adversarial.robustness(model, images, np.zeros(len(CASES), int))
    np.testing.assert_array_equal(found["epsilons"], [0, 1, 2, 4, 8, 16])
    np.testing.assert_allclose(found["attacked"], [0.75, 0.75, 0.5, 0.5, 0.25, 0.25])
    np.testing.assert_array_equal(found["needed"], [2, 8, np.inf, 0])
    # Random noise moves red and green by about the same on average: on this model, where
    # the attack's direction is the best there is, it can never do better than the attack.
    assert found["noise"][0] == 0.75 and (found["noise"] >= found["attacked"]).all()
    assert found["noise"][1] == 0.75  # 1 level of noise cannot flip 130 against 128


def test_progress_counts_batches_of_every_rung(model):
    images = np.stack([flat(140, 128)] * 3)
    calls = []
    adversarial.smallest_change(
        model, images, np.zeros(3, int), batch_size=2, progress=lambda *a: calls.append(a)
    )
    # Two batches a rung; rungs 1, 2 and 4 attack both, 8 fools them; 16 has none left.
    assert calls == [
        (1, 10),
        (2, 10),
        (3, 10),
        (4, 10),
        (5, 10),
        (6, 10),
        (7, 10),
        (8, 10),
        (10, 10),
    ]


def test_robustness_is_kept_on_disk_for_the_same_model_images_and_labels(
    model, tmp_path, monkeypatch
):
    path = tmp_path / "model.keras"
    model.save(path)
    images = np.stack([image for image, _ in CASES])
    labels = np.zeros(len(CASES), int)
    assert evaluate.robustness_if_kept(path, images, labels) is None
    first = evaluate.kept_robustness(model, path, images, labels)
    np.testing.assert_array_equal(
        evaluate.robustness_if_kept(path, images, labels)["needed"], first["needed"]
    )

    def refuse(*args, **kwargs):
        raise AssertionError("attacked again")

    monkeypatch.setattr(adversarial, "robustness", refuse)
    again = evaluate.kept_robustness(model, path, images, labels)
    assert again.keys() == first.keys()
    for key in first:
        np.testing.assert_array_equal(again[key], first[key])
    # Other labels are another question.
    assert evaluate.robustness_if_kept(path, images, np.ones(len(CASES), int)) is None
    monkeypatch.undo()
    [kept] = (tmp_path / "cache").glob("robustness-*.npz")
    kept.write_bytes(b"torn")  # a torn file is attacked again, not an error
    assert evaluate.robustness_if_kept(path, images, labels) is None
    calls = []
    real = adversarial.robustness
    monkeypatch.setattr(adversarial, "robustness", lambda *a, **k: calls.append(1) or real(*a, **k))
    np.testing.assert_array_equal(
        evaluate.kept_robustness(model, path, images, labels)["needed"], first["needed"]
    )
    assert calls == [1]


@pytest.mark.parametrize("head", ["softmax layer", "probabilities only"])
def test_other_heads_are_attacked_through_their_logits_or_log_probabilities(head):
    # The speed presets end in their own softmax layer, whose input is the logits; any
    # other model is attacked through the log of its probabilities, which differ between
    # two classes by as much as their logits do.
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    if head == "softmax layer":
        dense = keras.layers.Dense(2)
        outputs = keras.layers.Softmax()(dense(x))
    else:
        dense = keras.layers.Dense(2, activation="softmax")
        outputs = keras.layers.Rescaling(1.0)(dense(x))
    model = keras.Model(inputs, outputs)
    dense.set_weights([np.array([[4.0, -4], [-4, 4], [0, 0]]), np.zeros(2)])
    logits = adversarial.logits_of(model)(np.float32([flat(130, 128)]))
    margin = 8 * 2 / 255
    np.testing.assert_allclose(np.diff(np.asarray(logits)[0]), [-margin], rtol=1e-4)
    found = adversarial.smallest_change(model, flat(130, 128)[None], np.array([0]))
    assert found.epsilon[0] == 2
    np.testing.assert_array_equal(found.images[0], flat(128, 130))


def test_io_of_png_bytes_is_lossless():
    from ui.adversarial import png_bytes

    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(pixels)))), pixels)


def colour_model():
    """A 16x16 three-class model whose class k's logit is 4 x (mean of channel k) / 255."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(3, activation="softmax")
    model = keras.Model(inputs, dense(x))
    dense.set_weights([4 * np.eye(3, dtype=np.float32), np.zeros(3, np.float32)])
    return model


def test_a_target_is_reached_with_the_change_it_needs_not_the_nearest_class():
    model = colour_model()
    image = np.zeros((16, 16, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 140, 128, 120  # red, then green, then blue
    # Away from red, green is nearest: 140 - e < 128 + e from e = 7, the rung of 8.
    anywhere = adversarial.fool(model, image)
    assert (anywhere.epsilon, anywhere.class_before, anywhere.class_after) == (8.0, 0, 1)
    # To blue, red must fall below it (140 - e < 120 + e: e > 10): the rung of 16.
    blue = adversarial.fool(model, image, target=2)
    assert (blue.epsilon, blue.class_before, blue.class_after) == (16.0, 0, 2)
    means = blue.image.astype(float).mean(axis=(0, 1))
    assert means[2] > max(means[0], means[1])
    assert np.abs(blue.image.astype(int) - image).max() <= 16
    # Beyond the ladder: blue at 100 needs e > 20.
    image[..., 2] = 100
    far = adversarial.fool(model, image, target=2)
    assert np.isinf(far.epsilon) and far.class_after == 0
    np.testing.assert_array_equal(far.image, image)
    # Already the target: nothing to change.
    found = adversarial.smallest_change(model, image[None], np.array([0]), targeted=True)
    assert found.epsilon[0] == 0
    with pytest.raises(ValueError, match="not one of 3 classes"):
        adversarial.fool(model, image, target=3)


def test_a_training_batch_is_moved_against_the_model_within_its_bound():
    import tensorflow as tf

    model = colour_model()  # class k's logit: 4 x mean of channel k
    x = np.full((4, 16, 16, 3), 128, np.float32)
    x[:2, ..., 0] = 250  # red images labelled red
    x[:2, ..., 1] = 254  # with green at the top of the range
    y = np.zeros((4, 3), np.float32)
    y[:, 0] = 1.0
    keras.utils.set_random_seed(0)
    moved = np.asarray(adversarial.perturbed_batch(model, tf.constant(x), tf.constant(y), 4.0))
    change = moved - x
    assert np.abs(change).max() <= 4 + 1e-4 and moved.min() >= 0 and moved.max() <= 255
    # Against the label: red down by at least a quarter of the bound, green and blue up.
    assert change[..., 0].max() <= -1 + 1e-4
    assert change[2:, ..., 1:].min() >= 1 - 1e-4
    # Where that goes past 255 it stops there.
    assert (moved[:2, ..., 1] == 255).all()
    loss = keras.losses.categorical_crossentropy
    assert float(np.mean(loss(y, model(moved)))) > float(np.mean(loss(y, model(x))))


def test_the_compiled_step_is_traced_once_per_model(model):
    first = adversarial._margin_function(model)
    assert adversarial._margin_function(model) is first
    assert adversarial._margin_function(corner_model()) is not first  # another model
