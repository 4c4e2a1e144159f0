"""Reading a full-resolution phone photo: a 50-megapixel JPEG (or a 48 MP HEIC, as an
iPhone's "HEIF Max"), as each reader reads it.

    python benchmarks/large_photo.py [--megapixels 50] [--quality 92] [--heic]

Makes a photo-like JPEG (colour gradients, a little noise and a dark disc: nothing
from a dataset) of 8,160 x 6,120 pixels for 50 MP in memory (with --heic, that picture
encoded as a HEIC by pillow-heif at quality 50: about 30 s for 48 MP here), then times,
median of 7: the 32-pixel model input (`core.images.decode_described`, as an image folder
and the Classify page's answer read it) and the picture the Classify page shows
(`open_image(at_least=320)`). Prints the file's size and each median.
"""

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import heif  # noqa: E402
from core.images import decode_described, open_image  # noqa: E402


def photo(megapixels: float, quality: int) -> bytes:
    height = int((megapixels * 1e6 * 3 / 4) ** 0.5)
    width = height * 4 // 3
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([160 + x * 60 // width, 200 - y * 60 // height, 170 + 0 * x], -1)
    pixels += np.random.default_rng(0).integers(-10, 10, pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    ImageDraw.Draw(image).ellipse([width // 3, height // 4, width * 2 // 3, height * 3 // 4], 0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def as_heic(jpeg: bytes) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).save(buffer, "HEIF", quality=50)
    return buffer.getvalue()


def median_ms(read) -> float:
    times = []
    for _ in range(7):
        heif._RECENT.clear()  # a HEIC's last pictures are kept: decode it each time
        start = time.perf_counter()
        read()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--megapixels", type=float, default=50)
    p.add_argument("--quality", type=int, default=92)
    p.add_argument("--heic", action="store_true", help="the photo as a HEIC (48 MP: 30 s)")
    args = p.parse_args()
    data = photo(args.megapixels, args.quality)
    size = Image.open(io.BytesIO(data)).size
    if args.heic:
        data = as_heic(data)
    kind = "HEIC" if args.heic else "JPEG"
    print(f"{size[0]:,} x {size[1]:,} {kind}, {len(data) / 2**20:.1f} MB")
    print(f"model input (32 px): {median_ms(lambda: decode_described(data, 32)):.0f} ms")
    print(f"Classify page picture: {median_ms(lambda: open_image(data, at_least=320)):.0f} ms")


if __name__ == "__main__":
    main()
