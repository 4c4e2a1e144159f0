"""How long the Filters page's two explanations of an answer take: Grad-CAM and occlusion.

    python benchmarks/explain.py [--model PATH.keras] [--batches 32,64,128,169]

The model defaults to the shipped one. On a fixed random image at the model's input size,
one call of each to warm up, then five timed calls; prints the median in milliseconds.
Occlusion is timed at each batch size (its 169 hidden copies go through the model in
batches of that many).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import inspect  # noqa: E402
from core.model import load_model  # noqa: E402

CALLS = 5


def median_ms(call) -> float:
    call()
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "assets/default_model/model.keras"))
    parser.add_argument("--batches", default="32,64,128,169")
    args = parser.parse_args()
    model = load_model(args.model)
    size = int(model.input_shape[1])
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    print(f"grad-cam: {median_ms(lambda: inspect.grad_cam(model, image)):.0f} ms")
    for batch in [int(b) for b in args.batches.split(",")]:
        ms = median_ms(lambda b=batch: inspect.occlusion(model, image, batch_size=b))
        print(f"occlusion, batches of {batch}: {ms:.0f} ms")


if __name__ == "__main__":
    main()
