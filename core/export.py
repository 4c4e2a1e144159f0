"""Exports a trained model for other runtimes, each export checked against Keras.

python -m core.export RUN_OR_MODEL --format keras|savedmodel|tflite|onnx|onnx-int8|all [--out DIR]

Every export lands in `<run>/exports/<fmt>/` beside an `export.json` record, and is only
published there after it was loaded back with its own runtime and its probabilities
matched the Keras model's on a fixed batch of images. The shipped default model is
read-only: its exports go to `<runs>/default-model/exports/`.

`onnx-int8` publishes the model's int8 copy (`core.quantize`, which checked it against the
float model on its validation split when it built it). Its answers differ from Keras's by
design, so it is checked against its own: its answers here to the fixed pictures its
record holds must be those it gave where it was built.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from string import Template

import numpy as np

from core import registry, runs
from core.data import CIFAR10_CLASSES
from core.errors import CnnError
from core.fileio import atomic_write_json, file_sha256, read_json, replace_dir
from core.model import float32_copy, is_bfloat16, load_model

FORMATS = ("keras", "savedmodel", "tflite", "onnx")  # the model itself, matching Keras
INT8 = "onnx-int8"  # its int8 copy, where it has one
ALL_FORMATS = (*FORMATS, INT8)
FORMAT_LABELS = {
    "keras": "Keras (.keras)",
    "savedmodel": "TensorFlow SavedModel",
    "tflite": "TensorFlow Lite / LiteRT (.tflite)",
    "onnx": "ONNX (.onnx)",
    INT8: "ONNX int8 (.onnx, the int8 copy)",
}
ARTIFACTS = {
    "keras": "model.keras",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "onnx": "model.onnx",
    INT8: "model.int8.onnx",
}
VERIFY_IMAGES, VERIFY_SEED = 16, 0
# Largest allowed |p_export - p_keras| over the check batch's probabilities. Float32
# exports run the same arithmetic in another order (XNNPACK, ONNX Runtime kernels):
# measured 4.2e-7 (TFLite) and 2.4e-7 (ONNX) on the shipped model, so 1e-5 leaves room
# without letting a wrong weight through.
FLOAT32_TOLERANCE = 1e-5
# mixed_bfloat16 models: the SavedModel runs bf16 with other kernels than eager Keras
# (measured 2.0e-3 on a trained `fast` run). TFLite and ONNX get a float32 copy of the
# weights, since neither runs these layers in bf16: that conversion must match the copy
# within FLOAT32_TOLERANCE, and the copy differs from the bf16 original by the original's
# own rounding (measured 4.2e-3 on the `fast` run; 2.0e-2 on a test model with logits
# scaled up 30 times). A different model differs by tenths.
BFLOAT16_TOLERANCE = 5e-2
# Pinned in requirements.txt; named in the sentence shown when they are missing.
ONNX_PACKAGES = ("tf2onnx", "onnxruntime")
LITERT_PACKAGE = "ai-edge-litert"


class ExportError(CnnError):
    """An export cannot be written, loaded back, or does not match the Keras model."""


@dataclass
class ExportResult:
    """What one export wrote and how closely it matched the Keras model.

    Attributes:
        format: one of `ALL_FORMATS`.
        path: the artifact: a file, or the SavedModel folder.
        size_bytes: its size on disk (a folder's files added up).
        max_abs_diff: largest |probability difference| to Keras on the check batch (for
            `INT8`: to the copy's own answers where it was built).
        tolerance: the allowed difference (`FLOAT32_TOLERANCE`, `BFLOAT16_TOLERANCE`, or
            `core.quantize.PROBE_TOLERANCE`).
        seconds: time to write and check it.
        images: how many images the check used.
        runtime: the runtime that loaded it back, with its version.
        note: anything a user should know (e.g. a float32 copy of a bf16 model).
    """

    format: str
    path: Path
    size_bytes: int
    max_abs_diff: float
    tolerance: float
    seconds: float
    images: int = VERIFY_IMAGES
    runtime: str = ""
    note: str = ""
    against: str = "Keras"

    def summary(self) -> str:
        """One line for the terminal and the page."""
        return (
            f"{self.format}: {self.path} ({human_size(self.size_bytes)}), max difference to "
            f"{self.against} {self.max_abs_diff:.2e} on {self.images} images (tolerance "
            f"{self.tolerance:.0e}), {self.seconds:.1f} s"
        )


# --- where models come from and where exports go -----------------------------------------


def resolve_source(target: str | os.PathLike) -> Path:
    """Returns the `.keras` file meant by a run name, a run folder, a file, or "default".

    Args:
        target: "default" (the shipped model), the name of a run in the runs folder, a run
            folder, or a `.keras` file.

    Returns:
        The path of an existing `.keras` file.

    Raises:
        ExportError: nothing loadable is there.
    """
    text = str(target)
    if text == "default":
        return registry.default_model_path()
    path = Path(text)
    if path.is_dir() and (path / "model.keras").is_file():
        return path / "model.keras"
    if path.is_file():
        if path.suffix != ".keras":
            raise ExportError(f"{path.name} is not a .keras model file.")
        return path
    if not path.exists() and len(path.parts) == 1:
        try:
            run_dir = runs.run_path(text)
        except CnnError as err:
            raise ExportError(str(err)) from err
        if (run_dir / "model.keras").is_file():
            return run_dir / "model.keras"
    raise ExportError(
        f"There is no model at '{text[:80]}': give a run name, a run folder, "
        "a .keras file, or 'default' for the shipped model."
    )


def default_export_dir(model_path: str | os.PathLike) -> Path:
    """Returns `exports/` beside the model, or in the runs folder for the shipped model."""
    model_path = Path(model_path).resolve()
    if model_path.parent == registry.DEFAULT_MODEL_DIR.resolve():
        return runs.default_runs_dir() / "default-model" / "exports"
    return model_path.parent / "exports"


# --- checking an export ------------------------------------------------------------------


def check_images(size: int, count: int = VERIFY_IMAGES, seed: int = VERIFY_SEED) -> np.ndarray:
    """The fixed check batch: seeded random uint8-valued pixels as float32 `(count, S, S, 3)`."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size, 3)).astype(np.float32)


def tolerance_for(model) -> float:
    return BFLOAT16_TOLERANCE if is_bfloat16(model) else FLOAT32_TOLERANCE


def run_export(fmt: str, path: str | os.PathLike, images: np.ndarray) -> np.ndarray:
    """Runs an exported model with its own runtime.

    Args:
        fmt: one of `ALL_FORMATS`.
        path: the artifact `export_model` wrote.
        images: float32 `(N, S, S, 3)` with values 0..255.

    Returns:
        float32 `(N, num_classes)` probabilities.

    Raises:
        ExportError: the artifact cannot be loaded or run.
    """
    try:
        return np.asarray(_RUNNERS[fmt](str(path), images), np.float32)
    except CnnError:
        raise
    except Exception as err:  # each runtime raises its own types for a damaged file
        raise ExportError(
            f"The {FORMAT_LABELS[fmt]} export {Path(path).name} could not be loaded and run: "
            f"{_first_line(err)}"
        ) from err


def verify_export(fmt: str, path: str | os.PathLike, model, tolerance: float | None = None):
    """Checks that an export gives the Keras model's probabilities on the check batch.

    Args:
        fmt: one of `FORMATS`.
        path: the artifact.
        model: the Keras model it must match.
        tolerance: the allowed largest difference; default `tolerance_for(model)`.

    Returns:
        The largest absolute probability difference, a float.

    Raises:
        ExportError: it cannot be run, or it differs by more than the tolerance.
    """
    tolerance = tolerance_for(model) if tolerance is None else tolerance
    images = check_images(int(model.input_shape[1]))
    expected = np.asarray(model(images, training=False), np.float32)
    got = run_export(fmt, path, images)
    if got.shape != expected.shape:
        raise ExportError(
            f"The {FORMAT_LABELS[fmt]} export returns shape {got.shape}, "
            f"but the Keras model returns {expected.shape}."
        )
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= tolerance:  # also catches NaN
        raise ExportError(
            f"The {FORMAT_LABELS[fmt]} export does not match the Keras model: its "
            f"probabilities differ by up to {diff:.2e} (allowed {tolerance:.0e})."
        )
    return diff


def _run_keras(path: str, images):
    import keras

    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return model(images, training=False)


def _run_savedmodel(path: str, images):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)  # keep it: `serve` needs its variables alive
    return loaded.serve(tf.constant(images)).numpy()


def _run_tflite(path: str, images):
    interpreter = _tflite_interpreter(path)
    inp = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _run_onnx(path: str, images):
    ort = _import_onnx()[1]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


_RUNNERS = {
    "keras": _run_keras,
    "savedmodel": _run_savedmodel,
    "tflite": _run_tflite,
    "onnx": _run_onnx,
    INT8: _run_onnx,  # its first output is the probabilities; channel means follow
}


def _check_against_keras(fmt: str, artifact: Path, model, model_path: Path, note: str) -> dict:
    """Checks a float export against the Keras model; `note` from its writer says it was
    written from a float32 copy of a bf16 model, which it must then match exactly too.

    Returns:
        The `ExportResult` fields of the check.
    """
    if note:
        verify_export(fmt, artifact, float32_copy(model), FLOAT32_TOLERANCE)
    return {"max_abs_diff": verify_export(fmt, artifact, model), "tolerance": tolerance_for(model)}


def _check_int8(fmt: str, artifact: Path, model, model_path: Path, note: str) -> dict:
    """Checks an int8 export against the record `_write_int8` put beside it: its answers
    here to the record's fixed pictures must be those it gave where it was built.

    Returns:
        The `ExportResult` fields of the check.

    Raises:
        ExportError: it cannot be run, its record has no such answers, or they differ
            by more than `core.quantize.PROBE_TOLERANCE`.
    """
    from core import quantize

    record = read_json(artifact.with_name(quantize.RECORD_FILE), {}) or {}
    if "probe_probs" not in record:
        raise ExportError(
            "The int8 copy's record holds no answers to check the export against: build the "
            "copy again (`python -m core.quantize`)."
        )
    pictures = quantize.probe_images(int(model.input_shape[1])).astype(np.float32)
    diff = quantize.probe_gap(run_export(fmt, artifact, pictures), record)
    if not diff <= quantize.PROBE_TOLERANCE:
        raise ExportError(
            f"The {FORMAT_LABELS[fmt]} export does not answer as the copy did where it was "
            f"built: its probabilities differ by up to {diff:.2e} (allowed "
            f"{quantize.PROBE_TOLERANCE:.0e})."
        )
    return {
        "max_abs_diff": diff,
        "tolerance": quantize.PROBE_TOLERANCE,
        "images": quantize.PROBE_IMAGES,
        "against": "its answers where it was built",
    }


_CHECKS = {fmt: _check_against_keras for fmt in FORMATS} | {INT8: _check_int8}


def _tflite_interpreter(path: str):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=path)


# --- optional runtimes -------------------------------------------------------------------


NO_INT8_COPY = (
    "This model has no int8 copy yet: build one in the Evaluate page's \"Fast int8 answers "
    'for the Classify page" section, or with `python -m core.quantize <run> --data <its data>`.'
)


def onnx_unavailable_reason() -> str | None:
    """Returns why ONNX export cannot run here, as a sentence, or None when it can."""
    try:
        _import_onnx()
    except ExportError as err:
        return str(err)
    return None


def _import_onnx():
    try:
        import onnxruntime
        import tf2onnx
    except Exception as err:  # a broken install fails with more than ImportError
        raise ExportError(
            "ONNX export is unavailable here: the converter and runtime packages "
            f"({' and '.join(ONNX_PACKAGES)}) could not be imported ({err}). Install them "
            "with `pip install -r requirements.txt`, or choose another format."
        ) from err
    return tf2onnx, onnxruntime


def runtime_version(fmt: str) -> str:
    """The runtime that loads `fmt` back, with its version, e.g. "onnxruntime 1.23.2"."""
    from importlib.metadata import PackageNotFoundError, version

    # TensorFlow is one of two packages: its CPU build (requirements.txt) or the CUDA one.
    packages = {
        "keras": ["keras"],
        "savedmodel": ["tensorflow-cpu", "tensorflow"],
        "tflite": [LITERT_PACKAGE],
        "onnx": ["onnxruntime"],
        INT8: ["onnxruntime"],
    }[fmt]
    name = packages[-1]
    for package in packages:
        try:
            return f"{name} {version(package)}"
        except PackageNotFoundError:
            continue
    return f"{name} (not installed)"


# --- writing an export -------------------------------------------------------------------


def _write_keras(model, source: Path, target: Path) -> str:
    shutil.copyfile(source, target)
    return ""


def _write_savedmodel(model, source: Path, target: Path) -> str:
    model.export(str(target), format="tf_saved_model", verbose=False)
    return ""


def _write_tflite(model, source: Path, target: Path) -> str:
    import tensorflow as tf

    # TFLite has no bf16 kernels for these layers: a bf16 model goes as its float32 copy.
    exported = float32_copy(model) if is_bfloat16(model) else model
    with tempfile.TemporaryDirectory() as tmp:
        exported.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        # Built-in ops only: the file then runs on the plain LiteRT interpreter, with no
        # TensorFlow "flex" delegate, on a phone as here.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        target.write_bytes(converter.convert())
    return _bf16_note(model)


def _write_onnx(model, source: Path, target: Path) -> str:
    write_onnx(model, target)
    return _bf16_note(model)


def write_onnx(model, target: str | os.PathLike) -> None:
    """Writes `model` as a float32 ONNX file (tf2onnx), exact GELU written with `Erf`.

    Raises:
        ExportError: tf2onnx or onnxruntime is not installed.
    """
    _import_onnx()
    exported = float32_copy(model, gelu_as_erf=True)
    exported(check_images(int(model.input_shape[1]), 1))  # tf2onnx wants a model once called
    with warnings.catch_warnings():  # Keras's numpy-2 patch of tf2onnx warns about itself
        warnings.simplefilter("ignore", FutureWarning)
        exported.export(str(target), format="onnx", verbose=False)


def _write_int8(model, source: Path, target: Path) -> str:
    from core import quantize

    record = quantize.read_record(source)  # current: its hashes match both files
    if record is None:
        raise ExportError(NO_INT8_COPY)
    shutil.copyfile(quantize.int8_path(source), target)
    copied = file_sha256(target)
    if record.get("int8_sha256", copied) != copied:
        raise ExportError("The int8 copy was built again while it was exported: export it again.")
    # The export carries the record it is checked against (and its accuracy, for a reader).
    atomic_write_json(target.with_name(quantize.RECORD_FILE), record)
    return (
        f"The model's int8 copy: {record['accuracy']:.1%} on {record['images']:,} "
        f"{record['check_split']} images against {record['float32_accuracy']:.1%} in float32, "
        f"the same top class on {record['agreement']:.1%}. It is checked against its own "
        "answers to fixed pictures where it was built, which integer arithmetic should "
        "give on any CPU. Its outputs after the first are channel means, for the "
        "dashboard's check for unfamiliar pictures."
    )


def _bf16_note(model) -> str:
    if not is_bfloat16(model):
        return ""
    return (
        "This mixed_bfloat16 model was exported as a float32 copy of its weights: it "
        f"matches that copy within {FLOAT32_TOLERANCE:.0e}, and the bf16 original within "
        f"{BFLOAT16_TOLERANCE:.0e}."
    )


_WRITERS = {
    "keras": _write_keras,
    "savedmodel": _write_savedmodel,
    "tflite": _write_tflite,
    "onnx": _write_onnx,
    INT8: _write_int8,
}


def export_model(
    source: str | os.PathLike, fmt: str, out_dir: str | os.PathLike | None = None
) -> ExportResult:
    """Writes one export of a model, checks it with its own runtime, then publishes it.

    The export is written and checked in a temporary folder beside its destination and
    renamed to `<out_dir>/<fmt>/` only when it matches, so a reader never finds a partial
    or unchecked export there.

    Args:
        source: a run name, run folder, `.keras` file, or "default" (see `resolve_source`).
        fmt: one of `ALL_FORMATS`.
        out_dir: folder that receives `<fmt>/`; default `default_export_dir(model)`.

    Returns:
        An `ExportResult`; `export.json` beside the artifact holds the same record.

    Raises:
        ExportError: unknown format, no model, a converter or runtime is missing or fails,
            or the export does not match the Keras model.
    """
    if fmt not in ALL_FORMATS:
        raise ExportError(f"Unknown export format '{fmt}'. Formats: {', '.join(ALL_FORMATS)}.")
    if fmt in ("onnx", INT8):
        _import_onnx()
    model_path = resolve_source(source)
    started = time.perf_counter()
    model = load_model(model_path, as_saved=True)  # its own precision decides the checks
    final = Path(out_dir or default_export_dir(model_path)) / fmt
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{fmt}.", suffix=".tmp"))
    except OSError as err:
        raise ExportError(f"Cannot write exports to {final.parent}: {err.strerror}.") from err
    try:
        artifact = staging / ARTIFACTS[fmt]
        note = _write(fmt, model, model_path, artifact)
        checked = _CHECKS[fmt](fmt, artifact, model, model_path, note)
        result = ExportResult(
            format=fmt,
            path=final / ARTIFACTS[fmt],
            size_bytes=disk_size(artifact),
            seconds=time.perf_counter() - started,
            runtime=runtime_version(fmt),
            note=note,
            **checked,
        )
        atomic_write_json(staging / "export.json", {**asdict(result), "source": model_path})
        replace_dir(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _write(fmt: str, model, source: Path, artifact: Path) -> str:
    try:
        return _WRITERS[fmt](model, source, artifact)
    except CnnError:
        raise
    except Exception as err:  # converters raise their own types (ConverterError, ...)
        raise ExportError(
            f"The {FORMAT_LABELS[fmt]} export could not be written: {_first_line(err)}"
        ) from err


def _first_line(err: Exception) -> str:
    # Converter errors can run to pages of graph dumps; the first line names the problem.
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def disk_size(path: str | os.PathLike) -> int:
    """Bytes of a file, or of all files under a folder."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human_size(count: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if count < 1024 or unit == "MB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} MB"


def download_name(result: ExportResult) -> tuple[str, str]:
    """The file name and MIME type `download_bytes` delivers for an export."""
    path = Path(result.path)
    if path.is_dir():
        return f"{path.name}.zip", "application/zip"
    return path.name, "application/octet-stream"


def download_bytes(result: ExportResult) -> bytes:
    """The export as one downloadable file.

    A SavedModel is a folder, so it is zipped, with `saved_model/...` inside the archive.
    """
    path = Path(result.path)
    if path.is_file():
        return path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file():
                archive.write(file, Path(path.name) / file.relative_to(path))
    return buffer.getvalue()


# --- "use this model elsewhere" ----------------------------------------------------------


# How every snippet turns a photo into the model's input, for each `core.images.FITS` key:
# as `core.images.decode_image` does for the dashboard, so that an exported model gets the
# pixels the dashboard gives its own. A one-line reading sent a phone's portrait photo on its
# side (EXIF orientation), a transparent PNG on black instead of white, and a picture smaller
# than the input blocky (BOX enlarges).
_OPEN = """\
photo = Image.open(IMAGE)
photo.draft(photo.mode, (2 * SIZE, 2 * SIZE))  # a large JPEG decodes at a smaller scale
photo = ImageOps.exif_transpose(photo).convert("RGBA")  # upright, as the camera held it
photo = Image.alpha_composite(Image.new("RGBA", photo.size, "white"), photo).convert("RGB")
"""
_RESIZE = """\
photo = photo.resize((SIZE, SIZE), Image.Resampling.BICUBIC if grows else Image.Resampling.BOX)
image = np.asarray(photo, dtype=np.float32)[None]
"""
PREPARE = {
    "squash": _OPEN
    + "grows = min(photo.size) < SIZE  # squashed to a square: averaged, or smoothly enlarged\n"
    + _RESIZE,
    "crop": _OPEN
    + """\
side = min(photo.size)  # its centre square, cropped: objects keep their shape
left, top = (photo.width - side) // 2, (photo.height - side) // 2
photo = photo.crop((left, top, left + side, top + side))
grows = side < SIZE  # averaged, or smoothly enlarged
"""
    + _RESIZE,
    "three": _OPEN
    + """\
side, long = min(photo.size), max(photo.size)  # three squares: both ends and the middle
starts = (0, (long - side) // 2, long - side) if long > side else (0,)  # of its longer side
views = []
for start in starts:
    across = photo.width > photo.height
    box = (start, 0, start + side, side) if across else (0, start, side, start + side)
    resample = Image.Resampling.BICUBIC if side < SIZE else Image.Resampling.BOX
    views.append(np.asarray(photo.crop(box).resize((SIZE, SIZE), resample), dtype=np.float32))
image = np.stack(views)  # their answers are averaged
""",
}


def _template(imports: str, run: str) -> str:
    return f"""\
{imports}
import numpy as np
from PIL import Image, ImageOps

MODEL = "$path"
IMAGE = "$image"
CLASSES = $classes
SIZE = $size

# The model takes raw RGB pixels (0..255), shape (N, SIZE, SIZE, 3), and returns class
# probabilities: the scaling is inside it. One view of the photo, or several averaged.
$prepare
{run}
best = int(np.argmax(probs))
print(f"{{CLASSES[best]}} {{probs[best]:.4f}}")
"""


# Templates for `snippet`: $path, $image, $size and $classes are filled in there.
SNIPPETS = {
    "keras": _template(
        "import keras  # pip install keras tensorflow$project",
        """\
model = keras.saving.load_model(MODEL, compile=False)  # safe_mode is on by default
probs = np.asarray(model(image)).mean(axis=0)""",
    ),
    "savedmodel": _template(
        "import tensorflow as tf  # pip install tensorflow",
        """\
model = tf.saved_model.load(MODEL)  # MODEL is the SavedModel folder
probs = model.serve(tf.constant(image)).numpy().mean(axis=0)""",
    ),
    "tflite": _template(
        "from ai_edge_litert.interpreter import Interpreter  # pip install ai-edge-litert",
        """\
interpreter = Interpreter(model_path=MODEL)
index = interpreter.get_input_details()[0]["index"]
interpreter.resize_tensor_input(index, list(image.shape))  # as many images as views
interpreter.allocate_tensors()
interpreter.set_tensor(index, image)
interpreter.invoke()
probs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).mean(axis=0)""",
    ),
    "onnx": _template(
        "import onnxruntime as ort  # pip install onnxruntime",
        """\
session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
probs = session.run(None, {session.get_inputs()[0].name: image})[0].mean(axis=0)""",
    ),
}
SNIPPETS[INT8] = SNIPPETS["onnx"]  # the same runtime and call; outputs after the first differ
EXAMPLE_CLASSES = CIFAR10_CLASSES  # the shipped default model's classes


def example_path(fmt: str) -> str:
    """Where `python -m core.export RUN --format fmt` writes, for the README."""
    return f"runs/RUN/exports/{fmt}/{ARTIFACTS[fmt]}"


def project_layers(path: str | os.PathLike) -> dict[str, list[str]]:
    """This project's own classes that a .keras file's model is built of, by the module that
    registers them (`{"core.model": ["ScaledBias"]}`), which Keras needs imported to load it;
    empty for a model of Keras's own layers. Read from the file's config, nothing loaded."""
    import keras

    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    found: dict[str, set[str]] = {}
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack += node
        elif isinstance(node, dict):
            stack += node.values()
            name = node.get("registered_name")
            if isinstance(name, str) and ">" in name:  # "package>Class": registered, not Keras's
                known = keras.saving.get_registered_object(name)
                if known is not None:
                    found.setdefault(known.__module__, set()).add(known.__name__)
    return {module: sorted(names) for module, names in sorted(found.items())}


def snippet(
    fmt: str,
    path: str | os.PathLike,
    size: int,
    class_names: list[str] | None = None,
    image: str = "photo.jpg",
    fit: str = "squash",
    project: dict[str, list[str]] | None = None,
) -> str:
    """A self-contained Python script that classifies one image with an export.

    Args:
        fmt: one of `ALL_FORMATS`.
        path: the exported artifact.
        size: the model's input side in pixels.
        class_names: the model's classes, in order; default CIFAR-10's.
        image: the image file the script opens.
        fit: how it makes a photo square, a `core.images.FITS` key (`PREPARE`): as the
            Classify page starts for the model (`core.registry.framing`), or "three".
        project: for "keras", `project_layers` of the file: the snippet then imports those
            modules (the script saved in the project's folder); the other formats need none.

    Returns:
        Python source that needs only the format's runtime, numpy and Pillow; it prints
        the best class and its probability.
    """
    if fmt not in SNIPPETS:
        raise ExportError(f"Unknown export format '{fmt}'. Formats: {', '.join(ALL_FORMATS)}.")
    return Template(SNIPPETS[fmt]).substitute(
        path=str(path),
        image=image,
        size=int(size),
        classes=json.dumps(list(class_names or EXAMPLE_CLASSES)),
        prepare=PREPARE[fit],
        project="".join(
            f"\nimport {module}  # this project's {', '.join(names)}: save this file in its folder"
            for module, names in (project or {}).items()
        ),
    )


# --- command line ------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m core.export",
        description="Export a trained model to another runtime and check that it gives the "
        "same probabilities as Keras on a batch of images.",
    )
    p.add_argument(
        "target", help="run name, run folder, .keras file, or 'default' (the shipped model)"
    )
    p.add_argument(
        "--format",
        required=True,
        choices=(*ALL_FORMATS, "all"),
        dest="fmt",
        help=f"'all': every format, and {INT8} when the model has an int8 copy",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="folder for <format>/ (default: <run>/exports)"
    )
    args = p.parse_args(argv)
    failed = False
    for fmt in ALL_FORMATS if args.fmt == "all" else (args.fmt,):
        if args.fmt == "all" and fmt == INT8 and _has_no_int8_copy(args.target):
            print(f"skipped {INT8}: the model has no int8 copy (python -m core.quantize)")
            continue
        try:
            result = export_model(args.target, fmt, args.out)
        except CnnError as err:
            print(f"error: {err}", file=sys.stderr)
            failed = True
            continue
        print(f"wrote {result.summary()}")
        if result.note:
            print(f"  {result.note}")
    return 1 if failed else 0


def _has_no_int8_copy(target: str) -> bool:
    from core import quantize

    try:
        return quantize.read_record(resolve_source(target)) is None
    except CnnError:
        return False  # no model: the export says so


if __name__ == "__main__":
    sys.exit(main())
