"""What Streamlit's `keras.backend.clear_session()` after every script run cost the dashboard.

    python benchmarks/keras_session.py [--model M] [--images 40]

Streamlit 1.67 clears Keras's session at the end of each run; `app.py` now stops it
(`ui.state.keep_keras_between_runs`). With the shipped model (or `--model`) this times the
call itself, a one-image prediction right after it against one without it, and what the
Classify page computes for each new photo (a prediction and a Grad-CAM) with the session
cleared after each photo, as before, and kept, as now. Medians.
"""

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import inspect, registry  # noqa: E402
from core.classify import predict_pixels  # noqa: E402
from core.model import load_model  # noqa: E402


def seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def photos(model, count: int, clear: bool) -> float:
    """Median seconds of a prediction and a Grad-CAM per new random image."""
    rng = np.random.default_rng(0)
    size = int(model.input_shape[1])
    times = []
    for _ in range(count):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        start = time.perf_counter()
        predict_pixels(model, image[None])
        inspect.grad_cam(model, image)
        times.append(time.perf_counter() - start)
        if clear:
            keras.backend.clear_session()
        gc.collect(2)  # Streamlit's own collection after each run (runner.postScriptGC)
    return statistics.median(times[1:])  # the first call traces


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, default=registry.default_model_path())
    p.add_argument("--images", type=int, default=40)
    args = p.parse_args()
    model = load_model(args.model)
    x = np.random.default_rng(1).integers(0, 256, (1, *model.input_shape[1:]), dtype=np.uint8)
    for _ in range(5):
        predict_pixels(model, x)
    plain = statistics.median(seconds(lambda: predict_pixels(model, x)) for _ in range(20))
    cleared, after = [], []
    for _ in range(10):
        cleared.append(seconds(keras.backend.clear_session))
        after.append(seconds(lambda: predict_pixels(model, x)))
    print(f"{args.model}")
    print(f"clear_session():                      {statistics.median(cleared) * 1e3:6.0f} ms")
    print(f"one-image prediction:                 {plain * 1e3:6.1f} ms")
    print(f"the same right after clear_session(): {statistics.median(after) * 1e3:6.1f} ms")
    before, now = photos(model, args.images, True), photos(model, args.images, False)
    print(f"prediction + Grad-CAM per new photo, session cleared after each: {before * 1e3:.0f} ms")
    print(f"prediction + Grad-CAM per new photo, session kept:               {now * 1e3:.0f} ms")
    print(f"kept / cleared: {now / before:.2f}x")


if __name__ == "__main__":
    main()
