"""Batches of 256 through the shipped model's int8 copy, with and without its check for
unfamiliar pictures, back to back as a stream of uploads would come (medians of 30).

    python benchmarks/checked_batches.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/checked_batches.py

Three rows: the copy alone (`predict_pixels`), the copy and its check as the Classify page
runs them (`predict_checked`: one ONNX Runtime pass, then the Mahalanobis distances), and
the copy alone after a 256 x 256 matrix product on numpy's BLAS threads, which shows what
OpenBLAS's idle thread, spinning on after a product, takes from the next pass
(docs/BENCHMARKS.md, session 48).
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RUNS = 30


def _median_ms(step) -> float:
    step()  # warm-up
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    from core import novelty
    from core.classify import predict_checked, predict_pixels
    from core.quantize import Int8Model, int8_path, novelty_path
    from core.registry import default_model_path

    shipped = default_model_path()
    int8 = Int8Model(int8_path(shipped))
    check = novelty.load(novelty_path(shipped), int8, int8.path)
    x = np.random.default_rng(0).integers(0, 256, (256, *int8.input_shape[1:]), np.uint8)
    z = np.random.default_rng(1).random((256, 256)).astype(np.float32)
    rows = {
        "int8 copy alone": lambda: predict_pixels(int8, x),
        "int8 copy and its check": lambda: predict_checked(int8, x, check=check),
        "int8 copy after a 256 x 256 product": lambda: (z @ z, predict_pixels(int8, x)),
    }
    for label, step in rows.items():
        ms = _median_ms(step)
        print(f"{label}: {ms:.1f} ms a batch of 256, {256 / ms * 1000:,.0f} images/s")


if __name__ == "__main__":
    main()
