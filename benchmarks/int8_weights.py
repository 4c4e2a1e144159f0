"""Which int8 weight format answers like the float model on this CPU, and how fast.

    python benchmarks/int8_weights.py --data ../shared/datasets/cifar10-jpeg [--model M]

Builds three int8 copies of the model (default: the shipped one) in a temporary folder,
calibrated as `python -m core.quantize` does, and compares them with the float model on
2,000 of its validation images: signed 8-bit weights, signed 7-bit weights (ONNX Runtime's
`reduce_range`, what `core.quantize` builds) and unsigned 8-bit weights. On x86 CPUs
without VNNI, ONNX Runtime multiplies unsigned 8-bit activations by signed 8-bit weights
with an instruction that sums pairs of products into 16 bits, which 255 x 127 x 2
overflows. Prints the CPU's VNNI/AMX flags, then per format: accuracy, the share of images
with the float model's top class, and the median time of a batch of 256.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import model_and_its_split  # noqa: E402

from core import quantize  # noqa: E402
from core.model import load_model  # noqa: E402

IMAGES = 2000


def main() -> None:
    from onnxruntime.quantization import QuantType

    args, _, dataset = model_and_its_split(__doc__.split("\n")[0])
    model = load_model(args.model)
    flags = (
        set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    )
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    print(f"CPU flags: {', '.join(f for f in wanted if f in flags) or 'unknown'}")
    calibration = quantize.calibration_sample(dataset.split("train")[0])
    x, y = (a[:IMAGES] for a in dataset.split("val"))
    formats = {
        "signed 8-bit weights": {"reduce_range": False},
        "signed 7-bit weights (built)": {},
        "unsigned 8-bit weights": {"reduce_range": False, "weight_type": QuantType.QUInt8},
    }
    print("\n| weights | accuracy | same top class as float32 | batch of 256 |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in formats.items():
            target = quantize.build_int8(model, calibration, Path(tmp) / "m.onnx", options)
            int8 = quantize.Int8Model(target)
            report = quantize.compare(int8, model, x, y)
            int8.predict_on_batch(x[:256])
            times = []
            for _ in range(10):
                started = time.perf_counter()
                int8.predict_on_batch(x[:256])
                times.append(time.perf_counter() - started)
            print(
                f"| {name} | {report['accuracy']:.2%} | {report['agreement']:.2%} | "
                f"{np.median(times) * 1e3:.0f} ms |"
            )
    print(f"\nfloat32: {report['float32_accuracy']:.2%} on the same {len(x):,} images")


if __name__ == "__main__":
    main()
