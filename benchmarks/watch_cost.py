"""What watching a run costs the run: its training speed with the Train page open and closed.

    python benchmarks/watch_cost.py --data ../shared/datasets/cifar10-jpeg [--pairs 4]

Starts one long run of `--preset` from the command line (as the dashboard's Start does) and
`streamlit run app.py` on a free 127.0.0.1 port, both on a temporary runs folder. Then
alternates windows of `--window` seconds: the Train page open in Chromium (its live view
redraws every second), and no page open. A window measures the batches trained from the
run's status.json (written twice a second) after `--settle` seconds; a window in which an
epoch ended (its validation pass, its checkpoint) is measured again. Beside each window,
the CPU seconds per second of the server and of Chromium's processes (Linux /proc). The run
is stopped and the folder removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS, streamlit_server  # noqa: E402


def cpu_of(match) -> float:
    """CPU seconds (user + system) of the processes whose command line `match` accepts."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if match((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()):
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError):
            continue  # ended meanwhile
    return total


def chromium(cmd: str) -> bool:
    """Whether a command line (as `cpu_of` passes it) is one of Chromium's processes."""
    return "chrom" in cmd.split(" ")[0]


def progress(run_dir: Path) -> tuple[int, int] | None:
    """(epoch, batches trained so far) from status.json, or None before training."""
    from core import runs

    status = runs.read_status(run_dir)
    if status.get("state") != "running" or not status.get("steps"):
        return None
    epoch, batch, steps = status["epoch"], status.get("batch") or 0, status["steps"]
    return epoch, (epoch - 1) * steps + batch


def window(run_dir: Path, seconds: float, server_port: str) -> dict | None:
    """Batches per second over `seconds`, with the server's and Chromium's CPU per second;
    None if an epoch ended inside it."""
    server = lambda cmd: "streamlit" in cmd and f"--server.port {server_port}" in cmd  # noqa: E731
    start = progress(run_dir)
    t0, s0, c0 = time.monotonic(), cpu_of(server), cpu_of(chromium)
    time.sleep(seconds)
    end = progress(run_dir)
    t1, s1, c1 = time.monotonic(), cpu_of(server), cpu_of(chromium)
    if not start or not end or end[0] != start[0]:
        return None
    return {
        "batches/s": (end[1] - start[1]) / (t1 - t0),
        "server": (s1 - s0) / (t1 - t0),
        "chromium": (c1 - c0) / (t1 - t0),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--preset", default="quick")
    p.add_argument("--batch-size", type=int, help="the preset's own if not given")
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--window", type=float, default=30)
    p.add_argument("--settle", type=float, default=8, help="seconds before each window")
    p.add_argument("--cache", help="CNN_CACHE_DIR (decoded images); a temporary one if not")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    from core import runs

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {
            "CNN_RUNS_DIR": str(base / "runs"),
            "CNN_CACHE_DIR": args.cache or str(base / "cache"),
            "CNN_DATA": args.data,
        }
        os.environ.update(env)
        cmd = [sys.executable, "-m", "core.train", "--preset", args.preset, "--data", args.data]
        cmd += ["--epochs", "100", "--runs-dir", env["CNN_RUNS_DIR"], "--quiet"]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        with open(base / "train.log", "w") as log:
            child = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            while not (dirs := list((base / "runs").glob("*/status.json"))) or not progress(
                run_dir := dirs[0].parent
            ):
                if child.poll() is not None:
                    sys.exit(f"the run ended: {(base / 'train.log').read_text()[-2000:]}")
                time.sleep(1)
            print(f"training {run_dir.name}; server and browser starting", flush=True)
            results: dict[str, list[dict]] = {"page open": [], "no page": []}
            with (
                streamlit_server({"env": env, "base": base}) as url,
                sync_playwright() as pw,
            ):
                port = url.rsplit(":", 1)[1]
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                for i in range(2 * args.pairs):
                    kind = ("page open", "no page")[i % 2]
                    while True:
                        page = None
                        if kind == "page open":
                            page = browser.new_page(viewport={"width": 1400, "height": 1000})
                            page.goto(f"{url}/train")
                            page.get_by_text("Live view").first.wait_for(timeout=120_000)
                        time.sleep(args.settle)
                        got = window(run_dir, args.window, port)
                        if page:
                            page.close()
                        if got:
                            break
                        print(f"  {kind}: an epoch ended inside the window; again", flush=True)
                    results[kind].append(got)
                    print(
                        f"{kind:9}  {got['batches/s']:.3f} batches/s  server "
                        f"{got['server']:.3f} s/s  chromium {got['chromium']:.3f} s/s",
                        flush=True,
                    )
                browser.close()
        finally:
            for status in (base / "runs").glob("*/status.json"):
                runs.request_stop(status.parent)
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()
    print("\n| | batches/s (median) | server CPU s/s | Chromium CPU s/s |")
    print("|---|---|---|---|")
    for kind, rows in results.items():
        cells = [statistics.median(r[k] for r in rows) for k in ("batches/s", "server", "chromium")]
        print(f"| {kind} | {cells[0]:.3f} | {cells[1]:.3f} | {cells[2]:.3f} |")
    open_, closed = (statistics.median(r["batches/s"] for r in results[k]) for k in results)
    print(f"\ntraining speed with the page open: {open_ / closed:.3f}x of no page")


if __name__ == "__main__":
    main()
