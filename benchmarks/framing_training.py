"""Training on photos that are not square: squashed whole (`--fit squash`, Keras's default)
against cropped to their centre square (`--fit crop`), on the same folder of wide photos.

The photos are made as `benchmarks/framing.py` makes them (each 32-pixel image enlarged 4x,
widened to --shape by mirroring its edges or repeating its edge columns, --where the subject
sits, JPEG quality 90) from the first --per-class files of each class of --data, in a
temporary folder removed at the end. Each framing then trains --preset on that folder with
the project's command line (`python -m core.train`, its own runs and cache folders), on the
same stratified split (seed 0); the table gives each run's validation accuracy, its epochs'
seconds and the whole process's wall time (decoding the photos included), then each model's
validation accuracy with the photos read squashed and read cropped: what evaluating a model
on its pictures framed otherwise than its run framed them would report.

    python benchmarks/framing_training.py --data ../shared/datasets/cifar10-jpeg --per-class 2000
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from framing import SHAPES, photo  # noqa: E402
from PIL import Image  # noqa: E402

from core import ROOT  # noqa: E402


def write_photos(data: Path, out: Path, per_class: int, ratio: float, where, sides) -> int:
    """Writes `out/<class>/<file>.jpg` photos of the first `per_class` files of each class
    folder of `data` (or of `data/train`); returns how many."""
    data, count = data / "train" if (data / "train").is_dir() else data, 0
    for name in sorted(p.name for p in data.iterdir() if p.is_dir()):
        (out / name).mkdir(parents=True)
        for path in sorted((data / name).iterdir())[:per_class]:
            pixels = np.asarray(Image.open(path).convert("RGB"))
            (out / name / f"{path.stem}.jpg").write_bytes(photo(pixels, ratio, where, sides))
            count += 1
    return count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="a folder of class folders")
    p.add_argument("--per-class", type=int, default=2000, help="images of each class")
    p.add_argument("--preset", default="quick")
    p.add_argument("--epochs", type=int, default=0, help="0: the preset's own")
    p.add_argument("--shape", choices=SHAPES, default="16:9")
    p.add_argument("--where", choices=("middle", "left"), default="middle")
    p.add_argument("--sides", choices=("symmetric", "edge"), default="symmetric")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="framing-training-") as tmp:
        folder = Path(tmp) / "photos"
        start = time.perf_counter()
        n = write_photos(
            args.data, folder, args.per_class, SHAPES[args.shape], args.where, args.sides
        )
        print(
            f"{n:,} {args.shape} photos ({args.sides} sides, subject {args.where}) of "
            f"{args.data} in {time.perf_counter() - start:.0f} s; preset {args.preset}",
            flush=True,
        )
        env = dict(os.environ, CNN_RUNS_DIR=f"{tmp}/runs", CNN_CACHE_DIR=f"{tmp}/cache")
        print(f"{'fit':<8} {'val accuracy':>12} {'epochs':>6} {'epoch s':>8} {'wall s':>7}")
        models = {}
        for fit in ("squash", "crop"):
            command = [sys.executable, "-m", "core.train", "--preset", args.preset]
            command += ["--data", str(folder), "--fit", fit, "--quiet", "--name", fit]
            command += ["--epochs", str(args.epochs)] if args.epochs else []
            start = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if done.returncode:
                sys.exit(f"{fit}: {done.stderr.strip().splitlines()[-1]}")
            run_dir = Path(done.stdout.strip().splitlines()[-1])
            card = json.loads((run_dir / "model_card.json").read_text())
            accuracy = card["metrics"]["val_accuracy"]
            print(
                f"{fit:<8} {accuracy:>12.2%} {card['epochs']:>6} "
                f"{card['train_seconds']:>8.0f} {wall:>7.0f}",
                flush=True,
            )
            models[fit] = run_dir / "model.keras"
        os.environ["CNN_CACHE_DIR"] = env["CNN_CACHE_DIR"]  # the runs' decoded photos
        from core.data import load_dataset
        from core.evaluate import evaluate
        from core.model import load_model

        print(f"{'trained':<8} {'read squashed':>14} {'read cropped':>13}")
        split = {
            f: load_dataset(folder, val_fraction=0.1, seed=0, fit=f).split("val") for f in models
        }
        names = sorted(p.name for p in folder.iterdir())
        for fit, path in models.items():
            model = load_model(path)
            read = [evaluate(model, *split[f], names).accuracy for f in models]
            print(f"{fit:<8} {read[0]:>14.2%} {read[1]:>13.2%}", flush=True)


if __name__ == "__main__":
    main()
