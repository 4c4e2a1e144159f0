"""Classifying uploaded images with a loaded model: top-k, entropy, and an honest doubt."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import heif
from core.errors import CnnError
from core.images import FITS, MAX_UPLOAD_BYTES, decode_views, too_large
from core.words import counted

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
        views: uint8 `(V, S, S, 3)`, the views whose answers were averaged when there were
            several (`fit="three"`; `pixels` is the middle one), else None.
    """

    pixels: np.ndarray
    probs: np.ndarray
    top: list[tuple[str, float]]
    entropy: float
    unsure: bool
    novelty: float | None = None
    unfamiliar: bool = False
    views: np.ndarray | None = None

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
        check: a `core.novelty.Novelty`, or None. When it reads `model` itself (the float
            model's check, or the int8 copy's own) and there is no test-time augmentation,
            one forward pass gives the answers and the channel means the check needs;
            otherwise the check reads its own model (up to its deepest layer: about another
            forward pass).

    Returns:
        `(float32 (N, C), float32 (N,) or None)`.
    """
    from core.evaluate import predict_probs  # core.evaluate imports this module

    if check is None:
        return predict_probs(model, pixels, batch_size, tta), None
    if tta == "none" and len(pixels) and (one_pass := _one_pass(model, check)):
        from core.novelty import in_batches

        probs, *means = in_batches(one_pass, pixels, batch_size)
        return probs, check.layer_scores_of(means).max(axis=1, initial=0)
    return predict_probs(model, pixels, batch_size, tta), check.scores(pixels, batch_size)


def _one_pass(model, check):
    """What gives `model`'s answers and `check`'s channel means in one forward pass, or None
    when the check reads another model (an int8 copy with the float model's check)."""
    if check.reader == getattr(model, "channel_means", None):
        return model.predict_with_means
    if getattr(check.reader, "model", None) is model:
        return check.reader.with_answers
    return None


def classify_bytes(
    model,
    data: bytes,
    class_names: list[str],
    k: int = 3,
    temperature: float = 1.0,
    fit: str = "squash",
) -> Prediction:
    """Decodes untrusted bytes and classifies them (`temperature` and `fit` as for
    `classify_batch`).

    Raises:
        ImageError: the bytes are not a usable image (the message is for the user).
    """
    views = decode_views(data, int(model.input_shape[1]), fit)
    return classify_views(model, views, class_names, k, temperature=temperature)


def classify_batch(
    model,
    files: list[tuple[str, bytes]],
    class_names,
    k=3,
    batch_size=256,
    tta="none",
    temperature=1.0,
    check=None,
    fit="squash",
):
    """Classifies many uploads in batched forward passes; bad files do not stop the rest.

    Args:
        tta: a key of `core.evaluate.TTA_MODES`: "flip" averages each image's answer with
            its mirror image's (two forward passes).
        temperature: the model card's calibration temperature, applied to the
            probabilities (`core.evaluate.with_temperature`); 1.0 leaves them as they are.
        check: the model's `core.novelty.Novelty`, or None: with it, each prediction says
            whether its picture is unlike the training images.
        fit: how a photo that is not square is made square, one of `core.images.FITS`:
            squashed whole, its centre square cropped, or three squares whose
            probabilities are averaged (and whose most familiar one is checked).

    Returns:
        `[(name, Prediction or None, error message or None), ...]` in input order.
    """
    from core.errors import ImageError
    from core.evaluate import with_temperature  # it imports this module

    size = int(model.input_shape[1])
    decoded = []
    with heif.kept_decoder():  # the batch's HEIC photos through one decoding process
        for name, data in files:
            try:
                decoded.append((name, decode_views(data, size, fit), None))
            except ImageError as err:
                decoded.append((name, None, str(err)))
    good = [d[1] for d in decoded if d[1] is not None]
    probs, novelty = (
        predict_checked(model, np.concatenate(good), batch_size, tta, check) if good else ([], None)
    )
    # Each file's views: their probabilities averaged (then the temperature, as after
    # test-time augmentation), the most familiar view's novelty.
    ends = np.cumsum([len(views) for views in good])[:-1]
    probs = iter(
        with_temperature(np.stack([p.mean(0) for p in np.split(probs, ends)]), temperature)
        if good
        else []
    )
    novelty = iter(
        [None] * len(good) if novelty is None else [n.min() for n in np.split(novelty, ends)]
    )
    return [
        (name, _described(views, next(probs), class_names, k, next(novelty), check), None)
        if views is not None
        else (name, None, err)
        for name, views, err in decoded
    ]


def classify_views(
    model, views: np.ndarray, class_names, k=3, tta="none", temperature=1.0, check=None
) -> Prediction:
    """One picture's answer from its views, uint8 `(V, S, S, 3)` (`decode_views`), as
    `classify_batch` gives it: their probabilities averaged, then the temperature; the most
    familiar view's novelty. Arguments as for `classify_batch`."""
    from core.evaluate import with_temperature  # it imports this module

    probs, novelty = predict_checked(model, views, tta=tta, check=check)
    probs = with_temperature(probs.mean(axis=0, keepdims=True), temperature)[0]
    novelty = None if novelty is None else novelty.min()
    return _described(views, probs, class_names, k, novelty, check)


def _described(views, probs, class_names, k, novelty=None, check=None) -> Prediction:
    """`describe` for a picture's views (`core.images.decode_views`): the middle one as
    its pixels, and all of them when there are several."""
    pred = describe(views[len(views) // 2], probs, class_names, k, novelty, check)
    pred.views = views if len(views) > 1 else None
    return pred


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


def results_csv(results, class_names: list[str] | None = None) -> str:
    """`results_table` as CSV text (quoted as the csv module does), and with `class_names`
    each class's probability as a column `p(<class>)` after those, to analyse elsewhere."""
    import csv
    import io

    columns = [f"p({name})" for name in class_names or []]
    rows = results_table(results)
    for row, (_, pred, _) in zip(rows, results, strict=True):
        row |= dict(zip(columns, pred.probs.tolist() if pred else [], strict=False))
    out = io.StringIO()
    writer = csv.DictWriter(out, [*RESULT_COLUMNS, *columns])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# --- command line: the Classify page for files on disk -----------------------------------


def photo_files(paths: list[str | os.PathLike]) -> list[tuple[str, Path, str | None]]:
    """The files `python -m core.classify` reads: each path given, and every file under a
    folder given (in path order, hidden files left out).

    Returns:
        `[(name as shown, path, why it is passed over unread or None), ...]`; a folder's
        files are named by the folder as given and their place in it, and files of other
        types are passed over with the folder check's sentence (`core.data.unsupported_file`).
    """
    from core.data import unsupported_file

    found = []
    for given in map(Path, paths):
        if not given.is_dir():
            found.append((str(given), given, None))
            continue
        for path in sorted(given.rglob("*")):
            inside = path.relative_to(given)
            if path.is_file() and not any(part.startswith(".") for part in inside.parts):
                found.append((str(given / inside), path, unsupported_file(path)))
    return found


def classify_files(model, files, class_names, chunk=256, progress=None, **options) -> list:
    """`classify_batch` over files on disk, `chunk` files at a time so that memory stays
    bounded, in the order of `files` (`photo_files`' rows).

    Args:
        options: `k`, `tta`, `temperature`, `check` and `fit`, as for `classify_batch`.
        progress: `progress(files done)` after each chunk, or None.

    Returns:
        `classify_batch`'s `(name, Prediction or None, error or None)` per file; a file
        passed over, missing, unreadable or over `MAX_UPLOAD_BYTES` gets its sentence.
    """
    results = []
    for start in range(0, len(files), chunk):
        read, early = [], {}
        for name, path, why in files[start : start + chunk]:
            if why is None:
                why, data = _read(path)
            if why is None:
                read.append((name, data))
            else:
                early[len(read) + len(early)] = (name, None, why)
        answers = iter(classify_batch(model, read, class_names, **options))
        count = len(read) + len(early)
        results += [early[i] if i in early else next(answers) for i in range(count)]
        if progress is not None:
            progress(len(results))
    return results


def _read(path: Path) -> tuple[str | None, bytes | None]:
    """A file's bytes, or why they are not read (a 4 GB file is refused from its size)."""
    try:
        if not path.is_file():
            return ("no such file" if not path.exists() else "not a file"), None
        if reason := too_large(path.stat().st_size, MAX_UPLOAD_BYTES):
            return reason, None
        return None, path.read_bytes()
    except OSError as err:
        return f"could not be read ({err.strerror or err})", None


_ESCAPED = {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def format_results(results) -> str:
    """The results as an aligned text table: file, answer, its probability, the next likeliest
    classes, and a note (unsure, unfamiliar, or why the file was not classified)."""
    from core.cli import text_table

    lines = [["file", "answer", "probability", "then", "note"]]
    for name, pred, error in results:
        name = name.translate(_ESCAPED)  # a file name's line break would break the table
        if pred is None:
            lines.append([name, "", "", "", error])
            continue
        then = ", ".join(f"{label} {prob:.1%}" for label, prob in pred.top[1:])
        note = "unfamiliar picture" if pred.unfamiliar else "unsure" if pred.unsure else ""
        lines.append([name, pred.label, f"{pred.confidence:.1%}", then, note])
    return text_table(lines)


def summary(results) -> str:
    """One sentence: how many files were classified, unsure, unfamiliar, not read."""
    answered = [pred for _, pred, _ in results if pred is not None]
    unsure = sum(p.unsure and not p.unfamiliar for p in answered)
    unfamiliar = sum(p.unfamiliar for p in answered)
    counts = ((unsure, "unsure"), (unfamiliar, "unfamiliar"))
    flagged = [f"{n:,} {what}" for n, what in counts if n]
    text = f"{len(answered):,} of {len(results):,} files classified"
    text += f" ({', '.join(flagged)})" if flagged else ""
    missed = len(results) - len(answered)
    return text + (f"; {missed:,} not: see their notes." if missed else ".")


def main(argv=None) -> int:
    from core.evaluate import add_tta_argument  # core.evaluate imports this module

    p = argparse.ArgumentParser(
        prog="python -m core.classify",
        description="Classify image files or folders of them with a trained model, as the "
        "dashboard's Classify page does: from the model's int8 copy where it has one that "
        "computes here as where it was built, else from the float32 model.",
    )
    p.add_argument("model", help="run directory, .keras file, or 'default' (the shipped model)")
    p.add_argument("paths", nargs="+", help="image files, or folders of them (read recursively)")
    p.add_argument(
        "--csv",
        type=Path,
        help="also write one row per file to this CSV file, with every class's probability",
    )
    add_tta_argument(p)
    p.add_argument("--top", type=int, default=3, help="classes per file in the table (default 3)")
    p.add_argument(
        "--report",
        type=Path,
        metavar="HTML",
        help="also write a contact sheet to this HTML file: each picture as the model saw it, "
        "its answer and flags (the Classify page's 'Download a contact sheet')",
    )
    p.add_argument(
        "--fit",
        choices=FITS,
        help="how a photo that is not square is made square: 'squash' the whole photo, "
        "'crop' its centre square (objects keep their shape), or 'three': its squares at both "
        "ends and in the middle, their answers averaged (for a subject that may not be in the "
        "middle; three times the work); by default as the Classify page's Framing starts, from "
        "the model's card: 'crop' for a model that learnt from square images",
    )
    p.add_argument(
        "--float32",
        action="store_true",
        help="answer with the float32 model even where an int8 copy would (the page's "
        '"Fast int8 answers" off)',
    )
    args = p.parse_args(argv)
    try:
        return _classify_cli(args)
    except CnnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _answerer(path: Path, float32: bool):
    """What answers and what checks, as the Classify page chooses them: the int8 copy and
    its own check where it has a good one, else the float32 model (loaded only then) and
    its check. Returns `(answerer, check)`; the check is None without one."""
    from core import novelty, quantize
    from core.model import load_model

    copy = None
    if not float32:
        copy, _, why = quantize.checked_copy(path)
        if why:
            print(why, file=sys.stderr)
    if copy is not None:
        check = novelty.load(quantize.novelty_path(path), copy, copy.path)
        if check is not None:
            return copy, check
    model = load_model(path)  # for the answers, or to check the copy's answers
    return copy or model, novelty.load(path.parent / novelty.FILE, model, path)


def _classify_cli(args) -> int:
    import keras

    from core.evaluate import resolve_model_path
    from core.fileio import read_json
    from core.quantize import Int8Model
    from core.registry import card_temperature, default_model_path, framing

    path = default_model_path() if args.model == "default" else resolve_model_path(args.model)
    files = photo_files(args.paths)
    if not files:
        raise CnnError("Those folders hold no files to classify.")
    answerer, check = _answerer(path, args.float32)
    card = read_json(path.parent / "model_card.json", {}) or {}
    names = card.get("class_names") or [str(i) for i in range(answerer.output_shape[-1])]
    temperature = card_temperature(card)
    fit = args.fit or framing(card)
    fast = isinstance(answerer, Int8Model)
    print(
        f"{path}: {len(names)} classes; answers from "
        + ("its int8 copy (--float32: the float32 model)" if fast else "the float32 model")
        + (f"; probabilities after its temperature {temperature:.4g}" if temperature != 1 else "")
        + ("" if check else "; no check for unfamiliar pictures (python -m core.registry novelty)")
        + {
            "squash": "; photos squashed whole (--fit crop: their centre square)",
            "crop": "; photos cropped to their centre square (--fit squash: whole)",
            "three": "; each photo's answers from three of its squares (--fit crop: one)",
        }[fit],
        file=sys.stderr,
    )
    # Keras's bar writes to stdout: on a terminal only, so that piped output is the table alone.
    bar = keras.utils.Progbar(len(files), verbose=int(sys.stdout.isatty()), unit_name="file")
    results = classify_files(
        answerer,
        files,
        names,
        progress=bar.update,
        k=max(1, args.top),
        tta=args.tta,
        temperature=temperature,
        check=check,
        fit=fit,
    )
    print(format_results(results))
    print(summary(results), file=sys.stderr)

    def sheet() -> str:
        from ui import report  # the dashboard's pages as files: ui/ without streamlit

        answered_by = "int8 copy" if fast else "float32 model"
        answered_by += "" if args.tta == "none" else f", {args.tta} test-time augmentation"
        facts = report.classification_facts(path.parent.name, answered_by, temperature, check, fit)
        title = f"{path.parent.name}: {counted(len(results), 'file')}"
        return report.classification_html(results, title, facts)

    for out, text in ((args.csv, lambda: results_csv(results, names)), (args.report, sheet)):
        try:
            if out is not None:
                out.write_text(text())
        except OSError as err:
            raise CnnError(f"Could not write {out}: {err.strerror or err}.") from err
    return 0 if all(pred is not None for _, pred, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
