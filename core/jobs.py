"""Training jobs: each run trains in its own process, one at a time, and the UI polls it.

    run_dir = launch(TrainConfig(data="cifar10", epochs=20))
    wait_for_state(run_dir, ("completed", "stopped", "failed"), timeout=3600)

The child is `python -m core.train --run-dir RUN --quiet` in a session of its own, so
closing the dashboard (or Ctrl-C on the server) does not end it; its output goes to
RUN/train.log. RUN/job.json records the process that was launched, which tells a child
that is still importing TensorFlow ("starting") from one that died before training began.

A hyperparameter search (`launch_search`) is one such child too, `python -m core.search`,
whose trials are ordinary runs; the same lock keeps it to one search or run at a time.

Importing this module loads no TensorFlow (only the launches and `model_summary` import
Keras): the dashboard calls `status` every second.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from core import ROOT, label_check, lrfind, runs
from core.data import absolute_spec
from core.errors import RunError
from core.fileio import atomic_write_json, read_json

LOG_FILE, JOB_FILE, LOCK_FILE = "train.log", "job.json", ".launch.lock"
ACTIVE = ("starting", "running")  # "starting": launched, not yet training
FINISHED = ("completed", "stopped", "failed", "interrupted")
RESUMABLE = ("stopped", "interrupted", "failed")


def launch(config, runs_dir=None) -> Path:
    """Creates a run for `config` and starts training it in a new process.

    Args:
        config: a `core.train.TrainConfig`; `config.data` is what the child loads.
        runs_dir: where the run folder goes; `core.runs.default_runs_dir()` if None.

    Returns:
        The run directory, in state "starting" until the child begins training.

    Raises:
        RunError: a setting cannot work, the preset's ImageNet weights are not on this
            machine, or another run or a search is in progress.
    """
    from core.train import start_run  # imports Keras; only a launch pays for it

    config = _launchable(config)
    base = _absolute_runs_dir(runs_dir)
    with _runs_folder_errors(base), launch_lock(base):
        _refuse_if_busy(base)
        before = set(base.iterdir())
        try:
            run_dir = start_run(config, base)
            spawn(run_dir, ["--run-dir", str(run_dir), "--quiet"])
        except OSError:
            _remove_half_created(base, before)
            raise
    return run_dir


def _launchable(config):
    """`config` with its data as an absolute path, once its model can be built here."""
    from core.model import check_pretrained, preset_config

    if config.model is not None:
        check_model_fits(config.model, config.image_size)
    model = config.model
    if model is None and config.preset != "custom":
        model = preset_config(config.preset, config.image_size)
    if model is not None:
        # Missing ImageNet weights are told now, not by a child that fails a minute later.
        check_pretrained(model)
    return dataclasses.replace(config, data=absolute_spec(config.data))


def launch_lrfind(config, runs_dir=None) -> Path:
    """Starts a learning-rate range test of `config` (`core.lrfind`) in a new process.

    Args:
        config: a `core.train.TrainConfig`, as `launch` takes it.
        runs_dir: where its folder `.lrfind-<time>` goes.

    Returns:
        The test's folder, in state "starting" until the child begins.

    Raises:
        RunError: a setting cannot work, or a run, a search or another test is in progress.
    """
    config = _launchable(config)
    base = _absolute_runs_dir(runs_dir)
    with _runs_folder_errors(base), launch_lock(base):
        _refuse_if_busy(base)
        folder = lrfind.start_folder(config, base)
        spawn(folder, ["--folder", str(folder)], module="core.lrfind")
    for earlier in base.glob(f"{lrfind.FOLDER_PREFIX}*"):  # only the newest test is shown
        if earlier != folder and status(earlier)["state"] in FINISHED:
            shutil.rmtree(earlier, ignore_errors=True)
    return folder


_LRFIND_TESTS = f"{lrfind.FOLDER_PREFIX}*/{lrfind.CONFIG_FILE}"  # a glob of their configs


def latest_lrfind(runs_dir=None) -> dict | None:
    """Returns the status of the newest learning-rate test (any state), or None."""
    return _latest(runs_dir, _LRFIND_TESTS)


def launch_label_check(config, folds: int = label_check.FOLDS, runs_dir=None) -> Path:
    """Starts a search for label errors in `config`'s data (`core.label_check`) in a new
    process, in `runs_dir/.labelcheck-<time>`; earlier finished checks are removed.

    Raises:
        RunError: a setting cannot work, or a run, a search, a test or a check is in
            progress.
    """
    config = _launchable(config)
    base = _absolute_runs_dir(runs_dir)
    with _runs_folder_errors(base), launch_lock(base):
        _refuse_if_busy(base)
        folder = label_check.start_folder(config, folds, base)
        spawn(folder, ["--folder", str(folder)], module="core.label_check")
    for earlier in base.glob(f"{label_check.FOLDER_PREFIX}*"):
        if earlier != folder and status(earlier)["state"] in FINISHED:
            shutil.rmtree(earlier, ignore_errors=True)
    return folder


_LABEL_CHECKS = f"{label_check.FOLDER_PREFIX}*/{label_check.CONFIG_FILE}"


def latest_label_check(runs_dir=None) -> dict | None:
    """Returns the status of the newest search for label errors (any state), or None."""
    return _latest(runs_dir, _LABEL_CHECKS)


def launch_search(config, runs_dir=None) -> Path:
    """Prepares a hyperparameter search and runs it in a new process.

    Args:
        config: a `core.search.SearchConfig`; its trials become runs in `runs_dir`.
        runs_dir: where the trials' run folders and the search folder go.

    Returns:
        The search folder `runs_dir/.search-<id>`, in state "starting" until the child
        begins its first trial.

    Raises:
        RunError: a setting cannot work, or a run or a search is in progress.
    """
    from core.search import start_search  # imports Keras; only a launch pays for it

    config = dataclasses.replace(config, data=absolute_spec(config.data))
    base = _absolute_runs_dir(runs_dir)
    with _runs_folder_errors(base), launch_lock(base):
        _refuse_if_busy(base)
        search_dir = start_search(config, base)
        spawn(search_dir, ["--search-dir", str(search_dir), "--quiet"], module="core.search")
    return search_dir


def active_search(runs_dir=None) -> dict | None:
    """Returns the status of the search in progress, with its "name" and "path", or None."""
    return _first_active(runs_dir, ".search-*/search.json")


def latest_search(runs_dir=None) -> dict | None:
    """Returns the status of the newest search folder (any state), or None."""
    return _latest(runs_dir, ".search-*/search.json")


def _latest(runs_dir, pattern: str) -> dict | None:
    base = Path(runs_dir or runs.default_runs_dir())
    found = sorted(base.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    path = found[-1].parent
    return {**status(path), "name": path.name, "path": str(path)}


def stop_search(search_dir) -> None:
    """Stops a search: its current trial stops within a batch and no new trial starts."""
    search_dir = Path(search_dir)
    state = status(search_dir)["state"]
    if state == "running":
        runs.request_stop(search_dir)
        current = runs.read_status(search_dir).get("run")
        if current:
            runs.request_stop(search_dir.parent / current)
    elif state == "starting":
        _terminate(search_dir)


def launch_resume(run_dir) -> Path:
    """Continues a stopped, interrupted or failed run in a new process.

    Args:
        run_dir: the run to continue; its epochs, history and schedule carry on.

    Returns:
        The run directory.

    Raises:
        RunError: the run cannot resume (completed, no checkpoint) or a run is in progress.
    """
    run_dir = Path(run_dir).absolute()
    with _runs_folder_errors(run_dir.parent), launch_lock(run_dir.parent):
        _refuse_if_busy(run_dir.parent)
        state = status(run_dir)["state"]
        if state not in RESUMABLE:
            raise RunError(f"{run_dir.name} is {state}; only a stopped or interrupted run resumes.")
        if runs.latest_checkpoint(run_dir) is None:
            raise RunError(f"{run_dir.name} has no checkpoint to resume from; start it again.")
        spawn(run_dir, ["--resume", str(run_dir), "--quiet"])
    return run_dir


def stop(run_dir) -> None:
    """Stops a run: a training child saves checkpoints/last.keras and ends as "stopped".

    A child still starting up has trained nothing; it is terminated at once.
    """
    run_dir = Path(run_dir)
    state = status(run_dir)["state"]
    if state == "running":
        runs.request_stop(run_dir)
    elif state == "starting":
        _terminate(run_dir)


def status(run_dir) -> dict:
    """Returns `core.runs.read_status` with the launch taken into account.

    States are those of `core.runs.STATES` plus "starting" (the child is loading data and
    TensorFlow). A child that exited before training began is recorded as "failed" with
    the reason from its log, so no run stays "created" for ever. A child that died while
    "running" after printing an error (its folder refused the final status, and no
    `runs.record_failure` fallback could be written either) reads "failed" with that error.
    """
    run_dir = Path(run_dir)
    current = runs.read_status(run_dir)
    job = read_json(run_dir / JOB_FILE)
    if not job:
        return current
    if current.get("heartbeat", 0) > job["launched"]:
        # The child has written since its launch: its status speaks, or its last words.
        if current["state"] == "interrupted" and (said := logged_error(run_dir)):
            return {**current, "state": "failed", "message": said}
        return current
    if alive(job):
        return {**current, "state": "starting", "message": "Loading the data and TensorFlow."}
    fields = {"state": "failed", "message": _early_exit_message(run_dir), "ended": runs.now_iso()}
    try:
        runs.write_status(run_dir, **fields)
    except OSError:
        return {**current, **fields}  # a read-only or full disk: say it without recording it
    return runs.read_status(run_dir)


def active_run(runs_dir=None) -> dict | None:
    """Returns the status of the run in progress, with its "name" and "path", or None."""
    return _first_active(runs_dir, "*/config.json")


def _first_active(runs_dir, pattern: str) -> dict | None:
    # Newest first: the folders' names start with their time stamp.
    base = Path(runs_dir or runs.default_runs_dir())
    for path in sorted(base.glob(pattern), reverse=True):
        current = status(path.parent)
        if current["state"] in ACTIVE:
            return {**current, "name": path.parent.name, "path": str(path.parent)}
    return None


def list_runs(runs_dir=None) -> list[dict]:
    """Returns `core.runs.list_runs` rows with the states `status` reports."""
    return runs.list_runs(runs_dir, state_of=status)


# Every file a `list_runs` row is read from.
_ROW_FILES = ("config.json", "status.json", "history.json", "model_card.json", "model.keras")


def runs_signature(runs_dir=None) -> str:
    """A digest of the files `list_runs` reads: its rows of finished runs change only when
    this does (those of unfinished runs also with their processes; see `refreshed`)."""
    return runs.files_signature(runs_dir, (*_ROW_FILES, JOB_FILE))


def refreshed(rows: list[dict]) -> list[dict]:
    """Returns `list_runs` rows read earlier, those of unfinished runs read again.

    A finished run's row changes only with its files (`runs_signature`); an unfinished
    one's state also depends on whether its process is still alive.
    """
    return [
        r if r["state"] in FINISHED else runs.run_summary(Path(r["path"]), status) for r in rows
    ]


def delete(run_dir) -> None:
    """Deletes a run folder; refuses while it is starting or training.

    Raises:
        RunError: the run is in progress.
    """
    run_dir = Path(run_dir)
    if status(run_dir)["state"] in ACTIVE:
        raise RunError(f"{run_dir.name} is still training; stop it before deleting it.")
    runs.delete_run(run_dir)


def wait_for_state(run_dir, states, timeout: float = 60.0, poll: float = 0.1) -> dict:
    """Polls `status` until the run is in one of `states`, and returns that status.

    Args:
        run_dir: the run to watch.
        states: the states to wait for, e.g. `FINISHED`.
        timeout: seconds to wait at most.
        poll: seconds between reads.

    Raises:
        RunError: `timeout` seconds passed first.
    """
    deadline = time.monotonic() + timeout
    while True:
        current = status(run_dir)
        if current["state"] in states:
            return current
        if time.monotonic() > deadline:
            raise RunError(
                f"{Path(run_dir).name} is still {current['state']} after {timeout:.0f} s."
            )
        time.sleep(poll)


def log_tail(run_dir, lines: int = 20, name: str = LOG_FILE) -> str:
    """Returns the last `lines` lines of the run's train.log, or of the log `name` in
    `run_dir` ("" when there is none)."""
    path = Path(run_dir) / name
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 64 * 1024))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def progress(current: dict) -> tuple[float, str]:
    """Returns the share of all planned batches done and a line to show beside it.

    Args:
        current: a `status` dict.

    Returns:
        `(fraction in [0, 1], "epoch 3/20 · batch 40/352 · 1210 img/s · ETA 04:10")`.
    """
    if current.get("state") == "starting":
        return 0.0, "starting: loading the data and TensorFlow"
    if current.get("finishing"):  # the epochs are done
        return 1.0, f"finishing: {current['finishing']}"
    epoch, epochs = current.get("epoch") or 0, current.get("epochs") or 0
    batch, steps = current.get("batch") or 0, current.get("steps") or 0
    if not (epochs and steps):
        return 0.0, f"epoch {max(epoch, 1)}/{epochs or '?'} · waiting for the first batch"
    done = max(epoch - 1, 0) * steps + batch
    parts = [f"epoch {epoch}/{epochs}", f"batch {batch}/{steps}"]
    if current.get("images_per_sec"):
        parts.append(f"{current['images_per_sec']:.0f} img/s")
    if current.get("eta_seconds") is not None:
        parts.append(f"ETA {clock(current['eta_seconds'])}")
    return min(1.0, done / (epochs * steps)), " · ".join(parts)


def clock(seconds: float) -> str:
    """Formats a duration as "mm:ss", or "h:mm:ss" from one hour on."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def parse_widths(text: str) -> list[int]:
    """Parses dense layer widths typed as "128,64" (empty text: no hidden layer).

    Raises:
        RunError: a part is not a positive whole number.
    """
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise RunError(
            f"Dense layer widths must be positive whole numbers separated by commas, "
            f"like 128,64 (got '{text}')."
        )
    return [int(p) for p in parts]


def check_model_fits(model, image_size: int) -> None:
    """Checks that every block of a `ModelConfig` still has pixels left to pool.

    Raises:
        RunError: "valid" convolutions and poolings shrink the image to nothing.
    """
    side = image_size
    for b, block in enumerate(model.blocks, start=1):
        if block.padding == "valid":
            side -= block.convs * (block.kernel_size - 1)
        side //= 2
        if side < 1:
            raise RunError(
                f"A {image_size}x{image_size} image has no pixels left after block {b}: "
                "use 'same' padding, smaller kernels or fewer blocks."
            )


def model_summary(model) -> list[dict]:
    """Builds a `ModelConfig` and returns `core.model.summary_rows` of it.

    Raises:
        RunError: the architecture does not fit its input size.
    """
    from dataclasses import replace

    from core.model import build_model, summary_rows

    check_model_fits(model, model.input_size)
    # ImageNet weights change no shape: the summary needs no weights file.
    return summary_rows(build_model(replace(model, pretrained=False)))


# --- the process ----------------------------------------------------------------------


def _absolute_runs_dir(runs_dir) -> Path:
    # Children run in the project folder: a relative runs folder is the caller's.
    return Path(runs_dir or runs.default_runs_dir()).absolute()


@contextmanager
def _runs_folder_errors(base: Path):
    # A full disk or a read-only mount at launch is a sentence for the user, not a traceback.
    try:
        yield
    except OSError as err:
        raise runs.storage_error(err, base) from err


def _remove_half_created(base: Path, before: set[Path]) -> None:
    # Under the launch lock the only new folder is this launch's: it holds at most its
    # config.json (start_run), or its log too if job.json could not be written (_spawn).
    for path in set(base.iterdir()) - before:
        if path.is_dir() and not (path / JOB_FILE).exists():
            shutil.rmtree(path, ignore_errors=True)


@contextmanager
def launch_lock(base: Path, name: str = LOCK_FILE):
    """Held across "is anything running?" and the start, so two clicks start one child."""
    base.mkdir(parents=True, exist_ok=True)
    with open(base / name, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def busy(runs_dir=None) -> str | None:
    """What keeps the machine busy: a sentence naming the learning-rate test, search or
    run in progress in `runs_dir`, or None when none is."""
    base = Path(runs_dir or runs.default_runs_dir())
    if test := _first_active(base, _LRFIND_TESTS):
        what = f"A learning-rate test is in progress ({test['name']})"
    elif check := _first_active(base, _LABEL_CHECKS):
        what = f"A search for label errors is in progress ({check['name']})"
    elif (search := active_search(base)) is not None:
        where = "starting"
        if search["state"] == "running":
            where = f"trial {search.get('trial') or 1}/{search.get('trials', '?')}"
        what = f"A hyperparameter search is in progress ({search['name']}, {where})"
    elif (current := active_run(base)) is not None:
        where = "starting"
        if current["state"] == "running":
            where = f"epoch {max(current.get('epoch') or 1, 1)}/{current.get('epochs', '?')}"
        what = f"A training run is in progress ({current['name']}, {where})"
    else:
        return None
    return f"{what}. Stop it or wait for it to finish."


def _refuse_if_busy(base: Path) -> None:
    if message := busy(base):
        raise RunError(message)


def spawn(
    run_dir: Path,
    args: list[str],
    module: str = "core.train",
    log_file: str = LOG_FILE,
    job_file: str = JOB_FILE,
) -> None:
    """Starts `python -m module *args` in a session of its own, its output appended to
    `run_dir/log_file` after a "--- time command" line, its process in `run_dir/job_file`.

    Raises:
        OSError: the log or the job file cannot be written (the child is then ended).
    """
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep the log to what a user can act on
    env["PYTHONUNBUFFERED"] = "1"  # each line in the log as it is printed, for the pages
    with open(run_dir / log_file, "ab") as log:
        log.write(f"--- {runs.now_iso()} python -m {module} {' '.join(args)}\n".encode())
        log.flush()
        launched = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        atomic_write_json(
            run_dir / job_file,
            {"pid": proc.pid, "pid_start": runs.process_start(proc.pid), "launched": launched},
        )
    except OSError:
        # Unrecorded, the child could never be watched or stopped: end it now.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    # An exited child stays a zombie (and looks alive) until its parent waits for it.
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


def alive(job: dict) -> bool:
    """Whether the process a job file records (`spawn`) is still running."""
    return runs.process_alive(job.get("pid"), job.get("pid_start"))


def end_process(job: dict, grace: float = 5.0) -> bool:
    """Ends a launched child's process group (SIGTERM, then SIGKILL after `grace` s).

    Returns:
        Whether it was still alive.
    """
    if not alive(job):
        return False
    os.killpg(job["pid"], signal.SIGTERM)
    os.killpg(job["pid"], signal.SIGCONT)  # a stopped process (Ctrl-Z, SIGSTOP) acts on it
    deadline = time.monotonic() + grace
    while alive(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(job):
        os.killpg(job["pid"], signal.SIGKILL)
        # The kernel ends it a moment later; callers read its status next and must find it
        # ended, not running.
        deadline = time.monotonic() + 2.0
        while alive(job) and time.monotonic() < deadline:
            time.sleep(0.01)
    return True


def _terminate(run_dir: Path, grace: float = 5.0) -> None:
    job = read_json(run_dir / JOB_FILE) or {}
    if not end_process(job, grace):
        return
    if runs.read_status(run_dir).get("heartbeat", 0) <= job["launched"]:
        runs.write_status(
            run_dir, state="stopped", message="Stopped before training began.", ended=runs.now_iso()
        )


_ERROR_LINE = re.compile(r"^error: (.+)$", re.MULTILINE)


def latest_launch_lines(run_dir, name: str = LOG_FILE) -> list[str]:
    """The non-empty lines the latest launch (`spawn`) has written to its log so far."""
    tail = re.split(r"^--- .*$", log_tail(run_dir, 200, name), flags=re.MULTILINE)[-1]
    return [line for line in tail.splitlines() if line.strip()]


def logged_error(run_dir, name: str = LOG_FILE) -> str | None:
    """The last "error: ..." sentence a CLI printed during the latest launch, or None."""
    sentences = _ERROR_LINE.findall("\n".join(latest_launch_lines(run_dir, name)))
    return sentences[-1].strip() if sentences else None


def _early_exit_message(run_dir: Path) -> str:
    # The CLI prints CnnError sentences as "error: ..."; anything else is a crash.
    tail = log_tail(run_dir, 200)
    sentences = _ERROR_LINE.findall(tail)
    if sentences:
        return sentences[-1].strip()
    last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    if last.startswith("--- "):
        last = ""
    return "The training process exited before training began" + (
        f" ({last.strip()}); see train.log." if last else "."
    )
