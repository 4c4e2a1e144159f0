"""The int8 copy: folding, GELU fusion, quantisation, its record, and classifying with it."""

import json
import os

import numpy as np
import pytest

from core import quantize
from core.model import build_model, folded_copy, preset_config


def _speed_model(seed=0):
    """A quick-preset model with batch-norm statistics and shifts far from their init,
    and a sharp head, so that folding and quantisation errors would show. The same model
    whatever ran before: Keras draws the layers it leaves alone from its global seed."""
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(preset_config("quick", num_classes=4))
    for layer in model.layers:
        if layer.name.startswith("bn"):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 2, n))
            layer.moving_variance.assign(rng.uniform(0.05, 4, n))
        elif layer.name.startswith("shift"):
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape[0]))
        elif layer.name.startswith("conv") or layer.name == "logits":
            layer.kernel.assign(rng.normal(0, 0.2, layer.kernel.shape))
    logits = model.get_layer("logits")
    logits.kernel.assign(np.asarray(logits.kernel) * 40)
    return model


def _images(n, seed=1):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.float32)
    return np.repeat(np.repeat(small, 4, axis=1), 4, axis=2).astype(np.uint8)  # smooth-ish


def test_folding_batch_norm_and_shifts_keeps_the_probabilities():
    model = _speed_model()
    folded = folded_copy(model)
    x = _images(16).astype(np.float32)
    np.testing.assert_allclose(
        folded.predict_on_batch(x), model.predict_on_batch(x), atol=2e-5, rtol=0
    )
    kinds = {type(layer).__name__ for layer in folded.layers}
    assert "BatchNormalization" not in kinds and "ScaledBias" not in kinds


def test_the_folded_copy_gives_the_channel_means_the_check_reads():
    """A folded convolution computes the original's output times the slope plus a bias;
    the copy's means outputs take that off again, so they are the float model's own."""
    from core.novelty import mean_reader, novelty_layers

    model = _speed_model()
    names = novelty_layers(model)
    assert names == ["conv1_1", "conv2_1", "conv3_1"]  # the deepest size (4x4) left out
    probs, *means = folded_copy(model, names).predict_on_batch(_images(16).astype(np.float32))
    np.testing.assert_allclose(probs, model.predict_on_batch(_images(16)), atol=2e-5, rtol=0)
    for got, want in zip(means, mean_reader(model, names)[1](_images(16)), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3)  # float32 sums ~1,000
    with pytest.raises(ValueError, match="no layer computing bn1_1"):
        folded_copy(model, ["conv1_1", "bn1_1"])


def test_folding_refuses_a_model_of_another_layout():
    with pytest.raises(ValueError, match="not a speed-layout model"):
        folded_copy(build_model(preset_config("seed")))


def test_the_int8_copy_fuses_every_gelu_and_answers_like_the_float_model(tmp_path):
    import onnx

    model = _speed_model()
    target = quantize.build_int8(model, _images(128, seed=2), tmp_path / "m.int8.onnx")
    ops = [n.op_type for n in onnx.load(str(target)).graph.node]
    gelus = sum(layer.name.startswith("act") for layer in model.layers)
    assert ops.count("Gelu") == gelus == 7 and "Erf" not in ops
    assert ops.count("Conv") == 7 and "QuantizeLinear" in ops and "BatchNormalization" not in ops
    assert target.stat().st_size < 0.4 * 4 * model.count_params()  # 8-bit weights
    # 7-bit weights: AVX2 CPUs without VNNI add pairs of 8-bit products into 16 bits.
    weights = [
        onnx.numpy_helper.to_array(t)
        for t in onnx.load(str(target)).graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    assert sum(w.ndim > 1 for w in weights) == 8  # 7 kernels and the head (and zero points)
    assert max(int(np.abs(w).max()) for w in weights) <= 64

    int8 = quantize.Int8Model(target)
    assert int8.input_shape[1:] == (32, 32, 3) and int8.output_shape[-1] == 4
    x = _images(200, seed=3)
    report = quantize.compare(int8, model, x, labels=np.zeros(len(x), int))
    assert report["agreement"] >= 0.9, report
    assert set(report) >= {"accuracy", "float32_accuracy", "max_prob_diff", "images"}
    probs = int8.predict_on_batch(x[:32])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert int8.means_layers == ("conv1_1", "conv2_1", "conv3_1")  # named in the graph
    same, *means = int8.predict_with_means(x[:32])
    np.testing.assert_array_equal(same, probs)
    assert [m.shape for m in means] == [(32, 48), (32, 96), (32, 96)]
    for a, b in zip(means, int8.channel_means(x[:32]), strict=True):
        np.testing.assert_array_equal(a, b)
    # Integer arithmetic: an image's answer does not depend on its batch-mates.
    for i in (0, 7, 31):
        np.testing.assert_array_equal(int8.predict_on_batch(x[i : i + 1])[0], probs[i])


def test_the_int8_copy_has_its_own_check_read_in_the_pass_that_answers(tmp_path):
    """The float check's statistics do not hold for 8-bit means; the copy's own, fitted on
    them, does: noise flagged, one pass of the graph per batch for answers and check."""
    import io

    from PIL import Image

    from core import novelty
    from core.classify import classify_batch, predict_checked
    from core.evaluate import predict_probs
    from tests.conftest import smooth_images

    model = _speed_model()
    int8 = quantize.Int8Model(quantize.build_int8(model, _images(64), tmp_path / "m.int8.onnx"))
    record = novelty.write(
        int8, int8.path, smooth_images(400), smooth_images(50, seed=5), path=tmp_path / "c.npz"
    )
    assert record["layers"] == ["conv1_1", "conv2_1", "conv3_1"] and record["val_flagged"] < 0.2
    check = novelty.load(tmp_path / "c.npz", int8, int8.path)
    assert check is not None and check.reader == int8.channel_means
    calls = []
    run = int8.session.run
    int8.session = type("Counted", (), {"run": lambda self, *a: calls.append(1) or run(*a)})()
    noise = np.random.default_rng(0).integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    probs, scores = predict_checked(int8, noise, batch_size=256, check=check)
    assert len(calls) == 2  # two batches, each one pass
    np.testing.assert_array_equal(probs, predict_probs(int8, noise))
    np.testing.assert_allclose(scores, check.scores(noise), rtol=1e-5)
    assert check.unfamiliar(scores).mean() > 0.9
    calls.clear()  # with the mirror images averaged, the check reads the plain ones again
    flipped, again = predict_checked(int8, noise[:10], tta="flip", check=check)
    assert len(calls) == 3
    np.testing.assert_array_equal(flipped, predict_probs(int8, noise[:10], tta="flip"))
    np.testing.assert_allclose(again, scores[:10], rtol=1e-5)
    buf = io.BytesIO()
    Image.fromarray(noise[0]).save(buf, "PNG")
    ((_, pred, _),) = classify_batch(
        int8, [("noise.png", buf.getvalue())], list("abcd"), check=check
    )
    assert pred.unfamiliar and pred.novelty == pytest.approx(float(scores[0]), rel=1e-5)
    # A check records the copy it was fitted on: a rebuilt copy does not get it.
    with open(int8.path, "ab") as f:
        f.write(b"\0")
    assert novelty.load(tmp_path / "c.npz", int8, int8.path) is None


def test_a_copy_built_before_copies_gave_channel_means_gets_no_check_of_its_own(tmp_path):
    import onnx

    from core import novelty

    target = quantize.build_int8(_speed_model(), _images(64), tmp_path / "m.int8.onnx")
    graph = onnx.load(str(target))
    del graph.metadata_props[:]
    onnx.save(graph, str(target))
    old = quantize.Int8Model(target)
    assert old.means_layers == () and old.predict_on_batch(_images(2)).shape == (2, 4)
    with pytest.raises(ValueError, match="no channel means"):
        novelty.fit(old, _images(300))


def test_a_damaged_int8_file_is_a_sentence(tmp_path):
    bad = tmp_path / "model.int8.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(quantize.QuantizeError, match="model.int8.onnx could not be loaded"):
        quantize.Int8Model(bad)


def test_a_folder_that_cannot_be_written_is_a_sentence(tmp_path):
    with pytest.raises(quantize.QuantizeError, match="could not be written to"):
        quantize.build_int8(_speed_model(), _images(8), tmp_path / "missing" / "m.onnx")


def test_no_calibration_images_is_refused(tmp_path):
    with pytest.raises(quantize.QuantizeError, match="at least one training image"):
        quantize.build_int8(_speed_model(), _images(0), tmp_path / "x.onnx")


def test_the_cli_writes_a_checked_copy_of_a_run_and_it_goes_stale_with_the_model(
    trained_run, image_folder, capsys
):
    assert quantize.read_record(trained_run / "model.keras") is None
    assert not isinstance(
        quantize.default_answerer(trained_run / "model.keras"), quantize.Int8Model
    )
    assert quantize.main([str(trained_run), "--data", str(image_folder)]) == 0
    assert isinstance(quantize.default_answerer(trained_run / "model.keras"), quantize.Int8Model)
    out = capsys.readouterr().out
    assert "model.int8.onnx" in out and "same answer on" in out
    # 27 training images: too few to learn what they look like, said and not fatal
    assert "no check for unfamiliar pictures: 27 training images are too few" in out
    record = json.loads((trained_run / "int8.json").read_text())
    assert (
        record["novelty"] is None
        and not quantize.novelty_path(trained_run / "model.keras").exists()
    )
    assert record["check_split"] == "val" and record["images"] > 0
    assert 0 <= record["accuracy"] <= 1 and 0 <= record["agreement"] <= 1
    assert quantize.read_record(trained_run / "model.keras") == record
    # A copy from before 7-bit weights answers wrongly on CPUs without VNNI: stale.
    (trained_run / "int8.json").write_text(json.dumps(record | {"weight_bits": None}))
    assert quantize.read_record(trained_run / "model.keras") is None
    (trained_run / "int8.json").write_text(json.dumps(record))
    copy = (trained_run / quantize.INT8_FILE).read_bytes()
    # A build ended between writing a new copy and its record: that copy was not checked.
    (trained_run / quantize.INT8_FILE).write_bytes(copy + b"\0")
    assert quantize.read_record(trained_run / "model.keras") is None
    (trained_run / quantize.INT8_FILE).write_bytes(copy)
    assert quantize.read_record(trained_run / "model.keras") == record
    # Times do not matter (a git checkout writes files in any order), the model's bytes do:
    # a model written anew (a resumed run) is not the one the copy came from.
    os.utime(trained_run / "model.keras", (0, 0))
    assert quantize.read_record(trained_run / "model.keras") == record
    with open(trained_run / "model.keras", "ab") as f:
        f.write(b"\0")
    assert quantize.read_record(trained_run / "model.keras") is None


def test_a_record_that_cannot_be_written_is_a_sentence_and_the_card_is_kept(
    trained_run, image_folder, capsys
):
    """One sentence for every caller (the CLI, the Evaluate page), not an OSError."""
    from core.data import load_dataset

    card = (trained_run / "model_card.json").read_bytes()
    (trained_run / "int8.json").mkdir()  # where the record goes: the rename over it fails
    dataset = load_dataset(image_folder, val_fraction=0.25, seed=0)
    sentence = "The int8 copy's record could not be written: Is a directory."
    with pytest.raises(quantize.QuantizeError, match=f"^{sentence}$"):
        quantize.quantize(trained_run / "model.keras", dataset, log=lambda line: None)
    assert (trained_run / "model_card.json").read_bytes() == card
    assert quantize.main([str(trained_run), "--data", str(image_folder)]) == 1
    assert capsys.readouterr().err.strip() == f"error: {sentence}"


def test_data_that_is_not_the_models_is_refused_before_anything_is_written(
    trained_run, image_folder
):
    from core.data import load_dataset

    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    before = sorted(p.name for p in trained_run.iterdir())
    dataset = load_dataset(image_folder, val_fraction=0.25, seed=0)
    sizes = card["data"]["split_sizes"]
    assert sizes == {"train": 27, "val": 9}
    card_path.write_text(json.dumps(card | {"class_names": ["ant", "bee", "cow"]}))
    with pytest.raises(quantize.QuantizeError, match="^The data has other classes than the"):
        quantize.quantize(trained_run / "model.keras", dataset, log=lambda line: None)
    # Same classes, another split (another seed, say): the check would score training images.
    other = load_dataset(image_folder, val_fraction=0.5, seed=0)
    card_path.write_text(json.dumps(card))
    with pytest.raises(quantize.QuantizeError) as refused:
        quantize.quantize(trained_run / "model.keras", other, log=lambda line: None)
    assert str(refused.value) == (
        "The data splits into 18 train, 18 val images where the model's run had 27 train, "
        "9 val: build its int8 copy from the data it was trained on."
    )
    assert sorted(p.name for p in trained_run.iterdir()) == before


def test_the_card_keeps_what_was_written_to_it_while_the_copy_was_built(trained_run, image_folder):
    from core.data import load_dataset

    card_path = trained_run / "model_card.json"

    def meanwhile(line: str) -> None:  # as the Evaluate page fitting a temperature
        card = json.loads(card_path.read_text())
        card_path.write_text(json.dumps(card | {"calibration": {"temperature": 1.5}}))

    dataset = load_dataset(image_folder, val_fraction=0.25, seed=0)
    record = quantize.quantize(trained_run / "model.keras", dataset, log=meanwhile)
    card = json.loads(card_path.read_text())
    assert card["calibration"] == {"temperature": 1.5}
    assert card["int8"]["agreement"] == record["agreement"]


def test_a_rebuild_that_does_not_finish_leaves_the_copy_in_use_as_it_was(trained_run, image_folder):
    from core.data import load_dataset

    model_path = trained_run / "model.keras"
    dataset = load_dataset(image_folder, val_fraction=0.25, seed=0)
    record = quantize.quantize(model_path, dataset, log=lambda line: None)
    copy = quantize.int8_path(model_path).read_bytes()

    def stopped(line: str) -> None:  # stopped (or failed) once the new copy is checked
        if "same answer on" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        quantize.quantize(model_path, dataset, log=stopped)
    assert quantize.int8_path(model_path).read_bytes() == copy
    assert quantize.read_record(model_path) == record
    assert not list(trained_run.glob(".int8.*"))  # the folder it built in is gone


def test_the_check_times_both_models_one_image_at_a_time_and_after_the_first_batch(tmp_path):
    model = _speed_model()
    int8 = quantize.Int8Model(quantize.build_int8(model, _images(64), tmp_path / "m.onnx"))
    timed = quantize.compare(int8, model, _images(24), batch=8)
    one = timed["int8_ms_per_image"], timed["float32_ms_per_image"]
    batches = timed["int8_images_per_s"], timed["float32_images_per_s"]
    assert min(one) > 0 and min(batches) > 0
    assert quantize.speed_note(timed) == (
        f"Where it was built, one image took {one[0]:.1f} ms with the copy and {one[1]:.1f} "
        f"ms with the float32 model ({one[1] / one[0]:.1f}x as fast); batches: "
        f"{batches[0]:,.0f} against {batches[1]:,.0f} images/s ({batches[0] / batches[1]:.1f}x)."
    )
    one_batch = quantize.compare(int8, model, _images(8), batch=8)  # all of it pays tracing
    assert "int8_images_per_s" not in one_batch
    assert quantize.speed_note(one_batch).endswith("as fast).")
    assert quantize.speed_note({"accuracy": 0.9}) is None  # a record from before speeds


def test_the_cli_says_what_is_missing(capsys, tmp_path):
    assert quantize.main([str(tmp_path / "nothing"), "--data", str(tmp_path)]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_classifying_uploads_with_the_int8_copy(tmp_path):
    import io

    from PIL import Image

    from core.classify import classify_batch

    model = _speed_model()
    int8 = quantize.Int8Model(quantize.build_int8(model, _images(64), tmp_path / "model.int8.onnx"))
    buf = io.BytesIO()
    Image.fromarray(_images(1)[0]).save(buf, "PNG")
    names = ["a", "b", "c", "d"]
    results = classify_batch(int8, [("ok.png", buf.getvalue()), ("bad.jpg", b"nope")], names)
    (_, good, none), (_, missing, error) = results
    assert none is None and good.label in names and 0 < good.confidence <= 1
    assert missing is None and error


def test_the_shipped_model_has_a_current_checked_int8_copy():
    from core import novelty
    from core.classify import predict_pixels
    from core.model import load_model
    from core.registry import DEFAULT_MODEL_DIR, default_model_path
    from tests.conftest import smooth_images

    record = quantize.read_record(default_model_path())
    assert record is not None, "ship the model again: its int8 copy is missing or stale"
    card = json.loads((DEFAULT_MODEL_DIR / "model_card.json").read_text())
    assert card["int8"]["accuracy"] == record["accuracy"]
    assert record["float32_accuracy"] - record["accuracy"] < 0.01
    assert (DEFAULT_MODEL_DIR / quantize.INT8_FILE).stat().st_size < 3_000_000
    # It answers as the float model on this CPU too (not only where it was built).
    int8, x = quantize.Int8Model(DEFAULT_MODEL_DIR / quantize.INT8_FILE), smooth_images(200)
    want, got = predict_pixels(load_model(default_model_path()), x), int8.predict_on_batch(x)
    # Measured on these pictures unlike CIFAR's, without VNNI: 87.5% the same answer and
    # 0.07 apart (sum over classes); the copy with 8-bit weights 49% and 0.42.
    assert np.mean(got.argmax(axis=1) == want.argmax(axis=1)) > 0.75
    assert np.abs(got - want).sum(axis=1).mean() < 0.15
    assert quantize.drift(int8, record) <= quantize.PROBE_TOLERANCE  # as where it was built
    check = novelty.load(quantize.novelty_path(default_model_path()), int8, int8.path)
    assert check is not None and card["int8"]["novelty"]["val_flagged"] < 0.02


def test_a_transfer_model_has_a_float32_copy_and_check_layers_that_are_pictures():
    """MobileNetV3 (random weights: no ImageNet file here): its graph holds Keras ops
    (`x + y`), which the float32 copy (ONNX exports, the int8 copy) used to refuse to
    clone, and 1x1 squeeze-and-excite maps, which are not pictures to measure. (Its int8
    copy then builds, with these layers' means: 20-26 s, tried by hand.)"""
    from dataclasses import replace

    from core import novelty
    from core.model import float32_copy

    model = build_model(replace(preset_config("mobilenet", 32, 3), pretrained=False))
    x = _images(8)
    np.testing.assert_allclose(
        float32_copy(model).predict_on_batch(x), model.predict_on_batch(x), atol=1e-6
    )
    from core.inspect import map_layers

    assert all(model.get_layer(n).output.shape[1] > 1 for n in map_layers(model))
    names = novelty.novelty_layers(model)
    sizes = [model.get_layer(n).output.shape[1] for n in names]
    assert sizes == [16, 8, 4]  # input side first; 2x2 (the deepest) and 1x1 left out
