"""What a stored image is: the JPEG the image stage writes (Pillow's baseline writer, given no metadata) holds a JFIF
header without a thumbnail, its quantisation and Huffman tables, perhaps a restart interval, one baseline frame and
one scan, and nothing after the end of the image. An image read back from outside the job (a work cache entry, a
previous release's row, a release `verify` reads) that holds anything else (EXIF or GPS, XMP, an ICC profile, a
comment, a thumbnail, bytes after its end, a second frame or scan) is none the stage wrote, whatever sha256 it is
recorded under."""

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
    check = StoredJpegCheck()
    check.update(jpeg)
    return check.problem()


class StoredJpegCheck:
    """`stored_jpeg_problem` over a JPEG given a part at a time (a member of a tar read as a stream): holds at most
    one header segment (64 KiB) and one byte of the scan, whatever the image's size, and copies no part it is given
    (verify holds one record at a time: a copy of a 2 MiB image was its bound)."""

    def __init__(self) -> None:
        self._found: str | None = None  # the first problem, once seen
        self._pending = b""  # the start of a header segment not yet whole (the parts before the scan)
        self._at = 0  # the offset in the file of what the next part (after `_pending`) starts with
        self._frames = 0
        self._in_scan = False
        self._tail = False  # whether the scan's data so far ends in 0xFF (a marker split between two parts)
        self._after_end: int | None = None  # bytes after the end of the image, once it is seen

    def update(self, part: bytes | memoryview) -> None:
        if self._found is not None:
            return
        if self._after_end is not None:
            self._after_end += len(part)
        elif self._in_scan:
            self._scan(memoryview(part))
        else:
            # a segment split between parts is joined: at most 64 KiB of it and the part it ends in
            data = memoryview(self._pending + bytes(part) if self._pending else part)
            self._pending = b""
            self._header(data)

    def problem(self) -> str | None:
        """The first problem in what was given, now taken as the whole file."""
        if self._found is not None:
            return self._found
        if self._after_end:
            return f"{self._after_end} bytes after the end of the image"
        if self._after_end == 0:
            return None
        if self._in_scan:
            return "no end of image after its scan"
        pending = self._pending
        if self._at == 0:
            return "no start of image"
        if len(pending) < 4 or pending[0] != 0xFF:
            return f"no segment at byte {self._at}"
        return f"a segment (0xFF{pending[1]:02X}) cut short at byte {self._at}"

    def _header(self, data: memoryview) -> None:
        """Each whole segment of `data` in turn, until the scan starts (the rest is the scan's) or a segment is not
        yet whole (kept for the next part)."""
        pos = 0
        if self._at == 0:
            if len(data) < 2:
                self._pending = bytes(data)
                return
            if data[:2] != b"\xff\xd8":
                self._found = "no start of image"
                return
            pos, self._at = 2, 2
        while len(data) - pos >= 4:
            if data[pos] != 0xFF:
                self._found = f"no segment at byte {self._at}"
                return
            code, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
            if length < 2:
                self._found = f"a segment (0xFF{code:02X}) cut short at byte {self._at}"
                return
            if len(data) - pos < 2 + length:
                break
            start, body = self._at, data[pos + 4:pos + 2 + length]
            pos += 2 + length
            self._at += 2 + length
            if code == _SOS:
                if not self._frames:
                    self._found = "a scan before any frame header"
                    return
                self._in_scan = True
                self._scan(data[pos:])
                return
            # JFIF's 14 bytes: its name, version, density, and a thumbnail of 0 x 0 (one of more carries its pixels)
            if code == _APP0 and len(body) == 14 and body[:5] == b"JFIF\x00" and body[12:14] == b"\x00\x00":
                continue
            if code == _SOF0:
                self._frames += 1
                if self._frames > 1:
                    self._found = f"a second frame header at byte {start}"
                    return
                continue
            if code not in _TABLES:
                self._found = f"a segment 0xFF{code:02X} ({len(body)} bytes)"
                return
        self._pending = bytes(data[pos:])

    def _scan(self, part: memoryview) -> None:
        """The scan's data up to the first marker that is neither a stuffed 0xFF nor a restart: the end of the
        image, after which nothing may follow; any other (a second scan, a segment) is a problem."""
        if not part:
            return
        if self._tail:  # the 0xFF the last part ended with, and this part's first byte
            self._tail = False
            if part[0] != 0x00 and not 0xD0 <= part[0] <= 0xD7:
                self._ended(part[0], len(part) - 1)
                return
        end = _SCAN_END.search(part)
        if end is None:
            self._tail = part[-1] == 0xFF
            return
        self._ended(part[end.start() + 1], len(part) - end.end())

    def _ended(self, marker: int, after: int) -> None:
        if marker != 0xD9:  # a second scan, or any segment after the first one's data
            self._found = f"a marker 0xFF{marker:02X} after its scan's data"
            return
        self._in_scan = False
        self._after_end = after
