import numpy as np
import pytest

from core import evaluate as ev
from core.evaluate import calibration
from ui import charts


def test_top_answers_put_the_likeliest_on_top_in_percent():
    fig = charts.top_answers([("cat", 0.7), ("dog", 0.2), ("frog", 0.05)])
    (bar,) = fig.data
    assert list(bar.y) == ["cat", "dog", "frog"] and list(bar.x) == [0.7, 0.2, 0.05]
    assert list(bar.text) == ["70.0%", "20.0%", "5.0%"] and bar.orientation == "h"
    assert fig.layout.yaxis.autorange == "reversed"  # the first pair at the top
    assert list(fig.layout.xaxis.range) == [0, 1] and fig.layout.xaxis.tickformat == ".0%"
    assert fig.layout.height == 60 + 32 * 3


@pytest.mark.parametrize(("last", "dtick"), [(3, 1), (10, 1), (25, 3)])
def test_epoch_lines_tick_whole_epochs(last, dtick):
    epochs = list(range(1, last + 1))
    fig = charts.epoch_lines("Loss", {"train": (epochs, [1 / e for e in epochs])})
    assert fig.layout.xaxis.dtick == dtick and fig.layout.title.text == "Loss"
    assert fig.layout.yaxis.tickformat is None and fig.data[0].hovertemplate.endswith(".4f}")


def test_accuracy_lines_read_as_percentages():
    fig = charts.epoch_lines("Accuracy", {"a": ([1, 2], [0.5, 0.6]), "b": ([], [])}, True)
    assert [t.name for t in fig.data] == ["a", "b"]
    assert fig.layout.yaxis.tickformat == ".0%" and fig.data[0].hovertemplate.endswith(".2%}")
    assert fig.layout.legend.orientation == "h"  # below: run names are long
    assert fig.layout.colorway[:2] == ("#1F77B4", "#FF7F0E")  # blue, then orange


def test_one_epoch_or_a_flat_line_gets_a_range_of_a_few_points_not_float_noise():
    # One epoch's loss and accuracy: plotly's own range spanned 1e-7 and wrote "60%" six times.
    loss = charts.epoch_lines("Loss", {"train": ([1], [0.7120843])})
    assert list(loss.layout.yaxis.range) == pytest.approx(
        [0.7120843 - 0.0356, 0.7120843 + 0.0356], abs=1e-4
    )
    accuracy = charts.epoch_lines("Accuracy", {"train": ([1], [0.6]), "validation": ([], [])}, True)
    assert list(accuracy.layout.yaxis.range) == pytest.approx([0.58, 0.62])
    assert accuracy.layout.yaxis.tickformat == ".1%"
    # Right on every image: up to 100% and a hair, no tick of 102%.
    perfect = charts.epoch_lines("Accuracy", {"train": ([1, 2, 3], [1.0, 1.0, 1.0])}, True)
    assert list(perfect.layout.yaxis.range) == pytest.approx([0.965, 1.005])
    nothing = charts.epoch_lines("Accuracy", {"train": ([1], [0.0])}, True)
    assert list(nothing.layout.yaxis.range) == pytest.approx([0.0, 0.04])
    # The first batches, a tenth of a point apart: four points, in tenths.
    first = charts.epoch_lines("Accuracy", {}, True, running=([0.1, 0.2], [0.1015, 0.1025]))
    assert list(first.layout.yaxis.range) == pytest.approx([0.082, 0.122])
    # Lines that span under five percent get a decimal; wider ones, plotly's own range.
    close = charts.epoch_lines("Accuracy", {"train": ([1, 2], [0.95, 0.99])}, True)
    assert close.layout.yaxis.tickformat == ".1%" and close.layout.yaxis.range is None
    wide = charts.epoch_lines("Accuracy", {"train": ([1, 2], [0.5, 0.6])}, True)
    assert wide.layout.yaxis.tickformat == ".0%" and wide.layout.yaxis.range is None
    zero = charts.epoch_lines("Loss", {"train": ([1, 2], [0.0, 0.0])})
    assert list(zero.layout.yaxis.range) == pytest.approx([-0.01, 0.01])


def test_the_training_values_as_epochs_go_are_a_thin_line_in_the_train_colour():
    running = ([0.5, 1.0, 1.5], [0.4, 0.5, 0.6])
    train, validation = ([1], [0.45]), ([1], [0.5])
    fig = charts.epoch_lines(
        "Accuracy", {"train": train, "validation": validation}, True, running=running
    )
    line = fig.data[-1]
    assert line.name == "train, recent batches" and line.mode == "lines"
    assert list(line.x) == running[0] and line.line.color == fig.layout.colorway[0]
    assert line.hovertemplate == "epoch %{x:.2f}: %{y:.2%}"
    assert fig.layout.xaxis.dtick == 1
    # The first epoch in progress: the running line alone.
    alone = charts.epoch_lines("Loss", {"train": ([], []), "validation": ([], [])}, False, running)
    assert [len(t.x) for t in alone.data] == [0, 0, 3]
    assert alone.layout.showlegend and list(alone.layout.xaxis.range) == pytest.approx([0, 1.53])
    assert list(fig.layout.xaxis.range) == pytest.approx([0, 1.53])
    assert len(charts.epoch_lines("Loss", {"train": train}, running=([], [])).data) == 1


def test_a_runs_learning_rate_is_planned_recorded_and_where_it_is_now():
    plan = ([0, 1, 2, 3], [0.1, 1.0, 0.5, 0.0])
    fig = charts.run_learning_rate(plan, ([1, 2], [1.0, 0.5]), now=2.4)
    planned, recorded = fig.data
    assert list(planned.x) == plan[0] and planned.mode == "lines"
    assert list(recorded.y) == [1.0, 0.5] and recorded.mode == "markers"
    assert [s.x0 for s in fig.layout.shapes] == [2.4]
    assert fig.layout.shapes[0].line.color == planned.line.color == charts.NEUTRAL
    assert not charts.run_learning_rate(plan, ([], [])).layout.shapes  # not running
    preview = charts.run_learning_rate(plan, None)  # a schedule not trained yet: the line alone
    assert [t.name for t in preview.data] == ["planned"] and not preview.layout.showlegend
    assert preview.layout.title.text == "Learning-rate schedule"


@pytest.mark.parametrize("normalised", [False, True])
def test_every_cell_of_the_confusion_matrix_can_be_clicked_and_says_its_value(normalised):
    names = ["cat", "<b>dog", "frog"]  # a folder's name: shown as written, not in bold
    escaped = {"<b>dog": "&lt;b&gt;dog"}
    shown = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]], float)
    if normalised:
        shown = shown / shown.sum(axis=1, keepdims=True)
    fig = charts.confusion_matrix(shown, names, normalised)
    heat, cells = fig.data
    np.testing.assert_array_equal(heat.z, shown)
    assert heat.text[1][0] == (f"{2 / 10:.2f}" if normalised else "2")
    assert len(cells.x) == 9 and cells.marker.opacity == 0.01
    # A click gives back the names themselves; the ticks and the hover show them escaped.
    for true, predicted, (value, *said) in zip(cells.y, cells.x, cells.customdata, strict=True):
        t, p = names.index(true), names.index(predicted)
        assert value == (f"{shown[t, p]:.2f}" if normalised else f"{int(shown[t, p])}")
        assert said == [escaped.get(n, n) for n in (names[t], names[p])]
    for axis in (fig.layout.xaxis, fig.layout.yaxis):
        assert list(axis.tickvals) == names and list(axis.ticktext)[1] == escaped["<b>dog"]
    # Streamlit's template colours it per theme: plotly's "Blues" lit empty cells white on
    # the dark page.
    assert heat.colorscale is None


def test_a_class_without_images_has_a_blank_row_of_shares():
    # A test folder without frog: its row has no shares (not 0s), blank and said on hover.
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 0]])
    shares = ev.row_shares(cm)
    np.testing.assert_allclose(shares[:2], [[5 / 6, 1 / 6, 0], [0.2, 0.7, 0.1]])
    assert np.isnan(shares[2]).all()
    heat, cells = charts.confusion_matrix(shares, ["cat", "dog", "frog"], True).data
    assert list(heat.text[2]) == ["", "", ""] and list(heat.text[0]) == ["0.83", "0.17", "0.00"]
    assert list(cells.customdata[6]) == ["no images here", "frog", "cat"]


def test_a_confusion_matrix_of_many_classes_stays_on_a_screen_its_numbers_on_hover():
    names = [f"class {i}" for i in range(100)]  # a folder such as CIFAR-100's
    shown = np.eye(100) * 3
    fig = charts.confusion_matrix(shown, names, False)
    heat, cells = fig.data
    assert heat.texttemplate is None and heat.text is None  # 10,000 digits were unreadable
    assert fig.layout.height <= 1000  # 4,120 px before
    assert cells.marker.size <= fig.layout.height / 100  # a click hits its own cell
    assert [list(c) for c in cells.customdata[101:103]] == [
        ["3", "class 1", "class 1"],
        ["0", "class 1", "class 2"],
    ]
    few = charts.confusion_matrix(np.eye(20), names[:20], False)
    assert few.data[0].texttemplate == "%{text}" and few.layout.height == 120 + 40 * 20


def test_long_class_names_are_cut_on_the_axes_and_whole_on_hover():
    names = [f"n0144076{i}_a_long_class_name_from_a_research_dataset_{i}" for i in range(3)]
    fig = charts.confusion_matrix(np.eye(3), names, False)
    assert list(fig.layout.xaxis.ticktext) == [f"n0144076{i}…_dataset_{i}" for i in range(3)]
    assert list(fig.layout.yaxis.tickvals) == names  # a click still gives the name back
    assert fig.data[1].customdata[1][1:] == [names[0], names[1]]
    bars = charts.grouped_bars(names, {"train": [1, 2, 3]})
    assert list(bars.layout.xaxis.ticktext) == list(fig.layout.xaxis.ticktext)
    assert list(bars.data[0].x) == names
    answers = charts.top_answers([(names[2], 0.7), (names[0], 0.3)])
    assert list(answers.layout.yaxis.ticktext) == ["n01440762…_dataset_2", "n01440760…_dataset_0"]


def test_reliability_draws_a_group_of_bars_per_calibration_and_the_diagonal():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), 200).astype(np.float32)
    y = rng.integers(0, 4, 200)
    calibs = {"raw": calibration(probs, y), "sharper": calibration(probs**2, y)}
    fig = charts.reliability(calibs)
    assert [t.name for t in fig.data] == [
        "share right, raw",
        "share right, sharper",
        "perfectly calibrated",
    ]
    np.testing.assert_allclose(fig.data[0].x, np.arange(0.05, 1, 0.1))
    np.testing.assert_array_equal(fig.data[1].y, calibs["sharper"].accuracy)
    np.testing.assert_array_equal(fig.data[0].customdata[:, 0], calibs["raw"].count)
    assert list(fig.data[2].x) == [0, 1] and fig.layout.barmode == "group"


def test_the_feature_space_draws_each_dot_once_in_its_class_colour_and_symbol():
    space = {
        "index": np.array([0, 3, 4, 8]),
        "xy": np.array([[0, 1], [2, 3], [4, 5], [6, 7]], np.float32),
        "explained": np.array([0.4, 0.25]),
        "dims": 64,
    }
    truth, answers = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    fig = charts.feature_space(space, truth, answers, ["cat", "dog"], ["a", "b", "c", "d"])
    dots = {
        int(i): (x, y, t.name, t.marker.symbol, t.marker.color, caption)
        for t in fig.data
        for (i, caption), x, y in zip(t.customdata, t.x, t.y, strict=True)
    }
    assert dots == {
        0: (0, 1, "cat", "circle", "#1F77B4", "a"),
        3: (2, 3, "cat", "x", "#1F77B4", "b"),  # a cat answered dog: a cross in cat colour
        4: (4, 5, "dog", "circle", "#FF7F0E", "c"),
        8: (6, 7, "dog", "circle", "#FF7F0E", "d"),
    }
    assert [t.showlegend for t in fig.data] == [True, False, True, False]  # one entry a class
    # A class the model never gets right keeps its entry, on its crosses (an empty trace
    # has none: 98 of 100 classes of a weak model were missing from the legend).
    never = charts.feature_space(space, truth, np.array([1, 1, 1, 1]), ["cat", "dog"], list("abcd"))
    assert [(t.name, len(t.x)) for t in never.data if t.showlegend] == [("cat", 2), ("dog", 2)]
    assert fig.layout.xaxis.title.text == "first direction (40% of the variance)"
    assert fig.layout.yaxis.title.text == "second direction (25%)"


def test_grouped_bars_name_each_series_and_format_shares():
    fig = charts.grouped_bars(
        ["a", "b"], {"train": np.array([3, 4]), "val": [1, 2]}, title="Images per class"
    )
    assert [(t.name, list(t.y)) for t in fig.data] == [("train", [3, 4]), ("val", [1, 2])]
    assert fig.layout.barmode == "group" and fig.layout.yaxis.tickformat is None
    shares = charts.grouped_bars(["a"], {"recall": [0.5]}, percent=True)
    assert shares.layout.yaxis.tickformat == ".0%"


def test_histograms_count_every_value():
    values = np.random.default_rng(1).normal(size=1000)
    (bar,) = charts.histogram(values, "weights", bins=20).data
    assert len(bar.x) == 20 and sum(bar.y) == 1000
    edges = np.arange(0, 257, 64)
    counts = {"R": np.array([1, 2, 3, 4]), "G": np.array([4, 3, 2, 1])}
    fig = charts.pixel_histograms(edges, counts)
    assert [(t.name, t.line.color) for t in fig.data] == [("R", "#d62728"), ("G", "#2ca02c")]
    assert list(fig.data[0].x) == [32, 96, 160, 224] and list(fig.data[1].y) == [4, 3, 2, 1]


def test_grids_show_their_numbers():
    values = np.array([[0.5, -0.25], [1.0, 0.0]])
    (heat,) = charts.number_grid(values, "kernel w", diverging=True).data
    np.testing.assert_array_equal(heat.z, values)
    # Positive red and negative blue, as the filter mosaics on the same page (RdBu_r).
    assert heat.zmid == 0 and heat.colorscale[-1][1] == "rgb(103,0,31)"
    assert heat.colorscale[0][1] == "rgb(5,48,97)"
    grey = charts.number_grid(values, "x", diverging=False, zrange=(0, 255)).data[0]
    assert (grey.zmin, grey.zmax, grey.zmid) == (0, 255, None)
    image = charts.image_grid(values, "Viridis", -1, 1, 0, height=200)
    np.testing.assert_array_equal(image.data[0].z, values)
    assert image.layout.height == 200 and image.layout.coloraxis.cmid == 0


def test_layer_novelty_reds_the_layers_above_the_threshold_and_draws_it():
    fig = charts.layer_novelty(["conv1", "conv2", "conv3"], np.float32([0.4, 2.5, 1.1]), 1.2)
    (bar,) = fig.data
    assert list(bar.x) == ["conv1", "conv2", "conv3"] and list(bar.text) == ["0.40", "2.50", "1.10"]
    assert list(bar.marker.color) == ["#1f77b4", "#d62728", "#1f77b4"]
    (line,) = fig.layout.shapes
    assert line.y0 == line.y1 == 1.2 and line.line.dash == "dash"
    # Named in the legend, in a grey the dark theme shows too: no label box over the bars.
    assert line.name == "unfamiliar above this" and line.showlegend
    assert line.line.color == charts.NEUTRAL and not fig.layout.annotations
    assert bar.showlegend is False


def test_the_learning_rate_curve_marks_its_suggestion_on_the_log_axis():
    result = {
        "lr": [1e-4, 1e-3, 1e-2, 1e-1],
        "loss": [2.3, 2.0, 1.6, 9.0],
        "smoothed": [2.3, 2.1, 1.8, float("inf")],
        "suggested": 1e-3,
    }
    fig = charts.lr_curve(result)
    assert fig.layout.xaxis.type == "log"
    [label] = fig.layout.annotations
    assert label.x == pytest.approx(-3) and label.text == "suggested 0.001"
    assert fig.layout.shapes[0].x0 == 1e-3
    assert fig.layout.shapes[0].line.color == charts.NEUTRAL  # not near-black: the dark theme
    assert fig.layout.yaxis.range == pytest.approx((0.95 * 1.8, 1.5 * 2.3))
    plain = charts.lr_curve(result | {"suggested": None})
    assert not plain.layout.annotations and not plain.layout.shapes


def test_class_curves_draw_each_class_and_all_of_them():
    curves = {
        "epochs": [1, 2, 3],
        "recall": np.array([[0.1, 0.5], [0.4, 0.6], [0.8, 0.7]], np.float32),
        "accuracy": np.array([0.3, 0.5, 0.75], np.float32),
    }
    fig = charts.class_curves(curves, ["cat", "dog"])
    assert [t.name for t in fig.data] == ["cat", "dog", "all classes"]
    assert list(fig.data[1].y) == pytest.approx([0.5, 0.6, 0.7])
    everyone = fig.data[2].line  # black vanished on the dark theme
    assert (everyone.color, everyone.width, everyone.dash) == (charts.NEUTRAL, 4, "dash")
    assert fig.data[0].line.color is None  # the palette's colours for the classes
    assert fig.layout.yaxis.tickformat == ".0%" and list(fig.layout.yaxis.range) == [0, 1.02]
    assert all(t.showlegend is not False for t in fig.data)
    # A class without images here has no line (nor a legend entry drawn flat at 0).
    gap = {**curves, "recall": np.c_[curves["recall"], np.full(3, np.nan, np.float32)]}
    assert [t.name for t in charts.class_curves(gap, ["cat", "dog", "cow"]).data] == [
        *("cat", "dog", "all classes")
    ]
    # 100 entries under the chart left its plot 110 px high: the classes go on hover only.
    many = {**curves, "recall": np.tile(curves["recall"][:, :1], (1, 100))}
    fig = charts.class_curves(many, [f"class {i}" for i in range(100)])
    assert [t.name for t in fig.data if t.showlegend is not False] == ["all classes"]


def test_the_selective_curve_draws_accuracy_against_the_share_answered():
    curve = {"coverage": np.array([0.5, 1.0]), "accuracy": np.array([1.0, 0.75])}
    fig = charts.selective(curve | {"threshold": np.array([0.9, 0.4])})
    (line,) = fig.data
    assert list(line.x) == [0.5, 1.0] and list(line.y) == [1.0, 0.75]
    assert list(line.customdata) == [0.9, 0.4] and "surest" in line.hovertemplate
    assert fig.layout.xaxis.tickformat == fig.layout.yaxis.tickformat == ".0%"
    assert fig.layout.yaxis.range == (0.7, 1.005)  # from under the lowest to 100%
    flat = {"coverage": np.array([0.5, 1.0]), "accuracy": np.ones(2), "threshold": np.ones(2)}
    assert charts.selective(flat).layout.yaxis.range == (0.95, 1.005)  # was 0 to 200%


def test_every_answer_of_a_model_of_more_classes_is_a_cell():
    counts = np.array([[5, 0, 1], [0, 2, 3]])
    fig = charts.answers_matrix(counts, ["cat", "frog"], ["cat", "dog", "frog"])
    (cells,) = fig.data
    assert list(cells.x) == ["cat", "dog", "frog"] and list(cells.y) == ["cat", "frog"]
    assert np.asarray(cells.z).tolist() == counts.tolist()
    assert cells.texttemplate == "%{text}" and fig.layout.yaxis.autorange == "reversed"
    many = charts.answers_matrix(np.ones((2, 100), int), ["a", "b"], [f"c{i}" for i in range(100)])
    assert many.data[0].texttemplate is None  # a hundred columns: numbers on hover
