"""Reading an ISO media file's boxes (AVIF and HEIC photos) without decoding its pictures.

A box is a 32-bit size, a four-letter type, then its content; a still image's pictures are
items of the `meta` box: their types in `iinf`, their bytes located by `iloc`, their
properties (such as `ispe`, the size) in `iprp/ipco`. `core.avif` and `core.heif` read
from these the sizes each decoder would allocate.

    for meta, meta_end in boxes(data, 0, len(data), b"meta"): ...
    spatial_extents(data, meta + 4, meta_end)   # every (width, height) an ispe declares
    item_streams(data, meta + 4, meta_end, {b"av01"}, most)   # (type, bytes) of each item

Every reading is bounded by the file: a box or an extent that runs past its parent ends
the walk rather than being read, and the items' streams add up to the file at most.
"""

from __future__ import annotations

import struct


def boxes(data: bytes, start: int, end: int, kind: bytes):
    """(content start, box end) of each box of type `kind` among the boxes from `start` to
    `end`. Size 1: a 64-bit size follows the type; size 0: the box runs to `end`."""
    pos = start
    while pos + 8 <= end:
        size, found = struct.unpack(">I4s", data[pos : pos + 8])
        content = pos + 8
        if size == 1:
            if pos + 16 > end:
                return
            size, content = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], pos + 16
        elif size == 0:
            size = end - pos
        if size < content - pos:
            return
        if found == kind:
            yield content, min(end, pos + size)
        pos += size


def has_track(data: bytes) -> bool:
    """Whether the file holds a timed sequence (a `moov` box: an animation, a burst), whose
    frames a decoder takes from a track that these readings do not size."""
    return next(boxes(data, 0, len(data), b"moov"), None) is not None


def properties(data: bytes, meta: int, meta_end: int, kind: bytes):
    """(content start, end) of each property box of type `kind` under meta/iprp/ipco."""
    for iprp, iprp_end in boxes(data, meta, meta_end, b"iprp"):
        for ipco, ipco_end in boxes(data, iprp, iprp_end, b"ipco"):
            yield from boxes(data, ipco, ipco_end, kind)


def spatial_extents(data: bytes, meta: int, meta_end: int) -> list[tuple[int, int]]:
    """Every `ispe`'s (width, height): each image item has one, a grid of tiles included."""
    return [
        struct.unpack(">II", data[ispe + 4 : ispe + 12])  # after its version and flags
        for ispe, ispe_end in properties(data, meta, meta_end, b"ispe")
        if ispe_end - ispe >= 12
    ]


def item_streams(data: bytes, meta: int, meta_end: int, kinds: set, most: int):
    """(item type, data) of each item whose type is one of `kinds`, its extents joined.

    Raises:
        ValueError: more than `most` such items, one with no location this can read or
            whose data runs past the file (cut short), or their data adds up to more than
            the file (a legitimate file stores each byte once).
    """
    wanted = {item: kind for item, kind in item_types(data, meta, meta_end) if kind in kinds}
    if len(wanted) > most:
        raise ValueError("too many pictures")
    idat = next(boxes(data, meta, meta_end, b"idat"), (0, 0))[0]
    located, total = set(), 0
    for item, method, extents in item_locations(data, meta, meta_end):
        if item not in wanted:
            continue
        if method not in (0, 1) or item in located:  # 0: in the file, 1: in the idat box
            raise ValueError("a picture stored in a way this does not read")
        base = idat if method == 1 else 0
        spans = [(base + at, base + at + length if length else len(data)) for at, length in extents]
        if any(end > len(data) for _, end in spans):
            raise ValueError("a picture cut short")
        stream = b"".join(data[start:end] for start, end in spans)
        located.add(item)
        total += len(stream)
        if total > len(data):
            raise ValueError("pictures larger than the file")
        yield wanted[item], stream
    if located != set(wanted):
        raise ValueError("a picture without a location")


def item_types(data: bytes, meta: int, meta_end: int):
    """(item ID, item type) from the `infe` boxes (versions 2 and 3) of `iinf`."""
    for iinf, iinf_end in boxes(data, meta, meta_end, b"iinf"):
        first = iinf + (6 if data[iinf] == 0 else 8)  # version, flags, a 16- or 32-bit count
        for infe, infe_end in boxes(data, first, iinf_end, b"infe"):
            version = data[infe]
            if version == 2 and infe + 12 <= infe_end:
                yield struct.unpack(">H", data[infe + 4 : infe + 6])[0], data[infe + 8 : infe + 12]
            elif version == 3 and infe + 14 <= infe_end:
                yield struct.unpack(">I", data[infe + 4 : infe + 8])[0], data[infe + 10 : infe + 14]


def item_locations(data: bytes, meta: int, meta_end: int):
    """(item ID, construction method, [(offset, length), ...]) from `iloc`; a length of 0
    runs to the end of the file."""
    for iloc, iloc_end in boxes(data, meta, meta_end, b"iloc"):
        reader = Bytes(data, iloc, iloc_end)
        version = reader.take(1)
        reader.take(3)
        sizes = reader.take(2)
        offset_size, length_size = sizes >> 12, (sizes >> 8) & 15
        base_size, index_size = (sizes >> 4) & 15, sizes & 15 if version in (1, 2) else 0
        for _ in range(reader.take(2 if version < 2 else 4)):
            item = reader.take(2 if version < 2 else 4)
            method = reader.take(2) & 15 if version in (1, 2) else 0
            reader.take(2)  # data reference index
            base = reader.take(base_size)
            extents, count = [], reader.take(2)
            if not index_size + offset_size + length_size:
                count = min(count, 1)  # extents of no bytes: all the same one
            for _ in range(count):
                reader.take(index_size)
                offset, length = base + reader.take(offset_size), reader.take(length_size)
                extents.append((offset, length))
            yield item, method, extents


class Bytes:
    """Big-endian unsigned integers of 0 to 8 bytes read in turn; past the end, a
    ValueError (the caller's walk ends)."""

    def __init__(self, data, start, end):
        self.data, self.pos, self.end = data, start, end

    def take(self, count: int) -> int:
        if count not in (0, 1, 2, 3, 4, 8) or self.pos + count > self.end:
            raise ValueError("box cut short")
        self.pos += count
        return int.from_bytes(self.data[self.pos - count : self.pos], "big")


class Bits:
    """Reads a byte string's bits, most significant first (AV1's f(n), HEVC's u(n)); past
    the end, a ValueError."""

    def __init__(self, data: bytes):
        self.value, self.left = int.from_bytes(data, "big"), 8 * len(data)

    def f(self, count: int) -> int:
        if count > self.left:
            raise ValueError("header cut short")
        self.left -= count
        return (self.value >> self.left) & ((1 << count) - 1)

    def uvlc(self) -> int:
        """AV1's uvlc() and HEVC's ue(v), one Exp-Golomb code: n zeros, a one, n bits.
        AV1 reads 32 zeros or more as 2**32 - 1 without the bits; HEVC allows at most 31."""
        zeros = 0
        while not self.f(1):
            zeros += 1
        if zeros >= 32:
            return (1 << 32) - 1
        return (1 << zeros) - 1 + self.f(zeros)
