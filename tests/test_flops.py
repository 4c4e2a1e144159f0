import keras
from keras import layers

from core.flops import forward_flops, training_flops
from core.model import build_model, preset_config


def test_seed_preset_flops_match_a_hand_count():
    model = build_model(preset_config("seed"))
    macs = (
        30 * 30 * 3 * 3 * 3 * 32  # conv1, valid: 32 -> 30
        + 13 * 13 * 3 * 3 * 32 * 64  # conv2 after pooling to 15, valid: 15 -> 13
        + (6 * 6 * 64) * 64  # dense over the flattened 6x6x64 map
        + 64 * 10
    )
    assert forward_flops(model) == 2 * macs == 8_081_408
    assert training_flops(model) == 3 * forward_flops(model)


def test_depthwise_grouped_and_nested_layers_are_counted():
    inner_in = keras.Input((8, 8, 4))
    inner = keras.Model(inner_in, layers.DepthwiseConv2D(3, padding="same")(inner_in))
    x_in = keras.Input((8, 8, 4))
    x = inner(x_in)
    x = layers.Conv2D(8, 1, groups=2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(x_in, layers.Dense(3)(x))
    macs = 8 * 8 * 3 * 3 * 4 + 8 * 8 * 1 * 1 * 2 * 8 + 8 * 3
    assert forward_flops(model) == 2 * macs
