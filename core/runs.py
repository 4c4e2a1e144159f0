"""Run directories: where each training run keeps its config, history, status and models.

Layout of `runs/<name>/`:
    config.json       the TrainConfig, enough to rebuild the model and redo the run
    status.json       state, pid, heartbeat, batch progress, last checkpoint, message
    history.json      one record per finished epoch
    checkpoints/      epoch_001.keras ... after every epoch; last.keras on a stop
    model.keras       the final (or stopped) model; model_card.json beside it
    stop.request      present while a stop has been asked for
    train.log, job.json   the dashboard's child process: its output, and who it was
  and `runs/.launch.lock`, which makes "one training at a time" hold between sessions.

No TensorFlow here: the dashboard reads runs often and must stay light.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from core.errors import RunError
from core.fileio import atomic_write_json, read_json

STATES = ("created", "running", "completed", "stopped", "failed", "interrupted")
MAX_NAME = 64
_NAME_OK = re.compile(r"[^A-Za-z0-9._-]+")


def default_runs_dir() -> Path:
    """Returns `$CNN_RUNS_DIR`, or `runs/` beside the project."""
    return Path(os.environ.get("CNN_RUNS_DIR", Path(__file__).resolve().parent.parent / "runs"))


def safe_name(name: str) -> str:
    """Turns a typed name into one folder name that cannot leave the runs directory.

    Raises:
        RunError: nothing usable is left of the name.
    """
    cleaned = _NAME_OK.sub("-", name.replace("\x00", "")).strip(".-")[:MAX_NAME]
    if not cleaned:
        raise RunError(
            f"'{name[:40]}' cannot be used as a name: use letters, digits, '.', '_' or '-'."
        )
    return cleaned


def run_path(name: str, runs_dir: str | Path | None = None) -> Path:
    """Returns the folder of run `name`, checked to lie directly inside `runs_dir`."""
    base = Path(runs_dir or default_runs_dir()).resolve()
    path = (base / safe_name(name)).resolve()
    if path.parent != base:
        raise RunError(f"'{name}' is not a valid run name.")
    return path


def new_run_dir(prefix: str, runs_dir: str | Path | None = None) -> Path:
    """Creates and returns an empty, uniquely named run folder `<time>-<prefix>`."""
    base = Path(runs_dir or default_runs_dir())
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        name = safe_name(f"{stamp}-{prefix}" + (f"-{i}" if i else ""))
        path = run_path(name, base)
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"Could not create a new run folder in {base}.")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_status(run_dir: Path, **fields) -> dict:
    """Merges `fields` into status.json (atomically) and stamps the heartbeat."""
    status = read_json(run_dir / "status.json", {}) or {}
    status.update(fields, heartbeat=time.time(), updated=now_iso())
    atomic_write_json(run_dir / "status.json", status)
    return status


def process_alive(pid: int | None, start: str | None) -> bool:
    """True while process `pid` runs and is the one that started at `start` (not a zombie)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    if fields and fields[0] == "Z":  # exited, not yet reaped by its parent
        return False
    return start is None or (fields is not None and fields[19] == start)


def process_start(pid: int) -> str | None:
    """The start time of `pid` in /proc, which tells a reused pid from the original."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def _proc_stat(pid: int) -> list[str] | None:
    # Fields after the command name: state is [0], start time is [19].
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_identity() -> dict:
    """Returns `{"pid", "pid_start"}` of this process, for status records."""
    return {"pid": os.getpid(), "pid_start": process_start(os.getpid())}


def read_status(run_dir: str | Path) -> dict:
    """Returns the run's status with its effective state.

    A run recorded as running whose process no longer exists is reported as
    `interrupted`: it was killed or its machine went down.
    """
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json", None) or {"state": "created"}
    if status.get("state") == "running" and not process_alive(
        status.get("pid"), status.get("pid_start")
    ):
        status["state"] = "interrupted"
        status.setdefault("message", "The training process ended without saying why.")
    return status


def read_history(run_dir: str | Path) -> list[dict]:
    return read_json(Path(run_dir) / "history.json", []) or []


def request_stop(run_dir: str | Path) -> None:
    """Asks a running training to stop; it notices within one batch."""
    (Path(run_dir) / "stop.request").touch()


def stop_requested(run_dir: Path) -> bool:
    return (run_dir / "stop.request").exists()


def list_runs(runs_dir: str | Path | None = None) -> list[dict]:
    """Returns a summary per run, newest first: name, path, state, epochs, best accuracy."""
    base = Path(runs_dir or default_runs_dir())
    if not base.is_dir():
        return []
    rows = []
    for path in sorted(base.iterdir(), reverse=True):
        if not (path / "config.json").is_file():
            continue
        status, history = read_status(path), read_history(path)
        card = read_json(path / "model_card.json", {}) or {}
        config = read_json(path / "config.json", {}) or {}
        accs = [h["val_accuracy"] for h in history if h.get("val_accuracy") is not None]
        rows.append(
            {
                "name": path.name,
                "path": str(path),
                "state": status.get("state"),
                "preset": config.get("preset"),
                "epochs_done": len(history),
                "epochs": config.get("epochs"),
                "best_val_accuracy": max(accs) if accs else None,
                "seconds": sum(h.get("seconds", 0) for h in history),
                "params": card.get("params"),
                "started": status.get("started"),
                "has_model": (path / "model.keras").is_file(),
                "message": status.get("message"),
            }
        )
    return rows


def delete_run(run_dir: str | Path) -> None:
    """Deletes a run folder; refuses while its training process is alive."""
    run_dir = Path(run_dir)
    if read_status(run_dir).get("state") == "running":
        raise RunError(f"{run_dir.name} is still training; stop it before deleting it.")
    shutil.rmtree(run_dir)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Returns the newest checkpoint recorded in the status, else the newest on disk."""
    run_dir = Path(run_dir)
    recorded = read_status(run_dir).get("checkpoint")
    if recorded and (run_dir / recorded).is_file():
        return run_dir / recorded
    found = sorted((run_dir / "checkpoints").glob("epoch_*.keras"))
    return found[-1] if found else None


def remove_partial_files(run_dir: str | Path) -> list[Path]:
    """Deletes temporary files a killed writer left behind; returns what it removed."""
    run_dir = Path(run_dir)
    stale = list(run_dir.glob(".*.tmp*")) + list((run_dir / "checkpoints").glob(".*.tmp*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
