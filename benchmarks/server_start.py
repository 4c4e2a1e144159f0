"""How fast the dashboard comes up, with and without Streamlit's file watcher.

    python benchmarks/server_start.py [--pairs 3]

Starts `streamlit run app.py` on a free port, opens its home page in Chromium and times
the process start to the health endpoint and from there to the page's heading; then, after
`--settle` seconds, counts the server's inotify watches and reads its CPU time (Linux
/proc). The two variants alternate, `--pairs` times: the repository's setting
(`.streamlit/config.toml`, no watcher) and Streamlit's default watcher
(`--server.fileWatcherType auto`).
"""

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS, inotify_watches  # noqa: E402

VARIANTS = {"config (no watcher)": [], "watcher on": ["--server.fileWatcherType", "auto"]}


def cpu_seconds(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick  # utime, stime


def measure(browser, options: list[str], settle: float) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true"]
    args += ["--server.port", str(port), "--browser.gatherUsageStats", "false", *options]
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        healthy = time.perf_counter()
        page = browser.new_page()
        page.goto(url)
        page.locator("h1").first.wait_for(timeout=120_000)
        shown = time.perf_counter()
        time.sleep(settle)
        user, system = cpu_seconds(proc.pid)
        watches = inotify_watches(proc.pid)
        page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return (
        f"health {healthy - start:.1f} s, first page {shown - healthy:.1f} s, "
        f"{watches:,} inotify watches, CPU {user:.1f} s user + {system:.1f} s system"
    )


def main():
    from playwright.sync_api import sync_playwright

    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--settle", type=float, default=10.0, help="seconds after the page shows")
    args = p.parse_args()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        for _ in range(args.pairs):
            for name, options in VARIANTS.items():
                print(f"{name}: {measure(browser, options, args.settle)}", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
