import json
import os
import subprocess
import sys

import pytest

from core import runs
from core.errors import RunError
from core.fileio import atomic_write_json


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("my run", "my-run"),
        ("../../etc/passwd", "etc-passwd"),
        ("/abs/path", "abs-path"),
        ("a\x00b", "ab"),
        ("x" * 300, "x" * runs.MAX_NAME),
        ("ok_name-1.2", "ok_name-1.2"),
    ],
)
def test_typed_names_cannot_leave_the_runs_directory(tmp_path, typed, expected):
    assert runs.safe_name(typed) == expected
    assert runs.run_path(typed, tmp_path).parent == tmp_path.resolve()


@pytest.mark.parametrize("typed", ["..", "/", "\x00", "...", ""])
def test_names_with_nothing_usable_are_refused(typed):
    with pytest.raises(RunError, match="cannot be used as a name"):
        runs.safe_name(typed)


def test_new_run_dirs_are_unique(tmp_path):
    a, b = runs.new_run_dir("seed", tmp_path), runs.new_run_dir("seed", tmp_path)
    assert a != b and a.parent == b.parent == tmp_path


def test_running_status_of_a_dead_process_reads_as_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    atomic_write_json(tmp_path / "status.json", {"state": "running", "pid": proc.pid})
    assert runs.read_status(tmp_path)["state"] == "interrupted"
    runs.write_status(tmp_path, state="running", **runs.process_identity())
    assert runs.read_status(tmp_path)["state"] == "running"


def test_a_reused_pid_is_not_taken_for_the_training_process(tmp_path):
    atomic_write_json(
        tmp_path / "status.json", {"state": "running", "pid": os.getpid(), "pid_start": "1"}
    )
    assert runs.read_status(tmp_path)["state"] == "interrupted"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "status.json"
    atomic_write_json(target, {"state": "running"})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"state": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_list_and_delete_runs(tmp_path):
    run = runs.new_run_dir("seed", tmp_path)
    atomic_write_json(run / "config.json", {"preset": "seed", "epochs": 3})
    atomic_write_json(
        run / "history.json",
        [
            {"epoch": 1, "val_accuracy": 0.4, "seconds": 2},
            {"epoch": 2, "val_accuracy": 0.5, "seconds": 3},
        ],
    )
    runs.write_status(run, state="stopped")
    [row] = runs.list_runs(tmp_path)
    assert row["state"] == "stopped" and row["best_val_accuracy"] == 0.5
    assert row["epochs_done"] == 2 and row["seconds"] == 5
    runs.write_status(run, state="running", **runs.process_identity())
    with pytest.raises(RunError, match="still training"):
        runs.delete_run(run)
    runs.write_status(run, state="stopped")
    runs.delete_run(run)
    assert runs.list_runs(tmp_path) == []
