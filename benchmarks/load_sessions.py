"""Many users at once: N browser sessions each classify their own upload on one server.

    python benchmarks/load_sessions.py --sessions 10

Starts `streamlit run app.py` itself on a free 127.0.0.1 port, with generated data and an
empty runs folder in a temporary directory, so the shipped default model is active as for
any new visitor. A first visitor opens the Classify page alone (it pays for importing
TensorFlow and loading the model; `--cold` skips it). Then N Chromium contexts (N users)
open the Classify page at once; when all of them show it, each uploads its own generated
PNG at the same moment. Latency is the time from
that upload to the session's own prediction on its screen. The server's peak memory is
VmHWM of its process (/proc/<pid>/status). Every wait has a limit and the server is
stopped at the end, so the script ends by itself; nothing leaves 127.0.0.1.

tests/e2e/test_sessions.py drives the same sessions through `run_classify_sessions`.
"""

from __future__ import annotations

import argparse
import asyncio
import colorsys
import concurrent.futures
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_FLAGS, streamlit_server  # noqa: E402

# The same test as tests/e2e/conftest.py's `wait_idle`, for the async API.
_IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
        && !document.querySelector('[data-testid="stSkeleton"]');
}"""
_UPLOAD = '[data-testid="stFileUploaderDropzoneInput"]'


def session_photos(folder: Path, n: int) -> list[Path]:
    """Writes `session-00.png` ... one solid colour each, spread around the hue circle."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rgb = colorsys.hsv_to_rgb(i / n, 0.85, 0.9)
        path = folder / f"session-{i:02d}.png"
        Image.new("RGB", (64, 48), tuple(round(255 * c) for c in rgb)).save(path)
        paths.append(path)
    return paths


def server_pid(url: str) -> int:
    """The pid of the `streamlit run` child of this process that listens on `url`'s port."""
    port = str(urlparse(url).port)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue  # the process ended while we looked
        if b"streamlit" in args and port.encode() in args and int(ppid) == os.getpid():
            return int(entry.name)
    raise RuntimeError(f"no streamlit server child of this process listens on port {port}")


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a process in MiB: "VmRSS" (now) or "VmHWM" (peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def _wait_idle(page, timeout_ms: float) -> None:
    await page.wait_for_function(_IDLE, timeout=timeout_ms)
    await page.wait_for_timeout(300)


async def _open_classify(context, url, model, timeout_ms):
    page = await context.new_page()
    page.set_default_timeout(timeout_ms)
    await page.goto(f"{url}/classify")
    await _wait_idle(page, timeout_ms)
    if model:
        await page.get_by_role("combobox", name="Active model").click()
        await page.get_by_role("option", name=re.compile(re.escape(model))).first.click()
        await _wait_idle(page, timeout_ms)
    return page


async def _session(browser, url, photo, names, model, ready, timeout_ms) -> dict:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    start = time.perf_counter()
    try:
        page = await _open_classify(context, url, model, timeout_ms)
        opened = time.perf_counter() - start
    except BaseException:
        await ready.abort()  # the others would wait for this session for ever
        await context.close()
        raise
    try:
        await ready.wait()  # every session uploads at the same moment
        start = time.perf_counter()
        await page.locator(_UPLOAD).set_input_files(str(photo))
        answer = page.get_by_text(re.compile(rf"^{re.escape(photo.name)} → "))
        await answer.first.wait_for()
        latency = time.perf_counter() - start
        await _wait_idle(page, timeout_ms)
        text = await page.locator("body").inner_text()
        return {
            "name": photo.name,
            "open_s": opened,
            "latency_s": latency,
            "prediction": (await answer.first.inner_text()).strip(),
            "others_seen": [n for n in names if n != photo.name and n in text],
            "exceptions": await page.locator('[data-testid="stException"]').count(),
        }
    finally:
        await context.close()


async def classify_sessions(url, photos, model=None, timeout_s=180.0) -> list[dict]:
    """Runs one browser session per photo against `url`, all uploading at once.

    Args:
        url: the server, e.g. "http://127.0.0.1:8501".
        photos: one image file per session; the names must differ.
        model: part of the "Active model" label to choose first; None keeps the default.
        timeout_s: limit for each wait and for the whole run.

    Returns:
        One dict per session, in `photos` order: "name", "open_s" (until the Classify
        page showed, with the model chosen), "latency_s" (upload -> own
        prediction visible), "prediction" (the line shown, e.g. "session-00.png → cat
        (97.1%)"), "others_seen" (other sessions' file names on this page) and
        "exceptions" (tracebacks shown).
    """
    from playwright.async_api import async_playwright

    names = [p.name for p in photos]
    ready = asyncio.Barrier(len(photos))
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            jobs = [
                _session(browser, url, photo, names, model, ready, timeout_s * 1000)
                for photo in photos
            ]
            return await asyncio.wait_for(asyncio.gather(*jobs), timeout_s * 3)
        finally:
            await browser.close()


def run_classify_sessions(url, photos, model=None, timeout_s=180.0) -> list[dict]:
    """`classify_sessions` from synchronous code, on a thread of its own.

    Playwright's sync API (the e2e fixtures) keeps an event loop on the calling thread,
    so the async sessions get a thread and a loop of their own.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        coro = classify_sessions(url, photos, model, timeout_s)
        return pool.submit(asyncio.run, coro).result()


def main() -> int:
    from tests.conftest import write_image_folder

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=10, help="concurrent browser sessions")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds for each wait")
    p.add_argument(
        "--cold",
        action="store_true",
        help="no first visitor: the N sessions also wait for TensorFlow and the model to load",
    )
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="load-sessions-") as tmp:
        base = Path(tmp)
        write_image_folder(base / "images", per_class=20, size=32)
        env = {
            "CNN_RUNS_DIR": str(base / "runs"),
            "CNN_CACHE_DIR": str(base / "cache"),
            "CNN_DATA": str(base / "images"),
            "KERAS_HOME": str(base / "keras"),
        }
        photos = session_photos(base / "uploads", args.sessions + 1)
        first, photos = photos[-1], photos[:-1]
        with streamlit_server({"env": env, "base": base}) as url:
            pid = server_pid(url)
            idle = memory_mb(pid)
            if not args.cold:
                [alone] = run_classify_sessions(url, [first], timeout_s=args.timeout)
                print(
                    f"first visitor alone: opened {alone['open_s']:.2f} s, "
                    f"answered {alone['latency_s']:.2f} s\n"
                )
            started, cpu = time.perf_counter(), cpu_seconds(pid)
            results = run_classify_sessions(url, photos, timeout_s=args.timeout)
            wall, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
            peak, after = memory_mb(pid, "VmHWM"), memory_mb(pid)

    latencies, opens = [r["latency_s"] for r in results], [r["open_s"] for r in results]
    for r in results:
        print(f"opened {r['open_s']:6.2f} s, answered {r['latency_s']:6.2f} s: {r['prediction']}")
    failed = [r["name"] for r in results if r["others_seen"] or r["exceptions"]]
    server = "a cold server" if args.cold else "one server, after a first visitor"
    print(
        f"\n{len(results)} sessions on {server}, "
        f"shipped default model\n"
        f"latency upload -> own prediction: p50 {percentile(latencies, 50):.2f} s, "
        f"p95 {percentile(latencies, 95):.2f} s, max {max(latencies):.2f} s\n"
        f"opening the Classify page: p50 {percentile(opens, 50):.2f} s, "
        f"p95 {percentile(opens, 95):.2f} s\n"
        f"whole run (open page, upload, render) {wall:.1f} s, of which the server used "
        f"{cpu:.1f} CPU s (the Chromium pages share the same cores)\n"
        f"server RSS: {idle:.0f} MiB idle before, peak {peak:.0f} MiB, {after:.0f} MiB after\n"
        f"sessions that saw another's file or a traceback: {failed or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
