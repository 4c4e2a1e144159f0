"""Where a training step's time goes: oneDNN's own timing of every primitive it runs.

    python benchmarks/onednn_breakdown.py --preset fast --steps 4
    python benchmarks/onednn_breakdown.py --predict assets/default_model/model.keras [--as-saved]

Trains the preset on random images (bf16 by default, batch 512) in a child process with
`ONEDNN_VERBOSE=1`, skips the first step (graph tracing, kernel creation), then sums the
`exec` times that oneDNN logs, by primitive and by convolution shape and direction. The
implementation column says which kernels run (`..._amx` = Intel AMX tiles). With
`--predict`, the same for `--steps` calls of `predict_on_batch` on `--batch-size` images of
a saved model (served as float32, or in its saved precision with `--as-saved`), with the
wall time per call beside it: what is not in oneDNN is TensorFlow's own kernels.
"""

import argparse
import collections
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = "--- timed steps ---"


def child(preset: str, steps: int, batch: int, precision: str) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from core.model import build_model, preset_config
    from core.train import TrainConfig, make_loss, make_optimizer, make_pipeline

    config = preset_config(preset)
    config.precision = precision
    model = build_model(config)
    recipe = TrainConfig(preset=preset, optimizer="nesterov", schedule="onecycle", epochs=1)
    model.compile(optimizer=make_optimizer(recipe, steps + 1), loss=make_loss(recipe))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch * (steps + 1), 32, 32, 3)).astype(np.uint8)
    data = make_pipeline(x, rng.integers(0, 10, len(x)), 10, batch)
    model.fit(data.take(1), verbose=0)
    print(MARK, flush=True)
    model.fit(data.skip(1), verbose=0)


def child_predict(path: str, steps: int, batch: int, as_saved: bool) -> None:
    import time

    import numpy as np

    sys.path.insert(0, str(ROOT))
    from core.model import load_model

    model = load_model(path, as_saved=as_saved)
    side = model.input_shape[1]
    x = np.random.default_rng(0).integers(0, 256, (batch, side, side, 3)).astype("float32")
    for _ in range(2):
        model.predict_on_batch(x)
    print(MARK, flush=True)
    start = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    print(f"wall {(time.perf_counter() - start) * 1000:,.0f} ms", file=sys.stderr, flush=True)


def summarise(log: str) -> str:
    by_kind, by_conv = collections.Counter(), collections.Counter()
    timed = log.split(MARK, 1)[-1]
    for line in timed.splitlines():
        fields = line.split(",")
        if not line.startswith("onednn_verbose") or len(fields) < 8 or fields[3] != "exec":
            continue
        ms = float(fields[-1])
        by_kind[fields[5]] += ms
        if fields[5] == "convolution":
            by_conv[(fields[7], fields[-2], fields[6])] += ms
    total = sum(by_kind.values())
    rows = [f"total {total:,.0f} ms"]
    rows += [f"{ms:9,.0f} ms  {ms / total:4.0%}  {kind}" for kind, ms in by_kind.most_common()]
    rows.append("convolutions, by direction and shape:")
    rows += [
        f"{ms:9,.0f} ms  {ms / total:4.0%}  {d:17} {shape}  [{impl}]"
        for (d, shape, impl), ms in by_conv.most_common()
    ]
    return "\n".join(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="fast")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--precision", default="mixed_bfloat16")
    p.add_argument("--predict", metavar="MODEL", help="time predict_on_batch of a .keras file")
    p.add_argument("--as-saved", action="store_true", help="with --predict: saved precision")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child and args.predict:
        return child_predict(args.predict, args.steps, args.batch_size, args.as_saved)
    if args.child:
        return child(args.preset, args.steps, args.batch_size, args.precision)
    command = [sys.executable, __file__, "--child", *sys.argv[1:]]
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    wall = [line for line in done.stderr.splitlines() if line.startswith("wall ")]
    print("\n".join([*wall, summarise(done.stdout)]))


if __name__ == "__main__":
    main()
