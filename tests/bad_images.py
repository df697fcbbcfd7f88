"""Generators of the bad and awkward images every crawl meets; used by the image and e2e tests."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from tests.conftest import encode, real_image, real_jpeg


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zlib_of_repeats(unit: bytes, times: int) -> bytes:
    """A valid zlib stream of `unit * times`, built in milliseconds however large the result.

    One raw-deflate piece of ~1 MB of units ends in a full flush, so it refers to nothing before
    it and can simply be repeated; only the Adler-32 checksum has to see every byte.
    """
    per_block = max(1, (1 << 20) // len(unit))
    pieces, checksum = [], 1
    for count, repeats in ((per_block, times // per_block), (times % per_block, 1)):
        if not count or not repeats:
            continue
        block = unit * count
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        pieces.append((deflater.compress(block) + deflater.flush(zlib.Z_FULL_FLUSH)) * repeats)
        for _ in range(repeats):
            checksum = zlib.adler32(block, checksum)
    final_block = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    return b"\x78\xda" + b"".join(pieces) + final_block + struct.pack(">I", checksum)


def png_of_rows(width: int, height: int, row: bytes, extra_before: bytes = b"", extra_after: bytes = b"") -> bytes:
    """A greyscale PNG whose every row holds the pixels `row`; extra chunks before / after the IDAT."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib_of_repeats(b"\x00" + row, height)  # filter byte 0 + pixels, per row
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + extra_before + _png_chunk(b"IDAT", idat)
            + extra_after + _png_chunk(b"IEND", b""))


def mpo_index_of_every_image() -> bytes:
    """A JPEG (chelsea) whose MPO index says it holds 2^32 - 1 images and lists one: Pillow's reading of the entries
    runs off their end (struct.error), and Image.open calls the file unidentified."""
    raw = encode(real_image("chelsea.jpg"), "JPEG")
    values = 8 + 2 + 12 * 3 + 4  # where the one entry sits, after the header and the directory of 3 tags
    directory = (struct.pack("<H", 3) + struct.pack("<HHL4s", 0xB000, 7, 4, b"0100")
                 + struct.pack("<HHLL", 0xB001, 4, 1, 0xFFFFFFFF) + struct.pack("<HHLL", 0xB002, 7, 16, values)
                 + struct.pack("<L", 0))
    index = b"MPF\0" + b"II*\0" + struct.pack("<L", 8) + directory + struct.pack("<LLLHH", 0x030000, len(raw), 0, 0, 0)
    return raw[:2] + _jpeg_segment(0xE2, index) + raw[2:]


def rgb16_png(pixels: np.ndarray, key: tuple[int, int, int]) -> bytes:
    """A 16-bit RGB PNG of `pixels` (height x width x 3, 0-65535) with a tRNS colour key: Pillow writes none."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + _png_chunk(b"tRNS", struct.pack(">HHH", *key)) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def png_bomb(side: int = 12_000) -> bytes:
    """A real decompression bomb: a valid greyscale PNG of side x side zero pixels, ~100 KB on disk."""
    return png_of_rows(side, side, b"\x00" * side)


def truncated_jpeg() -> bytes:
    data = real_jpeg("coffee.jpg")
    return data[: len(data) // 2]


def cmyk_jpeg() -> bytes:
    return encode(real_image("coffee.jpg").convert("CMYK"), "JPEG", quality=90)


def png16() -> bytes:
    grey = np.asarray(real_image("coffee.jpg").convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey.astype(np.uint16), "I;16"), "PNG")


def animated_gif() -> bytes:
    frames = [real_image("chelsea.jpg").convert("P"), real_image("coffee.jpg").resize((451, 300)).convert("P")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def exif_rotated_jpeg() -> tuple[bytes, tuple[int, int]]:
    """A landscape-stored JPEG with EXIF orientation 6 (display rotated 90 degrees) and a GPS tag."""
    img = real_image("coffee.jpg")  # 600 x 400
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "CameraMaker"
    gps = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    exif[0x8825] = gps
    return encode(img, "JPEG", exif=exif.tobytes(), quality=90), (400, 600)


def single_colour() -> bytes:
    return encode(Image.new("RGB", (256, 256), (90, 140, 200)), "PNG")


def one_by_one() -> bytes:
    return encode(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG")


def rgba_png() -> bytes:
    img = real_image("chelsea.jpg").convert("RGBA")
    img.putalpha(128)
    return encode(img, "PNG")


HTML = b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Not here</body></html>"


def crop_variant(name: str, i: int) -> bytes:
    """Quadrant i (0-3) of a real photo: distinct content, so neither an exact nor a near duplicate."""
    img = real_image(name)
    w, h = img.width // 2, img.height // 2
    x, y = (i % 2) * w, (i // 2) * h
    return encode(img.crop((x, y, x + w, y + h)), "JPEG", quality=90)


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _entropy_coded(codes: list[tuple[int, int]]) -> bytes:
    """(value, bit count) pairs -> JPEG entropy-coded bytes: MSB first, 0xFF stuffed, padded with 1 bits."""
    bits = "".join(format(value, f"0{count}b") for value, count in codes if count)
    bits += "1" * (-len(bits) % 8)
    packed = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    return packed.replace(b"\xff", b"\xff\x00")


def jpeg_scan_bomb(side: int = 8000, scans: int = 20_000) -> bytes:
    """A valid progressive greyscale JPEG of side x side that repeats one AC scan `scans - 1` times.

    Each AC scan is a handful of end-of-band runs (~80 bytes) but makes the decoder visit every
    one of the (side/8)^2 blocks again: at 8000 x 8000 that is ~11 ms a scan, minutes in all,
    from a ~2 MB file whose pixel count passes every size check.
    """
    blocks = ((side + 7) // 8) ** 2
    quant = _jpeg_segment(0xDB, b"\x00" + b"\x01" * 64)
    frame = _jpeg_segment(0xC2, struct.pack(">BHHB", 8, side, side, 1) + b"\x01\x11\x00")  # SOF2: progressive
    dc_table = _jpeg_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # one 1-bit code: "DC diff 0"
    # AC table: EOB0..EOB14 (a run of 2^r + r extra bits end-of-band blocks) as the 4-bit codes 0..14.
    ac_table = _jpeg_segment(0xC4, b"\x10" + bytes([0, 0, 0, 15] + [0] * 12) + bytes(r << 4 for r in range(15)))
    dc_scan = _jpeg_segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + _entropy_coded([(0, blocks)])  # one 0 bit a block
    runs, left = [], blocks
    while left:
        run = min(left, 32_767)
        r = run.bit_length() - 1
        runs += [(r, 4), (run - (1 << r), r)]
        left -= run
    ac_scan = _jpeg_segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + _entropy_coded(runs)  # Ss=1 Se=63 Ah=Al=0
    return b"\xff\xd8" + quant + frame + dc_table + ac_table + dc_scan + ac_scan * (scans - 1) + b"\xff\xd9"


def lossless_jpeg(side: int, passes: int) -> bytes:
    """A valid lossless (SOF3) flat grey RGB JPEG of side x side whose three components each come in `passes` scans
    of their own: first-order prediction, every difference 0, one 1-bit code a sample."""
    adobe = _jpeg_segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00")  # transform 0: RGB, no colour conversion
    frame = _jpeg_segment(0xC3, struct.pack(">BHHB", 8, side, side, 3) + b"R\x11\x00G\x11\x00B\x11\x00")
    table = _jpeg_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # one 1-bit code: "difference 0"
    data = bytes(-(-side * side // 8))
    scans = b"".join(_jpeg_segment(0xDA, bytes([1, component, 0, 1, 0, 0])) + data for component in b"RGB" * passes)
    return b"\xff\xd8" + adobe + frame + table + scans + b"\xff\xd9"


def ico_holding(image: bytes) -> bytes:
    """A Windows icon whose one entry (declared 256 x 256) is the PNG or BMP `image`."""
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(image), len(header) + 16)
    return header + entry + image


def png_with_chunks(before_idat: Sequence[tuple[bytes, bytes]] = (), after_idat: Sequence[tuple[bytes, bytes]] = ()
                    ) -> bytes:
    """A real photo as PNG with extra (kind, data) chunks after IHDR and/or after the image data."""
    plain = encode(real_image("chelsea.jpg"), "PNG")
    ihdr_end, iend_start = 8 + 25, len(plain) - 12

    def chunks(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
        return b"".join(_png_chunk(kind, data) for kind, data in pairs)

    return plain[:ihdr_end] + chunks(before_idat) + plain[ihdr_end:iend_start] + chunks(after_idat) + plain[iend_start:]


def ztxt(keyword: bytes, text_size: int) -> tuple[bytes, bytes]:
    """A zTXt chunk whose text inflates to `text_size` spaces (a few KB on disk for megabytes)."""
    return b"zTXt", keyword + b"\x00\x00" + zlib_of_repeats(b" ", text_size)


def itxt_compressed(keyword: bytes, text_size: int) -> tuple[bytes, bytes]:
    return b"iTXt", keyword + b"\x00\x01\x00en\x00\x00" + zlib_of_repeats(b" ", text_size)


def mpo_pair() -> tuple[bytes, Image.Image]:
    """A two-image MPO, as cameras write them (chelsea then a different photo), and its first image."""
    first = real_image("chelsea.jpg")
    second = real_image("coffee.jpg").resize(first.size)
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second])
    return out.getvalue(), first


def mpo_index_bomb(tags: int = 5_000, claimed: int = 50_000) -> bytes:
    """A JPEG (chelsea) whose APP2 MPO index is a TIFF directory of `tags` tags, each an UNDEFINED value of
    `claimed` bytes at the same offset: Pillow reads and keeps each tag's value on open."""
    tags = min(tags, (65_533 - 4 - 8 - 2 - 4) // 12)  # as many as one segment holds
    directory = struct.pack("<H", tags) + b"".join(struct.pack("<HHLL", 0xC000 + i, 7, claimed, 8)
                                                   for i in range(tags)) + struct.pack("<L", 0)
    raw = encode(real_image("chelsea.jpg"), "JPEG")
    return raw[:2] + _jpeg_segment(0xE2, b"MPF\0" + b"II*\0" + struct.pack("<L", 8) + directory) + raw[2:]


def thin_strip(width: int = 64, height: int = 1_000_000) -> bytes:
    """A greyscale PNG of width x height with a horizontal gradient: not blank, ~500 KB for 64 MP."""
    return png_of_rows(width, height, bytes(i * 255 // max(1, width - 1) for i in range(width)))


def jpeg_with_header_padding(padding: bytes) -> bytes:
    """A real photo as JPEG with `padding` (empty segments, fill bytes) straight after its SOI."""
    plain = encode(real_image("chelsea.jpg"), "JPEG", quality=90)
    return plain[:2] + padding + plain[2:]


def png_with_broken_image_data() -> bytes:
    """A real photo as PNG whose image data is not a valid deflate stream (CRC still right)."""
    plain = encode(real_image("chelsea.jpg"), "PNG")
    start = plain.index(b"IDAT") - 4
    length = struct.unpack(">I", plain[start:start + 4])[0]
    return plain[:start] + _png_chunk(b"IDAT", b"\x78\x9c" + b"\xff" * 64) + plain[start + 12 + length:]


def webp_with_broken_bitstream() -> bytes:
    data = bytearray(encode(real_image("chelsea.jpg"), "WEBP", quality=80))
    data[26:34] = b"\x00" * 8  # the VP8 frame header, just after the chunk header
    return bytes(data)


def jpeg_truncated_in_header() -> bytes:
    """SOI, then an APP1 segment that declares 64 KB and stops after a few bytes."""
    return b"\xff\xd8\xff\xe1\xff\xffExif\x00\x00II*\x00"


def exif_with_mistyped_tag() -> bytes:
    """exif_rotated_jpeg whose GPS LongitudeRef ("E", ASCII) is declared as two SHORTs: it parses,
    but Pillow cannot write such an EXIF back (ImageOps.exif_transpose did, and raised TypeError)."""
    raw, _ = exif_rotated_jpeg()
    ascii_entry = b"\x00\x03\x00\x02\x00\x00\x00\x02E\x00"  # big-endian: tag 3, type ASCII, count 2, "E\0"
    assert raw.count(ascii_entry) == 1
    return raw.replace(ascii_entry, b"\x00\x03\x00\x03" + ascii_entry[4:])


def jpeg_exif_shared_value(tags: int = 2_700, claimed: int = 30_000, segments: int = 1) -> bytes:
    """A JPEG (chelsea) whose EXIF's first directory holds `tags` tags, each an UNDEFINED value of `claimed` bytes at
    the same offset, the block cut into `segments` APP1 segments (Pillow joins them): Pillow reads each tag's value
    on open."""
    offset = 8 + 2 + 12 * tags + 4
    ifd = struct.pack("<H", tags) + b"".join(struct.pack("<HHLL", 0x8000 + i, 7, claimed, offset) for i in range(tags))
    block = b"II*\x00" + struct.pack("<L", 8) + ifd + b"\x00" * (4 + claimed)
    size = -(-len(block) // segments)
    assert size <= 65_533 - 6, "too large for that many segments"
    raw = encode(real_image("chelsea.jpg"), "JPEG")
    return raw[:2] + b"".join(_jpeg_segment(0xE1, b"Exif\x00\x00" + block[i:i + size])
                              for i in range(0, len(block), size)) + raw[2:]


def palette_png_with_trns(alphas: bytes) -> bytes:
    """A real photo as a 16-colour palette PNG whose tRNS chunk holds `alphas` (one per palette entry, at most 256)."""
    plain = encode(real_image("chelsea.jpg").convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")
    idat = plain.index(b"IDAT") - 4
    return plain[:idat] + _png_chunk(b"tRNS", alphas) + plain[idat:]


def _icc_profile(tags: list[tuple[bytes, bytes]]) -> bytes:
    """A v4 RGB display profile (PCS XYZ, D50 white) holding the (signature, data) `tags`."""
    d50 = struct.pack(">3i", 63190, 65536, 54061)
    body, table, at = b"", b"", 128 + 4 + 12 * len(tags)
    for sig, data in tags:
        table += sig + struct.pack(">LL", at + len(body), len(data))
        body += data + b"\x00" * (-len(data) % 4)
    header = struct.pack(">L4sL4s4s4s12s4s", at + len(body), b"lcms", 0x04300000, b"mntr", b"RGB ", b"XYZ ", b"",
                         b"acsp") + bytes(28) + d50 + bytes(48)
    return header + struct.pack(">L", len(tags)) + table + body


def float_pipeline_profile(matrices: int = 2, segments: int = 0) -> bytes:
    """An RGB profile whose D2B0 (the float pipeline LittleCMS prefers to any other) is `matrices` 3x3 matrices with
    offsets (a shear and its inverse in turn, which LittleCMS does not merge), then, with `segments`, a set of three
    identity curves of that many segments each, every input in the first (LittleCMS looks from the last). LittleCMS
    evaluates every step for each of the ~36,000 colours it samples to build the transform."""
    shear = (struct.pack(">9f", 1, 0.5, 0, 0, 1, 0, 0, 0, 1) + struct.pack(">3f", 0.001, 0, 0),
             struct.pack(">9f", 1, -0.5, 0, 0, 1, 0, 0, 0, 1) + struct.pack(">3f", -0.001, 0, 0))
    elements = [b"matf\x00\x00\x00\x00" + struct.pack(">HH", 3, 3) + shear[i % 2] for i in range(matrices)]
    if segments:
        curve = (b"curf\x00\x00\x00\x00" + struct.pack(">HH", segments, 0)
                 + b"".join(struct.pack(">f", 2.0 + i) for i in range(segments - 1))  # break points, all past 1
                 + (b"parf\x00\x00\x00\x00" + struct.pack(">HH4f", 0, 0, 1, 1, 0, 0)) * segments)  # y = x
        elements.append(b"cvst\x00\x00\x00\x00" + struct.pack(">HH", 3, 3) + struct.pack(">LL", 36, len(curve)) * 3
                        + curve)
    return _mpet_profile(elements)


def wide_pipeline_profile(channels: int, matrices: int = 0, clut: bool = True) -> bytes:
    """An RGB profile whose D2B0 widens the 3 channels to `channels` (a 3 x `channels` matrix), then holds `matrices`
    `channels` x `channels` matrices (near identities), then narrows them back to 3: with `clut`, a CLUT of `channels`
    inputs and 2 grid points each (LittleCMS interpolates 2^(channels - 3) cubes for every colour), else a matrix."""
    rng = np.random.default_rng(channels)

    def matrix(inputs: int, outputs: int) -> bytes:
        values = np.eye(outputs, inputs) / 2 + rng.uniform(0, 0.01, (outputs, inputs))
        return (b"matf\x00\x00\x00\x00" + struct.pack(">HH", inputs, outputs) + values.astype(">f4").tobytes()
                + np.zeros(outputs, ">f4").tobytes())

    last = (b"clut\x00\x00\x00\x00" + struct.pack(">HH", channels, 3) + bytes([2] * channels).ljust(16, b"\x00")
            + rng.uniform(0.2, 0.8, 3 << channels).astype(">f4").tobytes()) if clut else matrix(channels, 3)
    return _mpet_profile([matrix(3, channels), *(matrix(channels, channels) for _ in range(matrices)), last])


def clut_profile(grid: int) -> bytes:
    """A valid RGB profile whose A2B0 ("mAB ") is one CLUT of `grid` points on each of its 3 inputs, 8-bit: about
    3 * grid^3 bytes (120: 5.2 MB), as large as a crafted file may make it; LittleCMS parses it into ~10 times that."""
    identity = (b"curv" + bytes(8)) * 3  # three curves of no entries
    values = np.random.default_rng(grid).integers(60, 200, 3 * grid ** 3, dtype=np.uint8).tobytes()
    clut = bytes([grid] * 3).ljust(16, b"\x00") + bytes([1, 0, 0, 0]) + values + bytes(-len(values) % 4)
    at_clut = 32 + len(identity)
    tag = (b"mAB " + bytes(4) + bytes([3, 3, 0, 0]) + struct.pack(">5L", 32, 0, 0, at_clut, at_clut + len(clut))
           + identity + clut + identity)  # B curves, no matrix, no M curves, the CLUT, A curves
    white = b"XYZ " + bytes(4) + struct.pack(">3i", 63190, 65536, 54061)
    return _icc_profile([(b"A2B0", tag), (b"wtpt", white)])


def _mpet_profile(elements: list[bytes]) -> bytes:
    """An RGB profile whose D2B0 is the float pipeline of `elements`."""
    head = b"mpet\x00\x00\x00\x00" + struct.pack(">HHL", 3, 3, len(elements))
    at, table = len(head) + 8 * len(elements), b""
    for element in elements:
        table += struct.pack(">LL", at, len(element))
        at += len(element)
    white = b"XYZ \x00\x00\x00\x00" + struct.pack(">3i", 63190, 65536, 54061)
    return _icc_profile([(b"D2B0", head + table + b"".join(elements)), (b"wtpt", white)])


def with_segment(jpeg: bytes, code: int, body: bytes) -> bytes:
    """The JPEG with one more segment (marker 0xFF `code`, `body`) right after its SOI: the same pixels."""
    return jpeg[:2] + bytes([0xFF, code]) + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def exif_with_gps() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    return b"Exif\x00\x00" + exif.tobytes()


def not_as_stored(stored: bytes) -> dict[str, bytes]:
    """The JPEG `stored` (as the image stage wrote it, its JFIF header first) carrying what the stage never writes,
    each still decoding to the same pixels: EXIF with GPS, an ICC profile, a comment, XMP, bytes after its end, a
    JFIF thumbnail."""
    return {
        "exif": with_segment(stored, 0xE1, exif_with_gps()),
        "icc": with_segment(stored, 0xE2, b"ICC_PROFILE\x00\x01\x01" + b"\x00" * 128),
        "comment": with_segment(stored, 0xFE, b"anything at all"),
        "xmp": with_segment(stored, 0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"),
        "trailer": stored + b"PK\x03\x04 a zip appended after the image's end",
        "thumbnail": stored[:2] + bytes.fromhex("ffe0001c4a46494600010100000100010202") + b"\x80" * 12 + stored[20:],
    }
