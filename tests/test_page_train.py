"""AppTest checks of the Train page: form and model summary, a real launch, the runs table."""

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import jobs, runs
from core.augment import AugmentConfig
from core.classify import classify_bytes
from core.data import load_dataset
from core.fileio import atomic_write_json, read_json
from core.model import load_model
from core.train import RECIPES, TrainConfig, parse_augment
from tests.conftest import as_read

SEED_PARAMS_3_CLASSES = 167_562 - 650 + 64 * 3 + 3


def _open(app):
    app.switch_page("pages/train.py").run()
    assert not app.exception
    return app


def _select(app, *rows):
    app.session_state["train_runs"] = {"selection": {"rows": list(rows), "columns": []}}
    return app.run()


PREVIEW = "Learning-rate schedule"  # the New run form's chart


def _charts(app) -> list[dict]:
    return [json.loads(c.proto.spec) for c in app.get("plotly_chart")]


def _run_charts(app) -> list[dict]:
    """The charts of runs: all but the New run form's schedule."""
    return [s for s in _charts(app) if s["layout"]["title"]["text"] != PREVIEW]


def _schedule_preview(app) -> dict:
    [chart] = [s for s in _charts(app) if s["layout"]["title"]["text"] == PREVIEW]
    return chart


def test_the_form_shows_the_seed_model_before_anything_starts(app, trained_run):
    _open(app)
    assert app.title[0].value == "Train"
    assert {m.label: m.value for m in app.metric}["Parameters"] == f"{SEED_PARAMS_3_CLASSES:,}"
    summary = app.dataframe[0].value
    assert summary["layer"].tolist()[-1] == "probs"
    assert summary["params"].sum() == SEED_PARAMS_3_CLASSES
    assert any(c.value == "For 3 classes of 32x32 images." for c in app.caption)
    assert _run_dirs() == [trained_run]
    assert not [c for c in app.caption if "balancing the classes is worth a try" in c.value]


def test_uneven_classes_suggest_balancing_them(app, trained_run, image_folder):
    for i, path in enumerate(sorted(image_folder.glob("cat/*.png")) * 2):  # 36 cats, 12 dogs
        shutil.copy(path, path.with_name(f"more-{i}.png"))
    _open(app)
    train = load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")[1]
    counts = np.bincount(train)
    assert (
        f"This data's largest class has {counts.max() / counts.min():.1f}x the training "
        "images of its smallest: balancing the classes is worth a try."
    ) in [c.value for c in app.caption]


def test_a_folder_of_larger_files_suggests_a_larger_image_size(app, trained_run, image_folder):
    def hint():
        return [c.value for c in app.caption if c.value.startswith("Half this folder's files")]

    _open(app)
    assert not hint()  # 40 x 40 files: 64 would only enlarge them
    for path in image_folder.glob("*/*.png"):
        Image.open(path).resize((100, 80)).save(path)
    from ui import state

    state._signature.clear()  # as 30 s later
    _open(app)
    assert hint() == [
        "Half this folder's files have 80 pixels or more on their shorter side: a model of "
        "64 x 64 pixels sees more of their detail, at about 4 times the time per epoch. The "
        "Dataset page's Image files tab says more of them."
    ]
    app.selectbox(key="train_image_size").set_value(64).run()
    assert not app.exception and not hint()  # 96 is more than they have


def test_a_folder_of_photos_that_are_not_square_may_be_cropped_for_training(
    app, trained_run, image_folder
):
    from tests.conftest import write_framed_folder
    from ui import state

    _open(app)
    assert "train_fit" not in [s.key for s in app.selectbox]  # square: nothing to choose
    shutil.rmtree(image_folder)
    write_framed_folder(image_folder, per_class=8)
    state._signature.clear()  # as 30 s later
    _open(app)
    fit = app.selectbox(key="train_fit")
    assert fit.label == "Pictures that are not square" and fit.value == "squash"
    assert fit.help.startswith("100% of this dataset's training pictures are not square.")
    fit.set_value("crop")
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_batch_size").set_value(8)
    app.button(key="train_start").click().run()
    assert not app.exception
    [new] = [p for p in _run_dirs() if p != trained_run]
    assert jobs.wait_for_state(new, jobs.FINISHED, timeout=90)["state"] == "completed"
    assert read_json(new / "config.json")["fit"] == "crop"
    # The page decoded the folder cropped under its bar, before the run's process started.
    cache = Path(os.environ["CNN_CACHE_DIR"])
    [source] = [s for s in cache.glob("folder-*/source.txt") if s.read_text().endswith("crop")]
    assert source.stat().st_mtime < read_json(new / "job.json")["launched"]
    assert "--fit crop" in read_json(new / "model_card.json")["command"]


def test_a_teacher_of_other_framing_has_the_folder_decoded_its_way_before_the_run(
    app, trained_run, image_folder
):
    """A squashing student of a cropping teacher: the teacher answers for the pictures
    cropped (`core.train.teacher_images`), so the page decodes them so under its bar too,
    where the run's process did it before with nothing to show but "starting"."""
    from core.train import train, training_data
    from tests.conftest import write_framed_folder
    from ui import state

    shutil.rmtree(image_folder)
    write_framed_folder(image_folder, per_class=8)
    state._signature.clear()  # as 30 s later
    taught = TrainConfig(data=str(image_folder), fit="crop", epochs=1, batch_size=8, name="crop")
    teacher = train(taught, training_data(taught)) / "model.keras"
    cache = Path(os.environ["CNN_CACHE_DIR"])

    def cropped():
        return [s for s in cache.glob("folder-*/source.txt") if s.read_text().endswith("crop")]

    shutil.rmtree(cropped()[0].parent)  # as when the teacher was trained elsewhere
    _open(app)
    assert app.selectbox(key="train_fit").value == "squash"
    app.selectbox(key="train_teacher").set_value(str(teacher))
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_batch_size").set_value(8)
    app.button(key="train_start").click().run()
    assert not app.exception
    [new] = [p for p in _run_dirs() if p not in (trained_run, teacher.parent)]
    assert read_json(new / "config.json")["teacher"] == str(teacher)
    [source] = cropped()
    assert source.stat().st_mtime < read_json(new / "job.json")["launched"]
    assert jobs.wait_for_state(new, jobs.FINISHED, timeout=90)["state"] == "completed"


def test_a_custom_architecture_is_summarised_and_checked(app, trained_run):
    _open(app)
    app.selectbox(key="train_preset").set_value("custom").run()
    app.number_input(key="train_blocks").set_value(3).run()
    assert [n.key for n in app.number_input if n.key.endswith("_filters")] == [
        "train_block1_filters",
        "train_block2_filters",
        "train_block3_filters",
    ]
    app.text_input(key="train_dense").set_value("64")
    app.button(key="train_preview").click().run()
    # 3x3 convs of 32, 64, 128 filters with "same" padding: 32 -> 16 -> 8 -> 4 pixels.
    expected = (27 * 32 + 32) + (288 * 64 + 64) + (576 * 128 + 128) + (2048 * 64 + 64) + 195
    assert {m.label: m.value for m in app.metric}["Parameters"] == f"{expected:,}"

    for b in (1, 2, 3):
        app.selectbox(key=f"train_block{b}_kernel").set_value(7)
        app.selectbox(key=f"train_block{b}_padding").set_value("valid")
    app.button(key="train_start").click().run()
    assert [e.value for e in app.error] == [
        "A 32x32 image has no pixels left after block 3: use 'same' padding, smaller kernels "
        "or fewer blocks."
    ]
    app.text_input(key="train_dense").set_value("64,x")
    app.button(key="train_preview").click().run()
    assert "positive whole numbers" in app.error[0].value
    assert _run_dirs() == [trained_run]


def test_choosing_a_preset_fills_the_form_with_its_recipe(app, trained_run):
    _open(app)
    assert app.selectbox(key="train_optimizer").value == "adam"  # the seed's classic recipe
    app.selectbox(key="train_preset").set_value("fast").run()
    shown = {
        "optimizer": app.selectbox(key="train_optimizer").value,
        "lr": app.number_input(key="train_lr").value,
        "batch": app.number_input(key="train_batch_size").value,
        "epochs": app.number_input(key="train_epochs").value,
        "schedule": app.selectbox(key="train_schedule").value,
        "smoothing": app.number_input(key="train_smoothing").value,
        "precision": app.selectbox(key="train_precision").value,
        "flip": app.checkbox(key="train_aug_flip").value,
        "crop_pad": app.number_input(key="train_aug_crop_pad").value,
        "lookahead": app.checkbox(key="train_lookahead").value,
        "small_crop_share": app.number_input(key="train_small_crop_share").value,
        "small_crop_size": app.number_input(key="train_small_crop_size").value,
    }
    recipe = RECIPES["fast"]
    assert shown == {
        "optimizer": recipe["optimizer"],
        "lr": recipe["learning_rate"],
        "batch": recipe["batch_size"],
        "epochs": recipe["epochs"],
        "schedule": recipe["schedule"],
        "smoothing": recipe["label_smoothing"],
        "precision": "auto",
        "flip": parse_augment(recipe["augment"]).flip,
        "crop_pad": parse_augment(recipe["augment"]).crop_pad,
        "lookahead": True,
        "small_crop_share": recipe["small_crop_share"],
        "small_crop_size": recipe["small_crop_size"],
    }
    assert shown["flip"] and shown["crop_pad"] > 0 and shown["small_crop_share"] > 0
    app.selectbox(key="train_preset").set_value("seed").run()
    assert app.selectbox(key="train_optimizer").value == "adam"
    assert app.number_input(key="train_batch_size").value == 128
    assert app.checkbox(key="train_aug_flip").value is False
    assert app.checkbox(key="train_lookahead").value is False
    assert app.number_input(key="train_small_crop_share").value == 0.0
    assert _run_dirs() == [trained_run]


def test_start_training_runs_a_child_process_to_completion(app, trained_run, image_folder):
    app.session_state["train_augment"] = AugmentConfig(flip=True, cutout=8).to_dict()
    _open(app)
    assert "Augmentation settings from the Augmentations page." in [i.value for i in app.info]
    assert app.checkbox(key="train_aug_flip").value is True
    assert app.number_input(key="train_aug_cutout").value == 8
    assert app.selectbox(key="train_image_size").options == [
        "32x32 pixels",
        "64x64 pixels",
        "96x96 pixels",
    ]
    app.selectbox(key="train_image_size").set_value(64).run()
    assert any(c.value == "For 3 classes of 64x64 images." for c in app.caption)
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_batch_size").set_value(16)
    app.checkbox(key="train_lookahead").check()
    assert app.number_input(key="train_adversarial_eps").value == 0.0  # off by default
    app.number_input(key="train_adversarial_eps").set_value(2.0)
    assert app.checkbox(key="train_drop_near").value is False  # every image, by default
    app.checkbox(key="train_drop_near").check()
    assert app.checkbox(key="train_balance").value is False
    app.checkbox(key="train_balance").check()
    app.button(key="train_start").click().run()
    new = [p for p in _run_dirs() if p != trained_run]
    assert len(new) == 1 and app.success[0].value.startswith(f"Started {new[0].name}.")
    assert jobs.status(new[0])["state"] in ("starting", "running", "completed")
    assert any(f"**{new[0].name}**" in m.value for m in app.markdown)
    assert jobs.wait_for_state(new[0], jobs.FINISHED, timeout=90)["state"] == "completed"
    config = read_json(new[0] / "config.json")
    assert config["epochs"] == 1 and config["data"] == str(image_folder)
    assert config["augment"] == AugmentConfig(flip=True, cutout=8).to_dict()
    assert config["lookahead"] is True and config["adversarial_eps"] == 2.0
    assert config["drop_near_duplicates"] is True and config["balance_classes"] is True
    # The child loaded the 40-pixel images at the chosen 64 pixels; the card says so.
    card = read_json(new[0] / "model_card.json")
    assert config["image_size"] == card["input_size"] == card["data"]["image_size"] == 64
    model = load_model(new[0] / "model.keras")
    assert model.input_shape == (None, 64, 64, 3)
    upload = io.BytesIO()
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(upload, "PNG")
    # Classify resizes an upload of any size to the model's 64 pixels.
    assert classify_bytes(model, upload.getvalue(), card["class_names"]).pixels.shape == (64, 64, 3)

    app.run()
    table = app.dataframe(key="train_runs").value
    assert table["run"].tolist() == [new[0].name, trained_run.name]
    assert table["status"].tolist() == ["completed", "completed"]
    assert table["epochs"].tolist() == ["1/1", "2/2"]
    best = [100 * r["best_val_accuracy"] for r in runs.list_runs()]
    assert table["best val accuracy"].tolist() == best  # percent, shown as "%.2f%%"
    # As wide as the longest name (6.2 px a character where the grid sized it itself): a
    # grid keeps the widths of its first cells, and a search's trials came cut.
    columns = json.loads(app.dataframe(key="train_runs").proto.columns)
    assert columns["run"]["width"] >= 6.2 * max(len(name) for name in table["run"])
    assert columns["run"]["pinned"]  # on a narrow screen the others scroll under it
    # The form's schedule; the live view's loss, accuracy, learning rate.
    assert len(app.get("plotly_chart")) == 4
    _select(app, 0)
    assert len(app.get("plotly_chart")) == 6  # plus the overlay of the selected runs
    specs = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    ticks = {
        s["layout"]["title"]["text"]: s["layout"].get("yaxis", {}).get("tickformat") for s in specs
    }
    # Accuracies in percent, as the runs table and every other page: whole ones where the
    # lines span five points or more, tenths under (the run's one epoch can span either).
    accuracy = next(s for s in specs if s["layout"]["title"]["text"] == "Accuracy")
    shown = [v for trace in accuracy["data"] for v in trace["y"] if v is not None]
    assert ticks == {
        "Loss": None,
        "Accuracy": ".1%" if max(shown) - min(shown) < 0.05 else ".0%",
        "Validation accuracy": ".1%",  # one point: a span of four percent, in tenths
        "Validation loss": None,
        "Learning rate": None,
        "Learning-rate schedule": None,
    }
    app.button(key="train_activate").click().run()
    assert app.session_state["sidebar_model"] == new[0].name

    # Both runs selected: the settings they were started with that differ, side by side.
    _select(app, 0, 1)
    configs = {p.name: read_json(p / "config.json") for p in (new[0], trained_run)}
    [shown] = [d.value for d in app.dataframe if "setting" in d.value.columns]
    assert shown.to_dict("records") == runs.settings_that_differ(configs)
    by_setting = shown.set_index("setting")
    assert by_setting.loc["image_size"].tolist() == ["64", "32"]
    assert by_setting.loc["drop_near_duplicates"].tolist() == ["True", "False"]
    assert by_setting.loc["augment.cutout"].tolist() == ["8", "0"]
    assert "seed" not in by_setting.index and "name" not in by_setting.index


@pytest.mark.parametrize("target, title", [("evaluate", "Evaluate"), ("classify", "Classify")])
def test_a_finished_run_leads_on_in_one_click(app, trained_run, target, title):
    """Under a finished run's name: make its model the active one, or go and evaluate it or
    classify photos with it, which makes it the active model too."""
    app.session_state["sidebar_model"] = "default"
    _open(app)
    activate = app.button(key="train_live_activate")
    assert not activate.disabled
    activate.click().run()
    assert app.session_state["sidebar_model"] == trained_run.name
    assert app.button(key="train_live_activate").disabled  # it is the active model now

    app.session_state["sidebar_model"] = "default"
    app.run()
    app.button(key=f"train_live_{target}").click().run()
    assert not app.exception
    assert app.session_state["sidebar_model"] == trained_run.name
    assert app.title[0].value == title  # switched page
    assert app.selectbox(key="sidebar_model").value == trained_run.name


def test_a_run_is_deleted_only_after_confirmation(app, trained_run):
    _open(app)
    _select(app, 0)
    assert app.button(key="train_delete").disabled
    app.checkbox(key=f"train_confirm_{trained_run.name}").check().run()
    app.button(key="train_delete").click().run()
    assert not trained_run.exists()
    assert not app.exception
    assert "No runs yet." in [c.value for c in app.caption]


def test_a_training_run_is_not_deleted(app, trained_run):
    running = runs.default_runs_dir() / "29991231-235959-seed"
    running.mkdir()
    atomic_write_json(running / "config.json", {"preset": "seed", "epochs": 20})
    runs.write_status(running, state="running", epoch=3, epochs=20, **runs.process_identity())
    _open(app)
    assert "epoch 3/20" in app.get("progress")[0].proto.text
    keys = {b.key for b in app.button}  # no model to use yet
    assert not keys & {"train_live_activate", "train_live_evaluate", "train_live_classify"}
    app.button(key="train_stop").click().run()
    assert (running / "stop.request").exists()
    app.run()  # the page says so until the run has stopped
    assert "Stopping at the end of the current batch…" in [c.value for c in app.caption]
    _select(app, 0)
    app.checkbox(key=f"train_confirm_{running.name}").check().run()
    app.button(key="train_delete").click().run()
    assert running.exists()
    assert "29991231-235959-seed is still training; stop it before deleting it." in [
        e.value for e in app.error
    ]


def test_a_run_that_held_out_no_image_draws_no_validation_line(app, image_folder):
    from core.train import TrainConfig, train

    config = TrainConfig(data=str(image_folder), epochs=1, batch_size=16, val_fraction=0.0)
    run_dir = train(config, load_dataset(image_folder, val_fraction=0.0))
    _open(app)
    assert not app.exception
    assert any(run_dir.name in m.value for m in app.markdown)  # the live view shows it
    loss, accuracy = _run_charts(app)[:2]
    for chart in (loss, accuracy):
        assert "validation" not in [t["name"] for t in chart["data"]]
        assert chart["data"][0]["name"] == "train" and len(chart["data"][0]["y"]) == 1
    assert any("(this run held out no images to validate on)" in c.value for c in app.caption)


def test_the_first_epoch_is_drawn_live_before_it_ends(app):
    running = runs.default_runs_dir() / "29991231-235959-seed"
    running.mkdir()
    atomic_write_json(running / "config.json", {"preset": "seed", "epochs": 20})
    runs.write_status(running, state="running", epoch=1, epochs=20, **runs.process_identity())
    _open(app)
    assert not _run_charts(app)  # nothing to draw yet
    for batch, loss, accuracy in [(10, 2.2, 0.15), (20, 2.0, 0.25), (30, 1.9, 0.3)]:
        runs.append_batch_point(running, 1, batch, 40, loss, accuracy)
    app.run()
    assert not app.exception
    loss, accuracy = _run_charts(app)
    assert loss["layout"]["title"]["text"] == "Loss"
    [line] = [t for t in loss["data"] if t["name"] == "train, recent batches"]
    assert line["x"] == [0.25, 0.5, 0.75]
    assert line["y"] == pytest.approx([2.2, 1.8, 1.7])  # each the mean since the point before
    [line] = [t for t in accuracy["data"] if t["name"] == "train, recent batches"]
    assert line["y"] == pytest.approx([0.15, 0.35, 0.4])


def test_the_form_draws_the_schedule_its_settings_give(app, trained_run, image_folder):
    _open(app)
    [line] = _schedule_preview(app)["data"]
    assert set(line["y"]) == {1e-3} and line["x"][-1] == 20  # the seed: Adam at 1e-3, 20 epochs
    images = len(load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")[1])
    steps = -(-images // 128)
    assert any(
        f"over 20 epochs of {steps} batch{'es' if steps > 1 else ''} ({images} training images)"
        in c.value
        for c in app.caption
    )
    # The form commits on a button: the schedule follows once one is pressed.
    app.selectbox(key="train_schedule").set_value("cosine")
    app.number_input(key="train_warmup").set_value(2.0)
    app.number_input(key="train_epochs").set_value(8)
    app.number_input(key="train_lr").set_value(0.01)
    assert set(_schedule_preview(app)["data"][0]["y"]) == {1e-3}
    app.button(key="train_preview").click().run()
    assert not app.exception
    [line] = _schedule_preview(app)["data"]
    x, y = np.array(line["x"]), np.array(line["y"])
    assert x[-1] == 8 and y[0] == 0 and y[-1] == pytest.approx(0, abs=1e-6)
    assert y.max() == pytest.approx(0.01) and x[y.argmax()] == pytest.approx(2)
    assert (np.diff(y[x <= 2]) > 0).all() and (np.diff(y[x >= 2]) <= 0).all()
    assert _run_dirs() == [trained_run]  # nothing started


def test_a_batch_too_large_for_the_folder_gets_a_smaller_one_suggested(app, image_folder):
    """The speed presets' batch of 512 makes one step an epoch of a folder of 108 training
    images: the form suggests the batch that makes ten, and is quiet once it is chosen."""
    from tests.conftest import write_image_folder
    from ui import state

    shutil.rmtree(image_folder)
    write_image_folder(image_folder, per_class=40)  # 108 training images, 12 validation
    state._signature.clear()  # as 30 s later
    _open(app)
    app.selectbox(key="train_preset").set_value("quick").run()
    assert app.number_input(key="train_batch_size").value == 512
    [advice] = [i.value for i in app.info if "few to learn from" in i.value]
    assert advice.startswith("108 training images at a batch of 512 make 1 step an epoch")
    assert "a batch of 8 makes 14" in advice
    app.number_input(key="train_batch_size").set_value(8)
    app.button(key="train_preview").click().run()
    assert not [i for i in app.info if "few to learn from" in i.value]


def test_a_fraction_that_holds_out_no_image_is_said_with_one_that_does(app, image_folder):
    """Five images a class: 10% of each rounds to none, so the run would have no validation
    accuracy; the form says so, and which fraction holds out one image of each class."""
    from tests.conftest import write_image_folder
    from ui import state

    shutil.rmtree(image_folder)
    write_image_folder(image_folder, per_class=5)
    state._signature.clear()  # as 30 s later
    _open(app)
    assert app.number_input(key="train_val").value == pytest.approx(0.1)
    [said] = [w.value for w in app.warning if "validation fraction" in w.value]
    assert said.startswith("At a validation fraction of 0.1 no image is held out")
    assert said.endswith("A fraction of 0.15 holds out at least one image of each class.")
    # The schedule's sentence counts the one batch of all 15 images as one.
    assert any("over 20 epochs of 1 batch (15 training images)" in c.value for c in app.caption)
    app.number_input(key="train_val").set_value(0.15)
    app.button(key="train_preview").click().run()
    assert not [w for w in app.warning if "validation fraction" in w.value]
    held = load_dataset(image_folder, val_fraction=0.15, seed=0).split("val")[1]
    assert np.bincount(held).tolist() == [1, 1, 1]
    # No validation asked for: early stopping would watch nothing.
    app.number_input(key="train_val").set_value(0.0)
    app.number_input(key="train_patience").set_value(3)
    app.button(key="train_preview").click().run()
    [said] = [w.value for w in app.warning if "validation fraction" in w.value]
    assert said.endswith("holds out no image: it will not stop the run.")


def test_a_folders_own_validation_images_grey_out_the_fraction(app, image_folder):
    """Five images a class in train/ and a val/ of their own: no fraction holds images out,
    the schedule counts all 15 training images, and nothing warns of the fraction."""
    from tests.conftest import write_image_folder
    from ui import state

    shutil.rmtree(image_folder)
    write_image_folder(image_folder / "train", per_class=5)
    write_image_folder(image_folder / "val", per_class=2)
    state._signature.clear()  # as 30 s later
    _open(app)
    fraction = app.number_input(key="train_val")
    assert fraction.disabled
    said = "Validation images: this folder's own val/. No fraction of train/ is held out"
    assert any(c.value.startswith(said) for c in app.caption)
    assert not [w for w in app.warning if "validation fraction" in w.value]
    assert any("over 20 epochs of 1 batch (15 training images)" in c.value for c in app.caption)


def test_a_runs_learning_rate_is_drawn_as_planned_and_as_it_went(app, trained_run):
    from core.train import lr_plan, run_config

    _open(app)
    assert not app.exception
    [chart] = [
        json.loads(c.proto.spec) for c in app.get("plotly_chart") if "Learning rate" in c.proto.spec
    ]
    planned, recorded = chart["data"]
    steps = runs.read_status(trained_run)["steps"]
    expected = lr_plan(run_config(trained_run), steps)
    assert planned["x"] == pytest.approx(expected[0]) and planned["y"] == pytest.approx(expected[1])
    history = runs.read_history(trained_run)
    assert recorded["y"] == pytest.approx([h["lr"] for h in history])
    # Each epoch's recorded rate is the plan's at that epoch's end (the seed's is constant).
    ends = [h["epoch"] for h in history]
    assert recorded["y"] == pytest.approx(np.interp(ends, *expected)) and recorded["x"] == ends


def test_several_runs_are_deleted_at_once_but_not_one_that_trains(app, trained_run):
    running = runs.default_runs_dir() / "29991231-235959-seed"
    running.mkdir()
    atomic_write_json(running / "config.json", {"preset": "seed", "epochs": 20})
    runs.write_status(running, state="running", epoch=3, epochs=20, **runs.process_identity())
    other = runs.default_runs_dir() / "20000101-000000-other"
    shutil.copytree(trained_run, other)
    _open(app)
    _select(app, 0, 1, 2)  # newest first: running, trained_run, other
    names = "+".join(p.name for p in (running, trained_run, other))
    assert app.checkbox(key=f"train_confirm_{names}").label == "Yes, delete these 3 runs"
    assert app.button(key="train_delete").disabled
    app.checkbox(key=f"train_confirm_{names}").check().run()
    app.button(key="train_delete").click().run()
    assert running.exists() and not trained_run.exists() and not other.exists()
    assert [e.value for e in app.error] == [
        "29991231-235959-seed is still training; stop it before deleting it."
    ]
    table = app.dataframe(key="train_runs").value
    assert list(table["run"]) == [running.name]


def test_a_stopped_run_says_how_long_resuming_would_take(app):
    run_dir = runs.default_runs_dir() / "29991231-235959-seed"
    run_dir.mkdir()
    atomic_write_json(run_dir / "config.json", {"preset": "seed", "epochs": 10})
    seconds = [30.0, 20.0, 21.0, 22.0]  # the first epoch also traced the model: left out
    history = [{"epoch": e + 1, "seconds": s} for e, s in enumerate(seconds)]
    atomic_write_json(run_dir / "history.json", history)
    runs.write_status(run_dir, state="stopped", epoch=4, epochs=10)
    _open(app)
    assert not app.exception
    assert app.button(key="train_resume")
    assert (
        "Resuming trains the 6 epochs left: about 2 min 06 s at this run's pace so far "
        "(21 s an epoch), besides loading the data and the checks after the last epoch."
    ) in [c.value for c in app.caption]


def test_a_failed_run_shows_its_reason_and_log(app):
    run_dir = runs.default_runs_dir() / "29991231-235959-seed"
    run_dir.mkdir()
    atomic_write_json(run_dir / "config.json", {"preset": "seed", "epochs": 5})
    runs.write_status(run_dir, state="failed", message="The disk is full.")
    (run_dir / "train.log").write_text("loading\nerror: The disk is full.\n")
    _open(app)
    assert "**29991231-235959-seed** :red-badge[failed]" in [m.value for m in app.markdown]
    assert [e.value for e in app.error] == ["The disk is full."]
    assert app.code[0].value.endswith("error: The disk is full.")
    assert app.button(key="train_resume")  # a failed run may continue from a checkpoint
    assert not [c for c in app.caption if c.value.startswith("Resuming")]  # no epoch timed
    app.button(key="train_resume").click().run()
    assert "29991231-235959-seed has no checkpoint to resume from; start it again." in [
        e.value for e in app.error
    ]


def _run_dirs():
    return [p for p in runs.default_runs_dir().iterdir() if p.is_dir()]


def test_the_transfer_preset_warns_without_weights_and_offers_scratch_presets(app, trained_run):
    _open(app)
    assert app.selectbox(key="train_image_size").value == 32
    app.selectbox(key="train_preset").set_value("mobilenet").run()
    assert not app.exception
    assert app.selectbox(key="train_image_size").value == 96  # the preset's recipe size
    (warning,) = [as_read(w.value) for w in app.warning]
    assert warning.startswith("ImageNet weights for MobileNetV3Small are not on this machine")
    assert warning.endswith("choose a from-scratch preset such as quick or fast.")
    assert any(c.value == "For 3 classes of 96x96 images." for c in app.caption)
    assert "conv_1" in app.dataframe[0].value["layer"].tolist()  # the summary needs no weights
    app.button(key="train_start").click().run()
    assert [as_read(e.value) for e in app.error] == [warning]
    assert _run_dirs() == [trained_run]  # nothing was launched

    app.button(key="train_use_quick").click().run()
    assert app.selectbox(key="train_preset").value == "quick"
    assert app.selectbox(key="train_image_size").value == 32
    assert not app.warning


def test_the_search_option_starts_a_search_whose_trials_are_runs(app, trained_run):
    from core import search

    _open(app)
    assert app.expander[0].label == "Search hyperparameters (KerasTuner)"
    app.selectbox(key="train_preset").set_value("seed").run()
    # In the New run form: its settings go with the click that starts the search.
    app.number_input(key="train_search_trials").set_value(1)
    app.number_input(key="train_search_epochs").set_value(1)
    app.checkbox(key="train_balance").check()
    app.button(key="train_search_start").click().run()
    assert not app.exception
    (search_dir,) = runs.default_runs_dir().glob(".search-*")
    assert read_json(search_dir / search.SEARCH_FILE)["balance_classes"] is True
    ident = search_dir.name.removeprefix(".search-")  # the hidden folder's name is not shown
    assert app.success[0].value.startswith(f"Started search {ident}.")
    assert jobs.wait_for_state(search_dir, jobs.FINISHED, timeout=120)["state"] == "completed"
    app.run()
    table = app.dataframe(key="train_runs").value
    trial = search.summarise(search_dir)["trials"][0]["run"]
    assert table["run"].tolist() == [trial, trained_run.name]
    assert read_json(runs.default_runs_dir() / trial / "config.json")["balance_classes"] is True
    assert table["status"].tolist() == ["completed", "completed"]
    assert any(f"Best of search {ident}: {trial}" in c.value for c in app.caption)

    app.selectbox(key="train_preset").set_value("custom").run()
    assert "A search starts from a preset: choose one above." in [i.value for i in app.info]


def test_an_ended_search_shows_its_best_trial_not_its_last(app, trained_run):
    """Two trials of a search that ended: the first scored higher. The live view shows it,
    and its "Make active model" makes it the active model, not the last trial's."""
    last = runs.default_runs_dir() / "20991231-235959-search-4-trial-02"
    shutil.copytree(trained_run, last)  # a real run's files, the newest name
    search_dir = runs.default_runs_dir() / ".search-4"
    search_dir.mkdir()
    atomic_write_json(search_dir / "search.json", {"preset": "seed", "trials": 3, "id": "4"})
    runs.write_status(search_dir, state="stopped", trial=2, trials=3)
    choices = {"learning_rate": 0.002, "width": 1.0, "dropout": 0.25, "augment": "light"}
    atomic_write_json(
        search_dir / "trials.json",
        [
            {"trial": 1, "run": trained_run.name, "val_accuracy": 0.75, "hyperparameters": choices},
            {"trial": 2, "run": last.name, "val_accuracy": 0.5, "hyperparameters": choices},
        ],
    )
    app.session_state["sidebar_model"] = "default"
    _open(app)
    assert app.dataframe(key="train_runs").value["run"].tolist()[0] == last.name
    assert (
        "Search 4 was stopped after 2 of 3 trials. Its best, trial 1, is shown: validation "
        "accuracy 75.00% at its last epoch (the model it kept), with learning_rate=0.002, "
        "width=1, dropout=0.25, augment=light."
    ) in [as_read(c.value) for c in app.caption]
    assert any(m.value.startswith(f"**{trained_run.name}**") for m in app.markdown)
    (every,) = [e for e in app.expander if e.label.startswith("Every trial")]
    assert every.label == "Every trial, the most accurate first (2)"
    trials = every.dataframe[0].value
    assert trials["trial"].tolist() == [1, 2] and trials["val accuracy"].tolist() == [75.0, 50.0]
    app.button(key="train_live_activate").click().run()
    assert app.session_state["sidebar_model"] == trained_run.name

    # A run after the search: the live view shows the newest run again.
    newer = runs.default_runs_dir() / "21000101-000000-later"
    shutil.copytree(trained_run, newer)
    app.run()
    assert not any(c.value.startswith("Search 4") for c in app.caption)
    assert any(m.value.startswith(f"**{newer.name}**") for m in app.markdown)


def test_a_search_in_progress_is_shown_and_can_be_stopped(app, trained_run):
    search_dir = runs.default_runs_dir() / ".search-demo"
    search_dir.mkdir()
    atomic_write_json(search_dir / "search.json", {"preset": "seed", "trials": 3, "id": "demo"})
    runs.write_status(search_dir, state="running", trial=2, trials=3, **runs.process_identity())
    _open(app)
    assert "**Search demo** · trial 2/3" in [m.value for m in app.markdown]
    app.button(key="train_search_start").click().run()
    assert "A hyperparameter search is in progress (.search-demo, trial 2/3)." in app.error[0].value
    app.button(key="train_search_stop").click().run()
    assert (search_dir / "stop.request").exists()
    app.run()  # the page says so until the search has stopped
    assert "Stopping the current trial at the end of its batch…" in [c.value for c in app.caption]
    assert [r["name"] for r in runs.list_runs()] == [trained_run.name]  # nothing launched


def test_a_run_can_learn_from_a_trained_model_of_the_same_classes(app, trained_run):
    _open(app)
    teacher = app.selectbox(key="train_teacher")
    # The run fits (same classes, 32 pixels), and the shipped CIFAR-10 model, which knows
    # cat, dog and frog among others.
    labels = teacher.options
    assert len(labels) == 3 and labels[0] == "nobody (labels only)"
    assert labels[1].startswith("Shipped default") and labels[2].startswith(trained_run.name)
    app.selectbox(key="train_image_size").set_value(64).run()
    assert app.selectbox(key="train_teacher").options == ["nobody (labels only)"]
    app.selectbox(key="train_image_size").set_value(32).run()
    app.selectbox(key="train_teacher").set_value(str(trained_run / "model.keras"))
    app.number_input(key="train_teacher_weight").set_value(0.7)
    app.number_input(key="train_epochs").set_value(1)
    app.number_input(key="train_batch_size").set_value(16)
    app.button(key="train_start").click().run()
    new = [p for p in _run_dirs() if p != trained_run]
    assert jobs.wait_for_state(new[0], jobs.FINISHED, timeout=90)["state"] == "completed"
    config = read_json(new[0] / "config.json")
    assert (config["teacher"], config["teacher_weight"]) == (str(trained_run / "model.keras"), 0.7)
    assert np.load(new[0] / "teacher_probs.npy").shape[1] == 3


def test_a_learning_rate_test_shows_its_curve_and_fills_in_its_suggestion(app, trained_run):
    from core import lrfind

    _open(app)
    app.number_input(key="train_batch_size").set_value(8)
    app.button(key="train_lr_test").click().run()
    assert app.success[0].value.startswith("Started the learning-rate test.")
    test = jobs.latest_lrfind()
    assert test["state"] in jobs.ACTIVE
    assert app.get("progress")[-1].proto.text.startswith("Learning-rate test:")
    assert jobs.wait_for_state(test["path"], jobs.FINISHED, timeout=120)["state"] == "completed"
    app.run()
    assert not app.exception
    result = read_json(f"{test['path']}/{lrfind.RESULT_FILE}")
    assert read_json(f"{test['path']}/{lrfind.CONFIG_FILE}")["batch_size"] == 8
    assert any(lrfind.describe(result) in c.value for c in app.caption)
    [curve] = [c for c in app.get("plotly_chart") if "learning rate" in c.proto.spec]
    assert json.loads(curve.proto.spec)["data"][1]["y"] == pytest.approx(result["smoothed"])
    rate = float(f"{result['suggested']:.2g}")
    assert app.button(key="train_lr_use").label == f"Use {rate:g} as the learning rate"
    app.button(key="train_lr_use").click().run()
    assert app.number_input(key="train_lr").value == rate  # what the button said


def test_a_learning_rate_test_that_failed_says_why(app, trained_run):
    from core import lrfind

    folder = lrfind.start_folder(TrainConfig(data="unused"))
    runs.write_status(folder, state="failed", message="The data folder is empty.")
    (folder / jobs.LOG_FILE).write_text("error: The data folder is empty.\n")
    _open(app)
    assert not app.exception
    assert "The data folder is empty." in [e.value for e in app.error]
    assert "error: The data folder is empty." in app.code[-1].value


def test_a_learning_rate_result_that_cannot_be_read_is_a_sentence(app, trained_run):
    from core import lrfind

    folder = lrfind.start_folder(TrainConfig(data="unused"))
    (folder / lrfind.RESULT_FILE).write_text('{"lr": [0.1], "loss": []}')
    runs.write_status(folder, state="completed")
    _open(app)
    assert not app.exception
    assert "cannot be read: run the test again." in app.warning[-1].value
    assert not [b for b in app.button if b.key == "train_lr_use"]


def test_the_time_estimate_is_measured_for_the_form_and_goes_when_it_changes(
    app, trained_run, image_folder
):
    _open(app)
    app.number_input(key="train_epochs").set_value(4)
    app.number_input(key="train_batch_size").set_value(8)
    app.button(key="train_estimate").click().run()
    assert not app.exception and not app.error
    [line] = [i.value for i in app.info if i.value.startswith("About ")]
    train = load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")[1]
    assert f"4 epochs of {-(-len(train) // 8)} batches" in line
    assert _run_dirs() == [trained_run]  # nothing kept
    app.run()
    assert [i.value for i in app.info if i.value.startswith("About ")] == [line]
    app.selectbox(key="train_image_size").set_value(64).run()  # it holds for 32 pixels only
    assert not [i for i in app.info if i.value.startswith("About ")]
