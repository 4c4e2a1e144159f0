"""Dataset sources, stratified splits and the decoded-array cache.

Every source ends as the same `Dataset`: uint8 images `(N, H, W, 3)`, integer labels,
class names in label order, a description of where it came from, and its splits.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
import re
import socket
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import ROOT
from core.errors import DataError, ImageError
from core.fileio import atomic_write_bytes, remove_stale_entries

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_DOWNLOAD_MB = 163
SPLITS = ("train", "val", "test")
# An image folder's parts, by their code in its decoded arrays ("part"): train/ (or the
# folder itself), test/, and its own validation folder beside train/.
PARTS = ("train", "test", "val")
# Names of a folder's own validation images beside train/ (ImageNet and Kaggle's val/,
# Roboflow's valid/, TensorFlow Datasets' validation/): the first there is read.
VAL_FOLDERS = ("val", "valid", "validation")
# The file types of core.images's formats: an image folder's files, the photo uploaders'.
# .jfif and .jpe: JPEGs as Windows and some browsers save pictures from the web.
UPLOAD_TYPES = ["jpg", "jpeg", "jfif", "jpe", "png", "webp", "bmp", "gif", "avif", "heic", "heif"]
IMAGE_SUFFIXES = {f".{kind}" for kind in UPLOAD_TYPES}
# Pictures of other formats a folder of photos may hold (a scanner's TIFF, a camera's raw
# files), named in the sentence that passes them over.
OTHER_PICTURES = {
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".jxl": "JPEG XL",
    ".jp2": "JPEG 2000",
    ".svg": "SVG",
    ".psd": "Photoshop",
    ".ico": "ICO",
    ".dng": "raw (DNG)",
    ".cr2": "raw (CR2)",
    ".nef": "raw (NEF)",
    ".arw": "raw (ARW)",
}


def shown(name: str) -> str:
    """A file name as text a page or a terminal can show: bytes of a name that are not
    UTF-8 (a photo named on an older system) become U+FFFD. Such a name opens the file
    only as it was listed, so the loader keeps that form and shows this one."""
    try:
        name.encode()
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "replace")


def _shown_all(names: np.ndarray) -> np.ndarray:
    """`shown` of each name; the array itself when every name is UTF-8 already (one check
    of them all: 7 ms for 50,000 names, against 27 ms name by name)."""
    try:
        "".join(names.tolist()).encode()
        return names
    except UnicodeEncodeError:
        return np.array([shown(name) for name in names])


def unsupported_file(path: Path) -> str | None:
    """Why a folder's file is passed over before it is read (from its suffix), or None."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return None
    if suffix in OTHER_PICTURES:
        return f"{OTHER_PICTURES[suffix]} pictures are not supported: convert it to JPEG or PNG"
    return f"not an image file type ({suffix or 'no extension'})"


@dataclass
class Dataset:
    """Images and labels of one source, split into train, val and (when given) test.

    Attributes:
        class_names: names in label order; label `i` is `class_names[i]`.
        source: human-readable description of where the data came from.
        splits: `{"train": (x, y), "val": (x, y), "test": (x, y)}`, where `x` is uint8
            `(N, H, W, 3)` and `y` is int32 `(N,)`. "test" is absent when the source has
            no test split; "val" is absent when `val_fraction` was 0 (or the folder's own
            validation folder holds no readable image).
        skipped: `(path, reason)` for every file that could not be read.
        files: for an image folder, each split's image files as paths relative to the
            folder (str arrays, one per image of `splits`); empty for CIFAR-10 sources.
        stored: for an image folder, how each split's files stored their pictures: int32
            `(N, 3)` of width, height (upright, before resizing) and flags
            (`core.images.GREYSCALE`, `TRANSPARENT`); empty for CIFAR-10 sources.
        left_out: training images left out as near-duplicates of held-out images
            (`core.near_duplicates.without_copies`).
        val_folder: the folder beside train/ whose images are the "val" split ("valid"),
            or "" when they are held out of the training images by fraction and seed.
    """

    class_names: list[str]
    source: str
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, np.ndarray] = field(default_factory=dict)
    left_out: int = 0
    stored: dict[str, np.ndarray] = field(default_factory=dict)
    val_folder: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.splits["train"][0].shape[1])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(x, y)` of a split, or raises `DataError` naming the ones there are."""
        if name not in self.splits:
            raise DataError(f"This dataset has no '{name}' split; it has {', '.join(self.splits)}.")
        return self.splits[name]

    def image_name(self, split: str, index: int) -> str:
        """One image as the pages name it: "val #12 (cat)", and for an image folder its file
        after it ("val #12 (cat) · cat/013.png"), where to find it."""
        label = self.class_names[int(self.splits[split][1][index])]
        file = self.files.get(split)
        return f"{split} #{index} ({label})" + ("" if file is None else f" · {file[index]}")

    def summary(self) -> dict:
        """Returns a JSON-ready description: source, classes, image size, split sizes, the
        share of training images that were not square (CIFAR-10's are all 32 x 32), skipped
        count (and the training images left out, when some were, and the folder of the
        validation images, when the data has its own)."""
        sides = self.stored.get("train")
        not_square = 0.0 if sides is None or not len(sides) else np.mean(sides[:, 0] != sides[:, 1])
        return (
            {
                "source": self.source,
                "class_names": self.class_names,
                "image_size": self.image_size,
                "split_sizes": {k: int(len(v[1])) for k, v in self.splits.items()},
                "not_square": round(float(not_square), 4),
                "skipped_files": len(self.skipped),
            }
            | ({"near_duplicates_left_out": self.left_out} if self.left_out else {})
            | ({"val_folder": self.val_folder} if self.val_folder else {})
        )


def absolute_spec(spec: str) -> str:
    """`spec` with its path made absolute, for a child process: those run in the project
    folder (`core.jobs.spawn`), not in the caller's.

    "cifar10" and a path that does not exist (the loader words that error) stay as given.
    """
    path = Path(spec).expanduser()
    return str(path.resolve()) if spec != "cifar10" and path.exists() else spec


def held_out_count(count: int, fraction: float) -> int:
    """How many of a class's `count` images `stratified_split` holds out."""
    return int(round(count * fraction))


def fewest_to_hold_out(fraction: float) -> int | None:
    """The fewest images a class needs for `stratified_split` to hold out one of them at
    `fraction` (6 at 0.1: 10% of 5 rounds to none); None at 0."""
    if fraction <= 0:
        return None
    return next(n for n in range(1, 10**6) if held_out_count(n, fraction))


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Splits indices so that every class keeps its share in both parts.

    Args:
        y: int labels, shape `(N,)`.
        fraction: share of each class that goes to the second part, in `[0, 1)`.
        seed: the split is a pure function of `(y, fraction, seed)`.

    Returns:
        `(keep, held_out)`: sorted int64 index arrays that partition `range(N)`.
    """
    if not 0 <= fraction < 1:
        raise DataError(f"The validation fraction must be in [0, 1); got {fraction}.")
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        held.append(idx[: held_out_count(len(idx), fraction)])
    held_out = np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)
    keep = np.setdiff1d(np.arange(len(y)), held_out)
    return keep, held_out


def load_dataset(
    spec: str | os.PathLike,
    *,
    image_size: int = 32,
    val_fraction: float = 0.1,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress=None,
    listing: FolderListing | None = None,
    fit: str = "squash",
) -> Dataset:
    """Loads a dataset from any supported source and splits off a validation set.

    Args:
        spec: `"cifar10"` (Keras's downloader), a folder of class subfolders (optionally
            inside `train/` and `test/`), a `cifar-10-python.tar.gz` archive, or an
            extracted `cifar-10-batches-py` folder.
        image_size: side of the square images returned; other sizes are resized.
        val_fraction: stratified share of the training images held out for validation;
            not used for a folder with validation images of its own (`VAL_FOLDERS`
            beside train/), which are the validation split as they are.
        seed: fixes the validation split (not used either beside a folder's own).
        cache_dir: where decoded folders are cached; default `default_cache_dir()`.
        progress: `progress(done, total)` while a folder's images are decoded (see
            `load_image_folder`).
        listing: `folder_listing(spec, image_size, cache_dir, fit)` made moments before, so
            the folder is not listed again (50,000 files: about 0.5 s).
        fit: how an image folder's pictures that are not square become square, one of
            `core.images.ONE_VIEW`: "squash" (whole, as Keras's `image_dataset_from_directory`
            reads them by default) or "crop" (their centre square, as its
            `crop_to_aspect_ratio=True`). CIFAR-10's images are square either way.

    Returns:
        A `Dataset`.

    Raises:
        DataError: the source is missing, empty, malformed or has fewer than 2 classes.
    """
    folder, source = _read_source(spec, image_size, cache_dir, progress, listing, fit)
    if folder.val_folder:  # the folder's own: every training image is one
        chosen = {"train": slice(None)}
    else:
        keep, held = stratified_split(folder.train[1], val_fraction, seed)
        chosen = {"train": keep} | ({"val": held} if len(held) else {})

    def per_split(arrays: dict) -> dict:
        """`{"train": a, "val": b, "test": c}`, an array per image of each part, as the
        splits are, from one per image of each part of the folder."""
        own = {n: arrays[n] for n in ("val", "test") if n in arrays and len(arrays[n])}
        return {n: arrays["train"][i] for n, i in chosen.items()} | own if arrays else {}

    parts = {"train": folder.train, "val": folder.val, "test": folder.test}
    parts = {name: xy for name, xy in parts.items() if xy is not None}
    x, y = (per_split({part: xy[k] for part, xy in parts.items()}) for k in (0, 1))
    splits = {n: (x[n], y[n]) for n in x}
    files, stored = per_split(folder.files), per_split(folder.stored)
    return Dataset(
        folder.class_names,
        source,
        splits,
        folder.skipped,
        files,
        stored=stored,
        val_folder=folder.val_folder,
    )


def _read_source(spec, image_size, cache_dir, progress=None, listing=None, fit="squash"):
    if str(spec).lower() in ("cifar10", "cifar-10"):
        path = download_cifar10()
        train, test = read_cifar_archive(path, image_size)
        return FolderData(train, test, list(CIFAR10_CLASSES)), "CIFAR-10 (Keras download)"
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"The path {path} does not exist.")
    if path.is_file() and (wrong := _not_an_archive(path)):
        raise DataError(wrong)
    if path.is_file() or _is_cifar_batches_dir(path):
        train, test = read_cifar_archive(path, image_size)
        source = f"CIFAR-10 archive {shown(str(path))}"
        return FolderData(train, test, list(CIFAR10_CLASSES)), source
    if not path.is_dir():
        raise DataError(f"{path} is neither a folder nor a CIFAR-10 archive.")
    source = f"image folder {shown(str(path))}"  # kept in model cards, shown on pages
    return load_image_folder(path, image_size, cache_dir, progress, listing, fit), source


def _not_an_archive(path: Path) -> str | None:
    """What a file given as the data is when it is a zip or a picture, not an archive."""
    import zipfile

    name = shown(str(path))
    if zipfile.is_zipfile(path):
        return (
            f"{name} is a zip file, not a folder: unzip it and give the folder it makes (the "
            'Dataset page\'s "Use your own images (.zip)" unpacks and checks it for you).'
        )
    if path.suffix.lower() in IMAGE_SUFFIXES or path.suffix.lower() in OTHER_PICTURES:
        return (
            f"{name} is a single picture: give the folder that holds a folder per class "
            "(e.g. cats/001.jpg and dogs/002.jpg)."
        )
    return None


def keras_home() -> Path:
    """Keras's cache folder: `$KERAS_HOME` as it is now, else `~/.keras` (Keras's default)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def cifar10_cache_path() -> Path:
    """Where the downloaded archive is kept: `<keras home>/datasets/`."""
    return keras_home() / "datasets" / CIFAR10_ARCHIVE


def download_cifar10(progress=None, poll_seconds: float = 0.25) -> Path:
    """Downloads CIFAR-10 through Keras (progress bar, checksum, cached under KERAS_HOME).

    Args:
        progress: optional `callable(fraction)` called from this thread while the
            transfer runs (Keras's own progress bar still prints on the terminal).
        poll_seconds: how often `progress` hears of the file's growth.

    Returns:
        Path of the verified `cifar-10-python.tar.gz`.

    Raises:
        DataError: the download failed or the checksum does not match.
    """
    import keras

    def fetch():
        # Keras falls back to /tmp/.keras when the folder does not exist yet.
        keras_home().mkdir(parents=True, exist_ok=True)
        return keras.utils.get_file(
            fname=CIFAR10_ARCHIVE,
            origin=CIFAR10_URL,
            file_hash=CIFAR10_SHA256,
            cache_dir=str(keras_home()),
        )

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(fetch)
            while progress is not None and not future.done():
                _report(progress)
                wait([future], timeout=poll_seconds)
            path = future.result()
    except Exception as err:  # the network, the server, the checksum or the disk
        if _damaged(err):  # Keras leaves it: the page would take it for the archive
            with contextlib.suppress(OSError):
                cifar10_cache_path().unlink(missing_ok=True)
        raise DataError(
            f"CIFAR-10 could not be downloaded from {CIFAR10_URL}: {_download_failure(err)}"
        ) from err
    if progress is not None:
        progress(1.0)
    return Path(path)


def _download_failure(err: BaseException) -> str:
    """What went wrong in `keras.utils.get_file` and what to do, as the end of a sentence.
    Keras raises a bare `Exception("URL fetch failure on <url>: None -- [Errno -2] ...")`
    inside its handler of urllib's error, which stays on as the exception's context."""
    import urllib.error
    import urllib.parse

    elsewhere = "point the dataset at a local cifar-10-python.tar.gz or an image folder."
    cause = err.__cause__ or err.__context__ or err
    if isinstance(cause, urllib.error.HTTPError):
        return f"the server answered {cause.code} ({cause.reason}). Try again later, or {elsewhere}"
    if isinstance(cause, urllib.error.URLError):
        reason = cause.reason
        if isinstance(reason, socket.gaierror):
            host = urllib.parse.urlsplit(CIFAR10_URL).hostname
            what = f"this machine could not look up {host} (no internet connection, or no DNS)"
        elif isinstance(reason, TimeoutError):
            what = "the connection timed out"
        elif isinstance(reason, ConnectionRefusedError):
            what = "the connection was refused"
        else:
            what = f"the connection failed ({getattr(reason, 'strerror', None) or reason})"
        return f"{what}. Without internet, {elsewhere}"
    if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"the disk holding {keras_home()} is full (the archive takes {CIFAR10_DOWNLOAD_MB} "
            "MB): free some space or set KERAS_HOME to another disk, then download again."
        )
    if isinstance(cause, OSError) and cause.strerror:
        return (
            f"{keras_home()} cannot be written ({cause.strerror}): make it writable or set "
            "KERAS_HOME to a writable folder."
        )
    if _damaged(err):
        return (
            "the file that arrived is incomplete or damaged (its checksum does not match). "
            "It was deleted: downloading again starts afresh."
        )
    return f"{err}. Without internet, {elsewhere}"


def _damaged(err: BaseException) -> bool:
    """Whether `get_file` refused what arrived for its checksum."""
    return isinstance(err, ValueError) and "file hash does not match" in str(err)


def _report(progress):
    target = cifar10_cache_path()
    size = target.stat().st_size if target.exists() else 0
    progress(min(0.99, size / (CIFAR10_DOWNLOAD_MB * 1e6)))


# --- CIFAR python archive -------------------------------------------------------------


def _is_cifar_batches_dir(path: Path) -> bool:
    return (path / "data_batch_1").is_file() or (
        path / "cifar-10-batches-py" / "data_batch_1"
    ).is_file()


def read_cifar_archive(path: str | os.PathLike, image_size: int = 32):
    """Reads the CIFAR-10 python format from a `.tar.gz` or an extracted folder.

    Args:
        path: `cifar-10-python.tar.gz`, or a folder holding `data_batch_1..5` and
            `test_batch` (directly or in `cifar-10-batches-py/`).
        image_size: returned side length; 32 keeps the original pixels.

    Returns:
        `((x_train, y_train), (x_test, y_test))`, uint8 `(N, S, S, 3)` and int32 `(N,)`.

    Raises:
        DataError: the archive is corrupt or lacks a batch.
    """
    path = Path(path)
    try:
        batches = _cifar_batches(path)
        names = [f"data_batch_{i}" for i in range(1, 6)]
        train = _concat([_decode_batch(batches[n]) for n in names])
        test = _decode_batch(batches["test_batch"])
    except KeyError as err:
        raise DataError(f"The CIFAR-10 archive {path} has no batch {err}.") from err
    except (OSError, EOFError, tarfile.TarError, pickle.UnpicklingError, ValueError) as err:
        raise DataError(
            f"The CIFAR-10 archive {path} is corrupt or not a CIFAR-10 python archive ({err})."
        ) from err
    return _resized(train, image_size), _resized(test, image_size)


def _cifar_batches(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        base = path / "cifar-10-batches-py" if not (path / "data_batch_1").exists() else path
        return {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()}
    with tarfile.open(path, "r:*") as tar:
        # Members are read into memory by name, never extracted: no path can escape.
        return {
            Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()
        }


class _RestrictedUnpickler(pickle.Unpickler):
    """CIFAR batches hold only dicts, lists, bytes and numpy arrays; nothing else loads."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),  # how protocol-2 pickles spell byte strings
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"forbidden object {module}.{name}")
        return super().find_class(module, name)


def _decode_batch(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data = np.asarray(batch["data"], dtype=np.uint8)
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    y = np.asarray(batch["labels"], dtype=np.int32)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    return np.ascontiguousarray(x), y


def _concat(parts):
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _resized(split, image_size):
    x, y = split
    if x.shape[1] == image_size:
        return x, y
    import tensorflow as tf

    x = tf.image.resize(x, (image_size, image_size), antialias=True).numpy()
    return np.clip(np.round(x), 0, 255).astype(np.uint8), y


# --- image folders --------------------------------------------------------------------


@dataclass
class FolderData:
    """What `load_image_folder` returns (and `load_dataset` reads from a CIFAR-10 archive,
    with no files)."""

    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray] | None
    class_names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # "train" (and "test"): each image's file, relative to root, and how it stored its
    # picture (`Dataset.stored`)
    files: dict[str, np.ndarray] = field(default_factory=dict)
    stored: dict[str, np.ndarray] = field(default_factory=dict)
    val: tuple[np.ndarray, np.ndarray] | None = None  # the folder's own validation images
    val_folder: str = ""  # their folder's name (`VAL_FOLDERS`), "" when it has none


def default_cache_dir() -> Path:
    """Returns `$CNN_CACHE_DIR`, or `~/.cache/cnn-dashboard`."""
    return Path(os.environ.get("CNN_CACHE_DIR", Path.home() / ".cache" / "cnn-dashboard"))


def load_image_folder(
    root: str | os.PathLike,
    image_size: int = 32,
    cache_dir=None,
    progress=None,
    listing: FolderListing | None = None,
    fit: str = "squash",
) -> FolderData:
    """Decodes a folder of class subfolders, optionally split into `train/` and `test/`
    (and a validation folder of its own beside them, `VAL_FOLDERS`).

    Decoded arrays are cached under `cache_dir`, keyed by every file's path, size and
    modification time, so a second load is a memory map away and a changed folder is
    decoded again.

    Args:
        root: `root/<class>/*.jpg` or `root/train/<class>/*` (+ `root/test/<class>/*`,
            + `root/val/<class>/*`).
        image_size: every image is resized to `(image_size, image_size)`.
        cache_dir: cache folder; default `default_cache_dir()`.
        progress: called as `progress(done, total)` while images are decoded (not on a
            cache hit), every `PROGRESS_EVERY` images and at the end.
        listing: `folder_listing(root, image_size, cache_dir, fit)` made moments before; by
            default the folder is listed here.
        fit: "squash" or "crop", as for `load_dataset`.

    Returns:
        A `FolderData` with uint8 images and int32 labels.

    Raises:
        DataError: no class folders, a single class, an empty class, or no readable image.
    """
    folder = listing or FolderListing(root, image_size, cache_dir, fit)
    if not folder.describes(root, image_size, fit):
        raise ValueError(
            f"the listing given is of {folder.source}, not of {root} at {image_size} ({fit})"
        )
    arrays, skipped = _cached_decode(folder, progress, names=("x", "y", "part", "stored"))
    x, y, part, stored = (arrays[n] for n in ("x", "y", "part", "stored"))
    files = _shown_all(_readable_files(folder, skipped))
    if len(folder.parts) > 1:
        masks = {name: part == PARTS.index(name) for name in folder.parts}
        xy = {name: (x[m], y[m]) for name, m in masks.items()}
        files = {name: files[m] for name, m in masks.items()}
        stored = {name: stored[m] for name, m in masks.items()}
    else:  # every image is a training image: no copy of them (150 MB for CIFAR-10)
        xy, files, stored = {"train": (x, y)}, {"train": files}, {"train": stored}
    _check_classes(xy["train"][1], folder.class_names, folder.train_root)
    skipped = [(shown(path), reason) for path, reason in skipped]
    return FolderData(
        xy["train"],
        xy.get("test"),
        folder.class_names,
        skipped,
        files,
        stored,
        val=xy.get("val"),
        val_folder=folder.val_folder,
    )


def _readable_files(folder: FolderListing, skipped) -> np.ndarray:
    """The listed files that decoded, in the order of the decoded arrays, relative to the
    folder."""
    left_out = {path for path, _ in skipped}
    start = len(str(Path(folder.source[0]) / "x")) - 1  # every listed path is under the root
    return np.array([str(p)[start:] for p, _, _ in folder.files if str(p) not in left_out])


def folder_listing(
    spec: str | os.PathLike, image_size: int = 32, cache_dir=None, fit: str = "squash"
) -> FolderListing | None:
    """What loading `spec` would read: its files and their cache entry, or None.

    Costs a listing and a `stat` of every file (about 0.5 s for 50,000). None for CIFAR-10
    archives, paths that are not folders and folders that cannot be used (loading them
    explains why). Pass it to `load_dataset` or `load_image_folder` to spare a second
    listing.
    """
    path = Path(spec).expanduser()
    if not path.is_dir() or _is_cifar_batches_dir(path):
        return None
    try:
        return FolderListing(path, image_size, cache_dir, fit)
    except (DataError, OSError):
        return None  # loading it says what is wrong


def folder_contents(
    listing: FolderListing, progress=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """What a listed folder's readable files hold: labels, parts and digests of their bytes.

    Decodes the folder into its cache entry first when it is not there, exactly as
    `load_image_folder` would, so a check of the folder (`core.userdata.check_folder`)
    and the load that follows read every file once between them.

    Args:
        listing: the folder's `folder_listing`.
        progress: called as for `load_image_folder`, while the folder is decoded.

    Returns:
        `(labels, parts, digests, skipped)` in listing order: int32 labels `(N,)`, int8
        parts `(N,)` (their codes in `PARTS`: 0 for training images, 1 for `test/`, 2 for
        the folder's own validation images), uint8 BLAKE2b digests
        `(N, 16)` of the readable files, and `(path, reason)` for each file skipped.
    """
    arrays, skipped = _cached_decode(listing, progress, names=("y", "part", "digests"))
    return arrays["y"], arrays["part"], arrays["digests"], skipped


class FolderListing:
    """An image folder's files and labels, and the cache entry they decode into."""

    def __init__(self, root, image_size: int, cache_dir, fit: str = "squash"):
        from core.images import ONE_VIEW

        if fit not in ONE_VIEW:
            raise ValueError(f"fit must be one of {ONE_VIEW}, not {fit!r}")
        # One cache entry per folder however its path is spelt (relative, absolute, a link).
        root = Path(root).expanduser().resolve()
        self.train_root = root / "train" if (root / "train").is_dir() else root
        self.class_names, train_files = _list_classes(self.train_root)
        self.files = [(p, lbl, 0) for p, lbl in train_files]
        held_out = held_out_folders(root)
        for part, folder in held_out.items():
            part_files = _list_held_out(folder, self.class_names)
            self.files += [(p, lbl, PARTS.index(part)) for p, lbl in part_files]
        self.parts = ["train", *held_out]  # those read, of `PARTS`
        self.val_folder = held_out["val"].name if "val" in held_out else ""
        key = _listing_key(self.files, image_size, fit)
        self.cache = Path(cache_dir or default_cache_dir()) / f"folder-{key}"
        self.image_size, self.fit = image_size, fit
        # Cropped and squashed pictures of one folder are two entries, kept side by side.
        self.source = (str(root), str(image_size) + ("" if fit == "squash" else f" {fit}"))

    def describes(
        self, root: str | os.PathLike, image_size: int | None = None, fit: str = "squash"
    ) -> bool:
        """Whether this is a listing of `root` (however its path is spelt), at `image_size`
        (any when None) and made square by `fit`."""
        same_size = image_size is None or image_size == self.image_size
        same = same_size and fit == self.fit
        return same and str(Path(root).expanduser().resolve()) == self.source[0]

    def arrays(self) -> dict[str, Path]:
        return {n: self.cache / f"{n}.npy" for n in _ARRAYS}

    def cached(self) -> bool:
        files = [*self.arrays().values(), self.cache / SKIPPED_FILE]
        return all(f.exists() for f in files)


def is_entry(entry: os.DirEntry, kind: str, links: bool = True) -> bool:
    """Whether a folder's entry is a `kind` ("dir" or "file") to read, not hidden: a link
    that loops or leads nowhere is neither (asking raised OSError: a traceback). `links`:
    whether a link to a `kind` counts."""
    if entry.name.startswith("."):
        return False
    try:
        return entry.is_dir(follow_symlinks=links) if kind == "dir" else entry.is_file()
    except OSError:
        return False


def _list_classes(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    classes = sorted(d.name for d in os.scandir(folder) if is_entry(d, "dir"))
    if not classes:
        raise DataError(
            f"{folder} has no class folders. Put each class's images in a subfolder named "
            f"after the class, e.g. cats/001.jpg and dogs/002.jpg.{_named_hint(folder)}"
        )
    if len(classes) < 2:
        raise DataError(
            f"{folder} has a single class folder ({classes[0]}); a classifier needs at "
            f"least two classes.{classes_inside(folder / classes[0])}"
        )
    if said := splits_as_classes(folder, classes):
        raise DataError(said)
    files = []
    for label, name in enumerate(classes):
        # Names sorted and joined as strings: Path objects made this listing 1.0 s instead
        # of 0.1 s for CIFAR-10's 50,000 files, and it runs on every page of a restart.
        class_folder = os.path.join(folder, name)
        found = class_files(class_folder)
        if not found:
            raise DataError(
                f"The class folder {shown(class_folder)} is empty: every folder is a class, so "
                "put pictures in it or move it out."
            )
        files.extend((path, label) for path in found)
    return [shown(name) for name in classes], files  # names as shown; paths as listed


def _list_held_out(folder: Path, train_names: list[str]) -> list[tuple[str, int]]:
    """The files of a held-out folder beside train/ (test/, valid/) with their labels,
    positions in train/'s `train_names`. It may lack some of train/'s classes (a small
    export's valid/ without a rare class): its accuracy then says nothing of them, which
    the folder check says. A class folder train/ has not is refused: no label fits it."""
    classes = sorted(d.name for d in os.scandir(folder) if is_entry(d, "dir"))
    if differ := classes_differ(folder.name, [shown(name) for name in classes], train_names):
        raise DataError(differ)
    files = []
    for name in classes:
        label = train_names.index(shown(name))
        files.extend((path, label) for path in class_files(os.path.join(folder, name)))
    return files


def _named_hint(folder: Path) -> str:
    from core.sort_classes import hint  # it reads this module's constants

    return hint(folder)


def class_files(class_folder: str | os.PathLike) -> list[str]:
    """The paths of the files to read in a class folder, those in folders inside it too
    (photos filed by year, say), sorted. Hidden entries are left out, and a linked folder
    inside it is not followed (one that links to a folder above would never end).

    Raises:
        OSError: the class folder cannot be listed.
    """
    found, folders = [], [os.fspath(class_folder)]
    while folders:
        for entry in os.scandir(folders.pop()):
            if is_entry(entry, "file"):
                found.append(entry.path)
            elif is_entry(entry, "dir", links=False):
                folders.append(entry.path)
    return sorted(found)


def held_out_folders(root: str | os.PathLike) -> dict[str, Path]:
    """The folders beside `root/train/` read as held-out parts, of those there:
    `{"val": root / "valid", "test": root / "test"}` (`validation_folder`); none without
    a train/. A test/ without class folders (a competition's unlabelled pictures) is not
    one: with no labels, it cannot score a model."""
    root = Path(root).expanduser()
    if not (root / "train").is_dir():
        return {}
    val = validation_folder(root)
    held = {"val": root / val} if val else {}
    return held | ({"test": root / "test"} if holds_folders(root / "test") else {})


def validation_folder(root: str | os.PathLike) -> str:
    """The name of the folder beside `root/train/` whose images are the validation split
    (the first of `VAL_FOLDERS` there holding class folders), or "" when there is none (or
    no train/)."""
    root = Path(root).expanduser()
    if not (root / "train").is_dir():
        return ""
    return next((name for name in VAL_FOLDERS if holds_folders(root / name)), "")


def holds_folders(folder: Path) -> bool:
    """Whether `folder` is a folder holding a folder to read (`is_entry`)."""
    try:
        with os.scandir(folder) as entries:
            return any(is_entry(entry, "dir") for entry in entries)
    except OSError:  # not there, not a folder, or not ours to list
        return False


def classes_differ(folder: str, names: list[str], train_names: list[str]) -> str:
    """The sentence when a held-out folder beside train/ ("test", or a validation folder)
    has class folders train/ has not, or "". One with fewer is read: its accuracy says
    nothing of the classes it lacks (`userdata` warns of them)."""
    more = [name for name in names if name not in train_names]
    if not more:
        return ""
    which = "test folder" if folder == "test" else f"validation folder {folder}/"
    folders = f"a folder {more[0]}" if len(more) == 1 else f"folders {', '.join(more)}"
    return (
        f"The {which} has {folders} that train/ has not: a model trained on train/'s "
        f"classes ({', '.join(train_names)}) has no answer for "
        f"{'it' if len(more) == 1 else 'them'}. Move {'it' if len(more) == 1 else 'them'} "
        "out, or give train/ the same class folder."
    )


def class_names_of(spec: str | os.PathLike) -> list[str] | None:
    """The classes `load_dataset(spec)` would have, from folder names alone (no file is
    listed or read): CIFAR-10's ten for its sources, None for what is not a dataset."""
    if str(spec).lower() in ("cifar10", "cifar-10"):
        return list(CIFAR10_CLASSES)
    path = Path(spec).expanduser()
    if path.is_file() or _is_cifar_batches_dir(path):
        return list(CIFAR10_CLASSES) if _not_an_archive(path) is None else None
    root = path / "train" if (path / "train").is_dir() else path
    try:
        names = sorted(d.name for d in os.scandir(root) if is_entry(d, "dir"))
    except OSError:
        return None
    return [shown(name) for name in names]  # as `_list_classes` gives them


# Folder names of a dataset's splits, as downloaded datasets call them (training_set/,
# seg_test/, valid/ ...): such a folder holding folders of its own is not a class.
_SPLIT_NAME = re.compile(
    r"(seg_)?(train(ing)?|test(ing)?|val(id(ation)?)?|dev|eval)([ _-]?(set|data|images))?",
    re.IGNORECASE,
)


def is_split_name(name: str) -> bool:
    """Whether a folder's name is one a dataset's split goes by (train, test_set, valid...)."""
    return bool(_SPLIT_NAME.fullmatch(name))


def splits_as_classes(folder: str | os.PathLike, classes: list[str]) -> str:
    """What to say of a folder whose class folders look like splits (training_set/ and
    test_set/, each holding the class folders): read as classes, their images (in folders
    inside them) would teach the model which split a picture is from. "" when none does."""
    for name in sorted(classes, key=lambda n: "train" not in n.lower()):  # train's first
        if is_split_name(name) and (inside := classes_inside(Path(folder) / name)):
            return (
                f"{shown(str(folder))} looks like a folder of splits, not of classes: "
                f"{shown(name)} is a split's name.{inside} Or name the splits train/ and test/ "
                "(and val/, for validation images of your own)."
            )
    return ""


def classes_inside(folder: Path) -> str:
    """What to say of a folder given as the only class when it holds class folders itself
    (a path one level too high, as a copied or unzipped tree often is): a sentence naming
    the path to give instead, or "" when it holds fewer than two folders."""
    try:
        names = sorted(e.name for e in os.scandir(folder) if is_entry(e, "dir"))
    except OSError:
        return ""
    if len(names) < 2:
        return ""
    listed = ", ".join(shown(n) for n in names[:3]) + (", …" if len(names) > 3 else "")
    return (
        f" It holds {len(names)} folders itself ({listed}): if those are the classes, give "
        f"{shown(str(folder))} instead."
    )


def _listing_key(listing, image_size, fit="squash") -> str:
    # v3: each file's size and kind. A squashed folder's key is as it was before crops.
    digest = hashlib.sha256(f"v3|{image_size}{'' if fit == 'squash' else '|' + fit}".encode())
    for path, label, part in listing:
        st = os.stat(path)
        # A file name need not be valid UTF-8: fsencode gives back its own bytes.
        digest.update(os.fsencode(f"{path}|{label}|{part}|{st.st_size}|{st.st_mtime_ns}\n"))
    return digest.hexdigest()[:24]


_ARRAYS = ("x", "y", "part", "digests", "stored")  # the arrays of a decoded folder's cache entry


def _cached_decode(folder: FolderListing, progress=None, names=_ARRAYS):
    """`({name: array}, skipped)` for `folder`'s files, from its cache entry or decoded and
    written there; `names` chooses the arrays returned.

    The entry keeps its source (folder and size) beside them: a new entry for the same
    source replaces the older ones, which describe files that have changed since, and
    entries of folders that no longer exist go too (see `remove_stale_entries`).
    """
    cache, files = folder.cache, folder.arrays()
    if folder.cached():
        skipped = [tuple(pair) for pair in json.loads((cache / SKIPPED_FILE).read_bytes())]
        return {n: np.load(files[n]) for n in names}, skipped
    arrays, skipped = decode_files(folder.files, folder.image_size, progress, folder.fit)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.save(buf, arr)
            atomic_write_bytes(files[name], buf.getvalue())
        # JSON, not lines: a name may hold a line break or a tab, and escapes keep the
        # bytes of one that is not UTF-8 (lone surrogates) as they were.
        atomic_write_bytes(cache / SKIPPED_FILE, json.dumps(skipped).encode("ascii"))
        atomic_write_bytes(cache / SOURCE_FILE, os.fsencode("|".join(folder.source)))
        remove_stale_entries(cache, "folder-*", _entry_source, folder.source)
    except OSError:
        pass  # a cache we cannot write only costs time on the next load
    return {n: arrays[n] for n in names}, skipped


SOURCE_FILE, SKIPPED_FILE = "source.txt", "skipped.json"


def _entry_source(entry: Path) -> tuple[str, str]:
    """The `(folder, image size)` a cache entry was decoded from, as its `source.txt` says."""
    root, size = os.fsdecode((entry / SOURCE_FILE).read_bytes()).rsplit("|", 1)
    return root, size


PROGRESS_EVERY = 1000  # images between two progress reports while a folder is decoded
# What decoding a file costs here, as measured on a 2-core machine (docs/BENCHMARKS.md,
# session 38): a 32 x 32 CIFAR-10 JPEG about 250 µs, mostly Pillow's header parsing, and a
# photo about 14 ns a byte more (1024 x 768 JPEGs of 190 kB: 2.75 ms).
FILE_SECONDS, BYTE_SECONDS = 250e-6, 14e-9
# HEIC files are decoded by a process (`core.heif.kept_decoder`, about 0.1 s to start, once),
# then each costs about 1 ms and 0.4 µs a byte (a 12-megapixel photo of 1.4 MB: 0.55 s;
# docs/BENCHMARKS.md, sessions 44 and 45).
HEIC_SUFFIXES, HEIC_START_SECONDS = (".heic", ".heif"), 0.1
HEIC_FILE_SECONDS, HEIC_BYTE_SECONDS = 1e-3, 400e-9
# Files whose decode would take this long here go to worker processes (`core.decode_worker`),
# one per core and at most 8, each given at least WORKER_SECONDS of it: a worker costs
# about 0.3 s to start.
PARALLEL_SECONDS, WORKER_SECONDS, MOST_WORKERS = 1.0, 0.5, 8
WORKER = [sys.executable, "-m", "core.decode_worker"]


def decode_file(path, image_size: int, fit: str = "squash") -> tuple:
    """`(pixels, digest, held, None)` for one file of a folder, made square by `fit`, or
    `(None, None, None, reason)`.

    The digest is the BLAKE2b (16 bytes) of the file's bytes, which finds copies; `held`
    is `(width, height, flags)` as `core.images.decode_described` gives it.
    """
    from core.images import decode_described, too_large

    path = Path(path)
    if reason := unsupported_file(path):
        return None, None, None, reason
    try:
        with path.open("rb") as file:
            # Not read at all when too large: a video or a disk image named .jpg, say.
            if reason := too_large(os.fstat(file.fileno()).st_size):
                return None, None, None, reason
            raw = file.read()
        image, held = decode_described(raw, image_size, fit=fit)
    except ImageError as err:
        return None, None, None, str(err)
    except OSError as err:
        return None, None, None, f"could not be read ({err.strerror or err})"
    return image, hashlib.blake2b(raw, digest_size=16).digest(), held, None


def decode_framed(paths, image_size: int, fit: str) -> list:
    """Each of `paths` as `decode_file` makes it square by `fit`, its HEIC files through one
    decoding process (`core.heif.kept_decoder`): a few files shown again another way.

    Returns:
        A list of uint8 `(image_size, image_size, 3)` arrays, None for a file that does
        not decode (now).
    """
    from core import heif

    with heif.kept_decoder():
        return [decode_file(path, image_size, fit)[0] for path in paths]


def estimated_seconds(paths) -> float:
    """About how long decoding `paths` in this process would take, from their sizes."""
    heic = {path for path in paths if os.fspath(path).lower().endswith(HEIC_SUFFIXES)}
    seconds = len(paths) * FILE_SECONDS + len(heic) * HEIC_FILE_SECONDS
    seconds += HEIC_START_SECONDS if heic else 0.0
    if seconds >= PARALLEL_SECONDS:
        return seconds  # enough to go to workers whatever their sizes: no need to stat them
    for path in paths:
        with contextlib.suppress(OSError):
            seconds += os.stat(path).st_size * (HEIC_BYTE_SECONDS if path in heic else BYTE_SECONDS)
    return seconds


def worker_count(seconds: float) -> int:
    """How many processes decode files that would take `seconds` here: 1 (this one) under
    `PARALLEL_SECONDS`."""
    from core.hardware import usable_cores

    if seconds < PARALLEL_SECONDS:
        return 1
    return max(1, min(usable_cores(), MOST_WORKERS, int(seconds / WORKER_SECONDS)))


def decode_files(listing, image_size: int, progress=None, fit: str = "squash") -> tuple[dict, list]:
    """Decodes `(path, label, part)` files, in worker processes when it takes a while,
    each made square by `fit` ("squash" or "crop").

    Returns:
        `({"x", "y", "part", "digests", "stored"}, skipped)`: the files that decoded, in
        listing order (uint8 `(N, S, S, 3)`, int32 `(N,)`, int8 `(N,)`, BLAKE2b uint8
        `(N, 16)`, int32 `(N, 3)` of each file's width, height and flags as
        `core.images.decode_described` says), and `(path, reason)` for each of the others.
        `progress` as for `load_image_folder`.
    """
    n = len(listing)
    x = np.zeros((n, image_size, image_size, 3), np.uint8)
    out = {"x": x, "digests": np.zeros((n, 16), np.uint8), "stored": np.zeros((n, 3), np.int32)}
    reasons: list[str | None] = [None] * n
    paths = [str(p) for p, _, _ in listing]
    done = _Progress(n, progress)
    left = [(0, n)]
    if (workers := worker_count(estimated_seconds(paths))) > 1:
        left = _decode_in_workers(paths, image_size, fit, out, reasons, workers, done)
    # Here: a small folder, or what a worker that could not start or stopped left; its HEIC
    # files through one decoding process (`core.heif.kept_decoder`), not one each.
    from core import heif

    with heif.kept_decoder():
        for start, stop in left:
            for i in range(start, stop):
                image, digest, held, reasons[i] = decode_file(paths[i], image_size, fit)
                if image is not None:
                    x[i], out["digests"][i] = image, np.frombuffer(digest, np.uint8)
                    out["stored"][i] = held
                done.add(1)
    done.end()
    ok = np.array([r is None for r in reasons], bool)
    skipped = [(paths[i], reasons[i]) for i in np.flatnonzero(~ok)]
    y = np.array([label for _, label, _ in listing], np.int32).reshape(n)
    part = np.array([p for _, _, p in listing], np.int8).reshape(n)
    arrays = {**out, "y": y, "part": part}
    if not ok.all():
        arrays = {name: arr[ok] for name, arr in arrays.items()}
    return arrays, skipped


class _Progress:
    """Calls `progress(done, total)` each time `PROGRESS_EVERY` more images are done."""

    def __init__(self, total, progress):
        self.total, self.progress, self.done, self.told = total, progress, 0, 0

    def add(self, count):
        self.done += count
        if self.progress and self.done // PROGRESS_EVERY > self.told // PROGRESS_EVERY:
            if self.done < self.total:
                self.progress(self.done, self.total)
            self.told = self.done

    def end(self):
        if self.progress and self.total:  # no file, nothing to report: "0 of 0" divides by 0
            self.progress(self.total, self.total)


def _decode_in_workers(paths, image_size, fit, out, reasons, workers, done):
    """Decodes `paths`, each made square by `fit` at `image_size`, into `out`'s arrays
    (`decode_files`'s x, digests and stored) and `reasons` in `workers` processes, in
    contiguous shares; returns the `(start, stop)` ranges that no worker decoded (a worker
    that could not start, died or wrote something unreadable leaves the rest of its share).
    """
    import json
    import queue
    import subprocess
    import threading

    bounds = np.linspace(0, len(paths), workers + 1).astype(int)
    shares = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
    reached = {start: start for start, _ in shares}  # how far each share was decoded
    counts: queue.Queue = queue.Queue()
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )

    def read(proc, start, stop):
        try:
            request = json.dumps({"size": image_size, "fit": fit, "paths": paths[start:stop]})
            proc.stdin.write(request.encode())
            proc.stdin.close()
            at = start
            while at < stop and (line := proc.stdout.readline()):
                message = json.loads(line)
                count = int(message["n"])
                if not 0 < count <= stop - at:
                    break
                # The chunk's pixels, digests and what each file held, in that order.
                arrays = (out[name][at : at + count] for name in ("x", "digests", "stored"))
                if not all(_read_into(proc.stdout, a, a.nbytes) for a in arrays):
                    break
                failed = {int(i): str(reason) for i, reason in message["failed"]}
                if not all(0 <= i < count for i in failed):
                    break
                for i, reason in failed.items():
                    reasons[at + i] = reason
                at += count
                reached[start] = at
                counts.put(count)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # what this share has left is decoded by the caller
        finally:
            counts.put(None)

    procs, threads = [], []
    try:
        for start, stop in shares:
            try:
                proc = subprocess.Popen(
                    WORKER,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
            except OSError:
                continue
            procs.append(proc)
            thread = threading.Thread(target=read, args=(proc, start, stop), daemon=True)
            thread.start()
            threads.append(thread)
        running = len(threads)
        while running:
            count = counts.get()
            if count is None:
                running -= 1
            else:
                done.add(count)
    finally:  # a stopped decode (an exception from `progress`) ends its workers too
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for thread in threads:  # their pipes at an end now; closed once nobody reads them
            thread.join()
        for proc in procs:
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
    return [(reached[start], stop) for start, stop in shares if reached[start] < stop]


def _read_into(stream, array: np.ndarray, size: int) -> bool:
    """Fills `array` (C-contiguous, `size` bytes) from `stream`; False at an early end."""
    view, got = memoryview(array).cast("B"), 0
    while got < size:
        read = stream.readinto(view[got:])
        if not read:
            return False
        got += read
    return True


def no_readable_image(empty: list[str], where: str = "") -> str:
    """The sentence for class folders without a readable image, and what to do."""
    folders, it = ("the class folder", "it") if len(empty) == 1 else ("the class folders", "them")
    return (
        f"No readable image in {folders} {', '.join(empty)}{where}: every folder is a class, "
        f"so put readable pictures in {it} or move {it} out."
    )


def _check_classes(y, class_names, folder):
    counts = np.bincount(y, minlength=len(class_names))
    empty = [class_names[i] for i in np.flatnonzero(counts == 0)]
    if len(y) == 0:
        raise DataError(f"No readable image was found in {folder}.")
    if empty:
        raise DataError(no_readable_image(empty, f" of {folder}"))
