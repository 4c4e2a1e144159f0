"""Exports: each format is written, loaded back by its own runtime and matches Keras."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image, ImageOps

from core import export, images
from core.export import ExportError
from core.model import ConvBlock, ModelConfig, build_model
from core.registry import DEFAULT_MODEL_DIR
from core.train import save_model_atomic
from tests.conftest import ROOT, class_images

CLASSES = ["red", "green", "blue"]


def _tiny_model(seed: int, precision: str = "float32") -> keras.Model:
    """A 16 px, 3-class model with batch norm, whose probabilities are far from uniform."""
    keras.utils.set_random_seed(seed)
    config = ModelConfig(
        input_size=16,
        num_classes=3,
        blocks=[ConvBlock(8, activation="gelu", batch_norm=True, padding="same"), ConvBlock(8)],
        dense=[16],
        precision=precision,
    )
    model = build_model(config)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.startswith("bn"):  # non-trivial running statistics
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, mean.shape), var + 0.5])
    probs = model.get_layer("probs")
    probs.set_weights([w * 30 for w in probs.get_weights()])
    return model


def _save(model, folder: Path) -> Path:
    path = folder / "model.keras"
    save_model_atomic(model, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One float32 tiny model exported once to every format (conversion is slowish)."""
    base = tmp_path_factory.mktemp("export")
    model = _tiny_model(0)
    source = _save(model, base / "run")
    results = {fmt: export.export_model(source, fmt) for fmt in export.FORMATS}
    return {"model": model, "source": source, "results": results}


def test_each_format_lands_in_the_run_and_matches_keras(exported):
    run_dir = exported["source"].parent
    x, _ = class_images(4, 3, size=16, seed=3)  # other images than the check batch
    expected = np.asarray(exported["model"](x.astype(np.float32), training=False))
    for fmt, result in exported["results"].items():
        assert result.path == run_dir / "exports" / fmt / export.ARTIFACTS[fmt]
        assert result.path.exists() and result.size_bytes == export.disk_size(result.path) > 0
        assert result.tolerance == export.FLOAT32_TOLERANCE
        assert 0 <= result.max_abs_diff <= export.FLOAT32_TOLERANCE
        got = export.run_export(fmt, result.path, x.astype(np.float32))
        np.testing.assert_allclose(got, expected, atol=export.FLOAT32_TOLERANCE, err_msg=fmt)
        assert expected.max() > 0.6  # peaked probabilities: a wrong export would show
        record = json.loads((result.path.parent / "export.json").read_text())
        assert record["format"] == fmt and record["max_abs_diff"] == result.max_abs_diff
        assert record["source"] == str(exported["source"])
    assert exported["results"]["keras"].max_abs_diff == 0.0
    assert exported["results"]["keras"].path.read_bytes() == exported["source"].read_bytes()
    assert not [p for p in (run_dir / "exports").iterdir() if p.name.startswith(".")]


def test_an_export_of_another_model_fails_the_check(exported):
    other = _tiny_model(1)
    for fmt, result in exported["results"].items():
        with pytest.raises(ExportError, match="does not match the Keras model"):
            export.verify_export(fmt, result.path, other)


def test_a_damaged_file_is_reported_not_run(exported, tmp_path):
    for fmt in ("keras", "tflite", "onnx"):
        damaged = tmp_path / export.ARTIFACTS[fmt]
        data = exported["results"][fmt].path.read_bytes()
        damaged.write_bytes(data[: len(data) // 2])
        with pytest.raises(ExportError, match="could not be loaded and run"):
            export.verify_export(fmt, damaged, exported["model"])
    broken = tmp_path / "saved_model"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ExportError, match="SavedModel export .* could not be loaded"):
        export.verify_export("savedmodel", broken, exported["model"])


def _photos() -> dict[str, bytes]:
    """Files the dashboard reads in different ways: scaled down, turned upright, put on
    white, enlarged."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (300, 500, 3), np.uint8)
    big, exif = Image.fromarray(pixels), Image.Exif()
    exif[0x0112] = 6  # the EXIF Orientation tag: stored on its side, shown upright
    alpha = (pixels[:40, :40, :1] > 128).astype(np.uint8) * 255
    clear = Image.fromarray(np.concatenate([pixels[:40, :40], alpha], axis=2))
    gif = Image.fromarray(pixels[:24, :30, 0] // 64).convert("P")
    gif.putpalette([0, 200, 0, 200, 0, 0, 0, 0, 200, 90, 90, 90] + [0] * 756)

    def saved(image, fmt, **params) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, fmt, **params)
        return buffer.getvalue()

    return {
        "large JPEG": saved(big, "JPEG", quality=90),
        "portrait JPEG": saved(big, "JPEG", exif=exif.tobytes()),
        "grey JPEG": saved(big.convert("L"), "JPEG"),
        "CMYK JPEG": saved(big.convert("CMYK"), "JPEG"),
        "transparent PNG": saved(clear, "PNG"),
        "grey-alpha PNG": saved(clear.convert("LA"), "PNG"),
        "GIF with a transparent colour": saved(gif, "GIF", transparency=0),
        "small PNG": saved(big.resize((20, 12)), "PNG"),
        "thin WebP": saved(clear.resize((400, 8)), "WEBP", lossless=True),
    }


@pytest.mark.parametrize("fit", images.FITS)
def test_the_snippets_prepare_a_photo_as_the_dashboard_does(tmp_path, fit):
    for kind, data in _photos().items():
        path = tmp_path / "photo"
        path.write_bytes(data)
        scope = {"np": np, "Image": Image, "ImageOps": ImageOps, "IMAGE": str(path), "SIZE": 32}
        exec(export.PREPARE[fit], scope)
        dashboard = images.decode_views(data, 32, fit=fit)  # one view, or three squares
        np.testing.assert_array_equal(scope["image"], dashboard, err_msg=kind)
        assert scope["image"].dtype == np.float32 and scope["image"].shape[1:] == (32, 32, 3)
        if kind == "portrait JPEG":  # three squares, from top to bottom once turned upright
            assert len(scope["image"]) == (3 if fit == "three" else 1)
    for other in images.FITS:  # the last photo (a thin WebP) tells the three apart
        if other != fit:
            assert not np.array_equal(scope["image"][0], images.decode_views(data, 32, other)[0])


@pytest.mark.parametrize("fit", ["squash", "three"])
def test_each_snippet_classifies_an_image_on_its_own(exported, tmp_path, fit):
    photo = tmp_path / "photo.png"
    photo.write_bytes(
        _photos()["transparent PNG" if fit == "squash" else "GIF with a transparent colour"]
    )
    views = images.decode_views(photo.read_bytes(), 16, fit)  # as the Classify page reads it
    assert len(views) == (1 if fit == "squash" else 3)  # a 30 x 24 GIF: three squares
    probs = np.asarray(exported["model"](views.astype(np.float32))).mean(axis=0)
    best = int(np.argmax(probs))
    # No project code on the path: the snippet runs from an empty folder.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    for fmt, result in exported["results"].items():
        code = export.snippet(fmt, result.path, 16, CLASSES, image=str(photo), fit=fit)
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        name, prob = out.stdout.strip().splitlines()[-1].split()
        assert name == CLASSES[best], fmt
        assert float(prob) == pytest.approx(float(probs[best]), abs=1e-4), fmt


def test_a_keras_snippet_imports_the_projects_own_layers_the_model_is_built_of(tmp_path):
    """The shipped fast model has a layer of this project's (ScaledBias): Keras cannot load
    its .keras file without it registered, so its snippet imports core.model."""
    from core.classify import classify_bytes
    from core.model import load_model

    shipped = DEFAULT_MODEL_DIR / "model.keras"
    project = export.project_layers(shipped)
    assert project == {"core.model": ["ScaledBias"]}
    (tmp_path / "tiny").mkdir()
    assert export.project_layers(_save(_tiny_model(0), tmp_path / "tiny")) == {}
    photo = tmp_path / "photo.png"
    photo.write_bytes(_photos()["large JPEG"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    said = []
    for layers in (project, None):
        code = export.snippet("keras", shipped, 32, image=str(photo), fit="crop", project=layers)
        assert ("import core.model  # this project's ScaledBias" in code) == bool(layers)
        run = [sys.executable, "-c", code]  # as a script saved in the project's folder
        said.append(subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True))
    assert said[1].returncode != 0 and "Could not locate class 'ScaledBias'" in said[1].stderr
    assert said[0].returncode == 0, said[0].stderr[-2000:]
    name, prob = said[0].stdout.split()
    expected = classify_bytes(
        load_model(shipped), photo.read_bytes(), list(export.EXAMPLE_CLASSES), fit="crop"
    )
    # The file computes in bf16 (the dashboard loads it in float32): the bf16 tolerance.
    assert name == expected.label
    assert float(prob) == pytest.approx(expected.confidence, abs=export.BFLOAT16_TOLERANCE)


def test_readme_shows_each_snippet_as_the_code_has_it():
    readme = (ROOT / "README.md").read_text()
    for fmt in export.FORMATS:
        assert export.snippet(fmt, export.example_path(fmt), 32) in readme, fmt
    squash, crop = (export.PREPARE[fit].splitlines() for fit in ("squash", "crop"))
    cropping = "\n".join(line for line in crop if line not in squash)  # the lines it changes
    assert f"```python\n{cropping}\n```" in readme


def test_a_bf16_model_exports_a_float32_copy_within_the_bf16_tolerance(tmp_path):
    model = _tiny_model(2, precision="mixed_bfloat16")
    assert export.is_bfloat16(model)
    copy = export.float32_copy(model)
    assert not export.is_bfloat16(copy)
    source = _save(model, tmp_path / "run")
    for fmt in ("savedmodel", "tflite", "onnx"):
        result = export.export_model(source, fmt)
        assert result.tolerance == export.BFLOAT16_TOLERANCE
        assert result.max_abs_diff <= export.BFLOAT16_TOLERANCE
        assert ("float32 copy" in result.note) == (fmt != "savedmodel")
        if fmt != "savedmodel":  # the conversion of the float32 copy is exact
            images = export.check_images(16)
            np.testing.assert_allclose(
                export.run_export(fmt, result.path, images),
                np.asarray(copy(images, training=False)),
                atol=export.FLOAT32_TOLERANCE,
            )


def test_the_shipped_model_exports_into_the_runs_folder_not_assets():
    before = sorted(p.name for p in DEFAULT_MODEL_DIR.iterdir())
    result = export.export_model("default", "keras")
    runs_dir = Path(os.environ["CNN_RUNS_DIR"])
    assert result.path == runs_dir / "default-model" / "exports" / "keras" / "model.keras"
    assert result.path.read_bytes() == (DEFAULT_MODEL_DIR / "model.keras").read_bytes()
    assert sorted(p.name for p in DEFAULT_MODEL_DIR.iterdir()) == before
    again = export.export_model("default", "keras")  # replaces the previous export
    assert again.path == result.path
    assert sorted(p.name for p in result.path.parent.parent.iterdir()) == ["keras"]


def test_downloads_are_the_file_or_a_zipped_savedmodel(exported):
    tfl = exported["results"]["tflite"]
    assert export.download_name(tfl) == ("model.tflite", "application/octet-stream")
    assert export.download_bytes(tfl) == tfl.path.read_bytes()
    saved = exported["results"]["savedmodel"]
    assert export.download_name(saved) == ("saved_model.zip", "application/zip")
    with zipfile.ZipFile(io.BytesIO(export.download_bytes(saved))) as archive:
        names = archive.namelist()
    assert "saved_model/saved_model.pb" in names
    assert any(n.startswith("saved_model/variables/") for n in names)


def test_cli_help_names_every_format(capsys):
    with pytest.raises(SystemExit) as exit_:
        export.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--format" in text and "{keras,savedmodel,tflite,onnx,onnx-int8,all}" in text


def test_cli_exports_a_run_by_name_and_prints_the_difference(capsys, tmp_path):
    run_dir = Path(os.environ["CNN_RUNS_DIR"]) / "20261125-120000-tiny"
    _save(_tiny_model(0), run_dir)
    assert export.main([run_dir.name, "--format", "keras", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "o" / "keras" / "model.keras"
    assert f"wrote keras: {written}" in out
    assert "max difference to Keras 0.00e+00 on 16 images (tolerance 1e-05)" in out
    assert written.is_file()


@pytest.mark.parametrize(
    "target, sentence",
    [
        ("no-such-run", "There is no model at 'no-such-run'"),
        ("../../etc", "There is no model at '../../etc'"),
        (str(ROOT / "README.md"), "README.md is not a .keras model file."),
    ],
)
def test_cli_bad_targets_get_one_sentence_and_exit_1(capsys, target, sentence):
    assert export.main([target, "--format", "keras"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and sentence in err
    assert "Traceback" not in err


def test_an_unknown_format_is_refused():
    with pytest.raises(ExportError, match="Unknown export format 'pt'"):
        export.export_model("default", "pt")


def test_onnx_unavailable_is_said_plainly(monkeypatch, capsys):
    # As on a machine where tf2onnx is not installed: importing it fails.
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    reason = export.onnx_unavailable_reason()
    assert reason.startswith("ONNX export is unavailable here: the converter and runtime ")
    assert "tf2onnx and onnxruntime" in reason and "choose another format" in reason
    assert export.main(["default", "--format", "onnx"]) == 1
    assert reason in capsys.readouterr().err


def test_the_int8_copy_exports_checked_against_its_own_answers(
    trained_run, image_folder, tmp_path, capsys
):
    from core import quantize

    source = trained_run / "model.keras"
    with pytest.raises(ExportError, match="^This model has no int8 copy yet"):
        export.export_model(source, export.INT8)
    assert export.main([str(trained_run), "--format", export.INT8]) == 1
    assert export.NO_INT8_COPY in capsys.readouterr().err
    assert not (trained_run / "exports" / export.INT8).exists()

    assert quantize.main([str(trained_run), "--data", str(image_folder)]) == 0
    result = export.export_model(source, export.INT8)
    assert result.path == trained_run / "exports" / export.INT8 / "model.int8.onnx"
    assert result.path.read_bytes() == quantize.int8_path(source).read_bytes()
    assert result.tolerance == quantize.PROBE_TOLERANCE and result.images == 32
    assert 0 <= result.max_abs_diff < 1e-5  # the same CPU: the same integers
    record = quantize.read_record(source)
    assert f"the same top class on {record['agreement']:.1%}" in result.note
    assert json.loads((result.path.parent / "int8.json").read_text()) == record
    assert "max difference to its answers where it was built" in result.summary()

    # The snippet, with nothing but onnxruntime, answers as the dashboard's copy does.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(_photos()["portrait JPEG"])
    resized = images.decode_image(photo.read_bytes(), 32)
    probs = quantize.Int8Model(result.path).predict_on_batch(resized[None])[0]
    code = export.snippet(export.INT8, result.path, 32, ["cat", "dog", "frog"], str(photo))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    name, prob = out.stdout.split()
    assert name == ["cat", "dog", "frog"][int(np.argmax(probs))]
    assert float(prob) == pytest.approx(float(probs.max()), abs=1e-4)

    # A copy that answers otherwise than its record says is not published.
    published = (result.path.parent / "export.json").read_bytes()
    record["probe_probs"] = (np.asarray(record["probe_probs"]) * 0.5).tolist()
    (trained_run / "int8.json").write_text(json.dumps(record))
    with pytest.raises(ExportError, match="does not answer as the copy did where it was built"):
        export.export_model(source, export.INT8)
    assert (result.path.parent / "export.json").read_bytes() == published  # the earlier one
    assert not [p for p in (trained_run / "exports").iterdir() if p.name.startswith(".")]


def test_an_int8_copy_built_again_during_its_export_is_refused(
    trained_run, image_folder, monkeypatch
):
    from core import quantize

    source = trained_run / "model.keras"
    assert quantize.main([str(trained_run), "--data", str(image_folder)]) == 0
    read = quantize.read_record

    def read_then_rebuilt(path):  # a build publishes another copy just after the read
        record = read(path)
        copy = quantize.int8_path(path)
        copy.write_bytes(copy.read_bytes() + b"\0")
        return record

    monkeypatch.setattr(quantize, "read_record", read_then_rebuilt)
    with pytest.raises(ExportError, match="^The int8 copy was built again while it was export"):
        export.export_model(source, export.INT8)
    assert not (trained_run / "exports" / export.INT8).exists()
    assert not [p for p in (trained_run / "exports").iterdir() if p.name.startswith(".")]


def test_exporting_all_formats_skips_the_int8_copy_of_a_model_without_one(capsys, tmp_path):
    run_dir = Path(os.environ["CNN_RUNS_DIR"]) / "20261125-120000-tiny"
    _save(_tiny_model(0), run_dir)
    assert export.main([run_dir.name, "--format", "all", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"skipped {export.INT8}: the model has no int8 copy" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(export.FORMATS)
    assert not export._has_no_int8_copy("default")  # the shipped model has one


def test_each_format_names_the_runtime_that_loads_it_back_with_its_version():
    import onnxruntime
    import tensorflow as tf

    from core.export import runtime_version

    # TensorFlow's CPU build (requirements.txt) is the package tensorflow-cpu.
    assert runtime_version("savedmodel") == f"tensorflow {tf.__version__}"
    assert runtime_version("keras") == f"keras {keras.__version__}"
    assert runtime_version("onnx") == f"onnxruntime {onnxruntime.__version__}"
