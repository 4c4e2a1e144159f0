"""Validation accuracy of saved models with no, flip, and flip + 1-pixel-shift TTA.

    python benchmarks/tta_views.py runs/<run>/model.keras [...] [--data DIR]

The shift views are airbench's "level 2": the image and its mirror, each shifted one
pixel up-left and down-right (reflected border); the plain pair and the four shifted
views each weigh one half.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    from core.data import load_dataset
    from core.evaluate import predict_probs
    from core.model import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--data", default=str(ROOT.parent / "shared/datasets/cifar10-jpeg"))
    args = p.parse_args()
    dataset = load_dataset(args.data, image_size=32, val_fraction=0.1, seed=0)
    x, y = dataset.split("val")
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    shifted = [padded[:, 1 + d : 33 + d, 1 + d : 33 + d] for d in (-1, 1)]
    for path in args.models:
        model = load_model(path)
        plain = predict_probs(model, x)
        flip = predict_probs(model, x, tta=True)
        shift = sum(predict_probs(model, v, tta=True) for v in shifted) / 2
        acc = {
            n: float((q.argmax(1) == y).mean())
            for n, q in [("plain", plain), ("flip", flip), ("flip+shift", (flip + shift) / 2)]
        }
        print(path, "  ".join(f"{n} {a:.2%}" for n, a in acc.items()), flush=True)


if __name__ == "__main__":
    main()
