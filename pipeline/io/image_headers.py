"""Checks that refuse an image from its header, before Pillow parses or decodes anything of it.

Pillow parses a file's header in Python as it opens it (JPEG segments up to the first scan, PNG chunks, GIF
extensions, an EXIF's first directory, an MPO index) and LittleCMS an embedded ICC profile's pipelines: each can be
made to cost seconds of CPU or gigabytes from a file of kilobytes. Each check walks the structure the way its
parser will, within bounds no real encoder reaches, and raises `ImageRejected` with the reason the image stage
records (stages/image.py runs them; release/carry.py runs the JPEG one on carried images).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from typing import Literal

from PIL import PngImagePlugin

from pipeline.io import jpeg_pixels

# Encoders write 1-4 scans for a baseline JPEG and ~10 for a progressive one; each scan makes the decoder
# visit every block again, so thousands of them cost minutes of CPU from a file of a few MB.
MAX_JPEG_SCANS = 100
# A scan visits every block of the components it codes, so what they cost is those visits: libjpeg's and Pillow's
# progressive scripts make ~5 passes over the image's blocks (a DC scan of all components, AC bands and refinements
# of each), and 100 scans of a 64 MP 4:4:4 file (a 770 KB file: 33 passes over each component) took 3.8 s of CPU.
# A file whose data the image stage decodes twice (an arithmetic-coded one, or one with no Huffman table of its own,
# whose data is checked against its frame header first: jpeg_pixels.coding_fault) counts each visit twice: 12 passes
# of refinement scans over a 64 MP 4:4:4 arithmetic-coded file of 1 KB took 3.5 s of CPU, the Huffman-coded one
# 1.5 s; jpegtran's arithmetic-coded progressive files make ~5-6 passes.
MAX_JPEG_BLOCK_PASSES = 12  # the blocks all scans visit, over the blocks of the image
# A lossless frame's scans decode every sample, where a DCT one's visit 8 x 8 blocks of coefficients: a pass over a
# 64 MP component of a flat lossless file (1 bit a sample) took 0.22 s of CPU, 6 times a refinement scan's pass over
# the same pixels (34 ms), and an arithmetic-coded one needs next to no bytes for it. Each 8 x 8 samples of its scans
# count as 6 visits: real lossless files code each component once (6 passes, 12 arithmetic-coded).
LOSSLESS_VISIT_COST = 6
MIN_JPEG_BLOCK_VISITS = 1_000_000  # allowed whatever the passes (~40 ms): a small image's scans, up to MAX_JPEG_SCANS
# Pillow parses the header (JPEG segments up to the first scan, PNG chunks up to the image data) in Python,
# byte by byte through padding: a 20 MB file of empty segments or padding costs it 10-50 s of CPU. Real
# files have tens of segments and no padding; some PNG encoders cut the image data into many small chunks.
MAX_JPEG_SEGMENTS = 2048
MAX_JPEG_PADDING_BYTES = 64 * 1024
# An MPO's index (an APP2 "MPF" segment: a TIFF directory) is parsed by Pillow on open, every tag's value read from
# wherever the tag points and decoded: 5,000 tags pointing at one 60 KB run took 260 MiB from a 64 KB segment.
# Real ones hold 3-5 tags (version, image count, entries, optional ids and frame count) whose values fit in it.
MAX_MPF_TAGS = 32
# Pillow joins a JPEG's APP1 "Exif" segments and, on open, reads every value of the EXIF's first directory (to look
# for a resolution where the JFIF header sets none), each copied from wherever its tag points: 2,700 tags pointing
# at one 32 KB run took 85 MiB to open an 86 KB file, 20,000 tags on one 700 KB run over 16 segments 13 GiB and 33 s
# of CPU. A camera's values each have their own bytes: together they fit in the block.
_APP1 = 0xE1
_APP2 = 0xE2
_TIFF_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4,
                    16: 8, 17: 8, 18: 8}  # TIFF field types and their sizes
MAX_PNG_CHUNKS = 50_000
# PNG metadata chunks are parsed (zTXt/iTXt/iCCP inflated) by Pillow on open and on load; we strip them all.
_PNG_METADATA_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf"})
MAX_PNG_METADATA_CHUNKS = 256
MAX_PNG_METADATA_BYTES = 4 * 1024 * 1024  # all metadata chunks together, once inflated
# A tRNS holds an alpha per palette entry (at most 256) or one colour key (2 or 6 bytes). Pillow keeps a longer one
# and, turning a palette image into RGBA, raised ValueError ("palette index out of range"): no rejection, a crash.
MAX_PNG_TRNS_BYTES = 256
MAX_GIF_EXTENSIONS = 1024  # before the first image: 1,000 one-byte comments cost Pillow ~1 ms
MAX_GIF_METADATA_BYTES = 1024 * 1024  # their data: one 1 MB comment ~0.1 s, 4 MB ~1 s
# An embedded ICC profile's D2Bx tag ("mpet": a float pipeline of processing elements, curves made of segments) is
# what LittleCMS prefers for the conversion, and it evaluates every element, and each curve segment by segment, for
# each of the ~36,000 colours it samples to build the transform: 900 matrices (a 61 KB profile in an 82 KB JPEG)
# took 1.5 s, 5,000 (a 340 KB profile, 13 KB once compressed in a PNG's iCCP) 7.5 s, three curves of 5,000 segments
# 1.3 s; a new profile in every photo defeats the transform cache (io/srgb.py). An element's cost grows with its
# channels (a pipeline may widen them to 15 and back): a matrix's with its inputs times its outputs (62 of 15 x 15:
# 1.4 s), a CLUT's doubling with each input, whatever its grid (one of 14 inputs after a matrix widening RGB to them,
# a 197 KB profile in a 217 KB JPEG, took 6.8 s; 12 inputs 1.6 s). Real ones (rare: ICC v4.3 float profiles) hold a
# few elements of 3 or 4 channels and a few segments each.
MAX_ICC_PIPELINE_STEPS = 64  # curves, curve segments and elements of one D2Bx pipeline, each as many 3 x 3 matrices
# A JPEG's APP2 segments (up to 255 of 64 KB) or a WebP's ICCP chunk may carry a profile as large as the file, and
# LittleCMS takes ~10 bytes for each of its bytes to build the transform (a 16 MB CLUT: 159 MiB at the peak), counted
# by no decode budget, in every thread at once. Real ones stay far below: a display or camera profile holds a few kB,
# the largest press CMYK profiles ~2-3 MB. A PNG's is bounded with the rest of its metadata (MAX_PNG_METADATA_BYTES).
MAX_ICC_BYTES = 4 * 1024 * 1024
_ICC_FLOAT_PIPELINES = frozenset({b"D2B0", b"D2B1", b"D2B2", b"D2B3"})


class ImageRejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


# Outside a scan a marker is 0xFF (after any 0xFF fill bytes) then a non-zero code. Inside a scan's
# entropy-coded data a 0xFF data byte is stuffed as FF 00 and restart markers (FF D0-D7) belong to the
# scan, so the scan ends at the first FF followed by anything else. One byte after an FF: no backtracking.
_JPEG_MARKER = jpeg_pixels.MARKER
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def check_jpeg_structure(raw: bytes) -> None:
    """Walk the marker segments of the first image in `raw` as libjpeg reads them, before anything
    parses them: segment payloads (where an EXIF thumbnail carries SOS markers of its own) are
    skipped by their length, a scan's entropy-coded data up to its end. An MPO's later images come
    after the first EOI and are never decoded. Refuses, without walking further, a file with more
    scans, segments or padding than any real encoder writes (ImageRejected). Public for JPEGs read elsewhere: a
    release's carried images (release/carry.py)."""
    scans, segments, padding, pos = 0, 0, 0, 2  # after SOI
    exif: list[bytes] = []  # the APP1 "Exif" payloads before the first scan, the ones Pillow reads
    blocks: dict[int, int] | None = None  # of each component, from the first frame header before the first scan
    frame, tables = None, False  # the first frame header's code; whether a DHT comes before the first scan
    visits, weight = 0, 1  # what one block visit counts as: 2 where the data is decoded twice, more if lossless
    while marker := _JPEG_MARKER.search(raw, pos):
        padding += marker.start() - pos  # fill bytes and junk, which Pillow steps through one by one
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageRejected("too_many_segments", f"more than {MAX_JPEG_SEGMENTS} JPEG marker segments")
        if padding > MAX_JPEG_PADDING_BYTES:
            raise ImageRejected("corrupt", f"more than {MAX_JPEG_PADDING_BYTES} bytes of padding between segments")
        code, pos = raw[marker.end() - 1], marker.end()
        # An EOI before the first scan ends nothing for Pillow, which reads segments on to the first scan (and the
        # EXIF and MPO index among them): two bytes FF D9 after the SOI hid the checks below from a bomb.
        if (code == jpeg_pixels.EOI and scans) or pos + 2 > len(raw):
            return
        if code in jpeg_pixels.NO_LENGTH or code == jpeg_pixels.EOI:
            continue
        length = int.from_bytes(raw[pos:pos + 2], "big")  # the length counts itself, not the marker
        if code == _APP2 and not scans and raw.startswith(b"MPF\0", pos + 2):
            _check_mp_index(raw[pos + 6:pos + length])
        if code == _APP1 and not scans and raw.startswith(b"Exif\0\0", pos + 2):
            exif.append(raw[pos + 2 + 6 * bool(exif):pos + length])  # Pillow keeps the first one's header
        if code in jpeg_pixels.FRAMES and blocks is None and not scans:
            blocks, frame = jpeg_pixels.component_blocks(raw, marker.start()), code
        tables = tables or (code == jpeg_pixels.DHT and not scans)
        if code == jpeg_pixels.SOS and not scans:
            weight = 2 if jpeg_pixels.decoded_to_check_coding(frame, tables) else 1
            weight *= LOSSLESS_VISIT_COST if frame in jpeg_pixels.LOSSLESS_FRAMES else 1
        if code == jpeg_pixels.SOS and blocks:  # the components it codes: a count, then 2 bytes each
            coded = range(pos + 3, min(pos + 3 + 2 * raw[pos + 2], len(raw)), 2) if pos + 2 < len(raw) else ()
            visits += weight * sum(blocks.get(raw[at], 0) for at in coded)
            if visits > max(MAX_JPEG_BLOCK_PASSES * sum(blocks.values()), MIN_JPEG_BLOCK_VISITS):
                costlier = "" if weight == 1 else " (lossless: each sample decoded)" if frame in \
                    jpeg_pixels.LOSSLESS_FRAMES else " (each decoded twice: the data is checked first)"
                raise ImageRejected("too_many_scans", f"scans that pass over the image's blocks more than "
                                                      f"{MAX_JPEG_BLOCK_PASSES} times{costlier}")
        pos += length
        if code == jpeg_pixels.SOS:
            if not scans:
                _check_exif_ifd0(b"".join(exif))
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise ImageRejected("too_many_scans", f"more than {MAX_JPEG_SCANS} scans in one JPEG")
            scan_end = _JPEG_SCAN_END.search(raw, pos)
            if scan_end is None:
                return
            pos = scan_end.start()


# The headers Pillow's TIFF directory reader accepts with 4-byte offsets, and BigTIFF's (8-byte ones).
_TIFF_PREFIXES = frozenset({b"II*\0", b"MM\0*", b"II\0*", b"MM*\0"})
_BIGTIFF_PREFIXES = frozenset({b"II+\0", b"MM\0+"})


def _first_directory(tiff: bytes) -> tuple[int, int] | None:
    """(tags, bytes of values) of the first directory of the TIFF header `tiff`, as Pillow reads it
    (ImageFileDirectory_v2.load): each value of more than 4 bytes is copied from where its tag points, up to the
    first one that runs past the end, where its short read ends the load. None when Pillow reads no directory (no
    TIFF header it accepts)."""
    if len(tiff) < 8 or tiff[:4] not in _TIFF_PREFIXES:
        return None
    order: Literal["big", "little"] = "big" if tiff.startswith(b"MM") else "little"
    start = int.from_bytes(tiff[4:8], order)
    tags = int.from_bytes(tiff[start:start + 2], order)
    read = 0
    for entry in range(start + 2, min(start + 2 + 12 * tags, len(tiff) - 11), 12):
        size = _TIFF_TYPE_BYTES.get(int.from_bytes(tiff[entry + 2:entry + 4], order), 0) * \
            int.from_bytes(tiff[entry + 4:entry + 8], order)
        if size <= 4:  # in the entry itself (or a type Pillow skips)
            continue
        if int.from_bytes(tiff[entry + 8:entry + 12], order) + size > len(tiff):
            break
        read += size
    return tags, read


def _check_mp_index(tiff: bytes) -> None:
    """Refuses an MPO index (a TIFF header and directory, as Pillow reads it) with more tags than any camera
    writes, or whose values, read as Pillow reads them, add up to more bytes than the segment holds (they overlap:
    each is read and decoded again). One Pillow cannot read it opens as a plain JPEG (with a warning): left to it."""
    if tiff[:4] in _BIGTIFF_PREFIXES:  # 8-byte counts, which Pillow reads here; no camera writes one in an MPO
        raise ImageRejected("metadata_bomb", "a BigTIFF MPO index")
    found = _first_directory(tiff)
    if found is None:
        return
    tags, read = found
    if tags > MAX_MPF_TAGS:
        raise ImageRejected("metadata_bomb", f"an MPO index of {tags} tags (more than {MAX_MPF_TAGS})")
    if read > len(tiff):
        raise ImageRejected("metadata_bomb", f"an MPO index whose values claim {read} bytes of a {len(tiff)}-byte "
                                             "segment")


def _check_exif_ifd0(block: bytes) -> None:
    """Refuses an EXIF block (as Pillow joins it) whose first directory's values, read as Pillow reads them, add up to
    more bytes than the block holds: they overlap, and each is copied again. A header Pillow cannot read it reads
    nothing from."""
    while block.startswith(b"Exif\0\0"):
        block = block[6:]
    found = _first_directory(block)
    if found is not None and found[1] > len(block):
        raise ImageRejected("metadata_bomb", f"an EXIF whose first directory's values claim {found[1]} bytes of a "
                                             f"{len(block)}-byte block")


def _inflated_size(compressed: bytes, limit: int) -> int:
    """Size of zlib data once inflated, or limit + 1 when larger; never inflates past that.
    A broken stream counts as 0, as Pillow then drops the text."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, limit)
    except zlib.error:
        return 0
    # Bytes still waiting to be inflated mean more output: exactly Pillow's test for its own limit.
    return limit + 1 if inflater.unconsumed_tail else len(text)


def _compressed_part(kind: bytes, data: bytes) -> bytes:
    """The zlib stream inside a zTXt, iCCP or compressed iTXt chunk, parsed as Pillow parses it; b"" if none."""
    keyword_end = data.find(b"\x00")
    if keyword_end < 0 or kind in (b"tEXt", b"eXIf"):
        return b""
    if kind in (b"zTXt", b"iCCP"):  # keyword NUL method stream
        return data[keyword_end + 2:] if data[keyword_end + 1:keyword_end + 2] == b"\x00" else b""
    flag_method, rest = data[keyword_end + 1:keyword_end + 3], data[keyword_end + 3:]  # iTXt
    fields = rest.split(b"\x00", 2)  # language NUL translated keyword NUL text
    return fields[2] if flag_method == b"\x01\x00" and len(fields) == 3 else b""


def _check_png_chunks(raw: bytes) -> None:
    """Bound the number of chunks of a PNG, and its text, ICC and EXIF chunks before and after its
    image data, before Pillow parses them: a few KB of zTXt can inflate to gigabytes, and Pillow's
    own limits (1 MB a chunk, 64 MB in all) end in a ValueError rather than a clear reason. A tRNS
    longer than any palette is refused too."""
    chunks, metadata_chunks, total, pos = 0, 0, 0, 8  # after the signature
    while pos + 8 <= len(raw):
        length, kind = int.from_bytes(raw[pos:pos + 4], "big"), raw[pos + 4:pos + 8]
        data_start, pos = pos + 8, pos + 12 + length  # length + type + data + CRC
        if kind == b"IEND":
            break
        if kind == b"tRNS" and length > MAX_PNG_TRNS_BYTES:
            raise ImageRejected("corrupt", f"a tRNS chunk of {length} bytes (more than {MAX_PNG_TRNS_BYTES})")
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise ImageRejected("too_many_segments", f"more than {MAX_PNG_CHUNKS} PNG chunks")
        if kind not in _PNG_METADATA_CHUNKS:
            continue
        metadata_chunks += 1
        if metadata_chunks > MAX_PNG_METADATA_CHUNKS:
            raise ImageRejected("metadata_bomb", f"more than {MAX_PNG_METADATA_CHUNKS} text/ICC/EXIF chunks")
        data = raw[data_start:data_start + length]
        compressed = _compressed_part(kind, data)
        inflated = _inflated_size(compressed, PngImagePlugin.MAX_TEXT_CHUNK) if compressed else 0
        if inflated > PngImagePlugin.MAX_TEXT_CHUNK:
            raise ImageRejected("metadata_bomb", f"a {kind.decode('latin-1')} chunk inflates past "
                                                 f"{PngImagePlugin.MAX_TEXT_CHUNK} bytes")
        total += len(data) + inflated
        if total > MAX_PNG_METADATA_BYTES:
            raise ImageRejected("metadata_bomb", f"text/ICC/EXIF chunks hold more than {MAX_PNG_METADATA_BYTES} bytes")


def _check_gif_extensions(raw: bytes) -> None:
    """Bound the extension blocks (comments, application data, XMP) before a GIF's first image, the only ones
    Pillow reads for it, before Pillow parses them: it joins comments by copying what it has so far, so 400,000
    one-byte comments (2 MB) took 5 s and one 16 MB comment 42 s. Real GIFs hold a few small ones."""
    if len(raw) < 13:
        return  # Pillow refuses it
    table = 3 << ((raw[10] & 7) + 1) if raw[10] & 0x80 else 0  # the global colour table follows the header
    extensions, data, pos = 0, 0, 13 + table
    while pos < len(raw) and raw[pos] == 0x21:  # an extension; the first image (0x2C) or anything else ends it
        extensions += 1
        if extensions > MAX_GIF_EXTENSIONS:
            raise ImageRejected("metadata_bomb", f"more than {MAX_GIF_EXTENSIONS} GIF extension blocks before the "
                                                 "first image")
        pos += 2  # introducer and label, then sub-blocks of one length byte each, up to an empty one
        while pos < len(raw) and raw[pos]:
            data += raw[pos]
            pos += 1 + raw[pos]
        pos += 1
        if data > MAX_GIF_METADATA_BYTES:
            raise ImageRejected("metadata_bomb", f"GIF extension blocks hold more than {MAX_GIF_METADATA_BYTES} "
                                                 "bytes before the first image")


# The check each format gets before Pillow opens it.
STRUCTURE_CHECKS: dict[str, Callable[[bytes], None]] = {
    "JPEG": check_jpeg_structure, "PNG": _check_png_chunks, "GIF": _check_gif_extensions}


def check_icc_profile(icc: bytes) -> None:
    """Refuses an embedded ICC profile that would cost LittleCMS more memory (MAX_ICC_BYTES) or time
    (`check_icc_pipelines`) to parse than any real one, before it parses it (ImageRejected, metadata_bomb)."""
    if len(icc) > MAX_ICC_BYTES:
        raise ImageRejected("metadata_bomb",
                            f"an ICC profile of {len(icc):,} bytes, over the limit of {MAX_ICC_BYTES:,}")
    check_icc_pipelines(icc)


def check_icc_pipelines(icc: bytes) -> None:
    """Refuses an ICC profile with a float pipeline (a D2Bx tag of type "mpet") of more processing elements, curves
    and curve segments (wide matrices and CLUTs counting as more) than MAX_ICC_PIPELINE_STEPS, before LittleCMS parses
    it; anything unreadable is left to it (it then refuses the profile, and the plain conversion is used)."""
    for entry in range(132, min(132 + 12 * _be(icc, 128), len(icc) - 11), 12):  # the tag table after the header
        tag = _be(icc, entry + 4)
        if icc[entry:entry + 4] in _ICC_FLOAT_PIPELINES and icc[tag:tag + 4] == b"mpet" and \
                _pipeline_steps(icc, tag) > MAX_ICC_PIPELINE_STEPS:
            raise ImageRejected("metadata_bomb", f"an ICC profile whose {icc[entry:entry + 4].decode()} pipeline costs "
                                                 f"more than {MAX_ICC_PIPELINE_STEPS} steps (elements, curve segments, "
                                                 "3x3 matrices) to evaluate")


def _be(data: bytes, at: int, size: int = 4) -> int:
    return int.from_bytes(data[at:at + size], "big")


def _element_cost(icc: bytes, element: int) -> int:
    """What evaluating the "matf" or "clut" element at `element` costs LittleCMS, in 3 x 3 matrices (measured: a
    tetrahedral interpolation of 3 outputs ~2), beyond the 1 every element is counted; 0 for any other element."""
    kind, inputs, outputs = icc[element:element + 4], _be(icc, element + 8, 2), _be(icc, element + 10, 2)
    if kind == b"matf":  # inputs x outputs products, and an offset per output
        return max(0, -(-inputs * outputs // 9) - 1)
    if kind == b"clut":  # LittleCMS interpolates 2^(inputs - 3) cubes, each for every output
        return max(0, 2 * (1 << max(0, min(inputs, 16) - 3)) * -(-outputs // 3) - 1)
    return 0


def _pipeline_steps(icc: bytes, tag: int) -> int:
    """The elements, curves and curve segments of the "mpet" tag at `tag`, a matrix or CLUT element as the 3 x 3
    matrices its channels make it cost, counted up to one past the limit. Offsets as LittleCMS reads them: an
    element's from the tag's start, a curve's from its element's."""
    steps = _be(icc, tag + 12)  # the elements
    for position in range(tag + 16, tag + 16 + 8 * min(steps, MAX_ICC_PIPELINE_STEPS + 1), 8):
        element = tag + _be(icc, position)
        steps += _element_cost(icc, element)
        if steps > MAX_ICC_PIPELINE_STEPS:
            return steps
        if icc[element:element + 4] != b"cvst":  # a curve set: one curve per channel
            continue
        for curve in range(element + 12, element + 12 + 8 * _be(icc, element + 8, 2), 8):
            steps += 1 + _be(icc, element + _be(icc, curve) + 8, 2)  # the curve and its segments
            if steps > MAX_ICC_PIPELINE_STEPS:
                return steps
    return steps
