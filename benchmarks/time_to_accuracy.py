"""Time to accuracy: the seed, quick and fast presets trained on the same split in one run.

    python benchmarks/time_to_accuracy.py --mode short   # 1 epoch each, about 5 minutes
    python benchmarks/time_to_accuracy.py --mode full    # the targets: about 25 minutes

Each preset is trained by the project's own CLI (`python -m core.train`) in its own
process, one after the other, so the wall time, CPU time and peak memory of each are the
kernel's figures for that process alone. Validation accuracy is then measured on the same
stratified 10% split (seed 0), plain and with flip test-time augmentation.

Prints a Markdown table (preset, epochs, wall time, validation accuracy, images/s,
GFLOP/s against this machine's matrix-product rate in the precision trained, measured at
the start, peak memory) and writes the time-to-accuracy curve as a plotly HTML page. The
times above are the brief's 2-core machine's (bf16 units); on 2 AVX2 cores the presets
train in float32 (`--precision auto`) and take 2.4-5x as long.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401  (before TensorFlow: the matmul peak with oneDNN, as training has it)

# Epochs per preset. full: the preset's own recipe, sized to its time budget on 2 cores
# (seed: the classic 20; quick: 3 minutes; fast: 15 minutes).
EPOCHS = {
    "short": {"seed": 1, "quick": 1, "fast": 1},
    "full": {"seed": 20, "quick": None, "fast": None},  # None: the preset's recipe
}
# The compute type of each training precision, for the matmul peak it is measured against.
MATMUL_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16"}


def matmul_gflops(dtype: str, n: int = 2048, reps: int = 10) -> float:
    """This machine's matrix-product rate in TensorFlow: n x n by n x n, best of 3 rounds.

    The efficiency column divides by this, measured in the same run before any training,
    so a figure from another host (the brief's 200 / 390 GFLOP/s; 152 / 111 on an AVX2-only
    AMD EPYC with oneDNN, 112 / 94 with TensorFlow's own kernels) is not mistaken for this one's.
    """
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)
    tf.linalg.matmul(a, a).numpy()  # warm-up
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            product = tf.linalg.matmul(a, a)
        product.numpy()
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * n**3 / best / 1e9


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=EPOCHS, default="short")
    p.add_argument("--data", default=str(ROOT.parent / "shared/datasets/cifar10-jpeg"))
    p.add_argument("--presets", default="seed,quick,fast")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "benchmarks")
    p.add_argument("--chart", type=Path, default=ROOT / "docs" / "time_to_accuracy.html")
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = p.parse_args()

    peaks = {p: matmul_gflops(dtype) for p, dtype in MATMUL_DTYPE.items()}
    print(
        "matmul peak: " + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in peaks.items()),
        file=sys.stderr,
    )
    rows = []
    from core.train import preset_defaults

    for preset in args.presets.split(","):
        epochs = EPOCHS[args.mode][preset] or preset_defaults(preset).epochs
        print(f"training {preset} for {epochs} epoch(s)…", file=sys.stderr, flush=True)
        rows.append(train_one(preset, epochs, args))
    scored = [dict(r, **score(r["run_dir"], args.data, peaks)) for r in rows]
    print(table(scored))
    write_chart(scored, args.chart)
    print(f"chart: {args.chart}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(scored, indent=2))


def train_one(preset: str, epochs: int, args) -> dict:
    name = f"tta-{args.mode}-{preset}"
    command = [
        *(sys.executable, "-m", "core.train", "--preset", preset, "--data", args.data),
        *("--epochs", str(epochs), "--runs-dir", str(args.runs_dir), "--name", name, "--quiet"),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    _, exit_status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read()
    if exit_status != 0:
        sys.exit(f"{preset} failed:\n{stderr[-2000:]}")
    run_dir = Path(stderr.split("Run directory: ")[1].split()[0])
    return {
        "preset": preset,
        "epochs": epochs,
        "run_dir": str(run_dir),
        "process_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_mib": round(usage.ru_maxrss / 1024),
    }


def score(run_dir: str, data: str, peaks: dict) -> dict:
    """Accuracy (plain and flip TTA), throughput and FLOP rate of one finished run."""
    from core.data import load_dataset
    from core.evaluate import evaluate
    from core.flops import training_flops
    from core.model import build_model, load_model
    from core.train import TrainConfig

    card = json.loads((Path(run_dir) / "model_card.json").read_text())
    history = json.loads((Path(run_dir) / "history.json").read_text())
    model = load_model(Path(run_dir) / "model.keras")
    dataset = load_dataset(data, val_fraction=0.1, seed=0)
    x, y = dataset.split("val")
    plain = evaluate(model, x, y, dataset.class_names).accuracy
    tta = evaluate(model, x, y, dataset.class_names, tta="flip").accuracy
    seconds = sum(h["seconds"] for h in history)
    images_per_sec = card["data"]["split_sizes"]["train"] * len(history) / seconds
    # Epochs on small crops (progressive resizing) cost the FLOPs of the model at that size.
    config = TrainConfig.from_dict(card["train_config"])
    per_epoch = [training_flops(model)] * len(history)
    if config.small_crop_epochs:
        small = replace(config.model, input_size=config.small_crop_size)
        per_epoch[: config.small_crop_epochs] = [training_flops(build_model(small))] * min(
            config.small_crop_epochs, len(history)
        )
    gflops = images_per_sec * sum(per_epoch) / len(per_epoch) / 1e9
    precision = config.precision
    return {
        "train_seconds": round(seconds, 1),
        "val_accuracy": plain,
        "val_accuracy_tta": tta,
        "images_per_sec": round(images_per_sec),
        "gflops": round(gflops, 1),
        "peak_fraction": round(gflops / peaks[precision], 2),
        "matmul_peak": round(peaks[precision]),
        "precision": precision,
        "curve": [
            (round(sum(h["seconds"] for h in history[: i + 1]), 1), h["val_accuracy"])
            for i, h in enumerate(history)
        ],
    }


def table(rows) -> str:
    head = (
        "| preset | epochs | wall s (process) | training s | val acc | val acc, flip TTA "
        "| images/s | GFLOP/s (of the matmul peak measured) | peak MiB |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [
        f"| {r['preset']} | {r['epochs']} | {r['process_seconds']:.0f} | {r['train_seconds']:.0f} "
        f"| {r['val_accuracy']:.1%} | {r['val_accuracy_tta']:.1%} | {r['images_per_sec']:,} "
        f"| {r['gflops']:.0f} ({r['peak_fraction']:.0%} of {r['precision']}'s "
        f"{r['matmul_peak']}) "
        f"| {r['peak_mib']:,} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def write_chart(rows, path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure(
        [
            go.Scatter(
                x=[t / 60 for t, _ in r["curve"]],
                y=[a * 100 for _, a in r["curve"]],
                name=f"{r['preset']} ({r['epochs']} epochs)",
                mode="lines+markers",
            )
            for r in rows
        ]
    )
    fig.update_layout(
        title="Validation accuracy against training time (2 CPU cores)",
        xaxis_title="training minutes",
        yaxis_title="validation accuracy (%)",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="cdn")


if __name__ == "__main__":
    main()
