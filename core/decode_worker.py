"""One of the processes that decode a large image folder (`core.data.decode_files`).

    python -m core.decode_worker < request.json > messages

The request on stdin is `{"size": S, "fit": F, "paths": [...]}` (F as
`core.data.decode_file` takes it). For every `CHUNK` paths (fewer at
the end) it writes one message to stdout: a JSON line `{"n": k, "failed": [[i, reason],
...]}` (`i` counted from the chunk's first path), then the chunk's pixels, uint8 `(k, S, S,
3)` with zeros where a file failed, then their BLAKE2b digests, uint8 `(k, 16)`, then what
each file stored, int32 `(k, 3)` (width, height, flags). A worker that stops half-way
leaves its remaining paths to the process that started it.

Pillow parses a small JPEG's headers in Python holding the GIL (about 200 of the 250 µs a
32 x 32 CIFAR-10 file costs), so threads do not decode faster than one; processes do.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from core import heif
from core.data import decode_file

CHUNK = 250


def send(out, pixels: np.ndarray, digests: np.ndarray, stored: np.ndarray, failed: list) -> None:
    """Writes one chunk's message."""
    out.write(json.dumps({"n": len(pixels), "failed": failed}).encode() + b"\n")
    for array in (pixels, digests, stored):
        out.write(array.tobytes())
    out.flush()


def main() -> None:
    request = json.load(sys.stdin)
    size, paths = int(request["size"]), request["paths"]
    fit = str(request["fit"])
    out = sys.stdout.buffer
    with heif.kept_decoder():  # its HEIC files through one decoding process, not one each
        _decode(paths, size, fit, out)


def _decode(paths, size, fit, out) -> None:
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        pixels = np.zeros((len(chunk), size, size, 3), np.uint8)
        digests = np.zeros((len(chunk), 16), np.uint8)
        stored = np.zeros((len(chunk), 3), np.int32)
        failed = []
        for i, path in enumerate(chunk):
            image, digest, held, reason = decode_file(path, size, fit)
            if reason is not None:
                failed.append([i, reason])
                continue
            pixels[i], digests[i], stored[i] = image, np.frombuffer(digest, np.uint8), held
        send(out, pixels, digests, stored, failed)


if __name__ == "__main__":
    main()
