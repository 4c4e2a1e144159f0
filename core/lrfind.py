"""Learning-rate range test: which learning rates a recipe can train with.

    python -m core.lrfind --preset quick --data ../shared/datasets/cifar10-jpeg [--steps 100]

Trains a fresh model of the recipe (every `core.train` option applies) for a number of
batches while its learning rate grows geometrically from `--lr-min` to `--lr-max`, and
records each batch's loss; it stops early once the loss has run away (Leslie Smith,
"Cyclical Learning Rates for Training Neural Networks", 2017; fastai's `lr_find`). The
loss falls fastest somewhere below the rate where it is lowest; the suggestion is a tenth of
that rate. Nothing is kept but the curve: no run folder, no model.

The dashboard runs it in a process of its own in `<runs>/.lrfind-<time>/` (`--folder`),
which holds its config, status, log and result (`lrfind.json`).
"""

from __future__ import annotations

import math
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from core import runs
from core.errors import CnnError, RunError
from core.fileio import atomic_write_json, read_json

STEPS, LR_MIN, LR_MAX = 100, 1e-5, 10.0
RESULT_FILE = "lrfind.json"
FOLDER_PREFIX = ".lrfind-"  # hidden in the runs folder, as a search's folder is
CONFIG_FILE = "lrfind_config.json"  # not config.json: the folder is no run
SMOOTHING = 0.9  # of the loss's moving average, with bias correction (fastai: 0.98 over more steps)
DIVERGED = 4.0  # the test stops once the smoothed loss is this many times its lowest


def learning_rates(lr_min: float, lr_max: float, steps: int) -> np.ndarray:
    """The rate of each of `steps` batches: geometric, from `lr_min` to `lr_max`."""
    return lr_min * (lr_max / lr_min) ** (np.arange(steps) / max(1, steps - 1))


def lowest_rate(lrs, smoothed) -> float | None:
    """The rate at the lowest finite smoothed loss, or None when the loss never fell.

    Args:
        lrs: the batches' learning rates, increasing.
        smoothed: the smoothed loss after each batch (a diverged batch's may be inf or nan).
    """
    smoothed = np.asarray(smoothed, dtype=float)
    lowest = int(np.argmin(np.where(np.isfinite(smoothed), smoothed, np.inf)))
    return float(lrs[lowest]) if lowest > 0 else None


def range_test(config, dataset, steps=STEPS, lr_min=LR_MIN, lr_max=LR_MAX, on_step=None) -> dict:
    """Trains a fresh model of `config` for up to `steps` batches at growing learning rates.

    Args:
        config: a `core.train.TrainConfig`: its model, optimizer, loss, batch size,
            augmentation and seed (its schedule and epochs do not apply).
        dataset: a `core.data.Dataset`; its "train" split is used.
        steps: batches to train, unless the loss runs away first.
        lr_min: the first batch's learning rate.
        lr_max: the last batch's learning rate.
        on_step: called as `on_step(done, steps, lr, loss)` after each batch.

    Returns:
        A dict with `lr`, `loss` and `smoothed` (lists of floats, one per batch trained),
        `suggested` (a tenth of `lowest_rate`; None when the loss never fell), `steps`
        and `stopped_early` (bool).

    Raises:
        RunError: a setting cannot work.
    """
    import keras

    from core.model import build_model, init_whitening, set_whiten_bias_trainable
    from core.train import (
        make_loss,
        make_optimizer,
        make_pipeline,
        pipeline_options,
        resolved_model_config,
    )

    if not (0 < lr_min < lr_max) or steps < 2:
        raise RunError("The learning-rate test needs 0 < lr_min < lr_max and 2 steps or more.")
    keras.utils.set_random_seed(config.seed)
    x, y = dataset.split("train")
    model = build_model(resolved_model_config(config, dataset.num_classes))
    init_whitening(model, x)
    rates = learning_rates(lr_min, lr_max, steps)
    schedule = keras.optimizers.schedules.ExponentialDecay(lr_min, steps - 1, lr_max / lr_min)
    model.compile(optimizer=make_optimizer(config, steps, schedule), loss=make_loss(config))
    set_whiten_bias_trainable(model, config.whiten_bias_epochs > 0)
    batches = make_pipeline(**pipeline_options(config, x, y, dataset.num_classes)).repeat()
    result = {"lr": [], "loss": [], "smoothed": [], "steps": steps, "stopped_early": False}
    average = 0.0
    for step, (images, targets, *weighed) in enumerate(batches.take(steps)):
        loss = float(model.train_on_batch(images, targets, *weighed))
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        smoothed = average / (1 - SMOOTHING ** (step + 1))
        result["lr"].append(float(rates[step]))
        result["loss"].append(loss)
        result["smoothed"].append(smoothed)
        if on_step:
            on_step(step + 1, steps, float(rates[step]), loss)
        if not math.isfinite(smoothed) or smoothed > DIVERGED * min(result["smoothed"]):
            result["stopped_early"] = step + 1 < steps
            break
    lowest = lowest_rate(result["lr"], result["smoothed"])
    result["suggested"] = lowest / 10 if lowest else None
    return result


def start_folder(config, runs_dir=None) -> Path:
    """Creates `runs_dir/.lrfind-<time>/` with the test's config, in state "created"."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = runs.new_folder(FOLDER_PREFIX + stamp, runs_dir)
    atomic_write_json(folder / CONFIG_FILE, config.to_dict())
    runs.write_status(folder, state="created")
    return folder


def run_in_folder(folder: Path, steps=STEPS, lr_min=LR_MIN, lr_max=LR_MAX) -> dict:
    """Runs the test of the config in `folder`, recording its progress and its result there.

    Stops between batches when `stop.request` appears (`core.runs.request_stop`).
    """
    from core.train import StopRequested, TrainConfig, training_data

    config = TrainConfig.from_dict(read_json(folder / CONFIG_FILE) or {})
    runs.write_status(folder, state="running", **runs.process_identity(), steps=steps, step=0)

    def report(done, total, lr, loss):
        if runs.stop_requested(folder):
            raise StopRequested()
        runs.write_status(folder, step=done, lr=lr, loss=loss)

    def work():
        return range_test(config, training_data(config), steps, lr_min, lr_max, on_step=report)

    return runs.run_job(folder, work, RESULT_FILE, StopRequested)


def main(argv=None) -> int:
    from core.train import config_from_args, preset_parser, training_data

    argv = sys.argv[1:] if argv is None else argv
    parser = preset_parser(argv)
    parser.prog = "python -m core.lrfind"
    parser.description = __doc__.split("\n")[0]
    parser.add_argument("--steps", type=int, default=STEPS, help="batches at most")
    parser.add_argument("--lr-min", type=float, default=LR_MIN, help="the first batch's rate")
    parser.add_argument("--lr-max", type=float, default=LR_MAX, help="the last batch's rate")
    parser.add_argument("--folder", type=Path, help="run the test prepared in this folder")
    args = parser.parse_args(argv)
    try:
        if args.folder:
            result = run_in_folder(args.folder, args.steps, args.lr_min, args.lr_max)
        else:
            import keras

            config = config_from_args(args)
            config.validate()
            dataset = training_data(config)
            bar = keras.utils.Progbar(args.steps, stateful_metrics=["lr", "loss"])
            result = range_test(
                config,
                dataset,
                args.steps,
                args.lr_min,
                args.lr_max,
                on_step=lambda done, total, lr, loss: bar.update(
                    done, [("lr", lr), ("loss", loss)]
                ),
            )
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if result:
        print(describe(result))
    return 0


def describe(result: dict) -> str:
    """One sentence about a test's result, for the command line and the Train page."""
    tried = f"{len(result['lr'])} batches from {result['lr'][0]:.2g} to {result['lr'][-1]:.2g}"
    if result["suggested"] is None:
        return f"The loss did not fall over {tried}: try a lower --lr-min or more steps."
    lowest = lowest_rate(result["lr"], result["smoothed"])
    return (
        f"Over {tried}, the loss was lowest at {lowest:.2g}; suggested learning rate "
        f"{result['suggested']:.2g} (a tenth of it)."
    )


if __name__ == "__main__":
    sys.exit(main())
