"""The Train page's live curves for a long run: reading `batches.csv`, and what is drawn.

    python benchmarks/live_curves.py [--minutes 90] [--most 600] [--rounds 7]

Writes the file a run of `--minutes` would (two points a second, through
`core.runs.append_batch_point`, into a temporary folder), then times
`core.runs.read_batch_points` on it, all points and thinned to `--most` (the page's
setting), best of `--rounds`: a first read of the file (a copy no call has read), and a
read after the 10 points a run writes between two redraws (the page redraws the charts
every 5 s while a run trains). Prints the size of the loss chart's JSON either way.
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import runs  # noqa: E402
from ui import charts  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=90)
    p.add_argument("--most", type=int, default=600)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    points, epochs = int(args.minutes * 60 * 2), 20
    per_epoch = points // epochs  # a point a batch: every point a distinct x
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for epoch in range(1, epochs + 1):
            for n in range(1, per_epoch + 1):
                loss = 2.0 / epoch + rng.normal(0, 0.01)
                runs.append_batch_point(Path(folder), epoch, n, per_epoch, loss, 0.5)
        size = (Path(folder) / runs.BATCHES).stat().st_size
        print(f"{points:,} points written ({size / 1e3:.0f} kB) for {args.minutes:g} minutes")
        for most in (None, args.most):
            first, later = [], []
            for n in range(args.rounds):
                copy = Path(folder) / f"copy-{most}-{n}"  # a file no call has read yet
                copy.mkdir()
                shutil.copyfile(Path(folder) / runs.BATCHES, copy / runs.BATCHES)
                start = time.perf_counter()
                runs.read_batch_points(copy, most)
                first.append(time.perf_counter() - start)
                for k in range(1, 11):  # five seconds of a run: epoch 21 begins
                    runs.append_batch_point(copy, epochs + 1, k, per_epoch, 0.1, 0.5)
                start = time.perf_counter()
                curves = runs.read_batch_points(copy, most)
                later.append(time.perf_counter() - start)
            running = (curves["x"], curves["loss"])
            fig = charts.epoch_lines("Loss", {"train": ([], [])}, running=running)
            print(
                f"most={most}: {len(curves['x']):,} points drawn, first read "
                f"{min(first) * 1e3:.1f} ms, after 10 more points {min(later) * 1e3:.2f} ms "
                f"(best of {args.rounds}), chart JSON {len(fig.to_json()) / 1e3:.0f} kB"
            )


if __name__ == "__main__":
    main()
