"""Faults a long-running dashboard must survive: killed training, concurrent sessions."""

import io
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

from core import runs
from core.model import load_model
from core.train import TrainConfig, start_run

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
