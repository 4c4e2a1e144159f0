"""How long a run would take here, measured before it starts.

    python -m core.estimate --preset fast --data ../shared/datasets/cifar10-jpeg [--steps 8]

Builds the recipe's model as `core.train` would (every `core.train` option applies), trains
it for a few batches of the real input pipeline (augmentation, balancing, adversarial
changes and all), runs a few validation batches and saves it once, then multiplies out:
the epochs' batches, the validation passes, a checkpoint per epoch and the passes after the
last epoch (the temperature and the check for unfamiliar pictures). The start (loading the
data, building the model, tracing its steps) is this process's own start, measured.
Nothing is kept: no run folder, no model.

The Train page runs it in a process of its own (`in_subprocess`): a run's Keras settings,
its precision among them, stay out of the dashboard's process, and a running training would
share the cores with the measurement (the page does not measure then).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np

from core.errors import CnnError, RunError
from core.words import counted

STEPS, WARMUP = 8, 2  # measured training batches at least, and the ones before them (tracing)
MIN_SECONDS, MAX_STEPS = 4.0, 60  # more batches, up to this many, until they take this long
VAL_STEPS = 4  # measured validation batches, after one
PROGRESS = "progress"  # the prefix of `--progress-lines` output


def measure(config, dataset, steps=STEPS, on_step=None, min_seconds=MIN_SECONDS) -> dict:
    """Times `config`'s training and validation steps on `dataset` (`core.train.training_data`).

    It trains through `fit` (with weight averaging when the recipe has it) and times each
    batch from the end of the one before, so waiting for the input pipeline counts.

    Args:
        config: a `core.train.TrainConfig`.
        dataset: its training data.
        steps: training batches timed after `WARMUP` more; more (up to `MAX_STEPS`) when
            these would take less than `min_seconds` (the machine's speed wanders).
        on_step: called as `on_step(done, total, doing)` after each batch.

    Returns:
        A dict: `timed` (training batches timed), `train_step` and `val_step` (median
        seconds per batch), `save` (seconds to save the model once), `teacher_start` and
        `teacher_image` (the teacher's one pass: seconds before its first image and per
        training image; 0 without a teacher) and `traced` (seconds to build the model
        and of the warm-up batches above `train_step` each: tracing).

    Raises:
        RunError: a setting cannot work (a teacher that does not fit, say).
    """
    from core.adversarial import train_against_changes
    from core.averaging import Lookahead
    from core.train import (
        compiled_model,
        make_pipeline,
        pipeline_options,
        resolved_model_config,
        save_model_atomic,
    )

    config = replace(config, model=resolved_model_config(config, dataset.num_classes))
    keras.utils.set_random_seed(config.seed)
    x, y = dataset.split("train")
    val = dataset.splits.get("val")
    epoch_steps = -(-len(y) // config.batch_size)
    teacher_start, teacher_image, teacher = 0.0, 0.0, None
    if config.teacher:
        teacher_start, teacher_image = _teacher_seconds(config.teacher, x, dataset.class_names)
        # The targets' values do not change the step's cost: uniform ones of the real shape.
        uniform = np.full((len(y), dataset.num_classes), 1 / dataset.num_classes, np.float32)
        teacher = (uniform, config.teacher_weight)
    building = time.perf_counter()
    model = compiled_model(config, x, epoch_steps)
    if config.adversarial_eps:
        train_against_changes(model, config.adversarial_eps)
    pipeline = pipeline_options(config, x, y, dataset.num_classes, teacher)
    train_batches = make_pipeline(**pipeline).repeat()
    clock = _Clock(steps, min_seconds, 1 + VAL_STEPS if val else 0, on_step)
    averaging = [Lookahead(config.epochs * epoch_steps)] if config.lookahead else []
    model.fit(
        train_batches,
        epochs=1,
        steps_per_epoch=WARMUP + MAX_STEPS,
        callbacks=[*averaging, clock],
        verbose=0,
    )
    val_step = 0.0
    if val:
        val_batches = make_pipeline(*val, dataset.num_classes, config.batch_size).repeat()
        model.evaluate(val_batches, steps=1 + VAL_STEPS, callbacks=[clock], verbose=0)
        val_step = statistics.median(clock.checked[1:])
    with tempfile.TemporaryDirectory(prefix="cnn-estimate-") as scratch:
        started = time.perf_counter()
        save_model_atomic(model, Path(scratch) / "model.keras")
        save = time.perf_counter() - started
    train_step = statistics.median(clock.trained[WARMUP:])
    return {
        "timed": len(clock.trained) - WARMUP,
        "train_step": train_step,
        "val_step": val_step,
        "save": save,
        "teacher_start": teacher_start,
        "teacher_image": teacher_image,
        "traced": clock.began
        - building
        + max(0.0, sum(clock.trained[:WARMUP]) - WARMUP * train_step),
    }


class _Clock(keras.callbacks.Callback):
    """Times each batch of a `fit` and an `evaluate` from the end of the one before (so
    waiting for the input pipeline counts), reports each, and ends the `fit` once
    `steps` batches after `WARMUP`, or more up to `MAX_STEPS`, took `min_seconds`."""

    def __init__(self, steps: int, min_seconds: float, checks: int, on_step=None):
        super().__init__()
        self.steps, self.min_seconds, self.on_step = steps, min_seconds, on_step
        self.total = WARMUP + steps + checks
        self.trained, self.checked, self.last, self.began = [], [], 0.0, 0.0

    def _tick(self, seconds: list, doing: str) -> None:
        now = time.perf_counter()
        seconds.append(now - self.last)
        self.last = now
        if self.on_step:
            self.on_step(len(self.trained) + len(self.checked), self.total, doing)

    def on_train_begin(self, logs=None):
        self.last = self.began = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if len(self.trained) == WARMUP:  # the first batch after tracing sets the count
            first = time.perf_counter() - self.last
            planned = min(MAX_STEPS, max(self.steps, math.ceil(self.min_seconds / first)))
            self.total += planned - self.steps
            self.steps = planned
        self._tick(self.trained, "training")
        if len(self.trained) >= WARMUP + self.steps:
            self.model.stop_training = True

    def on_test_begin(self, logs=None):
        self.last = time.perf_counter()

    def on_test_batch_end(self, batch, logs=None):
        self._tick(self.checked, "validation")


def _teacher_seconds(teacher: str, x, class_names: list[str]) -> tuple[float, float]:
    """The teacher's one pass (`core.train.teacher_targets`: loading and tracing it, then
    two views of each training image) as (seconds before its images, seconds per image).
    The first is a pass over a few images, which also checks that the teacher fits."""
    from core.evaluate import predict_probs, resolve_model_path
    from core.model import load_model
    from core.train import teacher_targets

    started = time.perf_counter()
    teacher_targets(teacher, x[:8], class_names)
    start = time.perf_counter() - started
    model = load_model(resolve_model_path(teacher), as_saved=True)
    sample = x[:512]
    predict_probs(model, sample[:8], batch_size=512, tta="flip")  # traced
    started = time.perf_counter()
    predict_probs(model, sample, batch_size=512, tta="flip")
    return start, (time.perf_counter() - started) / len(sample)


def estimate(measured: dict, config, train_images: int, val_images: int, start: float) -> dict:
    """A run's time in parts, from `measure`'s figures.

    Args:
        measured: `measure`'s dict.
        config: the run's `TrainConfig`.
        train_images, val_images: the sizes of its splits.
        start: seconds from the process's start to `measure` (imports, loading the data).

    Returns:
        A dict of seconds: `start`, `teacher`, `epochs` (training batches, small-crop
        epochs at their share of a whole epoch's cost), `validation`, `checkpoints`,
        `after` (the model saved, its temperature and its check for unfamiliar pictures)
        and `total`; also `images_per_second` (training), `steps` (batches an epoch) and
        `timed` (batches measured).
    """
    from core import evaluate, novelty

    steps = -(-train_images // config.batch_size)
    small = config.small_crop_epochs
    epoch_units = (config.epochs - small) + small * config.small_crop_cost
    val_image = measured["val_step"] / config.batch_size
    passes = 0  # images through the saved model after the last epoch
    if val_images >= evaluate.MIN_CALIBRATION_IMAGES:
        passes += val_images
    if train_images >= novelty.MIN_IMAGES:
        passes += min(train_images, novelty.FIT_IMAGES + novelty.CALIBRATION_IMAGES)
        passes += min(val_images, novelty.CHECKED_IMAGES)
    parts = {
        "start": start + measured["traced"],
        "teacher": measured["teacher_start"] + measured["teacher_image"] * train_images,
        "epochs": epoch_units * steps * measured["train_step"],
        "validation": config.epochs * -(-val_images // config.batch_size) * measured["val_step"],
        "checkpoints": config.epochs * measured["save"],
        "after": measured["save"] + passes * val_image,
    }
    return parts | {
        "timed": measured["timed"],
        "total": sum(parts.values()),
        "images_per_second": config.batch_size / measured["train_step"],
        "steps": steps,
    }


def describe(found: dict, config) -> str:
    """The estimate in a sentence, for the command line and the Train page."""
    from core.registry import duration

    parts = [
        f"{counted(config.epochs, 'epoch')} of {counted(found['steps'], 'batch', 'batches')} at "
        f"{found['images_per_second']:,.0f} images/s ({duration(found['epochs'])})"
    ]
    named = {
        "validation": "validation",
        "start": "the start (data, model, tracing)",
        "teacher": "the teacher's pass",
        "after": "the checks after the last epoch",
        "checkpoints": "checkpoints",
    }
    parts += [f"{words} {duration(found[key])}" for key, words in named.items() if found[key] >= 1]
    ending = " Early stopping may end it sooner." if config.early_stopping else ""
    if config.strategy != "default":  # `measure` trains on one device, in one process
        ending += (
            f" Timed on one device of this machine: under the {config.strategy} strategy "
            "the run splits each batch over its replicas, which this does not measure."
        )
    return (
        f"About {duration(found['total'])} on this machine: {', '.join(parts)}. Measured "
        f"just now over {counted(found['timed'], 'batch', 'batches')}; a machine's speed can "
        f"wander by a quarter or more over minutes, more while other programs run.{ending}"
    )


def remaining(config, history: list[dict]) -> dict | None:
    """What resuming a run would take, at its own pace so far: no measuring needed.

    Args:
        config: the run's `TrainConfig`.
        history: its epochs (`core.runs.read_history`), each with its `seconds`.

    Returns:
        `{"epochs": left, "epoch_seconds": a whole-size epoch's median seconds, "seconds":
        the epochs left}`, small-crop epochs at their share of a whole one's cost, the
        first epoch left out when others were timed (it also traced the model's steps);
        None when no epoch is left or none was timed.
    """

    def cost(epoch: int) -> float:
        return config.small_crop_cost if epoch < config.small_crop_epochs else 1.0

    paces = [h["seconds"] / cost(e) for e, h in enumerate(history) if h.get("seconds")]
    left = config.epochs - len(history)
    if left <= 0 or not paces:
        return None
    pace = statistics.median(paces[1:] or paces)
    return {
        "epochs": left,
        "epoch_seconds": pace,
        "seconds": pace * sum(cost(e) for e in range(len(history), config.epochs)),
    }


def describe_remaining(run_dir) -> str | None:
    """`remaining` for a run folder in a sentence, for the Train page beside "Resume";
    None when it cannot say (no epoch timed, none left, no readable config)."""
    from core import runs
    from core.registry import duration
    from core.train import run_config

    config = run_config(run_dir)
    found = remaining(config, runs.read_history(run_dir)) if config else None
    if found is None:
        return None
    epochs = "the epoch" if found["epochs"] == 1 else f"the {found['epochs']} epochs"

    def said(seconds: float) -> str:
        return duration(seconds) if seconds >= 1 else f"{seconds:.2g} s"  # tiny data: not "0 s"

    pace = f"{said(found['epoch_seconds'])} an epoch"
    if config.epochs - found["epochs"] < config.small_crop_epochs:  # small crops still to come
        crop = said(found["epoch_seconds"] * config.small_crop_cost)
        pace = f"{crop} a {config.small_crop_size}-pixel epoch, {pace} of whole images"
    ending = " Early stopping may end it sooner." if config.early_stopping else ""
    return (
        f"Resuming trains {epochs} left: about {duration(found['seconds'])} at this run's "
        f"pace so far ({pace}), besides loading the data and the checks after the last "
        f"epoch.{ending}"
    )


def in_subprocess(config, on_step=None, runs_dir=None) -> dict:
    """`python -m core.estimate` for `config` in a child process: the estimate's dict
    (`estimate`'s, with `text`, the sentence).

    Args:
        config: a `TrainConfig` whose `data` the child can load.
        on_step: called as `on_step(done, total, doing)` as the child reports.
        runs_dir: the runs folder whose jobs would share the machine.

    Raises:
        RunError: a run, a search or a learning-rate test is in progress in `runs_dir`
            (it would slow the measurement down and be slowed down by it), or the child
            failed (its message) or was killed.
    """
    from core import ROOT
    from core.jobs import busy

    if message := busy(runs_dir):
        raise RunError(f"{message} Measured beside it, the estimate would come out too long.")
    with tempfile.TemporaryDirectory(prefix="cnn-estimate-") as scratch:
        path, log = Path(scratch) / "config.json", Path(scratch) / "stderr.txt"
        path.write_text(json.dumps(config.to_dict()))
        command = [sys.executable, "-m", "core.estimate", "--config", str(path), "--json"]
        # Standard error to a file: TensorFlow's warnings could fill a pipe nobody reads yet.
        with log.open("w") as log_file:
            child = subprocess.Popen(
                command + ["--progress-lines"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            lines = []
            for line in child.stdout:
                if line.startswith(PROGRESS + " ") and on_step:
                    _, done, total, doing = line.split(maxsplit=3)
                    on_step(int(done), int(total), doing.strip())
                else:
                    lines.append(line)
            child.wait()
        finally:
            if child.poll() is None:  # the page was left: the measurement goes with it
                child.kill()
                child.wait()
        errors = log.read_text(errors="replace")
    if child.returncode == 0 and lines:
        return json.loads(lines[-1])
    told = [line[len("error: ") :] for line in errors.splitlines() if line.startswith("error: ")]
    if told:
        raise RunError(told[-1])
    raise RunError(
        f"The measurement ended without an estimate (exit status {child.returncode}); "
        "the machine may be short of memory."
    )


def main(argv=None) -> int:
    started = time.perf_counter()
    from core.evaluate import progress_verbose
    from core.near_duplicates import progress_bar
    from core.train import TrainConfig, config_from_args, preset_parser, training_data

    argv = sys.argv[1:] if argv is None else argv
    parser = preset_parser(argv)
    parser.prog = "python -m core.estimate"
    parser.description = __doc__.split("\n")[0]
    parser.add_argument(
        "--steps",
        type=int,
        default=STEPS,
        help="training batches timed at least (more until they take 4 s)",
    )
    parser.add_argument("--config", type=Path, help="a run's config.json instead of the options")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    parser.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.config:
            config = TrainConfig.from_dict(json.loads(args.config.read_text()))
        else:
            config = config_from_args(args)
        config.validate()
        dataset = training_data(config)
        if args.progress_lines:
            step = lambda done, total, doing: print(PROGRESS, done, total, doing, flush=True)  # noqa: E731
        else:
            bar = progress_bar("Timing batches of this recipe", progress_verbose(), "batch")
            step = lambda done, total, doing: bar(done, total)  # noqa: E731
        measuring = time.perf_counter()
        measured = measure(config, dataset, max(1, args.steps), on_step=step)
        x, y = dataset.split("train")
        val = len(dataset.split("val")[1]) if "val" in dataset.splits else 0
        found = estimate(measured, config, len(y), val, start=measuring - started)
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {err.strerror or err}", file=sys.stderr)
        return 1
    text = describe(found, config)
    print(json.dumps(found | {"text": text}) if args.json else text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
