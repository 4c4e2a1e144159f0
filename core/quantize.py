"""An int8 copy of a model for fast classification on the CPU (ONNX Runtime).

    python -m core.quantize RUN_OR_MODEL --data DATA

writes `model.int8.onnx` and `int8.json` beside the model's `model.keras`. The copy is
built in four steps:

1. the float32 model as served, with a speed-layout model's batch norms and shifts
   folded into its convolutions (`core.model.folded_copy`);
2. exported to ONNX (`core.export.write_onnx`), each exact GELU `x/2 (1 + erf(x/sqrt 2))`
   replaced by ONNX Runtime's one-kernel `Gelu` (`_fuse_gelu`);
3. its convolutions, poolings and the dense layer quantised (unsigned 8-bit activations,
   signed 7-bit per-channel weights), with activation ranges calibrated on training
   images (`onnxruntime.quantization.quantize_static`);
4. checked against the float32 model on the run's validation images: accuracy of both
   and the share of images on which they agree, recorded in `int8.json`.

The graph also outputs the channel means of the layers the model's check for unfamiliar
pictures measures (`core.novelty`), and the copy gets its own check, fitted on those
int8 means (`novelty.int8.npz`): one pass of the copy answers and checks a picture. The
float check's statistics do not carry over: 8-bit activations move the means of the
first layer's quieter channels by more than they vary between images (docs/BENCHMARKS.md).

Integer convolutions give an image the same result whatever else is in its batch, and
on a CPU with AMX int8 tiles a batch of 256 runs 3-4x faster than Keras in float32
(docs/BENCHMARKS.md). GELU stays in float32 between the integer layers.

Weights use 7 of their 8 bits (`reduce_range`). On an x86 CPU without VNNI (AVX2 only,
such as AMD Zen 3) ONNX Runtime multiplies 8-bit activations by 8-bit weights with an
instruction that adds pairs of products into 16 bits, and 255 x 127 x 2 overflows them:
the shipped copy built with 8-bit weights answered 51% of the validation images right
there against the float model's 89.6% (on a Xeon with AMX it gave the float model's answer
on 98.6%). With 7-bit weights (255 x 63 x 2 fits) it computes the same on every CPU.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from core.errors import CnnError
from core.fileio import file_sha256

INT8_FILE = "model.int8.onnx"
RECORD_FILE = "int8.json"
NOVELTY_FILE = "novelty.int8.npz"  # the copy's own check for unfamiliar pictures
MEANS_KEY = "channel_means"  # the ONNX metadata naming the layers of the means outputs
WEIGHT_BITS = 7  # `reduce_range`: see above
CALIBRATION_IMAGES = 1024
CALIBRATION_SEED = 0
QUANTIZED_OPS = ["Conv", "MaxPool", "MatMul", "Gemm"]
FLOAT_TOLERANCE = 1e-4  # the folded, fused float32 graph against the Keras model
# Generated pictures the copy answers when it is built and again where it runs: integer
# arithmetic is exact, so answers further apart than this mean the CPU computes it otherwise.
PROBE_IMAGES, PROBE_SEED, PROBE_TOLERANCE = 32, 0, 0.01
ONE_IMAGE_RUNS = 32  # single-image calls timed for each model when a copy is checked


class QuantizeError(CnnError):
    """An int8 copy cannot be built, loaded or checked."""


def int8_path(model_path: str | os.PathLike) -> Path:
    """Where the int8 copy of the `.keras` file at `model_path` lives."""
    return Path(model_path).with_name(INT8_FILE)


def record_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_name(RECORD_FILE)


def read_record(model_path: str | os.PathLike) -> dict | None:
    """The check recorded for a model's int8 copy, or None when it has none or it is stale.

    A copy counts only for the model file it was built from (its SHA-256 is in the
    record): a resumed run or a new shipped model gets no answers from an old copy.
    File times cannot tell, as a git checkout writes files in any order. A copy with
    8-bit weights (built before `WEIGHT_BITS`) is stale too: it answers wrongly on CPUs
    without VNNI.
    """
    from core.fileio import read_json

    record = read_json(record_path(model_path))
    if not record or record.get("weight_bits") != WEIGHT_BITS:
        return None
    if not int8_path(model_path).is_file():
        return None
    try:
        if record.get("model_sha256") != file_sha256(model_path):
            return None
        # A build ended between writing the copy and its record leaves another copy.
        if "int8_sha256" in record and record["int8_sha256"] != file_sha256(int8_path(model_path)):
            return None
    except OSError:
        return None
    return record


def novelty_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_name(NOVELTY_FILE)


def _inference_graph(model, means):
    """The float32 graph to quantise: folded, with the channel means of `means` as outputs."""
    from core.model import as_served, folded_copy, is_speed_layout, with_channel_means

    served = as_served(model)
    return (
        folded_copy(served, means) if is_speed_layout(served) else with_channel_means(served, means)
    )


def _means_layers(model) -> list[str]:
    """The layers whose channel means the copy outputs: those a novelty check measures,
    none for a model without a convolution of its own."""
    from core.novelty import novelty_layers

    try:
        return novelty_layers(model)
    except ValueError:
        return []


def _fuse_gelu(path: Path) -> int:
    """Replaces each exported exact GELU by ONNX Runtime's `Gelu` kernel; returns how many.

    `core.model._gelu_erf` exports as `Mul(x, 0.5)`, `Mul(x, 1/sqrt 2) -> Erf -> Add(1)`,
    and a `Mul` of the two. The five nodes are one `com.microsoft.Gelu(x)`; its output
    keeps the last `Mul`'s name, so nothing downstream changes.
    """
    import onnx

    model = onnx.load(str(path))
    nodes = list(model.graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)

    def only_consumer(name, op_type):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and nodes[users[0]].op_type == op_type else None

    drop, fused = set(), {}
    for e, erf in enumerate(nodes):
        if erf.op_type != "Erf":
            continue
        scaled = producer.get(erf.input[0])
        add = only_consumer(erf.output[0], "Add")
        final = None if add is None else only_consumer(nodes[add].output[0], "Mul")
        if scaled is None or nodes[scaled].op_type != "Mul" or final is None:
            continue
        other = [name for name in nodes[final].input if name != nodes[add].output[0]]
        half = producer.get(other[0]) if len(other) == 1 else None
        if half is None or nodes[half].op_type != "Mul":
            continue
        shared = set(nodes[scaled].input) & set(nodes[half].input)
        if len(shared) != 1:
            continue
        drop.update((scaled, e, add, half, final))
        fused[final] = onnx.helper.make_node(
            "Gelu",
            [shared.pop()],
            list(nodes[final].output),
            domain="com.microsoft",
            name=nodes[final].name,
        )
    if not fused:
        return 0
    kept = [fused.get(i, node) for i, node in enumerate(nodes) if i in fused or i not in drop]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    # ONNX's shape inference does not know the contrib op; the calibrator only records
    # tensors whose element type it knows.
    known = {v.name for v in model.graph.value_info}
    for gelu in fused.values():
        if gelu.output[0] not in known:
            model.graph.value_info.append(
                onnx.helper.make_tensor_value_info(gelu.output[0], onnx.TensorProto.FLOAT, None)
            )
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(path))
    return len(fused)


def _session(path: str | os.PathLike):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: not its notes on unused initialisers
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Int8Model:
    """An int8 copy, with the part of a Keras model's interface that classifying uses.

    `predict_on_batch(pixels)` returns float32 probabilities `(N, C)` for images of
    `input_shape[1:]` with values 0-255, like the Keras model it was built from;
    `channel_means(pixels)` the `(N, C_l)` channel means of each of `means_layers`, which
    a copy built before these outputs existed has none of.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.session = _session(self.path)
        except Exception as err:  # ONNX Runtime raises its own types for a damaged file
            raise QuantizeError(
                f"The int8 copy {self.path.name} could not be loaded: {_first_line(err)}"
            ) from err
        meta = self.session.get_inputs()[0]
        self._input = meta.name
        self.input_shape = (None, *meta.shape[1:])
        outputs = self.session.get_outputs()
        self.output_shape = (None, outputs[0].shape[-1])
        props = self.session.get_modelmeta().custom_metadata_map
        self.means_layers = tuple(json.loads(props.get(MEANS_KEY, "[]")))
        self._outputs = [o.name for o in outputs[: 1 + len(self.means_layers)]]

    def _run(self, outputs, pixels) -> list[np.ndarray]:
        x = np.ascontiguousarray(pixels, np.float32)
        return [np.asarray(o, np.float32) for o in self.session.run(outputs, {self._input: x})]

    def predict_on_batch(self, pixels) -> np.ndarray:
        return self._run(self._outputs[:1], pixels)[0]

    def channel_means(self, pixels) -> list[np.ndarray]:
        return self._run(self._outputs[1:], pixels)

    def predict_with_means(self, pixels) -> list[np.ndarray]:
        """`[probabilities, channel means per layer...]` from one pass of the graph."""
        return self._run(self._outputs, pixels)


def default_answerer(model_path: str | os.PathLike):
    """What the Classify page answers with by default for the model at `model_path`: its
    int8 copy when it has a current one, else the model as served (`load_model`)."""
    from core.model import load_model

    if read_record(model_path) is not None:
        return Int8Model(int8_path(model_path))
    return load_model(model_path)


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _check_float(path: Path, model, images, means) -> str:
    """Checks the rewritten float32 graph against the model before quantising it: its
    probabilities, and its channel means of the layers `means` (relative to their size).

    Returns:
        The graph's input name.
    """
    from core.classify import predict_pixels
    from core.model import as_served
    from core.novelty import mean_reader

    session = _session(path)
    name = session.get_inputs()[0].name
    probs, *got = session.run(None, {name: np.asarray(images, np.float32)})
    served = as_served(model)
    diff = float(np.max(np.abs(probs - predict_pixels(served, images))))
    if means:
        want = mean_reader(served, means)[1](images)
        for g, w in zip(got, want, strict=True):
            diff = max(diff, float(np.max(np.abs(g - w) / (1 + np.abs(w)))))
    if not diff <= FLOAT_TOLERANCE:
        raise QuantizeError(
            f"The float32 graph for the int8 copy differs from the model by {diff:.1e}."
        )
    return name


class _Calibration:
    """Feeds calibration batches to `quantize_static` (its CalibrationDataReader protocol)."""

    def __init__(self, name: str, images: np.ndarray, batch: int = 64):
        self._batches = iter(
            [{name: images[i : i + batch].astype(np.float32)} for i in range(0, len(images), batch)]
        )

    def get_next(self):
        return next(self._batches, None)

    def rewind(self):  # not needed by the MinMax calibrator; part of the protocol
        pass


def calibration_sample(images: np.ndarray, count: int = CALIBRATION_IMAGES) -> np.ndarray:
    """A fixed random sample of training images for the activation ranges."""
    rng = np.random.default_rng(CALIBRATION_SEED)
    take = min(count, len(images))
    return images[np.sort(rng.choice(len(images), take, replace=False))]


def build_int8(
    model, calibration: np.ndarray, target: str | os.PathLike, options: dict | None = None
) -> Path:
    """Writes the int8 copy of `model` to `target` (atomically) and returns its path.

    Args:
        model: a Keras model (as saved or as served; it is quantised from float32).
        calibration: uint8 or float images `(N, S, S, 3)` from the training data.
        target: the `.onnx` file to write.
        options: `quantize_static` arguments over this module's (benchmarks/int8_weights.py
            compares weight formats with them).

    Raises:
        QuantizeError: ONNX export or ONNX Runtime is missing, or quantisation fails.
    """
    try:
        import onnxruntime
        import onnxruntime.quantization  # noqa: F401
    except ImportError as err:
        raise QuantizeError("int8 copies need onnxruntime (pip install onnxruntime).") from err
    onnxruntime.set_default_logger_severity(3)  # the quantiser's sessions: errors only
    if len(calibration) == 0:
        raise QuantizeError("int8 calibration needs at least one training image.")
    target = Path(target)
    try:
        _build(model, calibration, target, options or {})
    except OSError as err:  # a full disk, a read-only folder
        raise _unwritable(f"The int8 copy could not be written to {target.parent}", err) from err
    return target


def _build(model, calibration, target: Path, options: dict) -> None:
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from core.export import write_onnx
    from core.fileio import atomic_write_bytes

    means = _means_layers(model)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".int8.") as tmp:
        float_path, int8_tmp = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        write_onnx(_inference_graph(model, means), float_path)
        _fuse_gelu(float_path)
        name = _check_float(float_path, model, calibration[:32], means)
        try:
            settings = {
                "quant_format": QuantFormat.QDQ,
                "activation_type": QuantType.QUInt8,
                "weight_type": QuantType.QInt8,
                "per_channel": True,
                "reduce_range": True,  # 7-bit weights: no int16 saturation on AVX2 (see above)
                "op_types_to_quantize": QUANTIZED_OPS,
            }
            calibrated = _Calibration(name, calibration)
            quantize_static(str(float_path), str(int8_tmp), calibrated, **settings | options)
        except Exception as err:  # the quantiser raises many types
            raise QuantizeError(f"The model could not be quantised: {_first_line(err)}") from err
        graph = onnx.load(str(int8_tmp))
        onnx.helper.set_model_props(graph, {MEANS_KEY: json.dumps(means)})
        atomic_write_bytes(target, graph.SerializeToString())


def probe_images(size: int) -> np.ndarray:
    """`PROBE_IMAGES` fixed uint8 pictures `(N, size, size, 3)`: half blocky colour fields,
    half uniform noise (bright neighbours are where 16-bit sums overflow)."""
    rng = np.random.default_rng(PROBE_SEED)
    half = PROBE_IMAGES // 2
    coarse = rng.integers(0, 256, (half, 4, 4, 3), dtype=np.uint8)
    blocks = coarse[:, np.arange(size) * 4 // size][:, :, np.arange(size) * 4 // size]
    noise = rng.integers(0, 256, (PROBE_IMAGES - half, size, size, 3), dtype=np.uint8)
    return np.concatenate([blocks, noise])


def drift(int8: Int8Model, record: dict) -> float | None:
    """How far the copy's answers to `probe_images` here are from those recorded where it
    was built (largest probability difference); None for a record without them."""
    if "probe_probs" not in record:
        return None
    return probe_gap(int8.predict_on_batch(probe_images(int(int8.input_shape[1]))), record)


def drift_refusal(apart: float | None) -> str | None:
    """Why a copy whose answers to `probe_images` are `apart` (`drift`) from those recorded
    where it was built is not used here, or None when it computes as it did there."""
    if apart is None or apart <= PROBE_TOLERANCE:
        return None
    return (
        f"The int8 copy computes differently on this CPU: its answers to fixed test pictures "
        f"are up to {apart:.2f} apart from those it gave where it was built. The answers come "
        "from the float32 model until a copy is built here (the Evaluate page's \"Fast int8 "
        'answers" section, or `python -m core.quantize <run> --data <its data>`).'
    )


def checked_copy(
    model_path: str | os.PathLike, record: dict | None = None
) -> tuple[Int8Model | None, dict | None, str]:
    """The model's int8 copy, where it has a current one that computes here as it did
    where it was built (`drift`): what the Classify page answers with by default.

    Args:
        record: the copy's `read_record`, when the caller has read it already.

    Returns:
        `(copy, its record, "")`; `(None, None, "")` for a model without a current copy;
        `(None, None, why)` for a copy that cannot be loaded or computes otherwise here.
    """
    record = record or read_record(model_path)
    if record is None:
        return None, None, ""
    try:
        copy = Int8Model(int8_path(model_path))
    except QuantizeError as err:
        return None, None, f"{err} The answers come from the float32 model."
    if refusal := drift_refusal(drift(copy, record)):
        return None, None, refusal
    return copy, record, ""


def probe_gap(probs: np.ndarray, record: dict) -> float:
    """Largest difference of answers `(PROBE_IMAGES, C)` to `probe_images` from those the
    record holds (it must hold them)."""
    return float(np.max(np.abs(probs - np.asarray(record["probe_probs"], np.float32))))


def compare(int8: Int8Model, model, images: np.ndarray, labels=None, batch: int = 500) -> dict:
    """How the int8 copy answers against the float32 model on `images`.

    Returns:
        `{"images", "agreement", "max_prob_diff"}`, plus `"accuracy"` and
        `"float32_accuracy"` when `labels` are given. Speeds on this machine: the median
        milliseconds of one image's call (`"int8_ms_per_image"`, `"float32_ms_per_image"`,
        up to `ONE_IMAGE_RUNS` images), and with two batches or more `"int8_images_per_s"`
        and `"float32_images_per_s"` over the batches after the first (it pays for tracing).
    """
    from core.classify import predict_pixels
    from core.model import as_served

    served = as_served(model)
    fast, exact, seconds = [], [], np.zeros(2)
    for i in range(0, len(images), batch):
        started = time.perf_counter()
        fast.append(int8.predict_on_batch(images[i : i + batch]))
        middle = time.perf_counter()
        exact.append(predict_pixels(served, images[i : i + batch]))
        if i:
            seconds += (middle - started, time.perf_counter() - middle)
    fast, exact = np.concatenate(fast), np.concatenate(exact)
    out = {
        "images": int(len(images)),
        "agreement": float(np.mean(fast.argmax(1) == exact.argmax(1))),
        "max_prob_diff": float(np.max(np.abs(fast - exact))),
    }
    out["int8_ms_per_image"], out["float32_ms_per_image"] = (
        _one_image_ms(predict, images[:ONE_IMAGE_RUNS])
        for predict in (int8.predict_on_batch, lambda x: predict_pixels(served, x))
    )
    if len(images) > batch:
        timed = len(images) - batch
        out["int8_images_per_s"], out["float32_images_per_s"] = (timed / seconds).round(1).tolist()
    if labels is not None:
        out["accuracy"] = float(np.mean(fast.argmax(1) == labels))
        out["float32_accuracy"] = float(np.mean(exact.argmax(1) == labels))
    return out


def quantize(model_path: str | os.PathLike, dataset, log=print, model=None) -> dict:
    """Builds, checks and records the int8 copy of the model at `model_path`.

    Args:
        model_path: a `.keras` file.
        dataset: a `core.data.Dataset` with the model's training split (calibration) and,
            when it has one, its validation split (the check).
        log: called with one line per step.
        model: the file's model as `load_model` serves it, when the caller has it loaded.

    Returns:
        The record written to `int8.json`; a `model_card.json` beside the model gets its
        figures under "int8".

    Raises:
        QuantizeError: the copy cannot be built or its files cannot be written, or
            `dataset` is not the one the model's card describes (other classes, or
            splits of other sizes).
        DataError: `dataset` has no training images (`core.errors`).
    """
    import onnxruntime

    from core.fileio import read_json
    from core.model import as_served, load_model

    model_path = Path(model_path)
    card_path = model_path.with_name("model_card.json")
    _refuse_other_data(read_json(card_path) or {}, dataset)
    if model is None:  # served once: the steps below would each copy a bf16 model
        model = as_served(load_model(model_path))
    x_train, _ = dataset.split("train")
    check_split = "val" if "val" in dataset.splits else "train"
    x, y = dataset.split(check_split)
    # Built, checked and fitted aside, then published: a build that fails or is stopped
    # leaves the copy in use (and its record) as they were.
    with _staging(model_path.parent) as staging:
        started = time.perf_counter()
        staged = build_int8(model, calibration_sample(x_train), staging / INT8_FILE)
        log(
            f"built the copy ({staged.stat().st_size / 1e6:.1f} MB) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        int8 = Int8Model(staged)
        record = {
            "file": INT8_FILE,
            "model_sha256": file_sha256(model_path),
            "int8_sha256": file_sha256(staged),
            "calibration_images": int(min(CALIBRATION_IMAGES, len(x_train))),
            "weight_bits": WEIGHT_BITS,
            "check_split": check_split,
            **compare(int8, model, x, y),
            "runtime": f"onnxruntime {onnxruntime.__version__}",
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "probe_probs": np.round(
                int8.predict_on_batch(probe_images(int(int8.input_shape[1]))), 6
            ).tolist(),
        }
        log(
            f"on {record['images']} {check_split} images: int8 {record['accuracy']:.2%}, "
            f"float32 {record['float32_accuracy']:.2%}, same answer on {record['agreement']:.2%}"
        )
        if speed := speed_note(record):
            log(speed)
        val = x if check_split == "val" else None
        record["novelty"] = _write_check(int8, staging / NOVELTY_FILE, x_train, val, log)
        _publish(staging, model_path, record)
    log(f"wrote {int8_path(model_path)} and its record {record_path(model_path).name}")
    return record


@contextmanager
def _staging(folder: Path):
    """A temporary folder beside the model (`core.builds.STAGING`), removed afterwards,
    named for this process; those of builds whose process died (a SIGKILL leaves its
    folder) are removed first."""
    from core.builds import remove_dead_staging
    from core.runs import process_identity

    remove_dead_staging(folder)
    me = process_identity()
    try:
        staging = tempfile.TemporaryDirectory(
            dir=folder, prefix=f".int8.{me['pid']}-{me['pid_start'] or ''}."
        )
    except OSError as err:  # a full disk, a read-only folder
        raise _unwritable(f"The int8 copy could not be written to {folder}", err) from err
    with staging as path:
        yield Path(path)


def _publish(staging: Path, model_path: Path, record: dict) -> None:
    """Moves the staged copy and its check beside the model, then writes the record and
    the card's figures: the record, written last, names the copy's bytes."""
    from core.fileio import atomic_write_json, read_json

    try:
        os.replace(staging / INT8_FILE, int8_path(model_path))
        if record["novelty"] is not None:
            os.replace(staging / NOVELTY_FILE, novelty_path(model_path))
        else:  # a check fitted on an earlier copy belongs to other bytes
            novelty_path(model_path).unlink(missing_ok=True)
        atomic_write_json(record_path(model_path), record)
        card_path = model_path.with_name("model_card.json")
        card = read_json(card_path)  # as it is now: a page may have written to it meanwhile
        if card is not None:  # the card says what the copy gives, beside the float32 figures
            card["int8"] = {
                k: record[k] for k in ("file", "accuracy", "agreement", "runtime", "novelty")
            }
            atomic_write_json(card_path, card)
    except OSError as err:  # a full disk, a read-only folder
        raise _unwritable("The int8 copy's record could not be written", err) from err


def _unwritable(what: str, err: OSError) -> QuantizeError:
    """The sentence for a file the build cannot write: `what`, then the system's reason."""
    return QuantizeError(f"{what}: {err.strerror or err}.")


def _refuse_other_data(card: dict, dataset) -> None:
    # The check must score the images the run held out, not ones the model learnt from.
    again = "build its int8 copy from the data it was trained on."
    classes = card.get("class_names")
    if classes and classes != list(dataset.class_names):
        raise QuantizeError(f"The data has other classes than the model: {again}")
    want = (card.get("data") or {}).get("split_sizes")
    got = dataset.summary()["split_sizes"]
    if want and got != want:
        raise QuantizeError(
            f"The data splits into {_sizes(got)} images where the model's run had "
            f"{_sizes(want)}: {again}"
        )


def _sizes(split_sizes: dict) -> str:
    return ", ".join(f"{n:,} {name}" for name, n in split_sizes.items())


def _one_image_ms(predict, images) -> float:
    """Median milliseconds of `predict` on each image alone, after one call to warm up."""
    predict(images[:1])
    laps = []
    for image in images:
        started = time.perf_counter()
        predict(image[None])
        laps.append(time.perf_counter() - started)
    return round(1000 * float(np.median(laps)), 2)


def speed_note(record: dict) -> str | None:
    """How fast a record's copy and the float32 model answered where it was built, as a
    sentence, or None for a record from before speeds were kept."""
    if "int8_ms_per_image" not in record:
        return None
    fast, exact = record["int8_ms_per_image"], record["float32_ms_per_image"]
    note = (
        f"Where it was built, one image took {fast:.1f} ms with the copy and {exact:.1f} ms "
        f"with the float32 model ({exact / fast:.1f}x as fast)"
    )
    if "int8_images_per_s" not in record:
        return note + "."
    fast, exact = record["int8_images_per_s"], record["float32_images_per_s"]
    return note + f"; batches: {fast:,.0f} against {exact:,.0f} images/s ({fast / exact:.1f}x)."


def _write_check(int8: Int8Model, target: Path, train, val, log) -> dict | None:
    """Fits the copy's own check for unfamiliar pictures on its channel means of the
    training images and writes it to `target`; returns its record (`core.novelty.write`),
    or None for a copy without channel means or too few training images."""
    from core import novelty
    from core.errors import DataError

    if not int8.means_layers:
        return None
    try:
        record = novelty.write(int8, int8.path, train, val, path=target)
    except DataError as err:
        log(f"no check for unfamiliar pictures: {err}")
        return None
    except OSError as err:  # a full disk
        raise _unwritable("The int8 copy's check could not be written", err) from err
    flagged = f", flags {record['val_flagged']:.1%} of validation images" if val is not None else ""
    log(f"wrote {record['file']}: the check for unfamiliar pictures{flagged}")
    return record


def main(argv=None) -> int:
    import argparse

    from core.export import resolve_source
    from core.fileio import read_json
    from core.registry import split_as_trained

    parser = argparse.ArgumentParser(
        prog="python -m core.quantize",
        description="Write an int8 copy of a model (model.int8.onnx) for fast classification.",
    )
    parser.add_argument("model", help="a run name or folder, a .keras file, or 'default'")
    parser.add_argument("--data", required=True, help="the data the model was trained on")
    args = parser.parse_args(argv)
    try:
        model_path = resolve_source(args.model)
        card = read_json(model_path.with_name("model_card.json"), {}) or {}
        card = {"input_size": 32, "train_config": {}} | card
        print(f"Loading {args.data} for the int8 copy of {model_path}", flush=True)
        dataset = split_as_trained(card, args.data)
        quantize(model_path, dataset)
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
