"""Augmentation settings and the functions that turn them into Keras layers.

Training and the dashboard's augmentation lab both call `build_augmentation` (each image
changed on its own) and `build_mixing` (images mixed in pairs with their labels), so the lab
shows exactly what training applies. Layers take float images in [0, 255], `(B, H, W, 3)`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import keras
import numpy as np
from keras import layers, ops


@dataclass
class AugmentConfig:
    """What random changes each training image gets; all zeros/False means none."""

    flip: bool = False  # mirror left-right with probability 1/2
    # Training mirrors each image on every other epoch instead of by a coin toss each time
    # (airbench's "alternating flip": no image sees the same side twice in a row); it
    # implies `flip`, and a single batch (the lab) looks the same either way.
    alternate_flip: bool = False
    vertical_flip: bool = False  # turn upside down with probability 1/2
    rotation: float = 0.0  # up to +- this many degrees
    zoom: float = 0.0  # zoom in or out by up to this fraction of the size
    translation: float = 0.0  # shift by up to this fraction of the size (reflected border)
    contrast: float = 0.0  # scale contrast by a factor in [1 - c, 1 + c]
    brightness: float = 0.0  # add up to +- this fraction of 255
    saturation: float = 0.0  # scale colourfulness by a factor in [1 - s, 1 + s]
    hue: float = 0.0  # turn the colour circle by up to +- this many degrees
    greyscale: float = 0.0  # this share of the images lose their colour
    crop_pad: int = 0  # pad by this many pixels (zeros), then crop back at random
    cutout: int = 0  # blank one random square of this side (pixels)
    # Batch-level: each image is mixed with another image of its batch and its label with
    # that image's label (`build_mixing`); with both, each image gets one of the two.
    mixup: float = 0.0  # MixUp's alpha: the blend weight is drawn from Beta(alpha, alpha)
    cutmix: float = 0.0  # CutMix's alpha: the pasted share is drawn from Beta(alpha, alpha)

    def is_identity(self) -> bool:
        return self == AugmentConfig()

    def mixes(self) -> bool:
        """Whether images are mixed in pairs (MixUp or CutMix), labels with them."""
        return bool(self.mixup or self.cutmix)

    def problems(self) -> list[str]:
        """A sentence for each setting outside its control's range (0 to its maximum)."""
        return [
            f"The augmentation's {name} must be between 0 and {c.maximum:g}, not {value:g}."
            for name, c in CONTROLS.items()
            if c.maximum is not None and not 0 <= (value := getattr(self, name)) <= c.maximum
        ]

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
    "vertical_flip": Control(
        "Vertical flip",
        None,
        None,
        "Turn upside down, half the time. For pictures with no up and down: taken from "
        "above (satellite, aerial), under a microscope, textures. Leave it off for photos of "
        "things standing on the ground.",
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
    "saturation": Control(
        "Saturation (± fraction)",
        1.0,
        0.05,
        "Scale how colourful each image is by a random factor in [1 - s, 1 + s]: 1 can take "
        "all colour away or double it.",
    ),
    "hue": Control(
        "Hue (± degrees)",
        180.0,
        5.0,
        "Turn the colour circle by a random angle up to ± this: red towards yellow or "
        "purple. Leave it small where colour tells the classes apart (ripe fruit, traffic "
        "lights).",
    ),
    "greyscale": Control(
        "Greyscale (share)",
        1.0,
        0.05,
        "Take the colour out of this share of the images, so the model learns shapes that "
        "hold without colour.",
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
    "mixup": Control(
        "MixUp (alpha)",
        1.0,
        0.05,
        "Blend each image with another image of its batch, and its label with that image's "
        "label in the same shares (Zhang et al., 2018). The weight is drawn from "
        "Beta(alpha, alpha): 0.2 keeps most images nearly whole, 1 blends any share. "
        "Training accuracy then counts the larger share as the label, so it reads lower; "
        "validation images are never mixed. A regulariser for long runs of large models: "
        "on this project's short presets it cost accuracy (docs/BENCHMARKS.md). 0 turns it "
        "off.",
    ),
    "cutmix": Control(
        "CutMix (alpha)",
        1.0,
        0.05,
        "Paste a rectangle of another image of the batch into each image; the label takes "
        "each class's share of the area (Yun et al., 2019). The share is drawn from "
        "Beta(alpha, alpha): 1, the paper's, gives every size equally often; smaller alphas "
        "paste nearly nothing or nearly the whole image. With MixUp as well, each image gets "
        "one of the two. Training accuracy reads lower, and short runs lose accuracy, as "
        "with MixUp. 0 turns it off.",
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


GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as Pillow's convert("L")


@keras.saving.register_keras_serializable(package="cnn_dashboard")
class RandomSaturationBlend(layers.Layer):
    """Scales each image's colourfulness by a random factor in `[1 - amount, 1 + amount]`:
    the image is blended with its grey copy (torchvision's `adjust_saturation`) and clipped
    to [0, 255].

    `keras.layers.RandomSaturation` clips the saturation to `value_range` rather than to 1,
    so with images in [0, 255] a factor above 1 gives negative pixels (seen with Keras
    3.15: -69 for a factor of 1.5).
    """

    def __init__(self, amount: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.amount, self.seed = amount, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training or self.amount <= 0:
            return images
        n = ops.shape(images)[0]
        low, high = 1.0 - self.amount, 1.0 + self.amount
        factor = keras.random.uniform((n, 1, 1, 1), low, high, seed=self.generator)
        grey = ops.sum(images * ops.convert_to_tensor(GREY_WEIGHTS, images.dtype), -1, True)
        return ops.clip(grey + factor * (images - grey), 0.0, 255.0)

    def get_config(self):
        return {**super().get_config(), "amount": self.amount, "seed": self.seed}


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
        call it with `training=True`. Without a setting that changes images one by one it
        has no layers (MixUp and CutMix mix pairs of images: `build_mixing`).
    """
    c, steps = config, []

    def seeded():
        # Each layer its own seed: layers seeded alike draw the same numbers, so a
        # horizontal and a vertical flip came together or not at all (a half turn).
        return None if seed is None else seed + len(steps)

    if c.flip or c.alternate_flip:
        steps.append(layers.RandomFlip("horizontal", seed=seeded()))
    if c.vertical_flip:
        steps.append(layers.RandomFlip("vertical", seed=seeded()))
    if c.crop_pad:
        # An integer shift of up to crop_pad pixels with zero fill is pad-then-crop.
        f = c.crop_pad / image_size
        steps.append(
            layers.RandomTranslation(
                f, f, fill_mode="constant", interpolation="nearest", seed=seeded()
            )
        )
    if c.translation:
        steps.append(layers.RandomTranslation(c.translation, c.translation, seed=seeded()))
    if c.rotation:
        steps.append(layers.RandomRotation(c.rotation / 360.0, fill_mode="reflect", seed=seeded()))
    if c.zoom:
        steps.append(layers.RandomZoom(c.zoom, c.zoom, seed=seeded()))
    if c.contrast:
        steps.append(layers.RandomContrast(c.contrast, seed=seeded()))
    if c.brightness:
        steps.append(layers.RandomBrightness(c.brightness, value_range=(0, 255), seed=seeded()))
    if c.saturation:
        steps.append(RandomSaturationBlend(c.saturation, seed=seeded()))
    if c.hue:
        steps.append(layers.RandomHue(c.hue / 180.0, value_range=(0, 255), seed=seeded()))
    if c.greyscale:
        steps.append(layers.RandomGrayscale(c.greyscale, seed=seeded()))
    if c.cutout:
        steps.append(RandomCutout(c.cutout, seed=seeded()))
    return keras.Sequential(steps, name="augmentation")


def build_mixing(config: AugmentConfig, seed: int | None = None):
    """Builds the half of augmentation that mixes images in pairs: MixUp and CutMix.

    Args:
        config: the settings (`mixup`, `cutmix`).
        seed: with a seed, the same batch is mixed the same way.

    Returns:
        None where the config mixes nothing; else a function `(images, targets) ->
        (images, targets)` over a batch, float `(B, S, S, 3)` in [0, 255] and float
        `(B, C)` class shares (one-hot or soft): each image is mixed with another image of
        the batch (`keras.layers.MixUp`, `keras.layers.CutMix`) and its target with that
        image's target in the same shares. With both, each image takes one of the two, at
        random.
    """
    # Seeds apart from the augmentation layers' (seed, seed + 1, ...): alike, they would
    # draw the same numbers.
    seeds = [None] * 3 if seed is None else [seed + len(CONTROLS) + k for k in range(3)]
    mixers = []
    if config.mixup:
        mixers.append(layers.MixUp(alpha=config.mixup, seed=seeds[0]))
    if config.cutmix:
        # A single factor f would draw alpha from U(0, f) for each batch: mostly small,
        # pasting all or nothing. Both ends alike fix it.
        mixers.append(layers.CutMix(factor=(config.cutmix, config.cutmix), seed=seeds[1]))
    if not mixers:
        return None
    coins = keras.random.SeedGenerator(seeds[2])

    def mix(images, targets):
        outs = [m({"images": images, "labels": targets}, training=True) for m in mixers]
        if len(outs) == 1:
            return outs[0]["images"], outs[0]["labels"]
        heads = keras.random.uniform((ops.shape(images)[0],), seed=coins) < 0.5
        images = ops.where(heads[:, None, None, None], outs[0]["images"], outs[1]["images"])
        return images, ops.where(heads[:, None], outs[0]["labels"], outs[1]["labels"])

    return mix


class Variants(NamedTuple):
    """The lab's augmented copies, and their labels where they are mixed."""

    images: np.ndarray  # uint8 (N, V, S, S, 3)
    shares: np.ndarray | None  # float (N, V, C): each class's share of each copy's label


def augment_images(
    images, config: AugmentConfig, variants: int, seed: int = 0, labels=None, partners=None
) -> Variants:
    """Returns `variants` augmented copies of each image, as the lab shows them.

    Args:
        images: uint8 `(N, S, S, 3)`.
        config: the settings.
        variants: copies per image.
        seed: same seed, same copies.
        labels: int `(N,)`, the images' classes. Without them nothing is mixed.
        partners: `(images, labels)`, uint8 `(M, S, S, 3)` and int `(M,)`: other images
            that join the batch, as a training batch holds other images to mix with.

    Returns:
        `Variants`: the copies, and with MixUp or CutMix and labels each copy's label as
        class shares `(N, variants, C)`, `C` one more than the largest label given.
    """
    n, size = images.shape[0], images.shape[1]
    batch = np.repeat(images.astype("float32"), variants, axis=0)
    mix = build_mixing(config, seed) if labels is not None else None
    if mix is not None:
        extra_images, extra_labels = partners if partners is not None else (images[:0], [])
        batch = np.concatenate([batch, np.asarray(extra_images, "float32")])
        classes = np.concatenate([np.repeat(labels, variants), extra_labels]).astype(int)
        targets = np.eye(classes.max() + 1, dtype="float32")[classes]
    pipeline = build_augmentation(config, size, seed=seed)
    out = pipeline(batch, training=True) if pipeline.layers else batch
    shares = None
    if mix is not None:
        out, shares = (ops.convert_to_numpy(t)[: n * variants] for t in mix(out, targets))
        shares = shares.reshape(n, variants, -1)
    out = np.clip(np.round(ops.convert_to_numpy(out)), 0, 255).astype(np.uint8)
    return Variants(out.reshape(n, variants, size, size, 3), shares)


def describe_shares(shares, class_names) -> str:
    """A mixed label in words, the larger share first: "62% cat, 38% dog"; "cat" unmixed.

    Args:
        shares: float `(C,)`, each class's share of the label (`Variants.shares[i, v]`).
        class_names: at least `C` names.
    """
    order = [int(c) for c in np.argsort(-np.asarray(shares)) if shares[c] >= 0.005]
    if len(order) == 1:
        return class_names[order[0]]
    return ", ".join(f"{shares[c]:.0%} {class_names[c]}" for c in order)
