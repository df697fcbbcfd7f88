"""A JPEG's full-size pixels through libjpeg-turbo's own API: Pillow's pixels, at ~75-85% of its CPU.

Pillow's `load()` has libjpeg-turbo decode a JPEG into rows of 3-byte RGB that Pillow's unpacker then copies
into its own pixels (4 bytes each, the fourth 255), in 64 KB feeds of the file. simplejpeg (a small MIT
wrapper around libjpeg-turbo) has the library write 4-byte RGBX pixels, the fourth 255, straight into one
numpy buffer: Pillow's own layout for an "RGB" image, which Pillow then maps without a copy, as
`Image.frombuffer` maps the modes it lists (it maps this buffer only as "RGBX", whose fourth band every later
step would filter too: ~20% more work in the resize). 1024 px benchmark photos: ~2.7 instead of ~3.6 ms
alone, 2.6 instead of 3.1 ms inside `normalise`. The same library in both wheels (libjpeg-turbo 3.1: 3.1.2 in
simplejpeg 1.9.0, 3.1.4.1 in Pillow 12.3) with the same settings (the accurate integer DCT and the smooth
"fancy" upsampling, both libraries' defaults) gives the same pixels; that is checked, not assumed: at first use
in each process on probe JPEGs of the three chroma subsamplings Pillow writes, baseline and progressive, odd
sizes and restart markers (if one pixel differs, every image goes through Pillow: another build of either
library, whichever Pillow version is installed), and in `tests/test_jpeg_pixels.py` against Pillow on real
photographs and hypothesis-made JPEGs. An independent differential run (old and new `normalise` on truncations,
~3,600 mutations, 26 cjpeg settings including 4:1:1 and 4:4:0, Adobe transforms, RGB component ids, two frame
headers, MPO, all orientations) found the same results everywhere but the two cases handled below.

Hostile bytes: `image.normalise` has walked the file's segments and bounded its scans and pixel count before
this is called, and this decodes only Huffman-coded frames (baseline, extended, progressive) that Pillow
opened as 3-channel RGB at full size. Pillow feeds libjpeg 64 KB at a time and libjpeg's arithmetic decoder
cannot wait for more, so Pillow rejects a larger arithmetic-coded file that one whole-buffer decode would
store: arithmetic, lossless and every other frame type stay Pillow's. Anything simplejpeg refuses, warns about
(`strict`: a truncated or corrupt file) or fails on in any way (its 1.9.0 raises KeyError on a 4:4:1 header),
or whose header it reads otherwise than Pillow did, returns None and is decoded by Pillow as before, so every
rejection keeps Pillow's reason; such a file costs both decodes (a truncated 24 MP file ~1 s of CPU).

Arithmetic-coded frames, and Huffman-coded frames that define no Huffman table before their first scan, are
checked here before Pillow decodes them (`coding_fault`): libjpeg only warns when their data is not what the frame
header says (a baseline file whose SOF0 is changed to SOF9 has Huffman-coded data, which the arithmetic decoder
reads as noise, "Corrupt JPEG data: 18095 extraneous bytes before marker 0xd9"; an arithmetic-coded file relabelled
SOF0 carries no Huffman table, and libjpeg decodes its data with the standard tables, as noise too), and Pillow
ignores libjpeg's warnings, so it returned that noise as the photo. A genuine arithmetic-coded file, and a
Huffman-coded one relying on the standard tables (Motion-JPEG frames), decode without a warning. Other Huffman-coded
files are not looked at: a warning there is mostly harmless (bytes before the end marker), and refusing it would
lose real photos.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Iterator

import numpy as np
import simplejpeg
from PIL import Image

_log = logging.getLogger(__name__)
# Colour spaces libjpeg-turbo converts to RGB the way Pillow's "RGB" rawmode does (3 components).
_RGB_SOURCES = frozenset({"YCbCr", "RGB"})
# SOF0-2: Huffman-coded baseline, extended sequential and progressive frames, what this module decodes.
_HUFFMAN_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-15 less DHT, JPG and DAC
# SOF9-11 and SOF13-15: arithmetic-coded frames; SOF11 and SOF15 are lossless (libjpeg cannot scale those).
ARITHMETIC_FRAMES = frozenset({0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PROGRESSIVE_FRAMES = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
LOSSLESS_FRAMES = frozenset({0xC3, 0xC7, 0xCB, 0xCF})
# Marker codes (after the 0xFF) both segment walks use, this module's and `image_headers.check_jpeg_structure`.
NO_LENGTH = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RST0-7, SOI: markers without a segment
SOS, EOI, DHT = 0xDA, 0xD9, 0xC4
# Outside a scan a marker is 0xFF (after any 0xFF fill bytes) then a non-zero code: libjpeg's next_marker skips
# whatever else comes before it (FF 00 included), one byte after an FF, so no backtracking.
MARKER = re.compile(rb"\xff[^\x00\xff]")
# (size, save() arguments) of the probes: every subsampling Pillow writes, baseline and progressive, odd sides
# (partial MCUs, where upsampling's edge rules act), restart markers, and low and high quality.
_PROBES = (
    ((67, 45), {"subsampling": "4:2:0", "quality": 90}),
    ((67, 45), {"subsampling": "4:2:2", "quality": 75}),
    ((45, 67), {"subsampling": "4:4:4", "quality": 95}),
    ((33, 50), {"subsampling": "4:2:0", "quality": 50, "progressive": True}),
    ((50, 33), {"subsampling": "4:4:4", "quality": 85, "progressive": True}),
    ((81, 19), {"subsampling": "4:2:0", "quality": 90, "restart_marker_blocks": 2}),
)


def rgb(raw: bytes, size: tuple[int, int]) -> Image.Image | None:
    """The pixels of the JPEG `raw` as Pillow's full-size `load()` gives them, as a read-only "RGB" image, for
    a file Pillow opened as a 3-channel "RGB" JPEG of `size`; None where Pillow must decode it (simplejpeg
    refuses or warns, reads another size or colour space, or this process's libraries disagree on the
    probes)."""
    if not agrees_with_pillow():
        return None
    return _decoded(raw, size)


def _segments_to_scan(raw: bytes) -> Iterator[tuple[int, int]]:
    """(marker code, position of its 0xFF) of the JPEG `raw`'s segments, walked from the start as libjpeg reads them,
    up to its first scan's header (the last given), its end or anything malformed (neither given). Bytes between
    segments are skipped up to the next marker, as libjpeg (with a warning) and Pillow skip them: a walk that stopped
    at the first junk byte found no frame in a file both decode."""
    pos = 2  # after SOI
    while (marker := MARKER.search(raw, pos)) is not None and marker.end() + 2 <= len(raw):
        code, pos = raw[marker.end() - 1], marker.end()
        if code == EOI:
            return
        yield code, marker.start()
        if code == SOS:
            return
        if code not in NO_LENGTH:
            pos += int.from_bytes(raw[pos:pos + 2], "big")


def _markers_before_scan(raw: bytes) -> Iterator[int]:
    """The marker codes of the JPEG `raw`'s segments, walked from the start as libjpeg reads them, up to its first
    scan, its end or anything malformed (none of those given)."""
    return (code for code, _ in _segments_to_scan(raw) if code != SOS)


def coefficient_bytes(raw: bytes) -> int:
    """The bytes of DCT coefficients libjpeg holds at once to decode the JPEG `raw` where it keeps the whole image's
    (a "full buffer", 128 bytes a block, at any output scale: a 1/8 scale decode of a 64 MP 4:4:4 file holds 384 MB):
    a progressive frame, or a first scan coding fewer components than the frame (the others in scans of their own);
    0 where it decodes a row of blocks at a time, or the header up to the first scan is not one libjpeg decodes."""
    frame = scan = None
    for code, pos in _segments_to_scan(raw):
        if code in FRAMES and frame is None:
            frame = pos
        elif code == SOS:
            scan = pos
    if frame is None or scan is None or scan + 4 >= len(raw) or frame + 9 >= len(raw):
        return 0
    if raw[frame + 1] not in _PROGRESSIVE_FRAMES and raw[scan + 4] >= raw[frame + 9]:  # one scan codes them all
        return 0
    return 128 * sum(component_blocks(raw, frame).values())


def component_blocks(raw: bytes, frame: int) -> dict[int, int]:
    """The 8 x 8 blocks of each component (by its id) of the frame header (SOFn) at `frame` in the JPEG `raw`, rounded
    up to whole MCUs as libjpeg allocates them; {} for a frame libjpeg refuses (sampling factors outside 1-4, cut
    short)."""
    count = raw[frame + 9] if frame + 9 < len(raw) else 0
    height, width = int.from_bytes(raw[frame + 5:frame + 7], "big"), int.from_bytes(raw[frame + 7:frame + 9], "big")
    fields = [raw[at:at + 2] for at in range(frame + 10, frame + 10 + 3 * count, 3)]
    if not fields or len(fields[-1]) < 2 or not all(1 <= f[1] >> 4 <= 4 and 1 <= f[1] & 15 <= 4 for f in fields):
        return {}
    most_h, most_v = max(f[1] >> 4 for f in fields), max(f[1] & 15 for f in fields)
    blocks: dict[int, int] = {}
    for component, factors in fields:
        h, v = factors >> 4, factors & 15
        across, down = -(-width * h // (8 * most_h)), -(-height * v // (8 * most_v))
        blocks[component] = blocks.get(component, 0) + -(-across // h) * h * -(-down // v) * v
    return blocks


def frame_type(raw: bytes) -> int | None:
    """The marker code of the first frame header (SOFn) in the JPEG `raw`; None when a scan, the end or anything
    malformed comes first."""
    return next((code for code in _markers_before_scan(raw) if code in FRAMES), None)


def defines_huffman_tables(raw: bytes) -> bool:
    """Whether the JPEG `raw` has a DHT segment before its first scan."""
    return DHT in _markers_before_scan(raw)


def decoded_to_check_coding(frame: int | None, huffman_tables: bool) -> bool:
    """Whether `coding_fault` decodes all the data of a JPEG whose first frame header is `frame` (its marker code),
    with (`huffman_tables`) or without a DHT segment before its first scan: before Pillow decodes it again."""
    return frame in ARITHMETIC_FRAMES or (frame in _HUFFMAN_FRAMES and not huffman_tables)


def coding_fault(raw: bytes) -> str | None:
    """What libjpeg reports, a warning included, on decoding all the data of the JPEG `raw` when its data may not be
    what its frame header says: an arithmetic-coded frame, or a Huffman-coded one without a table of its own before
    its first scan; None when it decodes cleanly or is not such a file. One whole-buffer decode, at 1/8 scale where
    the frame allows: every coefficient is still read, the IDCT and colour conversion mostly not (a 24 MP file
    0.17 s of CPU against 0.56 s at full size). Anything the decode cannot get through (an error, a header
    simplejpeg cannot name) is reported too: the pixels Pillow would give for such a file cannot be vouched
    for."""
    frame = frame_type(raw)
    if not decoded_to_check_coding(frame, defines_huffman_tables(raw)):
        return None
    smallest = {} if frame in LOSSLESS_FRAMES else {"min_width": 1, "min_height": 1}
    try:
        simplejpeg.decode_jpeg(raw, colorspace="RGB", strict=True, **smallest)  # RGB: from any colour space
    except Exception as err:  # ValueError for libjpeg's errors and warnings, KeyError for a header it cannot name
        return f"{type(err).__name__}: {err}"
    return None


def _decoded(raw: bytes, size: tuple[int, int]) -> Image.Image | None:
    if frame_type(raw) not in _HUFFMAN_FRAMES:
        return None
    try:
        height, width, colorspace, _subsampling = simplejpeg.decode_jpeg_header(raw)
        if (width, height) != size or colorspace not in _RGB_SOURCES:
            return None
        pixels = simplejpeg.decode_jpeg(raw, colorspace="RGBX", fastdct=False, fastupsample=False, strict=True)
    except Exception:  # ValueError for libjpeg's errors and (strict) warnings, KeyError for a header its tables
        return None  # do not name, ...: whatever it is, Pillow decodes and decides
    if pixels.shape != (height, width, 4) or not pixels.flags.c_contiguous:
        return None
    # What Image.frombuffer does for the modes it maps, with "RGB": rows of width * 4 bytes, the image keeping
    # the buffer (and so the array) alive. The probes check the result pixel for pixel.
    image = Image.new("RGB", (0, 0))._new(Image.core.map_buffer(pixels, size, "raw", 0, ("RGB", 0, 1)))
    image.readonly = 1
    return image


def _probe(size: tuple[int, int], options: dict) -> bytes:
    rng = np.random.default_rng(size[0] * 1000 + size[1])
    # Smooth gradients plus noise: every coefficient band and both sides of the upsampler's interpolation.
    y, x = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) * 127 // sum(size)], axis=-1)
    pixels = np.clip(base + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", **options)
    return out.getvalue()


@functools.cache
def agrees_with_pillow() -> bool:
    """Whether `rgb` gives Pillow's pixels on the probes (a few ms, once per process)."""
    for size, options in _PROBES:
        raw = _probe(size, options)
        with Image.open(io.BytesIO(raw)) as opened:
            theirs, opened_bytes = np.asarray(opened), opened.tobytes()
        mapped = _decoded(raw, size)
        if mapped is None or mapped.mode != "RGB" or not np.array_equal(np.asarray(mapped), theirs) \
                or mapped.tobytes() != opened_bytes:
            _log.warning("JPEG decoding: simplejpeg's pixels differ from Pillow's on a %dx%d probe (%s); "
                         "decoding every JPEG with Pillow (slower, the same pixels)", *size, options)
            return False
    return True
