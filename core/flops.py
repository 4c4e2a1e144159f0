"""How much arithmetic a model costs: multiply-adds of its convolutions and dense layers.

Counted from the layer shapes, not measured: 2 FLOPs per multiply-add, biases, batch norm,
activations and pooling left out (they are a few percent of a conv net's work). Training
costs about three forward passes per image (forward, gradient of the input, gradient of the
weights), which is the convention speed-run reports use.
"""

from __future__ import annotations

import math

TRAINING_PASSES = 3  # forward + two backward products per weight layer


def forward_flops(model) -> int:
    """Returns the FLOPs of one forward pass for one image.

    Args:
        model: a built `keras.Model`; nested models (such as a Keras Applications
            backbone) are counted layer by layer.

    Returns:
        int, `2 x` the multiply-adds of every Conv2D, DepthwiseConv2D and Dense layer.
    """
    from keras import layers

    total = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += _positions(layer) * kh * kw * layer.output.shape[-1]
        elif isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = layer.input.shape[-1] // layer.groups
            total += _positions(layer) * kh * kw * cin * layer.filters
        elif isinstance(layer, layers.Dense):
            total += math.prod(layer.input.shape[1:-1]) * layer.input.shape[-1] * layer.units
    return 2 * int(total)


def training_flops(model) -> int:
    """Returns the FLOPs of one training step for one image (about 3 forward passes)."""
    return TRAINING_PASSES * forward_flops(model)


def _positions(layer) -> int:
    return math.prod(layer.output.shape[1:-1])


def _leaf_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from _leaf_layers(layer)
        else:
            yield layer
