"""Training jobs in real child processes, on tiny generated CIFAR archives."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import write_cifar_archive

from core import jobs, lrfind, runs
from core.errors import RunError
from core.fileio import atomic_write_json
from core.model import ConvBlock, ModelConfig
from core.train import TrainConfig


def test_progress_line_reads_epoch_batch_speed_and_eta():
    status = {
        "state": "running",
        "epoch": 3,
        "epochs": 20,
        "batch": 40,
        "steps": 100,
        "images_per_sec": 1210.4,
        "eta_seconds": 250.2,
    }
    fraction, text = jobs.progress(status)
    assert fraction == pytest.approx((2 * 100 + 40) / 2000)
    assert text == "epoch 3/20 · batch 40/100 · 1210 img/s · ETA 04:10"
    assert jobs.progress({"state": "starting"})[0] == 0.0
    done = jobs.progress(status | {"epoch": 20, "batch": 100, "finishing": "calibrating"})
    assert done == (1.0, "finishing: calibrating")
    assert jobs.clock(3725) == "1:02:05"


@pytest.mark.parametrize(
    "text, widths", [("64", [64]), ("128, 64", [128, 64]), ("", []), (" 32 ,", [32])]
)
def test_dense_widths_parse_from_text(text, widths):
    assert jobs.parse_widths(text) == widths


@pytest.mark.parametrize("text", ["64x", "128,-1", "0", "1.5"])
def test_dense_widths_that_are_not_positive_integers_are_refused(text):
    with pytest.raises(RunError, match="positive whole numbers"):
        jobs.parse_widths(text)


def test_an_architecture_that_shrinks_the_image_to_nothing_is_refused():
    fits = ModelConfig(input_size=32, blocks=[ConvBlock(8, padding="same")] * 5)
    too_deep = ModelConfig(input_size=32, blocks=[ConvBlock(8, kernel_size=5)] * 3)
    jobs.check_model_fits(fits, 32)  # 32 -> 16 -> 8 -> 4 -> 2 -> 1
    with pytest.raises(RunError, match="no pixels left after block 3"):
        jobs.check_model_fits(too_deep, 32)  # 32 -> 14 -> 5 -> 0
    assert jobs.model_summary(fits)[-1] == {
        "layer": "probs",
        "type": "Dense",
        "output_shape": "(10,)",
        "params": 64 * 10 + 10,
    }


def _fake_running_run(base, name="20250101-000000-seed", epoch=3, epochs=20):
    run_dir = base / name
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / "config.json", {"preset": "seed", "epochs": epochs})
    runs.write_status(
        run_dir, state="running", epoch=epoch, epochs=epochs, **runs.process_identity()
    )
    return run_dir


def test_nothing_starts_while_a_run_is_in_progress(tmp_path):
    base = tmp_path / "runs"
    running = _fake_running_run(base)
    stopped = base / "20240101-000000-seed"
    stopped.mkdir()
    atomic_write_json(stopped / "config.json", {"preset": "seed"})
    runs.write_status(stopped, state="stopped")
    sentence = (
        r"A training run is in progress \(20250101-000000-seed, epoch 3/20\)\. "
        r"Stop it or wait for it to finish\."
    )
    with pytest.raises(RunError, match=sentence):
        jobs.launch(TrainConfig(data="unused"), base)
    with pytest.raises(RunError, match=sentence):
        jobs.launch_resume(stopped)
    with pytest.raises(RunError, match="still training"):
        jobs.delete(running)
    assert jobs.active_run(base)["name"] == running.name
    assert sorted(p.name for p in base.iterdir() if p.is_dir()) == [stopped.name, running.name]


def test_a_completed_run_or_one_without_checkpoint_does_not_resume(trained_run):
    with pytest.raises(RunError, match="is completed; only a stopped or interrupted run"):
        jobs.launch_resume(trained_run)
    runs.write_status(trained_run, state="stopped")
    for f in (trained_run / "checkpoints").iterdir():
        f.unlink()
    with pytest.raises(RunError, match="has no checkpoint to resume from"):
        jobs.launch_resume(trained_run)


def test_launch_stop_and_resume_in_child_processes(tmp_path):
    # 1,801 training images in batches of 8: an epoch takes seconds, a batch milliseconds,
    # so a stop that waited for the end of the epoch would show in the history.
    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=400)
    config = TrainConfig(data=str(archive), epochs=2, batch_size=8, name="life")
    with ThreadPoolExecutor(2) as pool:  # two clicks at once start one run
        outcomes = [pool.submit(jobs.launch, config) for _ in range(2)]
    errors = [f.exception() for f in outcomes if f.exception()]
    (run_dir,) = [f.result() for f in outcomes if not f.exception()]
    assert len(errors) == 1 and "in progress" in str(errors[0])
    assert [p.name for p in runs.default_runs_dir().glob("*/config.json")] == ["config.json"]
    assert jobs.status(run_dir)["state"] in ("starting", "running")

    jobs.wait_for_state(run_dir, ("running",), timeout=60)
    status = _wait(run_dir, lambda s: s.get("epoch") == 2 and s.get("batch", 0) < s["steps"] / 2)
    assert status["steps"] == 226 and status["images_per_sec"] > 0 and status["eta_seconds"] > 0
    assert len(runs.read_history(run_dir)) == 1

    asked = time.monotonic()
    jobs.stop(run_dir)
    stopped = jobs.wait_for_state(run_dir, jobs.FINISHED, timeout=30)
    assert stopped["state"] == "stopped" and time.monotonic() - asked < 5.0
    assert len(runs.read_history(run_dir)) == 1  # epoch 2 was cut short, not finished
    assert (run_dir / "checkpoints" / "last.keras").is_file()
    assert (run_dir / "model.keras").is_file()

    jobs.launch_resume(run_dir)
    assert jobs.active_run()["name"] == run_dir.name
    done = jobs.wait_for_state(run_dir, jobs.FINISHED, timeout=90)
    assert done["state"] == "completed", jobs.log_tail(run_dir)
    assert [h["epoch"] for h in runs.read_history(run_dir)] == [1, 2]
    assert jobs.active_run() is None
    assert "--resume" in jobs.log_tail(run_dir, 200)


def test_a_child_that_dies_before_training_reads_failed_with_its_reason(tmp_path):
    missing = tmp_path / "no-such-data"
    run_dir = jobs.launch(TrainConfig(data=str(missing), epochs=1))
    failed = jobs.wait_for_state(run_dir, jobs.FINISHED, timeout=60)
    assert failed["state"] == "failed"
    assert failed["message"] == f"The path {missing} does not exist."
    assert f"error: The path {missing} does not exist." in jobs.log_tail(run_dir)
    assert runs.read_status(run_dir)["state"] == "failed"  # recorded, not only inferred
    assert jobs.list_runs()[0]["state"] == "failed"


def test_relative_paths_mean_to_the_child_what_they_mean_to_the_caller(tmp_path, monkeypatch):
    # The child runs in the project folder; the dashboard may have been started elsewhere.
    (tmp_path / "here").mkdir()
    write_cifar_archive(tmp_path / "here" / "c.tar.gz", per_batch=10)
    monkeypatch.chdir(tmp_path / "here")
    monkeypatch.setenv("CNN_RUNS_DIR", "runs")
    run_dir = jobs.launch(TrainConfig(data="c.tar.gz", epochs=1, batch_size=8))
    assert run_dir.parent == tmp_path / "here" / "runs"
    done = jobs.wait_for_state(run_dir, jobs.FINISHED, timeout=90)
    assert done["state"] == "completed", jobs.log_tail(run_dir)
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["data"] == str(tmp_path / "here" / "c.tar.gz")


def test_a_stop_while_starting_ends_the_child_at_once(tmp_path):
    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=10)
    run_dir = jobs.launch(TrainConfig(data=str(archive), epochs=1))
    job = json.loads((run_dir / "job.json").read_text())
    asked = time.monotonic()
    jobs.stop(run_dir)
    status = jobs.status(run_dir)
    assert time.monotonic() - asked < 2.0
    assert status["state"] == "stopped" and status["message"] == "Stopped before training began."
    assert not runs.process_alive(job["pid"], job["pid_start"])
    with pytest.raises(RunError, match="no checkpoint to resume from"):
        jobs.launch_resume(run_dir)


def _wait(run_dir, ready, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = jobs.status(run_dir)
        if ready(status):
            return status
        assert status["state"] in jobs.ACTIVE, jobs.log_tail(run_dir)
        time.sleep(0.05)
    raise AssertionError(f"timed out; status {jobs.status(run_dir)}")


def test_log_tail_returns_the_last_lines(tmp_path):
    assert jobs.log_tail(tmp_path) == ""
    (tmp_path / "train.log").write_text("\n".join(f"line {i}" for i in range(50)))
    assert jobs.log_tail(tmp_path, 3) == "line 47\nline 48\nline 49"


def test_a_transfer_preset_without_weights_is_refused_before_anything_starts(tmp_path):
    base = tmp_path / "runs"
    with pytest.raises(RunError, match="ImageNet weights for MobileNetV3Small are not on"):
        jobs.launch(TrainConfig(preset="mobilenet", data="unused", image_size=96), base)
    assert not base.exists() or not [p for p in base.iterdir() if p.is_dir()]


def test_a_search_runs_in_a_child_process_blocks_launches_and_stops(tmp_path):
    from core.search import SearchConfig, summarise

    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=400)
    config = SearchConfig(data=str(archive), preset="seed", trials=3, epochs=5, batch_size=8)
    search_dir = jobs.launch_search(config)
    assert search_dir.name.startswith(".search-")
    assert jobs.status(search_dir)["state"] in ("starting", "running")
    assert jobs.active_search()["name"] == search_dir.name
    with pytest.raises(RunError, match=r"A hyperparameter search is in progress \(\.search-"):
        jobs.launch(TrainConfig(data="unused"))
    with pytest.raises(RunError, match="A hyperparameter search is in progress"):
        jobs.launch_search(config)

    def training(status):
        return status.get("run") and jobs.status(search_dir.parent / status["run"]).get("batch")

    _wait(search_dir, training, timeout=90)
    assert [r["state"] for r in jobs.list_runs()] == ["running"]
    jobs.stop_search(search_dir)
    done = jobs.wait_for_state(search_dir, jobs.FINISHED, timeout=30)
    assert done["state"] == "stopped", jobs.log_tail(search_dir)
    (trial,) = summarise(search_dir)["trials"]
    assert trial["state"] == "stopped" and runs.read_status(trial["run_dir"])["state"] == "stopped"
    assert jobs.active_search() is None and jobs.latest_search()["name"] == search_dir.name
    assert "python -m core.search --search-dir" in jobs.log_tail(search_dir, 200)


def test_finished_rows_are_kept_until_their_files_change_unfinished_ones_read_again(tmp_path):
    def run(name, **status):
        folder = tmp_path / name
        folder.mkdir()
        atomic_write_json(folder / "config.json", TrainConfig(epochs=3).to_dict())
        atomic_write_json(folder / "history.json", [{"epoch": 1, "val_accuracy": 0.25}])
        runs.write_status(folder, **status)
        return folder

    done = run("20261202-000001-done", state="completed")
    live = run("20261202-000002-live", state="running", **runs.process_identity())
    rows, signature = jobs.list_runs(tmp_path), jobs.runs_signature(tmp_path)
    assert [(r["name"], r["state"]) for r in rows] == [
        (live.name, "running"),
        (done.name, "completed"),
    ]
    assert jobs.runs_signature(tmp_path) == signature
    # A learning-rate test's folder, whose status changes at every step, is no run.
    test = lrfind.start_folder(TrainConfig(epochs=3), tmp_path)
    runs.write_status(test, state="running", step=1)
    assert jobs.list_runs(tmp_path) == rows and jobs.runs_signature(tmp_path) == signature

    # Training goes on: an epoch later the unfinished row says so, the finished one is kept.
    atomic_write_json(live / "history.json", [{"epoch": e, "val_accuracy": 0.5} for e in (1, 2)])
    again = jobs.refreshed(rows)
    assert again[0]["epochs_done"] == 2 and again[1] is rows[1]
    seen = {signature, jobs.runs_signature(tmp_path)}
    runs.write_status(live, state="completed")
    assert jobs.refreshed(rows)[0]["state"] == "completed"
    seen.add(jobs.runs_signature(tmp_path))
    for change in (
        lambda: atomic_write_json(done / "model_card.json", {"params": 1}),
        lambda: (done / "model.keras").write_bytes(b"weights"),
        lambda: atomic_write_json(done / jobs.JOB_FILE, {"launched": 1.0}),  # resumed
        lambda: jobs.delete(done),
    ):
        change()
        seen.add(jobs.runs_signature(tmp_path))
    assert len(seen) == 7  # each change to a file a row is read from


def test_a_child_that_ignores_sigterm_is_killed_and_found_ended(tmp_path):
    script = tmp_path / "stubborn.py"
    # Ignores SIGTERM and holds 400 MB, which the kernel takes a moment to free when killed.
    script.write_text(
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "held = bytearray(400 * 2**20)\nprint('ready', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, start_new_session=True
    )
    threading.Thread(target=proc.wait, daemon=True).start()
    assert proc.stdout.readline() == b"ready\n"
    job = {"pid": proc.pid, "pid_start": runs.process_start(proc.pid)}
    assert jobs.end_process(job, grace=0.2)
    assert not jobs.alive(job)  # at once, as a page reads it next


def test_a_stopped_child_ends_on_sigterm_without_waiting_for_the_grace(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    threading.Thread(target=proc.wait, daemon=True).start()
    os.kill(proc.pid, signal.SIGSTOP)  # as Ctrl-Z leaves it
    job = {"pid": proc.pid, "pid_start": runs.process_start(proc.pid)}
    start = time.monotonic()
    assert jobs.end_process(job, grace=5.0)
    assert not jobs.alive(job) and time.monotonic() - start < 2  # SIGTERM, not the SIGKILL
