"""AppTest checks of the shell: navigation, sidebar, home page."""

import pytest


def test_home_shows_the_active_model_card(app, trained_run):
    app.run()
    assert not app.exception
    assert app.title[0].value == "CNN Lab"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Preset"] == "seed" and metrics["Epochs"] == "2"
    assert metrics["Parameters"] == f"{167_562 - 650 + 64 * 3 + 3:,}"
    assert any(trained_run.name in c.value for c in app.caption)


def test_sidebar_dataset_choice_persists_across_pages(app, image_folder):
    app.run()
    assert app.selectbox(key="sidebar_source").value == "folder"
    assert app.text_input(key="sidebar_path").value == str(image_folder)
    app.text_input(key="sidebar_path").input("/somewhere/else").run()
    app.switch_page("pages/classify.py").run()
    assert app.text_input(key="sidebar_path").value == "/somewhere/else"
    assert app.selectbox(key="sidebar_model").value == app.session_state["sidebar_model"]
    assert not app.exception


def test_a_page_run_alone_is_routed_through_app_py(app):
    # AppTest, like a fresh server's first deep link, runs a pages/ file on its own;
    # the page must still come with app.py's sidebar.
    app.switch_page("pages/dataset.py").run()
    assert app.selectbox(key="sidebar_source").value == "folder"
    assert [t.value for t in app.title] == ["Dataset"]


def test_streamlit_leaves_the_keras_session_alone_between_runs(app, trained_run, monkeypatch):
    import keras

    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: cleared.append(a))
    app.switch_page("pages/classify.py").run()  # a page that loads the model: Keras imported
    app.run()
    assert not app.exception
    assert cleared == []  # Streamlit would clear it after each of the two runs


def _places(app) -> dict:
    """Each keyed widget's place: its child indices from the page's root down."""
    found = {}

    def walk(node, path):
        if getattr(node, "key", None):
            found[node.key] = path
        for i, child in getattr(node, "children", {}).items():
            walk(child, (*path, i))

    walk(app._tree, ())
    return found


@pytest.mark.parametrize("page", ["dataset", "augment", "filters", "train", "evaluate", "classify"])
def test_a_first_run_draws_each_widget_where_the_next_run_does(app, page):
    # Streamlit places an element by how many came before it. Progress bars drawn by a
    # first run only (reading the folder, predicting a split) moved every widget below them
    # in the next run, and while that run drew, the page showed those widgets twice (a
    # browser test found two "Images from" boxes on the Evaluate page).
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()  # a fresh server: the folder is read, the split predicted
    app.switch_page(f"pages/{page}.py").run()
    assert not app.exception
    first = _places(app)
    app.run()
    assert not app.exception
    now = _places(app)
    moved = {k: (v, now.get(k)) for k, v in first.items() if now.get(k) != v}
    assert len(first) > 5 and not moved
