import io

import numpy as np
import pytest
from PIL import Image

from core.classify import (
    classify_batch,
    classify_bytes,
    describe,
    normalised_entropy,
    predict_pixels,
    results_csv,
    results_table,
)
from core.errors import ImageError
from core.model import build_model, preset_config
from tests.conftest import smooth_images


def _png(colour, size=(50, 40)):
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def model():
    return build_model(preset_config("seed", num_classes=3))


def test_entropy_is_zero_when_certain_and_one_when_uniform():
    assert normalised_entropy(np.array([1.0, 0, 0])) == pytest.approx(0, abs=1e-9)
    assert normalised_entropy(np.array([1 / 3] * 3)) == pytest.approx(1)


def test_describe_orders_top_k_and_flags_doubt():
    px = np.zeros((32, 32, 3), np.uint8)
    sure = describe(px, np.array([0.05, 0.9, 0.05]), ["a", "b", "c"], k=2)
    assert sure.top == [("b", 0.9), ("a", 0.05)] and not sure.unsure
    unsure = describe(px, np.array([0.4, 0.35, 0.25]), ["a", "b", "c"])
    assert unsure.label == "a" and unsure.unsure


def test_classify_bytes_matches_a_direct_forward_pass(model):
    pred = classify_bytes(model, _png((200, 10, 10)), ["a", "b", "c"])
    assert pred.pixels.shape == (32, 32, 3) and pred.pixels.dtype == np.uint8
    np.testing.assert_allclose(pred.probs, predict_pixels(model, pred.pixels[None])[0])
    assert (pred.pixels == (200, 10, 10)).all()


def test_a_bad_file_in_a_batch_is_reported_and_the_rest_classified(model):
    files = [
        ("red.png", _png((255, 0, 0))),
        ("notes.png", b"hello, not an image"),
        ("blue.png", _png((0, 0, 255))),
    ]
    results = classify_batch(model, files, ["a", "b", "c"])
    assert [r[0] for r in results] == ["red.png", "notes.png", "blue.png"]
    assert results[0][1] is not None and results[2][1] is not None
    assert results[1][1] is None and "not an image" in results[1][2]
    alone = classify_bytes(model, files[2][1], ["a", "b", "c"])
    np.testing.assert_allclose(results[2][1].probs, alone.probs, rtol=1e-5, atol=1e-6)
    csv = results_csv(results).splitlines()
    assert csv[0] == "file,prediction,confidence,unsure,unfamiliar,error"
    assert csv[2].startswith("notes.png,,,,,") and len(csv) == 4
    assert results[0][1].novelty is None and csv[1].split(",")[4] == ""  # no check, no verdict
    with pytest.raises(ImageError):
        classify_bytes(model, b"", ["a", "b", "c"])


def test_flip_tta_averages_each_image_with_its_mirror(model):
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    files = [("noise.png", buf.getvalue()), ("notes.png", b"not an image")]
    plain, flip = (classify_batch(model, files, ["a", "b", "c"], tta=t) for t in ("none", "flip"))
    mirror = predict_pixels(model, pixels[None, :, ::-1])[0]
    assert not np.allclose(plain[0][1].probs, mirror)  # else the average would change nothing
    np.testing.assert_allclose(flip[0][1].probs, (plain[0][1].probs + mirror) / 2, atol=1e-6)
    assert flip[1][1] is None and "not an image" in flip[1][2]


def test_with_a_novelty_check_each_picture_says_whether_it_is_unfamiliar(model):
    from core import novelty

    check = novelty.fit(model, smooth_images(300))
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    files = [("noise.png", buf.getvalue()), ("broken.png", b"no"), ("red.png", _png((250, 5, 5)))]
    results = classify_batch(model, files, ["a", "b", "c"], check=check)
    scores = check.scores(np.stack([results[0][1].pixels, results[2][1].pixels]))
    assert [results[0][1].novelty, results[2][1].novelty] == pytest.approx(scores.tolist())
    assert results[0][1].unfamiliar and scores[0] > check.threshold  # noise
    assert results[2][1].unfamiliar == (scores[1] > check.threshold)
    rows = results_table(results)
    assert [r["unfamiliar"] for r in rows] == [True, None, results[2][1].unfamiliar]
