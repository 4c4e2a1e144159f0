"""AppTest: the Evaluate page shows exactly what core.evaluate computes."""

import numpy as np

from core.data import load_dataset
from core.evaluate import evaluate
from core.model import load_model


def _expected(trained_run, image_folder, split="val"):
    ds = load_dataset(image_folder, val_fraction=0.1, seed=0)
    x, y = ds.split(split)
    return evaluate(load_model(trained_run / "model.keras"), x, y, ds.class_names)


def test_metrics_match_core_for_the_same_model_and_data(app, trained_run, image_folder):
    app.switch_page("pages/evaluate.py").run()
    assert not app.exception
    report = _expected(trained_run, image_folder)
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Accuracy"] == f"{report.accuracy:.2%}"
    assert metrics["Top-3 accuracy"] == f"{report.top3_accuracy:.2%}"
    assert metrics["Loss"] == f"{report.loss:.4f}"
    assert metrics["Images"] == f"{len(report.y_true):,}"
    table = app.dataframe[0].value
    np.testing.assert_allclose(table["recall"].to_numpy(), report.per_class["recall"])


def test_choosing_a_cell_shows_its_images(app, trained_run, image_folder):
    app.switch_page("pages/evaluate.py").run()
    report = _expected(trained_run, image_folder)
    true, pred = np.unravel_index(np.argmax(report.confusion), report.confusion.shape)
    names = report.class_names
    app.selectbox(key="evaluate_true").select(names[true]).run()
    app.selectbox(key="evaluate_pred").select(names[pred]).run()
    count = int(report.confusion[true, pred])
    assert any(
        f"**{count}** image(s) of *{names[true]}* predicted as *{names[pred]}*" in m.value
        for m in app.markdown
    )
    assert not app.exception
