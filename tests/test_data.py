import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import data
from core.data import load_dataset, read_cifar_archive, stratified_split
from core.errors import DataError
from core.images import GREYSCALE, TRANSPARENT
from tests.conftest import (
    HEIC_PHOTO,
    cifar_batch_bytes,
    class_images,
    write_cifar_archive,
    write_framed_folder,
    write_image_folder,
)

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "cifar10-jpeg"


# --- splits ----------------------------------------------------------------------------


def test_stratified_split_keeps_each_class_share_and_is_fixed_by_seed():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    keep, held = stratified_split(y, 0.1, seed=3)
    assert np.bincount(y[held]).tolist() == [10, 5, 3, 2]
    assert sorted(np.concatenate([keep, held]).tolist()) == list(range(200))
    again, _ = stratified_split(y, 0.1, seed=3)
    other, _ = stratified_split(y, 0.1, seed=4)
    assert np.array_equal(keep, again) and not np.array_equal(keep, other)


# --- the Keras download path, with only the transfer substituted ---------------------


def test_cifar10_download_goes_through_keras_get_file(tmp_path, monkeypatch):
    archive = tmp_path / "fake.tar.gz"
    arrays = write_cifar_archive(archive, per_batch=10)
    calls = []

    def fake_urlretrieve(url, filename, reporthook=None):
        calls.append(url)
        shutil.copyfile(archive, filename)

    import hashlib

    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "urlretrieve", fake_urlretrieve)
    # The genuine checksum is for the 163 MB original; this archive states its own.
    monkeypatch.setattr(data, "CIFAR10_SHA256", hashlib.sha256(archive.read_bytes()).hexdigest())
    ds = load_dataset("cifar10", val_fraction=0.2, seed=0)
    assert calls == [data.CIFAR10_URL]
    assert ds.class_names[0] == "airplane" and ds.num_classes == 10
    sizes = {k: len(v[1]) for k, v in ds.splits.items()}
    counts = np.bincount(np.concatenate([ds.split("train")[1], ds.split("val")[1]]))
    assert sizes["val"] == sum(round(0.2 * c) for c in counts)  # 20% of each class
    assert sizes["train"] + sizes["val"] == 50 and sizes["test"] == 10
    x_test, y_test = ds.split("test")
    np.testing.assert_array_equal(x_test, arrays["test_batch"][0])
    np.testing.assert_array_equal(y_test, arrays["test_batch"][1])
    cached = Path(os.environ["KERAS_HOME"]) / "datasets" / data.CIFAR10_ARCHIVE
    assert cached.is_file()
    load_dataset("cifar10")  # second time: from Keras's cache, no transfer
    assert len(calls) == 1


def test_cifar10_download_with_a_wrong_checksum_is_refused(tmp_path, monkeypatch):
    archive = tmp_path / "fake.tar.gz"
    write_cifar_archive(archive, per_batch=4)
    from keras.src.utils import file_utils

    monkeypatch.setattr(
        file_utils, "urlretrieve", lambda url, fn, hook=None: shutil.copyfile(archive, fn)
    )
    with pytest.raises(DataError, match="could not be downloaded"):
        load_dataset("cifar10")


@pytest.fixture
def web_folder(tmp_path):
    """A real HTTP server on this machine serving `tmp_path/served`: `(folder, base URL)`."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(served))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ELSEWHERE = "point the dataset at a local cifar-10-python.tar.gz or an image folder."


@pytest.mark.parametrize(
    "where, sentence",
    [
        (
            lambda base: base + data.CIFAR10_ARCHIVE,
            f"the server answered 404 (File not found). Try again later, or {ELSEWHERE}",
        ),
        (
            lambda base: f"http://127.0.0.1:{_closed_port()}/{data.CIFAR10_ARCHIVE}",
            f"the connection was refused. Without internet, {ELSEWHERE}",
        ),
        # .invalid is never a host (RFC 6761): the lookup fails as without a network.
        (
            lambda base: f"http://cifar.invalid/{data.CIFAR10_ARCHIVE}",
            "this machine could not look up cifar.invalid (no internet connection, or no DNS). "
            f"Without internet, {ELSEWHERE}",
        ),
    ],
    ids=["not found", "refused", "no such host"],
)
def test_a_download_that_fails_says_why_in_a_sentence(web_folder, monkeypatch, where, sentence):
    url = where(web_folder[1])
    monkeypatch.setattr(data, "CIFAR10_URL", url)
    with pytest.raises(DataError) as err:
        data.download_cifar10()
    assert str(err.value) == f"CIFAR-10 could not be downloaded from {url}: {sentence}"
    assert not data.cifar10_cache_path().exists()


def test_a_download_whose_checksum_differs_is_deleted_and_said_so(web_folder, monkeypatch):
    served, base = web_folder
    write_cifar_archive(served / data.CIFAR10_ARCHIVE, per_batch=4)  # not the real one's bytes
    monkeypatch.setattr(data, "CIFAR10_URL", base + data.CIFAR10_ARCHIVE)
    with pytest.raises(DataError) as err:
        data.download_cifar10()
    assert str(err.value).endswith(
        ": the file that arrived is incomplete or damaged (its checksum does not match). "
        "It was deleted: downloading again starts afresh."
    )
    # Keras leaves it in its cache, where it would pass for the archive.
    assert not data.cifar10_cache_path().exists()


# --- local CIFAR archives -------------------------------------------------------------


def test_archive_and_extracted_folder_give_the_same_arrays(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    arrays = write_cifar_archive(archive, per_batch=8)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    (a_train, a_test) = read_cifar_archive(archive)
    (f_train, f_test) = read_cifar_archive(tmp_path / "x" / "cifar-10-batches-py")
    np.testing.assert_array_equal(a_train[0], f_train[0])
    np.testing.assert_array_equal(a_train[0][:8], arrays["data_batch_1"][0])
    np.testing.assert_array_equal(a_test[1], arrays["test_batch"][1])
    ds = load_dataset(tmp_path / "x", val_fraction=0.25)
    assert ds.source.startswith("CIFAR-10 archive")
    assert len(ds.split("val")[1]) + len(ds.split("train")[1]) == 40


def test_archive_resized_to_another_input_size(tmp_path):
    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=2)
    ds = load_dataset(archive, image_size=48, val_fraction=0)
    assert ds.split("train")[0].shape == (10, 48, 48, 3)
    assert "val" not in ds.splits


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: p.write_bytes(b"\x1f\x8b garbage"), "corrupt"),
        (lambda p: p.write_bytes(os.urandom(300)), "corrupt"),
    ],
)
def test_corrupt_archive_is_named(tmp_path, make, words):
    path = tmp_path / "cifar-10-python.tar.gz"
    make(path)
    with pytest.raises(DataError, match=words):
        load_dataset(path)


def test_archive_missing_a_batch_is_named(tmp_path):
    path = tmp_path / "c.tar.gz"
    x, y = class_images(2, 3)
    with tarfile.open(path, "w:gz") as tar:
        raw = cifar_batch_bytes(x, y, "data_batch_1")
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    with pytest.raises(DataError, match="no batch 'data_batch_2'"):
        load_dataset(path)


def test_archive_with_a_malicious_pickle_is_refused_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    import pickle

    path = tmp_path / "c.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        raw = pickle.dumps(Evil())
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    with pytest.raises(DataError, match="corrupt"):
        load_dataset(path)
    assert not (tmp_path / "pwned").exists()


# --- image folders --------------------------------------------------------------------


def test_folder_loads_resizes_and_counts_unreadable_files(tmp_path):
    write_image_folder(tmp_path / "d", per_class=10, size=40)
    (tmp_path / "d" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / "d" / "dog" / "notes.txt").write_text("hello")
    ds = load_dataset(tmp_path / "d", val_fraction=0.2, seed=1)
    assert ds.class_names == ["cat", "dog", "frog"]
    x, y = ds.split("train")
    assert x.shape == (24, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int32
    assert np.bincount(ds.split("val")[1]).tolist() == [2, 2, 2]
    reasons = dict(ds.skipped)
    assert len(reasons) == 2
    assert "truncated or damaged" in reasons[str(tmp_path / "d" / "dog" / "broken.jpg")]
    assert "not an image file type" in reasons[str(tmp_path / "d" / "dog" / "notes.txt")]
    # the dominant colour of each class survives decoding and resizing
    means = [x[y == c].mean(axis=(0, 1, 2)).argmax() for c in range(3)]
    assert means == [0, 1, 2]


def test_a_folder_of_avif_images_loads_as_its_png_copy_does(tmp_path):
    for fmt in ("PNG", "AVIF"):
        write_image_folder(tmp_path / fmt, per_class=5, size=40, fmt=fmt)
    png, avif = (load_dataset(tmp_path / fmt, val_fraction=0.2, seed=1) for fmt in ("PNG", "AVIF"))
    assert avif.skipped == [] and avif.class_names == png.class_names
    for split in ("train", "val"):
        (xp, yp), (xa, ya) = png.split(split), avif.split(split)
        assert np.array_equal(yp, ya)
        # Lossy, so each picture's colour within a few levels of its PNG copy's.
        assert np.abs(xp.mean(axis=(1, 2)) - xa.mean(axis=(1, 2))).max() < 4


def _decoded_alone(path: Path) -> tuple[np.ndarray, tuple[int, int, int]]:
    from core.images import decode_described

    return decode_described(path.read_bytes(), 32)


@pytest.mark.parametrize("cached", [False, True])
def test_each_image_of_each_split_names_its_file(tmp_path, cached):
    write_image_folder(tmp_path / "d" / "train", per_class=6)
    write_image_folder(tmp_path / "d" / "test", per_class=2, fmt="JPEG")
    (tmp_path / "d" / "train" / "dog" / "000-broken.png").write_bytes(b"not a png")
    # Files of other sizes and kinds: what each stored comes back beside its pixels.
    Image.new("LA", (50, 30)).save(tmp_path / "d" / "train" / "cat" / "grey.png")
    Image.new("RGB", (64, 48)).save(tmp_path / "d" / "test" / "frog" / "wide.jpg")
    if cached:
        load_dataset(tmp_path / "d", val_fraction=0.5, seed=3)
    ds = load_dataset(tmp_path / "d", val_fraction=0.5, seed=3)
    assert {k: len(v) for k, v in ds.files.items()} == {"train": 9, "val": 10, "test": 7}
    for split, (x, y) in ds.splits.items():
        rows = zip(x, y, ds.files[split], ds.stored[split], strict=True)
        for image, label, name, stored in rows:
            assert name.split("/")[:2] == [
                "train" if split != "test" else "test",
                ds.class_names[label],
            ]
            pixels, held = _decoded_alone(tmp_path / "d" / name)
            np.testing.assert_array_equal(image, pixels)
            assert tuple(stored) == held
    label = ds.class_names[int(ds.splits["test"][1][2])]
    assert ds.image_name("test", 2) == f"test #2 ({label}) · {ds.files['test'][2]}"
    names, stored = (np.concatenate(list(d.values())) for d in (ds.files, ds.stored))
    stored = dict(zip(names.tolist(), map(tuple, stored.tolist()), strict=True))
    assert stored.pop("train/cat/grey.png") == (50, 30, GREYSCALE | TRANSPARENT)
    assert stored.pop("test/frog/wide.jpg") == (64, 48, 0)
    assert set(stored.values()) == {(40, 40, 0)}  # write_image_folder's RGB squares
    assert "train/dog/000-broken.png" not in ds.files["train"].tolist() + ds.files["val"].tolist()
    # The card's share of training images not square (the Classify page's framing reads it).
    grey_trains = "train/cat/grey.png" in ds.files["train"].tolist()
    assert ds.summary()["not_square"] == (round(1 / 9, 4) if grey_trains else 0.0)


def test_a_cifar_archive_names_no_files(tmp_path):
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=4)
    ds = load_dataset(tmp_path / "cifar-10-python.tar.gz", val_fraction=0.2)
    assert ds.files == {} and ds.stored == {} and len(ds.split("val")[1]) > 0
    assert ds.summary()["not_square"] == 0.0  # CIFAR-10's images are all 32 x 32
    assert ds.image_name("val", 1) == f"val #1 ({ds.class_names[ds.split('val')[1][1]]})"


def test_folder_with_train_and_test_subfolders(tmp_path):
    write_image_folder(tmp_path / "d" / "train", per_class=6)
    write_image_folder(tmp_path / "d" / "test", per_class=2, fmt="JPEG")
    ds = load_dataset(tmp_path / "d", val_fraction=0.5)
    assert {k: len(v[1]) for k, v in ds.splits.items()} == {"train": 9, "val": 9, "test": 6}


@pytest.mark.parametrize("name", data.VAL_FOLDERS)
def test_a_folder_of_its_own_validation_images_is_the_val_split(tmp_path, name):
    write_image_folder(tmp_path / "d" / "train", per_class=6)
    write_image_folder(tmp_path / "d" / name, per_class=3, fmt="JPEG")
    write_image_folder(tmp_path / "d" / "test", per_class=2)
    ds = load_dataset(tmp_path / "d", val_fraction=0.5, seed=3)  # neither is used
    assert {k: len(v[1]) for k, v in ds.splits.items()} == {"train": 18, "val": 9, "test": 6}
    assert ds.val_folder == name and ds.summary()["val_folder"] == name
    assert {f.split("/")[0] for f in ds.files["val"]} == {name}
    assert {f.split("/")[0] for f in ds.files["train"]} == {"train"}
    np.testing.assert_array_equal(np.bincount(ds.split("val")[1]), [3, 3, 3])
    # From the cache, the same; and without a test/ beside it.
    assert load_dataset(tmp_path / "d").files["val"].tolist() == ds.files["val"].tolist()
    shutil.rmtree(tmp_path / "d" / "test")
    ds = load_dataset(tmp_path / "d", val_fraction=0)
    assert {k: len(v[1]) for k, v in ds.splits.items()} == {"train": 18, "val": 9}


def test_a_validation_folder_takes_the_training_classes(tmp_path):
    write_image_folder(tmp_path / "d" / "train", per_class=6)
    write_image_folder(tmp_path / "d" / "valid", per_class=2, classes=("cat", "frog"))
    (tmp_path / "d" / "valid" / "dog").mkdir()  # empty: read as none of dog
    write_image_folder(tmp_path / "d" / "test", per_class=1, classes=("dog", "frog"))
    # Labels are train/'s positions, whichever classes a held-out folder lacks.
    ds = load_dataset(tmp_path / "d")
    assert ds.class_names == ["cat", "dog", "frog"]
    assert sorted(ds.split("val")[1].tolist()) == [0, 0, 2, 2]
    assert [f.split("/")[1] for f in ds.files["val"]] == ["cat", "cat", "frog", "frog"]
    assert ds.split("test")[1].tolist() == [1, 2]
    write_image_folder(tmp_path / "d" / "valid", per_class=1, classes=("cow",))
    with pytest.raises(DataError, match=r"^The validation folder valid/ has a folder cow that "):
        load_dataset(tmp_path / "d")
    # Only beside train/: a flat folder's val/ is a class like any other.
    write_image_folder(tmp_path / "flat", per_class=6, classes=("cat", "val"))
    ds = load_dataset(tmp_path / "flat", val_fraction=0.5)
    assert ds.class_names == ["cat", "val"] and ds.val_folder == ""
    assert {k: len(v[1]) for k, v in ds.splits.items()} == {"train": 6, "val": 6}


def test_second_load_comes_from_the_cache_and_a_change_invalidates_it(tmp_path):
    write_image_folder(tmp_path / "d", per_class=5)
    first = load_dataset(tmp_path / "d", val_fraction=0)
    caches = list(Path(os.environ["CNN_CACHE_DIR"]).iterdir())
    assert len(caches) == 1
    again = load_dataset(tmp_path / "d", val_fraction=0)
    np.testing.assert_array_equal(first.split("train")[0], again.split("train")[0])
    Image.new("RGB", (32, 32), (0, 0, 255)).save(tmp_path / "d" / "cat" / "new.png")
    changed = load_dataset(tmp_path / "d", val_fraction=0)
    assert len(changed.split("train")[1]) == 16
    # The new entry replaced the old one (150 MB for CIFAR-10's 50,000 images).
    assert list(Path(os.environ["CNN_CACHE_DIR"]).iterdir()) != caches
    assert len(list(Path(os.environ["CNN_CACHE_DIR"]).iterdir())) == 1


def test_one_cache_entry_per_folder_and_size_however_the_path_is_spelt(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "d", per_class=5)
    (tmp_path / "link").symlink_to(tmp_path / "d")
    cache = Path(os.environ["CNN_CACHE_DIR"])
    load_dataset(tmp_path / "d", val_fraction=0)
    entry = next(cache.iterdir())
    written = (entry / "x.npy").stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)
    for spelling in ("d", "./d/", "link", str(tmp_path / "link")):
        load_dataset(spelling, val_fraction=0)
    assert list(cache.iterdir()) == [entry]
    assert (entry / "x.npy").stat().st_mtime_ns == written  # read, never decoded again
    load_dataset("d", val_fraction=0, image_size=16)  # another size is another entry
    assert len(list(cache.iterdir())) == 2


def test_a_new_cache_entry_removes_those_of_deleted_folders_and_old_versions(tmp_path):
    cache = Path(os.environ["CNN_CACHE_DIR"])
    write_image_folder(tmp_path / "gone", per_class=3)
    load_dataset(tmp_path / "gone", val_fraction=0)
    shutil.rmtree(tmp_path / "gone")  # e.g. a deleted upload: its entry describes nothing
    old, young = cache / "folder-0123456789abcdef01234567", cache / "folder-young"
    for legacy in (old, young):  # written before entries recorded their source
        legacy.mkdir()
        (legacy / "x.npy").write_bytes(b"0" * 100)
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    write_image_folder(tmp_path / "d", per_class=3)
    load_dataset(tmp_path / "d", val_fraction=0)
    kept = sorted(p.name for p in cache.iterdir())
    # The young one may be another process's entry still being written: left alone.
    assert len(kept) == 2 and "folder-young" in kept
    assert (cache / next(n for n in kept if n != "folder-young") / "source.txt").read_text() == (
        f"{(tmp_path / 'd').resolve()}|32"
    )


@pytest.mark.parametrize(
    "setup, words",
    [
        (lambda r: None, "does not exist"),
        (lambda r: r.mkdir(), "has no class folders"),
        (lambda r: (r / "only").mkdir(parents=True), "single class folder"),
        # One level too high, as a copied tree often is: the path to give instead.
        (
            lambda r: write_image_folder(r / "top", per_class=2),
            r"single class folder \(top\); a classifier needs at least two classes\. It holds "
            r"3 folders itself \(cat, dog, frog\): if those are the classes, give .*/d/top "
            r"instead\.",
        ),
        (lambda r: [(r / c).mkdir(parents=True) for c in ("a", "b")], "is empty"),
    ],
)
def test_bad_folders_get_a_sentence_that_names_the_problem(tmp_path, setup, words):
    root = tmp_path / "d"
    setup(root)
    with pytest.raises(DataError, match=words):
        load_dataset(root)


def test_class_with_only_unreadable_files_is_named(tmp_path):
    write_image_folder(tmp_path / "d", per_class=3, classes=("a", "b"))
    (tmp_path / "d" / "c").mkdir()
    (tmp_path / "d" / "c" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="No readable image in the class folder"):
        load_dataset(tmp_path / "d")


@pytest.mark.shared
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets/cifar10-jpeg is absent")
def test_shared_cifar10_jpeg_folder_loads_and_second_load_is_fast():
    ds = load_dataset(SHARED, val_fraction=0.1, seed=0)
    assert ds.class_names == data.CIFAR10_CLASSES
    assert {k: len(v[1]) for k, v in ds.splits.items()} == {"train": 45000, "val": 5000}
    start = time.perf_counter()
    load_dataset(SHARED, val_fraction=0.1, seed=0)
    assert time.perf_counter() - start < 5


def test_decoding_a_folder_reports_progress_and_a_cached_one_needs_none(tmp_path, monkeypatch):
    from core import data

    monkeypatch.setattr(data, "PROGRESS_EVERY", 4)
    write_image_folder(tmp_path / "d", per_class=5)  # 15 images
    (tmp_path / "d" / "cat" / "notes.txt").write_text("not an image")  # skipped, counted
    assert not data.folder_listing(tmp_path / "d").cached()
    calls = []
    load_dataset(tmp_path / "d", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(4, 16), (8, 16), (12, 16), (16, 16)]
    assert data.folder_listing(tmp_path / "d").cached()
    calls.clear()
    load_dataset(tmp_path / "d", progress=lambda done, total: calls.append((done, total)))
    assert calls == []  # from the cache
    assert data.folder_listing(tmp_path / "missing") is None
    assert data.folder_listing(tmp_path / "d" / "cat" / "notes.txt") is None
    listing = data.folder_listing(tmp_path / "d")
    assert listing.describes(tmp_path / "d" / "cat" / "..", 32)  # however the path is spelt
    assert not listing.describes(tmp_path / "d", 64) and not listing.describes(tmp_path)


def _mixed_folder(root: Path) -> data.FolderListing:
    """61 pictures in three classes, JPEG, PNG and a HEIC, with files that fail in between."""
    write_image_folder(root, per_class=12, fmt="JPEG")
    write_image_folder(root, per_class=8, fmt="PNG")
    (root / "cat" / "005-broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (root / "dog" / "011-notes.txt").write_text("not an image")
    (root / "frog" / "002-phone.heic").write_bytes(b"\0\0\0\x18ftypheic")
    shutil.copy(HEIC_PHOTO, root / "frog" / "003-phone.heic")
    (root / "frog" / "030-empty.png").write_bytes(b"")
    # Names a worker gets through JSON: a line break, and bytes that are not UTF-8.
    cat, dog = (sorted((root / name).glob("*.jpeg"))[1] for name in ("cat", "dog"))
    os.rename(cat, root / "cat" / "001\nline.jpg")
    os.rename(dog, os.fsdecode(os.fsencode(root / "dog") + b"/\xe9t\xe9.jpg"))
    return data.folder_listing(root)


def test_a_folder_is_read_squashed_or_cropped_each_kept_in_its_own_cache_entry(tmp_path):
    root, cache = tmp_path / "d", tmp_path / "cache"
    write_framed_folder(root)

    def load(fit):
        return load_dataset(root, image_size=8, val_fraction=0.25, cache_dir=cache, fit=fit)

    squashed, cropped = load("squash"), load("crop")
    for split in ("train", "val"):
        x, y = squashed.split(split)
        assert (x[:, :, :2] == (255, 0, 0)).all() and (x[:, :, -2:] == (255, 0, 0)).all()
        x, y_cropped = cropped.split(split)
        assert (x[..., 0] == 0).all() and x[..., 1:].max() >= 100  # no red: the centre only
        np.testing.assert_array_equal(y, y_cropped)  # the same split, the same labels
    assert cropped.summary()["not_square"] == 1.0
    # Each entry stays (neither is stale) and is read again without a decode.
    entries = [e.joinpath("source.txt").read_text() for e in cache.glob("folder-*")]
    assert sorted(entries) == [f"{root}|8", f"{root}|8 crop"]
    assert data.folder_listing(root, 8, cache).cached()
    assert data.folder_listing(root, 8, cache, fit="crop").cached()
    with pytest.raises(ValueError, match="fit must be one of"):
        data.folder_listing(root, 8, cache, fit="three")
    with pytest.raises(ValueError, match="listing given"):  # a listing of the other framing
        data.load_image_folder(
            root, 8, cache, listing=data.folder_listing(root, 8, cache), fit="crop"
        )


def test_worker_processes_crop_as_this_process_does(tmp_path, monkeypatch):
    write_framed_folder(tmp_path / "d", per_class=5)
    listing = data.folder_listing(tmp_path / "d", fit="crop")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "worker_count", lambda seconds: 1)
        alone = data.decode_files(listing.files, 16, fit="crop")
    assert (alone[0]["x"][..., 0] == 0).all()
    monkeypatch.setattr(data, "worker_count", lambda seconds: 2)
    monkeypatch.setattr(data, "decode_file", lambda *a: pytest.fail("decoded here: no worker"))
    _same(data.decode_files(listing.files, 16, fit="crop"), alone)


def test_a_few_files_are_decoded_again_framed_their_heic_through_one_process(tmp_path, monkeypatch):
    from tests.conftest import HEIC_PHOTO, heic_processes

    write_framed_folder(tmp_path / "d", per_class=1)
    pngs = sorted((tmp_path / "d").rglob("*.png"))
    heics = [HEIC_PHOTO.parent / name for name in ("photo.heic", "turned.heic")]
    gone = tmp_path / "d" / "cat" / "gone.png"
    squashed = data.decode_framed(pngs, 8, "squash")
    assert all((x[:, :2] == (255, 0, 0)).all() for x in squashed)  # the red ends kept
    started = heic_processes(monkeypatch)
    *cropped, gone_one = data.decode_framed([*pngs, *heics, gone], 8, "crop")
    assert len(started) == 1  # both HEIC photos through one decoding process
    assert gone_one is None
    for x, path in zip(cropped, [*pngs, *heics], strict=True):
        np.testing.assert_array_equal(x, data.decode_file(path, 8, "crop")[0])
    assert all((x[..., 0] == 0).all() for x in cropped[: len(pngs)])  # the centre only


def _in_this_process(listing) -> tuple[dict, list]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "worker_count", lambda seconds: 1)
        return data.decode_files(listing.files, 32)


def _same(a, b) -> None:
    assert a[1] == b[1]  # the skipped files and their reasons, in listing order
    assert a[0].keys() == b[0].keys()
    for name in a[0]:
        np.testing.assert_array_equal(a[0][name], b[0][name])


def test_worker_processes_decode_a_folder_as_this_process_does(tmp_path, monkeypatch):
    listing = _mixed_folder(tmp_path / "d")
    alone = _in_this_process(listing)
    assert len(alone[0]["x"]) == 61 and len(alone[1]) == 4
    assert (
        dict(alone[1])[str(tmp_path / "d/frog/002-phone.heic")]
        == "The HEIC file is truncated or damaged, so it cannot be read."
    )
    monkeypatch.setattr(data, "worker_count", lambda seconds: 3)  # whatever the machine's cores
    monkeypatch.setattr(data, "PROGRESS_EVERY", 7)

    def not_here(*args):
        raise AssertionError("decoded in the parent: a worker failed")

    monkeypatch.setattr(data, "decode_file", not_here)
    calls = []
    _same(data.decode_files(listing.files, 32, lambda d, t: calls.append((d, t))), alone)
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (65, 65) and len(calls) >= 3


@pytest.mark.parametrize(
    "worker",
    [
        # ends after its first chunk of 5, as a worker killed half-way
        "import os, core.decode_worker as w; w.CHUNK = 5; real = w.send\n"
        "def send(*a):\n    real(*a); os._exit(9)\n"
        "w.send = send; w.main()",
        # writes what is not a message
        "import sys; sys.stdin.read(); print('Traceback (most recent call last):')",
        # reads nothing and ends
        "raise SystemExit(1)",
    ],
    ids=["killed", "garbage", "dead"],
)
def test_what_a_failing_worker_leaves_is_decoded_here(tmp_path, monkeypatch, worker):
    listing = _mixed_folder(tmp_path / "d")
    alone = _in_this_process(listing)
    monkeypatch.setattr(data, "worker_count", lambda seconds: 2)
    monkeypatch.setattr(data, "WORKER", [data.sys.executable, "-c", worker])
    here = []
    decode_file = data.decode_file
    monkeypatch.setattr(data, "decode_file", lambda *a: here.append(a) or decode_file(*a))
    _same(data.decode_files(listing.files, 32), alone)
    # The killed worker's first 5 files came from it; the others' whole shares from here.
    assert len(here) == (65 - 2 * 5 if "os._exit" in worker else 65)


def test_no_worker_outlives_a_stopped_decode(tmp_path, monkeypatch):
    import subprocess

    listing = _mixed_folder(tmp_path / "d")
    monkeypatch.setattr(data, "worker_count", lambda seconds: 2)
    monkeypatch.setattr(data, "PROGRESS_EVERY", 1)
    # Workers that decode one file and then wait for ever, as a slow disk would.
    slow = (
        "import time, core.decode_worker as w; w.CHUNK = 1; real = w.send\n"
        "def send(*a):\n    real(*a); time.sleep(600)\n"
        "w.send = send; w.main()"
    )
    monkeypatch.setattr(data, "WORKER", [data.sys.executable, "-c", slow])
    started = []
    popen = subprocess.Popen

    def recorded(*args, **kwargs):
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", recorded)

    def stop(done, total):  # as the page's rerun does, from its progress bar
        raise KeyboardInterrupt

    begun = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        data.decode_files(listing.files, 32, stop)
    assert len(started) == 2 and all(p.poll() is not None for p in started)
    assert time.monotonic() - begun < 60


def test_a_decode_goes_to_workers_when_it_would_take_a_second_here(tmp_path):
    tiny = [tmp_path / f"{i}.jpg" for i in range(100)]
    for path in tiny:
        path.write_bytes(b"\xff" * 1500)  # a CIFAR-10 JPEG's size
    assert data.estimated_seconds(tiny) == pytest.approx(100 * (250e-6 + 1500 * 14e-9))
    assert data.worker_count(data.estimated_seconds(tiny)) == 1  # 27 ms: here
    photos = [tmp_path / f"photo-{i}.jpg" for i in range(400)]
    for path in photos:
        path.write_bytes(b"")
        os.truncate(path, 190_000)  # 400 photos of 1024 x 768 pixels: about 1.1 s
    assert data.worker_count(data.estimated_seconds(photos)) == min(2, len(os.sched_getaffinity(0)))
    many = [tmp_path / "absent.jpg"] * 50_000  # not even looked at: 12.5 s whatever the sizes
    assert data.estimated_seconds(many) == pytest.approx(12.5)
    assert data.worker_count(12.5) == min(8, len(os.sched_getaffinity(0)))
    phone = [tmp_path / f"IMG_{i}.HEIC" for i in range(4)]  # a decoding process for them all
    for path in phone:
        path.write_bytes(b"")
        os.truncate(path, 1_500_000)  # 12-megapixel photos
    each = 250e-6 + 1e-3 + 1_500_000 * 400e-9
    assert data.estimated_seconds(phone) == pytest.approx(0.1 + 4 * each)
    assert data.worker_count(data.estimated_seconds(phone)) == min(2, len(os.sched_getaffinity(0)))


def test_a_folder_whose_name_is_not_utf8_loads_and_describes_itself_as_text(tmp_path):
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/photos-\xe9t\xe9"))
    write_image_folder(root, per_class=4)
    ds = load_dataset(root, val_fraction=0.25)
    assert ds.source == f"image folder {tmp_path}/photos-\ufffdt\ufffd"  # what a card keeps
    assert len(ds.split("train")[1]) == 9
    assert load_dataset(root, val_fraction=0.25).source == ds.source  # from the cache


def test_skipped_files_come_back_from_the_cache_whatever_their_names(tmp_path):
    write_image_folder(tmp_path / "d", per_class=4)
    odd = ["two\nlines.jpg", "tab\there.jpg", "caf\udce9.jpg", "end\\n.jpg"]  # \udce9: a byte
    for name in odd:
        Path(os.fsdecode(os.fsencode(tmp_path / "d" / "cat" / name))).write_bytes(b"\xff\xd8")
    first = load_dataset(tmp_path / "d", val_fraction=0.25, cache_dir=tmp_path / "c")
    shown = sorted(name.replace("\udce9", "\ufffd") for name in odd)
    assert sorted(Path(p).name for p, _ in first.skipped) == shown
    again = load_dataset(tmp_path / "d", val_fraction=0.25, cache_dir=tmp_path / "c")
    assert again.skipped == first.skipped  # a line break or a tab in a name split the entry


def test_a_huge_file_in_a_folder_is_refused_without_being_read(tmp_path):
    write_image_folder(tmp_path / "d", per_class=4)
    huge = tmp_path / "d" / "cat" / "holiday.jpg"  # a 4 GB video named .jpg (sparse here)
    huge.write_bytes(b"")
    os.truncate(huge, 4 * 1024**3)
    start = time.perf_counter()
    ds = load_dataset(tmp_path / "d", val_fraction=0.25)
    assert time.perf_counter() - start < 3  # reading it took seconds and 4 GB of memory
    assert ds.skipped == [(str(huge), "This file is 4,096 MB; the limit is 32 MB.")]


def test_links_that_loop_and_pipes_in_a_folder_are_not_read(tmp_path):
    from core.userdata import check_folder

    root = tmp_path / "d"
    write_image_folder(root, per_class=4)
    (root / "loop").symlink_to(root / "loop")  # asking whether it is a folder raised ELOOP
    (root / "cat" / "self.jpg").symlink_to(root / "cat" / "self.jpg")
    (root / "dog" / "up").symlink_to(root)  # a folder inside a class: not a file
    os.mkfifo(root / "frog" / "pipe.jpg")  # reading it would wait for ever
    ds = load_dataset(root, val_fraction=0.25)
    assert ds.class_names == ["cat", "dog", "frog"] and len(ds.split("train")[1]) == 9
    assert ds.skipped == []
    for listing in (data.folder_listing(root), None):
        report = check_folder(root, listing=listing)
        assert report.summary() == "3 classes, 12 images, 0 unreadable, 0 duplicates"


def test_a_zip_or_a_picture_given_as_the_data_is_named_for_what_it_is(tmp_path):
    import zipfile

    write_image_folder(tmp_path / "d", per_class=2)
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        archive.write(tmp_path / "d" / "cat" / "000.png", "cat/000.png")
    with pytest.raises(DataError, match=r"photos.zip is a zip file, not a folder: unzip it"):
        load_dataset(tmp_path / "photos.zip")
    with pytest.raises(DataError, match=r"000.png is a single picture: give the folder"):
        load_dataset(tmp_path / "d" / "cat" / "000.png")
    (tmp_path / "broken.tar.gz").write_bytes(b"\x1f\x8b not really")  # still an archive's
    with pytest.raises(DataError, match="is corrupt or not a CIFAR-10 python archive"):
        load_dataset(tmp_path / "broken.tar.gz")


def test_decoding_no_file_reports_no_progress():
    calls = []
    arrays, skipped = data.decode_files([], 32, lambda done, total: calls.append((done, total)))
    assert calls == [] and skipped == [] and arrays["x"].shape == (0, 32, 32, 3)


def test_class_names_of_reads_folder_names_only(tmp_path):
    write_image_folder(tmp_path / "flat", per_class=1)
    write_image_folder(tmp_path / "split" / "train", per_class=1, classes=("b", "a"))
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=2)
    (tmp_path / "photos.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)  # an empty zip
    assert data.class_names_of(tmp_path / "flat") == ["cat", "dog", "frog"]
    assert data.class_names_of(tmp_path / "split") == ["a", "b"]
    assert data.class_names_of("cifar10") == list(data.CIFAR10_CLASSES)
    assert data.class_names_of(tmp_path / "cifar-10-python.tar.gz") == list(data.CIFAR10_CLASSES)
    assert data.class_names_of(tmp_path / "photos.zip") is None
    assert data.class_names_of(tmp_path / "nothing") is None
    for spec in ("flat", "split"):  # as the loader has them
        assert data.class_names_of(tmp_path / spec) == load_dataset(tmp_path / spec).class_names


def test_fewest_to_hold_out_is_the_smallest_class_the_split_takes_one_from():
    from core.data import fewest_to_hold_out, stratified_split

    assert fewest_to_hold_out(0.0) is None
    for fraction in (0.05, 0.1, 0.15, 0.25, 0.5):
        n = fewest_to_hold_out(fraction)
        y = np.repeat([0, 1], [n - 1, n])  # one class short of it, one with it
        held = np.bincount(y[stratified_split(y, fraction, seed=0)[1]], minlength=2)
        assert held.tolist() == [0, 1], fraction
    assert fewest_to_hold_out(0.1) == 6


def test_jpegs_saved_as_jfif_or_jpe_are_read(tmp_path):
    write_image_folder(tmp_path / "d", per_class=3, classes=("a", "b"), fmt="JPEG")
    for i, path in enumerate(sorted((tmp_path / "d" / "b").iterdir())):
        path.rename(path.with_suffix((".jfif", ".JPE", ".jpeg")[i]))  # as browsers save them
    ds = load_dataset(tmp_path / "d", val_fraction=0)
    assert np.bincount(ds.splits["train"][1]).tolist() == [3, 3] and not ds.skipped
