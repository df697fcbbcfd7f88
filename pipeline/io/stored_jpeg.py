"""What a stored image is: the JPEG the image stage writes (Pillow's baseline writer, given no metadata) holds a JFIF
header without a thumbnail, its quantisation and Huffman tables, perhaps a restart interval, one baseline frame and
one scan, and nothing after the end of the image. An image read back from outside the job (a work cache entry, a
previous release's row) that holds anything else (EXIF or GPS, XMP, an ICC profile, a comment, a thumbnail, bytes
after its end, a second frame or scan) is none the stage wrote, whatever sha256 it is recorded under."""

from __future__ import annotations

import re

# What the image stage's JPEG writer puts before the scan besides the JFIF header (below): quantisation tables, the
# Huffman tables, and a restart interval, which it may write. The baseline frame (SOF0) once.
_TABLES = frozenset({0xDB, 0xC4, 0xDD})
_APP0, _SOF0, _SOS = 0xE0, 0xC0, 0xDA
# Within a scan's data: 0xFF then 0x00 (a stuffed 0xFF) or a restart marker; any other marker ends the scan.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")


def stored_jpeg_problem(jpeg: bytes) -> str | None:
    """What in the JPEG `jpeg` the image stage never writes, else None: a segment other than its tables, one baseline
    frame and a JFIF header without a thumbnail (APPn: EXIF, GPS, XMP, ICC; a comment; a second frame header, which
    Pillow opens and libjpeg then refuses to decode), more than one scan, or bytes after the end of the image. Walked
    from the header, segment by segment, with no skipping: the stage writes nothing between segments."""
    if not jpeg.startswith(b"\xff\xd8"):
        return "no start of image"
    pos, frames = 2, 0
    while True:
        if len(jpeg) < pos + 4 or jpeg[pos] != 0xFF:
            return f"no segment at byte {pos}"
        code, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        body = jpeg[pos + 4:pos + 2 + length]
        if length < 2 or len(body) != length - 2:
            return f"a segment (0xFF{code:02X}) cut short at byte {pos}"
        pos += 2 + length
        if code == _SOS:
            break
        # JFIF's 14 bytes: its name, version, density, and a thumbnail of 0 x 0 (one of more carries its own pixels)
        if code == _APP0 and len(body) == 14 and body.startswith(b"JFIF\x00") and body[12:14] == b"\x00\x00":
            continue
        if code == _SOF0:
            frames += 1
            if frames > 1:
                return f"a second frame header at byte {pos - 2 - length}"
            continue
        if code not in _TABLES:
            return f"a segment 0xFF{code:02X} ({len(body)} bytes)"
    if not frames:
        return "a scan before any frame header"
    end = _SCAN_END.search(jpeg, pos)
    if end is None:
        return "no end of image after its scan"
    if jpeg[end.start() + 1] != 0xD9:  # a second scan, or any segment after the first one's data
        return f"a marker 0xFF{jpeg[end.start() + 1]:02X} after its scan's data"
    if end.end() != len(jpeg):
        return f"{len(jpeg) - end.end()} bytes after the end of the image"
    return None
