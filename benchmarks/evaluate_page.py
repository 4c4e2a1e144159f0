"""How long the Evaluate page (or another) takes to show: a first visit, then after restarts.

    python benchmarks/evaluate_page.py --data ../shared/datasets/cifar10-jpeg [--restarts 2]
    python benchmarks/evaluate_page.py --data ../shared/datasets/cifar10-jpeg --page dataset
    python benchmarks/evaluate_page.py --data ../shared/datasets/cifar10-jpeg --home-first 5
    python benchmarks/evaluate_page.py --data ../shared/datasets/cifar10-jpeg --space

Each visit starts a fresh `streamlit run app.py` (nothing in memory, as after a restart),
opens the page in Chromium with the shipped model (Evaluate: the validation split), and
times from the navigation to the end of the script run (with `--home-first`, after the
Home page was open for that many seconds). The servers share a new temporary
cache folder in which the decoded folders and folder checks of the usual cache are linked:
the images are not decoded or checked again, and nothing in the usual cache changes.
With `--space`, each Evaluate visit then turns on its feature space and times that too.
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


def visit(browser, server: dict, name: str, home_first: float = 0, space: bool = False):
    """Returns the seconds to the page, its first metric, and the seconds to the feature
    space after a click on its toggle (None without `space`)."""
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
        space_seconds = None
        if space:
            start = time.perf_counter()
            page.get_by_text("Show where the model places each image").click()
            page.get_by_text("Select dots").wait_for(timeout=600_000)
            wait_idle(page, timeout=600_000)
            space_seconds = time.perf_counter() - start
        page.close()
    return seconds, accuracy, space_seconds


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
    p.add_argument("--space", action="store_true", help="then time Evaluate's feature space")
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
            seconds, metric, space = visit(browser, server, args.page, args.home_first, args.space)
            kind = "first visit" if i == 0 else f"after restart {i}"
            then = "" if space is None else f"   feature space {space:5.1f} s"
            print(f"{kind:<16} {seconds:6.1f} s   first metric shown {metric}{then}", flush=True)
        browser.close()
    print(f"cpu {os.cpu_count()}")


if __name__ == "__main__":
    main()
