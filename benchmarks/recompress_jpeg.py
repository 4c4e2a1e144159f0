"""Encodes every image of a class-folder tree once more as JPEG, to size what JPEG costs.

    python benchmarks/recompress_jpeg.py ../shared/datasets/cifar10-jpeg /tmp/cifar10-jpeg2

Each image is edge-padded into a 48x48 canvas at a random offset of 1-15 pixels (so the
8x8 blocks and the 2x2 chroma cells fall elsewhere than in the first encoding), encoded at
the given quality with 4:2:0 chroma, decoded and cropped back, then saved as PNG (lossless),
under the same class folders and names. Train on the result with `python -m core.train
--data OUT ...`. The output is derived from the dataset: keep it out of the repository.
"""

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import IMAGE_SUFFIXES  # noqa: E402

CANVAS = 48


def recompress(image: np.ndarray, offset, quality: int) -> np.ndarray:
    """One more JPEG pass of an `(H, W, 3)` uint8 image on a block grid shifted by `offset`."""
    h, w = image.shape[:2]
    dy, dx = offset
    canvas = np.pad(image, ((dy, CANVAS - h - dy), (dx, CANVAS - w - dx), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, "JPEG", quality=quality, subsampling=2)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return decoded[dy : dy + h, dx : dx + w]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("source", type=Path, help="a class-folder tree")
    p.add_argument("out", type=Path, help="where the re-encoded tree goes (PNG files)")
    p.add_argument("--quality", type=int, default=75)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    files = sorted(f for f in args.source.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    squared, count = 0.0, 0
    for f in files:
        image = np.asarray(Image.open(f).convert("RGB"))
        if max(image.shape[:2]) > CANVAS - 15:
            raise SystemExit(
                f"{f} is larger than {CANVAS - 15} pixels; this is for CIFAR-sized images"
            )
        again = recompress(image, rng.integers(1, 16, size=2), args.quality)
        target = args.out / f.relative_to(args.source).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(again).save(target)
        squared += float(((again.astype(np.float64) - image) ** 2).mean())
        count += 1
    mse = squared / max(count, 1)
    psnr = 10 * np.log10(255**2 / mse) if mse else float("inf")
    print(f"{count} images; the new pass changed them by {mse**0.5:.2f} levels rms ({psnr:.1f} dB)")


if __name__ == "__main__":
    main()
