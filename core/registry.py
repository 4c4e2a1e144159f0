"""Which models the app may load: the shipped default and the models its runs wrote.

Nothing else is ever loaded: a path comes from this list, never from a user.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from core import runs
from core.fileio import read_json
from core.words import counted

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "default_model"


def default_model_path() -> Path:
    return DEFAULT_MODEL_DIR / "model.keras"


def available_models(runs_dir=None) -> list[dict]:
    """Returns `{"id", "label", "path", "card"}` per loadable model; the default first.

    Runs contribute their model when they completed or were stopped.
    """
    models = []
    if default_model_path().is_file():
        card = read_json(DEFAULT_MODEL_DIR / "model_card.json", {}) or {}
        models.append(
            {
                "id": "default",
                "label": _label("Shipped default", card),
                "path": str(default_model_path()),
                "card": card,
            }
        )
    for row in runs.list_runs(runs_dir):
        path = Path(row["path"]) / "model.keras"
        if row["state"] in ("completed", "stopped") and path.is_file():
            card = read_json(path.parent / "model_card.json", {}) or {}
            models.append(
                {
                    "id": row["name"],
                    "label": _label(row["name"], card),
                    "path": str(path),
                    "card": card,
                }
            )
    return models


_READ = ("config.json", "status.json", "model_card.json", "model.keras")  # per model folder


def models_signature(runs_dir=None) -> str:
    """A digest of the identity (inode, modification time, size) of every file
    `available_models` reads, for the shipped model and each run folder: the list changes
    only when this does. A cache key, computed with a few `stat` calls per run (about a
    tenth of the time the list takes to read)."""
    return runs.files_signature(runs_dir, _READ, also=[DEFAULT_MODEL_DIR])


def models_for(
    models: list[dict], class_names: list[str], image_size: int, knowing_more: bool = False
) -> list[dict]:
    """The `available_models` entries for a dataset's classes (in its order) and image
    size: teachers to learn from, models to compare with.

    A card from before cards recorded the image size counts as 32 pixels.

    Args:
        knowing_more: also the models that know these classes among others (a teacher
            answers among them: `core.train.teacher_targets`).
    """
    return [
        m
        for m in models
        if int(m["card"].get("input_size") or 32) == image_size
        and (
            m["card"].get("class_names") == class_names
            or (knowing_more and _knows_all(m["card"].get("class_names") or [], class_names))
        )
    ]


def _knows_all(known: list[str], class_names: list[str]) -> bool:
    from core.errors import DataError
    from core.evaluate import class_subset

    try:
        class_subset(known, len(known), class_names)
    except DataError:
        return False
    return bool(known)


def model_version(path: str | os.PathLike) -> float:
    """The file's modification time: a cache key that changes when the model is replaced."""
    return os.stat(path).st_mtime_ns


def temperature(entry: dict) -> float:
    """The calibration temperature in an `available_models` entry's card; 1.0 without one."""
    return card_temperature(entry["card"])


def card_temperature(card: dict) -> float:
    """The calibration temperature in a model card; 1.0 without one."""
    return (card.get("calibration") or {}).get("temperature", 1.0)


def trained_fit(card: dict) -> str:
    """How the run a model card describes made its image folder's pictures square
    (`core.train.TrainConfig.fit`): "crop" or "squash" (also for cards from before the
    choice, whose runs squashed). Its data is read the same way to evaluate it."""
    return config_fit(card.get("train_config") or {})


def config_fit(config: dict) -> str:
    """`trained_fit` of a run's `config.json` (a `TrainConfig` as a dict)."""
    return "crop" if config.get("fit") == "crop" else "squash"


def data_fit(card: dict, class_names: list[str]) -> str:
    """How a model reads a dataset of `class_names` (an image folder's pictures that are not
    square): as its run read its own folder (`trained_fit`) when they are its classes, else,
    not its data, as the Classify page frames a photo for it (`framing`: the shipped
    model's centre squares)."""
    known = card.get("class_names")
    return trained_fit(card) if not known or known == list(class_names) else framing(card)


def framing(card: dict) -> str:
    """How to make a photo square for a model, a `core.images.FITS` key: "crop" (its centre
    square, objects keep their shape) when its run cropped its pictures (`trained_fit`) or
    fewer than half its training images were not square, as CIFAR-10's 32 x 32 are;
    "squash" when more were (the model learnt from squashed images) or its card does not
    say (an image folder's run before the share was recorded; CIFAR-10's source says it)."""
    if trained_fit(card) == "crop":
        return "crop"
    data = card.get("data") or {}
    share = data.get("not_square")
    if share is None and str(data.get("source", "")).startswith("CIFAR-10"):
        share = 0.0  # "CIFAR-10 (Keras download)", "CIFAR-10 archive ..."
    return "crop" if share is not None and share < 0.5 else "squash"


def no_temperature_reason(card: dict) -> str:
    """Why a model card has no calibration temperature and how one is had, for a sentence
    that says it has none: too few validation images in its run, or how to fit one."""
    from core.evaluate import MIN_CALIBRATION_IMAGES

    sizes = (card.get("data") or {}).get("split_sizes")
    val = None if sizes is None else sizes.get("val", 0)
    if val == 0:
        return "its run held out no validation images to fit one on"
    if val is not None and val < MIN_CALIBRATION_IMAGES:
        held = f"{val:,} validation images were" if val != 1 else "1 validation image was"
        return (
            f"its run's {held} too few to fit one on: it takes {MIN_CALIBRATION_IMAGES:,} or more"
        )
    return (
        "a completed run gets one; for a stopped run or another model, fit one in the "
        "Evaluate page's Confidence section on its validation split, or run `python -m "
        "core.registry calibrate --model <model.keras> --data <its data>`"
    )


LISTED_CLASSES = 12  # the classes a line names; of more, how many others


def class_list(names: list[str]) -> str:
    """`names` for a line of text: "cat, dog", or the first `LISTED_CLASSES` and how many
    more ("c0, c1, …, c11, … 88 more": 100 names made Home's line a paragraph)."""
    if len(names) > LISTED_CLASSES:
        names = [*names[:LISTED_CLASSES], f"… {len(names) - LISTED_CLASSES} more"]
    return ", ".join(names)


def classes_differ(card_classes: list[str], names: list[str], models: list[dict]) -> str:
    """What to say when a model's classes are not the dataset's: both lists, and the models
    that know the dataset's classes (of `models`, `available_models` entries) or, without
    one, that a model can be trained on it; when the dataset's are some of the model's,
    that the Evaluate page scores it among them."""
    fitting = [m["label"] for m in models if m["card"].get("class_names") == names]
    more = f" (or {len(fitting) - 3} more)" if len(fitting) > 3 else ""
    choose = f"choose {' or '.join(fitting[:3])}{more} as the sidebar's Active model."
    if not _knows_all(card_classes, names):
        said = (
            f"The model's {len(card_classes)} classes ({class_list(card_classes)}) are not "
            f"the dataset's {len(names)} ({class_list(names)}): "
        )
        if not fitting:
            return said + "train a model on it on the Train page, or choose another dataset."
        return said + choose
    return (
        f"The dataset has {len(names)} of the model's {len(card_classes)} classes "
        f"({class_list(names)}): the Evaluate page scores its answers among them, the "
        f"Classify page answers with all {len(card_classes)}. For a model of these alone, "
        + (choose if fitting else "train one on the Train page.")
    )


def provenance(card: dict) -> str:
    """Where a model card says its model came from, in one line.

    The data and its classes, how long training took and on what machine, and when, e.g.
    "trained on image folder x (cat, dog) · in 47 min 10 s on Intel(R) Xeon(R) Processor,
    x86_64 Linux, 2 cores · 2026-11-30 04:07 UTC"; what the card lacks is left out.
    """
    from datetime import UTC, datetime

    source = (card.get("data") or {}).get("source", "unknown data")
    classes = card.get("class_names") or []
    bits = [f"trained on {source}" + (f" ({class_list(classes)})" if classes else "")]
    if left_out := (card.get("data") or {}).get("near_duplicates_left_out"):
        bits[0] += f", less {left_out:,} near-duplicate{'s' * (left_out != 1)} of held-out images"
    if (card.get("train_config") or {}).get("balance_classes"):
        bits[0] += ", every class weighed the same"
    if (seconds := card.get("train_seconds")) is not None:
        machine = f" on {card['machine']}" if card.get("machine") else ""
        bits.append(f"in {duration(seconds)}{machine}")
    if created := card.get("created"):
        try:
            bits.append(
                datetime.fromisoformat(created).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
            )
        except ValueError:
            bits.append(created)  # written by hand or by another tool: shown as it is
    return " · ".join(bits)


def duration(seconds: float) -> str:
    """`seconds` as people say it: "45 s", "7 min 05 s", "1 h 05 min"."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _label(name: str, card: dict) -> str:
    acc = (card.get("metrics") or {}).get("val_accuracy")
    bits = [card.get("preset")] + ([f"{acc:.1%} val"] if acc is not None else [])
    return f"{name} ({', '.join(b for b in bits if b)})"


def ship(run_dir, data: str | None = None, dest: Path = DEFAULT_MODEL_DIR) -> Path:
    """Makes a completed run the shipped default model (a maintainer's step).

    Writes `dest` anew: `model.keras` as trained but without the optimizer's state (half
    the size after SGD with momentum, a third after Adam; the app never trains the shipped
    model) and with its weights stored in float16 (`compact_weights`: less than half the
    size again), the run's `model_card.json` and `history.json`. The card's reproduce command is
    written anew from the run's config. With `data`, the card also gets the validation
    accuracy with flip test-time augmentation on the run's own split, of the shipped file
    as the app serves it, and the model gets its int8 copy (`core.quantize`), calibrated on the
    run's training split and checked on its validation split, and its check for unfamiliar
    pictures (`core.novelty`), fitted on that training split.

    Raises:
        RunError: the run did not complete or its files cannot be read.
    """
    import shutil
    import tempfile

    from core import novelty
    from core.errors import CnnError, RunError
    from core.fileio import atomic_write_json, replace_dir
    from core.model import load_model
    from core.train import TrainConfig, cli_command

    run_dir = Path(run_dir)
    if runs.read_status(run_dir).get("state") != "completed":
        raise RunError(f"{run_dir.name} did not complete; only a completed run is shipped.")
    model = load_model(run_dir / "model.keras", as_saved=True)  # compile=False: weights only
    card = read_json(run_dir / "model_card.json")
    if card is None:
        raise RunError(f"{run_dir.name} has no model card.")
    card["command"] = cli_command(TrainConfig.from_dict(card["train_config"]))
    teacher = card["train_config"].get("teacher")
    if teacher:  # a distilled model is reproduced by training its teacher first
        from core.evaluate import resolve_model_path

        taught_by = read_json(resolve_model_path(teacher).parent / "model_card.json")
        if taught_by is None:
            raise RunError(f"{run_dir.name} learnt from {teacher}, which has no model card.")
        card["teacher"] = {
            k: taught_by.get(k) for k in ("preset", "params", "epochs", "metrics", "train_seconds")
        }
        card["teacher"]["command"] = cli_command(TrainConfig.from_dict(taught_by["train_config"]))
    dataset = split_as_trained(card, data) if data else None
    card["shipped_from"] = run_dir.name
    card["stored_weights"] = "float16"
    dest = Path(dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        model.save(staging / "model.keras")
        compact_weights(staging / "model.keras")
        if dataset is not None:  # the figures of the file as shipped, and its int8 copy
            from core.evaluate import calibration_record, evaluate, predict_probs
            from core.quantize import quantize

            x, y = dataset.split("val")
            served = load_model(staging / "model.keras")
            for mode in ("flip", "flip+shift"):
                card["metrics"][f"val_accuracy_{mode.replace('+', '_')}_tta"] = evaluate(
                    served, x, y, dataset.class_names, tta=mode
                ).accuracy
            if record := calibration_record(predict_probs(served, x), y):
                card["calibration"] = record
            try:
                train_x = dataset.split("train")[0]
                card["novelty"] = novelty.write(served, staging / "model.keras", train_x, x)
            except (ValueError, CnnError):  # too few images, or no convolution to measure
                card.pop("novelty", None)
        else:  # the run's check holds for its own file, not the compacted one
            card.pop("novelty", None)
        atomic_write_json(staging / "model_card.json", card)
        if dataset is not None:
            quantize(staging / "model.keras", dataset, log=lambda line: None, model=served)
        shutil.copy2(run_dir / "history.json", staging / "history.json")
        replace_dir(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def calibrate(model_path: str | os.PathLike, data: str) -> dict:
    """Fits a model's temperature on its own validation split and writes it into its card.

    For models trained before cards carried one (`core.train` fits it at the end of a
    completed run, `ship` on the file as shipped). The split is rebuilt from the card's
    training config (fraction and seed), so the images are those the run validated on.

    Returns:
        The card's new `"calibration"` entry (see `core.evaluate.calibration_record`).

    Raises:
        RunError: the model has no card, `data` has other classes than the card's, or its
            validation split is too small to fit on.
    """
    from core.evaluate import predict_probs
    from core.model import load_model

    card = _card_of(model_path)
    dataset = _its_data(card, data, "a temperature")
    x, y = dataset.split("val")
    return write_calibration(model_path, predict_probs(load_model(model_path), x), y)


def _its_data(card: dict, data: str, what: str):
    """`split_as_trained`, refused when `data` has other classes than the card's: `what` a
    model is fitted with describes the images it learnt from (and a temperature's labels
    would mean other classes)."""
    from core.errors import RunError

    dataset = split_as_trained(card, data)
    known = card.get("class_names")
    if known and known != dataset.class_names:
        raise RunError(
            f"The model's {len(known)} classes ({class_list(known)}) are not the "
            f"{len(dataset.class_names)} of {data} ({class_list(dataset.class_names)}): {what} "
            "is fitted on the data the model was trained on."
        )
    return dataset


def check_novelty(model_path: str | os.PathLike, data: str) -> dict:
    """Fits a model's check for unfamiliar pictures (`core.novelty`) on its own training
    split, saves it beside the model and records it in its card.

    For models trained before runs fitted one at their end. The split is rebuilt from the
    card's training config, as for `calibrate`.

    Returns:
        The card's new `"novelty"` entry.

    Raises:
        RunError: the model has no card, `data` has other classes than the card's, or the
            model has no convolution to measure.
        DataError: too few training images.
    """
    from core import novelty
    from core.errors import RunError
    from core.fileio import atomic_write_json
    from core.model import load_model

    card = _card_of(model_path)
    dataset = _its_data(card, data, "a check for unfamiliar pictures")
    try:
        record = novelty.write(
            load_model(model_path),
            model_path,
            dataset.split("train")[0],
            dataset.splits.get("val", (None,))[0],
        )
    except ValueError as err:
        raise RunError(str(err)) from err
    card["novelty"] = record
    atomic_write_json(Path(model_path).parent / "model_card.json", card)
    return record


def write_calibration(model_path: str | os.PathLike, probs, y_true) -> dict:
    """Fits a temperature on a model's validation probabilities and writes it into its card.

    `probs` must come from images the model did not train on: its own validation split
    (`validates_on`), as `calibrate` and the Evaluate page use.

    Returns:
        The card's new `"calibration"` entry.

    Raises:
        RunError: the model has no card, or too few images or mistakes to fit on.
    """
    from core.errors import RunError
    from core.evaluate import calibration_record, too_few_to_calibrate
    from core.fileio import atomic_write_json

    card = _card_of(model_path)
    if reason := too_few_to_calibrate(probs, y_true):
        raise RunError(reason)
    card["calibration"] = record = calibration_record(probs, y_true)
    atomic_write_json(Path(model_path).parent / "model_card.json", card)
    return record


def validates_on(card: dict, val_fraction: float, seed: int) -> bool:
    """Whether a split of `val_fraction` and `seed` holds the validation images of the run a
    card describes (given the same data): its training config used the same two, or its
    data had validation images of its own (`own_validation`), which every split holds."""
    if own_validation(card):
        return True
    config = card.get("train_config") or {}
    return config.get("val_fraction") == val_fraction and config.get("seed") == seed


def own_validation(card: dict) -> str:
    """The folder of the validation images the run a card describes had in its data
    (`core.data.Dataset.val_folder`: "valid"), or "" when it held them out of its training
    images by fraction and seed."""
    return str((card.get("data") or {}).get("val_folder") or "")


def held_out_by_both(card: dict, spec: str, counts, val_fraction: float, seed: int):
    """The images a split of `val_fraction` and `seed` of the data `spec` holds out, and
    those the run a card describes held out of it, as `(here, its_own)` int arrays of
    positions in `np.repeat(np.arange(len(counts)), counts)` (each class's images by rank:
    `core.data.stratified_split` shuffles each class's indices with one generator, so the
    class counts alone say which ranks a split holds out). None when the run learnt from
    other data or its card does not say its fraction and seed, or when the data's
    validation images are a folder of their own (`core.data.validation_folder`) now or were
    when the run trained: no fraction holds them out.

    Args:
        counts: int `(num_classes,)`, each class's images in the split's training and
            validation parts together (as the data is now).
    """
    import numpy as np

    from core.data import absolute_spec, stratified_split, validation_folder

    config, own = card.get("train_config") or {}, run_split(card)
    if own is None or absolute_spec(str(config["data"])) != absolute_spec(str(spec)):
        return None
    if validation_folder(spec):
        return None
    y = np.repeat(np.arange(len(counts)), np.asarray(counts, dtype=np.int64))
    return stratified_split(y, val_fraction, seed)[1], stratified_split(y, *own)[1]


def run_split(card: dict) -> tuple[float, int] | None:
    """The validation fraction and seed the run a card describes split its data with;
    None when the card does not say them or the data, or when they chose nothing: its data
    had validation images of its own (`own_validation`)."""
    if own_validation(card):
        return None
    config = card.get("train_config") or {}
    fraction, seed = config.get("val_fraction"), config.get("seed")
    if isinstance(fraction, int | float) and isinstance(seed, int) and config.get("data"):
        return float(fraction), seed
    return None


def trained_on_held_out(card: dict, spec: str, counts, val_fraction: float, seed: int) -> int:
    """How many of the images a split of `val_fraction` and `seed` of `spec` holds out the
    run a card describes learnt from (`held_out_by_both`); 0 when none or not known."""
    held = held_out_by_both(card, spec, counts, val_fraction, seed)
    return 0 if held is None else _learnt_from(*held)


def _learnt_from(here, own) -> int:
    """How many of the images a split holds out `here` are not among those the run held
    out (`own`): the run learnt from them."""
    return len(set(here) - set(own))


def held_out_note(
    card: dict, run_dir, spec: str, counts, split: str, val_fraction: float, seed: int
) -> str | None:
    """Why a split of `val_fraction` and `seed` of the data `spec` does not score the run a
    card describes on images it never saw, or None (it does, or the run learnt from other
    data, or its card does not say how it split: `held_out_by_both`). With the same seed a
    larger fraction holds out the smaller one's images and more.

    Args:
        card: a model card; its `train_config` gives the run's data, fraction and seed.
        run_dir: the folder of the card's run, for the command that scores it.
        spec: the data the split is of (a folder, an archive, "cifar10").
        counts: int `(num_classes,)`, each class's images in the split's training and
            validation parts together (as the folder is now).
        split: the part scored, "train" or "val" ("test" is held out by every run).
        val_fraction: the split's share of each class held out, and `seed` its seed.

    Returns:
        A sentence for "val" when the run trained on some of its images, and for "train"
        when the split holds out no image (so "train" is all there is to score).
    """
    held = held_out_by_both(card, spec, counts, val_fraction, seed)
    if held is None or split not in ("train", "val"):
        return None
    here, own = held
    fraction, own_seed = run_split(card)
    trained_on = _learnt_from(here, own)
    if split == "val" and trained_on and not len(own):
        return (
            f"The run held out no validation images (validation fraction {fraction:g}): it "
            f"trained on all {counted(len(here), 'image')} here, so the figures below flatter it."
        )
    if split == "val" and trained_on:
        return (
            f"The run held out its validation images with seed {own_seed} (validation fraction "
            f"{fraction:g}), this page with seed {seed} ({val_fraction:g}): the run trained on "
            f"{trained_on} of these {counted(len(here), 'image')}, so the figures below flatter "
            "it. Split every page as the run did to score it on the images it held out (or "
            f"`python -m core.evaluate {run_dir}`)."
        )
    if split == "train" and not len(here):
        said = (
            f"A validation fraction of {val_fraction:g}, this page's, holds out none of these "
            "images: the run learnt from them"
        )
        if not len(own):
            return said + ", so their accuracy says little about new pictures."
        return (
            f"{said}, apart from the {counted(len(own), 'image')} it held out, so their "
            "accuracy says little about new pictures. Split every page as the run did to score "
            f"it on those (or `python -m core.evaluate {run_dir}`)."
        )
    return None


def copies_left_out(card: dict, dataset, val_fraction: float, seed: int) -> int | None:
    """How many training images the run a card describes left out as near-duplicates of
    held-out images (`TrainConfig.drop_near_duplicates`), when it did and `dataset`, split
    with `val_fraction` and `seed`, holds the same held-out images (the same split, the same
    number of validation and test images); else None."""
    if not (card.get("train_config") or {}).get("drop_near_duplicates"):
        return None
    if not validates_on(card, val_fraction, seed):
        return None
    data = card.get("data") or {}
    held_out = {k: v for k, v in data.get("split_sizes", {}).items() if k != "train"}
    if held_out != {k: len(y) for k, (_, y) in dataset.splits.items() if k != "train"}:
        return None  # another dataset with the same classes
    return int(data.get("near_duplicates_left_out", 0))


def _card_of(model_path: str | os.PathLike) -> dict:
    from core.errors import RunError

    card = read_json(Path(model_path).parent / "model_card.json")
    if card is None:
        raise RunError(f"{model_path} has no model card beside it.")
    return card


def split_as_trained(card: dict, data: str):
    """`data` at the image size and split (fraction, seed) of the run a model card describes,
    less the training images the run left out (`TrainConfig.drop_near_duplicates`)."""
    from dataclasses import replace

    from core.train import TrainConfig, training_data

    config = TrainConfig.from_dict(card["train_config"])
    return training_data(replace(config, data=data, image_size=card["input_size"]))


def compact_weights(path: str | os.PathLike) -> int:
    """Rewrites a `.keras` file with its float32 weights stored as float16, compressed.

    Keras casts them back to the model's float32 variables when it loads the file, so the
    model is unchanged but for rounding to 11 significant bits (a relative 5e-4; the shipped
    fast net's probabilities moved by less than 5e-4 and no top class changed). The
    architecture and every other entry of the archive are kept as they are.

    Returns:
        The file's new size in bytes.
    """
    import io
    import zipfile

    import h5py

    from core.fileio import atomic_write_bytes

    with zipfile.ZipFile(path) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    rewritten = []
    for name, blob in entries:
        if name.endswith(".h5"):
            out = io.BytesIO()
            with h5py.File(io.BytesIO(blob), "r") as src, h5py.File(out, "w") as dst:
                _copy_h5(src, dst)
            blob = out.getvalue()
        rewritten.append((name, blob))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, blob in rewritten:
            archive.writestr(name, blob)
    atomic_write_bytes(path, out.getvalue())
    return len(out.getvalue())


def _copy_h5(src, dst) -> None:
    import numpy as np

    dst.attrs.update(src.attrs)
    for key, item in src.items():
        if hasattr(item, "keys"):  # a group
            _copy_h5(item, dst.create_group(key))
            continue
        data = item[()]
        if getattr(data, "dtype", None) == np.float32:
            data = data.astype(np.float16)
        dst.create_dataset(key, data=data).attrs.update(item.attrs)


def main(argv=None) -> int:
    import argparse

    from core.errors import CnnError

    parser = argparse.ArgumentParser(
        prog="python -m core.registry",
        description="Ship a completed run as the default model, calibrate a model, or fit "
        "its check for unfamiliar pictures.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ship", help="copy a run's model and card into assets/default_model")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--data", help="score flip TTA on the run's validation split of this data")
    c = sub.add_parser(
        "calibrate", help="fit a model's temperature on its validation split; write its card"
    )
    c.add_argument("--data", required=True, help="the data the model was trained on")
    c.add_argument("--model", type=Path, default=default_model_path(), help="default: shipped")
    n = sub.add_parser(
        "novelty", help="fit a model's check for unfamiliar pictures on its training split"
    )
    n.add_argument("--data", required=True, help="the data the model was trained on")
    n.add_argument("--model", type=Path, default=default_model_path(), help="default: shipped")
    args = parser.parse_args(argv)
    try:
        if args.command in ("calibrate", "novelty"):
            fit = calibrate if args.command == "calibrate" else check_novelty
            print(json.dumps(fit(args.model, args.data)))
            return 0
        print(ship(args.run_dir, args.data))
    except CnnError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
