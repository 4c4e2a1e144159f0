"""The Train page's live curves for a long run: reading `batches.csv`, and what is drawn.

    python benchmarks/live_curves.py [--minutes 90] [--most 600] [--rounds 7]

Writes the file a run of `--minutes` would (two points a second, through
`core.runs.append_batch_point`, into a temporary folder), then times
`core.runs.read_batch_points` on it, all points and thinned to `--most` (the page's
setting), best of `--rounds`, and prints the size of the loss chart's JSON either way
(the page sends both charts again every second while a run trains).
"""

import argparse
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
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                curves = runs.read_batch_points(folder, most)
                times.append(time.perf_counter() - start)
            running = (curves["x"], curves["loss"])
            fig = charts.epoch_lines("Loss", {"train": ([], [])}, running=running)
            print(
                f"most={most}: {len(curves['x']):,} points drawn, read in "
                f"{min(times) * 1e3:.1f} ms (best of {args.rounds}), chart JSON "
                f"{len(fig.to_json()) / 1e3:.0f} kB"
            )


if __name__ == "__main__":
    main()
