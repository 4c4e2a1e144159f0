"""The Classify page with many large photos: upload to answers, and a rerun after it.

    python benchmarks/classify_page.py [--photos 12] [--side 4000]

Runs the real page in Streamlit's AppTest with the shipped model active (an empty runs
folder), uploads `--photos` distinct generated JPEGs of `--side` x 3/4 `--side` pixels,
and times the run that answers them and one rerun after it (what any widget change costs).
"""

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def photo(i: int, width: int, height: int) -> bytes:
    """A smooth 'photo' with a hard-edged block, different for every `i`."""
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack(
        [(xx * 255 // width + 20 * i) % 256, yy * 255 // height, (xx + yy + 37 * i) % 256], -1
    )
    left = (i * width // 16) % width
    pixels[height // 4 : height // 2, left : left + width // 4] = (250, (30 + 15 * i) % 256, 30)
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--photos", type=int, default=12)
    p.add_argument("--side", type=int, default=4000)
    args = p.parse_args()
    os.environ["CNN_RUNS_DIR"] = tempfile.mkdtemp()  # no runs: the shipped model answers
    from streamlit.testing.v1 import AppTest

    files = [
        (f"photo{i}.jpg", photo(i, args.side, args.side * 3 // 4), "image/jpeg")
        for i in range(args.photos)
    ]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.switch_page("pages/classify.py").run()
    start = time.perf_counter()
    at.file_uploader(key="classify_files").set_value(files).run()
    answered = time.perf_counter() - start
    start = time.perf_counter()
    at.run()
    rerun = time.perf_counter() - start
    problems = len(at.exception) + len(at.error)
    print(
        f"{args.photos} uploads of {args.side}x{args.side * 3 // 4} JPEGs: answers in "
        f"{answered:.2f} s, a rerun {rerun:.2f} s ({problems} errors)"
    )


if __name__ == "__main__":
    main()
