"""What a unit of the network looks for: pictures made to excite it (feature visualisation).

Each picture starts as grey with a little seeded noise and climbs, a step at a time, the
gradient of one unit's mean activation before its activation function (below 0 a ReLU
passes no gradient, a GELU almost none: a unit off on grey would never wake) (Erhan et al.
2009; Olah, Mordvintsev and Schubert, "Feature Visualization", Distill 2017). Left alone,
the climb finds high-frequency noise that excites the unit without looking like anything;
two regularisers keep it to patterns: before each step the picture is shifted by up to
`JITTER` pixels (the unit must respond wherever the pattern is), and every `BLUR_EVERY`
steps it is blurred a little. A unit is a channel of a convolution's activated output (its
mean over the map) or a class (its score before the softmax).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import layers

# The Evaluate page's store of kept answers: written atomically, the newest few kept.
from core.evaluate import _keep, _read_arrays, _read_kept

CLASSES = "classes"  # the layer name that stands for the model's class scores
STEPS = 128
STEP = 3.0  # levels a step moves a pixel whose gradient is one standard deviation
JITTER = 2
BLUR_EVERY = 4
_ACTIVATIONS = (layers.Activation, layers.ReLU)  # FastGelu is an Activation


def unit_layers(model: keras.Model) -> list[str]:
    """The layers whose units can be drawn, input side first, then `CLASSES`: every
    activation layer with feature maps (in the speed presets, after each convolution's
    pooling and batch norm) and every convolution that carries its own non-linearity."""
    from core.inspect import _activation_name

    def activated(layer) -> bool:
        if len(layer.output.shape) != 4:
            return False
        if isinstance(layer, _ACTIVATIONS):
            return True
        return isinstance(layer, layers.Conv2D) and _activation_name(layer) != "linear"

    return [layer.name for layer in model.layers if activated(layer)] + [CLASSES]


def unit_count(model: keras.Model, layer: str) -> int:
    """How many units (channels, or classes) a layer of `unit_layers` has."""
    if layer == CLASSES:
        return int(model.output_shape[-1])
    return int(model.get_layer(layer).output.shape[-1])


def _objective(model: keras.Model, layer: str) -> Callable:
    """`(pixels, units) -> (activation, gradient)`: each picture's unit's mean activation,
    and the gradient with respect to the picture of the mean of what the unit's activation
    reads (for a class, its score); compiled once per model and layer and kept on the
    model."""
    from core.inspect import kept_on_model

    return kept_on_model(model, ("objective", layer), lambda: _compiled_objective(model, layer))


def _compiled_objective(model: keras.Model, layer: str) -> Callable:
    import tensorflow as tf  # the project runs Keras on TensorFlow; gradients need a tape

    if layer == CLASSES:
        from core.adversarial import logits_of

        logits = logits_of(model)

        def maps(x):
            scores = logits(x)[:, None, None, :]
            return scores, scores
    else:
        # The climb follows the activation's input: below 0 a ReLU's gradient is 0 and a
        # GELU's nearly so, and a unit that is off on grey would never be woken.
        target = model.get_layer(layer)
        before = target.input if isinstance(target, _ACTIVATIONS) else target.output
        sub = keras.Model(model.input, [before, target.output])

        def maps(x):
            return sub(x, training=False)

    pixels = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

    def mean_of(maps, units):
        chosen = tf.gather(maps, units, axis=-1, batch_dims=1)
        return tf.reduce_mean(tf.cast(chosen, tf.float32), axis=[1, 2])

    @tf.function(input_signature=[pixels, tf.TensorSpec((None,), tf.int32)])
    def objective(x, units):
        with tf.GradientTape() as tape:
            tape.watch(x)
            climbed, activated = maps(x)
            total = tf.reduce_sum(mean_of(climbed, units))
        return mean_of(activated, units), tape.gradient(total, x)

    return objective


def blur(images: np.ndarray) -> np.ndarray:
    """A 3x3 binomial blur of float images `(N, S, S, 3)`, edges reflected."""
    k = np.array([0.25, 0.5, 0.25], np.float32)
    p = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    rows = k[0] * p[:, :, :-2] + k[1] * p[:, :, 1:-1] + k[2] * p[:, :, 2:]
    return k[0] * rows[:, :-2] + k[1] * rows[:, 1:-1] + k[2] * rows[:, 2:]


def preferred_images(
    model: keras.Model,
    layer: str,
    units: list[int],
    steps: int = STEPS,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pictures that excite each unit of a layer.

    Args:
        model: the model; it takes uint8 pixels as float32.
        layer: one of `unit_layers(model)`.
        units: channel (or class) numbers, one picture each.
        steps: gradient steps; each moves a picture by `STEP` times its gradient divided by
            the gradient's standard deviation (whatever the unit's scale), clipped to 0..255.
        seed: the starting noise and the shifts.
        progress: called with `(done, steps)` after each step.

    Returns:
        `(pictures, activations)`: uint8 `(K, S, S, 3)`, and float32 `(K,)` each unit's
        mean activation on its picture (for a class, its score before the softmax).

    Raises:
        ValueError: a unit is not one of the layer's.
    """
    count = unit_count(model, layer)
    if any(not 0 <= u < count for u in units):
        raise ValueError(f"{layer} has units 0 to {count - 1}, not {list(units)}.")
    objective = _objective(model, layer)
    rng = np.random.default_rng(seed)
    size = tuple(model.input_shape[1:])
    x = np.clip(128 + rng.normal(0, 8, (len(units), *size)), 0, 255).astype(np.float32)
    chosen = np.asarray(units, np.int32)
    for step in range(steps):
        dy, dx = (int(v) for v in rng.integers(-JITTER, JITTER + 1, 2))
        _, grad = objective(np.roll(x, (dy, dx), axis=(1, 2)), chosen)
        grad = np.roll(grad.numpy(), (-dy, -dx), axis=(1, 2))
        grad /= grad.std(axis=(1, 2, 3), keepdims=True) + 1e-8
        x = np.clip(x + STEP * grad, 0, 255)
        if BLUR_EVERY and step % BLUR_EVERY == 0 and step < steps - 1:
            x = blur(x)
        if progress:
            progress(step + 1, steps)
    pictures = np.rint(x).astype(np.uint8)
    activation, _ = objective(pictures.astype(np.float32), chosen)
    return pictures, activation.numpy()


def kept_preferred_images(
    model: keras.Model,
    model_path,
    layer: str,
    units: list[int],
    cache_dir=None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`preferred_images` of a saved model (default steps and seed), kept on disk under a
    hash of the model file's bytes, the layer and the units, as the Evaluate page keeps
    predictions: a restarted dashboard shows them again without the climb (16 units of
    the shipped model's deepest layers: about 6 s here; 50 KB kept).

    Args:
        model: the model loaded from `model_path` (its `.keras` file).
        layer, units, progress: as for `preferred_images` (`progress` is not called when
            the pictures are read from disk).
        cache_dir: default `core.data.default_cache_dir()`.
    """
    path = _units_path(model_path, layer, units, cache_dir)
    if (kept := _read_units(path, units)) is not None:
        return kept
    pictures, activations = preferred_images(model, layer, units, progress=progress)
    _keep(path, {"pictures": pictures, "activations": activations})
    return pictures, activations


def preferred_images_if_kept(model_path, layer: str, units: list[int], cache_dir=None):
    """What `kept_preferred_images` would read from disk, or None when it would climb."""
    return _read_units(_units_path(model_path, layer, units, cache_dir), units)


def _read_units(path, units: list[int]):
    kept = _read_kept(path, _read_arrays)
    if kept is None or len(kept.get("activations", ())) != len(units):
        return None
    return kept["pictures"], kept["activations"]


def _units_path(model_path, layer: str, units: list[int], cache_dir):
    from core.evaluate import _content_digest, _kept_path

    content = _content_digest(model_path, np.empty((0,), np.uint8))  # no images: the model
    question = f"units|{layer}|{list(units)}|{STEPS}|{STEP}|{JITTER}|{BLUR_EVERY}|0"
    return _kept_path(content, question, "units-{}.npz", cache_dir)


def stretched(picture: np.ndarray) -> np.ndarray:
    """A picture's contrast stretched for display: its 1st percentile to black and its 99th
    to white, the same for the three channels (the colours keep their balance)."""
    low, high = np.percentile(picture, [1, 99])
    scaled = (picture.astype(np.float32) - low) * (255 / max(high - low, 1.0))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


TOP_IMAGES = 9  # dataset examples kept per unit: a 3x3 mosaic


def strongest_images(
    model: keras.Model,
    layer: str,
    images: np.ndarray,
    k: int = TOP_IMAGES,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For every unit of a layer, the `k` images that excite it most: the dataset's answer
    to what the unit looks for, beside the pictures `preferred_images` makes.

    Args:
        model: the model.
        layer: one of `unit_layers(model)`; a unit's strength on an image is its mean
            activation over the map (for a class, its score before the softmax).
        images: uint8 `(N, S, S, 3)` at the model's input size.
        k: images per unit (all of them when fewer).
        batch_size: images per forward pass.
        progress: called with `(done, N)` after each batch.

    Returns:
        `(index, strength)`: int64 and float32 `(units, min(k, N))`, strongest first.
    """
    from core.classify import predict_pixels

    if layer == CLASSES:
        import tensorflow as tf

        from core.adversarial import logits_of

        pixels = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        logits = tf.function(logits_of(model), input_signature=[pixels])

        def strength(x):
            return np.asarray(logits(x), np.float32)
    else:
        reader = keras.Model(model.input, model.get_layer(layer).output)

        def strength(x):
            return predict_pixels(reader, x).mean(axis=(1, 2))

    rows = []
    for start in range(0, len(images), batch_size):
        rows.append(strength(np.asarray(images[start : start + batch_size], np.float32)))
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    scores = np.concatenate(rows).T  # (units, N)
    index = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return index.astype(np.int64), np.take_along_axis(scores, index, axis=1)
