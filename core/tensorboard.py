"""TensorBoard logs of a run: per-epoch scalars, the graph and a few labelled predictions.

Every run writes them into `<run>/tensorboard/` (see `core.runs`), so that

    .venv/bin/tensorboard --logdir runs

shows every run side by side. Only epoch-level summaries are written: no per-batch
scalars, histograms or profiling, which would cost training time.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

LOG_DIR = "tensorboard"  # inside the run directory
NUM_IMAGES = 8  # images in the predictions grid
TILE = 96  # pixels per image in the grid
STRIP = 26  # pixels of label text under each image
COLUMNS = 4


def callbacks(run_dir: str | Path, images: np.ndarray, labels: np.ndarray, class_names):
    """Returns the Keras callbacks that write a run's TensorBoard logs.

    Args:
        run_dir: the run directory; logs go to `run_dir/tensorboard/`.
        images: uint8 `(N, S, S, 3)` images to show predictions for (validation images);
            at most `NUM_IMAGES` of them are used, chosen across classes.
        labels: int `(N,)` true labels of `images`.
        class_names: names in label order.

    Returns:
        `[EpochTensorBoard, PredictionImages]`: scalars (loss, accuracy, learning rate;
        validation in their own folder) and the graph, then the predictions grid.
    """
    log_dir = Path(run_dir) / LOG_DIR
    pick = sample_indices(labels, NUM_IMAGES)
    return [
        EpochTensorBoard(log_dir=str(log_dir), update_freq="epoch", profile_batch=0),
        PredictionImages(log_dir / "predictions", images[pick], labels[pick], class_names),
    ]


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback for epoch summaries, plus the op graph, flushed at
    every epoch end.

    Keras 3 writes the conceptual (layer) graph but no op graph, since its train
    function is not a single `tf.function`; this adds the graph of the forward pass.
    The writers otherwise buffer for up to two minutes, so a killed run would lose
    epochs its checkpoints kept, and its resumed logs would have a gap.
    """

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        super().on_train_begin(logs)
        spec = tf.TensorSpec((None, *self.model.input_shape[1:]), tf.float32)
        forward = tf.function(lambda images: self.model(images, training=False))
        with self._train_writer.as_default():
            tf.summary.graph(forward.get_concrete_function(spec).graph)

    def on_train_batch_begin(self, batch, logs=None):
        pass  # only for per-batch summaries and profiling, both off

    def on_train_batch_end(self, batch, logs=None):
        pass  # Keras would still build a no-op summary per metric and batch (~0.2 ms)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        for writer in self._writers.values():
            writer.flush()


class PredictionImages(keras.callbacks.Callback):
    """Writes a grid of images with their predicted and true labels at every epoch end.

    The same images every epoch, so TensorBoard's step slider shows the predictions
    change as the model learns. Green labels are right, red ones wrong.
    """

    def __init__(self, log_dir, images, labels, class_names):
        super().__init__()
        self.log_dir, self.images, self.labels = str(log_dir), images, np.asarray(labels)
        self.class_names = list(class_names)
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        probs = keras.ops.convert_to_numpy(
            self.model(self.images.astype("float32"), training=False)
        )
        predicted = probs.argmax(axis=1)
        grid = prediction_grid(self.images, self.labels, predicted, self.class_names)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            tf.summary.image(
                "predictions",
                grid[None],
                step=epoch,
                description=f"{int((predicted == self.labels).sum())} of {len(self.labels)} "
                "right; under each image its predicted class (green right, red wrong), "
                "then its true class.",
            )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def sample_indices(labels: np.ndarray, n: int) -> np.ndarray:
    """Returns up to `n` indices into `labels`, taking classes in turn (first images first).

    Args:
        labels: int `(N,)`.
        n: how many to pick.

    Returns:
        int `(min(n, N),)` indices: one image of each class, then a second of each, ...
    """
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    # Rank of each image within its class: 0 for the first image of every class.
    starts = np.searchsorted(labels[order], labels[order])
    rank = np.arange(len(order)) - starts
    return order[np.lexsort((labels[order], rank))][:n]


def prediction_grid(images, labels, predicted, class_names, columns: int = COLUMNS):
    """Draws images in a grid, each with its predicted and true class names underneath.

    Args:
        images: uint8 `(N, H, W, 3)`.
        labels: int `(N,)` true labels.
        predicted: int `(N,)` predicted labels.
        class_names: names in label order.
        columns: images per row.

    Returns:
        uint8 `(rows * (TILE + STRIP), columns * TILE, 3)` RGB image.
    """
    from PIL import Image, ImageDraw, ImageFont

    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (columns * TILE, rows * (TILE + STRIP)), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, (image, true, guess) in enumerate(zip(images, labels, predicted, strict=True)):
        x, y = (i % columns) * TILE, (i // columns) * (TILE + STRIP)
        tile = Image.fromarray(np.asarray(image, np.uint8)).resize((TILE, TILE), Image.NEAREST)
        canvas.paste(tile, (x, y))
        colour = (80, 220, 100) if guess == true else (255, 90, 90)
        draw.text((x + 3, y + TILE + 1), "pred " + _short(class_names[guess]), colour, font)
        draw.text((x + 3, y + TILE + 13), "true " + _short(class_names[true]), "#c8c8c8", font)
    return np.asarray(canvas)


def _short(name: str, width: int = 10) -> str:
    # 15 characters in all fit a tile in Pillow's default font.
    return name if len(name) <= width else name[: width - 1] + "."
