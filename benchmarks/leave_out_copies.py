"""What leaving the copies of validation images out of training does: runs of one preset
trained with and without `--drop-near-duplicates`, each scored on the validation images that
have a near-duplicate in the training split and on the others (validation is the same in
both: only training images are left out).

    python benchmarks/leave_out_copies.py --data ../shared/datasets/cifar10-jpeg --seeds 0 1
    python benchmarks/leave_out_copies.py --data ../shared/datasets/cifar10-jpeg --runs A B

The first trains (the quick preset by default: about 5 min a run on 2 AVX2 cores), the
second scores runs (their folders) already trained on that data.
"""

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import near_duplicates as nd  # noqa: E402
from core.evaluate import evaluate  # noqa: E402
from core.fileio import read_json  # noqa: E402
from core.model import load_model  # noqa: E402
from core.train import TrainConfig, preset_defaults, start_run, train, training_data  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", required=True)
parser.add_argument("--preset", default="quick")
parser.add_argument("--seeds", type=int, nargs="*", default=[0])
parser.add_argument("--runs", type=Path, nargs="*", help="score these runs instead of training")
parser.add_argument("--runs-dir", type=Path, default=None, help="where new runs are written")
args = parser.parse_args()

run_dirs = list(args.runs or [])
if not run_dirs:
    for seed in args.seeds:
        for drop in (False, True):
            config = replace(
                preset_defaults(args.preset),
                data=args.data,
                seed=seed,
                drop_near_duplicates=drop,
                name=f"{args.preset}-s{seed}-{'drop' if drop else 'all'}",
            )
            dataset = training_data(config)
            start = time.perf_counter()
            run_dirs.append(train(config, dataset, start_run(config, args.runs_dir), verbose=2))
            print(f"{run_dirs[-1].name}: {time.perf_counter() - start:.0f} s", flush=True)

print("run | left out | val accuracy | on val images with a copy in train | on the others")
for run_dir in run_dirs:
    card = read_json(run_dir / "model_card.json")
    # The validation split with every training image: the copies are found against it.
    config = TrainConfig.from_dict(card["train_config"])
    everything = training_data(replace(config, data=args.data, drop_near_duplicates=False))
    shared = nd.in_split(nd.kept_near_duplicates(everything), "val", "train")
    x, y = everything.split("val")
    report = evaluate(load_model(run_dir / "model.keras"), x, y, everything.class_names)
    right = report.y_true == report.probs.argmax(axis=1)
    print(
        f"{run_dir.name} | {card['data'].get('near_duplicates_left_out', 0):,} | "
        f"{right.mean():.2%} | {right[shared].sum()}/{shared.sum()} = {right[shared].mean():.1%} | "
        f"{right[~shared].mean():.2%}"
    )
