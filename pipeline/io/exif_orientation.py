"""The EXIF orientation of an opened image, read as Pillow's `Image.getexif()` reads it, without reading every tag.

Pillow reads every tag's value, once per tag, and an IFD of N tags pointing at one large value cost N times its size
(a 1.1 MB PNG: 964 MiB); here one tag of the first IFD is read, bounded by the block's size.
"""

from __future__ import annotations

import enum
import re
import struct
from typing import Any, Literal

_XMP_ORIENTATION = re.compile(r'tiff:Orientation(="|>)([0-9])')
_XMP_ORIENTATION_BYTES = re.compile(rb'tiff:Orientation(="|>)([0-9])')
# EXIF value types Pillow reads as ints (SHORT, LONG, SBYTE, SSHORT, SLONG, IFD, LONG8; a BYTE is bytes); each type's
# width. Types it does not know (SLONG8, IFD8) it skips.
_INT_TYPES = {3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 13: "I", 16: "Q"}
_TYPE_WIDTHS = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8}


def exif_orientation(info: dict[str | tuple[int, int], Any]) -> int | None:  # an image's `info`, as Pillow types it
    """The EXIF orientation of an opened image from its `info`, where Image.getexif() finds it (the EXIF block, a
    PNG's "Raw profile type exif" text, else XMP's tiff:Orientation); None when there is none or it is no plain
    integer. Read here, one tag of the first IFD, not by getexif(): Pillow reads every tag's value, once per tag,
    and an IFD of N tags pointing at one large value cost N times its size (a 1.1 MB PNG: 964 MiB)."""
    block = info.get("exif")
    if block is None and isinstance(info.get("Raw profile type exif"), str):
        try:
            block = bytes.fromhex("".join(info["Raw profile type exif"].split("\n")[3:]))
        except ValueError:
            block = None
    if isinstance(block, bytes):
        while block.startswith(b"Exif\x00\x00"):
            block = block[6:]
        found = _ifd0_orientation(block)
        if found is not _Marker.ABSENT:
            return found
    for key in ("XML:com.adobe.xmp", "xmp"):
        xmp = info.get(key)
        # Each searched by the pattern of its own type: a PNG text chunk named "xmp" comes as str where JPEG's and
        # WebP's XMP under that key come as bytes, and a bytes pattern raised TypeError searching it.
        if isinstance(xmp, str) and xmp:
            match = _XMP_ORIENTATION.search(xmp)
            return int(match[2]) if match else None
        if isinstance(xmp, bytes) and xmp:
            in_bytes = _XMP_ORIENTATION_BYTES.search(xmp)
            return int(in_bytes[2]) if in_bytes else None
    return None


class _Marker(enum.Enum):
    ABSENT = enum.auto()
    CUT_SHORT = enum.auto()


_ABSENT: Literal[_Marker.ABSENT] = _Marker.ABSENT
_CUT_SHORT: Literal[_Marker.CUT_SHORT] = _Marker.CUT_SHORT


def _ifd0_orientation(tiff: bytes) -> int | Literal[_Marker.ABSENT] | None:
    """Tag 0x0112 of a TIFF header's first IFD: its int, None for another type or count, `_ABSENT` if not there
    (or the header is unreadable). 65,535 entries at most: ~14 ms."""
    # Pillow's TIFF prefixes: the byte order from the first two bytes, 42 in either order (BigTIFF's 43 it
    # cannot read in an EXIF block: it raised, and the photo was rejected as corrupt; here the block is ignored).
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or tiff[2:4] not in (b"*\x00", b"\x00*") or len(tiff) < 8:
        return _ABSENT
    (offset,) = struct.unpack(order + "I", tiff[4:8])
    if offset + 2 > len(tiff):
        return _ABSENT
    (count,) = struct.unpack(order + "H", tiff[offset:offset + 2])
    found: int | Literal[_Marker.ABSENT] | None = _ABSENT
    for entry in range(offset + 2, min(offset + 2 + 12 * count, len(tiff) - 11), 12):
        tag, kind, values = struct.unpack(order + "HHI", tiff[entry:entry + 8])
        # Pillow reads every entry's values, and one whose values lie past the block's end, of any tag, ends its read
        # of the IFD: an orientation after it is none (checked for the orientation alone, one after such an entry of
        # another tag turned a photo Pillow reads as unturned).
        at = _values_at(tiff, order, entry, kind, values)
        if at is _CUT_SHORT:
            break
        if tag == 0x0112 and values and isinstance(at, int):  # the last of several, as Pillow reads them; one of no
            code = _INT_TYPES.get(kind)  # values is none, one of a type Pillow does not know is skipped (`_ABSENT`)
            found = struct.unpack_from(order + code, tiff, at)[0] if code else None
    return found


def _values_at(tiff: bytes, order: str, entry: int, kind: int, values: int) -> int | _Marker:
    """Where an entry's values start: in the entry when they fit in its 4 bytes, else where it points; `_ABSENT` for
    a type Pillow does not know (it skips the entry unread), `_CUT_SHORT` where they run past the block's end."""
    width = _TYPE_WIDTHS.get(kind)
    if width is None:
        return _ABSENT
    at = entry + 8 if width * values <= 4 else struct.unpack_from(order + "I", tiff, entry + 8)[0]
    return _CUT_SHORT if at + width * values > len(tiff) else at

