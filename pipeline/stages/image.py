"""Decode, validate, normalise, re-encode and hash each downloaded image.

Order matters for safety and cost: the format is decided from the file's signature and only the
allowed formats are ever handed to Pillow (a container such as ICO is decoded by Pillow as soon
as it is opened); the structure that costs CPU or memory before any pixel is decoded (JPEG scans,
PNG text chunks) is walked and bounded first (io/image_headers.py); the pixel count and the shorter side, both of the
source and of the image to be stored, are read from the header before any pixel is decoded
(decompression bombs never reach `load()`); JPEGs far larger than the target are decoded at
reduced scale (`draft`); only then are orientation, colour mode and size normalised. The stored
JPEG is encoded from bare pixels, so no EXIF, XMP, GPS or ICC data from the original can survive
in it.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from pipeline.io import jpeg_pixels, srgb
from pipeline.io.exif_orientation import exif_orientation
from pipeline.io.image_headers import (
    STRUCTURE_CHECKS,
    ImageRejected,
    check_icc_profile,
)
from pipeline.io.pixel_budget import process_budget

# A change here that alters the stored bytes of some source under the same options bumps it (its history is there).
from pipeline.io.storage_rule import STORAGE_RULE_VERSION as STORAGE_RULE_VERSION
from pipeline.near_dup.perceptual_hashes import phash_dhash, single_threaded_blas
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "image"
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})
# What cameras write as "MPO" (CIPA DC-007) is a JPEG followed by more JPEGs: its first image is a JPEG.
_JPEG_CONTAINERS = frozenset({"MPO"})
# EXIF orientation -> the transpose that shows the image upright, as in ImageOps.exif_transpose (which also
# writes back the EXIF it keeps: that raises on a malformed tag, and we keep no EXIF at all).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Our own explicit pixel check runs first; Pillow's global bomb guard stays as a second line.
Image.MAX_IMAGE_PIXELS = 200_000_000


@dataclass(frozen=True)
class ImageConfig:
    max_side: int = 512
    min_side: int = 64
    max_pixels: int = 64_000_000
    min_stddev: float = 3.0
    jpeg_quality: int = 90
    # A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8: libjpeg scales while it decodes, 2-8x
    # less work) whose pixels still number at least this many times the stored size on each side, so the
    # resize keeps a supersample; 0 decodes every JPEG at full size. README (Normalisation), docs/normalisation.md.
    draft_supersample: int = 2
    # The resize first reduces by an integer factor with a box filter (Pillow's `reduce`) while that leaves the
    # Lanczos step at least this factor to shrink; 1.0 makes a 2x reduction a plain 2x2 box average (3.4x
    # faster, and closer to a full Lanczos than the JPEG encoding itself: docs/normalisation.md); 0 = Lanczos
    # on all the decoded pixels.
    resize_reducing_gap: float = 1.0
    # Pixels a process decodes at once, all threads together (io/pixel_budget.py), each counted as 16 bytes, a
    # source whose pixels take more (a WebP with alpha) for more: two PNGs with alpha at --max_pixels, ~1.9 GiB;
    # larger images decode alone.
    decode_pixel_budget: int = 128_000_000


@dataclass(frozen=True)
class Normalised:
    jpeg: bytes
    width: int
    height: int
    original_format: str
    original_width: int
    original_height: int
    phash: str
    dhash: str


def _signature_format(raw: bytes) -> str | None:
    """The format Pillow's own signature checks name for these bytes; nothing is parsed or decoded.

    Formats Pillow can only recognise by trying to open them (TGA and a few others) get None.
    """
    Image.init()
    prefix = raw[:16]  # what Image.open hands the checks
    for fmt in Image.ID:
        accept = Image.OPEN[fmt][1]
        try:
            if accept is not None and accept(prefix):
                return fmt
        except (SyntaxError, IndexError, TypeError, struct.error):  # a check reading past a short prefix:
            continue  # what Image.open catches around the same calls (b"\xff\xd8" raised struct.error here)
    return None


def _not_an_image(raw: bytes) -> ImageRejected:
    head = raw[:64].lstrip().lower()
    kind = "HTML" if head.startswith((b"<!doctype html", b"<html")) else "unrecognised bytes"
    return ImageRejected("not_an_image", f"{kind} ({len(raw)} bytes)")


def _unreadable(err: Exception) -> ImageRejected:
    """What Pillow raises for a file it cannot parse or decode, as a reason."""
    reason = "truncated" if "truncated" in str(err).lower() else "corrupt"
    return ImageRejected(reason, f"{type(err).__name__}: {err}"[:200])


def _open(raw: bytes) -> ImageFile.ImageFile:
    if not raw:
        raise ImageRejected("empty", "zero bytes")
    fmt = _signature_format(raw)
    if fmt is None:
        raise _not_an_image(raw)
    if fmt not in ACCEPTED_FORMATS:
        raise ImageRejected("unsupported_format", fmt)
    structure_check = STRUCTURE_CHECKS.get(fmt)
    if structure_check is not None:
        structure_check(raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(raw), formats=[fmt])  # no other plugin gets to parse hostile bytes
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageRejected("too_many_pixels", str(err)[:200]) from None
    except UnidentifiedImageError:  # an OSError too: first
        # The signature named the format: Pillow refusing its header is a broken file of that format, not bytes of
        # no image (an MPO index claiming 2^32 images, a JPEG header cut short were "unrecognised bytes").
        raise ImageRejected("corrupt", f"a {fmt} header Pillow cannot read ({len(raw)} bytes)") from None
    except (OSError, ValueError) as err:  # a header cut short, a WebP libwebp refuses, a malformed MPO index
        raise _unreadable(err) from None


def _whitened(img: Image.Image, pixels: np.ndarray, transparent: np.ndarray) -> Image.Image:
    """`pixels` (RGB, `img`'s, a copy this may change) with the `transparent` ones white, as compositing on white
    makes them, given `img`'s info without its colour key (its ICC profile then converts the rest)."""
    pixels[transparent] = 255
    keyed = Image.fromarray(pixels, "RGB")
    keyed.info = {name: value for name, value in img.info.items() if name != "transparency"}
    return keyed


def _key_whitened(img: Image.Image, key: tuple) -> Image.Image:
    """The 8-bit RGB image `img` with the pixels equal to its tRNS colour `key` made white (a key sample beyond 255
    names no pixel), before its ICC profile converts the rest (the profile path returned first, and the key was
    ignored)."""
    pixels = np.array(img)
    transparent = np.ones(pixels.shape[:2], dtype=bool)
    for channel, value in enumerate(key):
        transparent &= pixels[..., channel] == value if type(value) is int and 0 <= value <= 255 else False
    return _whitened(img, pixels, transparent)


def _profiled(img: Image.Image, icc: bytes) -> Image.Image | None:
    """The "RGB", "CMYK" or "L" image `img` converted from its embedded profile `icc` to sRGB; None for a profile
    LittleCMS cannot use for these pixels (broken, or of another colour space), which leaves them as they are."""
    check_icc_profile(icc)
    try:  # LittleCMS's result; built once per profile, and exact tables for the common sRGB ones (io/srgb.py)
        return srgb.to_srgb(img, icc)
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return None


def _to_srgb(img: Image.Image) -> Image.Image:
    """RGB pixels in sRGB, whatever the source mode; alpha composited on white."""
    icc = img.info.get("icc_profile")
    key = img.info.get("transparency")
    if icc and img.mode == "RGB" and isinstance(key, tuple) and len(key) == 3:
        img = _key_whitened(img, key)
    # A grey image's colour key makes it RGBA first (below): converted here, the key colour was stored as it is.
    if icc and (img.mode in ("RGB", "CMYK") or (img.mode == "L" and "transparency" not in img.info)):
        converted = _profiled(img, icc)
        if converted is not None:
            return converted
        icc = None  # a broken profile: the plain conversion below
    # Colour with alpha, or a palette: its profile describes those colours too (a grey image's would be a grey one).
    coloured = bool(icc) and img.mode in ("RGBA", "RGBa", "P", "PA")
    # Grey with alpha, or with a colour key: composited on white in its own greys (equal R, G and B), then converted
    # by its grey profile as a grey image is. Its profile was ignored (a linear grey's mid-tones stored far too dark).
    grey_alpha = bool(icc) and (img.mode in ("LA", "La") or (
        (img.mode == "L" or img.mode == "I" or img.mode.startswith("I;16")) and "transparency" in img.info))
    # A 16-bit grey: its profile converts it once mapped onto 8 bits (below).
    grey = bool(icc) and (img.mode.startswith("I;16") or img.mode == "I") and "transparency" not in img.info
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit greyscale (PNG): map 0-65535 onto 0-255; Pillow's convert("L") would clip instead.
        key = img.info.get("transparency")
        raw = np.asarray(img, dtype=np.uint32)
        img = Image.fromarray(np.minimum(raw // 257, 255).astype(np.uint8), "L")
        if isinstance(key, int) and not isinstance(key, bool):  # a tRNS colour key, on the 16-bit values
            img = Image.merge("LA", (img, Image.fromarray(np.where(raw == key, 0, 255).astype(np.uint8), "L")))
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L")
    if img.mode in ("P", "PA") or (img.mode in ("1", "L", "RGB") and "transparency" in img.info):
        # A palette's transparent entries, or a PNG's tRNS colour key on a 1-bit, grey or RGB image: to alpha,
        # composited below like any alpha (the key colour itself is no colour of the photo).
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        # An RGBA image as it is: convert() would copy it (256 MB at 64 MP); alpha_composite changes neither input.
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
        del background  # before the profile's conversion (within the peak the budget counts)
        # Composited on white in the image's own colours, then converted: a PNG or WebP with alpha, or a palette PNG,
        # with an Adobe RGB or Display P3 profile was stored in those colours read as sRGB (the profile ignored).
        converted = None
        if coloured or grey_alpha:
            assert icc is not None  # for the type checker: each is true only with a profile
            converted = _profiled(rgb, icc) if coloured else _profiled(rgb.convert("L"), icc)
        return rgb if converted is None else converted
    if grey:
        assert icc is not None  # for the type checker: true only with a profile
        converted = _profiled(img, icc)
        if converted is not None:
            return converted
    # An RGB image as it is: convert() would copy every decoded pixel (~1 ms for 1024 px in a job). Nothing
    # downstream changes it in place, and its info (EXIF, comments) never reaches the stored JPEG.
    return img if img.mode == "RGB" else img.convert("RGB")


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


_DCT_SCALES = (8, 4, 2)  # what Pillow's `draft` asks libjpeg for, largest first


def _draft_scale(width: int, height: int, cfg: ImageConfig) -> int:
    """The largest DCT scale denominator at which a `width` x `height` JPEG still decodes to at least
    `draft_supersample` times its stored size on both sides; 1 when none does."""
    if cfg.draft_supersample <= 0:
        return 1
    stored_width, stored_height = _target_size(width, height, cfg.max_side)
    for scale in _DCT_SCALES:
        # libjpeg rounds a scaled side up
        if -(-width // scale) >= cfg.draft_supersample * stored_width and \
                -(-height // scale) >= cfg.draft_supersample * stored_height:
            return scale
    return 1


def decoded(img: Image.Image, raw: bytes, scale: int) -> Image.Image:
    """The opened image `img` (of the bytes `raw`, drafted at `scale`) with its pixels decoded. A plain RGB JPEG
    at full size is decoded straight into Pillow's layout (io/jpeg_pixels.py; ~0.5 ms less per 1024 px photo in
    `normalise`) and given the opened image's info (its ICC profile); whatever that does not decode exactly as
    Pillow would, Pillow decodes (`load()`, which raises for a file it cannot decode)."""
    mapped = jpeg_pixels.rgb(raw, img.size) if img.format == "JPEG" and img.mode == "RGB" and scale == 1 else None
    if mapped is None:
        img.load()
        return img
    mapped.info = img.info
    return mapped


def _check_min_side(source: tuple[int, int], decoded: tuple[int, int], cfg: ImageConfig) -> None:
    """Both the source and the image we would store must reach `min_side` on their shorter side: a
    64 x 1,000,000 strip passes on its source size but would be stored as 1 x 512. `decoded` is the
    size the stored size is computed from below (the source's, also for a drafted JPEG)."""
    if min(source) < cfg.min_side:
        raise ImageRejected("too_small", f"{source[0]}x{source[1]}, shorter side below {cfg.min_side}")
    stored = _target_size(*decoded, cfg.max_side)
    if min(stored) < cfg.min_side:
        raise ImageRejected("too_small", f"{source[0]}x{source[1]} would be stored as {stored[0]}x{stored[1]}, "
                                         f"shorter side below {cfg.min_side}")


def _resize(img: Image.Image, size: tuple[int, int], reducing_gap: float) -> Image.Image:
    """`img` at `size`: Lanczos, after a box reduction by the largest integer factor that leaves the Lanczos
    step at least `reducing_gap` to shrink (Pillow's rule; 0 = Lanczos on all the pixels).

    Pillow picks that factor for each side on its own, and the stored size is rounded: a 1024 x 683 source
    stored at 512 x 342 is 2.000x on one side and 1.997x on the other, so Pillow reduced 2x1 and Lanczos-
    filtered the 683 rows (3.5 ms, a third of `normalise`). Where the longer side shrinks by exactly an
    integer factor, the image is reduced by it on both sides, as the rule means, and the box's last partial
    row or column kept or cut to reach the rounded size: every stored pixel a box average, no Lanczos."""
    if size == img.size:
        return img
    longer, stored_longer = max(img.size), max(size)
    factor = longer // stored_longer
    if reducing_gap and factor >= 2 and longer == factor * stored_longer and int(factor / reducing_gap) == factor:
        reduced = img.reduce(factor)
        # ceil(side / factor) on each side: the rounded size is that or one less.
        if all(0 <= have - want <= 1 for have, want in zip(reduced.size, size, strict=True)):
            return reduced if reduced.size == size else reduced.crop((0, 0, *size))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=reducing_gap or None)


_EXACT_STDDEV_PIXELS = 10_000_000  # n^2 * 255^2 < 2^63
_EIGHT_BIT_MODES = frozenset({"L", "P", "LA", "La", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_VALUES = np.arange(256, dtype=np.int64)
_SQUARES = _VALUES * _VALUES


def channel_stddev(img: Image.Image) -> float:
    """The largest standard deviation of any channel's 8-bit values, computed exactly: integer sums of the
    values and their squares (n * sum(x^2) - sum(x)^2 is the variance times n^2, exact in int64 up to ~10^7
    pixels; the thumbnail has 4,096), then one correctly rounded square root. The same figure on every CPU
    and numpy version, where the float32 `std` it replaces rounded its sums (off by up to ~1e-4 near 3: only
    an image that close to --min_stddev can be judged otherwise), and a fraction of its cost. The sums come
    from Pillow's per-band histogram (in C) weighed by each value and its square: the same integers as
    summing the pixels, in ~30 instead of ~110 us for the thumbnail. 8-bit modes only: wider values would
    overflow the bound."""
    if img.width * img.height > _EXACT_STDDEV_PIXELS:
        raise ValueError(f"{img.width}x{img.height}: too many pixels for exact int64 sums")
    if img.mode not in _EIGHT_BIT_MODES:  # (Image.getmodetype calls "I;16" "L" too)
        raise ValueError(f"mode {img.mode}: 8-bit channels only")
    counts = np.asarray(img.histogram(), dtype=np.int64).reshape(len(img.getbands()), 256)
    count = img.width * img.height
    spread = count * (counts @ _SQUARES) - (counts @ _VALUES) ** 2
    return math.sqrt(int(spread.max())) / count


def normalise(raw: bytes, cfg: ImageConfig) -> Normalised:
    """Raw downloaded bytes -> a metadata-free sRGB JPEG at most `max_side` on its longer side.

    Raises ImageRejected with a reason for anything that should not enter the dataset.
    """
    img = _open(raw)
    fmt = "JPEG" if img.format in _JPEG_CONTAINERS else img.format or "unknown"
    if fmt not in ACCEPTED_FORMATS:
        raise ImageRejected("unsupported_format", fmt)
    width, height = img.size
    if width * height > cfg.max_pixels:
        raise ImageRejected("too_many_pixels", f"{width}x{height} > {cfg.max_pixels} pixels")
    # libjpeg cannot scale a lossless frame: it decodes one at full size whatever Pillow asked for, into rows Pillow
    # made for the drafted size (a 3000 x 3000 lossless JPEG drafted to 1/2 overran them: the process died, SIGSEGV).
    lossless = fmt == "JPEG" and jpeg_pixels.frame_type(raw) in jpeg_pixels.LOSSLESS_FRAMES
    scale = _draft_scale(width, height, cfg) if fmt == "JPEG" and not lossless else 1
    if scale > 1:
        # Pillow picks the largest power of two <= min(width // w, height // h): exactly `scale` here.
        img.draft("RGB", (width // scale, height // scale))
    # Before decoding: a photo too small to store is refused without decoding its pixels.
    _check_min_side((width, height), (width, height) if scale > 1 else img.size, cfg)
    # The pixels to decode (drafted: img.size is the reduced size), counted against the process's budget until
    # the stored JPEG is made (io/pixel_budget.py), weighted by what they take at the peak.
    with process_budget(cfg.decode_pixel_budget).hold(budget_pixels(img, raw)):
        return _stored(img, raw, fmt, (width, height), scale, cfg)


# The budget counts a pixel as the 16 bytes a PNG with alpha takes at the peak of `normalise` (decoded 4, white
# background 4, composite 4, RGB 4: 549 MiB for 36 MP), as do an animated PNG and a WebP without alpha; an RGB or
# grey PNG 4-5, a 16-bit grey one 14. Sources whose pixels take more count for more, by the peak measured (VmHWM
# over `normalise` in a fresh process, 36 MP):
_BUDGET_PIXEL_BYTES = 16
_PEAK_PIXEL_BYTES: dict[tuple[str | None, str], int] = {
    # libwebp's animation decoder, which Pillow uses for every WebP, keeps two RGBA canvases (the frame and the
    # one before it, for disposal) beside Pillow's copy of the frame and its image, all alive through the
    # composite on white: 823 MiB, animated or not, one frame or ten (64 MP: ~1.4 GiB).
    ("WEBP", "RGBA"): 24,
    ("PNG", "LA"): 20,  # made RGBA to be composited: 686 MiB
    # Every palette image is made RGBA to be composited (transparent entries or not): 1 byte more, 583 MiB.
    ("PNG", "P"): 17,
    ("GIF", "P"): 17,
}
_KEYED_PIXEL_BYTES = {
    "I;16": 26,  # a 16-bit grey PNG's colour key: the 32-bit values, a mask, LA, then RGBA: 892 MiB
    "RGB": 17,  # a 16-bit RGB PNG's colour key, matched on a second decode (_keyed_out_exactly): 584 MiB
}
# An 8-bit PNG's colour key (tRNS): the image is made RGBA to be composited, beside its decoded pixels.
_EIGHT_BIT_KEYED_PIXEL_BYTES = {
    "RGB": 20,  # 686 MiB
    "L": 17,  # 583 MiB
}


def budget_pixels(img: ImageFile.ImageFile, raw: bytes = b"") -> int:
    """What the opened (maybe drafted) `img`, of the bytes `raw`, takes from the pixel budget: its pixels, times the
    bytes one takes at the peak over the budget's 16; for a JPEG whose coefficients libjpeg holds whole (progressive,
    or components in scans of their own: 6 bytes a source pixel for 4:4:4 at any scale), those beside the pixels it
    decodes, where that is more (a 64 MP file drafted to 1000 x 1000 took 385 MiB, counted as 16)."""
    pixels = img.size[0] * img.size[1]
    peak = _PEAK_PIXEL_BYTES.get((img.format, img.mode), _BUDGET_PIXEL_BYTES)
    if img.format == "PNG" and "transparency" in img.info:
        keyed = img.mode == "I;16" or _rgb16_colour_key(img) is not None
        peak = _KEYED_PIXEL_BYTES[img.mode] if keyed else _EIGHT_BIT_KEYED_PIXEL_BYTES.get(img.mode, peak)
    held = -(-pixels * peak // _BUDGET_PIXEL_BYTES)
    if img.format in ("JPEG", *_JPEG_CONTAINERS) and raw:
        held = max(held, -(-(jpeg_pixels.coefficient_bytes(raw) + 4 * pixels) // _BUDGET_PIXEL_BYTES))
    return held


def _rgb16_colour_key(opened: ImageFile.ImageFile) -> tuple[int, int, int] | None:
    """The tRNS colour key of a 16-bit RGB PNG, opened and not yet decoded; None for any other image."""
    key = opened.info.get("transparency")
    rawmodes = {tile.args if isinstance(tile.args, str) else (tile.args or ("",))[0] for tile in opened.tile or ()}
    if opened.format != "PNG" or opened.mode != "RGB" or rawmodes != {"RGB;16B"}:
        return None
    if isinstance(key, tuple) and len(key) == 3 and all(type(v) is int and 0 <= v <= 0xFFFF for v in key):
        return key
    return None


def _keyed_out_exactly(img: Image.Image, raw: bytes, key: tuple[int, int, int]) -> Image.Image:
    """The decoded 16-bit RGB PNG `img` (Pillow keeps each sample's high byte) with the pixels whose 16-bit
    samples equal `key` made white, as compositing a transparent pixel on white makes it, and no others.
    Pillow compares its 8-bit pixels with the key's low bytes instead: a black key (0, 0, 0) turned every pixel
    below 1/256 of full scale white (shadows speckled white) and a key of (100, 100, 100) made nothing
    transparent. The low bytes come from a second decode of the same data (Pillow's unpacker for the other byte
    order takes the other byte of each sample), for these rare files only: with the arrays compared, a 36 MP file
    took 874 MiB against 443 without a key (~12 bytes a pixel more; Pillow's own RGBA path took 976)."""
    low = Image.open(io.BytesIO(raw), formats=["PNG"])
    low.tile = [tile._replace(args="RGB;16L") for tile in low.tile]
    low.load()
    high_bytes, low_bytes = np.asarray(img), np.asarray(low)
    transparent = np.ones(high_bytes.shape[:2], dtype=bool)
    for channel, value in enumerate(key):
        transparent &= (high_bytes[..., channel] == value >> 8) & (low_bytes[..., channel] == value & 0xFF)
    del low, low_bytes
    return _whitened(img, high_bytes.copy(), transparent)


def _check_entropy_coding(raw: bytes) -> None:
    """Refuses a JPEG whose data may not be coded as its frame header says (arithmetic-coded, or Huffman-coded with
    no table of its own) when libjpeg does not decode it cleanly: it only warns, Pillow ignores the warning and
    returned noise (a baseline file relabelled SOF9, or an arithmetic one relabelled SOF0, was stored as a field of
    noise). A genuine arithmetic-coded file, or one relying on the standard Huffman tables, passes
    (io/jpeg_pixels.py)."""
    fault = jpeg_pixels.coding_fault(raw)
    if fault is not None:
        raise ImageRejected("corrupt", f"data libjpeg does not decode cleanly as its frame header says: {fault}"[:200])


def _stored(opened: ImageFile.ImageFile, raw: bytes, fmt: str, source: tuple[int, int], scale: int,
            cfg: ImageConfig) -> Normalised:
    """The opened image (header checked) decoded, turned upright, in sRGB, resized, checked and stored."""
    img: Image.Image = opened
    width, height = source
    if fmt == "JPEG":
        _check_entropy_coding(raw)
    try:
        img.seek(0)  # first frame of an animation
        rgb16_key = _rgb16_colour_key(opened)  # img is still `opened`
        img = decoded(img, raw, scale)
        if rgb16_key is not None:
            img = _keyed_out_exactly(img, raw, rgb16_key)
        orientation = exif_orientation(opened.info)  # after decoding: a PNG's eXIf may follow its pixels
    # struct.error and IndexError: Pillow runs the handlers of chunks after a PNG's IDAT while loading, and a tRNS,
    # gAMA, cHRM or iCCP chunk cut short there raises them (before IDAT, Image.open turns the same into an error)
    except (OSError, SyntaxError, ValueError, struct.error, IndexError) as err:
        raise _unreadable(err) from None
    # Orientation is an EXIF SHORT; a malformed tag may hold any type. Anything but a plain int is ignored,
    # for the size and the pixels alike: a RATIONAL 6/1 or DOUBLE 6.0 equals 6, and once swapped the
    # size without the pixel turn, so a drafted landscape was squashed into a portrait box.
    orientation = orientation if type(orientation) is int else 1
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees: the stored image is taller than wide
        width, height = height, width
    rgb = _to_srgb(img)
    if orientation in _UPRIGHT:
        # Turned after the conversion, which maps each pixel on its own (the same pixels either way): turned before,
        # the turned copy was held beside the decoded pixels through the conversion's own copies, 4 bytes a pixel over
        # what the budget counts (a 36 MP PNG with alpha: 688 MiB at the peak, 20 bytes a pixel, counted as 16).
        rgb = rgb.transpose(_UPRIGHT[orientation])
    # A drafted JPEG's stored size follows from its full size, not the drafted one (libjpeg rounds a scaled
    # side up: 1229 px at 1/2 is 615, not 614.5), so decoding at reduced scale never changes the stored size.
    size = _target_size(width, height, cfg.max_side) if scale > 1 else _target_size(rgb.width, rgb.height,
                                                                                   cfg.max_side)
    if min(size) < cfg.min_side:  # the header promised otherwise (checked above); the pixels decide
        raise ImageRejected("too_small", f"{width}x{height} would be stored as {size[0]}x{size[1]}")
    rgb = _resize(rgb, size, cfg.resize_reducing_gap)
    # Checked on the pixels we would store (not the decoded ones, up to 4x more to filter): blank is what the
    # dataset would hold. 64 x 64 bilinear after an integer box reduction to at least twice that size: a third
    # cheaper than the plain bilinear, and a blank image is as blank either way.
    stddev = channel_stddev(rgb.resize((64, 64), Image.Resampling.BILINEAR, reducing_gap=2.0))
    if stddev < cfg.min_stddev:
        raise ImageRejected("blank", f"pixel standard deviation {stddev:.2f} < {cfg.min_stddev}")
    # The pixels with an empty info dict: Pillow's JPEG writer takes nothing else from the image (EXIF, XMP
    # and ICC only from save()'s own arguments, a comment from info), so nothing of the source can be
    # written. An image the steps above made (resize, transpose, conversion) is a plain Image holding only
    # pixels, mode and a copy of the info, so it is used as it is; only the opened file itself, stored at
    # its own size, is copied first (0.1 ms per image saved; the same bytes).
    bare = rgb.copy() if rgb is opened else rgb
    bare.info = {}
    out = io.BytesIO()
    bare.save(out, "JPEG", quality=cfg.jpeg_quality, optimize=False, progressive=False, subsampling="4:2:0")
    # imagehash's pHash and dHash of the stored pixels, bit for bit, from one greyscale conversion and one
    # product for both hashes' horizontal resize passes (near_dup/perceptual_hashes.py): ~2.3 -> ~1.5 ms
    # per 512 px image in the profile.
    phash, dhash = phash_dhash(bare.convert("L"))
    return Normalised(
        jpeg=out.getvalue(),
        width=bare.width,
        height=bare.height,
        original_format=fmt,
        original_width=width,
        original_height=height,
        phash=phash,
        dhash=dhash,
    )


class _Normalise(beam.DoFn):
    def __init__(self, cfg: ImageConfig) -> None:
        self._cfg = cfg

    def setup(self) -> None:
        single_threaded_blas()

    def process(self, photo: Photo) -> Iterator:
        try:
            result = normalise(photo.raw, self._cfg)
        except ImageRejected as rejected:
            yield reject(Rejection.of(photo, STAGE, rejected.reason, rejected.detail))
            return
        yield photo.replace(
            raw=b"",  # the original bytes are not needed past this point: keep shuffles small
            download_sha256=hashlib.sha256(photo.raw).hexdigest(),
            image=result.jpeg,
            sha256=hashlib.sha256(result.jpeg).hexdigest(),
            width=result.width,
            height=result.height,
            original_format=result.original_format,
            original_width=result.original_width,
            original_height=result.original_height,
            phash=result.phash,
            dhash=result.dhash,
        )


class NormaliseImages(beam.PTransform):
    """PCollection[Photo] with `raw` -> (PCollection[Photo] with `image`, sizes and hashes,
    PCollection[Rejection])."""

    def __init__(self, cfg: ImageConfig) -> None:
        super().__init__()
        self._cfg = cfg

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_stage(photos, STAGE, _Normalise(self._cfg))
