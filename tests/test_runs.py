import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_batch_points_become_the_mean_since_the_point_before(tmp_path):
    assert runs.read_batch_points(tmp_path) == {"x": [], "loss": [], "accuracy": []}
    # Keras's running means of 4-batch epochs; epoch 2 begun again after batch 2.
    points = [(1, 1, 2.0, 0.1), (1, 3, 1.8, 0.3), (1, 4, 1.7, None), (2, 1, 1.5, 0.5)]
    points += [(2, 2, 1.4, 0.6), (2, 1, 1.45, 0.55), (2, 4, 1.3, 0.7)]
    for epoch, batch, loss, accuracy in points:
        runs.append_batch_point(tmp_path, epoch, batch, 4, loss, accuracy)
    with (tmp_path / runs.BATCHES).open("a") as f:
        f.write("3,1,4,1.2")  # a run killed while writing: passed over
    curves = runs.read_batch_points(tmp_path)
    assert curves["x"] == [0.25, 0.75, 1.0, 1.25, 2.0]
    # Batches 2-3: (3 x 1.8 - 2.0) / 2; batch 4: 4 x 1.7 - 3 x 1.8; epoch 2's second try.
    assert curves["loss"] == pytest.approx([2.0, 1.7, 1.4, 1.45, (4 * 1.3 - 1.45) / 3])
    assert curves["accuracy"][:2] == pytest.approx([0.1, 0.4]) and curves["accuracy"][2] is None
    assert curves["accuracy"][3:] == pytest.approx([0.55, (4 * 0.7 - 0.55) / 3])


def test_batch_points_are_thinned_to_about_as_many_as_asked_means_kept_exact(tmp_path):
    losses = {}  # each batch's own loss; the file holds the running means Keras reports
    for epoch in (1, 2, 3):
        for batch in range(1, 11):
            losses[epoch, batch] = 3.0 - 0.3 * epoch - 0.01 * batch**2
            mean = np.mean([losses[epoch, b] for b in range(1, batch + 1)])
            runs.append_batch_point(tmp_path, epoch, batch, 10, mean, None)
    assert len(runs.read_batch_points(tmp_path)["x"]) == 30
    thin = runs.read_batch_points(tmp_path, most=6)
    # Every 5th point and each epoch's last: the 5th and 10th batches of each epoch.
    assert thin["x"] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    for x, loss in zip(thin["x"], thin["loss"], strict=True):
        epoch, end = int(-(-x // 1)), round((x % 1 or 1) * 10)
        batches = range(1, 6) if end == 5 else range(6, 11)
        assert loss == pytest.approx(np.mean([losses[epoch, b] for b in batches]))
    assert thin["accuracy"] == [None] * 6


def _read_whole(run_dir, copies, most):
    """`read_batch_points` of a copy of the file, which no call has read before."""
    copy = copies / str(len(list(copies.iterdir())))
    copy.mkdir()
    shutil.copyfile(run_dir / runs.BATCHES, copy / runs.BATCHES)
    return runs.read_batch_points(copy, most)


def test_batch_points_read_as_the_file_grows_are_those_of_a_whole_read(tmp_path):
    run, copies = tmp_path / "run", tmp_path / "copies"
    run.mkdir(), copies.mkdir()
    path = run / runs.BATCHES
    assert runs.read_batch_points(run) == {"x": [], "loss": [], "accuracy": []}
    writes = [(1, b, 4, 2.0 - 0.1 * b, 0.1 * b) for b in range(1, 5)] + [(2, 1, 4, 1.5, None)]
    writes += [(2, 2, 4, 1.4, 0.6), (2, 1, 4, 1.45, 0.55), (2, 3, 4, 1.35, 0.65)]  # a resume
    for n, point in enumerate(writes):
        runs.append_batch_point(run, *point)
        if n == 4:  # a line read before its end is written
            with path.open("a") as f:
                f.write("2,4,4,1.3")
            assert runs.read_batch_points(run) == _read_whole(run, copies, None)
            with path.open("a") as f:
                f.write("5,0.7\r\n")
            assert runs.read_batch_points(run)["x"][-1] == 2.0
        for most in (None, 3):
            assert runs.read_batch_points(run, most) == _read_whole(run, copies, most)
    curves = runs.read_batch_points(run)
    assert curves["x"] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.75]  # epoch 2's first try replaced
    assert curves["loss"][-2:] == pytest.approx([1.45, (3 * 1.35 - 1.45) / 2])

    other = "".join(f"{1 + n // 8},{n % 8 + 1},8,{2 - n / 100},0.5\r\n" for n in range(24))
    with path.open("r+") as f:  # another run's file copied over it: the same inode, longer
        f.write(f"{','.join(runs._BATCH_COLUMNS)}\r\n{other}")
    assert runs.read_batch_points(run) == _read_whole(run, copies, None)
    assert len(runs.read_batch_points(run)["x"]) == 24

    path.unlink()  # a new, shorter file: read from its start
    runs.append_batch_point(run, 1, 1, 2, 0.9, 0.8)
    assert runs.read_batch_points(run) == {"x": [0.5], "loss": [0.9], "accuracy": [0.8]}
    path.write_text("not,the,header\r\n1,1,2,0.5,0.5\r\n")
    assert runs.read_batch_points(run) == {"x": [], "loss": [], "accuracy": []}


def test_running_status_of_a_dead_process_reads_as_interrupted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    atomic_write_json(tmp_path / "status.json", {"state": "running", "pid": proc.pid})
    assert runs.read_status(tmp_path)["state"] == "interrupted"
    # As a training process writes it: its start clears an earlier failure's message.
    runs.write_status(tmp_path, state="running", pid=proc.pid, message=None)
    status = runs.read_status(tmp_path)
    assert status["state"] == "interrupted"
    assert status["message"].startswith("The training process ended without saying why")
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


def _fake_run(base, name, state, history, **config):
    run = base / name
    run.mkdir(parents=True)
    atomic_write_json(run / "config.json", {"preset": "seed", "epochs": 3, **config})
    atomic_write_json(run / "history.json", history)
    runs.write_status(run, state=state, started="2026-11-25T10:00:00+00:00", wall_seconds=12.5)
    return run


def _two_runs(base):
    _fake_run(
        base,
        "20261125-100000-seed",
        "completed",
        [
            {"epoch": 1, "val_accuracy": 0.5, "seconds": 4},
            {"epoch": 2, "val_accuracy": 0.75, "seconds": 4},
            {"epoch": 3, "val_accuracy": 0.625, "seconds": 4},
        ],
        data="cifar10",
    )
    _fake_run(base, "20261125-110000-fast", "failed", [], preset="fast", data="/data/pets")


def test_cli_prints_the_runs_table_and_writes_csv(tmp_path, capsys):
    _two_runs(tmp_path / "runs")
    out_csv = tmp_path / "runs.csv"
    assert runs.main(["list", "--runs-dir", str(tmp_path / "runs"), "--csv", str(out_csv)]) == 0
    out, err = capsys.readouterr()
    header, newest, oldest = out.splitlines()
    assert header.split() == [
        "run", "state", "preset", "epochs", "best", "val", "last", "val", "wall", "s",
        "started", "data",
    ]  # fmt: skip
    assert newest.split() == [
        "20261125-110000-fast", "failed", "fast", "0/3", "-", "-", "12.5",
        "2026-11-25T10:00:00+00:00", "/data/pets",
    ]  # fmt: skip
    assert oldest.split()[:7] == ["20261125-100000-seed", "completed", "seed", "3/3", "75.00%",
                                  "62.50%", "12.5"]  # fmt: skip
    assert err.strip() == f"Wrote 2 runs to {out_csv}."

    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == runs.CSV_FIELDS
    assert [r["name"] for r in rows] == ["20261125-110000-fast", "20261125-100000-seed"]
    seed = rows[1]
    assert (seed["state"], seed["epochs_done"], seed["epochs"]) == ("completed", "3", "3")
    assert float(seed["best_val_accuracy"]) == 0.75 and float(seed["last_val_accuracy"]) == 0.625
    assert (seed["wall_seconds"], seed["seconds"], seed["data"]) == ("12.5", "12", "cifar10")
    assert rows[0]["best_val_accuracy"] == "" and rows[0]["strategy"] == "default"


def test_cli_csv_to_stdout_holds_only_the_csv(tmp_path, capsys):
    _two_runs(tmp_path / "runs")
    assert runs.main(["list", "--runs-dir", str(tmp_path / "runs"), "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["preset"] for r in rows] == ["fast", "seed"]


def test_cli_says_what_is_wrong_in_one_line(tmp_path, capsys):
    assert runs.main(["list", "--runs-dir", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err.strip() == f"error: There is no runs folder at {tmp_path}/nope."
    (tmp_path / "empty").mkdir()
    target = tmp_path / "missing" / "runs.csv"
    assert runs.main(["list", "--runs-dir", str(tmp_path / "empty"), "--csv", str(target)]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == f"No runs in {tmp_path}/empty."
    assert err.startswith(f"error: The CSV file {target} cannot be written")
    with pytest.raises(SystemExit):
        runs.main(["list", "--help"])
    assert "--csv FILE" in capsys.readouterr().out


def test_cli_lists_a_real_run_without_loading_tensorflow(trained_run):
    code = (
        "import sys; from core import runs; runs.main(['list', '--csv', '-']);"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    *lines, loaded = proc.stdout.splitlines()
    assert loaded == "False False"
    [row] = csv.DictReader(io.StringIO("\n".join(lines)))
    history = runs.read_history(trained_run)
    assert (row["name"], row["state"], row["preset"]) == (trained_run.name, "completed", "seed")
    assert row["epochs_done"] == "2" and row["params"] != ""
    assert float(row["best_val_accuracy"]) == max(h["val_accuracy"] for h in history)
    assert float(row["wall_seconds"]) > 0 and row["path"] == str(trained_run)


def test_the_settings_that_differ_between_runs(tmp_path, capsys):
    from dataclasses import replace

    from core.augment import AugmentConfig
    from core.train import TrainConfig

    base = TrainConfig(data="d", name="a")
    other = replace(base, seed=3, learning_rate=0.05, name="b", augment=AugmentConfig(flip=True))
    older = base.to_dict()
    del older["drop_near_duplicates"]  # a config written before the setting existed
    configs = {"A": base.to_dict(), "B": other.to_dict(), "C": older}
    assert runs.settings_that_differ(configs) == [
        {"setting": "seed", "A": "0", "B": "3", "C": "0"},
        {"setting": "drop_near_duplicates", "A": "False", "B": "False", "C": "(not set)"},
        {"setting": "learning_rate", "A": "0.001", "B": "0.05", "C": "0.001"},
        {"setting": "augment.flip", "A": "False", "B": "True", "C": "False"},
    ]
    assert runs.settings_that_differ({"A": base.to_dict(), "B": base.to_dict()}) == []

    for name, config in (("A", base), ("B", other), ("A2", base)):
        (tmp_path / name).mkdir()
        atomic_write_json(tmp_path / name / "config.json", config.to_dict())
    assert runs.main(["diff", "--runs-dir", str(tmp_path), "A", "B"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "setting        A      B",
        "seed           0      3",
        "learning_rate  0.001  0.05",
        "augment.flip   False  True",
    ]
    assert runs.main(["diff", "--runs-dir", str(tmp_path), "A", "A2"]) == 0
    assert capsys.readouterr().out == "The runs were started with the same settings.\n"
    assert runs.main(["diff", "--runs-dir", str(tmp_path), "A", "nope"]) == 1
    assert "nope is not a run: no config.json" in capsys.readouterr().err
    assert runs.main(["diff", "--runs-dir", str(tmp_path), "A"]) == 1
    assert "Name two runs or more" in capsys.readouterr().err


def test_a_job_records_how_it_ended_and_a_result_it_cannot_write(tmp_path):
    from core.errors import DataError

    class Stopped(Exception):
        pass

    folder = tmp_path / "job"
    folder.mkdir()
    assert runs.run_job(folder, lambda: {"a": 1}, "result.json", Stopped) == {"a": 1}
    assert runs.read_status(folder)["state"] == "completed"
    assert json.loads((folder / "result.json").read_text()) == {"a": 1}

    def stop():
        raise Stopped()

    assert runs.run_job(folder, stop, "result.json", Stopped) == {}
    assert runs.read_status(folder)["state"] == "stopped"

    def refuse():
        raise DataError("No images.")

    with pytest.raises(DataError):
        runs.run_job(folder, refuse, "result.json", Stopped)
    assert runs.read_status(folder)["message"] == "No images."
    (folder / "blocked.json").mkdir()  # where the result goes: a write fails as on a full disk
    with pytest.raises(DataError, match=r"^The result could not be written in .*job \("):
        runs.run_job(folder, lambda: {"a": 1}, "blocked.json", Stopped)
    status = runs.read_status(folder)
    assert status["state"] == "failed" and status["message"].startswith("The result could not")
