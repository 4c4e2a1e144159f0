"""Many users on one server: concurrent sessions, isolated state, memory that stays flat.

The figures each test measures are printed and written to test-artifacts/ as JSON;
docs/RELIABILITY.md quotes them.
"""

import json
import re
import time

import pytest
from PIL import Image, PngImagePlugin
from playwright.sync_api import expect

from benchmarks.load_sessions import (
    cpu_seconds,
    memory_mb,
    percentile,
    run_classify_sessions,
    server_pid,
    session_photos,
)
from tests.e2e.conftest import ARTIFACTS, choose, open_page, streamlit_server, wait_idle

SESSIONS = 10
PEAK_RSS_LIMIT_MB = 1500  # one shared model and TensorFlow; ~700 MiB measured with 10 users
TRAININGS = 10
GROWTH_LIMIT_MB = 50


def _record(name: str, figures: dict) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2))
    print(f"\n{name}: {json.dumps(figures)}")


def _e2e_model(e2e_data):
    from core.model import load_model
    from core.registry import available_models

    entry = next(m for m in available_models(e2e_data["base"] / "runs") if "e2e-trained" in m["id"])
    return load_model(entry["path"]), entry["card"]["class_names"]


@pytest.mark.load
def test_ten_sessions_at_once_each_see_exactly_their_own_prediction(e2e_data, tmp_path):
    from core.classify import classify_bytes

    photos = session_photos(tmp_path, SESSIONS)
    model, names = _e2e_model(e2e_data)
    expected = {p.name: classify_bytes(model, p.read_bytes(), names) for p in photos}
    # A server of its own: its peak memory is this test's and no earlier test's.
    with streamlit_server(e2e_data) as url:
        pid = server_pid(url)
        idle, cpu, started = memory_mb(pid), cpu_seconds(pid), time.monotonic()
        results = run_classify_sessions(url, photos, model="e2e-trained")
        wall, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
        peak = memory_mb(pid, "VmHWM")

    assert [r["name"] for r in results] == [p.name for p in photos]
    for r in results:
        assert r["others_seen"] == [], f"{r['name']} saw another session's file"
        assert r["exceptions"] == 0
        shown = re.fullmatch(rf"{re.escape(r['name'])} → (\w+) \(([\d.]+)%\)", r["prediction"])
        assert shown, r["prediction"]
        want = expected[r["name"]]
        assert shown[1] == want.label, f"{r['name']}: shown {shown[1]}, its own is {want.label}"
        assert float(shown[2]) == pytest.approx(100 * want.confidence, abs=0.11)
    latencies, opens = [r["latency_s"] for r in results], [r["open_s"] for r in results]
    _record(
        "sessions-concurrent-classify",
        {
            "sessions": SESSIONS,
            "open_p50_s": round(percentile(opens, 50), 2),
            "latency_p50_s": round(percentile(latencies, 50), 2),
            "latency_p95_s": round(percentile(latencies, 95), 2),
            "latency_max_s": round(max(latencies), 2),
            "wall_s": round(wall, 1),
            "server_cpu_s": round(cpu, 1),
            "server_rss_idle_mib": round(idle),
            "server_peak_rss_mib": round(peak),
        },
    )
    assert peak < PEAK_RSS_LIMIT_MB


def _nav(page, name):
    page.get_by_role("link", name=name, exact=True).click()
    wait_idle(page)


def _active_model(page) -> str:
    return page.get_by_role("combobox", name="Active model").input_value()


def test_two_sessions_never_see_each_others_uploads_results_or_form_state(
    server, browser, tmp_path
):
    from core.train import TrainConfig

    photo = tmp_path / "only-in-a.png"
    Image.new("RGB", (40, 40), (200, 30, 30)).save(photo)
    a = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    b = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    for page in (a, b):
        page.set_default_timeout(60_000)

    # A: a model, an upload and its answer, then a custom architecture with 7 epochs.
    open_page(a, server, "classify", model="e2e-trained")
    a.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
    a.get_by_text(re.compile(r"^only-in-a\.png → ")).wait_for()
    _nav(a, "Train")
    choose(a, "Architecture", "custom")
    # By role: for a moment after a rerun the page also holds a hidden stale copy of the box.
    # The custom form's own field is the sign that the form typed into is the new one.
    expect(a.get_by_role("textbox", name="Dense layer widths")).to_be_visible()
    update = a.get_by_role("button", name="Update the summary")
    epochs = a.get_by_role("spinbutton", name="Epochs", exact=True)
    epochs.fill("7")
    epochs.press("Tab")  # Enter would submit the form
    expect(epochs).to_have_value("7")
    update.click()
    wait_idle(a)
    expect(epochs).to_have_value("7")

    # B, a fresh visitor: nothing of A's.
    open_page(b, server, "classify", model=None)
    assert "only-in-a.png" not in b.locator("body").inner_text()
    b.get_by_text("Upload one or more images").wait_for()
    b.get_by_text(re.compile(r"^Model: Shipped default")).wait_for()
    assert _active_model(b).startswith("Shipped default")
    _nav(b, "Train")
    # Polled: under load the first frame after navigating can still be settling.
    expect(b.get_by_role("spinbutton", name="Epochs", exact=True)).to_have_value(
        str(TrainConfig().epochs)
    )
    assert b.get_by_role("textbox", name="Dense layer widths").count() == 0  # not custom
    choose(b, "Architecture", "vgg_bn")
    assert _active_model(b).startswith("Shipped default")

    # A again, after B's changes: A's choices are still A's.
    update.click()
    wait_idle(a)
    expect(epochs).to_have_value("7")
    assert "e2e-trained" in _active_model(a)
    _nav(a, "Classify")
    a.get_by_text(re.compile(r"^Model: \S*e2e-trained")).wait_for()
    for page in (a, b):
        assert page.locator('[data-testid="stException"]').count() == 0
        page.context.close()


def _train_once(page, runs_dir) -> str:
    """Clicks Start training and waits until the run completed and the page says so."""
    from core.runs import list_runs

    before = {r["name"] for r in list_runs(runs_dir)}
    page.get_by_role("button", name="Start training").click()
    deadline, new = time.monotonic() + 120, []
    while time.monotonic() < deadline:
        new = [r for r in list_runs(runs_dir) if r["name"] not in before]
        if new and new[0]["state"] not in (None, "created", "running"):
            break
        time.sleep(0.5)
    assert len(new) == 1 and new[0]["state"] == "completed", new
    name = new[0]["name"]
    badge = re.compile(rf"{re.escape(name)}\s*completed")
    page.locator('[data-testid="stMarkdownContainer"]', has_text=badge).first.wait_for(
        timeout=60_000
    )
    wait_idle(page)
    return name


@pytest.mark.load
def test_app_memory_stays_flat_over_ten_trainings_from_the_browser(e2e_data, browser, tmp_path):
    runs_dir = tmp_path / "runs"
    data = {**e2e_data, "env": {**e2e_data["env"], "CNN_RUNS_DIR": str(runs_dir)}}
    with streamlit_server(data) as url:
        pid = server_pid(url)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(60_000)
        open_page(page, url, "train", model=None)
        for label, value in (("Epochs", 1), ("Batch size", 16)):
            box = page.get_by_role("spinbutton", name=label, exact=True)
            box.fill(str(value))
            box.press("Tab")
        # The first training brings TensorFlow and Keras into the server; growth counts after.
        _train_once(page, runs_dir)
        before = memory_mb(pid)
        started = time.monotonic()
        series = []
        for _ in range(TRAININGS):
            _train_once(page, runs_dir)
            series.append(round(memory_mb(pid), 1))
        seconds = time.monotonic() - started
        assert page.locator('[data-testid="stException"]').count() == 0
        page.context.close()

    growth = series[-1] - before
    _record(
        "sessions-memory-trainings",
        {
            "trainings": TRAININGS,
            "server_rss_before_mib": round(before, 1),
            "server_rss_after_each_mib": series,
            "growth_mib": round(growth, 1),
            "seconds": round(seconds, 1),
        },
    )
    assert growth < GROWTH_LIMIT_MB


SWAP_ROUNDS = 6


def _same_pixels_new_bytes(tmp_path, rounds):
    # Identical pixels (identical predictions), bytes that differ: no cached result
    # answers for the model, so every round really runs it.
    pixels = Image.new("RGB", (40, 40), (120, 200, 40))
    paths = []
    for i in range(rounds):
        info = PngImagePlugin.PngInfo()
        info.add_text("copy", str(i))
        pixels.save(tmp_path / f"same-{i}.png", pnginfo=info)
        paths.append(tmp_path / f"same-{i}.png")
    return paths


def _answers(page) -> dict[str, str]:
    shown = page.get_by_text(re.compile(r"^same-\d+\.png → ")).all_inner_texts()
    return dict(t.split(" → ", 1) for t in shown)


def test_a_model_switch_in_one_session_never_reaches_another_sessions_results(
    server, browser, e2e_data, tmp_path
):
    from core.classify import classify_bytes
    from core.quantize import default_answerer
    from core.registry import available_models, temperature

    copies = _same_pixels_new_bytes(tmp_path, SWAP_ROUNDS)
    models = available_models(e2e_data["base"] / "runs")
    default, trained = models[0], next(m for m in models if "e2e-trained" in m["id"])
    want = {}
    for who, entry in (("a", default), ("b", trained)):
        pred = classify_bytes(
            default_answerer(entry["path"]),
            copies[0].read_bytes(),
            entry["card"]["class_names"],
            temperature=temperature(entry),
        )
        want[who] = f"{pred.label} ({pred.confidence:.1%})"
    assert want["a"] != want["b"], "the two models must answer differently for this test"

    a = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    b = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    for page in (a, b):
        page.set_default_timeout(60_000)
    open_page(a, server, "classify", model=None)
    open_page(b, server, "classify", model=None)
    uploads = {p: p.locator('[data-testid="stFileUploaderDropzoneInput"]') for p in (a, b)}
    seen = []
    for i, path in enumerate(copies):
        uploads[a].set_input_files(str(path))  # A's script runs while B acts below
        if i == 1:  # B switches: the server loads the trained model during A's run
            b.get_by_role("combobox", name="Active model").click()
            b.get_by_role("option", name=re.compile("e2e-trained")).first.click()
        if i == 3:  # B classifies with its model while A classifies with the default
            wait_idle(b)
            uploads[b].set_input_files(str(copies[0]))
        a.get_by_text(re.compile(rf"^same-{i}\.png → ")).wait_for()
        wait_idle(a)
        seen.append(_answers(a))

    b.get_by_text(re.compile(r"^same-0\.png → ")).wait_for()
    wait_idle(b)
    assert _answers(b) == {"same-0.png": want["b"]}
    b.get_by_text(re.compile(r"^Model: \S*e2e-trained")).wait_for()
    assert "e2e-trained" in _active_model(b)
    # A: every answer of every round is the default model's, and the sidebar never moved.
    for i, answers in enumerate(seen):
        assert answers == {f"same-{k}.png": want["a"] for k in range(i + 1)}, (i, answers)
    a.get_by_text(re.compile(r"^Model: Shipped default")).wait_for()
    assert _active_model(a).startswith("Shipped default")
    for page in (a, b):
        assert page.locator('[data-testid="stException"]').count() == 0
        page.context.close()
