"""AppTest of the Dataset page on the 3-class `image_folder` (11 train + 1 val per class)."""

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


@pytest.fixture
def page(data_app):
    # The page needs no model, so this skips `app`'s training run.
    return data_app.switch_page("pages/dataset.py")


def _grid(at):
    """The sample grid: one `st.image` per class, captions `#index`."""
    return [img for img in at.image if img.captions and img.captions[0].startswith("#")]


def _indices(at):
    return [int(c[1:]) for img in _grid(at) for c in img.captions]


def _chart(at, key):
    return json.loads(next(c for c in at.get("plotly_chart") if key in c.proto.id).proto.spec)


def _values(values):
    """Plotly may send arrays as base64 typed arrays; tests read plain lists."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        return np.frombuffer(base64.b64decode(values["bdata"]), values["dtype"]).tolist()
    return list(values)


def test_shows_source_splits_and_a_balanced_grid(page, image_folder):
    page.run()
    assert not page.exception
    assert page.title[0].value == "Dataset"
    metrics = {m.label: m.value for m in page.metric}
    assert metrics == {"train images": "33", "val images": "3", "Skipped files": "0"}
    assert "cat, dog, frog" in page.markdown[0].value
    assert len(_grid(page)) == 3 and len(_indices(page)) == 3 * 8  # defaults: all, 8 each

    page.multiselect(key="dataset_classes").set_value(["cat", "frog"])
    page.slider(key="dataset_per_class").set_value(4).run()
    grid = _grid(page)
    assert [len(img.captions) for img in grid] == [4, 4]
    headers = [m.value for m in page.markdown if " of " in m.value]
    assert headers == ["**cat** · 4 of 11", "**frog** · 4 of 11"]

    page.slider(key="dataset_per_class").set_value(20).run()  # more than a class has
    assert len(_indices(page)) == 2 * 11

    page.selectbox(key="dataset_split").set_value("val").run()
    assert len(_indices(page)) == 2 * 1


def test_reshuffle_bumps_the_seed_and_draws_other_images(page):
    page.run()
    page.slider(key="dataset_per_class").set_value(3).run()
    first = _indices(page)
    page.button(key="dataset_reshuffle").click().run()
    assert page.number_input(key="dataset_seed").value == 1
    assert _indices(page) != first and len(_indices(page)) == 9
    page.number_input(key="dataset_seed").set_value(0).run()
    assert _indices(page) == first


def test_statistics_show_counts_histograms_and_mean_images(page):
    page.run()
    counts = _chart(page, "dataset_counts_chart")
    bars = {t["name"]: _values(t["y"]) for t in counts["data"]}
    assert bars == {"train": [11, 11, 11], "val": [1, 1, 1]}
    assert _values(counts["data"][0]["x"]) == ["cat", "dog", "frog"]
    assert counts["layout"]["barmode"] == "group"

    hist = _chart(page, "dataset_hist_chart")
    assert [t["name"] for t in hist["data"]] == ["R", "G", "B"]
    assert all(sum(_values(t["y"])) == 33 * 32 * 32 for t in hist["data"])

    means = [img for img in page.image if img.captions == ["cat", "dog", "frog"]]
    assert len(means) == 1


@pytest.mark.parametrize("button", ["dataset_open_filters", "dataset_open_classify"])
def test_open_on_another_page_sends_the_chosen_sample(page, image_folder, button):
    from core.data import load_dataset

    page.run()
    sample = page.selectbox(key="dataset_probe")
    assert len(sample.options) == 3 * 8
    shown = sample.options[9]  # the second class's second image
    assert shown.startswith("dog #")
    i = int(shown.split("#")[1])
    sample.set_value(i)
    page.button(key=button).click().run()

    probe = page.session_state["probe"]
    x, y = load_dataset(image_folder, val_fraction=0.1, seed=0).split("train")
    assert probe["label"] == 1 == int(y[i])
    assert probe["caption"] == f"train #{i} (dog)"
    np.testing.assert_array_equal(probe["pixels"], x[i])
    assert not page.title or page.title[0].value != "Dataset"  # switched page


def test_lists_skipped_files(image_folder, monkeypatch):
    (image_folder / "cat" / "broken.png").write_bytes(b"not an image at all")
    monkeypatch.setenv("CNN_DATA", str(image_folder))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/dataset.py").run()
    assert {m.label: m.value for m in at.metric}["Skipped files"] == "1"
    assert at.expander[0].label == "1 files could not be read"
    rows = at.dataframe[0].value
    assert rows["file"].iloc[0].endswith("broken.png")
    assert "not an image" in rows["reason"].iloc[0]
