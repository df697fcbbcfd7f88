"""Pixels with an embedded ICC profile converted to sRGB: LittleCMS's own result, at a fraction of its CPU for the
profiles photos carry most.

`ImageCms.profileToProfile` builds a LittleCMS transform for every photo (~6 ms: parsing the profile, linking it to
sRGB, precalculating) and applies it to every decoded pixel (~25-30 ms for a 1024 px photo, before the resize). A
quarter of the labelled package JPEGs carry a profile, and most of those one of a few sRGB profiles (312 of 583
"sRGB IEC61966-2.1"), which map almost every colour onto itself: LittleCMS's built-in sRGB and the GIMP, Nikon and
Canon sRGB profiles map every one of the 2^24 8-bit colours onto itself, "sRGB IEC61966-2.1" all but 0.4% of them
(those it moves by one level). So each profile's transform is built once per process, and once a
profile has been seen `_EXHAUSTIVE_AFTER` times its transform is applied once to all 2^24 colours (~1-1.7 s, once
per profile and process): if it changes at most `_MAX_CHANGED` of them, the colours it changes and what it makes of
them are kept, and a photo's pixels are corrected from that table (~3-5 ms for a 1024 px photo) instead of going
through LittleCMS, with exactly LittleCMS's result, pixel for pixel, since a transform maps each colour on its own.
A profile seen fewer times, or that changes more colours (Adobe RGB, Display P3: nearly all), goes through LittleCMS
as before. Profiles come from outside: tables are kept for a bounded number of them (a dropped one is rebuilt if its
profile stays in use), transforms for a bounded number more, keyed by the profile's sha256 (no profile bytes are
kept); a stream of distinct hostile profiles costs what LittleCMS costs, and the worst a crafted stream can do, a
new table-sized profile every `_EXHAUSTIVE_AFTER` photos, about doubles it (the pass: ~1.5 s of CPU and ~40 MB at
its peak, per thread running it).
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageCms

_TRANSFORMS_KEPT = 32
_TABLES_KEPT = 8  # ~3 MB each at most: a 2 MB bitmap, up to 1 MB of colours and results
_EXHAUSTIVE_AFTER = 64  # photos with the same profile before its exhaustive pass
_MAX_CHANGED = 1 << 17  # 0.8% of the colours; "sRGB IEC61966-2.1" changes 66,560
_COLOURS = 1 << 24
_BLOCK = 1 << 20  # colours per LittleCMS call in the exhaustive pass (a 1024 x 1024 image)
_BAND_PIXELS = 1 << 20  # pixels per band of rows in a correction
_RGB_MASK = np.uint32(0xFFFFFF)


@dataclass
class _Profile:
    transform: ImageCms.ImageCmsTransform
    uses: int = 0
    # None until the exhaustive pass; then the correction table, or False where LittleCMS must do the work.
    table: _Changes | bool | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class _Changes:
    """The colours a transform changes (as Pillow's RGBX words masked to 24 bits: R | G << 8 | B << 16), and
    what it makes of each (the same form), sorted by colour, with a bitmap of them for the lookup."""
    changed: np.ndarray  # packed bits, one per colour
    colours: np.ndarray  # uint32, sorted
    results: np.ndarray  # uint32


_profiles: OrderedDict[tuple[bytes, str], _Profile] = OrderedDict()
_profiles_lock = threading.Lock()


def to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """`img` ("RGB", "CMYK" or "L") converted from the profile `icc` to sRGB, as `ImageCms.profileToProfile(img, icc,
    sRGB, outputMode="RGB")` converts it, pixel for pixel; possibly `img` itself, where the profile changes
    none of its colours. Raises ImageCms.PyCMSError (or OSError, TypeError, ValueError) as building the
    transform raises for a broken profile."""
    profile = _profile(icc, img.mode)
    table = profile.table
    if isinstance(table, _Changes):
        return _corrected(img, table)
    if table is None and img.mode == "RGB":
        with profile.lock:
            profile.uses += 1
            due = profile.uses == _EXHAUSTIVE_AFTER
        if due:
            table = profile.table = _changes(profile.transform)
            _bound_tables()  # may drop this very table for others: `table` stays valid for this photo
            if isinstance(table, _Changes):
                return _corrected(img, table)
    return profile.transform.apply(img)


def _profile(icc: bytes, mode: str) -> _Profile:
    """The cached entry for a profile and mode; its transform is the one `ImageCms.profileToProfile` builds for an
    image of `mode` (the same intent and flags)."""
    key = (hashlib.sha256(icc).digest(), mode)
    with _profiles_lock:
        found = _profiles.get(key)
        if found is not None:
            _profiles.move_to_end(key)
            return found
    built = _Profile(ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                             ImageCms.createProfile("sRGB"), mode, "RGB"))
    with _profiles_lock:
        found = _profiles.setdefault(key, built)
        while len(_profiles) > _TRANSFORMS_KEPT:
            _profiles.popitem(last=False)
    return found


def _bound_tables() -> None:
    """Drops the tables of the least recently used profiles beyond _TABLES_KEPT: they go back to LittleCMS and
    start counting again, so a profile still in use gets its table back after _EXHAUSTIVE_AFTER more photos."""
    with _profiles_lock:
        with_tables = [profile for profile in reversed(_profiles.values()) if isinstance(profile.table, _Changes)]
        for profile in with_tables[_TABLES_KEPT:]:
            with profile.lock:
                profile.table, profile.uses = None, 0


def _words(img: Image.Image) -> np.ndarray:
    """An "RGB" image's pixels as Pillow stores them, one little-endian word each (R | G << 8 | B << 16 | X << 24)."""
    return np.frombuffer(img.tobytes("raw", "RGBX"), dtype="<u4").reshape(img.height, img.width)


def _changes(transform: ImageCms.ImageCmsTransform) -> _Changes | bool:
    """The colours `transform` changes and their results, from one pass over all 2^24 colours; False if it
    changes more than _MAX_CHANGED of them."""
    colours, results = [], []
    count = 0
    for start in range(0, _COLOURS, _BLOCK):
        block = np.arange(start, start + _BLOCK, dtype="<u4")
        source = Image.frombuffer("RGBX", (1024, _BLOCK // 1024), (block | np.uint32(0xFF000000)).tobytes(),
                                  "raw", "RGBX", 0, 1).convert("RGB")
        out = _words(transform.apply(source)).ravel() & _RGB_MASK
        moved = np.flatnonzero(out != block)
        count += moved.size
        if count > _MAX_CHANGED:
            return False
        colours.append(block[moved])
        results.append(out[moved])
    colours_all = np.concatenate(colours)
    changed = np.zeros(_COLOURS, dtype=bool)
    changed[colours_all] = True
    return _Changes(np.packbits(changed, bitorder="little"), colours_all, np.concatenate(results))


def _corrected(img: Image.Image, table: _Changes) -> Image.Image:
    """`img` with every pixel of a changed colour replaced by the transform's result for it; `img` itself if
    none is. In bands of rows (~1 M pixels), so that the lookup's arrays stay ~20 MB whatever the image's size
    (the whole 64 MP image at once took ~1.1 GB more than LittleCMS's own output)."""
    if not table.colours.size:  # the transform is the identity on every colour
        return img
    out = None
    rows = max(1, _BAND_PIXELS // img.width)
    for top in range(0, img.height, rows):
        box = (0, top, img.width, min(top + rows, img.height))
        words = _words(img.crop(box))
        colours = words & _RGB_MASK
        where = ((table.changed[colours >> 3] >> (colours & 7).astype(np.uint8)) & 1).astype(bool)
        if not where.any():
            continue
        words = words.copy()
        words[where] = table.results[np.searchsorted(table.colours, colours[where])] | np.uint32(0xFF000000)
        if out is None:
            out = img.copy()
        out.paste(Image.frombytes("RGB", (box[2], box[3] - top), words.tobytes(), "raw", "RGBX"), box)
    return img if out is None else out
