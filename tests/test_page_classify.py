"""AppTest: uploads on the Classify page give predictions; bad files get their sentence."""

import io

import numpy as np
from PIL import Image

from core.classify import classify_bytes
from core.model import load_model


def _png(colour):
    buf = io.BytesIO()
    Image.new("RGB", (48, 36), colour).save(buf, "PNG")
    return buf.getvalue()


def test_no_upload_shows_how_to_start(app):
    app.switch_page("pages/classify.py").run()
    assert not app.exception
    assert "Upload one or more images" in app.info[0].value


def test_probe_from_the_dataset_page_is_classified_like_core_does(app, trained_run):
    pixels = np.full((32, 32, 3), (20, 200, 30), np.uint8)
    app.session_state["probe"] = {"pixels": pixels, "caption": "val #3 (dog)", "label": 1}
    app.switch_page("pages/classify.py").run()
    assert not app.exception
    model = load_model(trained_run / "model.keras")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    expected = classify_bytes(model, buf.getvalue(), ["cat", "dog", "frog"])
    shown = [m.value for m in app.markdown if m.value.startswith("**val #3")]
    assert shown == [f"**val #3 (dog)** → **{expected.label}** ({expected.confidence:.1%})"]
