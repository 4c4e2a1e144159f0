import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def _module():
    spec = importlib.util.spec_from_file_location(
        "recompress_jpeg", ROOT / "benchmarks" / "recompress_jpeg.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_more_jpeg_pass_keeps_the_image_close_and_depends_on_the_grid():
    recompress = _module().recompress
    rows, cols = np.mgrid[0:32, 0:32]
    image = np.stack([rows * 8, cols * 8, (rows + cols) * 4], axis=-1).astype(np.uint8)
    image[10:20, 12:14] = 255  # a sharp edge, which JPEG blurs
    again = recompress(image, (5, 3), 75)
    assert again.shape == image.shape and again.dtype == np.uint8
    rms = np.sqrt(((again.astype(float) - image) ** 2).mean())
    assert 0.5 < rms < 12
    assert not np.array_equal(again, recompress(image, (8, 8), 75))
    assert np.array_equal(again, recompress(image, (5, 3), 75))
