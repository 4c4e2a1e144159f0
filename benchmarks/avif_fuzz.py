"""Mutated AVIFs (or HEICs) through `core.images.decode_image`: every one must decode or be
refused with a sentence, quickly and in little memory.

    python benchmarks/avif_fuzz.py [--seed 1] [--count 20000] [--format heic]

AVIF seeds: three AVIFs Pillow writes here (noise, noise with alpha, a flat 8 x 8) and the
file in tests/data whose AV1 frame is 16384 x 16384 though its `ispe` box says 64 x 64.
HEIC seeds (Pillow writes none): the four HEIC files of tests/data (tests/data/make_heic.py),
one of them an 8192 x 8192 HEVC frame whose `ispe` box says 64 x 64. Each input has 1 to 4
mutations (bit flips, bytes set, cut, inserted or deleted, a header byte rewritten). Prints
the count decoded and refused (and of those, by a HEIC decoding process that crashed or
hung), the slowest decode and the peak memory; inputs slower than 0.2 s (1 s for a HEIC)
are written to --slow-dir. The test suite's Hypothesis fuzzing includes
AVIF and HEIC seeds too; this runs more of them, on one format's path alone.
"""

import argparse
import io
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import heif, images  # noqa: E402
from core.errors import ImageError  # noqa: E402


def encode(picture) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "AVIF")
    return buffer.getvalue()


# Inputs slower than this are kept: a HEIC's decode starts a process (about 0.1 s).
SLOW = {"avif": 0.2, "heic": 1.0}


def mutated(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        action = rng.choice(["flip", "set", "cut", "insert", "delete", "header"])
        if action == "flip":
            data[at] ^= 1 << rng.randrange(8)
        elif action == "set":
            data[at] = rng.choice([0, 1, 0x7F, 0x80, 0xFF])
        elif action == "cut":
            del data[at + 1 :]
        elif action == "insert":
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif action == "delete":
            del data[at : at + rng.randint(1, 8)]
        else:
            data[rng.randrange(min(len(data), 300))] = rng.randrange(256)
        if not data:
            break
    return bytes(data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--slow-dir", type=Path, default=Path("/tmp"))
    p.add_argument("--format", choices=("avif", "heic"), default="avif")
    args = p.parse_args()
    seeds = [
        path.read_bytes() for path in sorted((ROOT / "tests" / "data").glob(f"*.{args.format}"))
    ]
    if args.format == "avif":
        noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), np.uint8))
        seeds += [encode(noise), encode(noise.convert("RGBA")), encode(Image.new("RGB", (8, 8)))]
    rng, counts, worst, slow = random.Random(args.seed), {"decoded": 0, "refused": 0}, 0.0, 0
    failed, gave_up = 0, (heif.CRASHED, heif.TOO_SLOW.format(seconds=heif.DECODE_SECONDS))
    for _ in range(args.count):
        data = mutated(rng.choice(seeds), rng)
        start = time.perf_counter()
        try:
            images.decode_image(data, max_pixels=2**20)
            counts["decoded"] += 1
        except ImageError as err:
            counts["refused"] += 1
            failed += str(err).endswith(gave_up)  # a HEIC's decoding process crashed or hung
        seconds = time.perf_counter() - start
        worst = max(worst, seconds)
        if seconds > SLOW[args.format]:
            slow += 1
            name = f"{args.format}-fuzz-slow-{args.seed}-{slow}.{args.format}"
            (args.slow_dir / name).write_bytes(data)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"seed {args.seed}: {counts['decoded']:,} decoded, {counts['refused']:,} refused "
        f"({failed} by a decoder that crashed or hung), {slow} over {SLOW[args.format]} s, slowest "
        f"{worst * 1e3:.0f} ms, peak memory {peak:.0f} MB (decoding processes {children:.0f} MB)"
    )


if __name__ == "__main__":
    main()
