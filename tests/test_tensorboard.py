"""TensorBoard logs of real tiny trainings, read back from the event files."""

import io
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from core import runs
from core import tensorboard as tb
from core import train as train_mod
from core.model import ConvBlock, ModelConfig
from core.train import TrainConfig, resume, train
from tests.test_train import _StopAt

TINY = ModelConfig(blocks=[ConvBlock(8)], dense=[], dense_dropout=0.0)


def _config(**kw):
    return TrainConfig(**{"preset": "custom", "model": TINY, "batch_size": 16, **kw})


def _events(folder):
    import tensorflow as tf

    files = sorted(folder.glob("events.out.tfevents.*"))
    return [e for f in files for e in tf.compat.v1.train.summary_iterator(str(f))]


def _values(folder):
    """Returns {tag: [(step, value), ...]}: floats for scalars, the raw tensor otherwise."""
    import tensorflow as tf

    found = defaultdict(list)
    for event in _events(folder):
        for v in event.summary.value:
            array = tf.make_ndarray(v.tensor)
            found[v.tag].append((event.step, float(array) if array.ndim == 0 and
                                 array.dtype != object else array))  # fmt: skip
    return found


def test_a_run_logs_scalars_graph_and_labelled_predictions(tiny_dataset):
    run_dir = train(_config(epochs=2, schedule="cosine"), tiny_dataset)
    logs = run_dir / tb.LOG_DIR
    assert sorted(p.name for p in logs.iterdir()) == ["predictions", "train", "validation"]
    hist = runs.read_history(run_dir)

    train_logs = _values(logs / "train")
    for tag, key in [
        ("epoch_loss", "loss"),
        ("epoch_accuracy", "accuracy"),
        ("epoch_learning_rate", "lr"),
    ]:
        assert [s for s, _ in train_logs[tag]] == [0, 1], tag
        assert [v for _, v in train_logs[tag]] == pytest.approx([h[key] for h in hist], rel=1e-5)
    assert train_logs["epoch_learning_rate"][1][1] < train_logs["epoch_learning_rate"][0][1]
    val_logs = _values(logs / "validation")
    assert [v for _, v in val_logs["epoch_loss"]] == pytest.approx(
        [h["val_loss"] for h in hist], rel=1e-5
    )
    assert "batch_loss" not in train_logs, "per-batch scalars cost time; epoch only"

    events = _events(logs / "train")
    assert any(e.graph_def for e in events), "no op graph"
    assert "keras" in train_logs, "no Keras model graph (conceptual graph)"

    [(step0, image0), (step1, image1)] = _values(logs / "predictions")["predictions"]
    assert (step0, step1) == (0, 1)
    width, height, png = image1
    grid = np.asarray(Image.open(io.BytesIO(png)))
    # 8 of the 15 validation images: 2 rows of 4 tiles, each with its label strip.
    assert grid.shape == (2 * (tb.TILE + tb.STRIP), 4 * tb.TILE, 3)
    assert (int(width), int(height)) == (grid.shape[1], grid.shape[0])
    xv = tiny_dataset.split("val")[0]
    first = tb.sample_indices(tiny_dataset.split("val")[1], tb.NUM_IMAGES)[0]
    top_left = np.asarray(Image.fromarray(xv[first]).resize((tb.TILE, tb.TILE), Image.NEAREST))
    np.testing.assert_array_equal(grid[: tb.TILE, : tb.TILE], top_left)


def test_resume_appends_every_epoch_exactly_once(tiny_dataset):
    config = _config(epochs=3)
    run_dir = train_mod.start_run(config)
    train(config, tiny_dataset, run_dir, callbacks=[_StopAt(run_dir, epoch=1, batch=1)])
    assert runs.read_status(run_dir)["state"] == "stopped"
    logs = run_dir / tb.LOG_DIR
    assert [s for s, _ in _values(logs / "train")["epoch_loss"]] == [0]

    resume(run_dir, tiny_dataset)
    hist = runs.read_history(run_dir)
    scalars = _values(logs / "train")["epoch_loss"]
    assert [s for s, _ in scalars] == [0, 1, 2]
    assert [v for _, v in scalars] == pytest.approx([h["loss"] for h in hist], rel=1e-5)
    assert [s for s, _ in _values(logs / "predictions")["predictions"]] == [0, 1, 2]
    assert len(list((logs / "train").glob("events.out.tfevents.*"))) == 2  # one per process


def test_sample_indices_take_the_classes_in_turn():
    labels = np.array([2, 0, 0, 1, 2, 0, 1])
    picked = tb.sample_indices(labels, 5)
    assert picked.tolist() == [1, 3, 0, 2, 6]
    assert labels[picked].tolist() == [0, 1, 2, 0, 1]
    assert tb.sample_indices(labels, 50).size == 7


def test_grid_labels_are_green_when_right_and_red_when_wrong():
    images = np.zeros((2, 32, 32, 3), np.uint8)
    grid = tb.prediction_grid(images, [0, 1], [0, 0], ["cat", "dog"], columns=2)
    assert grid.shape == (tb.TILE + tb.STRIP, 2 * tb.TILE, 3)
    first_line = slice(tb.TILE, tb.TILE + 12)  # the predicted class

    def green(a):
        return (a[..., 1] > 150) & (a[..., 0] < 150)

    def red(a):
        return (a[..., 0] > 150) & (a[..., 1] < 150)

    right, wrong = grid[first_line, : tb.TILE], grid[first_line, tb.TILE :]
    assert green(right).sum() > 20 and not red(right).any()
    assert red(wrong).sum() > 20 and not green(wrong).any()
