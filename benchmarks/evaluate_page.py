"""How long the Evaluate page (or another) takes to show: a first visit, then after restarts.

    python benchmarks/evaluate_page.py --data ../shared/datasets/cifar10-jpeg [--restarts 2]
    python benchmarks/evaluate_page.py --data ../shared/datasets/cifar10-jpeg --page dataset
    python benchmarks/evaluate_page.py --data ../shared/datasets/cifar10-jpeg --home-first 5

Each visit starts a fresh `streamlit run app.py` (nothing in memory, as after a restart),
opens the page in Chromium with the shipped model (Evaluate: the validation split), and
times from the navigation to the end of the script run (with `--home-first`, after the
Home page was open for that many seconds). The servers share a new temporary
cache folder in which the decoded folders and folder checks of the usual cache are linked:
the images are not decoded or checked again, and nothing in the usual cache changes.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.data import default_cache_dir  # noqa: E402
from tests.e2e.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_FLAGS,
    streamlit_server,
    wait_idle,
)


def visit(browser, server: dict, name: str, home_first: float = 0) -> tuple[float, str]:
    with streamlit_server(server) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        if home_first:  # a user who lands on Home and reads it before going on
            page.goto(url)
            wait_idle(page, timeout=600_000)
            time.sleep(home_first)
        start = time.perf_counter()
        page.goto(f"{url}/{name}")
        wait_idle(page, timeout=600_000)
        seconds = time.perf_counter() - start
        accuracy = page.get_by_test_id("stMetricValue").first.inner_text()
        page.close()
    return seconds, accuracy


def main() -> None:
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the dataset (CNN_DATA)")
    p.add_argument("--restarts", type=int, default=2)
    p.add_argument("--page", default="evaluate", help="the page's path, e.g. dataset")
    p.add_argument(
        "--home-first",
        type=float,
        default=0,
        metavar="SECONDS",
        help="open Home first and stay this long before the page (timed from leaving Home)",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        cache = Path(tmp) / "cache"
        cache.mkdir()
        for pattern in ("folder-*", "check-*.json"):
            for entry in default_cache_dir().glob(pattern):
                (cache / entry.name).symlink_to(entry)
        env = {"CNN_DATA": str(Path(args.data).resolve()), "CNN_CACHE_DIR": str(cache)}
        server = {"env": env, "base": Path(tmp)}
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for i in range(1 + args.restarts):
            seconds, metric = visit(browser, server, args.page, args.home_first)
            kind = "first visit" if i == 0 else f"after restart {i}"
            print(f"{kind:<16} {seconds:6.1f} s   first metric shown {metric}", flush=True)
        browser.close()
    print(f"cpu {os.cpu_count()}")


if __name__ == "__main__":
    main()
