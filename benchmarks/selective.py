"""Answering only when sure: the shipped model's accuracy on the share of a dataset's
validation images it is surest of (top probability after its card's temperature), as the
Evaluate page's Confidence section draws it (`core.evaluate.selective`).

    python benchmarks/selective.py --data ../shared/datasets/cifar10-jpeg
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import load_dataset  # noqa: E402
from core.evaluate import predict_probs, selective, selective_at, with_temperature  # noqa: E402
from core.model import load_model  # noqa: E402
from core.registry import DEFAULT_MODEL_DIR, card_temperature, default_model_path  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", required=True)
args = parser.parse_args()

card = json.loads((DEFAULT_MODEL_DIR / "model_card.json").read_text())
x, y = load_dataset(args.data).split("val")
probs = predict_probs(load_model(default_model_path()), x)
curve = selective(with_temperature(probs, card_temperature(card)), y)
for share in (0.5, 0.8, 0.9, 1.0):
    answered, right, threshold = selective_at(curve, share)
    print(
        f"answering the surest {answered:.0%}: right on {right:.1%} "
        f"(top probability {threshold:.2f} or more)"
    )
