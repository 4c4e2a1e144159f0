"""The search for label errors on a small sample of a folder, with labels changed at random.

    python benchmarks/label_check_small.py --data ../shared/datasets/cifar10-jpeg
        [--per-class 60] [--changed 0.05] [--seed 0] [--lr-scale sqrt|linear|none]

Draws `--per-class` pictures of every class (seeded), files a share `--changed` of them
under another class at random, and runs `core.label_check`'s fold models as the Dataset
page does (`fold_config`: the quick preset, smaller batches and more epochs for a small
folder). Prints how often the fold models answer the given label on the pictures they did
not train on, and how many of the changed pictures are among as many first suspects.
`--lr-scale` sets the fold models' learning rate for their smaller batch: `sqrt` as
`fold_config` does (the recipe's rate times the square root of the batches' ratio),
`linear` (times the ratio) or `none` (the recipe's rate).
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from core import label_check
    from core.data import load_dataset
    from core.hardware import effective_precision
    from core.train import preset_defaults, resolved_model_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--per-class", type=int, default=60)
    p.add_argument("--changed", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr-scale", choices=("sqrt", "linear", "none"), default="sqrt")
    args = p.parse_args()

    ds = load_dataset(args.data, val_fraction=0)
    x, y = ds.split("train")
    rng = np.random.default_rng(args.seed)
    rows = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), args.per_class, False) for c in range(ds.num_classes)]
    )
    x, y = x[rows], y[rows].astype(np.int64)
    changed = rng.choice(len(y), int(args.changed * len(y)), False)
    y[changed] = (y[changed] + rng.integers(1, ds.num_classes, len(changed))) % ds.num_classes

    recipe = dataclasses.replace(preset_defaults("quick"), seed=args.seed)
    config = label_check.fold_config(recipe, len(y))
    ratio = config.batch_size / recipe.batch_size
    rate = recipe.learning_rate * {"sqrt": ratio**0.5, "linear": ratio, "none": 1}[args.lr_scale]
    config = dataclasses.replace(
        config,
        learning_rate=rate,
        precision=effective_precision(config.precision),
        model=resolved_model_config(config, ds.num_classes),
    )
    start = time.perf_counter()
    probs = label_check.out_of_fold(config, x, y, ds.num_classes)
    first = label_check.suspects(probs, y)["index"][: len(changed)]
    print(
        f"{len(y)} pictures, {len(changed)} labels changed; fold models of batch "
        f"{config.batch_size}, {config.epochs} epochs, learning rate {rate:.4g} "
        f"({args.lr_scale}): given label answered for {(probs.argmax(1) == y).mean():.1%}, "
        f"{len(set(first.tolist()) & set(changed.tolist()))} changed among the first "
        f"{len(changed)} suspects; {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
