import contextlib

import numpy as np
import pytest

from core import novelty
from core.errors import DataError
from core.model import build_model, preset_config
from tests.conftest import smooth_images


@pytest.fixture(scope="module")
def net():
    return build_model(preset_config("quick"))


@pytest.fixture(scope="module")
def check(net):
    return novelty.fit(net, smooth_images(700, seed=0))


def test_the_layers_are_the_last_map_at_each_size_but_the_deepest(net):
    assert novelty.novelty_layers(net) == ["conv1_1", "conv2_1", "conv3_1"]  # 31, 15, 7 px
    seed = build_model(preset_config("seed"))
    assert novelty.novelty_layers(seed) == ["act1_1", "act2_1"]  # only two sizes: both kept


def test_a_model_without_convolutions_has_nothing_to_measure():
    import keras

    dense = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    with pytest.raises(ValueError, match="no convolution"):
        novelty.novelty_layers(dense)


def test_noise_is_unfamiliar_to_a_check_fitted_on_smooth_pictures(net, check):
    assert check.fit_images == 490 and len(check.calibration) == 210  # 30% calibrate
    held_out = check.unfamiliar(check.scores(smooth_images(300, seed=1)))
    noise = np.random.default_rng(2).integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
    assert held_out.mean() <= 0.05
    per_layer = check.layer_scores(noise[:5])
    assert per_layer.shape == (5, 3) and per_layer.dtype == np.float32
    np.testing.assert_array_equal(per_layer.max(axis=1), check.scores(noise[:5]))
    assert check.layer_scores(noise[:0]).shape == (0, 3) and check.scores(noise[:0]).shape == (0,)
    assert check.unfamiliar(check.scores(noise)).all()
    flat = np.broadcast_to(np.uint8([[[90, 140, 30]]]), (1, 32, 32, 3))
    assert check.unfamiliar(check.scores(flat)).all()  # no texture at all: unlike the fields


def test_scores_are_mahalanobis_distances_taken_on_one_blas_thread(check, monkeypatch):
    """The distances as matrix products, numpy's BLAS held to one thread while they run (its
    idle thread spun on and slowed the next batch's forward pass) and given back after."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    images = smooth_images(30, seed=4)
    means = check.reader(images)
    squared = [
        np.einsum("nd,de,ne->n", m - mu, p, m - mu)
        for m, mu, p in zip(means, check.means, check.precisions, strict=True)
    ]
    expected = np.stack(squared, axis=1) / check.scales
    before = blas_threads()
    inside = []
    one_thread = novelty._one_blas_thread

    def watched():
        with one_thread():
            inside.append(blas_threads())
            yield

    monkeypatch.setattr(novelty, "_one_blas_thread", contextlib.contextmanager(watched))
    np.testing.assert_allclose(check.layer_scores(images), expected, rtol=1e-4)
    assert before and inside and inside[0] == [1] * len(before) and blas_threads() == before


def test_the_threshold_flags_one_percent_of_the_calibration_images(check):
    flagged = check.unfamiliar(check.calibration)
    assert 0 < flagged.sum() <= np.ceil(novelty.FALSE_ALARMS * len(check.calibration))
    assert check.typical_share(check.calibration.max() + 1) == 1.0
    assert check.typical_share(check.calibration.min()) == 0.0
    assert check.typical_share(check.threshold) == pytest.approx(1 - novelty.FALSE_ALARMS, abs=0.01)


def test_a_saved_check_scores_as_the_fitted_one_for_its_own_model_file(net, check, tmp_path):
    images = np.concatenate([smooth_images(20, seed=3), np.full((2, 32, 32, 3), 255, np.uint8)])
    model_path = tmp_path / "model.keras"
    net.save(model_path)
    check.save(tmp_path / novelty.FILE, model_path)
    again = novelty.load(tmp_path / novelty.FILE, net, model_path)
    assert again.layers == check.layers and again.threshold == check.threshold
    np.testing.assert_allclose(again.scores(images), check.scores(images), rtol=1e-5)
    assert novelty.load(tmp_path / "missing.npz", net, model_path) is None
    (tmp_path / "torn.npz").write_bytes((tmp_path / novelty.FILE).read_bytes()[:500])
    assert novelty.load(tmp_path / "torn.npz", net, model_path) is None
    other = build_model(preset_config("seed"))  # no layer of those names
    other.save(tmp_path / "other.keras")
    check.save(tmp_path / "other.npz", tmp_path / "other.keras")
    assert novelty.load(tmp_path / "other.npz", other, tmp_path / "other.keras") is None
    retrained = build_model(preset_config("quick"))  # the same layers, other weights
    retrained.save(model_path)
    assert novelty.load(tmp_path / novelty.FILE, retrained, model_path) is None


def test_too_few_training_images_get_a_sentence(net):
    with pytest.raises(DataError, match="199 training images are too few"):
        novelty.fit(net, smooth_images(199, seed=0))


def test_write_saves_the_check_and_reports_the_validation_share(net, tmp_path):
    model_path = tmp_path / "model.keras"
    net.save(model_path)
    record = novelty.write(net, model_path, smooth_images(400, seed=0), smooth_images(50, seed=5))
    assert (tmp_path / novelty.FILE).is_file()
    check = novelty.load(tmp_path / novelty.FILE, net, model_path)
    flagged = check.unfamiliar(check.scores(smooth_images(50, seed=5))).mean()
    assert record["val_images"] == 50 and record["val_flagged"] == pytest.approx(flagged)
    assert record["layers"] == check.layers and record["fit_images"] == 280
    assert record["threshold"] == pytest.approx(check.threshold, abs=1e-4)


def test_why_a_model_has_no_check_names_too_few_training_images():
    from core.novelty import MIN_IMAGES, why_none

    few = {"data": {"split_sizes": {"train": MIN_IMAGES - 1, "val": 20}}}
    assert why_none(few) == (
        f"its run learnt from {MIN_IMAGES - 1} training images, too few to learn what they "
        f"look like (it takes {MIN_IMAGES})."
    )
    enough = {"data": {"split_sizes": {"train": MIN_IMAGES}}}
    for card in (enough, {}, {"data": None}):  # a stopped run, an older model's card
        assert why_none(card).startswith("this model has none (a completed run fits one")
