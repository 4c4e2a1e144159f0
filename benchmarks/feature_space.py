"""How long the Evaluate page's feature space takes, and how well its plane keeps classes apart.

    python benchmarks/feature_space.py --data ../shared/datasets/cifar10-jpeg [--model M]

For the model (default: the shipped one) and the validation split its card describes,
times `core.inspect.feature_space` (a forward pass to the classifier's input and a PCA, as
the page runs it), prints the share of the variance along its two axes, and the
10-nearest-neighbour accuracy in the plane: how often the ten nearest dots' majority class
is a dot's own. The same is printed for a PCA of the logits (the classifier's output)
instead, the obvious alternative.
"""

import sys
import time
from pathlib import Path

import keras
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import model_and_its_split  # noqa: E402

from core import inspect  # noqa: E402
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


def row(name: str, shares, xy: np.ndarray, y: np.ndarray) -> None:
    split = f"{shares[0]:.1%} + {shares[1]:.1%}"
    print(f"{name:<32}{split:>18}{knn_accuracy(xy, y):>16.1%}")


if __name__ == "__main__":
    main()
