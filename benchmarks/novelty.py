"""Which pictures the Classify page flags: the novelty check against the unsure flag.

    python benchmarks/novelty.py --data ../shared/datasets/cifar10-jpeg [--model M] [--int8]

For the model (default: the shipped one), fits its novelty check (`core.novelty`) on its
own training split as `python -m core.registry novelty` does, without writing it, and
prints the share of pictures each flag catches: the validation images (false alarms), and
seven kinds of picture drawn here that are none of the classes, 1,000 of each: uniform
noise, blurred noise, flat colours, gradients and stripes, printed numbers (like house
numbers), validation images cut into 8-pixel tiles and shuffled, and validation images with
their colours inverted. Flags compared: the check; the page's unsure flag (top probability
under 50% or normalised entropy over 60%, after the card's temperature); either of the two
(the page warns on both); the top probability at the threshold that flags as many
validation images as the check does.
Also times the check on one picture and on a batch of 256. With `--int8`, the check is
fitted on the model's int8 copy (as `python -m core.quantize` fits the copy's own), and the
copy gives the answers.
"""

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import model_and_its_split  # noqa: E402

from core import novelty  # noqa: E402
from core.classify import describe  # noqa: E402
from core.evaluate import predict_probs, with_temperature  # noqa: E402
from core.model import load_model  # noqa: E402

KIND = 1000  # pictures of each kind


def strangers(val: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Pictures that belong to no class, `KIND` of each, uint8 `(KIND, 32, 32, 3)`."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    rng = np.random.default_rng(seed)
    n = KIND
    out = {"uniform noise": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)}
    blurred = []
    for noise in rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8):
        a = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(rng.uniform(1, 3))))
        a = (a - a.mean()) / (a.std() + 1e-3) * 60 + 128  # the contrast blurring took away
        blurred.append(np.clip(a, 0, 255).astype(np.uint8))
    out["blurred noise"] = np.stack(blurred)
    out["flat colour"] = np.broadcast_to(rng.integers(0, 256, (n, 1, 1, 3)), (n, 32, 32, 3))
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    patterns = []
    for i in range(n):
        if i % 3 == 0:  # a linear gradient in a random direction
            angle = rng.uniform(0, 2 * np.pi)
            t = np.cos(angle) * xx + np.sin(angle) * yy
            t = (t - t.min()) / np.ptp(t)
        elif i % 3 == 1:  # stripes
            t = (xx * rng.integers(2, 8)).astype(int) % 2
        else:  # a checkerboard
            t = ((xx * rng.integers(2, 8)).astype(int) + (yy * rng.integers(2, 8)).astype(int)) % 2
        c0, c1 = rng.integers(0, 256, (2, 3))
        patterns.append(c0 * (1 - t[..., None]) + c1 * t[..., None])
    out["gradients, stripes"] = np.stack(patterns)
    numbers = []
    for _ in range(n):
        image = Image.new("RGB", (32, 32), tuple(int(v) for v in rng.integers(0, 256, 3)))
        font = ImageFont.load_default(size=int(rng.integers(14, 24)))
        ink = tuple(int(v) for v in rng.integers(0, 256, 3))
        at = tuple(int(v) for v in rng.integers(0, 8, 2))
        ImageDraw.Draw(image).text(at, str(rng.integers(0, 100)), fill=ink, font=font)
        numbers.append(np.asarray(image))
    out["printed numbers"] = np.stack(numbers)
    tiles = val[:n].reshape(n, 4, 8, 4, 8, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, 16, 8, 8, 3)
    tiles = np.stack([t[rng.permutation(16)] for t in tiles])
    out["8-px tiles shuffled"] = (
        tiles.reshape(n, 4, 4, 8, 8, 3).transpose(0, 1, 3, 2, 4, 5).reshape(n, 32, 32, 3)
    )
    out["colours inverted"] = 255 - val[n : 2 * n]
    return {k: np.ascontiguousarray(v, np.uint8) for k, v in out.items()}


def main() -> None:
    args, card, dataset = model_and_its_split(
        __doc__.split("\n")[0], {"--int8": "check and answer with the model's int8 copy"}
    )
    model = load_model(args.model)
    if args.int8:
        from core.quantize import Int8Model, int8_path

        model = Int8Model(int8_path(args.model))
    x_train, x_val = dataset.split("train")[0], dataset.split("val")[0]
    started = time.perf_counter()
    check = novelty.fit(model, x_train)
    print(
        f"fitted on {check.fit_images:,} + {len(check.calibration):,} training images of "
        f"{len(x_train):,} in {time.perf_counter() - started:.1f} s; layers {check.layers}"
    )
    temperature = (card.get("calibration") or {}).get("temperature", 1.0)
    names = card["class_names"]

    def flags(images):
        probs = with_temperature(predict_probs(model, images), temperature)
        unsure = np.array([describe(images[0], p, names).unsure for p in probs])
        return check.unfamiliar(check.scores(images)), unsure, probs.max(axis=1)

    checked, unsure, top = flags(x_val)
    top_threshold = np.quantile(top, checked.mean())  # flags as many validation images
    print(
        f"\n| pictures | novelty check | unsure flag | either (a warning on the page) "
        f"| top probability < {top_threshold:.2f} |"
    )
    print("|---|---|---|---|---|")
    rows = {f"validation ({len(x_val):,})": (checked, unsure, top)}
    rows |= {name: flags(images) for name, images in strangers(x_val).items()}
    for name, (c, u, t) in rows.items():
        shares = (c.mean(), u.mean(), (c | u).mean(), (t < top_threshold).mean())
        print(f"| {name} | " + " | ".join(f"{share:.1%}" for share in shares) + " |")
    one, batch = x_val[:1], x_val[:256]
    check.scores(one)  # traced once
    times = []
    for _ in range(50):
        started = time.perf_counter()
        check.scores(one)
        times.append(time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(5):
        check.scores(batch)
    per_batch = (time.perf_counter() - started) / 5
    print(
        f"\nthe check on one picture: median {np.median(times) * 1e3:.1f} ms; "
        f"a batch of 256: {per_batch * 1e3:.0f} ms ({256 / per_batch:,.0f} pictures/s)"
    )


if __name__ == "__main__":
    main()
