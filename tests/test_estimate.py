"""The time estimate: a real recipe trained for a few batches, then multiplied out."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from conftest import ROOT, class_images, write_cifar_archive

from core import estimate, jobs, novelty
from core.averaging import Lookahead
from core.data import Dataset, load_dataset
from core.errors import RunError
from core.fileio import atomic_write_json
from core.train import SMALL_CROP_COST, TrainConfig, parse_augment

MEASURED = dict(
    timed=8, train_step=0.5, val_step=0.2, save=0.1, teacher_start=0.0, teacher_image=0.0
)


def test_an_estimate_adds_up_its_epochs_validation_checkpoints_start_and_checks():
    config = TrainConfig(epochs=10, batch_size=100)
    found = estimate.estimate(MEASURED | {"traced": 3.0}, config, 1000, 300, start=5.0)
    assert found["steps"] == 10 and found["images_per_second"] == pytest.approx(200)
    assert found["epochs"] == pytest.approx(10 * 10 * 0.5)
    assert found["validation"] == pytest.approx(10 * 3 * 0.2)  # 300 images: 3 batches
    assert found["checkpoints"] == pytest.approx(10 * 0.1)
    assert found["start"] == pytest.approx(5.0 + 3.0)  # tracing counts as start
    # After the last epoch: the model saved, the 300 validation images for the temperature,
    # then the check's 1,000 training and 300 validation images, at 0.2 s per 100.
    assert found["after"] == pytest.approx(0.1 + (300 + 1000 + 300) * 0.002)
    parts = ("start", "teacher", "epochs", "validation", "checkpoints", "after")
    assert found["total"] == pytest.approx(sum(found[p] for p in parts))

    config.epochs = 20
    longer = estimate.estimate(MEASURED | {"traced": 3.0}, config, 1000, 300, start=5.0)
    for part in ("epochs", "validation", "checkpoints"):
        assert longer[part] == pytest.approx(2 * found[part])
    assert longer["after"] == found["after"] and longer["start"] == found["start"]


def test_small_crop_epochs_cost_their_share_and_small_splits_skip_the_checks():
    config = TrainConfig(epochs=10, batch_size=100, small_crop_share=0.5, small_crop_size=24)
    found = estimate.estimate(MEASURED | {"traced": 0.0}, config, 150, 0, start=0.0)
    small = SMALL_CROP_COST * (24 / 32) ** 2
    assert found["epochs"] == pytest.approx((5 + 5 * small) * 2 * 0.5)
    assert found["validation"] == 0
    assert novelty.MIN_IMAGES > 150 and found["after"] == pytest.approx(0.1)  # no pass at all


def test_the_sentence_names_the_total_and_its_parts():
    config = TrainConfig(epochs=20, batch_size=128, early_stopping=3)
    found = estimate.estimate(MEASURED | {"traced": 2.0}, config, 45000, 5000, start=6.0)
    text = estimate.describe(found, config)
    assert text.startswith(
        "About 1 h 01 min on this machine: 20 epochs of 352 batches at 256 images/s (58 min 40 s)"
    )
    assert "validation 2 min 40 s" in text and "the start (data, model, tracing) 8 s" in text
    assert "teacher" not in text  # parts under a second are left out
    assert text.endswith("Early stopping may end it sooner.")
    assert "strategy" not in text
    config.strategy = "multiworker"  # measured on one device: said, not hidden
    assert estimate.describe(found, config).endswith(
        "Early stopping may end it sooner. Timed on one device of this machine: under the "
        "multiworker strategy the run splits each batch over its replicas, which this does "
        "not measure."
    )


def _uneven_dataset():
    x, y = class_images(20, 3)
    keep = np.flatnonzero((y != 2) | (np.arange(len(y)) % 5 == 0))  # class 2 cut to a fifth
    return Dataset(["a", "b", "c"], "generated", {"train": (x[keep], y[keep]), "val": (x, y)})


def test_resuming_is_timed_at_the_runs_own_pace_small_crops_at_their_share(tmp_path):
    config = TrainConfig(epochs=6, small_crop_share=1 / 3, small_crop_size=24, image_size=32)
    assert config.small_crop_epochs == 2
    small = SMALL_CROP_COST * (24 / 32) ** 2
    # The first epoch also traced the model's steps: it counts only when alone.
    history = [{"epoch": 1, "seconds": 30 * small}, {"epoch": 2, "seconds": 10 * small}]
    history += [{"epoch": 3, "seconds": 12.0}, {"epoch": 4, "seconds": 9.0}]
    found = estimate.remaining(config, history)
    assert found == pytest.approx({"epochs": 2, "epoch_seconds": 10, "seconds": 20})
    # Stopped among the small crops: the rest of them cost their share, the others all.
    found = estimate.remaining(config, history[:1])
    assert found["epochs"] == 5 and found["seconds"] == pytest.approx(30 * (small + 4))
    found = estimate.remaining(config, history[:2])
    assert found["epoch_seconds"] == pytest.approx(10)
    assert estimate.remaining(config, []) is None  # no pace to go by
    assert estimate.remaining(replace(config, epochs=4), history) is None  # nothing left
    assert estimate.remaining(config, [{"epoch": 1}]) is None  # an old run: no times

    run = tmp_path / "run"
    run.mkdir()
    atomic_write_json(run / "config.json", replace(config, early_stopping=3).to_dict())
    atomic_write_json(run / "history.json", history)
    assert estimate.describe_remaining(run) == (
        "Resuming trains the 2 epochs left: about 20 s at this run's pace so far "
        "(10 s an epoch), besides loading the data and the checks after the last epoch. "
        "Early stopping may end it sooner."
    )
    fast = [{"epoch": e, "seconds": 0.37} for e in (1, 2, 3)]  # tiny data, a few images
    atomic_write_json(run / "history.json", fast)
    # Small-crop epochs at their share: 0.37 s of one is 0.6 s of a whole epoch.
    assert "(0.48 s an epoch)" in estimate.describe_remaining(run)  # median of 0.6 and 0.37
    # Stopped among the small crops: their pace is said beside a whole epoch's.
    atomic_write_json(run / "history.json", [{"epoch": 1, "seconds": 30 * small}])
    assert "(19 s a 24-pixel epoch, 30 s an epoch of whole images)" in (
        estimate.describe_remaining(run)
    )
    (run / "config.json").write_text("{not json")
    assert estimate.describe_remaining(run) is None
    assert estimate.describe_remaining(tmp_path / "gone") is None


def test_measuring_trains_batches_of_the_real_pipeline_and_validates(monkeypatch):
    import keras

    seen, done = [], []
    real = keras.Model.fit

    def spy(model, data, **kwargs):
        seen.append((len(data.element_spec), kwargs["callbacks"]))
        return real(model, data, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", spy)
    augment = parse_augment("flip,crop_pad=2")
    config = TrainConfig(batch_size=16, balance_classes=True, augment=augment, lookahead=True)
    measured = estimate.measure(
        config, _uneven_dataset(), steps=3, on_step=lambda *a: done.append(a), min_seconds=0
    )
    [(elements, callbacks)] = seen
    assert elements == 3  # images, targets and weights: balanced, as training weighs them
    assert any(isinstance(c, Lookahead) for c in callbacks)  # averaging costs time too
    total = estimate.WARMUP + 3 + 1 + estimate.VAL_STEPS
    assert [d[0] for d in done] == list(range(1, total + 1)) and {d[1] for d in done} == {total}
    assert [d[2] for d in done] == ["training"] * 5 + ["validation"] * 5
    assert measured["timed"] == 3 and measured["traced"] >= 0
    assert measured["train_step"] > 0 and measured["val_step"] > 0 and measured["save"] > 0
    assert measured["teacher_image"] == 0


def test_a_teacher_is_timed_and_one_that_does_not_fit_is_refused(tiny_dataset, trained_run):
    teacher = str(trained_run / "model.keras")
    config = TrainConfig(batch_size=16, teacher=teacher, adversarial_eps=2.0)
    pets = replace(tiny_dataset, class_names=["cat", "dog", "frog"])  # the teacher's classes
    measured = estimate.measure(config, pets, steps=2, min_seconds=0)
    assert measured["teacher_image"] > 0 and measured["train_step"] > 0
    x, y = class_images(10, 4)
    four = Dataset(list("abcd"), "generated", {"train": (x, y)})
    with pytest.raises(RunError, match="tells 3 classes apart .*; this data has 4"):
        estimate.measure(config, four, steps=2, min_seconds=0)


def test_the_command_line_prints_an_estimate(image_folder):
    command = [sys.executable, "-m", "core.estimate", "--data", str(image_folder)]
    command += ["--epochs", "3", "--batch-size", "8", "--steps", "2"]
    done = subprocess.run(command + ["--json"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.splitlines()[-1])
    steps = -(-len(load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")[1]) // 8)
    assert found["steps"] == steps and found["total"] > found["epochs"] > 0
    assert found["text"].startswith("About ") and f"3 epochs of {steps} batches" in found["text"]
    command[4] = str(image_folder / "nowhere")
    missing = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "error: " in missing.stderr


def test_the_page_measures_in_a_process_of_its_own_and_not_beside_a_job(image_folder, tmp_path):
    config = TrainConfig(data=str(image_folder), epochs=2, batch_size=8)
    seen = []
    found = estimate.in_subprocess(config, lambda *step: seen.append(step))
    assert found["text"].startswith("About ") and found["steps"] > 1
    assert seen[-1][0] == seen[-1][1] == len(seen) and seen[-1][2] == "validation"
    timed = len(seen) - estimate.WARMUP - 1 - estimate.VAL_STEPS  # more than 8: 4 s' worth
    assert (
        estimate.STEPS <= timed <= estimate.MAX_STEPS and f"over {timed} batches" in found["text"]
    )

    with pytest.raises(RunError, match="does not exist"):
        estimate.in_subprocess(TrainConfig(data=str(tmp_path / "nowhere")))

    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=40)
    test = jobs.launch_lrfind(TrainConfig(data=str(archive), batch_size=16))
    try:
        with pytest.raises(RunError, match="A learning-rate test is in progress.*too long"):
            estimate.in_subprocess(config)
    finally:
        jobs.stop(test)
        jobs.wait_for_state(test, jobs.FINISHED, timeout=60)
