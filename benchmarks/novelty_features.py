"""Which per-layer statistics would tell shuffled tiles and inverted colours from photos?

    python benchmarks/novelty_features.py --data ../shared/datasets/cifar10-jpeg [--model M]

The check for unfamiliar pictures (`core.novelty`) compares each image's channel means at
a few layers with the training images'. This measures, for the model (default: the shipped
one) at each activated map, three statistics of every channel: its mean (what the check
uses), its means over the four quadrants of the map (where things are) and its standard
deviation over the map (how busy it is). Each gets a Gaussian fitted as the check fits its
own (5,000 training images; 2,000 others set the 1% false-alarm line) and flags the
pictures of `benchmarks/novelty.py`. Then the check's own layers, alone and with one more
statistic. Prints Markdown tables: the share of each kind of picture flagged.
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import model_and_its_split  # noqa: E402
from novelty import strangers  # noqa: E402

from core.model import load_model  # noqa: E402
from core.novelty import FALSE_ALARMS, SHRINK, novelty_layers  # noqa: E402

STATISTICS = ("mean", "quadrants", "std")
LAYERS = ("act0", "conv1_1", "act1_2", "conv2_1", "act2_2", "conv3_1")  # the fast net's maps


def statistics_model(model, names):
    """A model from the images to `STATISTICS` of each named layer, in that order."""
    import keras
    from keras import ops

    outputs = []
    for name in names:
        x = model.get_layer(name).output
        h, w = x.shape[1] // 2, x.shape[2] // 2
        mean = ops.mean(x, axis=(1, 2))
        corners = [(slice(None, h), slice(None, w)), (slice(None, h), slice(w, None))]
        corners += [(slice(h, None), slice(None, w)), (slice(h, None), slice(w, None))]
        quadrants = ops.concatenate([ops.mean(x[:, r, c], axis=(1, 2)) for r, c in corners], 1)
        std = ops.sqrt(ops.maximum(ops.mean(x * x, axis=(1, 2)) - mean * mean, 0.0))
        outputs += [mean, quadrants, std]
    return keras.Model(model.input, outputs)


def read(reader, images) -> list[np.ndarray]:
    parts = [
        reader.predict_on_batch(images[i : i + 250].astype(np.float32))
        for i in range(0, len(images), 250)
    ]
    return [np.concatenate([p[k] for p in parts]).astype(np.float64) for k in range(len(parts[0]))]


def distances(fit, *others):
    """Mahalanobis distances of `others` to a Gaussian fitted on `fit` (shrunk as the check's)."""
    mean, cov = fit.mean(0), np.cov(fit, rowvar=False)
    cov = (1 - SHRINK) * cov + SHRINK * np.trace(cov) / len(cov) * np.eye(len(cov))
    precision = np.linalg.inv(cov)
    return [
        np.sqrt(np.maximum((((o - mean) @ precision) * (o - mean)).sum(axis=1), 0)) for o in others
    ]


def main() -> None:
    args, _, dataset = model_and_its_split(__doc__.split("\n")[0])
    model = load_model(args.model)
    names = [n for n in LAYERS if n in {layer.name for layer in model.layers}]
    reader = statistics_model(model, names)
    x_train, x_val = dataset.split("train")[0], dataset.split("val")[0]
    order = np.random.default_rng(0).permutation(len(x_train))
    fit, cal = x_train[np.sort(order[2000:7000])], x_train[np.sort(order[:2000])]
    kinds = {"validation": x_val, **strangers(x_val)}
    features = [read(reader, x) for x in (fit, cal, *kinds.values())]
    scaled = {}  # (layer, statistic) -> calibration scores, then each kind's
    for k in range(len(features[0])):
        cal_d, *kind_d = distances(features[0][k], *(f[k] for f in features[1:]))
        scale = np.quantile(cal_d, 1 - FALSE_ALARMS)
        scaled[names[k // 3], STATISTICS[k % 3]] = [cal_d / scale, *(d / scale for d in kind_d)]

    def flagged(keys) -> list[float]:
        cal_d, *kind_d = (np.max(s, axis=0) for s in zip(*(scaled[k] for k in keys), strict=True))
        line = np.quantile(cal_d, 1 - FALSE_ALARMS)
        return [float(np.mean(d > line)) for d in kind_d]

    print("| layer | statistic | " + " | ".join(kinds) + " |")
    print("|---|---|" + "---|" * len(kinds))
    for key in scaled:
        print(f"| {key[0]} | {key[1]} | " + " | ".join(f"{v:.0%}" for v in flagged([key])) + " |")
    check = [(n, "mean") for n in novelty_layers(model)]
    print("\n| check | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for extra in [None, ("act0", "std"), ("conv1_1", "std"), ("act0", "mean")]:
        keys = check + ([extra] if extra else [])
        label = (
            "as shipped (" + ", ".join(n for n, _ in check) + ")"
            if extra is None
            else f"+ {extra[0]} {extra[1]}"
        )
        print(f"| {label} | " + " | ".join(f"{v:.1%}" for v in flagged(keys)) + " |")


if __name__ == "__main__":
    main()
