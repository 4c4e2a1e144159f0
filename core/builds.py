"""A model's int8 copy built in a process of its own, which the pages poll.

    launch("runs/20261202-1451/model.keras", "cifar10")
    status("runs/20261202-1451/model.keras")  # {"state": "building", "lines": [...], ...}

The child is `python -m core.quantize MODEL --data DATA` in a session of its own, so
leaving the page, closing the tab or another session's rerun does not end it. Its output
goes to `int8.log` beside the model and `int8.job.json` records its process. One build
per model at a time: a launch while one runs (from another session, say) starts nothing.
The copy's record is written last and names the copy's SHA-256 (`core.quantize`), so a
build stopped or killed half-way leaves no copy that is used without its check.

Importing this module loads no TensorFlow: the pages call `status` every second.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from core import jobs
from core.data import absolute_spec
from core.fileio import atomic_write_json, read_json

LOG_FILE, JOB_FILE, LOCK_FILE = "int8.log", "int8.job.json", ".int8.lock"
# `core.quantize` builds in such a folder beside the model: ".int8.<pid>-<start>.<random>"
STAGING = ".int8.*"
# TensorFlow's start-up notes (absl/glog format) and the ONNX quantiser's advice: not steps.
_CHATTER = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] |WARNING: All log messages before absl|WARNING:root:)"
)


def launch(model_path, data: str) -> dict:
    """Starts building the int8 copy of a model in a new process, unless one is building.

    Args:
        model_path: the `.keras` file; the copy, its record and the log go beside it.
        data: the data it was trained on, as `core.data.load_dataset` reads it; the
            child holds out the split the model's card names.

    Returns:
        The build's `status`: "building".

    Raises:
        QuantizeError: the model's folder cannot be written.
    """
    from core.quantize import QuantizeError

    model_path = Path(model_path)
    folder = model_path.parent
    try:
        with jobs.launch_lock(folder, LOCK_FILE):
            current = status(model_path)
            if current is None or current["state"] != "building":
                remove_dead_staging(folder)
                args = [str(model_path.resolve()), "--data", absolute_spec(str(data))]
                jobs.spawn(folder, args, "core.quantize", LOG_FILE, JOB_FILE)
    except OSError as err:  # a read-only folder, a full disk
        raise QuantizeError(
            f"The int8 copy could not be written to {folder}: {err.strerror or err}."
        ) from err
    return status(model_path)


def status(model_path) -> dict | None:
    """The latest int8 build of a model, or None when none was launched here for the
    model file as it is now (a build that ended before the file was replaced says nothing
    about it).

    Returns:
        `{"state", "lines", "seconds"}` and, for "failed", a `"message"`. States:
        "building" (its process runs), "done" (it wrote the copy's record), "stopped"
        (`stop`), "failed" (it ended without a record: the error it printed, or that it
        was ended). `"lines"`: what it has printed so far; `"seconds"` since the launch.
    """
    model_path = Path(model_path)
    folder = model_path.parent
    job = read_json(folder / JOB_FILE)
    if not job:
        return None
    current = {
        "lines": [
            line for line in jobs.latest_launch_lines(folder, LOG_FILE) if not _CHATTER.match(line)
        ],
        "seconds": time.time() - job["launched"],
    }
    if jobs.alive(job):
        return current | {"state": "building"}
    try:
        if model_path.stat().st_mtime > job["launched"]:
            return None
    except OSError:
        return None
    if job.get("stopped"):
        return current | {"state": "stopped"}
    if _recorded_since(model_path, job["launched"]):
        return current | {"state": "done"}
    message = jobs.logged_error(folder, LOG_FILE) or (
        f"its process ended without finishing (stopped from outside, or out of memory); "
        f"see {folder / LOG_FILE}."
    )
    return current | {"state": "failed", "message": message}


def wait(model_path, timeout: float = 600.0, poll: float = 0.1) -> dict:
    """Polls `status` until the model's build has ended, and returns that status.

    Raises:
        QuantizeError: `timeout` seconds passed first.
    """
    from core.quantize import QuantizeError

    deadline = time.monotonic() + timeout
    while (current := status(model_path)) is not None and current["state"] == "building":
        if time.monotonic() > deadline:
            raise QuantizeError(f"The int8 build is still running after {timeout:.0f} s.")
        time.sleep(poll)
    return current


def stop(model_path) -> None:
    """Ends a model's int8 build; what it wrote half-way is removed, nothing of it used."""
    folder = Path(model_path).parent
    job = read_json(folder / JOB_FILE) or {}
    if jobs.end_process(job):
        atomic_write_json(folder / JOB_FILE, job | {"stopped": True})
        remove_dead_staging(folder)


def _recorded_since(model_path: Path, launched: float) -> bool:
    from core.quantize import record_path

    try:
        return record_path(model_path).stat().st_mtime >= launched
    except OSError:
        return False


def remove_dead_staging(folder) -> None:
    """Removes the staging folders beside a model whose build's process has ended: a
    build killed by a signal (SIGKILL, out of memory) leaves its folder behind. A folder
    named without its process (by an older version) is removed as dead."""
    from core.runs import process_alive

    for path in Path(folder).glob(STAGING):
        pid, _, start = path.name.split(".")[2].partition("-")
        if path.is_dir() and not (pid.isdigit() and process_alive(int(pid), start or None)):
            shutil.rmtree(path, ignore_errors=True)
