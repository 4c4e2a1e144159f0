"""Every page in a real browser: it renders without an exception and shows its content."""

import re

import pytest
from PIL import Image

from tests.e2e.conftest import shot, wait_idle

PAGES = [
    ("", "CNN Lab"),
    ("dataset", "Dataset"),
    ("augment", "Augmentations"),
    ("filters", "Filters & feature maps"),
    ("train", "Train"),
    ("evaluate", "Evaluate"),
    ("classify", "Classify"),
]


@pytest.mark.parametrize("path, title", PAGES)
def test_every_page_renders_without_an_exception(server, page, path, title):
    page.goto(f"{server}/{path}")
    wait_idle(page)
    page.get_by_role("heading", name=title).first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, f"page-{path or 'home'}")


def test_upload_a_photo_and_see_a_prediction(server, page, tmp_path):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), (30, 220, 40)).save(photo)  # green: the "dog" class colour
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 nothing after the header")
    page.goto(f"{server}/classify")
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [str(photo), str(bad)]
    )
    page.get_by_text(re.compile(r"photo\.png → (cat|dog|frog)")).wait_for()
    page.get_by_text(re.compile(r"broken\.jpg: ")).wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "classify-upload")
