"""Model presets, the typed architecture config and `build_model(config)`.

Every model takes raw uint8 RGB images `(N, S, S, 3)` and returns class probabilities:
the scaling to [0, 1] (or [-1, 1] for a Keras Applications backbone) is inside the model,
so no caller preprocesses anything.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
from keras import layers, ops

from core.errors import RunError


@dataclass
class ConvBlock:
    """One stage: `convs` convolutions, then pooling, then dropout."""

    filters: int = 32
    kernel_size: int = 3
    convs: int = 1  # convolutions before the pooling layer
    activation: str = "relu"
    batch_norm: bool = False  # BatchNormalization between each conv and its activation
    padding: str = "valid"  # "valid" shrinks the map by kernel_size - 1; "same" keeps it
    dropout: float = 0.0  # after pooling


@dataclass
class ModelConfig:
    """Enough to rebuild a model; saved beside its weights in every run."""

    preset: str = "custom"
    input_size: int = 32
    num_classes: int = 10
    blocks: list[ConvBlock] = field(default_factory=lambda: [ConvBlock()])
    pooling: str = "max"  # "max" or "avg" after each block
    head: str = "flatten"  # "flatten", "global_avg" or "global_max" before the dense head
    dense: list[int] = field(default_factory=lambda: [64])  # hidden dense layer widths
    dense_dropout: float = 0.5  # after each hidden dense layer
    dense_activation: str = "relu"
    # "plain": conv-BN-act stacks as above. "speed": the airbench/ResNet-speedrun layout:
    # a frozen 2x2 patch-whitening stem, blocks of conv-pool-BN-act-conv-BN-act with
    # scale-free, fast-moving batch norm, global max pooling and a tempered linear head.
    style: str = "plain"
    # "mixed_bfloat16" computes in bf16 with float32 weights and float32 probabilities
    # (fast on CPUs with AVX-512 BF16 or AMX units, slow elsewhere: core.hardware);
    # "float32" everywhere otherwise.
    precision: str = "float32"
    # A Keras Applications network (a key of BACKBONES) in place of `blocks`: its
    # convolutions, global average pooling, `dense_dropout`, then the softmax layer.
    backbone: str = ""
    # With ImageNet weights the backbone is frozen and only the new head learns (the
    # Teachable Machine recipe); without them the whole network trains from scratch.
    pretrained: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["blocks"] = [ConvBlock(**b) for b in d.get("blocks", [])]
        return cls(**d)


def _seed() -> ModelConfig:
    # The classic Keras CIFAR-10 CNN (the baseline everyone knows).
    return ModelConfig(
        preset="seed",
        blocks=[ConvBlock(32, dropout=0.25), ConvBlock(64, dropout=0.25)],
        pooling="max",
        head="flatten",
        dense=[64],
        dense_dropout=0.5,
    )


def _vgg_bn() -> ModelConfig:
    # Three VGG stages with batch norm: ~4x the seed's compute, much better accuracy.
    return ModelConfig(
        preset="vgg_bn",
        blocks=[
            ConvBlock(32, convs=2, batch_norm=True, padding="same", dropout=0.1),
            ConvBlock(64, convs=2, batch_norm=True, padding="same", dropout=0.2),
            ConvBlock(128, convs=2, batch_norm=True, padding="same", dropout=0.3),
        ],
        head="global_avg",
        dense=[128],
        dense_dropout=0.3,
    )


def _speed(widths) -> ModelConfig:
    return ModelConfig(
        blocks=[
            ConvBlock(w, convs=2, activation="gelu", batch_norm=True, padding="same")
            for w in widths
        ],
        head="global_max",
        dense=[],
        dense_dropout=0.0,
        style="speed",
    )


def _fast() -> ModelConfig:
    config = _speed([64, 256, 256])
    config.preset = "fast"
    return config


def _wide() -> ModelConfig:
    config = _speed([128, 384, 384])  # airbench95's widths: 2.55x the fast net's FLOPs
    config.preset = "wide"
    return config


def _quick() -> ModelConfig:
    config = _speed([48, 96, 96])  # 3 epochs in under 3 minutes on 2 cores
    config.preset = "quick"
    return config


def _mobilenet() -> ModelConfig:
    return ModelConfig(
        preset="mobilenet",
        blocks=[],
        head="global_avg",
        dense=[],
        dense_dropout=0.2,
        backbone="mobilenet_v3_small",
        pretrained=True,
    )


@dataclass(frozen=True)
class Backbone:
    """A Keras Applications network usable as a frozen, pretrained feature extractor."""

    name: str  # the function in `keras.applications`
    min_size: int  # smaller inputs are enlarged to this inside the model
    # The file Keras's own download caches under <Keras home>/models/ (include_top=False;
    # the name is the one keras/src/applications/mobilenet_v3.py asks `get_file` for).
    weights_file: str


BACKBONES = {
    "mobilenet_v3_small": Backbone(
        "MobileNetV3Small", 32, "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    ),
}

# From-scratch presets; TRANSFER_PRESETS need a pretrained backbone's weights file.
PRESETS = {"seed": _seed, "vgg_bn": _vgg_bn, "quick": _quick, "fast": _fast, "wide": _wide}
TRANSFER_PRESETS = {"mobilenet": _mobilenet}
PRESET_DESCRIPTIONS = {
    "seed": "The classic Keras CIFAR-10 CNN: two conv/max-pool stages, Dense 64 (baseline).",
    "vgg_bn": "Three VGG stages of two 3x3 convs with batch norm (32/64/128), global average.",
    "quick": "Speed-run layout (whitening stem, 48/96/96) for short classroom runs: about 80% "
    "on CIFAR-10 in under 3 minutes on 2 CPU cores with bf16 units (5 minutes on 2 AVX2 "
    "cores without, in float32).",
    "fast": "Speed-run layout (whitening stem, 64/256/256) for the best time to accuracy, its "
    "first 6 of 12 epochs on 24-pixel crops: about 89.4% on CIFAR-10 (90.1% on average with "
    "flip test-time augmentation) in 7-15 minutes on 2 CPU cores with bf16 units (45 "
    "minutes on 2 AVX2 cores without, in float32).",
    "wide": "Speed-run layout, wider (128/384/384), trained longer with stronger augmentation, "
    "its first 20 of 40 epochs on 24-pixel crops: about 91-91.6% on CIFAR-10 (92% with flip and "
    "shift test-time augmentation) in about an hour on 2 CPU cores with bf16 units; a teacher "
    "for the fast net (distillation).",
    "mobilenet": "Transfer learning: MobileNetV3Small with ImageNet weights, frozen, and a new "
    "classifier on top; for small custom datasets, best at 96x96 pixels.",
}
WHITEN_FILTERS = 24  # 12 eigenvectors of 2x2x3 patches, each with both signs
LOGIT_SCALE = 1 / 9  # airbench's temperature: softer logits train faster with this head
# Batch-norm shifts learn BIAS_SCALE**2 (= 64) times faster than the conv weights, as in
# airbench (its "bias_scaler"): the stored variable is multiplied by BIAS_SCALE in the
# forward pass, so SGD's step on it is scaled twice (gradient and use).
BIAS_SCALE = 8.0
BN_MOMENTUM = 0.6  # Keras's convention: the share of the old running statistics kept
# PyTorch's 1e-5 (airbench: 1e-12), not Keras's 1e-3: weight decay keeps the conv weights
# small, and the last block's batch variances end near 1e-2, where 1e-3 would already bend
# the scale invariance that the learning-rate / weight-decay recipe relies on.
BN_EPSILON = 1e-5
IDENTITY_INIT = True  # convs start as the identity on their first in-channels outputs


# Convolutions on maps this small (or smaller) compute their weight gradient as matrix
# products (SmallMapConv2D): oneDNN's own took 2-6x longer there on this CPU.
SMALL_MAP = 8


@keras.saving.register_keras_serializable(package="cnn_lab")
class SmallMapConv2D(layers.Conv2D):
    """A stride-1 "same" Conv2D whose weight gradient, in training, is `kh x kw` products.

    For a 7x7 or 3x3 map of 256 channels and batch 512, oneDNN's weight-gradient kernel
    took 171 and 90 ms in bf16 on this AMX CPU, against 52 and 15 ms for the same sums as
    one matrix product per kernel tap: `dW[i, j] = shift_ij(x)^T dy` over every position
    of the batch (docs/BENCHMARKS.md). On larger maps oneDNN is as fast or faster, so only
    small maps use this layer. The forward pass and the input gradient are TensorFlow's
    own; outside training (inference, exports) the layer is a plain Conv2D.
    """

    def call(self, inputs, training=None):
        if not training or keras.backend.backend() != "tensorflow":
            return super().call(inputs)
        outputs = _conv_matmul_weight_grad(inputs, ops.cast(self.kernel, inputs.dtype))
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return self.activation(outputs) if self.activation is not None else outputs


def _conv_matmul_weight_grad(x, kernel):
    import tensorflow as tf

    @tf.custom_gradient
    def conv(x, kernel):
        y = tf.nn.conv2d(x, kernel, 1, "SAME")

        def grad(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x),
                filter=kernel,
                out_backprop=dy,
                strides=[1, 1, 1, 1],
                padding="SAME",
            )
            kh, kw, cin, cout = kernel.shape
            h, w = x.shape[1], x.shape[2]
            padded = tf.pad(x, [[0, 0], [kh // 2, kh // 2], [kw // 2, kw // 2], [0, 0]])
            dy2 = tf.reshape(dy, (-1, cout))
            taps = [
                tf.matmul(
                    tf.reshape(padded[:, i : i + h, j : j + w, :], (-1, cin)), dy2, transpose_a=True
                )
                for i in range(kh)
                for j in range(kw)
            ]
            return dx, tf.reshape(tf.stack(taps), (kh, kw, cin, cout))

        return y, grad

    return conv(x, kernel)


@keras.saving.register_keras_serializable(package="cnn_lab")
class FastGelu(layers.Activation):
    """Exact GELU whose training passes are one fused kernel each (TensorFlow, XLA).

    TensorFlow computes `x/2 (1 + erf(x / sqrt 2))` and its gradient as a chain of
    separate element-wise kernels, slow in bf16 on this CPU: with ReLU in its place the
    quick net trained 1.3-1.5x faster. In training this layer runs the function and its
    derivative `Phi(x) + x phi(x)` each as one XLA-compiled kernel, in float32 inside and
    the input's dtype outside. Outside training (inference, exports) it is
    `Activation("gelu")`, so it computes the same function either way.
    """

    def __init__(self, activation="gelu", **kwargs):
        super().__init__(activation, **kwargs)

    def call(self, inputs, training=None):
        fused = training and self.activation is keras.activations.gelu
        if not fused or keras.backend.backend() != "tensorflow":
            return super().call(inputs)
        return _fused_gelu()(inputs)


_FUSED_GELU = []


def _fused_gelu():
    """The custom-gradient GELU of `FastGelu`, built once (it needs TensorFlow)."""
    if _FUSED_GELU:
        return _FUSED_GELU[0]
    import tensorflow as tf

    @tf.function(jit_compile=True, autograph=False)  # no Python control flow inside
    def forward(x):
        y = tf.cast(x, tf.float32)
        return tf.cast(y * 0.5 * (1.0 + tf.math.erf(y * 0.7071067811865476)), x.dtype)

    @tf.function(jit_compile=True, autograph=False)  # no Python control flow inside
    def backward(x, dy):
        y = tf.cast(x, tf.float32)
        cdf = 0.5 * (1.0 + tf.math.erf(y * 0.7071067811865476))
        pdf = 0.3989422804014327 * tf.exp(-0.5 * y * y)
        return tf.cast(tf.cast(dy, tf.float32) * (cdf + y * pdf), x.dtype)

    @tf.custom_gradient
    def gelu(x):
        return forward(x), lambda dy: backward(x, dy)

    _FUSED_GELU.append(gelu)
    return gelu


@keras.saving.register_keras_serializable(package="cnn_lab")
class FastBatchNorm(layers.BatchNormalization):
    """Scale-free batch norm that trains with TensorFlow's fused kernel (oneDNN on CPU).

    Keras normalises a bf16 batch by casting it to float32, computing the moments,
    normalising and casting back, and differentiates that chain op by op: many passes
    over the activations each way. In training, with no learnt scale or offset (the speed
    layout's batch norm), this layer runs `FusedBatchNormV3` instead, one primitive each
    way: Keras's layer took 1.16-1.24x the fast net's training step time and 1.28-1.48x
    the quick net's (docs/BENCHMARKS.md). Same function and gradient; the running statistics move as
    Keras's do (biased batch variance). Otherwise it is `BatchNormalization` itself.
    """

    def call(self, inputs, training=None, mask=None):
        fused = (
            training
            and self.trainable
            and mask is None
            and not (self.scale or self.center or self.renorm)
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.backend() == "tensorflow"
        )
        if not fused:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.ones((channels,), tf.float32),
            offset=tf.zeros((channels,), tf.float32),
            mean=tf.zeros((0,), tf.float32),
            variance=tf.zeros((0,), tf.float32),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The op returns the unbiased batch variance; Keras keeps the biased one.
        n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), tf.float32)
        variance = variance * (n - 1.0) / n
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return outputs


@keras.saving.register_keras_serializable(package="cnn_lab")
class ScaledBias(layers.Layer):
    """Adds a learnt per-channel shift, stored divided by `scale`.

    `y = x + scale * b`: the gradient on `b` is `scale` times larger and so is the effect
    of each step, so plain SGD moves the shift `scale**2` times faster than a bias it
    stored directly; decoupled weight decay shrinks it at the same relative rate.
    """

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, x):
        return x + ops.cast(self.bias * self.scale, x.dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="cnn_lab")
class WhiteningConv2D(layers.Conv2D):
    """The speed layout's patch-whitening conv: its kernel is frozen (`init_whitening` sets
    it from the data); its bias trains while `bias.trainable`, which the training loop
    turns off after `TrainConfig.whiten_bias_epochs` (airbench trains it for 3 epochs)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel.trainable = False


def set_whiten_bias_trainable(model: keras.Model, trainable: bool) -> bool:
    """Lets the whitening conv's bias train or not; True when that changed anything.

    A compiled model's train function keeps the variables it was traced with: after a
    change, make it again (`model.make_train_function(force=True)`).
    """
    try:
        layer = model.get_layer("whiten")
    except ValueError:
        return False
    if not isinstance(layer, WhiteningConv2D) or layer.bias.trainable == trainable:
        return False  # models saved before WhiteningConv2D keep a frozen Conv2D
    layer.bias.trainable = trainable
    return True


def preset_config(name: str, input_size: int = 32, num_classes: int = 10) -> ModelConfig:
    """Returns the `ModelConfig` of a named preset, sized for the data.

    Raises:
        RunError: the preset does not exist.
    """
    builders = {**PRESETS, **TRANSFER_PRESETS}
    if name not in builders:
        raise RunError(f"Unknown preset '{name}'. Presets: {', '.join(builders)}.")
    config = builders[name]()
    config.input_size, config.num_classes = input_size, num_classes
    return config


def weights_path(backbone: str) -> Path | None:
    """Returns the cached ImageNet weights file of a backbone, or None; never downloads.

    Keras's downloader keeps the file under `<Keras home>/models/`, and under
    `/tmp/.keras/models/` when that home cannot be written; both are looked at.

    Args:
        backbone: a key of `BACKBONES`.

    Returns:
        The path of the `.h5` file, or None when neither place has it.
    """
    from core.data import keras_home

    name = BACKBONES[backbone].weights_file
    for home in (keras_home(), Path("/tmp/.keras")):
        path = home.expanduser() / "models" / name
        if path.is_file() and os.access(path, os.R_OK):
            return path
    return None


def pretrained_weights_available(backbone: str) -> bool:
    """True when the ImageNet weights of `backbone` are on this machine (see `weights_path`)."""
    return weights_path(backbone) is not None


def missing_weights_message(backbone: str) -> str:
    """The sentence a user reads when a backbone's ImageNet weights are not on this machine."""
    from core.data import keras_home

    spec = BACKBONES[backbone]
    where = keras_home() / "models" / spec.weights_file
    return (
        f"ImageNet weights for {spec.name} are not on this machine ({where}) and cannot be "
        "downloaded without internet; choose a from-scratch preset such as quick or fast."
    )


def check_pretrained(config: ModelConfig) -> None:
    """Checks that a config needing pretrained weights can have them, without downloading.

    Raises:
        RunError: the config names an unknown backbone, or its weights are missing.
    """
    if not config.backbone:
        return
    if config.backbone not in BACKBONES:
        raise RunError(f"Unknown backbone '{config.backbone}'. Backbones: {', '.join(BACKBONES)}.")
    if config.pretrained and not pretrained_weights_available(config.backbone):
        raise RunError(missing_weights_message(config.backbone))


def build_model(config: ModelConfig) -> keras.Model:
    """Builds an uncompiled model from its config.

    Args:
        config: the architecture.

    Returns:
        A `keras.Model` mapping uint8-valued `(N, S, S, 3)` to float32 probabilities
        `(N, num_classes)`. Layers are named `conv{b}_{i}`, `bn{b}_{i}`, `act{b}_{i}`,
        `pool{b}` so that the dashboard can address them. A backbone's layers keep their
        Keras Applications names (`conv`, `conv_bn`, ..., `conv_1`) and sit in the same
        flat model, so the dashboard sees its convolutions like any others.

    Raises:
        RunError: the config needs ImageNet weights that are not on this machine, or
            the weights file cannot be read.
    """
    config = copy.deepcopy(config)
    check_pretrained(config)
    if config.backbone:
        build = _build_transfer
    else:
        build = _build_speed if config.style == "speed" else _build_plain
    previous = keras.config.dtype_policy()
    # Layers take the global policy when they are built; it is restored right after.
    keras.config.set_dtype_policy(config.precision)
    try:
        return build(config)
    finally:
        keras.config.set_dtype_policy(previous)


def _build_plain(config: ModelConfig) -> keras.Model:
    s = config.input_size
    inputs = keras.Input((s, s, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    pool = {"max": layers.MaxPooling2D, "avg": layers.AveragePooling2D}[config.pooling]
    for b, block in enumerate(config.blocks, start=1):
        for i in range(1, block.convs + 1):
            x = layers.Conv2D(
                block.filters,
                block.kernel_size,
                padding=block.padding,
                use_bias=not block.batch_norm,
                name=f"conv{b}_{i}",
            )(x)
            if block.batch_norm:
                x = layers.BatchNormalization(name=f"bn{b}_{i}")(x)
            x = layers.Activation(block.activation, name=f"act{b}_{i}")(x)
        x = pool(2, name=f"pool{b}")(x)
        if block.dropout:
            x = layers.Dropout(block.dropout, name=f"drop{b}")(x)
    head = {
        "flatten": layers.Flatten,
        "global_avg": layers.GlobalAveragePooling2D,
        "global_max": layers.GlobalMaxPooling2D,
    }[config.head]
    x = head(name="features")(x)
    for d, units in enumerate(config.dense, start=1):
        x = layers.Dense(units, activation=config.dense_activation, name=f"dense{d}")(x)
        if config.dense_dropout:
            x = layers.Dropout(config.dense_dropout, name=f"dense_drop{d}")(x)
    outputs = layers.Dense(config.num_classes, activation="softmax", name="probs", dtype="float32")(
        x
    )
    return keras.Model(inputs, outputs, name=config.preset)


def _build_speed(config: ModelConfig) -> keras.Model:
    s = config.input_size
    inputs = keras.Input((s, s, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    # Its kernel comes from the data (see init_whitening), never from training.
    x = WhiteningConv2D(WHITEN_FILTERS, 2, name="whiten")(x)
    x = FastGelu(name="act0")(x)
    for b, block in enumerate(config.blocks, start=1):
        for i in (1, 2):
            small = block.kernel_size == 3 and max(x.shape[1:3]) <= SMALL_MAP
            x = (SmallMapConv2D if small else layers.Conv2D)(
                block.filters,
                block.kernel_size,
                padding="same",
                use_bias=False,
                name=f"conv{b}_{i}",
            )(x)
            if i == 1:
                x = layers.MaxPooling2D(2, name=f"pool{b}")(x)
            # No learnable scale and fast running statistics, as in the speed-run recipes.
            x = FastBatchNorm(
                momentum=BN_MOMENTUM,
                epsilon=BN_EPSILON,
                center=False,
                scale=False,
                name=f"bn{b}_{i}",
            )(x)
            x = ScaledBias(BIAS_SCALE, name=f"shift{b}_{i}")(x)
            act = FastGelu if block.activation == "gelu" else layers.Activation
            x = act(block.activation, name=f"act{b}_{i}")(x)
    x = layers.GlobalMaxPooling2D(name="features")(x)
    if config.dense_dropout:
        x = layers.Dropout(config.dense_dropout, name="dense_drop")(x)
    x = layers.Dense(config.num_classes, use_bias=False, name="logits")(x)
    x = layers.Rescaling(LOGIT_SCALE, name="temperature")(x)
    outputs = layers.Activation("softmax", name="probs", dtype="float32")(x)
    model = keras.Model(inputs, outputs, name=config.preset)
    if IDENTITY_INIT:
        for layer in model.layers:
            if layer.name.startswith("conv"):
                _init_identity(layer)
    return model


def _init_identity(conv) -> None:
    # airbench's dirac init: output channel c < in-channels starts as a copy of input c
    # (the kernel's centre tap), so each block begins close to passing its input through.
    import numpy as np

    kernel = conv.kernel.numpy()
    kh, kw, cin, cout = kernel.shape
    n = min(cin, cout)
    kernel[:, :, :, :n] = 0.0
    kernel[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
    conv.kernel.assign(kernel)


def _build_transfer(config: ModelConfig) -> keras.Model:
    spec = BACKBONES[config.backbone]
    s = config.input_size
    inputs = keras.Input((s, s, 3), name="image")
    x = inputs
    side = max(s, spec.min_size)
    if side != s:
        x = layers.Resizing(side, side, name="resize")(x)
    # Given `input_tensor`, the application grows from our tensor instead of wrapping a
    # sub-model, so its layers are this model's own. A file path, never "imagenet": Keras
    # would try to download. Its first layer rescales [0, 255] to [-1, 1].
    weights = str(weights_path(config.backbone)) if config.pretrained else None
    try:
        features = getattr(keras.applications, spec.name)(
            input_tensor=x, include_top=False, weights=weights, include_preprocessing=True
        ).output
    except (OSError, ValueError) as err:
        if weights is None:
            raise
        raise RunError(f"The ImageNet weights file {weights} cannot be read: {err}") from err
    for layer in keras.Model(inputs, features).layers[1:]:
        layer.trainable = not config.pretrained
    x = layers.GlobalAveragePooling2D(name="features")(features)
    if config.dense_dropout:
        x = layers.Dropout(config.dense_dropout, name="dense_drop")(x)
    outputs = layers.Dense(config.num_classes, activation="softmax", name="probs", dtype="float32")(
        x
    )
    return keras.Model(inputs, outputs, name=config.preset)


def init_whitening(model: keras.Model, images, max_images: int = 5000, eps: float = 5e-4):
    """Sets the frozen `whiten` conv to decorrelate the 2x2 patches of `images`.

    Args:
        model: a model with a `whiten` layer (the "speed" style); others are left alone.
        images: uint8 `(N, S, S, 3)` training images.
        max_images: the covariance is estimated on this many (the first ones).
        eps: added to the eigenvalues, so near-constant directions are not blown up.
    """
    import numpy as np

    try:
        layer = model.get_layer("whiten")
    except ValueError:
        return
    x = np.asarray(images[:max_images], np.float32) / 255.0
    patches = np.concatenate(
        [x[:, i : i + x.shape[1] - 1, j : j + x.shape[2] - 1] for i in (0, 1) for j in (0, 1)],
        axis=-1,
    )  # (N, S-1, S-1, 12) ordered (row, col, channel) like a 2x2x3 kernel
    flat = patches.reshape(-1, 12).astype(np.float64)
    mean = flat.mean(axis=0)
    eigvals, eigvecs = np.linalg.eigh(np.cov(flat, rowvar=False))
    w = eigvecs / np.sqrt(eigvals + eps)  # (12, 12): column k whitens direction k
    w = np.concatenate([w, -w], axis=1)  # (12, 24)
    kernel = w.reshape(2, 2, 3, WHITEN_FILTERS).astype(np.float32)
    layer.set_weights([kernel, (-(mean @ w)).astype(np.float32)])


def load_model(path: str | Path, compile: bool = False, as_saved: bool = False) -> keras.Model:
    """Loads a `.keras` file this project wrote, always with `safe_mode=True`.

    A model loaded for inference (`compile=False`) that trained in mixed_bfloat16 comes
    back as its float32 copy (`float32_copy`): bf16 rounds every layer's output to 8 bits
    of mantissa, and on CPUs whose bf16 kernels depend on the batch size (AMX) the same
    image got 23.4% alone and 24.5% beside another. In float32 an image's probabilities
    do not depend on what else is in the batch.

    Args:
        compile: with the optimizer state, to resume training; the model stays as saved.
        as_saved: keep the saved precision for inference too (exports check against it).

    Raises:
        RunError: the file is missing or cannot be loaded.
    """
    from core import augment, schedules  # noqa: F401  registers the project's objects

    path = Path(path)
    if not path.is_file():
        raise RunError(f"There is no model file at {path}.")
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as err:  # Keras raises many types for a damaged or foreign file
        raise RunError(f"The model {path.name} could not be loaded: {err}") from err
    return model if compile or as_saved else as_served(model)


def as_served(model: keras.Model) -> keras.Model:
    """Returns `model` as the app computes it: a mixed_bfloat16 model's float32 copy
    (see `load_model`), any other model itself."""
    return float32_copy(model) if is_bfloat16(model) else model


def is_bfloat16(model: keras.Model) -> bool:
    """True when any layer computes in bfloat16 (the mixed_bfloat16 precision)."""
    return any(layer.dtype_policy.compute_dtype == "bfloat16" for layer in model.layers)


def float32_copy(model: keras.Model, gelu_as_erf: bool = False) -> keras.Model:
    """Returns `model` rebuilt with float32 layers and the same weights.

    The weights of a mixed_bfloat16 model are already float32; only the computation
    changes, so the copy is the original model without bf16 rounding.

    Args:
        model: a Keras functional model.
        gelu_as_erf: write exact GELU as `0.5 x (1 + erf(x / sqrt 2))`. It is the same
            function, but TensorFlow computes it with `Erfc`, which tf2onnx cannot convert,
            and `Erf`, which it can.

    Returns:
        A new `keras.Model`; `model` is not changed.
    """

    def rebuild(layer):
        config = layer.get_config()
        if not isinstance(layer, layers.Layer):  # an op such as MobileNet's `x + y`
            return layer.__class__.from_config(config)
        config["dtype"] = "float32"
        if gelu_as_erf and config.get("activation") == "gelu":
            config["activation"] = _gelu_erf
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, clone_function=rebuild)
    clone.set_weights(model.get_weights())
    return clone


def is_speed_layout(model: keras.Model) -> bool:
    """True for a model built by the "speed" style (whitening stem, conv-pool-BN blocks)."""
    names = {layer.name for layer in model.layers}
    return {"whiten", "bn1_1", "shift1_1", "logits", "temperature"} <= names


def folded_copy(model: keras.Model, means: list[str] | tuple = ()) -> keras.Model:
    """Returns a float32 speed-layout model with its batch norms and shifts folded away.

    At inference each batch norm here (no learnt scale or centre) and the shift after it
    are one per-channel map `y = x / sqrt(var + eps) - mean / sqrt(var + eps) + shift`
    whose slope is positive. Folded into the convolution before it (kernel times the
    slope, bias the rest), they leave `conv -> pool -> GELU` blocks: max pooling commutes
    with an increasing per-channel map, so the pooling between a conv and its batch norm
    does not stand in the way. The probabilities equal the model's (float32 rounding).

    Args:
        model: a model with `is_speed_layout(model)`.
        means: layers of `model` (convolutions or activations) whose channel means the
            copy also outputs, as `model` computes them (`with_channel_means`): a folded
            convolution's output is the original's times the slope plus the bias, which
            the copy takes off its means again.

    Returns:
        A new float32 `keras.Model` without batch norm, shift or dropout layers.

    Raises:
        ValueError: the model is not of the speed layout, or a layer of `means` is not
            in the copy as the model computes it (a batch norm, shift or pooling).
    """
    import numpy as np

    if not is_speed_layout(model):
        raise ValueError(f"{model.name} is not a speed-layout model: nothing to fold.")
    get = model.get_layer
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = layers.Rescaling(get("rescale").scale, name="rescale")(inputs)
    whiten = get("whiten")
    folded_whiten = layers.Conv2D(whiten.filters, whiten.kernel_size, name="whiten")
    x = layers.Activation("gelu", name="act0")(folded_whiten(x))
    folded_whiten.set_weights(whiten.get_weights())
    b, unfold = 1, {}
    while f"conv{b}_1" in {layer.name for layer in model.layers}:
        for i in (1, 2):
            conv, bn, shift = get(f"conv{b}_{i}"), get(f"bn{b}_{i}"), get(f"shift{b}_{i}")
            mean, var = (np.asarray(w, np.float64) for w in (bn.moving_mean, bn.moving_variance))
            slope = 1.0 / np.sqrt(var + bn.epsilon)
            kernel = np.asarray(conv.kernel, np.float64) * slope
            bias = -mean * slope + shift.scale * np.asarray(shift.bias, np.float64)
            layer = layers.Conv2D(
                conv.filters, conv.kernel_size, padding=conv.padding, name=f"conv{b}_{i}"
            )
            x = layer(x)
            layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
            unfold[layer.name] = (1 / slope, -bias / slope)
            if i == 1:
                x = layers.MaxPooling2D(get(f"pool{b}").pool_size, name=f"pool{b}")(x)
            x = layers.Activation(get(f"act{b}_{i}").activation, name=f"act{b}_{i}")(x)
        b += 1
    x = layers.GlobalMaxPooling2D(name="features")(x)
    logits = get("logits")
    head = layers.Dense(logits.units, use_bias=False, name="logits")
    x = head(x)
    head.set_weights([np.asarray(logits.kernel, np.float32) * get("temperature").scale])
    outputs = layers.Activation("softmax", name="probs", dtype="float32")(x)
    folded = keras.Model(inputs, outputs, name=f"{model.name}_folded")
    missing = [n for n in means if n not in unfold and not n.startswith(("act", "whiten"))]
    if missing:
        raise ValueError(f"The folded copy has no layer computing {', '.join(missing)}.")
    return with_channel_means(folded, means, unfold)


def with_channel_means(model: keras.Model, names, affine=None) -> keras.Model:
    """`model` with one more output per named layer: its channels' means over the image.

    Args:
        names: layers of `model` with `(N, H, W, C)` outputs.
        affine: `{name: (scale, offset)}`, per-channel arrays: that layer's means are
            given as `means * scale + offset`.

    Returns:
        A `keras.Model` with outputs `[model's output, (N, C) per name...]`; `model`
        itself without names.
    """
    import numpy as np

    if not names:
        return model
    outputs = [model.output]
    for name in names:
        x = layers.GlobalAveragePooling2D(name=f"mean_{name}")(model.get_layer(name).output)
        if name in (affine or {}):
            scale, offset = (np.asarray(a, "float32") for a in affine[name])
            x = layers.Rescaling(scale, offset, name=f"unfold_{name}")(x)
        outputs.append(x)
    return keras.Model(model.input, outputs, name=model.name)


def _gelu_erf(x):
    return 0.5 * x * (1.0 + ops.erf(x * 0.7071067811865476))


def count_params(model: keras.Model) -> int:
    return int(sum(int(w.numpy().size) for w in model.trainable_weights))


def summary_rows(model: keras.Model) -> list[dict]:
    """Returns one row per layer: name, type, output shape, parameter count."""
    return [
        {
            "layer": layer.name,
            "type": type(layer).__name__,
            "output_shape": str(tuple(layer.output.shape[1:])),
            "params": int(layer.count_params()),
        }
        for layer in model.layers
    ]
