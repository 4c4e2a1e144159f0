"""The int8 copy built in a child process: the real `python -m core.quantize`."""

import json
import os
import signal
import time
from pathlib import Path

from core import builds, jobs, quantize


def _wait_for_line(model, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while not builds.status(model)["lines"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _job(model) -> dict:
    return json.loads((model.parent / builds.JOB_FILE).read_text())


def test_a_build_runs_once_in_its_own_process_and_writes_a_checked_copy(
    trained_run, image_folder, monkeypatch
):
    # Paths relative to the caller's folder, as a dashboard started elsewhere passes them.
    monkeypatch.chdir(image_folder.parent)
    model = Path(os.path.relpath(trained_run / "model.keras"))
    assert builds.status(model) is None
    assert builds.launch(model, image_folder.name)["state"] == "building"
    pid = _job(model)["pid"]
    assert pid != os.getpid()
    assert builds.launch(model, image_folder.name)["state"] == "building"
    assert _job(model)["pid"] == pid  # a second click (another session) starts no other
    done = builds.wait(model, timeout=120)
    assert done["state"] == "done", done
    record = quantize.read_record(model)
    assert record is not None and record["check_split"] == "val"
    assert record["int8_sha256"]
    assert done["lines"][0] == (
        f"Loading {image_folder} for the int8 copy of {trained_run / 'model.keras'}"
    )
    assert any("same answer on" in line for line in done["lines"])
    assert not list(trained_run.glob(builds.STAGING + "/"))


def test_a_stopped_build_ends_its_process_and_leaves_no_copy(trained_run, image_folder):
    model = trained_run / "model.keras"
    builds.launch(model, str(image_folder))
    _wait_for_line(model)
    (trained_run / ".int8.left").mkdir()  # as `core.quantize` stages its files
    builds.stop(model)
    assert not jobs.alive(_job(model))
    assert builds.status(model)["state"] == "stopped"
    assert quantize.read_record(model) is None
    assert not (trained_run / quantize.INT8_FILE).exists()
    assert not (trained_run / ".int8.left").exists()


def test_a_build_that_fails_says_why_in_the_error_it_printed(trained_run, tmp_path):
    model = trained_run / "model.keras"
    builds.launch(model, str(tmp_path / "no such folder"))
    failed = builds.wait(model, timeout=120)
    assert failed["state"] == "failed"
    assert "no such folder" in failed["message"] and "Traceback" not in failed["message"]
    assert quantize.read_record(model) is None
    os.utime(model)  # the model written anew (a resumed run): that failure is not about it
    assert builds.status(model) is None


def test_a_build_killed_from_outside_is_failed_with_a_sentence(trained_run, image_folder):
    model = trained_run / "model.keras"
    builds.launch(model, str(image_folder))
    _wait_for_line(model)
    os.killpg(_job(model)["pid"], signal.SIGKILL)
    killed = builds.wait(model, timeout=10)
    assert killed["state"] == "failed"
    assert killed["message"] == (
        "its process ended without finishing (stopped from outside, or out of memory); "
        f"see {trained_run / builds.LOG_FILE}."
    )


def test_a_killed_command_line_builds_folder_goes_with_the_next_build(
    trained_run, image_folder, tmp_path
):
    import shutil
    import subprocess
    import sys

    from core.runs import process_identity
    from tests.conftest import ROOT

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    args = [sys.executable, "-m", "core.quantize", str(run / "model.keras")]
    child = subprocess.Popen([*args, "--data", str(image_folder)], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not list(run.glob(".int8.*")) and time.monotonic() < deadline:
        time.sleep(0.02)
    child.kill()  # SIGKILL: no handler runs, its staging folder stays
    child.wait()
    [dead] = run.glob(".int8.*")
    me = process_identity()
    live = run / f".int8.{me['pid']}-{me['pid_start']}.other-build"  # a build still running
    live.mkdir()
    with quantize._staging(run) as staging:
        assert not dead.exists() and live.exists()
        assert staging.name.startswith(f".int8.{me['pid']}-{me['pid_start']}.")
    assert sorted(run.glob(".int8.*")) == [live]
