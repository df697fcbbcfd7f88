"""Decode, validate, normalise, re-encode and hash each downloaded image.

Order matters for safety and cost: the format and pixel count are read from the header before
any pixel is decoded (decompression bombs never reach `load()`); JPEGs far larger than the
target are decoded at reduced scale (`draft`); only then are orientation, colour mode and size
normalised. The stored JPEG is encoded from bare pixels, so no EXIF, XMP, GPS or ICC data from
the original can survive in it.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import imagehash
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from pipeline.options import PassOptions
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "image"
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP"})
# Our own explicit pixel check runs first; Pillow's global bomb guard stays as a second line.
Image.MAX_IMAGE_PIXELS = 200_000_000


@dataclass(frozen=True)
class ImageConfig:
    max_side: int = 512
    min_side: int = 64
    max_pixels: int = 64_000_000
    min_stddev: float = 3.0
    jpeg_quality: int = 90

    @classmethod
    def from_options(cls, opts: PassOptions) -> ImageConfig:
        return cls(opts.max_side, opts.min_side, opts.max_pixels, opts.min_stddev, opts.jpeg_quality)


class ImageRejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


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


def _open(raw: bytes) -> Image.Image:
    if not raw:
        raise ImageRejected("empty", "zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(raw))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageRejected("too_many_pixels", str(err)[:200]) from None
    except UnidentifiedImageError:
        head = raw[:64].lstrip().lower()
        kind = "HTML" if head.startswith((b"<!doctype html", b"<html")) else "unrecognised bytes"
        raise ImageRejected("not_an_image", f"{kind} ({len(raw)} bytes)") from None


def _to_srgb(img: Image.Image) -> Image.Image:
    """RGB pixels in sRGB, whatever the source mode; alpha composited on white."""
    icc = img.info.get("icc_profile")
    if icc and img.mode in ("RGB", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to the plain conversion below
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit greyscale (PNG): map 0-65535 onto 0-255; Pillow's convert("L") would clip instead.
        values = np.asarray(img, dtype=np.uint32) // 257
        img = Image.fromarray(np.minimum(values, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L")
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    scale = max_side / longer
    return max(1, round(width * scale)), max(1, round(height * scale))


def normalise(raw: bytes, cfg: ImageConfig) -> Normalised:
    """Raw downloaded bytes -> a metadata-free sRGB JPEG at most `max_side` on its longer side.

    Raises ImageRejected with a reason for anything that should not enter the dataset.
    """
    img = _open(raw)
    fmt = img.format or "unknown"
    if fmt not in ACCEPTED_FORMATS:
        raise ImageRejected("unsupported_format", fmt)
    width, height = img.size
    if width * height > cfg.max_pixels:
        raise ImageRejected("too_many_pixels", f"{width}x{height} > {cfg.max_pixels} pixels")
    orientation = img.getexif().get(0x0112, 1)
    if fmt == "JPEG":
        # Decode at the smallest DCT scale that still covers the target: 2-8x less work.
        img.draft("RGB", (cfg.max_side, cfg.max_side))
    try:
        img.seek(0)  # first frame of an animation
        img.load()
    except (OSError, SyntaxError, ValueError) as err:
        reason = "truncated" if "truncated" in str(err).lower() else "corrupt"
        raise ImageRejected(reason, f"{type(err).__name__}: {err}"[:200]) from None
    if orientation in (5, 6, 7, 8):  # rotated by 90 degrees: the stored image is taller than wide
        width, height = height, width
    img = ImageOps.exif_transpose(img)  # applies the EXIF orientation and drops the tag
    if min(width, height) < cfg.min_side:
        raise ImageRejected("too_small", f"{width}x{height}, shorter side below {cfg.min_side}")
    rgb = _to_srgb(img)
    stddev = float(np.asarray(rgb.resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float32).std(axis=(0, 1)).max())
    if stddev < cfg.min_stddev:
        raise ImageRejected("blank", f"pixel standard deviation {stddev:.2f} < {cfg.min_stddev}")
    size = _target_size(rgb.width, rgb.height, cfg.max_side)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    # A fresh image from bare pixels: no info dict, so no EXIF/XMP/ICC/comment can be written.
    bare = Image.frombytes("RGB", rgb.size, rgb.tobytes())
    out = io.BytesIO()
    bare.save(out, "JPEG", quality=cfg.jpeg_quality, optimize=False, progressive=False, subsampling="4:2:0")
    return Normalised(
        jpeg=out.getvalue(),
        width=bare.width,
        height=bare.height,
        original_format=fmt,
        original_width=width,
        original_height=height,
        phash=str(imagehash.phash(bare)),
        dhash=str(imagehash.dhash(bare)),
    )


class _Normalise(beam.DoFn):
    def __init__(self, cfg: ImageConfig) -> None:
        self._cfg = cfg

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
