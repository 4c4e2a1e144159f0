"""Zips of class folders built here with `zipfile` and tiny Pillow PNGs; nothing downloaded."""

import io
import os
import shutil
import stat
import struct
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import data, userdata
from core.data import folder_contents, folder_listing, load_dataset
from core.errors import DataError
from core.userdata import check_folder, extract_zip, folder_signature
from tests.conftest import HEIC_PHOTO

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "cifar10-jpeg"


def png_bytes(seed: int, size: int = 12) -> bytes:
    """A small PNG whose pixels (and so bytes) differ for every seed."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def make_zip(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """`entries`: `{name: bytes}` or `(ZipInfo, bytes)` pairs, written in order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a repeated name is written on purpose
        for name, payload in entries.items() if isinstance(entries, dict) else entries:
            archive.writestr(name, payload)
    return buf.getvalue()


def class_entries(prefix="", per_class=3, classes=("cat", "dog")) -> dict:
    return {
        f"{prefix}{name}/{i:02d}.png": png_bytes(100 * c + i)
        for c, name in enumerate(classes)
        for i in range(per_class)
    }


def _patch_first_entry(raw: bytes, local_offset: int, central_offset: int, value: int) -> bytes:
    """Overwrites one field of the first entry's local and central headers."""
    out = bytearray(raw)
    fmt = "<H" if local_offset == 6 else "<I"  # flags are 2 bytes, sizes 4
    struct.pack_into(fmt, out, raw.find(b"PK\x03\x04") + local_offset, value)
    struct.pack_into(fmt, out, raw.find(b"PK\x01\x02") + central_offset, value)
    return bytes(out)


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "uploads"


def _left_behind(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


# --- layouts that are accepted ----------------------------------------------------------


def test_flat_class_folders_unpack_to_a_loadable_dataset(dest):
    folder = extract_zip(make_zip(class_entries(per_class=4)), dest, name="pets.zip")
    assert folder.parent == dest and folder.name.startswith("pets-")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))[:2] == [
        "cat/00.png",
        "cat/01.png",
    ]
    ds = load_dataset(folder, val_fraction=0.25)
    assert ds.class_names == ["cat", "dog"]
    assert len(ds.split("train")[1]) == 6 and len(ds.split("val")[1]) == 2
    assert _left_behind(dest) == [folder.name]  # no temporary folder remains


def test_one_wrapping_folder_is_removed_and_mac_and_windows_litter_ignored(dest):
    entries = class_entries(prefix="My Pets/")
    entries |= {
        "__MACOSX/My Pets/cat/._00.png": b"\x00\x05\x16\x07 resource fork",
        "My Pets/.DS_Store": b"junk",
        "My Pets/dog/Thumbs.db": b"junk",
        "My Pets/cat/notes.txt": b"not an image, skipped",
    }
    folder = extract_zip(make_zip(entries), dest, name="My Pets.zip")
    assert folder.name.startswith("My-Pets-")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == [f"{c}/{i:02d}.png" for c in ("cat", "dog") for i in range(3)]


def test_wrapping_folders_go_and_folders_inside_a_class_folder_stay(dest, check):
    entries = class_entries(prefix="home/me/Pets/")  # a zip of a deep path
    entries |= {f"home/me/Pets/dog/{year}/a.png": png_bytes(90 + year) for year in (2023, 2024)}
    entries["home/me/Pets/dog/2024/scan.tif"] = b"II*\x00"  # named by the check, kept
    folder = extract_zip(make_zip(entries), dest)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    nested = ["dog/2023/a.png", "dog/2024/a.png", "dog/2024/scan.tif"]
    assert files == sorted([f"{c}/{i:02d}.png" for c in ("cat", "dog") for i in range(3)] + nested)
    report = check(folder)
    assert report.counts == {"images": [3, 5]} and report.ok
    assert [name for name, _ in report.unreadable] == ["dog/2024/scan.tif"]


def test_train_and_test_folders_keep_their_split(dest):
    entries = class_entries(prefix="data/train/", per_class=4) | class_entries(prefix="data/test/")
    folder = extract_zip(make_zip(entries), dest)
    assert sorted(p.name for p in folder.iterdir()) == ["test", "train"]
    ds = load_dataset(folder, val_fraction=0.25)
    assert ds.class_names == ["cat", "dog"] and len(ds.split("test")[1]) == 6


def test_the_same_zip_twice_reuses_its_folder(dest):
    raw = make_zip(class_entries())
    first = extract_zip(raw, dest, name="pets.zip")
    stamp = (first / "cat" / "00.png").stat().st_mtime_ns
    time.sleep(0.01)
    again = extract_zip(io.BytesIO(raw), dest, name="pets.zip")  # a file object this time
    assert again == first and (again / "cat" / "00.png").stat().st_mtime_ns == stamp
    other = extract_zip(make_zip(class_entries(per_class=4)), dest, name="pets.zip")
    assert other != first and _left_behind(dest) == sorted([first.name, other.name])


def test_a_zip_on_disk_is_read_from_its_path(tmp_path, dest):
    path = tmp_path / "flowers.zip"
    path.write_bytes(make_zip(class_entries(classes=("rose", "tulip"))))
    folder = extract_zip(path, dest)
    assert folder.name.startswith("flowers-")
    assert sorted(p.name for p in folder.iterdir()) == ["rose", "tulip"]


def test_default_destination_is_the_uploads_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_UPLOADS_DIR", str(tmp_path / "mine"))
    assert extract_zip(make_zip(class_entries())).parent == tmp_path / "mine"


# --- refusals, each before anything is written -------------------------------------------


def _hostile(name: str, payload: bytes = b"x") -> bytes:
    return make_zip([*class_entries().items(), (name, payload)])  # a list: names may repeat


@pytest.mark.parametrize(
    "raw, message",
    [
        (_hostile("../evil.png"), "'../evil.png' points outside the archive's folder"),
        (_hostile("cat/../../evil.png"), "points outside the archive's folder with '..'"),
        (_hostile("/tmp/evil.png"), "'/tmp/evil.png' has an absolute path"),
        (_hostile("C:/Windows/evil.png"), "has an absolute path"),
        (_hostile("cat\\..\\..\\evil.png"), "uses backslashes"),
        (_hostile("cat//evil.png"), "has an empty, '.' or control-character part"),
        (_hostile("cat/00.png"), "'cat/00.png' appears twice"),
        (b"hello, I am a text file", "not a zip archive, or it is damaged"),
        (make_zip({}), "The zip is empty"),
        (make_zip({"a/readme.txt": b"hi", "b/data.csv": b"1,2"}), "holds no images"),
        (
            make_zip({"00.png": png_bytes(0), "01.png": png_bytes(1)}),
            "'00.png' lies at the top of the zip",
        ),
        (
            make_zip(class_entries() | {"train/cat/x.png": png_bytes(9)}),
            "nested deeper than a class folder",
        ),
        (make_zip(class_entries(classes=("cat",))), "a single class folder (cat)"),
        (
            make_zip(
                class_entries(prefix="train/")
                | class_entries(prefix="test/", classes=("cat", "cow"))
            ),
            "In the zip: The test folder has a folder cow that train/ has not: a model trained "
            "on train/'s classes (cat, dog) has no answer for it. Move it out, or give train/ "
            "the same class folder.",
        ),
        (
            make_zip(
                class_entries(prefix="train/")
                | class_entries(prefix="valid/", classes=("cat", "cow", "dog"))
            ),
            "The validation folder valid/ has a folder cow that train/ has not",
        ),
    ],
)
def test_unsafe_or_unusable_zips_are_refused_with_a_sentence(dest, raw, message):
    with pytest.raises(DataError) as err:
        extract_zip(raw, dest)
    assert message in str(err.value)
    assert str(err.value).endswith(".")
    assert _left_behind(dest) == []


def test_layout_refusals_show_the_expected_layout(dest):
    with pytest.raises(DataError, match="Expected layout: one folder per class"):
        extract_zip(make_zip({"00.png": png_bytes(0)}), dest)


def test_a_symlink_entry_is_refused(dest):
    link = zipfile.ZipInfo("cat/link.png")
    link.create_system = 3  # Unix: the mode in external_attr counts
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    raw = make_zip([*class_entries().items(), (link, b"/etc/passwd")])
    with pytest.raises(DataError, match="'cat/link.png' is a symbolic link"):
        extract_zip(raw, dest)
    assert _left_behind(dest) == []


def test_a_fifo_entry_is_refused(dest):
    fifo = zipfile.ZipInfo("cat/pipe.png")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    with pytest.raises(DataError, match="device, pipe or other special file"):
        extract_zip(make_zip([*class_entries().items(), (fifo, b"")]), dest)


def test_an_encrypted_entry_is_refused(dest):
    raw = make_zip(class_entries())
    raw = _patch_first_entry(raw, 6, 8, 0x1)  # general-purpose flag bit 0: encrypted
    with pytest.raises(DataError, match="'cat/00.png' is encrypted"):
        extract_zip(raw, dest)


def test_a_highly_compressible_entry_is_refused_as_a_bomb(dest):
    raw = make_zip(class_entries() | {"cat/big.bmp": b"\x00" * (2 * 1024 * 1024)})
    assert len(raw) < 30_000  # 2 MiB of zeros deflate to a few KB
    with pytest.raises(DataError, match=r"'cat/big.bmp' expands [\d,]+ times .*zip bomb"):
        extract_zip(raw, dest)
    assert _left_behind(dest) == []
    # Under the ratio limit the same entry is only bounded by the total size.
    assert extract_zip(raw, dest, max_ratio=10_000).is_dir()


def test_declared_total_over_the_limit_is_refused_before_unpacking(dest):
    # 500 KB of zeros: under the ratio check's 1 MiB floor, but it counts in the total.
    raw = make_zip(class_entries() | {"cat/flat.bmp": bytes(500_000)})
    assert len(raw) < 10_000
    with pytest.raises(DataError, match=r"add up to more than 100 KB once unpacked"):
        extract_zip(raw, dest, max_total_bytes=100 * 1024)
    with pytest.raises(DataError, match=r"The zip is [\d.]+ KB; the limit is 1 KB"):
        extract_zip(raw, dest, max_total_bytes=1024)
    assert _left_behind(dest) == []


def test_a_header_that_understates_the_size_is_caught_while_unpacking(dest):
    raw = make_zip({"cat/liar.bmp": bytes(200_000)} | class_entries())
    raw = _patch_first_entry(raw, 22, 24, 1_000)  # declares 1,000 bytes instead of 200,000
    assert zipfile.ZipFile(io.BytesIO(raw)).getinfo("cat/liar.bmp").file_size == 1_000
    with pytest.raises(DataError, match="could not be unpacked: it is damaged"):
        extract_zip(raw, dest, max_total_bytes=50_000)
    assert _left_behind(dest) == []  # the partial folder was removed


def test_too_many_entries_are_refused(dest):
    raw = make_zip(class_entries(per_class=3))  # 6 entries
    with pytest.raises(DataError, match="holds 6 entries; the limit is 5 files"):
        extract_zip(raw, dest, max_files=5)
    assert extract_zip(raw, dest, max_files=6).is_dir()


def test_an_unwritable_destination_is_explained(tmp_path):
    blocker = tmp_path / "uploads"
    blocker.write_text("a file where the uploads folder should be")
    with pytest.raises(
        DataError, match=r"could not be unpacked into .*uploads/inner \(Not a directory\)"
    ):
        extract_zip(make_zip(class_entries()), blocker / "inner")


def test_a_stale_partial_folder_is_cleaned_up(dest):
    dest.mkdir()
    stale = dest / ".partial-old-zip-abc"
    (stale / "cat").mkdir(parents=True)
    old = time.time() - 2 * 24 * 3600
    os.utime(stale, (old, old))
    fresh = dest / ".partial-other-session"
    fresh.mkdir()  # another session may be unpacking right now
    folder = extract_zip(make_zip(class_entries()), dest)
    assert _left_behind(dest) == sorted([".partial-other-session", folder.name])


# --- checking a folder -----------------------------------------------------------------


def _folder(root: Path, counts: dict[str, int], seed=0) -> Path:
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / name / f"{i:03d}.png").write_bytes(png_bytes(seed + 1000 * c + i))
    return root


@pytest.fixture(params=["alone", "from the load"])
def check(request):
    """`check_folder` reading the files itself, and through the dataset loader's decode as
    the dashboard calls it (`listing`): both must give the same report."""
    if request.param == "alone":
        return check_folder
    return lambda root: check_folder(root, listing=folder_listing(root))


def test_a_clean_folder_has_no_problem_and_no_warning(tmp_path, check):
    report = check(_folder(tmp_path / "ok", {"cat": 12, "dog": 10}))
    assert report.ok and report.problems == [] and report.warnings == []
    assert report.class_names == ["cat", "dog"]
    assert report.counts == {"images": [12, 10]} and report.images == 22
    assert report.class_table() == [{"class": "cat", "images": 12}, {"class": "dog", "images": 10}]
    assert report.summary() == "2 classes, 22 images, 0 unreadable, 0 duplicates"


def test_a_corrupt_image_in_a_zip_is_listed_and_the_dataset_still_loads(dest, check):
    raw = make_zip(class_entries(per_class=10) | {"dog/broken.png": b"\x89PNG\r\n\x1a\n cut short"})
    folder = extract_zip(raw, dest)
    report = check(folder)
    assert report.ok and report.counts == {"images": [10, 10]}
    assert [path for path, _ in report.unreadable] == ["dog/broken.png"]
    assert "damaged" in report.unreadable[0][1] or "truncated" in report.unreadable[0][1]
    ds = load_dataset(folder, val_fraction=0.0)
    assert len(ds.split("train")[1]) == 20
    assert [Path(p).name for p, _ in ds.skipped] == ["broken.png"]  # same decoder, same verdict


def test_phone_photos_in_class_folders_are_read_and_other_pictures_named(dest, check):
    heic = HEIC_PHOTO.read_bytes()
    entries = class_entries(prefix="Pets/", per_class=4) | {
        "Pets/dog/IMG_0001.HEIC": heic,
        "Pets/cat/IMG_0002.heic": heic[:-200],  # cut short on its way
        "Pets/IMG_0003.dng": b"II*\x00",  # outside the class folders: skipped as before
        "Pets/dog/scan.tif": b"II*\x00",
    }
    folder = extract_zip(make_zip(entries), dest)
    report = check(folder)
    assert report.ok and report.counts == {"images": [4, 5]}
    assert dict(report.unreadable) == {
        "cat/IMG_0002.heic": "The HEIC file is truncated or damaged, so it cannot be read.",
        "dog/scan.tif": "TIFF pictures are not supported: convert it to JPEG or PNG",
    }
    ds = load_dataset(folder, val_fraction=0.0)  # the loader passes them over with the same words
    assert sorted(why for _, why in ds.skipped) == sorted(why for _, why in report.unreadable)
    assert len(ds.split("train")[1]) == 9  # the phone photo among them


def test_a_zip_of_pictures_of_other_formats_only_says_what_they_are(dest):
    raw = make_zip({"cat/1.tif": b"II*\x00", "dog/2.TIFF": b"MM\x00*", "dog/3.dng": b"II*\x00"})
    with pytest.raises(DataError, match=r"Its 2 TIFF, 1 raw \(DNG\) pictures are not supported"):
        extract_zip(raw, dest)


def test_duplicates_are_counted_and_those_across_classes_warned(tmp_path, check):
    root = _folder(tmp_path / "dups", {"cat": 12, "dog": 12})
    same = (root / "cat" / "000.png").read_bytes()
    (root / "cat" / "copy.png").write_bytes(same)  # same class
    (root / "dog" / "copy.png").write_bytes(same)  # same bytes, another label
    (root / "dog" / "copy2.png").write_bytes((root / "dog" / "001.png").read_bytes())
    report = check(root)
    assert report.duplicates == 3 and report.cross_class_duplicates == 2
    assert report.summary().endswith("3 duplicates (2 across classes)")
    assert report.warnings == [
        "2 duplicate images are filed under more than one class: the same picture with "
        "two labels confuses training."
    ]


def test_test_images_that_repeat_train_images_are_warned(tmp_path, check):
    root = tmp_path / "split"
    _folder(root / "train", {"cat": 10, "dog": 10})
    _folder(root / "test", {"cat": 2, "dog": 2}, seed=50_000)
    (root / "test" / "dog" / "leak.png").write_bytes((root / "train/dog/003.png").read_bytes())
    report = check(root)
    assert report.counts == {"train": [10, 10], "test": [2, 3]}
    assert report.class_table()[1] == {"class": "dog", "train": 10, "test": 3}
    assert report.in_train == {"test": 1}
    assert any("1 test image also appears in train" in w for w in report.warnings)


def test_a_validation_folder_of_its_own_is_counted_and_its_copies_of_train_warned(tmp_path, check):
    root = tmp_path / "export"  # as Roboflow exports: train/, valid/, test/
    _folder(root / "train", {"cat": 10, "dog": 10})
    _folder(root / "valid", {"cat": 3, "dog": 3}, seed=50_000)
    _folder(root / "test", {"cat": 2, "dog": 2}, seed=60_000)
    for name in ("valid/cat/leak.png", "valid/dog/leak.png", "test/cat/leak.png"):
        (root / name).write_bytes((root / "train/cat/003.png").read_bytes())
    report = check(root)
    assert report.counts == {"train": [10, 10], "val": [4, 4], "test": [3, 2]}
    assert report.class_table()[0] == {"class": "cat", "train": 10, "val": 4, "test": 3}
    assert report.in_train == {"val": 2, "test": 1} and report.cross_class_duplicates == 3
    assert report.warnings[1:] == [
        "2 validation images also appear in train, so validation accuracy will look better "
        "than it is.",
        "1 test image also appears in train, so test accuracy will look better than it is.",
    ]
    _folder(root / "valid", {"cow": 1})
    assert check(root).problems == [
        "The validation folder valid/ has a folder cow that train/ has not: a model trained on "
        "train/'s classes (cat, dog) has no answer for it. Move it out, or give train/ the same "
        "class folder."
    ]


def test_held_out_folders_without_some_classes_are_read_and_warned(tmp_path, check):
    # A small export's valid/ without a picture of a rare class: read, its gap said.
    root = tmp_path / "export"
    _folder(root / "train", {"ant": 10, "bee": 10, "cow": 10})
    _folder(root / "valid", {"bee": 3}, seed=50_000)  # no ant/, no cow/
    _folder(root / "test", {"ant": 2, "cow": 2}, seed=60_000)
    (root / "test" / "bee").mkdir()  # there, empty
    report = check(root)
    assert report.ok, report.problems
    assert report.counts == {"train": [10, 10, 10], "val": [0, 3, 0], "test": [2, 0, 2]}
    assert report.warnings == [
        "The validation images hold no picture of ant, cow: validation accuracy says nothing "
        "of those classes, and their recall is left blank. Add a few pictures of each to the "
        "validation folder for a score of every class.",
        "The test images hold no picture of bee: test accuracy says nothing of that class, and "
        "its recall is left blank. Add a few pictures of it to the test folder for a score of "
        "every class.",
    ]


@pytest.mark.parametrize("folder", ["", "class photos/"])
def test_a_zip_of_pictures_named_after_their_classes_unpacks_into_class_folders(dest, folder):
    # As a teacher zips a folder of cat1.png, cat2.png, dog1.png ...: at its top, or in one
    # folder (which, read as a class folder, would be the only one).
    names = ["cat1.png", "cat2.png", "cat3.png", "dog_1.png", "dog_2.png"]
    entries = {f"{folder}{name}": png_bytes(i) for i, name in enumerate(names)}
    unpacked = extract_zip(make_zip(entries), dest)
    assert sorted(p.relative_to(unpacked).as_posix() for p in unpacked.rglob("*.png")) == [
        "cat/cat1.png",
        "cat/cat2.png",
        "cat/cat3.png",
        "dog/dog_1.png",
        "dog/dog_2.png",
    ]
    assert check_folder(unpacked).counts == {"images": [3, 2]}


@pytest.mark.parametrize("top", ["", "aerial-cactus/"])
def test_a_competitions_zip_is_unpacked_into_the_classes_its_csv_gives(dest, top):
    # As Kaggle's competitions come: train/ of pictures named by id, train.csv (id, label),
    # test/ of unlabelled pictures, a sample submission; one picture the CSV does not list.
    ids = [f"{i:04x}" for i in range(12)]
    entries = {f"{top}train/{name}.png": png_bytes(i) for i, name in enumerate(ids)}
    entries |= {f"{top}test/t{i}.png": png_bytes(100 + i) for i in range(3)}
    rows = "".join(f"{name},{'cat' if i % 2 else 'dog'}\n" for i, name in enumerate(ids[:11]))
    entries[f"{top}train.csv"] = ("id,has_cactus\n" + rows).encode()
    entries[f"{top}sample_submission.csv"] = b"id,has_cactus\nt0.png,0.5\nt1.png,0.5\n"
    folder = extract_zip(make_zip(entries), dest)
    unpacked = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert unpacked == sorted(
        [f"train/{'cat' if i % 2 else 'dog'}/{name}.png" for i, name in enumerate(ids[:11])]
        + ["unlabelled/000b.png", "test/t0.png", "test/t1.png", "test/t2.png"]
    )
    report = check_folder(folder)
    assert report.ok and report.counts == {"train": [5, 6]}
    assert report.warnings[-1] == (
        "test/, unlabelled/ beside train/ hold pictures without class folders: with no "
        "labels to score a model on, they are not read. The Classify page (or `python -m "
        "core.classify`) answers for such pictures."
    )
    # Without a CSV that labels them, the same pictures are refused as before.
    entries[f"{top}train.csv"] = b"id,width\n" + b"".join(f"{n},32\n".encode() for n in ids)
    with pytest.raises(DataError, match="directly in train/, outside any class folder"):
        extract_zip(make_zip(entries), dest)


def test_a_zip_with_a_validation_folder_unpacks_it(dest):
    entries = class_entries(prefix="train/") | class_entries(prefix="valid/", per_class=2)
    folder = extract_zip(make_zip(entries), dest)
    assert sorted(p.name for p in folder.iterdir()) == ["train", "valid"]
    assert load_dataset(folder).val_folder == "valid"
    # One whose valid/ lacks a class unpacks too (the folder check says what it lacks).
    entries = class_entries(prefix="train/") | class_entries(prefix="valid/", classes=("dog",))
    folder = extract_zip(make_zip(entries), dest)
    assert load_dataset(folder).split("val")[1].tolist() == [1, 1, 1]  # dog: train/'s second


def test_few_images_and_imbalance_are_warned(tmp_path, check):
    report = check(_folder(tmp_path / "skewed", {"ant": 4, "bee": 30, "cow": 12}))
    assert report.ok
    assert report.warnings == [
        "Very few images in ant (4): with fewer than 10 images a class is barely learnt "
        "and its accuracy means little.",
        "The classes are very unbalanced: bee has 30 images, ant only 4 (8x). The model "
        'will favour the large classes: train with "Balance the classes" '
        "(--balance-classes), and look at the balanced accuracy and per-class recall, not "
        "accuracy alone.",
    ]


def test_blocking_problems(tmp_path, check):
    single = check(_folder(tmp_path / "one", {"cat": 12}))
    assert single.problems == [
        f"{tmp_path / 'one'} has a single class folder (cat); a classifier needs at least "
        "two classes."
    ]
    top = _folder(tmp_path / "high" / "top", {"cat": 12, "dog": 12})
    assert check(top.parent).problems[0] == (
        f"{tmp_path / 'high'} has a single class folder (top); a classifier needs at least "
        f"two classes. It holds 2 folders itself (cat, dog): if those are the classes, give "
        f"{top} instead."
    )
    root = _folder(tmp_path / "unreadable", {"cat": 12, "dog": 0})
    (root / "dog" / "a.jpg").write_bytes(b"not a jpeg")
    (root / "stray.png").write_bytes(png_bytes(1))
    report = check(root)
    assert not report.ok
    assert report.problems == [
        "No readable image in the class folder dog: every folder is a class, so put readable "
        "pictures in it or move it out."
    ]
    assert report.unreadable[0][0] == "dog/a.jpg"
    assert any(
        "1 file lies outside any class folder (stray.png) and is ignored." in w
        for w in report.warnings
    )
    empty = check(tmp_path / "one" / "cat")
    assert empty.problems[0].endswith(f"has no class folders. {userdata.LAYOUT}")
    with pytest.raises(DataError, match="does not exist"):
        check(tmp_path / "missing")


def test_a_check_through_the_load_decodes_the_folder_once_for_both(tmp_path, monkeypatch):
    root = _folder(tmp_path / "once", {"cat": 6, "dog": 6})
    (root / "dog" / "copy.png").write_bytes((root / "cat" / "000.png").read_bytes())
    listing = folder_listing(root)
    report = check_folder(root, listing=listing)
    assert report.duplicates == 1 and listing.cached()  # the load that follows reads that
    labels, parts, digests, skipped = folder_contents(listing)
    assert labels.tolist() == [0] * 6 + [1] * 7 and parts.tolist() == [0] * 13
    assert skipped == [] and digests.shape == (13, 16) and digests.dtype == np.uint8
    assert (digests[0] == digests[12]).all() and len({bytes(d) for d in digests}) == 12

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr("core.images.decode_image", no_decode)
    assert check_folder(root, listing=folder_listing(root)) == report  # from the cache entry
    other = _folder(tmp_path / "other", {"cat": 2, "dog": 2})
    with pytest.raises(ValueError, match="the listing given is of"):
        check_folder(other, listing=listing)


def test_folder_signature_changes_when_a_file_changes(tmp_path):
    root = _folder(tmp_path / "sig", {"cat": 3, "dog": 3})
    first = folder_signature(root)
    assert folder_signature(root) == first
    (root / "dog" / "new.png").write_bytes(png_bytes(77))
    assert folder_signature(root) != first


def test_images_in_folders_inside_a_class_folder_belong_to_that_class(tmp_path, check):
    root = _folder(tmp_path / "photos", {"cat": 3, "dog": 3})
    for i, year in enumerate(("2023", "2024/summer")):  # photos filed by year
        (root / "dog" / year).mkdir(parents=True)
        (root / "dog" / year / "a.png").write_bytes(png_bytes(50 + i))
    (root / "dog" / "2024" / "bad.jpg").write_bytes(b"not a jpeg")
    (root / "dog" / ".thumbs").mkdir()  # hidden: left out, as hidden files are
    (root / "dog" / ".thumbs" / "t.png").write_bytes(png_bytes(60))
    (root / "dog" / "loop").symlink_to(root)  # a link to a folder above is not followed
    report = check(root)
    assert report.counts == {"images": [3, 5]}
    assert [name for name, _ in report.unreadable] == ["dog/2024/bad.jpg"]
    ds = load_dataset(root, val_fraction=0)
    assert np.bincount(ds.splits["train"][1]).tolist() == [3, 5]
    assert ds.skipped and ds.skipped[0][0].endswith("dog/2024/bad.jpg")


def test_splits_given_as_classes_are_refused_and_years_are_not(tmp_path, check):
    root = tmp_path / "kaggle"  # the layout of Kaggle's cats and dogs
    for split, seed in (("training_set", 0), ("test_set", 50)):
        _folder(root / split, {"cats": 3, "dogs": 3}, seed=seed)
    said = (
        f"{root} looks like a folder of splits, not of classes: training_set is a split's "
        f"name. It holds 2 folders itself (cats, dogs): if those are the classes, give "
        f"{root / 'training_set'} instead. Or name the splits train/ and test/ (and val/, for "
        "validation images of your own)."
    )
    assert check(root).problems == [said]
    with pytest.raises(DataError) as err:
        load_dataset(root)
    assert str(err.value) == said
    years = tmp_path / "years"  # photos filed by year in each class: classes, as they are
    for name, seed in (("cats", 0), ("dogs", 50)):
        _folder(years / name, {"2023": 3, "2024": 3}, seed=seed)
    assert check(years).ok
    assert check(years).counts == {"images": [6, 6]}


def test_folders_beside_train_that_are_not_read_are_named(tmp_path, check):
    root = tmp_path / "split"
    _folder(root / "train", {"cat": 3, "dog": 3})
    _folder(root / "val data", {"cat": 2, "dog": 2}, seed=50)
    report = check(root)
    assert report.counts == {"train": [3, 3]}
    assert report.warnings[1:] == [  # after "very few images"
        "Only train/, test/ and one validation folder (val, valid, validation) are read: the "
        "folder val data/ beside train/ is not. To score models on a folder of held-out "
        "images, name it test/ (the Evaluate page's test split)."
    ]
    _folder(root / "test", {"cat": 2, "dog": 2}, seed=60)
    _folder(root / "valid", {"cat": 2, "dog": 2}, seed=70)
    _folder(root / "validation", {"cat": 1, "dog": 1}, seed=80)  # valid/ is read, not both
    (root / "notes.txt").write_text("a file beside train/ is no loss")
    report = check(root)
    assert report.counts == {"train": [3, 3], "val": [2, 2], "test": [2, 2]}
    assert report.warnings[1:] == [
        "Only train/, test/ and one validation folder (val, valid, validation) are read: the "
        "folders val data/, validation/ beside train/ are not. To use their images, move them "
        "into train/, valid/ or test/."
    ]


def test_a_test_folder_of_unlabelled_pictures_is_named_and_not_read(tmp_path, check):
    root = tmp_path / "competition"  # as Kaggle's: labelled train/, unlabelled test/
    _folder(root / "train", {"cat": 12, "dog": 12})
    (root / "test").mkdir()
    for i in range(3):
        (root / "test" / f"{i}.png").write_bytes(png_bytes(90_000 + i))
    (root / "submissions").mkdir()  # no pictures, no class folders: nothing lost, no word
    (root / "submissions" / "sample.csv").write_text("id,label\n")
    report = check(root)
    assert report.ok and report.counts == {"train": [12, 12]}
    assert report.warnings == [
        "test/ beside train/ holds pictures without class folders: with no labels to score a "
        "model on, it is not read. The Classify page (or `python -m core.classify`) answers "
        "for such pictures."
    ]
    ds = load_dataset(root)
    assert set(ds.splits) == {"train", "val"} and ds.val_folder == ""


@pytest.mark.parametrize(
    "typed, path",
    [
        ("  /data/my photos ", "/data/my photos"),
        ('"/data/my photos"', "/data/my photos"),  # Windows' "Copy as path"
        ("'/data/my photos'", "/data/my photos"),
        ("file:///data/my%20photos", "/data/my photos"),  # a copied location
        ('"', '"'),
        ("'/data/it's'", "/data/it's"),
        ("/data/'quoted' name", "/data/'quoted' name"),
    ],
)
def test_a_pasted_path_loses_its_quotes_and_file_prefix(typed, path):
    assert userdata.typed_path(typed) == path


def test_folder_signature_changes_when_an_empty_folder_comes_or_goes(tmp_path):
    root = _folder(tmp_path / "sig", {"cat": 3, "dog": 3})
    first = folder_signature(root)
    (root / "bird").mkdir()  # a class without images: the check refuses the folder
    second = folder_signature(root)
    assert second != first
    (root / "bird").rmdir()  # mended: the kept refusal must not stand
    assert folder_signature(root) == first


def test_large_photos_are_checked_at_a_reduced_scale_and_damaged_ones_still_refused(
    tmp_path, check
):
    from tests.test_images import _photo

    root = _folder(tmp_path / "photos", {"cat": 2, "dog": 2})
    photo = _photo(2048, 1536)
    (root / "cat" / "big.jpg").write_bytes(photo)
    (root / "dog" / "cut.jpg").write_bytes(photo[: len(photo) // 2])
    report = check(root)
    assert report.counts == {"images": [3, 2]}
    assert [name for name, _ in report.unreadable] == ["dog/cut.jpg"]
    assert "truncated or damaged" in report.unreadable[0][1]


def test_a_check_reports_progress_and_its_report_is_kept_per_state_of_the_folder(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(data, "PROGRESS_EVERY", 5)  # the loader's decode reports
    root = _folder(tmp_path / "kept", {"cat": 6, "dog": 6})
    (root / "dog" / "broken.png").write_bytes(b"not an image")
    calls = []
    report = check_folder(root, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(5, 13), (10, 13), (13, 13)]
    first = folder_signature(root)
    assert userdata.saved_check(root, first) is None  # nothing kept yet
    userdata.save_check(report, first)
    assert userdata.saved_check(root, first) == report  # unreadable files included
    assert userdata.saved_check(tmp_path / "other", first) is None  # another folder's
    (root / "cat" / "new.png").write_bytes(png_bytes(5))
    second = folder_signature(root)
    assert userdata.saved_check(root, second) is None  # the folder changed: check again
    userdata.save_check(check_folder(root), second)
    cache = Path(os.environ["CNN_CACHE_DIR"])
    assert [p.name for p in cache.glob("check-*.json")] == [f"check-{second}.json"]
    (cache / f"check-{second}.json").write_text("{ half written")
    assert userdata.saved_check(root, second) is None  # unreadable: check again


def test_a_kept_check_of_a_deleted_folder_goes_when_another_is_kept(tmp_path):
    cache = Path(os.environ["CNN_CACHE_DIR"])
    gone = _folder(tmp_path / "gone", {"cat": 2, "dog": 2})
    userdata.save_check(check_folder(gone), folder_signature(gone))
    shutil.rmtree(gone)  # a deleted upload
    root = _folder(tmp_path / "here", {"cat": 2, "dog": 2})
    userdata.save_check(check_folder(root), folder_signature(root))
    assert [p.name for p in cache.glob("check-*.json")] == [f"check-{folder_signature(root)}.json"]


@pytest.mark.shared
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets is absent")
def test_checks_the_50000_image_cifar_folder(tmp_path):
    start = time.perf_counter()
    report = check_folder(SHARED)
    seconds = time.perf_counter() - start
    assert report.ok and report.counts == {"train": [5000] * 10}
    assert report.unreadable == []
    print(f"check_folder on {report.images:,} images: {seconds:.1f} s")
    start = time.perf_counter()  # as the dashboard checks it: decoded for the load too
    assert check_folder(SHARED, listing=folder_listing(SHARED, cache_dir=tmp_path)) == report
    seconds = time.perf_counter() - start
    print(f"the same check through the loader's decode, empty cache: {seconds:.1f} s")
