"""The global norm of a preset's gradient at every training step, on a dataset's images.

    python benchmarks/grad_norms.py --data ../shared/datasets/cifar10-jpeg --preset quick \
        [--images 20480] [--epochs 3] [--batch-size 512]

The preset's own model (whitening fitted to the images), optimizer, schedule and loss
(`core.train.compiled_model`), no augmentation, one step per batch in a shuffled order; it
prints each epoch's median and largest norm and the first steps'. It is what
`core.train.SPEED_CLIP_NORM` is set against (docs/BENCHMARKS.md, session 49).
"""

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--preset", default="quick")
    p.add_argument("--images", type=int, default=20480, help="the first N training images")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=512)
    args = p.parse_args()
    import keras
    import tensorflow as tf

    from core.data import load_dataset
    from core.train import compiled_model, parse_args, resolved_model_config

    ds = load_dataset(args.data, val_fraction=0.1, seed=0)
    x, y = (a[: args.images] for a in ds.split("train"))
    classes = len(ds.class_names)
    config = parse_args(["--preset", args.preset, "--data", args.data])
    config = replace(config, model=resolved_model_config(config, classes))
    steps = len(x) // args.batch_size
    model = compiled_model(config, x, steps=steps)
    targets = keras.utils.to_categorical(y, classes)

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = model.loss(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, tf.linalg.global_norm(grads)

    rng, norms = np.random.default_rng(0), []
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(len(x))
        for s in range(steps):
            batch = order[s * args.batch_size : (s + 1) * args.batch_size]
            loss, norm = step(tf.constant(x[batch]), tf.constant(targets[batch]))
            norms.append(float(norm))
        last = norms[-steps:]
        print(
            f"epoch {epoch}: loss {float(loss):.3f}, gradient norm median "
            f"{np.median(last):.2f}, largest {max(last):.2f}",
            flush=True,
        )
    print(f"first steps: {', '.join(f'{n:.2f}' for n in norms[:5])}; largest {max(norms):.2f}")


if __name__ == "__main__":
    main()
