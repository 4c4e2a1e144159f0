"""The app keeps serving through a fault: a training that fills a real (small) disk.

The figures are printed and written to test-artifacts/faults-full-disk.json;
docs/RELIABILITY.md quotes them.
"""

import json
import re
import time

import pytest
from PIL import Image

from tests.e2e.conftest import ARTIFACTS, open_page, shot, streamlit_server, wait_idle
from tests.mounts import needs_root, small_disk

FULL_SENTENCE = "The disk is full: training stopped because a checkpoint could not be written."


def _set_number(page, label, value):
    box = page.get_by_role("spinbutton", name=label, exact=True)
    box.fill(str(value))
    box.press("Tab")


def _nav(page, name):
    page.get_by_role("link", name=name, exact=True).click()
    wait_idle(page)


@needs_root
def test_a_training_that_fills_the_disk_fails_with_a_sentence_and_the_app_keeps_serving(
    e2e_data, browser, tmp_path
):
    from core.classify import classify_bytes
    from core.quantize import default_answerer
    from core.registry import available_models, temperature
    from core.runs import list_runs

    photo = tmp_path / "after-the-fault.png"
    Image.new("RGB", (40, 40), (30, 60, 220)).save(photo)
    default = available_models(tmp_path / "no-runs")[0]
    want = classify_bytes(
        default_answerer(default["path"]),
        photo.read_bytes(),
        default["card"]["class_names"],
        temperature=temperature(default),
    )
    # 3 MiB: the seed preset's first 2 MB checkpoint fits, the second one cannot.
    with small_disk(tmp_path / "disk", "3m") as disk:
        runs_dir = disk / "runs"
        env = {
            **e2e_data["env"],
            "CNN_RUNS_DIR": str(runs_dir),
            "CNN_STATUS_FALLBACK_DIR": str(tmp_path / "status-fallback"),
        }
        with streamlit_server({**e2e_data, "env": env}) as url:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(60_000)
            open_page(page, url, "train", model=None)
            _set_number(page, "Epochs", 3)
            _set_number(page, "Batch size", 16)
            clicked = time.monotonic()
            page.get_by_role("button", name="Start training").click()
            sentence = page.get_by_text(re.compile(re.escape(FULL_SENTENCE))).first
            sentence.wait_for(timeout=120_000)
            shown = time.monotonic() - clicked
            sentence.scroll_into_view_if_needed()
            shot(page, "faults-full-disk-train")
            (run,) = list_runs(runs_dir)
            assert (run["state"], run["message"]) == ("failed", FULL_SENTENCE)
            assert not list(runs_dir.rglob(".*.tmp*"))

            # The same server, the same session: Classify answers, another page loads.
            _nav(page, "Classify")
            page.get_by_text(re.compile(r"^Model: Shipped default")).wait_for()
            served = time.monotonic()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
            answer = page.get_by_text(re.compile(r"^after-the-fault\.png → "))
            answer.wait_for()
            classified = time.monotonic() - served
            text = answer.inner_text()
            assert text.startswith(f"after-the-fault.png → {want.label} (")
            shown_pct = float(re.search(r"\(([\d.]+)%\)", text)[1])
            assert shown_pct == pytest.approx(100 * want.confidence, abs=0.051)
            _nav(page, "Dataset")
            page.get_by_role("heading", name="Dataset").first.wait_for()
            assert page.locator('[data-testid="stException"]').count() == 0
            shot(page, "faults-full-disk-dataset")
            page.context.close()

    figures = {
        "tmpfs": "3 MiB",
        "click_to_failure_sentence_s": round(shown, 1),
        "upload_to_prediction_after_fault_s": round(classified, 1),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "faults-full-disk.json").write_text(json.dumps(figures, indent=2))
    print(f"\nfaults-full-disk: {json.dumps(figures)}")
