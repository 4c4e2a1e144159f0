"""Training-step throughput of a preset in float32 and mixed bf16, on random images.

    python benchmarks/step_speed.py --preset quick [--precisions mixed_bfloat16] [--small-map 0]
        [--plain-gelu] [--plain-bn]

No dataset needed: 4,096 random 32x32 images, the preset's own layers, Nesterov SGD,
after two warm-up steps. Prints images per second for each precision.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    from core.model import build_model, preset_config
    from core.train import TrainConfig, make_loss, make_optimizer, make_pipeline

    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="quick")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--precisions", default="float32,mixed_bfloat16")
    p.add_argument(
        "--small-map",
        type=int,
        help="core.model.SMALL_MAP for this run: 0 gives every conv oneDNN's weight gradient",
    )
    p.add_argument(
        "--plain-gelu",
        action="store_true",
        help="Activation('gelu') in place of core.model.FastGelu (its fused training kernels)",
    )
    p.add_argument(
        "--plain-bn",
        action="store_true",
        help="BatchNormalization in place of core.model.FastBatchNorm (its fused training kernels)",
    )
    args = p.parse_args()
    if args.plain_bn:
        from keras import layers

        import core.model

        core.model.FastBatchNorm = layers.BatchNormalization
    if args.plain_gelu:
        from keras import layers

        import core.model

        class PlainGelu(layers.Activation):
            def __init__(self, activation="gelu", **kwargs):
                super().__init__(activation, **kwargs)

        core.model.FastGelu = PlainGelu
    if args.small_map is not None:
        import core.model

        core.model.SMALL_MAP = args.small_map
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.images, 32, 32, 3)).astype(np.uint8)
    y = rng.integers(0, 10, args.images)
    steps = -(-args.images // args.batch_size)
    for precision in args.precisions.split(","):
        config = preset_config(args.preset)
        config.precision = precision
        model = build_model(config)
        recipe = TrainConfig(
            preset=args.preset,
            optimizer="nesterov",
            learning_rate=0.1,
            schedule="onecycle",
            epochs=1,
            batch_size=args.batch_size,
        )
        model.compile(optimizer=make_optimizer(recipe, steps), loss=make_loss(recipe))
        data = make_pipeline(x, y, 10, args.batch_size)
        model.fit(data.take(2), verbose=0)
        start = time.perf_counter()
        model.fit(data, verbose=0)
        rate = args.images / (time.perf_counter() - start)
        print(f"{args.preset} {precision}: {rate:,.0f} images/s")


if __name__ == "__main__":
    main()
