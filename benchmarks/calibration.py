"""What a model's calibration temperature changes, on its own validation split.

    python benchmarks/calibration.py --data ../shared/datasets/cifar10-jpeg [--model M]

For the model (default: the shipped one) and the validation split its card describes,
prints accuracy, mean confidence, expected calibration error, log loss and the share of
answers the Classify page would flag as unsure, as the model gives its probabilities and
after the temperature in its card (`python -m core.registry calibrate` writes one), and
after temperatures fitted on one half of the split and applied to the other (the card's
temperature is fitted on all of it, so its row is measured on the images it was fitted on).
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import model_and_its_split  # noqa: E402

from core.classify import describe  # noqa: E402
from core.evaluate import (  # noqa: E402
    calibration,
    held_out_scaled,
    kept_probs,
    log_loss,
    with_temperature,
)
from core.model import load_model  # noqa: E402


def main() -> None:
    args, card, dataset = model_and_its_split(__doc__.split("\n")[0])
    x, y = dataset.split("val")
    probs = kept_probs(load_model(args.model), args.model, x)
    temperature = (card.get("calibration") or {}).get("temperature")
    views = {"as given": probs}
    if temperature:
        views[f"temperature {temperature:g}"] = with_temperature(probs, temperature)
    views["other half's fit"] = held_out_scaled(probs, y)
    print(f"{args.model} on {len(y):,} validation images of {args.data}")
    print(
        f"{'probabilities':<22}{'accuracy':>9}{'confidence':>11}{'ECE':>7}{'loss':>7}{'unsure':>8}"
    )
    for name, q in views.items():
        calib = calibration(q, y)
        names = dataset.class_names
        unsure = np.mean([describe(px, pr, names).unsure for px, pr in zip(x, q, strict=True)])
        print(
            f"{name:<22}{np.mean(q.argmax(1) == y):>9.2%}{q.max(1).mean():>11.2%}"
            f"{calib.ece:>7.3f}{log_loss(q, y):>7.3f}{unsure:>8.1%}"
        )


if __name__ == "__main__":
    main()
