"""How long the Filters page takes to score every checkpoint of a run (How each class was
learned), and how long once the scores are kept.

    python benchmarks/class_curves.py RUN_DIR --data ../shared/datasets/cifar10-jpeg

Works on a copy of the run in a temporary folder (the run itself is not written to): the
first call scores every checkpoint on `core.inspect.CURVE_IMAGES` images of the
dashboard's validation split, the second reads the kept scores.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import inspect  # noqa: E402
from core.data import load_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    x, y = load_dataset(args.data, val_fraction=0.1, seed=0).split("val")
    rows = inspect.curve_rows(y)
    x, y = x[rows], y[rows]
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / Path(args.run_dir).name
        shutil.copytree(args.run_dir, run, ignore=shutil.ignore_patterns(inspect.CURVES_FILE))
        for what in ("scored", "kept"):
            start = time.perf_counter()
            curves = inspect.class_curves(run, x, y, int(y.max()) + 1)
            took = time.perf_counter() - start
            print(f"{what}: {len(curves['epochs'])} checkpoints, {len(x):,} images: {took:.2f} s")


if __name__ == "__main__":
    main()
