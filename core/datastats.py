"""What the Dataset and Augmentations pages show: samples, counts, histograms, mean images.

Plain numpy on the arrays of a `core.data.Dataset`; every function is cheap enough for
CIFAR-10 (50,000 images) on a laptop, and the pages cache the results.
"""

from __future__ import annotations

import numpy as np

from core.data import held_out_count
from core.words import counted

CHANNELS = ("R", "G", "B")
_MEAN_CHUNK = 2048  # images per block: at most 6 MB copied at 32x32, whatever the dataset size


def balanced_sample(
    y: np.ndarray, per_class: int, seed: int, classes: list[int] | None = None
) -> np.ndarray:
    """Picks up to `per_class` random images of every class, grouped by class.

    Each class draws from its own generator seeded by `(seed, class)`, so choosing
    fewer or more classes never changes the images picked for the others.

    Args:
        y: int labels, shape `(N,)`.
        per_class: most images per class; a class with fewer gives all of its images.
        seed: same seed, same indices.
        classes: labels to sample, in any order; default every label present in `y`.

    Returns:
        int64 indices into `y`, shape `(<= len(classes) * per_class,)`: the chosen images
        of the lowest label first, then the next label, and so on.
    """
    labels = np.unique(y) if classes is None else sorted({int(c) for c in classes})
    picks = [np.empty(0, np.int64)]
    for label in labels:
        rng = np.random.default_rng([seed, int(label)])
        picks.append(rng.permutation(np.flatnonzero(y == label))[: max(per_class, 0)])
    return np.concatenate(picks).astype(np.int64)


def round_robin_sample(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Picks `count` random images taking one class after the other (0, 1, 2, ..., 0, 1, ...).

    Args:
        y: int labels, shape `(N,)`.
        count: how many images; fewer when `y` has fewer.
        seed: same seed, same indices (those of `balanced_sample` with this seed).

    Returns:
        int64 indices into `y`, shape `(min(count, N),)`.
    """
    labels = np.unique(y)
    per_class = -(-count // max(len(labels), 1))
    picked = balanced_sample(y, per_class, seed)
    rank = np.concatenate([np.arange(np.sum(y[picked] == c)) for c in labels] or [[]])
    order = np.lexsort((y[picked], rank))  # rank first, then class
    return picked[order][:count]


def class_counts(dataset) -> dict[str, np.ndarray]:
    """Counts the images of every class in every split.

    Args:
        dataset: a `core.data.Dataset`.

    Returns:
        `{split: counts}` in the dataset's split order, counts int64 `(num_classes,)`.
    """
    return {
        name: np.bincount(y, minlength=dataset.num_classes).astype(np.int64)
        for name, (_, y) in dataset.splits.items()
    }


def training_images(counts: dict[str, np.ndarray], val_fraction: float, val_folder="") -> int:
    """How many images a run that holds out `val_fraction` of a dataset's training images
    (its train and validation splits together; `counts` from `class_counts`) trains on,
    as `core.data.load_dataset` splits them: all of its train split when its validation
    images are a folder of their own (`val_folder`, `core.data.Dataset.val_folder`)."""
    if val_folder:
        return int(counts["train"].sum())
    every = counts["train"] + counts.get("val", 0)
    return int(sum(int(n) - held_out_count(int(n), val_fraction) for n in every))


def validation_advice(
    class_names: list[str],
    counts: dict[str, np.ndarray],
    val_fraction: float,
    early_stopping: int = 0,
    val_folder: str = "",
) -> str | None:
    """A sentence when holding out `val_fraction` of each class's training images (as
    `core.data.load_dataset` splits them) leaves a class without a validation image.

    Args:
        class_names: the dataset's classes, in label order.
        counts: `class_counts` of the dataset (its train and validation splits together).
        val_fraction: the share of each class held out.
        early_stopping: the run's patience in epochs (0: none).
        val_folder: the dataset's own validation folder (`core.data.Dataset.val_folder`),
            whose images are validated on whatever the fraction: nothing to say then.

    Returns:
        The classes left unmeasured and the smallest fraction (in steps of 0.05, at most
        0.5) that holds out an image of each; None when every class holds one out, or
        when `val_fraction` is 0 (no validation asked for) and nothing would stop early.
    """
    if val_folder:
        return None
    if val_fraction <= 0:
        return (
            "Early stopping watches validation accuracy, and a validation fraction of 0 "
            "holds out no image: it will not stop the run."
            if early_stopping
            else None
        )
    every = counts["train"] + counts.get("val", 0)
    missed = [i for i, n in enumerate(every) if n and not held_out_count(int(n), val_fraction)]
    if not missed:
        return None
    smallest = int(min(every[missed]))
    if len(missed) == int(np.count_nonzero(every)):
        said = (
            f"At a validation fraction of {val_fraction:g} no image is held out (the smallest "
            f"class has {counted(smallest, 'image')}): the run will have no validation "
            "accuracy to watch or to keep its best epoch by."
        )
    else:
        named = ", ".join(class_names[i] for i in missed[:3])
        named += f" and {len(missed) - 3} more" if len(missed) > 3 else ""
        hold = "holds" if len(missed) == 1 else "hold"
        said = (
            f"At a validation fraction of {val_fraction:g}, {len(missed)} of "
            f"{int(np.count_nonzero(every))} classes {hold} out no image ({named}; the smallest "
            f"has {counted(smallest, 'image')}): validation will not measure them."
        )
    steps = [k / 20 for k in range(1, 11)]
    fraction = next((f for f in steps if held_out_count(smallest, f)), None)
    if fraction is None:
        return said + " A class of one image cannot be both learnt from and validated on."
    return said + f" A fraction of {fraction:g} holds out at least one image of each class."


UNEVEN = 1.5  # the largest class this many times the smallest: worth saying


def without_images(class_names: list[str], counts) -> list[str]:
    """The classes of `class_names` whose count in `counts` (one per class) is 0: those a
    split lacks (a valid/ without a rare class)."""
    return [name for name, count in zip(class_names, counts, strict=True) if not count]


def imbalance(counts: np.ndarray) -> float:
    """How many times the images of the smallest class the largest has (classes with no
    image left aside; 1.0 for fewer than two such classes)."""
    counts = np.asarray(counts)
    present = counts[counts > 0]
    return float(present.max() / present.min()) if len(present) > 1 else 1.0


def imbalance_summary(counts: np.ndarray, class_names: list[str]) -> str:
    """The classes' sizes in a sentence: about even (below `UNEVEN`), or how uneven."""
    ratio = imbalance(counts)
    if ratio < UNEVEN:
        return f"The classes are about the same size (the largest {ratio:.2f}x the smallest)."
    present = [i for i in range(len(counts)) if counts[i] > 0]
    big = max(present, key=lambda i: counts[i])
    small = min(present, key=lambda i: counts[i])
    return (
        f"The largest class has {ratio:.1f}x the training images of the smallest "
        f"({class_names[big]}: {counts[big]:,}; {class_names[small]}: {counts[small]:,})."
    )


def channel_histograms(x: np.ndarray, bins: int = 32, max_images: int = 5000, seed: int = 0):
    """Histograms of the red, green and blue values of (a random subset of) the images.

    Beyond `max_images` images a seeded random subset without repetition is counted:
    5,000 of CIFAR-10's 50,000 images give the same shape ten times faster.

    Args:
        x: uint8 images `(N, H, W, 3)`.
        bins: equal-width bins over 0..255; must divide into 1..256.
        max_images: most images counted.
        seed: picks the subset.

    Returns:
        `{"edges": float64 (bins + 1,), "counts": {"R": int64 (bins,), "G": ..., "B": ...},
        "images": number of images counted}`. Bin `k` holds the values `v` with
        `edges[k] <= v < edges[k + 1]`.

    Raises:
        ValueError: `bins` is outside 1..256.
    """
    if not 1 <= bins <= 256:
        raise ValueError(f"bins must be in 1..256, got {bins}.")
    if len(x) > max_images:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_images, replace=False))]
    # One pass of bincount over 0..255, then fold into bins: faster than np.histogram.
    bin_of_value = np.arange(256) * bins // 256
    counts = {}
    for channel, name in enumerate(CHANNELS):
        per_value = np.bincount(x[..., channel].ravel(), minlength=256)
        counts[name] = np.bincount(bin_of_value, weights=per_value, minlength=bins).astype(np.int64)
    edges = np.arange(bins + 1) * (256.0 / bins)
    return {"edges": edges, "counts": counts, "images": int(len(x))}


def mean_image_per_class(x: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Averages the images of every class, pixel by pixel.

    Sums run in uint64 over blocks of images, one class at a time, so memory stays small
    and any number of uint8 images add up exactly (3x faster than float64 one-hot matrix
    products over 45,000 CIFAR images here: 0.12 s against 0.36 s).

    Args:
        x: uint8 images `(N, S, S, 3)`.
        y: int labels `(N,)` in `0..num_classes - 1`.
        num_classes: number of classes C.

    Returns:
        float32 `(C, S, S, 3)` in [0, 255] (round and cast to uint8 to display); a class
        without images gets a black image.
    """
    sums = np.zeros((num_classes, *x.shape[1:]), np.uint64)
    for start in range(0, len(x), _MEAN_CHUNK):
        block, labels = x[start : start + _MEAN_CHUNK], y[start : start + _MEAN_CHUNK]
        for c in np.unique(labels):
            sums[c] += block[labels == c].sum(axis=0, dtype=np.uint64)
    counts = np.bincount(y, minlength=num_classes)[:num_classes]
    means = sums / np.maximum(counts, 1).reshape(-1, *([1] * (x.ndim - 1)))
    return means.astype(np.float32)


def enlarge(image: np.ndarray, factor: int) -> np.ndarray:
    """Scales an image up by repeating every pixel, so 32x32 pixels stay sharp squares.

    Args:
        image: uint8 `(H, W)` or `(H, W, C)`.
        factor: integer scale, at least 1.

    Returns:
        uint8 `(H * factor, W * factor[, C])`.

    Raises:
        ValueError: `factor` is not a positive integer.
    """
    if int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}.")
    factor = int(factor)
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def image_grid(images, cols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tiles equally sized images into one picture, row by row.

    Args:
        images: uint8 `(N, H, W, 3)` (or a list of `(H, W, 3)` arrays), N >= 1.
        cols: images per row; fewer when N is smaller.
        pad: pixels between neighbouring images (none around the border).
        fill: grey level of the padding and of empty cells in the last row.

    Returns:
        uint8 `(rows * H + (rows - 1) * pad, cols * W + (cols - 1) * pad, 3)`
        where `rows = ceil(N / cols)`.

    Raises:
        ValueError: no images, or `cols` below 1.
    """
    images = np.asarray(images, dtype=np.uint8)
    if len(images) == 0 or cols < 1:
        raise ValueError("image_grid needs at least one image and one column.")
    n, h, w = images.shape[:3]
    cols = min(cols, n)
    rows = -(-n // cols)
    grid = np.full(
        (rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, *images.shape[3:]),
        fill,
        np.uint8,
    )
    for i, image in enumerate(images):
        top, left = (i // cols) * (h + pad), (i % cols) * (w + pad)
        grid[top : top + h, left : left + w] = image
    return grid
