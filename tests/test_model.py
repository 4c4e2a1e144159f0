import ast
from pathlib import Path

import keras
import numpy as np
import pytest

from core.errors import RunError
from core.model import (
    PRESETS,
    ConvBlock,
    ModelConfig,
    build_model,
    load_model,
    preset_config,
    summary_rows,
)

ROOT = Path(__file__).resolve().parent.parent


def test_seed_preset_is_exactly_the_classic_keras_cifar10_cnn():
    model = build_model(preset_config("seed"))
    kinds = [(type(layer).__name__, layer.output.shape[1:]) for layer in model.layers[1:]]
    assert kinds == [
        ("Rescaling", (32, 32, 3)),
        ("Conv2D", (30, 30, 32)),
        ("Activation", (30, 30, 32)),
        ("MaxPooling2D", (15, 15, 32)),
        ("Dropout", (15, 15, 32)),
        ("Conv2D", (13, 13, 64)),
        ("Activation", (13, 13, 64)),
        ("MaxPooling2D", (6, 6, 64)),
        ("Dropout", (6, 6, 64)),
        ("Flatten", (2304,)),
        ("Dense", (64,)),
        ("Dropout", (64,)),
        ("Dense", (10,)),
    ]
    assert model.count_params() == 896 + 18_496 + 147_520 + 650
    drops = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert drops == [0.25, 0.25, 0.5]


def test_rescaling_is_inside_the_model():
    model = build_model(preset_config("seed"))
    rescale = model.get_layer("rescale")
    assert rescale.scale == pytest.approx(1 / 255)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_output_probabilities_for_uint8_input(name):
    model = build_model(preset_config(name, num_classes=4))
    x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    probs = np.asarray(model(x.astype("float32")))
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_custom_builder_honours_every_choice():
    config = ModelConfig(
        input_size=64,
        num_classes=5,
        blocks=[
            ConvBlock(
                8,
                kernel_size=5,
                convs=2,
                activation="elu",
                batch_norm=True,
                padding="same",
                dropout=0.1,
            ),
            ConvBlock(16, kernel_size=3, activation="tanh"),
        ],
        pooling="avg",
        head="global_avg",
        dense=[32, 16],
        dense_dropout=0.2,
    )
    model = build_model(config)
    assert model.input_shape == (None, 64, 64, 3) and model.output_shape == (None, 5)
    assert model.get_layer("conv1_2").kernel_size == (5, 5)
    assert model.get_layer("conv1_1").use_bias is False  # batch norm follows
    assert isinstance(model.get_layer("bn1_2"), keras.layers.BatchNormalization)
    assert isinstance(model.get_layer("pool2"), keras.layers.AveragePooling2D)
    assert model.get_layer("pool2").output.shape[1:] == (15, 15, 16)
    assert isinstance(model.get_layer("features"), keras.layers.GlobalAveragePooling2D)
    assert [model.get_layer(n).units for n in ("dense1", "dense2", "probs")] == [32, 16, 5]
    assert model.get_layer("act2_1").activation.__name__ == "tanh"


def test_config_round_trips_through_a_dict():
    config = preset_config("vgg_bn", 48, 7)
    again = ModelConfig.from_dict(config.to_dict())
    assert again == config
    assert build_model(again).count_params() == build_model(config).count_params()


def test_unknown_preset_is_refused():
    with pytest.raises(RunError, match="Unknown preset 'resnet9000'"):
        preset_config("resnet9000")


def test_load_model_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(RunError, match="no model file"):
        load_model(tmp_path / "none.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(RunError, match="could not be loaded"):
        load_model(bad)


def test_model_with_a_lambda_layer_is_refused_by_safe_mode(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(RunError, match="could not be loaded"):
        load_model(path)


def test_no_code_path_turns_safe_mode_off():
    offenders = []
    for path in (
        list(ROOT.glob("core/**/*.py")) + list(ROOT.glob("pages/**/*.py")) + [ROOT / "app.py"]
    ):
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            unsafe = not (
                isinstance(node, ast.keyword)
                and isinstance(node.value, ast.Constant)
                and node.value.value is True
            )
            if isinstance(node, ast.keyword) and node.arg == "safe_mode" and unsafe:
                offenders.append(f"{path}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "enable_unsafe_deserialization":
                offenders.append(f"{path}:{node.lineno}")
    assert offenders == []


def test_summary_rows_list_layers_with_shapes_and_params():
    rows = summary_rows(build_model(preset_config("seed")))
    conv = next(r for r in rows if r["layer"] == "conv1_1")
    assert conv == {
        "layer": "conv1_1",
        "type": "Conv2D",
        "output_shape": "(30, 30, 32)",
        "params": 896,
    }


def test_speed_presets_have_the_speed_run_layout():
    model = build_model(preset_config("fast"))
    assert model.get_layer("whiten").trainable is False
    assert model.get_layer("whiten").kernel.shape == (2, 2, 3, 24)
    assert [model.get_layer(f"conv{b}_1").filters for b in (1, 2, 3)] == [64, 256, 256]
    assert model.get_layer("bn1_1").scale is False
    assert isinstance(model.get_layer("features"), keras.layers.GlobalMaxPooling2D)
    assert model.get_layer("pool3").output.shape[1:] == (3, 3, 256)
    quick = build_model(preset_config("quick"))
    assert [quick.get_layer(f"conv{b}_2").filters for b in (1, 2, 3)] == [64, 128, 128]


def test_whitening_decorrelates_the_patches_it_was_fitted_on():
    from core.model import init_whitening

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 32, 32, 1))
    # strongly correlated channels and neighbours: a smooth, nearly grey image set
    x = np.clip(np.repeat(base, 3, axis=-1) + rng.integers(0, 20, (64, 32, 32, 3)), 0, 255)
    x = x.astype(np.uint8)
    model = build_model(preset_config("quick"))
    init_whitening(model, x)
    stem = keras.Model(model.inputs, model.get_layer("whiten").output)
    out = np.asarray(stem(x.astype("float32"))).reshape(-1, 24)[:, :12]
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-3)
    cov = np.cov(out, rowvar=False)
    # eps=5e-4 shrinks the smallest directions a little; correlations vanish
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-2
    assert np.diag(cov).max() < 1.01 and np.diag(cov).min() > 0.4  # noise dims: var ~ eps
