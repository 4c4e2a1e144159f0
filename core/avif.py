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

from core import isobmff
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
    for meta, meta_end in isobmff.boxes(data, 0, len(data), b"meta"):
        meta += 4  # a full box: version and flags first
        sizes += isobmff.spatial_extents(data, meta, meta_end)
        try:
            items = isobmff.item_streams(data, meta, meta_end, {_AV1_ITEM}, _MOST_PICTURES)
            for _, content in items:
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
    return isobmff.has_track(data)


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
                header = stream[pos : pos + min(size, _HEADER_BYTES)]
                sizes.append(_largest_frame(isobmff.Bits(header)))
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


def _largest_frame(bits: isobmff.Bits) -> tuple[int, int]:
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
