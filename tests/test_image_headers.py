"""The header checks on their own (io/image_headers.py); through the image stage, on crafted bombs, in
tests/test_image.py."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from pipeline.io import image_headers
from pipeline.io.image_headers import (
    MAX_JPEG_BLOCK_PASSES,
    MAX_JPEG_SCANS,
    MAX_JPEG_SEGMENTS,
    STRUCTURE_CHECKS,
    ImageRejected,
    check_icc_pipelines,
    check_jpeg_structure,
)
from tests import bad_images


def _jpeg(**options) -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((96, 64)).convert("RGB").save(out, "JPEG", **options)
    return out.getvalue()


def _comments(count: int) -> bytes:
    return b"".join(b"\xff\xfe\x00\x04hi" for _ in range(count))


def _segments_before_the_scan(jpeg: bytes) -> int:
    """The oracle: marker segments from after SOI up to and including the first SOS, by their lengths."""
    pos, count = 2, 0
    while True:
        code, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        count += 1
        if code == 0xDA:
            return count
        pos += 2 + length


_BASE = _segments_before_the_scan(_jpeg()) + 1  # Pillow's own file: its segments, the scan, the EOI


@settings(max_examples=30, deadline=None)
@given(extra=st.integers(0, MAX_JPEG_SEGMENTS + 5))
@example(extra=MAX_JPEG_SEGMENTS - _BASE)  # the last that passes
@example(extra=MAX_JPEG_SEGMENTS - _BASE + 1)
def test_a_baseline_jpeg_passes_exactly_while_its_segments_stay_within_the_bound(extra):
    """The segment count is what a plain walk by lengths counts (Pillow's writer: one scan, then EOI)."""
    plain = _jpeg()
    jpeg = plain[:2] + _comments(extra) + plain[2:]
    segments = _segments_before_the_scan(jpeg) + 1  # and the EOI after the scan
    if segments <= MAX_JPEG_SEGMENTS:
        check_jpeg_structure(jpeg)
    else:
        with pytest.raises(ImageRejected) as refused:
            check_jpeg_structure(jpeg)
        assert refused.value.reason == "too_many_segments"


def test_scans_are_counted_up_to_the_bound_and_a_thumbnails_markers_are_skipped():
    check_jpeg_structure(_jpeg(progressive=True))
    check_jpeg_structure(bad_images.jpeg_scan_bomb(64, MAX_JPEG_SCANS))
    with pytest.raises(ImageRejected, match="too_many_scans"):
        check_jpeg_structure(bad_images.jpeg_scan_bomb(64, MAX_JPEG_SCANS + 1))
    # An EXIF holding a thumbnail, a JPEG with SOS markers of its own, in a segment skipped by its length
    thumbnail = bad_images.jpeg_scan_bomb(16, MAX_JPEG_SCANS + 10)
    exif = b"Exif\0\0" + thumbnail
    plain = _jpeg()
    check_jpeg_structure(plain[:2] + b"\xff\xe1" + (len(exif) + 2).to_bytes(2, "big") + exif + plain[2:])


def _without_huffman_tables(jpeg: bytes) -> bytes:
    """`jpeg` (segments walked by their lengths up to its first scan) without its DHT segments."""
    out, pos = bytearray(jpeg[:2]), 2
    while jpeg[pos + 1] != 0xDA:
        end = pos + 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        out += b"" if jpeg[pos + 1] == 0xC4 else jpeg[pos:end]
        pos = end
    return bytes(out + jpeg[pos:])


def test_scans_the_image_stage_decodes_twice_count_each_visit_twice():
    """An arithmetic-coded JPEG, or a Huffman-coded one with no table of its own, is decoded whole to check its data
    against its frame header (jpeg_pixels.coding_fault), then by Pillow: 12 passes of refinement scans over a 64 MP
    4:4:4 arithmetic-coded file of 1 KB took 3.5 s of CPU. Half the passes: jpegtran's arithmetic-coded progressive
    scripts make 6 over a grey or CMYK image, ~5 over YCbCr."""
    passes = MAX_JPEG_BLOCK_PASSES // 2
    for scans in (passes, passes + 1):  # a DC scan, then AC scans: each a pass over all 1 M blocks
        huffman = bad_images.jpeg_scan_bomb(8000, scans)
        check_jpeg_structure(huffman)
        arithmetic = bytearray(huffman)
        arithmetic[huffman.index(b"\xff\xc2") + 1] = 0xCA  # SOF10: the same scans, arithmetic-coded
        for decoded_twice in (bytes(arithmetic), _without_huffman_tables(huffman)):
            if scans <= passes:
                check_jpeg_structure(decoded_twice)
            else:
                with pytest.raises(ImageRejected, match=r"too_many_scans.*decoded twice"):
                    check_jpeg_structure(decoded_twice)


def test_a_lossless_frames_samples_count_as_costlier_visits():
    """An 8000 x 8000 grey frame of 1 M 8 x 8 areas: a lossless scan over them counts LOSSLESS_VISIT_COST visits each,
    twice that arithmetic-coded (decoded twice)."""
    allowed = MAX_JPEG_BLOCK_PASSES // image_headers.LOSSLESS_VISIT_COST
    for marker, passes in ((0xC3, allowed), (0xCB, allowed // 2)):  # SOF3 Huffman, SOF11 arithmetic-coded
        for scans in (passes, passes + 1):
            bomb = bytearray(bad_images.jpeg_scan_bomb(8000, scans))
            bomb[bomb.index(b"\xff\xc2") + 1] = marker
            if scans <= passes:
                check_jpeg_structure(bytes(bomb))
            else:
                with pytest.raises(ImageRejected, match=r"too_many_scans.*lossless"):
                    check_jpeg_structure(bytes(bomb))


def test_a_real_arithmetic_coded_progressive_jpeg_stays_within_the_passes(monkeypatch):
    monkeypatch.setattr(image_headers, "MIN_JPEG_BLOCK_VISITS", 0)  # counted however small the image
    jpegs = Path(__file__).parent / "jpegs"
    for name in ("coffee_small_arithmetic_progressive.jpg", "coffee_small_arithmetic.jpg"):
        check_jpeg_structure((jpegs / name).read_bytes())
    monkeypatch.setattr(image_headers, "MAX_JPEG_BLOCK_PASSES", MAX_JPEG_BLOCK_PASSES // 2)
    with pytest.raises(ImageRejected, match="too_many_scans"):  # what the count stands for: ~5 passes, twice
        check_jpeg_structure((jpegs / "coffee_small_arithmetic_progressive.jpg").read_bytes())


def test_each_format_pillow_parses_in_python_gets_its_check():
    assert set(STRUCTURE_CHECKS) == {"JPEG", "PNG", "GIF"}
    for fmt in ("PNG", "GIF"):
        out = io.BytesIO()
        Image.new("RGB", (8, 8)).save(out, fmt)
        STRUCTURE_CHECKS[fmt](out.getvalue())  # an encoder's own file passes


def test_an_ordinary_icc_profile_passes_the_pipeline_check():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    check_icc_pipelines(srgb)
    check_icc_pipelines(b"")  # nothing to read: left to LittleCMS
