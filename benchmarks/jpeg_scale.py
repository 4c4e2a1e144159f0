"""What decoding large JPEGs at a reduced scale costs in answers, and saves in time.

    python benchmarks/jpeg_scale.py --data ../shared/datasets/cifar10-jpeg [--images 2000]

Enlarges the first `--images` validation images (bicubic) to 640x480 and the first tenth
of them to 4000x3000, saves each as JPEG quality 90, and decodes it to the model's input
whole (`open_image` then `to_model_input`) and at reduced scales that keep 1, 2 (what
`decode_image` uses) and 4 times the input side. For each: decode time per image, the
shipped model's accuracy, how often it gives the same class as from the whole decode,
and the mean pixel difference.
"""

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    from core.data import load_dataset
    from core.images import open_image, to_model_input
    from core.model import load_model
    from core.registry import default_model_path

    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--model", default=str(default_model_path()))
    args = p.parse_args()
    model = load_model(args.model)
    side = model.input_shape[1]
    x, y = load_dataset(args.data, image_size=side, val_fraction=0.1, seed=0).split("val")
    for width, count in ((640, args.images), (4000, max(1, args.images // 10))):
        blobs = []
        for image in x[:count]:
            buf = io.BytesIO()
            big = Image.fromarray(image).resize((width, width * 3 // 4), Image.Resampling.BICUBIC)
            big.save(buf, "JPEG", quality=90)
            blobs.append(buf.getvalue())
        whole = None
        for factor in (None, 1, 2, 4):
            start = time.perf_counter()
            keep = factor and factor * side
            arrays = np.stack([to_model_input(open_image(b, at_least=keep), side) for b in blobs])
            ms = (time.perf_counter() - start) / count * 1000
            pred = model.predict(arrays.astype("float32"), verbose=0, batch_size=256).argmax(1)
            whole = whole or (arrays, pred)
            label = f"at least {factor * side} px" if factor else "whole"
            print(
                f"{width}x{width * 3 // 4}, {label}: {ms:.2f} ms/image, accuracy "
                f"{np.mean(pred == y[:count]):.2%}, same class as whole "
                f"{np.mean(pred == whole[1]):.2%}, mean pixel difference "
                f"{np.abs(arrays.astype(int) - whole[0]).mean():.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
