"""KerasTuner search: every trial a real run on a tiny generated image folder."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT, plant_a_copy_of_a_val_image, write_image_folder

from core import runs, search
from core.augment import AugmentConfig
from core.errors import RunError
from core.search import SearchConfig
from core.train import RECIPES


@pytest.fixture
def hundred_images(tmp_path):
    """102 PNGs of 32x32 in 3 colour classes."""
    root = tmp_path / "images"
    write_image_folder(root, per_class=34, size=32)
    return root


def test_two_trials_are_two_completed_runs_and_the_best_is_reported(hundred_images):
    plant_a_copy_of_a_val_image(hundred_images)
    config = SearchConfig(
        data=str(hundred_images),
        preset="seed",
        trials=2,
        epochs=1,
        batch_size=16,
        name="t",
        drop_near_duplicates=True,
    )
    search_dir = search.start_search(config)
    assert search_dir == runs.default_runs_dir() / ".search-t"
    summary = search.run_search(search_dir)

    rows = sorted(runs.list_runs(), key=lambda r: r["name"])
    assert [r["name"].split("-", 2)[2] for r in rows] == ["search-t-trial-01", "search-t-trial-02"]
    assert [r["state"] for r in rows] == ["completed", "completed"]
    accuracies = []
    for row in rows:
        history = runs.read_history(row["path"])
        assert [h["epoch"] for h in history] == [1] and 0 <= history[0]["val_accuracy"] <= 1
        accuracies.append(history[0]["val_accuracy"])
        card = json.loads((Path(row["path"]) / "model_card.json").read_text())
        assert card["class_names"] == ["cat", "dog", "frog"] and card["input_size"] == 32
        # Every trial left out the planted copy of a validation image.
        assert card["data"]["near_duplicates_left_out"] == 1
        assert card["data"]["split_sizes"] == {"train": 92, "val": 9}

    assert [t["run"] for t in summary["trials"]] == [Path(r["path"]).name for r in rows]
    assert [t["val_accuracy"] for t in summary["trials"]] == accuracies
    best = summary["best"]
    assert best["val_accuracy"] == max(accuracies)
    assert Path(best["run_dir"]).name == best["run"]
    assert json.loads((search_dir / "summary.json").read_text()) == summary
    assert runs.read_status(search_dir)["state"] == "completed"
    assert (search_dir / "oracle.json").is_file()  # KerasTuner's own files stay in here

    # Each trial trained what the tuner chose.
    for trial in summary["trials"]:
        saved = json.loads((Path(trial["run_dir"]) / "config.json").read_text())
        hp = trial["hyperparameters"]
        assert saved["learning_rate"] == pytest.approx(hp["learning_rate"])
        assert saved["epochs"] == hp["epochs"] == 1
        assert 1e-4 <= hp["learning_rate"] <= 1e-2  # a decade either side of seed's 1e-3
        assert saved["model"]["dense_dropout"] == pytest.approx(hp["dropout"])
        assert saved["augment"] == AugmentConfig(**search.AUGMENT_LEVELS[hp["augment"]]).to_dict()
        assert saved["model"]["blocks"][0]["filters"] == max(8, 8 * round(32 * hp["width"] / 8))
    assert best["run"] in search.format_summary(summary)

    # Ended, with its trials the newest runs: its best is the one to show; not while it
    # runs, nor once a run came after it.
    from core import jobs

    latest = jobs.latest_search()
    ended = search.ended_best(latest, rows[-1]["name"])
    assert ended["best"] == best
    assert ended["sentence"].startswith(
        f"Search t ended after 2 of 2 trials. Its best, trial {best['trial']}"
    )
    assert [r["val accuracy"] for r in ended["trials"]] == sorted(
        (100 * a for a in accuracies), reverse=True
    )
    assert ended["trials"][0]["trial"] == best["trial"]
    choices = {"learning rate", "width", "dropout", "augment", "epochs"}
    assert set(ended["trials"][0]) == {"trial", "state", "val accuracy"} | choices
    assert search.ended_best({**latest, "state": "running"}, rows[-1]["name"]) is None
    assert search.ended_best(latest, "20991231-235959-later") is None
    assert search.ended_best(None, None) is None


def test_a_trial_scores_the_model_it_kept_not_its_best_epoch(tmp_path):
    """A trial whose second epoch undid its first: its model is the second epoch's, so the
    search must not recommend it for the first's accuracy (52% said, 31% on Evaluate)."""
    run_dir = tmp_path / "trial"
    run_dir.mkdir()
    assert runs.kept_accuracy(run_dir) is None  # nothing trained yet
    history = [{"epoch": 1, "val_accuracy": 0.52}, {"epoch": 2, "val_accuracy": 0.31}]
    (run_dir / "history.json").write_text(json.dumps(history))
    assert runs.kept_accuracy(run_dir) == 0.31  # stopped before its card: the last epoch
    card = {"metrics": {"val_accuracy": 0.33, "best_val_accuracy": 0.52}}
    (run_dir / "model_card.json").write_text(json.dumps(card))
    assert runs.kept_accuracy(run_dir) == 0.33
    card["metrics"]["val_accuracy"] = float("nan")
    (run_dir / "model_card.json").write_text(json.dumps(card))
    assert runs.kept_accuracy(run_dir) is None


def test_a_stop_request_ends_the_search_before_its_next_trial(hundred_images):
    config = SearchConfig(data=str(hundred_images), preset="seed", trials=3, epochs=1)
    search_dir = search.start_search(config)
    runs.request_stop(search_dir)
    summary = search.run_search(search_dir)
    assert summary == {"trials": [], "best": None}
    assert runs.read_status(search_dir)["state"] == "stopped"
    assert not (search_dir / "stop.request").exists()
    assert runs.list_runs() == []


def test_trial_config_maps_the_choices_onto_the_preset():
    base = search.base_config(SearchConfig(data="x", preset="vgg_bn", epochs=2))
    values = {"learning_rate": 0.01, "width": 0.5, "dropout": 0.3, "augment": "strong"}
    config = search.trial_config(base, values, "search-a-trial-01")
    assert config.preset == "custom" and config.model.preset == "vgg_bn"
    assert [b.filters for b in config.model.blocks] == [16, 32, 64]
    assert config.model.dense_dropout == 0.3 and config.learning_rate == 0.01
    assert config.augment == AugmentConfig(flip=True, translation=0.15, rotation=15.0, zoom=0.1)
    assert config.name == "search-a-trial-01" and config.epochs == 2
    assert (config.optimizer, config.schedule, config.batch_size) == ("nesterov", "onecycle", 128)
    assert base.model.blocks[0].filters == 32  # the base is left as it was


def test_the_base_run_is_the_preset_with_its_recipe():
    quick = search.base_config(SearchConfig(data="x", preset="quick", epochs=4))
    recipe = RECIPES["quick"]
    assert (quick.optimizer, quick.learning_rate, quick.batch_size) == (
        "nesterov",
        recipe["learning_rate"],
        512,
    )
    assert quick.precision == "auto" and quick.epochs == 4
    assert quick.augment == AugmentConfig(flip=True, crop_pad=2)
    assert search.base_config(SearchConfig(data="x", preset="seed", batch_size=8)).batch_size == 8
    assert quick.fit == "squash"  # an image folder's pictures as every run reads them
    assert search.base_config(SearchConfig(data="x", fit="crop")).fit == "crop"


@pytest.mark.parametrize(
    "change, sentence",
    [
        (dict(preset="custom"), "The search starts from a preset: seed, vgg_bn"),
        (dict(trials=0), "A search needs at least 1 trial."),
        (dict(val_fraction=0.0), "the validation fraction must be in (0, 1)."),
        (dict(algorithm="grid"), "Algorithm must be one of hyperband, random."),
    ],
)
def test_settings_that_cannot_work_are_refused_with_a_sentence(change, sentence):
    with pytest.raises(RunError) as err:
        search.start_search(SearchConfig(data="x", **change))
    assert sentence in str(err.value)
    assert not runs.default_runs_dir().exists() or not list(runs.default_runs_dir().iterdir())


def test_searches_without_a_name_are_numbered_in_their_runs_folder(hundred_images, tmp_path):
    base = tmp_path / "runs"
    config = SearchConfig(data=str(hundred_images), preset="seed", trials=1, epochs=1)
    first, second = (search.start_search(config, base) for _ in range(2))
    assert [search.ident(first), search.ident(second)] == ["1", "2"]
    # Named ones and the time stamps of older versions are not numbers: the count goes on.
    for name in ("t", "20261205-162036", "9x"):
        search.start_search(replace(config, name=name), base)
    (base / ".search-7").mkdir()
    assert search.ident(search.start_search(config, base)) == "8"
    assert search.read_search(base / ".search-8")[1] == "8"


def test_a_transfer_search_without_weights_is_refused_before_it_starts():
    with pytest.raises(RunError, match="ImageNet weights for MobileNetV3Small are not on"):
        search.start_search(SearchConfig(data="x", preset="mobilenet"))


def test_cli_help_names_every_option():
    out = subprocess.run(
        [sys.executable, "-m", "core.search", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    for flag in (
        "--data",
        "--trials",
        "--epochs",
        "--preset",
        "--algorithm",
        "--fit",
        "--runs-dir",
        "--drop-near-duplicates",
    ):
        assert flag in out.stdout
