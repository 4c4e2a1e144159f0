import shutil

from core import registry, runs


def test_the_shipped_default_comes_first_then_runs_with_a_model(trained_run, tmp_path):
    models = registry.available_models()
    assert models[0]["id"] == "default"
    assert models[0]["card"]["preset"] == "seed" and len(models[0]["card"]["class_names"]) == 10
    assert models[0]["label"].startswith("Shipped default (seed, ")
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


def test_model_version_changes_when_the_file_is_replaced(trained_run):
    path = trained_run / "model.keras"
    before = registry.model_version(path)
    shutil.copyfile(path, trained_run / "copy.keras")
    (trained_run / "copy.keras").replace(path)
    assert registry.model_version(path) != before
