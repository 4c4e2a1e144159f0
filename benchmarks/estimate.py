"""How close the Train page's time estimate comes: each preset estimated, then trained.

    python benchmarks/estimate.py --data ../shared/datasets/cifar10-jpeg [--presets seed quick]
        [--epochs N]

For each preset, one after the other on an otherwise idle machine: `python -m core.estimate`
(its whole process timed too), then `python -m core.train` with the same options, timed
from its start to its end as a user waits for it. Prints a table: the estimate and the
run in total, per epoch (the run's median epoch from history.json, validation included)
and what each process took. The runs go to a temporary folder, deleted afterwards.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", required=True)
parser.add_argument("--presets", nargs="+", default=["seed", "quick"])
parser.add_argument("--epochs", type=int, help="instead of each preset's own")
args = parser.parse_args()


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout


rows = []
with tempfile.TemporaryDirectory(prefix="estimate-bench-") as runs_dir:
    for preset in args.presets:
        options = ["--preset", preset, "--data", args.data]
        options += ["--epochs", str(args.epochs)] if args.epochs else []
        measured, out = timed([sys.executable, "-m", "core.estimate", *options, "--json"])
        found = json.loads(out.splitlines()[-1])
        print(f"{preset}: {found['text']}", flush=True)
        train = [sys.executable, "-m", "core.train", *options, "--runs-dir", runs_dir, "--quiet"]
        took, _ = timed(train)
        run = max(Path(runs_dir).iterdir(), key=lambda p: p.stat().st_mtime)
        history = json.loads((run / "history.json").read_text())
        epochs = len(history)
        epoch = statistics.median(h["seconds"] for h in history)
        estimated_epoch = (found["epochs"] + found["validation"]) / epochs
        rows.append((preset, epochs, found["total"], took, estimated_epoch, epoch, measured))
        print(
            f"{preset}: estimated {found['total']:.0f} s, took {took:.0f} s "
            f"({found['total'] / took:.2f}x)",
            flush=True,
        )

print()
print(
    "| preset | epochs | estimate | run | estimate / run | epoch: estimate | epoch: run | "
    "estimating took |"
)
print("|---|---|---|---|---|---|---|---|")
for preset, epochs, total, took, est_epoch, epoch, measured in rows:
    print(
        f"| {preset} | {epochs} | {total:.0f} s | {took:.0f} s | {total / took:.2f} | "
        f"{est_epoch:.1f} s | {epoch:.1f} s | {measured:.0f} s |"
    )
