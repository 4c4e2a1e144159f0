"""The sidebar every page shares (active dataset and model) and the cached loaders.

Session state keys used here start with `sidebar_`. The dataset and the model are
cached with `st.cache_resource`: one read-only copy shared by every session.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from pathlib import Path

import streamlit as st

from core import data, datastats, evaluate, images, jobs, registry, runs, sort_classes, userdata
from core.errors import CnnError
from ui.text import md, md_sentence

SOURCES = {
    "cifar10": "CIFAR-10 (Keras download)",
    "folder": "Image folder",
    "archive": "CIFAR-10 archive (.tar.gz)",
    "upload": "Your own images (.zip)",
}
# How the pages split a dataset (the Train form's defaults), unless the Evaluate page was
# asked to split it as the active run did (`held_out_split`).
VAL_FRACTION, SPLIT_SEED = 0.1, 0
DEFAULT_SPLIT = (VAL_FRACTION, SPLIT_SEED)
# Streamlit's server enforces only the global `server.maxUploadSize`, raised to the zip
# limit (.streamlit/config.toml); photo uploaders pass this lower per-widget cap so the
# browser still refuses a large photo before sending it, as core.images does after.
PHOTO_UPLOAD_MB = images.MAX_UPLOAD_BYTES // (1024 * 1024)
# How often a page follows a job in another process (a run, a learning-rate test, an int8
# build): each redraw costs the browser CPU that the job, on 2 cores, then lacks. Every
# second, a status line alone took Chromium 0.13 CPU s/s (docs/BENCHMARKS.md session 35).
POLL_EVERY = 2.0
# Settings sit in rows that wrap, each this many CSS pixels wide (`settings_row`): four to
# a row on a wide page, two at 1024 pixels with the sidebar open.
CONTROL = 200
NUMBER = 112  # a short number's or word's: seven to a row on a wide page, four at 1024


def settings_row():
    """A row of settings that wraps, each as wide as its `width=`: a fixed count of columns
    cut labels and values short ("Weight av...", "crossentrop") at 1024 pixels."""
    return st.container(horizontal=True, gap="small")


_script_run = threading.local()  # Streamlit runs each script run in one thread


@contextlib.contextmanager
def routed():
    """Marks this script run as going through app.py's router (see `ensure_routed`)."""
    _script_run.routed = True
    try:
        yield
    finally:
        _script_run.routed = False


def ensure_routed() -> None:
    """Sends a page that Streamlit ran on its own back through app.py's router.

    With a `pages/` folder, a fresh server answers the first deep link (say /evaluate)
    by running that page file alone, Streamlit's old multipage mode, without app.py's
    sidebar and layout. Running app.py from here, in the same script run, routes the
    request like any other (keeping a click that came with it) and turns that mode off.
    """
    import runpy

    if not getattr(_script_run, "routed", False):
        runpy.run_path(str(Path(__file__).resolve().parent.parent / "app.py"))
        st.stop()


def _default_source() -> tuple[str, str]:
    # CNN_DATA lets a machine without internet point the app at a local dataset.
    spec = os.environ.get("CNN_DATA", "")
    if not spec:
        return "cifar10", ""
    return ("archive" if spec.endswith((".tar.gz", ".tgz")) else "folder"), spec


def _init_defaults() -> None:
    kind, path = _default_source()
    st.session_state.setdefault("sidebar_source", kind)
    st.session_state.setdefault("sidebar_path", path)
    st.session_state.setdefault("sidebar_model", "default")


def _apply_pending_source() -> None:
    # A page cannot set a widget's key once the sidebar has drawn it, so it leaves the
    # new source here and reruns; this runs before the selectbox exists.
    pending = st.session_state.pop("sidebar_pending_source", None)
    if pending:
        st.session_state.sidebar_source = pending
    if path := st.session_state.pop("sidebar_pending_path", None):
        st.session_state.sidebar_path = path


def sidebar() -> None:
    """Draws the dataset and model pickers; their values persist across pages."""
    _init_defaults()
    _apply_pending_source()
    with st.sidebar:
        st.subheader("Dataset")
        st.selectbox("Source", list(SOURCES), format_func=SOURCES.get, key="sidebar_source")
        if st.session_state.sidebar_source == "upload":
            _uploaded_caption()
        elif st.session_state.sidebar_source != "cifar10":
            st.text_input(
                "Path",
                key="sidebar_path",
                help="A folder of class subfolders, or cifar-10-python.tar.gz",
            )
        if chosen := chosen_split():
            fraction, seed = chosen
            st.caption(
                f"Split as the run chosen on the Evaluate page: a validation fraction of "
                f"{fraction:g}, seed {seed}."
            )
            st.button(
                f"Back to {VAL_FRACTION:g}, seed {SPLIT_SEED}",
                key="sidebar_default_split",
                on_click=split_as,
                args=(None,),
                help="Every page splits the data as the Train form does by default.",
            )
        st.subheader("Model")
        models = available_models()
        st.session_state[_SIDEBAR_MODELS] = models
        ids = [m["id"] for m in models]
        if st.session_state.sidebar_model not in ids and ids:
            st.session_state.sidebar_model = ids[0]
        labels = {m["id"]: m["label"] for m in models}
        st.selectbox("Active model", ids, format_func=labels.get, key="sidebar_model")


def _uploaded_caption() -> None:
    uploaded = st.session_state.get("sidebar_upload")
    st.caption(f"Using {md(uploaded['name'])}" if uploaded else "Nothing uploaded yet.")
    st.page_link("pages/dataset.py", label="Upload a .zip on the Dataset page")


def keep_keras_between_runs() -> None:
    """Stops Streamlit from clearing Keras's session at the end of every script run.

    Streamlit 1.67 calls `keras.backend.clear_session()` after each run once Keras is
    imported (`script_runner._clean_problem_modules`, for apps that build a model in the
    script body), then closes Matplotlib's figures. Here models are cached resources and
    the sub-models of a page live for one call, so it cleared nothing of ours but cost 250
    ms a rerun (a full garbage collection), emptied TensorFlow's kernel cache (the next
    one-image prediction took 87 ms instead of 8.5) and reset Keras's global state under
    any other session's thread building a model at that moment (docs/BENCHMARKS.md,
    session 21). The replacement only closes the figures. Safe to call on every run.
    """
    from streamlit.runtime.scriptrunner import script_runner

    if getattr(script_runner, "_clean_problem_modules", None) is not _close_figures:
        script_runner._clean_problem_modules = _close_figures


def _close_figures() -> None:
    if plt := sys.modules.get("matplotlib.pyplot"):
        plt.close("all")


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Starts importing Keras and TensorFlow in the background, once per server process.

    Every page that shows a model waits for that import (6 s on this project's 2-core
    machine); a user who reads Home first, as `streamlit run` opens it, finds it done when
    they go on. A page that needs it sooner waits on Python's import lock, no longer than before.
    Home calls this once it is drawn: the import holds the GIL for most of its time and
    slows any page running beside it (the Dataset page after a restart, 8-9 s, took
    12-17 s when app.py started it for every page).
    """
    thread = threading.Thread(
        target=importlib.import_module, args=("core.model",), name="warm-up", daemon=True
    )
    thread.start()
    return thread


def dataset_spec() -> str:
    """The active dataset as `core.data.load_dataset` understands it."""
    _init_defaults()
    if st.session_state.sidebar_source == "cifar10":
        return "cifar10"
    if st.session_state.sidebar_source == "upload":
        return (st.session_state.get("sidebar_upload") or {}).get("path", "")
    return userdata.typed_path(st.session_state.sidebar_path)


def chosen_split() -> tuple[float, int] | None:
    """The validation fraction and seed of a run chosen to split the active dataset as it
    did (`split_as`), or None: the pages split it as the Train form does by default."""
    spec, *chosen = st.session_state.get("sidebar_split") or (None,)
    return tuple(chosen) if chosen and spec == dataset_spec() else None


def held_out_split() -> tuple[float, int]:
    """The validation fraction and seed every page splits the active dataset with."""
    return chosen_split() or DEFAULT_SPLIT


def split_as(split: tuple[float, int] | None) -> None:
    """Has every page split the active dataset with `split`, a run's validation fraction
    and seed, until another dataset is chosen (a button's callback); None for the default."""
    chosen = None if split is None else (float(split[0]), int(split[1]))
    default = chosen in (None, DEFAULT_SPLIT)
    st.session_state["sidebar_split"] = None if default else (dataset_spec(), *chosen)


def _files_key() -> str:
    """The active dataset's spec and, for a folder, its files' signature (looked at every
    30 s at most)."""
    spec = dataset_spec()
    path = Path(spec).expanduser()
    return f"{spec}|{_signature(str(path.resolve()))}" if spec and path.is_dir() else spec


def dataset_key() -> str:
    """The active dataset as the pages' caches know it: its files (`_files_key`), so a
    folder whose files change is loaded again and nothing computed on its old images is
    shown for the new ones, and its split when it is not the default."""
    chosen = chosen_split()
    return _files_key() + ("" if chosen is None else f"|split {chosen[0]:g} {chosen[1]}")


def dataset_ready() -> bool:
    """Whether the sidebar names a dataset that can be loaded without a download."""
    spec = dataset_spec()
    return bool(spec) and (spec != "cifar10" or data.cifar10_cache_path().is_file())


def folder_report(path: str | os.PathLike) -> userdata.FolderReport:
    """The check of an image folder, kept on disk until a file in it changes.

    The first check of a folder reads every file under a progress bar, decoding it for
    `require_dataset` in the same pass (about 8 s for CIFAR-10's 50,000 JPEGs on 2 cores);
    later ones, in this server or the next, read its report.

    Raises:
        DataError: the folder does not exist.
    """
    if not Path(path).expanduser().is_dir():
        return userdata.check_folder(path)  # raises the sentence for a missing folder
    # One kept report per folder however its path is written, as for the decoded images.
    path = str(Path(path).expanduser().resolve())
    signature, slot = _signature(path), _bar_slot()
    report = userdata.saved_check(path, signature)
    if report is None:
        # None for a folder that cannot be loaded: the check reads it alone and says why.
        listing = data.folder_listing(path)
        doing = f"Reading and checking every image of {md(Path(path).name)}"
        note = "once; the result is kept until a file changes"
        with progress_bar(doing, note, slot=slot) as progress:
            report = userdata.check_folder(path, progress=progress, listing=listing)
        userdata.save_check(report, signature)
        if report.ok:  # require_dataset follows, and would list the folder again
            st.session_state[_LISTED] = listing
    return report


def _bar_slot():
    """The place of a progress bar that only a first run draws, kept in every run.

    Streamlit places each element by how many came before it: a bar drawn in one run only
    moves every element below it one place in the next, and while that run draws, the
    page shows those widgets twice (the old one greyed at its old place)."""
    return st.empty()


_LISTED = "_state_listing"  # a listing folder_report made, until the load that follows


@contextlib.contextmanager
def progress_bar(doing: str, note: str, lazy: bool = False, slot=None):
    """Yields a `progress(done, total)` callback drawn as a bar, which goes when done;
    `lazy`: drawn at the first call only, so work that turns out to be kept draws nothing.
    `slot`: the `st.empty()` to draw in, made whether or not there is work (`_bar_slot`)."""
    bar = st.empty() if slot is None else slot
    if not lazy:
        bar.progress(0.0, text=f"{doing}…")

    def progress(done: int, total: int) -> None:
        bar.progress(
            done / total if total else 1.0, text=f"{doing} ({note}): {done:,} of {total:,}"
        )

    try:
        yield progress
    finally:
        bar.empty()


@st.cache_data(ttl=30, show_spinner=False, max_entries=8)
def _signature(path: str) -> str:
    # A stat of every file (0.45 s for 50,000): at most every 30 s, not on every rerun.
    return userdata.folder_signature(path)


@st.cache_data(ttl=30, show_spinner=False, max_entries=4)
def _labels(flat: str) -> sort_classes.Labels | None:
    # A listing and maybe a CSV read (0.4 s for 50,000 pictures): at most every 30 s too.
    return sort_classes.labels_of(flat)


def _look_again() -> None:
    _signature.clear()
    _labels.clear()


def folder_buttons(spec: str) -> None:
    """Under a folder's problems, side by side: a button that looks at its files now, for a
    user who has just mended them (the pages notice a change by themselves within 30 s);
    and, when its pictures (or its train/'s) have their classes in their names or a CSV
    (`core.sort_classes`: cat.0.jpg, dog.0.jpg; train.csv), one that sorts them into a folder per
    class beside it (hard links: no space taken) and makes that the dataset."""
    row = st.container(horizontal=True)
    row.button(
        "Check the folder again",
        key="dataset_check_again",
        on_click=_look_again,
        help="Once you have changed its files; the pages also notice a change within 30 s.",
    )
    path = Path(spec).expanduser()
    flat = path / "train" if (path / "train").is_dir() else path
    if (labels := _labels(str(flat))) is None:
        return
    target = sort_classes.sorted_folder(flat)
    if not row.button(
        "Sort them into class folders",
        key="dataset_sort_into_classes",
        type="primary",
        help=f"Makes {target}: a folder per class, holding links to the pictures (they take "
        "no space; copies where links cannot be made), and makes it the dataset. Your "
        "folder stays as it is.",
    ):
        return
    if not target.is_dir():  # sorted before: used as it is
        bar = st.progress(0.0, text="Sorting the pictures by class…")
        try:
            sort_classes.sort_into_classes(flat, lambda d, t: bar.progress(d / t), labels)
        except CnnError as err:
            st.error(md_sentence(err))
            return
    st.session_state["sidebar_pending_source"] = "folder"
    st.session_state["sidebar_pending_path"] = str(target)
    st.rerun()


def take_zip_upload(upload) -> str | None:
    """Unpacks and checks a newly uploaded zip; a usable one becomes the active dataset.

    Each upload is handled once (by its file id); on success the session switches to it
    and the script reruns, so the sidebar shows the new source.

    Args:
        upload: the zip uploader's value, a Streamlit `UploadedFile` or None.

    Returns:
        The sentence that explains why the current upload cannot be used, or None.
    """
    if upload is None:
        return None
    if st.session_state.get("dataset_zip_seen") != upload.file_id:
        st.session_state["dataset_zip_seen"] = upload.file_id
        st.session_state["dataset_zip_error"] = _unpack(upload)
        if st.session_state["dataset_zip_error"] is None:
            st.rerun()
    return st.session_state.get("dataset_zip_error")


def _unpack(upload) -> str | None:
    try:
        with st.spinner(f"Unpacking {md(upload.name)}…"):
            folder = userdata.extract_zip(upload, name=upload.name)
        report = folder_report(folder)
    except CnnError as err:
        return str(err)
    if not report.ok:
        return f"{upload.name} cannot be used: {' '.join(report.problems)}"
    st.session_state["sidebar_upload"] = {"path": str(folder), "name": upload.name}
    st.session_state["sidebar_pending_source"] = "upload"
    return None


@st.cache_resource(show_spinner="Loading the dataset…", max_entries=3)
def _load(
    key: str,
    spec: str,
    val_fraction: float,
    seed: int,
    image_size: int = 32,
    _listing=None,
    fit: str = "squash",
) -> data.Dataset:
    return data.load_dataset(
        spec, image_size=image_size, val_fraction=val_fraction, seed=seed, listing=_listing, fit=fit
    )


def _offer_cifar_download() -> bool:
    """Returns True once the archive is in Keras's cache; asks before the 163 MB transfer."""
    if data.cifar10_cache_path().is_file():
        return True
    st.warning(
        f"CIFAR-10 is not on this machine yet: loading it downloads about "
        f"{data.CIFAR10_DOWNLOAD_MB} MB from the University of Toronto. Without internet, "
        "choose an image folder or a local archive in the sidebar instead."
    )
    if not st.button("Download CIFAR-10", key="sidebar_download"):
        return False
    bar = st.progress(0.0, text="Downloading CIFAR-10…")
    try:
        data.download_cifar10(progress=lambda f: bar.progress(f, text=f"Downloading… {f:.0%}"))
    except CnnError as err:
        bar.empty()  # not a transfer stuck at some per cent
        st.error(md_sentence(err))
        return False
    return True


def require_dataset(image_size: int = 32, fit: str = "squash") -> data.Dataset:
    """Returns the active dataset at `image_size` pixels, or explains and stops the page.

    Pages that feed a model pass its input size and how its run made a folder's pictures
    square (`core.registry.trained_fit`), so a 64- or 96-pixel model, or one that learnt
    from centre squares, sees images made as it learnt from them, once, from the originals
    (a folder's files, CIFAR's 32-pixel arrays).
    """
    spec = dataset_spec()
    if not spec and st.session_state.sidebar_source == "upload":
        st.info("No images uploaded yet: upload a .zip of class folders on the Dataset page.")
        st.stop()
    if not spec:
        st.info("Choose a dataset in the sidebar: a folder path or a CIFAR-10 archive.")
        st.stop()
    if spec == "cifar10" and not _offer_cifar_download():
        st.stop()
    try:
        listing = _decode_with_progress(_files_key(), spec, image_size, fit)
        # A folder changed since its last load is loaded again.
        return _load(dataset_key(), spec, *held_out_split(), image_size, listing, fit)
    except CnnError as err:
        st.error(md_sentence(err))
        if Path(spec).expanduser().is_dir():  # its signature is what is kept
            folder_buttons(spec)
        st.stop()


def decode_folder(image_size: int, fit: str) -> None:
    """Decodes the active image folder at `image_size`, made square by `fit`, into the disk
    cache under a progress bar here, when it is not there yet: a run, learning-rate test,
    time estimate or search started next then finds it decoded, where its own process would
    decode it with nothing to show but "starting" (a folder of photos: minutes). Nothing to
    do for CIFAR-10 sources, or a folder decoded at that size and fit before.

    Raises:
        CnnError: the folder cannot be read (`core.data.load_image_folder`'s reasons).
    """
    spec = dataset_spec()
    if spec and Path(spec).expanduser().is_dir():
        _decode_with_progress(_files_key(), spec, image_size, fit)


@st.cache_resource(show_spinner=False)
def _kept_on_disk() -> set:
    """Keys of slow first steps (decoding a folder, predicting a split) that this server
    has done or found done in the disk cache: each is looked for there once."""
    return set()


def _decode_with_progress(
    key: str, spec: str, image_size: int, fit: str = "squash"
) -> data.FolderListing | None:
    """Decodes a folder not in the disk cache yet under a progress bar, not a spinner.

    The first load of CIFAR-10's 50,000 JPEGs takes about 8 s on 2 cores. `_load` cannot draw
    the bar itself (a cached function may not update elements made outside it), so the
    folder is decoded into the disk cache here first, and `_load` then reads it in a
    second or two. Looked at once per folder, size and fit: the listing stats every file, and
    is returned for `_load` to use rather than list the folder again. `key`: the folder's
    `_files_key`, which a change to its files changes.
    """
    seen, key, slot = _kept_on_disk(), ("folder", key, image_size, fit), _bar_slot()
    listing = st.session_state.pop(_LISTED, None)  # folder_report's, when it just checked
    if key in seen:
        return None
    if listing is None or not listing.describes(spec, image_size, fit):
        listing = data.folder_listing(spec, image_size, fit=fit)
    if listing is not None and not listing.cached():
        doing = f"Reading the images of {md(Path(spec).expanduser().name)}"
        note = "once; later visits load them from the cache"
        with progress_bar(doing, note, slot=slot) as progress:
            data.load_image_folder(spec, image_size, progress=progress, listing=listing, fit=fit)
    seen.add(key)
    return listing


def predict_with_progress(entry: dict, model, images, tta: str, what: tuple) -> None:
    """Predicts `images` into the disk cache under a progress bar, unless kept there.

    Like `_decode_with_progress`, for `evaluate.kept_probs`: a cached page function that
    calls it then reads the probabilities from disk. Looked for once per model version,
    `tta` and `what` (a tuple naming the images, e.g. the dataset and split).
    """
    doing = f"Classifying {len(images):,} images"
    doing += "" if tta == "none" else f" with {tta} test-time augmentation"
    _keep_with_progress(
        ("probs", tta, *what, entry["path"], registry.model_version(entry["path"])),
        lambda: evaluate.probs_are_kept(entry["path"], images, tta),
        lambda progress: evaluate.kept_probs(model, entry["path"], images, tta, progress=progress),
        doing,
    )


def space_with_progress(entry: dict, model, images, what: tuple) -> None:
    """`predict_with_progress` for `evaluate.kept_space`. The prediction keeps the space in
    passing; this computes it for probabilities kept before it did."""
    from core.inspect import SPACE_LIMIT

    _keep_with_progress(
        ("space", *what, entry["path"], registry.model_version(entry["path"])),
        lambda: evaluate.space_is_kept(entry["path"], images),
        lambda progress: evaluate.kept_space(model, entry["path"], images, progress=progress),
        f"Reading the features of {min(len(images), SPACE_LIMIT):,} images",
    )


def novelty_with_progress(entry: dict, check, images, what: tuple) -> None:
    """`predict_with_progress` for `evaluate.kept_novelty`."""
    _keep_with_progress(
        ("novelty", *what, entry["path"], registry.model_version(entry["path"]), check.threshold),
        lambda: evaluate.novelty_is_kept(check, entry["path"], images),
        lambda progress: evaluate.kept_novelty(check, entry["path"], images, progress=progress),
        f"Measuring how typical {len(images):,} images are",
    )


def kept_or_button(
    memory: dict, key: tuple, kept, work, button: tuple[str, str], doing: str, note: str
):
    """Slow work a page starts on a button and keeps: `memory[key]` (the session's), else
    what the disk keeps (`kept()`, looked for once a session per `key`), else the button
    (`button`: label, widget key), whose click runs `work(progress)` under a progress bar,
    keeps its result (unless None) and reruns the page without the button.

    Returns:
        The result, or None while there is none (the button is drawn).
    """
    if key not in memory:
        memory[key] = kept()
    if memory[key] is not None:
        return memory[key]
    if not st.button(button[0], key=button[1]):
        return None
    with progress_bar(doing, note) as progress:
        result = work(progress)
    if result is None:
        return None
    memory[key] = result
    st.rerun()


def _keep_with_progress(key: tuple, kept, work, doing: str) -> None:
    """Calls `work(progress)` under a progress bar unless `kept()`; asks once per `key`."""
    seen, slot = _kept_on_disk(), _bar_slot()
    if key in seen:
        return
    if not kept():
        note = "once; kept until the model or the images change"
        with progress_bar(doing, note, slot=slot) as progress:
            work(progress)
    seen.add(key)


_SIDEBAR_MODELS = "_sidebar_models"  # the models the sidebar listed in this run


@st.cache_resource(max_entries=4, show_spinner=False)
def _available_models(runs_dir: str, signature: str) -> list[dict]:
    return registry.available_models(runs_dir)


def available_models() -> list[dict]:
    """`registry.available_models`, read again only when a file it reads has changed.

    Every page's sidebar asks, and reading costs four JSON files per run: a page with 300
    runs took a quarter of a second per rerun. The entries are shared by every session:
    read them, never change them.
    """
    runs_dir = str(runs.default_runs_dir())
    return _available_models(runs_dir, registry.models_signature(runs_dir))


@st.cache_resource(max_entries=4, show_spinner=False)
def _run_rows(runs_dir: str, signature: str) -> list[dict]:
    return jobs.list_runs(runs_dir)


def runs_signature() -> str:
    """`core.jobs.runs_signature` of the runs folder: it changes with the files runs list."""
    return jobs.runs_signature(runs.default_runs_dir())


def run_rows(signature: str | None = None) -> list[dict]:
    """`core.jobs.list_runs`, each finished run's row read again only when its files change.
    `signature`: `runs_signature()` if the caller has just read it.

    The Train page's table reads five files per run on every rerun (about 100 ms for 300
    runs). The rows are shared by every session: read them, never change them.
    """
    runs_dir = str(runs.default_runs_dir())
    return jobs.refreshed(_run_rows(runs_dir, signature or jobs.runs_signature(runs_dir)))


def active_model_entry() -> dict | None:
    _init_defaults()
    # The sidebar, drawn first in every run, has just listed them.
    models = {m["id"]: m for m in st.session_state.get(_SIDEBAR_MODELS) or available_models()}
    return models.get(st.session_state.sidebar_model) or next(iter(models.values()), None)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(path: str, version: int):
    from core.model import load_model

    # Loaded completely before it is cached: no session ever sees a half-built model.
    return load_model(path)


@st.cache_resource(show_spinner="Loading the int8 copy…", max_entries=4)
def _checked_int8(model_path: str, version: int, record_version: int, copy_version: int, _record):
    from core import quantize

    return quantize.checked_copy(model_path, _record)  # asks it 32 pictures: once per copy


@st.cache_data(max_entries=16, show_spinner=False)
def _int8_record(model_path: str, version: int, record_version: int, copy_version: int):
    from core import quantize

    return quantize.read_record(model_path)  # hashes both files: once per version


def _versioned_int8_record(entry: dict) -> tuple[dict | None, tuple]:
    from core import quantize

    try:
        record_version = registry.model_version(quantize.record_path(entry["path"]))
        copy_version = registry.model_version(quantize.int8_path(entry["path"]))
    except OSError:
        return None, ()  # none yet: the Evaluate page or `python -m core.quantize` writes one
    versions = (registry.model_version(entry["path"]), record_version, copy_version)
    return _int8_record(entry["path"], *versions), versions


def int8_record(entry: dict) -> dict | None:
    """The record (`int8.json`) of the entry's current int8 copy, or None without one."""
    return _versioned_int8_record(entry)[0]


def int8_engine(entry: dict):
    """Returns `(Int8Model, its check record)` for a model with a current int8 copy,
    `(None, None)` otherwise; a copy that cannot be loaded is said, not fatal."""

    record, versions = _versioned_int8_record(entry)
    if record is None:
        return None, None
    engine, record, why = _checked_int8(entry["path"], *versions, record)
    if why:
        st.warning(md_sentence(why))
    return engine, record


def _int8_refusal() -> str | None:
    """Why no int8 copy can be built here from the sidebar's dataset, or None."""
    from core import export

    if reason := export.onnx_unavailable_reason():
        return reason
    if not dataset_spec():
        return "Choose the model's data in the sidebar: the copy is calibrated on its images."
    return None


def int8_build(entry: dict, label: str, key: str) -> None:
    """Offers to build the entry's int8 copy from the sidebar's dataset, in a process of
    its own (`core.builds`), or says why it cannot; while it builds, its steps and a Stop
    button, polled."""
    from core import builds

    current = builds.status(entry["path"]) or {}
    if current.get("state") == "building":
        st.fragment(_int8_build_progress, run_every=POLL_EVERY)(entry["path"], key)
        return
    if current.get("state") == "failed":
        st.error(f"The last int8 build failed: {md_sentence(current['message'])}")
    elif current.get("state") == "stopped":
        st.caption("The last int8 build was stopped; nothing it wrote is used.")
    refusal = _int8_refusal()
    if refusal:
        st.info(md_sentence(refusal))
    if st.button(label, key=key, disabled=bool(refusal)):
        try:
            builds.launch(entry["path"], dataset_spec())
        except CnnError as err:
            st.error(md_sentence(err))
            return
        st.rerun()  # its progress


def _int8_build_progress(model_path: str, key: str) -> None:
    from core import builds

    current = builds.status(model_path)
    if current is None or current["state"] != "building":
        st.rerun()  # it ended: the copy's figures (and the Classify toggle), or why not
    st.caption(
        f"Building the int8 copy in its own process ({jobs.clock(current['seconds'])}): "
        "leaving this page does not stop it."
    )
    lines = "\n".join(current["lines"][-8:]) or "Starting: loading TensorFlow…"
    st.code(lines, language=None, wrap_lines=True)
    if st.button("Stop the build", key=f"{key}_stop"):
        builds.stop(model_path)
        st.rerun()


@st.cache_data(max_entries=4, show_spinner=False)
@st.cache_resource(show_spinner=False, max_entries=4)
def _novelty(path: str, version: int, model_path: str, model_version: int, _model):
    from core import novelty

    return novelty.load(path, _model, model_path)


def novelty_check(entry: dict, model):
    """The check for unfamiliar pictures (`core.novelty`) of `model`, or None without one.

    `model`: the entry's float model, or its int8 copy (`int8_engine`), which has its own,
    fitted on its own channel means (`core.quantize`).
    """
    from core import novelty, quantize

    if isinstance(model, quantize.Int8Model):
        path, model_path = quantize.novelty_path(entry["path"]), str(model.path)
    else:
        path, model_path = Path(entry["path"]).parent / novelty.FILE, entry["path"]
    try:
        version = registry.model_version(path)
    except OSError:
        # None yet: a completed run, `core.registry novelty` or `core.quantize` writes one.
        return None
    return _novelty(str(path), version, model_path, registry.model_version(model_path), model)


def require_model():
    """Returns `(model, entry)` for the active model, or explains and stops the page."""
    entry = active_model_entry()
    if entry is None:
        st.info("No model yet: train one on the Train page.")
        st.stop()
    model = model_of(entry)
    if model is None:
        st.stop()
    return model, entry


def other_models(entry: dict, class_names: list[str], image_size: int) -> list[dict]:
    """The sidebar's models other than `entry` for these classes and image size: the ones
    a page can set beside it on the same images."""
    fitting = registry.models_for(available_models(), class_names, image_size)
    return [m for m in fitting if m["path"] != entry["path"]]


def model_of(entry: dict):
    """The loaded model of a `registry.available_models` entry, or None after saying why."""
    try:
        return _model(entry["path"], registry.model_version(entry["path"]))
    except (CnnError, OSError) as err:
        st.error(f"The model {md(entry['label'])} cannot be used: {md_sentence(err)}")
        return None


@st.cache_data(max_entries=128, show_spinner=False)
def _grad_cam_overlay(model_path: str, version: int, pixels, class_index: int, scale: int, _model):
    from core.inspect import grad_cam, overlay

    heat, _, _ = grad_cam(_model, pixels, class_index=class_index)
    return datastats.enlarge(overlay(pixels, heat), scale), bool(heat.max() > 0)


def grad_cam_view(entry: dict, model, pixels, class_index: int, scale: int = 5):
    """Returns `(overlay, found)`: the model's Grad-CAM for one class over an image at the
    model's size, enlarged `scale` times, and whether anything in the image argues for
    that class. Computed once per image, model and class (an eager gradient pass, 30-50 ms
    an image here), not on every rerun."""
    version = registry.model_version(entry["path"])
    return _grad_cam_overlay(entry["path"], version, pixels, class_index, scale, model)


EVIDENCE_METHODS = ["Grad-CAM", "Occlusion"]


def evidence_method(where, key: str, label: str = "Evidence by", horizontal: bool = True) -> str:
    """The choice between Grad-CAM and occlusion (`EVIDENCE_METHODS`) in `where`."""
    return where.radio(
        label,
        EVIDENCE_METHODS,
        horizontal=horizontal,
        key=key,
        help="Grad-CAM reads the last convolution's gradients (one pass). Occlusion hides "
        "each part of the image in turn and watches the answer change (169 passes): slower, "
        "sharper, and it also shows what argues against a class.",
    )


@st.cache_data(max_entries=64, show_spinner="Hiding parts of the image…")
def _occlusions(model_path: str, version: int, pixels, temperature: float, _model):
    from core.inspect import occlusions

    return occlusions(_model, pixels, temperature)


def occlusions(entry: dict, model, pixels) -> list:
    """`core.inspect.occlusions` of an image, after the model card's temperature (as the
    Classify page shows probabilities): one per class, computed once per image and model
    (169 hidden copies, about 0.25 s an image for the shipped model here)."""
    version = registry.model_version(entry["path"])
    return _occlusions(entry["path"], version, pixels, registry.temperature(entry), model)


def open_probe(ds: data.Dataset, split: str, index: int, target: str, pixels=None) -> None:
    """Hands one image of a split to another page (`pages/filters.py`, `pages/classify.py`,
    where it stays until cleared) and goes there: its `pixels` as the page showed them
    (the Dataset page's cropped pictures), else as `ds` holds them."""
    x, y = ds.split(split)
    label = int(y[index])
    st.session_state["probe"] = {
        "pixels": (x[index] if pixels is None else pixels).copy(),
        "caption": ds.image_name(split, index),
        "label": label,
    }
    st.switch_page(target)


TTA_LABELS = {"none": "None", "flip": "Flip", "flip+shift": "Flip and shift"}
FIT_LABELS = {  # `TrainConfig.fit` as the Train, Dataset and Augmentations pages offer it
    "squash": "Squashed whole (Keras's default)",
    "crop": "Cropped to their centre square",
}


def fit_select(where, ds: data.Dataset, key: str, why: str, width="stretch") -> str:
    """The "Pictures that are not square" choice (a key of `FIT_LABELS`) in `where`, a
    container or `st`, asked only of an image folder some of whose training pictures are
    not square; "squash" otherwise (CIFAR-10's are all square). `why`: its help, after
    the share of such pictures."""
    share = ds.summary()["not_square"]
    if not ds.files or not share:
        return "squash"
    return where.selectbox(
        "Pictures that are not square",
        list(FIT_LABELS),
        format_func=FIT_LABELS.get,
        key=key,
        width=width,
        help=f"{share:.0%} of this dataset's training pictures are not square. {why}",
    )


def framed(ds: data.Dataset, split: str, rows, fit: str) -> list:
    """Images `rows` of a split of the active dataset with its pictures that are not square
    made square by `fit`: as `ds` holds them (squashed) where that is the same, read again
    from their files otherwise (`core.data.decode_framed`, kept for the next reruns)."""
    x = ds.split(split)[0]
    shown = [x[i] for i in rows]
    if fit == "squash":
        return shown
    again = [k for k, (w, h, _) in enumerate(ds.stored[split][rows]) if w != h]
    root = Path(dataset_spec()).expanduser()  # the folder: `files` are relative to it
    paths = tuple(str(root / ds.files[split][rows[k]]) for k in again)
    for k, image in zip(again, _decode_framed(paths, ds.image_size, fit), strict=True):
        if image is not None:  # a file that no longer decodes keeps its squashed picture
            shown[k] = image
    return shown


@st.cache_data(show_spinner="Reading the pictures again…", max_entries=16)
def _decode_framed(paths: tuple[str, ...], size: int, fit: str) -> list:
    return data.decode_framed(paths, size, fit)


def split_name(ds: data.Dataset):
    """A split picker's `format_func`: "val" named with its folder when the data has its own
    validation folder ("val (valid/)"), the others as they are."""
    own = f" ({ds.val_folder}/)" if ds.val_folder else ""
    return lambda split: split + own if split == "val" else split


def tta_select(where, key: str, width: int | str = "stretch") -> str:
    """The "Test-time augmentation" choice (a key of `core.evaluate.TTA_MODES`) in `where`,
    a container or `st`, `width` pixels wide or as wide as it."""
    from core.evaluate import TTA_MODES

    return where.selectbox(
        "Test-time augmentation",
        list(TTA_MODES),
        key=key,
        width=width,
        format_func=TTA_LABELS.get,
        help="Average each prediction over several views of the image. "
        + " ".join(f"**{TTA_LABELS[k]}**: {v}." for k, v in TTA_MODES.items() if k != "none")
        + " Costs 2 or 6 forward passes per image.",
    )
