"""Hyperparameter search with KerasTuner, where every trial is an ordinary training run.

    python -m core.search --data images/ --trials 10 --epochs 3 --preset quick

The tuner (Hyperband, or random search) proposes a learning rate, a width multiplier,
a dropout rate and an augmentation strength; each trial turns them into a `TrainConfig`
and trains it from scratch with `core.train.start_run` and `core.train.train`, for the
epochs Hyperband gives it. So every trial has a run directory,
history, status and model card, and shows in the runs table as `search-<id>-trial-03`.
KerasTuner's own bookkeeping, the search's status and its summary live in
`runs/.search-<id>/`, which is not a run.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from core import runs
from core.errors import CnnError, RunError
from core.fileio import atomic_write_json, read_json
from core.images import ONE_VIEW
from core.words import counted

SEARCH_FILE, TRIALS_FILE, SUMMARY_FILE = "search.json", "trials.json", "summary.json"
# KerasTuner's Bayesian oracle would need scipy and scikit-learn on top.
ALGORITHMS = ("hyperband", "random")
HYPERBAND_FACTOR = 3  # each round keeps the best third of the trials, for 3x the epochs
WIDTHS = (0.5, 1.0, 1.5)  # multipliers of every conv block's filters
DROPOUTS = (0.0, 0.5, 0.1)  # min, max, step of the dropout before the classifier
# Augmentation strength -> AugmentConfig fields; fractions, so they suit any image size.
AUGMENT_LEVELS = {
    "none": {},
    "light": dict(flip=True, translation=0.05),
    "medium": dict(flip=True, translation=0.1, rotation=5.0),
    "strong": dict(flip=True, translation=0.15, rotation=15.0, zoom=0.1),
}


@dataclass
class SearchConfig:
    """One search: the base run it varies and how many trials it tries."""

    data: str = "cifar10"  # as for `core.train.TrainConfig.data`
    preset: str = "quick"  # the base architecture; its recipe (core.train.RECIPES) applies
    trials: int = 10
    epochs: int = 3  # per trial; Hyperband's most, its first rounds train fewer
    algorithm: str = "hyperband"  # one of ALGORITHMS
    image_size: int = 0  # 0: the preset recipe's size, else 32
    fit: str = "squash"  # as for `core.train.TrainConfig.fit`, for every trial
    batch_size: int = 0  # 0: the preset recipe's batch size
    val_fraction: float = 0.1  # trials are compared on this held-out share
    seed: int = 0  # fixes the split, every trial's initialisation and the tuner
    drop_near_duplicates: bool = False  # as for `core.train.TrainConfig`, for every trial
    balance_classes: bool = False  # likewise
    name: str = ""  # the search id; when empty the next number (1, 2, ...) in the runs folder

    def validate(self) -> None:
        """Raises `RunError` with a sentence for the first setting that cannot work."""
        from core.model import PRESETS, TRANSFER_PRESETS

        presets = [*PRESETS, *TRANSFER_PRESETS]
        checks = [
            (self.preset in presets, f"the search starts from a preset: {', '.join(presets)}"),
            (self.algorithm in ALGORITHMS, f"algorithm must be one of {', '.join(ALGORITHMS)}"),
            (self.trials >= 1, "a search needs at least 1 trial"),
            (self.epochs >= 1, "each trial needs at least 1 epoch"),
            (
                0 < self.val_fraction < 1,
                "trials are compared on validation data: the validation fraction must be in (0, 1)",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise RunError(message[0].upper() + message[1:] + ".")

    def to_dict(self) -> dict:
        return asdict(self)


def base_config(search: SearchConfig):
    """Returns the `TrainConfig` every trial starts from: the preset with its recipe.

    Raises:
        RunError: a setting cannot work, or the preset needs weights that are missing.
    """
    from core.model import check_pretrained, preset_config
    from core.train import RECIPES, TrainConfig, parse_augment

    recipe = dict(RECIPES.get(search.preset, {}))
    augment = parse_augment(recipe.pop("augment", ""))
    config = TrainConfig(preset=search.preset, **recipe)
    config = replace(
        config,
        data=search.data,
        epochs=search.epochs,
        seed=search.seed,
        val_fraction=search.val_fraction,
        drop_near_duplicates=search.drop_near_duplicates,
        balance_classes=search.balance_classes,
        augment=augment,
        image_size=search.image_size or config.image_size,
        fit=search.fit,
        batch_size=search.batch_size or config.batch_size,
    )
    config.model = preset_config(search.preset, config.image_size)
    check_pretrained(config.model)
    config.validate()
    return config


def declare_space(hp, base) -> None:
    """Declares the search space on a `keras_tuner.HyperParameters`.

    The learning rate ranges log-uniformly over a decade either side of the recipe's
    (at most 1); the width multiplies each block's filters and is left out for a
    pretrained backbone, whose size is fixed.
    """
    lr = base.learning_rate
    hp.Float("learning_rate", lr / 10, min(lr * 10, 1.0), sampling="log")
    if not base.model.backbone:
        hp.Choice("width", list(WIDTHS), default=1.0)
    low, high, step = DROPOUTS
    hp.Float("dropout", low, high, step=step)
    hp.Choice("augment", list(AUGMENT_LEVELS))


def trial_config(base, values: dict, name: str):
    """Returns the `TrainConfig` of one trial.

    Args:
        base: the search's `base_config`.
        values: the tuner's choices: `learning_rate`, `width` (optional), `dropout`,
            `augment` (a key of `AUGMENT_LEVELS`) and, from Hyperband, `tuner/epochs`.
        name: the run name, e.g. `search-<id>-trial-03`.

    Returns:
        A "custom" `TrainConfig` whose model is the preset's, resized and regularised.
    """
    from core.augment import AugmentConfig

    width = values.get("width", 1.0)
    blocks = [
        replace(b, filters=max(8, 8 * round(b.filters * width / 8))) for b in base.model.blocks
    ]
    model = replace(base.model, blocks=blocks, dense_dropout=float(values["dropout"]))
    return replace(
        base,
        preset="custom",
        model=model,
        name=name,
        epochs=int(values.get("tuner/epochs", base.epochs)),
        learning_rate=float(values["learning_rate"]),
        augment=AugmentConfig(**AUGMENT_LEVELS[values["augment"]]),
    )


# --- the search folder ----------------------------------------------------------------


def start_search(search: SearchConfig, runs_dir=None) -> Path:
    """Validates a search and creates its folder `runs_dir/.search-<id>`, not yet searching.

    Raises:
        RunError: a setting cannot work, or the preset's ImageNet weights are missing.
    """
    search.validate()
    base_config(search)
    ident = runs.safe_name(search.name) if search.name else _next_number(runs_dir)
    path = runs.new_folder(f".search-{ident}", runs_dir)
    atomic_write_json(path / SEARCH_FILE, {**search.to_dict(), "id": path.name[8:]})
    runs.write_status(path, state="created", trials=search.trials, trial=0)
    return path


def _next_number(runs_dir=None) -> str:
    """One more than the highest numbered search in the runs folder: a trial's run is then
    `<time>-search-3-trial-02`, which its time stamp already dates (a time stamp as the id
    wrote it twice, and pushed the runs table's other columns out of sight)."""
    base = Path(runs_dir or runs.default_runs_dir())
    ids = [ident(p) for p in base.glob(".search-*")]
    taken = [int(i) for i in ids if i.isascii() and i.isdigit()]
    return str(max(taken, default=0) + 1)


def ident(search_dir) -> str:
    """A search's id: the name of its folder, `.search-<id>`, without the prefix."""
    return Path(search_dir).name.removeprefix(".search-")


def read_search(search_dir) -> tuple[SearchConfig, str]:
    """Returns the `SearchConfig` saved in a search folder and the search's id."""
    saved = dict(read_json(Path(search_dir) / SEARCH_FILE) or {})
    name = saved.pop("id", None) or ident(search_dir)
    return SearchConfig(**saved), name


def trials(search_dir) -> list[dict]:
    """Returns one record per trial so far: number, run name, choices, state, accuracy."""
    return read_json(Path(search_dir) / TRIALS_FILE, []) or []


def summarise(search_dir) -> dict:
    """Returns the search's outcome: its trials and the best completed one.

    Returns:
        `{"trials": [...], "best": record or None}`; a record has `trial`, `run`,
        `run_dir`, `hyperparameters`, `state` and `val_accuracy` (`runs.kept_accuracy`).
    """
    done = [t for t in trials(search_dir) if t.get("val_accuracy") is not None]
    best = max(done, key=lambda t: t["val_accuracy"], default=None)
    return {"trials": trials(search_dir), "best": best}


def ended_best(latest: dict | None, newest_run: str | None) -> dict | None:
    """The best trial of a search that has ended, when no run came after it.

    The Train page then shows that trial, not the search's last one (whose "Make active
    model" took a trial that was only the last), and every trial's choices.

    Args:
        latest: the newest search's status (`core.jobs.latest_search`), or None.
        newest_run: the name of the newest run in the runs folder, or None.

    Returns:
        `{"best": record, "sentence": str, "trials": rows}`: the best trial's record (as in
        `summarise`), a sentence of how the search ended and what that trial chose, and
        `trial_rows`; None while the search runs, when no trial has an accuracy, or when a
        run newer than its trials exists.
    """
    if not latest or latest.get("state") not in ("completed", "stopped", "failed"):
        return None
    summary = summarise(latest["path"])
    best, tried = summary["best"], [t["run"] for t in summary["trials"]]
    if not best or newest_run not in tried:
        return None
    how = {"completed": "ended", "stopped": "was stopped"}.get(latest["state"], "failed")
    sentence = (
        f"Search {ident(latest['path'])} {how} after {len(tried)} of "
        f"{latest.get('trials', len(tried))} trials. Its best, trial {best['trial']}, is "
        f"shown: validation accuracy {best['val_accuracy']:.2%} at its last epoch (the model it "
        f"kept), with {describe_choices(best['hyperparameters'])}."
    )
    return {"best": best, "sentence": sentence, "trials": trial_rows(summary)}


def trial_rows(summary: dict) -> list[dict]:
    """A search's trials as rows of a table, the most accurate first (those without an
    accuracy last): `trial`, `state`, `val accuracy` (a percentage, of the model it kept,
    or None), then each choice, `learning rate`, `width`, ... (`_` as spaces)."""
    scored = sorted(
        summary["trials"],
        key=lambda t: (t.get("val_accuracy") is None, -(t.get("val_accuracy") or 0), t["trial"]),
    )
    return [
        {
            "trial": t["trial"],
            "state": t.get("state"),
            "val accuracy": None if t.get("val_accuracy") is None else 100 * t["val_accuracy"],
        }
        | {key.replace("_", " "): value for key, value in t["hyperparameters"].items()}
        for t in scored
    ]


# --- the tuner ------------------------------------------------------------------------


def _tuner_class():
    import keras
    import keras_tuner as kt

    class SearchStopped(kt.errors.FatalError):
        """Ends `search` at once: a stop was asked for, or (`failure`) a trial failed."""

        def __init__(self, failure: str | None = None):
            super().__init__(failure or "A stop was requested.")
            self.failure = failure

    class StopWithSearch(keras.callbacks.Callback):
        """Passes a stop of the search on to the trial's run, which stops within a batch."""

        def __init__(self, search_dir: Path, run_dir: Path):
            super().__init__()
            self.search_dir, self.run_dir = search_dir, run_dir

        def on_train_batch_end(self, batch, logs=None):
            if runs.stop_requested(self.search_dir):
                runs.request_stop(self.run_dir)

    class RunTuner(kt.Tuner):
        """A KerasTuner whose trials are `core.train` runs in the same runs folder."""

        def __init__(self, oracle, base, dataset, search_dir: Path, ident: str, **kwargs):
            super().__init__(
                oracle=oracle,
                directory=str(search_dir.parent),
                project_name=search_dir.name,
                **kwargs,
            )
            self.base, self.dataset = base, dataset
            self.search_dir, self.ident = search_dir, ident

        def run_trial(self, trial, *args, **kwargs):
            from core.train import start_run, train

            if runs.stop_requested(self.search_dir):
                raise SearchStopped()
            number = len(trials(self.search_dir)) + 1
            values = dict(trial.hyperparameters.values)
            config = trial_config(self.base, values, f"search-{self.ident}-trial-{number:02d}")
            # Hyperband's bookkeeping (bracket, round, ...) is not a choice worth showing.
            values = {k: v for k, v in values.items() if not k.startswith("tuner/")}
            values["epochs"] = config.epochs
            run_dir = start_run(config, self.search_dir.parent)
            record = {"trial": number, "run": run_dir.name, "run_dir": str(run_dir)}
            record |= {"hyperparameters": values, "state": "running", "val_accuracy": None}
            self._record(record)
            runs.write_status(self.search_dir, trial=number, run=run_dir.name)
            try:
                train(config, self.dataset, run_dir, [StopWithSearch(self.search_dir, run_dir)])
            except CnnError as err:
                self._record({**record, "state": "failed"})
                raise SearchStopped(str(err)) from err
            acc = runs.kept_accuracy(run_dir)
            state = runs.read_status(run_dir).get("state")
            self._record({**record, "state": state, "val_accuracy": acc})
            if state == "stopped":  # the search's stop, or the trial's own Stop button
                raise SearchStopped()
            return {"val_accuracy": 0.0 if acc is None else acc}

        def _record(self, record: dict) -> None:
            rows = [t for t in trials(self.search_dir) if t["trial"] != record["trial"]]
            rows = sorted([*rows, record], key=lambda t: t["trial"])
            atomic_write_json(self.search_dir / TRIALS_FILE, rows)

    return RunTuner, SearchStopped


def make_tuner(search: SearchConfig, base, dataset, search_dir: Path, ident: str):
    """Returns the `keras_tuner.Tuner` of a search, its space declared, and its stop error."""
    import keras_tuner as kt

    hp = kt.HyperParameters()
    declare_space(hp, base)
    objective = kt.Objective("val_accuracy", "max")
    if search.algorithm == "random":
        oracle = kt.oracles.RandomSearchOracle(
            objective, max_trials=search.trials, hyperparameters=hp, seed=search.seed
        )
    else:
        # Brackets repeat until `trials` have run (KerasTuner's Hyperband has no
        # `max_trials` argument, but its oracle honours the attribute).
        oracle = kt.oracles.HyperbandOracle(
            objective,
            max_epochs=search.epochs,
            factor=HYPERBAND_FACTOR,
            hyperband_iterations=None,
            hyperparameters=hp,
            seed=search.seed,
        )
        oracle.max_trials = search.trials
    tuner_class, stopped = _tuner_class()
    return tuner_class(oracle, base, dataset, search_dir, ident), stopped


def run_search(search_dir, dataset=None, verbose: int = 0) -> dict:
    """Runs a search prepared by `start_search` to its end and writes summary.json.

    Args:
        search_dir: the search folder.
        dataset: a `core.data.Dataset`; loaded from the search's `data` when None.
        verbose: KerasTuner's trial reports on stdout (1) or none (0).

    Returns:
        `summarise(search_dir)`. The folder's status says how the search ended:
        completed, stopped (a stop was asked for) or failed (with the message).

    Raises:
        RunError: the search cannot start, or a trial failed (after recording it).
    """
    search_dir = Path(search_dir)
    search, ident = read_search(search_dir)
    runs.write_status(
        search_dir, state="running", started=runs.now_iso(), **runs.process_identity()
    )
    try:
        base = base_config(search)
        if dataset is None:
            from core.train import training_data

            dataset = training_data(base)
        tuner, stopped = make_tuner(search, base, dataset, search_dir, ident)
        try:
            tuner.search(verbose=verbose)
            state, message = "completed", None
        except stopped as err:
            state, message = ("failed", err.failure) if err.failure else ("stopped", None)
    except BaseException as err:
        message = str(err) if isinstance(err, CnnError) else f"{type(err).__name__}: {err}"
        runs.write_status(search_dir, state="failed", message=message, ended=runs.now_iso())
        if isinstance(err, KeyboardInterrupt):
            raise
        raise RunError(message) from err
    (search_dir / "stop.request").unlink(missing_ok=True)
    summary = summarise(search_dir)
    atomic_write_json(search_dir / SUMMARY_FILE, summary)
    runs.write_status(search_dir, state=state, message=message, ended=runs.now_iso(), run=None)
    if state == "failed":
        raise RunError(message)
    return summary


def format_summary(summary: dict) -> str:
    """Returns the lines the CLI prints at the end: every trial, then the best one."""
    lines = []
    for t in summary["trials"]:
        acc = t.get("val_accuracy")
        hp = describe_choices(t["hyperparameters"])
        lines.append(
            f"trial {t['trial']:2d}  {t['state']:<9}  "
            + (f"{acc:.4f}" if acc is not None else "  -   ")
            + f"  {hp}"
        )
    best = summary["best"]
    if best:
        lines.append(
            f"best: trial {best['trial']}, validation accuracy {best['val_accuracy']:.4f}\n"
            f"  {describe_choices(best['hyperparameters'])}\n"
            f"  {best['run_dir']}"
        )
    else:
        lines.append("no trial completed.")
    return "\n".join(lines)


def describe_choices(values: dict) -> str:
    """Returns a trial's choices as one line: "learning_rate=0.0123, width=1.0, ..."."""
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


# --- command line -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = SearchConfig()
    p = argparse.ArgumentParser(
        prog="python -m core.search",
        description="Search learning rate, width, dropout and augmentation strength with "
        "KerasTuner; every trial is a normal training run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default=d.data, help="as for python -m core.train")
    p.add_argument("--trials", type=int, default=d.trials)
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs per trial")
    p.add_argument("--preset", default=d.preset, help="the base architecture and its recipe")
    p.add_argument("--algorithm", choices=ALGORITHMS, default=d.algorithm)
    p.add_argument("--image-size", type=int, default=0, help="0: the preset's recipe, else 32")
    p.add_argument(
        "--fit",
        choices=ONE_VIEW,
        default=d.fit,
        help="an image folder's pictures that are not square, as python -m core.train takes it",
    )
    p.add_argument("--batch-size", type=int, default=0, help="0: the preset's recipe")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--drop-near-duplicates",
        action=argparse.BooleanOptionalAction,
        default=d.drop_near_duplicates,
        help="leave out the training images that copy a validation or test image, as "
        "python -m core.train does",
    )
    p.add_argument(
        "--balance-classes",
        action=argparse.BooleanOptionalAction,
        default=d.balance_classes,
        help="weigh every class the same in each trial's loss, as python -m core.train does",
    )
    p.add_argument("--name", default="", help="the search id (default: the next number, 1, 2, ...)")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="where trial runs and the search folder go (default $CNN_RUNS_DIR or ./runs)",
    )
    p.add_argument("--search-dir", type=Path, help="run a search prepared by the dashboard")
    p.add_argument("--quiet", action="store_true", help="no per-trial reports")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        search_dir = args.search_dir
        if search_dir is None:
            search = SearchConfig(
                **{k: getattr(args, k) for k in SearchConfig.__dataclass_fields__}
            )
            search_dir = start_search(search, args.runs_dir)
        print(f"Search folder: {search_dir}", file=sys.stderr)
        summary = run_search(search_dir, verbose=0 if args.quiet else 1)
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    state = runs.read_status(search_dir)["state"]
    print(f"{state}: {counted(len(summary['trials']), 'trial')}\n" + format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
