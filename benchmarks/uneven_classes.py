"""What balancing the classes does when one class is rare: a copy of a class-folder dataset
as links, with a tenth of one class's training images, trained with and without
`--balance-classes` and scored on a held-out test part of equal classes.

    python benchmarks/uneven_classes.py --data ../shared/datasets/cifar10-jpeg --folder /tmp/u
    python benchmarks/uneven_classes.py --data ../shared/datasets/cifar10-jpeg --folder /tmp/u \
        --runs A B

The folder gets `train/<class>/` (all but 500 images of each class, `--rare` cut to
`--keep` of them) and `test/<class>/` (500 of each), as symbolic links to `--data`'s files
(`--data` is a class-folder tree, or one with a `train/` folder of class folders; nothing
is copied). The first command trains (the quick preset: about 5 min a run on 2 AVX2
cores), the second scores runs already trained on that folder.
"""

import argparse
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import load_dataset  # noqa: E402
from core.datastats import class_counts  # noqa: E402
from core.evaluate import evaluate  # noqa: E402
from core.fileio import read_json  # noqa: E402
from core.model import load_model  # noqa: E402
from core.train import preset_defaults, start_run, train, training_data  # noqa: E402

TEST_PER_CLASS = 500

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", required=True, type=Path)
parser.add_argument("--folder", required=True, type=Path, help="where the links go")
parser.add_argument("--rare", default="cat", help="the class cut down; default %(default)s")
parser.add_argument("--keep", type=float, default=0.1, help="its share kept; %(default)s")
parser.add_argument("--preset", default="quick")
parser.add_argument("--runs", type=Path, nargs="*", help="score these runs instead of training")
parser.add_argument("--runs-dir", type=Path, default=None, help="where new runs are written")
args = parser.parse_args()

source = args.data / "train" if (args.data / "train").is_dir() else args.data
if not args.folder.exists():
    rng = random.Random(0)
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        rng.shuffle(files)
        test, rest = files[:TEST_PER_CLASS], files[TEST_PER_CLASS:]
        if folder.name == args.rare:
            rest = rest[: round(len(rest) * args.keep)]
        for part, chosen in (("test", test), ("train", rest)):
            (args.folder / part / folder.name).mkdir(parents=True, exist_ok=True)
            for file in chosen:
                (args.folder / part / folder.name / file.name).symlink_to(file.resolve())

run_dirs = list(args.runs or [])
if not run_dirs:
    for balance in (False, True):
        config = replace(
            preset_defaults(args.preset),
            data=str(args.folder),
            balance_classes=balance,
            name=f"{args.preset}-{'balanced' if balance else 'plain'}",
        )
        start = time.perf_counter()
        run_dirs.append(train(config, training_data(config), start_run(config, args.runs_dir), 2))
        print(f"{run_dirs[-1].name}: {time.perf_counter() - start:.0f} s", flush=True)

dataset = load_dataset(args.folder, val_fraction=0.1, seed=0)
x, y = dataset.split("test")
rare = dataset.class_names.index(args.rare)
per_class = class_counts(dataset)["train"]
sizes = dict(zip(dataset.class_names, per_class.tolist(), strict=True))
print("training images (less validation):", sizes)
print(
    f"run | balanced | val accuracy | test accuracy | test balanced accuracy | "
    f"{args.rare} recall | lowest other recall"
)
for run_dir in run_dirs:
    config = read_json(run_dir / "model_card.json")["train_config"]
    report = evaluate(load_model(run_dir / "model.keras"), x, y, dataset.class_names)
    recall = report.per_class["recall"]
    val = max(h["val_accuracy"] for h in read_json(run_dir / "history.json"))
    print(
        f"{run_dir.name} | {config.get('balance_classes', False)} | {val:.2%} | "
        f"{report.accuracy:.2%} | {report.balanced_accuracy():.2%} | {recall[rare]:.1%} | "
        f"{min(r for i, r in enumerate(recall) if i != rare):.1%}"
    )
