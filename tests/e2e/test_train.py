"""Training from the browser: live progress, Stop within seconds, and a completed run."""

import os
import re
import shutil
import subprocess
import sys
import time

from tests.e2e.conftest import ROOT, open_page, shot, wait_idle


def _set_number(page, label, value):
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def _start(page, epochs, batch):
    _set_number(page, "Epochs", epochs)
    _set_number(page, "Batch size", batch)
    page.get_by_role("button", name="Start training").click()
    # The "Started" notice goes with the next full rerun, which a short run can cause.
    page.get_by_text(re.compile(r"^Started \S+\.|^(starting|running|completed)$")).first.wait_for()


def _badge(page, state, timeout=120_000):
    page.get_by_text(re.compile(rf"^{state}$")).first.wait_for(timeout=timeout)


def _states(e2e_data):
    from core import runs

    return {r["name"]: r["state"] for r in runs.list_runs(e2e_data["base"] / "runs")}


def _wait_states(e2e_data, predicate, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        states = _states(e2e_data)
        if predicate(states):
            return states
        time.sleep(0.5)
    raise AssertionError(f"runs never reached the expected states: {_states(e2e_data)}")


def _stop_times(run_dir, since, timeout=30):
    """Seconds from `since` to the stop request appearing and to the run's "stopped"."""
    from core import runs

    requested = None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        now = time.monotonic() - since
        if requested is None and runs.stop_requested(run_dir):
            requested = now
        if runs.read_status(run_dir).get("state") == "stopped":
            # A request seen by neither poll lasted under 10 ms: count it as now.
            return (now if requested is None else requested), now
        time.sleep(0.01)
    seen = "never asked" if requested is None else f"asked after {requested:.1f} s"
    raise AssertionError(f"the run did not stop within {timeout} s of the click ({seen})")


def _table_rows(page):
    """The runs table's cells, read from the grid's accessible table: `{run: [cells]}`."""
    table = page.get_by_test_id("stDataFrame").last.locator("table")
    cells = table.evaluate(
        "t => [...t.querySelectorAll('tr')].map(r => [...r.children].map(c => c.innerText))"
    )
    return {row[0]: row[1:] for row in cells[1:]}


def test_start_watch_stop_and_complete_runs_in_the_browser(server, page, e2e_data):
    before = _states(e2e_data)
    open_page(page, server, "train")
    # A long run: 400 epochs of batch 4 on 45 images, to be stopped while it trains (40
    # ended before the click on a quiet machine: about 0.6 s an epoch, 25 s of waits).
    _start(page, epochs=400, batch=4)
    progress = page.get_by_text(re.compile(r"epoch \d+/400 · batch \d+/\d+"))
    progress.first.wait_for(timeout=120_000)
    first = progress.first.inner_text()
    time.sleep(4.5)  # two polls of the status line (STATUS_EVERY in pages/train.py)
    assert progress.first.inner_text() != first, "the progress bar did not move"
    # The runs table follows the run: its row says running and counts the epochs done.
    (name,) = set(_states(e2e_data)) - set(before)
    end = time.time() + 30
    while True:
        row = _table_rows(page).get(name)
        if row and row[0] == "running" and int(row[3].split("/")[0]) > 0:
            break
        assert time.time() < end, f"the runs table did not follow the run: {row}"
        time.sleep(0.5)
    page.get_by_role("heading", name="Live view").scroll_into_view_if_needed()
    # Scoped to the page: Streamlit's own status widget has a "Stop" button of its own.
    main = page.get_by_test_id("stMainBlockContainer")
    # The curves as the epochs go, and the learning rate planned and where the run is.
    main.get_by_text("train, recent batches").first.wait_for(timeout=10_000)
    main.get_by_text("at each epoch's end").first.wait_for(timeout=10_000)
    shot(page, "train-live")
    asked = time.monotonic()
    main.get_by_role("button", name="Stop training", exact=True).click()
    requested, stopped_at = _stop_times(e2e_data["base"] / "runs" / name, asked)
    _badge(page, "stopped", timeout=30_000)
    shown = time.monotonic() - asked
    stages = (
        f"the page asked after {requested:.1f} s, the run stopped after {stopped_at:.1f} s, "
        f"the page showed it after {shown:.1f} s"
    )
    # The child's part: the end of its batch, two saves of a small model (0.3 s alone here).
    assert stopped_at - requested < 8, stages
    # The click and the status line's poll on both sides (2-5 s here; up to 12 s seen in
    # CI beside another test worker on 2 cores).
    assert shown < 20, stages
    wait_idle(page)
    main.get_by_text(re.compile(r"^Resuming trains the \d+ epochs left: about ")).wait_for()
    shot(page, "train-stopped")

    stopped = _states(e2e_data)
    assert sorted(v for k, v in stopped.items() if k not in before) == ["stopped"]

    # A short run to the end, after the stopped one.
    _start(page, epochs=1, batch=16)
    done = _wait_states(
        e2e_data,
        lambda s: (
            len(s) == len(stopped) + 1
            and all(v == "completed" for k, v in s.items() if k not in stopped)
        ),
    )
    assert len(done) == len(before) + 2
    _badge(page, "completed")
    wait_idle(page)
    shot(page, "train-completed")
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_learning_rate_test_fills_in_its_suggestion(server, page, e2e_data):
    from core import jobs, lrfind
    from core.fileio import read_json

    open_page(page, server, "train")
    _set_number(page, "Batch size", 4)
    page.get_by_role("button", name="Find a learning rate").click()
    use = page.get_by_role("button", name=re.compile(r"^Use \S+ as the learning rate$"))
    use.wait_for(timeout=120_000)
    wait_idle(page)
    test = jobs.latest_lrfind(e2e_data["base"] / "runs")
    result = read_json(f"{test['path']}/{lrfind.RESULT_FILE}")
    assert test["state"] == "completed" and len(result["lr"]) >= 2
    page.get_by_text(lrfind.describe(result)[:60]).wait_for()
    shot(page, "train-lr-test")
    use.click()
    wait_idle(page)
    field = page.get_by_label("Learning rate", exact=True)
    # As the button said. Under load the rerun that fills it can start after wait_idle looked
    # (seen once in CI with a dashboard beside it): the field is read until it does, 30 s.
    said, deadline = float(f"{result['suggested']:.2g}"), time.monotonic() + 30
    while float(field.input_value()) != said and time.monotonic() < deadline:
        time.sleep(0.5)
    assert float(field.input_value()) == said
    # A rate typed in is shown whole (a fixed count of decimals showed 0.00012 for it).
    field.fill("0.000123")
    field.press("Tab")
    wait_idle(page)
    assert field.input_value() == "0.000123"
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_run_started_on_the_command_line_shows_without_a_click(server, page, e2e_data):
    open_page(page, server, "train")
    before = _states(e2e_data)
    # The page is idle (nothing trains); the CLI starts a run in the same runs folder.
    env = {**os.environ, **e2e_data["env"], "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = ["--data", str(e2e_data["folder"]), "--epochs", "1", "--batch-size", "16"]
    cli = subprocess.run(
        [sys.executable, "-m", "core.train", *args, "--name", "elsewhere", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    (name,) = set(_states(e2e_data)) - set(before)
    try:
        # Without a click: the page looks at the runs folder every 5 s (WATCH_EVERY).
        end = time.time() + 30
        while (row := _table_rows(page).get(name)) is None or row[0] != "completed":
            assert time.time() < end, f"the runs table never showed {name} completed: {row}"
            time.sleep(0.5)
        page.get_by_text(name, exact=True).first.wait_for(timeout=10_000)  # the live view's
        shutil.rmtree(e2e_data["base"] / "runs" / name)
        end = time.time() + 30
        while name in _table_rows(page):
            assert time.time() < end, f"the runs table still shows the deleted {name}"
            time.sleep(0.5)
    finally:
        shutil.rmtree(e2e_data["base"] / "runs" / name, ignore_errors=True)
    assert page.locator('[data-testid="stException"]').count() == 0
