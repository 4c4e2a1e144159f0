"""AppTest of the Augmentations page: dataset, probe and uploaded images."""

import io
import re

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.augment import AugmentConfig
from tests.conftest import ROOT


@pytest.fixture
def page(data_app):
    # The page needs no model, so this skips `app`'s training run.
    return data_app.switch_page("pages/augment.py")


@pytest.fixture
def no_dataset(monkeypatch):
    monkeypatch.delenv("CNN_DATA", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["sidebar_source"] = "folder"  # with no path: no dataset at all
    return at.switch_page("pages/augment.py")


def _rows(at):
    """One `st.image` per shown image: its original then its variants."""
    return [img for img in at.image if img.captions and img.captions[0] == "original"]


def _urls(at):
    # Media URLs are hashes of the PNG bytes: equal URLs mean equal pixels.
    return [img.value for img in _rows(at)]


def _png(size=(20, 12)):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_shows_each_image_beside_its_variants(page):
    page.run()
    assert not page.exception
    assert page.title[0].value == "Augmentations"
    assert "core.augment.augment_images" in page.caption[0].value
    rows = _rows(page)
    assert len(rows) == 3  # default: three images, one class after the other
    assert all(len(r.captions) == 1 + 6 for r in rows)
    shown = [m.value for m in page.markdown if m.value.startswith("**train #")]
    # "train #i (class) · class/file.png": the class, and its file in the folder
    said = [re.fullmatch(r"\*\*train #\d+ \((\w+)\) · (\w+)/\d+\.png\*\*", s) for s in shown]
    assert [m.groups() for m in said] == [("cat", "cat"), ("dog", "dog"), ("frog", "frog")]

    page.slider(key="augment_variants").set_value(2)
    page.slider(key="augment_count").set_value(5).run()
    assert [len(r.captions) for r in _rows(page)] == [3] * 5


def test_same_seed_same_variants(page):
    page.run()
    page.slider(key="augment_rotation").set_value(30)
    page.number_input(key="augment_seed").set_value(5).run()
    first = _urls(page)
    assert all(len(set(row[1:])) > 1 for row in first)  # variants differ from each other

    page.number_input(key="augment_seed").set_value(6).run()
    other = _urls(page)
    assert [r[0] for r in other] == [r[0] for r in first]  # originals unchanged
    assert [r[1:] for r in other] != [r[1:] for r in first]

    page.slider(key="augment_cutout").set_value(8).run()
    page.number_input(key="augment_seed").set_value(5).run()
    assert _urls(page) != first  # another setting, other variants
    page.slider(key="augment_cutout").set_value(0).run()
    assert _urls(page) == first


def test_all_off_shows_unchanged_copies(page):
    page.run()
    page.checkbox(key="augment_flip").uncheck()
    page.slider(key="augment_crop_pad").set_value(0).run()
    assert "unchanged" in page.info[0].value
    assert all(len(set(row)) == 1 for row in _urls(page))


def test_use_for_training_stores_the_settings(page):
    page.run()
    page.slider(key="augment_zoom").set_value(0.2)
    page.slider(key="augment_contrast").set_value(0.3)
    page.slider(key="augment_cutout").set_value(6).run()
    page.button(key="augment_use").click().run()
    expected = AugmentConfig(flip=True, crop_pad=4, zoom=0.2, contrast=0.3, cutout=6)
    assert page.session_state["train_augment"] == expected.to_dict()
    assert not page.title or page.title[0].value != "Augmentations"  # now on Train


def test_probe_image_is_the_default_when_sent(page):
    pixels = np.full((32, 32, 3), 77, np.uint8)
    page.session_state["probe"] = {"pixels": pixels, "caption": "val #3 (dog)", "label": 1}
    page.run()
    assert page.radio(key="augment_source").value == "probe"
    assert len(_rows(page)) == 1
    assert "**val #3 (dog)**" in [m.value for m in page.markdown]
    # Mixed, its label is its own class's, dog, and a 64-pixel probe (a larger model's
    # sample) is mixed with the dataset's images at its size.
    page.slider(key="augment_mixup").set_value(1.0).run()
    assert any("% dog" in c for c in _rows(page)[0].captions[1:])
    page.session_state["probe"] = {
        **page.session_state["probe"],
        "pixels": pixels.repeat(2, 0).repeat(2, 1),
    }
    page.run()
    assert not page.exception and any("% dog" in c for c in _rows(page)[0].captions[1:])


def test_works_on_an_upload_without_a_dataset(no_dataset):
    at = no_dataset.run()
    assert not at.exception
    assert at.radio(key="augment_source").value == "upload"
    # Every format the uploader takes is named, in the order of core.images's formats.
    assert at.info[0].value == (
        "Upload a JPEG, PNG, WebP, BMP, GIF, AVIF or HEIC image to see its variants."
    )
    at.file_uploader(key="augment_upload").set_value(("red.png", _png(), "image/png")).run()
    assert len(_rows(at)) == 1 and len(_rows(at)[0].captions) == 7

    at.file_uploader(key="augment_upload").set_value(("notes.png", b"hello", "image/png")).run()
    assert not at.exception and not _rows(at)
    assert at.error[0].value.startswith("notes.png: This file is not an image")


def _percent_shares(caption):
    return {name: int(pct) for pct, name in re.findall(r"(\d+)% ([\w ]+)", caption)}


def test_mixup_and_cutmix_copies_say_their_labels_shares(page):
    page.run()
    page.slider(key="augment_mixup").set_value(1.0)
    page.slider(key="augment_cutmix").set_value(1.0).run()
    assert not page.exception
    assert re.search(r"batch of 18 copies and 33 training images drawn", page.caption[1].value)
    for row, own in zip(_rows(page), ["cat", "dog", "frog"], strict=True):
        below = row.captions[1:]
        mixed = [_percent_shares(c) for c in below if "%" in c]
        assert all(c == own for c in below if "%" not in c)  # paired with its own class
        assert mixed and all(own in m and 98 <= sum(m.values()) <= 102 for m in mixed)
    # An upload is a class of its own, "this image", mixed with the dataset's images.
    page.radio(key="augment_source").set_value("upload").run()
    page.file_uploader(key="augment_upload").set_value(("red.png", _png(), "image/png")).run()
    below = _rows(page)[0].captions[1:]
    assert not page.exception and any("% this image" in c for c in below)


def test_mixing_without_a_dataset_says_it_needs_one(no_dataset):
    at = no_dataset.run()
    at.slider(key="augment_mixup").set_value(0.5).run()
    at.file_uploader(key="augment_upload").set_value(("red.png", _png(), "image/png")).run()
    assert not at.exception and at.info[0].value.startswith("MixUp and CutMix mix each image")
    assert _rows(at)[0].captions[1:] == [f"variant {k}" for k in range(1, 7)]


def test_pictures_that_are_not_square_are_augmented_squashed_or_cropped(tmp_path, monkeypatch):
    from core import augment
    from tests.conftest import write_framed_folder

    write_framed_folder(tmp_path / "framed", per_class=5)  # 2:1, red ends
    monkeypatch.setenv("CNN_DATA", str(tmp_path / "framed"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/augment.py")
    seen = []  # the originals handed to the augmentation layers
    real = augment.augment_images
    monkeypatch.setattr(
        augment, "augment_images", lambda images, *a: seen.append(images) or real(images, *a)
    )
    at.run()
    assert not at.exception
    assert at.selectbox(key="augment_fit").value == "squash"
    red = [bool((img[..., 0] > 200).any()) for img in seen[-1]]
    assert red == [True] * 3
    at.selectbox(key="augment_fit").set_value("crop").run()
    assert not at.exception and len(_rows(at)) == 3
    assert [bool((img[..., 0] > 200).any()) for img in seen[-1]] == [False] * 3
    # Sent to training with the augmentation: the Train page's form starts cropped.
    at.button(key="augment_use").click().run()
    assert not at.exception and at.title[0].value == "Train"
    assert at.selectbox(key="train_fit").value == "crop"
    assert "Augmentation settings and framing from the Augmentations page." in [
        i.value for i in at.info
    ]
    at.switch_page("pages/train.py")  # AppTest's next run is of the page it was given
    at.selectbox(key="train_fit").set_value("squash").run()  # changed here: it stays
    assert at.selectbox(key="train_fit").value == "squash"
