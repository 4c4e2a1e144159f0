"""The first load of an image folder: every file decoded into an empty cache folder.

    python benchmarks/folder_decode.py --data ../shared/datasets/cifar10-jpeg [--in-process]
        [--process-per-heic]
    python benchmarks/folder_decode.py --data FOLDER --check

Times `core.data.load_dataset` on `--data` with a new temporary cache folder (removed at
the end), so nothing decoded before is read back; prints the seconds, the images per
second and how many processes decoded. `--in-process` decodes in this process only (as
files that would take under `core.data.PARALLEL_SECONDS` here are), for an A/B in the
same run; `--process-per-heic` (with `--in-process`) starts a decoding process for each
HEIC file, as before session 45, instead of one for them all (`core.heif.kept_decoder`).
Whole process timings: `farm-bench -n 3 -- python benchmarks/folder_decode.py ...`.
`--check` times `core.userdata.check_folder` without a listing instead: how the Dataset
page checks a folder the loader cannot list (an empty class folder, say), nothing cached.
`--listing` times `core.data.folder_listing` alone (no file read), which every page runs
after a restart: the median of 7.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import data  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--in-process", action="store_true", help="no worker processes")
    p.add_argument("--check", action="store_true", help="time the folder check instead")
    p.add_argument("--process-per-heic", action="store_true", help="with --in-process")
    p.add_argument("--listing", action="store_true", help="time the folder's listing only")
    args = p.parse_args()
    if args.listing:
        times = []
        for _ in range(7):
            start = time.perf_counter()
            listing = data.folder_listing(args.data, 32)
            times.append(time.perf_counter() - start)
        files = len(listing.files) if listing else 0
        print(f"listed {files:,} files in {sorted(times)[3] * 1000:.0f} ms (median of 7)")
        return
    if args.in_process:
        data.worker_count = lambda seconds: 1
    if args.process_per_heic:
        import contextlib

        from core import heif

        heif.kept_decoder = contextlib.nullcontext
    if args.check:
        from core.userdata import check_folder

        start = time.perf_counter()
        report = check_folder(args.data)
        files = sum(map(sum, report.counts.values())) + len(report.unreadable)
        seconds = time.perf_counter() - start
        print(f"checked {files:,} files in {seconds:.2f} s; problems: {report.problems}")
        return
    with tempfile.TemporaryDirectory() as cache:
        listing = data.folder_listing(args.data, 32, cache)
        if listing is None:
            sys.exit(f"{args.data} is not an image folder")
        files = len(listing.files)
        if hasattr(data, "estimated_seconds"):
            workers = data.worker_count(data.estimated_seconds([p for p, _, _ in listing.files]))
        else:
            workers = "threads"  # before session 38
        start = time.perf_counter()
        data.load_dataset(args.data, cache_dir=cache, listing=listing)
        seconds = time.perf_counter() - start
    workers = 1 if args.in_process else workers
    print(f"{files:,} files in {seconds:.2f} s: {files / seconds:,.0f} images/s, workers {workers}")


if __name__ == "__main__":
    main()
