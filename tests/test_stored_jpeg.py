"""The JPEG the image stage writes, told from one holding anything else (pipeline/io/stored_jpeg.py)."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.io.stored_jpeg import StoredJpegCheck, stored_jpeg_problem
from pipeline.stages.image import ImageConfig, normalise
from tests import bad_images, oracles
from tests.conftest import encode, real_image, real_jpeg, swapped_primaries_profile


@pytest.mark.parametrize("quality", [1, 90, 100])
@pytest.mark.parametrize("name", ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg", "hubble_deep_field.jpg"])
def test_every_jpeg_the_image_stage_writes_passes_as_one_it_writes(name, quality):
    """The check refuses nothing the image stage stores: from a JPEG with EXIF, GPS and an ICC profile, a PNG with
    alpha, a palette GIF, a WebP, at any quality and size."""
    source = real_image(name)
    sources = [real_jpeg(name), encode(source.convert("RGBA"), "PNG"), encode(source.convert("P"), "GIF"),
               encode(source, "WEBP"), encode(source, "JPEG", icc_profile=swapped_primaries_profile()),
               bad_images.exif_rotated_jpeg()[0]]
    for raw in sources:
        for max_side in (100, 512, 4096):
            stored = normalise(raw, ImageConfig(max_side=max_side, jpeg_quality=quality))
            assert stored_jpeg_problem(stored.jpeg) is None


def _stored() -> bytes:
    return normalise(real_jpeg("coffee.jpg"), ImageConfig(max_side=256)).jpeg


@pytest.mark.parametrize("name", list(bad_images.not_as_stored(b"\xff\xd8")))
def test_a_stored_image_carrying_what_the_stage_never_writes_is_named(name):
    jpeg = bad_images.not_as_stored(_stored())[name]
    with Image.open(io.BytesIO(jpeg)) as img:
        img.load()  # it still decodes: only what it carries besides its pixels is wrong
    assert stored_jpeg_problem(jpeg) is not None


def _segments(jpeg: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each segment before the scan's data."""
    found, pos = [], 2
    while True:
        code, length = jpeg[pos + 1], int.from_bytes(jpeg[pos + 2:pos + 4], "big")
        found.append((code, pos, pos + 2 + length))
        if code == 0xDA:
            return found
        pos += 2 + length


def test_a_second_frame_header_is_named_though_pillow_opens_it():
    """Pillow opens a JPEG with two frame headers and reports the last one's size; libjpeg then refuses to decode
    it ("two SOF markers"): a cache entry or a carried row holding one passed as stored and failed the Detect stage
    as an internal_error."""
    stored = _stored()
    [(_, start, end)] = [segment for segment in _segments(stored) if segment[0] == 0xC0]
    twice = stored[:end] + stored[start:end] + stored[end:]
    with Image.open(io.BytesIO(twice)) as img:
        assert img.size == Image.open(io.BytesIO(stored)).size
        with pytest.raises(OSError):
            img.load()
    assert stored_jpeg_problem(twice) == f"a second frame header at byte {end}"
    no_frame = stored[:start] + stored[end:]
    assert stored_jpeg_problem(no_frame) == "a scan before any frame header"


def test_a_progressive_or_other_frame_is_none_the_stage_writes():
    progressive = encode(real_image("coffee.jpg"), "JPEG", progressive=True)
    assert stored_jpeg_problem(progressive) is not None
    assert stored_jpeg_problem(b"") == "no start of image"
    assert stored_jpeg_problem(_stored()[:40]).startswith("a segment")


def _variants() -> list[bytes]:
    """Stored images and each way of carrying what the stage never writes, cut short, with a marker in the scan, a
    second scan, bytes after the end."""
    stored = [_stored(), normalise(bad_images.cmyk_jpeg(), ImageConfig(max_side=96)).jpeg]
    found = [*stored]
    for jpeg in stored:
        found += list(bad_images.not_as_stored(jpeg).values())
        found += [jpeg[:-1], jpeg[:-2], jpeg[:3], jpeg[:25], jpeg[:-2] + b"\xff\xda" + jpeg[-2:], jpeg + b"\x00",
                  jpeg[:-2] + b"\xff\xd0\xff\x00" + jpeg[-2:], jpeg[:-2] + b"\xff\xff" + jpeg[-2:], b"\xff" + jpeg[1:]]
    return found


VARIANTS = _variants()


# Cuts anywhere, in the header (its first ~700 bytes) and among the last bytes (an end marker split in two) most
# of all; a negative cut counts from the end.
CUTS = st.lists(st.one_of(st.integers(-6, -1), st.integers(0, 700), st.integers(0, 1 << 16)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(index=st.integers(0, len(VARIANTS) - 1), cuts=CUTS,
       flip=st.one_of(st.none(), st.tuples(st.integers(0, 1 << 16), st.integers(0, 255))))
def test_read_a_part_at_a_time_it_finds_what_the_whole_file_read_at_once_finds(index, cuts, flip):
    """Against the check written for a whole file (tests/oracles.py), on every variant cut into parts anywhere and
    with a byte changed anywhere (in the header, in the scan, at a cut)."""
    jpeg = bytearray(VARIANTS[index])
    if flip is not None:
        jpeg[flip[0] % len(jpeg)] = flip[1]
    jpeg = bytes(jpeg)
    check = StoredJpegCheck()
    points = sorted({(cut if cut >= 0 else len(jpeg) + cut) % (len(jpeg) + 1) for cut in cuts})
    for start, end in zip([0, *points], [*points, len(jpeg)], strict=True):
        check.update(jpeg[start:end])
    assert check.problem() == oracles.stored_jpeg_problem(jpeg) == stored_jpeg_problem(jpeg)
