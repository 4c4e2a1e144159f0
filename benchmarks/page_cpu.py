"""What an open page costs the browser: Chromium's CPU seconds per second while it shows one
page of a dashboard that is already running.

    python benchmarks/page_cpu.py http://127.0.0.1:8501 --page train [--windows 3]

Each window opens the page in a fresh Chromium (same flags as the browser tests), waits
`--settle` seconds for it to load and draw, then counts the CPU seconds of every Chromium
process (Linux /proc) over `--window` seconds. Start the server, and whatever job the page
should follow (a run, a learning-rate test, an int8 build), yourself; compare two versions
of the code by running one server of each and alternating.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from watch_cost import chromium, cpu_of  # noqa: E402

from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="the dashboard's address, e.g. http://127.0.0.1:8501")
    p.add_argument("--page", default="", help="its path after the address: train, evaluate…")
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--window", type=float, default=40)
    p.add_argument("--settle", type=float, default=15, help="seconds before each window")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    rates = []
    with sync_playwright() as pw:
        for _ in range(args.windows):
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{args.url.rstrip('/')}/{args.page}")
            time.sleep(args.settle)
            t0, c0 = time.monotonic(), cpu_of(chromium)
            time.sleep(args.window)
            rates.append((cpu_of(chromium) - c0) / (time.monotonic() - t0))
            browser.close()
            print(f"Chromium {rates[-1]:.3f} CPU s/s", flush=True)
    print(f"median of {len(rates)}: {statistics.median(rates):.3f} CPU s/s")


if __name__ == "__main__":
    main()
