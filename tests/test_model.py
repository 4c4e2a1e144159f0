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
    set_whiten_bias_trainable,
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
    # Everything the dashboard, the CLI and the benchmarks run (ui/ loads the app's models).
    folders = ("core", "pages", "ui", "benchmarks", "docs")
    for path in [p for f in folders for p in ROOT.glob(f"{f}/**/*.py")] + [ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.alias) and node.name == "enable_unsafe_deserialization":
                offenders.append(f"{path}:{node.lineno}")
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
    whiten = model.get_layer("whiten")
    assert whiten.kernel.shape == (2, 2, 3, 24)
    assert [w.path for w in whiten.trainable_weights] == ["whiten/bias"]  # never the kernel
    assert set_whiten_bias_trainable(model, False)
    assert whiten.trainable_weights == [] and not set_whiten_bias_trainable(model, False)
    assert [model.get_layer(f"conv{b}_1").filters for b in (1, 2, 3)] == [64, 256, 256]
    assert model.get_layer("bn1_1").scale is False
    assert model.get_layer("bn1_1").center is False  # the shift is shift1_1, a ScaledBias
    assert isinstance(model.get_layer("features"), keras.layers.GlobalMaxPooling2D)
    assert model.get_layer("pool3").output.shape[1:] == (3, 3, 256)
    quick = build_model(preset_config("quick"))
    assert [quick.get_layer(f"conv{b}_2").filters for b in (1, 2, 3)] == [48, 96, 96]


def test_scaled_bias_moves_scale_squared_times_faster_under_sgd():
    from core.model import ScaledBias

    def shift_after_one_step(scale):
        layer = ScaledBias(scale)
        model = keras.Sequential([keras.Input((4,)), layer])
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        model.train_on_batch(np.zeros((2, 4), "float32"), np.ones((2, 4), "float32"))
        return np.asarray(layer.bias) * scale  # the shift the layer adds

    plain, scaled = shift_after_one_step(1.0), shift_after_one_step(8.0)
    assert plain.min() > 0
    np.testing.assert_allclose(scaled, 64 * plain, rtol=1e-5)


def test_speed_blocks_start_as_the_identity_on_their_first_channels():
    model = build_model(preset_config("quick"))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 96)).astype("float32")
    conv = model.get_layer("conv3_2")  # 96 -> 96: the whole convolution is the identity
    np.testing.assert_allclose(np.asarray(conv(x)), x, atol=1e-6)
    widen = model.get_layer("conv2_1")  # 48 -> 96: the first 48 outputs copy the input
    y = np.asarray(widen(x[..., :48]))
    np.testing.assert_allclose(y[..., :48], x[..., :48], atol=1e-6)
    assert np.abs(y[..., 48:]).mean() > 0.1  # the rest keep their random start


def test_a_speed_model_round_trips_through_a_file_in_safe_mode(tmp_path):
    from core.model import load_model
    from core.train import save_model_atomic

    model = build_model(preset_config("quick"))
    for layer in model.layers:
        if layer.name.startswith("shift"):
            layer.bias.assign(np.linspace(-1, 1, layer.bias.shape[0]))
    save_model_atomic(model, tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    assert again.get_layer("shift2_1").scale == 8.0
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), atol=1e-6)


def test_a_bf16_model_is_served_in_float32_and_kept_bf16_for_training(tmp_path):
    from dataclasses import replace

    from core.model import float32_copy, is_bfloat16
    from core.train import save_model_atomic

    model = build_model(replace(preset_config("quick"), precision="mixed_bfloat16"))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    save_model_atomic(model, tmp_path / "m.keras")
    served = load_model(tmp_path / "m.keras")
    assert is_bfloat16(model) and not is_bfloat16(served)
    assert is_bfloat16(load_model(tmp_path / "m.keras", as_saved=True))
    assert is_bfloat16(load_model(tmp_path / "m.keras", compile=True))
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    batch = np.asarray(served.predict_on_batch(x))
    np.testing.assert_array_equal(batch, np.asarray(float32_copy(model).predict_on_batch(x)))
    # An image's answer does not depend on its batch-mates (bf16 kernels may).
    for i in (0, 5):
        np.testing.assert_allclose(served.predict_on_batch(x[i : i + 1])[0], batch[i], atol=1e-6)
    assert np.abs(batch - np.asarray(model.predict_on_batch(x))).max() > 0  # bf16 rounds


def test_models_saved_with_a_frozen_whitening_conv_keep_it_frozen():
    shipped = load_model(ROOT / "assets/default_model/model.keras", compile=True)
    assert type(shipped.get_layer("whiten")) is keras.layers.Conv2D  # saved before the change
    assert not set_whiten_bias_trainable(shipped, True)
    assert "whiten/bias" not in [w.path for w in shipped.trainable_weights]


def test_whitening_decorrelates_the_patches_it_was_fitted_on():
    from core.model import init_whitening

    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (64, 32, 32, 1))
    # strongly correlated channels and neighbours: a smooth, nearly grey image set
    x = np.clip(np.repeat(base, 3, axis=-1) + rng.integers(0, 20, (64, 32, 32, 3)), 0, 255)
    x = x.astype(np.uint8)
    model = build_model(preset_config("quick"))
    init_whitening(model, x)
    stem = keras.Model(model.input, model.get_layer("whiten").output)
    out = np.asarray(stem(x.astype("float32"))).reshape(-1, 24)[:, :12]
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-3)
    cov = np.cov(out, rowvar=False)
    # eps=5e-4 shrinks the smallest directions a little; correlations vanish
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-2
    assert np.diag(cov).max() < 1.01 and np.diag(cov).min() > 0.4  # noise dims: var ~ eps


# --- transfer learning ----------------------------------------------------------------


def _mobilenet(input_size=32, pretrained=False):
    from dataclasses import replace

    return replace(preset_config("mobilenet", input_size, 3), pretrained=pretrained)


def _fake_imagenet_weights(seed=0):
    """Writes a weights file where Keras caches MobileNetV3Small's, in Keras's legacy H5 layout.

    Random weights, but the real file name, place and format: enough to prove that the
    preset loads the cached file and freezes what it loaded.
    """
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from core.data import keras_home
    from core.model import BACKBONES

    keras.utils.set_random_seed(seed)
    net = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), include_top=False, weights=None
    )
    path = keras_home() / "models" / BACKBONES["mobilenet_v3_small"].weights_file
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, net)
    return path, net


def test_transfer_preset_builds_a_flat_mobilenet_for_uint8_input():
    model = build_model(_mobilenet())
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    names = [layer.name for layer in model.layers]
    assert names[1].startswith("rescaling") and model.layers[1].scale == pytest.approx(1 / 127.5)
    assert {"conv", "conv_bn", "conv_1", "features", "dense_drop", "probs"} <= set(names)
    assert "resize" not in names  # 32 px is MobileNetV3's minimum: nothing to enlarge
    assert model.get_layer("dense_drop").rate == 0.2
    assert all(layer.trainable for layer in model.layers)  # no weights: it all learns
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)).sum(axis=1), 1.0, rtol=1e-5)
    small = build_model(_mobilenet(input_size=16))
    assert small.get_layer("resize").output.shape[1:] == (32, 32, 3)


def test_pretrained_preset_without_weights_is_refused_with_a_sentence(tmp_path):
    from core.data import keras_home
    from core.model import check_pretrained, pretrained_weights_available

    assert not pretrained_weights_available("mobilenet_v3_small")
    where = keras_home() / "models" / "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    sentence = (
        f"ImageNet weights for MobileNetV3Small are not on this machine ({where}) and cannot "
        "be downloaded without internet; choose a from-scratch preset such as quick or fast."
    )
    for attempt in (
        lambda: build_model(_mobilenet(pretrained=True)),
        lambda: check_pretrained(preset_config("mobilenet")),
    ):
        with pytest.raises(RunError) as err:
            attempt()
        assert str(err.value) == sentence
    assert not (keras_home() / "models").exists()  # nothing was fetched


def test_the_cli_says_so_and_exits_1_when_the_weights_are_missing(tmp_path, image_folder):
    import os
    import subprocess
    import sys

    env = {**os.environ, "KERAS_HOME": str(tmp_path / "empty_keras_home")}
    out = subprocess.run(
        [sys.executable, "-m", "core.train", "--preset", "mobilenet", "--data", str(image_folder)]
        + ["--epochs", "1", "--quiet", "--runs-dir", str(tmp_path / "runs")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "error: ImageNet weights for MobileNetV3Small are not on this machine" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run folder was made


def test_cached_imagenet_weights_are_loaded_and_stay_frozen_in_a_run(tiny_dataset):
    from core import runs
    from core.model import pretrained_weights_available
    from core.train import TrainConfig, train

    path, net = _fake_imagenet_weights()
    assert pretrained_weights_available("mobilenet_v3_small")
    model = build_model(_mobilenet(pretrained=True))
    assert [w.path for w in model.trainable_weights] == ["probs/kernel", "probs/bias"]
    assert not model.get_layer("conv_bn").trainable

    config = TrainConfig(preset="custom", model=_mobilenet(pretrained=True), epochs=1)
    run_dir = train(config, tiny_dataset)
    assert runs.read_status(run_dir)["state"] == "completed"
    trained = load_model(run_dir / "model.keras")  # safe mode: only standard Keras layers
    assert trained.input_shape == (None, 32, 32, 3)
    # After an epoch every backbone weight, batch-norm statistics included, is the file's.
    backbone = {w.path: w.numpy() for w in net.weights}
    kept = [w for w in trained.weights if w.path in backbone]
    assert len(kept) == len(net.weights)
    for w in kept:
        np.testing.assert_array_equal(w.numpy(), backbone[w.path], err_msg=w.path)

    path.write_bytes(b"not hdf5")
    with pytest.raises(RunError, match="cannot be read"):
        build_model(_mobilenet(pretrained=True))


def test_inspection_sees_the_backbone_convolutions():
    from core import inspect

    model = build_model(_mobilenet())
    assert inspect.conv_layers(model)[0] == "conv" and inspect.conv_layers(model)[-1] == "conv_1"
    assert inspect.first_layer_filter_tiles(model).shape == (16, 3, 3, 3)
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3)).astype(np.uint8)
    heat, index, probs = inspect.grad_cam(model, image)
    assert heat.shape == (32, 32) and probs.shape == (3,) and index == int(np.argmax(probs))
    maps = inspect.feature_maps(model, image, [inspect.map_layers(model)[0]])
    assert next(iter(maps.values())).shape == (16, 16, 16)


def test_small_map_convs_give_tensorflows_gradients_and_infer_as_plain_convs():
    import tensorflow as tf

    from core.model import SmallMapConv2D

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(6, 7, 7, 5)), tf.float32)
    plain = keras.layers.Conv2D(4, 3, padding="same", use_bias=True)
    small = SmallMapConv2D(4, 3, padding="same", use_bias=True)
    plain.build(x.shape)
    small.build(x.shape)
    plain.set_weights([rng.normal(size=(3, 3, 5, 4)), rng.normal(size=4)])
    small.set_weights(plain.get_weights())
    grads = []
    for layer in (plain, small):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        grads.append(tape.gradient(loss, [x, layer.kernel, layer.bias]))
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(small(x)), np.asarray(plain(x)))
    # The fast preset's 7x7 and 3x3 maps use it; the 31x31 and 15x15 ones do not.
    model = build_model(preset_config("fast"))
    smalls = sorted(la.name for la in model.layers if isinstance(la, SmallMapConv2D))
    assert smalls == ["conv2_2", "conv3_1", "conv3_2"]


def test_fast_gelu_trains_with_gelus_gradient_and_infers_as_gelu():
    import tensorflow as tf

    from core.model import FastGelu

    x = tf.constant(np.linspace(-6, 6, 97).reshape(1, 97), tf.float32)
    layer, plain = FastGelu(), keras.layers.Activation("gelu")
    outs, grads = [], []
    for training, fn in ((True, layer), (False, layer), (None, plain)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x, training=training) if fn is layer else fn(x)
            loss = tf.reduce_sum(y * tf.range(97, dtype=tf.float32))
        outs.append(np.asarray(y))
        grads.append(np.asarray(tape.gradient(loss, x)))
    for out, grad in zip(outs[:2], grads[:2], strict=True):
        np.testing.assert_allclose(out, outs[2], atol=1e-6)
        np.testing.assert_allclose(grad, grads[2], rtol=1e-5, atol=1e-5)
    # bf16 in, bf16 out: the float32 inside does not leak into the mixed-precision graph.
    mixed = FastGelu(dtype="mixed_bfloat16")
    assert mixed(tf.cast(x, tf.bfloat16), training=True).dtype == tf.bfloat16
    model = build_model(preset_config("quick"))
    acts = [la.name for la in model.layers if isinstance(la, FastGelu)]
    assert acts == ["act0", "act1_1", "act1_2", "act2_1", "act2_2", "act3_1", "act3_2"]


def test_fast_batch_norm_trains_as_keras_batch_norm_does():
    import tensorflow as tf

    from core.model import FastBatchNorm

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2, 3, (6, 5, 5, 8)), tf.float32)
    weights = tf.constant(rng.normal(size=(6, 5, 5, 8)), tf.float32)
    kwargs = dict(momentum=0.6, epsilon=1e-5, center=False, scale=False)
    results = []
    for layer in (FastBatchNorm(**kwargs), keras.layers.BatchNormalization(**kwargs)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)
        grad = tape.gradient(loss, x)
        results.append([np.asarray(v) for v in (y, grad, layer.moving_mean, layer.moving_variance)])
        results[-1].append(np.asarray(layer(x, training=False)))
    for fast, plain in zip(*results, strict=True):
        np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-5)
    mixed = FastBatchNorm(**kwargs, dtype="mixed_bfloat16")
    assert mixed(tf.cast(x, tf.bfloat16), training=True).dtype == tf.bfloat16
    model = build_model(preset_config("quick"))
    assert sum(isinstance(la, FastBatchNorm) for la in model.layers) == 6
