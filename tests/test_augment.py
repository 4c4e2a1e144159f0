import numpy as np
import pytest

from core.augment import AugmentConfig, RandomCutout, augment_images, build_augmentation


def _images(n=2, size=32):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8)


def test_identity_config_builds_no_layers_and_changes_nothing():
    assert AugmentConfig().is_identity()
    assert build_augmentation(AugmentConfig()).layers == []
    x = _images()
    out = augment_images(x, AugmentConfig(), variants=3)
    assert out.shape == (2, 3, 32, 32, 3)
    assert all(np.array_equal(out[:, i], x) for i in range(3))


def test_every_setting_adds_its_layer():
    cfg = AugmentConfig(
        flip=True,
        rotation=10,
        zoom=0.1,
        translation=0.1,
        contrast=0.2,
        brightness=0.1,
        crop_pad=4,
        cutout=8,
    )
    names = [type(layer).__name__ for layer in build_augmentation(cfg).layers]
    assert names == [
        "RandomFlip",
        "RandomTranslation",
        "RandomTranslation",
        "RandomRotation",
        "RandomZoom",
        "RandomContrast",
        "RandomBrightness",
        "RandomCutout",
    ]


def test_same_seed_same_variants_other_seed_other_variants():
    cfg = AugmentConfig(flip=True, rotation=20, crop_pad=4, cutout=8)
    x = _images()
    a = augment_images(x, cfg, 4, seed=7)
    b = augment_images(x, cfg, 4, seed=7)
    c = augment_images(x, cfg, 4, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_flip_only_mirrors_or_keeps():
    x = _images(1)
    out = augment_images(x, AugmentConfig(flip=True), 16, seed=1)[0]
    mirrored = [np.array_equal(v, x[0, :, ::-1]) for v in out]
    kept = [np.array_equal(v, x[0]) for v in out]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert any(mirrored) and any(kept)


def test_crop_pad_shifts_by_whole_pixels_with_zero_fill():
    x = np.full((1, 32, 32, 3), 200, np.uint8)
    out = augment_images(x, AugmentConfig(crop_pad=4), 12, seed=3)[0]
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
    out = augment_images(x, AugmentConfig(brightness=0.5, contrast=0.5), 3, seed=0)
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
