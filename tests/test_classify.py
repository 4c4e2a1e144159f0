import csv
import io
import json
from csv import DictReader
from html import escape

import numpy as np
import pytest
from PIL import Image

from core.classify import (
    classify_batch,
    classify_bytes,
    classify_files,
    describe,
    normalised_entropy,
    photo_files,
    predict_checked,
    predict_pixels,
    results_csv,
    results_table,
)
from core.classify import main as classify_main
from core.errors import ImageError
from core.images import MAX_UPLOAD_BYTES, ONE_VIEW
from core.model import build_model, preset_config
from core.registry import DEFAULT_MODEL_DIR
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
    # With the classes: each one's probability, to analyse elsewhere; none for a bad file.
    wide = list(DictReader(io.StringIO(results_csv(results, ["a", "b, c", "d"]))))
    assert list(wide[0])[-3:] == ["p(a)", "p(b, c)", "p(d)"]
    assert [float(wide[2][f"p({n})"]) for n in ("a", "b, c", "d")] == pytest.approx(
        results[2][1].probs.tolist()
    )
    assert wide[1]["p(a)"] == "" and wide[1]["error"] == results[1][2]
    with pytest.raises(ImageError):
        classify_bytes(model, b"", ["a", "b", "c"])


def _banded(size=(90, 30)) -> bytes:
    """A landscape PNG: red thirds at each side, a blue centre square."""
    image = Image.new("RGB", size, (255, 0, 0))
    image.paste((0, 0, 255), ((size[0] - size[1]) // 2, 0, (size[0] + size[1]) // 2, size[1]))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def test_a_photo_is_squashed_whole_or_cropped_to_its_centre_square(model):
    files = [("banded.png", _banded()), ("notes.png", b"not an image")]
    whole, crop = (classify_batch(model, files, ["a", "b", "c"], fit=f) for f in ONE_VIEW)
    assert (crop[0][1].pixels == (0, 0, 255)).all()  # the centre square alone
    assert (whole[0][1].pixels[:, :10] == (255, 0, 0)).all()  # its red sides squashed in
    np.testing.assert_allclose(
        crop[0][1].probs, predict_pixels(model, crop[0][1].pixels[None])[0], rtol=1e-5
    )
    alone = classify_bytes(model, files[0][1], ["a", "b", "c"], fit="crop")
    np.testing.assert_array_equal(alone.pixels, crop[0][1].pixels)
    assert crop[1][1] is None and "not an image" in crop[1][2]


def test_three_squares_average_the_answers_of_both_ends_and_the_middle(model):
    from core.evaluate import with_temperature

    wide = Image.new("RGB", (90, 30), (255, 0, 0))  # red, green and blue squares
    wide.paste((0, 255, 0), (30, 0, 60, 30))
    wide.paste((0, 0, 255), (60, 0, 90, 30))
    buf = io.BytesIO()
    wide.transpose(Image.Transpose.ROTATE_90).save(buf, "PNG")  # portrait: top to bottom
    files = [("tall.png", buf.getvalue()), ("square.png", _png((9, 9, 9), (30, 30)))]
    tall, square = classify_batch(model, files, ["a", "b", "c"], fit="three", temperature=2.0)
    views = tall[1].views
    assert views.shape == (3, 32, 32, 3)
    colours = [tuple(v[16, 16]) for v in views]
    assert colours == [(0, 0, 255), (0, 255, 0), (255, 0, 0)]  # top, middle, bottom
    np.testing.assert_array_equal(tall[1].pixels, views[1])  # the middle one shown
    mean = predict_pixels(model, views).mean(axis=0, keepdims=True)
    np.testing.assert_allclose(tall[1].probs, with_temperature(mean, 2.0)[0], rtol=1e-5)
    alone = [predict_pixels(model, v[None])[0] for v in views]
    assert not np.allclose(alone[0], alone[1])  # else the average would change nothing
    assert square[1].views is None  # a square photo: one view, the same as the others
    np.testing.assert_array_equal(
        square[1].pixels, classify_batch(model, files[1:], ["a", "b", "c"])[0][1].pixels
    )
    one = classify_bytes(model, files[0][1], ["a", "b", "c"], temperature=2.0, fit="three")
    np.testing.assert_allclose(one.probs, tall[1].probs, rtol=1e-5)


def test_each_picture_of_three_squares_is_as_familiar_as_its_most_familiar_square(model):
    from core import novelty

    train = smooth_images(300)
    check = novelty.fit(model, train)
    noise = np.random.default_rng(0).integers(0, 256, (32, 64, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.concatenate([train[0], noise], axis=1)).save(buf, "PNG")
    [(_, pred, _)] = classify_batch(
        model, [("w", buf.getvalue())], ["a", "b", "c"], check=check, fit="three"
    )
    scores = check.scores(pred.views)  # a training image, noise in the middle and at the end
    assert scores[0] < check.threshold < scores[1:].min()
    assert pred.novelty == pytest.approx(float(scores.min()), rel=1e-5) and not pred.unfamiliar


def test_the_command_line_frames_photos_as_the_models_card_suggests_or_as_asked(
    model, tmp_path, capsys
):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (tmp_path / "banded.png").write_bytes(_banded())
    out_csv, sheet = tmp_path / "answers.csv", tmp_path / "sheet.html"
    framings = {
        "squash": ("photos squashed whole", "the whole photo, squashed to a square"),
        "crop": ("photos cropped to their centre square", "the photo's centre square, cropped"),
        "three": ("each photo's answers from three of its squares", "three squares of the photo"),
    }
    cases = [  # the card's share of training images not square, the option, what is used
        (None, [], "squash"),  # a card that does not say: squashed, as before
        (None, ["--fit", "crop"], "crop"),
        (0.0, [], "crop"),  # learnt from square images
        (0.0, ["--fit", "squash"], "squash"),
        (0.8, [], "squash"),  # learnt from squashed ones
        (0.0, ["--fit", "three"], "three"),
    ]
    for not_square, option, fit in cases:
        data = {} if not_square is None else {"data": {"not_square": not_square}}
        (run / "model_card.json").write_text(json.dumps(data))
        photo = str(tmp_path / "banded.png")
        assert (
            classify_main([str(run), photo, "--csv", str(out_csv), "--report", str(sheet), *option])
            == 0
        )
        said, shown = framings[fit]
        assert f"; {said} (--fit " in capsys.readouterr().err
        [row] = csv.DictReader(out_csv.open())
        [(_, pred, _)] = classify_batch(model, [("b", _banded())], ["0", "1", "2"], fit=fit)
        probs = [float(row[f"p({n})"]) for n in ("0", "1", "2")]
        assert probs == pytest.approx(pred.probs.tolist(), rel=1e-5)
        assert f"<td>Framing</td><td>{escape(shown)}" in sheet.read_text()
    squashed, cropped = (
        classify_batch(model, [("b", _banded())], ["0", "1", "2"], fit=f)[0][1].probs
        for f in ONE_VIEW
    )
    assert not np.allclose(squashed, cropped, rtol=1e-5)  # else the probabilities tell nothing


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


def test_the_float_models_answers_and_its_check_come_from_one_forward_pass(model):
    from core import novelty

    check = novelty.fit(model, smooth_images(300))
    pixels = np.concatenate([smooth_images(5, seed=9), np.zeros((1, 32, 32, 3), np.uint8)])
    probs, scores = predict_checked(model, pixels, batch_size=4, check=check)
    np.testing.assert_allclose(probs, predict_pixels(model, pixels), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores, check.scores(pixels), rtol=1e-5)
    passes = []
    check.reader.means = None  # the means alone are not read: one model gives both
    check.reader.both.predict_on_batch = lambda x, f=check.reader.both.predict_on_batch: (
        passes.append(len(x)) or f(x)
    )
    predict_checked(model, pixels, batch_size=4, check=check)
    assert passes == [4, 2]
    # A check that reads another model (an int8 copy answering with the float model's
    # check), or test-time augmentation: the check reads its own model.
    other = build_model(preset_config("seed", num_classes=3))
    _, alone = predict_checked(other, pixels, check=novelty.fit(model, smooth_images(300)))
    np.testing.assert_allclose(alone, scores, rtol=1e-5)


# --- python -m core.classify -------------------------------------------------------------


def test_photo_files_walks_folders_in_order_and_names_what_it_passes_over(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    for name in ("b/deep/z.png", "b/a.jpg", "b/notes.txt", "b/.hidden.jpg", "b/scan.TIF"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "b" / ".git").mkdir()
    (tmp_path / "b" / ".git" / "c.png").write_bytes(b"x")
    found = photo_files([tmp_path / "b", tmp_path / "given.webp"])
    named = [(name, why) for name, _, why in found]
    b = tmp_path / "b"
    assert named == [
        (str(b / "a.jpg"), None),
        (str(b / "deep" / "z.png"), None),
        (str(b / "notes.txt"), "not an image file type (.txt)"),
        (str(b / "scan.TIF"), "TIFF pictures are not supported: convert it to JPEG or PNG"),
        (str(tmp_path / "given.webp"), None),  # a file given is read whatever it is called
    ]


def test_files_on_disk_are_classified_in_chunks_in_order_with_a_sentence_for_each_miss(
    model, tmp_path
):
    (tmp_path / "red.png").write_bytes(_png((255, 0, 0)))
    (tmp_path / "blue.png").write_bytes(_png((0, 0, 255)))
    (tmp_path / "broken.png").write_bytes(_png((0, 0, 255))[:60])
    with open(tmp_path / "huge.jpg", "wb") as f:  # sparse: refused from its size, unread
        f.truncate(MAX_UPLOAD_BYTES + 1)
    names = ["red.png", "missing.png", "huge.jpg", "broken.png", "blue.png"]
    files = [(n, tmp_path / n, None) for n in names] + [("a.txt", tmp_path / "a.txt", "why")]
    done = []
    results = classify_files(model, files, ["a", "b", "c"], chunk=2, progress=done.append)
    assert [name for name, _, _ in results] == [*names, "a.txt"]
    assert done == [2, 4, 6]
    errors = [error for _, _, error in results]
    assert errors[1] == "no such file" and f"the limit is {MAX_UPLOAD_BYTES:,} bytes" in errors[2]
    assert "truncated or damaged" in errors[3] and errors[5] == "why"
    direct = classify_batch(model, [("red", _png((255, 0, 0))), ("blue", _png((0, 0, 255)))], "abc")
    np.testing.assert_allclose(results[0][1].probs, direct[0][1].probs, rtol=1e-6)
    np.testing.assert_allclose(results[4][1].probs, direct[1][1].probs, rtol=1e-6)


def test_the_command_line_classifies_a_folder_with_the_models_classes_and_temperature(
    model, tmp_path, capsys
):
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    card = {"class_names": ["cat", "dog", "frog"], "calibration": {"temperature": 2.0}}
    (run / "model_card.json").write_text(json.dumps(card))
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "red.png").write_bytes(_png((255, 0, 0)))
    (photos / "blue.png").write_bytes(_png((0, 0, 255)))
    out_csv = tmp_path / "answers.csv"
    assert classify_main([str(run), str(photos), "--csv", str(out_csv), "--top", "2"]) == 0
    out, err = capsys.readouterr()
    expected = classify_batch(
        model,
        [("blue", _png((0, 0, 255))), ("red", _png((255, 0, 0)))],
        card["class_names"],
        temperature=2.0,
    )
    header, blue, red = out.splitlines()
    assert header.split() == ["file", "answer", "probability", "then", "note"]
    for line, (_, pred, _) in zip((blue, red), expected, strict=True):
        assert line.split()[1:3] == [pred.label, f"{pred.confidence:.1%}"]
        assert f"{pred.top[1][0]} {pred.top[1][1]:.1%}" in line and pred.top[2][0] not in line
    assert "probabilities after its temperature 2" in err and "2 of 2 files classified" in err
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["file"] for r in rows] == [str(photos / "blue.png"), str(photos / "red.png")]
    assert float(rows[1]["confidence"]) == pytest.approx(expected[1][1].confidence, rel=1e-5)
    probs = [float(rows[1][f"p({name})"]) for name in card["class_names"]]
    assert probs == pytest.approx(expected[1][1].probs.tolist(), rel=1e-5)  # after temperature

    (photos / "notes.txt").write_text("not a picture")
    (photos / "two\nlines.png").write_bytes(_png((0, 0, 255)))  # one row of the table still
    assert classify_main([str(run), str(photos)]) == 1  # a file not classified: said, rc 1
    out, err = capsys.readouterr()
    assert "not an image file type (.txt)" in out and "1 not: see their notes." in err
    assert len(out.splitlines()) == 1 + 4 and f"{photos}/two\\nlines.png  " in out
    assert classify_main([str(tmp_path / "nowhere"), str(photos)]) == 1
    assert "error: No model at" in capsys.readouterr().err
    nowhere = tmp_path / "no folder" / "answers.csv"
    assert classify_main([str(run), str(photos / "red.png"), "--csv", str(nowhere)]) == 1
    said = capsys.readouterr().err
    assert f"error: Could not write {nowhere}: No such file or directory." in said
    assert classify_main([str(run), str(tmp_path / "missing.png")]) == 1
    assert "no such file" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert classify_main([str(run), str(tmp_path / "empty")]) == 1
    assert "error: Those folders hold no files to classify." in capsys.readouterr().err
    # The shipped model by name, its ten classes and its own temperature.
    assert classify_main(["default", str(photos / "red.png")]) == 0
    out, err = capsys.readouterr()
    shipped = json.loads((DEFAULT_MODEL_DIR / "model_card.json").read_text())
    said = f"{len(shipped['class_names'])} classes; answers from its int8 copy "
    assert said in err  # as the Classify page: tests below
    said = f"; probabilities after its temperature {shipped['calibration']['temperature']:.4g}"
    assert said in err


def test_the_command_line_answers_from_the_int8_copy_as_the_classify_page_does(tmp_path, capsys):
    import shutil

    from core import quantize
    from core.model import load_model

    photo = tmp_path / "red.png"
    photo.write_bytes(_png((255, 0, 0)))
    card = json.loads((DEFAULT_MODEL_DIR / "model_card.json").read_text())
    names, temperature = card["class_names"], card["calibration"]["temperature"]

    def answered(*options) -> tuple[str, list[float]]:
        out_csv = tmp_path / "answers.csv"
        assert classify_main([*options, str(photo), "--csv", str(out_csv)]) == 0
        row = next(csv.DictReader(out_csv.open()))
        return capsys.readouterr().err, [float(row[f"p({name})"]) for name in names]

    def expected(answerer) -> list[float]:
        photos = [("red.png", _png((255, 0, 0)))]
        batch = classify_batch(answerer, photos, names, temperature=temperature)
        return batch[0][1].probs.tolist()

    copy, record, why = quantize.checked_copy(DEFAULT_MODEL_DIR / "model.keras")
    assert copy is not None and record is not None and why == ""
    err, probs = answered("default")
    assert "10 classes; answers from its int8 copy (--float32: the float32 model)" in err
    assert probs == pytest.approx(expected(copy), rel=1e-5)
    sheet = tmp_path / "sheet.html"  # the page's contact sheet, from the command line
    assert classify_main(["default", str(photo), "--report", str(sheet), "--tta"]) == 0
    said = sheet.read_text()
    assert "<td>Answered by</td><td>int8 copy, flip test-time augmentation</td>" in said
    assert "1 of 1 files classified" in said and said.count("<img ") == 1
    capsys.readouterr()
    err, probs = answered("default", "--float32")
    assert "10 classes; answers from the float32 model; probabilities" in err
    assert probs == pytest.approx(expected(load_model(DEFAULT_MODEL_DIR / "model.keras")), rel=1e-5)

    # A copy that computes otherwise on this CPU than where it was built is left unused.
    shipped = tmp_path / "shipped"
    shutil.copytree(DEFAULT_MODEL_DIR, shipped)
    kept = json.loads((shipped / quantize.RECORD_FILE).read_text())
    kept["probe_probs"] = (np.asarray(kept["probe_probs"]) + 0.5).tolist()
    (shipped / quantize.RECORD_FILE).write_text(json.dumps(kept))
    copy, record, why = quantize.checked_copy(shipped / "model.keras")
    assert copy is None and why.startswith("The int8 copy computes differently on this CPU")
    err, probs = answered(str(shipped / "model.keras"))
    assert why in err and "answers from the float32 model" in err


def test_a_batchs_heic_photos_go_to_one_decoding_process(model, monkeypatch):
    from tests.conftest import HEIC_PHOTO, heic_processes

    photos = [
        (name, (HEIC_PHOTO.parent / name).read_bytes())
        for name in ("photo.heic", "turned.heic", "transparent.heic")
    ]
    names = [f"c{i}" for i in range(model.output_shape[-1])]
    alone = [classify_bytes(model, data, names, fit="three") for _, data in photos]
    started = heic_processes(monkeypatch)
    results = classify_batch(model, [*photos, ("cut.heic", photos[0][1][:200])], names, fit="three")
    assert len(started) == 1  # one process for the batch, the cut file's refusal included
    for (_, pred, error), one in zip(results, alone, strict=False):
        assert error is None and pred.label == one.label
        np.testing.assert_allclose(pred.probs, one.probs, rtol=1e-5, atol=1e-6)
    assert results[-1][1] is None and "HEIC" in results[-1][2]
