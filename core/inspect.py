"""Looking inside a trained CNN: filters, feature maps, Grad-CAM, one convolution by hand.

Every function takes a loaded `keras.Model` built by `core.model.build_model` (or any
functional model with channels-last `Conv2D` layers) and raw uint8 images, exactly as the
model itself does. Intermediate outputs come from sub-models
`keras.Model(model.input, [layer.output, ...])` sharing the model's weights, so what is
shown is what the model computes, in one forward pass.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np
from keras import layers, ops
from PIL import Image

from core.errors import RunError
from core.fileio import read_json
from core.images import to_model_input

_POOLING = (
    layers.MaxPooling2D,
    layers.AveragePooling2D,
)
# Layers that sit between a convolution and the map it hands on: its BN and activation.
_CONV_FOLLOWERS = (layers.BatchNormalization, layers.Activation, layers.ReLU)
_RED, _BLUE = np.array([220, 30, 30], np.float32), np.array([30, 80, 230], np.float32)
_CHECKPOINT = re.compile(r"^epoch_(\d+)\.keras$")


def conv_layers(model: keras.Model) -> list[str]:
    """Returns the names of the model's `Conv2D` layers, input side first."""
    return [layer.name for layer in model.layers if isinstance(layer, layers.Conv2D)]


def map_layers(model: keras.Model) -> list[str]:
    """Returns the names of the layers whose outputs are feature maps worth showing.

    These are each convolution's activated output (the `act*` layer, after batch norm in
    BN nets, or the convolution itself when it carries its own non-linearity) and every
    2D pooling layer, input side first; not 1x1 outputs (MobileNet's squeeze-and-excite
    gates, a last stage on small inputs), which are a vector, not a picture.
    """
    shown = {_activated(model, name).name for name in conv_layers(model)}
    return [
        layer.name
        for layer in model.layers
        if (layer.name in shown or isinstance(layer, _POOLING))
        and tuple(layer.output.shape[1:3]) != (1, 1)
    ]


def model_image(model: keras.Model, image: np.ndarray) -> np.ndarray:
    """Returns the pixels the model will see: `image` resized to its input size if needed.

    Args:
        model: a model taking `(N, S, S, 3)` images.
        image: uint8 `(H, W, 3)`.

    Returns:
        uint8 `(S, S, 3)`; `image` itself when it already has that size.
    """
    size = int(model.inputs[0].shape[1])
    image = np.asarray(image, np.uint8)
    if image.shape == (size, size, 3):
        return image
    return to_model_input(Image.fromarray(image), size)


def first_layer_filter_tiles(model: keras.Model) -> np.ndarray:
    """Returns the first convolution's kernels as small RGB pictures.

    Each filter is scaled on its own, symmetrically around zero: a weight `w` becomes
    `128 + 127 * w / max|w|` (max over that filter's k*k*3 weights), so grey (128) is a
    zero weight, a bright red pixel is a large positive weight on the red input, and a
    dark one a large negative weight. A filter of zeros is plain grey.

    Args:
        model: a model whose first `Conv2D` reads the 3 RGB channels.

    Returns:
        uint8 `(F, k, k, 3)`: one tile per output filter.

    Raises:
        ValueError: the model has no convolution, or its first one does not read RGB.
    """
    names = conv_layers(model)
    if not names:
        raise ValueError(f"The model {model.name} has no convolution layer.")
    kernel = _kernel(model.get_layer(names[0]))  # (k, k, C_in, F)
    if kernel.shape[2] != 3:
        raise ValueError(f"The first convolution reads {kernel.shape[2]} channels, not RGB.")
    tiles = kernel.transpose(3, 0, 1, 2)
    peak = np.abs(tiles).max(axis=(1, 2, 3), keepdims=True)
    scaled = np.divide(tiles, peak, out=np.zeros_like(tiles), where=peak > 0)
    return np.rint(128 + 127 * scaled).astype(np.uint8)


def filter_grid(model: keras.Model, layer_name: str) -> np.ndarray:
    """Returns a convolution's kernels arranged as one small grid per (filter, input channel).

    Args:
        model: the model.
        layer_name: the name of one of its `Conv2D` layers.

    Returns:
        float32 `(F, C_in, k, k)`: `grid[f, c]` is the `k x k` kernel that output filter `f`
        applies to input channel `c`.
    """
    return _kernel(_conv(model, layer_name)).transpose(3, 2, 0, 1)


def weight_histograms(model: keras.Model) -> dict[str, np.ndarray]:
    """Returns the flattened kernel weights of every `Conv2D` and `Dense` layer (no biases).

    Returns:
        `{layer_name: float32 (n,)}` in model order.
    """
    return {
        layer.name: _kernel(layer).ravel()
        for layer in model.layers
        if isinstance(layer, (layers.Conv2D, layers.Dense))
    }


def feature_model(model: keras.Model, layer_names: list[str]) -> keras.Model:
    """Returns a sub-model mapping the model's input to the outputs of `layer_names`.

    It shares the model's weights; build it once and call it many times.
    """
    return keras.Model(model.input, [model.get_layer(n).output for n in layer_names])


def feature_maps(
    model: keras.Model, image: np.ndarray, layer_names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Returns the outputs of several layers for one image, in a single forward pass.

    Args:
        model: the model.
        image: uint8 `(H, W, 3)`; resized to the model's input size if it differs.
        layer_names: the layers to read; default `map_layers(model)`.

    Returns:
        `{layer_name: float32 (H_l, W_l, C_l)}` in the order of `layer_names`.
    """
    names = list(layer_names or map_layers(model))
    outputs = feature_model(model, names)(_batch(model, image), training=False)
    if not isinstance(outputs, (list, tuple)):  # one output comes back bare
        outputs = [outputs]
    return {name: _numpy(out)[0] for name, out in zip(names, outputs, strict=True)}


def normalise_maps(maps: np.ndarray) -> np.ndarray:
    """Scales each channel of a feature map to [0, 1] on its own (a constant map gives 0).

    Args:
        maps: float `(H, W, C)`.

    Returns:
        float32 `(H, W, C)`.
    """
    maps = np.asarray(maps, np.float32)
    low = maps.min(axis=(0, 1), keepdims=True)
    span = maps.max(axis=(0, 1), keepdims=True) - low
    return np.divide(maps - low, span, out=np.zeros_like(maps), where=span > 0)


def mosaic(tiles: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
    """Lays out equally sized 2D tiles in rows of `columns`, separated by NaN gaps.

    Plotly leaves NaN cells blank, so one heatmap of the mosaic shows many maps at once.

    Args:
        tiles: float `(N, h, w)`.
        columns: tiles per row, at least 1.
        pad: width of the NaN gap between tiles, in cells.

    Returns:
        float32 `(rows * (h + pad) - pad, columns * (w + pad) - pad)`, with
        `rows = ceil(N / columns)`; unused cells of the last row are NaN.
    """
    tiles = np.asarray(tiles, np.float32)
    n, h, w = tiles.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    out = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad), np.nan, np.float32)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = tile
    return out


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Enlarges an image by repeating pixels (nearest neighbour: no blur between weights).

    Args:
        image: `(H, W, ...)` of any dtype.
        factor: a positive int.

    Returns:
        `(H * factor, W * factor, ...)`, same dtype.
    """
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def cam_layer(model: keras.Model) -> str:
    """Returns the layer Grad-CAM reads by default: the last convolution's activated output."""
    names = conv_layers(model)
    if not names:
        raise ValueError(f"The model {model.name} has no convolution layer.")
    return _activated(model, names[-1]).name


def kept_on_model(model: keras.Model, key, make):
    """`make()` once per model and `key`, kept on the model itself, so that what it holds
    (a compiled function tracing the model) lives as long as the model. The dict is set past
    Keras's attribute tracking, which would keep a copy of it, not the dict written to."""
    kept = model.__dict__.get("_cnn_lab_kept")
    if kept is None:
        kept = {}
        object.__setattr__(model, "_cnn_lab_kept", kept)
    if key not in kept:
        kept[key] = make()
    return kept[key]


def softmax_head(model: keras.Model) -> layers.Dense | None:
    """The model's last layer when it is a `Dense` layer with a softmax, whose logits are
    the class scores before the softmax; None otherwise."""
    head = model.layers[-1]
    if isinstance(head, layers.Dense) and _activation_name(head) == "softmax":
        return head
    return None


def grad_cam(
    model: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
    layer_name: str | None = None,
) -> tuple[np.ndarray, int, np.ndarray]:
    """Computes a Grad-CAM heatmap: where in the image the evidence for a class lies.

    Grad-CAM (Selvaraju et al., 2017): with `A` the feature maps of a convolutional layer
    and `y_c` the class score before the softmax, each channel gets the weight
    `alpha_k = mean_ij d y_c / d A_ijk`, and the map is `ReLU(sum_k alpha_k A_k)`, scaled so
    that its maximum is 1 and resized (bilinearly) to the input. When the model ends in a
    softmax `Dense`, the score is that layer's logit; otherwise the model's output itself.

    Args:
        model: the model.
        image: uint8 `(H, W, 3)`; resized to the model's input size `S` if it differs.
        class_index: the class to explain; default the predicted one.
        layer_name: a layer with `(h, w, C)` outputs; default `cam_layer(model)`.

    Returns:
        `(heatmap, class_index, probs)`: float32 `(S, S)` in [0, 1] (all zero when nothing
        in the image argues for the class), the int class explained, and the model's
        float32 probabilities `(num_classes,)`.

    Raises:
        ValueError: `class_index` is not a class of the model.
    """
    import tensorflow as tf  # the project runs Keras on TensorFlow; gradients need a tape

    x = _batch(model, image)
    head = softmax_head(model)
    logits_head = head is not None
    last = head.input if logits_head else model.outputs[0]
    maps_layer = model.get_layer(layer_name or cam_layer(model))
    grad_model = keras.Model(model.input, [maps_layer.output, last])
    with tf.GradientTape() as tape:
        maps, h = grad_model(x, training=False)
        scores = ops.matmul(h, head.kernel) + head.bias if logits_head else h
        probs = ops.softmax(scores) if logits_head else scores
        if class_index is None:
            class_index = int(np.argmax(_numpy(probs)[0]))
        if not 0 <= class_index < scores.shape[-1]:
            raise ValueError(f"Class {class_index} is not one of {scores.shape[-1]} classes.")
        score = scores[0, class_index]
    grads = _numpy(tape.gradient(score, maps))[0]
    weights = grads.mean(axis=(0, 1))
    cam = np.maximum((_numpy(maps)[0] * weights).sum(axis=-1), 0)
    if cam.max() > 0:
        cam = cam / cam.max()
    size = x.shape[1]
    heatmap = _numpy(ops.image.resize(cam[None, :, :, None], (size, size)))[0, :, :, 0]
    return np.clip(heatmap, 0, 1).astype(np.float32), class_index, _numpy(probs)[0]


OCCLUSION_STEPS = 13  # patch positions along each side: 169 forward passes an image


class Occlusion(NamedTuple):
    drop: np.ndarray  # float32 (S, S): the class's probability lost with each pixel hidden
    class_index: int
    probs: np.ndarray  # float32 (num_classes,): the image's, nothing hidden
    lowest: float  # the class's probability with the square that matters most hidden
    side: int  # the hidden square's side, in pixels of the model's input


def occlusions(
    model: keras.Model, image: np.ndarray, temperature: float = 1.0, batch_size: int = 64
) -> list[Occlusion]:
    """Occlusion sensitivity for every class: how much each class's probability falls
    when each part of the image is hidden.

    Occlusion (Zeiler and Fergus, 2014) asks the model itself, with no gradient: a square
    a quarter of the image wide, filled with the image's mean colour, slides over it in
    `OCCLUSION_STEPS` x `OCCLUSION_STEPS` positions, and each pixel gets the mean fall in
    a class's probability over the squares that covered it. Positive where the pixels
    argued for the class, negative where hiding them raised it. One set of forward passes
    serves every class.

    Args:
        model: the model; its output, probabilities.
        image: uint8 `(H, W, 3)`; resized to the model's input size `S` if it differs.
        temperature: probabilities are taken after it (`core.evaluate.with_temperature`),
            as the Classify page shows them.
        batch_size: hidden copies per forward pass.

    Returns:
        One `Occlusion` per class, in class order: `drop` float32 `(S, S)` in [-1, 1], the
        class, the image's probabilities `(num_classes,)`, the class's lowest probability
        with a square hidden, and the square's side.
    """
    from core.classify import predict_pixels
    from core.evaluate import with_temperature

    x = _batch(model, image)[0]
    size = x.shape[0]
    side = max(1, size // 4)
    starts = np.unique(np.linspace(0, size - side, OCCLUSION_STEPS).round().astype(int))
    corners = [(r, c) for r in starts for c in starts]
    probs = with_temperature(predict_pixels(model, x[None]), temperature)[0]
    hidden, fill = [], x.mean(axis=(0, 1))
    for start in range(0, len(corners), batch_size):
        chunk = corners[start : start + batch_size]
        batch = np.repeat(x[None], len(chunk), axis=0)
        for copy, (r, c) in zip(batch, chunk, strict=True):
            copy[r : r + side, c : c + side] = fill
        hidden.append(with_temperature(predict_pixels(model, batch), temperature))
    hidden = np.concatenate(hidden)  # (squares, classes)
    lost = np.zeros((size, size, len(probs)), np.float64)
    covered = np.zeros((size, size, 1), np.float64)
    for (r, c), p in zip(corners, hidden, strict=True):
        lost[r : r + side, c : c + side] += probs - p
        covered[r : r + side, c : c + side] += 1
    drops = (lost / np.maximum(covered, 1)).astype(np.float32)
    lowest = hidden.min(axis=0)
    return [Occlusion(drops[..., k], k, probs, float(lowest[k]), side) for k in range(len(probs))]


def occlusion(
    model: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
    temperature: float = 1.0,
    batch_size: int = 64,
) -> Occlusion:
    """`occlusions` for one class, by default the predicted one.

    Raises:
        ValueError: `class_index` is not a class of the model.
    """
    found = occlusions(model, image, temperature, batch_size)
    if class_index is None:
        class_index = int(np.argmax(found[0].probs))
    if not 0 <= class_index < len(found):
        raise ValueError(f"Class {class_index} is not one of {len(found)} classes.")
    return found[class_index]


def strongest_change(*found: Occlusion) -> float:
    """The largest change in probability that hiding a part makes in any of the maps: the
    `scale` of `signed_overlay` that draws them on one colour scale (0 where none moved)."""
    return max(float(np.abs(f.drop).max()) for f in found)


def signed_overlay(
    image: np.ndarray, values: np.ndarray, alpha: float = 0.6, scale: float = 1.0
) -> np.ndarray:
    """Colours an image red where `values` are positive and blue where negative, the
    colour's strength following the value; where it is 0 the image shows as it is.

    Args:
        image: uint8 `(S, S, 3)`.
        values: float `(S, S)`; divided by `scale`, then clipped to [-1, 1].
        alpha: the colour's share where a value is `scale` or `-scale`.
        scale: the value drawn in full colour, e.g. `strongest_change`; 0 is taken as 1
            (all values are then 0).

    Returns:
        uint8 `(S, S, 3)`.
    """
    v = np.clip(np.asarray(values, np.float32) / (scale or 1.0), -1, 1)[..., None]
    colour = np.where(v > 0, _RED, _BLUE)
    share = alpha * np.abs(v)
    blend = (1 - share) * np.asarray(image, np.float32) + share * colour
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def classifier_input(model: keras.Model) -> keras.KerasTensor:
    """Returns what the model's classifier reads: the input of its last `Dense` layer (the
    pooled features in the speed presets, the last hidden `Dense` layer's output in `seed`).

    Raises:
        ValueError: the model has no `Dense` layer.
    """
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    if not dense:
        raise ValueError(f"The model {model.name} has no Dense layer.")
    return dense[-1].input


SPACE_LIMIT = 5000  # images in a feature space: enough to see the clouds, light to draw


def space_rows(count: int, limit: int = SPACE_LIMIT, seed: int = 0) -> np.ndarray:
    """Which of `count` images a feature space places: all, or a seeded random `limit`.

    Returns:
        int64 `(min(count, limit),)` positions, ascending.
    """
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))


def with_features(model: keras.Model) -> keras.Model:
    """The model with a second output, its `classifier_input`: one forward pass gives both
    the probabilities and what the classifier read (flattened by the caller).

    Raises:
        ValueError: the model has no `Dense` layer.
    """
    return keras.Model(model.input, [model.output, classifier_input(model)])


def feature_space(
    model: keras.Model,
    images: np.ndarray,
    limit: int = SPACE_LIMIT,
    seed: int = 0,
    batch_size: int = 256,
    progress=None,
) -> dict:
    """Places images in a plane by what the model's classifier reads of them.

    The features (`classifier_input`) of at most `limit` images (`space_rows`) are
    projected on their first two principal components (`principal_plane`). Images the
    model tells apart well form separate clouds; PCA is linear, so what overlaps here may
    still be separated in the other dimensions.

    Args:
        model: the model.
        images: uint8 `(N, S, S, 3)` at the model's input size.
        limit: the most images placed.
        seed: the random draw when `N > limit`.
        batch_size: images per forward pass.
        progress: called as `progress(done, total)` after each batch.

    Returns:
        `space_of(index, features)` for the images placed.

    Raises:
        ValueError: the model has no `Dense` layer.
    """
    index = space_rows(len(images), limit, seed)
    reader = keras.Model(model.input, classifier_input(model))
    parts = [np.zeros((0, int(np.prod(reader.output.shape[1:]))), np.float32)]
    for start in range(0, len(index), batch_size):
        batch = np.asarray(images[index[start : start + batch_size]], np.float32)
        parts.append(_numpy(reader.predict_on_batch(batch)).reshape(len(batch), -1))
        if progress:
            progress(start + len(batch), len(index))
    return space_of(index, np.concatenate(parts))


def space_of(index: np.ndarray, features: np.ndarray) -> dict:
    """A feature space from the features of the images at `index`.

    Args:
        index: int `(M,)` positions of the images in their split, ascending.
        features: float `(M, D)` their classifier's inputs.

    Returns:
        `{"index", "xy", "explained", "dims"}`: `index` as int64, float32 `(M, 2)`
        coordinates (the origin for fewer than two images: no spread to project), float
        `(2,)` the share of the features' variance along each axis, and `D`.
    """
    index = np.asarray(index, np.int64)
    xy, explained = np.zeros((len(index), 2), np.float32), np.zeros(2)
    if len(index) >= 2:
        xy, explained = principal_plane(features)
    return {"index": index, "xy": xy, "explained": explained, "dims": int(features.shape[1])}


def principal_plane(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projects rows on their first two principal components (centred, then by SVD).

    Args:
        features: float `(N, D)`, `N >= 2`.

    Returns:
        `(xy, explained)`: float32 `(N, 2)` coordinates (a second column of zeros when
        `D == 1`) and float `(2,)` the share of the variance along each axis.
    """
    centred = np.asarray(features, np.float64) - np.mean(features, axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(singular))
    xy, explained = np.zeros((len(centred), 2), np.float32), np.zeros(2)
    xy[:, :k] = centred @ axes[:k].T
    explained[:k] = singular[:k] ** 2 / max(float((singular**2).sum()), 1e-30)
    return xy, explained


def colormap(values: np.ndarray) -> np.ndarray:
    """Maps values in [0, 1] to the "jet" colours (blue, cyan, yellow, red) in numpy.

    Args:
        values: float, any shape; clipped to [0, 1].

    Returns:
        uint8 `(*values.shape, 3)`.
    """
    v = np.clip(np.asarray(values, np.float32), 0, 1)[..., None]
    centres = np.array([0.75, 0.5, 0.25], np.float32)  # where red, green, blue peak
    rgb = np.clip(1.5 - np.abs(4 * (v - centres)), 0, 1)
    return np.rint(255 * rgb).astype(np.uint8)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blends a heatmap, coloured with `colormap`, over an image.

    Args:
        image: uint8 `(S, S, 3)`.
        heatmap: float `(S, S)` in [0, 1].
        alpha: the heatmap's share, 0 (image only) to 1 (heatmap only).

    Returns:
        uint8 `(S, S, 3)`.
    """
    blend = (1 - alpha) * np.asarray(image, np.float32) + alpha * colormap(heatmap)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def conv_explainer(
    model: keras.Model, image: np.ndarray, layer_name: str, row: int, col: int, channel: int
) -> dict:
    """Recomputes one output value of a convolution by hand, from the model's own tensors.

    `z = sum_{u,v,k} x[i0 + u*d, j0 + v*d, k] * w[u, v, k, channel] + b[channel]` with
    `(i0, j0) = (row, col) * stride - padding` and `d` the dilation; positions outside the
    input read zeros ("same" padding). Then, as in the model, batch norm (if the next layer
    is one) and the activation `a = f(z)` (or `f(BN(z))`).

    Args:
        model: the model.
        image: uint8 `(H, W, 3)`; resized to the model's input size if it differs.
        layer_name: a `Conv2D` layer.
        row, col: a position in that layer's output map.
        channel: an output channel (filter) of that layer.

    Returns:
        A dict with
        `layer`, `source` (the layer whose output the convolution reads; for the first
        convolution that is the image scaled to [0, 1]), `row`, `col`, `channel`,
        `origin` (`(i0, j0)`, negative inside the padding), `stride`, `padding`,
        `patch` float32 `(k, k, C_in)` (the input values the kernel sees),
        `kernel` float32 `(k, k, C_in)`, `products` float32 `(k, k, C_in)`,
        `channel_sums` float32 `(C_in,)` (the products summed per input channel),
        `sum`, `bias`, `z` (floats), `model_z` (the model's own output at that position),
        `bn` (None, or a dict `gamma`, `beta`, `mean`, `variance`, `epsilon`, `value`,
        `model_value`), `activation` (its name, e.g. "relu", or None), `a` and `model_a`
        (None when no activation follows).

    Raises:
        ValueError: the layer is not a convolution or the position is outside its map.
    """
    conv = _conv(model, layer_name)
    bn, shift, act = _followers(model, conv)
    names = [conv.name] + [layer.name for layer in (shift or bn, act) if layer is not None]
    probe = keras.Model(model.input, [conv.input] + [model.get_layer(n).output for n in names])
    x_in, z_map, *rest = (_numpy(t)[0] for t in probe(_batch(model, image), training=False))
    out_h, out_w, filters = z_map.shape
    if not (0 <= row < out_h and 0 <= col < out_w and 0 <= channel < filters):
        raise ValueError(
            f"({row}, {col}, {channel}) is outside {conv.name}'s {out_h}x{out_w}x{filters} map."
        )
    kernel = _kernel(conv)[:, :, :, channel]
    patch, origin = _receptive_patch(conv, x_in, (out_h, out_w), row, col)
    products = patch * kernel
    total = float(products.sum(dtype=np.float64))
    bias = float(_numpy(conv.bias)[channel]) if conv.use_bias else 0.0
    z = total + bias
    result = {
        "layer": conv.name,
        "source": _producer(conv.input),
        "row": row,
        "col": col,
        "channel": channel,
        "origin": origin,
        "stride": tuple(conv.strides),
        "padding": conv.padding,
        "patch": patch,
        "kernel": kernel,
        "products": products,
        "channel_sums": products.sum(axis=(0, 1)),
        "sum": total,
        "bias": bias,
        "z": z,
        "model_z": float(z_map[row, col, channel]),
        "bn": None,
        "activation": None,
        "a": None,
        "model_a": None,
    }
    pre = z
    if bn is not None:
        beta = None if shift is None else float(_numpy(shift.bias)[channel]) * shift.scale
        result["bn"] = _bn_value(bn, z, channel, float(rest.pop(0)[row, col, channel]), beta)
        pre = result["bn"]["value"]
    if act is not None:
        result["activation"] = _activation_name(act)
        result["a"] = float(_numpy(act(np.array([pre], np.float32)))[0])
        result["model_a"] = float(rest.pop(0)[row, col, channel])
    return result


def checkpoint_epochs(run_dir: str | Path) -> list[int]:
    """Returns the epochs that have a checkpoint `checkpoints/epoch_NNN.keras`, ascending."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = (_CHECKPOINT.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def replay_epoch(run_dir: str | Path, epoch: int, probe: np.ndarray) -> dict:
    """Loads one epoch's checkpoint and shows what it had learned by then.

    Args:
        run_dir: a run directory.
        epoch: an epoch listed by `checkpoint_epochs(run_dir)`.
        probe: uint8 `(H, W, 3)`; resized to the model's input size if it differs.

    Returns:
        A dict with `epoch` (int), `tiles` (uint8 `(F, k, k, 3)`, see
        `first_layer_filter_tiles`), `layer` (the first convolution's activated output),
        `maps` (float32 `(H_1, W_1, F)`, that layer's output for the probe), `probs`
        (float32 `(num_classes,)`) and `class_names` (from the run's model card, or None
        while the run has none).

    Raises:
        RunError: there is no checkpoint for that epoch, or it cannot be loaded.
    """
    from core.model import load_model

    run_dir = Path(run_dir)
    model = load_model(run_dir / "checkpoints" / f"epoch_{epoch:03d}.keras")
    layer = _activated(model, conv_layers(model)[0]).name
    outputs = feature_maps(model, probe, [layer, model.layers[-1].name])
    card = read_json(run_dir / "model_card.json", {}) or {}
    return {
        "epoch": epoch,
        "tiles": first_layer_filter_tiles(model),
        "layer": layer,
        "maps": outputs[layer],
        "probs": outputs[model.layers[-1].name],
        "class_names": card.get("class_names"),
    }


def replay(run_dir: str | Path, probe: np.ndarray) -> list[dict]:
    """Returns `replay_epoch` for every checkpoint of a run, in epoch order.

    Raises:
        RunError: the run has no checkpoint.
    """
    epochs = checkpoint_epochs(run_dir)
    if not epochs:
        raise RunError(f"{Path(run_dir).name} has no checkpoint yet.")
    return [replay_epoch(run_dir, epoch, probe) for epoch in epochs]


CURVE_IMAGES = 2000  # images each checkpoint is scored on: 200 a class of CIFAR-10's ten
CURVES_FILE = "class_curves.json"  # in the run's folder: the scores of its checkpoints


def curve_rows(labels: np.ndarray, limit: int = CURVE_IMAGES) -> np.ndarray:
    """Positions of up to `limit` images, the same number of each class (the first of
    each in `labels`' order; all of a class that has fewer), ascending.

    Args:
        labels: int `(N,)`.

    Returns:
        int64 `(M,)`.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    each = max(1, limit // max(len(classes), 1))
    rows = [np.flatnonzero(labels == c)[:each] for c in classes]
    return np.sort(np.concatenate([np.zeros(0, np.int64), *rows]))


def _curve_images_key(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.blake2b(np.ascontiguousarray(images).tobytes(), digest_size=16)
    digest.update(np.asarray(labels, np.int64).tobytes())
    return digest.hexdigest()


def _checkpoint_stamp(run_dir: Path, epoch: int) -> str:
    stat = (run_dir / "checkpoints" / f"epoch_{epoch:03d}.keras").stat()
    return f"{stat.st_mtime_ns}-{stat.st_size}"


def _kept_curves(run_dir: Path, key: str) -> dict:
    try:
        kept = read_json(run_dir / CURVES_FILE)
    except (OSError, ValueError):  # cut short or edited by hand: scored again
        kept = None
    if not isinstance(kept, dict) or kept.get("images") != key:
        return {}
    return kept.get("epochs") or {}


def curves_to_score(run_dir: str | Path, images: np.ndarray, labels: np.ndarray) -> list[int]:
    """The epochs whose checkpoint `class_curves` would load: not scored on these images
    yet, or written again since (a resumed run)."""
    run_dir = Path(run_dir)
    kept = _kept_curves(run_dir, _curve_images_key(images, labels))
    return _stale(run_dir, checkpoint_epochs(run_dir), kept, len(labels))


def _stale(run_dir: Path, epochs: list[int], kept: dict, images: int) -> list[int]:
    return [
        epoch
        for epoch in epochs
        if not isinstance(kept.get(str(epoch)), dict)
        or kept[str(epoch)].get("stamp") != _checkpoint_stamp(run_dir, epoch)
        or _confusion_of(kept[str(epoch)], images) is None
    ]


def _confusion_of(entry: dict, images: int) -> np.ndarray | None:
    """A kept checkpoint's confusion matrix, or None where it is not one of `images`."""
    try:
        cm = np.array(entry.get("confusion"), np.int64)
    except (TypeError, ValueError):
        return None
    square = cm.ndim == 2 and cm.shape[0] == cm.shape[1]
    return cm if square and cm.sum() == images and (cm >= 0).all() else None


def class_curves(
    run_dir: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    progress=None,
) -> dict:
    """How each class was learned: every checkpoint of a run scored on labelled images.

    The scores are kept in the run's folder (`CURVES_FILE`) under a digest of the images
    and each checkpoint's modification time and size, so a checkpoint is loaded once; a
    new one (a run still training) is scored when asked again.

    Args:
        run_dir: a run directory with checkpoints.
        images: uint8 `(N, H, W, 3)`, e.g. the run's validation images; resized to a
            checkpoint's input size if it differs.
        labels: int `(N,)` classes of `images`.
        num_classes: the run's number of classes.
        progress: called as `progress(0, total)` before the first checkpoint it loads and
            `progress(done, total)` after each; never where every score is kept.

    Returns:
        A dict with `epochs` (list of int, ascending), `confusion` (int64 `(E, C, C)`, row
        = true class, column = answer), `recall` (float32 `(E, C)`, the share of each
        class's images answered right; NaN for a class without images), `accuracy` (float32
        `(E,)`) and `images` (N).

    Raises:
        RunError: the run has no checkpoint, or one cannot be loaded.
    """
    from core.evaluate import confusion_matrix, predict_probs
    from core.fileio import atomic_write_json
    from core.model import load_model

    run_dir = Path(run_dir)
    epochs = checkpoint_epochs(run_dir)
    if not epochs:
        raise RunError(f"{run_dir.name} has no checkpoint yet.")
    key = _curve_images_key(images, labels)
    kept = _kept_curves(run_dir, key)
    todo = _stale(run_dir, epochs, kept, len(labels))
    square = (num_classes, num_classes)
    # Kept with another count of classes (not these labels): scored again, as the run has them.
    todo = [e for e in epochs if e in todo or np.shape(kept[str(e)].get("confusion")) != square]
    scored = {str(e): kept[str(e)] for e in epochs if e not in todo}
    if todo and progress:
        progress(0, len(todo))
    for done, epoch in enumerate(todo, 1):
        stamp = _checkpoint_stamp(run_dir, epoch)
        model = load_model(run_dir / "checkpoints" / f"epoch_{epoch:03d}.keras")
        size = int(model.inputs[0].shape[1])
        x = images if images.shape[1:3] == (size, size) else [model_image(model, i) for i in images]
        answers = predict_probs(model, np.asarray(x)).argmax(axis=1)
        cm = confusion_matrix(labels, answers, num_classes)
        scored[str(epoch)] = {"stamp": stamp, "confusion": cm.tolist()}
        try:  # after each checkpoint: a page left half-way keeps what it scored
            atomic_write_json(run_dir / CURVES_FILE, {"images": key, "epochs": scored})
        except OSError:
            pass  # a full disk or a read-only folder: shown now, scored again next time
        if progress:
            progress(done, len(todo))
    confusion = np.array([_confusion_of(scored[str(e)], len(labels)) for e in epochs])
    support = confusion.sum(axis=2)
    right = np.diagonal(confusion, axis1=1, axis2=2)
    recall = np.divide(right, support, out=np.full(support.shape, np.nan), where=support > 0)
    return {
        "epochs": epochs,
        "confusion": confusion,
        "recall": recall.astype(np.float32),  # NaN for a class without images here
        "accuracy": (np.trace(confusion, axis1=1, axis2=2) / max(len(labels), 1)).astype(
            np.float32
        ),
        "images": len(labels),
    }


def curves_summary(curves: dict, class_names: list[str]) -> str:
    """A few sentences on `class_curves`: the first and last checkpoint's accuracy and
    their best and worst classes."""

    def at(row: int) -> str:
        recall = curves["recall"][row]
        best, worst = int(np.nanargmax(recall)), int(np.nanargmin(recall))
        return (
            f"epoch {curves['epochs'][row]}, {curves['accuracy'][row]:.0%} in all, from "
            f"{class_names[worst]} {recall[worst]:.0%} to {class_names[best]} {recall[best]:.0%}"
        )

    none = [n for n, r in zip(class_names, curves["recall"][0], strict=True) if np.isnan(r)]
    scored = (
        f"Each checkpoint as saved, on {curves['images']:,} held-out images, as many of "
        "each class" + (f" (none of {', '.join(none)}). " if none else ". ")
    )
    if len(curves["epochs"]) == 1:
        return scored + f"So far one checkpoint: {at(0)}."
    return scored + f"First {at(0)}; last {at(-1)}."


def _numpy(tensor) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(tensor), np.float32)


def _batch(model, image):
    return model_image(model, image)[None].astype(np.float32)


def _kernel(layer) -> np.ndarray:
    return _numpy(layer.kernel)


def _conv(model, layer_name):
    layer = model.get_layer(layer_name)
    if not isinstance(layer, layers.Conv2D):
        raise ValueError(f"{layer_name} is a {type(layer).__name__}, not a convolution.")
    return layer


def _activation_name(layer) -> str:
    fn = getattr(layer, "activation", None)
    if fn is None:  # a dedicated layer such as `ReLU`
        return type(layer).__name__.lower()
    return getattr(fn, "__name__", type(fn).__name__)


def _followers(model, conv):
    """The batch norm, its separate shift and the activation that directly follow `conv`.

    The shift is a speed net's `ScaledBias` (its batch norm has no beta of its own). Each
    is None when absent.
    """
    from core.model import ScaledBias

    index = model.layers.index(conv)
    bn = shift = act = None
    for layer in model.layers[index + 1 :]:
        if isinstance(layer, layers.BatchNormalization) and bn is None and act is None:
            bn = layer
        elif isinstance(layer, ScaledBias) and bn is not None and shift is None and act is None:
            shift = layer
        elif isinstance(layer, (layers.Activation, layers.ReLU)) and act is None:
            act = layer
        else:
            break
    return bn, shift, act


def _activated(model, conv_name):
    """The layer whose output is the convolution's map after its BN and activation."""
    conv = model.get_layer(conv_name)
    bn, shift, act = _followers(model, conv)
    return act or shift or bn or conv


def _producer(tensor) -> str | None:
    history = getattr(tensor, "_keras_history", None)
    return getattr(getattr(history, "operation", None), "name", None)


def _receptive_patch(conv, x_in, out_shape, row, col):
    """The `(k, k, C_in)` input values under the kernel at (row, col), zeros in the padding."""
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.strides, conv.dilation_rate
    in_h, in_w, _ = x_in.shape
    top = left = 0
    if conv.padding == "same":
        # TensorFlow's rule: the odd padding cell goes to the bottom/right.
        top = max((out_shape[0] - 1) * sh + (kh - 1) * dh + 1 - in_h, 0) // 2
        left = max((out_shape[1] - 1) * sw + (kw - 1) * dw + 1 - in_w, 0) // 2
    i0, j0 = row * sh - top, col * sw - left
    rows, cols = i0 + dh * np.arange(kh), j0 + dw * np.arange(kw)
    inside = ((rows >= 0) & (rows < in_h))[:, None] & ((cols >= 0) & (cols < in_w))[None, :]
    patch = x_in[np.clip(rows, 0, in_h - 1)[:, None], np.clip(cols, 0, in_w - 1)[None, :]]
    return np.where(inside[..., None], patch, 0).astype(np.float32), (int(i0), int(j0))


def _bn_value(bn, z, channel, model_value, beta=None):
    def weight(name, default):
        var = getattr(bn, name, None)
        return float(_numpy(var)[channel]) if var is not None else default

    stats = {
        "gamma": weight("gamma", 1.0),
        "beta": weight("beta", 0.0) if beta is None else beta,
        "mean": weight("moving_mean", 0.0),
        "variance": weight("moving_variance", 1.0),
        "epsilon": float(bn.epsilon),
    }
    value = (z - stats["mean"]) / np.sqrt(stats["variance"] + stats["epsilon"])
    return {
        **stats,
        "value": float(stats["gamma"] * value + stats["beta"]),
        "model_value": model_value,
    }
