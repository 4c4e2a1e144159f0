"""How long a page's rerun takes when the runs folder holds many runs.

    python benchmarks/many_runs.py --data ../shared/datasets/cifar10-jpeg [--runs 1,300]

For each count, a temporary runs folder gets that many completed runs: the shipped model's
files linked (not copied) under run names, with a config, status and 12-epoch history of
their own. Each page (Home, Train, Classify, Filters; `--pages` chooses) then runs in
Streamlit's AppTest, once to warm up and five more times; prints the median and the fastest
rerun in milliseconds (a rerun is what every click on a widget costs).
`registry.available_models`, `core.registry.models_signature` and `core.jobs.runs_signature`
(what the Train page compares every 5 s while nothing trains) are timed on the same folder.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import jobs, registry, runs  # noqa: E402
from core.fileio import atomic_write_json, read_json  # noqa: E402
from core.train import TrainConfig  # noqa: E402

PAGES = "home,train,classify,filters"
RERUNS = 5


def fill(folder: Path, count: int) -> None:
    """`count` completed runs in `folder`, each the shipped model under another name."""
    card = read_json(registry.DEFAULT_MODEL_DIR / "model_card.json")
    history = [{"epoch": e, "val_accuracy": 0.5 + e / 40, "seconds": 60.0} for e in range(1, 13)]
    for i in range(count):
        run = folder / f"20261202-{i:06d}-run"
        run.mkdir()
        os.link(registry.default_model_path(), run / "model.keras")
        atomic_write_json(run / "config.json", TrainConfig(preset="fast", epochs=12).to_dict())
        atomic_write_json(run / "history.json", history)
        atomic_write_json(run / "model_card.json", card)
        runs.write_status(run, state="completed", started="2026-12-02T00:00:00+00:00")


def rerun_ms(page: str) -> list[float]:
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    app.run()
    app.switch_page(f"pages/{page}.py").run()
    times = []
    for _ in range(RERUNS):
        started = time.perf_counter()
        app.run()
        times.append(1000 * (time.perf_counter() - started))
    assert not app.exception, [e.value for e in app.exception]
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--runs", default="1,300", help="comma list of run counts")
    p.add_argument("--pages", default=PAGES, help=f"comma list of pages (default {PAGES})")
    args = p.parse_args()
    os.environ["CNN_DATA"] = args.data
    import keras  # noqa: F401  (the pages' own warm-up would import it during the reruns)

    print(
        "| runs | page | rerun, median (fastest) | available_models | models_signature "
        "| runs_signature |"
    )
    print("|---|---|---|---|---|---|")
    for count in (int(c) for c in args.runs.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            fill(Path(tmp), count)
            os.environ["CNN_RUNS_DIR"] = tmp
            timings = {}
            # models_signature is new in session 26: absent when timing an older tree.
            for what in (
                registry.available_models,
                getattr(registry, "models_signature", None),
                jobs.runs_signature,
            ):
                if what is None:
                    timings["models_signature"] = float("nan")
                    continue
                what(tmp)
                started = time.perf_counter()
                what(tmp)
                timings[what.__name__] = 1000 * (time.perf_counter() - started)
            for page in args.pages.split(","):
                ms = rerun_ms(page)
                print(
                    f"| {count} | {page} | {statistics.median(ms):.0f} ({min(ms):.0f}) ms | "
                    f"{timings['available_models']:.0f} ms | "
                    f"{timings['models_signature']:.1f} ms | "
                    f"{timings['runs_signature']:.1f} ms |"
                )


if __name__ == "__main__":
    main()
