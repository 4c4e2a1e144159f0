"""The Train page's New run form: a preset and its recipe, or a custom architecture, and
the start of a run or a hyperparameter search."""

import json
import time
from dataclasses import fields

import pandas as pd
import streamlit as st

from core import datastats, estimate, filestats, jobs, registry, search
from core.augment import CONTROLS, AugmentConfig
from core.errors import CnnError
from core.hardware import effective_precision, has_fast_bf16
from core.model import (
    PRESET_DESCRIPTIONS,
    PRESETS,
    TRANSFER_PRESETS,
    ConvBlock,
    ModelConfig,
    missing_weights_message,
    preset_config,
    pretrained_weights_available,
)
from core.optimizers import KERNEL_RATIO
from core.train import (
    LOSSES,
    MIN_CROP,
    OPTIMIZERS,
    PRECISIONS,
    RECIPES,
    SCHEDULES,
    TrainConfig,
    batch_advice,
    lr_plan,
    parse_augment,
    resolved_model_config,
    teacher_fit,
)
from core.words import counted
from ui import charts, lr_test, state
from ui.text import md, md_sentence

ACTIVATIONS = ("relu", "gelu", "elu", "swish", "tanh")
DEFAULT = TrainConfig()
IMAGE_SIZES = (32, 64, 96)


@st.cache_data(max_entries=32, show_spinner="Building the model…")
def model_summary(model_json: str) -> list[dict]:
    return jobs.model_summary(ModelConfig.from_dict(json.loads(model_json)))


def _larger_size(dataset, size: int) -> str | None:
    """`core.filestats.larger_size` of the folder's files (all splits), or None for a
    source without files (CIFAR-10 arrays are 32 x 32)."""
    stored, _ = filestats.dataset_files(dataset)
    if not len(stored):
        return None
    return filestats.larger_size(stored, size, IMAGE_SIZES, files="this folder's files")


def fit_choice(dataset) -> str:
    """How the run makes the folder's pictures that are not square into squares: asked only
    when some are (CIFAR-10's are all square), "squash" otherwise; the Augmentations page's
    choice once, when it sends its settings."""
    sent = st.session_state.get("train_fit_sent")
    if sent and sent != st.session_state.get("train_fit_applied"):
        st.session_state["train_fit"] = st.session_state["train_fit_applied"] = sent
    return state.fit_select(
        st,
        dataset,
        "train_fit",
        "Squashed, a picture keeps everything in it but objects change shape; cropped, "
        "objects keep their shape but the picture loses its edges (a 4:3 photo a quarter of "
        "its width). The run and its model card keep the choice: evaluation reads the images "
        "the same way, and the Classify page starts with the same framing for uploads.",
    )


def block_editor(b: int) -> ConvBlock:
    row = state.settings_row()
    k = f"train_block{b}_"
    return ConvBlock(
        filters=row.number_input(
            f"Block {b} filters", 1, 512, min(16 * 2**b, 512), key=k + "filters", width=state.NUMBER
        ),
        kernel_size=row.selectbox(
            "Kernel", (1, 3, 5, 7), index=1, key=k + "kernel", width=state.NUMBER
        ),
        convs=row.number_input("Convs", 1, 4, 1, key=k + "convs", width=state.NUMBER),
        activation=row.selectbox(
            "Activation", ACTIVATIONS, key=k + "activation", width=state.NUMBER
        ),
        batch_norm=row.checkbox("Batch norm", key=k + "bn", width=state.NUMBER),
        padding=row.selectbox("Padding", ("same", "valid"), key=k + "padding", width=state.NUMBER),
        dropout=row.number_input(
            "Dropout", 0.0, 0.9, 0.25, 0.05, key=k + "dropout", width=state.NUMBER
        ),
    )


def custom_model(blocks: int) -> tuple[ModelConfig, str]:
    st.markdown("**Architecture**")
    config = ModelConfig(blocks=[block_editor(b) for b in range(1, blocks + 1)])
    row = state.settings_row()
    config.pooling = row.selectbox(
        "Pooling", ("max", "avg"), key="train_pooling", width=state.CONTROL
    )
    config.head = row.selectbox(
        "Head", ("flatten", "global_avg"), key="train_head", width=state.CONTROL
    )
    widths = row.text_input(
        "Dense layer widths", "64", key="train_dense", width=state.CONTROL, help="e.g. 128,64"
    )
    config.dense_dropout = row.number_input(
        "Dense dropout", 0.0, 0.9, 0.5, 0.05, key="train_dense_dropout", width=state.CONTROL
    )
    return config, widths


# Form fields a preset's recipe sets (core.train.RECIPES), with their widget keys.
RECIPE_KEYS = {
    "optimizer": "train_optimizer",
    "learning_rate": "train_lr",
    "momentum": "train_momentum",
    "weight_decay": "train_wd",
    "schedule": "train_schedule",
    "warmup_epochs": "train_warmup",
    "label_smoothing": "train_smoothing",
    "batch_size": "train_batch_size",
    "epochs": "train_epochs",
    "precision": "train_precision",
    "lookahead": "train_lookahead",
    "small_crop_share": "train_small_crop_share",
    "small_crop_size": "train_small_crop_size",
    "whiten_bias_epochs": "train_whiten_bias_epochs",
    "adversarial_eps": "train_adversarial_eps",
    "image_size": "train_image_size",
}


def recipe_values(preset: str) -> dict:
    """The form values a preset trains with: TrainConfig's defaults, then its recipe."""
    recipe = {**{f: getattr(DEFAULT, f) for f in RECIPE_KEYS}, **RECIPES.get(preset, {})}
    augment = parse_augment(recipe.pop("augment")) if "augment" in recipe else AugmentConfig()
    values = {RECIPE_KEYS[f]: v for f, v in recipe.items()}
    return values | {f"train_aug_{k}": v for k, v in augment.to_dict().items()}


def training_options(uneven: float = 1.0, val_folder: str = "") -> dict:
    """The form's optimisation, regularisation and run settings; `uneven`: the largest
    class's share over the smallest's, `val_folder`: the data's own validation folder
    (`core.data.Dataset.val_folder`), which the validation fraction does not choose."""
    for key, value in recipe_values(st.session_state["train_preset"]).items():
        st.session_state.setdefault(key, value)
    st.markdown("**Optimisation**")
    row = state.settings_row()
    o = dict(
        optimizer=row.selectbox(
            "Optimizer",
            OPTIMIZERS,
            key="train_optimizer",
            width=state.CONTROL,
            help="muon: Nesterov SGD for biases and the classifier; each conv kernel keeps a "
            "fixed norm and takes steps of equal size in every direction (orthogonalised "
            "momentum, airbench's newest recipe).",
        ),
        learning_rate=row.number_input(
            "Learning rate", *lr_test.LR_BOUNDS, format="%g", key="train_lr", width=state.CONTROL
        ),
        momentum=row.number_input(
            "Momentum", 0.0, 0.999, key="train_momentum", width=state.CONTROL
        ),
        weight_decay=row.number_input(
            "Weight decay", 0.0, 1.0, format="%g", key="train_wd", width=state.CONTROL
        ),
        schedule=row.selectbox("Schedule", SCHEDULES, key="train_schedule", width=state.CONTROL),
        warmup_epochs=row.number_input(
            "Warm-up epochs",
            0.0,
            100.0,
            key="train_warmup",
            width=state.CONTROL,
            help="cosine: the rate rises from 0 over these epochs; onecycle: from a tenth "
            "of it (0: over the first quarter of the run). The other schedules start at "
            "the full rate.",
        ),
        step_epochs=row.number_input(
            "Step every (epochs)",
            1,
            1000,
            DEFAULT.step_epochs,
            key="train_step_epochs",
            width=state.CONTROL,
            help="step: the rate is multiplied by the step factor every this many epochs.",
        ),
        step_factor=row.number_input(
            "Step factor",
            0.001,
            1.0,
            DEFAULT.step_factor,
            key="train_step_factor",
            width=state.CONTROL,
        ),
        loss=row.selectbox("Loss", LOSSES, key="train_loss", width=state.CONTROL),
        label_smoothing=row.number_input(
            "Label smoothing", 0.0, 0.9, step=0.05, key="train_smoothing", width=state.CONTROL
        ),
        precision=row.selectbox(
            "Precision",
            PRECISIONS,
            key="train_precision",
            # "auto (here: mixed_bfloat16)" whole: "stretch" left it 200-odd px at 1280.
            width=state.CONTROL + 80,
            format_func=precision_label,
            help="mixed_bfloat16 computes in bf16 with float32 weights and outputs: about 2x "
            "faster on CPUs with bf16 units (AVX-512 BF16, AMX) and on GPUs, several times "
            "slower on other CPUs. auto picks the faster of the two for this machine.",
        ),
        lookahead=row.checkbox(
            "Weight averaging",
            key="train_lookahead",
            width=state.CONTROL,
            help="Lookahead, as in airbench: every 5 steps the weights (batch-norm "
            "statistics too) move to their moving average, and the run ends on it.",
        ),
        small_crop_share=row.number_input(
            "Small-crop share",
            0.0,
            0.95,
            step=0.05,
            key="train_small_crop_share",
            width=state.CONTROL,
            help="Progressive resizing: this share of the epochs, the first ones, trains on "
            "a random crop of each image, which takes less compute; the rest on whole "
            "images (0.5 of 12 epochs: 6). Quick, fast and wide presets only.",
        ),
        small_crop_size=row.number_input(
            "Small-crop size",
            MIN_CROP,
            1024,
            key="train_small_crop_size",
            width=state.CONTROL,
            help="pixels",
        ),
        whiten_bias_epochs=row.number_input(
            "Whitening-bias epochs",
            0,
            1000,
            key="train_whiten_bias_epochs",
            width=state.CONTROL,
            help="The speed presets' first layer whitens 2x2 patches with a kernel computed "
            "from the data, which never trains; its bias trains for this many first epochs "
            "(airbench: 3), then stays.",
        ),
        adversarial_eps=row.number_input(
            "Adversarial training (levels)",
            0.0,
            32.0,
            step=1.0,
            format="%g",
            key="train_adversarial_eps",
            width=state.CONTROL,
            help="0 = off. Otherwise each batch is first moved up to this many levels of 255 "
            "a pixel the way that most raises the loss (one gradient sign step from a random "
            "start), and the model learns from the moved images: it gives up some accuracy "
            "on clean images to be fooled less by small changes (the Evaluate page's "
            "Robustness section measures both). Costs an extra pass a batch.",
        ),
    )
    st.markdown("**Run**")
    row = state.settings_row()
    o |= dict(
        batch_size=row.number_input(
            "Batch size", 1, 4096, key="train_batch_size", width=state.NUMBER
        ),
        epochs=row.number_input("Epochs", 1, 1000, key="train_epochs", width=state.NUMBER),
        val_fraction=row.number_input(
            "Validation fraction",
            0.0,
            0.5,
            DEFAULT.val_fraction,
            0.05,
            key="train_val",
            width=state.NUMBER,
            disabled=bool(val_folder),  # said below: a help icon wraps the label
        ),
        seed=row.number_input(
            "Seed",
            0,
            2**31 - 1,
            DEFAULT.seed,
            key="train_seed",
            width=state.NUMBER,
            help="Fixes which images the validation fraction holds out, the initial weights "
            f"and the order of batches. The other pages hold out {state.VAL_FRACTION:g} with "
            f"seed {state.SPLIT_SEED}: a run split otherwise is scored there on some images it "
            "trained on, until the Evaluate page splits every page as it did.",
        ),
        early_stopping=row.number_input(
            "Patience",  # "Early stopping patience" wrapped to two lines at 1280 px
            0,
            100,
            0,
            key="train_patience",
            width=state.NUMBER,
            help="Early stopping: the run ends after this many epochs without a better "
            "validation accuracy, and keeps its best epoch's weights. 0: off, every epoch runs "
            "(and without validation images there is nothing to stop on).",
        ),
        name=row.text_input(
            "Run name", key="train_name", width=state.NUMBER, placeholder="optional"
        ),
    )
    if val_folder:
        st.caption(
            f"Validation images: this folder's own {md(val_folder)}/. No fraction of train/ is "
            "held out, whatever the validation fraction and seed."
        )
    o |= dict(
        drop_near_duplicates=st.checkbox(
            "Leave out training images that copy a validation or test image",
            key="train_drop_near",
            help="Near-duplicates (the Dataset page finds them): a held-out image whose copy "
            "the model learnt from measures its memory, not how it does on new pictures. "
            "Left out, validation and test accuracy measure unseen pictures only; those "
            "splits stay as they are, so runs with and without compare on the same images. "
            "Found once for the data (about 12 s for CIFAR-10's 50,000), then kept.",
        ),
        balance_classes=st.checkbox(
            "Balance the classes",
            key="train_balance",
            help="Weighs each training image by N / (classes x its class's count) in the "
            "loss, so that a class with few images counts as much as one with many and the "
            "model does not favour a class for being common. For data whose classes differ "
            "in size (the Dataset page counts them); with classes of one size it changes "
            "nothing. The accuracy shown while training stays unweighted.",
        ),
    )
    if uneven >= datastats.UNEVEN:  # the training split's largest class over its smallest
        st.caption(
            f"This data's largest class has {uneven:.1f}x the training images of its "
            "smallest: balancing the classes is worth a try."
        )
    return o


def precision_label(precision: str) -> str:
    if precision == "auto":
        return f"auto (here: {effective_precision('auto')})"
    if precision == "mixed_bfloat16" and not has_fast_bf16():
        return "mixed_bfloat16 (slow here)"
    return precision


def teacher_options(dataset, size: int) -> dict:
    """Knowledge distillation: a trained model for the same classes (or more) and image
    size."""
    models = state.available_models()
    fits = registry.models_for(models, dataset.class_names, size, knowing_more=True)
    labels = {"": "nobody (labels only)", **{m["path"]: m["label"] for m in fits}}
    st.markdown("**Learn from a trained model (distillation)**")
    c = st.columns([3, 1])
    teacher = c[0].selectbox(
        "Teacher",
        list(labels),
        format_func=labels.get,
        key="train_teacher",
        help="Each training image's target mixes its label with the teacher's "
        "probabilities for it (computed once, with flip averaging, before the first "
        "epoch): a small model learns more from a bigger one than from the labels alone. "
        "Only models trained on these classes at this image size are offered, or on more "
        "classes, as the shipped CIFAR-10 model for a folder of cats and dogs: it teaches its "
        "answers among these.",
    )
    weight = c[1].number_input(
        "Teacher's share", 0.0, 1.0, DEFAULT.teacher_weight, 0.05, key="train_teacher_weight"
    )
    return {"teacher": teacher, "teacher_weight": weight}


def augment_options(sent: dict | None) -> AugmentConfig:
    # Settings sent from the Augmentations page replace the form's values once per sending.
    if sent and sent != st.session_state.get("train_augment_applied"):
        st.session_state.update({f"train_aug_{k}": v for k, v in sent.items()})
        st.session_state["train_augment_applied"] = sent
    defaults = {**AugmentConfig().to_dict(), **(sent or {})}
    st.markdown("**Augmentation**")
    values, row = {}, state.settings_row()
    for f in fields(AugmentConfig):
        key, c = f"train_aug_{f.name}", CONTROLS[f.name]
        cast = {"bool": bool, "int": int, "float": float}[f.type]
        st.session_state[key] = cast(st.session_state.get(key, defaults[f.name]))
        if f.type == "bool":
            values[f.name] = row.checkbox(c.label, key=key, help=c.help, width=state.CONTROL)
        else:
            values[f.name] = row.number_input(
                c.label,
                cast(0),
                cast(c.maximum),
                step=cast(c.step),
                key=key,
                help=c.help,
                width=state.CONTROL,
            )
    return AugmentConfig(**values)


def choose_preset(name: str | None = None) -> None:
    # A preset brings its recipe: optimizer, schedule, epochs, precision, augmentation and
    # the image size it trains at (96 for transfer learning), as the CLI does.
    if name:
        st.session_state["train_preset"] = name
    st.session_state.update(recipe_values(st.session_state["train_preset"]))


def weights_warning(preset: str) -> None:
    backbone = preset_config(preset).backbone
    if pretrained_weights_available(backbone):
        return
    st.warning(missing_weights_message(backbone))
    cols = st.columns(2)
    for col, name in zip(cols, ("quick", "fast"), strict=True):
        col.button(
            f"Use {name} instead", key=f"train_use_{name}", on_click=choose_preset, args=(name,)
        )


def new_run() -> None:
    st.subheader("New run")
    dataset = state.require_dataset()
    choice, summary = st.columns([2, 3], gap="large")
    with choice:
        preset = st.selectbox(
            "Architecture",
            [*PRESETS, *TRANSFER_PRESETS, "custom"],
            key="train_preset",
            on_change=choose_preset,
        )
        custom = preset == "custom"
        st.session_state.setdefault("train_image_size", recipe_values(preset)["train_image_size"])
        size = st.selectbox(
            "Image size",
            IMAGE_SIZES,
            format_func=lambda s: f"{s}x{s} pixels",
            key="train_image_size",
            help="Every image is resized to this; the model card records it.",
        )
        if size < IMAGE_SIZES[-1] and (larger := _larger_size(dataset, size)):
            st.caption(f"{larger} The Dataset page's Image files tab says more of them.")
        # Outside the form: the form can only show as many block editors as chosen here.
        blocks = st.number_input("Conv blocks", 1, 5, 2, key="train_blocks") if custom else 0
        if not custom:
            st.caption(PRESET_DESCRIPTIONS[preset])
        if preset in TRANSFER_PRESETS:
            weights_warning(preset)
        fit = fit_choice(dataset)
        sent = st.session_state.get("train_augment")
        if sent:
            framing = " and framing" if st.session_state.get("train_fit_sent") else ""
            st.info(f"Augmentation settings{framing} from the Augmentations page.")
    with st.form("train_form", enter_to_submit=False):
        model, widths = custom_model(blocks) if custom else (None, "")
        counts = datastats.class_counts(dataset)
        uneven = datastats.imbalance(counts["train"])
        options = training_options(uneven, dataset.val_folder) | teacher_options(dataset, size)
        augment = augment_options(sent)
        buttons = st.container(horizontal=True)
        start = buttons.form_submit_button("Start training", type="primary", key="train_start")
        find = buttons.form_submit_button(
            "Find a learning rate",
            key="train_lr_test",
            help="Trains a fresh model of this recipe for up to 100 batches at a rate growing "
            "from 1e-5 to 10 and draws the loss against the rate (a learning-rate range "
            "test): a good rate sits where the loss falls fastest.",
        )
        timing = buttons.form_submit_button(
            "Estimate the time",
            key="train_estimate",
            help="Trains this recipe for a few batches, validates and saves it once, and "
            "multiplies out: about 10-40 s, and nothing is kept.",
        )
        buttons.form_submit_button(
            "Update the summary",
            key="train_preview",
            help="Redraws the model and the learning-rate schedule beside the form from the "
            "settings above; nothing starts.",
        )
        # In the form: a search takes the settings above as they are when it starts.
        searched = search_box(preset)
    try:
        if custom:
            model.dense = jobs.parse_widths(widths)
        config = TrainConfig(
            preset=preset, model=model, image_size=size, fit=fit, augment=augment, **options
        )
        with summary:
            model_summary_view(resolved_model_config(config, dataset.num_classes))
            own = dataset.val_folder
            schedule_preview(config, datastats.training_images(counts, config.val_fraction, own))
            fraction, patience = config.val_fraction, config.early_stopping
            names = dataset.class_names
            if advice := datastats.validation_advice(names, counts, fraction, patience, own):
                st.warning(md_sentence(advice))
        config.data = state.dataset_spec()
        if timing or start or find:
            state.decode_folder(size, fit)  # under a bar here, not unseen in the child
            framing = options["teacher"] and teacher_fit(options["teacher"], dataset.class_names)
            if framing and framing != fit:
                state.decode_folder(size, framing)  # teacher_images: as the teacher saw them
        if timing:
            measure_time(config)
        estimate_line(config)
        if start or find:
            started = jobs.launch(config) if start else jobs.launch_lrfind(config)
            what = "the learning-rate test" if find else ""
            st.session_state["train_notice"] = f"Started {what or started.name}."
            st.rerun()
    except CnnError as err:
        st.error(md_sentence(err))
    lr_test.box()
    if searched:
        start_search(preset, (size, fit), options, searched)


@st.cache_data(max_entries=16, show_spinner=False)
def schedule_of(config_json: str, steps: int) -> tuple[list, list]:
    return lr_plan(TrainConfig.from_dict(json.loads(config_json)), steps)


def schedule_preview(config: TrainConfig, images: int) -> None:
    """The learning rate that the form's settings (as last sent) would train with."""
    steps = max(1, -(-images // config.batch_size))
    plan = schedule_of(json.dumps(config.to_dict()), steps)
    st.plotly_chart(charts.run_learning_rate(plan, None), key="train_schedule_preview")
    st.caption(
        f"What the form's settings give over {counted(config.epochs, 'epoch')} of "
        f"{counted(steps, 'batch', 'batches')} ({counted(images, 'training image')}"
        + (", fewer once near-duplicates are left out" if config.drop_near_duplicates else "")
        + ")."
        + (
            f" Muon steps each conv kernel at {KERNEL_RATIO:g}x this rate."
            if config.optimizer == "muon"
            else ""
        )
        + " After changing the form, Update the summary redraws it."
    )
    if advice := batch_advice(images, config.batch_size):
        st.info(advice, icon=":material/lightbulb:")


def measure_time(config: TrainConfig) -> None:
    """Measures how long a run of `config` would take (`core.estimate`, in a process of
    its own) under a progress bar; keeps the sentence for `estimate_line`."""
    bar = st.progress(0.0, text="Estimating the time: loading the data and TensorFlow")
    drawn = [0.0]

    def step(done: int, total: int, doing: str) -> None:
        # Twice a second at most: the browser's redrawing would take cores from the measuring.
        if time.monotonic() - drawn[0] >= 0.5:
            drawn[0] = time.monotonic()
            bar.progress(done / total, text=f"Estimating the time: {doing}, batch {done}/{total}")

    try:
        found = estimate.in_subprocess(config, step)
    except CnnError as err:
        st.error(md_sentence(err))
        return
    finally:
        bar.empty()
    st.session_state["train_estimate_text"] = (config.to_dict(), found["text"])


def estimate_line(config: TrainConfig) -> None:
    """The last estimate, while the form still holds the settings it was measured for."""
    measured = st.session_state.get("train_estimate_text")
    if measured and measured[0] == config.to_dict():
        st.info(measured[1], icon=":material/timer:")


def search_box(preset: str) -> dict | None:
    """The search's own settings, in the New run form: returned once "Start search" is
    clicked, None until then (and for a custom architecture)."""
    with st.expander("Search hyperparameters (KerasTuner)"):
        st.caption(
            "Tries learning rates, widths, dropout and augmentation strengths around the "
            "preset's recipe; every trial is a run in the table below."
        )
        latest = jobs.latest_search()
        if latest and latest["state"] not in jobs.ACTIVE:
            last_search(latest)
        if preset == "custom":
            st.info("A search starts from a preset: choose one above.")
            return None
        c = st.columns(3)
        chosen = dict(
            trials=int(c[0].number_input("Trials", 1, 200, 8, key="train_search_trials")),
            epochs=int(
                c[1].number_input("Epochs per trial", 1, 1000, 3, key="train_search_epochs")
            ),
            algorithm=c[2].selectbox("Algorithm", search.ALGORITHMS, key="train_search_algorithm"),
        )
        clicked = st.form_submit_button(
            "Start search",
            key="train_search_start",
            help="With the run settings above (validation fraction, seed, leaving out copies, "
            "balancing the classes); each trial is a run.",
        )
        return chosen if clicked else None


def start_search(preset: str, size_and_fit: tuple, options: dict, chosen: dict) -> None:
    """Starts a search of `chosen` trials, epochs and algorithm from the form's settings."""
    config = search.SearchConfig(
        data=state.dataset_spec(),
        preset=preset,
        image_size=size_and_fit[0],
        fit=size_and_fit[1],
        val_fraction=options["val_fraction"],
        seed=int(options["seed"]),
        drop_near_duplicates=options["drop_near_duplicates"],
        balance_classes=options["balance_classes"],
        **chosen,
    )
    try:
        state.decode_folder(*size_and_fit)  # as for a run: under a bar here
        name = jobs.launch_search(config).name
    except CnnError as err:
        st.error(md_sentence(err))
        return
    st.session_state["train_notice"] = f"Started search {search.ident(name)}."
    st.rerun()


def last_search(latest: dict) -> None:
    name = md(search.ident(latest["name"]))  # its folder is hidden
    if latest["state"] == "failed":
        st.error(f"Search {name} failed: {md_sentence(latest.get('message'))}")
    if best := search.summarise(latest["path"])["best"]:
        choices = search.describe_choices(best["hyperparameters"])
        st.caption(
            f"Best of search {name}: {best['run']}, validation accuracy "
            f"{best['val_accuracy']:.2%} with {choices}."
        )


def model_summary_view(model: ModelConfig) -> None:
    rows = model_summary(json.dumps(model.to_dict()))
    st.metric("Parameters", f"{sum(r['params'] for r in rows):,}")
    st.caption(f"For {model.num_classes} classes of {model.input_size}x{model.input_size} images.")
    st.dataframe(pd.DataFrame(rows), hide_index=True, height=240)
