"""Training-step throughput of a preset in float32 and mixed bf16, on random images.

    python benchmarks/step_speed.py --preset quick [--precisions mixed_bfloat16] [--small-map 0]
        [--plain-gelu] [--plain-bn]
    python benchmarks/step_speed.py --preset fast --ab plain-bn,plain-gelu,small-map=0 [--rounds 10]

No dataset needed: random 32x32 images, the preset's own layers, Nesterov SGD, after
warm-up steps. The first form prints images per second for each precision, one model
after the other, and what the first two steps cost above later ones (tracing,
compiling). `--ab` builds the preset as it is and once per named variant (one of the
speed-ups switched off) in the same process, in the first precision given, then
alternates them, two steps each, `--rounds` times, and prints each one's median step
time and its ratio to the preset as it is: this VM's speed drifts by 10-20% over
minutes, which separate runs of a minute each cannot tell from a change.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VARIANTS = {
    "plain-bn": "BatchNormalization in place of core.model.FastBatchNorm",
    "plain-gelu": "Activation('gelu') in place of core.model.FastGelu",
    "small-map=N": "core.model.SMALL_MAP = N (0: oneDNN's weight gradient for every conv)",
}


def use_variant(name: str):
    """Switches off one speed-up in `core.model` for the models built after this call."""
    from keras import layers

    import core.model

    if name == "plain-bn":
        core.model.FastBatchNorm = layers.BatchNormalization
    elif name == "plain-gelu":

        class PlainGelu(layers.Activation):
            def __init__(self, activation="gelu", **kwargs):
                super().__init__(activation, **kwargs)

        core.model.FastGelu = PlainGelu
    elif name.startswith("small-map="):
        core.model.SMALL_MAP = int(name.split("=", 1)[1])
    else:
        raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")


def compiled(preset, precision, batch_size, steps):
    from core.model import build_model, preset_config
    from core.train import TrainConfig, make_loss, make_optimizer

    config = preset_config(preset)
    config.precision = precision
    model = build_model(config)
    recipe = TrainConfig(
        preset=preset,
        optimizer="nesterov",
        learning_rate=0.1,
        schedule="onecycle",
        epochs=1,
        batch_size=batch_size,
    )
    model.compile(optimizer=make_optimizer(recipe, steps), loss=make_loss(recipe))
    return model


def interleaved(args, x, y):
    import core.model
    from core.train import make_pipeline

    names = ["as is", *args.ab.split(",")]
    saved = {k: getattr(core.model, k) for k in ("FastBatchNorm", "FastGelu", "SMALL_MAP")}
    batches = list(make_pipeline(x, y, 10, args.batch_size).take(2))
    steps = {}
    for name in names:
        for k, v in saved.items():
            setattr(core.model, k, v)
        if name != "as is":
            use_variant(name)
        model = compiled(args.preset, args.precisions.split(",")[0], args.batch_size, 1000)
        model.make_train_function()
        steps[name] = model.train_function
        for i in range(3):
            steps[name](iter([batches[i % 2]]))
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            start = time.perf_counter()
            for batch in batches:
                logs = steps[name](iter([batch]))
            float(logs["loss"])
            times[name].append((time.perf_counter() - start) / len(batches))
    base = statistics.median(times["as is"])
    for name in names:
        median = statistics.median(times[name])
        print(
            f"{args.preset} {name}: {median * 1000:.0f} ms/step, "
            f"{args.batch_size / median:,.0f} images/s, "
            f"{median / base:.2f}x the time of the preset as is"
        )


def main():
    from core.train import make_pipeline

    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="quick")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--precisions", default="float32,mixed_bfloat16")
    p.add_argument("--small-map", type=int, help=VARIANTS["small-map=N"])
    p.add_argument("--plain-gelu", action="store_true", help=VARIANTS["plain-gelu"])
    p.add_argument("--plain-bn", action="store_true", help=VARIANTS["plain-bn"])
    p.add_argument("--ab", help="comma-separated variants to interleave with the preset as is")
    p.add_argument("--rounds", type=int, default=10, help="with --ab; 2 is too few to trust")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    if args.ab:
        if args.precisions == p.get_default("precisions"):
            args.precisions = "mixed_bfloat16"
        n = 2 * args.batch_size
        interleaved(args, rng.integers(0, 256, (n, 32, 32, 3)).astype(np.uint8), np.arange(n) % 10)
        return
    for flag, name in ((args.plain_bn, "plain-bn"), (args.plain_gelu, "plain-gelu")):
        if flag:
            use_variant(name)
    if args.small_map is not None:
        use_variant(f"small-map={args.small_map}")
    x = rng.integers(0, 256, (args.images, 32, 32, 3)).astype(np.uint8)
    y = rng.integers(0, 10, args.images)
    steps = -(-args.images // args.batch_size)
    for precision in args.precisions.split(","):
        model = compiled(args.preset, precision, args.batch_size, steps)
        data = make_pipeline(x, y, 10, args.batch_size)
        start = time.perf_counter()
        model.fit(data.take(2), verbose=0)
        first = time.perf_counter() - start  # tracing, compiling, kernel creation
        start = time.perf_counter()
        model.fit(data, verbose=0)
        rate = args.images / (time.perf_counter() - start)
        extra = first - 2 * args.batch_size / rate
        print(
            f"{args.preset} {precision}: {rate:,.0f} images/s; the first 2 steps took "
            f"{first:.1f} s, {extra:.1f} s more than 2 later ones"
        )


if __name__ == "__main__":
    main()
