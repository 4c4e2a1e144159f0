"""Tests for core.images: a generated corpus of good and hostile files, plus
a fuzz test. Every file is built here from Pillow or raw bytes, tiny, but the HEICs of
tests/data (Pillow writes none: tests/data/make_heic.py)."""

import gzip
import io
import re
import struct
import sys
import time
import warnings
import zipfile
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from core import avif, heif, images
from core.errors import ImageError
from core.images import (
    GREYSCALE,
    TRANSPARENT,
    centre_square,
    decode_described,
    decode_image,
    decode_views,
    dim_outside_centre,
    model_views,
    open_image,
    three_squares,
    to_model_input,
)
from tests.conftest import HEIC_PHOTO, heic_processes

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)
MIB = 1024 * 1024
DATA = Path(__file__).parent / "data"


# --- builders -------------------------------------------------------------


def encode(image, fmt, **params):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise(width=64, height=64, seed=0):
    """Random pixels, so compressed streams are long and cut mid-data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8))


def png_chunk(kind, body):
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def raw_png(width, height, bit_depth, colour_type, rows, extra=b"", idat=None):
    """A PNG from raw scanlines (filter byte 0 prepended to each row), or
    from a ready-made `idat` payload."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    if idat is None:
        idat = zlib.compress(b"".join(b"\x00" + row for row in rows))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + extra
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def marker_image():
    """Blue 40 x 20 landscape picture with a red block in its stored top-left."""
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 16, 8))
    return image


def exif_bytes(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation  # the EXIF Orientation tag
    return exif.tobytes()


def with_orientation(fmt, orientation, **params):
    return encode(marker_image(), fmt, exif=exif_bytes(orientation), **params)


def palette_with_transparency(fmt):
    """Left half palette index 0 (transparent green), right half red."""
    image = Image.new("P", (8, 8), 1)
    image.putpalette([*GREEN, *RED] + [0] * 762)
    image.paste(0, (0, 0, 4, 8))
    return encode(image, fmt, transparency=0)


def rgba_png():
    image = Image.new("RGBA", (3, 1))
    image.putpixel((0, 0), (255, 0, 0, 0))  # fully transparent red
    image.putpixel((1, 0), (0, 0, 0, 128))  # half-transparent black
    image.putpixel((2, 0), (0, 0, 255, 255))  # opaque blue
    return encode(image, "PNG")


def la_png():
    image = Image.new("LA", (2, 1))
    image.putpixel((0, 0), (0, 0))  # transparent black
    image.putpixel((1, 0), (0, 255))  # opaque black
    return encode(image, "PNG")


def mode1_png():
    image = Image.new("1", (8, 8), 0)
    image.paste(1, (4, 0, 8, 8))
    return encode(image, "PNG")


def cmyk_jpeg():
    return encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)


def grey16_png():
    """2 x 2 16-bit greyscale: 0, 65535, 257 (-> 1), 32896 (-> 128)."""
    rows = [struct.pack(">2H", 0, 65535), struct.pack(">2H", 257, 32896)]
    return raw_png(2, 2, 16, 0, rows)


def grey16_trns_png():
    """16-bit grey whose value 1000 is the tRNS transparent key."""
    rows = [struct.pack(">2H", 1000, 32896)]
    return raw_png(2, 1, 16, 0, rows, png_chunk(b"tRNS", struct.pack(">H", 1000)))


def rgb48_png():
    rows = [struct.pack(">6H", 65535, 0, 0, 0, 32768, 65535)]
    return raw_png(2, 1, 16, 2, rows)


def la32_png():
    """16-bit grey + alpha: transparent black, then opaque mid grey."""
    rows = [struct.pack(">4H", 0, 0, 32896, 65535)]
    return raw_png(2, 1, 16, 4, rows)


def frames(*colours):
    return [Image.new("RGB", (8, 8), colour) for colour in colours]


def animated(fmt, **params):
    first, *rest = frames(RED, GREEN, BLUE)
    return encode(first, fmt, save_all=True, append_images=rest, duration=100, **params)


def mpo():
    first, second = frames(RED, BLUE)
    return encode(first, "MPO", save_all=True, append_images=[second])


def palette_bmp():
    return encode(Image.new("RGB", (8, 8), GREEN).quantize(4), "BMP")


# --- accepted corpus --------------------------------------------------------


def near(pixel, colour, tolerance=8):
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def pixels_of(image):
    return np.asarray(image).reshape(-1, 3).tolist()


def check_orientation_6(image, array):
    # Rotated 90 degrees clockwise for display: portrait, marker top-right.
    assert image.size == (20, 40)
    assert near(array[0, -1], RED, 40) and near(array[0, 0], BLUE, 40)
    assert near(array[-1, -1], BLUE, 40)


def check_orientation_8(image, array):
    # Rotated 90 degrees counter-clockwise: marker bottom-left.
    assert image.size == (20, 40)
    assert tuple(array[-1, 0]) == RED and tuple(array[0, 0]) == BLUE


def check_orientation_3(image, array):
    # Rotated 180 degrees: marker bottom-right, size unchanged.
    assert image.size == (40, 20)
    assert tuple(array[-1, -1]) == RED and tuple(array[0, 0]) == BLUE


def check_heic_photo(image, array):
    # tests/data/make_heic.py: a gradient whose blue is 128, its top-left corner red.
    assert image.size == (48, 32)
    assert near(array[0, 0], RED, 12) and near(array[-1, -1], (245, 245, 128), 12)


def check_heic_turned(image, array):
    # Stored 48 x 32 with an irot box: upright it is portrait, the red corner top-right.
    assert image.size == (32, 48)
    assert near(array[0, -1], RED, 12) and array[0, 0, 2] > 100


def check_halves(left, right, tolerance=0):
    def check(image, array):
        assert near(array[0, 0], left, tolerance)
        assert near(array[-1, -1], right, tolerance)

    return check


def check_solid(colour, tolerance=0):
    return check_halves(colour, colour, tolerance)


def check_rgba(image, array):
    assert pixels_of(image) == [list(WHITE), [127, 127, 127], list(BLUE)]


def check_la(image, array):
    assert pixels_of(image) == [list(WHITE), list(BLACK)]


def check_grey16(image, array):
    assert pixels_of(image) == [[0] * 3, [255] * 3, [1] * 3, [128] * 3]


def check_grey16_trns(image, array):
    assert pixels_of(image) == [list(WHITE), [128] * 3]


def check_rgb48(image, array):
    assert pixels_of(image) == [list(RED), [0, 128, 255]]


def check_la32(image, array):
    assert pixels_of(image) == [list(WHITE), [128] * 3]


def check_cmyk(image, array):
    assert near(array[16, 16], RED, 6)


def check_one_by_one(image, array):
    assert image.size == (1, 1)
    assert (array == BLUE).all()


def check_wide(image, array):
    assert image.size == (10000, 1)
    # Left half red, right half blue survives a 312x horizontal squash.
    assert tuple(array[5, 0]) == RED and tuple(array[5, -1]) == BLUE


def wide_png():
    image = Image.new("RGB", (10000, 1), BLUE)
    image.paste(RED, (0, 0, 5000, 1))
    return encode(image, "PNG")


ACCEPTED = [
    ("jpeg", lambda: encode(Image.new("RGB", (40, 20), RED), "JPEG"), check_solid(RED, 4)),
    (
        "jpeg_progressive",
        lambda: encode(Image.new("RGB", (40, 20), BLUE), "JPEG", progressive=True),
        check_solid(BLUE, 4),
    ),
    (
        "jpeg_greyscale",
        lambda: encode(Image.new("L", (9, 9), 77), "JPEG"),
        check_solid((77, 77, 77), 2),
    ),
    ("jpeg_exif_orientation_6", lambda: with_orientation("JPEG", 6), check_orientation_6),
    ("png_exif_orientation_8", lambda: with_orientation("PNG", 8), check_orientation_8),
    (
        "webp_exif_orientation_3",
        lambda: with_orientation("WEBP", 3, lossless=True),
        check_orientation_3,
    ),
    ("jpeg_cmyk", cmyk_jpeg, check_cmyk),
    ("mpo_first_picture", mpo, check_solid(RED, 4)),
    ("png_rgb", lambda: encode(Image.new("RGB", (5, 7), GREEN), "PNG"), check_solid(GREEN)),
    (
        "png_palette_transparency",
        lambda: palette_with_transparency("PNG"),
        check_halves(WHITE, RED),
    ),
    (
        "gif_palette_transparency",
        lambda: palette_with_transparency("GIF"),
        check_halves(WHITE, RED),
    ),
    ("png_rgba", rgba_png, check_rgba),
    ("png_la", la_png, check_la),
    ("png_l", lambda: encode(Image.new("L", (4, 4), 77), "PNG"), check_solid((77, 77, 77))),
    ("png_mode_1", mode1_png, check_halves(BLACK, WHITE)),
    ("png_16bit_grey", grey16_png, check_grey16),
    ("png_16bit_grey_trns", grey16_trns_png, check_grey16_trns),
    ("png_48bit_rgb", rgb48_png, check_rgb48),
    ("png_32bit_grey_alpha", la32_png, check_la32),
    ("apng_first_frame", lambda: animated("PNG"), check_solid(RED)),
    ("gif_animated_first_frame", lambda: animated("GIF"), check_solid(RED)),
    ("webp_animated_first_frame", lambda: animated("WEBP", lossless=True), check_solid(RED)),
    ("webp_lossy", lambda: encode(Image.new("RGB", (16, 16), BLUE), "WEBP"), check_solid(BLUE, 6)),
    (
        "webp_lossless_alpha",
        lambda: encode(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), "WEBP", lossless=True),
        check_solid(WHITE),
    ),
    ("bmp_24bit", lambda: encode(Image.new("RGB", (7, 3), RED), "BMP"), check_solid(RED)),
    ("bmp_palette", palette_bmp, check_solid(GREEN)),
    ("avif", lambda: encode(Image.new("RGB", (40, 20), RED), "AVIF"), check_solid(RED, 6)),
    (
        "avif_alpha",
        lambda: encode(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), "AVIF"),
        check_solid(WHITE, 2),
    ),
    ("avif_exif_orientation_6", lambda: with_orientation("AVIF", 6), check_orientation_6),
    ("avif_major_brand_mif1", lambda: mif1_avif(GREEN), check_solid(GREEN, 6)),
    ("heic", HEIC_PHOTO.read_bytes, check_heic_photo),
    ("heic_turned_by_irot", (DATA / "turned.heic").read_bytes, check_heic_turned),
    ("heic_transparent", (DATA / "transparent.heic").read_bytes, check_halves(BLACK, WHITE, 12)),
    ("png_1x1", lambda: encode(Image.new("RGB", (1, 1), BLUE), "PNG"), check_one_by_one),
    ("png_10000x1", wide_png, check_wide),
]


@pytest.mark.parametrize(("make", "check"), [pytest.param(m, c, id=n) for n, m, c in ACCEPTED])
def test_accepted_corpus(make, check):
    data = make()
    image = open_image(data)
    array = decode_image(data)
    assert image.mode == "RGB"
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8
    check(image, array)


def test_renamed_file_is_decoded_by_content():
    jpeg = encode(Image.new("RGB", (8, 8), RED), "JPEG")
    array = decode_image(jpeg, filename="photo.png")
    assert near(array[0, 0], RED, 4)


def test_pillow_behaviour_this_module_relies_on():
    # Pinned so that a Pillow upgrade which changes them is noticed here.
    def opened(data):
        return Image.open(io.BytesIO(data))

    grey16 = opened(grey16_png())
    assert grey16.mode == "I;16"  # not "I" as in older Pillow
    # Pillow's own conversion clips 16-bit values instead of scaling them,
    # which is why the module scales by 1/257 itself.
    assert np.asarray(grey16.convert("L")).ravel().tolist() == [0, 255, 255, 255]
    assert opened(rgb48_png()).mode == "RGB"  # 48-bit PNG: already 8-bit (high byte)
    assert opened(la32_png()).mode == "RGBA"  # 16-bit grey+alpha opens as RGBA
    assert opened(cmyk_jpeg()).mode == "CMYK"
    assert opened(mpo()).format == "MPO"  # the "JPEG" plugin returns MPO files
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_animated_seeds_really_are_animated():
    for fmt, params in (("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})):
        assert Image.open(io.BytesIO(animated(fmt, **params))).n_frames == 3


# --- refused corpus -------------------------------------------------------


def mif1_avif(colour):
    """An AVIF that names itself a HEIF image first and AVIF among its compatible brands."""
    data = bytearray(encode(Image.new("RGB", (16, 16), colour), "AVIF"))
    assert data[8:12] == b"avif" and b"mif1" in data[16:32]
    data[8:12] = b"mif1"
    return bytes(data)


def truncated(fmt):
    data = encode(noise(), fmt)
    return data[: len(data) // 2]


def minimal_pdf():
    return (
        b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
        b"2 0 obj <</Type /Pages /Kids [] /Count 0>> endobj\n"
        b"trailer <</Root 1 0 R>>\n%%EOF\n"
    )


FRAME_BOMB = DATA / "frame_larger_than_declared.avif"
# Made with Pillow 12.3 (libaom): Image.new("RGB", (16384, 16384)).save(f, "AVIF",
# quality=10, speed=10) (29 s, 5.8 GB), then its one `ispe` box rewritten to 64 x 64: 4 kB
# whose AV1 frame is 16384 x 16384, decoded in 0.8 s and 550 MB when only `ispe` was read.


HEIC_FRAME_BOMB = DATA / "frame_larger_than_declared.heic"
# tests/data/make_heic.py: 16 kB whose HEVC frame is 8192 x 8192 and whose `ispe` box says
# 64 x 64. libheif 1.23 refuses its decode by itself (a frame larger than the `ispe` allows
# exceeds its security limit); `core.heif` reads the frame's size so that the refusal does
# not hang on that limit and names the size.


def heic_with_extents(side):
    """The real HEIC photo with its `ispe` box declaring `side` x `side`."""
    data = bytearray(HEIC_PHOTO.read_bytes())
    at = data.index(b"ispe") + 8
    data[at : at + 8] = struct.pack(">II", side, side)
    return bytes(data)


def avif_with_extents(side):
    """A real AVIF whose `ispe` box declares `side` x `side`; its AV1 frame stays 64 x 48."""
    data = bytearray(encode(noise(64, 48), "AVIF"))
    at = data.index(b"ispe") + 8
    data[at : at + 8] = struct.pack(">II", side, side)
    return bytes(data)


def tiff_bomb():
    """A little-endian TIFF whose only IFD declares 100000 x 100000 pixels."""
    entries = [
        (256, 4, 1, 100_000),
        (257, 4, 1, 100_000),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (279, 4, 1, 10_000),
    ]
    ifd = (
        struct.pack("<H", len(entries))
        + b"".join(struct.pack("<HHII", *entry) for entry in entries)
        + b"\0\0\0\0"
    )
    return b"II*\x00" + struct.pack("<I", 8) + ifd


def png_bomb(width=20000, height=20000):
    """Valid header and one compressed row: ~100 bytes on disk."""
    return raw_png(width, height, 8, 2, [bytes(width * 3)])


def gif_with_size(screen, frame):
    data = bytearray(encode(Image.new("P", (8, 8)), "GIF"))
    data[6:10] = struct.pack("<HH", *screen)
    descriptor = data.index(b"\x2c", 13)
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", *frame)
    return bytes(data)


def webp_bomb(side=20000):
    data = bytearray(animated("WEBP", lossless=True))
    assert data[12:16] == b"VP8X"
    data[24:30] = (side - 1).to_bytes(3, "little") * 2
    return bytes(data)


def gif_frame_bomb(side=30000):
    """The screen says 8 x 8; the first frame says side x side."""
    return gif_with_size((8, 8), (side, side))


def jpeg_bomb(side=65000):
    data = bytearray(encode(noise(16, 16), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = struct.pack(">HH", side, side)
    return bytes(data)


def bmp_bomb(side=30000):
    data = bytearray(encode(noise(16, 16), "BMP"))
    data[18:26] = struct.pack("<ii", side, -side)  # top-down rows
    return bytes(data)


def zip_file():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat.png", b"not really")
    return buffer.getvalue()


def png_bad_crc():
    data = bytearray(encode(noise(8, 8), "PNG"))
    data[29] ^= 0xFF  # last byte of the IHDR checksum
    return bytes(data)


SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/'
    b'2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
)

REFUSED = [
    ("empty", lambda: b"", {}, "This file is empty."),
    ("truncated_jpeg", lambda: truncated("JPEG"), {}, "truncated or damaged"),
    ("truncated_png", lambda: truncated("PNG"), {}, "truncated or damaged"),
    ("truncated_gif", lambda: truncated("GIF"), {}, "truncated or damaged"),
    ("truncated_bmp", lambda: truncated("BMP"), {}, "truncated or damaged"),
    ("truncated_webp", lambda: truncated("WEBP"), {}, "truncated or damaged"),
    ("truncated_avif", lambda: truncated("AVIF"), {}, "AVIF file is truncated or damaged"),
    ("avif_declared_bomb", lambda: avif_with_extents(20000), {}, "20000 x 20000 pixels"),
    (
        "avif_frame_larger_than_declared",
        FRAME_BOMB.read_bytes,
        {},
        "16384 x 16384 pixels (268.4 megapixels)",
    ),
    (
        "avif_animated",
        lambda: animated("AVIF"),
        {},
        "Animated AVIF (an image sequence) is not supported",
    ),
    (
        "png_signature_only",
        lambda: b"\x89PNG\r\n\x1a\n",
        {},
        "starts like a PNG image but its header is damaged",
    ),
    ("png_bad_header_crc", png_bad_crc, {}, "header is damaged"),
    ("gif_header_only", lambda: b"GIF89a\x10\x00", {}, "starts like a GIF"),
    (
        "random_bytes",
        lambda: bytes(np.random.default_rng(1).integers(0, 256, 512, np.uint8)),
        {},
        "match none of the supported formats",
    ),
    (
        "text_named_png",
        lambda: b"Shopping list:\n- eggs\n- milk\n",
        {"filename": "notes.png"},
        "notes.png: This file is not an image (it looks like text)",
    ),
    (
        "html_named_png",
        lambda: b"<!DOCTYPE html>\n<html><body><svg></svg>hi</body></html>",
        {"filename": "page.png"},
        "looks like an HTML web page",
    ),
    ("svg", lambda: SVG, {}, "looks like an SVG drawing"),
    ("svg_without_xml_declaration", lambda: b"\xef\xbb\xbf  <svg width='1'/>", {}, "SVG drawing"),
    (
        "pdf",
        minimal_pdf,
        {},
        "This is a PDF document, not an image. "
        "Supported formats: JPEG, PNG, WebP, BMP, GIF, AVIF, HEIC.",
    ),
    ("tiff", lambda: encode(noise(8, 8), "TIFF"), {}, "The file's format (TIFF) is not supported"),
    ("tiff_bomb_header", tiff_bomb, {}, "(TIFF) is not supported"),
    ("ico", lambda: encode(noise(16, 16), "ICO"), {}, "(ICO) is not supported"),
    ("tga", lambda: encode(noise(8, 8), "TGA"), {}, "(TGA) is not supported"),
    ("ppm", lambda: encode(noise(8, 8), "PPM"), {}, "(PPM/PNM) is not supported"),
    (
        "heic_header_only",
        lambda: b"\0\0\0\x18ftypheic\0\0\0\0mif1heic",
        {},
        "HEIC file is truncated or damaged",
    ),
    ("truncated_heic", lambda: HEIC_PHOTO.read_bytes()[:500], {}, "HEIC file is truncated"),
    ("heic_declared_bomb", lambda: heic_with_extents(20000), {}, "20000 x 20000 pixels"),
    (
        "heic_frame_larger_than_declared",
        HEIC_FRAME_BOMB.read_bytes,
        {},
        "8192 x 8192 pixels (67.1 megapixels)",
    ),
    (
        "heic_sequence",
        lambda: HEIC_PHOTO.read_bytes() + b"\0\0\0\x08moov",
        {},
        "A HEIC image sequence (a burst or an animation) is not supported",
    ),
    (
        "heif_of_jpeg_pictures",
        lambda: HEIC_PHOTO.read_bytes().replace(b"hvc1", b"jpeg"),
        {},
        "This HEIF file holds no HEVC picture",
    ),
    ("zip", zip_file, {}, "This is a ZIP archive"),
    ("gzip_svgz", lambda: gzip.compress(SVG), {}, "gzip-compressed"),
    (
        "png_20000x20000",
        png_bomb,
        {},
        "The image is 20000 x 20000 pixels (400 megapixels); images above 40 "
        "megapixels are refused to protect the server.",
    ),
    ("png_48_megapixels", lambda: png_bomb(8000, 6000), {}, "8000 x 6000 pixels (48 megapixels)"),
    (
        "png_over_custom_pixel_limit",
        lambda: encode(noise(64, 64), "PNG"),
        {"max_pixels": 1000},
        "64 x 64 pixels (4,096 pixels); images above 1,000 pixels",
    ),
    ("gif_huge_screen", lambda: gif_with_size((60000, 60000), (8, 8)), {}, "60000 x 60000 pixels"),
    (
        "gif_first_frame_larger_than_screen",
        lambda: gif_with_size((8, 8), (7000, 7000)),
        {},
        "7000 x 7000 pixels",
    ),
    (
        "gif_frame_beyond_pillow_bomb_limit",
        lambda: gif_with_size((8, 8), (60000, 60000)),
        {},
        "60000 x 60000 pixels (3,600 megapixels)",
    ),
    ("webp_huge_canvas", webp_bomb, {}, "20000 x 20000 pixels"),
    ("jpeg_huge_frame", jpeg_bomb, {}, "65000 x 65000 pixels"),
    ("bmp_huge_top_down", bmp_bomb, {}, "30000 x 30000 pixels"),
    (
        "over_default_byte_limit",
        lambda: b"\xff\xd8\xff" + bytes(34_900_000),
        {},
        "This file is 33.3 MB; the limit is 32 MB.",
    ),
    (
        "over_custom_byte_limit",
        lambda: encode(noise(), "PNG"),
        {"max_bytes": 2048},
        "; the limit is 2 KB.",
    ),
    (
        "just_over_limit",
        lambda: bytes(MIB + 1),
        {"max_bytes": MIB},
        "This file is 1,048,577 bytes; the limit is 1,048,576 bytes.",
    ),
    ("not_bytes", lambda: "a str, not bytes", {}, "Expected the file's bytes"),
]


@pytest.mark.parametrize(
    ("make", "limits", "message"), [pytest.param(m, k, s, id=n) for n, m, k, s in REFUSED]
)
def test_refused_corpus(make, limits, message):
    data = make()
    start = time.perf_counter()
    with pytest.raises(ImageError) as caught:
        decode_image(data, **limits)
    assert message in str(caught.value)
    assert time.perf_counter() - start < 1.0  # no bomb gets decoded


def test_corpus_is_large_enough():
    assert len(ACCEPTED) + len(REFUSED) >= 30


@pytest.mark.parametrize(
    "make",
    [
        png_bomb,
        webp_bomb,
        jpeg_bomb,
        bmp_bomb,
        gif_frame_bomb,
        lambda: gif_with_size((60000, 60000), (8, 8)),
        lambda: avif_with_extents(20000),
        FRAME_BOMB.read_bytes,
        lambda: heic_with_extents(20000),
        HEIC_FRAME_BOMB.read_bytes,
    ],
)
def test_declared_bombs_never_reach_pillow(make, monkeypatch):
    data = make()
    assert len(data) < 16_000  # tiny on disk, huge when decoded

    def refuse_open(*args, **kwargs):
        raise AssertionError("Pillow must not open a declared bomb")

    monkeypatch.setattr(Image, "open", refuse_open)
    with pytest.raises(ImageError, match="pixels"):
        open_image(data)


# Not a HEIC: Pillow reports its picture's size after its clean aperture (`clap`), which
# crops the `ispe` size (x265's frames are whole 64 x 64 blocks): the first layer reads both.
@pytest.mark.parametrize(
    "make", [webp_bomb, jpeg_bomb, bmp_bomb, gif_frame_bomb, avif_with_extents]
)
def test_pillow_size_is_checked_before_decoding(make, monkeypatch):
    # Second layer: blind the header pre-check, as if it could not parse the
    # header. 7000 x 7000 (49 MP) is above our limit but below Pillow's own
    # 89 MP warning, so only our check of Pillow's reading can stop it.
    def refuse_load(self):
        raise AssertionError("pixels must not be decoded")

    monkeypatch.setattr(images, "_declared_size", lambda data, kind: None)
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse_load)
    with pytest.raises(ImageError, match="7000 x 7000 pixels"):
        open_image(make(7000))
    with pytest.raises(ImageError, match="6000 x 8000 pixels"):
        open_image(png_bomb(6000, 8000))


def test_an_avif_is_sized_by_its_av1_frames_as_well_as_its_boxes():
    # Pillow's encoder writes a reduced still-picture sequence header: the frame's own size.
    assert avif.declared_size(avif_with_extents(16)) == (64, 48)
    assert avif.declared_size(avif_with_extents(100)) == (100, 100)  # the larger of the two
    alpha = encode(Image.new("RGBA", (40, 24), (0, 0, 0, 9)), "AVIF")  # two AV1 pictures
    assert avif.declared_size(alpha) == (40, 24)
    assert avif.declared_size(FRAME_BOMB.read_bytes()) == (16384, 16384)
    with pytest.raises(ImageError, match="AVIF file is truncated or damaged"):
        avif.declared_size(b"\0\0\0\x10ftypavif\0\0\0\0")  # no picture at all
    assert not avif.is_sequence(alpha) and avif.is_sequence(animated("AVIF"))


class BitWriter:
    def __init__(self):
        self.bits = ""

    def f(self, count, value):
        self.bits += format(value, f"0{count}b") if count else ""
        return self

    def payload(self):
        self.bits += "1" + "0" * (-(len(self.bits) + 1) % 8)  # trailing bits
        return int(self.bits, 2).to_bytes(len(self.bits) // 8, "big")


def full_sequence_header(width, height, timing, display):
    """A sequence header with the optional parts the AV1 specification (5.5.1) allows before
    the frame size: timing and decoder model information, initial display delays, and three
    operating points."""
    w = BitWriter().f(3, 0).f(1, 0).f(1, 0)  # profile 0, not a still picture, not reduced
    w.f(1, timing)
    if timing:
        w.f(32, 1001).f(32, 60000).f(1, 1).f(2, 0).f(1, 1).f(2, 2)  # ...; uvlc() of 5
        w.f(1, 1).f(5, 9).f(32, 90000).f(5, 31).f(5, 31)  # decoder model: 10-bit delays
    w.f(1, display).f(5, 2)  # initial display delays; operating_points_cnt_minus_1
    for level, model, delay in ((8, 1, 1), (3, 0, 1), (12, 1, 0)):
        w.f(12, 0x103).f(5, level)
        if level > 7:
            w.f(1, 1)  # seq_tier
        if timing:
            w.f(1, model)
            if model:
                w.f(10, 512).f(10, 256).f(1, 0)
        if display:
            w.f(1, delay)
            if delay:
                w.f(4, 9)
    w.f(4, 15).f(4, 14).f(16, width - 1).f(15, height - 1)
    w.f(1, 0).f(1, 1)  # what follows: frame_id_numbers_present_flag, use_128x128_superblock
    return w.payload()


@pytest.mark.parametrize(("timing", "display"), [(1, 1), (0, 1), (1, 0), (0, 0)])
def test_a_full_av1_sequence_header_gives_its_largest_frame(timing, display):
    payload = full_sequence_header(60000, 20000, timing, display)
    temporal_delimiter, header = b"\x12\x00", bytes([0x0A, len(payload)])
    stream = temporal_delimiter + header + payload
    assert avif._sequence_header_sizes(stream) == [(60000, 20000)]
    extension = bytes([0x0E, 0x00, len(payload)])  # an OBU extension byte before the size
    assert avif._sequence_header_sizes(stream + extension + payload) == [(60000, 20000)] * 2
    for cut in (1, 3, len(stream) - 4):  # cut short: nothing or what was read before
        assert avif._sequence_header_sizes(stream[:cut]) == []


def test_avif_readings_a_hostile_file_could_make_endless_are_bounded():
    data = bytearray(encode(noise(16, 16), "AVIF"))
    iloc = data.index(b"iloc") + 4
    assert data[iloc : iloc + 6] == b"\0\0\0\0\x44\x00"  # version 0; 32-bit offsets, lengths
    data[iloc + 4] = 0  # extents of no bytes, then 65,535 of them instead of 1
    data[iloc + 12 : iloc + 14] = b"\xff\xff"
    start = time.perf_counter()
    with pytest.raises(ImageError, match="AVIF file is truncated or damaged"):
        decode_image(bytes(data))
    assert time.perf_counter() - start < 0.1
    padding = b"\x7a\x00"  # an empty padding OBU
    payload = full_sequence_header(64, 64, 0, 0)
    header = bytes([0x0A, len(payload)]) + payload
    assert avif._sequence_header_sizes(padding * avif._MOST_OBUS) == []
    for flood in (padding * (avif._MOST_OBUS + 1), header * (avif._MOST_HEADERS + 2)):
        with pytest.raises(ValueError, match="too many"):
            avif._sequence_header_sizes(flood)


def test_a_heic_is_sized_by_its_hevc_frames_as_well_as_its_boxes():
    # x265 codes whole 64 x 64 blocks; the clean aperture (`clap`) crops them to 48 x 32.
    assert heif.declared_size(HEIC_PHOTO.read_bytes()) == (64, 64)
    assert heif.declared_size(heic_with_extents(16)) == (64, 64)  # the frame, not the box
    assert heif.declared_size(heic_with_extents(100)) == (100, 100)  # the larger of the two
    assert heif.declared_size(HEIC_FRAME_BOMB.read_bytes()) == (8192, 8192)
    no_parameter_sets = HEIC_PHOTO.read_bytes().replace(b"hvcC", b"free")  # found by fuzzing
    for unusable in (
        b"\0\0\0\x10ftypheic\0\0\0\0",
        HEIC_PHOTO.read_bytes()[:300],
        no_parameter_sets,
    ):
        with pytest.raises(ImageError, match="HEIC file is truncated or damaged"):
            heif.declared_size(unusable)
    assert heif.is_sequence(HEIC_PHOTO.read_bytes() + b"\0\0\0\x08moov")
    assert not heif.is_sequence(HEIC_PHOTO.read_bytes())


def with_emulation_prevention(payload):
    """An HEVC payload as encoders store it: 03 after every 00 00 that precedes 00 to 03."""
    out, zeros = bytearray(), 0
    for byte in payload:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def ue(w, value):
    """HEVC's ue(v): as many zeros as value + 1 has bits after its first, then value + 1."""
    bits = format(value + 1, "b")
    return w.f(len(bits) - 1, 0).f(len(bits), value + 1)


def sequence_parameter_set(width, height, sub_layers=2, chroma=3):
    """An SPS (H.265 7.3.2.2) up to its picture size, with sub-layers whose profile and level
    come before it and an all-zero profile that needs emulation prevention bytes."""
    w = BitWriter().f(4, 0).f(3, sub_layers).f(1, 1).f(96, 0)
    present = [(1, 1), (0, 1), (1, 0)][:sub_layers]
    for profile, level in present:
        w.f(1, profile).f(1, level)
    if sub_layers:
        w.f(2 * (8 - sub_layers), 0)
    for profile, level in present:
        w.f(88 * profile + 8 * level, 0)
    ue(ue(w, 0), chroma)  # sps_seq_parameter_set_id, chroma_format_idc
    if chroma == 3:
        w.f(1, 0)
    ue(ue(w, width), height)
    return b"\x42\x01" + with_emulation_prevention(w.payload())


@pytest.mark.parametrize(("sub_layers", "chroma"), [(0, 1), (2, 3), (3, 1)])
def test_a_full_hevc_sequence_parameter_set_gives_its_picture_size(sub_layers, chroma):
    nal = sequence_parameter_set(60000, 20000, sub_layers, chroma)
    assert b"\0\0\3" in nal  # the zeros of its profile were escaped
    assert heif._sps_size(nal) == (60000, 20000)
    assert heif._sps_size(b"\x40\x01\x0c\x01") is None  # a VPS: not a size
    with pytest.raises(ValueError, match="cut short"):
        heif._sps_size(nal[:12])
    stream = b"".join(len(unit).to_bytes(4, "big") + unit for unit in (b"\x40\x01", nal, nal))
    assert heif._frame_sizes(heif._stream_units(stream)) == [(60000, 20000)] * 2


def test_grid_and_overlay_canvases_are_read_in_both_widths():
    small, large = bytes([0, 0, 1, 2]), bytes([0, 1, 0, 0])  # flags 0: 16-bit sides
    assert heif._canvas_size(b"grid", small + struct.pack(">HH", 4032, 3024)) == (4032, 3024)
    assert heif._canvas_size(b"grid", large + struct.pack(">II", 70000, 9)) == (70000, 9)
    overlay = bytes([0, 0]) + bytes(8) + struct.pack(">HH", 640, 480) + bytes(8)
    assert heif._canvas_size(b"iovl", overlay) == (640, 480)
    with pytest.raises(ValueError, match="cut short"):
        heif._canvas_size(b"grid", bytes([0, 1, 0, 0, 0, 0]))


def test_heic_readings_a_hostile_file_could_make_endless_are_bounded():
    empty = b"\0\0\0\0"  # a NAL unit of no bytes
    assert list(heif._stream_units(empty * heif._MOST_NALS)) == [b""] * heif._MOST_NALS
    with pytest.raises(ValueError, match="too many NAL units"):
        list(heif._stream_units(empty * (heif._MOST_NALS + 1)))
    with pytest.raises(ValueError, match="cut short"):
        list(heif._stream_units(b"\0\0\1\0" + bytes(10)))  # says 256 bytes, holds 10


def test_error_chains_the_pillow_cause():
    with pytest.raises(ImageError) as caught:
        decode_image(truncated("PNG"))
    assert isinstance(caught.value.__cause__, OSError)


def test_global_pillow_state_is_untouched():
    max_pixels = Image.MAX_IMAGE_PIXELS
    decode_image(encode(noise(8, 8), "PNG"))
    with pytest.raises(ImageError):
        decode_image(png_bomb())
    assert max_pixels == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_bomb_warning_is_an_error_only_inside_the_module():
    # Above Pillow's warning threshold (89 MP) but below its hard error, with
    # our own limit raised so that only the warning can stop it.
    data = gif_with_size((8, 8), (10000, 10000))
    with pytest.raises(ImageError, match="decompression bomb"):
        open_image(data, max_pixels=10**9)
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(io.BytesIO(data))


def test_concurrent_decodes_leave_warning_filters_alone():
    # The folder loader decodes in a thread pool. Without the module's lock,
    # interleaved catch_warnings blocks left their filter behind in about a
    # third of the runs of this test; with it, never.
    before = list(warnings.filters)
    files = [encode(noise(8, 8, seed=i), "PNG") for i in range(256)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for _ in range(3):
            with ThreadPoolExecutor(max_workers=4) as pool:
                arrays = list(pool.map(decode_image, files))
            assert all(a.shape == (32, 32, 3) for a in arrays)
            assert warnings.filters == before
    finally:
        sys.setswitchinterval(interval)


# --- to_model_input -------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(np.array([[0, 255, 100]], np.int32), [0, 255, 100], id="I_already_8bit"),
        pytest.param(np.array([[0, 65535, 32896]], np.int32), [0, 255, 128], id="I_16bit_range"),
        pytest.param(np.array([[-100, 0, 1000]], np.int32), [0, 23, 255], id="I_stretched"),
        pytest.param(np.array([[0.0, 1.0, 0.5]], np.float32), [0, 255, 128], id="F_unit_range"),
        pytest.param(np.array([[0.0, 200.0, 7.4]], np.float32), [0, 200, 7], id="F_8bit_range"),
        pytest.param(
            np.array([[-1.0, 3.0, np.nan]], np.float32), [0, 255, 0], id="F_stretched_nan"
        ),
    ],
)
def test_high_depth_modes_scale_into_8bit(values, expected):
    image = Image.fromarray(values)
    assert image.mode in ("I", "F")
    array = to_model_input(image, size=3)  # 3 x 1 -> 3 x 3 keeps columns
    assert array.shape == (3, 3, 3) and array.dtype == np.uint8
    assert array[1, :, 0].tolist() == expected


def test_box_filter_averages_when_shrinking():
    image = Image.new("RGB", (64, 64), BLACK)
    image.paste(WHITE, (0, 0, 64, 32))
    array = to_model_input(image, size=1)
    assert array.tolist() == [[[128, 128, 128]]]


def test_squashes_without_cropping():
    image = Image.new("RGB", (300, 30), BLUE)
    image.paste(RED, (0, 0, 10, 30))  # a sliver at the far left
    array = to_model_input(image, size=30)
    assert tuple(array[15, 0]) == RED and tuple(array[15, -1]) == BLUE


@pytest.mark.parametrize("landscape", [True, False])
def test_crop_resizes_the_centre_square_and_keeps_shapes(landscape):
    image = Image.new("RGB", (300, 30), RED)  # red edges, left out
    image.paste(GREEN, (135, 0, 150, 30))  # the centre square: green, then blue
    image.paste(BLUE, (150, 0, 165, 30))
    image = image if landscape else image.transpose(Image.Transpose.ROTATE_90)
    array = to_model_input(image, size=10, fit="crop")
    halves = (array[:, :5], array[:, 5:]) if landscape else (array[5:], array[:5])
    assert {tuple(p) for p in halves[0].reshape(-1, 3)} == {GREEN}
    assert {tuple(p) for p in halves[1].reshape(-1, 3)} == {BLUE}
    square = noise(20, 20)  # a square picture: both fits are the same resize
    np.testing.assert_array_equal(
        to_model_input(square, 8, "crop"), to_model_input(square, 8, "squash")
    )


def test_the_centre_square_and_what_cropping_leaves_out():
    assert centre_square(5, 2) == (1, 0, 3, 2)  # the odd pixel: on the right
    assert centre_square(3, 8) == (0, 2, 3, 5)
    assert centre_square(4, 4) == (0, 0, 4, 4)
    photo = Image.new("RGB", (40, 20), (200, 100, 50))
    shown = np.asarray(dim_outside_centre(photo))
    assert shown.shape == (20, 40, 3)
    assert shown[:, 10:30].tolist() == np.asarray(photo)[:, 10:30].tolist()
    assert {tuple(p) for p in shown[:, :10].reshape(-1, 3)} == {(70, 35, 17)}
    assert {tuple(p) for p in shown[:, 30:].reshape(-1, 3)} == {(70, 35, 17)}


def test_a_large_jpeg_is_cropped_after_its_reduced_decode():
    """The crop box is taken on the JPEG decoded at a smaller scale (and upright): a 12:4
    photo whose centre third is blue answers blue whatever it decodes at."""
    image = Image.new("RGB", (1200, 400), RED)
    image.paste(BLUE, (400, 0, 800, 400))
    array = decode_image(encode(image, "JPEG", quality=95), size=32, fit="crop")
    assert np.abs(array.astype(int) - BLUE).max() <= 8
    squashed = decode_image(encode(image, "JPEG", quality=95), size=32)
    assert np.abs(squashed[:, :8].astype(int) - RED).max() <= 8  # the whole photo: red sides


@pytest.mark.parametrize("fit", ["centre", "", None, "three"])
def test_an_unknown_fit_is_a_programming_error(fit):
    with pytest.raises(ValueError, match="fit must be one of squash, crop, not"):
        decode_image(encode(noise(8, 8), "PNG"), fit=fit)  # one picture: not three
    if fit != "three":
        with pytest.raises(ValueError, match="fit must be one of squash, crop, three, not"):
            decode_views(encode(noise(8, 8), "PNG"), fit=fit)


def test_three_squares_are_both_ends_and_the_middle_of_the_longer_side():
    assert three_squares(7, 3) == [(0, 0, 3, 3), (2, 0, 5, 3), (4, 0, 7, 3)]
    assert three_squares(3, 8) == [(0, 0, 3, 3), (0, 2, 3, 5), (0, 5, 3, 8)]
    assert three_squares(4, 4) == [(0, 0, 4, 4)]  # a square: one view
    image = Image.new("RGB", (90, 30), RED)
    image.paste(GREEN, (30, 0, 60, 30))
    image.paste(BLUE, (60, 0, 90, 30))
    views = decode_views(encode(image, "PNG"), 10, "three")
    assert views.shape == (3, 10, 10, 3) and views.dtype == np.uint8
    assert [{tuple(p) for p in v.reshape(-1, 3)} for v in views] == [{RED}, {GREEN}, {BLUE}]
    for fit in ("squash", "crop"):  # one view, as decode_image gives it
        np.testing.assert_array_equal(
            decode_views(encode(image, "PNG"), 10, fit)[0],
            decode_image(encode(image, "PNG"), 10, fit=fit),
        )
    assert model_views(noise(20, 20), 8, "three").shape == (1, 8, 8, 3)


def test_output_is_writable_and_sized():
    array = to_model_input(Image.new("RGB", (5, 5)), size=64)
    assert array.shape == (64, 64, 3) and array.flags.writeable


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "32"])
def test_bad_size_is_a_programming_error(size):
    with pytest.raises(ValueError, match="size"):
        decode_image(encode(noise(8, 8), "PNG"), size=size)


def test_non_image_argument_is_a_type_error():
    with pytest.raises(TypeError):
        to_model_input(np.zeros((4, 4, 3)))


# --- fuzzing --------------------------------------------------------------
# 6 tests x 2,000 examples = 12,000 generated inputs, derandomized so CI
# sees the same ones. The fuzz passes max_pixels=2**20 so a mutated header
# cannot make a single example decode 40 MP; the limit path is what it tests.

# Corrupt EXIF blocks make Pillow warn; the outcome is what is asserted.
FUZZ_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning")
FUZZ = settings(
    max_examples=2000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
FUZZ_LIMITS = {"max_pixels": 2**20}


def _fuzz_seeds():
    image = noise(12, 10, seed=3)
    rgba = image.convert("RGBA")
    return [
        encode(image, "PNG"),
        palette_with_transparency("PNG"),
        grey16_png(),
        encode(image, "JPEG", quality=80),
        encode(image, "JPEG", progressive=True),
        with_orientation("JPEG", 6),
        encode(image, "GIF"),
        animated("GIF"),
        encode(image, "WEBP"),
        encode(rgba, "WEBP", lossless=True),
        animated("WEBP"),
        encode(image, "BMP"),
        palette_bmp(),
        cmyk_jpeg(),
        mpo(),
        animated("PNG"),
        rgba_png(),
        la32_png(),
        mode1_png(),
        encode(image, "AVIF"),
        encode(rgba, "AVIF"),
        HEIC_PHOTO.read_bytes(),
        (DATA / "transparent.heic").read_bytes(),
    ]


SEEDS = _fuzz_seeds()
MAGICS = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"GIF87a",
    b"BM",
    b"RIFF\x00\x01\x00\x00WEBPVP8 ",
    b"RIFF\x00\x01\x00\x00WEBPVP8X",
    b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf",
    b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
]


@st.composite
def mutated_seeds(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "splice"]))
        if action == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set":
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif action == "truncate":
            del data[at + 1 :]
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:  # one file's header glued to another file's body
            other = draw(st.sampled_from(SEEDS))
            data = data[:at] + other[draw(st.integers(0, len(other) - 1)) :]
        if not data:
            break
    return bytes(data)


def assert_array_or_image_error(data):
    try:
        array = decode_image(data, **FUZZ_LIMITS)
    except ImageError:
        event("refused")
        return
    event("decoded")
    assert isinstance(array, np.ndarray)
    assert array.shape == (32, 32, 3) and array.dtype == np.uint8


@FUZZ_WARNINGS
@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    assert_array_or_image_error(data)


@FUZZ_WARNINGS
@FUZZ
@given(st.sampled_from(MAGICS), st.binary(max_size=400))
def test_fuzz_allowed_magic_then_random(magic, body):
    assert_array_or_image_error(magic + body)


@FUZZ_WARNINGS
@FUZZ
@given(mutated_seeds())
def test_fuzz_mutated_seeds(data):
    assert_array_or_image_error(data)


@FUZZ_WARNINGS
@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_fuzz_truncated_seeds(seed, data):
    cut = data.draw(st.integers(0, len(seed)))
    assert_array_or_image_error(seed[:cut])


@st.composite
def header_mutations(draw):
    """Seeds with 1-3 bytes rewritten among the first 64, where sizes live."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        data[draw(st.integers(0, min(63, len(data) - 1)))] = draw(st.integers(0, 255))
    return bytes(data)


@FUZZ_WARNINGS
@FUZZ
@given(header_mutations())
def test_fuzz_header_mutations(data):
    assert_array_or_image_error(data)


PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


@st.composite
def structured_pngs(draw):
    """Valid chunk framing and checksums around random pixel content, so the
    inputs get past the CRC checks into every PNG mode Pillow supports."""
    colour = draw(st.sampled_from(sorted(PNG_DEPTHS)))
    depth = draw(st.sampled_from(PNG_DEPTHS[colour]))
    width, height = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    row_bytes = (width * PNG_CHANNELS[colour] * depth + 7) // 8
    pixels = draw(st.binary(min_size=height * row_bytes, max_size=height * row_bytes))
    rows = [
        bytes([draw(st.integers(0, 4))]) + pixels[i * row_bytes : (i + 1) * row_bytes]
        for i in range(height)
    ]
    extra = b""
    if colour == 3 or draw(st.booleans()):
        entries = 3 * draw(st.integers(1, 16))
        extra += png_chunk(b"PLTE", draw(st.binary(min_size=entries, max_size=entries)))
    if draw(st.booleans()):
        extra += png_chunk(b"tRNS", draw(st.binary(max_size=16)))
    if draw(st.booleans()):
        extra += png_chunk(b"eXIf", exif_bytes(draw(st.integers(0, 9))))
    idat = zlib.compress(b"".join(rows))
    cut = draw(st.just(len(idat)) | st.integers(0, len(idat)))
    return raw_png(width, height, depth, colour, [], extra, idat[:cut])


@FUZZ_WARNINGS
@FUZZ
@given(structured_pngs())
def test_fuzz_structured_pngs(data):
    assert_array_or_image_error(data)


def test_fuzz_seeds_all_decode():
    for seed in SEEDS:
        assert decode_image(seed, **FUZZ_LIMITS).shape == (32, 32, 3)


def test_module_limits_are_documented_values():
    assert images.MAX_UPLOAD_BYTES == 32 * MIB
    assert images.ALLOWED_FORMATS == ("JPEG", "PNG", "WEBP", "BMP", "GIF", "AVIF", "HEIF")


def _photo(width=1024, height=768) -> bytes:
    """A smooth JPEG 'photo': colour gradients with a few hard-edged shapes."""
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], axis=-1)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = (250, 30, 30)
    pixels[height // 2 :, width // 2 : 3 * width // 4] = (20, 20, 200)
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_a_large_jpeg_decodes_at_a_reduced_scale_close_to_the_full_decode():
    data = _photo()
    assert open_image(data).size == (1024, 768)
    assert open_image(data, at_least=64).size == (128, 96)  # 1/8: both sides stay >= 64
    assert open_image(data, at_least=100).size == (256, 192)  # 1/4
    full = to_model_input(open_image(data), 32)
    fast = decode_image(data, 32)  # keeps 2x the output side: decoded at 1/8 here
    assert np.abs(full.astype(int) - fast).mean() < 1.5
    small = encode(noise(48, 40), "JPEG")  # under twice the output side: decoded whole
    np.testing.assert_array_equal(decode_image(small, 32), to_model_input(open_image(small), 32))


def test_a_damaged_large_jpeg_is_refused_at_a_reduced_scale_too():
    data = _photo()
    with pytest.raises(ImageError, match="truncated or damaged"):
        decode_image(data[: len(data) // 2], 32)


@pytest.mark.parametrize(
    ("image", "flags"),
    [
        (Image.new("RGB", (40, 20)), 0),
        (Image.new("L", (40, 20)), GREYSCALE),
        (Image.new("1", (40, 20)), GREYSCALE),
        (Image.new("I;16", (40, 20)), GREYSCALE),
        (Image.new("LA", (40, 20)), GREYSCALE | TRANSPARENT),
        (Image.new("RGBA", (40, 20)), TRANSPARENT),
        (Image.new("P", (40, 20)), 0),
    ],
    ids=["rgb", "grey", "bilevel", "16-bit", "grey-alpha", "rgba", "palette"],
)
def test_decode_described_says_what_the_file_stored(image, flags):
    pixels, stored = decode_described(encode(image, "PNG"), 32)
    assert stored == (40, 20, flags)
    np.testing.assert_array_equal(pixels, decode_image(encode(image, "PNG"), 32))


def test_a_colour_key_is_transparency_and_sizes_are_upright_and_whole():
    keyed = encode(Image.new("P", (40, 20)), "PNG", transparency=0)
    assert decode_described(keyed)[1] == (40, 20, TRANSPARENT)
    # Orientation 6 turns the stored 40 x 20 a quarter: the picture is 20 wide, 40 high.
    assert decode_described(with_orientation("JPEG", 6))[1] == (20, 40, 0)
    # A photo decoded at a reduced scale (1/8 here) still reports its own size.
    photo = encode(noise(1024, 768), "JPEG")
    assert open_image(photo, at_least=64).size == (128, 96)
    assert decode_described(photo, 32)[1] == (1024, 768, 0)


def test_a_heic_is_decoded_in_a_process_of_its_own_reduced_as_a_jpeg_draft(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as a command run from another folder
    image, stored = heif.decode(HEIC_PHOTO.read_bytes(), images.MAX_PIXELS, at_least=16)
    assert stored == (48, 32) and image.size == (24, 16) and image.mode == "RGB"
    assert near(image.getpixel((0, 0)), RED, 12)
    assert heif.decode(HEIC_PHOTO.read_bytes(), images.MAX_PIXELS)[0].size == (48, 32)
    assert heif.decode(HEIC_PHOTO.read_bytes(), 48 * 32 - 1) == (None, (48, 32))  # not decoded
    with pytest.raises(RuntimeError):  # pillow-heif's own words, which images turns to a sentence
        heif.decode(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", images.MAX_PIXELS)
    assert "pillow_heif" not in sys.modules  # libheif never runs in this process


@pytest.mark.parametrize(
    ("child", "seconds", "message"),
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", 30, heif.CRASHED),
        (
            "import sys; sys.stdin.read(); print('Traceback (most recent call last):')",
            30,
            heif.CRASHED,
        ),
        ("import time; time.sleep(60)", 1, "The HEIC file took over 1 s to decode"),
    ],
    ids=["crashed", "garbage", "hung"],
)
def test_a_heic_decoder_that_crashes_or_hangs_costs_one_refused_file(
    monkeypatch, child, seconds, message
):
    monkeypatch.setattr(heif, "DECODER", [sys.executable, "-c", child])
    monkeypatch.setattr(heif, "DECODE_SECONDS", seconds)
    monkeypatch.setattr(heif, "_RECENT", OrderedDict())  # not a picture decoded before
    start = time.perf_counter()
    with pytest.raises(ImageError, match=re.escape(message)):
        decode_image(HEIC_PHOTO.read_bytes(), filename="IMG_0001.HEIC")
    assert time.perf_counter() - start < seconds + 5
    assert decode_image(encode(Image.new("RGB", (8, 8), RED), "PNG")).shape == (32, 32, 3)


def _heic_files() -> list[bytes]:
    """Three HEIC files of other pictures and sizes (tests/data/make_heic.py)."""
    return [(HEIC_PHOTO.parent / name).read_bytes() for name in _HEIC_NAMES]


_HEIC_NAMES = ("photo.heic", "turned.heic", "transparent.heic")


def test_a_folders_heic_files_go_to_one_decoding_process(monkeypatch):
    files = _heic_files()
    alone = [heif.decode(data, images.MAX_PIXELS, 8) for data in files]  # a process each
    started = heic_processes(monkeypatch)
    with heif.kept_decoder():
        kept = [heif.decode(data, images.MAX_PIXELS, 8) for data in files]
        with pytest.raises(RuntimeError):  # pillow-heif's words for a damaged file, as alone
            heif.decode(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", images.MAX_PIXELS)
        assert heif.decode(files[0], 10) == (None, alone[0][1])  # over the limit: its size
    assert len(started) == 1  # one process for all of them, the damaged one included
    assert len({image.tobytes() for image, _ in alone}) == 3  # three pictures
    for (image, size), (same, same_size) in zip(alone, kept, strict=True):
        assert size == same_size and image.mode == same.mode
        assert image.size == same.size and image.tobytes() == same.tobytes()
    assert "pillow_heif" not in sys.modules  # libheif never runs in this process


# A decoding process that fails on its second file, run as `kept_decoder` runs it.
_SECOND = (
    "import os, sys, time, core.heif as h\n"
    "real, calls = h._answer, []\n"
    "def answer(*a):\n"
    "    calls.append(1)\n"
    "    if len(calls) == 2:\n"
    "        {fail}\n"
    "    return real(*a)\n"
    "h._answer = answer\n"
    "h.main()"
)


@pytest.mark.parametrize(
    ("fail", "message"),
    [
        ("os.kill(os.getpid(), 11)", heif.CRASHED),
        ("sys.stdout.buffer.write(b'\\xff' * 8); sys.stdout.flush(); time.sleep(60)", heif.CRASHED),
        ("time.sleep(60)", "The HEIC file took over 2 s to decode"),
    ],
    ids=["crashed", "garbage", "hung"],
)
def test_a_file_that_ends_the_kept_decoder_is_refused_and_the_next_gets_another(
    monkeypatch, fail, message
):
    monkeypatch.setattr(heif, "DECODER", [sys.executable, "-c", _SECOND.format(fail=fail)])
    monkeypatch.setattr(heif, "DECODE_SECONDS", 2)
    files = _heic_files()
    started = heic_processes(monkeypatch)
    begun = time.perf_counter()
    with heif.kept_decoder():
        assert heif.decode(files[0], images.MAX_PIXELS)[1] == (48, 32)
        with pytest.raises(ImageError, match=re.escape(message)):
            heif.decode(files[1], images.MAX_PIXELS)
        assert heif.decode(files[2], images.MAX_PIXELS)[0] is not None  # another process
    assert len(started) == 2 and time.perf_counter() - begun < 30


def test_a_kept_decoder_that_ended_between_files_is_started_again(monkeypatch):
    ends = "import threading; threading.Timer(0.2, os._exit, (0,)).start()"
    child = _SECOND.format(fail="pass").replace("calls.append(1)", f"calls.append(1); {ends}")
    monkeypatch.setattr(heif, "DECODER", [sys.executable, "-c", child])
    files = _heic_files()
    started = heic_processes(monkeypatch)
    with heif.kept_decoder():
        assert heif.decode(files[0], images.MAX_PIXELS)[1] == (48, 32)
        time.sleep(1.5)  # it ends meanwhile, as one killed from outside would
        assert heif.decode(files[1], images.MAX_PIXELS)[0] is not None  # not refused
    assert len(started) == 2


def test_a_heic_asked_for_again_at_the_same_reduction_is_not_decoded_again(monkeypatch):
    monkeypatch.setattr(heif, "_RECENT", OrderedDict())
    data, limit = HEIC_PHOTO.read_bytes(), images.MAX_PIXELS
    first, stored = heif.decode(data, limit, at_least=16)  # 48 x 32, halved
    monkeypatch.setattr(heif, "DECODER", [sys.executable, "-c", "raise SystemExit(1)"])
    again, same = heif.decode(data, limit, at_least=12)  # halved too: from memory
    assert same == stored and again.tobytes() == first.tobytes() and again is not first
    with pytest.raises(ImageError, match="decoder failed"):
        heif.decode(data, limit)  # whole: another decode (here, one that fails)
    with pytest.raises(ImageError, match="decoder failed"):
        heif.decode(data[:-1] + b"\0", limit, at_least=16)  # other bytes
    monkeypatch.setattr(heif, "RECENT", 1)
    monkeypatch.setattr(heif, "DECODER", [sys.executable, "-m", "core.heif"])
    heif.decode(data, limit)  # kept in place of the halved one
    assert [factor for _, factor, _ in heif._RECENT.values()] == [1]


def test_a_50_megapixel_jpeg_photo_is_read_at_a_reduced_scale():
    # A 50 MP phone's full-resolution photo, over MAX_PIXELS: every reader wants it smaller,
    # and libjpeg decodes it at 1/4 of its size without holding all 50 MP.
    photo = encode(Image.new("RGB", (8160, 6120), (200, 30, 30)), "JPEG", quality=90)
    pixels, (width, height, _) = decode_described(photo, 32)
    assert (width, height) == (8160, 6120)
    assert np.abs(pixels.astype(int) - (200, 30, 30)).max() <= 3
    shown = open_image(photo, at_least=1000)
    assert shown.size == (2040, 1530)  # the Classify page's picture
    with pytest.raises(ImageError, match=r"8160 x 6120 pixels \(49.9 megapixels\)"):
        open_image(photo)  # wanted whole: refused as before
    thin = encode(Image.new("RGB", (45000, 1000), (200, 30, 30)), "JPEG")
    with pytest.raises(ImageError, match=r"45000 x 1000 pixels \(45 megapixels\)"):
        open_image(thin, at_least=1000)  # too thin to decode smaller: 45 MP decoded
    assert decode_image(thin).shape == (32, 32, 3)  # at 1/8: 5,625 x 125
    huge = encode(Image.new("RGB", (10000, 9000)), "JPEG")
    with pytest.raises(ImageError, match="images above 89.5 megapixels are refused"):
        decode_image(huge)


def test_a_heic_over_the_pixel_limit_is_read_when_its_reduction_fits(monkeypatch):
    # As a 48 MP "HEIF Max" photo against 40 MP: libheif decodes it whole in its own
    # process, and what comes back is the reduced picture. Here the 48 x 32 photo against a
    # limit of 500 pixels.
    from tests.conftest import heic_processes

    data = HEIC_PHOTO.read_bytes()
    started = heic_processes(monkeypatch)
    quarter = open_image(data, max_pixels=500, at_least=8)  # 1/4: 12 x 8
    assert quarter.size == (12, 8) and len(started) == 1
    pixels, held = decode_described(data, 6, max_pixels=500)  # at least 12: halved, 24 x 16
    assert pixels.shape == (6, 6, 3) and held[:2] == (48, 32) and len(started) == 2
    # Asked whole, or too little reduced: refused unread, by the size the file declares (its
    # HEVC frame, 64 x 64 in whole coding blocks, which a side of 20 only halves).
    for at_least in (None, 20):
        with pytest.raises(ImageError, match=r"64 x 64 pixels \(4,096 pixels\)"):
            open_image(data, max_pixels=500, at_least=at_least)
    assert len(started) == 2
