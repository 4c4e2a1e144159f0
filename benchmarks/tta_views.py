"""Validation accuracy of saved models with no, flip, and flip + 1-pixel-shift TTA.

    python benchmarks/tta_views.py runs/<run>/model.keras [...] [--data DIR]

The modes are `core.evaluate.TTA_MODES` ("flip+shift" is airbench's "level 2"), as the
evaluation CLI (`--tta flip+shift`) and the Evaluate page offer them.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    from core.data import load_dataset
    from core.evaluate import TTA_MODES, predict_probs
    from core.model import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--data", default=str(ROOT.parent / "shared/datasets/cifar10-jpeg"))
    args = p.parse_args()
    dataset = load_dataset(args.data, image_size=32, val_fraction=0.1, seed=0)
    x, y = dataset.split("val")
    for path in args.models:
        model = load_model(path)
        acc = {
            mode: float((predict_probs(model, x, tta=mode).argmax(1) == y).mean())
            for mode in TTA_MODES
        }
        print(path, "  ".join(f"{n} {a:.2%}" for n, a in acc.items()), flush=True)


if __name__ == "__main__":
    main()
