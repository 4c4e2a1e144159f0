"""How fragile a model is, and how long the pages take to show it: the smallest change
that fools it (Classify's "Try to fool it") and accuracy against the size of the change
(Evaluate's "Robustness to small changes").

    python benchmarks/adversarial.py --data ../shared/datasets/cifar10-jpeg [--model M.keras]
        [--images 500] [--eager]

On the model's own validation split (as its run split it; the shipped model by default):
`core.adversarial.fool` on the first 20 images of it (the first call, which traces the
compiled gradient, timed apart; then the median and the 95th percentile), `fool_views` on
20 photos read as three squares (three validation images standing in for each), and
`robustness` on `--images` of it, as many of each class, as the Evaluate page chooses
them. `--eager` times the gradient steps without `tf.function` (how they ran first).
"""

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import model_and_its_split  # noqa: E402
from core import adversarial  # noqa: E402
from core.inspect import curve_rows, kept_on_model  # noqa: E402
from core.model import load_model  # noqa: E402


def eager_margins(model):
    """The gradient step as it ran before it was compiled: an eager tape per call."""
    import tensorflow as tf

    logits = adversarial.logits_of(model)

    def margins(x, classes):
        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            z = logits(x)
            own = tf.gather(z, classes, batch_dims=1)
            others = tf.where(tf.one_hot(classes, z.shape[-1]) > 0, -np.inf, z)
            margin = tf.reduce_max(others, axis=-1) - own
            total = tf.reduce_sum(margin)
        return margin, tape.gradient(total, x)

    return margins


def main() -> None:
    args, card, ds = model_and_its_split(
        __doc__.splitlines()[0],
        {"--eager": "time the gradient steps without tf.function"},
        {"--images": (500, "validation images for the robustness curve")},
    )
    model = load_model(args.model)
    if args.eager:
        kept_on_model(model, "margins", lambda: eager_margins(model))  # before any search
    x, y = ds.split("val")
    print(
        f"model {args.model} ({card.get('preset', '?')}), {'eager' if args.eager else 'compiled'}"
    )

    start = time.perf_counter()
    first = adversarial.fool(model, x[0])
    print(f"fool, first call: {time.perf_counter() - start:.2f} s (epsilon {first.epsilon:g})")
    times, needed = [], []
    for image in x[1:21]:
        start = time.perf_counter()
        found = adversarial.fool(model, image)
        times.append(time.perf_counter() - start)
        needed.append(found.epsilon)
    p95 = sorted(times)[int(0.95 * len(times)) - 1]
    print(
        f"fool, 20 images: median {1000 * statistics.median(times):.0f} ms, p95 "
        f"{1000 * p95:.0f} ms; epsilons {sorted(needed)}"
    )

    # Three squares of a photo (`fool_views`): three validation images stand in for them.
    start = time.perf_counter()
    adversarial.fool_views(model, x[21:24])
    print(f"fool_views, first call: {time.perf_counter() - start:.2f} s (builds, traces)")
    times = []
    for i in range(24, 84, 3):
        start = time.perf_counter()
        adversarial.fool_views(model, x[i : i + 3])
        times.append(time.perf_counter() - start)
    p95 = sorted(times)[int(0.95 * len(times)) - 1]
    print(
        f"fool_views, 20 photos of three squares: median {1000 * statistics.median(times):.0f} "
        f"ms, p95 {1000 * p95:.0f} ms"
    )

    rows = curve_rows(y, args.images)
    start = time.perf_counter()
    found = adversarial.robustness(model, x[rows], y[rows])
    took = time.perf_counter() - start
    print(f"robustness, {len(rows):,} images: {took:.1f} s ({took / len(rows):.3f} s an image)")
    print("epsilon  attacked  noise")
    for e, a, n in zip(found["epsilons"], found["attacked"], found["noise"], strict=True):
        print(f"{e:>7}  {a:8.1%}  {n:6.1%}")


if __name__ == "__main__":
    main()
