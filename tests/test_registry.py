import json
import shlex
import shutil

import numpy as np
import pytest

from core import registry, runs
from tests.conftest import write_image_folder


def test_the_shipped_default_comes_first_then_runs_with_a_model(trained_run, tmp_path):
    models = registry.available_models()
    assert models[0]["id"] == "default"
    shipped = json.loads((registry.DEFAULT_MODEL_DIR / "model_card.json").read_text())
    assert models[0]["card"] == shipped and len(shipped["class_names"]) == 10
    acc = shipped["metrics"]["val_accuracy"]
    assert models[0]["label"] == f"Shipped default ({shipped['preset']}, {acc:.1%} val)"
    assert [m["id"] for m in models[1:]] == [trained_run.name]
    assert models[1]["path"] == str(trained_run / "model.keras")


def test_runs_without_a_usable_model_are_not_offered(trained_run):
    failed = trained_run.parent / "failed-run"
    shutil.copytree(trained_run, failed)
    runs.write_status(failed, state="failed", message="boom")
    running = trained_run.parent / "running-run"
    shutil.copytree(trained_run, running)
    runs.write_status(running, state="running", **runs.process_identity())
    ids = [m["id"] for m in registry.available_models()]
    assert ids == ["default", trained_run.name]


def test_models_for_a_dataset_know_its_classes_at_its_image_size(trained_run):
    card_path = trained_run / "model_card.json"
    card = json.loads(card_path.read_text())
    models = registry.available_models()
    classes, shipped = card["class_names"], models[0]["card"]
    assert [m["id"] for m in registry.models_for(models, classes, 32)] == [trained_run.name]
    assert registry.models_for(models, classes, 64) == []
    assert registry.models_for(models, classes[::-1], 32) == []  # the names in another order
    cifar = [m["id"] for m in registry.models_for(models, shipped["class_names"], 32)]
    assert cifar == ["default"]
    del card["input_size"]  # a card from before it recorded the size: 32 pixels
    card_path.write_text(json.dumps(card))
    models = registry.available_models()
    assert [m["id"] for m in registry.models_for(models, classes, 32)] == [trained_run.name]


def test_the_models_signature_changes_with_each_file_the_list_reads(trained_run):
    from core.fileio import atomic_write_json

    seen = [registry.models_signature()]
    assert registry.models_signature() == seen[0]
    card = json.loads((trained_run / "model_card.json").read_text())
    atomic_write_json(trained_run / "model_card.json", card | {"calibration": {}})  # as pages do
    seen.append(registry.models_signature())
    runs.write_status(trained_run, state="stopped")
    seen.append(registry.models_signature())
    shutil.copytree(trained_run, trained_run.parent / "another-run")
    seen.append(registry.models_signature())
    (trained_run / "model.keras").unlink()
    seen.append(registry.models_signature())
    assert len(set(seen)) == len(seen)
    assert [m["id"] for m in registry.available_models()] == ["default", "another-run"]
    assert registry.models_signature(trained_run.parent / "missing") != seen[-1]


def test_model_version_changes_when_the_file_is_replaced(trained_run):
    path = trained_run / "model.keras"
    before = registry.model_version(path)
    shutil.copyfile(path, trained_run / "copy.keras")
    (trained_run / "copy.keras").replace(path)
    assert registry.model_version(path) != before


def test_ship_makes_a_run_the_default_without_its_optimizer(trained_run, image_folder, tmp_path):
    from core.model import load_model

    dest = tmp_path / "assets" / "default_model"
    dest.mkdir(parents=True)
    (dest / "model.keras").write_text("the previous model")
    registry.ship(trained_run, str(image_folder), dest=dest)
    assert sorted(p.name for p in dest.iterdir()) == [
        "history.json",
        "int8.json",
        "model.int8.onnx",
        "model.keras",
        "model_card.json",
    ]
    assert not list(dest.parent.glob(".default_model*"))  # no staging or old copy left
    assert dest.stat().st_mode & 0o777 == 0o755
    shipped, trained = (
        load_model(dest / "model.keras", compile=True),
        load_model(trained_run / "model.keras", compile=True),
    )
    assert getattr(shipped, "optimizer", None) is None and trained.optimizer is not None
    # No optimizer state, and float16 weights: less than a quarter of the run's file.
    assert (dest / "model.keras").stat().st_size < (trained_run / "model.keras").stat().st_size / 4
    for a, b in zip(shipped.get_weights(), trained.get_weights(), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b.astype(np.float16).astype(b.dtype))
    card = json.loads((dest / "model_card.json").read_text())
    assert card["stored_weights"] == "float16"
    assert card["shipped_from"] == trained_run.name
    from core.quantize import read_record

    assert read_record(dest / "model.keras")["accuracy"] == card["int8"]["accuracy"]
    # The command is written anew from the config and gives that config back.
    from core.train import parse_args

    again = parse_args(shlex.split(card["command"])[3:]).to_dict()
    assert {k: v for k, v in again.items() if k != "model"} == {
        k: v for k, v in card["train_config"].items() if k != "model"
    }
    assert 0 <= card["metrics"]["val_accuracy_flip_tta"] <= 1
    assert 0 <= card["metrics"]["val_accuracy_flip_shift_tta"] <= 1


def test_ship_refuses_a_run_that_did_not_complete(trained_run, tmp_path, capsys):
    runs.write_status(trained_run, state="failed", message="boom")
    before = registry.default_model_path().stat().st_mtime_ns
    assert registry.main(["ship", str(trained_run)]) == 1
    assert "did not complete" in capsys.readouterr().err
    assert registry.default_model_path().stat().st_mtime_ns == before


def test_a_distilled_models_card_says_how_to_train_its_teacher(trained_run, tiny_dataset, tmp_path):
    from dataclasses import replace

    from core.fileio import read_json
    from core.train import TrainConfig, cli_command, train

    config = TrainConfig(preset="seed", epochs=1, batch_size=16, teacher=str(trained_run))
    student = train(config, replace(tiny_dataset, class_names=["cat", "dog", "frog"]))
    dest = tmp_path / "default_model"
    dest.mkdir()
    registry.ship(student, dest=dest)
    card = json.loads((dest / "model_card.json").read_text())
    assert "--teacher" in card["command"]
    teacher_config = TrainConfig.from_dict(read_json(trained_run / "config.json"))
    assert card["teacher"]["command"] == cli_command(teacher_config)
    assert card["teacher"]["preset"] == "seed" and card["teacher"]["epochs"] == 2


def test_calibrate_writes_a_temperature_into_an_older_models_card(
    trained_run, monkeypatch, tmp_path
):
    from core import evaluate as ev
    from core.errors import RunError

    card_path = trained_run / "model_card.json"
    data = json.loads(card_path.read_text())["train_config"]["data"]
    with pytest.raises(RunError, match="too few to fit a temperature"):
        registry.calibrate(trained_run / "model.keras", data)  # its 9 validation images
    monkeypatch.setattr(ev, "MIN_CALIBRATION_IMAGES", 5)
    monkeypatch.setattr(ev, "MIN_CALIBRATION_MISTAKES", 0)
    record = registry.calibrate(trained_run / "model.keras", data)
    assert record["images"] == 9 and record["temperature"] > 0
    assert json.loads(card_path.read_text())["calibration"] == record
    # Data of other classes: its labels would fit the temperature to other answers.
    other = tmp_path / "other"
    write_image_folder(other, per_class=12, classes=("cat", "dog", "unicorn"), size=40)
    with pytest.raises(RunError, match=r"are not the 3 of .*other \(cat, dog, unicorn\): a temp"):
        registry.calibrate(trained_run / "model.keras", other)
    assert json.loads(card_path.read_text())["calibration"] == record  # unchanged


def test_an_older_model_gets_its_novelty_check_from_the_command_line(
    trained_run, monkeypatch, capsys
):
    from core import novelty
    from core.model import load_model

    model_path = trained_run / "model.keras"
    data = json.loads((trained_run / "model_card.json").read_text())["train_config"]["data"]
    assert registry.main(["novelty", "--model", str(model_path), "--data", data]) == 1
    assert "27 training images are too few" in capsys.readouterr().err  # 36, 9 for val
    monkeypatch.setattr(novelty, "MIN_IMAGES", 20)
    assert registry.main(["novelty", "--model", str(model_path), "--data", data]) == 0
    record = json.loads(capsys.readouterr().out)
    assert json.loads((trained_run / "model_card.json").read_text())["novelty"] == record
    check = novelty.load(trained_run / novelty.FILE, load_model(model_path), model_path)
    assert record["threshold"] == pytest.approx(check.threshold, abs=1e-4)
    assert record["fit_images"] + record["calibration_images"] == 27
    assert record["val_images"] == 9
    other = trained_run.parent / "other"  # a folder of other classes: refused, card kept
    write_image_folder(other, per_class=12, classes=("cat", "dog", "unicorn"), size=40)
    assert registry.main(["novelty", "--model", str(model_path), "--data", str(other)]) == 1
    assert "a check for unfamiliar pictures is fitted on the data the model was trained" in (
        capsys.readouterr().err
    )
    assert json.loads((trained_run / "model_card.json").read_text())["novelty"] == record


def test_a_cards_provenance_in_one_line():
    card = {
        "data": {"source": "image folder pets"},
        "class_names": ["cat", "dog"],
        "train_seconds": 2830.2,
        "machine": "AMD EPYC, x86_64 Linux, 2 cores",
        "created": "2026-11-30T05:07:42+01:00",
    }
    assert registry.provenance(card) == (
        "trained on image folder pets (cat, dog) · in 47 min 10 s on AMD EPYC, x86_64 Linux, "
        "2 cores · 2026-11-30 04:07 UTC"
    )
    assert registry.provenance({"train_seconds": 3725, "created": "last week"}) == (
        "trained on unknown data · in 1 h 02 min · last week"
    )
    assert registry.provenance({"train_seconds": 9}) == "trained on unknown data · in 9 s"
    many = {"data": {"source": "image folder c100"}, "class_names": [f"c{i}" for i in range(100)]}
    assert registry.provenance(many) == (
        "trained on image folder c100 (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, … 88 more)"
    )
    balanced = card | {"train_config": {"balance_classes": True}, "train_seconds": None}
    assert registry.provenance(balanced) == (
        "trained on image folder pets (cat, dog), every class weighed the same · "
        "2026-11-30 04:07 UTC"
    )


def test_a_card_says_its_run_left_copies_out_only_for_the_same_held_out_images():
    from core.data import Dataset

    def data(val: int) -> Dataset:
        x = np.zeros((1, 32, 32, 3), np.uint8)
        return Dataset(["a"], "d", {"train": (x, [0]), "val": (np.repeat(x, val, 0), [0] * val)})

    card = {
        "train_config": {"drop_near_duplicates": True, "val_fraction": 0.1, "seed": 0},
        "data": {"split_sizes": {"train": 40, "val": 5}, "near_duplicates_left_out": 3},
    }
    assert registry.copies_left_out(card, data(5), 0.1, 0) == 3
    assert registry.copies_left_out(card, data(6), 0.1, 0) is None  # other held-out images
    assert registry.copies_left_out(card, data(5), 0.2, 0) is None  # another split
    kept_all = card | {"train_config": card["train_config"] | {"drop_near_duplicates": False}}
    assert registry.copies_left_out(kept_all, data(5), 0.1, 0) is None


def test_no_temperature_reason_says_what_the_card_shows():
    def card(**sizes):
        return {"data": {"split_sizes": {"train": 900, **sizes}}}

    assert registry.no_temperature_reason(card(val=60)) == (
        "its run's 60 validation images were too few to fit one on: it takes 200 or more"
    )
    assert registry.no_temperature_reason(card(val=1)).startswith(
        "its run's 1 validation image was"
    )
    assert registry.no_temperature_reason(card()) == (
        "its run held out no validation images to fit one on"
    )
    for enough in (card(val=5000), {}):  # a stopped run, or a card that does not say
        assert registry.no_temperature_reason(enough).startswith("a completed run gets one;")


def test_classes_differ_names_up_to_three_models_that_fit():
    def model(label, names):
        return {"label": label, "card": {"class_names": names}}

    said = "The model's 2 classes (a, b) are not the dataset's 2 (c, d): "
    assert registry.classes_differ(["a", "b"], ["c", "d"], [model("x", ["a", "b"])]) == (
        said + "train a model on it on the Train page, or choose another dataset."
    )
    fitting = [model(f"run {i}", ["c", "d"]) for i in range(5)]
    assert registry.classes_differ(["a", "b"], ["c", "d"], fitting) == (
        said + "choose run 0 or run 1 or run 2 (or 2 more) as the sidebar's Active model."
    )


def test_photos_are_cropped_for_a_model_that_learnt_from_square_images():
    assert registry.framing({"data": {"not_square": 0.0}}) == "crop"
    assert registry.framing({"data": {"not_square": 0.49}}) == "crop"
    assert registry.framing({"data": {"not_square": 0.5}}) == "squash"  # learnt squashed
    assert registry.framing({"data": {"source": "image folder x"}}) == "squash"  # not said
    for source in ("CIFAR-10 (Keras download)", "CIFAR-10 archive ~/cifar-10-python.tar.gz"):
        assert registry.framing({"data": {"source": source}}) == "crop"  # all 32 x 32
    assert registry.framing({}) == "squash"
    # A run that cropped its pictures learnt from centre squares, whatever their share.
    cropped = {"train_config": {"fit": "crop"}, "data": {"not_square": 1.0}}
    assert registry.trained_fit(cropped) == registry.framing(cropped) == "crop"
    assert registry.trained_fit({"train_config": {"image_size": 32}}) == "squash"  # before fit
    shipped = json.loads((registry.DEFAULT_MODEL_DIR / "model_card.json").read_text())
    assert registry.framing(shipped) == "crop"  # CIFAR-10's 32 x 32 images


def test_a_model_reads_its_own_classes_as_its_run_did_and_others_as_photos():
    card = {"class_names": ["cat", "dog", "frog"], "train_config": {"fit": "squash"}}
    card["data"] = {"source": "image folder cifar10-jpeg", "not_square": 0.0}
    assert registry.data_fit(card, ["cat", "dog", "frog"]) == "squash"  # its run's reading
    assert registry.data_fit(card, ["cat", "frog"]) == registry.framing(card) == "crop"
    assert registry.data_fit({}, ["a", "b"]) == "squash"  # a card that does not say


def test_held_out_note_counts_the_validation_images_a_run_split_another_way_trained_on(tmp_path):
    from core.data import stratified_split

    folder = tmp_path / "pets"
    folder.mkdir()

    def card(fraction, seed, data=folder):
        return {"train_config": {"data": str(data), "val_fraction": fraction, "seed": seed}}

    counts = np.array([120, 97, 33])
    # The labels as a folder or an archive interleaves them: the split draws by rank in a
    # class, so what the note counts from the class counts is what the split holds out.
    y = np.random.default_rng(3).permutation(np.repeat(np.arange(3), counts))
    here = stratified_split(y, 0.1, 0)[1]
    trained_on = len(np.setdiff1d(here, stratified_split(y, 0.1, 1)[1]))
    assert 0 < trained_on < len(here) == 25
    note = registry.held_out_note(card(0.1, 1), "runs/x", str(folder), counts, "val", 0.1, 0)
    assert note == (
        "The run held out its validation images with seed 1 (validation fraction 0.1), this "
        f"page with seed 0 (0.1): the run trained on {trained_on} of these 25 images, so the "
        "figures below flatter it. Split every page as the run did to score it on the images "
        "it held out (or `python -m core.evaluate runs/x`)."
    )
    assert registry.run_split(card(0.1, 1)) == (0.1, 1)
    assert registry.trained_on_held_out(card(0.1, 1), str(folder), counts, 0.1, 0) == trained_on
    assert registry.trained_on_held_out({}, str(folder), counts, 0.1, 0) == 0
    # The same seed: a smaller fraction trained on some, a larger one held them all out.
    smaller = registry.held_out_note(card(0.05, 0), "r", str(folder), counts, "val", 0.1, 0)
    extra = len(here) - len(stratified_split(y, 0.05, 0)[1])
    assert f"the run trained on {extra} of these 25 images" in smaller
    for same in (card(0.1, 0), card(0.2, 0)):
        assert registry.held_out_note(same, "r", str(folder), counts, "val", 0.1, 0) is None
    for other in (card(0.1, 1, data=tmp_path / "other"), {}, {"train_config": {"seed": 1}}):
        assert registry.held_out_note(other, "r", str(folder), counts, "val", 0.1, 0) is None
    # A run that held out nothing learnt from every image.
    none = registry.held_out_note(card(0.0, 0), "r", str(folder), counts, "val", 0.1, 0)
    assert none == (
        "The run held out no validation images (validation fraction 0): it trained on all 25 "
        "images here, so the figures below flatter it."
    )
    assert registry.held_out_note(card(0.1, 1), "r", str(folder), counts, "test", 0.1, 0) is None
    assert registry.held_out_note(card(0.1, 1), "r", str(folder), counts, "train", 0.1, 0) is None

    # Five images a class: 10% holds out none, so the training split is all there is.
    five = np.array([5, 5])
    said = registry.held_out_note(card(0.2, 0), "r", str(folder), five, "train", 0.1, 0)
    assert said == (
        "A validation fraction of 0.1, this page's, holds out none of these images: the run "
        "learnt from them, apart from the 2 images it held out, so their accuracy says little "
        "about new pictures. Split every page as the run did to score it on those (or "
        "`python -m core.evaluate r`)."
    )
    alike = registry.held_out_note(card(0.1, 0), "r", str(folder), five, "train", 0.1, 0)
    assert alike.endswith(
        "the run learnt from them, so their accuracy says little about new pictures."
    )


def test_a_run_on_a_folder_with_its_own_validation_images_is_split_as_every_page(tmp_path):
    from tests.conftest import write_image_folder

    folder = tmp_path / "export"
    write_image_folder(folder / "train", per_class=6, classes=("cat", "dog"))
    own = {
        "train_config": {"data": str(folder), "val_fraction": 0.3, "seed": 4},
        "data": {"val_folder": "valid"},
    }
    counts = np.array([6, 6])
    # No fraction chose its validation images, so no page's fraction and seed differ.
    assert registry.own_validation(own) == "valid" and registry.run_split(own) is None
    assert registry.validates_on(own, 0.1, 0)
    assert registry.held_out_note(own, "r", str(folder), counts, "val", 0.1, 0) is None
    # A run split by fraction, and the folder has a validation folder of its own now: the
    # page's validation images are that folder's, which no fraction of train/ held out.
    split = {"train_config": {"data": str(folder), "val_fraction": 0.5, "seed": 1}}
    assert not registry.validates_on(split, 0.1, 0) and registry.run_split(split) == (0.5, 1)
    assert registry.trained_on_held_out(split, str(folder), counts, 0.1, 0) > 0
    write_image_folder(folder / "valid", per_class=2, classes=("cat", "dog"))
    assert registry.trained_on_held_out(split, str(folder), counts, 0.1, 0) == 0
    assert registry.held_out_note(split, "r", str(folder), counts, "val", 0.1, 0) is None
