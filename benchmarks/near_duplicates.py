"""Near-duplicates of a dataset: time to compare every image with every other, and the
pairs, label conflicts and validation images with a near-duplicate in train at several
thresholds (a conflict is a pair filed under two classes: mostly false matches).

    python benchmarks/near_duplicates.py --data ../shared/datasets/cifar10-jpeg
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import near_duplicates as nd  # noqa: E402
from core.data import load_dataset  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", required=True)
args = parser.parse_args()
ds = load_dataset(args.data, val_fraction=0.1)
start = time.perf_counter()
found = nd.near_duplicates(ds)
print(
    f"compared {sum(len(y) for _, y in ds.splits.values()):,} images in "
    f"{time.perf_counter() - start:.1f} s"
)
print("threshold | pairs | across splits | under two classes | val images with one in train")
for threshold in (0.90, 0.93, 0.95, 0.97):
    pairs = nd.pairs(found, threshold)
    across = sum(p.a[0] != p.b[0] for p in pairs)
    conflicts = sum(len(set(p.labels(ds))) == 2 for p in pairs)
    shared = int(nd.in_split(found, "val", "train", threshold).sum())
    print(f"{threshold:.2f} | {len(pairs)} | {across} | {conflicts} | {shared}")
