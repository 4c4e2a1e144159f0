"""The Evaluate page's "Download a report (HTML)" for a model on its validation split: how
long the file takes to write and how large it is (`ui.report.evaluation_html`, as the page
calls it, with the row-normalised matrix).

    python benchmarks/evaluation_report.py --data ../shared/datasets/cifar10-jpeg
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import model_and_its_split  # noqa: E402
from core.evaluate import evaluate, report_from_probs, with_temperature  # noqa: E402
from core.model import load_model  # noqa: E402
from core.registry import card_temperature  # noqa: E402
from ui import report as report_page  # noqa: E402

args, card, dataset = model_and_its_split(__doc__.splitlines()[0])
x, y = dataset.split("val")
report = evaluate(load_model(args.model), x, y, dataset.class_names)
temperature = card_temperature(card)
tempered = report_from_probs(with_temperature(report.probs, temperature), y, report.class_names)
title = f"{args.model.parent.name}: val split"
facts = report_page.facts(title, card, dataset.source, "val", "none", temperature)
start = time.perf_counter()
html = report_page.evaluation_html(
    report, tempered, x, dataset.files.get("val"), title, facts, True, temperature
)
seconds = time.perf_counter() - start
print(f"{len(y):,} images: written in {seconds:.2f} s, {len(html.encode()) / 1e6:.1f} MB")
