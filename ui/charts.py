"""The dashboard's plotly figures: pages pass plain arrays and draw what comes back.

Built here rather than in the pages so that each can be tested without Streamlit, and so
that two pages that show the same thing (a model's top answers) draw it the same way.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
from plotly.colors import qualitative

from ui.text import chart, charted, tick

CHANNEL_COLOURS = {"R": "#d62728", "G": "#2ca02c", "B": "#1f77b4"}
# Lines drawn over the data (thresholds, "now", all classes together): a grey that reads on
# Streamlit's light and dark themes alike. Plotly's default for such lines is near-black,
# and a black line vanished on the dark theme, a white label box hid its light text.
NEUTRAL = "#8c8c8c"
# More classes than this: a confusion matrix's cells say their numbers on hover only, and
# the recall curves name their classes on hover, not in a legend.
MANY_CLASSES = 20


def top_answers(pairs: list[tuple[str, float]]) -> go.Figure:
    """Horizontal bars of a model's top answers, the likeliest on top, labelled in percent.

    Args:
        pairs: `(class name, probability)`, likeliest first.
    """
    names, probs = [chart(n) for n, _ in pairs], [float(p) for _, p in pairs]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", text=[f"{p:.1%}" for p in probs]))
    fig.update_traces(textposition="auto")
    fig.update_yaxes(autorange="reversed", tickvals=names, ticktext=[tick(n) for n, _ in pairs])
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    return fig.update_layout(height=60 + 32 * len(pairs), margin=dict(l=0, r=0, t=10, b=10))


def layer_novelty(layers: list[str], values, threshold: float) -> go.Figure:
    """Bars of how unusual one image is at each layer (`core.novelty`), red above the
    `threshold` that makes a picture unfamiliar, with that threshold as a dashed line."""
    values = [float(v) for v in values]
    colours = ["#d62728" if v > threshold else "#1f77b4" for v in values]
    fig = go.Figure(
        go.Bar(x=layers, y=values, marker_color=colours, text=[f"{v:.2f}" for v in values])
    )
    # Named in the legend rather than labelled on the plot, where a bar could cover the label.
    fig.add_hline(
        y=threshold,
        line=dict(dash="dash", color=NEUTRAL),
        showlegend=True,
        name="unfamiliar above this",
    )
    fig.update_traces(showlegend=False)
    fig.update_yaxes(title="novelty", rangemode="tozero")
    return fig.update_layout(
        height=260,
        margin=dict(t=20, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0),
    )


def epoch_lines(
    title: str,
    traces: dict[str, tuple[list, list]],
    percent: bool = False,
    running: tuple[list, list] | None = None,
):
    """One line per named `(epochs, values)`; `percent` for accuracies, which read as
    percentages as everywhere else in the dashboard. `running`: the training values as
    the epochs went (`core.runs.read_batch_points`), a thin pale line in the first
    trace's colour."""
    value = "%{y:" + (".2%" if percent else ".4f") + "}"
    hover = "epoch %{x}: " + value
    fig = go.Figure(
        [
            go.Scatter(x=x, y=y, name=chart(name), mode="lines+markers", hovertemplate=hover)
            for name, (x, y) in traces.items()
        ]
    )
    if running and running[0]:
        fig.add_scatter(
            x=running[0],
            y=running[1],
            name=chart(f"{next(iter(traces), 'train')}, recent batches"),
            mode="lines",
            line=dict(color=qualitative.D3[0], width=1),
            opacity=0.45,
            hovertemplate="epoch %{x:.2f}: " + value,
        )
        traces = {**traces, "running": running}
        # From 0, where the first epoch's line begins; a legend even while it is alone.
        fig.update_layout(showlegend=True, xaxis_range=[0, 1.02 * max(1, running[0][-1])])
    fig.update_layout(
        title=title,
        xaxis_title="epoch",
        height=360,
        margin=dict(t=40, b=0),
        # Below the plot: run names beside it took half of a half-width chart.
        legend=dict(orientation="h", yanchor="top", y=-0.25),
        # Clearly different colours per run (the theme's palette alternates dark and pale
        # shades of one hue), as in the feature space.
        colorway=qualitative.D3,
    )
    values = [v for _, y in traces.values() for v in y if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    # One epoch, a flat line or the first batches: plotly zoomed into the values' float noise
    # (ticks 0.7120840, 0.7120841, ...; "10.2%" five times). Accuracies span four points at
    # least, a flat loss a tenth of its value.
    if percent and high - low < 0.04:
        pad = (0.04 - (high - low)) / 2
        low, high = low - pad, high + pad
        shift = min(0.0, 1.005 - high) or max(0.0, -low)  # inside 0-100.5%
        low, high = low + shift, high + shift
        fig.update_yaxes(range=[low, high])
    elif not percent and high - low < 0.002 * max(abs(high), 1e-3):
        pad = max(0.05 * abs(high), 0.01)
        low, high = low - pad, high + pad
        fig.update_yaxes(range=[low, high])
    # Whole percents repeat where the lines span under five ("99%, 99%, 99%").
    fig.update_yaxes(tickformat=(".1%" if high - low < 0.05 else ".0%") if percent else None)
    # Whole epochs only: plotly's own ticks put 1.5 and 2.5 under a three-epoch run.
    last = max((x[-1] for x, _ in traces.values() if x), default=1)
    return fig.update_xaxes(dtick=max(1, math.ceil(last / 10)))


def class_curves(curves: dict, names: list[str]) -> go.Figure:
    """Each class's recall at every checkpoint (`core.inspect.class_curves`), and all
    classes together as a thick dashed grey line."""
    epochs = curves["epochs"]
    recall = curves["recall"]
    traces = {  # a class without images here has no curve (NaN)
        name: (epochs, recall[:, i])
        for i, name in enumerate(names)
        if not np.isnan(recall[:, i]).all()
    }
    traces["all classes"] = (epochs, curves["accuracy"])
    fig = epoch_lines("Recall per class", traces, percent=True)
    if len(names) > MANY_CLASSES:  # 100 entries left the plot 110 px: names on hover
        fig.update_traces(showlegend=False)
    fig.update_traces(
        selector=dict(name="all classes"),
        line=dict(color=NEUTRAL, width=4, dash="dash"),
        showlegend=True,
    )
    return fig.update_yaxes(range=[0, 1.02])


def lr_curve(result: dict) -> go.Figure:
    """A learning-rate test's loss against the rate (log scale): each batch's loss, its
    moving average and, when there is one, the suggested rate as a dashed line."""
    fig = go.Figure(
        [
            go.Scatter(
                x=result["lr"],
                y=result["loss"],
                name="batch loss",
                mode="markers",
                marker=dict(size=4, opacity=0.4),
            ),
            go.Scatter(x=result["lr"], y=result["smoothed"], name="moving average", mode="lines"),
        ]
    )
    fig.update_traces(hovertemplate="rate %{x:.2g}: loss %{y:.4f}")
    if rate := result.get("suggested"):
        fig.add_vline(x=rate, line=dict(dash="dash", color=NEUTRAL))
        # Placed by hand: on a log axis add_vline's own label lands at 10**rate.
        fig.add_annotation(
            x=math.log10(rate),
            y=1,
            yref="paper",
            text=f"suggested {rate:.2g}",
            showarrow=False,
            xanchor="left",
            xshift=4,
        )
    # From just under the lowest average to 1.5 times the first: the diverging tail would
    # flatten the part worth reading.
    finite = [v for v in result["smoothed"] if math.isfinite(v)]
    if finite:
        fig.update_yaxes(range=[0.95 * min(finite), 1.5 * finite[0]])
    fig.update_yaxes(title="loss")
    fig.update_xaxes(type="log", title="learning rate", exponentformat="power")
    return fig.update_layout(
        height=360,
        margin=dict(t=30, b=0),
        legend=dict(orientation="h", yanchor="top", y=-0.25),
        colorway=qualitative.D3,
    )


def run_learning_rate(plan: tuple[list, list], recorded: tuple[list, list] | None, now=None):
    """A run's learning rate: as its schedule plans it (`core.train.lr_plan`), a line; as
    recorded at each epoch's end, points (None: a schedule not trained yet, the line
    alone); where a run in progress is (in epochs), a dotted vertical line."""
    traces = [
        go.Scatter(
            x=plan[0],
            y=plan[1],
            name="planned",
            mode="lines",
            line=dict(color=NEUTRAL if recorded is not None else qualitative.D3[0]),
            hovertemplate="epoch %{x:.2f}: %{y:.3g}",
        )
    ]
    if recorded is not None:
        traces.append(
            go.Scatter(
                x=recorded[0],
                y=recorded[1],
                name="at each epoch's end",
                mode="markers",
                marker=dict(color=qualitative.D3[0]),
                hovertemplate="epoch %{x}: %{y:.3g}",
            )
        )
    fig = go.Figure(traces)
    if now is not None:
        fig.add_vline(x=now, line=dict(dash="dot", color=NEUTRAL), annotation_text="now")
    fig.update_yaxes(exponentformat="power", rangemode="tozero")
    fig.update_xaxes(title="epoch", range=[0, 1.02 * max(plan[0][-1], 1)])
    return fig.update_layout(
        title="Learning rate" if recorded is not None else "Learning-rate schedule",
        height=240,
        margin=dict(t=40, b=0),
        showlegend=recorded is not None,
        legend=dict(orientation="h", yanchor="top", y=-0.35),
    )


def confusion_matrix(shown: np.ndarray, names: list[str], normalised: bool) -> go.Figure:
    """The matrix as a heatmap whose cells can be clicked (`clickmode` event+select).

    Args:
        shown: `(C, C)` counts, or row shares when `normalised`; rows are true classes.
        names: the `C` class names.
    """
    count = len(names)
    many = count > MANY_CLASSES
    # Rows of 40 px hold a number each; with many classes (100 gave a 4,120 px column of
    # 10,000 unreadable digits) the matrix stays about 800 px tall, its numbers on hover.
    row = max(4, 800 // count) if many else 40
    # A class without images here has a row of no shares (NaN): blank cells, said on hover.
    text = [
        ["" if np.isnan(v) else f"{v:.2f}" if normalised else f"{int(v)}" for v in values]
        for values in shown
    ]
    shown_names = charted(names)  # the categories stay the names a click gives back
    fig = go.Figure(_blues(shown, names, names, None if many else text, hoverinfo="skip"))
    # Heatmap cells cannot be selected by a click; one nearly invisible square marker per
    # cell can, and carries the hover text.
    cells = [(t, p) for t in range(count) for p in range(count)]
    marker = max(4, min(row, 320 // count)) if many else max(12, 320 // count)
    fig.add_scatter(
        x=[names[p] for _, p in cells],
        y=[names[t] for t, _ in cells],
        mode="markers",
        # With many classes no larger than a cell: it would take the clicks of its neighbours.
        marker=dict(symbol="square", size=marker, opacity=0.01),
        customdata=[
            [text[t][p] or "no images here", shown_names[t], shown_names[p]] for t, p in cells
        ],
        hovertemplate="true %{customdata[1]}<br>predicted %{customdata[2]}<br>"
        "%{customdata[0]}<extra></extra>",
        showlegend=False,
    )
    ticks = dict(tickvals=names, ticktext=[tick(name) for name in names])  # hover: whole
    if many:
        ticks["tickfont_size"] = min(12, max(6, row))  # a row's height at most: no overlap
    fig.update_xaxes(**ticks).update_yaxes(**ticks)
    return fig.update_layout(
        xaxis_title="Predicted",
        yaxis_title="True",
        # Fixed ranges: the large selection markers would otherwise pad the axes and leave
        # an empty band around the matrix.
        xaxis_range=[-0.5, count - 0.5],
        yaxis_range=[count - 0.5, -0.5],
        height=120 + row * count,
        margin=dict(t=20),
        clickmode="event+select",
    )


def _blues(z, x, y, text, **hover) -> go.Heatmap:
    """A heatmap of counts or shares in blues, each cell's `text` in it (None: no text).

    No colorscale of its own: Streamlit's template gives one per theme (pale to dark blue on
    the light page, dark to pale on the dark one, where plotly's "Blues" lit every empty
    cell white); the HTML report, which that template does not reach, sets "Blues"."""
    template = None if text is None else "%{text}"
    return go.Heatmap(z=z, x=x, y=y, text=text, texttemplate=template, **hover)


def answers_matrix(counts: np.ndarray, true_names: list[str], model_names: list[str]):
    """A model's answers over all its classes to images of some of them: `(T, M)` counts,
    a row per true class, a column per class the model knows."""
    text = None if len(model_names) > MANY_CLASSES else counts  # of many, on hover only
    hover = "true %{y}<br>answered %{x}<br>%{z}<extra></extra>"
    fig = go.Figure(_blues(counts, model_names, true_names, text, hovertemplate=hover))
    return fig.update_layout(
        xaxis_title="Answered",
        yaxis_title="True",
        yaxis_autorange="reversed",
        height=120 + 40 * len(true_names),
        margin=dict(t=20),
    )


def selective(curve: dict) -> go.Figure:
    """Accuracy on the images answered against the share answered, the surest first
    (`core.evaluate.selective`), the threshold on the top probability on hover."""
    fig = go.Figure(
        go.Scatter(
            x=curve["coverage"],
            y=curve["accuracy"],
            mode="lines",
            customdata=curve["threshold"],
            hovertemplate="answering the %{x:.0%} it is surest of<br>(top probability "
            "%{customdata:.2f} or more)<br>right on %{y:.1%} of them<extra></extra>",
        )
    )
    fig.update_xaxes(title="Share of images answered, the surest first", tickformat=".0%")
    # Up to 100% at most: a flat line at 100% had plotly's axis run from 0 to 200%.
    low = float(np.min(curve["accuracy"], initial=1.0))
    fig.update_yaxes(
        title="Accuracy on them", tickformat=".0%", range=[max(0.0, low - 0.05), 1.005]
    )
    return fig.update_layout(height=300, margin=dict(t=20, b=10), xaxis_range=[0, 1])


def reliability(calibrations: dict) -> go.Figure:
    """Share right against confidence: a group of bars per named `core.evaluate.Calibration`
    and the diagonal of a perfectly calibrated model."""
    fig = go.Figure()
    for name, calib in calibrations.items():
        fig.add_bar(
            x=(calib.edges[:-1] + calib.edges[1:]) / 2,
            y=calib.accuracy,
            name=f"share right, {name}",
            customdata=np.stack([calib.count, calib.confidence], axis=1),
            hovertemplate="said %{customdata[1]:.0%} on average<br>right %{y:.0%}"
            "<br>%{customdata[0]:,} images<extra></extra>",
        )
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash"), name="perfectly calibrated"
    )
    return fig.update_layout(
        barmode="group",
        bargap=0.1,
        xaxis=dict(
            title="Confidence (top probability), bins of 10%", tickformat=".0%", range=[0, 1]
        ),
        yaxis=dict(title="Share right", tickformat=".0%", range=[0, 1]),
        height=380,
        margin=dict(t=20),
        legend=dict(orientation="h", y=-0.3),
    )


def feature_space(space: dict, truth, answers, names: list[str], captions: list[str]):
    """The dots of a `core.inspect.feature_space`, a colour per true class, a cross per
    mistake; each dot's `customdata` is `[its position in the split, its caption]`.

    Args:
        space: the feature space.
        truth, answers: int `(M,)` the true and the answered class of each dot.
        names: the class names.
        captions: one hover text per dot.
    """
    index, xy = space["index"], space["xy"]
    captions = np.asarray(charted(captions), dtype=object)
    # Ten clearly different colours (the theme's palette alternates dark and pale shades).
    palette = qualitative.D3 if len(names) <= 10 else qualitative.Alphabet
    fig = go.Figure()
    for c, name in enumerate(names):
        # Right answers and mistakes as two traces of one legend entry: its symbol a dot,
        # or a cross for a class the model never gets right (an empty trace has no entry).
        ours = truth == c
        some_right = bool((ours & (answers == c)).any())
        for right in (True, False):
            mine = ours & ((answers == c) == right)
            fig.add_scattergl(
                x=xy[mine, 0],
                y=xy[mine, 1],
                mode="markers",
                name=chart(name),
                legendgroup=name,
                showlegend=right == some_right,
                marker=dict(
                    size=6 if right else 7,
                    symbol="circle" if right else "x",
                    color=palette[c % len(palette)],
                    opacity=0.75,
                ),
                customdata=np.stack([index[mine], captions[mine]], 1),
                hovertemplate="#%{customdata[0]}: %{customdata[1]}<extra></extra>",
            )
    share = space["explained"]
    return fig.update_layout(
        xaxis_title=f"first direction ({share[0]:.0%} of the variance)",
        yaxis_title=f"second direction ({share[1]:.0%})",
        height=520,
        margin=dict(t=20),
        dragmode="lasso",
    )


def image_grid(grid: np.ndarray, colorscale, zmin=None, zmax=None, midpoint=None, height=None):
    """A 2-D array (a mosaic of maps or filters) as an image in a colour scale, no ticks."""
    fig = px.imshow(
        grid,
        color_continuous_scale=colorscale,
        zmin=zmin,
        zmax=zmax,
        color_continuous_midpoint=midpoint,
        aspect="equal",
    )
    fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    return fig.update_layout(margin=dict(l=0, r=0, t=10, b=0), height=height)


def number_grid(values: np.ndarray, title: str, diverging: bool, zrange=(None, None)):
    """A small 2-D array with each number written in its cell: when `diverging`, red
    positive and blue negative around a white zero (as the filter mosaics), else grey."""
    fig = go.Figure(
        go.Heatmap(
            z=values,
            # Three significant digits: float32 values printed whole read 0.7839999794960022.
            texttemplate="%{z:.3~g}",
            colorscale="RdBu_r" if diverging else "Greys",
            zmid=0 if diverging else None,
            zmin=zrange[0],
            zmax=zrange[1],
            reversescale=not diverging,
            showscale=False,
        )
    )
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    return fig.update_layout(title=title, height=260, margin=dict(l=0, r=0, t=40, b=0))


def histogram(values: np.ndarray, title: str, bins: int = 60) -> go.Figure:
    """The values' histogram as touching bars, under a title of up to two lines."""
    counts, edges = np.histogram(values, bins=bins)
    fig = go.Figure(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, marker_line_width=0))
    return fig.update_layout(title=title, height=236, bargap=0, margin=dict(l=0, r=0, t=56, b=0))


def bars(x: list, y, title: str) -> go.Figure:
    """Plain bars with a title (a convolution's sum per input channel)."""
    fig = go.Figure(go.Bar(x=x, y=y))
    return fig.update_layout(title=title, height=220, margin=dict(t=40, b=0))


def grouped_bars(x: list, series: dict, percent: bool = False, **layout) -> go.Figure:
    """A group of bars per `x`, one bar per named series (`{name: values}`); `percent`
    for shares; `layout`: plotly layout settings (title, axis titles)."""
    names, x = x, charted(x)
    traces = [go.Bar(name=chart(n), x=x, y=np.asarray(y).tolist()) for n, y in series.items()]
    fig = go.Figure(traces)
    fig.update_layout(barmode="group", **layout)
    fig.update_xaxes(tickvals=x, ticktext=[tick(name) for name in names])
    return fig.update_yaxes(tickformat=".0%" if percent else None)


def pixel_histograms(edges: np.ndarray, counts: dict[str, np.ndarray]) -> go.Figure:
    """Pixels per value bin, a line per colour channel in its colour."""
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    fig = go.Figure(
        [
            go.Scatter(
                x=centres, y=c.tolist(), name=ch, mode="lines", line_color=CHANNEL_COLOURS[ch]
            )
            for ch, c in counts.items()
        ]
    )
    return fig.update_layout(xaxis_title="pixel value", yaxis_title="pixels")


def robustness(found: dict, other: dict | None = None, names: tuple = ()) -> go.Figure:
    """Accuracy against the largest change allowed in each pixel (`core.adversarial.
    robustness`): changed by the gradient attack, and by random noise of the same size;
    with `other`, a second model's two lines dashed beside them (`names`: the two models').
    The x axis is categorical: the ladder doubles, and 0 stands for the images as they are.
    Each point's bar is its 95% Wilson interval over the images measured."""
    from core.evaluate import wilson_interval

    x = [f"{e:g}" for e in found["epsilons"]]
    fig = go.Figure()
    models = (
        [(found, None, "")]
        if other is None
        else [(found, None, names[0]), (other, "dash", names[1])]
    )
    for result, dash, model in models:
        for name, key, colour in (
            ("random noise", "noise", "#7f7f7f"),
            ("the attack", "attacked", "#d62728"),
        ):
            y, n = np.asarray(result[key], np.float64), len(result["needed"])
            low, high = wilson_interval(np.round(y * n), n)
            fig.add_scatter(
                x=x,
                y=y,
                error_y=dict(
                    type="data", symmetric=False, array=high - y, arrayminus=y - low, width=3
                ),
                customdata=np.stack([low, high], axis=1),
                mode="lines+markers",
                name=chart(f"{model}: changed by {name}" if model else f"changed by {name}"),
                line=dict(color=colour, dash=dash),
                hovertemplate="at most %{x} of 255 levels a pixel<br>%{y:.1%} right "
                "(95% interval %{customdata[0]:.1%} to %{customdata[1]:.1%})<extra></extra>",
            )
    return fig.update_layout(
        xaxis=dict(title="Largest change allowed in each pixel (levels of 255)", type="category"),
        yaxis=dict(title="Accuracy", tickformat=".0%", range=[0, 1.02]),
        height=340 if other is None else 380,
        margin=dict(t=20),
        legend=dict(orientation="h", y=-0.3),
    )


def file_sizes(widths, heights, counts, image_size: int) -> go.Figure:
    """Each distinct file size as a dot whose area grows with its number of files, the
    squares as a dashed diagonal and the model's input size as a red cross; log axes when
    the sizes span more than 8x (photos of 100 to 4,000 pixels)."""
    counts = np.asarray(counts)
    fig = go.Figure(
        go.Scatter(
            x=widths,
            y=heights,
            mode="markers",
            name="files",
            customdata=counts,
            marker=dict(size=6 + 24 * np.sqrt(counts / counts.max()), opacity=0.6),
            hovertemplate="%{x} x %{y} pixels: %{customdata:,} files<extra></extra>",
        )
    )
    ends = [min(np.min(widths), np.min(heights), image_size)]
    ends.append(max(np.max(widths), np.max(heights), image_size))
    fig.add_scatter(
        x=ends, y=ends, mode="lines", name="square", line=dict(dash="dash", color="grey")
    )
    fig.add_scatter(
        x=[image_size],
        y=[image_size],
        mode="markers",
        name=f"model input, {image_size} x {image_size}",
        marker=dict(symbol="x", size=12, color="#d62728"),
    )
    axes = dict(type="linear", tickformat=",d")  # whole pixels
    if ends[1] > 8 * ends[0]:  # powers of two: plotly's own log ticks label 2, 5 and 9
        powers = 2 ** np.arange(int(np.log2(ends[0])), int(np.log2(ends[1])) + 2)
        axes = dict(type="log", tickvals=powers, ticktext=[f"{p:,}" for p in powers])
    fig.update_xaxes(title="width (pixels)", **axes)
    fig.update_yaxes(title="height (pixels)", **axes)
    return fig.update_layout(height=420, margin=dict(t=20, b=0))
