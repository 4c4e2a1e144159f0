"""Metrics as plain numpy, predictions with optional test-time augmentation, and the CLI.

python -m core.evaluate runs/<run> --data cifar10 --split test
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
import threading
import weakref
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core import datastats
from core.classify import predict_pixels, top_classes
from core.errors import CnnError, DataError, RunError
from core.fileio import atomic_write_bytes


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts predictions per (true, predicted) class.

    Args:
        y_true: int labels `(N,)`.
        y_pred: int predictions `(N,)`.
        num_classes: side of the matrix.

    Returns:
        int64 `(num_classes, num_classes)`; row = true class, column = predicted class.
    """
    flat = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


# The per-class scores; the CSV's columns after the class: them, support, the recall's interval.
_SCORES, _INTERVAL = ("precision", "recall", "f1"), ("recall_low", "recall_high")


def per_class_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix.

    A class that is never predicted has precision 0 (not NaN), as scikit-learn's
    `zero_division=0` does. A class with no images here (a test folder without one of
    train/'s classes) has no recall or F1: NaN, and no precision either unless it was
    answered (then 0: every such answer is wrong).

    Returns:
        `{"precision", "recall", "f1"}` float64 `(C,)` and `"support"` int64 `(C,)`.
    """
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    absent = support == 0
    recall[absent] = f1[absent] = np.nan
    precision[absent & (predicted == 0)] = np.nan
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def row_shares(cm: np.ndarray) -> np.ndarray:
    """A confusion matrix's rows as shares of each true class's images (each row sums to
    1), float64; NaN for a class without images here (a row of no figures, not of 0s)."""
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.full(cm.shape, np.nan), where=totals > 0)


def wilson_interval(successes, trials, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Where a rate measured as `successes` of `trials` likely lies: the Wilson score
    interval (95% for z = 1.96). Unlike the textbook p +- z * sqrt(p(1-p)/n) it stays within
    [0, 1] and does not shrink to nothing at 0 or all right: 10 of 10 gives 0.72 to 1.

    Args:
        successes, trials: counts, scalars or arrays of one shape; `(0, 1)` where no trials.

    Returns:
        `(low, high)` float64 arrays (0-d for scalars).
    """
    k, n = np.asarray(successes, np.float64), np.asarray(trials, np.float64)
    safe = np.maximum(n, 1)
    p, z2 = k / safe, z * z
    centre = (p + z2 / (2 * safe)) / (1 + z2 / safe)
    half = z * np.sqrt(p * (1 - p) / safe + z2 / (4 * safe * safe)) / (1 + z2 / safe)
    low = np.where(n > 0, np.clip(centre - half, 0, 1), 0.0)
    high = np.where(n > 0, np.clip(centre + half, 0, 1), 1.0)
    return low, high


def averages(metrics: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Macro (plain mean) and weighted (by support) averages of precision, recall, F1,
    over the classes with images here (NaN when there are none)."""
    present = metrics["support"] > 0
    if not present.any():
        return {kind: dict.fromkeys(_SCORES, float("nan")) for kind in ("macro", "weighted")}
    weights = metrics["support"][present] / metrics["support"].sum()
    return {
        kind: {
            k: float(
                np.mean(metrics[k][present])
                if kind == "macro"
                else np.sum(metrics[k][present] * weights)
            )
            for k in _SCORES
        }
        for kind in ("macro", "weighted")
    }


def top_confusions(cm: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
    """The `k` most frequent mistakes in a confusion matrix.

    Args:
        cm: int `(C, C)`, row = true class, column = predicted class.
        k: the most pairs returned.

    Returns:
        `(true class, predicted class, count)` of the off-diagonal cells with a count,
        the largest first (ties row by row).
    """
    off = np.array(cm, np.int64)
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    cells = zip(*np.unravel_index(order, off.shape), strict=True)
    return [(int(t), int(p), int(off[t, p])) for t, p in cells if off[t, p] > 0]


def top_k_accuracy(probs: np.ndarray, y_true: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the `k` highest probabilities."""
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == np.asarray(y_true)[:, None], axis=1)))


def log_loss(probs: np.ndarray, y_true: np.ndarray, eps: float = 1e-7) -> float:
    """Mean categorical cross-entropy of the true classes (probabilities clipped to eps)."""
    p = np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0)
    return float(-np.mean(np.log(p)))


def mistakes(probs: np.ndarray, y_true: np.ndarray) -> dict[str, np.ndarray]:
    """Misclassified examples, most confident first.

    Returns:
        `{"index", "true", "pred", "confidence"}`, each `(M,)`; confidence is the
        probability given to the (wrong) predicted class.
    """
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    conf = probs[wrong, pred[wrong]]
    order = np.argsort(-conf, kind="stable")
    return {
        "index": wrong[order],
        "true": np.asarray(y_true)[wrong[order]],
        "pred": pred[wrong[order]],
        "confidence": conf[order],
    }


def least_confident_correct(probs: np.ndarray, y_true: np.ndarray, n: int = 20) -> np.ndarray:
    """Indices of correct predictions with the lowest top probability, lowest first."""
    pred = probs.argmax(axis=1)
    right = np.flatnonzero(pred == y_true)
    return right[np.argsort(probs[right, pred[right]], kind="stable")[:n]]


# Test-time augmentation: which views of each image are averaged into its prediction.
TTA_MODES = {
    "none": "the image alone",
    "flip": "the image and its mirror",
    # airbench's "level 2": the flip pair weighs one half, the four shifted views the other.
    "flip+shift": "the image and its mirror, and both shifted one pixel up-left and "
    "down-right (reflected border); the shifted four weigh as much as the first two",
}


def _shifted(batch: np.ndarray, d: int) -> np.ndarray:
    padded = np.pad(batch, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = batch.shape[1:3]
    return padded[:, 1 + d : 1 + d + h, 1 + d : 1 + d + w]


def predict_probs(
    model,
    images: np.ndarray,
    batch_size: int = 256,
    tta: str = "none",
    progress=None,
    features_of: np.ndarray | None = None,
):
    """Class probabilities for uint8 images, optionally averaged over augmented views.

    Args:
        model: a model from `core.model` (takes raw uint8-valued images).
        images: uint8 `(N, S, S, 3)`.
        batch_size: images per forward pass.
        tta: a key of `TTA_MODES`.
        progress: called as `progress(done, total)` after each batch.
        features_of: int `(M,)` ascending positions in `images` whose classifier inputs
            (`core.inspect.classifier_input`, of the images as they are) to return too,
            read in the same forward pass; the model must have a `Dense` layer.

    Returns:
        float32 `(N, num_classes)`; with `features_of`, the pair of it and float32
        `(M, D)` features.
    """
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {', '.join(TTA_MODES)}, not {tta!r}")
    reader, wanted, features = None, np.zeros(len(images), bool), []
    if features_of is not None:
        from core.inspect import with_features

        reader = with_features(model)
        wanted[features_of] = True

    def plain(batch, start):
        rows = wanted[start : start + len(batch)]
        if reader is None or not rows.any():
            return predict_pixels(model, batch)
        p, f = reader.predict_on_batch(batch)
        features.append(np.asarray(f, np.float32).reshape(len(batch), -1)[rows])
        return np.asarray(p, np.float32)

    def pair(batch, start=None):
        p = predict_pixels(model, batch) if start is None else plain(batch, start)
        return p if tta == "none" else (p + predict_pixels(model, batch[:, :, ::-1])) / 2

    out = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start : start + batch_size], np.float32)
        p = pair(batch, start)
        if tta == "flip+shift":
            p = p / 2 + (pair(_shifted(batch, -1)) + pair(_shifted(batch, 1))) / 4
        out.append(p)
        if progress:
            progress(start + len(batch), len(images))
    classes = model.output_shape[-1]
    probs = np.concatenate([np.zeros((0, classes), np.float32), *out]).astype(np.float32)
    if reader is None:
        return probs
    dims = int(np.prod(reader.outputs[1].shape[1:]))
    return probs, np.concatenate([np.zeros((0, dims), np.float32), *features])


KEPT_PREDICTIONS = 16  # newest files of kept probabilities (N x classes float32), and spaces


def kept_probs(
    model, model_path, images, tta="none", batch_size=256, cache_dir=None, progress=None
) -> np.ndarray:
    """`predict_probs` for a saved model, kept on disk: the same question is answered once.

    Predicting CIFAR-10's 5,000 validation images takes 10 s here (17 s with flip TTA,
    90 s for the 45,000 training images); their probabilities are 200 KB. They are kept in
    the cache folder under a hash of the model file's bytes, the images' bytes and `tta`,
    so a restarted dashboard reads them, and a retrained model or a changed folder misses.
    The `KEPT_PREDICTIONS` most recently used files are kept. The same forward pass also
    keeps the images' feature space (`kept_space`), when the model has a `Dense` layer.

    Args:
        model: the model loaded from `model_path`.
        model_path: its `.keras` file.
        images, tta, batch_size, progress: as for `predict_probs` (`progress` is not
            called when the probabilities are read from disk).
        cache_dir: default `core.data.default_cache_dir()`.

    Returns:
        float32 `(N, num_classes)`.
    """
    content = _content_digest(model_path, images)
    path = _probs_path(content, tta, cache_dir)
    probs = _read_kept(path, np.load)
    if probs is not None and probs.shape[0] == len(images):
        return probs
    from core.inspect import classifier_input, space_of, space_rows

    try:
        classifier_input(model)
    except ValueError:  # no Dense layer: no feature space
        probs = predict_probs(model, images, batch_size, tta, progress)
    else:
        index = space_rows(len(images))
        probs, features = predict_probs(model, images, batch_size, tta, progress, index)
        space = _space_path(content, cache_dir)
        _keep(space, space_of(index, features))
    _keep(path, probs)
    return probs


def kept_space(model, model_path, images, cache_dir=None, progress=None) -> dict:
    """`core.inspect.feature_space` for a saved model (default limit and seed), kept on
    disk as `kept_probs` keeps probabilities; `kept_probs` keeps it in passing.

    Args:
        model, model_path, images, cache_dir: as for `kept_probs`.
        progress: as for `feature_space`; not called when the space is read from disk.

    Returns:
        the `feature_space` dict.

    Raises:
        ValueError: the model has no `Dense` layer.
    """
    from core.inspect import feature_space

    path = _space_path(_content_digest(model_path, images), cache_dir)
    space = _read_kept(path, _read_space)
    if space is not None:
        return space
    space = feature_space(model, images, progress=progress)
    _keep(path, space)
    return space


def kept_novelty(check, model_path, images, cache_dir=None, progress=None) -> np.ndarray:
    """`check.scores(images)` for a saved model's `core.novelty.Novelty`, kept on disk as
    `kept_probs` keeps probabilities (5,000 images: about 9 s here; 20 KB).

    Args:
        check: the model's check; a refitted one is another question.
        model_path, images, cache_dir: as for `kept_probs`.
        progress: as for `Novelty.scores`; not called when the scores are read from disk.

    Returns:
        float32 `(N,)`.
    """
    path = _novelty_path(_content_digest(model_path, images), check, cache_dir)
    scores = _read_kept(path, np.load)
    if scores is not None and scores.shape == (len(images),):
        return scores
    scores = check.scores(images, progress=progress)
    _keep(path, scores)
    return scores


def kept_robustness(model, model_path, images, labels, cache_dir=None, progress=None) -> dict:
    """`core.adversarial.robustness` of a saved model on labelled images (default ladder,
    steps and seed), kept on disk as `kept_probs` keeps probabilities.

    Args:
        model, model_path, images, cache_dir: as for `kept_probs`.
        labels: int `(N,)`; other labels are another question.
        progress: as for `robustness`; not called when the answer is read from disk.
    """
    from core.adversarial import robustness

    kept = robustness_if_kept(model_path, images, labels, cache_dir)
    if kept is not None:
        return kept
    found = robustness(model, images, labels, progress=progress)
    _keep(_robustness_path(_content_digest(model_path, images), labels, cache_dir), found)
    return found


def robustness_if_kept(model_path, images, labels, cache_dir=None) -> dict | None:
    """What `kept_robustness` would read from disk, or None when it would attack (nothing
    kept, or a file that cannot be read or is for another number of images)."""
    path = _robustness_path(_content_digest(model_path, images), labels, cache_dir)
    kept = _read_kept(path, _read_arrays)
    return kept if kept is not None and len(kept.get("needed", ())) == len(images) else None


def novelty_is_kept(check, model_path, images, cache_dir=None) -> bool:
    """True when `kept_novelty` would read its answer from disk rather than score."""
    return _novelty_path(_content_digest(model_path, images), check, cache_dir).is_file()


def probs_are_kept(model_path, images, tta="none", cache_dir=None) -> bool:
    """True when `kept_probs` would read its answer from disk rather than predict."""
    content = _content_digest(model_path, images)
    return _probs_path(content, tta, cache_dir).is_file()


def space_is_kept(model_path, images, cache_dir=None) -> bool:
    """True when `kept_space` would read its answer from disk rather than compute."""
    content = _content_digest(model_path, images)
    return _space_path(content, cache_dir).is_file()


_DIGESTS: list = []  # (model file's identity, weak reference to the images, digest), newest last
KEPT_DIGESTS = 8
_DIGESTS_LOCK = threading.Lock()


def _content_digest(model_path, images):
    """A hash of the model file's bytes and the images' (a copy: callers add a question).

    Hashing the 45,000 training images takes about 0.3 s here, and a page asks several
    questions of the same images (is it kept? read it; the space; the check), so a digest
    is remembered while its images are alive and the model file is unchanged (same size,
    time and inode). The images are taken as unchanging while alive: a dataset's arrays are
    never written to.
    """
    stat = Path(model_path).stat()
    key = (str(Path(model_path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _DIGESTS_LOCK:  # the dashboard's sessions are threads
        for i, (known, ref, digest) in enumerate(_DIGESTS):
            if known == key and ref() is images:
                _DIGESTS.append(_DIGESTS.pop(i))
                return digest.copy()
    digest = hashlib.blake2b(f"v2|{images.shape}".encode(), digest_size=12)
    digest.update(Path(model_path).read_bytes())
    digest.update(np.ascontiguousarray(images).data)
    try:
        ref = weakref.ref(images)
    except TypeError:  # not an array that can be referred to weakly: hashed every time
        return digest
    with _DIGESTS_LOCK:
        _DIGESTS.append((key, ref, digest))
        del _DIGESTS[:-KEPT_DIGESTS]
    return digest.copy()


def _probs_path(content, tta: str, cache_dir) -> Path:
    return _kept_path(content, f"probs|{tta}", "probs-{}.npy", cache_dir)


def _space_path(content, cache_dir) -> Path:
    from core.inspect import SPACE_LIMIT

    return _kept_path(content, f"space|{SPACE_LIMIT}|0", "space-{}.npz", cache_dir)


def _novelty_path(content, check, cache_dir) -> Path:
    fitted = hashlib.blake2b(np.ascontiguousarray(check.calibration).data, digest_size=8)
    return _kept_path(content, f"novelty|{fitted.hexdigest()}", "novelty-{}.npy", cache_dir)


def _robustness_path(content, labels, cache_dir) -> Path:
    from core.adversarial import EPSILONS, STEPS

    named = hashlib.blake2b(np.ascontiguousarray(labels, np.int64).data, digest_size=8)
    question = f"robustness|{EPSILONS}|{STEPS}|{named.hexdigest()}"
    return _kept_path(content, question, "robustness-{}.npz", cache_dir)


def _kept_path(content, question: str, name: str, cache_dir) -> Path:
    from core.data import default_cache_dir

    digest = content.copy()  # the model's and the images' bytes, read once per question
    digest.update(question.encode())
    return Path(cache_dir or default_cache_dir()) / name.format(digest.hexdigest())


def _read_kept(path: Path, read):
    """`read(path)` of a kept file, which becomes the most recently used; None when it is
    not kept yet or cannot be read (a torn file: a `.npz` raises `BadZipFile`)."""
    try:
        value = read(path)
        os.utime(path)
        return value
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _read_arrays(path: Path) -> dict:
    with np.load(path) as kept:
        return {k: kept[k] for k in kept.files}


def _read_space(path: Path) -> dict:
    with np.load(path) as kept:
        return {k: kept[k] for k in ("index", "xy", "explained")} | {"dims": int(kept["dims"])}


def _keep(path: Path, value) -> None:
    """Writes probabilities (an array) or a space (a dict) atomically, then forgets all but
    the newest `KEPT_PREDICTIONS` files of its kind. Kept is only a saving: errors pass."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, **value) if isinstance(value, dict) else np.save(buf, value)
        atomic_write_bytes(path, buf.getvalue())
        kind = path.name.split("-")[0]
        for old in sorted(path.parent.glob(f"{kind}-*{path.suffix}"), key=_mtime)[
            :-KEPT_PREDICTIONS
        ]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # what we cannot keep only costs a prediction next time


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _scores(values: dict) -> dict[str, float | None]:
    """Scores as floats, None for NaN (JSON has no NaN)."""
    return {k: None if np.isnan(v) else float(v) for k, v in values.items()}


def figure(value: float | None, spec: str, missing: str = "") -> str:
    """`value` formatted by `spec`, or `missing` where it is None or NaN (a recall of a
    class without images)."""
    return missing if value is None or np.isnan(value) else format(value, spec)


@dataclass
class Report:
    """Everything the Evaluate page and the CLI show for one model on one split."""

    class_names: list[str]
    accuracy: float
    loss: float
    top3_accuracy: float
    confusion: np.ndarray
    per_class: dict[str, np.ndarray]
    averages: dict[str, dict[str, float]]
    probs: np.ndarray
    y_true: np.ndarray

    def to_dict(self) -> dict:
        """JSON-ready metrics (without the per-image probabilities)."""
        d = asdict(self)
        d.pop("probs"), d.pop("y_true")
        d["confusion"] = self.confusion.tolist()
        d["per_class"] = {row.pop("class"): row for row in self.per_class_rows()}
        d["averages"] = {k: _scores(v) for k, v in self.averages.items()}
        d["count"] = int(len(self.y_true))
        d["accuracy_interval"] = list(self.accuracy_interval())
        d["balanced_accuracy"] = self.balanced_accuracy()
        calib = calibration(self.probs, self.y_true)
        d["expected_calibration_error"], d["confidence_gap"] = calib.ece, calib.gap
        return d

    def accuracy_interval(self) -> tuple[float, float]:
        """The accuracy's 95% Wilson interval: where it would likely lie on other images
        like these, drawn the same way."""
        low, high = wilson_interval(np.trace(self.confusion), self.confusion.sum())
        return float(low), float(high)

    def balanced_accuracy(self) -> float:
        """The mean of the recalls of the classes with images here: every class counts the
        same, however many images it has (the accuracy of a model that always answers the
        largest class of a 9:1 split is 90%, its balanced accuracy 50%)."""
        return self.averages["macro"]["recall"]  # over the classes with images (`averages`)

    def averages_summary(self) -> str:
        """The macro and weighted F1 in a line, and the classes they leave out (those
        without images here)."""
        avg = self.averages
        said = f"Macro average F1 {figure(avg['macro']['f1'], '.3f', '-')} · weighted F1 "
        said += figure(avg["weighted"]["f1"], ".3f", "-")
        absent = datastats.without_images(self.class_names, self.per_class["support"])
        if absent and len(absent) < len(self.class_names):
            said += (
                f", over the classes with images here: {', '.join(absent)} "
                f"{'has' if len(absent) == 1 else 'have'} none, so no recall or F1"
            )
        return said + "."

    def recall_intervals(self) -> tuple[np.ndarray, np.ndarray]:
        """Each class's recall's 95% Wilson interval, over that class's images."""
        return wilson_interval(np.diag(self.confusion), self.confusion.sum(axis=1))

    def per_class_rows(self) -> list[dict]:
        """Per class: precision, recall, F1, support, and the recall's 95% interval; None
        for what a class without images here has not (`per_class_metrics`)."""
        low, high = self.recall_intervals()
        rows = []
        for i, name in enumerate(self.class_names):
            support = int(self.per_class["support"][i])
            interval = (float(low[i]), float(high[i])) if support else (None, None)
            scores = _scores({k: self.per_class[k][i] for k in _SCORES})
            rows.append({"class": name, **scores, "support": support})
            rows[-1] |= dict(zip(_INTERVAL, interval, strict=True))
        return rows

    def per_class_csv(self) -> str:
        """Per-class precision, recall, F1, support and the recall's 95% interval, then
        the two averages, as CSV."""
        out = io.StringIO()
        rows = csv.writer(out, lineterminator="\n")  # quotes a class name with a comma
        rows.writerow(["class", *_SCORES, "support", *_INTERVAL])
        for r in self.per_class_rows():
            scores, interval = (
                [figure(r[k], ".6f") for k in keys] for keys in (_SCORES, _INTERVAL)
            )
            rows.writerow([r["class"], *scores, r["support"], *interval])
        for kind, avg in self.averages.items():
            rows.writerow([f"{kind} avg", *(figure(avg[k], ".6f") for k in _SCORES), "", "", ""])
        return out.getvalue()

    def predictions_csv(self, files=None) -> str:
        """One row per image, in the split's order, as CSV: its index, its file (`files`,
        an image folder's paths for the split, or None), label, answer, whether it is right,
        the answer's probability and each class's (`p(<class>)`): sorted by the answer's
        probability, the right=False rows on top are the confident mistakes, where a
        wrong label is often found."""
        out = io.StringIO()
        rows = csv.writer(out, lineterminator="\n")
        rows.writerow(
            ["index", "file", "label", "answer", "right", "probability"]
            + [f"p({name})" for name in self.class_names]
        )
        names, answers = self.class_names, self.probs.argmax(axis=1)
        for i, probs in enumerate(self.probs):
            label, answer = self.y_true[i], answers[i]
            file = "" if files is None else str(files[i])
            said = [names[label], names[answer], bool(label == answer), f"{probs[answer]:.6f}"]
            rows.writerow([i, file, *said, *(f"{p:.6f}" for p in probs)])
        return out.getvalue()

    def cell(self, true_class: int, pred_class: int) -> np.ndarray:
        """Indices of the images in one confusion-matrix cell, most confident first."""
        pred = self.probs.argmax(axis=1)
        idx = np.flatnonzero((self.y_true == true_class) & (pred == pred_class))
        return idx[np.argsort(-self.probs[idx, pred_class], kind="stable")]

    def top_k(self, index: int, k: int = 3) -> list[tuple[str, float]]:
        """The `k` most probable classes of one image, as (name, probability)."""
        return top_classes(self.probs[index], self.class_names, k)


def report_from_probs(probs: np.ndarray, y_true: np.ndarray, class_names: list[str]) -> Report:
    """Builds a `Report` from predicted probabilities `(N, C)` and int labels `(N,)`."""
    y_true = np.asarray(y_true, np.int64)
    cm = confusion_matrix(y_true, probs.argmax(axis=1), len(class_names))
    per_class = per_class_metrics(cm)
    return Report(
        class_names=list(class_names),
        accuracy=float(np.trace(cm) / max(1, cm.sum())),
        loss=log_loss(probs, y_true) if len(y_true) else float("nan"),
        top3_accuracy=top_k_accuracy(probs, y_true, 3) if len(y_true) else float("nan"),
        confusion=cm,
        per_class=per_class,
        averages=averages(per_class),
        probs=probs,
        y_true=y_true,
    )


def evaluate(model, images, labels, class_names, batch_size=256, tta="none") -> Report:
    """Predicts and scores one split. See `predict_probs` and `report_from_probs`."""
    return report_from_probs(predict_probs(model, images, batch_size, tta), labels, class_names)


def class_subset(model_classes: list[str], num_outputs: int, data_classes: list[str]):
    """Which of a model's outputs is each of a dataset's classes: the shipped CIFAR-10 model
    can be scored on a folder of `cat/` and `dog/` photos, its answers among those two.

    Names match exactly, else ignoring case and the spaces around them ("Cat" is "cat").

    Args:
        model_classes: the model card's class names; empty when the card has none, which
            counts the dataset's as the model's when the numbers agree.
        num_outputs: how many classes the model answers.
        data_classes: the dataset's class names, in label order.

    Returns:
        The model's output index of each dataset class, a list; None when they are the
        model's own classes in its order (nothing to map).

    Raises:
        DataError: the model does not know every class of the dataset; the sentence names both.
    """
    from core.registry import class_list

    known = list(model_classes) or (list(data_classes) if num_outputs == len(data_classes) else [])
    loose: dict[str, int | None] = {}
    for i, name in enumerate(known):
        key = name.strip().casefold()
        loose[key] = None if key in loose else i  # two names alike: only exact ones count
    found = [
        known.index(name) if name in known else loose.get(name.strip().casefold())
        for name in data_classes
    ]
    if not known or None in found or len(set(found)) < len(found):
        missing = [n for n, i in zip(data_classes, found, strict=True) if i is None]
        said = f" It does not know {class_list(missing)}." if known and missing else ""
        raise DataError(
            f"The model answers {num_outputs} classes"
            + (f" ({class_list(known)})" if known else "")
            + f" and the dataset has {len(data_classes)} ({class_list(data_classes)}): it "
            f"can score only images of classes it knows.{said}"
        )
    return None if found == list(range(num_outputs)) else found


def restricted(probs: np.ndarray, subset: list[int]) -> np.ndarray:
    """A model's probabilities `(N, C)` among the classes `subset`, renormalised to sum to
    1: float32 `(N, len(subset))` (uniform where it gave them nothing at all)."""
    part = np.asarray(probs, np.float64)[:, subset]
    total = part.sum(axis=1, keepdims=True)
    even = np.full_like(part, 1 / max(1, len(subset)))
    return np.where(total > 0, part / np.where(total > 0, total, 1), even).astype(np.float32)


def all_answers(probs: np.ndarray, y_true: np.ndarray, subset: list[int], model_classes):
    """How a model answered a dataset's images over all its classes, the dataset's
    `subset` of them among them, as the Classify page answers a photo.

    Returns:
        dict: `images`; `right`, the share answered with their own class; `outside`, the
        share answered with a class the dataset does not have; `others`, those answers as
        `(class name, count)`, most frequent first; `matrix`, int64 `(len(subset),
        len(model_classes))` counts of each true class's answers.
    """
    answers = np.asarray(probs).argmax(axis=1)
    truth = np.asarray(subset, np.int64)[np.asarray(y_true, np.int64)]
    outside = ~np.isin(answers, subset)
    counts = np.bincount(answers[outside], minlength=len(model_classes))
    others = [(model_classes[i], int(counts[i])) for i in np.argsort(-counts, kind="stable")]
    matrix = np.zeros((len(subset), len(model_classes)), np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), answers), 1)
    n = max(1, len(answers))
    return {
        "images": len(answers),
        "right": float((answers == truth).sum() / n),
        "outside": float(outside.sum() / n),
        "others": [(name, c) for name, c in others if c],
        "matrix": matrix,
    }


FRAMED = {
    "crop": "cut to their centre squares",
    "squash": "squashed whole to squares",
}


def subset_sentence(answers: dict, model_classes, data_classes, framed: str | None = None) -> str:
    """What scoring a model on a dataset of some of its classes means, and how it answered
    over all of them (`all_answers`); `framed`, a `FRAMED` key when its pictures were made
    square as the Classify page frames a photo for the model, not as its run read its own."""
    from core.registry import class_list

    others = ", ".join(f"{name} {count:,}" for name, count in answers["others"][:5])
    return (
        f"The model knows {len(model_classes)} classes and the dataset has "
        f"{len(data_classes)} of them ({class_list(data_classes)}): the figures count its "
        f"answers among those {len(data_classes)}. Over all {len(model_classes)}, as it "
        f"answers a photo, it was right on {answers['right']:.1%} of the "
        f"{answers['images']:,} images"
        + (
            f"; on {answers['outside']:.1%} it answered a class the dataset does not have "
            f"({others})."
            if answers["others"]
            else ", and never answered a class the dataset does not have."
        )
        + (
            f" The pictures were {FRAMED[framed]}, as the Classify page frames a photo for "
            "this model."
            if framed
            else ""
        )
    )


CALIBRATION_BINS = 10


@dataclass
class Calibration:
    """How well a model's confidence (its top probability) matches how often it is right."""

    edges: np.ndarray  # (bins + 1,) equal-width confidence bins over [0, 1]
    count: np.ndarray  # (bins,) images per bin
    confidence: np.ndarray  # (bins,) mean top probability per bin; nan where empty
    accuracy: np.ndarray  # (bins,) share right per bin; nan where empty
    ece: float  # expected calibration error: sum over bins of share * |accuracy - confidence|
    gap: float  # mean confidence minus accuracy: > 0 overconfident, < 0 underconfident

    def summary(self) -> str:
        """One sentence for a reader: how far and which way confidence is off."""
        points = abs(self.gap) * 100
        if points < 1:
            way = "Calibrated: its confidence matches its accuracy to within a point on average"
        else:
            over = self.gap > 0
            way = (
                f"{'Over' if over else 'Under'}confident: its confidence is {points:.1f} "
                f"points {'above' if over else 'below'} its accuracy on average"
            )
        return (
            f"{way} (expected calibration error {self.ece:.3f}; 0 when every bar meets the "
            "diagonal)."
        )


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softened (`temperature` > 1) or sharpened (< 1): softmax(log p / T).

    The order of the classes, so every prediction, stays as it was; a temperature of 1
    returns `probs` as float32, untouched by the log and exp round trip.
    """
    if temperature == 1.0:
        return np.asarray(probs, np.float32)
    z = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None)) / temperature
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def fit_temperature(probs: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature that makes `probs` most likely for `y_true` (temperature scaling).

    One number for all classes, found by golden-section search on its logarithm between
    1/20 and 20 (the mean log-loss is unimodal there). Label smoothing, for one, leaves a
    model underconfident, which a temperature below 1 undoes.

    Args:
        probs: float `(N, C)`, e.g. a validation split's probabilities.
        y_true: int labels `(N,)`.

    Returns:
        The temperature, rounded to 4 decimals; 1.0 when there are no images.
    """
    if len(y_true) == 0:
        return 1.0
    y_true = np.asarray(y_true)
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None))

    def loss(log_t: float) -> float:
        z = logp / math.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(z)), y_true]))

    lo, hi, ratio = math.log(0.05), math.log(20.0), (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if loss(a) < loss(b):
            hi = b
        else:
            lo = a
    return round(math.exp((lo + hi) / 2), 4)


def held_out_scaled(probs: np.ndarray, y_true: np.ndarray, seed: int = 0) -> np.ndarray:
    """`probs` after temperature scaling, each image scaled by a temperature not fitted on it.

    The images are split in two halves at random (`seed`); each half is scaled by the
    temperature fitted on the other. Scores of a temperature fitted and measured on the
    same images flatter it; on these, they are what to expect on new images of the kind.
    """
    y_true = np.asarray(y_true)
    halves = np.array_split(np.random.default_rng(seed).permutation(len(y_true)), 2)
    scaled = np.empty(np.shape(probs), np.float32)
    for fit_on, score_on in (halves, halves[::-1]):
        t = fit_temperature(probs[fit_on], y_true[fit_on])
        scaled[score_on] = with_temperature(probs[score_on], t)
    return scaled


def held_out_ece(probs: np.ndarray, y_true: np.ndarray, seed: int = 0) -> float:
    """The calibration error after temperature scaling on images it was not fitted on."""
    return calibration(held_out_scaled(probs, y_true, seed), y_true).ece


MIN_CALIBRATION_IMAGES = 200  # fewer validation images fit a temperature to noise
MIN_CALIBRATION_MISTAKES = 10  # with none, the best fit is "always certain": no fit at all


def too_few_to_calibrate(probs: np.ndarray, y_true: np.ndarray) -> str | None:
    """Why no temperature can be fitted on these validation probabilities, or None.

    Args:
        probs: float `(N, C)` probabilities of images the model did not train on.
        y_true: int `(N,)` their labels.

    Returns:
        A sentence when there are fewer than `MIN_CALIBRATION_IMAGES` images or
        `MIN_CALIBRATION_MISTAKES` mistakes among them; None when a fit is possible.
    """
    n = len(y_true)
    if n < MIN_CALIBRATION_IMAGES:
        return (
            f"{n:,} validation images are too few to fit a temperature on (it takes "
            f"{MIN_CALIBRATION_IMAGES:,} or more)."
        )
    mistakes = int(np.sum(probs.argmax(axis=1) != np.asarray(y_true)))
    if mistakes < MIN_CALIBRATION_MISTAKES:
        right = f"all {n:,}" if mistakes == 0 else f"all but {mistakes} of {n:,}"
        return (
            f"The model gets {right} validation images right: a temperature needs at least "
            f"{MIN_CALIBRATION_MISTAKES} mistakes among them to fit on."
        )
    return None


def calibration_record(probs: np.ndarray, y_true: np.ndarray) -> dict | None:
    """The `"calibration"` entry of a model card, from its validation probabilities.

    Returns:
        `{"temperature", "images", "ece", "ece_scaled", "ece_held_out"}`: the fitted
        temperature, how many images it was fitted on, the expected calibration error before
        and after it, and after it on images it was not fitted on (`held_out_ece`); None
        with fewer than `MIN_CALIBRATION_IMAGES` images or `MIN_CALIBRATION_MISTAKES`
        mistakes among them, too few to say how sure the model should be.
    """
    if too_few_to_calibrate(probs, y_true):
        return None
    temperature = fit_temperature(probs, y_true)
    return {
        "temperature": temperature,
        "images": int(len(y_true)),
        "ece": round(calibration(probs, y_true).ece, 4),
        "ece_scaled": round(calibration(with_temperature(probs, temperature), y_true).ece, 4),
        "ece_held_out": round(held_out_ece(probs, y_true), 4),
    }


def calibration_note(record: dict) -> str:
    """A model card's `"calibration"` entry in words: the temperature and what it leaves.

    Cards written before `"ece_held_out"` existed give the error after the temperature on
    the images it was fitted on, and say so.
    """
    after, where = record.get("ece_held_out"), "on images it was not fitted on"
    if after is None:
        after, where = record["ece_scaled"], "on the images it was fitted on"
    return (
        f"temperature {record['temperature']:g}, fitted on {record['images']:,} validation "
        f"images; calibration error {record['ece']:.3f} before it, {after:.3f} after ({where})"
    )


def selective(probs: np.ndarray, y_true: np.ndarray, points: int = 100) -> dict:
    """What answering only when sure buys: the model answers the images whose top
    probability is at least a threshold and abstains on the rest.

    Args:
        probs: float `(N, C)`; a temperature changes the thresholds, not the curve.
        points: coverages measured, evenly from 1/points to all images.

    Returns:
        `{"coverage", "accuracy", "threshold"}`, float arrays `(points,)` (fewer for fewer
        images): the share of images answered, the accuracy on them, and the lowest top
        probability among them (answering when the top probability is at least this).
    """
    if not len(y_true):
        return {k: np.zeros(0) for k in ("coverage", "accuracy", "threshold")}
    top = probs.max(axis=1)
    order = np.argsort(-top, kind="stable")
    right = np.cumsum(probs.argmax(axis=1)[order] == np.asarray(y_true)[order])
    counts = np.unique(np.ceil(np.linspace(1, points, points) / points * len(top)).astype(int))
    return {
        "coverage": counts / len(top),
        "accuracy": right[counts - 1] / counts,
        "threshold": top[order][counts - 1],
    }


def selective_at(curve: dict, share: float) -> tuple[float, float, float]:
    """The point of a `selective` curve that answers at least `share` of the images.

    Returns:
        (share answered, accuracy on them, the lowest top probability among them).
    """
    i = min(int(np.searchsorted(curve["coverage"], share - 1e-9)), len(curve["coverage"]) - 1)
    return tuple(float(curve[k][i]) for k in ("coverage", "accuracy", "threshold"))


def calibration(probs: np.ndarray, y_true: np.ndarray, bins: int = CALIBRATION_BINS) -> Calibration:
    """Bins images by their top probability and compares it with how often they are right.

    Args:
        probs: float `(N, C)` class probabilities.
        y_true: int labels `(N,)`.
        bins: equal-width confidence bins over [0, 1] (the last includes 1).

    Returns:
        A `Calibration` (a reliability diagram's bars, ECE and the mean gap).
    """
    conf = probs.max(axis=1).astype(np.float64)
    right = (probs.argmax(axis=1) == np.asarray(y_true)).astype(np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    sum_conf = np.bincount(which, weights=conf, minlength=bins)
    sum_right = np.bincount(which, weights=right, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, accuracy = sum_conf / count, sum_right / count
    n = max(len(conf), 1)
    return Calibration(
        edges=np.linspace(0.0, 1.0, bins + 1),
        count=count,
        confidence=mean_conf,
        accuracy=accuracy,
        ece=float(np.abs(sum_right - sum_conf).sum() / n),
        gap=float((conf.sum() - right.sum()) / n),
    )


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test of two models scored on the same images.

    Of the `only_a + only_b` images exactly one of the two gets right, each would go to
    either with probability 1/2 if both were equally good; the p-value is the chance of
    a split at least as uneven as this one (a binomial tail, doubled, at most 1).

    Args:
        only_a: images only the first model gets right.
        only_b: images only the second model gets right.

    Returns:
        The p-value, in (0, 1]; 1.0 when no image separates them.
    """
    n, low = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    # log C(n, k) - n log 2 for k = 0..low, summed in log space: n reaches 45,000.
    terms = np.array(
        [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in range(low + 1)]
    ) - n * math.log(2)
    top = terms.max()
    return float(min(1.0, 2 * math.exp(top) * np.exp(terms - top).sum()))


@dataclass
class Comparison:
    """Where two models' answers on the same images differ (a: the first, b: the second)."""

    both_right: int
    both_wrong: int
    only_a: np.ndarray  # indices right only with a, b's most confident mistakes first
    only_b: np.ndarray  # indices right only with b, a's most confident mistakes first
    p_value: float  # exact McNemar test on len(only_a) against len(only_b)

    def verdict(self, a: str, b: str) -> str:
        """One sentence for a reader: which is better here, and whether it could be chance."""
        sentence = self._verdict(a, b)
        return sentence[:1].upper() + sentence[1:]

    def _verdict(self, a: str, b: str) -> str:
        na, nb = len(self.only_a), len(self.only_b)
        if na == nb:
            return f"{a} and {b} are right on the same number of these images."
        better, worse = (b, a) if nb > na else (a, b)
        split = (
            f"of the {na + nb:,} images only one of them gets right, {max(na, nb):,} go to {better}"
        )
        if self.p_value < 0.05:
            return (
                f"{better} is better than {worse} here: {split}; a split this uneven between "
                f"two equally good models would happen with probability {self.p_value:.2g} "
                "(McNemar's test)."
            )
        return (
            f"{better} is ahead of {worse}, but that may be chance: {split}, and a split this "
            f"uneven happens with probability {self.p_value:.2g} between two equally good "
            "models (McNemar's test; below 0.05 is the usual line)."
        )


def compare(a: Report, b: Report) -> Comparison:
    """Compares two reports on the same images (same split, same order).

    Raises:
        ValueError: the reports are not of the same images.
    """
    if not np.array_equal(a.y_true, b.y_true):
        raise ValueError("The two reports are not of the same images.")
    right_a = a.probs.argmax(1) == a.y_true
    right_b = b.probs.argmax(1) == b.y_true
    only_a, only_b = np.flatnonzero(right_a & ~right_b), np.flatnonzero(right_b & ~right_a)
    only_a = only_a[np.argsort(-b.probs[only_a].max(1), kind="stable")]
    only_b = only_b[np.argsort(-a.probs[only_b].max(1), kind="stable")]
    return Comparison(
        both_right=int((right_a & right_b).sum()),
        both_wrong=int((~right_a & ~right_b).sum()),
        only_a=only_a,
        only_b=only_b,
        p_value=mcnemar_p(len(only_a), len(only_b)),
    )


def resolve_model_path(target: str | Path) -> Path:
    """Returns the `.keras` file of a run directory or a model path.

    Raises:
        RunError: there is no model there.
    """
    target = Path(target)
    path = target / "model.keras" if target.is_dir() else target
    if not path.is_file():
        raise RunError(f"No model at {target}: give a run directory or a .keras file.")
    return path


def format_report(report: Report) -> str:
    """Returns the metrics as a fixed-width text table for the terminal."""
    low, high = report.accuracy_interval()
    lines = [
        f"accuracy {report.accuracy:.4f} (95% interval {low:.4f}-{high:.4f})   "
        f"loss {report.loss:.4f}   "
        + (f"top-3 {report.top3_accuracy:.4f}   " if len(report.class_names) > 3 else "")
        + f"({len(report.y_true)} images)",
        f"balanced accuracy {report.balanced_accuracy():.4f} (the mean of the class recalls)",
        "",
        f"{'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}{'recall 95%':>15}",
    ]
    for row in report.per_class_rows():
        scores = "".join(f"{figure(row[k], '.4f', '-'):>10}" for k in _SCORES)
        interval = "-".join(figure(row[k], ".3f", "") for k in _INTERVAL)
        lines.append(f"{row['class'][:13]:<14}{scores}{row['support']:>9d}{interval:>15}")
    for kind, avg in report.averages.items():
        scores = "".join(f"{figure(avg[k], '.4f', '-'):>10}" for k in _SCORES)
        lines.append(f"{kind + ' avg':<14}{scores}")
    lines += ["", calibration(report.probs, report.y_true).summary()]
    return "\n".join(lines)


def main(argv=None) -> int:
    import keras

    from core.data import load_dataset
    from core.fileio import read_json
    from core.model import load_model
    from core.registry import card_temperature, config_fit, data_fit

    p = argparse.ArgumentParser(
        prog="python -m core.evaluate",
        description="Evaluate a trained model (a run directory or a .keras file).",
    )
    p.add_argument("target", help="run directory or .keras model file")
    p.add_argument(
        "--data",
        default=None,
        help="dataset (cifar10, image folder, CIFAR archive); default: the run's",
    )
    p.add_argument("--split", default="val", choices=("train", "val", "test"))
    p.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="default: the run's, so 'val' is the run's own validation split",
    )
    p.add_argument("--seed", type=int, default=None, help="split seed; default: the run's")
    add_tta_argument(p)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--robustness",
        type=int,
        default=0,
        metavar="N",
        help="also attack N images of the split (as many of each class) and print the "
        "accuracy left when each pixel may move 1, 2, 4, 8 or 16 levels (core.adversarial; "
        "about 0.07 s an image for the shipped model on 2 cores)",
    )
    p.add_argument("--json", type=Path, help="also write the metrics to this JSON file")
    p.add_argument(
        "--answers",
        type=Path,
        metavar="CSV",
        help="also write every image's answer to this CSV file: its file (image folders), "
        "label, answer, whether right, each class's probability after the model's "
        "temperature, as the Evaluate page's download (Report.predictions_csv)",
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="HTML",
        help="also write the evaluation as one HTML file to print or send, as the Evaluate "
        "page's 'Download a report (HTML)'",
    )
    args = p.parse_args(argv)
    try:
        path = resolve_model_path(args.target)
        card = read_json(path.parent / "model_card.json", {}) or {}
        train_cfg = card.get("train_config") or read_json(path.parent / "config.json", {}) or {}
        data = args.data or train_cfg.get("data")
        if not data:
            raise RunError("Say which data to evaluate on with --data.")
        val_fraction = args.val_fraction
        split_as = dict(
            image_size=int(card.get("input_size") or 32),
            val_fraction=val_fraction
            if val_fraction is not None
            else train_cfg.get("val_fraction", 0.1),
            seed=args.seed if args.seed is not None else train_cfg.get("seed", 0),
        )
        # Its pictures made square as it learnt from them.
        dataset = load_dataset(data, **split_as, fit=config_fit(train_cfg))
        model = load_model(path)
        known, outputs = card.get("class_names") or [], int(model.output_shape[-1])
        subset = class_subset(known, outputs, dataset.class_names)
        reframed = None
        fit = data_fit(card, dataset.class_names)
        if fit != config_fit(train_cfg) and dataset.summary()["not_square"] > 0:
            reframed = fit  # not its own data: framed as the Classify page frames a photo
            dataset = load_dataset(data, **split_as, fit=reframed)
        x, y = dataset.split(args.split)
        bar = keras.utils.Progbar(len(x), verbose=progress_verbose(), unit_name="image")
        probs = predict_probs(
            model, x, args.batch_size, args.tta, progress=lambda done, _: bar.update(done)
        )
        answers = None
        if subset is not None:  # some of the model's classes: scored among them
            answers = all_answers(probs, y, subset, known)
            probs = restricted(probs, subset)
        report = report_from_probs(probs, y, dataset.class_names)
        labels = y if subset is None else np.asarray(subset)[y]  # its own, for the attack
        robust = _robustness(model, x, labels, args.robustness) if args.robustness > 0 else None
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"{path} on {dataset.source}, split '{args.split}'"
        + ("" if args.tta == "none" else f" with {args.tta} TTA")
    )
    if answers is not None:
        print(subset_sentence(answers, known, dataset.class_names, reframed))
    print(format_report(report))
    metrics = report.to_dict()
    if answers is not None:
        metrics["all_classes"] = {
            "model_classes": known,
            "accuracy": answers["right"],
            "outside": answers["outside"],
            "confusion": answers["matrix"].tolist(),
        }
    if robust is not None:
        print(format_robustness(robust))
        metrics["robustness"] = {
            "images": len(robust["needed"]),
            **{k: robust[k].tolist() for k in ("epsilons", "attacked", "noise")},
        }
    outputs = [(args.json, lambda: json.dumps(metrics, indent=2))]
    temperature = card_temperature(card)
    tempered = report_from_probs(with_temperature(probs, temperature), y, report.class_names)
    if args.answers:
        files = dataset.files.get(args.split)
        outputs.append((args.answers, lambda: tempered.predictions_csv(files)))
    if args.report:
        said = (path.parent.name, card, dataset, args.split, args.tta, temperature)
        among = (
            None
            if answers is None
            else subset_sentence(answers, known, dataset.class_names, reframed)
        )
        outputs.append((args.report, lambda: _report_html(report, tempered, *said, among)))
    for path, text in outputs:
        try:
            if path is not None:
                path.write_text(text())
        except OSError as err:
            print(f"error: could not write {path}: {err.strerror or err}", file=sys.stderr)
            return 1
    return 0


def _report_html(report, tempered, name, card, dataset, split, tta, temperature, among) -> str:
    """The Evaluate page's HTML report of a command-line evaluation; the matrix in row
    shares where the classes are uneven, as the page first shows it; `among`, the
    `subset_sentence` of a model scored among some of its classes, or None."""
    from core import datastats
    from ui import report as page  # the dashboard's charts: ui/ modules without streamlit

    facts = page.facts(name, card, dataset.source, split, tta, temperature)
    facts |= {"Classes": among} if among else {}
    uneven = datastats.imbalance(report.per_class["support"]) >= datastats.UNEVEN
    x, title = dataset.split(split)[0], f"{name}: {split} split"
    files = dataset.files.get(split)
    return page.evaluation_html(report, tempered, x, files, title, facts, uneven, temperature)


def add_tta_argument(parser: argparse.ArgumentParser) -> None:
    """`--tta [flip|flip+shift]` for the command lines that answer (evaluate, classify)."""
    parser.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default="none",
        choices=list(TTA_MODES),
        help="average over views: 'flip' (the default with a bare --tta) or 'flip+shift'",
    )


def progress_verbose() -> int:
    """A Keras progress bar's `verbose` for the command lines: 1 on a terminal, 2 (a line
    at the end, without carriage returns) when the output goes to a file."""
    return 1 if sys.stdout.isatty() else 2


def _robustness(model, x, y, count: int) -> dict:
    """`core.adversarial.robustness` on `count` images of a split, as many of each class,
    under a Keras progress bar."""
    import keras

    from core.adversarial import robustness
    from core.inspect import curve_rows

    rows = np.arange(len(y)) if count >= len(y) else curve_rows(y, count)
    print(f"Attacking {len(rows):,} images", file=sys.stderr)
    bars = []

    def progress(done: int, total: int) -> None:
        if not bars:  # the total (a batch of every image at every rung) comes with the call
            bars.append(keras.utils.Progbar(total, verbose=progress_verbose(), unit_name="batch"))
        bars[0].update(done)

    return robustness(model, x[rows], y[rows], progress=progress)


def format_robustness(found: dict) -> str:
    """The robustness table of `core.adversarial.robustness`, as the CLI prints it."""
    lines = [
        f"Robustness on {len(found['needed']):,} images (float32, no test-time augmentation):",
        f"{'max change (levels of 255)':>27}  {'attacked':>8}  {'random noise':>12}",
    ]
    for e, a, n in zip(found["epsilons"], found["attacked"], found["noise"], strict=True):
        lines.append(f"{int(e):>27}  {a:8.1%}  {n:12.1%}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
