"""HEIC photos: the largest picture one would have its decoder make, read without decoding
it, and its decoding, in a process of its own.

A HEIC (a phone's HEIF photo) is an ISO media file (`core.isobmff`) whose pictures are HEVC
images, often a grid of 512 x 512 tiles. A picture's size appears in its `ispe` box, in a
grid's or an overlay's canvas, and in the HEVC sequence parameter set (SPS) that the
decoder (libde265) allocates its frames from. A file can make them disagree, as an AVIF can
(`core.avif`): a 16 kB file whose `ispe` says 64 x 64 holds an SPS of 8192 x 8192
(tests/data/frame_larger_than_declared.heic), so `core.images` checks them all. (libheif
1.23 refuses that frame by itself; this reading names the size and does not hang on a
limit that pillow-heif can switch off.)

    declared_size(data)   # (width, height) of the largest picture the file can make
    is_sequence(data)     # a burst or an animation, whose frames libheif takes from a track
    decode(data, max_pixels, at_least)   # (picture, (width, height)), in a process of its own
    with kept_decoder(): ...             # one such process for many files (a folder's)

Every SPS of the file, in the pictures' `hvcC` properties or among their own bytes, must be
read here; one that cannot be is refused as damaged rather than left to the decoder.

The decoder (pillow-heif: libheif and libde265) runs in a child process, `python -m
core.heif`, never in the dashboard's: HEVC decoders have a long record of memory errors on
crafted files, and a crash there would end every user's session. A crash, a hang or a child
out of memory is one refused file. A folder's files go to one process, one after another,
within `kept_decoder()` (a process costs about 0.1 s to start, more than a small HEIC's
decode); it is started again after a file that ends it.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import json
import os
import selectors
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict

from PIL import Image

from core import ROOT, isobmff
from core.errors import ImageError

DAMAGED = "The HEIC file is truncated or damaged, so it cannot be read."
NOT_HEVC = (
    "This HEIF file holds no HEVC picture (the kind a phone's HEIC photo holds), so it "
    "cannot be read here; convert it to JPEG or PNG and try again."
)

CRASHED = "The HEIC file is damaged: its decoder failed on it, so it cannot be read."
TOO_SLOW = "The HEIC file took over {seconds} s to decode, so it was given up."
DECODER = [sys.executable, "-m", "core.heif"]  # run from the project's folder, whatever ours
DECODE_SECONDS = 30  # a 39-megapixel HEIC took 1.7 s here, whole
# The child's address space: decoding a 39-megapixel HEIC whole peaked at 0.42 GB of memory;
# libheif's threads reserve their stacks and malloc arenas besides.
CHILD_BYTES = 3 << 30
MODES = ("RGB", "RGBA", "L", "LA")  # what pillow-heif gives (HDR is brought to 8 bits)
# The last pictures decoded, by their bytes' digest and pixel limit: their size, the factor
# they were reduced by and their pixels (a reduced 12-megapixel photo is 0.6 MB). The same
# bytes give the same pixels whoever uploads them.
RECENT, RECENT_PIXELS = 16, 1_000_000  # pictures kept, and the largest (up to 4 MB each)
_RECENT: OrderedDict = OrderedDict()
_RECENT_LOCK = threading.Lock()

_HEVC_ITEM, _CANVASES = b"hvc1", (b"grid", b"iovl")  # a grid of tiles, an overlay
_SPS = 33  # HEVC's NAL unit type of a sequence parameter set
# Bounds on the reading (a hostile file could repeat an item or a NAL unit millions of
# times), far above what encoders write: a 48-megapixel grid is 192 tiles of a few units.
_MOST_PICTURES = 4096  # HEVC pictures and canvases of a file
_MOST_NALS = 1000  # NAL units walked in one picture
_SPS_BYTES = 256  # what the size is read from: it comes within 30 bytes
_HVCC_ARRAYS = 22  # where an hvcC box's arrays of NAL units begin


def declared_size(data: bytes) -> tuple[int, int]:
    """The largest (width, height), by area, of the file's `ispe` boxes, its grids' and
    overlays' canvases and its HEVC sequence parameter sets.

    Raises:
        ImageError: the file has no HEVC picture, no parameter set to decode one with, or
            one that cannot be read.
    """
    boxes, frames = _sizes(data)
    return max(boxes + frames, key=lambda size: size[0] * size[1])


def frames_fit(data: bytes) -> bool:
    """Whether every HEVC frame of the file fits its largest picture as its boxes declare it
    (`ispe`, a grid's canvas), each side rounded up to whole 64-pixel coding blocks: true
    of what cameras and encoders write (a grid's tiles, or one frame of the picture's
    size), false of a file whose decoder would make a frame larger than it says.

    Raises:
        ImageError: as `declared_size`.
    """
    boxes, frames = _sizes(data)
    if not boxes:
        return False
    width, height = max(boxes, key=lambda size: size[0] * size[1])
    return all(w <= -(-width // 64) * 64 and h <= -(-height // 64) * 64 for w, h in frames)


def _sizes(data: bytes) -> tuple[list, list]:
    """The (width, height) of the file's `ispe` boxes and canvases, and of its HEVC
    sequence parameter sets (the frames the decoder makes); raises as `declared_size`."""
    boxes, frames, pictures = [], [], 0
    for meta, meta_end in isobmff.boxes(data, 0, len(data), b"meta"):
        meta += 4  # a full box: version and flags first
        boxes += isobmff.spatial_extents(data, meta, meta_end)
        try:
            for hvcc, hvcc_end in isobmff.properties(data, meta, meta_end, b"hvcC"):
                frames += _frame_sizes(_configured_units(data, hvcc, hvcc_end))
            kinds = {_HEVC_ITEM, *_CANVASES}
            for kind, stream in isobmff.item_streams(data, meta, meta_end, kinds, _MOST_PICTURES):
                if kind == _HEVC_ITEM:
                    frames += _frame_sizes(_stream_units(stream))
                    pictures += 1
                else:
                    boxes.append(_canvas_size(kind, stream))
        except ValueError as err:
            raise ImageError(DAMAGED) from err
    if not pictures:
        raise ImageError(NOT_HEVC if boxes or frames else DAMAGED)
    if not frames:  # the decoder starts no picture without a sequence parameter set
        raise ImageError(DAMAGED)
    return boxes, frames


def is_sequence(data: bytes) -> bool:
    """Whether the file holds an image sequence (a `moov` box): libheif would then decode
    its track's frames, whose sizes this module does not read."""
    return isobmff.has_track(data)


def _configured_units(data, start, end):
    """The parameter sets (VPS, SPS, PPS, ...) an `hvcC` property holds, which the decoder
    reads before the picture's own bytes."""
    reader = isobmff.Bytes(data, start + _HVCC_ARRAYS, end)
    for _ in range(reader.take(1)):
        reader.take(1)  # completeness and the units' type, which each unit repeats
        for _ in range(reader.take(2)):
            length = reader.take(2)
            if reader.pos + length > end:
                raise ValueError("parameter set cut short")
            reader.pos += length
            yield data[reader.pos - length : reader.pos]


def _stream_units(stream):
    """The NAL units of a picture's bytes, each after its 4-byte length (as libheif hands
    them to libde265)."""
    pos = 0
    for _ in range(_MOST_NALS):
        if pos + 4 > len(stream):
            return
        length = int.from_bytes(stream[pos : pos + 4], "big")
        pos += 4
        if pos + length > len(stream):
            raise ValueError("NAL unit cut short")
        yield stream[pos : pos + length]
        pos += length
    if pos < len(stream):
        raise ValueError("too many NAL units")


def _frame_sizes(units) -> list[tuple[int, int]]:
    """The frame size of each sequence parameter set among the NAL `units`."""
    return [size for unit in units if (size := _sps_size(unit))]


def _sps_size(nal: bytes) -> tuple[int, int] | None:
    """pic_width_in_luma_samples and pic_height_in_luma_samples of a sequence parameter
    set (H.265 7.3.2.2), the size of every frame it codes; None for any other unit."""
    if len(nal) < 2 or (nal[0] >> 1) & 63 != _SPS:
        return None
    # The payload with its emulation prevention bytes (00 00 03) taken out.
    bits = isobmff.Bits(nal[2 : 2 + _SPS_BYTES].replace(b"\0\0\3", b"\0\0"))
    bits.f(4)  # sps_video_parameter_set_id
    sub_layers = bits.f(3)  # sps_max_sub_layers_minus1
    bits.f(1)  # sps_temporal_id_nesting_flag
    bits.f(96)  # profile_tier_level: the general profile, tier and level
    present = [(bits.f(1), bits.f(1)) for _ in range(sub_layers)]  # profile, level flags
    if sub_layers:
        bits.f(2 * (8 - sub_layers))  # reserved_zero_2bits
    for profile, level in present:
        bits.f(88 * profile + 8 * level)
    bits.uvlc()  # sps_seq_parameter_set_id
    if bits.uvlc() == 3:  # chroma_format_idc 4:4:4
        bits.f(1)  # separate_colour_plane_flag
    return bits.uvlc(), bits.uvlc()


def _canvas_size(kind, stream):
    """The output size of a grid's or an overlay's data (ISO/IEC 23008-12 6.6.2.3, 6.6.2.2):
    16-bit sides, or 32-bit ones when the first flag is set."""
    reader = isobmff.Bytes(stream, 0, len(stream))
    reader.take(1)  # version
    side = 4 if reader.take(1) & 1 else 2
    reader.take(2) if kind == b"grid" else reader.take(8)  # rows and columns; fill values
    return reader.take(side), reader.take(side)


def decode(data: bytes, max_pixels: int, at_least: int | None = None):
    """The primary picture of a HEIC whose sizes `core.images` has checked, decoded by
    pillow-heif in a child process.

    Args:
        data: The file's bytes.
        max_pixels: Largest width * height decoded; a larger picture comes back as its size
            alone, for the caller's refusal.
        at_least: Optional side in pixels that both sides must keep: the picture is then
            reduced by 2, 4 or 8 (box averaging, as `Image.reduce`), the most that keeps
            both, before it is sent back (a 12-megapixel photo's pixels are 36 MB).

    Returns:
        `(image, (width, height))`: a loaded `PIL.Image.Image` in one of `MODES`, upright
        (libheif applies the file's rotation and mirroring), None when the picture is over
        `max_pixels`; and the picture's size, upright, before any reduction.

    Raises:
        ImageError: the child crashed, ran out of memory or time.
        RuntimeError: pillow-heif could not read the file; its message (`core.images`
            words it as a damaged file).
    """
    # The Classify page asks twice for each photo (its answer, its display): a phone's
    # photo is reduced by 8 for both, so the second is the first one's pixels (0.5 s less).
    key = (hashlib.blake2b(data, digest_size=16).digest(), max_pixels)
    with _RECENT_LOCK:
        size, factor, image = _RECENT.get(key, (None, None, None))
        if image is not None and factor == _factor(size, at_least):
            _RECENT.move_to_end(key)
            return image.copy(), size
    kept = _KEPT.get()
    if kept is None:
        image, size = _decoded_by_child(data, max_pixels, at_least)
    else:
        image, size = kept.decode(data, max_pixels, at_least)
    if image is not None and image.width * image.height <= RECENT_PIXELS:
        with _RECENT_LOCK:
            _RECENT[key] = size, _factor(size, at_least), image.copy()
            while len(_RECENT) > RECENT:
                _RECENT.popitem(last=False)
    return image, size


def _decoded_by_child(data, max_pixels, at_least):
    command = [*DECODER, str(max_pixels), str(at_least or 0)]
    try:
        done = subprocess.run(
            command, input=data, capture_output=True, timeout=DECODE_SECONDS, cwd=ROOT
        )
    except subprocess.TimeoutExpired as err:
        raise ImageError(TOO_SLOW.format(seconds=DECODE_SECONDS)) from err
    if done.returncode:
        raise ImageError(CRASHED)
    return _parsed(done.stdout)


def _parsed(reply: bytes):
    """`decode`'s result from the child's reply to one file (`_answer`)."""
    header, _, pixels = reply.partition(b"\n")
    try:
        answer = json.loads(header)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ImageError(CRASHED)
    if "error" in answer:
        raise RuntimeError(answer["error"])
    try:
        size = tuple(answer["size"])
        if "mode" not in answer:
            return None, size
        return Image.frombytes(answer["mode"], tuple(answer["shape"]), pixels), size
    except (KeyError, TypeError, ValueError) as err:  # a reply cut short or garbled
        raise ImageError(CRASHED) from err


# `kept_decoder`'s messages: a request is (max_pixels, at_least, length) then the file's
# bytes; a reply is its length then `_answer`'s bytes.
_REQUEST, _REPLY = struct.Struct("<QIQ"), struct.Struct("<Q")
_KEPT: contextvars.ContextVar = contextvars.ContextVar("kept_heic_decoder", default=None)


@contextlib.contextmanager
def kept_decoder():
    """Within it, `decode` sends this context's HEIC files to one child process, one after
    another, started at the first and ended on leaving: the same pictures, the same limits
    (its address space, `DECODE_SECONDS` a file) and the same refusals as a process per
    file, without a process's start (about 0.1 s) per file. A file that crashes, hangs or
    garbles the child ends it; the next file starts another."""
    decoder = _KeptDecoder()
    token = _KEPT.set(decoder)
    try:
        yield
    finally:
        _KEPT.reset(token)
        decoder.close()


class _KeptDecoder:
    def __init__(self):
        self._proc = None

    def decode(self, data, max_pixels, at_least):
        request = _REQUEST.pack(max_pixels, at_least or 0, len(data)) + data
        deadline = time.monotonic() + DECODE_SECONDS
        for attempt in (1, 2):
            if self._proc is None:
                self._proc = subprocess.Popen(
                    [*DECODER, "serve"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    cwd=ROOT,
                )
            try:
                self._send(request, deadline)
                break
            except BrokenPipeError:  # it ended since its last file: another one, once
                self.close()
                if attempt == 2:
                    raise ImageError(CRASHED) from None
            except TimeoutError:
                self.close()
                raise ImageError(TOO_SLOW.format(seconds=DECODE_SECONDS)) from None
        try:
            (length,) = _REPLY.unpack(self._receive(_REPLY.size, deadline))
            if length > 4 * max_pixels + 4096:  # more than any picture's reply: garbage
                raise EOFError
            return _parsed(self._receive(length, deadline))
        except TimeoutError:
            self.close()
            raise ImageError(TOO_SLOW.format(seconds=DECODE_SECONDS)) from None
        except (EOFError, OSError, ImageError):
            self.close()
            raise ImageError(CRASHED) from None

    def _send(self, request: bytes, deadline: float) -> None:
        fd, view = self._proc.stdin.fileno(), memoryview(request)
        os.set_blocking(fd, False)  # a child that stops reading must not block us
        with selectors.DefaultSelector() as wait:
            wait.register(fd, selectors.EVENT_WRITE)
            while view:
                if not wait.select(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError
                with contextlib.suppress(BlockingIOError):
                    view = view[os.write(fd, view[: 1 << 16]) :]

    def _receive(self, count: int, deadline: float) -> bytes:
        fd, parts, got = self._proc.stdout.fileno(), [], 0
        with selectors.DefaultSelector() as wait:
            wait.register(fd, selectors.EVENT_READ)
            while got < count:
                if not wait.select(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError
                part = os.read(fd, min(count - got, 1 << 20))
                if not part:
                    raise EOFError
                parts.append(part)
                got += len(part)
        return b"".join(parts)

    def close(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
            self._proc = None


def _answer(data: bytes, max_pixels: int, at_least: int) -> bytes:
    """The child's reply to one file: a JSON line (`size`, and `mode` and `shape` when
    pixels follow, or `error`), then the pixels."""
    try:
        image = Image.open(io.BytesIO(data), formats=["HEIF"])
        answer = {"size": image.size}
        if image.size[0] * image.size[1] <= max_pixels:
            image.load()
            if image.mode not in MODES:
                raise ValueError(f"pictures of mode {image.mode} are not read here")
            image = _reduced(image, at_least)
            answer |= {"mode": image.mode, "shape": image.size}
    except Exception as err:  # pillow-heif's failures are RuntimeError, ValueError, ...
        return json.dumps({"error": str(err).strip() or type(err).__name__}).encode()
    reply = json.dumps(answer).encode() + b"\n"
    return reply + image.tobytes() if "mode" in answer else reply


def main() -> None:
    """The child of `decode`: `MAX_PIXELS AT_LEAST` decodes the file on stdin and writes
    `_answer`'s reply; `serve` answers `kept_decoder`'s requests until stdin ends."""
    import resource  # POSIX only, as this child

    with contextlib.suppress(ValueError, OSError):  # a system that does not bound it
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_BYTES, CHILD_BYTES))
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    stdin, out = sys.stdin.buffer, sys.stdout.buffer
    if sys.argv[1:] != ["serve"]:
        out.write(_answer(stdin.read(), int(sys.argv[1]), int(sys.argv[2])))
        return
    while len(head := stdin.read(_REQUEST.size)) == _REQUEST.size:
        max_pixels, at_least, length = _REQUEST.unpack(head)
        reply = _answer(stdin.read(length), max_pixels, at_least)
        out.write(_REPLY.pack(len(reply)) + reply)
        out.flush()


def reduced_pixels(size, at_least) -> int:
    """How many pixels `decode` sends back of a picture of `size` (width, height) asked
    `at_least` of: `Image.reduce` by `_factor` rounds each side up."""
    factor = _factor(size, at_least)
    return -(-size[0] // factor) * -(-size[1] // factor)


def _factor(size, at_least):
    """The largest of 8, 4 and 2 that keeps both sides of `size` at `at_least`, or 1."""
    return next((f for f in (8, 4, 2) if at_least and min(size) >= f * at_least), 1)


def _reduced(image, at_least):
    factor = _factor(image.size, at_least)
    return image.reduce(factor) if factor > 1 else image


if __name__ == "__main__":
    main()
