"""The largest picture an AVIF file would have its decoder make, read without decoding it.

An AVIF is an ISO media file (boxes: a 32-bit size, a type, the content) whose pictures
are AV1 images. The size of each picture appears twice: in its `ispe` box, which Pillow
reports as the image's size, and in the AV1 data's sequence header, whose largest frame is
what the decoder (dav1d) allocates. The two can disagree: a 4 kB file whose `ispe` says
64 x 64 decoded a 16384 x 16384 frame here (0.8 s, 550 MB), so `core.images` checks both.

    declared_size(data)   # (width, height) of the largest picture the file can make
    is_sequence(data)     # an animated AVIF, whose frames libavif takes from a track

Every AV1 picture must carry a sequence header (its decoder needs one); a picture whose
header cannot be read here is refused as damaged rather than left to the decoder.
"""

from __future__ import annotations

import struct

from core.errors import ImageError

DAMAGED = "The AVIF file is truncated or damaged, so it cannot be read."

_AV1_ITEM = b"av01"
_SEQUENCE_HEADER = 1  # AV1's OBU type of a sequence header
# Bounds on the reading (a hostile file could repeat a box, an extent or an OBU millions of
# times), far above what encoders write: a picture is one or a few OBUs of each kind.
_MOST_PICTURES = 4096  # AV1 pictures of a file: a grid's tiles, alpha, a gain map
_MOST_OBUS = 1000  # OBUs walked in one picture
_MOST_HEADERS = 8  # sequence headers in one picture
_HEADER_BYTES = 1024  # what the largest frame is read from: it comes within 400 bytes


def declared_size(data: bytes) -> tuple[int, int]:
    """The largest (width, height), by area, of the file's `ispe` boxes and of the largest
    frames its AV1 pictures' sequence headers allow.

    Raises:
        ImageError: the file has no AV1 picture, or one whose sequence header cannot be read.
    """
    sizes, pictures = [], 0
    for meta, meta_end in _boxes(data, 0, len(data), b"meta"):
        meta += 4  # a full box: version and flags first
        sizes += _spatial_extents(data, meta, meta_end)
        try:
            for content in _av1_items(data, meta, meta_end):
                found = _sequence_header_sizes(content)
                if not found:
                    raise ValueError("an AV1 picture without a readable sequence header")
                sizes, pictures = sizes + found, pictures + 1
        except ValueError as err:
            raise ImageError(DAMAGED) from err
    if not pictures:
        raise ImageError(DAMAGED)
    return max(sizes, key=lambda size: size[0] * size[1])


def is_sequence(data: bytes) -> bool:
    """Whether the file holds an image sequence (a `moov` box): libavif would then decode
    its track's frames, whose sizes this module does not read."""
    return next(_boxes(data, 0, len(data), b"moov"), None) is not None


def _boxes(data, start, end, kind):
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


def _spatial_extents(data, meta, meta_end):
    """Every `ispe` under meta/iprp/ipco: each image item has one, a grid of tiles included."""
    return [
        struct.unpack(">II", data[ispe + 4 : ispe + 12])  # after its version and flags
        for iprp, iprp_end in _boxes(data, meta, meta_end, b"iprp")
        for ipco, ipco_end in _boxes(data, iprp, iprp_end, b"ipco")
        for ispe, ispe_end in _boxes(data, ipco, ipco_end, b"ispe")
        if ispe_end - ispe >= 12
    ]


def _av1_items(data, meta, meta_end):
    """The data of each AV1 picture (colour, alpha, a grid's tiles), its extents joined.

    Raises:
        ValueError: a picture has no location this can read, or they add up to more than
            the file (a legitimate file stores each byte once).
    """
    av1 = {item for item, kind in _item_types(data, meta, meta_end) if kind == _AV1_ITEM}
    if len(av1) > _MOST_PICTURES:
        raise ValueError("too many pictures")
    idat = next(_boxes(data, meta, meta_end, b"idat"), (0, 0))[0]
    located, total = set(), 0
    for item, method, extents in _item_locations(data, meta, meta_end):
        if item not in av1:
            continue
        if method not in (0, 1) or item in located:  # 0: in the file, 1: in the idat box
            raise ValueError("a picture stored in a way this does not read")
        base = idat if method == 1 else 0
        stream = b"".join(data[base + at : base + at + length] for at, length in extents)
        located.add(item)
        total += len(stream)
        if total > len(data):
            raise ValueError("pictures larger than the file")
        yield stream
    if located != av1:
        raise ValueError("a picture without a location")


def _item_types(data, meta, meta_end):
    """(item ID, item type) from the `infe` boxes (versions 2 and 3) of `iinf`."""
    for iinf, iinf_end in _boxes(data, meta, meta_end, b"iinf"):
        first = iinf + (6 if data[iinf] == 0 else 8)  # version, flags, a 16- or 32-bit count
        for infe, infe_end in _boxes(data, first, iinf_end, b"infe"):
            version = data[infe]
            if version == 2 and infe + 12 <= infe_end:
                yield struct.unpack(">H", data[infe + 4 : infe + 6])[0], data[infe + 8 : infe + 12]
            elif version == 3 and infe + 14 <= infe_end:
                yield struct.unpack(">I", data[infe + 4 : infe + 8])[0], data[infe + 10 : infe + 14]


def _item_locations(data, meta, meta_end):
    """(item ID, construction method, [(offset, length), ...]) from `iloc`; a length of 0
    (to the end of the file) as the rest of the file."""
    for iloc, iloc_end in _boxes(data, meta, meta_end, b"iloc"):
        reader = _Bytes(data, iloc, iloc_end)
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
                extents.append((offset, length or len(data)))
            yield item, method, extents


class _Bytes:
    """Big-endian unsigned integers of 0 to 8 bytes read in turn; past the end, a
    ValueError (the caller's walk ends)."""

    def __init__(self, data, start, end):
        self.data, self.pos, self.end = data, start, end

    def take(self, count: int) -> int:
        if count not in (0, 1, 2, 3, 4, 8) or self.pos + count > self.end:
            raise ValueError("box cut short")
        self.pos += count
        return int.from_bytes(self.data[self.pos - count : self.pos], "big")


def _sequence_header_sizes(stream: bytes) -> list[tuple[int, int]]:
    """The largest frame (width, height) of each sequence header among the OBUs that
    begin `stream`, up to the first that cannot be read.

    Raises:
        ValueError: more OBUs or sequence headers than a picture has.
    """
    sizes, pos = [], 0
    for _ in range(_MOST_OBUS + 1):
        if pos >= len(stream):
            return sizes
        if len(sizes) > _MOST_HEADERS:
            raise ValueError("too many sequence headers")
        header = stream[pos]  # its first bit must be 0, but dav1d ignores it: so does this
        kind, extension, has_size = (header >> 3) & 15, (header >> 2) & 1, (header >> 1) & 1
        pos += 1 + extension
        if has_size:
            size, pos = _leb128(stream, pos)
        else:
            size = len(stream) - pos
        if size is None or pos + size > len(stream):
            break
        if kind == _SEQUENCE_HEADER:
            try:
                sizes.append(_largest_frame(_Bits(stream[pos : pos + min(size, _HEADER_BYTES)])))
            except ValueError:
                break
        pos += size
    else:
        raise ValueError("too many OBUs")
    return sizes


def _leb128(stream, pos):
    """AV1's unsigned little-endian base-128 number at `pos`: (value, position after it),
    (None, pos) when it does not end within 8 bytes and the stream."""
    value = 0
    for i in range(8):
        if pos + i >= len(stream):
            return None, pos
        value |= (stream[pos + i] & 0x7F) << (7 * i)
        if not stream[pos + i] & 0x80:
            return value, pos + i + 1
    return None, pos


class _Bits:
    """Reads a byte string's bits, most significant first (AV1's f(n)); past the end, a
    ValueError."""

    def __init__(self, data: bytes):
        self.value, self.left = int.from_bytes(data, "big"), 8 * len(data)

    def f(self, count: int) -> int:
        if count > self.left:
            raise ValueError("sequence header cut short")
        self.left -= count
        return (self.value >> self.left) & ((1 << count) - 1)

    def uvlc(self) -> None:
        zeros = 0
        while not self.f(1):
            zeros += 1
        if zeros < 32:
            self.f(zeros)


def _largest_frame(bits: _Bits) -> tuple[int, int]:
    """max_frame_width and max_frame_height of a sequence header OBU's payload (AV1
    specification 5.5.1): each frame of the sequence is at most that size."""
    bits.f(3)  # seq_profile
    bits.f(1)  # still_picture
    if bits.f(1):  # reduced_still_picture_header
        bits.f(5)  # seq_level_idx
    else:
        model_info = False
        if bits.f(1):  # timing_info_present_flag
            bits.f(32), bits.f(32)  # num_units_in_display_tick, time_scale
            if bits.f(1):  # equal_picture_interval
                bits.uvlc()
            model_info = bool(bits.f(1))  # decoder_model_info_present_flag
            if model_info:
                delay_bits = bits.f(5) + 1  # buffer_delay_length_minus_1
                bits.f(32), bits.f(5), bits.f(5)
        display_delay = bits.f(1)  # initial_display_delay_present_flag
        for _ in range(bits.f(5) + 1):  # operating points
            bits.f(12)  # operating_point_idc
            if bits.f(5) > 7:  # seq_level_idx
                bits.f(1)  # seq_tier
            if model_info and bits.f(1):  # decoder_model_present_for_this_op
                bits.f(delay_bits), bits.f(delay_bits), bits.f(1)
            if display_delay and bits.f(1):
                bits.f(4)
    width_bits, height_bits = bits.f(4) + 1, bits.f(4) + 1
    return bits.f(width_bits) + 1, bits.f(height_bits) + 1
