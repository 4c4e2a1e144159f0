"""A real `streamlit run app.py` server and a real Chromium, driven by Playwright.

Screenshots of every page land in test-artifacts/ (kept by CI as artifacts).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inotify_watches(pid: int) -> int:
    """How many inotify watches the process holds (Linux: /proc/PID/fdinfo)."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                total += sum(line.startswith("inotify ") for line in info.splitlines())
        except OSError:
            continue  # closed meanwhile
    return total


def _wait_http(url: str, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the server at {url} did not come up")


@pytest.fixture(scope="session")
def e2e_data(tmp_path_factory):
    """A generated 3-class image folder, a runs folder with one trained run, a cache."""
    from core.data import load_dataset
    from core.train import TrainConfig, train
    from tests.conftest import write_image_folder

    base = tmp_path_factory.mktemp("e2e")
    folder = base / "images"
    write_image_folder(folder, per_class=20, size=32)
    env = {
        "CNN_RUNS_DIR": str(base / "runs"),
        "CNN_CACHE_DIR": str(base / "cache"),
        "CNN_DATA": str(folder),
        "KERAS_HOME": str(base / "keras"),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        config = TrainConfig(
            data=str(folder), epochs=2, batch_size=16, val_fraction=0.25, name="e2e-trained"
        )
        train(config, load_dataset(folder, val_fraction=0.25))
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return {"folder": folder, "env": env, "base": base}


@contextlib.contextmanager
def streamlit_server(e2e_data):
    """Runs `streamlit run app.py` on a free loopback port; yields its URL."""
    port = _free_port()
    env = {**os.environ, **e2e_data["env"], "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    url = f"http://127.0.0.1:{port}"
    with open(e2e_data["base"] / f"server-{port}.log", "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_http(url + "/_stcore/health")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)


@pytest.fixture(scope="session")
def server(e2e_data):
    with streamlit_server(e2e_data) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run 'apt-get install -y chromium' (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield b
        b.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed e2e test, keeps what the browser showed and the server's log.

    A failure that does not repeat alone (a timing under load) is then still readable:
    test-artifacts/FAILED-<test>.png, .txt (the page's text) and the server logs.
    """
    report = yield
    if report.when == "call" and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page, data = item.funcargs.get("page"), item.funcargs.get("e2e_data")
        if page is not None:
            with contextlib.suppress(Exception):  # the page may be gone with the failure
                shot(page, f"FAILED-{item.name}")
                text = page.locator("body").inner_text(timeout=5_000)
                (ARTIFACTS / f"FAILED-{item.name}.txt").write_text(text)
        for log in data["base"].glob("server-*.log") if data else []:
            shutil.copyfile(log, ARTIFACTS / f"FAILED-{item.name}-{log.name}")
    return report


@pytest.fixture(autouse=True)
def _patient_expect():
    """`expect` polls for 60 s, as the pages' own waits do, not Playwright's default 5 s.

    On a loaded 2-core machine a page reached through the sidebar took longer than 5 s to
    show its first widget (a Train page with no Epochs box yet failed a CI run).
    """
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def wait_idle(page, timeout=90_000):
    """Waits until the script run has finished and every element has rendered."""
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            if (!app) return false;
            const state = app.getAttribute('data-test-script-state');
            return state === 'notRunning'
                && !document.querySelector('[data-testid="stSkeleton"]');
        }""",
        timeout=timeout,
    )
    page.wait_for_timeout(300)  # let plotly and images paint


def scroll_to_heading(page, name: str, tries: int = 3) -> None:
    """Scrolls a page's heading into view once the page has settled. A rerun that starts just
    after the page drew leaves the heading found first detached, or shown twice (the old one
    fading) for a moment (seen in CI on the Evaluate page): the last one, found again."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(tries):
        wait_idle(page)
        try:
            page.get_by_role("heading", name=name).last.scroll_into_view_if_needed(timeout=15_000)
            return
        except PlaywrightError:
            if attempt == tries - 1:
                raise


def choose(page, label: str, option: str, tries: int = 3) -> None:
    """Picks `option` in the selectbox labelled `label`. After a click in a plotly chart, or
    when the click first scrolls the box into view past a chart, a click only focuses the
    box; the arrow key opens its list either way. A rerun that
    redraws the page while the list is open closes it (seen once on a busy machine: the
    option detached under the click), so the list is opened again."""
    from playwright.sync_api import expect

    box = page.get_by_role("combobox", name=label)
    for attempt in range(tries):
        wait_idle(page)
        box.click()
        page.keyboard.press("ArrowDown")
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=15_000)
            break
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
    wait_idle(page)
    expect(box).to_have_value(option)


def choose_model(page, label_part: str) -> None:
    """Picks the active model in the sidebar by part of its label, and waits for the rerun
    the choice starts to end: `wait_idle` alone can look before it begins, and a test then
    finds the page's elements twice, the last model's fading (seen in CI once the shipped
    model drew a whole Evaluate page for the e2e folder, some of its classes)."""
    box = (
        page.get_by_test_id("stSidebar")
        .get_by_test_id("stSelectbox")
        .filter(has_text="Active model")
    )
    if label_part in box.inner_text():
        return  # the session kept the choice: nothing to rerun
    page.get_by_role("combobox", name="Active model").click()
    page.get_by_role("option", name=re.compile(re.escape(label_part))).first.click()
    with contextlib.suppress(PlaywrightTimeout):  # a rerun that ended before we looked
        page.wait_for_function(
            """() => document.querySelector('[data-testid="stApp"]')
                ?.getAttribute('data-test-script-state') === 'running'""",
            timeout=5_000,
        )
    wait_idle(page)


def open_page(page, server, path, model="e2e-trained"):
    """Opens a page with the e2e model active (the session keeps the choice)."""
    page.goto(f"{server}/{path}")
    wait_idle(page)
    if model:
        choose_model(page, model)


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
