"""Possible label errors: pictures whose class a model trained without them disagrees with.

    python -m core.label_check --data ~/photos/pets [--folds 4] [--csv suspects.csv]

Every labelled image of the data (its train, validation and test images) is answered by a
model that did not train on it: the images are cut into `--folds` stratified parts, and a
model of the recipe (the quick preset unless told otherwise; every `core.train` option
applies) is trained on all parts but one and answers for that one. An image is a suspect
when that model answers another class; suspects are ranked by Confident Learning (Northcutt,
Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", 2021, as
cleanlab ranks them): first those whose answer's probability reaches that class's threshold
(the mean probability the models give the class on the images filed under it) while their
own class's stays under its own, then the rest, each group the least sure of its own class
first. A suspect is a picture to look at, not a verdict: ambiguous pictures are suspects
too. Nothing is moved.

The dashboard's Dataset page runs it in a process of its own in `<runs>/.labelcheck-<time>/`
(`--folder`), which holds its config, status, log and result (`label_check.json`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from core import runs
from core.errors import CnnError, DataError
from core.fileio import atomic_write_json, read_json
from core.words import counted

FOLDS = 4
RESULT_FILE = "label_check.json"
FOLDER_PREFIX = ".labelcheck-"  # hidden in the runs folder, as a learning-rate test's is
CONFIG_FILE = "label_check_config.json"
# Batches each fold model trains at least: the quick preset's 3 epochs of 512 suit 37,500
# CIFAR-10 images (222 batches), not a folder of 600 (3 batches); smaller folders get
# smaller batches and more epochs.
MIN_STEPS, MIN_BATCH, MAX_EPOCHS = 200, 32, 40
MIN_IMAGES = 20  # per fold model's training images, at the least
PARTS = ("train", "val", "test")


def fold_sizes(images: int, batch: int, epochs: int, folds: int = FOLDS) -> tuple[int, int]:
    """The batch and epochs each fold model trains with, for a recipe of `batch` and
    `epochs` on `images` in all: batches no larger than a twentieth of a model's
    `images * (folds - 1) / folds` (`MIN_BATCH` at least, halving), and enough epochs to
    take `MIN_STEPS` batches (`MAX_EPOCHS` at most)."""
    train = images * (folds - 1) // folds
    while batch > MIN_BATCH and batch * 20 > train:
        batch //= 2
    steps = max(1, -(-train // batch))
    return batch, min(MAX_EPOCHS, max(epochs, math.ceil(MIN_STEPS / steps)))


def fold_config(config, images: int, folds: int = FOLDS):
    """`config` (a `core.train.TrainConfig`) as each fold model trains (`fold_sizes`); no
    small crops, early stopping or validation. A smaller batch takes a learning rate
    smaller by the square root of the batches' ratio (Hoffer et al., 2017): at the recipe's
    rate, batches of 32 made the quick models of a 600-picture CIFAR-10 sample right on
    29% of the pictures they did not see, 40% scaled (three samples each;
    docs/BENCHMARKS.md, session 55)."""
    batch, epochs = fold_sizes(images, config.batch_size, config.epochs, folds)
    return dataclasses.replace(
        config,
        batch_size=batch,
        epochs=epochs,
        learning_rate=config.learning_rate * math.sqrt(batch / config.batch_size),
        small_crop_share=0.0,
        early_stopping=0,
    )


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each image's fold, 0 to `folds - 1`: every class's images dealt out in turn after a
    seeded shuffle, so each fold holds about `1/folds` of every class."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), np.int64)
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        fold[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    return fold


def out_of_fold(config, x, y, num_classes: int, folds: int = FOLDS, on_epoch=None):
    """Every image's probabilities from a model that did not train on it.

    Args:
        config: a `core.train.TrainConfig` as `fold_config` gives it (model resolved).
        x: uint8 `(N, S, S, 3)`; y: int `(N,)`.
        on_epoch: called as `on_epoch(fold, epoch)` (from 1) after each epoch of each fold.

    Returns:
        float32 `(N, num_classes)`.
    """
    import keras

    from core.averaging import Lookahead
    from core.evaluate import predict_probs
    from core.train import (
        FlipTurns,
        WhitenBiasEpochs,
        compiled_model,
        make_pipeline,
        pipeline_options,
    )

    fold = stratified_folds(y, folds, config.seed)
    probs = np.zeros((len(y), num_classes), np.float32)
    for k in range(folds):
        held = fold == k
        xt, yt = x[~held], y[~held]
        keras.utils.set_random_seed(config.seed + k)
        steps = -(-len(yt) // config.batch_size)
        model = compiled_model(config, xt, steps)
        pipeline = pipeline_options(config, xt, yt, num_classes)
        extra = [WhitenBiasEpochs(config.whiten_bias_epochs)]
        if pipeline["flip_turn"] is not None:
            extra.append(FlipTurns(pipeline["flip_turn"]))
        if config.lookahead:
            extra.append(Lookahead(config.epochs * steps))
        if on_epoch is not None:
            extra.append(
                keras.callbacks.LambdaCallback(
                    on_epoch_end=lambda epoch, logs, k=k: on_epoch(k, epoch + 1)
                )
            )
        train_ds = make_pipeline(**pipeline)
        model.fit(train_ds, epochs=config.epochs, callbacks=extra, shuffle=False, verbose=0)
        probs[held] = predict_probs(model, x[held])
        del model, train_ds
        keras.backend.clear_session()
    return probs


def suspects(probs: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The images a model that did not train on them answers as another class, the likeliest
    label errors first.

    Those Confident Learning counts as mislabelled come first (`sure`): the answer's
    probability reaches that class's threshold, and the image's own class's stays under its
    own (a class's threshold: the mean probability of it over the images filed under it).
    Within each group, the least sure of their own class first (cleanlab's self-confidence
    ranking). A weak model's answers are seldom sure, and its mistakes are many: the order
    is what to go by (three pictures planted in a folder of 48 come first, where the rule
    counts one of them sure).

    Returns:
        `{"index", "given", "likely"}` int64, `{"p_given", "p_likely"}` float32 and
        `"sure"` bool arrays of one length.
    """
    probs = np.asarray(probs, np.float32)
    y = np.asarray(y, np.int64)
    rows = np.arange(len(y))
    classes = probs.shape[1]
    thresholds = np.array(
        [probs[y == c, c].mean() if np.any(y == c) else 1.0 for c in range(classes)],
        np.float32,
    )
    likely = probs.argmax(axis=1)
    own, answer = probs[rows, y], probs[rows, likely]
    sure = (answer >= thresholds[likely]) & (own < thresholds[y])
    index = np.flatnonzero(likely != y)
    index = index[np.lexsort((own[index], ~sure[index]))]  # sure first, then by own
    return {
        "index": index,
        "given": y[index],
        "likely": likely[index],
        "p_given": own[index],
        "p_likely": answer[index],
        "sure": sure[index],
    }


def check(config, dataset, folds: int = FOLDS, on_epoch=None) -> dict:
    """Runs the check on every labelled image of `dataset` (`PARTS`).

    Returns:
        A JSON-ready dict: `images`, `folds`, `epochs`, `batch_size`, `class_names`,
        `accuracy` (of the out-of-fold answers), and `suspects` in `suspects`' order, a list
        of `{"split", "index", "file", "given", "likely", "p_given", "p_likely", "sure"}`.

    Raises:
        DataError: too few images for `folds` models.
    """
    from core.hardware import effective_precision
    from core.train import resolved_model_config

    parts = [p for p in PARTS if p in dataset.splits]
    x = np.concatenate([dataset.splits[p][0] for p in parts])
    y = np.concatenate([dataset.splits[p][1] for p in parts]).astype(np.int64)
    where = [(p, i) for p in parts for i in range(len(dataset.splits[p][1]))]
    if len(y) * (folds - 1) // folds < MIN_IMAGES or folds < 2:
        raise DataError(
            f"Looking for label errors needs at least {MIN_IMAGES * folds // (folds - 1)} "
            f"images for {folds} models (each trains on all but a {folds}th of them); "
            f"this data has {len(y):,}."
        )
    config = fold_config(config, len(y), folds)
    config.precision = effective_precision(config.precision)
    config.model = resolved_model_config(config, dataset.num_classes)
    probs = out_of_fold(config, x, y, dataset.num_classes, folds, on_epoch)
    found = suspects(probs, y)
    rows = []
    for n, i in enumerate(found["index"]):
        split, j = where[int(i)]
        files = dataset.files.get(split)
        rows.append(
            {
                "split": split,
                "index": j,
                "file": "" if files is None else str(files[j]),
                "given": dataset.class_names[int(found["given"][n])],
                "likely": dataset.class_names[int(found["likely"][n])],
                "p_given": round(float(found["p_given"][n]), 4),
                "p_likely": round(float(found["p_likely"][n]), 4),
                "sure": bool(found["sure"][n]),
            }
        )
    return {
        "images": int(len(y)),
        "folds": folds,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "preset": config.preset,
        "class_names": dataset.class_names,
        "accuracy": round(float(np.mean(probs.argmax(axis=1) == y)), 4),
        "suspects": rows,
    }


def as_csv(result: dict) -> str:
    """The suspects as CSV: split, index, file, given class, likely class, probabilities."""
    out = io.StringIO()
    columns = ("split", "index", "file", "given", "likely", "p_given", "p_likely", "sure")
    rows = csv.DictWriter(out, columns, lineterminator="\n")
    rows.writeheader()
    rows.writerows(result["suspects"])
    return out.getvalue()


def describe(result: dict) -> str:
    """The result in a sentence, for the command line and the Dataset page."""
    found = len(result["suspects"])
    sure = sum(row["sure"] for row in result["suspects"])
    models = (
        f"{result['folds']} {result['preset']} models, each trained for {result['epochs']} "
        f"epochs without a {result['folds']}th of the {result['images']:,} images, answered "
        f"{result['accuracy']:.1%} of them right"
    )
    if not found:
        return f"{models}, every one as its own class: none looks mislabelled."
    return (
        f"{models}; {counted(found, 'image')} {'was' if found == 1 else 'were'} answered as "
        f"another class, {sure:,} of them surely (Confident Learning: the answer above that "
        "class's usual probability, their own below theirs). The likeliest label errors come "
        "first: look at them before changing anything, ambiguous pictures are here too."
    )


def start_folder(config, folds: int = FOLDS, runs_dir=None) -> Path:
    """Creates `runs_dir/.labelcheck-<time>/` with the check's config, in state "created"."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = runs.new_folder(FOLDER_PREFIX + stamp, runs_dir)
    atomic_write_json(folder / CONFIG_FILE, {"train": config.to_dict(), "folds": folds})
    runs.write_status(folder, state="created")
    return folder


def run_in_folder(folder: Path) -> dict:
    """Runs the check prepared in `folder`, recording its progress (`fold`, `folds`,
    `epoch`, `epochs`) and its result there; stops between epochs on `stop.request`."""
    from core.train import StopRequested, TrainConfig, training_data

    saved = read_json(folder / CONFIG_FILE) or {}
    config = TrainConfig.from_dict(saved.get("train") or {})
    folds = int(saved.get("folds") or FOLDS)
    runs.write_status(folder, state="running", **runs.process_identity(), fold=0, folds=folds)

    def report(fold, epoch):
        if runs.stop_requested(folder):
            raise StopRequested()
        runs.write_status(folder, fold=fold, epoch=epoch)

    def work():
        dataset = training_data(config)
        runs.write_status(folder, epochs=fold_config(config, images_of(dataset), folds).epochs)
        result = check(config, dataset, folds, on_epoch=report)
        return result | {"data": config.data, "split": [config.val_fraction, config.seed]}

    return runs.run_job(folder, work, RESULT_FILE, StopRequested)


def images_of(dataset) -> int:
    """How many labelled images the search answers for: those of all its `PARTS` there."""
    return sum(len(dataset.splits[p][1]) for p in PARTS if p in dataset.splits)


def main(argv=None) -> int:
    from core.train import config_from_args, preset_parser, training_data

    argv = sys.argv[1:] if argv is None else argv
    if not any(a == "--preset" or a.startswith("--preset=") for a in argv):
        argv = ["--preset", "quick", *argv]  # a fast recipe: it trains `--folds` models
    parser = preset_parser(argv)
    parser.prog = "python -m core.label_check"
    parser.description = __doc__.split("\n")[0]
    parser.add_argument("--folds", type=int, default=FOLDS, help="models, each without a part")
    parser.add_argument("--csv", type=Path, help="also write the suspects to this CSV file")
    parser.add_argument("--folder", type=Path, help="run the check prepared in this folder")
    args = parser.parse_args(argv)
    try:
        if args.folder:
            result = run_in_folder(args.folder)
        else:
            import keras

            config = config_from_args(args)
            config.validate()
            dataset = training_data(config)
            plan = fold_config(config, images_of(dataset), args.folds)
            print(
                f"Training {args.folds} {config.preset} models of {plan.epochs} epochs "
                f"(batch {plan.batch_size}), each without a {args.folds}th of the images.",
                file=sys.stderr,
            )
            bar = keras.utils.Progbar(args.folds * plan.epochs, unit_name="epoch")
            result = check(
                config,
                dataset,
                args.folds,
                on_epoch=lambda fold, epoch: bar.update(fold * plan.epochs + epoch),
            )
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not result:
        return 0
    print(describe(result))
    for row in result["suspects"][:20]:
        where = row["file"] or f"{row['split']} #{row['index']}"
        print(
            f"  {where}: filed as {row['given']} ({row['p_given']:.0%}), looks like "
            f"{row['likely']} ({row['p_likely']:.0%}){', sure' if row['sure'] else ''}"
        )
    if len(result["suspects"]) > 20:
        print(f"  ... and {len(result['suspects']) - 20} more", end="")
        print(f" (in {args.csv})" if args.csv else " (--csv FILE writes them all)")
    if args.csv:
        try:
            args.csv.write_text(as_csv(result))
        except OSError as err:
            print(
                f"error: {args.csv} could not be written ({err.strerror or err}).", file=sys.stderr
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
