"""One training run: config, run directory, callbacks, stop and resume; also the CLI.

    python -m core.train --preset seed --data cifar10 --epochs 20

The loop is Keras's `fit`; everything a UI or a terminal wants to see comes through
callbacks. `RunRecorder` (always on) keeps the run directory current and the TensorBoard
callbacks (always on) write `tensorboard/`; the CLI adds Keras's progress bar, the
dashboard reads status.json from another process. `--strategy` trains on several GPUs
or machines (see `core.distribute`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import keras
import numpy as np

from core import distribute, runs
from core.augment import AugmentConfig
from core.data import shown
from core.errors import CnnError, DataError, RunError
from core.fileio import atomic_write_bytes, atomic_write_json, fsync_dir, read_json
from core.hardware import effective_precision, precision_warning, usable_cores
from core.images import ONE_VIEW
from core.model import (
    ModelConfig,
    check_pretrained,
    is_bfloat16,
    preset_config,
    set_whiten_bias_trainable,
)
from core.optimizers import KERNEL_RATIO, Muon
from core.recipes import RECIPES
from core.userdata import folders_not_read
from core.words import counted

# A small-crop epoch's time over a whole-image epoch's, per unit of (crop / image side)^2:
# 24-pixel crops of 32-pixel images took 0.61x (docs/BENCHMARKS.md, session 8) for 0.56x.
SMALL_CROP_COST = 1.1

# An epoch of fewer steps than this learns little: the speed presets' batch of 512 suits
# CIFAR-10's 45,000 training images (88 steps), not a folder of a few hundred (`batch_advice`).
MIN_STEPS = 10

# The smallest small-crop size: the speed layout's 2x2 whitening conv and three 2x2 poolings
# leave a 1x1 map of a 9-pixel image.
MIN_CROP = 9

OPTIMIZERS = ("sgd", "momentum", "nesterov", "muon", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "onecycle")
LOSSES = ("crossentropy", "mse")
FOLDER_FITS = ONE_VIEW  # how an image folder's pictures become squares (core.data.load_dataset)
PRECISIONS = ("auto", "float32", "mixed_bfloat16")


@dataclass
class TrainConfig:
    """Everything one run depends on; saved as config.json in its run directory."""

    preset: str = "seed"  # a name from core.model.PRESETS, or "custom" with `model` set
    model: ModelConfig | None = None  # filled from the preset when the run starts
    data: str = "cifar10"  # "cifar10", an image folder, or a CIFAR-10 python archive
    image_size: int = 32
    # How an image folder's pictures that are not square become image_size squares: "squash"
    # (whole, Keras's default) or "crop" (their centre square); see core.data.load_dataset.
    fit: str = "squash"
    val_fraction: float = 0.1  # stratified, fixed by `seed`
    seed: int = 0
    # Leave out the training images that are near-duplicates of a validation or test image
    # (core.near_duplicates.without_copies): those splits then measure unseen pictures.
    drop_near_duplicates: bool = False
    # Weigh each training image by N / (classes x its class's count) in the loss
    # (`class_weights`): every class counts the same however few images it has.
    balance_classes: bool = False
    epochs: int = 20
    batch_size: int = 128  # the global batch: split evenly over the replicas of `strategy`
    optimizer: str = "adam"  # one of OPTIMIZERS
    learning_rate: float = 1e-3  # the peak rate when a schedule warms up
    momentum: float = 0.9  # for momentum, nesterov and rmsprop
    weight_decay: float = 0.0  # decoupled (AdamW-style) for every optimizer
    schedule: str = "constant"  # one of SCHEDULES
    warmup_epochs: float = 0.0  # linear warm-up for cosine; the rise for onecycle
    step_epochs: int = 10  # "step": multiply the rate by step_factor every this many
    step_factor: float = 0.1
    loss: str = "crossentropy"  # one of LOSSES
    label_smoothing: float = 0.0  # crossentropy only
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    early_stopping: int = 0  # patience in epochs on val accuracy; 0 = off
    lookahead: bool = False  # airbench's weight averaging (core.averaging.Lookahead)
    # "float32", "mixed_bfloat16" (see ModelConfig.precision) or "auto": bf16 where this
    # machine has bf16 units (core.hardware); a run records the one it computed in.
    precision: str = "float32"
    # Knowledge distillation: a trained model (.keras file or run directory) whose
    # flip-averaged probabilities on each training image make up `teacher_weight` of that
    # image's target, the one-hot label the rest.
    teacher: str = ""
    teacher_weight: float = 0.5
    # Progressive resizing, with crops: the first `small_crop_share` of the epochs (see
    # `small_crop_epochs`) train on a random `small_crop_size`-pixel window of each
    # augmented image, at about (small_crop_size / image_size)^2 of the compute; the later
    # epochs on whole images. Fully convolutional layouts only (quick, fast, wide presets).
    small_crop_share: float = 0.0
    small_crop_size: int = 24
    # Speed layouts: the whitening conv's bias trains for this many first epochs, then stays.
    whiten_bias_epochs: int = 0
    # Adversarial training: each batch moved up to this many levels of 255 a pixel against
    # the model before it learns from it (core.adversarial.perturbed_batch); 0 = off.
    adversarial_eps: float = 0.0
    strategy: str = "default"  # one of core.distribute.STRATEGIES: one device, GPUs, machines
    name: str = ""  # optional run name prefix

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        d["augment"] = AugmentConfig.from_dict(d.get("augment", {}))
        d["model"] = ModelConfig.from_dict(d["model"]) if d.get("model") else None
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise RunError(f"Unknown training options: {', '.join(sorted(unknown))}.")
        return cls(**d)

    @property
    def small_crop_epochs(self) -> int:
        """How many of the first epochs train on small crops (at least one does not)."""
        return int(self.small_crop_share * self.epochs + 1e-9)  # 0.29 x 100 is 29, not 28

    @property
    def small_crop_cost(self) -> float:
        """A small-crop epoch's time over a whole-image epoch's (`SMALL_CROP_COST`), at
        most 1: the live ETA, the time estimate and the resume time all count by it."""
        return min(1.0, SMALL_CROP_COST * (self.small_crop_size / self.image_size) ** 2)

    def validate(self) -> None:
        """Raises `RunError` with a sentence for the first setting that cannot work."""
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
            (self.fit in FOLDER_FITS, f"fit must be one of {', '.join(FOLDER_FITS)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (
                self.strategy in distribute.STRATEGIES,
                f"strategy must be one of {', '.join(distribute.STRATEGIES)}",
            ),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.learning_rate > 0, "the learning rate must be positive"),
            (0 <= self.val_fraction < 1, "the validation fraction must be in [0, 1)"),
            (0 <= self.label_smoothing < 1, "label smoothing must be in [0, 1)"),
            (self.preset != "custom" or self.model, "a custom preset needs a model config"),
            (0 <= self.small_crop_share < 1, "the small-crop share must be in [0, 1)"),
            (self.whiten_bias_epochs >= 0, "the whitening-bias epochs cannot be negative"),
            (
                0 <= self.adversarial_eps <= 32,
                "the adversarial change must be between 0 and 32 levels of 255",
            ),
        ]
        if self.small_crop_epochs:
            checks += [
                (
                    MIN_CROP <= self.small_crop_size < self.image_size,
                    f"the small-crop size must be at least {MIN_CROP} pixels and smaller "
                    f"than the image size ({self.image_size})",
                ),
                (
                    (self.model or preset_config(self.preset)).style == "speed",
                    "small-crop epochs need a fully convolutional model (the quick, fast "
                    "or wide preset): the others take images of one size only",
                ),
            ]
        for ok, message in checks:
            if not ok:
                raise RunError(message[0].upper() + message[1:] + ".")
        if problems := self.augment.problems():
            raise RunError(problems[0])


def resolved_model_config(config: TrainConfig, num_classes: int) -> ModelConfig:
    """Returns the architecture the run trains, sized for the data."""
    if config.preset == "custom":
        model = ModelConfig.from_dict(asdict(config.model))
    else:
        model = preset_config(config.preset, config.image_size, num_classes)
    model.input_size, model.num_classes = config.image_size, num_classes
    model.precision = effective_precision(config.precision)
    return model


# --- the Keras pieces ---------------------------------------------------------------


def make_schedule(config: TrainConfig, steps_per_epoch: int):
    """Returns a float or a `keras.optimizers.schedules.LearningRateSchedule`."""
    import keras

    from core.schedules import OneCycle

    lr, total = config.learning_rate, max(1, config.epochs * steps_per_epoch)
    warm = int(config.warmup_epochs * steps_per_epoch)
    if config.schedule == "step":
        every = max(1, config.step_epochs) * steps_per_epoch
        bounds = list(range(every, total, every))
        if not bounds:  # no step within the run (Keras's schedule refuses no boundaries)
            return lr
        values = [lr * config.step_factor**i for i in range(len(bounds) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(bounds, values)
    if config.schedule == "cosine":
        if warm:
            return keras.optimizers.schedules.CosineDecay(
                0.0, max(1, total - warm), warmup_target=lr, warmup_steps=warm
            )
        return keras.optimizers.schedules.CosineDecay(lr, total)
    if config.schedule == "onecycle":
        return OneCycle(lr, total, warm or int(0.25 * total))
    return lr


def run_config(run_dir) -> TrainConfig | None:
    """A run folder's saved `TrainConfig`; None when it has none that reads (the runs
    table says what is wrong with such a folder)."""
    try:
        return TrainConfig.from_dict(read_json(Path(run_dir) / "config.json"))
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return None


def lr_plan(config: TrainConfig, steps_per_epoch: int, points: int = 100):
    """The learning rate over the run as its optimizer will follow it (`make_schedule`).

    Returns:
        `(epochs, rates)`: the rate after `epochs` of training (fractions of an epoch too),
        at `points` evenly spaced steps, on both sides of each of a step schedule's steps
        and where a warm-up ends.
    """
    schedule = make_schedule(config, steps_per_epoch)
    if not callable(schedule):  # a constant rate
        return [0.0, config.epochs], [float(schedule)] * 2
    total = max(1, config.epochs * steps_per_epoch)
    steps = set(np.linspace(0, total, points + 1).round().astype(int).tolist())
    for bound in getattr(schedule, "boundaries", ()):
        steps |= {int(bound), int(bound) + 1}
    steps.add(int(getattr(schedule, "warmup_steps", 0) or 0))  # the peak itself, no kink
    steps = sorted(s for s in steps if s <= total)
    return [s / steps_per_epoch for s in steps], [float(schedule(s)) for s in steps]


def make_optimizer(config: TrainConfig, steps_per_epoch: int, learning_rate=None):
    """`config`'s optimizer; `learning_rate` (a float or a schedule) replaces its schedule.
    SGD's steps are bounded for the speed layout (`SPEED_CLIP_NORM`)."""
    import keras

    lr = make_schedule(config, steps_per_epoch) if learning_rate is None else learning_rate
    wd = config.weight_decay or None
    speed = config.model is not None and config.model.style == "speed"
    sgd = {"weight_decay": wd, "global_clipnorm": SPEED_CLIP_NORM if speed else None}
    o = keras.optimizers
    return {
        "sgd": lambda: o.SGD(lr, **sgd),
        "momentum": lambda: o.SGD(lr, momentum=config.momentum, **sgd),
        "nesterov": lambda: o.SGD(lr, momentum=config.momentum, nesterov=True, **sgd),
        "muon": lambda: Muon(lr, momentum=config.momentum, weight_decay=wd),
        "adam": lambda: o.Adam(lr, weight_decay=wd),
        "adamw": lambda: o.AdamW(lr, weight_decay=config.weight_decay or 0.004),
        "rmsprop": lambda: o.RMSprop(lr, momentum=0.0, weight_decay=wd),
    }[config.optimizer]()


# The speed layout's batch norm has no scale, so its nets do not show a step far too large as
# a rising loss: their weights grow instead, and in mixed bf16 the activations of such weights
# lose what they carry. White digits on black (whose flat maps made the first gradient's norm
# 4.9e11) grew conv1_1's kernel 2e5-fold in one step and the quick preset stayed at 10%
# (float32: 100%). The norm, at most 1.75 on CIFAR-10 (the fast net's first step; the quick
# net's 0.81), is bounded far above that: CIFAR-10's steps stay as they were
# (benchmarks/grad_norms.py).
SPEED_CLIP_NORM = 10.0


def make_loss(config: TrainConfig):
    import keras

    if config.loss == "mse":
        return keras.losses.MeanSquaredError()
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)


def class_weights(y, num_classes: int) -> np.ndarray:
    """float32 `(num_classes,)`: `N / (classes present x count)` for each class of `y`, 0
    for a class it lacks. A class of a tenth of the usual size weighs ten times as much, so
    each class adds as much to the loss as any other, and the mean weight of an image is 1
    (the loss keeps its scale).
    """
    counts = np.bincount(np.asarray(y, np.int64), minlength=num_classes)[:num_classes]
    present = np.count_nonzero(counts)
    weights = np.divide(counts.sum(), present * counts, out=np.zeros(num_classes), where=counts > 0)
    return weights.astype(np.float32)


def make_pipeline(
    x,
    y,
    num_classes,
    batch_size,
    augment=None,
    shuffle_seed=None,
    teacher=None,
    flip_turn=None,
    crop_size=None,
    balance_classes=False,
    mix=None,
):
    """Returns a batched `tf.data.Dataset` of (float images in [0,255], one-hot labels),
    and with `balance_classes` each image's weight (`class_weights` of `y`) as a third
    element: Keras weighs the loss with it, not the accuracy.

    With `teacher = (probs, weight)` the targets are `(1 - weight) one_hot(y) + weight
    probs[i]`: a trained model's probabilities for each image (`teacher_targets`).

    With `flip_turn`, an integer `tf.Variable` holding the epoch (`FlipTurns` sets it),
    image i is mirrored when `side[i] + epoch` is odd, `side` a fixed random bit per image
    (seeded by `shuffle_seed`): every image shows each side on alternate epochs.

    With `mix` (`core.augment.build_mixing`), each batch's images are mixed in pairs
    after augmentation, and their targets (teacher's share included) with them; class
    weights stay those of each image's own label.

    With `crop_size`, each image becomes a random `crop_size`-pixel window of itself after
    augmentation (progressive resizing, `TrainConfig.small_crop_epochs`).

    The arrays stay in memory as constants; shuffling permutes indices only (a buffer
    of images would copy the whole set at every epoch start), and gathering,
    augmentation and one-hot encoding run on whole batches, so no Python touches
    single images. `batch_size` is the global batch: under a `tf.distribute` strategy
    `fit` splits each batch over the replicas, and in a multi-worker cluster every
    worker builds the same (same seed) batches and keeps its share (auto-shard policy
    DATA: the arrays are in memory, there are no files to divide).
    """
    import tensorflow as tf

    images, labels = tf.constant(x), tf.constant(y.astype("int32"))
    if flip_turn is not None:
        rng = np.random.default_rng(shuffle_seed or 0)
        sides = tf.constant(rng.integers(0, 2, len(y), dtype=np.int32))
    if teacher is not None:
        soft, weight = tf.constant(teacher[0], tf.float32), float(teacher[1])
    if balance_classes:
        weighed = tf.constant(class_weights(y, num_classes))
    ds = tf.data.Dataset.range(len(y))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def prepare(idx):
        batch = tf.cast(tf.gather(images, idx), tf.float32)
        if flip_turn is not None:
            mirror = (tf.gather(sides, idx) + flip_turn.value()) % 2 == 1
            batch = tf.where(mirror[:, None, None, None], tf.reverse(batch, [2]), batch)
        if augment is not None and augment.layers:
            batch = augment(batch, training=True)
        if crop_size:
            batch = _random_windows(batch, crop_size, shuffle_seed)
        target = tf.one_hot(tf.gather(labels, idx), num_classes)
        if teacher is not None:
            target = (1.0 - weight) * target + weight * tf.gather(soft, idx)
        if mix is not None:
            batch, target = mix(batch, target)
        if balance_classes:
            return batch, target, tf.gather(weighed, tf.gather(labels, idx))
        return batch, target

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # Fixed parallelism instead of tf.data's autotuner: with it, dropping an epoch's
    # iterator sometimes waited 30-45 s with the CPU idle (seen with py-spy in
    # IteratorResource's destructor), at about every other epoch boundary and at the end.
    # A batch takes milliseconds to prepare against a model step of 0.1-1 s.
    options.autotune.enabled = False
    ds = ds.map(prepare, num_parallel_calls=2, deterministic=True).prefetch(2)
    return ds.with_options(options)


def _random_windows(batch, size: int, seed=None):
    """A random `size` x `size` window of each image of `batch`, one offset per image."""
    import tensorflow as tf

    n, side = tf.shape(batch)[0], batch.shape[1]
    offsets = tf.random.uniform((2, n, 1), 0, side - size + 1, tf.int32, seed=seed)
    window = tf.range(size)[None]
    batch = tf.gather(batch, offsets[0] + window, axis=1, batch_dims=1)
    batch = tf.gather(batch, offsets[1] + window, axis=2, batch_dims=1)
    return tf.ensure_shape(batch, (None, size, size, batch.shape[-1]))


def pipeline_options(config: TrainConfig, x, y, num_classes: int, teacher=None) -> dict:
    """The keyword arguments of `make_pipeline` for a run of `config` on `(x, y)`: its
    augmentation, shuffling, teacher and class weights, as `train`, the time estimate and
    the learning-rate test all build them.

    With "flip every other epoch" the pipeline mirrors by epoch (`flip_turn`, a new
    variable a `FlipTurns` callback keeps at the epoch; left alone it stays 0, which costs
    what mirroring at random does) and the augmentation does not flip.
    """
    import tensorflow as tf

    from core.augment import build_augmentation, build_mixing

    augment_config, flip_turn = config.augment, None
    if augment_config.alternate_flip:
        augment_config = replace(augment_config, flip=False, alternate_flip=False)
        flip_turn = tf.Variable(0, dtype="int32", trainable=False, name="flip_turn")
    return dict(
        x=x,
        y=y,
        num_classes=num_classes,
        batch_size=config.batch_size,
        augment=build_augmentation(augment_config, config.image_size, seed=config.seed),
        mix=build_mixing(augment_config, seed=config.seed),
        shuffle_seed=config.seed,
        teacher=teacher,
        flip_turn=flip_turn,
        balance_classes=config.balance_classes,
    )


class FlipTurns(keras.callbacks.Callback):
    """Tells `make_pipeline(..., flip_turn=variable)` which epoch it is preparing.

    Keras makes each epoch's dataset iterator after `on_epoch_begin`, so every batch of
    epoch e reads e (a resumed run starts at its checkpoint's epoch, as fit does).
    """

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


class WhitenBiasEpochs(keras.callbacks.Callback):
    """Trains the whitening conv's bias in the first `epochs` epochs only."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        if set_whiten_bias_trainable(self.model, epoch < self.epochs):
            self.model.make_train_function(force=True)


class WholeRunProgbar(keras.callbacks.ProgbarLogger):
    """Keras's progress bar counting epochs out of the whole run, as "Epoch 7/12", when the
    run is split into two `fit` calls (small crops first), each of which only knows its own."""

    def __init__(self, epochs: int):
        super().__init__()
        self.run_epochs = epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.run_epochs})


class StopRequested(Exception):
    """Raised inside `fit` when stop.request appears, so no validation pass delays it."""


class RunRecorder(keras.callbacks.Callback):
    """Keeps the run directory current: heartbeat, batch progress, history, checkpoints."""

    def __init__(
        self,
        run_dir: Path,
        epochs: int,
        steps: int,
        batch_size: int,
        history,
        small_epochs: int = 0,
        small_cost: float = 1.0,
    ):
        """`small_epochs` first epochs cost `small_cost` of a later one (small crops)."""
        super().__init__()
        self.run_dir, self.epochs, self.steps, self.batch_size = run_dir, epochs, steps, batch_size
        self.history = history
        self.small_epochs, self.small_cost = small_epochs, small_cost
        self._last_write, self.rate = 0.0, 0.0

    def cost(self, epoch: int) -> float:
        return self.small_cost if epoch < self.small_epochs else 1.0

    def eta(self, done: int) -> float | None:
        """Seconds left, from this epoch's pace; later epochs scaled by their cost."""
        if not self.rate:
            return None
        now = self.cost(self.epoch)
        later = sum(self.cost(e) for e in range(self.epoch + 1, self.epochs))
        batches = (self.steps - done) + later * self.steps / now
        return round(batches * self.batch_size / self.rate, 1)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.epoch_start = epoch, time.perf_counter()
        self.rate_from = None  # (time, batch) after the first batch, which traces graphs

    def on_train_batch_end(self, batch, logs=None):
        if runs.stop_requested(self.run_dir):
            raise StopRequested()
        now = time.perf_counter()
        if self.rate_from is None:
            self.rate_from = (now, batch)
        if now - self._last_write < 0.5:
            return
        self._last_write = now
        done = batch + 1
        since, first = self.rate_from
        if batch > first:
            self.rate = (batch - first) * self.batch_size / (now - since)
        rate = self.rate
        loss, accuracy = _float(logs, "loss"), _float(logs, "accuracy")
        runs.write_status(
            self.run_dir,
            epoch=self.epoch + 1,
            batch=done,
            steps=self.steps,
            images_per_sec=round(rate, 1),
            eta_seconds=self.eta(done),
            batch_loss=loss,
            batch_accuracy=accuracy,
        )
        runs.append_batch_point(self.run_dir, self.epoch + 1, done, self.steps, loss, accuracy)

    def on_epoch_end(self, epoch, logs=None):
        record = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        record["lr"] = current_lr(self.model.optimizer)
        record["seconds"] = round(time.perf_counter() - self.epoch_start, 3)
        self.history.append(record)
        loss, accuracy = record.get("loss"), record.get("accuracy")
        runs.append_batch_point(self.run_dir, epoch + 1, self.steps, self.steps, loss, accuracy)
        name = f"checkpoints/epoch_{epoch + 1:03d}.keras"
        save_model_atomic(self.model, self.run_dir / name)
        atomic_write_json(self.run_dir / "history.json", self.history)
        runs.write_status(self.run_dir, epoch=epoch + 1, batch=self.steps, checkpoint=name)


def _float(logs, key):
    return float(logs[key]) if logs and key in logs else None


def current_lr(optimizer) -> float:
    from keras import ops

    return float(ops.convert_to_numpy(optimizer.learning_rate))


def save_model_atomic(model, path: Path) -> None:
    """Saves a `.keras` file so that readers never see a partial one."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


# --- a run ------------------------------------------------------------------------


def start_run(config: TrainConfig, runs_dir=None) -> Path:
    """Validates `config` and creates its run directory with config.json, not yet training.

    Raises:
        RunError: a setting cannot work.
    """
    config.validate()
    config.precision = effective_precision(config.precision)
    run_dir = runs.new_run_dir(config.name or config.preset, runs_dir)
    atomic_write_json(run_dir / "config.json", config.to_dict())
    runs.write_status(run_dir, state="created", started=None)
    return run_dir


def train(config: TrainConfig, dataset, run_dir=None, callbacks=(), verbose=0) -> Path:
    """Trains one run from scratch and writes everything into its run directory.

    Args:
        config: the run's settings.
        dataset: a `core.data.Dataset` whose images match `config.image_size`.
        run_dir: a directory made by `start_run`; a new one in the default place if None.
        callbacks: extra Keras callbacks (a UI's or a terminal's).
        verbose: passed to `fit` (1 shows Keras's progress bar).

    Returns:
        The run directory. Its status.json says how the run ended: completed, stopped
        (a stop was requested) or failed (with the error's message).

    Raises:
        RunError: the settings cannot work or training failed (after recording it).

    With `config.strategy == "multiworker"` every worker of the cluster calls this with
    the same config; give the non-chief workers a scratch `run_dir` (as `main` does).
    """
    run_dir = Path(run_dir) if run_dir else start_run(config)
    config.precision = effective_precision(config.precision)
    config.model = resolved_model_config(config, dataset.num_classes)
    atomic_write_json(run_dir / "config.json", config.to_dict())
    return _fit(config, dataset, run_dir, list(callbacks), verbose, resume_from=None)


def resume(run_dir, dataset, callbacks=(), verbose=0) -> Path:
    """Continues a stopped, interrupted or failed run from its last checkpoint.

    Epoch numbering, history and the learning-rate schedule continue where the
    checkpoint left them.

    Args:
        run_dir: the run to continue.
        dataset: the same data the run started with.
        callbacks, verbose: as for `train`.

    Raises:
        RunError: the run is still running or already completed.
    """
    run_dir = Path(run_dir)
    state = runs.read_status(run_dir).get("state")
    if state in ("running", "completed"):
        raise RunError(f"{run_dir.name} is {state}; only a stopped or interrupted run resumes.")
    config = TrainConfig.from_dict(read_json(run_dir / "config.json"))
    if config.model is None:  # it died before it even built its model
        config.model = resolved_model_config(config, dataset.num_classes)
        atomic_write_json(run_dir / "config.json", config.to_dict())
    # No checkpoint (killed during its first epoch): it starts again from scratch.
    checkpoint = runs.latest_checkpoint(run_dir)
    return _fit(config, dataset, run_dir, list(callbacks), verbose, resume_from=checkpoint)


def _fit(config, dataset, run_dir, callbacks, verbose, resume_from):
    import keras

    from core import tensorboard
    from core.averaging import Lookahead

    (run_dir / "stop.request").unlink(missing_ok=True)
    runs.remove_partial_files(run_dir)
    history = runs.read_history(run_dir) if resume_from else []
    started = time.perf_counter()
    runs.write_status(
        run_dir,
        state="running",
        **runs.process_identity(),
        started=runs.now_iso(),
        ended=None,
        message=None,
        epochs=config.epochs,
    )
    try:
        strategy = distribute.make_strategy(config.strategy)  # before TensorFlow runs ops
        replicas = strategy.num_replicas_in_sync
        distribute.per_replica_batch(config.batch_size, replicas)
        runs.write_status(run_dir, replicas=replicas)
        keras.utils.set_random_seed(config.seed)
        x, y = dataset.split("train")
        steps = -(-len(y) // config.batch_size)
        with strategy.scope():  # variables made here are mirrored over the replicas
            model = compiled_model(config, x, steps, resume_from)
        runs.write_status(run_dir, params=int(model.count_params()))  # for the runs table
        if config.adversarial_eps:
            from core.adversarial import train_against_changes

            train_against_changes(model, config.adversarial_eps)
        if resume_from:
            history = history[: _checkpoint_epochs(resume_from, history)]
            # Restart the interrupted epoch's part of the schedule from its beginning.
            model.optimizer.iterations.assign(len(history) * steps)
        teacher = None
        if config.teacher:
            seen = teacher_images(config, dataset)
            probs = teacher_targets(config.teacher, seen, dataset.class_names, run_dir, verbose)
            teacher = (probs, config.teacher_weight)
        pipeline = pipeline_options(config, x, y, dataset.num_classes, teacher)
        train_ds = make_pipeline(**pipeline)
        val_ds = None
        if "val" in dataset.splits:
            xv, yv = dataset.split("val")
            val_ds = make_pipeline(xv, yv, dataset.num_classes, config.batch_size)
        if config.strategy != "default":
            with strategy.scope():
                _build_for_strategy(model, train_ds)
        recorder = RunRecorder(
            run_dir,
            config.epochs,
            steps,
            config.batch_size,
            history,
            config.small_crop_epochs,
            config.small_crop_cost,
        )
        shown = (xv, yv) if val_ds is not None else (x, y)
        logs = tensorboard.callbacks(run_dir, *shown, dataset.class_names)
        extra = [WhitenBiasEpochs(config.whiten_bias_epochs)]
        if pipeline["flip_turn"] is not None:
            extra.append(FlipTurns(pipeline["flip_turn"]))
        if config.lookahead:  # before early stopping, whose best weights then win
            extra.append(Lookahead(config.epochs * steps))
        if config.early_stopping and val_ds is not None:
            extra.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_accuracy",
                    patience=config.early_stopping,
                    restore_best_weights=True,
                )
            )
        progbar = [WholeRunProgbar(config.epochs)] if verbose else []  # else Keras adds none
        fit = dict(
            validation_data=val_ds,
            # The recorder first: an epoch reaches TensorBoard only once it is checkpointed.
            callbacks=[recorder, *logs, *extra, *callbacks, *progbar],
            shuffle=False,  # the pipeline shuffles
            verbose=verbose,
        )
        start = len(history)
        if start < config.small_crop_epochs:
            small_ds = make_pipeline(**pipeline, crop_size=config.small_crop_size)
            _fit_small_crops(model, small_ds, config, start, fit)
            start = config.small_crop_epochs
        if not model.stop_training:  # early stopping may have ended the run already
            model.fit(train_ds, epochs=config.epochs, initial_epoch=start, **fit)
        _finish(run_dir, model, config, dataset, history, "completed", started, verbose)
    except StopRequested:
        save_model_atomic(model, run_dir / "checkpoints" / "last.keras")
        (run_dir / "stop.request").unlink(missing_ok=True)
        runs.write_status(run_dir, checkpoint="checkpoints/last.keras")
        _finish(run_dir, model, config, dataset, history, "stopped", started, verbose)
    except BaseException as err:
        message = _failure_message(err)
        try:
            runs.record_failure(run_dir, message)  # frees temp files; falls back outside
        except OSError:
            pass  # neither the run folder nor the fallback folder can be written
        if isinstance(err, KeyboardInterrupt):
            raise
        raise RunError(message) from err
    return run_dir


def _fit_small_crops(model, small_ds, config: TrainConfig, start: int, fit: dict) -> None:
    """Trains epochs `start` to `config.small_crop_epochs` on the small crops of `small_ds`."""
    import keras

    if fit["verbose"]:
        print(
            f"Epochs {start + 1}-{config.small_crop_epochs} of {config.epochs} train on random "
            f"{config.small_crop_size}-pixel crops, the rest on whole images.",
            file=sys.stderr,
        )
    whole = model.input_spec
    model.input_spec = keras.layers.InputSpec(ndim=4)  # every layer takes any size
    try:
        model.fit(small_ds, epochs=config.small_crop_epochs, initial_epoch=start, **fit)
    finally:
        model.input_spec = whole
        model.train_function = None  # whole images get a step traced for their own size


def teacher_fit(teacher: str, class_names: list[str]) -> str:
    """How a teacher reads a folder of `class_names`: `core.registry.data_fit` of its card
    (as its own run did, or, a teacher of more classes, as for a photo)."""
    from core.evaluate import resolve_model_path
    from core.registry import data_fit

    return data_fit(
        read_json(resolve_model_path(teacher).parent / "model_card.json") or {}, class_names
    )


def teacher_images(config: TrainConfig, dataset):
    """The run's training images as its teacher's own run made an image folder's pictures
    square (`TrainConfig.fit`): a teacher that learnt from centre squares answers for
    centre squares, whatever this run does with the pictures.

    Returns:
        uint8 `(N, S, S, 3)`, row for row the run's training images: `dataset`'s own when
        the teacher framed them as this run does (or its model card does not say).
    """
    x = dataset.split("train")[0]
    fit = teacher_fit(config.teacher, dataset.class_names)
    if fit == config.fit or not dataset.files:  # CIFAR-10's arrays: all square
        return x
    framed = training_data(replace(config, fit=fit, drop_near_duplicates=False))
    where = {name: i for i, name in enumerate(framed.files["train"])}
    xf = framed.split("train")[0]
    # The split is a function of the files, so every row is found; one that failed to
    # decode this time keeps the run's own picture.
    rows = [where.get(name) for name in dataset.files["train"]]
    return np.stack([x[i] if j is None else xf[j] for i, j in enumerate(rows)])


def teacher_targets(teacher: str, x, class_names: list[str], run_dir=None, verbose=0):
    """A teacher model's flip-averaged probabilities for the training images `x` of the
    classes `class_names`: among them when the teacher knows more (the shipped CIFAR-10
    model teaching a cat and dog folder; `core.evaluate.class_subset`).

    Computed once per run and kept in its folder (`teacher_probs.npy`), so a resumed run
    learns from the same targets without predicting again.

    Raises:
        RunError: the teacher cannot be loaded or does not fit the data.
    """
    from core.evaluate import class_subset, predict_probs, resolve_model_path, restricted
    from core.model import load_model
    from core.registry import class_list

    num_classes = len(class_names)

    cache = Path(run_dir) / "teacher_probs.npy" if run_dir else None
    if cache is not None and cache.is_file():
        probs = np.load(cache)
        if probs.shape == (len(x), num_classes):
            return probs
    path = resolve_model_path(teacher)
    model = load_model(path, as_saved=True)  # in its training precision: only a target
    want = (None, *x.shape[1:])
    if tuple(model.input_shape) != want:
        raise RunError(
            f"The teacher {path} takes images of {model.input_shape[1:3]} pixels; this run "
            f"trains on {x.shape[1:3]}."
        )
    outputs = int(model.output_shape[-1])
    known = (read_json(path.parent / "model_card.json", {}) or {}).get("class_names") or []
    try:
        subset = class_subset(known, outputs, class_names)
    except DataError as err:
        raise RunError(
            f"The teacher {path} tells {outputs} classes apart"
            + (f" ({class_list(known)})" if known else "")
            + f"; this data has {num_classes} ({class_list(class_names)}), and a teacher "
            "must know every class of the data."
        ) from err
    started = time.perf_counter()
    probs = predict_probs(model, x, batch_size=512, tta="flip").astype(np.float32)
    if subset is not None:
        probs = restricted(probs, subset)
    if verbose:
        print(f"Teacher {path}: {len(x):,} images in {time.perf_counter() - started:.0f} s")
    if cache is not None:
        buffer = io.BytesIO()
        np.save(buffer, probs)
        atomic_write_bytes(cache, buffer.getvalue())
    return probs


def compiled_model(config, x, steps: int, resume_from=None):
    """The model a run of `config` trains: built, whitening fitted to `x`, compiled for
    `steps` batches an epoch (or loaded from the checkpoint `resume_from`)."""
    import keras

    from core.model import build_model, init_whitening, load_model

    if resume_from:  # WhitenBiasEpochs sets the whitening bias for the epoch it resumes at
        return load_model(resume_from, compile=True)
    model = build_model(config.model)
    init_whitening(model, x)
    model.compile(
        optimizer=make_optimizer(config, steps),
        loss=make_loss(config),
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    # The optimizer gets state for the whitening bias whether it trains or not: a loaded
    # model's bias is trainable, and a saved optimizer loads only into one of its size.
    model.optimizer.build(model.trainable_variables)
    set_whiten_bias_trainable(model, config.whiten_bias_epochs > 0)  # before fit traces
    return model


def _build_for_strategy(model, train_ds) -> None:
    # Under a strategy, Keras 3.15's fit builds the metric and optimizer state from one
    # batch drawn from the distributed dataset, reducing the (x, y) pair in one call:
    # MultiWorkerMirroredStrategy cannot reduce a pair (keras-team/keras#20585), and the
    # drawn pass shifts every epoch's shuffle order against a one-device run. Building
    # from the dataset's shapes draws nothing; fit then finds everything built.
    model._symbolic_build(data_batch=train_ds.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def _checkpoint_epochs(checkpoint: Path, history: list) -> int:
    # epoch_007.keras holds 7 epochs; last.keras holds the epochs recorded before the stop.
    stem = checkpoint.stem
    return int(stem.split("_")[1]) if stem.startswith("epoch_") else len(history)


def _failure_message(err: BaseException) -> str:
    if isinstance(err, KeyboardInterrupt):
        return "Training was interrupted from the keyboard."
    err = _as_os_error(err)
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return "The disk is full: training stopped because a checkpoint could not be written."
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return f"The runs folder cannot be written ({err.strerror}): training stopped."
    if isinstance(err, CnnError):
        return str(err)
    return f"Training failed: {type(err).__name__}: {err}"


def _as_os_error(err: BaseException) -> BaseException:
    # TensorFlow's own file writes (the TensorBoard logs) raise its errors, with the OS's
    # reason only in the text; seen as OSErrors they get the same sentences.
    import tensorflow as tf

    reasons = {
        tf.errors.ResourceExhaustedError: [(errno.ENOSPC, "No space left on device")],
        tf.errors.PermissionDeniedError: [
            (errno.EROFS, "Read-only file system"),
            (errno.EACCES, "Permission denied"),
        ],
    }
    for kind, known in reasons.items():
        if isinstance(err, kind):
            for code, text in known:
                if text in str(err):
                    return OSError(code, text)
    return err


# What a completed run does after its last epoch, as the Train page's progress line says it.
FINISHING = "calibrating its probabilities and learning what its training images look like"


def _finish(run_dir, model, config, dataset, history, state, started, verbose=0):
    save_model_atomic(model, run_dir / "model.keras")
    wall = round(time.perf_counter() - started, 2)
    card = model_card(model, config, dataset, history, wall_seconds=wall)
    from core import evaluate

    if state == "completed":  # up to half a minute more: say what it is (`jobs.progress`)
        runs.write_status(run_dir, finishing=FINISHING)
    val_images = len(dataset.splits.get("val", ((), ()))[1])
    calibrating = val_images >= evaluate.MIN_CALIBRATION_IMAGES
    bf16 = is_bfloat16(model)
    if state == "completed" and val_images and (calibrating or bf16):
        from core.model import load_model

        x, y = dataset.split("val")
        # One more pass over the validation images (10 s for 5,000 through the fast net
        # here; not after Stop, which should stop): the temperature makes the
        # probabilities that the Classify page shows mean what they say. Through the
        # saved file as the app serves it, not `model`: under a distribution strategy
        # its predictions come once per replica.
        if verbose:
            said = f"Scoring the {len(y):,} validation images as the app computes them…"
            print(said, flush=True)
        probs = evaluate.predict_probs(load_model(run_dir / "model.keras"), x)
        if bf16:  # the app computes a bf16 model's float32 copy: its accuracy, as the pages'
            metrics = card["metrics"]
            metrics["val_accuracy_in_training"] = metrics["val_accuracy"]
            metrics["val_accuracy"] = float(np.mean(np.argmax(probs, axis=1) == y))
        if calibrating and (record := evaluate.calibration_record(probs, y)):
            card["calibration"] = record
            if verbose:
                print(f"Calibrated: {evaluate.calibration_note(record)}.", flush=True)
    if state == "completed":
        card["novelty"] = _novelty_check(run_dir, dataset, verbose)
    atomic_write_json(run_dir / "model_card.json", card)
    runs.write_status(
        run_dir, state=state, ended=runs.now_iso(), wall_seconds=wall, message=None, finishing=None
    )


def _novelty_check(run_dir, dataset, verbose=0) -> dict | None:
    """Fits the Classify page's check for unfamiliar pictures (`core.novelty`) on the
    training images, through the saved file: two passes of up to 7,000 images, about 14 s
    for the fast net here. None when there are too few images or no convolution, or when
    the file cannot be written: the trained model matters more than its check."""
    from core import novelty
    from core.model import load_model

    x = dataset.split("train")[0]
    val = dataset.splits.get("val", (None,))[0]
    if verbose:
        print("Learning what the training images look like (for unfamiliar pictures)…", flush=True)
    try:
        return novelty.write(load_model(run_dir / "model.keras"), run_dir / "model.keras", x, val)
    except DataError as err:  # too few images
        if verbose:
            print(f"No check for unfamiliar pictures: {err}", flush=True)
        return None
    except (ValueError, CnnError):  # nothing to measure
        return None
    except OSError as err:
        print(f"No check for unfamiliar pictures: {err.strerror or err}.", flush=True)
        return None


def model_card(model, config: TrainConfig, dataset, history: list[dict], wall_seconds=None) -> dict:
    """Returns the JSON card saved beside a model: what it is, what it saw, how it did.

    `wall_seconds` is this process's time from the run's start to the save (one session of
    a resumed run); `train_seconds` adds up the epochs of every session.
    """
    import keras

    scored = [h for h in history if h.get("val_accuracy") is not None]
    best = max(scored, key=lambda h: h["val_accuracy"], default={})
    # The epoch whose weights the model has: early stopping restores its best epoch's
    # (without validation it has nothing to stop on: the last epoch's).
    kept = best if config.early_stopping and best else history[-1] if history else {}
    return {
        "preset": config.preset,
        "class_names": dataset.class_names,
        "input_size": config.image_size,
        "params": int(model.count_params()),
        "model_config": config.model.to_dict() if config.model else None,
        "train_config": config.to_dict(),
        "data": dataset.summary(),
        "epochs": len(history),
        "metrics": {
            "val_accuracy": kept.get("val_accuracy"),
            "val_loss": kept.get("val_loss"),
            "train_accuracy": kept.get("accuracy"),
            "best_val_accuracy": best.get("val_accuracy"),
            "best_epoch": best.get("epoch"),
        },
        "train_seconds": round(sum(h.get("seconds", 0) for h in history), 1),
        "created": runs.now_iso(),
        "wall_seconds": wall_seconds,
        "machine": (
            f"{_cpu_name()}, {platform.machine()} {platform.system()}, {usable_cores()} cores"
        ),
        "keras_version": keras.__version__,
        "command": cli_command(config),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown CPU"


# --- command line -------------------------------------------------------------------


def cli_command(config: TrainConfig) -> str:
    """Returns the `python -m core.train ...` line that reproduces `config`.

    A flag is written when its value differs from what the command line would take by
    itself for that preset (its recipe, else `TrainConfig`'s default), so the line is short
    and still exact: 20 epochs of the 7-epoch `fast` preset say `--epochs 20`.
    """
    d, default = config, preset_defaults(config.preset)
    args = ["python", "-m", "core.train", "--preset", d.preset, "--data", d.data]
    if d.preset == "custom" and d.model:  # "--preset custom" alone cannot build it
        args += ["--model-config", model_config_json(d.model)]
    for flag, attr in _FLAGS:
        value = getattr(d, attr)
        if value == getattr(default, attr):
            continue
        if isinstance(value, bool):  # BooleanOptionalAction: --flag / --no-flag
            args.append(flag if value else f"--no-{flag[2:]}")
        else:
            args += [flag, str(value)]
    if d.augment != default.augment:
        args += ["--augment", format_augment(d.augment)]
    # As text: a data path whose bytes are not UTF-8 has U+FFFD there (the pages show the
    # line; config.json keeps the path itself for resuming).
    return shown(shlex.join(args))


def batch_advice(images: int, batch_size: int) -> str | None:
    """A sentence when `images` training images at `batch_size` make fewer than `MIN_STEPS`
    steps an epoch, naming the largest power-of-two batch that makes that many; else None."""
    steps = -(-images // batch_size)
    fits = [2**k for k in range(3, 12) if -(-images // 2**k) >= MIN_STEPS]
    better = max(fits, default=batch_size)
    if steps >= MIN_STEPS or better >= batch_size:
        return None
    return (
        f"{images:,} training images at a batch of {batch_size} make {steps} "
        f"step{'s' if steps > 1 else ''} an epoch, few to learn from: a batch of {better} makes "
        f"{-(-images // better)} and usually learns more in the same time (the quick preset on "
        "810 pictures of three CIFAR-10 classes, 3 epochs: 63% at 512, 74% at 64)."
    )


def preset_defaults(preset: str) -> TrainConfig:
    """Returns the `TrainConfig` that `python -m core.train --preset PRESET` starts from."""
    return parse_args(["--preset", preset])


_FLAGS = [
    ("--epochs", "epochs"),
    ("--batch-size", "batch_size"),
    ("--image-size", "image_size"),
    ("--fit", "fit"),
    ("--val-fraction", "val_fraction"),
    ("--seed", "seed"),
    ("--drop-near-duplicates", "drop_near_duplicates"),
    ("--balance-classes", "balance_classes"),
    ("--optimizer", "optimizer"),
    ("--lr", "learning_rate"),
    ("--momentum", "momentum"),
    ("--weight-decay", "weight_decay"),
    ("--schedule", "schedule"),
    ("--warmup-epochs", "warmup_epochs"),
    ("--step-epochs", "step_epochs"),
    ("--step-factor", "step_factor"),
    ("--loss", "loss"),
    ("--label-smoothing", "label_smoothing"),
    ("--early-stopping", "early_stopping"),
    ("--lookahead", "lookahead"),
    ("--small-crop-share", "small_crop_share"),
    ("--small-crop-size", "small_crop_size"),
    ("--precision", "precision"),
    ("--teacher", "teacher"),
    ("--teacher-weight", "teacher_weight"),
    ("--whiten-bias-epochs", "whiten_bias_epochs"),
    ("--adversarial-eps", "adversarial_eps"),
    ("--strategy", "strategy"),
    ("--name", "name"),
]


def parse_augment(text: str) -> AugmentConfig:
    """Parses `"flip,crop_pad=4,cutout=8"` into an `AugmentConfig`.

    Raises:
        RunError: an unknown name or a value that is not a number.
    """
    fields = AugmentConfig.__dataclass_fields__
    values = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if key not in fields:
            raise RunError(f"Unknown augmentation '{key}'. Known: {', '.join(fields)}.")
        kind = fields[key].type
        try:
            values[key] = (
                (value.lower() not in ("0", "false", "no") if value else True)
                if kind == "bool"
                else (int(value) if kind == "int" else float(value))
            )
        except ValueError as err:
            raise RunError(f"Augmentation '{key}' needs a number, not '{value}'.") from err
    return AugmentConfig(**values)


def format_augment(config: AugmentConfig) -> str:
    default = AugmentConfig()
    parts = []
    for key, value in config.to_dict().items():
        if value != getattr(default, key):
            parts.append(key if value is True else f"{key}={value}")
    return ",".join(parts)


def build_parser() -> argparse.ArgumentParser:
    from core.model import PRESET_DESCRIPTIONS

    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m core.train",
        description="Train a CNN image classifier and write a run directory.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    # argparse %-formats help strings: a literal "80%" must be written "80%%".
    presets = "; ".join(f"{k}: {v}" for k, v in PRESET_DESCRIPTIONS.items()).replace("%", "%%")
    p.add_argument("--preset", default=d.preset, help=f"architecture preset ({presets})")
    p.add_argument(
        "--model-config",
        type=model_config_arg,
        help="a custom architecture, as JSON text or a JSON file: ModelConfig's fields "
        "(blocks, pooling, head, dense, ...), a run's config.json or a model card; sets "
        "--preset custom",
    )
    p.add_argument(
        "--data",
        default=d.data,
        help="'cifar10' (download through Keras), an image folder of class subfolders, "
        "or a cifar-10-python.tar.gz / cifar-10-batches-py",
    )
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help="the global batch: images per step over all replicas; each of R replicas "
        "computes batch-size/R, so it must be a multiple of R",
    )
    p.add_argument(
        "--image-size", type=int, default=d.image_size, help="images are resized to this"
    )
    p.add_argument(
        "--fit",
        choices=FOLDER_FITS,
        default=d.fit,
        help="an image folder's pictures that are not square: squashed whole to a square "
        "(Keras's default) or cropped to their centre square; CIFAR-10's are square",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="stratified share of the training data held out for validation",
    )
    p.add_argument("--seed", type=int, default=d.seed, help="fixes split, init and shuffling")
    p.add_argument(
        "--drop-near-duplicates",
        action=argparse.BooleanOptionalAction,
        default=d.drop_near_duplicates,
        help="leave out the training images that are near-duplicates of a validation or test "
        "image (python -m core.near_duplicates), so those splits measure pictures the model "
        "never saw; found once for the data (12 s for CIFAR-10), then kept",
    )
    p.add_argument(
        "--balance-classes",
        action=argparse.BooleanOptionalAction,
        default=d.balance_classes,
        help="weigh each training image by N / (classes x its class's count) in the loss, so "
        "that a class with few images counts as much as one with many (a folder whose "
        "classes differ in size)",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=d.optimizer,
        help="muon: Nesterov SGD, but conv kernels keep a fixed norm and take orthogonalised "
        f"steps of {KERNEL_RATIO}x the learning rate (airbench's newest recipe)",
    )
    p.add_argument("--lr", type=float, default=d.learning_rate, help="(peak) learning rate")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="decoupled")
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--step-epochs", type=int, default=d.step_epochs, help="for --schedule step")
    p.add_argument("--step-factor", type=float, default=d.step_factor, help="for --schedule step")
    p.add_argument("--loss", choices=LOSSES, default=d.loss)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument(
        "--augment",
        default="",
        help="comma list, e.g. 'flip,crop_pad=4,cutout=8'; names: "
        + ", ".join(AugmentConfig.__dataclass_fields__),
    )
    p.add_argument(
        "--early-stopping",
        type=int,
        default=d.early_stopping,
        help="patience in epochs on validation accuracy (0 = off)",
    )
    p.add_argument(
        "--lookahead",
        action=argparse.BooleanOptionalAction,
        default=d.lookahead,
        help="every 5 steps, move the weights (batch-norm statistics too) to their moving "
        "average, and end on it (airbench's weight averaging)",
    )
    p.add_argument(
        "--small-crop-share",
        type=float,
        default=d.small_crop_share,
        help="progressive resizing: this share of the epochs, the first ones, trains on "
        "random crops of --small-crop-size pixels, which take less compute (quick, fast "
        "and wide presets; 0.5 of 12 epochs is 6)",
    )
    p.add_argument("--small-crop-size", type=int, default=d.small_crop_size, help="pixels")
    p.add_argument(
        "--whiten-bias-epochs",
        type=int,
        default=d.whiten_bias_epochs,
        help="speed layouts (quick, fast, wide): the whitening conv's bias trains for this "
        "many first epochs, then stays as it is; its kernel never trains",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="mixed_bfloat16 computes in bf16 with float32 weights; auto (the speed presets') "
        "does so where the CPU has bf16 units (AVX-512 BF16, AMX) or there is a GPU, and "
        "trains in float32 elsewhere",
    )
    p.add_argument(
        "--teacher",
        default=d.teacher,
        help="knowledge distillation: a trained model (.keras file or run directory) whose "
        "flip-averaged probabilities on each training image are mixed into its target",
    )
    p.add_argument(
        "--teacher-weight",
        type=float,
        default=d.teacher_weight,
        help="the teacher's share of each target; the one-hot label has the rest",
    )
    p.add_argument(
        "--adversarial-eps",
        type=float,
        default=d.adversarial_eps,
        metavar="LEVELS",
        help="adversarial training: move each batch up to this many levels of 255 a pixel "
        "against the model before it learns from it (one gradient sign step from a random "
        "start; about 1.5-2x the time a step); 0 = off",
    )
    p.add_argument(
        "--strategy",
        choices=distribute.STRATEGIES,
        default=d.strategy,
        help="tf.distribute: 'mirrored' trains one replica per GPU of this machine; "
        "'multiworker' trains on several machines, each started with its own TF_CONFIG "
        "(only the chief, else worker 0, writes the run folder)",
    )
    p.add_argument("--name", default="", help="run name prefix")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="where run folders go (default $CNN_RUNS_DIR or ./runs)",
    )
    p.add_argument("--run-dir", type=Path, help="train a run prepared by start_run (dashboard)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a stopped run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def preset_parser(argv) -> argparse.ArgumentParser:
    """Returns the CLI's parser with the defaults of the preset that `argv` names."""
    parser = build_parser()
    preset = parser.parse_known_args(argv)[0].preset
    parser.set_defaults(
        **{("lr" if k == "learning_rate" else k): v for k, v in RECIPES.get(preset, {}).items()}
    )
    return parser


def parse_args(argv) -> TrainConfig:
    """Returns the `TrainConfig` that the training command line `argv` describes.

    Raises:
        RunError: an augmentation setting cannot be parsed.
    """
    return config_from_args(preset_parser(argv).parse_args(argv))


def config_from_args(args) -> TrainConfig:
    config = TrainConfig(
        preset="custom" if args.model_config else args.preset,
        data=args.data,
        augment=parse_augment(args.augment),
        **{
            attr: getattr(args, flag[2:].replace("-", "_"))
            for flag, attr in _FLAGS
            if attr != "learning_rate"
        },
        learning_rate=args.lr,
    )
    if args.model_config:
        config.model = args.model_config
    return config


# Architecture fields that the run sets, whatever a model config says: --image-size, the
# data's classes, --precision.
_RUN_SETS = ("input_size", "num_classes", "precision")


def model_config_arg(text: str) -> ModelConfig:
    """`--model-config`: JSON text (what `cli_command` writes), or a JSON file of
    `ModelConfig`'s fields, a run's config.json (its "model") or a model card (its
    "model_config"). Fields left out take their defaults.

    Raises:
        argparse.ArgumentTypeError: with a sentence, for text that is none of these.
    """
    try:
        if text.lstrip().startswith(("{", "[")):
            found = json.loads(text)
        else:
            found = json.loads(Path(text).read_text(encoding="utf-8"))
    except OSError as err:
        raise argparse.ArgumentTypeError(
            f"{shown(text)} cannot be read: {err.strerror or err}."
        ) from err
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{shown(text)[:80]} is not valid JSON: {err}.") from err
    if isinstance(found, dict):
        found = found.get("model_config") or found.get("model") or found
    try:
        return ModelConfig.from_dict({k: v for k, v in found.items() if k not in _RUN_SETS})
    except (AttributeError, TypeError) as err:
        raise argparse.ArgumentTypeError(
            f"{shown(text)[:80]} does not describe an architecture ({err}); it holds "
            'ModelConfig\'s fields, e.g. {"blocks": [{"filters": 32}, {"filters": 64}]}.'
        ) from err


def model_config_json(model: ModelConfig) -> str:
    """`model` as `--model-config` takes it: compact JSON of the fields (a block's too)
    that differ from their defaults, less those the run sets."""
    default, block = ModelConfig().to_dict(), asdict(ModelConfig().blocks[0])
    out = {}
    for key, value in model.to_dict().items():
        if key == "blocks":
            out[key] = [{k: v for k, v in b.items() if v != block[k]} for b in value]
        elif key not in _RUN_SETS and value != default[key]:
            out[key] = value
    return json.dumps(out, separators=(",", ":"))


def training_data(config: TrainConfig, progress=None, decoding=None):
    """The `core.data.Dataset` a run of `config` trains on: its data at its image size,
    split as it says, less the training copies of held-out images if it says so.

    Args:
        progress: `progress(done, total)` while near-duplicates are looked for (the first
            time for these images: about 12 s for CIFAR-10; then read from the cache).
        decoding: `progress(done, total)` while an image folder is decoded (the first
            time at this size: about 8 s for CIFAR-10's JPEGs on 2 cores; then cached).
    """
    from core.data import load_dataset

    dataset = load_dataset(
        config.data,
        image_size=config.image_size,
        val_fraction=config.val_fraction,
        seed=config.seed,
        progress=decoding,
        fit=config.fit,
    )
    if config.drop_near_duplicates:
        from core.near_duplicates import without_copies

        dataset = without_copies(dataset, progress=progress)
    return dataset


def main(argv=None) -> int:
    from core.datastats import class_counts, validation_advice, without_images
    from core.evaluate import progress_verbose
    from core.near_duplicates import progress_bar

    args = preset_parser(argv).parse_args(argv)
    # A progress bar on a terminal; one line per epoch when the output goes to a file.
    verbose = 0 if args.quiet else progress_verbose()
    scratch = None
    try:
        if args.resume:
            config = TrainConfig.from_dict(read_json(args.resume / "config.json") or {})
        elif args.run_dir:
            config = TrainConfig.from_dict(read_json(args.run_dir / "config.json") or {})
        else:
            config = config_from_args(args)
        config.validate()
        if warning := precision_warning(config.precision):
            print(f"warning: {warning}", file=sys.stderr)
        # A transfer preset without its weights fails here, before data loads or a run exists.
        check_pretrained(config.model or preset_config(config.preset))
        if config.strategy == "multiworker":
            distribute.make_strategy(config.strategy)  # joins the cluster before any TF op
        if not distribute.is_chief(config.strategy):
            # Only the chief keeps the run; this worker runs the same steps in a scratch copy.
            scratch = Path(tempfile.mkdtemp(prefix="cnn-worker-"))
        look, decoding = (
            (
                progress_bar("Looking for near-duplicates", verbose),
                progress_bar(
                    "Decoding the image folder (once: it is kept for later runs)", verbose
                ),
            )
            if verbose
            else (None, None)
        )
        dataset = training_data(config, progress=look, decoding=decoding)
        if advice := batch_advice(len(dataset.split("train")[1]), config.batch_size):
            print(f"warning: {advice}", file=sys.stderr)
        counts = class_counts(dataset)
        fraction, patience = config.val_fraction, config.early_stopping
        own = dataset.val_folder
        if advice := validation_advice(dataset.class_names, counts, fraction, patience, own):
            print(f"warning: {advice}", file=sys.stderr)
        if own and verbose:
            held = counted(int(counts["val"].sum()) if "val" in counts else 0, "image")
            none = without_images(dataset.class_names, counts.get("val", []))
            if none and len(none) < dataset.num_classes:  # a small export's valid/
                held += f", none of {', '.join(none)}"
            print(
                f"Validating on the folder's own {own}/ ({held}): --val-fraction and --seed "
                "do not choose them.",
                file=sys.stderr,
            )
        if dataset.left_out:
            print(
                f"Left out {counted(dataset.left_out, 'training image')}: near-duplicates of "
                "validation or test images.",
                file=sys.stderr,
            )
        if warning := folders_not_read(config.data):
            print(f"warning: {warning}", file=sys.stderr)
        if dataset.skipped:
            print(
                f"Skipped {counted(len(dataset.skipped), 'unreadable file')}, e.g. "
                f"{dataset.skipped[0][0]}: {dataset.skipped[0][1]}",
                file=sys.stderr,
            )
        if args.resume:
            from core.estimate import describe_remaining

            if verbose and (sentence := describe_remaining(args.resume)):
                print(sentence, file=sys.stderr)
            target = _worker_copy(args.resume, scratch) if scratch else args.resume
            run_dir = resume(target, dataset, verbose=verbose)
        else:
            if scratch:
                run_dir = start_run(config, scratch)
            else:
                run_dir = args.run_dir or start_run(config, args.runs_dir)
            print(f"Run directory: {run_dir}", file=sys.stderr)
            train(config, dataset, run_dir, verbose=verbose)
        return _report(run_dir, worker=scratch is not None)
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        prepared = None if scratch else args.resume or args.run_dir
        if prepared and runs.read_status(prepared).get("state") != "failed":
            with contextlib.suppress(OSError):  # the disk that failed the run may refuse it
                runs.write_status(prepared, state="failed", message=str(err), ended=runs.now_iso())
        return 1
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _worker_copy(run_dir: Path, scratch: Path) -> Path:
    copy = shutil.copytree(run_dir, scratch / "run")
    # The chief may already be resuming the original: the copy is this worker's own.
    if runs.read_status(copy).get("state") == "running":
        runs.write_status(copy, state="stopped")
    return copy


def _report(run_dir: Path, worker: bool) -> int:
    status = runs.read_status(run_dir)
    hist = runs.read_history(run_dir)
    if worker:
        done = counted(len(hist), "epoch")
        print(f"{status['state']}: worker finished {done}; the chief keeps the run")
        return 0
    acc = runs.kept_accuracy(run_dir)  # early stopping's best epoch; bf16's float32 copy
    print(
        f"{status['state']}: {counted(len(hist), 'epoch')} in {status.get('wall_seconds')} s"
        + (f", validation accuracy {acc:.4f}" if acc is not None else "")
        + f"\n{run_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
