"""Shared fixtures: tiny generated data in the real formats; nothing downloaded."""

from __future__ import annotations

import io
import os
import pickle
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import core  # noqa: E402,F401  (sets TensorFlow's oneDNN switch before any test imports it)


def pytest_xdist_auto_num_workers(config):
    """Workers for `-n auto` (pyproject's default): two where there are two cores, as
    measured; none under `-s`, whose printed figures a worker would swallow."""
    if config.option.capture == "no":
        return 0
    return 2 if (os.cpu_count() or 1) >= 2 else 0


def class_images(n_per_class: int, num_classes: int = 3, size: int = 32, seed: int = 0):
    """Images that a small CNN can tell apart: each class has its own dominant colour."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(num_classes), n_per_class).astype(np.int32)
    x = rng.integers(0, 80, (len(y), size, size, 3)).astype(np.uint8)
    for c in range(num_classes):
        x[y == c, :, :, c % 3] += np.uint8(150)
    return x, y


def smooth_images(n: int, seed: int = 0) -> np.ndarray:
    """Photo-like uint8 images `(n, 32, 32, 3)`: random 4x4 colour fields, enlarged
    bilinearly (what a novelty check fitted on them finds noise and flat colours unlike)."""
    from PIL import Image

    coarse = np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    return np.stack(
        [np.asarray(Image.fromarray(c).resize((32, 32), Image.BILINEAR)) for c in coarse]
    )


def cifar_batch_bytes(x: np.ndarray, y: np.ndarray, name: str) -> bytes:
    """Pickles images as one batch of the genuine cifar-10-python format."""
    data = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    batch = {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in y],
        b"data": data,
        b"filenames": [f"{i}.png".encode() for i in range(len(y))],
    }
    return pickle.dumps(batch, protocol=2)


def write_cifar_archive(path, per_batch: int = 20, seed: int = 0) -> dict:
    """Writes a tiny `cifar-10-python.tar.gz` (5 train batches + test) and returns arrays."""
    rng = np.random.default_rng(seed)
    arrays = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            x = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
            y = rng.integers(0, 10, per_batch).astype(np.int32)
            raw = cifar_batch_bytes(x, y, name)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
            arrays[name] = (x, y)
    return arrays


def as_read(markdown: str) -> str:
    """What a reader sees of markdown that `ui.text.md` escaped: its backslashes gone."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def write_image_folder(root: Path, per_class=6, classes=("cat", "dog", "frog"), size=40, fmt="PNG"):
    """Writes `root/<class>/NNN.<fmt>` images (one dominant colour per class)."""
    from PIL import Image

    x, y = class_images(per_class, len(classes), size=size)
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:03d}.{fmt.lower()}", fmt)
    return x, y


def write_framed_folder(root: Path, per_class=4, classes=("cat", "dog", "frog")) -> None:
    """Writes `root/<class>/NNN.png` pictures of 48 x 24 (2:1): a class colour without red
    in their centre square, pure red in the quarters at each end, which a crop to the centre
    square cuts off and a squash keeps."""
    from PIL import Image

    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            colour = np.array([(0, 1, 0), (0, 0, 1), (0, 1, 1)][label % 3]) * (100 + 20 * i)
            pixels = np.zeros((24, 48, 3), np.uint8) + colour.astype(np.uint8)  # no red in it
            pixels[:, :12] = pixels[:, 36:] = (255, 0, 0)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")


def plant_a_copy_of_a_val_image(folder: Path) -> str:
    """Rewrites a training file of `folder` (as split 90/10 with seed 0) as a recompressed
    copy of a validation image of its class, and returns that file. The folder lists the
    same files afterwards, so it splits the same."""
    import io

    from PIL import Image

    from core.data import load_dataset

    ds = load_dataset(folder, val_fraction=0.1, seed=0)
    label = ds.splits["val"][1][0]
    train_file = ds.files["train"][np.flatnonzero(ds.splits["train"][1] == label)[0]]
    buf = io.BytesIO()
    Image.open(folder / ds.files["val"][0]).convert("RGB").save(buf, "JPEG", quality=95)
    Image.open(buf).save(folder / train_file, "PNG")
    return str(train_file)


def plotly_values(values) -> list:
    """A trace's array as a plain list: plotly may send it as a base64 typed array."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"]).tolist()
    return list(values)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own runs, cache and Keras home: nothing leaks between tests."""
    monkeypatch.setenv("CNN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture
def tiny_dataset():
    """A 3-class `Dataset` of 32x32 images: 60 train, 15 val."""
    from core.data import Dataset, stratified_split

    x, y = class_images(25, 3)
    keep, held = stratified_split(y, 0.2, 0)
    return Dataset(
        ["red", "green", "blue"],
        "generated",
        {"train": (x[keep], y[keep]), "val": (x[held], y[held])},
    )


ROOT = Path(__file__).resolve().parent.parent
# A real HEIC photo, 48 x 32, a red square in its top-left corner (tests/data/make_heic.py).
HEIC_PHOTO = Path(__file__).parent / "data" / "photo.heic"


def heic_processes(monkeypatch) -> list:
    """The decoding processes `core.heif` starts from now on (real ones, counted), none of
    its recent answers kept: each file is decoded again."""
    import subprocess
    from collections import OrderedDict

    from core import heif

    started, popen = [], subprocess.Popen

    def counted(*args, **kwargs):
        started.append(args)
        return popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counted)  # subprocess.run's too
    monkeypatch.setattr(heif, "_RECENT", OrderedDict())
    return started


@pytest.fixture
def image_folder(tmp_path):
    """A 3-class folder (cat, dog, frog) of 12 PNGs each, 40x40, one colour per class."""
    root = tmp_path / "images"
    write_image_folder(root, per_class=12, size=40)
    return root


@pytest.fixture(scope="session")
def _session_run(tmp_path_factory):
    """Trains once per session: the seed preset, 2 epochs, on an `image_folder` twin."""
    from core.data import load_dataset
    from core.train import TrainConfig, start_run, train

    base = tmp_path_factory.mktemp("session_run")
    write_image_folder(base / "images", per_class=12, size=40)
    config = TrainConfig(data=str(base / "images"), epochs=2, batch_size=16, val_fraction=0.25)
    dataset = load_dataset(base / "images", val_fraction=0.25, cache_dir=base / "cache")
    return train(config, dataset, start_run(config, runs_dir=base / "runs"))


@pytest.fixture
def trained_run(_session_run, image_folder):
    """A real run directory (seed preset, 2 epochs, on data like `image_folder`), copied into
    this test's own runs folder so a test may change or delete it."""
    import shutil

    target = Path(os.environ["CNN_RUNS_DIR"]) / _session_run.name
    shutil.copytree(_session_run, target)
    return target


@pytest.fixture
def data_app(image_folder, monkeypatch):
    """An `AppTest` of app.py with `image_folder` as the dataset and no trained run."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CNN_DATA", str(image_folder))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)


@pytest.fixture
def app(image_folder, trained_run, monkeypatch):
    """An `AppTest` of app.py with `image_folder` as dataset and `trained_run` active."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CNN_DATA", str(image_folder))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["sidebar_model"] = trained_run.name
    return at
