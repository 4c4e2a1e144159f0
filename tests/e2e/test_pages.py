"""Every page in a real browser: it renders without an exception and shows its content."""

import csv
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.conftest import HEIC_PHOTO
from tests.e2e.conftest import (
    choose,
    inotify_watches,
    open_page,
    scroll_to_heading,
    shot,
    streamlit_server,
    wait_idle,
)

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
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    open_page(page, server, path)
    page.get_by_role("heading", name=title).first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    # Offline classrooms: nothing is fetched from elsewhere (the favicon was, once).
    assert [url for url in requested if not url.startswith((server, "data:", "blob:"))] == []
    assert page.locator('link[rel~="icon"]').first.get_attribute("href").startswith("data:")
    shot(page, f"page-{path or 'home'}")


def _server_pid(url: str) -> int:
    """The process id of the `streamlit run` serving `url` (found by its port)."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in args and port.encode() in args:
            return int(proc.name)
    raise LookupError(f"no streamlit process serves {url}")


@pytest.mark.skipif(not Path("/proc/self/fdinfo").is_dir(), reason="needs Linux's /proc")
def test_the_server_watches_no_files_for_reload_on_save(server, page):
    # .streamlit/config.toml: with Streamlit's default watcher this server held thousands
    # of watches (the project folder and .venv, recursively) once a page had run.
    open_page(page, server, "evaluate")
    assert inotify_watches(_server_pid(server)) == 0


def _has_tensorflow(pid: int) -> bool:
    return "libtensorflow" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux's /proc")
def test_home_has_keras_imported_in_the_background_for_the_next_page(e2e_data, page):
    # ui.state.warm_up: Home shows no model, so once it is drawn the server imports Keras
    # and TensorFlow (6 s here) while the user reads it, and the next page need not wait.
    with streamlit_server(e2e_data) as url:
        pid = _server_pid(url)
        assert not _has_tensorflow(pid)  # the server runs no page before a browser comes
        page.goto(url)
        wait_idle(page)
        page.get_by_role("heading", name="CNN Lab").wait_for()
        deadline = time.monotonic() + 60
        while not _has_tensorflow(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _has_tensorflow(pid)
    with streamlit_server(e2e_data) as url:  # no import beside a page that needs no model
        page.goto(f"{url}/dataset")
        wait_idle(page)
        page.get_by_role("heading", name="Samples").wait_for()
        time.sleep(2)
        assert not _has_tensorflow(_server_pid(url))


def test_the_menu_offers_themes_but_no_deploy_or_developer_items(server, page):
    # .streamlit/config.toml's toolbarMode "viewer": Streamlit's default on localhost
    # showed a "Deploy" button (to Streamlit's cloud) and developer items in the menu.
    open_page(page, server, "")
    page.get_by_test_id("stMainMenu").click()
    menu = page.get_by_test_id("stMainMenuList")
    menu.get_by_text("Dark").wait_for()
    assert page.get_by_test_id("stAppDeployButton").count() == 0
    assert page.get_by_text("Deploy", exact=True).count() == 0
    assert menu.get_by_text("Clear cache").count() == 0


def test_upload_a_photo_and_see_a_prediction(server, page, tmp_path):
    photo, web = tmp_path / "photo.png", tmp_path / "web.avif"
    Image.new("RGB", (64, 48), (30, 220, 40)).save(photo)  # green: the "dog" class colour
    Image.new("RGB", (64, 48), (220, 30, 40)).save(web)  # the uploader lets .avif through
    bad, phone = tmp_path / "broken.jpg", tmp_path / "IMG_0001.HEIC"
    bad.write_bytes(b"\xff\xd8\xff\xe0 nothing after the header")
    shutil.copy(HEIC_PHOTO, phone)  # a phone's photo, decoded in a process of its own
    open_page(page, server, "classify")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [str(photo), str(web), str(bad), str(phone)]
    )
    page.get_by_text(re.compile(r"photo\.png → (cat|dog|frog)")).wait_for()
    page.get_by_text(re.compile(r"web\.avif → (cat|dog|frog)")).wait_for()
    page.get_by_text(re.compile(r"IMG_0001\.HEIC → (cat|dog|frog)")).wait_for()
    page.get_by_text(re.compile(r"broken\.jpg: ")).wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "classify-upload")
    # The contact sheet: the same answers in one file, with the file it could not read.
    answers = page.get_by_test_id("stMarkdown").filter(has_text=re.compile(r"→")).all_inner_texts()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download a contact sheet (HTML)").click()
    sheet = tmp_path / download.value.suggested_filename
    download.value.save_as(sheet)
    said = sheet.read_text()
    assert re.search(r"<p>3 of 4 files classified( \(.+\))?; 1 not: see their notes\.</p>", said)
    assert said.count("<img ") == 3 and "<strong>broken.jpg</strong>" in said
    for line in answers:  # "photo.png → dog (97.3%)": the sheet rounds to whole percent
        name, label = re.match(r"(\S+) → (\w+)", line).groups()
        assert f"{name}<br><strong>{label} " in said
    # The model learnt from square images: a 64 x 48 photo starts cropped, its edges dimmed.
    assert "<td>Framing</td><td>the photo&#x27;s centre square, cropped</td>" in said
    page.get_by_text("Original, dimmed where cropped").first.wait_for()
    choose(page, "Framing", "Whole photo, squashed")
    page.get_by_text("Original, dimmed where cropped").first.wait_for(state="detached")
    wait_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_the_shipped_model_answers_from_its_int8_copy_or_in_float32(server, page, tmp_path):
    photo, noise = tmp_path / "ship.png", tmp_path / "noise.png"
    Image.new("RGB", (64, 64), (40, 90, 200)).save(photo)
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(noise)
    open_page(page, server, "classify", model="Shipped default")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        [str(photo), str(noise)]
    )
    answer = page.get_by_text(re.compile(r"ship\.png → \w+ \(\d+\.\d%\)"))
    answer.wait_for()
    # Noise is unlike every training image: the novelty check says so under its answer.
    noise_box = page.get_by_test_id("stVerticalBlock").filter(has_text="noise.png →").last
    noise_box.get_by_text(
        re.compile(r"^This picture is unlike the images the model learnt")
    ).wait_for()
    page.get_by_text(re.compile(r"^int8 copy: \d+\.\d% on 5,000 val images")).wait_for()
    wait_idle(page)
    shot(page, "classify-int8")
    page.get_by_text("Fast int8 answers").click()  # off: the float32 model answers
    # Gone once the rerun has finished: wait_idle alone can return before it starts.
    page.get_by_text(re.compile(r"^int8 copy:")).wait_for(state="detached")
    wait_idle(page)
    answer.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_picture_changed_to_fool_the_model_fools_it_again_when_uploaded(server, page, tmp_path):
    photo = tmp_path / "sky.png"
    Image.new("RGB", (64, 64), (40, 90, 200)).save(photo)
    open_page(page, server, "classify", model="Shipped default")
    page.get_by_text("Try to fool it", exact=True).click()
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
    told = page.get_by_text(re.compile(r"answers the changed picture"))
    told.wait_for(timeout=120_000)
    said = re.search(
        r"\(int8 copy\) answers the changed picture (\w+) \((\d+\.\d%)\)", told.inner_text()
    )
    assert said, told.inner_text()
    with page.expect_download() as download:
        page.get_by_text("Download the changed picture (PNG)").click()
    changed = tmp_path / download.value.suggested_filename
    download.value.save_as(changed)
    assert re.fullmatch(r"sky-changed-\d+\.png", changed.name)
    assert np.abs(np.asarray(Image.open(changed), int) - [40, 90, 200]).max() <= 16
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(changed))
    # The file fools the page as the page said it would: same class, same confidence.
    page.get_by_text(f"{changed.name} → {said[1]} ({said[2]})").wait_for(timeout=120_000)
    wait_idle(page)
    shot(page, "classify-fooled")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_three_squares_are_fooled_together_on_a_narrow_window(server, page, tmp_path):
    """At 1024 px, as a classroom projector shows it: the photo beside what the model sees
    (a fixed 160 px ran over it), the changed squares side by side, and their PNG, uploaded
    again and read as three squares, answered as the page said."""
    photo = tmp_path / "wide.png"
    Image.new("RGB", (96, 32), (40, 90, 200)).save(photo)
    open_page(page, server, "classify", model="Shipped default")
    page.set_viewport_size({"width": 1024, "height": 768})
    choose(page, "Framing", "Three squares, averaged")
    page.get_by_text("Try to fool it", exact=True).click()
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
    told = page.get_by_text(re.compile(r"answers the changed picture"))
    told.wait_for(timeout=120_000)
    said = re.search(r"answers the changed picture (\w+) \((\d+\.\d%)\)", told.inner_text())
    assert said, told.inner_text()
    wait_idle(page)
    original, seen = (
        page.get_by_test_id("stImage").filter(has_text=text).first.locator("img").bounding_box()
        for text in ("Original", "What the model sees")
    )
    assert original["x"] + original["width"] <= seen["x"] + 1  # side by side, not over
    page.get_by_text("the squares side by side").wait_for()
    with page.expect_download() as download:
        page.get_by_text("Download the changed picture (PNG)").click()
    changed = tmp_path / download.value.suggested_filename
    download.value.save_as(changed)
    assert Image.open(changed).size == (96, 32)  # the three squares of 32, side by side
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(changed))
    page.get_by_text(f"{changed.name} → {said[1]} ({said[2]})").wait_for(timeout=120_000)
    wait_idle(page)
    shot(page, "classify-three-squares-fooled")
    assert page.locator('[data-testid="stException"]').count() == 0


# Text that a page cuts short: a label ended by an ellipsis, a field's value wider than
# its box (a selectbox's "crossentropy" as "crossentrop").
CUT_SHORT = """root => [
  ...[...root.querySelectorAll('*')]
    .filter(e => getComputedStyle(e).textOverflow === 'ellipsis')
    .filter(e => e.scrollWidth > e.clientWidth + 1 && e.innerText.trim())
    .map(e => e.innerText.trim()),
  ...[...root.querySelectorAll('input:not([type=checkbox]):not([type=file])')]
    .filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => e.value),
  ...[...root.querySelectorAll('[data-testid=stMultiSelect] *')]
    .filter(e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)
      && e.scrollWidth > e.clientWidth + 1
      || ['auto', 'scroll'].includes(getComputedStyle(e).overflowY)
      && e.scrollHeight > e.clientHeight + 1)
    .map(e => e.innerText.trim()),
]"""


WIDTHS = (1024, 1280)  # a classroom projector's, a laptop's
WHOLE = [*((path, title, 1024) for path, title in PAGES), ("train", "custom", 1024)]


@pytest.mark.parametrize("path, title, width", [*WHOLE, *(("train", "quick", w) for w in WIDTHS)])
def test_every_page_shows_its_text_whole(server, page, path, title, width):
    """At 1024 px with the sidebar open, as a classroom projector shows a page, no label or
    value is cut short. Columns of a fixed count cut the Train form's "Weight averaging",
    "Batch norm" (a custom block's seven), "Horizontal flip" and "crossentropy", and the
    Evaluate page's mistaken pairs' counts and "the most confident mistakes": they now sit
    in rows that wrap; the quick preset's precision, "auto (here: mixed_bfloat16)" on a CPU
    with bf16 units, is wide enough for it (taking the rest of its row cut it at 1280)."""
    open_page(page, server, path)
    page.set_viewport_size({"width": width, "height": 768})
    if title in ("custom", "quick"):  # a Train form of another architecture
        choose(page, "Architecture", title)
        page.get_by_text(
            "Batch norm" if title == "custom" else "Whitening-bias epochs"
        ).first.wait_for()
    else:
        page.get_by_role("heading", name=title).first.wait_for()
    wait_idle(page)
    assert page.get_by_test_id("stMain").evaluate(CUT_SHORT) == []
    assert page.locator('[data-testid="stException"]').count() == 0


def hover_plot(page, fx: float, fy: float, label: re.Pattern, tries: int = 30) -> tuple:
    """Moves the mouse to a point of the first plotly chart, given as fractions of its plot
    area, until plotly shows a hover label matching `label`; returns the point.

    Plotly's bundle loads after the script run has finished, and a chart can be drawn
    before its final size: a click aimed before then lands on nothing (seen in CI).
    """
    plot = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot .nsewdrag').first
    label_box = page.locator(".hoverlayer .hovertext").filter(has_text=label)
    for _ in range(tries):
        box = plot.bounding_box()
        point = (box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        page.mouse.move(*point)
        try:
            label_box.wait_for(timeout=1_000)
            return point
        except PlaywrightTimeout:
            page.mouse.move(0, 0)
    raise AssertionError(f"no hover label {label.pattern!r} on the chart")


def test_selecting_a_confusion_matrix_cell_shows_its_gallery(server, page):
    open_page(page, server, "evaluate")
    page.get_by_text(re.compile(r"\d+ images? of cat predicted as cat")).wait_for()
    # bottom-right cell of the 3x3 matrix: true frog, predicted frog
    point = hover_plot(page, 5 / 6, 5 / 6, re.compile("true frog.*predicted frog"))
    page.mouse.click(*point)
    page.get_by_text(re.compile(r"\d+ images? of frog predicted as frog")).wait_for()
    wait_idle(page)
    # Each image's file under it (an image folder's), first in the cell's gallery.
    files = re.compile(r"\n\d+\.png in \w+$")
    captions = page.locator('[data-testid="stCaptionContainer"]:visible', has_text=files)
    expect(captions.first).to_contain_text(re.compile(r"^frog (>99|\d+)%.*\n\d+\.png in frog$"))
    source = page.get_by_role("combobox", name="Images from")
    expect(source).to_have_value("the chosen cell")  # "Why this answer?" follows the click
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "evaluate-cell")
    # The cell stays selected in the chart; the pickers below still choose another pair,
    # and the chart's selection does not win them back on the next rerun.
    choose(page, "Images from", "the most confident mistakes")
    choose(page, "True class", "cat")
    page.get_by_text(re.compile(r"\d+ images? of cat predicted as frog")).wait_for()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"\d+ images? of cat predicted as frog"))).to_be_visible()
    expect(source).to_have_value("the chosen cell")
    # Every image's answer as CSV, with its file: where to fix a wrong label.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download every image's answer (CSV)").click()
    rows = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    metrics = page.get_by_test_id("stMetric").all_inner_texts()
    images = int(next(m for m in metrics if m.startswith("Images")).split()[-1])
    assert len(rows) == images and all(r["file"].startswith(r["label"] + "/") for r in rows)
    assert {r["label"] for r in rows} == {"cat", "dog", "frog"}


def test_the_evaluation_report_opens_offline_with_the_pages_figures(
    server, page, browser, tmp_path
):
    open_page(page, server, "evaluate")
    button = page.get_by_role("button", name="Download a report (HTML)")
    button.wait_for()
    wait_idle(page)
    shown = page.get_by_test_id("stMetric").all_inner_texts()
    metrics = dict([line for line in m.splitlines() if line.strip()][:2] for m in shown)
    with page.expect_download() as download:
        button.click()
    saved = tmp_path / download.value.suggested_filename
    assert saved.name == "evaluation-val.html"
    download.value.save_as(saved)
    offline = browser.new_context(offline=True)
    try:
        report = offline.new_page()
        report.route(re.compile(r"^https?://"), lambda route: route.abort())  # no network
        report.goto(saved.as_uri())
        expect(report.get_by_role("heading", level=1)).to_have_text(re.compile(r": val split$"))
        for label in ("Accuracy", "Loss", "Images"):
            expect(report.get_by_text(label, exact=True)).to_be_visible()
            expect(report.get_by_text(metrics[label], exact=True).first).to_be_visible()
        # The confusion matrix drawn by the plotly.js inside the file: its class ticks.
        ticks = report.locator(".plotly-graph-div").first.locator(".xtick text")
        expect(ticks).to_have_count(3)
        assert sorted(ticks.all_text_contents()) == ["cat", "dog", "frog"]
        shot(report, "evaluation-report")
    finally:
        offline.close()


def test_occlusion_explains_an_answer_on_the_evaluate_and_filters_pages(server, page):
    open_page(page, server, "evaluate")
    scroll_to_heading(page, "Why this answer?")
    choose(page, "Images from", "the least confident correct")
    page.get_by_text("Occlusion", exact=True).click()
    wait_idle(page)
    left = re.compile(r"\(the runner-up, (<1|\d+)%\): hiding one square leaves (<1|>99|\d+)%$")
    expect(page.get_by_text(left)).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Occlusion hides each 8×8 square"))).to_be_visible()
    shot(page, "evaluate-occlusion")
    page.get_by_role("button", name="Open on Filters page").click()
    page.get_by_role("heading", name="Filters & feature maps").wait_for()
    wait_idle(page)
    page.get_by_text("Occlusion", exact=True).click()
    wait_idle(page)
    shown = re.compile(r"^Evidence for \w+ \(occlusion\): red for, blue against$")
    expect(page.get_by_text(shown)).to_be_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "filters-occlusion")


def test_what_units_look_for_and_robustness_are_drawn_on_a_click(server, page):
    open_page(page, server, "filters")
    page.get_by_role("tab", name="What units look for").click()
    page.get_by_role("button", name="Draw what these units look for").click()
    for name in ("cat", "dog", "frog"):
        page.get_by_text(re.compile(rf"^{name} · -?\d+\.\d$")).wait_for(timeout=120_000)
    expect(page.get_by_role("button", name="Draw what these units look for")).to_have_count(0)
    shot(page, "filters-units")
    open_page(page, server, "evaluate")
    scroll_to_heading(page, "Robustness to small changes")
    page.get_by_role("button", name="Measure robustness").click()
    summary = re.compile(r"^(Moving each pixel by at most|Even with each pixel|The model gets)")
    page.get_by_text(summary).wait_for(timeout=120_000)
    wait_idle(page)
    expect(page.get_by_role("button", name="Measure robustness")).to_have_count(0)
    shot(page, "evaluate-robustness")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_an_evaluated_image_opens_on_the_filters_pages_feature_maps(server, page):
    open_page(page, server, "evaluate")
    scroll_to_heading(page, "Why this answer?")
    choose(page, "Images from", "the least confident correct")
    said = r"val #(\d+), labelled (\w+)\n(\w+)/\d+\.png"  # and its file, in its class folder
    caption = page.get_by_text(re.compile(f"^{said}$")).inner_text()
    index, label, folder = re.fullmatch(said, caption).groups()
    assert folder == label
    expect(page.get_by_text(re.compile(r"\(the runner-up, (<1|\d+)%\)"))).to_be_visible()
    page.get_by_role("button", name="Open on Filters page").click()
    page.get_by_role("heading", name="Filters & feature maps").wait_for()
    wait_idle(page)
    expect(page.get_by_role("tab", name="Feature maps")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_text(f"The image sent here: val #{index} ({label})")).to_be_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "evaluate-to-filters")


def test_dots_lassoed_in_the_feature_space_are_looked_at_below(server, page):
    open_page(page, server, "evaluate")
    page.get_by_text("Show where the model places each image").click()
    page.get_by_text("Select dots (click, lasso or box)").wait_for()
    wait_idle(page)
    source = page.get_by_role("combobox", name="Images from")
    # Its mistakes, or the least confident right answers when it made none.
    first = re.compile("^the (most confident mistakes|least confident correct)$")
    expect(source).to_have_value(first)
    # The feature space's own chart: a robustness curve measured by an earlier test is
    # kept on disk and drawn further down the page.
    area = page.locator('.st-key-evaluate_space_chart [data-testid="stPlotlyChart"] .nsewdrag')
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    left, top = box["x"] + 3, box["y"] + 3
    right, bottom = box["x"] + box["width"] - 3, box["y"] + box["height"] - 3
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in [(right, top), (right, bottom), (left, bottom), (left, top + 1)]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    wait_idle(page)
    expect(source).to_have_value("the points selected in the feature space")
    expect(page.get_by_text(re.compile(r"^val #\d+, labelled \w+\n\w+/\d+\.png$"))).to_be_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "evaluate-feature-space")


def test_a_deep_link_on_a_fresh_server_goes_through_the_router(e2e_data, page):
    # Streamlit runs a pages/ file alone on a fresh server's first deep link; the app
    # must still show its own navigation and sidebar there.
    with streamlit_server(e2e_data) as url:
        page.goto(f"{url}/evaluate")
        wait_idle(page)
        page.get_by_role("combobox", name="Active model").wait_for()
        assert page.get_by_role("link", name="Filters & feature maps").count() == 1
        assert page.get_by_role("heading", name="Evaluate").count() == 1


def test_near_duplicates_of_a_folder_are_found_and_their_files_downloaded(server, page, tmp_path):
    from tests.conftest import write_image_folder

    folder = tmp_path / "dups"
    write_image_folder(folder, per_class=6, size=32)
    Image.open(folder / "cat" / "000.png").save(folder / "dog" / "copy.jpg", quality=90)
    open_page(page, server, "dataset", model=None)
    path = page.get_by_role("textbox", name="Path")
    path.fill(str(folder))
    path.press("Enter")
    wait_idle(page)
    page.get_by_text("Folder check: 3 classes, 19 images").wait_for()
    page.get_by_role("button", name="Find near-duplicates").click()
    page.get_by_text("Download the pairs (CSV)").wait_for()
    wait_idle(page)
    metrics = page.get_by_test_id("stMetric").all_inner_texts()
    assert "Pairs\n\n1" in metrics and "Under two classes\n\n1" in metrics
    expect(
        page.get_by_text(re.compile(r"^(cat/000\.png|dog/copy\.jpg) \(\w+\) · "))
    ).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the pairs (CSV)").click()
    [row] = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    assert {(row["file_a"], row["class_a"]), (row["file_b"], row["class_b"])} == {
        ("cat/000.png", "cat"),
        ("dog/copy.jpg", "dog"),
    }
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "dataset-near-duplicates")
