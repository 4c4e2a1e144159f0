"""The int8 copy: folding, GELU fusion, quantisation, its record, and classifying with it."""

import json
import os

import numpy as np
import pytest

from core import quantize
from core.model import build_model, folded_copy, preset_config


def _speed_model(seed=0):
    """A quick-preset model with batch-norm statistics and shifts far from their init,
    and a sharp head, so that folding and quantisation errors would show."""
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

    int8 = quantize.Int8Model(target)
    assert int8.input_shape[1:] == (32, 32, 3) and int8.output_shape[-1] == 4
    x = _images(200, seed=3)
    report = quantize.compare(int8, model, x, labels=np.zeros(len(x), int))
    assert report["agreement"] >= 0.9, report
    assert set(report) >= {"accuracy", "float32_accuracy", "max_prob_diff", "images"}
    probs = int8.predict_on_batch(x[:32])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Integer arithmetic: an image's answer does not depend on its batch-mates.
    for i in (0, 7, 31):
        np.testing.assert_array_equal(int8.predict_on_batch(x[i : i + 1])[0], probs[i])


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
    record = json.loads((trained_run / "int8.json").read_text())
    assert record["check_split"] == "val" and record["images"] > 0
    assert 0 <= record["accuracy"] <= 1 and 0 <= record["agreement"] <= 1
    assert quantize.read_record(trained_run / "model.keras") == record
    # Times do not matter (a git checkout writes files in any order), the model's bytes do:
    # a model written anew (a resumed run) is not the one the copy came from.
    os.utime(trained_run / "model.keras", (0, 0))
    assert quantize.read_record(trained_run / "model.keras") == record
    with open(trained_run / "model.keras", "ab") as f:
        f.write(b"\0")
    assert quantize.read_record(trained_run / "model.keras") is None


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
    from core.registry import DEFAULT_MODEL_DIR, default_model_path

    record = quantize.read_record(default_model_path())
    assert record is not None, "ship the model again: its int8 copy is missing or stale"
    card = json.loads((DEFAULT_MODEL_DIR / "model_card.json").read_text())
    assert card["int8"]["accuracy"] == record["accuracy"]
    assert record["float32_accuracy"] - record["accuracy"] < 0.01
    assert (DEFAULT_MODEL_DIR / quantize.INT8_FILE).stat().st_size < 3_000_000
