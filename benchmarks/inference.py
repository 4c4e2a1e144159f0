"""Inference latency of the shipped model: one upload end to end, and batch throughput.

    python benchmarks/inference.py [--model assets/default_model/model.keras] [--runs 200]

One upload = decode untrusted bytes, resize to the input size, forward pass, top-k
(`core.classify.classify_bytes`, which runs Keras's compiled `predict_on_batch`). Uploads
are generated photo-sized JPEGs (640x480), so nothing here depends on a dataset. Also
reported for one image, as the same run's baselines: the eager call `model(x)` (what the
dashboard used before) and `model.predict`. A mixed_bfloat16 model runs as the dashboard
serves it, in float32 (`core.model.load_model`); `--as-saved` runs it in bf16. When the
model has a current int8 copy (`python -m core.quantize`), the same measures follow for it.

With the check for unfamiliar pictures, as the Classify page runs it (`classify_batch` for
one upload, `predict_checked` for a batch): the float model with its check, the int8 copy
with the float model's check (a copy built before copies had their own), and the int8
copy with its own, read in the same pass as its answers.
"""

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _jpeg(rng, size=(640, 480)) -> bytes:
    small = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1000, q))


def _time(model, uploads, x, names, runs):
    """Seconds per upload through `classify_bytes`, and per batch of `x` (10 batches)."""
    from core.classify import classify_bytes, predict_pixels

    for data in uploads[:5]:  # warm-up: graph tracing, allocator
        classify_bytes(model, data, names)
    single = []
    for i in range(runs):
        start = time.perf_counter()
        classify_bytes(model, uploads[i % len(uploads)], names)
        single.append(time.perf_counter() - start)
    predict_pixels(model, x)
    batch_times = []
    for _ in range(10):
        start = time.perf_counter()
        predict_pixels(model, x)
        batch_times.append(time.perf_counter() - start)
    return single, batch_times


def _time_checked(model, check, uploads, x, names, runs):
    """`_time` with the check: one upload through `classify_batch`, a batch through
    `predict_checked`."""
    from core.classify import classify_batch, predict_checked

    def one(i):
        classify_batch(model, [("upload.jpg", uploads[i % len(uploads)])], names, check=check)

    for i in range(5):
        one(i)
    single = []
    for i in range(runs):
        start = time.perf_counter()
        one(i)
        single.append(time.perf_counter() - start)
    predict_checked(model, x, check=check)
    batch_times = []
    for _ in range(10):
        start = time.perf_counter()
        predict_checked(model, x, check=check)
        batch_times.append(time.perf_counter() - start)
    return single, batch_times


def main():
    from core.model import is_bfloat16, load_model
    from core.quantize import INT8_FILE, Int8Model, int8_path, read_record
    from core.registry import default_model_path

    p = argparse.ArgumentParser()
    p.add_argument("--model", default=str(default_model_path()))
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument(
        "--as-saved",
        action="store_true",
        help="run a mixed_bfloat16 model in bf16, as saved (the dashboard serves float32)",
    )
    args = p.parse_args()

    model = load_model(args.model, as_saved=args.as_saved)
    names = [str(i) for i in range(model.output_shape[-1])]
    size = model.input_shape[1]
    rng = np.random.default_rng(0)
    uploads = [_jpeg(rng) for _ in range(32)]
    x = rng.integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8)
    single, batch_times = _time(model, uploads, x, names, args.runs)
    fast, int8 = None, None
    if read_record(args.model) is not None and not args.as_saved:
        int8 = Int8Model(int8_path(args.model))
        fast = _time(int8, uploads, x, names, args.runs)
    checked = _checked_rows(args.model, model, int8, uploads, x, names, args.runs)

    one = x[:1].astype("float32")
    model.predict(one, verbose=0)
    predict_times = []
    for _ in range(50):
        start = time.perf_counter()
        model.predict(one, verbose=0)
        predict_times.append(time.perf_counter() - start)

    eager_times = []
    for _ in range(50):
        start = time.perf_counter()
        np.asarray(model(one, training=False))
        eager_times.append(time.perf_counter() - start)

    print(
        f"model {args.model} ({model.count_params():,} parameters, {size}x{size} input, "
        f"computing in {'bfloat16' if is_bfloat16(model) else 'float32'})"
    )
    print(
        f"single upload end to end: p50 {_percentile(single, 50):.2f} ms, "
        f"p95 {_percentile(single, 95):.2f} ms over {args.runs} runs"
    )
    print(
        f"batch of {args.batch}: {args.batch / statistics.median(batch_times):,.0f} images/s "
        f"(median of 10)"
    )
    if fast is not None:
        print(
            f"int8 copy ({INT8_FILE}, ONNX Runtime): single upload p50 "
            f"{_percentile(fast[0], 50):.2f} ms, p95 {_percentile(fast[0], 95):.2f} ms; batch "
            f"of {args.batch}: {args.batch / statistics.median(fast[1]):,.0f} images/s, "
            f"{statistics.median(batch_times) / statistics.median(fast[1]):.2f}x float32"
        )
    for label, (one, many) in checked:
        print(
            f"with the check for unfamiliar pictures, {label}: single upload p50 "
            f"{_percentile(one, 50):.2f} ms, p95 {_percentile(one, 95):.2f} ms; batch of "
            f"{args.batch}: {args.batch / statistics.median(many):,.0f} images/s"
        )
    upload = statistics.median(single)
    for name, times in (("eager model(x)", eager_times), ("model.predict", predict_times)):
        ratio = upload / statistics.median(times)
        print(
            f"{name} on one image (forward only): p50 {_percentile(times, 50):.2f} ms; "
            f"a whole upload through classify_bytes takes {ratio:.2f}x that"
        )


def _checked_rows(model_path, model, int8, uploads, x, names, runs):
    from core import novelty
    from core.quantize import novelty_path

    check = novelty.load(Path(model_path).parent / novelty.FILE, model, model_path)
    if check is None:
        return []
    rows = [("float32 and its check", _time_checked(model, check, uploads, x, names, runs))]
    if int8 is not None:
        rows.append(
            ("int8 answers, float32 check", _time_checked(int8, check, uploads, x, names, runs))
        )
        own = novelty.load(novelty_path(model_path), int8, int8.path)
        if own is not None:
            rows.append(
                ("int8 and its own check", _time_checked(int8, own, uploads, x, names, runs))
            )
    return rows


if __name__ == "__main__":
    main()
