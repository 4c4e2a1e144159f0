"""Classifying uploaded images with a loaded model: top-k, entropy, and an honest doubt."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.images import decode_image

UNSURE_TOP = 0.5  # below this top probability the answer is flagged as unsure
UNSURE_ENTROPY = 0.6  # above this share of the maximum entropy, likewise


@dataclass
class Prediction:
    """One image's answer.

    Attributes:
        pixels: uint8 `(S, S, 3)`: exactly what the model saw.
        probs: float32 `(C,)`.
        top: `[(class_name, probability), ...]`, best first.
        entropy: normalised entropy in [0, 1]; 1 means all classes equally likely.
        unsure: True when the top probability is low or the entropy high.
        novelty: how unlike the training images the picture is (`core.novelty`; above
            about 1 is rarer than 99% of them), or None without a check.
        unfamiliar: True when the novelty is above the check's threshold.
    """

    pixels: np.ndarray
    probs: np.ndarray
    top: list[tuple[str, float]]
    entropy: float
    unsure: bool
    novelty: float | None = None
    unfamiliar: bool = False

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def confidence(self) -> float:
        return self.top[0][1]


def predict_pixels(model, pixels: np.ndarray) -> np.ndarray:
    """Probabilities for uint8 images `(N, S, S, 3)` in one compiled forward pass.

    `predict_on_batch` runs Keras's traced predict function: for one image of the fast
    net it took a third of the time of an eager `model(x)` call, which walks the layers
    in Python (docs/BENCHMARKS.md); `predict` would add a data adapter and callbacks.

    Returns:
        float32 `(N, C)`.
    """
    return np.asarray(model.predict_on_batch(np.asarray(pixels, np.float32)), np.float32)


def normalised_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of each row of `probs` divided by log(C): 0 = certain, 1 = uniform."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-1) / np.log(probs.shape[-1])


def top_classes(probs: np.ndarray, class_names: list[str], k: int = 3) -> list[tuple[str, float]]:
    """The `k` likeliest classes of one image as `(name, probability)`, likeliest first."""
    return [(class_names[i], float(probs[i])) for i in np.argsort(-probs)[:k]]


def describe(pixels, probs, class_names: list[str], k: int = 3, novelty=None, check=None):
    """Builds a `Prediction` from one image's pixels and probabilities, and optionally its
    novelty score under the `core.novelty.Novelty` `check` that gave it."""
    top = top_classes(probs, class_names, k)
    entropy = float(normalised_entropy(probs))
    unsure = top[0][1] < UNSURE_TOP or entropy > UNSURE_ENTROPY
    if novelty is None or check is None:
        return Prediction(pixels, probs, top, entropy, unsure)
    unfamiliar = bool(check.unfamiliar(np.array([novelty]))[0])
    return Prediction(pixels, probs, top, entropy, unsure, float(novelty), unfamiliar)


def predict_checked(model, pixels: np.ndarray, batch_size=256, tta="none", check=None):
    """Probabilities of uint8 images `(N, S, S, 3)` and, with a check, their novelty.

    Args:
        model: the float model or the int8 copy that answers.
        tta: a key of `core.evaluate.TTA_MODES`.
        check: a `core.novelty.Novelty`, or None. When it is the int8 copy's own check and
            there is no test-time augmentation, one pass of the copy's graph gives the
            answers and the channel means the check needs; otherwise the check reads its
            own model (up to its deepest layer: about another forward pass).

    Returns:
        `(float32 (N, C), float32 (N,) or None)`.
    """
    from core.evaluate import predict_probs  # core.evaluate imports this module

    if check is None:
        return predict_probs(model, pixels, batch_size, tta), None
    if tta == "none" and len(pixels) and check.reader == getattr(model, "channel_means", None):
        from core.novelty import in_batches

        probs, *means = in_batches(model.predict_with_means, pixels, batch_size)
        return probs, check.layer_scores_of(means).max(axis=1, initial=0)
    return predict_probs(model, pixels, batch_size, tta), check.scores(pixels, batch_size)


def classify_bytes(
    model, data: bytes, class_names: list[str], k: int = 3, temperature: float = 1.0
) -> Prediction:
    """Decodes untrusted bytes and classifies them (`temperature` as for `classify_batch`).

    Raises:
        ImageError: the bytes are not a usable image (the message is for the user).
    """
    from core.evaluate import with_temperature  # core.evaluate imports this module

    size = int(model.input_shape[1])
    pixels = decode_image(data, size)
    probs = predict_pixels(model, pixels[None])
    return describe(pixels, with_temperature(probs, temperature)[0], class_names, k)


def classify_batch(
    model,
    files: list[tuple[str, bytes]],
    class_names,
    k=3,
    batch_size=256,
    tta="none",
    temperature=1.0,
    check=None,
):
    """Classifies many uploads in batched forward passes; bad files do not stop the rest.

    Args:
        tta: a key of `core.evaluate.TTA_MODES`: "flip" averages each image's answer with
            its mirror image's (two forward passes).
        temperature: the model card's calibration temperature, applied to the
            probabilities (`core.evaluate.with_temperature`); 1.0 leaves them as they are.
        check: the model's `core.novelty.Novelty`, or None: with it, each prediction says
            whether its picture is unlike the training images.

    Returns:
        `[(name, Prediction or None, error message or None), ...]` in input order.
    """
    from core.errors import ImageError
    from core.evaluate import with_temperature  # it imports this module

    size = int(model.input_shape[1])
    decoded = []
    for name, data in files:
        try:
            decoded.append((name, decode_image(data, size), None))
        except ImageError as err:
            decoded.append((name, None, str(err)))
    good = [d[1] for d in decoded if d[1] is not None]
    probs, novelty = (
        predict_checked(model, np.stack(good), batch_size, tta, check) if good else ([], None)
    )
    probs = iter(with_temperature(probs, temperature) if good else [])
    novelty = iter([None] * len(good) if novelty is None else novelty)
    return [
        (name, describe(px, next(probs), class_names, k, next(novelty), check), None)
        if px is not None
        else (name, None, err)
        for name, px, err in decoded
    ]


RESULT_COLUMNS = ("file", "prediction", "confidence", "unsure", "unfamiliar", "error")


def results_table(results) -> list[dict]:
    """One row per `classify_batch` result: file, prediction, confidence, unsure,
    unfamiliar (None without a novelty check), error."""
    return [
        {
            "file": name,
            "prediction": pred.label if pred else "",
            "confidence": pred.confidence if pred else None,
            "unsure": pred.unsure if pred else None,
            "unfamiliar": pred.unfamiliar if pred and pred.novelty is not None else None,
            "error": error or "",
        }
        for name, pred, error in results
    ]


def results_csv(results) -> str:
    """`results_table` as CSV text (quoted as the csv module does)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, list(RESULT_COLUMNS))
    writer.writeheader()
    writer.writerows(results_table(results))
    return out.getvalue()
