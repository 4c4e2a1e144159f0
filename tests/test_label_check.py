"""The search for label errors: its rule by hand, its folds, real fold models on a folder
with pictures filed under the wrong class, in process, from the command line and as a job."""

import csv
import io

import numpy as np
import pytest
from conftest import write_image_folder

from core import jobs, label_check, runs
from core.errors import DataError, RunError
from core.fileio import read_json
from core.train import TrainConfig, preset_defaults


def test_suspects_are_answered_otherwise_the_sure_ones_first():
    y = np.array([0] * 4 + [1] * 4 + [2] * 4)
    probs = np.array(
        [[0.5, 0.25, 0.25]] * 4 + [[0.3, 0.4, 0.3]] * 4 + [[0.05, 0.05, 0.9]] * 4, np.float32
    )
    # The thresholds: each class's mean probability on the images filed under it, 0.37, 0.33
    # and 0.51 with the rows below.
    probs[1] = [0.02, 0.90, 0.08]  # a 0 answered 1, surely: the first suspect
    probs[9] = [0.20, 0.60, 0.20]  # a 2 answered 1, surely
    probs[10] = [0.50, 0.45, 0.05]  # a 2 answered 0, surely
    probs[5] = [0.37, 0.15, 0.48]  # a 1 answered 2, under 2's threshold: a suspect, not sure
    probs[6] = [0.30, 0.38, 0.32]  # a 1 answered 1: no suspect
    probs[3] = [0.45, 0.50, 0.05]  # a 0 answered 1, as sure of 0 as 0s are: not sure
    found = label_check.suspects(probs, y)
    assert found["index"].tolist() == [1, 10, 9, 5, 3]  # sure first, each by its own class
    assert found["sure"].tolist() == [True, True, True, False, False]
    assert found["given"].tolist() == [0, 2, 2, 1, 0]
    assert found["likely"].tolist() == [1, 0, 1, 2, 1]
    assert found["p_given"] == pytest.approx([0.02, 0.05, 0.20, 0.15, 0.45])
    assert found["p_likely"] == pytest.approx([0.90, 0.50, 0.60, 0.48, 0.50])


def test_folds_hold_a_share_of_every_class_and_follow_the_seed():
    y = np.repeat([0, 1, 2], [40, 12, 9])
    fold = label_check.stratified_folds(y, 4, seed=3)
    for label, count in ((0, 40), (1, 12), (2, 9)):
        sizes = np.bincount(fold[y == label], minlength=4)
        assert sizes.sum() == count and sizes.max() - sizes.min() <= 1
    assert np.array_equal(fold, label_check.stratified_folds(y, 4, seed=3))
    assert not np.array_equal(fold, label_check.stratified_folds(y, 4, seed=4))


def test_fold_models_train_long_enough_on_small_folders():
    quick = preset_defaults("quick")
    big = label_check.fold_config(quick, 50_000)  # CIFAR-10: the preset as it is
    assert (big.batch_size, big.epochs) == (quick.batch_size, quick.epochs)
    assert big.learning_rate == quick.learning_rate
    small = label_check.fold_config(quick, 600)  # 450 a model: batches of 16 or more
    assert small.batch_size == 32 and small.epochs == 14  # 15 batches an epoch, 200 at least
    assert small.learning_rate == pytest.approx(quick.learning_rate / 4)  # sqrt(32 / 512)
    tiny = label_check.fold_config(quick, 40)
    assert tiny.batch_size == 32 and tiny.epochs == label_check.MAX_EPOCHS
    assert small.small_crop_share == 0 and small.early_stopping == 0


@pytest.fixture
def misfiled(tmp_path):
    """Three colour classes of 24 pictures, two cats filed as dogs."""
    root = tmp_path / "pets"
    write_image_folder(root, per_class=24, size=16)
    moved = sorted((root / "cat").iterdir())[:2]
    for path in moved:
        path.rename(root / "dog" / f"was-cat-{path.name}")
    return root, {f"dog/was-cat-{p.name}" for p in moved}


def _config(root) -> TrainConfig:
    return TrainConfig(preset="quick", data=str(root), val_fraction=0.25)


def test_the_pictures_filed_under_the_wrong_class_are_found(misfiled, monkeypatch):
    root, moved = misfiled
    folder = label_check.start_folder(_config(root))
    result = label_check.run_in_folder(folder)
    assert runs.read_status(folder)["state"] == "completed"
    assert read_json(folder / label_check.RESULT_FILE) == result
    assert result["images"] == 72 and result["folds"] == label_check.FOLDS
    first = result["suspects"][:2]
    assert {row["file"] for row in first} == moved, result["suspects"]  # they come first
    assert {(row["given"], row["likely"]) for row in first} == {("dog", "cat")}
    assert all(row["p_likely"] > row["p_given"] for row in first)
    assert {row["split"] for row in result["suspects"]} <= {"train", "val"}
    found = len(result["suspects"])
    assert f"; {found} images were answered as another class" in label_check.describe(result)
    rows = list(csv.DictReader(io.StringIO(label_check.as_csv(result))))
    assert [r["file"] for r in rows] == [r["file"] for r in result["suspects"]]
    assert rows[0]["sure"] == str(result["suspects"][0]["sure"])


def test_the_command_line_prints_the_suspects_and_writes_them(
    misfiled, tmp_path, capsys, monkeypatch
):
    root, moved = misfiled
    out = tmp_path / "suspects.csv"
    args = ["--data", str(root), "--folds", "3", "--csv", str(out)]
    assert label_check.main(args) == 0
    said = capsys.readouterr()
    assert "Training 3 quick models of " in said.err
    assert "3 quick models, each trained for " in said.out
    lines = [line for line in said.out.splitlines() if line.startswith("  ")]
    assert {line.split(":")[0].strip() for line in lines[:2]} == moved
    assert all(": filed as dog (" in line for line in lines[:2])
    assert [r["file"] for r in csv.DictReader(out.open())][: len(lines)] == [
        line.split(":")[0].strip() for line in lines
    ]
    # Too few pictures for the models: a sentence.
    write_image_folder(tmp_path / "few", per_class=3, size=16)
    assert label_check.main(["--data", str(tmp_path / "few"), "--image-size", "16"]) == 1
    assert "needs at least 26 images for 4 models" in capsys.readouterr().err


def test_too_few_images_are_refused_before_any_training(tmp_path):
    from core.data import load_dataset

    write_image_folder(tmp_path / "few", per_class=3, size=16)
    dataset = load_dataset(tmp_path / "few", image_size=16, val_fraction=0)
    with pytest.raises(DataError, match=r"needs at least 26 images for 4 models .* has 9\."):
        label_check.check(_config(tmp_path / "few"), dataset)


def test_a_check_runs_in_its_own_process_and_keeps_training_waiting(misfiled):
    root, _ = misfiled
    config = _config(root)
    first = jobs.launch_label_check(config)
    assert not (first / "config.json").exists() and runs.list_runs() == []  # not a run
    with pytest.raises(RunError, match=r"A search for label errors is in progress \(\.labelcheck-"):
        jobs.launch(config)
    assert jobs.latest_label_check()["path"] == str(first)
    jobs.stop(first)
    done = jobs.wait_for_state(first, jobs.FINISHED, timeout=120)
    assert done["state"] == "stopped", jobs.log_tail(first)
    assert not (first / label_check.RESULT_FILE).exists()
    second = jobs.launch_label_check(config)
    assert not first.exists()  # only the newest is kept
    jobs.stop(second)
    assert jobs.wait_for_state(second, jobs.FINISHED, timeout=120)["state"] == "stopped"
