"""Is this picture like the training images? A check for answers the model has no ground for.

A classifier always answers with one of its classes, however far a picture is from what it
was trained on: the shipped model calls uniform noise "automobile" at 86%, and its top
probability flags only a fifth of such noise as unsure. What its convolutions see is a
better witness. For each of a few layers, the channels' average activations over an image
are compared with their distribution over training images (a Gaussian: mean and shrunk
covariance), and the Mahalanobis distance, divided by that layer's 99th percentile on
other training images, says how unusual the image is there. The largest of these over the
layers is the image's novelty; a picture is unfamiliar when its novelty exceeds that of
99% of the held-out training images (`FALSE_ALARMS`).

Low and middle layers carry it: noise, flat colours, stripes and printed digits stand out
there, while the last block, trained to separate classes, does not describe how typical a
picture is (docs/BENCHMARKS.md, "Unfamiliar pictures").
"""

from __future__ import annotations

import contextlib
import functools
import io
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import DataError

FIT_IMAGES = 5000  # training images the layers' means and covariances are fitted on
CALIBRATION_IMAGES = 2000  # other training images that scale each layer and set the threshold
MIN_IMAGES = 200  # fewer training images than this give no check
FALSE_ALARMS = 0.01  # share of held-out training images a check flags as unfamiliar
SHRINK = 0.1  # covariance shrunk this far towards a multiple of the identity
FILE = "novelty.npz"  # beside model.keras


def why_none(card: dict) -> str:
    """Why a model has no check, for the sentence "No check for unfamiliar pictures: ...".

    Args:
        card: the model's card (`core.train.model_card`).

    Returns:
        A run that learnt from fewer than `MIN_IMAGES` images: that; else where a check
        comes from.
    """
    trained = ((card.get("data") or {}).get("split_sizes") or {}).get("train")
    if isinstance(trained, int) and trained < MIN_IMAGES:
        return (
            f"its run learnt from {trained:,} training images, too few to learn what they "
            f"look like (it takes {MIN_IMAGES:,})."
        )
    return (
        "this model has none (a completed run fits one when its network has convolutions of "
        "its own; for a stopped run or an older model, run `python -m core.registry novelty "
        "--model <model.keras> --data <its data>`)."
    )


@dataclass
class Novelty:
    """A fitted check: per-layer Gaussians over channel means, their scales, a threshold.

    Attributes:
        layers: names of the model's layers whose outputs are measured, input side first.
        means: float32 `(C_l,)` per layer: the channels' average activation.
        precisions: float32 `(C_l, C_l)` per layer: the inverse of the shrunk covariance.
        scales: float32 `(L,)`: each layer's 99th percentile distance on calibration images.
        calibration: float32 `(M,)` sorted novelties of the calibration images.
        fit_images: how many training images the Gaussians were fitted on.
        reader: `read(images) -> [float32 (N, C_l) per layer]`, the channel means of
            `layers` for a batch of uint8 images (`mean_reader`).
    """

    layers: list[str]
    means: list[np.ndarray]
    precisions: list[np.ndarray]
    scales: np.ndarray
    calibration: np.ndarray
    fit_images: int
    reader: object = field(default=None, repr=False, compare=False)

    @property
    def threshold(self) -> float:
        """The novelty above which an image is unfamiliar."""
        return float(np.quantile(self.calibration, 1 - FALSE_ALARMS))

    def scores(self, images: np.ndarray, batch_size: int = 256, progress=None) -> np.ndarray:
        """Novelty of uint8 images `(N, S, S, 3)`: the largest of their `layer_scores`.

        Args:
            progress: `progress(done, total)` after each batch.

        Returns:
            float32 `(N,)`.
        """
        return self.layer_scores(images, batch_size, progress).max(axis=1, initial=0)

    def layer_scores(self, images: np.ndarray, batch_size: int = 256, progress=None):
        """How unusual uint8 images `(N, S, S, 3)` are at each of `layers`: 1.0 is as
        unusual as the 99th percentile calibration image there.

        Returns:
            float32 `(N, L)`.
        """
        if not len(images):
            return np.zeros((0, len(self.layers)), np.float32)
        step = _counter(progress, len(images))
        return self.layer_scores_of(in_batches(self.reader, images, batch_size, step))

    def layer_scores_of(self, means: list[np.ndarray]) -> np.ndarray:
        """`layer_scores` of images whose channel means `reader` (or the int8 copy's
        `predict_with_means`) gave: float32 `(N, L)`."""
        return (_distances(means, self) / self.scales).astype(np.float32)

    def unfamiliar(self, scores: np.ndarray) -> np.ndarray:
        """bool `(N,)`: which novelty `scores` exceed the threshold."""
        return np.asarray(scores) > self.threshold

    def typical_share(self, score: float) -> float:
        """Share of the calibration images whose novelty is below `score`, in [0, 1]."""
        return float(np.searchsorted(self.calibration, score) / len(self.calibration))

    def save(self, path: str | Path, model_path: str | Path) -> None:
        """Writes the check as one `.npz` file (atomically), for the model file it was
        fitted on: `load` gives it only to that file (its SHA-256 is recorded)."""
        from core.fileio import atomic_write_bytes, file_sha256

        arrays = {"layers": np.array(self.layers), "scales": self.scales}
        arrays["model_sha256"] = np.array(file_sha256(model_path))
        arrays |= {"calibration": self.calibration, "fit_images": np.array(self.fit_images)}
        for i, (mean, precision) in enumerate(zip(self.means, self.precisions, strict=True)):
            arrays[f"mean_{i}"], arrays[f"precision_{i}"] = mean, precision
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(Path(path), buf.getvalue())


def load(path: str | Path, model, model_path: str | Path) -> Novelty | None:
    """Reads a check written by `Novelty.save` for `model`, loaded from `model_path`.

    Args:
        model: a Keras model, or the int8 copy (`core.quantize.Int8Model`) at `model_path`.

    Returns:
        The `Novelty`, or None when there is none, it is unreadable, or it was fitted on
        another model file (a retrained or replaced model: its statistics would not hold).
    """
    from core.fileio import file_sha256

    try:
        with np.load(path) as kept:
            if str(kept["model_sha256"]) != file_sha256(model_path):
                return None
            names = [str(n) for n in kept["layers"]]
            check = Novelty(
                names,
                [kept[f"mean_{i}"] for i in range(len(names))],
                [kept[f"precision_{i}"] for i in range(len(names))],
                kept["scales"],
                kept["calibration"],
                int(kept["fit_images"]),
            )
        measured, check.reader = mean_reader(model, names)
        return check if measured == names else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def novelty_layers(model) -> list[str]:
    """The layers a check measures: the last activated map at each spatial size, input
    side first, without the deepest size when there are three or more (there the features
    serve the classes more than they describe the picture).

    Raises:
        ValueError: the model has no convolution.
    """
    from keras import layers

    from core.inspect import map_layers

    POOLING = (layers.MaxPooling2D, layers.AveragePooling2D)

    maps = [n for n in map_layers(model) if not isinstance(model.get_layer(n), POOLING)]
    if not maps:
        raise ValueError(f"The model {model.name} has no convolution to measure.")
    last_at_size = {tuple(model.get_layer(n).output.shape[1:3]): n for n in maps}
    names = list(last_at_size.values())
    return names[:-1] if len(names) >= 3 else names


def channel_means_model(model, names: list[str]):
    """A model from the same input to the spatial means of the named layers' outputs."""
    import keras

    outputs = [keras.ops.mean(model.get_layer(n).output, axis=(1, 2)) for n in names]
    return keras.Model(model.input, outputs)


def mean_reader(model, names: list[str] | None = None):
    """The layers a check on `model` measures and its `Novelty.reader` for them.

    Args:
        model: a Keras model, or an int8 copy (`core.quantize.Int8Model`), whose graph
            outputs the means of the layers it was built with (`means_layers`).
        names: the layers, for a Keras model; default `novelty_layers(model)`.

    Returns:
        `(names, read)`.

    Raises:
        ValueError: as `novelty_layers`.
    """
    if hasattr(model, "channel_means"):
        return list(model.means_layers), model.channel_means
    names = names or novelty_layers(model)
    return names, MeansReader(model, names)


class MeansReader:
    """A Keras model's `Novelty.reader`: the channel means of its measured layers for a batch
    of uint8 images, or (`with_answers`) its probabilities and those means from one forward
    pass, as the int8 copy's `predict_with_means` gives them: the float model's answers and
    its check cost one pass, not two (the layers measured lie on the answer's path)."""

    def __init__(self, model, names: list[str]):
        import keras

        self.model, self.means = model, channel_means_model(model, names)
        # Built here (2 ms for the shipped model), not on first use: a loaded check is
        # shared by every session of the dashboard, and two could build it at once.
        self.both = keras.Model(model.input, [model.output, *self.means.outputs])

    def __call__(self, images) -> list[np.ndarray]:
        return _float_arrays(self.means.predict_on_batch(np.asarray(images, np.float32)))

    def with_answers(self, images) -> list[np.ndarray]:
        """`[probabilities (N, C), means of each layer...]` of uint8 images `(N, S, S, 3)`."""
        return _float_arrays(self.both.predict_on_batch(np.asarray(images, np.float32)))


def _float_arrays(out) -> list[np.ndarray]:
    return [np.asarray(o, np.float32) for o in (out if isinstance(out, list) else [out])]


def fit(model, images: np.ndarray, seed: int = 0, progress=None) -> Novelty:
    """Fits a check on a model's training images.

    `FIT_IMAGES` of them (seeded) fit each layer's Gaussian, `CALIBRATION_IMAGES` others
    scale it and set the threshold: two forward passes of 7,000 images at most (about 14 s
    for the fast net on 2 cores).

    Args:
        model: the float Keras model the check is for, or its int8 copy (`mean_reader`).
        images: uint8 `(N, S, S, 3)` training images.
        seed: which images are used.
        progress: `progress(done, total)` after each batch.

    Returns:
        A `Novelty`.

    Raises:
        DataError: fewer than `MIN_IMAGES` images.
        ValueError: the model has no convolution (its int8 copy: no channel means).
    """
    if len(images) < MIN_IMAGES:
        raise DataError(
            f"{len(images)} training images are too few to learn what they look like "
            f"(it takes {MIN_IMAGES})."
        )
    names, reader = mean_reader(model)
    if not names:
        raise ValueError("This int8 copy gives no channel means to check pictures with.")
    order = np.random.default_rng(seed).permutation(len(images))
    n_cal = min(CALIBRATION_IMAGES, len(images) * 3 // 10)
    fit_rows, cal_rows = np.sort(order[n_cal:][:FIT_IMAGES]), np.sort(order[:n_cal])
    step = _counter(progress, len(fit_rows) + len(cal_rows))
    gaussians = [_gaussian(v) for v in in_batches(reader, images[fit_rows], 256, step)]
    means, precisions = [g[0] for g in gaussians], [g[1] for g in gaussians]
    ones = np.ones(len(names), np.float32)
    check = Novelty(names, means, precisions, ones, np.zeros(1), 0, reader)
    per_layer = _distances(in_batches(reader, images[cal_rows], 256, step), check)
    check.scales = np.maximum(np.quantile(per_layer, 0.99, axis=0), 1e-12).astype(np.float32)
    check.calibration = np.sort((per_layer / check.scales).max(axis=1)).astype(np.float32)
    check.fit_images = len(fit_rows)
    return check


CHECKED_IMAGES = 2000  # validation images a new check is tried on, for its card


def write(model, model_path, train_images, val_images=None, progress=None, path=None) -> dict:
    """Fits a check on a model's training images and saves it as `FILE` beside it.

    Args:
        model: the float model loaded from `model_path`, or the int8 copy there.
        train_images: uint8 `(N, S, S, 3)`, the images it trained on.
        val_images: uint8 images it did not train on, or None; up to `CHECKED_IMAGES` of
            them (seeded) are checked, and the share flagged goes into the record.
        progress: as for `fit`.
        path: where the check goes instead of `FILE` beside the model.

    Returns:
        The model card's `"novelty"` record: layers, images used, threshold and, with
        `val_images`, the share of them flagged.

    Raises:
        DataError, ValueError: as `fit`. OSError: the file cannot be written.
    """
    check = fit(model, train_images, progress=progress)
    path = Path(path or Path(model_path).parent / FILE)
    check.save(path, model_path)
    record = {
        "file": path.name,
        "layers": check.layers,
        "fit_images": check.fit_images,
        "calibration_images": len(check.calibration),
        "threshold": round(check.threshold, 4),
    }
    if val_images is not None and len(val_images):
        from core.inspect import space_rows

        rows = space_rows(len(val_images), CHECKED_IMAGES)
        flagged = check.unfamiliar(check.scores(val_images[rows]))
        record |= {"val_images": len(rows), "val_flagged": round(float(flagged.mean()), 4)}
    return record


def _counter(progress, total: int):
    """A `step(n)` that adds `n` images done and reports `progress(done, total)`."""
    done = [0]

    def step(n):
        done[0] += n
        if progress:
            progress(done[0], total)

    return step


def _gaussian(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and precision of `(N, C)` values, the covariance shrunk by `SHRINK`."""
    values = values.astype(np.float64)
    cov = np.cov(values, rowvar=False).reshape(values.shape[1], values.shape[1])
    ridge = SHRINK * np.trace(cov) / len(cov) + 1e-6
    cov = (1 - SHRINK) * cov + ridge * np.eye(len(cov))
    return values.mean(axis=0).astype(np.float32), np.linalg.inv(cov).astype(np.float32)


def in_batches(reader, images, batch_size: int, step=None) -> list[np.ndarray]:
    """`reader(batch) -> [arrays]` over `images` in batches, each array concatenated;
    `step(n)` after each batch of `n` images."""
    parts = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        parts.append(reader(batch))
        if step:
            step(len(batch))
    return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]


def _distances(values: list[np.ndarray], check: Novelty) -> np.ndarray:
    """Squared Mahalanobis distance of each image at each layer: float `(N, L)`."""
    columns = []
    with _one_blas_thread():
        for v, mean, precision in zip(values, check.means, check.precisions, strict=True):
            z = v - mean
            # A matrix product: np.einsum("nd,de,ne->n") loops without BLAS, 16 ms a layer
            # for 256 images of 256 channels against 0.3 ms.
            columns.append(((z @ precision) * z).sum(axis=1))
    return np.stack(columns, axis=1)


_BLAS_LIMIT = threading.Lock()  # two sessions limiting at once could restore 1 for good


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def _one_blas_thread():
    """numpy's matrix products on one thread: these are small, and OpenBLAS's second thread
    spins on for about 0.1 s after one, taking a core from the next batch's forward pass
    (batches of 256 through the int8 copy and its check: 147 ms each, 115 ms with this;
    the copy alone 115 ms; docs/BENCHMARKS.md, session 48)."""
    with _BLAS_LIMIT, _blas().limit(limits=1, user_api="blas"):
        yield
