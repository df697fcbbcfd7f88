"""The full-size JPEG decode straight into Pillow's layout (pipeline/io/jpeg_pixels.py): Pillow's pixels exactly,
or None so that Pillow decodes."""

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.io import jpeg_pixels
from pipeline.stages.image import ImageConfig, ImageRejected, normalise
from tests.conftest import encode, real_image, real_jpeg, swapped_primaries_profile

PHOTOS = Path(__file__).parent / "photos"


def _pillow(raw: bytes) -> Image.Image:
    with Image.open(io.BytesIO(raw)) as opened:
        opened.load()
        return opened.copy()


def _same_pixels(raw: bytes) -> Image.Image:
    """rgb()'s image, after checking it is Pillow's own decode pixel for pixel (also the padding byte)."""
    theirs = _pillow(raw)
    ours = jpeg_pixels.rgb(raw, theirs.size)
    assert ours is not None
    assert (ours.mode, ours.size, ours.readonly) == ("RGB", theirs.size, 1)
    assert ours.tobytes("raw", "RGBX") == theirs.tobytes("raw", "RGBX")  # all four bytes of every pixel
    assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    return ours


@pytest.mark.parametrize("name", ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg", "hubble_deep_field.jpg"])
def test_real_photographs_decode_to_pillows_pixels(name):
    _same_pixels(real_jpeg(name))


@pytest.mark.parametrize("path", sorted(PHOTOS.glob("*.jpg")), ids=lambda path: path.name)
def test_the_labelled_test_photographs_decode_to_pillows_pixels(path):
    raw = path.read_bytes()
    if _pillow(raw).mode != "RGB":
        pytest.fail(f"{path.name} is not an RGB JPEG: choose another photograph for this test")
    _same_pixels(raw)


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 90), height=st.integers(1, 90), seed=st.integers(0, 2**32 - 1),
       subsampling=st.sampled_from(["4:4:4", "4:2:2", "4:2:0"]), quality=st.integers(1, 100),
       progressive=st.booleans(), restart=st.sampled_from([0, 1, 3]))
def test_any_rgb_jpeg_pillow_writes_decodes_to_pillows_pixels(width, height, seed, subsampling, quality,
                                                               progressive, restart):
    rng = np.random.default_rng(seed)
    # Half the examples smooth (gradients: the upsampler's interpolation), half noise (every coefficient).
    y, x = np.mgrid[0:height, 0:width]
    smooth = np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1)
    pixels = smooth if seed % 2 else rng.integers(0, 256, (height, width, 3))
    options = {"subsampling": subsampling, "quality": quality, "progressive": progressive}
    if restart:
        options["restart_marker_blocks"] = restart
    _same_pixels(encode(Image.fromarray(pixels.astype(np.uint8), "RGB"), "JPEG", **options))


def test_the_mapped_pixels_outlive_the_decoders_buffer_and_resize_as_pillows_do():
    raw = real_jpeg("coffee.jpg")
    ours, theirs = _same_pixels(raw), _pillow(raw)
    import gc

    gc.collect()  # nothing but the image holds the numpy buffer now
    assert ours.tobytes() == theirs.tobytes()
    assert ours.reduce(2).tobytes() == theirs.reduce(2).tobytes()
    size = (theirs.width * 3 // 5, theirs.height * 3 // 5)
    assert ours.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0).tobytes() == \
        theirs.resize(size, Image.Resampling.LANCZOS, reducing_gap=1.0).tobytes()
    assert ours.transpose(Image.Transpose.ROTATE_90).tobytes() == theirs.transpose(Image.Transpose.ROTATE_90).tobytes()
    ours.putpixel((0, 0), (1, 2, 3))  # read-only: Pillow copies before it writes, never into the buffer
    assert ours.readonly == 0 and ours.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_other_colour_spaces_are_left_to_pillow(mode):
    raw = encode(real_image().convert(mode), "JPEG")
    assert jpeg_pixels.rgb(raw, _pillow(raw).size) is None


def test_a_truncated_or_corrupt_file_is_left_to_pillow_which_gives_its_reason():
    raw = real_jpeg("chelsea.jpg")
    size = _pillow(raw).size
    truncated = raw[:len(raw) // 2]
    assert jpeg_pixels.rgb(truncated, size) is None
    with pytest.raises(ImageRejected) as rejected:
        normalise(truncated, ImageConfig(max_side=4096))
    assert rejected.value.reason == "truncated"
    scan = raw.index(b"\xff\xda")
    junk = raw[:scan + 40] + b"\xff\xd3\x00\x00" * 8 + raw[scan + 72:]  # a restart marker where none belongs
    assert jpeg_pixels.rgb(junk, size) is None  # libjpeg warns: strict refuses, Pillow decides
    assert jpeg_pixels.rgb(b"GIF89a" + raw, size) is None


def test_a_size_other_than_the_one_pillow_read_is_left_to_pillow():
    raw = real_jpeg("chelsea.jpg")
    width, height = _pillow(raw).size
    assert jpeg_pixels.rgb(raw, (width + 1, height)) is None
    assert jpeg_pixels.rgb(raw, (height, width)) is None


def test_when_the_probes_disagree_every_image_goes_to_pillow(monkeypatch, caplog):
    decode = jpeg_pixels.simplejpeg.decode_jpeg

    def off_by_one(*args, **kwargs):
        pixels = decode(*args, **kwargs)
        pixels[0, 0, 0] ^= 1
        return pixels

    monkeypatch.setattr(jpeg_pixels.simplejpeg, "decode_jpeg", off_by_one)
    with caplog.at_level(logging.WARNING, logger="pipeline.io.jpeg_pixels"):
        assert jpeg_pixels.agrees_with_pillow.__wrapped__() is False
    assert "differ from Pillow's" in caplog.text
    monkeypatch.setattr(jpeg_pixels, "agrees_with_pillow", lambda: False)
    assert jpeg_pixels.rgb(real_jpeg("chelsea.jpg"), _pillow(real_jpeg("chelsea.jpg")).size) is None


def test_this_process_libraries_agree():
    """Where this fails, the fast path is off everywhere (slower, the same bytes): a Pillow or simplejpeg
    wheel with another libjpeg-turbo than the pinned ones."""
    assert jpeg_pixels.agrees_with_pillow.__wrapped__() is True


def _with_icc_and_orientation(profile: bytes | None) -> bytes:
    """A real photograph with an EXIF orientation and, if given, an ICC profile: the two things `normalise`
    takes from the file's header rather than its pixels."""
    exif = Image.Exif()
    exif[0x0112] = 6
    extra = {"icc_profile": profile} if profile else {}
    return encode(real_image("astronaut.jpg"), "JPEG", exif=exif.tobytes(), quality=92, **extra)


def test_an_icc_profile_is_applied_to_the_mapped_pixels():
    cfg = ImageConfig(draft_supersample=0)
    plain = normalise(_with_icc_and_orientation(None), cfg)
    converted = normalise(_with_icc_and_orientation(swapped_primaries_profile()), cfg)
    assert (converted.width, converted.height) == (plain.width, plain.height)
    one, two = (np.asarray(_pillow(n.jpeg), dtype=np.float64) for n in (plain, converted))
    assert np.abs(one - two).mean() > 10  # the profile acted: without it the two are the same photo


@pytest.mark.parametrize("max_side", [512, 4096])  # resized, and stored at its own size
@pytest.mark.parametrize("name", ["coffee.jpg", "icc+orientation"])
def test_normalise_stores_the_same_bytes_whichever_decoder_ran(monkeypatch, name, max_side):
    raw = _with_icc_and_orientation(swapped_primaries_profile()) if name == "icc+orientation" else real_jpeg(name)
    cfg = ImageConfig(max_side=max_side, draft_supersample=0)
    results = []
    rgb = jpeg_pixels.rgb
    monkeypatch.setattr(jpeg_pixels, "rgb", lambda *args: results.append(rgb(*args)) or results[-1])
    mapped = normalise(raw, cfg)
    assert len(results) == 1 and results[0] is not None  # the decode into Pillow's layout ran
    monkeypatch.setattr(jpeg_pixels, "rgb", lambda *args: None)
    assert normalise(raw, cfg) == mapped


def _sof_patched(byte_offset: int, value: int, subsampling: str = "4:4:4") -> tuple[bytes, bytes]:
    """A real photograph as a baseline JPEG, and the same bytes with one byte of its frame header (counted
    from the SOF0 marker) replaced."""
    raw = encode(real_image("coffee.jpg"), "JPEG", subsampling=subsampling)
    patched = bytearray(raw)
    patched[raw.index(b"\xff\xc0") + byte_offset] = value
    return raw, bytes(patched)


def _as_before(monkeypatch, raw: bytes, cfg: ImageConfig) -> object:
    """normalise's result, or its rejection, with every JPEG decoded by Pillow (the code before)."""
    with monkeypatch.context() as patch:
        patch.setattr(jpeg_pixels, "rgb", lambda *args: None)
        try:
            return normalise(raw, cfg)
        except ImageRejected as rejected:
            return rejected.reason, rejected.detail


def _now(raw: bytes, cfg: ImageConfig) -> object:
    try:
        return normalise(raw, cfg)
    except ImageRejected as rejected:
        return rejected.reason, rejected.detail


def test_frame_types_are_read_from_the_first_frame_header():
    raw = real_jpeg("coffee.jpg")
    assert jpeg_pixels.frame_type(raw) == 0xC0
    assert jpeg_pixels.frame_type(encode(real_image(), "JPEG", progressive=True)) == 0xC2
    app = raw.index(b"\xff", 2)
    padded = raw[:app] + b"\xff" * 5 + raw[app:]  # fill bytes before a marker
    assert jpeg_pixels.frame_type(padded) == 0xC0
    scan_first = raw[:2] + raw[raw.index(b"\xff\xda"):]
    assert jpeg_pixels.frame_type(scan_first) is None
    assert jpeg_pixels.frame_type(raw[:2] + b"junk" + raw[2:]) == 0xC0  # skipped, as libjpeg skips it
    assert jpeg_pixels.frame_type(raw[:20]) is None


def test_a_real_arithmetic_coded_file_keeps_pillows_rejection(monkeypatch):
    """A real SOF9 file larger than Pillow's 64 KB feeds (tests/jpegs/SOURCES.md): Pillow cannot decode it,
    simplejpeg can, and the file must still be rejected as before, not stored."""
    raw = (Path(__file__).parent / "jpegs" / "coffee_arithmetic.jpg").read_bytes()
    assert jpeg_pixels.frame_type(raw) == 0xC9 and jpeg_pixels.simplejpeg.decode_jpeg(raw).shape == (400, 600, 3)
    assert jpeg_pixels.rgb(raw, (600, 400)) is None
    for cfg in (ImageConfig(), ImageConfig(max_side=4096)):
        before = _as_before(monkeypatch, raw, cfg)
        assert before[0] == "corrupt" and "broken data stream" in before[1]
        assert _now(raw, cfg) == before


def test_arithmetic_data_faults_are_what_libjpeg_reports_decoding_all_the_data():
    jpegs = Path(__file__).parent / "jpegs"
    huffman = (jpegs / "coffee_small.jpg").read_bytes()
    for genuine in ("coffee_small_arithmetic.jpg", "coffee_small_arithmetic_progressive.jpg", "coffee_arithmetic.jpg"):
        assert jpeg_pixels.coding_fault((jpegs / genuine).read_bytes()) is None
    assert jpeg_pixels.coding_fault(huffman) is None  # not arithmetic-coded: not looked at
    relabelled = bytearray(huffman)
    relabelled[huffman.index(b"\xff\xc0") + 1] = 0xC9
    fault = jpeg_pixels.coding_fault(bytes(relabelled))
    assert fault is not None and "Corrupt JPEG data" in fault
    assert jpeg_pixels.coding_fault(bytes(relabelled[:len(huffman) // 2])) is not None  # cut short


@pytest.mark.parametrize("marker", [0xC3, 0xC9, 0xCA, 0xCB])  # lossless, arithmetic sequential/progressive/lossless
def test_frames_other_than_huffman_sequential_or_progressive_are_left_to_pillow(monkeypatch, marker):
    """Pillow feeds libjpeg 64 KB at a time and libjpeg's arithmetic decoder cannot wait for more data, so
    Pillow rejects a larger arithmetic-coded file that one whole-buffer decode would store: such files, and
    every frame type but SOF0-2, keep Pillow's outcome."""
    _, patched = _sof_patched(1, marker)
    assert jpeg_pixels.frame_type(patched) == marker
    assert jpeg_pixels.rgb(patched, _pillow_size(patched)) is None
    cfg = ImageConfig(max_side=4096)
    assert _now(patched, cfg) == _as_before(monkeypatch, patched, cfg)


def _pillow_size(raw: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(raw)) as opened:
        return opened.size


def test_a_header_simplejpeg_cannot_name_is_left_to_pillow_not_a_crash(monkeypatch):
    """Luma sampled 1x4, chroma 1x1 (libjpeg-turbo 3's 4:4:1): simplejpeg 1.9.0's header call raises KeyError."""
    _, patched = _sof_patched(11, 0x14)
    assert jpeg_pixels.rgb(patched, _pillow_size(patched)) is None
    for cfg in (ImageConfig(), ImageConfig(max_side=4096)):
        assert _now(patched, cfg) == _as_before(monkeypatch, patched, cfg)


def _header_segments(raw: bytes) -> list[int]:
    """Where each segment of the JPEG `raw` (no junk, no fill bytes) after its first starts, up to its first scan's
    header (before the first Pillow's signature check wants the 0xFF of a marker)."""
    starts, pos = [], 2
    while raw[pos + 1] != jpeg_pixels.SOS:
        starts.append(pos)
        pos += 2 + int.from_bytes(raw[pos + 2:pos + 4], "big")
    return [*starts[1:], pos]


_PROGRESSIVE_444 = encode(real_image("chelsea.jpg"), "JPEG", progressive=True, subsampling="4:4:4")
_NO_MARKER = st.one_of(st.binary(min_size=1, max_size=8).map(lambda junk: junk.replace(b"\xff", b"\x00")),
                       st.sampled_from([b"\xff\x00", b"\x00\xff\x00", b"\xff\xff\x00"]))


@settings(max_examples=60, deadline=None)
@given(inserts=st.lists(st.tuples(st.integers(0, 100), st.one_of(_NO_MARKER, st.binary(min_size=0, max_size=4).map(
    lambda fill: b"\xff" * len(fill)))), max_size=4))
def test_the_header_is_walked_through_bytes_between_segments_as_libjpeg_skips_them(inserts):
    """libjpeg skips anything between two segments up to the next marker (warning of extraneous data), and so does
    Pillow: the frame, the tables and the first scan a walk reads are the same with junk, FF 00 pairs or fill bytes
    there (one junk byte hid a progressive frame's coefficients from the budget and a relabelled frame from
    coding_fault)."""
    raw = _PROGRESSIVE_444
    starts = _header_segments(raw)
    junked = bytearray(raw)
    for at, junk in sorted(((starts[index % len(starts)], junk) for index, junk in inserts), reverse=True):
        junked[at:at] = junk
    junked = bytes(junked)
    assert jpeg_pixels.frame_type(junked) == 0xC2
    assert jpeg_pixels.defines_huffman_tables(junked)
    assert jpeg_pixels.coefficient_bytes(junked) == jpeg_pixels.coefficient_bytes(raw) == \
        128 * 3 * (-(-_pillow(raw).width // 8)) * (-(-_pillow(raw).height // 8))
    with Image.open(io.BytesIO(junked)) as opened:  # Pillow walks through it too
        assert opened.size == _pillow(raw).size


def test_an_arithmetic_data_fault_is_found_past_bytes_between_segments():
    huffman = (Path(__file__).parent / "jpegs" / "coffee_small.jpg").read_bytes()
    frame = huffman.index(b"\xff\xc0")
    relabelled = bytearray(huffman[:frame] + b"\x00" + huffman[frame:])
    relabelled[frame + 2] = 0xC9
    fault = jpeg_pixels.coding_fault(bytes(relabelled))
    assert fault is not None and "Corrupt JPEG data" in fault
