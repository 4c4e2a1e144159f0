"""A folder of HEIC photos made from a folder of class folders, for timing HEIC decoding.

    python benchmarks/make_heic_folder.py --data ../shared/datasets/cifar10-jpeg \
        --out /tmp/heic-small --height 480 --per-class 40
    python benchmarks/folder_decode.py --data /tmp/heic-small

The first --per-class images of the classes cat and ship (or the first two classes), each
enlarged to 4:3 at --height pixels high (bicubic), a little noise added (+-6 levels, seed
0), saved by pillow-heif at quality 80 as `<class>/IMG_NNNN.HEIC`. Write them outside the
repository: they are decoded from the dataset's images.
"""

import argparse
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="a folder of class folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--height", type=int, default=480, help="3024 for a phone's 12 megapixels")
    p.add_argument("--per-class", type=int, default=40)
    args = p.parse_args()
    root = args.data / "train" if (args.data / "train").is_dir() else args.data
    classes = sorted(c.name for c in root.iterdir() if c.is_dir())
    chosen = [c for c in ("cat", "ship") if c in classes] or classes[:2]
    rng = np.random.default_rng(0)
    size = (args.height * 4 // 3, args.height)
    for name in chosen:
        (args.out / name).mkdir(parents=True, exist_ok=True)
        for i, src in enumerate(sorted((root / name).iterdir())[: args.per_class]):
            pixels = np.asarray(Image.open(src).convert("RGB").resize(size, Image.BICUBIC), int)
            noisy = np.clip(pixels + rng.integers(-6, 7, pixels.shape), 0, 255).astype(np.uint8)
            heif = pillow_heif.from_pillow(Image.fromarray(noisy))
            heif.save(args.out / name / f"IMG_{i:04d}.HEIC", quality=80)
    print(f"{len(chosen) * args.per_class} HEIC photos in {args.out}")


if __name__ == "__main__":
    main()
