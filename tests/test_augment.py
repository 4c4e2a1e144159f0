import numpy as np
import pytest

from core.augment import (
    AugmentConfig,
    RandomCutout,
    augment_images,
    build_augmentation,
    describe_shares,
)


def _images(n=2, size=32):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8)


def test_identity_config_builds_no_layers_and_changes_nothing():
    assert AugmentConfig().is_identity()
    assert build_augmentation(AugmentConfig()).layers == []
    x = _images()
    out, shares = augment_images(x, AugmentConfig(), variants=3)
    assert shares is None and out.shape == (2, 3, 32, 32, 3)
    assert all(np.array_equal(out[:, i], x) for i in range(3))


def test_every_setting_adds_its_layer():
    cfg = AugmentConfig(
        flip=True,
        vertical_flip=True,
        rotation=10,
        zoom=0.1,
        translation=0.1,
        contrast=0.2,
        brightness=0.1,
        saturation=0.3,
        hue=20,
        greyscale=0.1,
        crop_pad=4,
        cutout=8,
        mixup=0.2,  # mixing is build_mixing's, not a layer of this pipeline
    )
    names = [type(layer).__name__ for layer in build_augmentation(cfg).layers]
    assert names == [
        "RandomFlip",
        "RandomFlip",
        "RandomTranslation",
        "RandomTranslation",
        "RandomRotation",
        "RandomZoom",
        "RandomContrast",
        "RandomBrightness",
        "RandomSaturationBlend",
        "RandomHue",
        "RandomGrayscale",
        "RandomCutout",
    ]


def test_same_seed_same_variants_other_seed_other_variants():
    cfg = AugmentConfig(flip=True, rotation=20, crop_pad=4, cutout=8)
    x = _images()
    a = augment_images(x, cfg, 4, seed=7).images
    b = augment_images(x, cfg, 4, seed=7).images
    c = augment_images(x, cfg, 4, seed=8).images
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_flip_only_mirrors_or_keeps():
    x = _images(1)
    out = augment_images(x, AugmentConfig(flip=True), 16, seed=1).images[0]
    mirrored = [np.array_equal(v, x[0, :, ::-1]) for v in out]
    kept = [np.array_equal(v, x[0]) for v in out]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert any(mirrored) and any(kept)


def test_horizontal_and_vertical_flips_are_drawn_apart():
    """Layers seeded alike drew the same numbers: both flips or neither, never one."""
    x = _images(1, 8)
    out = augment_images(x, AugmentConfig(flip=True, vertical_flip=True), 64, seed=3).images[0]
    turns = {
        "none": x[0],
        "across": x[0, :, ::-1],
        "upside down": x[0, ::-1],
        "both": x[0, ::-1, ::-1],
    }
    seen = {name for v in out for name, t in turns.items() if np.array_equal(v, t)}
    assert seen == set(turns)


def test_saturation_scales_each_images_colour_about_its_grey_within_the_range():
    x = np.empty((1, 8, 8, 3), np.uint8)
    x[...] = (150, 100, 50)  # scaled by 0.5 to 1.5 about its grey, nothing leaves [0, 255]
    out = augment_images(x, AugmentConfig(saturation=0.5), 24, seed=0).images[0].astype(float)
    grey = np.dot([150, 100, 50], (0.299, 0.587, 0.114))
    factors = (out[:, 0, 0, 0] - grey) / (150 - grey)
    assert np.all((factors > 0.48) & (factors < 1.52)) and factors.std() > 0.1
    expected = grey + factors[:, None] * (np.array([150, 100, 50]) - grey)
    np.testing.assert_allclose(out[:, 0, 0], expected, atol=1.0)  # all channels alike
    vivid = np.array([[[[250, 10, 10]]]], np.uint8)  # doubled, it would leave the range
    assert augment_images(vivid, AugmentConfig(saturation=1.0), 16, seed=0).images.max() == 255


def test_hue_turns_colours_and_greyscale_takes_them_out():
    red = np.zeros((1, 4, 4, 3), np.uint8)
    red[..., 0] = 200
    turned = augment_images(red, AugmentConfig(hue=90), 16, seed=0).images[0]
    assert any(v[0, 0, 1] > 50 or v[0, 0, 2] > 50 for v in turned)  # towards yellow or purple
    grey = augment_images(red, AugmentConfig(greyscale=1.0), 4, seed=0).images[0]
    assert np.all(grey == grey[..., :1]) and not np.any(grey == 200)


def _mixing_lab(config, variants=24, size=8):
    """A black image of class 0 mixed with light partners of class 1 (value 200): a
    pixel's value tells how much of the partner it holds. Copies paired with each other
    stay black, class 0."""
    black = np.zeros((1, size, size, 3), np.uint8)
    partners = (np.full((40, size, size, 3), 200, np.uint8), np.ones(40, int))
    return augment_images(black, config, variants, seed=1, labels=[0], partners=partners)


def test_mixup_blends_images_and_labels_in_the_same_shares():
    images, shares = _mixing_lab(AugmentConfig(mixup=1.0))
    assert shares.shape == (1, 24, 2)
    np.testing.assert_allclose(shares.sum(-1), 1, atol=1e-6)
    partner_share = shares[0, :, 1]
    np.testing.assert_allclose(images[0, :, 0, 0, 0], 200 * partner_share, atol=0.6)
    assert np.all(images[0] == images[0, :, :1, :1])  # a blend: every pixel alike
    assert ((partner_share > 0.05) & (partner_share < 0.95)).sum() >= 5


def test_cutmix_pastes_a_rectangle_whose_area_is_the_partners_share():
    images, shares = _mixing_lab(AugmentConfig(cutmix=1.0), size=32)
    for image, share in zip(images[0], shares[0], strict=True):
        pasted = image[..., 0] == 200
        assert set(np.unique(image)) <= {0, 200}
        # The share is the box's exact area; its pixels are those whose corner is inside.
        np.testing.assert_allclose(pasted.mean(), share[1], atol=(32 + 32 + 1) / 32**2)
        if pasted.any():
            rows, cols = np.flatnonzero(pasted.any(1)), np.flatnonzero(pasted.any(0))
            assert pasted.sum() == len(rows) * len(cols)  # one rectangle
    assert 0 < (images[0, ..., 0] == 200).mean() < 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cutmix_alpha_1_pastes_every_share_equally_often(seed):
    """Beta(1, 1) is uniform: its mean distance from a half is a quarter. Keras's single
    factor drew alpha from U(0, 1) for each batch, all or nothing on some (0.37 at seed 2)."""
    black = np.zeros((1, 16, 16, 3), np.uint8)
    partners = (np.full((400, 16, 16, 3), 200, np.uint8), np.ones(400, int))
    config = AugmentConfig(cutmix=1.0)
    shares = augment_images(black, config, 200, seed, [0], partners).shares[0, :, 1]
    shares = shares[shares > 0]  # not paired with another black copy
    assert len(shares) > 100 and 0.21 < np.abs(shares - 0.5).mean() < 0.29


def test_with_mixup_and_cutmix_each_image_gets_one_of_the_two():
    images, shares = _mixing_lab(AugmentConfig(mixup=0.5, cutmix=1.0), variants=48, size=32)
    kinds = []
    for image, share in zip(images[0, ..., 0], shares[0, :, 1], strict=True):
        if not 0.05 < share < 0.95:
            continue
        if np.all(image == image[0, 0]):  # blended: one grey level, its share of 200
            kinds.append("mixup")
            assert abs(image[0, 0] - 200 * share) <= 0.6
        else:  # a rectangle pasted: its area is the share
            kinds.append("cutmix")
            assert set(np.unique(image)) == {0, 200}
            assert abs((image == 200).mean() - share) <= 65 / 32**2
    assert {"mixup", "cutmix"} == set(kinds)


def test_a_mixed_label_is_said_the_larger_share_first():
    names = ["cat", "dog", "frog"]
    assert describe_shares(np.array([0.38, 0.62, 0.0]), names) == "62% dog, 38% cat"
    assert describe_shares(np.array([0.0, 0.0, 1.0]), names) == "frog"
    assert describe_shares(np.array([0.998, 0.002, 0.0]), names) == "cat"  # under 0.5%


def test_without_labels_or_a_mixing_setting_nothing_is_mixed():
    x = _images(1)
    assert augment_images(x, AugmentConfig(mixup=0.5), 3).shares is None
    assert _mixing_lab(AugmentConfig(flip=True)).shares is None


def test_settings_outside_their_range_are_named():
    assert AugmentConfig(flip=True, hue=180, mixup=1).problems() == []
    assert AugmentConfig(hue=200, rotation=-5).problems() == [
        "The augmentation's rotation must be between 0 and 45, not -5.",
        "The augmentation's hue must be between 0 and 180, not 200.",
    ]


def test_crop_pad_shifts_by_whole_pixels_with_zero_fill():
    x = np.full((1, 32, 32, 3), 200, np.uint8)
    out = augment_images(x, AugmentConfig(crop_pad=4), 12, seed=3).images[0]
    for v in out:
        assert set(np.unique(v)) <= {0, 200}  # no interpolation blur
        zero_rows = int((v[:, :, 0] == 0).all(axis=1).sum())
        zero_cols = int((v[:, :, 0] == 0).all(axis=0).sum())
        assert zero_rows <= 4 and zero_cols <= 4


@pytest.mark.parametrize("size", [5, 8])
def test_cutout_blanks_exactly_one_square_inside_the_image(size):
    layer = RandomCutout(size, seed=0)
    x = np.full((6, 32, 32, 3), 100.0, np.float32)
    out = np.asarray(layer(x, training=True))
    for v in out:
        zero = v[:, :, 0] == 0
        rows, cols = np.flatnonzero(zero.any(axis=1)), np.flatnonzero(zero.any(axis=0))
        assert len(rows) <= size and len(cols) <= size  # clipped at the border
        assert zero.sum() == len(rows) * len(cols)  # one filled rectangle
    assert any((v[:, :, 0] == 0).sum() == size * size for v in out)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_brightness_and_contrast_stay_in_pixel_range():
    x = _images(4)
    out = augment_images(x, AugmentConfig(brightness=0.5, contrast=0.5), 3, seed=0).images
    assert out.dtype == np.uint8 and not np.array_equal(out[:, 0], x)


def test_every_setting_has_one_control_whose_range_holds_its_default():
    from dataclasses import fields

    from core.augment import CONTROLS

    assert [f.name for f in fields(AugmentConfig)] == list(CONTROLS)
    for f in fields(AugmentConfig):
        c = CONTROLS[f.name]
        assert c.label and c.help
        if f.type != "bool":
            assert 0 <= getattr(AugmentConfig(), f.name) <= c.maximum and c.step > 0
