"""Upload a zip of class folders in a real browser; its classes reach the other pages."""

import io
import re
import zipfile

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from core.images import MAX_UPLOAD_BYTES
from tests.conftest import write_image_folder
from tests.e2e.conftest import shot, streamlit_server, wait_idle
from tests.test_userdata import class_entries, make_zip, png_bytes

pytestmark = pytest.mark.e2e


def _noise_pngs() -> dict:
    """Two random-noise PNGs of about 18 MB each (noise does not compress) and two small."""
    rng = np.random.default_rng(0)
    entries = {}
    for name in ("big", "small"):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (2400, 2500, 3), dtype=np.uint8)).save(buf, "PNG")
        entries[f"{name}/noise.png"] = buf.getvalue()
        entries[f"{name}/tiny.png"] = png_bytes(len(entries))
    return entries


@pytest.fixture
def upload_server(tmp_path):
    """A server of its own: a tiny default folder and an empty uploads folder, no model."""
    write_image_folder(tmp_path / "images", per_class=12, size=32)
    env = {
        "CNN_RUNS_DIR": str(tmp_path / "runs"),
        "CNN_CACHE_DIR": str(tmp_path / "cache"),
        "CNN_DATA": str(tmp_path / "images"),
        "KERAS_HOME": str(tmp_path / "keras"),
        "CNN_UPLOADS_DIR": str(tmp_path / "uploads"),
        # Other work edits the repository meanwhile; a rerun on its saves would race the upload.
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
    }
    with streamlit_server({"env": env, "base": tmp_path}) as url:
        yield url


def test_upload_a_zip_and_use_its_classes_on_every_page(upload_server, page, tmp_path):
    entries = class_entries(prefix="garden/", per_class=12, classes=("rose", "tulip"))
    archive = tmp_path / "garden.zip"
    archive.write_bytes(make_zip(entries | {"garden/tulip/bad.png": b"oops"}))

    page.goto(f"{upload_server}/dataset")
    wait_idle(page)
    page.get_by_role("combobox", name="Source").click()
    page.get_by_role("option", name="Your own images (.zip)").click()
    page.get_by_role("heading", name="Your own images").wait_for()  # the rerun has drawn it
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(archive))

    page.get_by_text("Classes: rose, tulip").wait_for()
    wait_idle(page)
    page.get_by_text("Folder check: 2 classes, 24 images, 1 unreadable, 0 duplicates").wait_for()
    page.locator('[data-testid="stSidebar"]').get_by_text("Using garden.zip").wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "dataset-upload")

    page.locator('[data-testid="stSidebarNav"]').get_by_text("Augmentations").click()
    wait_idle(page)
    page.get_by_text(re.compile(r"train #\d+ \(tulip\)")).first.wait_for()  # image headers
    assert page.get_by_text(re.compile(r"\(rose\)")).count() > 0
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "augment-uploaded-classes")

    page.locator('[data-testid="stSidebarNav"]').get_by_text("Dataset").click()
    page.get_by_role("heading", name="Your own images").wait_for()
    wait_idle(page)
    # Larger than the photo limit: the server must let a zip of this size through.
    big = tmp_path / "big.zip"
    big.write_bytes(make_zip(_noise_pngs(), compression=zipfile.ZIP_STORED))
    assert big.stat().st_size > MAX_UPLOAD_BYTES
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(big))
    page.locator('[data-testid="stSidebar"]').get_by_text("Using big.zip").wait_for()
    wait_idle(page)
    page.get_by_text("Classes: big, small").wait_for()


def test_pictures_labelled_by_a_csv_are_sorted_into_class_folders_at_a_click(
    upload_server, page, tmp_path
):
    # As a Kaggle competition's: train/ of pictures named by id, train.csv beside it.
    write_image_folder(tmp_path / "made", per_class=8, classes=("no", "yes"), size=32)
    (tmp_path / "kaggle" / "train").mkdir(parents=True)
    rows = ["id,label"]
    for i, png in enumerate(sorted((tmp_path / "made").rglob("*.png"))):
        png.rename(tmp_path / "kaggle" / "train" / f"{i:08x}.png")
        rows.append(f"{i:08x},{png.parent.name}")
    (tmp_path / "kaggle" / "train.csv").write_text("\n".join(rows) + "\n")

    page.goto(f"{upload_server}/dataset")
    wait_idle(page)
    path = page.locator('[data-testid="stSidebar"]').get_by_role("textbox", name="Path")
    path.fill(str(tmp_path / "kaggle"))
    path.press("Enter")
    page.get_by_text("(its column label gives 2 classes: no, yes)").wait_for()
    wait_idle(page)
    page.get_by_role("button", name="Sort them into class folders").click()
    page.get_by_text("Classes: no, yes").wait_for()
    wait_idle(page)
    # The sidebar's field shows the sorted folder (the frontend redraws it in its own time).
    expect(path).to_have_value(str(tmp_path / "kaggle" / "train-by-class"))
    page.get_by_text("Folder check: 2 classes, 16 images").wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "dataset-sorted-by-csv")


def test_class_folder_names_are_shown_as_written_not_as_markup(tmp_path, page):
    # A link, emphasis, an emoji and an HTML tag, had they been read as markup.
    write_image_folder(tmp_path / "images", per_class=6, classes=CLASSES_AS_MARKUP, size=32)
    env = {
        "CNN_RUNS_DIR": str(tmp_path / "runs"),
        "CNN_CACHE_DIR": str(tmp_path / "cache"),
        "CNN_DATA": str(tmp_path / "images"),
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
    }
    with streamlit_server({"env": env, "base": tmp_path}) as url:
        page.goto(f"{url}/dataset")
        wait_idle(page)
        main = page.locator('[data-testid="stMain"]')
        main.get_by_text("Classes: :cat:, <b>x, [a](e.com), c*a*t", exact=True).wait_for()
        for name in CLASSES_AS_MARKUP:  # each class's heading over its samples
            assert main.get_by_text(re.compile(rf"^{re.escape(name)} · \d+ of \d+$")).count() == 1
        assert main.locator('a[href*="e.com"], em, strong em, img.emoji').count() == 0
        counts = main.locator(".js-plotly-plot").first  # the class distribution
        ticks = counts.locator(".xtick text").all_text_contents()
        assert sorted(ticks) == sorted(CLASSES_AS_MARKUP), ticks


CLASSES_AS_MARKUP = ("[a](e.com)", "c*a*t", ":cat:", "<b>x")
