"""Filters & feature maps: what the layers learned, what they see, where the evidence lies."""

import numpy as np
import streamlit as st

from core import inspect, jobs, registry
from core.classify import top_classes
from core.errors import CnnError
from core.evaluate import with_temperature
from core.images import decode_image
from ui import charts, class_curves, state, units
from ui.report import FRAMINGS
from ui.text import md, md_sentence, probability

state.ensure_routed()

TILE_PX = 48  # first-layer filters are drawn this large, pixel for pixel
TILE_FRAME = 160  # grey: seen on a white and on a dark page
MAP_COLUMNS = 8
COLORMAPS = ["Viridis", "Gray", "Magma", "Cividis", "Turbo"]
RGB = ["red", "green", "blue"]
REPLAY_STEP_SECONDS = 1.0


@st.cache_data(max_entries=32, show_spinner=False)
def feature_maps(_model, model_key, pixels):
    return inspect.feature_maps(_model, pixels)


@st.cache_data(max_entries=64, show_spinner=False)
def grad_cam(_model, model_key, pixels, class_index):
    return inspect.grad_cam(_model, pixels, class_index)


@st.cache_data(max_entries=32, show_spinner=False)
def layer_scores(_check, model_key, calibration, pixels):
    """`calibration`: the check's own scores, which change when it is fitted again."""
    return _check.layer_scores(pixels[None])[0]


# Enough for every epoch of a long run: playing it loads each checkpoint once.
@st.cache_data(max_entries=64, show_spinner="Loading the checkpoint…")
def replay_epoch(run_dir, epoch, checkpoint_mtime, probe):
    return inspect.replay_epoch(run_dir, epoch, probe)


def tile_images(tiles):
    factor = max(1, TILE_PX // tiles.shape[1])
    # A filter of equal positive weights on red, green and blue is a white tile, one of
    # negative weights a black one: framed, neither vanishes into a light or dark page.
    framed = [
        np.pad(inspect.upscale(t, factor), ((2, 2), (2, 2), (0, 0)), constant_values=TILE_FRAME)
        for t in tiles
    ]
    st.image(framed, caption=[str(i) for i in range(len(tiles))])


def maps_figure(maps, per_map, colorscale, count):
    values = inspect.normalise_maps(maps) if per_map else maps
    grid = inspect.mosaic(values.transpose(2, 0, 1)[:count], MAP_COLUMNS)
    return charts.image_grid(grid, colorscale, float(values.min()), float(values.max()))


def choose_image(size):
    """Returns `(pixels, caption)` of the image to look through, or `(None, None)`."""
    probe = st.session_state.get("probe")
    sources = (["Probe"] if probe else []) + ["Dataset sample", "Upload"]
    default = 0 if probe or state.dataset_ready() else len(sources) - 1
    labels = {"Upload": "Upload an image"}
    if probe:
        labels["Probe"] = f"The image sent here: {md(probe['caption'])}"
    source = st.radio(
        "Image",
        sources,
        index=default,
        format_func=lambda s: labels.get(s, s),
        horizontal=True,
        key="filters_source",
    )
    if source == "Probe":
        return probe["pixels"], probe["caption"]
    if source == "Upload":
        fit = registry.framing(entry["card"])  # as the Classify page starts for this model
        file = st.file_uploader(
            "Image file",
            key="filters_upload",
            max_upload_size=state.PHOTO_UPLOAD_MB,
            help=f"A photo that is not square is made square as the Classify page starts for "
            f"this model: {FRAMINGS[fit]}.",
        )
        if file is None:
            return None, None
        try:
            return decode_image(file.getvalue(), size, filename=file.name, fit=fit), file.name
        except CnnError as err:
            st.error(md_sentence(err))
            return None, None
    dataset = state.require_dataset(fit=registry.trained_fit(entry["card"]))
    split = st.selectbox(
        "Split", list(dataset.splits), key="filters_split", format_func=state.split_name(dataset)
    )
    x, _ = dataset.split(split)
    clamp("filters_index", len(x) - 1)
    index = int(st.number_input("Index", 0, len(x) - 1, key="filters_index"))
    return x[index], dataset.image_name(split, index)


def clamp(key, high):
    # A layer with a smaller map may leave a stored position out of the widget's range.
    if st.session_state.get(key, 0) > high:
        st.session_state[key] = high


def filters_tab():
    tiles = inspect.first_layer_filter_tiles(model)
    k = tiles.shape[1]
    st.subheader("First layer")
    st.caption(
        f"{len(tiles)} filters of {k}×{k}×3, each scaled on its own around zero: grey is a "
        "zero weight, a colour is a positive weight on that input channel, its opposite "
        "colour (e.g. cyan for red) a negative one."
    )
    tile_images(tiles)

    st.subheader("Any convolution")
    layer = st.selectbox("Layer", inspect.conv_layers(model), key="filters_layer")
    grid = inspect.filter_grid(model, layer)
    f, c, k, _ = grid.shape
    cols = st.columns(2)
    rows = cols[0].slider("Filters shown", 1, f, min(f, 16), key="filters_rows")
    chans = cols[1].slider("Input channels shown", 1, c, min(c, 16), key="filters_chans")
    tiles = grid[:rows, :chans].reshape(-1, k, k)
    peak = float(np.abs(tiles).max()) or 1.0
    laid = inspect.mosaic(tiles, chans)
    # Up to 16 screen pixels a weight, within a 560 x 640 box: the whitening layer's 2 x 2
    # filters of 3 channels were a column 44 pixels wide in a height sized for 3 x 3 ones.
    cell = min(16, 560 / laid.shape[1], 640 / laid.shape[0])
    height = max(160, round(20 + cell * laid.shape[0]))
    fig = charts.image_grid(laid, "RdBu_r", -peak, peak, 0, height=height)
    st.plotly_chart(fig, width="stretch")
    st.caption(
        f"{layer}: {f} filters × {c} input channels of {k}×{k}, the first {rows} × {chans} "
        "shown. Row = output filter, column = input channel; red positive, blue negative, "
        "white zero."
    )

    st.subheader("Weight distributions")
    hists = inspect.weight_histograms(model)
    cols = st.columns(2)
    for i, (name, weights) in enumerate(hists.items()):
        # Two lines: one ran past a chart half as wide as a 1024-pixel window's page.
        stats = f"mean {weights.mean():.3f}, std {weights.std():.3f}"
        fig = charts.histogram(weights, f"{name}: {weights.size:,} weights<br><sup>{stats}</sup>")
        cols[i % 2].plotly_chart(fig, width="stretch", key=f"filters_hist_{name}")


def maps_tab():
    left, right = st.columns([1, 3])
    with left:
        pixels, caption = choose_image(size)
        if pixels is None:
            st.info("Choose an image to look through the network.")
            return None, None
        pixels = inspect.model_image(model, pixels)
        st.image(inspect.upscale(pixels, max(1, 192 // size)), caption=md(caption))
    with right:
        names = inspect.map_layers(model)
        layer = st.selectbox("Layer", names, key="filters_map_layer")
        maps = feature_maps(model, model_key, pixels)[layer]
        cols = st.columns(3)
        per_map = cols[0].radio(
            "Colour scale", ["Per map", "Shared"], horizontal=True, key="filters_scale"
        )
        cmap = cols[1].selectbox("Colormap", COLORMAPS, key="filters_cmap")
        count = cols[2].slider(
            "Channels shown", 1, maps.shape[2], min(maps.shape[2], 32), key="filters_count"
        )
        st.plotly_chart(maps_figure(maps, per_map == "Per map", cmap, count), width="stretch")
        st.caption(
            f"{layer}: {maps.shape[0]}×{maps.shape[1]}×{maps.shape[2]}; channel c is at row "
            f"c // {MAP_COLUMNS}, column c % {MAP_COLUMNS}. {np.mean(maps == 0):.0%} of the "
            "values are exactly zero for this image."
        )
        units.strongest_for_image(entry, model, layer, maps)

    st.subheader("Where the evidence is")
    cols = st.columns([1, 1, 2])
    choice = cols[0].selectbox(
        "Explain",
        [None, *range(len(class_names))],
        format_func=lambda i: "the predicted class" if i is None else class_names[i],
        key="filters_cam_class",
    )
    method = state.evidence_method(cols[0], "filters_cam_method", label="Method")
    alpha = cols[0].slider("Heatmap opacity", 0.0, 1.0, 0.45, key="filters_alpha")
    heat, explained, probs = grad_cam(model, model_key, pixels, choice)
    probs = with_temperature(probs, registry.temperature(entry))  # as Classify shows them
    predicted = int(np.argmax(probs))
    cols[0].metric(
        "Predicted class",
        md(class_names[predicted]),
        f"{probability(probs[predicted])} probability",
        delta_color="off",
    )
    if method == "Grad-CAM":
        big = inspect.upscale(inspect.overlay(pixels, heat, alpha), max(1, 256 // size))
        cols[1].image(big, caption=md(f"Evidence for {class_names[explained]} ({cam_layer})"))
    else:
        occluded(cols[1], pixels, explained, alpha)
    cols[2].plotly_chart(
        charts.top_answers(top_classes(probs, class_names, 5)),
        width="stretch",
        key="filters_cam_probs",
    )
    typical_by_layer(pixels)
    return pixels, caption


def occluded(where, pixels, explained, alpha) -> None:
    """The occlusion map for one class in `where`, its colours scaled to its strongest
    pixel, and what it means."""
    found = state.occlusions(entry, model, pixels)[explained]
    strongest = inspect.strongest_change(found)
    view = inspect.signed_overlay(pixels, found.drop, alpha, scale=strongest)
    big = inspect.upscale(view, max(1, 256 // size))
    name = md(class_names[explained])
    where.image(big, caption=f"Evidence for {name} (occlusion): red for, blue against")
    where.caption(
        f"Each pixel is coloured by how much the probability of {name} "
        f"({found.probs[explained]:.1%}) falls when a square of {found.side}×{found.side} "
        "pixels over it is hidden (filled with the image's mean colour), averaged over the "
        "squares that cover it: red where hiding it lowers the probability, blue where it "
        f"raises it. The strongest colour is a change of {strongest * 100:.1f} points; hiding "
        f"the one square that matters most leaves {found.lowest:.1%}."
    )


def typical_by_layer(pixels) -> None:
    """Where in the network the image stops looking like the training images (the
    float model's novelty check), when the model has one."""
    check = state.novelty_check(entry, model)
    if check is None:
        return
    st.subheader("How typical, layer by layer")
    values = layer_scores(check, model_key, check.calibration, pixels)
    st.plotly_chart(
        charts.layer_novelty(check.layers, values, check.threshold),
        width="stretch",
        key="filters_novelty",
    )
    worst = int(values.argmax())
    verdict = "unfamiliar" if check.unfamiliar(values[worst : worst + 1])[0] else "familiar"
    st.caption(
        f"What each layer's channels see on average in this image, against {check.fit_images:,} "
        "training images: 1.0 is as unusual as the 99th percentile training image at that "
        f"layer. Most unusual at {check.layers[worst]} ({values[worst]:.2f}): {verdict} to "
        "the model's check, which flags a picture above the dashed line (as Classify does "
        "with float32 answers; an int8 copy has its own, fitted on its 8-bit activations)."
    )


def explainer_tab(pixels, caption):
    st.latex(
        r"z_{i,j,c} = \sum_{u,v,k} x_{i+u,\,j+v,\,k}\; w_{u,v,k,c} + b_c"
        r"\qquad a_{i,j,c} = f(z_{i,j,c})"
    )
    st.caption(
        "x is the layer's input, w its kernel, b its bias, f the activation that follows "
        "(named below: ReLU, GELU…; none where pooling comes first). With stride s the "
        "window starts at (i·s, j·s); 'same' padding reads zeros outside. In batch-norm "
        "nets BN sits between: a = f(BN(z))."
    )
    if pixels is None:
        st.info("Choose an image on the Feature maps tab first.")
        return
    layer = st.selectbox("Convolution", inspect.conv_layers(model), key="filters_ex_layer")
    h, w, f = model.get_layer(layer).output.shape[1:]
    for key, high in [("filters_ex_row", h - 1), ("filters_ex_col", w - 1)]:
        clamp(key, high)
    clamp("filters_ex_channel", f - 1)
    cols = st.columns(3)
    channel = cols[0].number_input("Output channel c", 0, f - 1, key="filters_ex_channel")
    row = cols[1].number_input("Row i", 0, h - 1, key="filters_ex_row")
    col = cols[2].number_input("Column j", 0, w - 1, key="filters_ex_col")
    ex = inspect.conv_explainer(model, pixels, layer, int(row), int(col), int(channel))
    k, _, c_in = ex["kernel"].shape
    source = "the image scaled to [0, 1]" if ex["source"] == "rescale" else ex["source"]
    i0, j0 = ex["origin"]
    st.caption(
        f"Image: {caption}. Filter {channel} of {layer} at ({row}, {col}) reads rows "
        f"{i0}…{i0 + k - 1} and columns {j0}…{j0 + k - 1} of {source} "
        f"({ex['padding']} padding, stride {ex['stride'][0]})."
    )
    names = RGB if c_in == 3 else [str(i) for i in range(c_in)]
    kin = 0
    if c_in > 1:
        clamp("filters_ex_in", c_in - 1)
        kin = int(st.number_input("Input channel k", 0, c_in - 1, key="filters_ex_in"))
    cols = st.columns(3)
    # The image's pixels keep their own brightness (0 black, 1 white), not the window's.
    x_range = (0.0, 1.0) if ex["source"] == "rescale" else (None, None)
    grids = [
        charts.number_grid(
            ex["patch"][:, :, kin], f"input x (channel {names[kin]})", False, x_range
        ),
        charts.number_grid(ex["kernel"][:, :, kin], "kernel w", True),
        charts.number_grid(
            ex["products"][:, :, kin], f"x·w, sum {ex['channel_sums'][kin]:.4f}", True
        ),
    ]
    for col_, fig in zip(cols, grids, strict=True):
        col_.plotly_chart(fig, width="stretch")
    fig = charts.bars(names, ex["channel_sums"], "Σ x·w per input channel")
    st.plotly_chart(fig, width="stretch")
    steps = [("Σ x·w", ex["sum"]), ("+ bias b", ex["bias"]), ("z", ex["z"])]
    if ex["bn"]:
        steps.append(("BN(z)", ex["bn"]["value"]))
    if ex["activation"]:
        steps.append((f"a = {ex['activation']}(·)", ex["a"]))
    for col_, (label, value) in zip(st.columns(len(steps)), steps, strict=True):
        col_.metric(label, f"{value:.4f}")
    check = f"The model's own output here: z = {ex['model_z']:.4f}"
    if ex["model_a"] is not None:
        check += f", a = {ex['model_a']:.4f}"
    if ex["bn"]:
        bn = ex["bn"]
        check += (
            f". BN(z) = {bn['gamma']:.3f} · (z − {bn['mean']:.3f}) / "
            f"√({bn['variance']:.3f} + {bn['epsilon']:g}) + {bn['beta']:.3f}"
        )
    st.caption(check + ".")


def replay_tab(pixels, caption):
    rows = [r for r in state.run_rows() if inspect.checkpoint_epochs(r["path"])]
    if not rows:
        st.info("No run has a checkpoint yet: train one on the Train page.")
        return
    names = [r["name"] for r in rows]
    index = names.index(entry["id"]) if entry["id"] in names else 0
    c = st.columns([4, 1], vertical_alignment="bottom")
    name = c[0].selectbox("Run", names, index=index, key="filters_replay_run")
    run_dir = next(r["path"] for r in rows if r["name"] == name)
    epochs = inspect.checkpoint_epochs(run_dir)
    if pixels is None:
        st.info("Choose an image on the Feature maps tab to replay what the run saw in it.")
    else:
        playing = len(epochs) > 1 and c[1].toggle(
            "Play",
            key="filters_replay_play",
            help="Steps through the epochs, one a second, again from the first after the last.",
        )
        st.fragment(replay_view, run_every=REPLAY_STEP_SECONDS if playing else None)(
            run_dir, epochs, pixels, caption, playing
        )
    class_curves.section(run_dir, size)


def replay_view(run_dir, epochs, pixels, caption, playing):
    current = st.session_state.get("filters_replay_epoch")
    if current not in epochs:
        st.session_state["filters_replay_epoch"] = epochs[-1]
    elif playing:
        st.session_state["filters_replay_epoch"] = epochs[(epochs.index(current) + 1) % len(epochs)]
    if len(epochs) > 1:
        epoch = st.select_slider("Epoch", epochs, key="filters_replay_epoch")
    else:
        epoch = epochs[0]
        training = jobs.status(run_dir)["state"] in jobs.ACTIVE
        st.caption(
            f"Only epoch {epoch} has a checkpoint so far."
            if training
            else f"The run kept one checkpoint, of epoch {epoch}: nothing to play."
        )
    path = f"{run_dir}/checkpoints/epoch_{epoch:03d}.keras"
    try:
        rec = replay_epoch(run_dir, epoch, registry.model_version(path), pixels)
    except (CnnError, OSError) as err:
        st.error(md_sentence(err))
        return
    labels = rec["class_names"] or [f"class {i}" for i in range(len(rec["probs"]))]
    st.subheader(f"Epoch {epoch}")
    left, right = st.columns([3, 2])
    with left:
        st.caption("First-layer filters")
        tile_images(rec["tiles"])
    right.caption(f"Predicted probabilities for {md(caption)}")
    right.image(inspect.upscale(pixels, max(1, 96 // size)))
    right.plotly_chart(
        charts.top_answers(top_classes(rec["probs"], labels, 10)),
        width="stretch",
        key="filters_replay_probs",
    )
    st.caption(f"The image's first-layer feature maps ({rec['layer']}, each map on its own scale)")
    st.plotly_chart(
        maps_figure(rec["maps"], True, "Viridis", 32), width="stretch", key="filters_replay_maps"
    )


st.title("Filters & feature maps")
model, entry = state.require_model()
model_key = (entry["path"], registry.model_version(entry["path"]))
size = int(model.input.shape[1])
num_classes = int(model.output.shape[-1])
class_names = entry["card"].get("class_names") or [f"class {i}" for i in range(num_classes)]
cam_layer = inspect.cam_layer(model)

# An image sent from the Dataset or Evaluate page is what the user came to look through.
tabs = st.tabs(
    ["Filters", "What units look for", "Feature maps", "Convolution explainer", "Learning replay"],
    default="Feature maps" if st.session_state.get("probe") else None,
)
with tabs[0]:
    filters_tab()
with tabs[1]:
    units.tab(entry, model, class_names)
with tabs[2]:
    image, image_caption = maps_tab()
with tabs[3]:
    explainer_tab(image, image_caption)
with tabs[4]:
    replay_tab(image, image_caption)
