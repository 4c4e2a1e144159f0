import numpy as np
import pytest

from core.data import Dataset, load_dataset
from core.datastats import (
    balanced_sample,
    channel_histograms,
    class_counts,
    enlarge,
    image_grid,
    imbalance,
    imbalance_summary,
    mean_image_per_class,
    round_robin_sample,
    training_images,
)

Y = np.array([0, 1, 1, 2, 2, 2, 0, 1, 2, 2], np.int32)  # 2 zeros, 3 ones, 5 twos


def test_balanced_sample_caps_each_class_and_groups_by_class():
    idx = balanced_sample(Y, per_class=3, seed=0)
    assert idx.dtype == np.int64
    assert list(Y[idx]) == [0, 0, 1, 1, 1, 2, 2, 2]  # class 0 has only 2
    assert len(set(idx)) == len(idx)


def test_balanced_sample_is_reproducible_and_seed_dependent():
    a = balanced_sample(Y, 2, seed=5)
    np.testing.assert_array_equal(a, balanced_sample(Y, 2, seed=5))
    others = {tuple(balanced_sample(Y, 2, seed=s)) for s in range(10)}
    assert len(others) > 1


def test_balanced_sample_of_chosen_classes_keeps_their_picks():
    everything = balanced_sample(Y, 2, seed=3)
    chosen = balanced_sample(Y, 2, seed=3, classes=[2, 0])
    assert list(Y[chosen]) == [0, 0, 2, 2]
    np.testing.assert_array_equal(chosen, everything[Y[everything] != 1])
    assert len(balanced_sample(Y, 0, seed=3)) == 0


def test_round_robin_sample_cycles_through_classes():
    idx = round_robin_sample(Y, 7, seed=1)
    assert list(Y[idx]) == [0, 1, 2, 0, 1, 2, 1]  # class 0 runs out after two
    np.testing.assert_array_equal(idx[:3], balanced_sample(Y, 1, seed=1))


def test_class_counts_per_split():
    x = np.zeros((10, 2, 2, 3), np.uint8)
    ds = Dataset(["a", "b", "c", "d"], "t", {"train": (x, Y), "val": (x[:2], Y[:2])})
    counts = class_counts(ds)
    assert list(counts) == ["train", "val"]
    assert counts["train"].tolist() == [2, 3, 5, 0]
    assert counts["val"].tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("shown", [0.0, 0.1])
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5])
def test_training_images_counts_what_a_runs_split_trains_on(image_folder, shown, fraction):
    sidebar = load_dataset(image_folder, val_fraction=shown, seed=0)
    run = load_dataset(image_folder, val_fraction=fraction, seed=3)
    assert training_images(class_counts(sidebar), fraction) == len(run.split("train")[1])


@pytest.mark.parametrize("fraction", [0.0, 0.3])
def test_a_folder_with_its_own_validation_images_trains_on_all_of_train(tmp_path, fraction):
    from core.datastats import validation_advice
    from tests.conftest import write_image_folder

    write_image_folder(tmp_path / "d" / "train", per_class=4, classes=("a", "b"))
    write_image_folder(tmp_path / "d" / "val", per_class=1, classes=("a", "b"))
    sidebar = load_dataset(tmp_path / "d", val_fraction=0.1)
    run = load_dataset(tmp_path / "d", val_fraction=fraction, seed=3)
    counts, own = class_counts(sidebar), sidebar.val_folder
    assert training_images(counts, fraction, own) == len(run.split("train")[1]) == 8
    # 10% of 4 images holds out none, but the folder's val/ holds one of each class.
    assert validation_advice(["a", "b"], counts, 0.1) is not None
    assert validation_advice(["a", "b"], counts, fraction, early_stopping=2, val_folder=own) is None


def test_channel_histograms_count_every_value_in_its_bin():
    x = np.zeros((2, 2, 2, 3), np.uint8)  # 8 pixels
    x[..., 0] = 255
    x[0, ..., 1] = 7  # 4 pixels in bin 0 of 32 (0..7), 4 at 0
    x[1, ..., 1] = 8  # 4 pixels in bin 1 (8..15)
    x[..., 2] = 128
    h = channel_histograms(x, bins=32)
    assert h["images"] == 2
    assert h["edges"][:3].tolist() == [0.0, 8.0, 16.0] and h["edges"][-1] == 256.0
    r, g, b = h["counts"]["R"], h["counts"]["G"], h["counts"]["B"]
    assert r[31] == 8 and r.sum() == 8
    assert g[0] == 4 and g[1] == 4 and g.sum() == 8
    assert b[16] == 8 and b.sum() == 8


def test_channel_histograms_subsample_beyond_max_images():
    x = np.random.default_rng(0).integers(0, 256, (50, 4, 4, 3)).astype(np.uint8)
    h = channel_histograms(x, bins=4, max_images=10, seed=1)
    assert h["images"] == 10 and h["counts"]["G"].sum() == 10 * 16
    again = channel_histograms(x, bins=4, max_images=10, seed=1)
    np.testing.assert_array_equal(h["counts"]["R"], again["counts"]["R"])
    with pytest.raises(ValueError):
        channel_histograms(x, bins=0)


def test_mean_image_of_two_constant_images(monkeypatch):
    import core.datastats

    monkeypatch.setattr(core.datastats, "_MEAN_CHUNK", 2)  # the sums cross chunk borders
    x = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (10, 255, 100, 7, 0)])
    y = np.array([0, 0, 1, 0, 0])
    means = mean_image_per_class(x, y, num_classes=3)
    assert means.dtype == np.float32 and means.shape == (3, 2, 2, 3)
    assert np.allclose(means[0], (10 + 255 + 7 + 0) / 4)
    assert np.allclose(means[1], 100)
    assert np.allclose(means[2], 0)  # no images: black


def test_enlarge_repeats_each_pixel():
    img = np.array([[[1, 1, 1], [2, 2, 2]], [[3, 3, 3], [4, 4, 4]]], np.uint8)
    big = enlarge(img, 2)
    assert big.dtype == np.uint8 and big.shape == (4, 4, 3)
    assert big[..., 0].tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    np.testing.assert_array_equal(enlarge(img, 1), img)
    with pytest.raises(ValueError):
        enlarge(img, 0)


def test_image_grid_tiles_with_padding():
    images = np.stack([np.full((2, 3, 3), v, np.uint8) for v in (10, 20, 30)])
    grid = image_grid(images, cols=2, pad=1, fill=255)
    assert grid.shape == (2 * 2 + 1, 2 * 3 + 1, 3)
    assert grid[0, :, 0].tolist() == [10, 10, 10, 255, 20, 20, 20]
    assert grid[2, :, 0].tolist() == [255] * 7
    assert grid[3, :, 0].tolist() == [30, 30, 30, 255, 255, 255, 255]
    assert image_grid(images, cols=8, pad=0).shape == (2, 9, 3)  # one row of three
    with pytest.raises(ValueError):
        image_grid(images[:0], cols=2)


def test_imbalance_says_how_uneven_the_classes_are_and_what_helps():
    assert imbalance(np.array([50, 0, 600, 100])) == 12.0  # an empty class is left aside
    assert imbalance(np.array([7])) == imbalance(np.array([0, 3])) == 1.0
    names = ["cat", "none", "dog", "frog"]
    assert imbalance_summary(np.array([50, 0, 600, 100]), names) == (
        "The largest class has 12.0x the training images of the smallest (dog: 600; cat: 50)."
    )
    assert imbalance_summary(np.array([100, 0, 120, 110]), names) == (
        "The classes are about the same size (the largest 1.20x the smallest)."
    )


def test_validation_advice_names_the_classes_left_unmeasured_and_a_fraction_that_measures_them():
    from core.data import stratified_split
    from core.datastats import validation_advice

    names = ["ant", "bee", "cow", "dog", "elk"]
    counts = {"train": np.array([100, 3, 2, 4, 50])}
    said = validation_advice(names, counts, 0.1)
    assert said == (
        "At a validation fraction of 0.1, 3 of 5 classes hold out no image (bee, cow, dog; the "
        "smallest has 2 images): validation will not measure them. A fraction of 0.3 holds "
        "out at least one image of each class."
    )
    # As the split makes them: 0.25 of 2 rounds to none, 0.3 holds out one of every class.
    y = np.repeat(np.arange(5), counts["train"])
    for fraction, unmeasured in [(0.1, 3), (0.25, 1), (0.3, 0)]:
        held = np.bincount(y[stratified_split(y, fraction, seed=0)[1]], minlength=5)
        assert int(np.sum(held == 0)) == unmeasured
    assert validation_advice(names, counts, 0.3) is None
    # Split already: the train and validation counts together, as the loader splits them.
    assert validation_advice(names, {"train": counts["train"] - 1, "val": np.ones(5)}, 0.3) is None
    assert validation_advice(names, counts, 0.0) is None  # no validation asked for
    # ... except by early stopping, which then never stops the run.
    assert "it will not stop the run" in validation_advice(names, counts, 0.0, early_stopping=3)
    assert validation_advice(names, counts, 0.3, early_stopping=3) is None
    one = validation_advice(["a", "b"], {"train": np.array([1, 50])}, 0.1)
    assert "1 of 2 classes holds out no image (a; the smallest has 1 image)" in one
    assert one.endswith("A class of one image cannot be both learnt from and validated on.")
    every = validation_advice(["a", "b", "c"], {"train": np.array([5, 0, 5])}, 0.1)
    assert every.startswith("At a validation fraction of 0.1 no image is held out (the smallest")
    assert "the run will have no validation accuracy" in every
