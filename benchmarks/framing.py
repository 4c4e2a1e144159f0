"""Squashed, cropped or three squares: the Classify page's framings of a photo that is not
square, on photos made from a dataset's validation images (the shipped model's, by default).

Each 32-pixel image is enlarged 4x (bicubic) and widened to 4:3 or 16:9, by mirroring its
edges (the subject's mirror images beside it: hard for a squash) or by repeating its edge
columns (a plain background), once with the subject in the middle and once at the left
edge, and saved as a JPEG of quality 90; each such photo is then classified as an upload is
(`core.classify.classify_batch`, float32 model, no test-time augmentation): squashed whole,
cropped to its centre square, and as three squares (the left, centre and right ones of a
landscape photo) whose probabilities are averaged, as multi-crop evaluation does: the
page's three framings (`core.images.FITS`). The square photos give the figure to compare
with.

    python benchmarks/framing.py --data ../shared/datasets/cifar10-jpeg
"""

import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from common import model_and_its_split  # noqa: E402
from PIL import Image  # noqa: E402

from core.classify import classify_batch  # noqa: E402
from core.images import FITS  # noqa: E402
from core.model import load_model  # noqa: E402

SCALE = 4  # 32-pixel images as 128-pixel photos
SHAPES = {"4:3": 4 / 3, "16:9": 16 / 9}  # besides the square photos


def photo(pixels: np.ndarray, ratio: float, where: str, sides: str) -> bytes:
    """A JPEG of the enlarged image widened to `ratio` by `np.pad`'s mode `sides`: the
    subject in the middle, or at the left edge (all the width added on the right)."""
    big = np.asarray(Image.fromarray(pixels).resize((32 * SCALE,) * 2, Image.Resampling.BICUBIC))
    extra = round(big.shape[1] * ratio) - big.shape[1]
    left = extra // 2 if where == "middle" else 0
    wide = np.pad(big, ((0, 0), (left, extra - left), (0, 0)), mode=sides) if extra else big
    buf = io.BytesIO()
    Image.fromarray(wide).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main():
    args, card, data = model_and_its_split(
        __doc__.splitlines()[0],
        numbers={"--images": (5000, "validation images to use (default 5000)")},
    )
    x, y = data.split("val")
    x, y = x[: args.images], y[: args.images]
    model = load_model(args.model)
    names = card["class_names"]
    print(f"{len(x):,} validation images of {args.data}; model {args.model}")
    print(
        f"{'photo':<8} {'sides':<10} {'subject':<8} "
        + " ".join(f"{fit:>8}" for fit in FITS)
        + "   seconds"
    )
    cases = [("square", 1.0, "-", "middle")] + [
        (shape, ratio, sides, where)
        for shape, ratio in SHAPES.items()
        for sides in ("symmetric", "edge")
        for where in ("middle", "left")
    ]
    for shape, ratio, sides, where in cases:
        files = [(str(i), photo(p, ratio, where, sides)) for i, p in enumerate(x)]
        row, seconds = [], []
        for fit in FITS:
            start = time.perf_counter()
            results = classify_batch(model, files, names, fit=fit)
            seconds.append(time.perf_counter() - start)
            answers = np.array([names.index(pred.label) for _, pred, _ in results])
            row.append(f"{np.mean(answers == y):>8.2%}")
        times = "/".join(f"{s:.1f}" for s in seconds)
        print(f"{shape:<8} {sides:<10} {where:<8} " + " ".join(row) + f"   {times}")


if __name__ == "__main__":
    main()
