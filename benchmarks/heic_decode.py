"""What a HEIC upload costs to decode, against the JPEG of the same picture, and what the
HEIC in tests/data whose HEVC frame is larger than its `ispe` box says costs to refuse.

    python benchmarks/heic_decode.py --photo 4032x3024 [--noise 2]   # HEIC and JPEG uploads
    python benchmarks/heic_decode.py --bomb [--without]     # the frame bomb, SPS read or not

`--photo` times `decode_image` (median of 5) of a synthetic photo of that size (smooth
shapes with Gaussian noise of `--noise` levels, as a camera's picture has some) saved as
HEIC (pillow-heif's x265, quality 80) and JPEG (quality 90): what an upload costs before
the model, the HEIC's decoding process included (`core.heif`); the process alone is timed
on a 48 x 32 HEIC.
`--bomb` prints the outcome, the seconds and the peak memory of the decoding processes;
`--without` reads only the `ispe` boxes, leaving the frame to libheif's own limit.
"""

import argparse
import io
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import heif, images  # noqa: E402
from core.errors import ImageError  # noqa: E402

BOMB = ROOT / "tests" / "data" / "frame_larger_than_declared.heic"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photo", help="WxH: time decoding a picture of that size")
    p.add_argument("--noise", type=float, default=2.0, help="with --photo: its noise (sigma)")
    p.add_argument("--bomb", action="store_true")
    p.add_argument("--without", action="store_true", help="with --bomb: ispe boxes only")
    args = p.parse_args()
    if args.bomb:
        return bomb(args.without)
    small = (ROOT / "tests" / "data" / "photo.heic").read_bytes()
    print(f"HEIC 48x32: decode_image {median_ms(small):.1f} ms (median of 5)")
    if args.photo:
        photo(*map(int, args.photo.split("x")), args.noise)


def median_ms(data: bytes) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        images.decode_image(data)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def photo(width: int, height: int, noise: float) -> None:
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    pixels = np.stack([np.sin(9 * xx + 3 * yy), np.cos(7 * yy), np.sin(5 * (xx - yy))], -1)
    pixels = (pixels + 1) * 120 + np.random.default_rng(0).normal(0, noise, pixels.shape)
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    pillow_heif.register_heif_opener()
    for fmt, params in (("HEIF", {"quality": 80}), ("JPEG", {"quality": 90})):
        buffer = io.BytesIO()
        picture.save(buffer, fmt, **params)
        data = buffer.getvalue()
        print(
            f"{fmt} {width}x{height}, {len(data) / 1024:.0f} kB: decode_image "
            f"{median_ms(data):.1f} ms (median of 5)"
        )


def bomb(without: bool) -> None:
    if without:  # what the size check reads then: the ispe boxes and canvases
        heif._frame_sizes = lambda units: [(1, 1)]
    data = BOMB.read_bytes()
    start = time.perf_counter()
    try:
        outcome = f"decoded to {images.decode_image(data).shape}"
    except ImageError as err:
        outcome = f"refused: {err}"
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    mode = "ispe boxes only" if without else "ispe boxes and HEVC parameter sets"
    print(f"{len(data):,} bytes, {mode}: {outcome} in {seconds:.3f} s, decoder peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
