"""How long the Filters page's "What units look for" takes to draw a group of units.

    python benchmarks/visualise.py [--model PATH.keras] [--units 16]

For each layer the tab offers (the model defaults to the shipped one): the first
`--units` units (all classes for the class scores), drawn twice; the first call traces the
compiled gradient for that layer, the second is what a later group of the layer costs.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import registry, visualise  # noqa: E402
from core.model import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(registry.default_model_path()))
    parser.add_argument("--units", type=int, default=16)
    args = parser.parse_args()
    model = load_model(args.model)
    print(f"model {args.model}, {visualise.STEPS} steps")
    for layer in visualise.unit_layers(model):
        units = list(range(min(args.units, visualise.unit_count(model, layer))))
        took = []
        for _ in range(2):
            start = time.perf_counter()
            _, activations = visualise.preferred_images(model, layer, units)
            took.append(time.perf_counter() - start)
        print(
            f"{layer:>8}: {len(units)} units, first {took[0]:.1f} s, again {took[1]:.1f} s; "
            f"mean activation reached {activations.mean():.2f}"
        )


if __name__ == "__main__":
    main()
