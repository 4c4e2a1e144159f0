"""The learning-rate range test, on tiny generated data and in a real child process."""

import math

import numpy as np
import pytest
from conftest import write_cifar_archive

from core import jobs, lrfind, runs
from core.errors import RunError
from core.fileio import read_json
from core.train import TrainConfig


def test_rates_grow_geometrically_from_the_first_to_the_last():
    rates = lrfind.learning_rates(1e-4, 1.0, 5)
    assert rates == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_the_lowest_rate_skips_a_diverged_loss_and_needs_a_fall():
    rates = lrfind.learning_rates(1e-4, 1.0, 5)
    assert lrfind.lowest_rate(rates, [2.0, 1.5, 0.9, 1.2, 5.0]) == pytest.approx(1e-2)
    assert lrfind.lowest_rate(rates, [2.0, 1.5, 0.9, math.nan, math.inf]) == pytest.approx(1e-2)
    assert lrfind.lowest_rate(rates, [1.0, 1.5, 2.0, 3.0, 9.0]) is None  # never fell
    assert lrfind.lowest_rate(rates[:1], [1.0]) is None


def test_a_test_records_each_batch_and_finds_where_the_loss_falls(tiny_dataset):
    config = TrainConfig(preset="seed", batch_size=8, seed=1)
    seen = []
    result = lrfind.range_test(
        config, tiny_dataset, steps=30, lr_min=1e-4, lr_max=0.1, on_step=lambda *a: seen.append(a)
    )
    assert len(result["lr"]) == len(result["loss"]) == len(result["smoothed"]) == len(seen) == 30
    assert result["lr"] == pytest.approx(list(lrfind.learning_rates(1e-4, 0.1, 30)))
    assert seen[-1][:2] == (30, 30) and seen[-1][3] == result["loss"][-1]
    # Adam on three colour classes: the loss falls from about ln 3 as the rate grows.
    assert result["loss"][0] == pytest.approx(math.log(3), abs=0.3)
    assert min(result["smoothed"]) < 0.8 * result["smoothed"][0]
    assert not result["stopped_early"]
    lowest = result["lr"][int(np.argmin(result["smoothed"]))]
    assert result["suggested"] == pytest.approx(lowest / 10)
    assert f"the loss was lowest at {lowest:.2g}" in lrfind.describe(result)


def test_a_test_stops_once_the_loss_runs_away(tiny_dataset):
    config = TrainConfig(preset="seed", optimizer="sgd", batch_size=8, seed=1)
    result = lrfind.range_test(config, tiny_dataset, steps=40, lr_min=1e-3, lr_max=1e6)
    assert result["stopped_early"] and len(result["lr"]) < 40
    last = result["smoothed"][-1]
    assert not math.isfinite(last) or last > lrfind.DIVERGED * min(result["smoothed"][:-1])


def test_impossible_ranges_are_refused(tiny_dataset):
    with pytest.raises(RunError, match="lr_min < lr_max"):
        lrfind.range_test(TrainConfig(), tiny_dataset, steps=10, lr_min=1.0, lr_max=0.1)


def test_a_test_runs_in_its_own_process_blocks_training_and_replaces_the_last(tmp_path):
    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=40)
    config = TrainConfig(data=str(archive), batch_size=16)
    first = jobs.launch_lrfind(config)
    assert not (first / "config.json").exists()  # not a run: the runs table ignores it
    assert runs.list_runs() == []
    with pytest.raises(RunError, match=r"A learning-rate test is in progress \(\.lrfind-"):
        jobs.launch(config)
    done = jobs.wait_for_state(first, jobs.FINISHED, timeout=120)
    assert done["state"] == "completed", jobs.log_tail(first)
    result = read_json(first / lrfind.RESULT_FILE)
    assert 2 <= len(result["lr"]) <= lrfind.STEPS and done["step"] == len(result["lr"])
    assert jobs.latest_lrfind()["path"] == str(first)

    second = jobs.launch_lrfind(config)
    assert not first.exists()  # only the newest test is kept
    jobs.stop(second)
    assert jobs.wait_for_state(second, jobs.FINISHED, timeout=60)["state"] == "stopped"
    assert not (second / lrfind.RESULT_FILE).exists()


def test_a_stop_request_ends_a_test_between_batches(tmp_path):
    archive = tmp_path / "c.tar.gz"
    write_cifar_archive(archive, per_batch=40)
    folder = lrfind.start_folder(TrainConfig(data=str(archive), batch_size=16))
    runs.request_stop(folder)
    assert lrfind.run_in_folder(folder, steps=50) == {}
    status = runs.read_status(folder)
    assert status["state"] == "stopped" and status["step"] == 0
    assert not (folder / lrfind.RESULT_FILE).exists()


def test_a_test_of_a_balanced_recipe_weighs_its_batches_as_training_does(monkeypatch):
    import keras

    from core.data import Dataset
    from core.train import class_weights

    rng = np.random.default_rng(0)
    y = np.array([0] * 24 + [1] * 8)
    x = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    data = Dataset(["a", "b"], "noise", {"train": (x, y)})
    weighed = []
    plain = keras.Model.train_on_batch

    def spy(model, x, y=None, sample_weight=None, **kw):
        weighed.append(None if sample_weight is None else np.asarray(sample_weight))
        return plain(model, x, y, sample_weight, **kw)

    monkeypatch.setattr(keras.Model, "train_on_batch", spy)
    config = TrainConfig(preset="seed", batch_size=32, balance_classes=True)
    result = lrfind.range_test(config, data, steps=3, lr_min=1e-4, lr_max=1e-3)
    assert len(result["loss"]) == 3 and all(math.isfinite(v) for v in result["loss"])
    w = class_weights(y, 2)
    assert [sorted(b) for b in weighed] == [sorted(w[y])] * 3  # each batch is all 32 images
    weighed.clear()
    lrfind.range_test(TrainConfig(preset="seed", batch_size=32), data, 2, 1e-4, 1e-3)
    assert weighed == [None, None]
