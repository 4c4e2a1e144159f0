"""What MixUp and CutMix add to the input pipeline: batches of the training pipeline alone.

    python benchmarks/mixing_cost.py [--augment flip,crop_pad=2] [--mix mixup=0.2,cutmix=1]
        [--batch 512] [--batches 40] [--rounds 5]

No dataset needed: random 32x32 uint8 images. Builds `core.train.make_pipeline` with the
augmentation as given (A) and with the mixing added (B), in one process, and alternates
them, `--batches` batches each, `--rounds` times (this VM's speed drifts; alternating
keeps the drift out of the ratio). Prints each one's median milliseconds a batch and B/A.
A batch of the quick preset's model step takes about 700 ms on 2 cores (3 epochs of 88
batches in 62 s), so a few milliseconds here are a few per mille of a run.
"""

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pipeline(augment: str, batch: int, x, y):
    from core.train import TrainConfig, make_pipeline, parse_augment, pipeline_options

    config = replace(TrainConfig(), augment=parse_augment(augment), batch_size=batch)
    return make_pipeline(**pipeline_options(config, x, y, 10))


def ms_per_batch(dataset, batches: int) -> float:
    start = time.perf_counter()
    for _ in dataset.take(batches):
        pass
    return 1000 * (time.perf_counter() - start) / batches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--augment", default="flip,crop_pad=2", help="A: the quick preset's")
    p.add_argument("--mix", default="mixup=0.2,cutmix=1", help="added for B")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch * args.batches, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, len(x))
    plain = pipeline(args.augment, args.batch, x, y)
    mixed = pipeline(f"{args.augment},{args.mix}", args.batch, x, y)
    for ds in (plain, mixed):  # warm-up: tracing the map function
        ms_per_batch(ds, 2)
    times = {"A": [], "B": []}
    for _ in range(args.rounds):
        times["A"].append(ms_per_batch(plain, args.batches))
        times["B"].append(ms_per_batch(mixed, args.batches))
    a, b = (statistics.median(times[k]) for k in "AB")
    print(f"A {args.augment}: {a:.1f} ms a batch of {args.batch} (median of {args.rounds})")
    print(f"B {args.augment},{args.mix}: {b:.1f} ms a batch")
    print(f"B/A {b / a:.2f}; B - A {b - a:.1f} ms a batch")


if __name__ == "__main__":
    main()
