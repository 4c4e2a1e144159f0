"""Turn untrusted uploaded bytes into a small RGB array the CNN can read.

Every caller (the Classify page, the Filters page and the image-folder
dataset loader) goes through `decode_image`, so all of them refuse the same
files with the same sentences.

Policy:

* Only the bytes are trusted, never a file name: a `photo.png` that is really
  a JPEG is decoded as the JPEG it is, while a `photo.png` that is really a
  PDF, an SVG or a TIFF is refused with a message naming what it really is.
  A `filename`, when given, only prefixes the messages.
* Only JPEG, PNG, WebP, BMP, GIF and AVIF reach Pillow, and HEIC reaches
  pillow-heif (libheif with libde265) in a process of its own (`core.heif`):
  a crash there is one refused file. Anything else is named from its magic
  bytes and refused before any parser runs, which keeps the attack surface to
  seven fuzzed decoders (AVIF's is dav1d, bundled with Pillow's wheels).
* Sizes are checked in layers, each before the expensive step it guards:
  the byte count before parsing, the pixel count declared in the header
  before Pillow opens the file (opening a GIF or WebP already allocates
  frame buffers; an AVIF or a HEIC declares sizes in its boxes and in its
  AV1 or HEVC data, and the decoder allocates the latter: `core.avif`,
  `core.heif`), and Pillow's own
  reading of the size before any pixel is decoded. Pillow's
  decompression-bomb warning is turned into an error while it parses
  headers, as a last line of defence.
* Truncated files are refused (`ImageFile.LOAD_TRUNCATED_IMAGES` stays
  False) rather than padded with grey, which would silently feed the model
  a half-blank picture. A PNG whose pixels are complete but whose trailing
  checksum or IEND chunk is missing is accepted, as browsers do.
* Every failure is an `ImageError` whose text is a sentence for the user.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import threading
import warnings

import numpy as np
from PIL import Image, ImageOps

from core import avif, heif
from core.errors import ImageError

# The photo uploaders' `max_upload_size` (ui.state.PHOTO_UPLOAD_MB) is derived
# from this, in the same binary megabytes, so the page and this module refuse
# the same files. 32 MB holds a full-resolution JPEG of a 48 or 50 MP phone
# (12-25 MB), which 10 MB refused.
MAX_UPLOAD_BYTES = 32 * 1024 * 1024
# 40 megapixels decoded caps one decode at ~160 MB of RGBA; a phone photo
# in its default mode is 12 MP (a 48 MP sensor bins to 12). It sits below
# Pillow's own 89 MP warning, so the explicit check always fires first.
MAX_PIXELS = 40_000_000
# A JPEG decoded at a reduced scale (every reader here wants its pictures smaller) may be
# larger, up to Pillow's own bomb warning (89.5 MP): 48 and 50 MP phone photos, 61 MP
# cameras. Its decoded size is still held to MAX_PIXELS.
JPEG_PIXELS = Image.MAX_IMAGE_PIXELS
_PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "AVIF")  # decoded in this process
ALLOWED_FORMATS = (*_PILLOW_FORMATS, "HEIF")  # HEIC in a process of its own: `core.heif`

_DISPLAY_NAMES = {"WEBP": "WebP", "HEIF": "HEIC"}
FORMAT_NAMES = [_DISPLAY_NAMES.get(kind, kind) for kind in ALLOWED_FORMATS]  # as users read them
_SUPPORTED = f"Supported formats: {', '.join(FORMAT_NAMES)}."
# Transparent pixels become white: most datasets photograph objects on
# light backgrounds, and black would read as a dark object edge.
_BACKGROUND = (255, 255, 255)
_MIB = 1024 * 1024
_SNIFF_BYTES = 4096
# `warnings.catch_warnings` swaps the process-wide filter list on entry and
# restores it on exit. The folder loader decodes in a thread pool, and two
# interleaved swaps could leave our filter installed for good, so they are
# serialised. Only header parsing runs under the lock: decoding stays parallel.
_WARNINGS_LOCK = threading.Lock()

# (magic bytes, name, is an image format). Checked in order, first match wins.
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG", True),
    (b"\x89PNG\r\n\x1a\n", "PNG", True),
    (b"GIF87a", "GIF", True),
    (b"GIF89a", "GIF", True),
    (b"BM", "BMP", True),
    (b"II*\x00", "TIFF", True),
    (b"MM\x00*", "TIFF", True),
    (b"II+\x00", "TIFF", True),
    (b"MM\x00+", "TIFF", True),
    (b"\x00\x00\x01\x00", "ICO", True),
    (b"8BPS", "Photoshop (PSD)", True),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000", True),
    (b"\xff\x4f\xff\x51", "JPEG 2000", True),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL", True),
    (b"\xff\x0a", "JPEG XL", True),
    (b"icns", "ICNS", True),
    (b"qoif", "QOI", True),
    (b"DDS ", "DDS", True),
    (b"%PDF-", "a PDF document", False),
    (b"%!PS", "a PostScript document", False),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)", False),
    (b"PK\x05\x06", "a ZIP archive (or an Office document)", False),
    (b"\x1f\x8b", "a gzip-compressed file", False),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", False),
    (b"Rar!\x1a\x07", "a RAR archive", False),
    (b"MZ", "a Windows program", False),
    (b"\x7fELF", "a Linux program", False),
    (b"ID3", "an MP3 audio file", False),
    (b"OggS", "an Ogg audio or video file", False),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_NO_LENGTH = {0x01, *range(0xD0, 0xDA)}
_GIF_BLOCK = re.compile(rb"[!,;]")  # Pillow skips any other byte between blocks
# How a picture that is not square becomes the model's square input: "squash" resizes the
# whole picture (its objects look narrower or taller), "crop" resizes its centre square
# (objects keep their shape; the edges of the longer side are left out): one view each.
# "three" gives three views, its squares at both ends of the longer side and in its middle,
# whose answers a classifier averages (`decode_views`).
ONE_VIEW = ("squash", "crop")
FITS = (*ONE_VIEW, "three")


def open_image(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    filename: str | None = None,
    at_least: int | None = None,
) -> Image.Image:
    """Decodes untrusted bytes into a fully loaded 8-bit RGB image.

    EXIF orientation is applied, only the first frame of an animation is
    kept, transparency is composited onto white, and high-bit-depth pixels
    are scaled into 0..255 (see `to_model_input` for the rules).

    Args:
        data: The file's contents. The format is read from these bytes;
            nothing else is trusted.
        max_bytes: Largest accepted `len(data)`.
        max_pixels: Largest accepted width * height, checked before any
            pixel is decoded.
        filename: Optional name, used only to prefix error messages.
        at_least: Optional side in pixels that both sides of the result must keep. A
            JPEG at least twice that size is then decoded at 1/2, 1/4 or 1/8 of its
            size (libjpeg's DCT scaling: each pixel from a 2x2 to 8x8 block), the
            smallest that keeps both sides; every byte is still decoded, so damaged
            files are refused as before.

    Returns:
        A loaded `PIL.Image.Image` in mode "RGB", upright.

    Raises:
        ImageError: For every file that cannot be used: empty, too large,
            not an allowed format, damaged, truncated or a pixel bomb.
    """
    return _open_described(data, max_bytes, max_pixels, at_least, filename)[0]


def _open_described(data, max_bytes, max_pixels, at_least, filename):
    """`(image, (width, height, flags))`: `open_image`'s image and what the file held."""
    try:
        return _open_image(data, max_bytes, max_pixels, at_least)
    except ImageError as err:
        if filename:
            raise ImageError(f"{filename}: {err}") from err
        raise


def to_model_input(image: Image.Image, size: int = 32, fit: str = "squash") -> np.ndarray:
    """Resizes an image to the model's square input as a uint8 array.

    With `fit="squash"` the whole image is squashed to `size` x `size` without
    cropping, like Keras' `image_dataset_from_directory` default (and as image
    folders are read for training); with `fit="crop"` its centre square
    (`centre_square`) is cut out and resized instead. When neither side grows,
    the BOX filter averages every source pixel into its output pixel: it is
    exact area averaging with no ringing, which matters at 32 px where a
    Lanczos halo would be a sizeable part of the picture. When a side grows
    (tiny or very thin images), BICUBIC interpolates smoothly instead of
    BOX's blocky nearest-neighbour look; Pillow widens every filter's support
    when shrinking, so the shrinking axis is still antialiased.

    Non-RGB images are first converted like `open_image` does: alpha is
    composited onto white; "I;16" is scaled by 1/257 (65535 -> 255); "I"
    data already in 0..255 is kept, data in 0..65535 is scaled as 16-bit,
    anything else is stretched linearly from its min..max to 0..255; "F"
    data in 0..1 is scaled by 255, data in 0..255 is kept, anything else is
    stretched; non-finite floats become the lowest finite value.

    Args:
        image: A `PIL.Image.Image` of any mode. Its size is not limited
            here: open untrusted files with `open_image`.
        size: Side of the output square, a positive int.
        fit: One of `ONE_VIEW`.

    Returns:
        A writable `np.ndarray` of shape `(size, size, 3)`, dtype uint8.

    Raises:
        ImageError: If Pillow cannot decode or convert the image.
        TypeError: If `image` is not a PIL image.
        ValueError: If `size` is not a positive int or `fit` not one of `ONE_VIEW`.
    """
    _check_size_argument(size)
    _check_fit(fit, ONE_VIEW)
    if not isinstance(image, Image.Image):
        raise TypeError(f"Expected a PIL image, got {type(image).__name__}.")
    with _pillow_errors("image"):
        rgb = _to_rgb(image)
        # Cropped first, not passed as `resize`'s box: BICUBIC would read past its edges.
        rgb = rgb.crop(centre_square(*rgb.size)) if fit == "crop" else rgb
        grows = size > rgb.width or size > rgb.height
        resample = Image.Resampling.BICUBIC if grows else Image.Resampling.BOX
        return np.array(rgb.resize((size, size), resample), dtype=np.uint8)


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """`(left, top, right, bottom)`: the largest square centred in a `width` x `height`
    picture (an odd pixel left over goes to the right or bottom)."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def dim_outside_centre(image: Image.Image, keep: float = 0.35) -> Image.Image:
    """A copy of an RGB `image` whose parts outside `centre_square` are darkened to `keep`
    of their brightness: what `fit="crop"` leaves out, shown on the photo."""
    left, top, right, bottom = centre_square(*image.size)
    pixels = np.array(image.convert("RGB"))
    inside = pixels[top:bottom, left:right].copy()
    pixels = (pixels * keep).astype(np.uint8)
    pixels[top:bottom, left:right] = inside
    return Image.fromarray(pixels)


def three_squares(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The boxes of the three squares of `fit="three"`: at the start, middle (`centre_square`)
    and end of the longer side; one box for a square picture."""
    if width == height:
        return [(0, 0, width, height)]
    side, long = min(width, height), max(width, height)
    starts = (0, (long - side) // 2, long - side)
    return [(a, 0, a + side, height) if width > height else (0, a, width, a + side) for a in starts]


def model_views(image: Image.Image, size: int = 32, fit: str = "squash") -> np.ndarray:
    """The views of an image a classifier answers for `fit` (one of `FITS`), as uint8
    `(V, size, size, 3)`: one for "squash" and "crop" (`to_model_input`), three for "three"
    (`three_squares`, each resized as `to_model_input` resizes; one for a square image)."""
    _check_fit(fit, FITS)
    if fit != "three":
        return to_model_input(image, size, fit)[None]
    with _pillow_errors("image"):
        rgb = _to_rgb(image)
        return np.stack([to_model_input(rgb.crop(box), size) for box in three_squares(*rgb.size)])


def _check_fit(fit, allowed):
    if fit not in allowed:
        raise ValueError(f"fit must be one of {', '.join(allowed)}, not {fit!r}.")


def decode_image(
    data: bytes | bytearray | memoryview,
    size: int = 32,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    filename: str | None = None,
    fit: str = "squash",
) -> np.ndarray:
    """Turns untrusted file bytes into one model input array.

    Args:
        data: The file's contents, as for `open_image`.
        size: Side of the output square, a positive int.
        max_bytes: Largest accepted `len(data)`.
        max_pixels: Largest accepted width * height.
        filename: Optional name, used only to prefix error messages.
        fit: How a picture that is not square is made square: one of `ONE_VIEW`, as
            for `to_model_input`.

    Returns:
        An `np.ndarray` of shape `(size, size, 3)`, dtype uint8.

    Raises:
        ImageError: For every file that cannot be used, as in `open_image`.
        ValueError: If `size` is not a positive int or `fit` not one of `ONE_VIEW`.
    """
    return decode_described(
        data, size, max_bytes=max_bytes, max_pixels=max_pixels, filename=filename, fit=fit
    )[0]


# What `decode_described` says a file held besides its size: bits of its flags.
GREYSCALE, TRANSPARENT = 1, 2  # one grey channel; a transparency channel or colour key


def decode_described(
    data: bytes | bytearray | memoryview,
    size: int = 32,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    filename: str | None = None,
    fit: str = "squash",
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Turns untrusted file bytes into one model input array, and says what the file held.

    Args:
        data, size, max_bytes, max_pixels, filename, fit: as for `decode_image`.

    Returns:
        `(pixels, (width, height, flags))`: the array of `decode_image`, the picture's
        size upright (EXIF orientation applied) before it was resized, and `GREYSCALE`
        and/or `TRANSPARENT` as the file stored it.

    Raises:
        ImageError: For every file that cannot be used, as in `open_image`.
        ValueError: If `size` is not a positive int or `fit` not one of `ONE_VIEW`.
    """
    image, held = _open_for(data, size, fit, ONE_VIEW, max_bytes, max_pixels, filename)
    return to_model_input(image, size, fit), held


def decode_views(
    data: bytes | bytearray | memoryview, size: int = 32, fit: str = "squash"
) -> np.ndarray:
    """Untrusted file bytes as the views a classifier answers for `fit`, one of `FITS`
    (`model_views`): uint8 `(V, size, size, 3)`, decoded as `decode_image` decodes.

    Raises:
        ImageError: For every file that cannot be used, as in `open_image`.
        ValueError: If `size` is not a positive int or `fit` not one of `FITS`.
    """
    image, _ = _open_for(data, size, fit, FITS, MAX_UPLOAD_BYTES, MAX_PIXELS, None)
    return model_views(image, size, fit)


def _open_for(data, size, fit, fits, max_bytes, max_pixels, filename):
    """`_open_described` for a model input of side `size`, `size` and `fit` (of `fits`)
    checked first: a caller's bug should not cost a decode."""
    _check_size_argument(size)
    _check_fit(fit, fits)
    # A JPEG photo is decoded at a reduced scale that keeps twice the output's side, so
    # the BOX filter still averages 2x2 or more pixels into each input pixel: a 640x480
    # upload decodes 3.4-3.8x faster, a 12-megapixel one 9-11x, and the shipped model gave the
    # same class as from the full decode for 99.4-99.5% of CIFAR-10 validation images
    # enlarged to those sizes (docs/BENCHMARKS.md, session 16).
    return _open_described(data, max_bytes, max_pixels, 2 * size, filename)


def _open_image(data, max_bytes, max_pixels, at_least=None):
    data = _as_bytes(data)
    if not data:
        raise ImageError("This file is empty.")
    if reason := too_large(len(data), max_bytes):
        raise ImageError(reason)
    kind = _sniff(data)
    declared = _declared_size(data, kind)
    # A JPEG wanted smaller decodes at 1/2 to 1/8 of its size (`draft`, below): a 50 MP
    # photo fits `max_pixels` there. Its own size is held to Pillow's bomb limit instead.
    # A HEIC too, when its reduction fits (48 MP, an iPhone's "HEIF Max") and its frames are
    # the size it says: libheif has no reduced decode, so it is decoded whole, in its
    # decoder's process (`core.heif`), and only the reduced picture comes back.
    shrinks = bool(at_least) and (
        kind == "JPEG" or _heic_shrinks(data, kind, declared, at_least, max_pixels)
    )
    stored_limit = max(max_pixels, JPEG_PIXELS) if shrinks else max_pixels
    _check_pixels(declared, stored_limit)
    name = _DISPLAY_NAMES.get(kind, kind)
    with _pillow_errors(name):
        if kind == "HEIF":  # decoded upright, reduced as a JPEG's draft would be
            image, stored = heif.decode(data, stored_limit, at_least)
            _check_opened(stored, stored_limit)
            if image.width * image.height > max_pixels:  # it made more than it declared
                _check_pixels(stored, max_pixels)
            return _to_rgb(image), (*stored, _flags(image))
        image = _open_headers(data, name)
        # Pillow's reading of the size is authoritative; still nothing decoded.
        _check_opened(image.size, stored_limit)
        (width, height), flags = image.size, _flags(image)
        if shrinks and image.format == "JPEG":
            image.draft(image.mode, (at_least, at_least))  # same mode, smaller scale
        if image.width * image.height > max_pixels:  # the size it decodes at
            _check_pixels((width, height), max_pixels)
        image.load()
        loaded = image.size
        image = _apply_orientation(image)
        if image.size != loaded:  # a quarter turn swapped the sides
            width, height = height, width
        return _to_rgb(image), (width, height, flags)


def _heic_shrinks(data, kind, declared, at_least, max_pixels) -> bool:
    """Whether a HEIC over `max_pixels` is read reduced, as a JPEG is: its reduction
    (`core.heif.decode`) fits `max_pixels`, and no frame in it is larger than the picture it
    declares (a second reading of its boxes, for such a HEIC only)."""
    if kind != "HEIF" or not declared or declared[0] * declared[1] <= max_pixels:
        return False
    return heif.reduced_pixels(declared, at_least) <= max_pixels and heif.frames_fit(data)


def _check_opened(size, max_pixels):
    _check_pixels(size, max_pixels)
    if 0 in size:
        raise ImageError("The image is 0 pixels wide or high: it is empty.")


def _flags(image):
    """`GREYSCALE` and `TRANSPARENT` bits of an opened, not yet decoded, image."""
    grey = image.mode in ("1", "L", "LA", "La", "I", "F") or image.mode.startswith("I;16")
    clear = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        image.info.get("transparency") is not None
    )
    return GREYSCALE * grey + TRANSPARENT * clear


def _open_headers(data, name):
    """Parses the headers with Pillow, its bomb warning raised as an error."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS)
        except Image.UnidentifiedImageError as err:
            if name == "AVIF":  # libavif reads the whole file on open, not only a header
                raise ImageError(avif.DAMAGED) from err
            raise ImageError(
                f"The file starts like a {name} image but its header is damaged, "
                "so it cannot be read."
            ) from err


def too_large(size: int, max_bytes: int = MAX_UPLOAD_BYTES) -> str | None:
    """Why a file of `size` bytes is refused unread, or None when it is not too large."""
    if size <= max_bytes:
        return None
    actual, limit = _byte_sizes(size, max_bytes)
    return f"This file is {actual}; the limit is {limit}."


def _as_bytes(data):
    if isinstance(data, bytes):
        return data
    try:
        return memoryview(data).tobytes()
    except TypeError as err:
        raise ImageError(f"Expected the file's bytes, got {type(data).__name__}.") from err


def _distinct(actual, limit, human, unit):
    """Renders two counts with `human`, falling back to exact `unit`s where they'd look equal."""
    actual_text, limit_text = human(actual), human(limit)
    if actual_text == limit_text:
        return f"{actual:,} {unit}", f"{limit:,} {unit}"
    return actual_text, limit_text


def _byte_sizes(actual, limit):
    return _distinct(actual, limit, _human_bytes, "bytes")


def _human_bytes(count):
    if count < 1024:
        return f"{count} bytes"
    if count < _MIB:
        return f"{_trim(count / 1024)} KB"
    return f"{_trim(count / _MIB)} MB"


def _pixel_counts(actual, limit):
    return _distinct(actual, limit, _human_pixels, "pixels")


def _human_pixels(count):
    if count >= 1_000_000:
        return f"{_trim(count / 1_000_000)} megapixels"
    return f"{count:,} pixels"


def _trim(number):
    return f"{number:,.1f}".removesuffix(".0")


def _sniff(data):
    """Names an allowed format from magic bytes, or raises a clear refusal."""
    for magic, name, is_image in _SIGNATURES:
        if data.startswith(magic):
            if name in ALLOWED_FORMATS:
                return name
            raise _refusal(name, is_image)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:4] == b"RIFF":  # WAVE, AVI, ...: named only when legible
        form = data[8:12].decode("ascii", "replace").strip()
        raise _refusal(f"a RIFF {form + ' ' if form.isalnum() else ''}media file", False)
    if data[4:8] == b"ftyp":
        brands = _iso_brands(data)
        if brands & _AVIF_BRANDS:
            if avif.is_sequence(data):
                raise ImageError(
                    "Animated AVIF (an image sequence) is not supported; save one frame as "
                    f"PNG or JPEG and try again. {_SUPPORTED}"
                )
            return "AVIF"
        if brands & _HEIF_BRANDS:
            if heif.is_sequence(data):
                raise ImageError(
                    "A HEIC image sequence (a burst or an animation) is not supported; save "
                    f"one photo as JPEG or PNG and try again. {_SUPPORTED}"
                )
            return "HEIF"
        raise _refusal("an MP4/QuickTime video", is_image=False)
    if b"%PDF-" in data[:1024]:  # the PDF spec lets junk precede the header
        raise _refusal("a PDF document", is_image=False)
    if data.endswith(b"TRUEVISION-XFILE.\x00"):  # TGA has only a footer
        raise _refusal("TGA", is_image=True)
    if data[:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
        raise _refusal("PPM/PNM", is_image=True)
    raise _describe_unknown(data[:_SNIFF_BYTES])


def _iso_brands(data):
    """The major and compatible brands of an ISO media file's leading `ftyp` box: an AVIF
    may name itself `mif1` (any HEIF image) first and `avif` among the others."""
    end = min(len(data), _SNIFF_BYTES, max(16, struct.unpack(">I", data[:4])[0]))
    return {data[8:12]} | {data[at : at + 4] for at in range(16, end - 3, 4)}


def _refusal(name, is_image):
    if is_image:
        return ImageError(
            f"The file's format ({name}) is not supported; convert it to PNG or JPEG "
            f"and try again. {_SUPPORTED}"
        )
    return ImageError(f"This is {name}, not an image. {_SUPPORTED}")


def _describe_unknown(head):
    text = _as_text(head)
    if text is None:
        return ImageError(
            "This file is not an image: its contents match none of the supported "
            f"formats. {_SUPPORTED}"
        )
    lowered = text.lstrip("\ufeff \t\r\n").lower()
    # HTML first: a saved web page often holds inline <svg> icons.
    if lowered.startswith(("<!doctype html", "<html")) or "<body" in lowered:
        kind = "an HTML web page"
    elif "<svg" in lowered or lowered.startswith("<!doctype svg"):
        return ImageError(
            "This looks like an SVG drawing; only raster images are supported, so "
            f"export it as PNG first. {_SUPPORTED}"
        )
    else:
        kind = "text"
    return ImageError(f"This file is not an image (it looks like {kind}). {_SUPPORTED}")


def _as_text(head):
    """Returns `head` decoded if it reads as UTF-8 text, else None."""
    if b"\x00" in head:
        return None
    text = head.decode("utf-8", errors="replace")
    # Allow one replacement per 64 chars: `head` may cut a multi-byte char.
    binary = sum(ch == "\ufffd" or (ch < " " and ch not in "\t\n\r\f") for ch in text)
    return text if binary <= len(text) // 64 else None


def _declared_size(data, kind):
    """Reads (width, height) from the header without Pillow, or None."""
    try:
        if kind == "PNG" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if kind == "GIF":
            return _gif_size(data)
        if kind == "BMP":
            return _bmp_size(data)
        if kind == "WEBP":
            return _webp_size(data)
        if kind == "JPEG":
            return _jpeg_size(data)
        if kind == "AVIF":
            return avif.declared_size(data)
        if kind == "HEIF":
            return heif.declared_size(data)
    except (struct.error, IndexError):  # header cut short: Pillow will explain
        return None
    return None


def _gif_size(data):
    """The screen grown to hold the first frame, as Pillow grows it on open."""
    width, height = struct.unpack("<HH", data[6:10])
    pos = 13
    if data[10] & 0x80:  # a global colour table follows the screen
        pos += 3 << ((data[10] & 7) + 1)
    while match := _GIF_BLOCK.search(data, pos):
        pos = match.end()
        if match.group() == b";":
            break
        if match.group() == b",":
            left, top, frame_width, frame_height = struct.unpack("<4H", data[pos : pos + 8])
            return max(width, left + frame_width), max(height, top + frame_height)
        pos += 1  # extension label, then length-prefixed sub-blocks
        while pos < len(data) and data[pos]:
            pos += data[pos] + 1
        pos += 1
    return width, height


def _bmp_size(data):
    if struct.unpack("<I", data[14:18])[0] == 12:  # OS/2 core header
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # negative height means top-down rows


def _webp_size(data):
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas, which libwebp allocates on open
        return (
            int.from_bytes(data[24:27], "little") + 1,
            int.from_bytes(data[27:30], "little") + 1,
        )
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = struct.unpack("<I", data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data):
    """Walks JPEG marker segments to the frame header that holds the size."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker in _JPEG_NO_LENGTH:
            pos += 2
        elif marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        else:
            pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return None


def _check_pixels(size, max_pixels):
    if size is None:
        return
    width, height = size
    if width * height > max_pixels:
        actual, limit = _pixel_counts(width * height, max_pixels)
        raise ImageError(
            f"The image is {width} x {height} pixels ({actual}); images above {limit} "
            "are refused to protect the server."
        )


@contextlib.contextmanager
def _pillow_errors(name):
    """Turns anything Pillow raises on hostile input into an ImageError.

    Pillow's parsers are a large surface whose failure types (OSError,
    SyntaxError, struct.error, IndexError, ...) are not a documented
    contract, so every Exception is caught; only the decoding code of this
    module runs inside.
    """
    try:
        yield
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(
            "The image declares an enormous size (a possible decompression bomb), "
            "so it was refused to protect the server."
        ) from err
    except MemoryError as err:
        raise ImageError("The image is too large to decode on this server.") from err
    except Exception as err:  # broad on purpose: see the docstring
        reason = str(err).strip() or type(err).__name__
        raise ImageError(
            f"The file is truncated or damaged: its {name} data could not be decoded "
            f"({reason[:120]})."
        ) from err


def _apply_orientation(image):
    # A broken EXIF block should not cost the user an otherwise good photo:
    # keep the stored orientation.
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # metadata only: the pixels are already loaded
        return image


def _to_rgb(image):
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        return _high_depth_to_rgb(image)
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        image.info.get("transparency") is not None
    ):
        rgba = image.convert("RGBA")  # also applies palette and tRNS keys
        background = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # CMYK is converted naively (no ICC profile), like browsers without
    # colour management; close enough for a 32 px classifier.
    return image.convert("RGB")


def _high_depth_to_rgb(image):
    # Pillow's own convert() clips these modes at 255 instead of scaling
    # (and drops an I;16 tRNS key), so scale with numpy.
    values = np.asarray(image)
    rgb = Image.fromarray(_scale_to_uint8(values, image.mode)).convert("RGB")
    key = image.info.get("transparency")
    if isinstance(key, int):
        opaque = Image.fromarray((values != key).astype(np.uint8) * 255)
        rgb = Image.composite(rgb, Image.new("RGB", rgb.size, _BACKGROUND), opaque)
    return rgb


def _scale_to_uint8(values, mode):
    if mode.startswith("I;16"):
        return _from_16bit(values)
    if values.dtype.kind == "f":
        values = _finite(values)
    lo, hi = (values.min(), values.max()) if values.size else (0, 0)
    if mode == "F" and lo >= 0 and hi <= 1:
        return np.rint(values * 255).astype(np.uint8)
    if lo >= 0 and hi <= 255:
        return np.rint(values).astype(np.uint8)
    if mode == "I" and lo >= 0 and hi <= 65535:
        return _from_16bit(values)
    return _stretch(values, float(lo), float(hi))


def _from_16bit(values):
    # v * 255 / 65535 == v / 257 exactly; +128 rounds to nearest.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _finite(values):
    finite = np.isfinite(values)
    if finite.all():
        return values
    floor = values[finite].min() if finite.any() else 0.0
    return np.where(finite, values, floor)


def _stretch(values, lo, hi):
    if hi <= lo:
        return np.clip(values, 0, 255).astype(np.uint8)
    scaled = (values.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.rint(scaled).astype(np.uint8)


def _check_size_argument(size):
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}.")
