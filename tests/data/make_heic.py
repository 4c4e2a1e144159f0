"""Makes the HEIC files tests/test_images.py reads, with pillow-heif's x265 encoder (Pillow
has none). Run once from the repository root; the files are kept, so that the tests read
the same bytes whatever encoder a later pillow-heif bundles:

    python tests/data/make_heic.py

Each picture is drawn here: a gradient with a red square in its top-left corner, so a test
can tell its orientation and colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

HERE = Path(__file__).parent


def picture(width, height):
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 128)], -1)
    pixels[: height // 4, : height // 4] = (255, 0, 0)
    return Image.fromarray(pixels.astype(np.uint8))


def main():
    pillow_heif.register_heif_opener()
    picture(48, 32).save(HERE / "photo.heic", quality=90)
    turned = Image.Exif()
    turned[0x0112] = 6  # shown turned a quarter clockwise: stored as an irot box
    picture(48, 32).save(HERE / "turned.heic", quality=90, exif=turned.tobytes())
    clear = picture(32, 32).convert("RGBA")
    clear.putalpha(Image.new("L", (32, 32), 0).crop((0, 0, 32, 32)))
    clear.paste((0, 0, 0, 255), (0, 0, 16, 32))  # the left half opaque black
    clear.save(HERE / "transparent.heic", quality=90)
    # An 8192 x 8192 picture whose ispe box then says 64 x 64: the HEVC frame is what
    # libde265 allocates (67 megapixels, 200 MB), whatever the box says.
    data = bytearray(_encoded(Image.new("RGB", (8192, 8192), (90, 120, 200)), quality=10))
    ispe = data.index(b"ispe") + 8  # after the type, its version and flags
    assert data[ispe : ispe + 8] == (8192).to_bytes(4, "big") * 2
    data[ispe : ispe + 8] = (64).to_bytes(4, "big") * 2
    (HERE / "frame_larger_than_declared.heic").write_bytes(bytes(data))


def _encoded(image, **options):
    path = HERE / "_encoding.heic"
    image.save(path, **options)
    try:
        return path.read_bytes()
    finally:
        path.unlink()


if __name__ == "__main__":
    main()
