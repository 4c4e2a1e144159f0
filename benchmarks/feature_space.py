"""How long the Evaluate page's feature space takes, and how well its plane keeps classes apart.

    python benchmarks/feature_space.py --data ../shared/datasets/cifar10-jpeg [--model M]

For the model (default: the shipped one) and the validation split its card describes,
times `core.inspect.feature_space` (a forward pass to the classifier's input and a PCA, as
the page runs it), prints the share of the variance along its two axes, and the
10-nearest-neighbour accuracy in the plane: how often the ten nearest dots' majority class
is a dot's own. The same is printed for a PCA of the logits (the classifier's output)
instead, the obvious alternative.

Then what the page pays for it since the prediction keeps it in passing: the validation
split's probabilities predicted alone and with the features of the space read in the same
pass (three of each, alternating; medians), and reading the kept space back from disk
(`core.evaluate.kept_space`, as after a restart).
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import model_and_its_split  # noqa: E402

from core import evaluate, inspect  # noqa: E402
from core.model import load_model  # noqa: E402


def knn_accuracy(xy: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    distances = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :k]
    votes = [np.bincount(y[n], minlength=y.max() + 1).argmax() for n in nearest]
    return float(np.mean(np.array(votes) == y))


def main() -> None:
    args, _, dataset = model_and_its_split(__doc__.split("\n")[0])
    x, y = dataset.split("val")
    model = load_model(args.model)
    inspect.feature_space(model, x[:256])  # the first call traces the forward pass
    start = time.perf_counter()
    space = inspect.feature_space(model, x)
    seconds = time.perf_counter() - start
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    reader = keras.Model(model.input, dense.output)
    logits = np.concatenate(
        [reader.predict_on_batch(x[i : i + 256].astype(np.float32)) for i in range(0, len(x), 256)]
    ).astype(np.float64)
    print(f"{args.model} on {len(y):,} validation images of {args.data}")
    print(f"feature_space: {seconds:.1f} s for {len(space['index']):,} images")
    print(f"{'plane':<32}{'variance shares':>18}{'10-NN accuracy':>16}")
    row(
        f"features ({space['dims']} numbers), the page",
        space["explained"],
        space["xy"],
        y[space["index"]],
    )
    xy, shares = inspect.principal_plane(logits)
    row(f"logits ({logits.shape[1]} numbers)", shares, xy, y)
    passes(model, args.model, x, rounds=3)


def passes(model, path, x, rounds: int) -> None:
    rows = inspect.space_rows(len(x))
    evaluate.predict_probs(model, x[:256], features_of=np.arange(10))  # traces the pair
    alone, both = [], []
    for _ in range(rounds):
        alone.append(seconds(lambda: evaluate.predict_probs(model, x)))
        both.append(seconds(lambda: evaluate.predict_probs(model, x, features_of=rows)))
    a, b = statistics.median(alone), statistics.median(both)
    print(f"probabilities alone: {a:.1f} s; with the space's features: {b:.1f} s ({b / a:.2f}x)")
    with tempfile.TemporaryDirectory() as cache:
        evaluate.kept_probs(model, path, x, cache_dir=cache)
        read = seconds(lambda: evaluate.kept_space(model, path, x, cache_dir=cache))
    print(f"the kept space read back: {read:.2f} s (hashing the model and the images)")


def seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def row(name: str, shares, xy: np.ndarray, y: np.ndarray) -> None:
    split = f"{shares[0]:.1%} + {shares[1]:.1%}"
    print(f"{name:<32}{split:>18}{knn_accuracy(xy, y):>16.1%}")


if __name__ == "__main__":
    main()
