"""ui.report: the evaluation and the contact sheet as HTML files say what core computed."""

import base64
import io
import json
import re
from html import escape
from html.parser import HTMLParser

import numpy as np
from PIL import Image

from core.evaluate import (
    calibration,
    mistakes,
    report_from_probs,
    selective,
    selective_at,
    with_temperature,
)
from ui.report import (
    GALLERY,
    classification_facts,
    classification_html,
    evaluation_html,
    facts,
)
from ui.text import probability

NAMES = ["air<b>plane</b>", "cat & dog", "</script><i>x"]


class _Page(HTMLParser):
    """The tags, the text and the images of a page."""

    def __init__(self):
        super().__init__()
        self.tags, self.text, self.images, self.alts, self.captions = [], [], [], [], []
        self._caption = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
            self.alts.append(dict(attrs)["alt"])
        if tag == "figcaption":
            self._caption = []
        if tag == "br" and self._caption is not None:
            self._caption.append(" ")  # a line break; <wbr>, a place to break one, adds none

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self.captions.append("".join(self._caption))
            self._caption = None

    def handle_data(self, data):
        self.text.append(data)
        if self._caption is not None:
            self._caption.append(data)


def _array(encoded) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array (dtype, base64 bytes, shape)."""
    if not isinstance(encoded, dict):
        return np.array(encoded, float)
    flat = np.frombuffer(base64.b64decode(encoded["bdata"]), encoded["dtype"])
    return flat.reshape([int(n) for n in str(encoded["shape"]).split(",")])


def _evaluation(n=40, classes=3, seed=0, uneven=False):
    rng = np.random.default_rng(seed)
    y = (
        rng.integers(0, classes, n)
        if not uneven
        else np.r_[np.zeros(n - 6, int), [1, 1, 1, 2, 2, 2]]
    )
    probs = rng.dirichlet(np.ones(classes), n).astype(np.float32)
    probs[: n // 2] = np.eye(classes, dtype=np.float32)[y[: n // 2]] * 0.9 + 0.1 / classes
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    names = NAMES[:classes] if classes <= len(NAMES) else [f"c{i}" for i in range(classes)]
    report = report_from_probs(probs, y, names)
    tempered = report_from_probs(with_temperature(probs, 2.0), y, names)
    return report, tempered, images


def _page(report, tempered, images, files=None, normalised=False, temperature=2.0):
    title, facts = "run <1>: val split", {"Model": "run <1>"}
    said = evaluation_html(report, tempered, images, files, title, facts, normalised, temperature)
    page = _Page()
    page.feed(said)
    return said, page


def test_the_figures_are_the_reports():
    report, tempered, images = _evaluation()
    said, page = _page(report, tempered, images)
    text = " ".join(page.text)
    assert "run <1>: val split" in page.text  # the title, as written: escaped, not a tag
    for figure in (f"{report.accuracy:.2%}", f"{report.loss:.4f}"):
        assert figure in page.text
    assert "Balanced accuracy" not in text  # classes of about one size
    assert "Top-3 accuracy" not in text  # of three classes: always 100%
    five, tempered5, images5 = _evaluation(classes=5)
    assert f"{five.top3_accuracy:.2%}" in _page(five, tempered5, images5)[1].text
    low, high = report.accuracy_interval()
    assert f"between {low:.1%} and {high:.1%}" in text
    for row in report.per_class_rows():
        cells = [
            row["class"],
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['recall_low']:.3f}-{row['recall_high']:.3f}",
            f"{row['f1']:.3f}",
            f"{int(row['support']):,}",
        ]
        at = page.text.index(row["class"], page.text.index("Per class"))
        assert page.text[at : at + 6] == cells
    # The names' marks are text: the page's only tags are its own.
    assert "b" not in page.tags and "i" not in page.tags
    assert said.count("<script") == said.count("</script>")


def test_the_matrix_is_drawn_with_its_script_inside_the_file():
    report, tempered, images = _evaluation()
    for normalised in (False, True):
        said, page = _page(report, tempered, images, normalised=normalised)
        figure = json.loads(
            re.search(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*\{", said, re.S).group(1)
        )
        cm = report.confusion.astype(float)
        shown = cm / cm.sum(axis=1, keepdims=True) if normalised else cm
        np.testing.assert_allclose(_array(figure[0]["z"]), shown)
        assert figure[0]["x"] == NAMES
        # Blues, pale to dark: the page's theme-aware scale would be plotly's default here.
        assert figure[0]["colorscale"][0][1] == "rgb(247,251,255)"
        assert said.count("plotly.js v") == 1  # the library itself, once: it opens offline
        assert said.count("Plotly.newPlot(") == 2  # the matrix and the calibration's bars


def test_the_most_confident_mistakes_are_shown_with_their_files():
    report, tempered, images = _evaluation()
    files = [f"{NAMES[c]}/{i}.png" for i, c in enumerate(report.y_true)]
    html, page = _page(report, tempered, images, files)
    wrong = mistakes(tempered.probs, tempered.y_true)
    assert 0 < len(wrong["index"]) < GALLERY
    assert len(page.images) == len(wrong["index"])
    for k, (src, caption) in enumerate(zip(page.images, page.captions, strict=True)):
        i = wrong["index"][k]
        png = base64.b64decode(src.removeprefix("data:image/png;base64,"))
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), images[i])
        answer = f"answered {NAMES[wrong['pred'][k]]} {probability(wrong['confidence'][k])}"
        said = f"#{i}, labelled {NAMES[report.y_true[i]]}"
        assert caption == f"{said} {answer} {files[i]}"
        # A line may break after the "/", not inside "1.png" (no break before a digit).
        assert escape(files[i]).replace("/", "/<wbr>") in html
        assert page.alts[k] == f"{said}, {answer}"  # for a screen reader: the caption's words


def test_a_long_list_of_mistakes_is_cut_and_none_is_said():
    report, tempered, images = _evaluation(n=200)
    _, page = _page(report, tempered, images)
    assert len(page.images) == GALLERY
    right = report_from_probs(np.eye(3, dtype=np.float32)[report.y_true], report.y_true, NAMES)
    _, page = _page(right, right, images)
    assert not page.images and "No mistakes on this split." in page.text


def test_a_class_without_images_has_dashes_and_the_averages_say_so():
    report, tempered, images = _evaluation()
    y = np.where(report.y_true == 1, 0, report.y_true)  # a test folder without "cat & dog"
    lacking = report_from_probs(report.probs, y, report.class_names)
    _, page = _page(lacking, lacking, images)
    at = page.text.index("cat & dog", page.text.index("Per class"))
    # Answered for some images (each answer wrong): precision 0, no recall, F1 or interval.
    assert page.text[at : at + 6] == ["cat & dog", "0.000", "—", "—", "—", "0"]
    assert any(t.endswith("cat & dog has none, so no recall or F1.") for t in page.text)


def test_uneven_classes_get_their_balanced_accuracy():
    report, tempered, images = _evaluation(uneven=True)
    _, page = _page(report, tempered, images)
    assert f"{report.balanced_accuracy():.2%}" in page.text


def test_the_facts_name_the_model_its_training_and_the_images():
    card = {"epochs": 20, "params": 1973944, "data": {"source": "image folder cifar"}}
    rows = facts("seed (68% val)", card, "image folder mine", "val", "flip", 1.5)
    assert rows["Model"] == "seed (68% val)"
    assert rows["Trained"] == "20 epochs on image folder cifar"
    assert rows["Parameters"] == "1,973,944"
    assert rows["Evaluated on"] == "the val split of image folder mine"
    assert rows["Test-time augmentation"] == "flip"
    assert rows["Temperature"] == "1.5: the mistakes' percentages below are after it"
    assert facts("x", {}, "s", "val", "none", 1.0)["Temperature"].startswith("none: ")
    assert set(facts("x", {}, "s", "test", "none", 1.0)) == {
        "Model",
        "Evaluated on",
        "Test-time augmentation",
        "Temperature",
        "Written",
    }


def test_the_confidence_section_says_what_the_page_does():
    report, tempered, images = _evaluation(n=200)
    _, page = _page(report, tempered, images)
    text = " ".join(page.text)
    for name, r in (("as the model gives them", report), ("after its temperature 2", tempered)):
        assert f"Probabilities {name}. {calibration(r.probs, r.y_true).summary()}" in text
    curve = selective(tempered.probs, tempered.y_true)
    at = page.text.index("top probability at least") + 1
    for share in (0.5, 0.8, 0.9, 1.0):
        answered, right, threshold = selective_at(curve, share)
        assert page.text[at : at + 3] == [f"{answered:.0%}", f"{right:.1%}", f"{threshold:.2f}"]
        at += 3
    # Without a temperature, one view; with 9 images, no curve (as on the page).
    _, page = _page(report, report, images, temperature=1.0)
    assert "after its temperature" not in " ".join(page.text)
    few = report_from_probs(report.probs[:9], report.y_true[:9], report.class_names)
    _, page = _page(few, few, images[:9], temperature=1.0)
    assert "Answering only when sure:" not in page.text


def test_the_contact_sheet_shows_each_photo_as_the_model_saw_it():
    from core.classify import describe, summary

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    sure = describe(pixels[0], np.array([0.95, 0.03, 0.02], np.float32), NAMES)
    unsure = describe(pixels[1], np.array([0.4, 0.35, 0.25], np.float32), NAMES)
    strange = describe(pixels[2], np.array([0.9, 0.005, 0.095], np.float32), NAMES)
    strange.unfamiliar = True
    results = [
        ("<i>cat</i>.png", sure, None),
        ("notes.png", None, "This file is not an image (it looks like text)."),
        ("b.jpg", unsure, None),
        ("c.jpg", strange, None),
    ]
    facts = classification_facts("run <1>", "int8 copy", 1.0, None)
    said = classification_html(results, "run <1>: 4 photos", facts)
    page = _Page()
    page.feed(said)
    assert "run <1>: 4 photos" in page.text and summary(results) in page.text
    assert "i" not in page.tags  # a name's marks are text
    # Three answered, as the model saw them; the file it could not read, with why.
    assert len(page.images) == 3
    for src, image in zip(page.images, pixels, strict=True):
        png = base64.b64decode(src.removeprefix("data:image/png;base64,"))
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), image)
    first, error, second, third = page.captions
    assert first == f"<i>cat</i>.png {NAMES[0]} 95% then {NAMES[1]} 3% · {NAMES[2]} 2%"
    assert error == "notes.png This file is not an image (it looks like text)."
    assert second.endswith(" unsure") and third.endswith(" unlike the training images")
    at = page.text.index("photos") + 1  # the answers table: each class's count
    assert page.text[at : at + 2] == [NAMES[0], "3"]
    assert facts["Unfamiliar pictures"] == "not checked: this model has no check"
    assert facts["Temperature"] == "none: the model's own probabilities"


def test_three_squares_are_shown_side_by_side_on_the_contact_sheet():
    from core.classify import _described

    rng = np.random.default_rng(2)
    views = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    pred = _described(views, np.array([0.7, 0.2, 0.1], np.float32), NAMES, 3)
    facts = classification_facts("run", "float32 model", 1.0, None, fit="three")
    said = classification_html([("wide.jpg", pred, None)], "run: 1 photo", facts)
    page = _Page()
    page.feed(said)
    [src] = page.images
    png = base64.b64decode(src.removeprefix("data:image/png;base64,"))
    shown = np.asarray(Image.open(io.BytesIO(png)))
    assert shown.shape == (32, 3 * 32 + 2, 3)  # the squares in a row, a white column between
    for i, view in enumerate(views):
        np.testing.assert_array_equal(shown[:, 33 * i : 33 * i + 32], view)
    assert (shown[:, [32, 65]] == 255).all()
    assert "<figure style='grid-column: span 3'>" in said  # three cells of the gallery wide
    assert facts["Framing"].endswith("their answers averaged; all three shown")
