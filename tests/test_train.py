import csv
import errno
import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from core import jobs, runs
from core import train as train_mod
from core.augment import AugmentConfig
from core.errors import RunError
from core.model import PRESETS, load_model
from core.train import FINISHING, RECIPES, TrainConfig, make_pipeline, parse_augment, resume, train

ROOT = Path(__file__).resolve().parent.parent


def _config(**kw):
    return TrainConfig(**{"preset": "seed", "epochs": 2, "batch_size": 16, **kw})


def _strokes(n_per_class: int, seed: int):
    """White strokes on black, 32 x 32, greyscale in RGB (a bar across, a bar down, a
    diagonal, a box): maps mostly flat, as MNIST's digits."""
    rng = np.random.default_rng(seed)
    x = np.zeros((4 * n_per_class, 32, 32), np.uint8)
    for i in range(len(x)):
        kind, a, b, t = i % 4, *rng.integers(6, 22, 2), int(rng.integers(1, 3))
        length = int(rng.integers(8, 12))
        if kind == 0:
            x[i, a : a + t, b - 5 : b + length] = 255
        elif kind == 1:
            x[i, a - 5 : a + length, b : b + t] = 255
        elif kind == 2:
            for k in range(length):
                x[i, a - 4 + k, b - 4 + k : b - 4 + k + t] = 255
        else:
            x[i, a - 4 : a + 4, b - 4 : b + 4] = 255
            x[i, a - 4 + t : a + 4 - t, b - 4 + t : b + 4 - t] = 0
    return np.repeat(x[..., None], 3, axis=-1), np.arange(len(x)) % 4


def test_the_quick_preset_learns_white_strokes_on_black_in_bf16():
    """Without a bound on SGD's steps its first step grew the weights 2e5-fold (the speed
    layout's batch norm hides it from the loss) and bf16 lost the signal: 25%, chance."""
    from core.data import Dataset

    (x, y), (xv, yv) = _strokes(24, seed=0), _strokes(8, seed=1)
    ds = Dataset(["across", "down", "diagonal", "box"], "gen", {"train": (x, y), "val": (xv, yv)})
    config = replace(
        train_mod.preset_defaults("quick"), epochs=6, batch_size=16, precision="mixed_bfloat16"
    )
    run_dir = train(config, ds)
    history = runs.read_history(run_dir)
    assert history[-1]["val_accuracy"] >= 0.9
    # The app computes its float32 copy, whose accuracy the card gives (the sidebar's label,
    # the Home page), as the Evaluate page does; bf16's of the last epoch beside it.
    metrics = json.loads((run_dir / "model_card.json").read_text())["metrics"]
    served = np.argmax(load_model(run_dir / "model.keras")(xv.astype(np.float32)), axis=1)
    assert metrics["val_accuracy"] == np.mean(served == yv)
    assert metrics["val_accuracy_in_training"] == history[-1]["val_accuracy"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_one_epoch_on_200_images(preset):
    from core.data import Dataset
    from tests.conftest import class_images

    x, y = class_images(70, 3)
    ds = Dataset(["a", "b", "c"], "gen", {"train": (x[:200], y[:200]), "val": (x[200:], y[200:])})
    run_dir = train(_config(preset=preset, epochs=1, batch_size=32), ds)
    hist = runs.read_history(run_dir)
    assert [h["epoch"] for h in hist] == [1]
    assert np.isfinite(hist[0]["loss"])
    assert runs.read_status(run_dir)["state"] == "completed"


def test_run_directory_holds_everything_a_run_promises(tiny_dataset):
    config = _config(augment=AugmentConfig(flip=True, crop_pad=2), schedule="cosine")
    run_dir = train(config, tiny_dataset)
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "config.json",
        "status.json",
        "history.json",
        "model.keras",
        "model_card.json",
        "tensorboard",
    } <= names
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "epoch_001.keras",
        "epoch_002.keras",
    ]
    assert not list(run_dir.rglob("*.tmp*")), "temporary files were left behind"
    hist = runs.read_history(run_dir)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert all(key in h for h in hist), key
    # cosine decay: the second epoch ends at a lower rate than the first
    assert hist[1]["lr"] < hist[0]["lr"]
    status = runs.read_status(run_dir)
    assert status["state"] == "completed" and status["pid"] == os.getpid()
    assert status["replicas"] == 1  # the default strategy: one device
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["class_names"] == ["red", "green", "blue"]
    assert card["input_size"] == 32 and card["epochs"] == 2
    assert card["params"] == 167_562 - 64 * 10 - 10 + 64 * 3 + 3  # seed net with 3 classes
    assert card["command"].startswith("python -m core.train --preset seed")
    assert "calibration" not in card  # 15 validation images are too few to fit a temperature
    assert card["novelty"] is None  # nor are 60 training images enough for novelty.fit
    saved = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    assert saved.model.blocks[0].filters == 32 and saved.augment.flip


def test_a_completed_runs_card_carries_a_temperature_fitted_on_its_validation_split(
    tiny_dataset, monkeypatch, capsys
):
    from core import evaluate as ev
    from core.model import load_model

    monkeypatch.setattr(ev, "MIN_CALIBRATION_IMAGES", 10)  # the tiny split's 15 will do
    monkeypatch.setattr(ev, "MIN_CALIBRATION_MISTAKES", 0)
    run_dir = train(_config(epochs=1), tiny_dataset, verbose=1)
    said = capsys.readouterr().out
    assert "Scoring the 15 validation images as the app computes them…" in said
    # Too few for the check for unfamiliar pictures: said, not passed over.
    assert (
        "No check for unfamiliar pictures: 60 training images are too few to learn what they "
        "look like (it takes 200)."
    ) in said
    card = json.loads((run_dir / "model_card.json").read_text())
    assert f"Calibrated: {ev.calibration_note(card['calibration'])}." in said
    x, y = tiny_dataset.split("val")
    expected = ev.calibration_record(ev.predict_probs(load_model(run_dir / "model.keras"), x), y)
    assert card["calibration"]["images"] == 15
    assert card["calibration"]["temperature"] == pytest.approx(expected["temperature"], rel=1e-3)


def test_a_completed_run_learns_what_its_training_images_look_like(
    tiny_dataset, monkeypatch, capsys
):
    from core import novelty
    from core.model import load_model

    monkeypatch.setattr(novelty, "MIN_IMAGES", 50)  # the tiny split's 60 will do
    said, write = [], novelty.write

    def fitting(model, model_path, *args, **kwargs):  # the real fit; the status meanwhile
        said.append(jobs.progress(runs.read_status(model_path.parent)))
        return write(model, model_path, *args, **kwargs)

    monkeypatch.setattr(novelty, "write", fitting)
    run_dir = train(_config(epochs=1), tiny_dataset, verbose=1)
    assert "Learning what the training images look like" in capsys.readouterr().out
    assert said == [(1.0, f"finishing: {FINISHING}")]
    assert runs.read_status(run_dir)["finishing"] is None
    record = json.loads((run_dir / "model_card.json").read_text())["novelty"]
    path = run_dir / "model.keras"
    check = novelty.load(run_dir / novelty.FILE, load_model(path), path)
    assert record["layers"] == check.layers == ["act1_1", "act2_1"]
    assert record["fit_images"] == 42 and record["calibration_images"] == 18  # 70/30
    x_val = tiny_dataset.split("val")[0]
    assert record["val_images"] == 15
    assert record["val_flagged"] == pytest.approx(check.unfamiliar(check.scores(x_val)).mean())


def test_a_full_disk_costs_a_completed_run_its_novelty_check_not_the_run(
    tiny_dataset, monkeypatch, capsys
):
    from core import novelty

    monkeypatch.setattr(novelty, "MIN_IMAGES", 50)

    def full(self, path, model_path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(novelty.Novelty, "save", full)
    run_dir = train(_config(epochs=1), tiny_dataset, verbose=1)
    assert "No check for unfamiliar pictures: No space left on device." in capsys.readouterr().out
    assert runs.read_status(run_dir)["state"] == "completed"
    assert json.loads((run_dir / "model_card.json").read_text())["novelty"] is None
    assert not (run_dir / novelty.FILE).exists()


def test_saved_model_takes_raw_uint8_and_returns_probabilities(tiny_dataset):
    run_dir = train(_config(epochs=1), tiny_dataset)
    model = load_model(run_dir / "model.keras")
    x = tiny_dataset.split("val")[0][:5]
    assert x.dtype == np.uint8
    probs = np.asarray(model(x.astype("float32")))
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


class _StopAt(keras.callbacks.Callback):
    """Asks for a stop the way the dashboard does: a file in the run directory."""

    def __init__(self, run_dir, epoch, batch):
        super().__init__()
        self.run_dir, self.at = Path(run_dir), (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            runs.request_stop(self.run_dir)


def test_stop_keeps_a_checkpoint_and_resume_continues_the_history(tiny_dataset):
    config = _config(epochs=3, schedule="onecycle")
    run_dir = train_mod.start_run(config)
    train(config, tiny_dataset, run_dir, callbacks=[_StopAt(run_dir, epoch=1, batch=1)])
    status = runs.read_status(run_dir)
    assert status["state"] == "stopped"
    assert status["checkpoint"] == "checkpoints/last.keras"
    assert [h["epoch"] for h in runs.read_history(run_dir)] == [1]
    assert (run_dir / "model.keras").is_file() and not (run_dir / "stop.request").exists()
    stopped = load_model(run_dir / "checkpoints" / "last.keras", compile=True)

    resume(run_dir, tiny_dataset)
    hist = runs.read_history(run_dir)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    # The live curves' points: each epoch's last is the epoch's training loss and accuracy.
    # (A status write at the last batch may add one just before, with the same x.)
    with (run_dir / runs.BATCHES).open() as f:
        ends = {r["epoch"]: r for r in csv.DictReader(f) if r["batch"] == r["steps"]}
    assert sorted(ends) == ["1", "2", "3"]
    for row, h in zip(ends.values(), hist, strict=True):
        assert float(row["loss"]) == pytest.approx(h["loss"], rel=1e-5)
        assert float(row["accuracy"]) == pytest.approx(h["accuracy"], rel=1e-5)
    x = runs.read_batch_points(run_dir)["x"]
    assert x == sorted(set(x)) and x[-1] == 3.0 and {1.0, 2.0} < set(x)
    assert runs.read_status(run_dir)["state"] == "completed"
    # The schedule went on from the start of epoch 2, not from zero: the last rate is 0.
    assert hist[-1]["lr"] == pytest.approx(0.0, abs=1e-9)
    assert int(stopped.optimizer.iterations.numpy()) > 0


def test_resume_refuses_a_completed_run(tiny_dataset):
    run_dir = train(_config(epochs=1), tiny_dataset)
    with pytest.raises(RunError, match="completed"):
        resume(run_dir, tiny_dataset)


@pytest.mark.parametrize(
    "err, words",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk is full"),
        (OSError(errno.EROFS, "Read-only file system"), "cannot be written"),
    ],
)
def test_disk_errors_fail_the_run_with_a_clear_status(tiny_dataset, monkeypatch, err, words):
    def refuse(model, path):
        raise err

    monkeypatch.setattr(train_mod, "save_model_atomic", refuse)
    run_dir = train_mod.start_run(_config())
    with pytest.raises(RunError, match=words):
        train(_config(), tiny_dataset, run_dir)
    status = runs.read_status(run_dir)
    assert status["state"] == "failed" and words in status["message"]


@pytest.mark.parametrize(
    "kind, text, sentence",
    [
        (
            "PermissionDeniedError",
            "runs/x/tensorboard/validation; Read-only file system",
            "The runs folder cannot be written (Read-only file system): training stopped.",
        ),
        (
            "ResourceExhaustedError",
            "runs/x/tensorboard/train/events.out; No space left on device",
            "The disk is full: training stopped because a checkpoint could not be written.",
        ),
    ],
)
def test_tensorflow_file_errors_get_the_os_sentences(kind, text, sentence):
    import tensorflow as tf

    # What the TensorBoard writers raise when the runs folder stops taking writes.
    assert train_mod._failure_message(getattr(tf.errors, kind)(None, None, text)) == sentence


def test_early_stopping_ends_before_the_last_epoch(tiny_dataset):
    # The tiny data is learned at once: val accuracy cannot improve after epoch 1 or 2.
    run_dir = train(_config(epochs=15, early_stopping=1, learning_rate=3e-3), tiny_dataset)
    assert len(runs.read_history(run_dir)) < 15


def test_the_card_gives_the_accuracy_of_the_epoch_whose_weights_the_model_has(tiny_dataset):
    """Early stopping restores its best epoch's weights, so the card (the sidebar's label,
    the Home page) gives that epoch's accuracy, not the last epoch's; without it, the last."""
    history = [
        {"epoch": 1, "val_accuracy": 0.6, "val_loss": 1.0, "accuracy": 0.5},
        {"epoch": 2, "val_accuracy": 0.8, "val_loss": 0.7, "accuracy": 0.7},
        {"epoch": 3, "val_accuracy": 0.7, "val_loss": 0.8, "accuracy": 0.8},
    ]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

    def metrics(**kw):
        m = train_mod.model_card(model, _config(epochs=3, **kw), tiny_dataset, history)["metrics"]
        return m["val_accuracy"], m["val_loss"], m["train_accuracy"], m["best_epoch"]

    assert metrics() == (0.7, 0.8, 0.8, 2)
    assert metrics(early_stopping=1) == (0.8, 0.7, 0.7, 2)
    # Without validation images nothing stopped it: the card said the first epoch's
    # training accuracy.
    for h in history:
        del h["val_accuracy"], h["val_loss"]
    assert metrics(early_stopping=1) == (None, None, 0.8, None)


def test_a_batch_that_leaves_few_steps_an_epoch_gets_a_smaller_one_named():
    from core.train import MIN_STEPS, batch_advice

    said = batch_advice(810, 512)  # a folder of 900 pictures, the speed presets' batch
    assert said.startswith("810 training images at a batch of 512 make 2 steps an epoch")
    assert "a batch of 64 makes 13" in said  # 128 would make 7
    assert batch_advice(300, 128).split(": ")[1].startswith("a batch of 32 makes 10")
    assert batch_advice(45_000, 512) is None  # CIFAR-10: 88 steps
    assert batch_advice(810, 64) is None and batch_advice(MIN_STEPS * 512, 512) is None
    assert batch_advice(60, 16) is None  # even a batch of 8 would make fewer than ten


def test_schedules_have_the_right_shape():
    steps = 10
    one = train_mod.make_schedule(
        _config(schedule="onecycle", learning_rate=1.0, epochs=4, warmup_epochs=1), steps
    )
    rates = [float(one(s)) for s in (0, 5, 10, 25, 40)]
    assert rates[0] == pytest.approx(0.1) and rates[2] == pytest.approx(1.0)
    assert rates[1] < rates[2] and rates[3] == pytest.approx(0.5) and rates[4] == 0.0
    step = train_mod.make_schedule(
        _config(schedule="step", learning_rate=1.0, epochs=4, step_epochs=2, step_factor=0.1), steps
    )
    assert [float(step(s)) for s in (0, 19, 21, 39)] == pytest.approx([1, 1, 0.1, 0.1])
    # No step within the run: the rate stays (Keras's schedule failed on no boundaries).
    none = _config(schedule="step", learning_rate=1.0, epochs=4, step_epochs=4)
    assert train_mod.make_schedule(none, steps) == 1.0
    assert float(train_mod.make_optimizer(none, steps).learning_rate) == 1.0
    cos = train_mod.make_schedule(
        _config(schedule="cosine", learning_rate=1.0, epochs=4, warmup_epochs=1), steps
    )
    assert float(cos(0)) == 0.0 and float(cos(10)) == pytest.approx(1.0)
    assert float(cos(40)) == pytest.approx(0.0, abs=1e-6)
    assert train_mod.make_schedule(_config(), steps) == 1e-3


def test_the_learning_rate_plan_follows_the_optimizers_schedule():
    steps = 10
    config = _config(schedule="step", learning_rate=1.0, epochs=4, step_epochs=2, step_factor=0.1)
    epochs, rates = train_mod.lr_plan(config, steps, points=8)
    assert epochs[0] == 0 and epochs[-1] == 4 and epochs == sorted(epochs)
    # Both sides of the step at epoch 2 (step 20 keeps the rate, step 21 has the new one).
    assert rates[epochs.index(2.0)] == 1.0 and rates[epochs.index(2.1)] == pytest.approx(0.1)
    schedule = train_mod.make_schedule(config, steps)
    assert rates == pytest.approx([float(schedule(round(e * steps))) for e in epochs])
    one = _config(schedule="onecycle", learning_rate=1.0, epochs=4, warmup_epochs=1)
    epochs, rates = train_mod.lr_plan(one, steps, points=8)
    assert max(rates) == pytest.approx(1.0) and epochs[rates.index(max(rates))] == 1.0
    assert rates[0] == pytest.approx(0.1) and rates[-1] == 0.0
    # The warm-up's end is drawn even when the even steps miss it: the peak, no kink.
    cos = _config(schedule="cosine", learning_rate=1.0, epochs=4, warmup_epochs=0.7)
    epochs, rates = train_mod.lr_plan(cos, steps, points=8)
    assert 0.7 in epochs and rates[epochs.index(0.7)] == pytest.approx(1.0) == max(rates)
    assert train_mod.lr_plan(_config(learning_rate=0.01), steps) == ([0.0, 2], [0.01, 0.01])


@pytest.mark.parametrize("name", train_mod.OPTIMIZERS)
def test_every_optimizer_and_loss_compiles_and_steps(tiny_dataset, name):
    loss = "mse" if name == "sgd" else "crossentropy"
    run_dir = train(
        _config(
            epochs=1,
            optimizer=name,
            loss=loss,
            label_smoothing=0.1 if loss == "crossentropy" else 0.0,
        ),
        tiny_dataset,
    )
    assert np.isfinite(runs.read_history(run_dir)[0]["loss"])


def test_parse_augment_reads_flags_and_numbers():
    cfg = parse_augment("flip, crop_pad=4,cutout=8 ,rotation=15")
    assert cfg == AugmentConfig(flip=True, crop_pad=4, cutout=8, rotation=15.0)
    assert train_mod.format_augment(cfg) == "flip,rotation=15.0,crop_pad=4,cutout=8"
    with pytest.raises(RunError, match="Unknown augmentation 'blur'"):
        parse_augment("blur=2")
    with pytest.raises(RunError, match="needs a number"):
        parse_augment("zoom=much")


def test_invalid_settings_are_refused_with_a_sentence():
    with pytest.raises(RunError, match="Optimizer must be one of"):
        _config(optimizer="adagrad").validate()
    with pytest.raises(RunError, match="Epochs must be at least 1"):
        _config(epochs=0).validate()


def test_cli_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        train_mod.main(["--help"])
    out = capsys.readouterr().out
    for flag in (
        "--preset",
        "--data",
        "--epochs",
        "--optimizer",
        "--lr",
        "--schedule",
        "--loss",
        "--label-smoothing",
        "--augment",
        "--val-fraction",
        "--seed",
        "--early-stopping",
        "--resume",
        "--model-config",
        "--batch-size",
        "--fit",
        "--strategy",
    ):
        assert flag in out, flag
    assert "the global batch" in out and "TF_CONFIG" in out


def test_cli_validates_on_the_folders_own_val_and_names_a_folder_it_does_not_read(tmp_path, capsys):
    from tests.conftest import write_image_folder

    write_image_folder(tmp_path / "pets" / "train", per_class=10, classes=("cat", "dog"))
    # Without a picture of dog, as a small export's valid/ may be: read, and said.
    write_image_folder(tmp_path / "pets" / "val", per_class=4, classes=("cat",))
    write_image_folder(tmp_path / "pets" / "holdout", per_class=2, classes=("cat", "dog"))
    args = ["--data", str(tmp_path / "pets"), "--epochs", "1", "--batch-size", "8"]
    args += ["--val-fraction", "0.5", "--runs-dir", str(tmp_path / "runs")]
    assert train_mod.main(args) == 0
    err = capsys.readouterr().err
    assert "warning: Only train/, test/ and one validation folder (val, valid, validation) " in err
    assert "the folder holdout/ beside train/ is not." in err
    assert "Validating on the folder's own val/ (4 images, none of dog): --val-fraction and " in err
    (card,) = (json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/model_card.json"))
    assert card["data"]["split_sizes"] == {"train": 20, "val": 4}
    assert card["data"]["val_folder"] == "val"


def test_cli_trains_on_a_cifar_archive_and_reports(tmp_path, capsys):
    from tests.conftest import write_cifar_archive

    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive, per_batch=12)
    code = train_mod.main(
        [
            "--data",
            str(archive),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--augment",
            "flip",
            "--quiet",
        ]
    )
    assert code == 0
    out, err = capsys.readouterr()
    assert out.startswith("completed: 1 epoch in ")
    # Six or five images a class: 10% of five rounds to none (`datastats.validation_advice`).
    assert "warning: At a validation fraction of 0.1, 4 of 10 classes hold out no image (" in err
    run_dir = Path(out.strip().splitlines()[-1])
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["data"]["split_sizes"] == {"train": 54, "val": 6, "test": 12}

    # As if it had been stopped after the first of two epochs: resuming says how long.
    saved = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps(saved | {"epochs": 2}))
    runs.write_status(run_dir, state="stopped", checkpoint="checkpoints/epoch_001.keras")
    assert train_mod.main(["--resume", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert "Resuming trains the epoch left: about " in err
    assert [h["epoch"] for h in runs.read_history(run_dir)] == [1, 2]


def test_cli_reports_a_missing_dataset_as_one_line(capsys, tmp_path):
    assert train_mod.main(["--data", str(tmp_path / "nope"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def _wait_for(predicate, timeout=90.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_killed_training_is_interrupted_and_resumes(tmp_path):
    from tests.conftest import write_cifar_archive

    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive, per_batch=40)
    config = _config(data=str(archive), epochs=3, batch_size=8)
    run_dir = train_mod.start_run(config)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.train", "--run-dir", str(run_dir), "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert _wait_for(lambda: len(runs.read_history(run_dir)) >= 1), "no epoch finished"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert runs.read_status(run_dir)["state"] == "interrupted"
    [row] = runs.list_runs(run_dir.parent)  # no model card: the count from the run's start
    assert row["params"] == 167_562 and not (run_dir / "model_card.json").exists()
    done = len(runs.read_history(run_dir))
    assert load_model(runs.latest_checkpoint(run_dir)) is not None
    from core.data import load_dataset

    resume(run_dir, load_dataset(str(archive), seed=0))
    assert [h["epoch"] for h in runs.read_history(run_dir)] == [1, 2, 3]
    assert done >= 1 and runs.read_status(run_dir)["state"] == "completed"


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_a_preset_brings_its_recipe_and_flags_still_win(tmp_path, capsys, monkeypatch, fast_bf16):
    from core import hardware
    from tests.conftest import write_cifar_archive

    # The speed presets ask for "auto": bf16 where the CPU has bf16 units, else float32.
    monkeypatch.setattr(hardware, "has_fast_bf16", lambda: fast_bf16)
    precision = "mixed_bfloat16" if fast_bf16 else "float32"

    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=12)
    argv = ["--preset", "quick", "--data", str(archive), "--epochs", "1", "--batch-size", "16"]
    assert train_mod.main([*argv, "--quiet"]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["optimizer"], config["schedule"], config["label_smoothing"]) == (
        "nesterov",
        "onecycle",
        0.2,
    )
    assert config["precision"] == precision and config["model"]["precision"] == precision
    # The card's command names the precision "auto" chose, so it reruns the same anywhere.
    card = json.loads((run_dir / "model_card.json").read_text())
    assert f"--precision {precision}" in card["command"]
    assert config["augment"]["flip"] and config["augment"]["crop_pad"] == 2
    assert (config["epochs"], config["batch_size"]) == (1, 16)  # given flags win
    model = load_model(run_dir / "model.keras", as_saved=True)  # as trained, not as served
    assert model.get_layer("conv1_1").compute_dtype == precision.removeprefix("mixed_")
    probs = np.asarray(model(np.zeros((2, 32, 32, 3), np.float32)))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_the_model_card_records_wall_time_and_the_machine(tiny_dataset, tmp_path):
    from core.train import TrainConfig, start_run, train

    config = TrainConfig(epochs=1, batch_size=16)
    run = train(config, tiny_dataset, start_run(config, tmp_path / "runs"))
    card = json.loads((run / "model_card.json").read_text())
    status = json.loads((run / "status.json").read_text())
    assert card["wall_seconds"] == status["wall_seconds"] > 0
    assert card["wall_seconds"] >= card["train_seconds"]
    assert card["machine"].endswith(" cores") and "unknown CPU" not in card["machine"]


def test_pipeline_gives_every_image_once_per_epoch_without_the_autotuner():
    from core.train import make_pipeline

    x = np.arange(100, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    y = np.arange(100) % 10
    ds = make_pipeline(x, y, 10, 32, shuffle_seed=0)
    # The autotuner's threads sometimes held up the end of an epoch by 30-45 s (BENCHMARKS.md).
    assert ds.options().autotune.enabled is False
    epochs = [[int(v) for b, _ in ds for v in np.asarray(b)[:, 0, 0, 0]] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(100))
    assert epochs[0] != epochs[1]  # reshuffled each epoch


def test_cli_help_lists_every_preset_with_its_description(capsys):
    from core.model import PRESET_DESCRIPTIONS

    with pytest.raises(SystemExit) as exit_info:
        train_mod.main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name, description in PRESET_DESCRIPTIONS.items():
        assert f"{name}: {' '.join(description.split())}" in text


def test_the_reproduce_command_gives_back_the_config_whatever_the_preset_defaults():
    import shlex

    from core.train import cli_command, parse_args, preset_defaults

    fast = preset_defaults("fast")
    assert (fast.epochs, fast.lookahead) == (RECIPES["fast"]["epochs"], True)
    # 20 epochs is TrainConfig's default but not fast's: the command must say it.
    configs = [
        replace(fast, epochs=20, warmup_epochs=2.0, augment=parse_augment("flip,cutout=12")),
        replace(fast, lookahead=False, augment=AugmentConfig()),
        replace(preset_defaults("seed"), epochs=7, learning_rate=0.01),
        fast,
    ]
    for config in configs:
        command = cli_command(config)
        assert parse_args(shlex.split(command)[3:]) == config, command
    assert "--epochs 20" in cli_command(configs[0])
    assert "--no-lookahead" in cli_command(configs[1])
    assert cli_command(fast) == f"python -m core.train --preset fast --data {fast.data}"


def test_a_custom_architectures_reproduce_command_builds_it_again(image_folder, tmp_path, capsys):
    """A search trial's architecture (the quick net, narrower, another dropout), as the Train
    form's custom ones: its card's command said "--preset custom" alone, which the command
    line refuses ("A custom preset needs a model config"). It now carries the architecture,
    and the run it starts writes the same command on its own card."""
    from core.model import preset_config
    from core.train import cli_command, parse_args, preset_defaults, resolved_model_config

    quick = preset_config("quick")
    model = replace(
        quick, blocks=[replace(b, filters=b.filters // 2) for b in quick.blocks], dense_dropout=0.2
    )
    config = replace(
        preset_defaults("quick"),
        preset="custom",
        model=model,
        data=str(image_folder),
        epochs=1,
        batch_size=16,
        precision="float32",  # a run writes "auto" as what it chose
        name="again",
    )
    command = cli_command(config)
    assert "--model-config" in command
    again = parse_args(shlex.split(command)[3:])
    assert replace(again, model=None) == replace(config, model=None)
    assert resolved_model_config(again, 3) == resolved_model_config(config, 3)

    argv = [*shlex.split(command)[3:], "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    assert train_mod.main(argv) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["command"] == command
    assert card["model_config"] == resolved_model_config(config, 3).to_dict()


@pytest.mark.parametrize(
    "text, says",
    [
        ('{"blocks": 3}', "does not describe an architecture"),
        ('{"blokcs": []}', "unexpected keyword argument 'blokcs'"),
        ("{bad", "is not valid JSON"),
        ("missing.json", "missing.json cannot be read: No such file or directory."),
    ],
)
def test_a_model_config_that_cannot_be_used_is_a_sentence(text, says, capsys):
    with pytest.raises(SystemExit):
        train_mod.main(["--model-config", text])
    assert says in capsys.readouterr().err


def test_a_model_config_may_be_a_runs_config_or_card(trained_run):
    from core.train import model_config_arg

    card = json.loads((trained_run / "model_card.json").read_text())
    for name in ("config.json", "model_card.json"):
        found = model_config_arg(str(trained_run / name))
        assert found.blocks == model_config_arg(json.dumps(card["model_config"])).blocks
        assert [b.filters for b in found.blocks] == [32, 64]  # the seed preset's


def test_pipeline_mixes_a_teachers_probabilities_into_the_targets():
    x = np.zeros((4, 8, 8, 3), np.uint8)
    y = np.array([0, 1, 2, 0])
    probs = np.array([[0.2, 0.3, 0.5]] * 4, np.float32)
    _, targets = next(iter(make_pipeline(x, y, 3, 4, teacher=(probs, 0.25))))
    expected = 0.75 * np.eye(3)[y] + 0.25 * probs
    np.testing.assert_allclose(np.asarray(targets), expected, rtol=1e-6)


def test_a_run_learns_from_a_teacher_and_keeps_its_targets(trained_run, tiny_dataset):
    from dataclasses import replace

    from core.evaluate import predict_probs
    from core.train import cli_command, parse_args

    config = _config(epochs=1, teacher=str(trained_run), teacher_weight=0.7)
    pets = replace(tiny_dataset, class_names=["cat", "dog", "frog"])  # the teacher's classes
    run_dir = train(config, pets)
    assert runs.read_status(run_dir)["state"] == "completed"
    x, _ = tiny_dataset.split("train")
    kept = np.load(run_dir / "teacher_probs.npy")
    teacher = load_model(trained_run / "model.keras", as_saved=True)
    np.testing.assert_allclose(kept, predict_probs(teacher, x, tta="flip"), atol=1e-5)
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["train_config"]["teacher"] == str(trained_run)
    again = parse_args(shlex.split(cli_command(config))[3:])
    assert (again.teacher, again.teacher_weight) == (str(trained_run), 0.7)


def test_a_teacher_that_does_not_fit_the_data_is_a_sentence(trained_run, tmp_path):
    from core.data import Dataset
    from tests.conftest import class_images

    x, y = class_images(10, 4)  # four classes; the teacher knows three
    ds = Dataset(list("abcd"), "gen", {"train": (x, y)})
    said = r"tells 3 classes apart \(cat, dog, frog\); this data has 4 \(a, b, c, d\), and a"
    with pytest.raises(RunError, match=said):
        train(_config(epochs=1, teacher=str(trained_run)), ds)
    x, y = class_images(10, 3)  # as many classes, other ones: it would teach nonsense
    ds = Dataset(["red", "green", "blue"], "gen", {"train": (x, y)})
    with pytest.raises(RunError, match="a teacher must know every class of the data"):
        train(_config(epochs=1, teacher=str(trained_run)), ds)
    with pytest.raises(RunError, match="No model at"):
        train(_config(epochs=1, teacher=str(tmp_path / "nothing")), ds)


def test_a_teacher_of_more_classes_teaches_its_answers_among_the_datas(trained_run):
    """The teacher knows cat, dog and frog; a cat and frog dataset learns from its
    probabilities of those two, renormalised."""
    from core.data import Dataset
    from core.evaluate import predict_probs, restricted
    from tests.conftest import class_images

    x, y = class_images(10, 3)
    two = y != 1  # the cat (red) and frog (blue) images, labelled 0 and 1
    ds = Dataset(["Cat", "frog"], "gen", {"train": (x[two], (y[two] // 2).astype(np.int32))})
    run_dir = train(_config(epochs=1, teacher=str(trained_run)), ds)
    kept = np.load(run_dir / "teacher_probs.npy")
    teacher = load_model(trained_run / "model.keras", as_saved=True)
    expected = restricted(predict_probs(teacher, x[two], tta="flip"), [0, 2])
    np.testing.assert_allclose(kept, expected, atol=1e-5)


def test_alternate_flip_shows_each_image_mirrored_on_every_other_epoch():
    import tensorflow as tf

    # Image i carries i in its left column and 200 elsewhere: mirrored, i moves right.
    x = np.full((100, 4, 4, 3), 200, np.uint8)
    x[:, :, 0] = np.arange(100, dtype=np.uint8)[:, None, None]
    turn = tf.Variable(0, dtype="int32")
    ds = make_pipeline(x, np.arange(100) % 10, 10, 32, shuffle_seed=3, flip_turn=turn)
    mirrored = []
    for epoch in range(3):
        turn.assign(epoch)
        seen = {}
        for images, _ in ds:
            for image in np.asarray(images)[:, 0, :, 0]:
                left, right = int(image[0]), int(image[-1])
                assert (left == 200) != (right == 200)
                seen[min(left, right)] = right != 200
        assert sorted(seen) == list(range(100))
        mirrored.append(seen)
    assert all(mirrored[0][i] != mirrored[1][i] for i in range(100))
    assert mirrored[2] == mirrored[0]
    assert 30 < sum(mirrored[0].values()) < 70  # which side comes first is random


def test_pipeline_options_mirror_by_epoch_for_alternate_flip_and_at_random_for_flip():
    import tensorflow as tf

    x, y = np.zeros((8, 4, 4, 3), np.uint8), np.arange(8) % 2
    by_epoch = train_mod.pipeline_options(
        _config(augment=parse_augment("alternate_flip,crop_pad=1"), balance_classes=True), x, y, 2
    )
    assert isinstance(by_epoch["flip_turn"], tf.Variable) and by_epoch["balance_classes"]
    # Mirroring twice would show every image unflipped half the time on each epoch.
    assert [type(layer).__name__ for layer in by_epoch["augment"].layers] == ["RandomTranslation"]
    at_random = train_mod.pipeline_options(_config(augment=parse_augment("flip")), x, y, 2)
    assert at_random["flip_turn"] is None
    assert [type(layer).__name__ for layer in at_random["augment"].layers] == ["RandomFlip"]
    assert make_pipeline(**at_random).element_spec[0].shape.as_list() == [None, 4, 4, 3]


def test_a_run_trains_with_alternate_flip_and_keeps_it_in_its_config(tiny_dataset):
    config = _config(augment=parse_augment("alternate_flip,crop_pad=2"))
    assert config.augment.alternate_flip and not config.augment.flip
    run_dir = train(config, tiny_dataset)
    assert [h["epoch"] for h in runs.read_history(run_dir)] == [1, 2]
    saved = json.loads((run_dir / "config.json").read_text())
    assert AugmentConfig.from_dict(saved["augment"]) == config.augment


def test_mixup_and_cutmix_mix_the_batches_targets_and_a_run_trains_on_them(tiny_dataset):
    config = _config(augment=parse_augment("mixup=0.4,cutmix=1"), batch_size=60)
    x, y = tiny_dataset.split("train")
    images, targets = next(iter(make_pipeline(**train_mod.pipeline_options(config, x, y, 3))))
    targets = targets.numpy()
    np.testing.assert_allclose(targets.sum(1), 1, atol=1e-5)
    mixed = targets.max(1) < 0.99  # a class image mixed with one of another class
    assert mixed.sum() >= 10 and (np.count_nonzero(targets > 1e-6, axis=1) <= 2).all()
    # No other augmentation: an image with 5% or more of another class's label is none of
    # the originals (one mixed with its own class's keeps a whole label).
    flat = x.reshape(len(x), -1).astype(np.float32)
    original = [(np.abs(flat - im.reshape(-1)).max(1) < 1e-3).any() for im in images.numpy()]
    shared = targets.max(1) < 0.95
    assert shared.sum() >= 5 and not any(np.array(original)[shared])
    run_dir = train(config, tiny_dataset)
    assert runs.read_status(run_dir)["state"] == "completed"
    saved = json.loads((run_dir / "config.json").read_text())
    assert AugmentConfig.from_dict(saved["augment"]) == config.augment


def test_an_augmentation_setting_out_of_its_range_is_refused_with_its_name():
    with pytest.raises(RunError, match="augmentation's hue must be between 0 and 180, not 200"):
        _config(augment=parse_augment("hue=200")).validate()


def test_small_crops_are_random_windows_of_each_image():
    # Channel 0 holds each pixel's position (8 row + column), channel 1 the image's number.
    x = np.zeros((64, 8, 8, 3), np.uint8)
    x[..., 0] = np.arange(64, dtype=np.uint8).reshape(8, 8)
    x[..., 1] = np.arange(64, dtype=np.uint8)[:, None, None]
    ds = make_pipeline(x, np.arange(64) % 4, 4, 16, shuffle_seed=1, crop_size=5)
    offsets, numbers = set(), []
    for images, _ in ds:
        assert images.shape[1:] == (5, 5, 3)
        for image in np.asarray(images).astype(int):
            numbers.append(int(image[0, 0, 1]))
            assert (image[..., 1] == numbers[-1]).all()
            top, left = divmod(int(image[0, 0, 0]), 8)
            window = 8 * (top + np.arange(5)[:, None]) + left + np.arange(5)[None]
            assert (image[..., 0] == window).all() and top <= 3 and left <= 3
            offsets.add((top, left))
    assert sorted(numbers) == list(range(64))
    assert len(offsets) > 8  # each image gets its own offset


def test_a_run_trains_its_first_epochs_on_small_crops_then_whole_images(tiny_dataset, monkeypatch):
    fits, fit = [], keras.Model.fit

    def recorded(model, data, **kwargs):
        fits.append((data.element_spec[0].shape[1], kwargs["initial_epoch"], kwargs["epochs"]))
        return fit(model, data, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recorded)
    config = _config(
        preset="quick", epochs=3, schedule="onecycle", small_crop_share=0.7, small_crop_size=20
    )
    run_dir = train(config, tiny_dataset)
    assert fits == [(20, 0, 2), (32, 2, 3)]
    hist = runs.read_history(run_dir)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert all(np.isfinite(h["val_loss"]) for h in hist)  # whole images validate every epoch
    assert hist[-1]["lr"] == pytest.approx(0.0, abs=1e-9)  # one schedule over both parts
    assert load_model(run_dir / "model.keras").input_shape == (None, 32, 32, 3)
    assert "--small-crop-share 0.7 --small-crop-size 20" in train_mod.cli_command(config)


def test_the_progress_bar_counts_the_epochs_of_the_whole_run(tiny_dataset, capsys):
    config = _config(preset="quick", epochs=3, small_crop_share=0.67, small_crop_size=16)
    train(config, tiny_dataset, verbose=2)
    out = capsys.readouterr()
    assert [line for line in out.out.splitlines() if line.startswith("Epoch ")] == [
        "Epoch 1/3",
        "Epoch 2/3",
        "Epoch 3/3",
    ]
    assert "Epochs 1-2 of 3 train on random 16-pixel crops" in out.err
    train(_config(epochs=1), tiny_dataset, verbose=0)
    assert capsys.readouterr().out == ""


def test_the_time_left_counts_later_whole_image_epochs_at_their_own_pace(tmp_path):
    recorder = train_mod.RunRecorder(tmp_path, 12, 10, 100, [], small_epochs=6, small_cost=0.6)
    recorder.epoch, recorder.rate = 0, 1000.0  # 0.1 s per batch of crops
    # 5 batches and 5 epochs of crops at 0.1 s, 6 whole-image epochs at 0.1 / 0.6 s a batch.
    assert recorder.eta(done=5) == pytest.approx(0.5 + 5.0 + 10.0)
    recorder.epoch, recorder.rate = 7, 600.0
    assert recorder.eta(done=5) == pytest.approx(45 / 6)
    plain = train_mod.RunRecorder(tmp_path, 3, 10, 100, [])
    plain.epoch, plain.rate = 0, 1000.0
    assert plain.eta(done=0) == pytest.approx(3.0)
    plain.rate = 0.0
    assert plain.eta(done=0) is None


def test_a_run_stopped_during_its_small_crop_epochs_resumes_through_both(tiny_dataset):
    config = _config(preset="quick", epochs=3, small_crop_share=0.67, small_crop_size=16)
    run_dir = train_mod.start_run(config)
    train(config, tiny_dataset, run_dir, callbacks=[_StopAt(run_dir, epoch=1, batch=1)])
    assert runs.read_status(run_dir)["state"] == "stopped"
    resume(run_dir, tiny_dataset)
    assert [h["epoch"] for h in runs.read_history(run_dir)] == [1, 2, 3]
    assert runs.read_status(run_dir)["state"] == "completed"


def test_small_crops_are_refused_where_they_cannot_work():
    with pytest.raises(RunError, match="fully convolutional"):
        _config(small_crop_share=0.5).validate()  # the seed net ends in Flatten
    with pytest.raises(RunError, match="share must be in"):
        _config(preset="fast", small_crop_share=1.0).validate()
    with pytest.raises(RunError, match="smaller than the image size"):
        _config(preset="fast", small_crop_share=0.5, small_crop_size=32).validate()
    _config(preset="fast", small_crop_share=0.5, small_crop_size=24).validate()
    # Fewer epochs than a preset's recipe was made for still leave whole-image epochs.
    assert [_config(epochs=n, small_crop_share=0.5).small_crop_epochs for n in (1, 3, 12)] == [
        0,
        1,
        6,
    ]


def _data_whitening(dataset):
    """The quick net's whitening kernel and bias as `init_whitening` sets them."""
    from core.model import build_model, init_whitening, preset_config

    model = build_model(preset_config("quick", num_classes=len(dataset.class_names)))
    init_whitening(model, dataset.split("train")[0])
    return model.get_layer("whiten").get_weights()


def _assert_optimizer_state_loads(path):
    # Keras skips, with only a warning, a saved optimizer whose variables do not match.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "Skipping variable loading for optimizer")
        model = load_model(path, compile=True)
    assert int(model.optimizer.iterations.numpy()) > 0


def test_the_whitening_bias_trains_its_epochs_only_also_across_a_resume(tiny_dataset):
    quick = train_mod.preset_defaults("quick")
    config = replace(quick, epochs=4, batch_size=16, whiten_bias_epochs=2)
    run_dir = train_mod.start_run(config)
    # Stopped in epoch 3, when the bias no longer trains; the resumed process must agree.
    train(config, tiny_dataset, run_dir, callbacks=[_StopAt(run_dir, epoch=2, batch=1)])
    assert runs.read_status(run_dir)["state"] == "stopped"
    resume(run_dir, tiny_dataset)
    assert runs.read_status(run_dir)["state"] == "completed"

    kernel, bias = _data_whitening(tiny_dataset)
    saved = [run_dir / f"checkpoints/epoch_{e:03d}.keras" for e in (1, 2, 3, 4)]
    whitens = [load_model(path, as_saved=True).get_layer("whiten") for path in saved]
    for layer in whitens:  # the kernel never trains (lookahead averaging rounds it)
        np.testing.assert_allclose(layer.kernel.numpy(), kernel, atol=1e-5)
    biases = [bias] + [layer.bias.numpy() for layer in whitens]
    moved = [float(np.abs(b - a).max()) for a, b in itertools.pairwise(biases)]
    assert moved[0] > 1e-3 and moved[1] > 1e-3  # epochs 1 and 2 train it
    assert moved[2] < 1e-5 and moved[3] < 1e-5  # then it stays (lookahead rounding only)
    _assert_optimizer_state_loads(saved[-1])


def test_the_whitening_bias_stays_when_it_has_no_epochs(tiny_dataset):
    assert TrainConfig().whiten_bias_epochs == 0  # the default; the quick preset trains it
    quick = train_mod.preset_defaults("quick")
    config = replace(quick, epochs=1, batch_size=16, whiten_bias_epochs=0)
    run_dir = train(config, tiny_dataset)
    trained = load_model(run_dir / "model.keras", as_saved=True).get_layer("whiten")
    for got, want in zip(trained.get_weights(), _data_whitening(tiny_dataset), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # The optimizer has state for the frozen bias too, so a loaded copy takes it.
    _assert_optimizer_state_loads(run_dir / "checkpoints/epoch_001.keras")


def test_adversarial_training_learns_from_batches_moved_against_the_model(
    tiny_dataset, monkeypatch
):
    from core import adversarial
    from core.train import cli_command, parse_args

    moved = []
    perturb = adversarial.perturbed_batch

    def counting(model, x, y, epsilon):
        moved.append(epsilon)  # runs when fit traces its train step
        return perturb(model, x, y, epsilon)

    monkeypatch.setattr(adversarial, "perturbed_batch", counting)
    run_dir = train(_config(epochs=1, adversarial_eps=2.0), tiny_dataset)
    assert moved and set(moved) == {2.0}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["adversarial_eps"] == 2.0
    command = cli_command(TrainConfig.from_dict(config))
    assert "--adversarial-eps 2.0" in command
    assert parse_args(shlex.split(command)[3:]).adversarial_eps == 2.0
    # The saved model is the plain model: it loads and answers like any other.
    probs = load_model(run_dir / "model.keras").predict(tiny_dataset.split("val")[0][:3])
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    moved.clear()
    train(_config(epochs=1), tiny_dataset)
    assert not moved  # off by default
    with pytest.raises(RunError, match="between 0 and 32 levels"):
        _config(adversarial_eps=40).validate()


def test_a_run_can_leave_out_training_copies_of_held_out_images(tmp_path, capsys):
    from core import registry
    from tests.conftest import plant_a_copy_of_a_val_image, write_image_folder

    folder = tmp_path / "d"
    write_image_folder(folder, per_class=10, size=32)
    train_file = plant_a_copy_of_a_val_image(folder)
    argv = ["--data", str(folder), "--epochs", "1", "--batch-size", "8", "--quiet"]

    assert train_mod.main([*argv, "--drop-near-duplicates"]) == 0
    out, err = capsys.readouterr()
    run_dir = Path(out.strip().splitlines()[-1])
    assert "Left out 1 training image: near-duplicates of validation or test images." in err
    assert json.loads((run_dir / "config.json").read_text())["drop_near_duplicates"] is True
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["data"]["split_sizes"] == {"train": 26, "val": 3}
    assert card["data"]["near_duplicates_left_out"] == 1
    assert card["command"].endswith("--drop-near-duplicates")
    assert "less 1 near-duplicate of held-out images" in registry.provenance(card)
    # What the int8 copy and the shipping step load is what the run trained on.
    again = registry.split_as_trained(card, str(folder))
    assert train_file not in again.files["train"].tolist()
    assert again.summary()["split_sizes"] == card["data"]["split_sizes"]

    assert train_mod.main(argv) == 0  # by default every training image stays
    card = json.loads(
        (Path(capsys.readouterr().out.strip().splitlines()[-1]) / "model_card.json").read_text()
    )
    assert card["data"]["split_sizes"] == {"train": 27, "val": 3}
    assert "near_duplicates_left_out" not in card["data"]
    assert "--drop-near-duplicates" not in card["command"]


def test_class_weights_make_every_class_count_the_same():
    from core.train import class_weights

    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 3])  # class 2 absent
    w = class_weights(y, 4)
    np.testing.assert_allclose(w, [9 / 18, 9 / 6, 0, 9 / 3], rtol=1e-6)
    assert w.dtype == np.float32
    per_image = w[y]
    np.testing.assert_allclose(per_image.mean(), 1.0, rtol=1e-6)  # the loss keeps its scale
    np.testing.assert_allclose([per_image[y == c].sum() for c in (0, 1, 3)], 3.0, rtol=1e-6)
    np.testing.assert_allclose(class_weights(np.arange(12) % 3, 3), 1.0)  # equal: no change


def test_the_pipeline_gives_each_image_its_class_weight():
    from core.train import class_weights

    x = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 2])
    w = class_weights(y, 3)
    seen = {}
    for batch in make_pipeline(x, y, 3, 4, shuffle_seed=1, balance_classes=True):
        images, targets, weights = map(np.asarray, batch)
        for image, target, weight in zip(images, targets, weights, strict=True):
            seen[int(image[0, 0, 0])] = (int(target.argmax()), float(weight))
    assert seen == {i: (int(y[i]), pytest.approx(float(w[y[i]]))) for i in range(10)}
    assert len(next(iter(make_pipeline(x, y, 3, 4)))) == 2  # no weights unless asked


def _noise_dataset(minority: int, seed: int = 0):
    """Two classes of the same uniform noise, 9 images of class 0 to each of class 1:
    nothing tells them apart but how common they are."""
    from core.data import Dataset

    rng = np.random.default_rng(seed)
    y = np.array([0] * (9 * minority) + [1] * minority)
    x = rng.integers(0, 256, (len(y), 32, 32, 3), dtype=np.uint8)
    return Dataset(["common", "rare"], "noise", {"train": (x, y)})


def test_balancing_the_classes_stops_the_model_favouring_the_common_one():
    # Unweighted, the best guess for a picture is the common class (p(rare) near 0.1);
    # balanced, both classes weigh the same and p(rare) moves to about a half.
    data = _noise_dataset(16)
    x, y = data.split("train")
    rare = {}
    for balance in (False, True):
        config = _config(epochs=3, batch_size=32, balance_classes=balance, learning_rate=3e-3)
        run_dir = train(config, data)
        probs = load_model(run_dir / "model.keras").predict(x, verbose=0)
        rare[balance] = float(probs[:, 1].mean())
        saved = json.loads((run_dir / "config.json").read_text())
        assert saved["balance_classes"] is balance
    assert rare[False] < 0.25 and 0.35 < rare[True] < 0.65, rare  # 0.10-0.13, 0.45-0.50


def test_balance_classes_on_the_command_line_and_back(tmp_path):
    from core.train import cli_command, parse_args

    config = parse_args(["--preset", "seed", "--balance-classes"])
    assert config.balance_classes is True
    assert parse_args(["--preset", "seed"]).balance_classes is False
    assert "--balance-classes" in cli_command(config)
    assert parse_args(shlex.split(cli_command(config))[3:]).balance_classes is True


def test_cli_shows_progress_while_it_decodes_a_folder_the_first_time(image_folder, capsys):
    args = ["--data", str(image_folder), "--epochs", "1", "--batch-size", "16"]
    assert train_mod.main(args) == 0
    said = capsys.readouterr()
    assert "Decoding the image folder (once: it is kept for later runs)" in said.err
    assert "36/36" in said.out  # Keras's bar, at its end (one line when not a terminal)
    assert train_mod.main(args) == 0
    assert "Decoding the image folder" not in capsys.readouterr().err  # from the cache


def test_a_run_on_a_folder_whose_name_is_not_utf8_is_shown_on_home(tmp_path, capsys):
    """The card's reproducing line has U+FFFD where the path's byte is not UTF-8 (Streamlit
    sends text as UTF-8: Home stopped on the path as given); config.json keeps the path."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT, write_image_folder

    folder = Path(os.fsdecode(os.fsencode(tmp_path) + b"/photos-\xe9"))
    write_image_folder(folder, per_class=12)
    assert train_mod.main(["--data", str(folder), "--epochs", "1", "--quiet"]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    card = json.loads((run_dir / "model_card.json").read_text())
    assert f"--data '{tmp_path}/photos-\ufffd' " in card["command"]
    assert json.loads((run_dir / "config.json").read_text())["data"] == str(folder)  # resumes there
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["sidebar_model"] = run_dir.name
    at.run()
    assert not at.exception
    assert at.code[0].value == card["command"]


def test_a_run_can_crop_a_folders_pictures_and_everything_after_reads_them_so(tmp_path, capsys):
    """`--fit crop`: the run learns from centre squares, its card and reproducing line say
    so, the Classify page starts cropped, and evaluating it reads the folder cropped (the
    decoded cache holds only the cropped entry: no squashed copy was ever made)."""
    from core import evaluate, registry
    from tests.conftest import write_framed_folder

    folder = tmp_path / "photos"
    write_framed_folder(folder, per_class=8)
    args = ["--data", str(folder), "--fit", "crop", "--epochs", "1", "--batch-size", "8"]
    assert train_mod.main([*args, "--quiet"]) == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["train_config"]["fit"] == "crop" and card["data"]["not_square"] == 1.0
    assert "--fit crop" in card["command"]
    assert registry.trained_fit(card) == registry.framing(card) == "crop"
    assert train_mod.parse_args(shlex.split(card["command"])[3:]).fit == "crop"
    assert evaluate.main([str(run_dir)]) == 0
    assert "accuracy" in capsys.readouterr().out
    cache = Path(os.environ["CNN_CACHE_DIR"])
    sources = [e.joinpath("source.txt").read_text() for e in cache.glob("folder-*")]
    assert sources == [f"{folder}|32 crop"]
    with pytest.raises(RunError, match="Fit must be one of squash, crop"):
        _config(fit="three").validate()

    # A student that squashes learns from this teacher's answers for the centre squares.
    from core.data import load_dataset
    from core.evaluate import predict_probs

    student = train_mod.main([*args[:2], *args[4:], "--teacher", str(run_dir), "--quiet"])
    assert student == 0
    student_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert json.loads((student_dir / "config.json").read_text())["fit"] == "squash"
    kept = np.load(student_dir / "teacher_probs.npy")
    teacher = load_model(run_dir / "model.keras", as_saved=True)

    def answers(fit):
        x = load_dataset(folder, val_fraction=0.1, seed=0, fit=fit).split("train")[0]
        return predict_probs(teacher, x, tta="flip")

    np.testing.assert_allclose(kept, answers("crop"), atol=1e-5)
    assert np.abs(kept - answers("squash")).max() > 1e-3  # the red ends change its answers

    # The shipped model (its run squashed CIFAR-10's square images) teaching this folder of
    # some of its classes answers for the pictures as the Classify page frames a photo for
    # it, centre squares, among cat, dog and frog.
    from core.evaluate import restricted

    shipped = ROOT / "assets/default_model/model.keras"
    assert train_mod.main([*args[:2], *args[4:], "--teacher", str(shipped), "--quiet"]) == 0
    student_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    kept = np.load(student_dir / "teacher_probs.npy")
    teacher = load_model(shipped, as_saved=True)
    np.testing.assert_allclose(kept, restricted(answers("crop"), [3, 5, 6]), atol=1e-5)
