"""How long building a model's int8 copy takes, as the Evaluate page's button does it.

    python benchmarks/int8_build.py --data ../shared/datasets/cifar10-jpeg [--model M]

Copies the model (default: the shipped one) and its card into a temporary folder, so no
copy beside it is replaced, loads the data split as the model's run split it, and calls
`core.quantize.quantize` with both in memory, as the page does. Prints each step's line
with the seconds since the start (the build, the check against float32 with both models'
speeds, the copy's own check for unfamiliar pictures), then the whole time.
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import model_and_its_split  # noqa: E402

from core import quantize  # noqa: E402
from core.model import load_model  # noqa: E402


def main() -> None:
    args, _, dataset = model_and_its_split(__doc__.split("\n")[0])
    with tempfile.TemporaryDirectory(prefix="int8_build.") as tmp:
        for name in ("model.keras", "model_card.json"):
            shutil.copy(args.model.parent / name, tmp)
        path = Path(tmp) / "model.keras"
        model = load_model(path)
        started = time.perf_counter()

        def log(line: str) -> None:
            print(f"{time.perf_counter() - started:6.1f} s  {line}", flush=True)

        quantize.quantize(path, dataset, log=log, model=model)
        print(f"{args.model}: {time.perf_counter() - started:.1f} s in all")


if __name__ == "__main__":
    main()
