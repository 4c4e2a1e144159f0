"""Faults a long-running dashboard must survive: killed training, concurrent sessions,
a full disk and a read-only runs folder (real ones: a small tmpfs, a read-only mount)."""

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import jobs, runs
from core.errors import RunError
from core.model import load_model
from core.train import TrainConfig, start_run, train
from tests.mounts import fill, needs_root, read_only, small_disk

ROOT = Path(__file__).resolve().parent.parent


def _spawn(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "core.train", *args, "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _kill_when(proc, predicate, timeout=120.0, poll=0.001):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        if predicate():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(poll)
    proc.kill()
    raise AssertionError("the kill point was never reached")


def _status(run_dir):
    return runs.read_status(run_dir)


def _writing_checkpoint(run_dir):
    return lambda: any((run_dir / "checkpoints").glob(".*.tmp*"))


def _check_clean(run_dir):
    """After a kill: interrupted, every checkpoint on disk loads, the newest one too."""
    assert _status(run_dir)["state"] == "interrupted"
    for path in sorted((run_dir / "checkpoints").glob("epoch_*.keras")):
        load_model(path)
    history = runs.read_history(run_dir)
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))


def test_five_kills_at_different_moments_five_clean_resumes(tmp_path):
    from tests.conftest import write_cifar_archive

    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=60)
    config = TrainConfig(data=str(archive), epochs=6, batch_size=8, val_fraction=0.1)
    run_dir = start_run(config)
    steps = -(-270 // 8)
    kill_points = [
        ("during the first batch", lambda: _status(run_dir).get("state") == "running"),
        ("mid-epoch", lambda: (_status(run_dir).get("batch") or 0) >= steps // 2),
        ("while writing a checkpoint", _writing_checkpoint(run_dir)),
        ("right after an epoch", lambda: len(runs.read_history(run_dir)) >= 2),
        ("while writing a checkpoint again", _writing_checkpoint(run_dir)),
    ]
    first = True
    survived = []
    for name, predicate in kill_points:
        proc = _spawn(["--run-dir", str(run_dir)] if first else ["--resume", str(run_dir)])
        first = False
        assert _kill_when(proc, predicate), f"training ended before the kill point '{name}'"
        _check_clean(run_dir)
        survived.append((name, len(runs.read_history(run_dir))))
    proc = _spawn(["--resume", str(run_dir)])
    assert proc.wait(timeout=300) == 0
    assert _status(run_dir)["state"] == "completed"
    assert [h["epoch"] for h in runs.read_history(run_dir)] == [1, 2, 3, 4, 5, 6]
    assert not list(run_dir.rglob(".*.tmp*")), "a partial file survived the resume"
    x = runs.read_batch_points(run_dir)["x"]  # the live curves, each epoch's last try
    assert x == sorted(set(x)) and x[-1] == 6.0 and {1.0, 2.0, 3.0, 4.0, 5.0} < set(x)
    load_model(run_dir / "model.keras")
    assert len(survived) == 5


def _png(colour, size=(40, 30)):
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def test_eight_threads_classifying_at_once_get_exactly_the_serial_results(trained_run):
    from core.classify import classify_bytes

    model = load_model(trained_run / "model.keras")
    names = ["cat", "dog", "frog"]
    rng = np.random.default_rng(0)
    files = [_png(tuple(int(v) for v in rng.integers(0, 256, 3))) for _ in range(50)]
    serial = [classify_bytes(model, f, names).probs for f in files]
    results, errors = {}, []

    def worker(t):
        try:
            for i, f in enumerate(files):
                results[(t, i)] = classify_bytes(model, f, names).probs
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(results) == 8 * 50
    for (_, i), probs in results.items():
        np.testing.assert_array_equal(probs, serial[i])


@pytest.mark.parametrize("typed", ["../escape", "/etc/cron.d/x", "a\x00b", "x" * 500, ".."])
def test_typed_run_names_stay_inside_the_runs_directory(tmp_path, typed):
    from core.errors import RunError

    try:
        path = runs.run_path(typed, tmp_path)
    except RunError:
        return
    assert path.parent == tmp_path.resolve() and len(path.name) <= runs.MAX_NAME


def test_reading_a_model_while_it_is_being_saved_never_sees_a_partial_file(trained_run):
    from core.train import save_model_atomic

    path = trained_run / "model.keras"
    model = load_model(path)
    stop, errors, loads = threading.Event(), [], [0]

    def writer():
        while not stop.is_set():
            save_model_atomic(model, path)

    def reader():
        while not stop.is_set():
            try:
                load_model(path)
                loads[0] += 1
            except Exception as err:  # collected and asserted below
                errors.append(err)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for th in threads:
        th.start()
    time.sleep(4)
    stop.set()
    for th in threads:
        th.join()
    assert errors == [] and loads[0] > 3


# --- a real full disk and a real read-only folder (tests/mounts.py; root only) ----------

FULL_SENTENCE = "The disk is full: training stopped because a checkpoint could not be written."
READ_ONLY_SENTENCE = "The runs folder cannot be written (Read-only file system): training stopped."


@pytest.fixture(autouse=True)
def _own_fallback_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_STATUS_FALLBACK_DIR", str(tmp_path / "status-fallback"))


def _wait_until(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "the training never got that far"
        time.sleep(0.05)


def _on_disk(run_dir) -> dict:
    return json.loads((run_dir / "status.json").read_text())


@needs_root
def test_a_really_full_disk_fails_the_run_with_the_disk_full_sentence(tmp_path, tiny_dataset):
    config = TrainConfig(data="generated", epochs=2, batch_size=16)
    with small_disk(tmp_path / "disk", "4m") as disk:
        run_dir = start_run(config, disk / "runs")
        fill(disk, leave=600_000)  # room for status and TensorBoard, not a 2 MB checkpoint
        started = time.monotonic()
        with pytest.raises(RunError, match="disk is full"):
            train(config, tiny_dataset, run_dir)
        seconds = time.monotonic() - started
        status = _on_disk(run_dir)
        assert (status["state"], status["message"]) == ("failed", FULL_SENTENCE)
        assert status["pid"] is None and runs.read_status(run_dir)["state"] == "failed"
        assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == []
        assert not list(run_dir.rglob(".*.tmp*")), "the partial checkpoint still holds space"
        assert not runs.fallback_dir().exists()  # the run folder itself took the status
    print(f"\nfull disk: failed and recorded {seconds:.1f} s after the start of training")


@needs_root
def test_a_full_disk_at_launch_gives_a_sentence_and_leaves_nothing_half_created(tmp_path):
    config = TrainConfig(data=str(tmp_path / "images"), epochs=1)
    with small_disk(tmp_path / "disk", "1m") as disk:
        base = disk / "runs"
        base.mkdir()
        fill(disk)
        with pytest.raises(RunError, match=r"^The disk holding the runs folder .* is full"):
            jobs.launch(config, base)
        assert [p.name for p in base.iterdir()] == [jobs.LOCK_FILE]


@needs_root
def test_a_read_only_runs_folder_refuses_launches_from_the_dashboard_and_the_cli(tmp_path):
    from tests.conftest import write_image_folder

    write_image_folder(tmp_path / "images", per_class=4, size=32)
    base = tmp_path / "runs"
    base.mkdir()
    config = TrainConfig(data=str(tmp_path / "images"), epochs=1)
    with read_only(base):
        with pytest.raises(RunError, match=r"^The runs folder .* is on a read-only file system"):
            jobs.launch(config, base)
        cli = subprocess.run(
            [sys.executable, "-m", "core.train", "--data", str(tmp_path / "images")]
            + ["--runs-dir", str(base), "--epochs", "1", "--quiet"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert cli.returncode == 1
    assert f"error: The runs folder {base} is on a read-only file system" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert list(base.iterdir()) == []


@needs_root
@pytest.mark.parametrize("fallback", ["outside the runs folder", "unwritable too"])
def test_a_runs_folder_turning_read_only_mid_training_ends_the_run_as_failed(
    tmp_path, monkeypatch, fallback
):
    from tests.conftest import write_image_folder

    write_image_folder(tmp_path / "images", per_class=12, size=32)
    base = tmp_path / "runs"
    if fallback == "unwritable too":
        monkeypatch.setenv("CNN_STATUS_FALLBACK_DIR", str(base / "status-fallback"))
    config = TrainConfig(data=str(tmp_path / "images"), epochs=50, batch_size=4)
    run_dir = jobs.launch(config, base)
    try:
        jobs.wait_for_state(run_dir, ("running",), timeout=120)
        # In epoch 2 the TensorBoard writers are open; what fails next is the run's own write.
        _wait_until(lambda: (runs.read_status(run_dir).get("epoch") or 0) >= 2)
        pgid = json.loads((run_dir / jobs.JOB_FILE).read_text())["pid"]
        with read_only(base, pause_group=pgid):
            turned = time.monotonic()
            current = jobs.wait_for_state(run_dir, jobs.FINISHED, timeout=60)
            seconds = time.monotonic() - turned
            assert (current["state"], current["message"]) == ("failed", READ_ONLY_SENTENCE)
            assert _on_disk(run_dir)["state"] == "running"  # the folder refused the truth
            # The run records its failure, then unwinds to the line its command prints: a
            # loaded machine can show "failed" before that line is in the log.
            _wait_until(lambda: "error: " + READ_ONLY_SENTENCE in jobs.log_tail(run_dir, 200), 30)
            assert runs.fallback_dir().exists() == (fallback == "outside the runs folder")
    finally:
        job = json.loads((run_dir / jobs.JOB_FILE).read_text())
        if runs.process_alive(job["pid"], job["pid_start"]):
            os.killpg(job["pid"], signal.SIGKILL)
    print(f"\nread-only mid-training ({fallback}): 'failed' shown {seconds:.1f} s after")


@needs_root
def test_a_failure_the_run_folder_refuses_is_read_from_the_fallback_for_that_process_only(
    tmp_path,
):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    runs.write_status(run_dir, state="running", **runs.process_identity())
    with read_only(run_dir):
        where = runs.record_failure(run_dir, "The disk went away.")
        assert where.parent == runs.fallback_dir()
        current = runs.read_status(run_dir)
        assert (current["state"], current["message"]) == ("failed", "The disk went away.")
    # A resume is another process: the old record no longer speaks for the run.
    runs.write_status(run_dir, state="running", pid=os.getppid(), pid_start=None)
    assert runs.read_status(run_dir)["state"] == "running"


def test_atomic_writes_fsync_the_file_and_then_its_folder(tmp_path, monkeypatch):
    import stat

    from core import fileio

    synced, real_fsync = [], os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(fileio.os, "fsync", spy)
    fileio.atomic_write_json(tmp_path / "a.json", {"x": 1})
    fileio.atomic_write_json(tmp_path / "a.json", {"x": 2})
    assert fileio.read_json(tmp_path / "a.json") == {"x": 2}
    assert synced == [False, True, False, True]  # the data, then the rename, each time
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
