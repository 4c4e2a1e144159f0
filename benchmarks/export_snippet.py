"""Does an exported model, run by its README snippet, answer as the dashboard does? Phone-style
photos: validation images enlarged to 480 x 640 portrait and stored on their side with an EXIF
orientation (as phones save them), JPEG quality 90; each is read by the snippet's code
(`core.export.PREPARE["squash"]`, or the one-line reading before session 41 with --old) and by the
dashboard's (`core.images.decode_image`), and classified by the shipped model.

    python benchmarks/export_snippet.py --data ../shared/datasets/cifar10-jpeg --images 500
"""

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import export, images  # noqa: E402
from core.data import load_dataset  # noqa: E402
from core.model import load_model  # noqa: E402
from core.registry import DEFAULT_MODEL_DIR  # noqa: E402

BEFORE = """\
photo = Image.open(IMAGE).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BOX)
image = np.asarray(photo, dtype=np.float32)[None]
"""

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", required=True)
parser.add_argument("--images", type=int, default=500)
args = parser.parse_args()

dataset = load_dataset(args.data)
root = Path(args.data)
val_files = dataset.files["val"]
rng = np.random.default_rng(0)
chosen = np.sort(rng.choice(len(val_files), min(args.images, len(val_files)), replace=False))
labels = dataset.splits["val"][1][chosen]
model = load_model(DEFAULT_MODEL_DIR / "model.keras")
exif = Image.Exif()
exif[0x0112] = 6  # shown turned a quarter clockwise from how it is stored

inputs = {"dashboard": [], "snippet": [], "snippet before": []}
with tempfile.TemporaryDirectory() as tmp:
    photo = Path(tmp) / "photo.jpg"
    for i in chosen:
        upright = Image.open(root / val_files[i]).convert("RGB")
        upright = upright.resize((480, 640), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        upright.transpose(Image.Transpose.ROTATE_90).save(
            buffer, "JPEG", quality=90, exif=exif.tobytes()
        )
        photo.write_bytes(buffer.getvalue())
        inputs["dashboard"].append(images.decode_image(buffer.getvalue(), 32))
        for name, code in (("snippet", export.PREPARE["squash"]), ("snippet before", BEFORE)):
            scope = {"np": np, "Image": Image, "ImageOps": ImageOps, "SIZE": 32}
            scope["IMAGE"] = str(photo)
            exec(code, scope)
            inputs[name].append(scope["image"][0])

answers = {
    name: np.argmax(model.predict(np.stack(x).astype(np.float32), verbose=0), axis=1)
    for name, x in inputs.items()
}
same = np.array_equal(np.stack(inputs["snippet"]), np.stack(inputs["dashboard"]))
print(f"{len(chosen)} portrait photos from {args.data}'s validation split (seed 0)")
print(f"snippet's pixels identical to the dashboard's: {same}")
for name, found in answers.items():
    right, agree = np.mean(found == labels), np.mean(found == answers["dashboard"])
    print(f"{name:15s} accuracy {right:6.1%}   the dashboard's class {agree:6.1%}")
