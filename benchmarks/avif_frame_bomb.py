"""What the AVIF (or HEIC) in tests/data whose frame is larger than its `ispe` box says costs
to open, with the check of its frame headers (core.avif, core.heif) and without it.

    python benchmarks/avif_frame_bomb.py [--without] [--format heic]
    python benchmarks/avif_frame_bomb.py --photo 4000x3000 [--format heic] [--noise 2]

Prints the outcome, the seconds and how much the peak memory grew: this process's for an
AVIF, the decoding processes' for a HEIC (`core.heif` decodes in a child). Run each mode in
its own process (peak memory only grows): once plain, once with --without. `--photo` times
`decode_image` (median of 5) of a synthetic picture of that size (smooth shapes, with
Gaussian noise of `--noise` levels) saved as AVIF or HEIC (pillow-heif's x265, quality 80)
and as JPEG (quality 90), what an upload of that size costs before the model; for HEIC also
a 48 x 32 one, what starting the decoding process costs.
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

from core import avif, heif, images  # noqa: E402
from core.errors import ImageError  # noqa: E402

DATA = ROOT / "tests" / "data"
SAVED_AS = {"avif": ("AVIF", {}), "heic": ("HEIF", {"quality": 80})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--format", choices=sorted(SAVED_AS), default="avif")
    p.add_argument("--without", action="store_true", help="read the ispe boxes only")
    p.add_argument("--photo", help="WxH: time decoding a picture of that size instead")
    p.add_argument("--noise", type=float, default=0.0, help="with --photo: its noise (sigma)")
    args = p.parse_args()
    if args.photo:
        return photo(args.format, *map(int, args.photo.split("x")), args.noise)
    if args.without:  # what core.images checked before: Pillow's size, from the ispe box
        avif._sequence_header_sizes = lambda stream: [(1, 1)]
        heif._frame_sizes = lambda units: [(1, 1)]
    data = (DATA / f"frame_larger_than_declared.{args.format}").read_bytes()
    who = resource.RUSAGE_CHILDREN if args.format == "heic" else resource.RUSAGE_SELF
    before = resource.getrusage(who).ru_maxrss
    start = time.perf_counter()
    try:
        outcome = f"decoded to {images.decode_image(data).shape}"
    except ImageError as err:
        outcome = f"refused: {err}"
    seconds = time.perf_counter() - start
    grown = (resource.getrusage(who).ru_maxrss - before) / 1024
    mode = "ispe boxes only" if args.without else "ispe boxes and frame headers"
    print(f"{len(data):,} bytes, {mode}: {outcome} in {seconds:.3f} s, peak memory +{grown:.0f} MB")


def photo(kind: str, width: int, height: int, noise: float) -> None:
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    pixels = np.stack([np.sin(9 * xx + 3 * yy), np.cos(7 * yy), np.sin(5 * (xx - yy))], -1)
    pixels = (pixels + 1) * 127.5 + np.random.default_rng(0).normal(0, noise, pixels.shape)
    picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    pillow_heif.register_heif_opener()  # its encoder, in this process only
    pictures = [(picture, *SAVED_AS[kind]), (picture, "JPEG", {"quality": 90})]
    if kind == "heic":
        pictures.insert(0, (Image.open(DATA / "photo.heic"), "HEIF", {"quality": 80}))
    for shown, fmt, params in pictures:
        buffer = io.BytesIO()
        shown.save(buffer, fmt, **params)
        data, times = buffer.getvalue(), []
        for _ in range(5):
            heif._RECENT.clear()  # a first upload each time, not the last pictures kept
            start = time.perf_counter()
            images.decode_image(data)
            times.append(time.perf_counter() - start)
        print(
            f"{fmt} {shown.width}x{shown.height}, {len(data) / 1024:.0f} kB: decode_image "
            f"{statistics.median(times) * 1e3:.1f} ms (median of 5)"
        )


if __name__ == "__main__":
    main()
