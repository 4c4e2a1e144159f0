"""What the AVIF in tests/data whose AV1 frame is larger than its `ispe` box says costs to
open, with the check of its sequence headers (core.avif) and, for comparison, without it.

    python benchmarks/avif_frame_bomb.py [--without]
    python benchmarks/avif_frame_bomb.py --photo 4000x3000   # an upload's decode, AVIF and JPEG

Prints the outcome, the seconds and how much the process's peak memory grew. Run each mode
in its own process (peak memory only grows): once plain, once with --without. `--photo`
times `decode_image` (median of 5) of a smooth synthetic picture of that size saved as
AVIF and as JPEG (quality 90), what an upload of that size costs before the model.
"""

import argparse
import io
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import avif, images  # noqa: E402
from core.errors import ImageError  # noqa: E402

FILE = ROOT / "tests" / "data" / "frame_larger_than_declared.avif"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--without", action="store_true", help="read the ispe boxes only")
    p.add_argument("--photo", help="WxH: time decoding a picture of that size instead")
    args = p.parse_args()
    if args.photo:
        return photo(*map(int, args.photo.split("x")))
    if args.without:  # what core.images checked before: Pillow's size, from the ispe box
        avif._sequence_header_sizes = lambda stream: [(1, 1)]
    data = FILE.read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        outcome = f"decoded to {images.decode_image(data).shape}"
    except ImageError as err:
        outcome = f"refused: {err}"
    seconds = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    mode = "ispe boxes only" if args.without else "ispe boxes and AV1 sequence headers"
    print(f"{len(data):,} bytes, {mode}: {outcome} in {seconds:.3f} s, peak memory +{grown:.0f} MB")


def photo(width: int, height: int) -> None:
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    pixels = np.stack([np.sin(9 * xx + 3 * yy), np.cos(7 * yy), np.sin(5 * (xx - yy))], -1)
    picture = Image.fromarray(((pixels + 1) * 127.5).astype(np.uint8))
    for fmt, params in (("AVIF", {}), ("JPEG", {"quality": 90})):
        buffer = io.BytesIO()
        picture.save(buffer, fmt, **params)
        data, times = buffer.getvalue(), []
        for _ in range(5):
            start = time.perf_counter()
            images.decode_image(data)
            times.append(time.perf_counter() - start)
        print(
            f"{fmt} {width}x{height}, {len(data) / 1024:.0f} kB: decode_image "
            f"{statistics.median(times) * 1e3:.1f} ms (median of 5)"
        )


if __name__ == "__main__":
    main()
