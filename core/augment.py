"""Augmentation settings and the one function that turns them into Keras layers.

Training and the dashboard's augmentation lab both call `build_augmentation`, so the lab
shows exactly what training applies. Layers take float images in [0, 255], `(B, H, W, 3)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
from keras import layers, ops


@dataclass
class AugmentConfig:
    """What random changes each training image gets; all zeros/False means none."""

    flip: bool = False  # mirror left-right with probability 1/2
    # Training mirrors each image on every other epoch instead of by a coin toss each time
    # (airbench's "alternating flip": no image sees the same side twice in a row); it
    # implies `flip`, and a single batch (the lab) looks the same either way.
    alternate_flip: bool = False
    rotation: float = 0.0  # up to +- this many degrees
    zoom: float = 0.0  # zoom in or out by up to this fraction of the size
    translation: float = 0.0  # shift by up to this fraction of the size (reflected border)
    contrast: float = 0.0  # scale contrast by a factor in [1 - c, 1 + c]
    brightness: float = 0.0  # add up to +- this fraction of 255
    crop_pad: int = 0  # pad by this many pixels (zeros), then crop back at random
    cutout: int = 0  # blank one random square of this side (pixels)

    def is_identity(self) -> bool:
        return self == AugmentConfig()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AugmentConfig:
        """Builds a config from a dict, ignoring keys this version does not know."""
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Control:
    """How a UI offers one `AugmentConfig` field: its label, range and explanation."""

    label: str
    maximum: float | None  # None for the on/off flip
    step: float | None
    help: str


# One table for every page that edits augmentation (the lab and the Train form).
CONTROLS = {
    "flip": Control(
        "Horizontal flip",
        None,
        None,
        "Mirror left-right, half the time. Leave it off where a mirror image is not the same "
        "class: digits, letters, arrows pointing left or right.",
    ),
    "alternate_flip": Control(
        "Flip in turns",
        None,
        None,
        "In training, mirror each image on every other epoch instead of at random, so "
        "each epoch shows the other side of the last one. Turns on the flip.",
    ),
    "rotation": Control(
        "Rotation (± degrees)",
        45.0,
        1.0,
        "Turn by a random angle up to ± this; corners are filled by reflection.",
    ),
    "zoom": Control(
        "Zoom (± fraction)", 0.5, 0.05, "Zoom in or out by up to this fraction of the size."
    ),
    "translation": Control(
        "Translation (± fraction)",
        0.3,
        0.05,
        "Shift by up to this fraction of the size; the border is reflected.",
    ),
    "contrast": Control(
        "Contrast (± fraction)",
        0.9,
        0.05,
        "Scale the contrast by a random factor in [1 - c, 1 + c].",
    ),
    "brightness": Control(
        "Brightness (± fraction of 255)",
        0.5,
        0.05,
        "Add up to ± this fraction of 255 to every pixel.",
    ),
    "crop_pad": Control(
        "Pad and crop (pixels)",
        8,
        1,
        "Pad with black, then cut the original size out at a random place.",
    ),
    "cutout": Control(
        "Cutout square (pixels)", 16, 1, "Blank one random square of this side (0 turns it off)."
    ),
}


@keras.saving.register_keras_serializable(package="cnn_dashboard")
class RandomCutout(layers.Layer):
    """Sets one random `size x size` square per image to zero (DeVries & Taylor, 2017)."""

    def __init__(self, size: int, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.size, self.seed = size, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training or self.size <= 0:
            return images
        shape = ops.shape(images)
        b, h, w = shape[0], shape[1], shape[2]
        cy = keras.random.randint((b, 1, 1), 0, h, seed=self.generator)
        cx = keras.random.randint((b, 1, 1), 0, w, seed=self.generator)
        rows = ops.reshape(ops.arange(h), (1, -1, 1))
        cols = ops.reshape(ops.arange(w), (1, 1, -1))
        half = self.size // 2
        inside = (ops.abs(rows - cy) <= half) & (ops.abs(cols - cx) <= half)
        if self.size % 2 == 0:  # an even square has one more row/column on one side
            inside = inside & (rows - cy < half) & (cols - cx < half)
        keep = ops.cast(ops.logical_not(inside), images.dtype)
        return images * ops.expand_dims(keep, -1)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "seed": self.seed}


def build_augmentation(
    config: AugmentConfig, image_size: int = 32, seed: int | None = None
) -> keras.Sequential:
    """Builds the augmentation pipeline that training applies to every batch.

    Args:
        config: the settings.
        image_size: side of the square images, to turn pixel settings into fractions.
        seed: with a seed, a fresh pipeline gives the same variants for the same input.

    Returns:
        A `keras.Sequential` mapping float `(B, S, S, 3)` in [0, 255] to the same shape;
        call it with `training=True`. With an identity config it has no layers.
    """
    c, s = config, seed
    steps = []
    if c.flip or c.alternate_flip:
        steps.append(layers.RandomFlip("horizontal", seed=s))
    if c.crop_pad:
        # An integer shift of up to crop_pad pixels with zero fill is pad-then-crop.
        f = c.crop_pad / image_size
        steps.append(
            layers.RandomTranslation(f, f, fill_mode="constant", interpolation="nearest", seed=s)
        )
    if c.translation:
        steps.append(layers.RandomTranslation(c.translation, c.translation, seed=s))
    if c.rotation:
        steps.append(layers.RandomRotation(c.rotation / 360.0, fill_mode="reflect", seed=s))
    if c.zoom:
        steps.append(layers.RandomZoom(c.zoom, c.zoom, seed=s))
    if c.contrast:
        steps.append(layers.RandomContrast(c.contrast, seed=s))
    if c.brightness:
        steps.append(layers.RandomBrightness(c.brightness, value_range=(0, 255), seed=s))
    if c.cutout:
        steps.append(RandomCutout(c.cutout, seed=s))
    return keras.Sequential(steps, name="augmentation")


def augment_images(images, config: AugmentConfig, variants: int, seed: int = 0):
    """Returns `variants` augmented copies of each image, as the lab shows them.

    Args:
        images: uint8 `(N, S, S, 3)`.
        config: the settings.
        variants: copies per image.
        seed: same seed, same copies.

    Returns:
        uint8 `(N, variants, S, S, 3)`.
    """
    import numpy as np

    n, size = images.shape[0], images.shape[1]
    pipeline = build_augmentation(config, size, seed=seed)
    batch = np.repeat(images.astype("float32"), variants, axis=0)
    out = ops.convert_to_numpy(pipeline(batch, training=True)) if pipeline.layers else batch
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out.reshape(n, variants, size, size, 3)
