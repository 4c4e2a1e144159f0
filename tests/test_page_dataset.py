"""AppTest of the Dataset page on the 3-class `image_folder` (11 train + 1 val per class)."""

import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.data import decode_file, load_dataset
from tests.conftest import (
    ROOT,
    as_read,
    plotly_values,
    write_cifar_archive,
    write_framed_folder,
    write_image_folder,
)
from tests.test_userdata import class_entries, make_zip, png_bytes


@pytest.fixture
def page(data_app):
    # The page needs no model, so this skips `app`'s training run.
    return data_app.switch_page("pages/dataset.py")


def test_a_folders_own_validation_images_are_named_as_its_validation_split(page, image_folder):
    shutil.rmtree(image_folder)
    write_image_folder(image_folder / "train", per_class=5)
    write_image_folder(image_folder / "valid", per_class=2)
    write_image_folder(image_folder / "test", per_class=1)
    page.run()
    assert not page.exception
    assert {m.label: m.value for m in page.metric} == {
        "train images": "15",
        "val images": "6",
        "test images": "3",
        "Skipped files": "0",
    }
    assert (
        "Validation images: the folder's own valid/; the Evaluate page scores models on them."
    ) in [c.value for c in page.caption]
    assert page.selectbox(key="dataset_split").options == ["train", "val (valid/)", "test"]
    # valid/ is read: no folder beside train/ is left out (the few images are warned of).
    assert [w.value for w in page.warning if "beside train/" in w.value] == []


def test_a_validation_folder_without_a_class_is_read_and_its_gap_shown(page, image_folder):
    shutil.rmtree(image_folder)
    write_image_folder(image_folder / "train", per_class=5)
    write_image_folder(image_folder / "valid", per_class=2, classes=("cat", "frog"))
    page.run()
    assert not page.exception
    assert any(
        w.value.startswith("The validation images hold no picture of dog:") for w in page.warning
    )
    page.selectbox(key="dataset_split").set_value("val").run()
    headings = [m.value for m in page.markdown if " · " in m.value]
    assert headings[:3] == [
        "**cat** · 2 of 2",
        "**dog** · no val images of it in this folder",
        "**frog** · 2 of 2",
    ]
    # No black square for dog among the mean images: it has none to average.
    means = next(i for i in page.image if i.captions == ["cat", "frog"])
    assert len(means.captions) == 2
    assert (
        "The average of every val image of each class, pixel by pixel (there are none of dog)."
    ) in [c.value for c in page.caption]


def test_label_errors_are_looked_for_in_a_process_and_shown_likeliest_first(page, image_folder):
    from core import jobs, label_check
    from core.train import TrainConfig

    shutil.rmtree(image_folder)
    write_image_folder(image_folder, per_class=24, size=16)
    for path in sorted((image_folder / "cat").iterdir())[:2]:  # two cats filed as dogs
        path.rename(image_folder / "dog" / f"was-cat-{path.name}")
    page.run()
    assert not page.exception
    [start] = [b for b in page.button if b.label == "Look for label errors"]
    start.click().run()
    latest = jobs.latest_label_check()
    assert latest is not None and latest["state"] in jobs.ACTIVE
    assert any("Looking for label errors" in str(p.proto) for p in page.get("progress"))
    jobs.stop(latest["path"])
    assert jobs.wait_for_state(latest["path"], jobs.FINISHED, timeout=120)["state"] == "stopped"
    page.run()
    assert "The last search for label errors was stopped." in [c.value for c in page.caption]
    # A search run to its end (here, in this process) is shown under the page's data.
    folder = label_check.start_folder(TrainConfig(preset="quick", data=str(image_folder)))
    result = label_check.run_in_folder(folder)
    page.run()
    assert not page.exception
    said = label_check.describe(result)
    assert any(m.value == said for m in page.markdown)
    [shown] = [i for i in page.image if i.captions and "filed as" in i.captions[0]]
    planted = [c for c in shown.captions[:2] if c.endswith(".png") and "was-cat-" in c]
    assert len(planted) == 2 and all(c.startswith("filed as dog (") for c in planted)
    [download] = [b for b in page.get("download_button") if "suspect" in b.proto.label]
    assert download.proto.label == f"Download the {len(result['suspects'])} suspects (CSV)"
    # The first suspect, opened on Classify: the picture, its class as filed, its file.
    first = result["suspects"][0]
    assert page.selectbox(key="dataset_suspect").value == 0
    page.button(key="dataset_suspect_classify").click().run()
    probe = page.session_state["probe"]
    x, y = load_dataset(image_folder, val_fraction=0.1, seed=0).split(first["split"])
    np.testing.assert_array_equal(probe["pixels"], x[first["index"]])
    assert probe["label"] == int(y[first["index"]]) == 1  # dog, as it is filed
    assert probe["caption"].endswith(first["file"])
    assert not page.title or page.title[0].value != "Dataset"  # switched page


def _grid(at):
    """The sample grid: one `st.image` per class, each image captioned with its file's name
    (an image folder's; `#index` for a CIFAR-10 archive)."""
    return [img for img in at.image if img.captions and img.captions[0].endswith(".png")]


def _indices(at):
    """The samples shown, by their files' names (as shown: markdown's escapes dropped)."""
    return [c.replace("\\", "") for img in _grid(at) for c in img.captions]


def _chart(at, key):
    return json.loads(next(c for c in at.get("plotly_chart") if key in c.proto.id).proto.spec)


def test_shows_source_splits_and_a_balanced_grid(page, image_folder):
    page.run()
    assert not page.exception
    assert page.title[0].value == "Dataset"
    metrics = {m.label: m.value for m in page.metric}
    assert metrics == {"train images": "33", "val images": "3", "Skipped files": "0"}
    assert (
        "Validation images: 10% of each class's, held out with seed 0 as the Train form does "
        "by default; the Evaluate page scores models on them."
    ) in [c.value for c in page.caption]
    assert "cat, dog, frog" in page.markdown[0].value
    assert len(_grid(page)) == 3 and len(_indices(page)) == 3 * 8  # defaults: all, 8 each
    # Each under its file's name, the class's files in its row: where to find it.
    files = load_dataset(image_folder, val_fraction=0.1, seed=0).files["train"]
    for img, name in zip(_grid(page), ("cat", "dog", "frog"), strict=True):
        shown = {c.replace("\\", "") for c in img.captions}
        assert shown <= {Path(f).name for f in files if f.startswith(name + "/")}

    assert "dataset_fit" not in [box.key for box in page.selectbox]  # all square: no choice
    page.multiselect(key="dataset_classes").set_value(["cat", "frog"])
    page.slider(key="dataset_per_class").set_value(4).run()
    grid = _grid(page)
    assert [len(img.captions) for img in grid] == [4, 4]
    headers = [m.value for m in page.markdown if " of " in m.value]
    assert headers == ["**cat** · 4 of 11", "**frog** · 4 of 11"]

    page.slider(key="dataset_per_class").set_value(20).run()  # more than a class has
    assert len(_indices(page)) == 2 * 11

    page.selectbox(key="dataset_split").set_value("val").run()
    assert len(_indices(page)) == 2 * 1


def test_reshuffle_bumps_the_seed_and_draws_other_images(page):
    page.run()
    page.slider(key="dataset_per_class").set_value(3).run()
    first = _indices(page)
    page.button(key="dataset_reshuffle").click().run()
    assert page.number_input(key="dataset_seed").value == 1
    assert _indices(page) != first and len(_indices(page)) == 9
    page.number_input(key="dataset_seed").set_value(0).run()
    assert _indices(page) == first


def test_statistics_show_counts_histograms_and_mean_images(page):
    page.run()
    counts = _chart(page, "dataset_counts_chart")
    bars = {t["name"]: plotly_values(t["y"]) for t in counts["data"]}
    assert bars == {"train": [11, 11, 11], "val": [1, 1, 1]}
    assert plotly_values(counts["data"][0]["x"]) == ["cat", "dog", "frog"]
    assert counts["layout"]["barmode"] == "group"

    hist = _chart(page, "dataset_hist_chart")
    assert [t["name"] for t in hist["data"]] == ["R", "G", "B"]
    assert all(sum(plotly_values(t["y"])) == 33 * 32 * 32 for t in hist["data"])

    means = [img for img in page.image if img.captions == ["cat", "dog", "frog"]]
    assert len(means) == 1
    assert "The classes are about the same size (the largest 1.00x the smallest)." in [
        c.value for c in page.caption
    ]


def test_a_folder_of_many_classes_shows_samples_of_the_first_ten_to_start(tmp_path, monkeypatch):
    names = tuple(f"class {i:02d}" for i in range(25))
    write_image_folder(tmp_path / "images", per_class=2, classes=names, size=32)
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "images"))
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.switch_page("pages/dataset.py").run()
    assert not page.exception
    assert page.multiselect(key="dataset_classes").value == list(names[:10])
    listed = ", ".join(names[:12])  # 25 names in a paragraph before
    assert f"**Classes:** {listed}, … 13 more" in [m.value for m in page.markdown]
    headings = [m.value for m in page.markdown if m.value.startswith("**class ")]
    assert len(headings) == 10  # 25 rows of pictures before
    assert "10 of the 25 classes: choose others above." in [c.value for c in page.caption]
    page.multiselect(key="dataset_classes").set_value(list(names)).run()
    assert len([m for m in page.markdown if m.value.startswith("**class ")]) == 25


def test_uneven_classes_are_pointed_out_with_what_helps(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "images", per_class=4, classes=("cat", "dog"))
    write_image_folder(tmp_path / "more", per_class=24, classes=("cat", "dog"))
    for path in (tmp_path / "more" / "cat").iterdir():  # 28 cats, 4 dogs
        path.rename(tmp_path / "images" / "cat" / f"more-{path.name}")
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "images"))
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.switch_page("pages/dataset.py").run()
    assert not page.exception
    counts = _chart(page, "dataset_counts_chart")
    train = {t["name"]: plotly_values(t["y"]) for t in counts["data"]}["train"]
    assert train[0] > 5 * train[1]
    caption = [c.value for c in page.caption if c.value.startswith("The largest class has")]
    assert caption == [
        f"The largest class has {train[0] / train[1]:.1f}x the training images of the "
        f"smallest (cat: {train[0]}; dog: {train[1]}). A model learns to favour the common "
        'classes: the Train page\'s "Balance the classes" weighs every class the same, and '
        "the Evaluate page's balanced accuracy counts every class the same."
    ]


@pytest.mark.parametrize("button", ["dataset_open_filters", "dataset_open_classify"])
def test_open_on_another_page_sends_the_chosen_sample(page, image_folder, button):

    page.run()
    sample = page.selectbox(key="dataset_probe")
    assert len(sample.options) == 3 * 8
    shown = sample.options[9]  # the second class's second image
    assert re.fullmatch(r"train #\d+ \(dog\) · dog/\w+\.png", shown)  # index, class, file
    i = int(shown.split("#")[1].split()[0])
    sample.set_value(i)
    page.button(key=button).click().run()

    probe = page.session_state["probe"]
    x, y = load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")
    assert probe["label"] == 1 == int(y[i])
    files = load_dataset(image_folder, val_fraction=0.1, seed=0).files["train"]
    assert probe["caption"] == f"train #{i} (dog) · {files[i]}"
    np.testing.assert_array_equal(probe["pixels"], x[i])
    assert not page.title or page.title[0].value != "Dataset"  # switched page


def test_pictures_that_are_not_square_are_shown_squashed_or_cropped(tmp_path, monkeypatch):
    from core import datastats

    folder = tmp_path / "framed"
    write_framed_folder(folder, per_class=5)  # 2:1, red ends that only a crop cuts off
    at = _app(monkeypatch, tmp_path, folder)
    shown = []  # the grid's pictures (then the mean images), before they are enlarged
    enlarge = datastats.enlarge
    monkeypatch.setattr(
        datastats, "enlarge", lambda image, factor: shown.append(image) or enlarge(image, factor)
    )
    at.run()
    assert not at.exception
    box = at.selectbox(key="dataset_fit")
    assert box.value == "squash" and box.options == [
        "Squashed whole (Keras's default)",
        "Cropped to their centre square",
    ]
    assert box.help.startswith("100% of this dataset's training pictures are not square.")
    count = len(_indices(at))
    assert count == int(at.metric[0].value) > 8  # every training picture (5 a class at most)

    def reds(images) -> list[bool]:
        return [bool(((img[..., 0] > 200) & (img[..., 1] < 60)).any()) for img in images]

    assert reds(shown[:count]) == [True] * count
    shown.clear()
    box.set_value("crop").run()
    assert not at.exception and len(_indices(at)) == count
    assert reds(shown[:count]) == [False] * count

    label = at.selectbox(key="dataset_probe").options[0]
    at.button(key="dataset_open_classify").click().run()  # the first sample, cropped
    probe = at.session_state["probe"]
    assert probe["caption"] == label
    cropped, *_ = decode_file(folder / label.split(" · ")[1], 32, "crop")
    np.testing.assert_array_equal(probe["pixels"], cropped)
    assert reds([cropped]) == [False]


def _check_label(at) -> str:
    return next(e.label for e in at.expander if e.label.startswith("Folder check: "))


def _app(monkeypatch, tmp_path, data=None):
    monkeypatch.setenv("CNN_UPLOADS_DIR", str(tmp_path / "uploads"))
    if data is not None:
        monkeypatch.setenv("CNN_DATA", str(data))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).switch_page(
        "pages/dataset.py"
    )


def test_folder_check_lists_unreadable_files_and_warns_of_duplicates(
    image_folder, monkeypatch, tmp_path
):
    (image_folder / "cat" / "broken.png").write_bytes(b"not an image at all")
    (image_folder / "dog" / "copy.png").write_bytes((image_folder / "cat" / "000.png").read_bytes())
    at = _app(monkeypatch, tmp_path, image_folder)
    at.run()
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [
        "1 duplicate image is filed under more than one class: the same picture with "
        "two labels confuses training."
    ]
    assert _check_label(at) == (
        "Folder check: 3 classes, 37 images, 1 unreadable, 1 duplicates (1 across classes)"
    )
    classes = at.dataframe[0].value
    assert classes["class"].tolist() == ["cat", "dog", "frog"]
    assert classes["images"].tolist() == [12, 13, 12]
    rows = at.dataframe[1].value
    assert rows["file"].tolist() == ["cat/broken.png"]
    assert "not an image" in rows["reason"].iloc[0]
    assert {m.label: m.value for m in at.metric}["Skipped files"] == "1"


def test_a_single_class_folder_holding_only_folders_stops_with_a_sentence(tmp_path, monkeypatch):
    (tmp_path / "images" / "photos" / "2024").mkdir(parents=True)  # no file to read at all
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "images"))
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.switch_page("pages/dataset.py").run()
    assert not page.exception  # ZeroDivisionError: the check's bar at "0 of 0" files
    assert [as_read(e.value) for e in page.error] == [
        f"{tmp_path / 'images'} has a single class folder (photos); a classifier needs at "
        "least two classes.",
        "No readable image in the class folder photos: every folder is a class, so put "
        "readable pictures in it or move it out.",
    ]


def test_a_folder_that_cannot_be_used_stops_with_its_problems(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "pets", per_class=12, classes=("cat", "dog"))
    for png in (tmp_path / "pets" / "dog").iterdir():
        png.write_bytes(b"\x89PNG\r\n\x1a\n but nothing else")
    at = _app(monkeypatch, tmp_path, tmp_path / "pets")
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "No readable image in the class folder dog: every folder is a class, so put readable "
        "pictures in it or move it out."
    ]
    assert _check_label(at).startswith("Folder check: 2 classes, 12 images, 12 unreadable")
    assert not at.metric  # the page stopped before loading the dataset


def test_a_folder_mended_after_its_check_is_checked_again_at_a_click(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "pets", per_class=12, classes=("cat", "dog"))
    (tmp_path / "pets" / "bird").mkdir()  # a class folder not filled yet
    at = _app(monkeypatch, tmp_path, tmp_path / "pets")
    at.run()
    assert [as_read(e.value) for e in at.error] == [
        "No readable image in the class folder bird: every folder is a class, so put readable "
        "pictures in it or move it out."
    ]
    assert not at.metric
    (tmp_path / "pets" / "bird").rmdir()
    at.run()  # within the 30 s the pages take to notice by themselves
    assert at.error and not at.metric
    at.button(key="dataset_check_again").click().run()
    assert not at.exception and not at.error
    assert _check_label(at).startswith("Folder check: 2 classes, 24 images")
    assert {m.label: m.value for m in at.metric}["train images"] == "22"


def test_pictures_named_after_their_classes_are_sorted_into_class_folders_at_a_click(
    tmp_path, monkeypatch
):
    """Kaggle's Dogs vs. Cats: cat.0.jpg ... dog.11.jpg in one train/, no class folders."""
    write_image_folder(tmp_path / "pets" / "flat", per_class=12, classes=("cat", "dog"))
    (tmp_path / "pets" / "train").mkdir()
    for png in sorted((tmp_path / "pets" / "flat").rglob("*.png")):
        png.rename(tmp_path / "pets" / "train" / f"{png.parent.name}.{png.stem}.png")
    shutil.rmtree(tmp_path / "pets" / "flat")
    at = _app(monkeypatch, tmp_path, tmp_path / "pets")
    at.run()
    assert not at.exception and not at.metric
    [error] = [as_read(e.value) for e in at.error]
    assert error.startswith(f"{tmp_path / 'pets' / 'train'} has no class folders.")
    assert error.endswith(
        "Its 24 pictures are named after 2 classes (cat, dog: cat.000.png, dog.012.png): "
        f"`python -m core.sort_classes {tmp_path / 'pets' / 'train'}` (or the Dataset page's "
        '"Sort them into class folders") puts them in a folder per class in '
        f"{tmp_path / 'pets' / 'train-by-class'}, the folder to give then."
    )
    at.button(key="dataset_sort_into_classes").click().run()
    assert not at.exception and not at.error
    assert at.text_input(key="sidebar_path").value == str(tmp_path / "pets" / "train-by-class")
    assert _check_label(at).startswith("Folder check: 2 classes, 24 images")
    assert sorted(os.listdir(tmp_path / "pets" / "train-by-class" / "dog"))[0] == "dog.012.png"
    assert len(os.listdir(tmp_path / "pets" / "train")) == 24  # the user's folder as it was


def test_a_path_pasted_with_quotes_opens_its_folder(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "my pets", per_class=12, classes=("cat", "dog"))
    at = _app(monkeypatch, tmp_path, tmp_path / "elsewhere")
    at.run()
    at.text_input(key="sidebar_path").set_value(f'"{tmp_path / "my pets"}"').run()
    assert not at.exception and not at.error
    assert _check_label(at).startswith("Folder check: 2 classes, 24 images")


def test_an_uploaded_zip_becomes_the_dataset_of_every_page(image_folder, tmp_path, monkeypatch):
    at = _app(monkeypatch, tmp_path, image_folder)
    at.run()
    assert at.session_state["sidebar_source"] == "folder"
    assert at.expander[0].label == "Use your own images (.zip)"

    entries = class_entries(prefix="garden/", per_class=12, classes=("rose", "tulip"))
    raw = make_zip(entries | {"garden/tulip/bad.png": b"oops"})
    at.file_uploader(key="dataset_zip").set_value(("my garden.zip", raw, "application/zip"))
    at.run()
    assert not at.exception and not at.error
    assert at.session_state["sidebar_source"] == "upload"
    folder = Path(at.session_state["sidebar_upload"]["path"])
    assert folder.parent == tmp_path / "uploads" and folder.name.startswith("my-garden-")
    assert at.sidebar.caption[0].value == "Using my garden.zip"
    assert "**Classes:** rose, tulip" in [m.value for m in at.markdown]
    assert _check_label(at) == "Folder check: 2 classes, 24 images, 1 unreadable, 0 duplicates"
    assert at.dataframe[1].value["file"].tolist() == ["tulip/bad.png"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"train images": "22", "val images": "2", "Skipped files": "1"}
    assert at.multiselect(key="dataset_classes").value == ["rose", "tulip"]  # not cat, dog

    at.switch_page("pages/augment.py").run()  # the choice persists across pages
    assert not at.exception
    shown = [m.value for m in at.markdown if m.value.startswith("**train #")]
    assert [s.split(" · ")[0].rsplit("(", 1)[1] for s in shown] == ["rose)", "tulip)", "rose)"]


def test_a_refused_zip_explains_why_and_changes_nothing(tmp_path, monkeypatch):
    at = _app(monkeypatch, tmp_path, data="")
    at.run()
    assert at.session_state["sidebar_source"] == "cifar10"
    at.selectbox(key="sidebar_source").set_value("upload").run()
    assert at.info[0].value.startswith("No images uploaded yet")
    assert at.sidebar.caption[0].value == "Nothing uploaded yet."
    raw = make_zip(class_entries() | {"../evil.png": png_bytes(1)})
    at.file_uploader(key="dataset_zip").set_value(("evil.zip", raw, "application/zip")).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The zip entry '../evil.png' points outside the archive's folder with '..', so the "
        "zip was refused."
    ]
    assert "sidebar_upload" not in at.session_state
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())
    at.run()  # a rerun keeps the explanation while the file stays in the uploader
    assert len(at.error) == 1


def test_only_the_zip_uploader_takes_more_than_the_photo_limit(data_app):
    import tomllib

    from core import userdata
    from core.images import MAX_UPLOAD_BYTES

    # Streamlit's server enforces only the global limit, so it must be the zip's.
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == userdata.MAX_ZIP_MB == 200
    data_app.session_state["sidebar_source"] = "upload"
    data_app.switch_page("pages/dataset.py").run()
    assert data_app.file_uploader(key="dataset_zip").proto.max_upload_size_mb == 200
    data_app.switch_page("pages/augment.py").run()
    data_app.radio(key="augment_source").set_value("upload").run()
    photo = data_app.file_uploader(key="augment_upload").proto.max_upload_size_mb
    assert photo * 1024 * 1024 == MAX_UPLOAD_BYTES


def _counting_decodes(monkeypatch) -> list[int]:
    """Counts every image decode, the folder check's and the dataset loader's alike (both
    decode through `core.images.decode_described`, in this process for a small folder)."""
    from core import images

    decodes, real = [], images.decode_described

    def counting(*args, **kwargs):
        decodes.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "decode_described", counting)
    return decodes


def test_a_first_visit_reads_each_image_once_under_a_progress_bar(page, image_folder, monkeypatch):
    from core import data, userdata

    reports, check = [], userdata.check_folder

    def recording(root, progress=None, listing=None):
        def report(done, total):
            reports.append((done, total))
            progress(done, total)

        return check(root, report, listing)

    monkeypatch.setattr(userdata, "check_folder", recording)
    decodes = _counting_decodes(monkeypatch)
    assert not data.folder_listing(image_folder).cached()
    page.run()
    assert not page.exception
    assert len(decodes) == 36  # checked and decoded in one pass: 72 when each read the files
    assert reports[-1] == (36, 36)  # with the page's bar showing it
    assert data.folder_listing(image_folder).cached()
    assert not page.get("progress")  # the bar is gone once the images are in
    assert _check_label(page) == "Folder check: 3 classes, 36 images, 0 unreadable, 0 duplicates"
    assert {m.label: m.value for m in page.metric}["train images"] == "33"


def test_a_checked_folder_not_decoded_yet_is_read_under_a_progress_bar(
    page, image_folder, monkeypatch
):
    from core import data, userdata

    path = str(image_folder.resolve())  # kept, as the dashboard keeps it, for the resolved path
    userdata.save_check(userdata.check_folder(path), userdata.folder_signature(path))
    reports, load = [], data.load_image_folder

    def recording(root, image_size=32, cache_dir=None, progress=None, listing=None, fit="squash"):
        def report(done, total):
            reports.append((done, total))
            progress(done, total)

        return load(root, image_size, cache_dir, report if progress else None, listing, fit)

    monkeypatch.setattr(data, "load_image_folder", recording)
    assert not data.folder_listing(image_folder).cached()
    page.run()
    assert not page.exception
    assert reports[-1] == (36, 36)  # every image read, with the page's bar showing it
    assert data.folder_listing(image_folder).cached()
    assert not page.get("progress")
    assert {m.label: m.value for m in page.metric}["train images"] == "33"


def test_a_first_visit_lists_the_folder_once(page, image_folder, monkeypatch):
    # Whether to decode under a progress bar, the decode and the load share one listing
    # (a listing of CIFAR-10's 50,000 files stats every one: about 0.5 s).
    from core import data

    listed, real = [], data._list_classes

    def counting(folder):
        listed.append(folder)
        return real(folder)

    monkeypatch.setattr(data, "_list_classes", counting)
    page.run()
    assert not page.exception
    assert {m.label: m.value for m in page.metric}["train images"] == "33"
    assert listed == [image_folder.resolve()]
    with pytest.raises(ValueError, match="the listing given is of"):
        data.load_image_folder(image_folder, 64, listing=data.folder_listing(image_folder, 32))


def test_the_folder_check_is_kept_for_the_next_server(image_folder, monkeypatch, tmp_path):
    from core import userdata

    checks, check = [], userdata.check_folder

    def counting(root, progress=None, listing=None):  # the real check, its calls and reports kept
        checks.append([])
        return check(root, lambda done, total: checks[-1].append((done, total)), listing)

    monkeypatch.setattr(userdata, "check_folder", counting)
    first = _app(monkeypatch, tmp_path, image_folder)
    first.run()
    assert not first.exception
    assert checks == [[(36, 36)]]  # read once, under the progress bar
    assert not first.get("progress")
    label = _check_label(first)
    st.cache_data.clear()  # a restarted server remembers nothing in memory
    again = _app(monkeypatch, tmp_path, image_folder)
    again.run()
    assert not again.exception
    assert checks == [[(36, 36)]]  # the kept report, no second reading
    assert _check_label(again) == label


def test_the_folder_check_is_kept_whatever_the_spelling_of_the_path(
    image_folder, monkeypatch, tmp_path
):
    from core import userdata

    checks, check = [], userdata.check_folder

    def counting(root, progress=None, listing=None):  # the real check, its calls counted
        checks.append(root)
        return check(root, progress, listing)

    monkeypatch.setattr(userdata, "check_folder", counting)
    (tmp_path / "link").symlink_to(image_folder)
    for spelling in (tmp_path / "link", image_folder):
        st.cache_data.clear()
        at = _app(monkeypatch, tmp_path, spelling)
        at.run()
        assert not at.exception
    assert checks == [str(image_folder.resolve())]


def _two_class_folder(root, pictures) -> None:
    """`root/a/000.png`, `root/b/001.png`, ...: the pictures filed under a and b in turn."""
    from PIL import Image

    for i, image in enumerate(pictures):
        folder = root / "ab"[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:03d}.png")


def test_near_duplicates_are_found_on_a_click_and_shown_with_their_labels(tmp_path, monkeypatch):
    from PIL import Image

    from tests.conftest import smooth_images
    from tests.test_near_duplicates import jpeg

    pictures = smooth_images(24, seed=4)
    _two_class_folder(tmp_path / "images", pictures)
    Image.fromarray(jpeg(pictures[0])).save(tmp_path / "images" / "b" / "copy.png")  # of an a
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "images"))
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.switch_page("pages/dataset.py").run()
    assert not page.exception and "Pairs" not in [m.label for m in page.metric]
    page.button(key="dataset_near_run").click().run()
    assert not page.exception
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Pairs"] == "1" and metrics["Under two classes"] == "1"
    page.radio(key="dataset_near_show").set_value("under two classes").run()
    [pair] = [img for img in page.image if img.captions and " · " in img.captions[0]]
    ends = pair.captions[0].split(" · ")[:2]  # "a/000.png (train)", "b/copy.png (val)"
    assert sorted(end.split()[0] for end in ends) == ["a/000.png", "b/copy.png"]
    assert [b.label for b in page.get("download_button")] == [
        "Download the files to delete (CSV)",
        "Download the pairs (CSV)",
    ]
    assert page.get("download_button")[0].proto.disabled  # a cat and a dog: none to delete
    page.radio(key="dataset_near_show").set_value("across splits").run()
    shown = [img for img in page.image if img.captions and " · " in img.captions[0]]
    across = int(ends[0].split()[1] != ends[1].split()[1])
    assert len(shown) == across and metrics["val images with one in train"] == str(across)
    assert any(
        c.value.endswith("The pairs join into 1 picture saved more than once: 1 twice.")
        for c in page.caption
    )
    page.radio(key="dataset_near_show").set_value("pictures saved three times or more").run()
    assert [i.value for i in page.info] == ["No picture is here three times or more."]


def test_a_picture_saved_three_times_is_drawn_as_one_group(tmp_path, monkeypatch):
    from PIL import Image

    from core import near_duplicates as nd
    from tests.conftest import smooth_images
    from tests.test_near_duplicates import jpeg

    pictures = smooth_images(24, seed=4)
    _two_class_folder(tmp_path / "images", pictures)
    for name in ("copy1", "copy2"):  # picture 0 (an a) twice more, once filed as b
        Image.fromarray(jpeg(pictures[0], 90)).save(
            tmp_path / "images" / "ab"[name == "copy2"] / f"{name}.png"
        )
    Image.fromarray(jpeg(pictures[5])).save(tmp_path / "images" / "b" / "copy3.png")  # a pair
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "images"))
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.switch_page("pages/dataset.py").run()
    page.button(key="dataset_near_run").click().run()
    ds = load_dataset(tmp_path / "images", val_fraction=0.1, seed=0)
    groups = nd.groups(nd.pairs(nd.near_duplicates(ds)), ds)
    assert [len(g) for g in groups] == [3, 2]
    assert any(
        c.value.endswith(
            "The pairs join into 2 pictures saved more than once: 1 twice, 1 three times or "
            "more (up to 3)."
        )
        for c in page.caption
    )
    page.radio(key="dataset_near_show").set_value("pictures saved three times or more").run()
    assert not page.exception
    [drawn] = [i for i in page.image if i.captions and i.captions[0].startswith("3 images")]
    splits = ", ".join(f"{n} {s}" for s, n in Counter(s for s, _ in groups[0]).most_common())
    assert drawn.captions[0] == f"3 images ({splits}): 2 a, 1 b"
    assert [b.label for b in page.get("download_button")] == [
        "Download the files to delete (CSV)",
        "Download the pairs (CSV)",
    ]
    rows, mixed = nd.redundant_files(groups, ds)
    assert [row[0] for row in rows] == ["b/copy3.png"] and mixed == 1  # 005.png is kept
    assert f"To clean the folder: {nd.redundant_summary(rows, mixed)}" in [
        c.value for c in page.caption
    ]
    assert not page.get("download_button")[0].proto.disabled


def test_the_near_duplicates_threshold_counts_as_core_does(tmp_path, monkeypatch):

    from core import near_duplicates as nd
    from tests.conftest import smooth_images

    images = list(smooth_images(20, seed=8))
    noise = np.random.default_rng(0)
    for base in images[:4]:  # copies with noise: alike at about 0.99 (sd 5) and 0.9 (sd 20)
        for sd in (5, 20):
            images.append(np.clip(base + noise.normal(0, sd, base.shape), 0, 255).astype(np.uint8))
    _two_class_folder(tmp_path / "images", images)
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "images"))
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.switch_page("pages/dataset.py").run()
    page.button(key="dataset_near_run").click().run()
    found = nd.near_duplicates(load_dataset(tmp_path / "images", val_fraction=0.1, seed=0))
    counts = []
    for threshold in (0.99, 0.8):
        page.slider(key="dataset_near_threshold").set_value(threshold).run()
        assert not page.exception
        metrics = {m.label: m.value for m in page.metric}
        counts.append(int(metrics["Pairs"]))
        assert counts[-1] == len(nd.pairs(found, threshold))
    assert counts[0] < counts[1]


def test_names_that_are_not_utf8_are_loaded_checked_and_shown(image_folder, monkeypatch):
    """Photos and a class folder named on an older system (Latin-1 bytes): the folder
    loads, its check lists the broken file, and the page shows the names with U+FFFD
    (Streamlit sends text as UTF-8: the names as listed stopped the page)."""
    import os

    from streamlit.testing.v1 import AppTest

    from core import data

    def odd(folder, name: bytes) -> Path:
        return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))

    os.rename(image_folder / "cat" / "000.png", odd(image_folder / "cat", b"caf\xe9.png"))
    odd(image_folder / "dog", b"bro\xefken.png").write_bytes(b"x")
    os.rename(image_folder / "frog", odd(image_folder, b"fr\xf6g"))
    monkeypatch.setenv("CNN_DATA", str(image_folder))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/dataset.py").run()
    assert not at.exception
    assert _check_label(at) == "Folder check: 3 classes, 36 images, 1 unreadable, 0 duplicates"
    unreadable = next(df.value for df in at.dataframe if "file" in df.value.columns)
    assert unreadable["file"].tolist() == ["dog/bro\ufffdken.png"]
    shown = " ".join(str(m.value) for m in at.markdown)
    assert "**Classes:** cat, dog, fr\ufffdg" in shown
    ds = data.load_dataset(image_folder, val_fraction=0.1)  # as the page loaded it
    names = [*ds.files["train"], *ds.files["val"]]
    assert "cat/caf\ufffd.png" in names and len(names) == 36
    assert ds.class_names == ["cat", "dog", "fr\ufffdg"]


def _thirty_seconds_later() -> None:
    """The folder's signature is looked at every 30 s at most: as if they had gone by."""
    from ui import state

    state._signature.clear()


def test_images_added_to_the_folder_are_seen_at_the_next_look(page, image_folder):
    page.run()
    assert {m.label: m.value for m in page.metric}["train images"] == "33"
    write_image_folder(image_folder / "more", per_class=4, size=40)
    for path in (image_folder / "more" / "frog").iterdir():
        path.rename(image_folder / "frog" / f"more-{path.name}")
    shutil.rmtree(image_folder / "more")
    page.run()  # within the 30 s: as it was
    assert {m.label: m.value for m in page.metric}["train images"] == "33"
    _thirty_seconds_later()
    page.run()
    assert not page.exception
    assert _check_label(page) == "Folder check: 3 classes, 40 images, 0 unreadable, 0 duplicates"
    metrics = {m.label: m.value for m in page.metric}  # 36 before: the first load kept
    assert (int(metrics["train images"]), int(metrics["val images"])) == (36, 4)
    counts = _chart(page, "dataset_counts_chart")
    assert {t["name"]: plotly_values(t["y"]) for t in counts["data"]}["train"] == [11, 11, 14]
    assert _files_tab(page) == ["All 40 files are 40 x 40 pixels, shown and trained on at 32 x 32."]


def _files_tab(page) -> list[str]:
    """The Image files tab's bullet list, one sentence a line, as read."""
    tab = next(t for t in page.tabs if t.label == "Image files")
    return [line.removeprefix("- ") for line in as_read(tab.markdown[0].value).splitlines()]


def test_the_image_files_tab_says_how_the_files_stored_their_pictures(page, image_folder):
    from PIL import Image

    page.run()
    tab = next(t for t in page.tabs if t.label == "Image files")
    assert _files_tab(page) == ["All 36 files are 40 x 40 pixels, shown and trained on at 32 x 32."]
    assert not tab.dataframe and not tab.get("plotly_chart")  # nothing varies: no chart, no table
    frog = sorted((image_folder / "frog").iterdir())[0]
    Image.open(frog).resize((80, 80)).save(frog)
    _thirty_seconds_later()
    page.run()
    assert _files_tab(page)[0] == (
        "The 36 files are 40-80 pixels wide and 40-80 high (the median 40 x 40), shown and "
        "trained on at 32 x 32."
    )
    sizes = _chart(page, "dataset_sizes_chart")["data"][0]
    assert plotly_values(sizes["x"]) == [40, 80] and plotly_values(sizes["y"]) == [40, 80]
    assert plotly_values(sizes["customdata"]) == [35, 1]
    table = next(t for t in page.tabs if t.label == "Image files").dataframe[0].value
    assert table["class"].tolist() == ["cat", "dog", "frog"]
    assert table["files"].tolist() == [12, 12, 12] and set(table["median size"]) == {"40 x 40"}
    assert not page.warning


def test_a_class_whose_files_differ_is_named_as_a_shortcut(tmp_path, monkeypatch):
    from PIL import Image

    write_image_folder(tmp_path / "images", per_class=6, size=40)
    for path in (tmp_path / "images" / "cat").iterdir():  # every cat a grey 96 x 64
        Image.open(path).convert("L").resize((96, 64)).save(path)
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "images"))
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.switch_page("pages/dataset.py").run()
    assert not page.exception
    assert _files_tab(page)[:3] == [
        "The 18 files are 40-96 pixels wide and 40-64 high (the median 40 x 40), shown and "
        "trained on at 32 x 32.",
        "6 (33%) are not square: each is squashed to the square, not cropped, so what they "
        "show looks narrower or flatter (a run can crop them to their centre square instead: "
        "the Train page's 'Pictures that are not square', or `--fit crop`).",
        "6 (33%) are greyscale: their grey fills all three colours.",
    ]
    assert [as_read(w.value) for w in page.warning][1:] == [  # after the folder check's
        "100% of the files of cat are not square, 0% of the other classes': a model can tell "
        "cat by that rather than by what the pictures show.",
        "100% of the files of cat are greyscale, 0% of the other classes': a model can tell "
        "cat by that rather than by what the pictures show.",
    ]


def test_grey_pictures_saved_as_colour_files_count_as_greyscale(tmp_path, monkeypatch):
    from PIL import Image

    write_image_folder(tmp_path / "images", per_class=6, size=40)
    for path in (tmp_path / "images" / "frog").iterdir():  # black-and-white, saved as RGB
        Image.open(path).convert("L").convert("RGB").save(path)
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "images"))
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.switch_page("pages/dataset.py").run()
    assert "6 (33%) are greyscale: their grey fills all three colours." in _files_tab(page)
    assert (
        "100% of the files of frog are greyscale, 0% of the other classes': a model can tell "
        "frog by that rather than by what the pictures show."
    ) in [as_read(w.value) for w in page.warning]
    tab = next(t for t in page.tabs if t.label == "Image files")
    assert not tab.get("plotly_chart")  # one size: one dot, said in the sentence
    assert tab.dataframe[0].value["greyscale"].tolist() == [0, 0, 100]


def test_a_cifar_archive_has_no_image_files_tab(tmp_path, monkeypatch):
    write_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=4)
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "cifar-10-python.tar.gz"))
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    page.switch_page("pages/dataset.py").run()
    assert not page.exception
    assert [t.label for t in page.tabs] == ["Class distribution", "Pixel histograms", "Mean images"]


def test_a_failed_cifar_download_is_a_sentence_and_can_be_tried_again(tmp_path, monkeypatch):
    from core import data
    from tests.test_data import _closed_port

    url = f"http://127.0.0.1:{_closed_port()}/{data.CIFAR10_ARCHIVE}"
    monkeypatch.setattr(data, "CIFAR10_URL", url)
    at = _app(monkeypatch, tmp_path, data="")
    at.run()
    assert at.warning[0].value.startswith("CIFAR-10 is not on this machine yet")
    at.button(key="sidebar_download").click().run()
    assert not at.exception
    assert [as_read(e.value) for e in at.error] == [
        f"CIFAR-10 could not be downloaded from {url}: the connection was refused. Without "
        "internet, point the dataset at a local cifar-10-python.tar.gz or an image folder."
    ]
    # No transfer left standing at some per cent; the button is there to try again.
    assert not at.get("progress")
    assert at.button(key="sidebar_download")


def test_a_folder_too_small_for_a_validation_image_says_so(page, image_folder):
    shutil.rmtree(image_folder)
    write_image_folder(image_folder, per_class=5)
    page.run()
    assert not page.exception
    assert {m.label: m.value for m in page.metric} == {"train images": "15", "Skipped files": "0"}
    assert (
        "No validation images: 10% of a class holds out none below 6 images, and no class "
        "here has that many."
    ) in [c.value for c in page.caption]
