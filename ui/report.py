"""Pages of the dashboard as one HTML file to keep, print or send, readable without it: the
Evaluate page's figures of a model on a split (plotly's script is inside the file, so it
opens offline; about 5 MB) and the Classify page's answers as a contact sheet."""

from __future__ import annotations

import base64
import io
from collections import Counter
from datetime import UTC, datetime
from html import escape

import numpy as np
from PIL import Image

from core import datastats
from core.classify import summary
from core.evaluate import (
    Report,
    calibration,
    figure,
    mistakes,
    row_shares,
    selective,
    selective_at,
    top_confusions,
)
from core.words import counted
from ui import charts
from ui.text import probability

GALLERY = 18  # confident mistakes shown, as on the page
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.metrics { display: flex; flex-wrap: wrap; gap: 1.5em; }
.metrics div { font-size: 0.85em; color: #555; } .metrics strong { display: block; font-size: 1.7em;
       color: #222; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr));
       gap: 1em; }
.gallery img { height: 128px; image-rendering: pixelated; }  /* width: as the picture's */
figure { margin: 0; } figcaption { font-size: 0.8em; overflow-wrap: anywhere; }
.note { color: #555; font-size: 0.9em; }
@media print { figure, table, .plotly-graph-div { break-inside: avoid; } }
"""


def evaluation_html(
    report: Report,
    tempered: Report,
    images: np.ndarray,
    files: list | None,
    title: str,
    facts: dict[str, str],
    normalised: bool,
    temperature: float = 1.0,
) -> str:
    """The evaluation as a self-contained HTML page.

    Args:
        report: the model's report on the split (metrics, matrix, per class).
        tempered: the same after the model's temperature, whose percentages the captions
            of the confident mistakes give, as the Evaluate page's galleries do.
        images: uint8 `(N, H, W, 3)`, the split's images in the report's order.
        files: the split's files (an image folder), or None (a CIFAR-10 archive).
        title: the page's heading, e.g. "seed-20 on cifar10-jpeg, val".
        facts: what was evaluated, row by row (model, data, split, test-time augmentation).
        normalised: the matrix in row shares (as chosen on the page), else in counts.
        temperature: the card's, which `tempered` is after (1.0: none).

    Returns:
        The HTML document.
    """
    return _document(
        title,
        facts,
        _metrics(report),
        _matrix(report, normalised),
        _per_class(report),
        _confidence(report, tempered, temperature),
        _gallery(tempered, images, files),
    )


def classification_html(results: list, title: str, facts: dict[str, str]) -> str:
    """The Classify page's answers as a self-contained HTML page: a contact sheet of what
    the model saw in each photo, its answer and runners-up, and what it flagged.

    Args:
        results: `(name, core.classify.Prediction or None, error or None)` per photo, as
            `core.classify.classify_batch` returns them.
        title: the page's heading.
        facts: what answered, row by row (model, engine, temperature, check).

    Returns:
        The HTML document.
    """
    counts = Counter(pred.label for _, pred, _ in results if pred is not None)
    rows = [(escape(label), f"{n:,}") for label, n in counts.most_common()]
    sheet = [_photo(escape(name), pred, error) for name, pred, error in results]
    return _document(
        title,
        facts,
        f"<p>{escape(summary(results))}</p>",
        "<h2>Answers</h2>" + _table(rows, ("answer", "photos"), numeric={1}) if rows else "",
        f"<h2>Each photo, as the model saw it</h2><div class='gallery'>{''.join(sheet)}</div>",
    )


FRAMING_LABELS = {  # each `core.images.FITS` key as the pages' Framing choices name it
    "squash": "Whole photo, squashed",
    "crop": "Centre square, cropped",
    "three": "Three squares, averaged",
}
FRAMINGS = {  # each `core.images.FITS` key as the contact sheet and the page name it
    "squash": "the whole photo, squashed to a square",
    "crop": "the photo's centre square, cropped",
    "three": "three squares of the photo (both ends and the middle of its longer side), their "
    "answers averaged",
}


def classification_facts(
    label: str, answered_by: str, temperature: float, check, fit: str = "squash"
) -> dict:
    """What answered the Classify page's photos, row by row."""
    return {
        "Model": label,
        "Answered by": answered_by,
        "Framing": FRAMINGS[fit] + ("; all three shown" if fit == "three" else ""),
        "Temperature": _temperature(temperature, "the percentages"),
        "Unfamiliar pictures": "flagged by the model's check"
        if check is not None
        else "not checked: this model has no check",
        "Written": _now(),
    }


def _photo(name: str, pred, error: str | None) -> str:
    """One photo of the contact sheet: what the model saw, its answer, runners-up of 1% or
    more and its flag; a file it could not read, with why. `name`: escaped."""
    if pred is None:
        return (
            f"<figure><figcaption><strong>{name}</strong><br>{escape(error)}</figcaption></figure>"
        )
    answer = f"{escape(pred.label)} {probability(pred.confidence)}"
    caption = f"{name}<br><strong>{answer}</strong>"
    if then := " · ".join(f"{escape(c)} {probability(q)}" for c, q in pred.top[1:] if q >= 0.01):
        caption += f"<br>then {then}"
    if pred.unfamiliar or pred.unsure:
        flag = "unlike the training images" if pred.unfamiliar else "unsure"
        caption += f"<br><em>{flag}</em>"
    if pred.views is None:
        return _figure(pred.pixels, f"{name}: {answer}", caption)
    # Three squares: side by side, a grid cell each, as the Classify page shows them.
    views = datastats.image_grid(list(pred.views), len(pred.views), pad=1)
    return _figure(views, f"{name}: {answer}", caption, span=len(pred.views))


def _temperature(temperature: float, what: str) -> str:
    """The facts' line on the card's temperature, which `what` is after."""
    if temperature == 1.0:
        return "none: the model's own probabilities"
    return f"{temperature:g}: {what} are after it"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _document(title: str, facts: dict[str, str], *parts: str) -> str:
    head = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
        f"</title><style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
    )
    table = _table([(k, escape(v)) for k, v in facts.items()], header=None)
    return "\n".join([head, table, *parts, "</body></html>"])


def _figure(pixels: np.ndarray, alt: str, caption: str, span: int = 1) -> str:
    """An image (embedded as PNG, enlarged by the page with sharp pixels) and its caption,
    both already escaped; `span` gallery cells wide (every picture is as high)."""
    wide = "" if span == 1 else f" style='grid-column: span {span}'"
    return (
        f"<figure{wide}><img alt='{alt}' src='data:image/png;base64,{_png(pixels)}'>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def facts(label: str, card: dict, source: str, split: str, tta: str, temperature: float):
    """What an evaluation was of, row by row: the model and its training, the images, the
    test-time augmentation, the temperature of the captions' percentages, when."""
    trained = card.get("data") or {}
    rows = {"Model": label}
    if card.get("epochs"):
        rows["Trained"] = (
            f"{counted(card['epochs'], 'epoch')} on {trained.get('source', 'unknown data')}"
        )
    if card.get("params"):
        rows["Parameters"] = f"{card['params']:,}"
    return rows | {
        "Evaluated on": f"the {split} split of {source}",
        "Test-time augmentation": tta,
        "Temperature": _temperature(temperature, "the mistakes' percentages below"),
        "Written": _now(),
    }


def _table(rows: list, header: tuple | None, numeric: set = frozenset()) -> str:
    """An HTML table of already escaped cells; columns in `numeric` right-aligned."""
    head = "" if header is None else "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='n'>{c}</td>" if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table>{head}{body}</table>"


def figures(report: Report) -> dict[str, str]:
    """The headline figures, label to value, as the Evaluate page's metrics show them: the
    balanced accuracy too where the largest class has `datastats.UNEVEN` times the images
    of the smallest, the top-3 accuracy where there are more than three classes."""
    shown = {"Accuracy": f"{report.accuracy:.2%}"}
    if datastats.imbalance(report.per_class["support"]) >= datastats.UNEVEN:
        shown["Balanced accuracy"] = f"{report.balanced_accuracy():.2%}"
    if len(report.class_names) > 3:  # of three classes, the top three are all of them
        shown["Top-3 accuracy"] = f"{report.top3_accuracy:.2%}"
    return shown | {
        "Loss": f"{report.loss:.4f}",
        "Images": f"{len(report.y_true):,}",
    }


def interval_sentence(report: Report) -> str:
    """Where the accuracy would likely lie on other images like these, as a sentence."""
    low, high = report.accuracy_interval()
    return (
        f"On other images like these, drawn the same way, the accuracy would likely be between "
        f"{low:.1%} and {high:.1%} (95% Wilson interval of {len(report.y_true):,} images; four "
        "times as many images halve its width)."
    )


def _metrics(report: Report) -> str:
    cells = "".join(
        f"<div><span>{label}</span><strong>{value}</strong></div>"
        for label, value in figures(report).items()
    )
    return f"<div class='metrics'>{cells}</div><p class='note'>{interval_sentence(report)}</p>"


def _matrix(report: Report, normalised: bool) -> str:
    cm = report.confusion.astype(float)
    shown = row_shares(cm) if normalised else cm
    fig = charts.confusion_matrix(shown, report.class_names, normalised)
    fig.update_layout(clickmode="none", width=min(980, 240 + 60 * len(report.class_names)))
    fig.update_traces(marker_opacity=0, selector=dict(mode="markers"))  # hover, no click
    fig.update_traces(colorscale="Blues", selector=dict(type="heatmap"))
    chart = _chart(fig, with_script=True)  # the file's first chart brings plotly.js
    names = report.class_names
    support = report.per_class["support"]
    frequent = [
        f"<li>{escape(names[t])} → {escape(names[p])}: {n:,} of {int(support[t]):,} "
        f"({n / support[t]:.0%})</li>"
        for t, p, n in top_confusions(report.confusion, 5)
    ]
    said = "row shares (each true class's row sums to 1)" if normalised else "image counts"
    return (
        f"<h2>Confusion matrix</h2><p class='note'>Rows: the true class; columns: the "
        f"answer; {said}.</p>{chart}"
        + (
            f"<p>The most frequent mistakes, true → answer:</p><ul>{''.join(frequent)}</ul>"
            if frequent
            else ""
        )
    )


def _chart(fig, with_script: bool = False) -> str:
    """A plotly figure as an HTML fragment, plotly.js inside it `with_script`."""
    # Streamlit's own template holds colours its page fills in: near-black in a file.
    fig.update_layout(template="plotly_white")
    config = {"displaylogo": False}
    return fig.to_html(full_html=False, include_plotlyjs=with_script, config=config)


def _per_class(report: Report) -> str:
    rows = [
        (
            escape(r["class"]),
            figure(r["precision"], ".3f", "—"),
            figure(r["recall"], ".3f", "—"),
            f"{r['recall_low']:.3f}-{r['recall_high']:.3f}" if r["support"] else "—",
            figure(r["f1"], ".3f", "—"),
            f"{r['support']:,}",
        )
        for r in report.per_class_rows()
    ]
    header = ("class", "precision", "recall", "recall 95% interval", "f1", "support")
    return (
        "<h2>Per class</h2>"
        + _table(rows, header, numeric={1, 2, 3, 4, 5})
        + f"<p class='note'>{escape(report.averages_summary())}</p>"
    )


def _confidence(report: Report, tempered: Report, temperature: float) -> str:
    """How far the probabilities can be trusted, as the Evaluate page's Confidence section
    says it: their calibration, and the accuracy when answering only the surest images."""
    views = {"as the model gives them": report}
    if temperature != 1.0:
        views[f"after its temperature {temperature:g}"] = tempered
    calibrations = {name: calibration(r.probs, r.y_true) for name, r in views.items()}
    said = [
        f"<p>Probabilities {name}. {escape(calib.summary())}</p>"
        for name, calib in calibrations.items()
    ]
    said.append(_chart(charts.reliability(calibrations).update_layout(width=760)))
    curve = selective(tempered.probs, tempered.y_true)
    if len(curve["coverage"]) >= 10:  # as on the page: too few images for a curve
        rows = [
            (f"{answered:.0%}", f"{right:.1%}", f"{threshold:.2f}")
            for answered, right, threshold in (
                selective_at(curve, share) for share in (0.5, 0.8, 0.9, 1.0)
            )
        ]
        header = ("answered (the surest first)", "right on them", "top probability at least")
        said.append("<p>Answering only when sure:</p>" + _table(rows, header, {0, 1, 2}))
    return "<h2>Confidence</h2>" + "".join(said)


def _png(image: np.ndarray) -> str:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def _gallery(tempered: Report, images: np.ndarray, files: list | None) -> str:
    wrong = mistakes(tempered.probs, tempered.y_true)
    if not len(wrong["index"]):
        return "<h2>The most confident mistakes</h2><p>No mistakes on this split.</p>"
    names, figures = tempered.class_names, []
    for k, i in enumerate(wrong["index"][:GALLERY]):
        true, pred = wrong["true"][k], wrong["pred"][k]
        # A line may break after each "/" (<wbr>): a browser breaks none before a digit, and
        # cut "train/automobile/0014.jpg" after "0014.j".
        file = "" if files is None else "<br>" + escape(str(files[i])).replace("/", "/<wbr>")
        said = f"#{i}, labelled {escape(names[true])}"
        answer = f"answered {escape(names[pred])} {probability(wrong['confidence'][k])}"
        figures.append(_figure(images[i], f"{said}, {answer}", f"{said}<br>{answer}{file}"))
    shown = min(GALLERY, len(wrong["index"]))
    return (
        "<h2>The most confident mistakes</h2><p class='note'>The "
        f"{shown} of {len(wrong['index']):,} wrong answers the model was surest of: where a "
        "wrong label is often found.</p>"
        f"<div class='gallery'>{''.join(figures)}</div>"
    )
