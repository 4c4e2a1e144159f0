"""Run directories: where each training run keeps its config, history, status and models.

Layout of `runs/<name>/`:
    config.json       the TrainConfig, enough to rebuild the model and redo the run
    status.json       state, pid, heartbeat, batch progress, last checkpoint, message,
                      the model's parameter count
    history.json      one record per finished epoch
    batches.csv       the training loss and accuracy as each epoch goes (Keras's running
                      means, at most twice a second and at each epoch's end): live curves
    checkpoints/      epoch_001.keras ... after every epoch; last.keras on a stop
    model.keras       the final (or stopped) model; model_card.json beside it
    tensorboard/      TensorBoard event files: train/ and validation/ (per-epoch scalars,
                      learning rate, the graph), predictions/ (a grid of validation images
                      with predicted and true labels per epoch); a resume appends to them
    stop.request      present while a stop has been asked for
    train.log, job.json   the dashboard's child process: its output, and who it was
  and `runs/.launch.lock`, which makes "one training at a time" hold between sessions.

No TensorFlow here: the dashboard reads runs often and must stay light.

    python -m core.runs list [--runs-dir D] [--csv runs.csv | --csv -]

prints the runs as a table and exports them as CSV.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from core.cli import text_table
from core.errors import RunError
from core.fileio import atomic_write_bytes, atomic_write_json, read_json
from core.words import counted

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
    """Creates and returns an empty, uniquely named run folder `<time>-<prefix>`.

    Raises:
        RunError: the runs folder cannot be created or written (a sentence that says why).
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return new_folder(safe_name(f"{stamp}-{prefix}"), runs_dir)


def new_folder(name: str, runs_dir: str | Path | None = None) -> Path:
    """Creates and returns the empty folder `runs_dir/<name>`, or `<name>-1`, `<name>-2`,
    ... when the name is taken (a run, or a search's or a learning-rate test's folder).
    `name` is one folder name (`safe_name`, or a dot and one).

    Raises:
        RunError: the runs folder cannot be created or written (a sentence that says why).
    """
    base = Path(runs_dir or default_runs_dir())
    try:
        base.mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            path = base / (name + (f"-{i}" if i else ""))
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as err:
        raise storage_error(err, base) from err
    raise RunError(f"Could not create a new folder {name} in {base}.")


def storage_error(err: OSError, runs_dir: str | Path) -> RunError:
    """Turns an `OSError` from writing into the runs folder into a sentence for the user.

    Args:
        err: the error a write, a `mkdir` or an `open` raised.
        runs_dir: the runs folder (or run folder) being written.

    Returns:
        A `RunError` that names the folder and says what to do.
    """
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunError(
            f"The disk holding the runs folder {runs_dir} is full: "
            "free some space, then start the run again."
        )
    if err.errno == errno.EROFS:
        return RunError(
            f"The runs folder {runs_dir} is on a read-only file system: "
            "make it writable or set CNN_RUNS_DIR to a writable folder."
        )
    if err.errno in (errno.EACCES, errno.EPERM):
        return RunError(
            f"The runs folder {runs_dir} cannot be written (permission denied): "
            "make it writable or set CNN_RUNS_DIR to a writable folder."
        )
    return RunError(f"The runs folder {runs_dir} cannot be written ({err.strerror}).")


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
    if status.get("state") != "running":
        return status
    failure = _fallback_failure(run_dir, status)
    if failure:
        status.update(failure)
    elif not process_alive(status.get("pid"), status.get("pid_start")):
        status["state"] = "interrupted"
        # A running status holds "message": null (its start clears an earlier failure's).
        status["message"] = status.get("message") or (
            "The training process ended without saying why: it was killed, or its machine "
            "went down."
        )
    return status


def fallback_dir() -> Path:
    """Returns `$CNN_STATUS_FALLBACK_DIR`, or `cnn-lab-status/` in the system temp folder.

    A run whose own folder refuses its final status (a full disk, a read-only mount)
    records the failure here instead, outside the runs folder; see `record_failure`.
    """
    default = Path(tempfile.gettempdir()) / "cnn-lab-status"
    return Path(os.environ.get("CNN_STATUS_FALLBACK_DIR", default))


def record_failure(run_dir: str | Path, message: str) -> Path:
    """Records that the run failed, even when its folder can no longer be written.

    Temporary files are removed first: on a full disk they hold the space the status
    needs. If status.json still cannot be written, the failure goes to a file in
    `fallback_dir()` that `read_status` reads for the same process.

    Args:
        run_dir: the failed run.
        message: the sentence to show the user.

    Returns:
        The file the failure was written to.

    Raises:
        OSError: neither status.json nor the fallback file could be written.
    """
    run_dir = Path(run_dir)
    fields = {"state": "failed", "message": message, "ended": now_iso()}
    with contextlib.suppress(OSError):  # a read-only folder: nothing to remove anyway
        remove_partial_files(run_dir)
    try:
        write_status(run_dir, **fields, pid=None)
        return run_dir / "status.json"
    except OSError:
        pass
    path = _fallback_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**fields, **process_identity(), "run": str(run_dir.resolve())})
    return path


def _fallback_path(run_dir: Path) -> Path:
    key = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
    return fallback_dir() / f"{run_dir.name}-{key}.json"


def _fallback_failure(run_dir: Path, status: dict) -> dict | None:
    # Only the record of the process status.json names: a later resume is a new process.
    try:
        record = read_json(_fallback_path(run_dir))
    except (OSError, ValueError):
        return None
    if not record or (record.get("pid"), record.get("pid_start")) != (
        status.get("pid"),
        status.get("pid_start"),
    ):
        return None
    return {k: record[k] for k in ("state", "message", "ended")}


def read_history(run_dir: str | Path) -> list[dict]:
    return read_json(Path(run_dir) / "history.json", []) or []


def kept_accuracy(run_dir: str | Path) -> float | None:
    """The validation accuracy of the model a run kept, as its model card says (of the
    epoch whose weights it has, as the app computes it), else its last epoch's; None when
    it has none (or not a number)."""
    card = read_json(Path(run_dir) / "model_card.json", {}) or {}
    acc = (card.get("metrics") or {}).get("val_accuracy")
    if acc is None and (history := read_history(run_dir)):
        acc = history[-1].get("val_accuracy")
    return acc if isinstance(acc, int | float) and math.isfinite(acc) else None


BATCHES = "batches.csv"
_BATCH_COLUMNS = ("epoch", "batch", "steps", "loss", "accuracy")


def append_batch_point(run_dir: Path, epoch: int, batch: int, steps: int, loss, accuracy) -> None:
    """Adds one point of an epoch in progress (`batch` of `steps` done in 1-based `epoch`;
    the loss and accuracy so far this epoch, None when not known) to `batches.csv`."""
    path = Path(run_dir) / BATCHES
    fresh = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if fresh:
            writer.writerow(_BATCH_COLUMNS)
        values = ("" if v is None else f"{v:.6g}" for v in (loss, accuracy))
        writer.writerow([epoch, batch, steps, *values])


_READ_POINTS: dict[str, tuple] = {}  # path: (identity, bytes read, their last line, points, usable)
_READ_LOCK = threading.Lock()
_READ_KEPT = 8  # files whose points are kept (a long run's: about 2 MB)


def _batch_points(path: Path) -> list[tuple]:
    """The points of a `batches.csv` as (x, epoch, batch, running loss, running accuracy),
    reading only the lines written since the last call for the same file: the live view
    reads a training run's file every few seconds while it grows (a 90-minute run's: 10,800
    lines, 36 ms to read whole). A file replaced, shorter than what was read or whose last
    line read is no longer there (rewritten in place: a copy over it) is read again."""
    key = str(path)
    with _READ_LOCK:  # sessions share what was read; one reader at a time extends it
        try:
            with path.open("rb") as f:
                stat = os.fstat(f.fileno())
                identity = (stat.st_dev, stat.st_ino)
                kept = _READ_POINTS.pop(key, None)
                if kept and (kept[0] != identity or kept[1] > stat.st_size):
                    kept = None
                if kept:  # the last line read must still end where it did
                    f.seek(kept[1] - len(kept[2]))
                    kept = kept if f.read(len(kept[2])) == kept[2] else None
                _, offset, tail, points, usable = kept or (identity, 0, b"", [], True)
                f.seek(offset)
                new = f.read() if usable else b""
        except OSError:
            return []
        complete = new[: new.rfind(b"\n") + 1]  # the last line may still be being written
        lines = complete.decode("utf-8", errors="replace").splitlines()
        if offset == 0 and lines:
            usable = lines.pop(0).split(",") == list(_BATCH_COLUMNS)
        if usable:
            _parse_batch_lines(lines, points)
        if complete:  # its last line: checked at the next call to be still there
            tail = complete[complete.rfind(b"\n", 0, len(complete) - 1) + 1 :]
        _READ_POINTS[key] = (identity, offset + len(complete), tail, points, usable)
        while len(_READ_POINTS) > _READ_KEPT:
            _READ_POINTS.pop(next(iter(_READ_POINTS)))
        return list(points) if usable else []


def _parse_batch_lines(lines: list[str], points: list[tuple]) -> None:
    for line in lines:  # by hand: csv.DictReader took 1.7 times as long (live_curves.py)
        try:
            epoch, batch, steps, loss, accuracy = line.split(",")
            epoch, batch = int(epoch), int(batch)
            x = epoch - 1 + batch / int(steps)
            means = tuple(float(v) if v else None for v in (loss, accuracy))
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        while points and points[-1][0] >= x:
            points.pop()
        points.append((x, epoch, batch, *means))


def read_batch_points(run_dir: str | Path, most: int | None = None) -> dict[str, list]:
    """The points of `append_batch_point` as curves over fractional epochs.

    Keras's values are means since the epoch began; each point here is the mean over the
    batches since the point before it (from two running means, exactly: a batch's mean
    weighs all its images alike), so the curve does not saw at every epoch's start.
    With `most`, at most about that many points: every k-th written one and each epoch's
    last are kept, each then the mean over the longer stretch since the one before.

    Returns:
        `{"x": epochs done (epoch 3 half done is 2.5), "loss": [...], "accuracy": [...]}`,
        values None where not known. An epoch begun again (a resumed run restarts its
        interrupted epoch) replaces what its earlier try wrote from that point on; a
        damaged line (a run killed while writing) is passed over.
    """
    points = _batch_points(Path(run_dir) / BATCHES)
    if most and len(points) > most:
        k = -(-len(points) // most)
        ends = {
            i
            for i in range(len(points))
            if i + 1 == len(points) or points[i + 1][1] != points[i][1]
        }
        points = [p for i, p in enumerate(points) if i % k == k - 1 or i in ends]
    curves: dict[str, list] = {"x": [], "loss": [], "accuracy": []}
    before = (0, 0, None, None)  # epoch, batch, running means of the point before
    for x, epoch, batch, *means in points:
        since = before[1] if before[0] == epoch else 0
        curves["x"].append(x)
        for key, mean, earlier in zip(("loss", "accuracy"), means, before[2:], strict=True):
            if mean is None or (since and earlier is None):
                mean = None
            elif since:
                mean = (batch * mean - since * earlier) / (batch - since)
            curves[key].append(mean)
        before = (epoch, batch, *means)
    return curves


def request_stop(run_dir: str | Path) -> None:
    """Asks a running training to stop; it notices within one batch."""
    (Path(run_dir) / "stop.request").touch()


def stop_requested(run_dir: Path) -> bool:
    return (run_dir / "stop.request").exists()


def run_job(folder: Path, work, result_file: str, stopped: type[BaseException]) -> dict:
    """Runs `work()` for a job's folder (a learning-rate test's, a search for label
    errors'), recording how it ended in the folder's status: "stopped" (and `{}`) when it
    raises `stopped`, "failed" with the sentence of a `CnnError` (raised again), else
    "completed" once its result is written to `result_file` (a full disk fails with a
    sentence, not a traceback)."""
    from core.errors import CnnError, DataError

    try:
        result = work()
    except stopped:
        write_status(folder, state="stopped", ended=now_iso())
        return {}
    except CnnError as err:
        write_status(folder, state="failed", message=str(err), ended=now_iso())
        raise
    try:
        atomic_write_json(folder / result_file, result)
    except OSError as err:
        said = f"The result could not be written in {folder} ({err.strerror or err})."
        write_status(folder, state="failed", message=said, ended=now_iso())
        raise DataError(said) from err
    write_status(folder, state="completed", ended=now_iso())
    return result


def list_runs(runs_dir: str | Path | None = None, state_of=read_status) -> list[dict]:
    """Returns a summary per run, newest first.

    Args:
        runs_dir: the folder of run folders; `default_runs_dir()` if None.
        state_of: `state_of(run_dir)` gives the run's status dict (`core.jobs.status` also
            knows runs whose process is still starting).

    Returns:
        One dict per run folder that has a config.json: name, path, state, preset,
        epochs_done, epochs, best_val_accuracy, last_val_accuracy, seconds (the sum of
        epoch times), wall_seconds (start to end, once finished), params, started, data,
        strategy, has_model, message. Values the run has not recorded are None.
    """
    base = Path(runs_dir or default_runs_dir())
    if not base.is_dir():
        return []
    return [
        run_summary(path, state_of)
        for path in sorted(base.iterdir(), reverse=True)
        if (path / "config.json").is_file()
    ]


def run_summary(path: Path, state_of=read_status) -> dict:
    """Returns one run folder's row of `list_runs`."""
    status, history = state_of(path), read_history(path)
    card = read_json(path / "model_card.json", {}) or {}
    config = read_json(path / "config.json", {}) or {}
    accs = [h["val_accuracy"] for h in history if h.get("val_accuracy") is not None]
    return {
        "name": path.name,
        "path": str(path),
        "state": status.get("state"),
        "preset": config.get("preset"),
        "epochs_done": len(history),
        "epochs": config.get("epochs"),
        "best_val_accuracy": max(accs) if accs else None,
        "last_val_accuracy": accs[-1] if accs else None,
        "seconds": sum(h.get("seconds", 0) for h in history),
        "wall_seconds": status.get("wall_seconds"),
        "params": card.get("params") or status.get("params"),  # a run without a model yet
        "started": status.get("started"),
        "data": config.get("data"),
        "strategy": config.get("strategy", "default"),
        "has_model": (path / "model.keras").is_file(),
        "message": status.get("message"),
    }


def files_signature(runs_dir, names: tuple[str, ...], also=()) -> str:
    """A digest of the identity (inode, modification time, size) of the files `names` in
    each run folder of `runs_dir` and in the folders `also`: a cache key for what is read
    from them, computed with one `stat` call per file.

    Hidden folders are no runs (a search's `.search-1`, a learning-rate test's `.lrfind-*`,
    whose status changes at every step) and are left out.
    """
    base = os.fspath(runs_dir or default_runs_dir())
    try:
        folders = sorted(f for f in os.listdir(base) if not f.startswith("."))
    except OSError:  # no runs folder yet
        folders = []
    digest = hashlib.blake2b(os.fsencode(base), digest_size=16)
    for folder in [*map(os.fspath, also), *(os.path.join(base, f) for f in folders)]:
        digest.update(os.fsencode(folder))  # a name need not be valid UTF-8
        for name in names:
            try:
                found = os.stat(os.path.join(folder, name))
                digest.update(b"%d %d %d;" % (found.st_ino, found.st_mtime_ns, found.st_size))
            except OSError:  # absent, or `folder` is a file
                digest.update(b"-;")
    return digest.hexdigest()


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


# --- command line -------------------------------------------------------------------

# Columns of the CSV export, in order: the table's, then the details a spreadsheet may want.
CSV_FIELDS = (
    "name",
    "state",
    "preset",
    "epochs_done",
    "epochs",
    "best_val_accuracy",
    "last_val_accuracy",
    "wall_seconds",
    "started",
    "data",
    "seconds",
    "params",
    "strategy",
    "path",
)


def runs_csv(rows: list[dict]) -> str:
    """Returns `rows` (from `list_runs`) as CSV text with a header line.

    Args:
        rows: run summaries as `list_runs` returns them.

    Returns:
        The columns of `CSV_FIELDS`; missing values are empty cells.
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if r.get(k) is None else r[k] for k in CSV_FIELDS} for r in rows)
    return out.getvalue()


def settings_that_differ(configs: dict[str, dict]) -> list[dict]:
    """What was set differently in some of the runs: a row per setting of their
    config.json (nested ones as `augment.flip`, `model.blocks`) whose value is not the same
    in every run, `{"setting": key, run: value shown as text, ...}`, in the configs' order.
    The run name's prefix (`name`) is left out: it says nothing about the training.

    Args:
        configs: run name -> its config.json.
    """
    flat = {run: _flatten(config) for run, config in configs.items()}
    keys = dict.fromkeys(key for settings in flat.values() for key in settings)
    rows = []
    for key in keys:
        values = [settings.get(key, _UNSET) for settings in flat.values()]
        if key != "name" and any(v != values[0] for v in values[1:]):
            rows.append(
                {"setting": key}
                | {run: _shown(settings.get(key, _UNSET)) for run, settings in flat.items()}
            )
    return rows


_UNSET = object()  # a setting a run's config does not have (written by an older version)


def _flatten(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _shown(value) -> str:
    if value is _UNSET:
        return "(not set)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return json.dumps(value)
    return str(value)


def format_differences(rows: list[dict]) -> str:
    """`settings_that_differ` as an aligned plain-text table (a column per run)."""
    if not rows:
        return "The runs were started with the same settings."
    return text_table([list(rows[0])] + [list(row.values()) for row in rows], widest=40)


def format_table(rows: list[dict]) -> str:
    """Returns `rows` (from `list_runs`) as an aligned plain-text table, one line per run."""
    lines = [
        ("run", "state", "preset", "epochs", "best val", "last val", "wall s", "started", "data")
    ]
    for r in rows:
        lines.append(
            (
                r["name"],
                str(r["state"]),
                str(r["preset"]),
                f"{r['epochs_done']}/{r['epochs']}",
                _percent(r["best_val_accuracy"]),
                _percent(r["last_val_accuracy"]),
                "-" if r["wall_seconds"] is None else f"{r['wall_seconds']:.1f}",
                r["started"] or "-",
                str(r["data"]),
            )
        )
    return text_table(lines)


def _percent(value) -> str:
    return "-" if value is None else f"{value:.2%}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.runs", description="Look at and export training runs."
    )
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lst = commands.add_parser(
        "list",
        help="print the runs table, newest first",
        description="Print the runs table, newest first, and optionally write it as CSV.",
    )
    lst.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="folder of run folders (default $CNN_RUNS_DIR or ./runs)",
    )
    lst.add_argument(
        "--csv",
        metavar="FILE",
        help="also write the table as CSV to FILE; '-' writes the CSV to standard output "
        "instead of the table",
    )
    diff = commands.add_parser(
        "diff",
        help="print the settings that differ between runs",
        description="Print the settings (config.json) that differ between two or more runs.",
    )
    diff.add_argument("runs", nargs="+", help="run names or folders")
    diff.add_argument("--runs-dir", type=Path, default=None, help="where run names are looked up")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    base = Path(args.runs_dir or default_runs_dir())
    if args.runs_dir is not None and not base.is_dir():
        print(f"error: There is no runs folder at {base}.", file=sys.stderr)
        return 1
    if args.command == "diff":
        return _diff(args.runs, base)
    rows = list_runs(base)
    if args.csv == "-":
        sys.stdout.write(runs_csv(rows))
        return 0
    print(format_table(rows) if rows else f"No runs in {base}.")
    if args.csv:
        try:
            atomic_write_bytes(args.csv, runs_csv(rows).encode())
        except OSError as err:
            print(
                f"error: The CSV file {args.csv} cannot be written ({err.strerror}).",
                file=sys.stderr,
            )
            return 1
        print(f"Wrote {counted(len(rows), 'run')} to {args.csv}.", file=sys.stderr)
    return 0


def _diff(names: list[str], base: Path) -> int:
    configs = {}
    for name in names:
        folder = Path(name) if Path(name).is_dir() else base / name
        config = read_json(folder / "config.json")
        if config is None:
            print(f"error: {name} is not a run: no config.json in {folder}.", file=sys.stderr)
            return 1
        configs[folder.name] = config
    if len(configs) < 2:
        print("error: Name two runs or more to compare.", file=sys.stderr)
        return 1
    print(format_differences(settings_that_differ(configs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
