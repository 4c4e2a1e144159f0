import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from core import evaluate as ev
from core.errors import DataError
from core.train import TrainConfig, train
from tests.conftest import class_images


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    cm = ev.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_per_class_metrics_match_hand_computed_values():
    cm = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    m = ev.per_class_metrics(cm)
    # class 0: tp 1, predicted 2, true 2 -> P 1/2, R 1/2; class 1: P 1/2, R 1;
    # class 2: P 1, R 2/3, F1 = 2*(2/3)/(5/3) = 0.8
    np.testing.assert_allclose(m["precision"], [0.5, 0.5, 1.0])
    np.testing.assert_allclose(m["recall"], [0.5, 1.0, 2 / 3])
    np.testing.assert_allclose(m["f1"], [0.5, 2 / 3, 0.8])
    assert m["support"].tolist() == [2, 1, 3]
    avg = ev.averages(m)
    assert avg["macro"]["precision"] == pytest.approx(2 / 3)
    assert avg["weighted"]["recall"] == pytest.approx((2 * 0.5 + 1 * 1 + 3 * 2 / 3) / 6)


def test_a_class_never_predicted_has_zero_precision_not_nan():
    m = ev.per_class_metrics(ev.confusion_matrix([0, 1], [0, 0], 2))
    assert m["precision"].tolist() == [0.5, 0.0] and m["f1"][1] == 0.0


def test_a_class_without_images_has_no_recall_and_stays_out_of_the_averages():
    # A test folder without one of train/'s classes: "absent" (never the answer) and
    # "guessed" (answered once, wrongly) have no images; their recall is no figure, not 0.
    y = np.array([0, 0, 0, 1, 1])
    answers = np.array([0, 0, 1, 1, 3])
    names = ["cat", "dog", "absent", "guessed"]
    report = ev.report_from_probs(np.eye(4)[answers] * 0.9 + 0.025, y, names)
    m = report.per_class
    assert np.isnan(m["recall"][2:]).all() and np.isnan(m["f1"][2:]).all()
    assert np.isnan(m["precision"][2]) and m["precision"][3] == 0.0  # its answer was wrong
    np.testing.assert_allclose(m["recall"][:2], [2 / 3, 1 / 2])
    # Averages over cat and dog alone (the mean of four with two zeros was half of it).
    assert report.averages["macro"]["recall"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert report.averages["weighted"]["recall"] == pytest.approx(3 / 5)
    rows = {r["class"]: r for r in report.per_class_rows()}
    assert rows["absent"] == {
        "class": "absent",
        **dict.fromkeys(("precision", "recall", "f1"), None),
        "support": 0,
        **dict.fromkeys(("recall_low", "recall_high"), None),
    }
    assert rows["guessed"]["precision"] == 0.0 and rows["cat"]["recall_low"] > 0
    json.dumps(report.to_dict(), allow_nan=False)  # what a browser's JSON.parse reads
    assert report.to_dict()["per_class"]["absent"]["recall"] is None
    csv_rows = {r[0]: r for r in csv.reader(io.StringIO(report.per_class_csv()))}
    assert csv_rows["absent"] == ["absent", "", "", "", "0", "", ""]
    assert csv_rows["guessed"][1:4] == ["0.000000", "", ""]
    text = ev.format_report(report).splitlines()
    assert next(line for line in text if line.startswith("absent")).split() == [
        *("absent", "-", "-", "-", "0", "-")
    ]
    assert report.averages_summary().endswith(
        ", over the classes with images here: absent, guessed have none, so no recall or F1."
    )
    whole = ev.report_from_probs(np.eye(2)[[0, 1]], np.array([0, 1]), ["cat", "dog"])
    assert whole.averages_summary() == "Macro average F1 1.000 · weighted F1 1.000."


def test_top_confusions_are_the_largest_off_diagonal_cells():
    cm = np.array([[9, 3, 0], [3, 8, 1], [5, 0, 7]])
    assert ev.top_confusions(cm) == [(2, 0, 5), (0, 1, 3), (1, 0, 3), (1, 2, 1)]
    assert ev.top_confusions(cm, k=2) == [(2, 0, 5), (0, 1, 3)]  # ties row by row
    assert ev.top_confusions(np.diag([4, 5])) == []  # no mistakes, no pairs


def test_top_k_accuracy_and_log_loss_by_hand():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    y = np.array([1, 2, 2])
    assert ev.top_k_accuracy(probs, y, 1) == pytest.approx(1 / 3)
    assert ev.top_k_accuracy(probs, y, 2) == pytest.approx(2 / 3)
    assert ev.top_k_accuracy(probs, y, 3) == 1.0
    assert ev.log_loss(probs, y) == pytest.approx(-(np.log(0.3) + np.log(0.7) + np.log(0.1)) / 3)


def test_mistakes_are_sorted_by_confidence_and_least_confident_correct():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.55, 0.45]])
    y = np.array([1, 0, 1, 0])
    m = ev.mistakes(probs, y)
    assert m["index"].tolist() == [0, 1] and m["pred"].tolist() == [0, 1]
    np.testing.assert_allclose(m["confidence"], [0.9, 0.6])
    assert ev.least_confident_correct(probs, y).tolist() == [3, 2]


def test_evaluate_a_trained_model_with_and_without_tta(tiny_dataset):
    from core.model import load_model

    run_dir = train(TrainConfig(epochs=2, batch_size=16), tiny_dataset)
    model = load_model(run_dir / "model.keras")
    x, y = tiny_dataset.split("val")
    report = ev.evaluate(model, x, y, tiny_dataset.class_names, batch_size=4)
    assert report.probs.shape == (15, 3) and report.confusion.sum() == 15
    assert report.accuracy == pytest.approx(np.mean(report.probs.argmax(1) == y))
    tta = ev.evaluate(model, x, y, tiny_dataset.class_names, tta="flip")
    flipped = ev.predict_probs(model, x[:, :, ::-1])
    np.testing.assert_allclose(tta.probs, (report.probs + flipped) / 2, rtol=1e-4, atol=1e-6)
    # flip+shift: the flip pair weighs 1/2; each image shifted one pixel up-left and
    # down-right (border reflected, built here by hand), with its mirror, weighs 1/8.
    up_left = np.concatenate([x[:, 1:2], x[:, :-1]], axis=1)
    up_left = np.concatenate([up_left[:, :, 1:2], up_left[:, :, :-1]], axis=2)
    down_right = np.concatenate([x[:, 1:], x[:, -2:-1]], axis=1)
    down_right = np.concatenate([down_right[:, :, 1:], down_right[:, :, -2:-1]], axis=2)
    views = [x, x[:, :, ::-1]] + [v for s in (up_left, down_right) for v in (s, s[:, :, ::-1])]
    expected = sum(
        w * ev.predict_probs(model, v) for w, v in zip([4, 4, 2, 2, 2, 2], views, strict=True)
    )
    expected /= 16
    shifted = ev.evaluate(model, x, y, tiny_dataset.class_names, batch_size=4, tta="flip+shift")
    np.testing.assert_allclose(shifted.probs, expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(shifted.probs, tta.probs, atol=1e-4)
    with pytest.raises(ValueError, match="flip\\+shift"):
        ev.predict_probs(model, x, tta="shift")
    d = report.to_dict()
    assert d["count"] == 15 and set(d["per_class"]) == {"red", "green", "blue"}
    json.dumps(d)


def test_kept_probabilities_are_read_back_until_the_model_images_or_tta_change(
    trained_run, tmp_path, monkeypatch
):
    from core.model import load_model

    path = trained_run / "model.keras"
    model = load_model(path)
    x, _ = class_images(3, 3)  # 9 images
    calls = []
    probs = ev.kept_probs(model, path, x, batch_size=4, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(4, 9), (8, 9), (9, 9)]
    np.testing.assert_allclose(probs, ev.predict_probs(model, x), rtol=1e-5, atol=1e-7)
    assert ev.probs_are_kept(path, x)
    calls.clear()
    again = ev.kept_probs(model, path, x, progress=lambda d, n: calls.append((d, n)))
    assert calls == [] and np.array_equal(again, probs)  # read from disk, not predicted
    assert not ev.probs_are_kept(path, x, "flip")
    assert not ev.probs_are_kept(path, x[::-1])
    retrained = tmp_path / "retrained.keras"
    kernel = model.layers[-1].kernel
    kernel.assign(kernel.numpy() * 2)
    model.save(retrained)
    assert not ev.probs_are_kept(retrained, x)
    cache = tmp_path / "cache"
    (kept,) = cache.glob("probs-*.npy")
    kept.write_bytes(b"half written")
    assert ev.kept_probs(model, path, x, progress=lambda d, n: calls.append((d, n))).shape == (9, 3)
    assert calls == [(9, 9)]  # unreadable: predicted again
    monkeypatch.setattr(ev, "KEPT_PREDICTIONS", 2)
    for n in (3, 4, 5):
        ev.kept_probs(model, path, x[:n])
    assert sorted(len(np.load(f)) for f in cache.glob("probs-*.npy")) == [4, 5]  # newest two


def test_questions_about_the_same_model_and_images_hash_them_once(trained_run, monkeypatch):
    import os

    path = trained_run / "model.keras"
    x, _ = class_images(3, 3)
    reads, real = [], Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: reads.append(p) or real(p))
    monkeypatch.setattr(ev, "_DIGESTS", [])
    kept_path = ev._kept_path(ev._content_digest(path, x), "probs|none", "{}", None)
    for _ in range(3):
        assert not ev.probs_are_kept(path, x) and not ev.space_is_kept(path, x)
    assert reads.count(path) == 1
    # The same bytes in another array, or the file touched: hashed again, to the same key.
    assert ev._kept_path(ev._content_digest(path, x.copy()), "probs|none", "{}", None) == kept_path
    assert reads.count(path) == 2
    os.utime(path, ns=(1, 1))
    assert ev._kept_path(ev._content_digest(path, x), "probs|none", "{}", None) == kept_path
    assert reads.count(path) == 3
    y = x.copy()
    ev._content_digest(path, y)
    del y  # the remembered digest does not keep its images alive
    assert ev._DIGESTS[-1][1]() is None and ev._DIGESTS[-2][1]() is x


@pytest.mark.parametrize("tta", ["none", "flip+shift"])
def test_predictions_read_the_features_of_chosen_images_in_the_same_pass(trained_run, tta):
    import keras

    from core.inspect import classifier_input
    from core.model import load_model

    model = load_model(trained_run / "model.keras")
    x, _ = class_images(3, 4)  # 12 images
    rows = np.array([1, 2, 11])  # none in the second batch of five
    probs, features = ev.predict_probs(model, x, batch_size=5, tta=tta, features_of=rows)
    np.testing.assert_allclose(probs, ev.predict_probs(model, x, tta=tta), rtol=1e-5, atol=1e-7)
    reader = keras.Model(model.input, classifier_input(model))  # of the images as they are
    expected = reader.predict(x[rows].astype(np.float32), verbose=0)
    assert features.shape == (3, 64) and features.dtype == np.float32
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    _, none = ev.predict_probs(model, x, features_of=np.array([], int))
    assert none.shape == (0, 64)


def test_a_prediction_keeps_the_feature_space_of_its_images(trained_run, tmp_path):
    from core.inspect import feature_space
    from core.model import load_model

    path = trained_run / "model.keras"
    model = load_model(path)
    x, _ = class_images(3, 3)
    assert not ev.space_is_kept(path, x)
    ev.kept_probs(model, path, x, tta="flip")
    assert ev.space_is_kept(path, x) and not ev.space_is_kept(path, x[::-1])
    calls = []
    space = ev.kept_space(model, path, x, progress=lambda d, n: calls.append((d, n)))
    assert calls == []  # read from disk, kept by the prediction
    expected = feature_space(model, x)
    np.testing.assert_array_equal(space["index"], expected["index"])
    np.testing.assert_allclose(space["xy"], expected["xy"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(space["explained"], expected["explained"], rtol=1e-5)
    assert space["dims"] == expected["dims"] == 64
    (kept,) = (tmp_path / "cache").glob("space-*.npz")
    kept.write_bytes(kept.read_bytes()[:300])  # a torn zip: its start, no directory
    again = ev.kept_space(model, path, x[:5], progress=lambda d, n: calls.append((d, n)))
    assert calls == [(5, 5)] and again["xy"].shape == (5, 2)  # other images: computed
    calls.clear()
    ev.kept_space(model, path, x, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(9, 9)]  # unreadable: computed again


def test_a_model_without_a_dense_layer_is_predicted_and_has_no_space(tmp_path):
    import keras
    from keras import layers

    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(3, 3)(layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, layers.Softmax()(layers.GlobalAveragePooling2D()(x)))
    path = tmp_path / "convs.keras"
    model.save(path)
    images, _ = class_images(2, size=16)
    assert ev.kept_probs(model, path, images).shape == (6, 3)
    assert ev.probs_are_kept(path, images) and not ev.space_is_kept(path, images)
    with pytest.raises(ValueError, match="has no Dense layer"):
        ev.kept_space(model, path, images)


def test_mcnemar_p_matches_the_binomial_tail_by_hand():
    assert ev.mcnemar_p(0, 5) == pytest.approx(2 / 32)
    assert ev.mcnemar_p(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)  # C(10, k), k <= 2
    assert ev.mcnemar_p(8, 2) == ev.mcnemar_p(2, 8)
    assert ev.mcnemar_p(10, 10) == 1.0 and ev.mcnemar_p(0, 0) == 1.0
    # Large counts (the training split) stay finite: normal approximation 0.0059.
    assert ev.mcnemar_p(200, 260) == pytest.approx(0.00588, abs=2e-5)
    assert 0 < ev.mcnemar_p(20_000, 21_000) < 1e-5


def test_compare_sorts_out_the_images_only_one_model_gets_right():
    y = np.array([0, 1, 2, 0, 1])
    a = np.eye(3)[[0, 1, 0, 1, 1]] * 0.6 + 0.1  # right on 0, 1, 4
    b = np.eye(3)[[0, 2, 2, 0, 1]] * 0.6 + 0.1  # right on 0, 2, 3, 4
    a[3] = [0.05, 0.9, 0.05]  # a is surer of its mistake on image 3 than on image 2
    a, b = (ev.report_from_probs(p, y, list("abc")) for p in (a, b))
    diff = ev.compare(a, b)
    assert diff.both_right == 2 and diff.both_wrong == 0
    assert diff.only_a.tolist() == [1]
    assert diff.only_b.tolist() == [3, 2]  # a's most confident mistakes first
    assert diff.p_value == pytest.approx(ev.mcnemar_p(1, 2))
    assert diff.verdict("the first", "the second").startswith(
        "The second is ahead of the first, but that may be chance: of the 3 images"
    )
    with pytest.raises(ValueError, match="same images"):
        ev.compare(a, ev.report_from_probs(b.probs, y[::-1], list("abc")))


def test_a_temperature_is_fitted_back_and_keeps_every_prediction():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (20_000, 5))
    truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=p) for p in truth])  # labels as likely as `truth` says
    overconfident = ev.with_temperature(truth, 0.5)  # twice as sharp as it should be
    assert ev.fit_temperature(overconfident, y) == pytest.approx(2.0, abs=0.1)
    assert ev.fit_temperature(ev.with_temperature(truth, 2.0), y) == pytest.approx(0.5, abs=0.03)
    np.testing.assert_array_equal(ev.with_temperature(truth, 1.0), truth.astype(np.float32))
    np.testing.assert_array_equal(overconfident.argmax(1), truth.argmax(1))
    before = ev.calibration(overconfident, y)
    after = ev.calibration(ev.with_temperature(overconfident, 2.0), y)
    assert before.gap > 0.05 and before.summary().startswith("Overconfident: its confidence is")
    assert after.ece < 0.02 < before.ece
    record = ev.calibration_record(overconfident, y)
    assert record["temperature"] == pytest.approx(2.0, abs=0.1) and record["images"] == 20_000
    assert record["ece_scaled"] < record["ece"]
    assert ev.calibration_record(overconfident[:150], y[:150]) is None  # too few images
    right = np.eye(5)[y[:500]] * 0.9 + 0.02
    assert ev.calibration_record(right, y[:500]) is None  # no mistake to learn doubt from
    assert ev.too_few_to_calibrate(overconfident[:150], y[:150]) == (
        "150 validation images are too few to fit a temperature on (it takes 200 or more)."
    )
    right[:1] = np.roll(right[:1], 1, axis=1)  # one mistake
    assert ev.too_few_to_calibrate(right, y[:500]) == (
        "The model gets all but 1 of 500 validation images right: a temperature needs at least "
        "10 mistakes among them to fit on."
    )
    assert ev.too_few_to_calibrate(overconfident, y) is None


def test_the_held_out_error_scores_each_half_with_the_other_halfs_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (300, 4))
    truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=p) for p in truth])
    probs = ev.with_temperature(truth, 2.0)  # underconfident, as label smoothing leaves it
    halves = np.array_split(np.random.default_rng(0).permutation(300), 2)
    scaled = np.empty_like(probs)
    for fit_on, score_on in (halves, halves[::-1]):
        t = ev.fit_temperature(probs[fit_on], y[fit_on])
        scaled[score_on] = ev.with_temperature(probs[score_on], t)
    held_out = ev.held_out_ece(probs, y)
    assert held_out == pytest.approx(ev.calibration(scaled, y).ece)
    in_sample = ev.calibration(ev.with_temperature(probs, ev.fit_temperature(probs, y)), y).ece
    assert held_out != pytest.approx(in_sample)  # not the temperature fitted on all of them
    assert held_out < ev.calibration(probs, y).ece
    assert ev.calibration_record(probs, y)["ece_held_out"] == round(held_out, 4)


def test_a_cards_calibration_in_words_says_where_its_error_was_measured():
    record = {"temperature": 0.5446, "images": 5000, "ece": 0.1821, "ece_scaled": 0.0108}
    assert ev.calibration_note(record) == (
        "temperature 0.5446, fitted on 5,000 validation images; calibration error 0.182 "
        "before it, 0.011 after (on the images it was fitted on)"
    )
    assert ev.calibration_note(record | {"ece_held_out": 0.0131}).endswith(
        "0.013 after (on images it was not fitted on)"
    )


def test_calibration_bins_by_hand():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.65, 0.35], [0.3, 0.7]])
    c = ev.calibration(probs, y, bins=10)
    assert c.count.tolist() == [0] * 6 + [1, 1, 0, 2]  # tops 0.65, 0.7, 0.9 and 0.95
    assert c.accuracy[9] == 1.0 and c.accuracy[6] == 0.0 and np.isnan(c.accuracy[0])
    assert c.confidence[9] == pytest.approx(0.925)
    # |right - confidence| per bin over 4 images: (0.65 + 0.3 + 0.15) / 4
    assert c.ece == pytest.approx(1.1 / 4)
    assert c.gap == pytest.approx((0.95 + 0.9 + 0.65 + 0.7) / 4 - 0.75)
    sure_and_right = ev.calibration(np.eye(2) * 0.99 + 0.005, np.array([0, 1]))
    assert sure_and_right.summary().startswith("Calibrated")


def test_cli_prints_metrics_for_a_run(tmp_path, capsys):
    from core import train as train_mod
    from tests.conftest import write_cifar_archive

    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=10)
    assert train_mod.main(["--data", str(archive), "--epochs", "1", "--quiet"]) == 0
    run_dir = capsys.readouterr().out.strip().splitlines()[-1]
    out_json = tmp_path / "m.json"
    assert ev.main([run_dir, "--split", "test", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "macro avg" in out and "airplane" in out
    assert "\r" not in out and "10/10 - " in out  # to a file: the bar's last line only
    metrics = json.loads(out_json.read_text())
    assert metrics["count"] == 10 and len(metrics["confusion"]) == 10
    answers = tmp_path / "answers.csv"
    assert ev.main([run_dir, "--split", "test", "--answers", str(answers)]) == 0
    rows = list(csv.DictReader(answers.open()))
    right = [r["right"] == "True" for r in rows]
    assert len(rows) == 10 and {r["file"] for r in rows} == {""}  # an archive: no files
    assert f"accuracy {np.mean(right):.4f}" in capsys.readouterr().out
    # With a temperature in the card, the probabilities after it, as the page's download.
    card_path = Path(run_dir) / "model_card.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps(card | {"calibration": {"temperature": 2.0}}))
    assert ev.main([run_dir, "--split", "test", "--answers", str(answers)]) == 0
    columns = [k for k in rows[0] if k.startswith("p(")]
    before = np.array([[float(r[k]) for k in columns] for r in rows])
    after = np.array([[float(r[k]) for k in columns] for r in csv.DictReader(answers.open())])
    np.testing.assert_allclose(after, ev.with_temperature(before, 2.0), atol=2e-6)
    # The Evaluate page's HTML report, from the command line.
    html = tmp_path / "report.html"
    assert ev.main([run_dir, "--split", "test", "--report", str(html)]) == 0
    said = html.read_text()
    assert f"<h1>{Path(run_dir).name}: test split</h1>" in said
    assert f"<strong>{np.mean(right):.2%}</strong>" in said  # the accuracy, as above
    assert "Probabilities after its temperature 2." in said and said.count("plotly.js v") == 1
    wrong = len(right) - sum(right)
    assert f"of {wrong:,} wrong answers" in said if wrong else "No mistakes" in said
    nowhere = tmp_path / "no folder" / "answers.csv"
    assert ev.main([run_dir, "--split", "test", "--answers", str(nowhere)]) == 1
    assert f"could not write {nowhere}: No such file" in capsys.readouterr().err
    assert ev.main([run_dir, "--split", "test", "--tta"]) == 0
    assert "split 'test' with flip TTA" in capsys.readouterr().out
    assert ev.main([run_dir, "--split", "test", "--tta", "flip+shift"]) == 0
    assert "with flip+shift TTA" in capsys.readouterr().out
    assert ev.main([str(tmp_path / "missing")]) == 1
    assert "No model at" in capsys.readouterr().err


def test_cli_measures_robustness_on_as_many_images_of_each_class(trained_run, image_folder, capsys):
    from core import adversarial
    from core.data import load_dataset
    from core.inspect import curve_rows
    from core.model import load_model

    out_json = trained_run / "m.json"
    args = [str(trained_run), "--data", str(image_folder), "--split", "train"]
    assert ev.main([*args, "--robustness", "9", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    x, y = load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")
    rows = curve_rows(y, 9)  # 3 of each of the 3 classes
    assert len(rows) == 9 and np.bincount(y[rows]).tolist() == [3, 3, 3]
    found = adversarial.robustness(load_model(trained_run / "model.keras"), x[rows], y[rows])
    assert ev.format_robustness(found) in out and "\r" not in out
    assert out.splitlines()[-8].startswith("Robustness on 9 images")
    kept = json.loads(out_json.read_text())["robustness"]
    assert kept["images"] == 9 and kept["epsilons"] == [0, 1, 2, 4, 8, 16]
    np.testing.assert_allclose(kept["attacked"], found["attacked"])
    np.testing.assert_allclose(kept["noise"], found["noise"])
    # Without the option nothing is attacked and the JSON has no robustness.
    assert ev.main([*args, "--json", str(out_json)]) == 0
    assert "Robustness" not in capsys.readouterr().out
    assert "robustness" not in json.loads(out_json.read_text())


def test_a_model_is_scored_among_the_classes_of_a_dataset_of_some_of_them(
    trained_run, tmp_path, capsys
):
    """The run knows cat, dog and frog; a folder of "Frog" and "Cat" photos is scored among
    those two (its labels in its own order), with how it answered over all three. A folder
    with a class the model does not know is a sentence, where it was a traceback."""
    import shutil

    from core.data import load_dataset
    from core.model import load_model
    from tests.conftest import write_image_folder

    folder = tmp_path / "two"
    write_image_folder(folder, per_class=12, classes=("Cat", "dog", "Frog"), size=40)
    shutil.rmtree(folder / "dog")  # the others keep the colours the model learnt
    out_json = tmp_path / "m.json"
    args = [str(trained_run), "--data", str(folder), "--split", "train"]
    assert ev.main([*args, "--json", str(out_json), "--robustness", "2"]) == 0
    out = capsys.readouterr().out
    x, y = load_dataset(folder, val_fraction=0.25, seed=0).split("train")  # the run's
    probs = ev.predict_probs(load_model(trained_run / "model.keras"), x)
    among = probs[:, [0, 2]] / probs[:, [0, 2]].sum(axis=1, keepdims=True)  # Cat, Frog
    right = float(np.mean(probs.argmax(axis=1) == np.array([0, 2])[y]))
    assert "The model knows 3 classes and the dataset has 2 of them (Cat, Frog)" in out
    assert right > 0.5 and f"it was right on {right:.1%} of the {len(y)} images" in out
    kept = json.loads(out_json.read_text())
    assert kept["accuracy"] == pytest.approx(float(np.mean(among.argmax(axis=1) == y)))
    assert kept["all_classes"]["accuracy"] == pytest.approx(right)
    assert np.sum(kept["all_classes"]["confusion"]) == len(y)
    assert kept["robustness"]["images"] == 2
    html = tmp_path / "report.html"
    assert ev.main([*args, "--report", str(html)]) == 0
    assert "The model knows 3 classes and the dataset has 2 of them" in html.read_text()
    other = tmp_path / "other"
    write_image_folder(other, per_class=12, classes=("bird", "cat"), size=40)
    assert ev.main([str(trained_run), "--data", str(other)]) == 1
    err = capsys.readouterr().err
    assert "can score only images of classes it knows. It does not know bird." in err
    assert "Traceback" not in err


def test_class_subset_matches_names_loosely_and_refuses_unknown_ones():
    assert ev.class_subset(["cat", "dog"], 2, ["cat", "dog"]) is None  # its own: no map
    assert ev.class_subset(["cat", "dog", "frog"], 3, ["Frog ", "CAT"]) == [2, 0]
    assert ev.class_subset(["cat", "dog"], 2, ["dog", "cat"]) == [1, 0]
    assert ev.class_subset([], 2, ["a", "b"]) is None  # no names: the dataset's, if as many
    assert ev.class_subset(["Cat", "cat"], 2, ["cat"]) == [1]  # alike: the exact one
    for known, outputs, data, said in (
        (["Cat", "cat"], 2, ["CAT"], "It does not know CAT."),
        (["cat", "dog"], 2, ["cat", "bird"], "It does not know bird."),
        ([], 3, ["a", "b"], "The model answers 3 classes and the dataset has 2 (a, b)"),
    ):
        with pytest.raises(DataError, match=re.escape(said)):
            ev.class_subset(known, outputs, data)


def test_restricted_probabilities_and_all_answers():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])
    among = ev.restricted(probs, [0, 2])
    np.testing.assert_allclose(among, [[5 / 7, 2 / 7], [1 / 9, 8 / 9], [0.5, 0.5], [0.25, 0.75]])
    answers = ev.all_answers(probs, np.array([0, 1, 0, 1]), [0, 2], ["a", "b", "c"])
    assert answers["images"] == 4 and answers["right"] == 0.75  # all but image 2
    assert answers["outside"] == 0.25 and answers["others"] == [("b", 1)]
    assert answers["matrix"].tolist() == [[1, 1, 0], [0, 0, 2]]
    said = ev.subset_sentence(answers, ["a", "b", "c"], ["a", "c"])
    assert said.endswith(
        "it was right on 75.0% of the 4 images; on 25.0% it answered a "
        "class the dataset does not have (b 1)."
    )


def test_cells_csv_and_top_k_of_a_report():
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.9, 0.05, 0.05]])
    report = ev.report_from_probs(probs, np.array([1, 1, 1, 0]), ["a", "b", "c"])
    assert report.confusion.tolist() == [[1, 0, 0], [2, 1, 0], [0, 0, 0]]
    assert report.cell(1, 0).tolist() == [0, 1]  # 0.7 before 0.6
    assert report.cell(0, 0).tolist() == [3] and report.cell(2, 2).tolist() == []
    assert report.top_k(2, 2) == [("b", 0.8), ("a", pytest.approx(0.1))]
    lines = report.per_class_csv().splitlines()
    assert lines[0] == "class,precision,recall,f1,support,recall_low,recall_high"
    assert lines[1] == "a,0.333333,1.000000,0.500000,1,0.206543,1.000000"  # 1 of 1: Wilson
    assert lines[2].startswith("b,1.000000,0.333333,0.500000,3")
    assert lines[-1].startswith("weighted avg,")
    # A class folder's name may hold a comma or a quote: the row keeps its columns.
    odd = ev.report_from_probs(probs, np.array([1, 1, 1, 0]), ["cat, big", 'say "hi"', "c"])
    rows = list(csv.reader(io.StringIO(odd.per_class_csv())))
    assert [r[0] for r in rows[1:4]] == ["cat, big", 'say "hi"', "c"]
    assert {len(r) for r in rows} == {7}


def test_every_images_answer_as_csv_with_its_file():
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]], np.float32)
    report = ev.report_from_probs(probs, np.array([1, 0, 1]), ["cat, big", "dog", "frog"])
    files = np.array(["dog/1.jpg", "cat, big/2.png", "dog/3.webp"])
    rows = list(csv.DictReader(io.StringIO(report.predictions_csv(files))))
    assert list(rows[0]) == [
        *("index", "file", "label", "answer", "right", "probability"),
        *("p(cat, big)", "p(dog)", "p(frog)"),
    ]
    assert [(r["index"], r["file"], r["label"], r["answer"], r["right"]) for r in rows] == [
        ("0", "dog/1.jpg", "dog", "cat, big", "False"),
        ("1", "cat, big/2.png", "cat, big", "cat, big", "True"),
        ("2", "dog/3.webp", "dog", "dog", "True"),
    ]
    assert [float(rows[0][k]) for k in ("probability", "p(cat, big)", "p(frog)")] == (
        pytest.approx([0.7, 0.7, 0.1])
    )
    # A CIFAR-10 archive's images have no files: the column stays, empty.
    assert [r["file"] for r in csv.DictReader(io.StringIO(report.predictions_csv()))] == [""] * 3


def test_novelty_scores_are_kept_until_the_check_or_the_images_change(trained_run, tmp_path):
    from core import novelty
    from core.model import load_model

    path = trained_run / "model.keras"
    model = load_model(path)
    x, _ = class_images(3, 3)
    check = novelty.fit(model, class_images(100, 3)[0])
    assert not ev.novelty_is_kept(check, path, x)
    calls = []
    scores = ev.kept_novelty(check, path, x, progress=lambda d, n: calls.append((d, n)))
    np.testing.assert_allclose(scores, check.scores(x), rtol=1e-5)
    assert calls == [(9, 9)] and ev.novelty_is_kept(check, path, x)
    calls.clear()
    again = ev.kept_novelty(check, path, x, progress=lambda d, n: calls.append((d, n)))
    assert calls == [] and np.array_equal(again, scores)  # read from disk
    refitted = novelty.fit(model, class_images(100, 3, seed=1)[0])
    assert not ev.novelty_is_kept(refitted, path, x) and not ev.novelty_is_kept(check, path, x[1:])
    (kept,) = (tmp_path / "cache").glob("novelty-*.npy")
    kept.write_bytes(kept.read_bytes()[:100])  # torn
    ev.kept_novelty(check, path, x, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(9, 9)]  # unreadable: scored again


def test_wilson_intervals_match_published_values_and_cover_the_true_rate():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I,
    # the score method without continuity correction.
    low, high = ev.wilson_interval([81, 15, 0, 1], [263, 148, 20, 29])
    np.testing.assert_allclose(low, [0.2553, 0.0624, 0.0, 0.0061], atol=1e-4)
    np.testing.assert_allclose(high, [0.3662, 0.1605, 0.1611, 0.1718], atol=1e-4)
    assert ev.wilson_interval(0, 0) == (0.0, 1.0)  # nothing measured: anything goes
    # Drawn again and again from a known rate, about 95 in 100 intervals hold it.
    rng = np.random.default_rng(0)
    for rate, n in [(0.3, 50), (0.9, 200), (0.97, 1000)]:
        k = rng.binomial(n, rate, size=4000)
        low, high = ev.wilson_interval(k, n)
        assert 0.93 < np.mean((low <= rate) & (rate <= high)) < 0.97
        assert np.all((low >= 0) & (low <= k / n) & (k / n <= high) & (high <= 1))


def test_a_report_gives_its_accuracy_and_each_recall_an_interval(capsys):
    y = np.repeat([0, 1], [40, 160])
    answers = y.copy()
    answers[:10] = 1  # 30 of 40 a's right, 160 of 160 b's
    probs = np.eye(2)[answers] * 0.9 + 0.05
    report = ev.report_from_probs(probs, y, ["a", "b"])
    expected = [float(end) for end in ev.wilson_interval(190, 200)]
    assert report.accuracy_interval() == pytest.approx(expected)
    low, high = report.recall_intervals()
    np.testing.assert_allclose(
        low, [ev.wilson_interval(30, 40)[0], ev.wilson_interval(160, 160)[0]]
    )
    assert high[1] == 1.0 and low[0] < 0.75 < high[0]
    d = report.to_dict()
    assert d["accuracy_interval"] == pytest.approx(expected)
    assert d["per_class"]["a"]["recall_low"] == pytest.approx(low[0])
    text = ev.format_report(report)
    lo, hi = report.accuracy_interval()
    assert f"accuracy 0.9500 (95% interval {lo:.4f}-{hi:.4f})" in text
    row_a = next(line for line in text.splitlines() if line.startswith("a "))
    assert f"{low[0]:.3f}-{high[0]:.3f}" in row_a


def test_balanced_accuracy_counts_every_class_the_same():
    # Always the common class: 90% accurate, 50% balanced; a class with no images here
    # is left out of the mean rather than counted as a recall of 0.
    y = np.repeat([0, 1], [90, 10])
    probs = np.tile([0.8, 0.1, 0.1], (100, 1))
    report = ev.report_from_probs(probs, y, ["common", "rare", "absent"])
    assert report.accuracy == pytest.approx(0.9)
    assert report.balanced_accuracy() == pytest.approx(0.5)
    assert report.to_dict()["balanced_accuracy"] == pytest.approx(0.5)
    assert "balanced accuracy 0.5000 (the mean of the class recalls)" in ev.format_report(report)
    answers = np.r_[np.zeros(80, int), np.ones(10, int), np.ones(10, int)]  # 80/90, 10/10
    report = ev.report_from_probs(np.eye(3)[answers], y, ["common", "rare", "absent"])
    assert report.balanced_accuracy() == pytest.approx((80 / 90 + 1) / 2)


def test_answering_only_the_surest_images_measures_coverage_and_accuracy():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
    curve = ev.selective(probs, np.array([0, 1, 1, 0]), points=4)
    # Surest first: 0.9 right, 0.8 right, 0.6 wrong, 0.55 wrong.
    assert curve["coverage"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert curve["accuracy"].tolist() == pytest.approx([1, 1, 2 / 3, 1 / 2])
    assert curve["threshold"].tolist() == pytest.approx([0.9, 0.8, 0.6, 0.55])
    # A temperature moves the thresholds, never the curve.
    sharp = ev.selective(ev.with_temperature(probs, 0.5), np.array([0, 1, 1, 0]), points=4)
    assert sharp["accuracy"].tolist() == curve["accuracy"].tolist()
    assert (sharp["threshold"] > curve["threshold"]).all()
    many = ev.selective(np.random.default_rng(0).dirichlet(np.ones(3), 1000), np.zeros(1000, int))
    assert len(many["coverage"]) == 100 and many["coverage"][-1] == 1
    assert ev.selective(np.zeros((0, 3)), np.zeros(0, int))["coverage"].size == 0
    # A share reads the first point that answers at least that much.
    assert ev.selective_at(curve, 0.5) == pytest.approx((0.5, 1.0, 0.8))
    assert ev.selective_at(curve, 0.6) == pytest.approx((0.75, 2 / 3, 0.6))
    assert ev.selective_at(curve, 1.0) == pytest.approx((1.0, 0.5, 0.55))
