"""How long a page of a running dashboard takes to draw, visit after visit, in Chromium.

    python benchmarks/page_visits.py http://127.0.0.1:8501 --page dataset [--visits 4]
        [--click Reshuffle]

Each visit opens the page (same Chromium flags as the browser tests), waits 1.5 s for the
script to start, then until the page is idle (`tests.e2e.conftest.wait_idle`); the figure
is the whole wait, those 1.5 s included. `--click` then clicks the button of that name
once and times the rerun the same way (0.5 s wait). Start the server yourself; compare two
versions of the code by serving each in turn on the same data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS, wait_idle  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="the dashboard's address, e.g. http://127.0.0.1:8501")
    p.add_argument("--page", default="", help="its path after the address: dataset, train…")
    p.add_argument("--visits", type=int, default=4)
    p.add_argument("--click", help="a button to click after the visits, e.g. Reshuffle")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        for visit in range(1, args.visits + 1):
            start = time.perf_counter()
            page.goto(f"{args.url}/{args.page}")
            page.wait_for_timeout(1500)
            wait_idle(page, timeout=300_000)
            print(f"visit {visit}: {time.perf_counter() - start:.1f} s", flush=True)
        if args.click:
            start = time.perf_counter()
            page.get_by_role("button", name=args.click).click()
            page.wait_for_timeout(500)
            wait_idle(page, timeout=300_000)
            print(f"{args.click}: {time.perf_counter() - start:.1f} s")
        browser.close()


if __name__ == "__main__":
    main()
