import contextlib
import ctypes
import hashlib
import io
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import apache_beam as beam
import imagehash
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, JpegImagePlugin

from pipeline.io import jpeg_pixels
from pipeline.io.image_headers import MAX_JPEG_BLOCK_PASSES, MAX_JPEG_SCANS, check_jpeg_structure
from pipeline.stages import image as image_stage
from pipeline.stages.image import ImageConfig, ImageRejected, NormaliseImages, normalise
from tests import bad_images
from tests.conftest import (
    encode,
    grey_profile,
    local_pipeline,
    photo,
    real_image,
    real_jpeg,
    swapped_primaries_profile,
)
from tests.test_exif_orientation import exif_block

CFG = ImageConfig(max_side=512, min_side=64, max_pixels=64_000_000)


def reason(raw: bytes, cfg: ImageConfig = CFG) -> str:
    with pytest.raises(ImageRejected) as info:
        normalise(raw, cfg)
    return info.value.reason


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")


def peak_memory_growth_mib(action: Callable[[], object]) -> float:
    """How far the process's peak resident memory rose while `action` ran. Pillow allocates pixels
    in C, which tracemalloc cannot see; resetting the kernel's high-water mark first can. What earlier tests freed
    is handed back to the kernel first (malloc_trim): glibc keeps it, and `action` reusing it did not raise the peak
    (one 16 MP PNG measured 116 MiB after a test decoding larger JPEGs, ~250 alone)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS
    except OSError:
        pytest.skip("measuring peak memory needs Linux's /proc/self/clear_refs")
    before = _peak_rss_kib()
    action()
    return (_peak_rss_kib() - before) / 1024


def rejection_of(raw: bytes, cfg: ImageConfig = CFG) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        normalise(raw, cfg)
    return info.value


def assert_no_metadata(jpeg: bytes) -> None:
    img = Image.open(io.BytesIO(jpeg))
    assert not img.getexif() and "exif" not in img.info and "icc_profile" not in img.info
    for marker in (b"Exif\x00\x00", b"http://ns.adobe.com/xap", b"CameraMaker"):
        assert marker not in jpeg


@pytest.mark.parametrize("raw,expected", [
    (b"", "empty"),
    (bad_images.HTML, "not_an_image"),
    (b"\x00" * 100, "not_an_image"),
    (bad_images.truncated_jpeg(), "truncated"),
    (bad_images.png_bomb(), "too_many_pixels"),
    (bad_images.one_by_one(), "too_small"),
    (bad_images.single_colour(), "blank"),
])
def test_bad_input_gets_a_clear_reason(raw, expected):
    assert reason(raw) == expected


@pytest.mark.parametrize("make,expected", [
    (bad_images.png_with_broken_image_data, "corrupt"),  # Pillow raised OSError from getexif(), i.e. load()
    (bad_images.webp_with_broken_bitstream, "corrupt"),  # ... and from Image.open
    (bad_images.jpeg_truncated_in_header, "truncated"),
])
def test_broken_files_get_a_reason_not_an_exception(make, expected):
    assert reason(make()) == expected


def test_malformed_exif_still_orients_the_image():
    result = normalise(bad_images.exif_with_mistyped_tag(), CFG)
    assert result == normalise(bad_images.exif_rotated_jpeg()[0], CFG)  # same upright pixels, same hashes
    assert_no_metadata(result.jpeg)


def test_bomb_is_refused_before_decoding():
    # 144 megapixels: a full decode would allocate 144 MB; the header check refuses it first.
    assert reason(bad_images.png_bomb(12_000), ImageConfig(max_pixels=100_000_000)) == "too_many_pixels"


def test_real_photo_is_resized_to_max_side_keeping_aspect():
    result = normalise(real_jpeg("hubble_deep_field.jpg"), CFG)  # 1000 x 872
    assert (result.width, result.height) == (512, 446)
    assert (result.original_width, result.original_height) == (1000, 872)
    assert result.original_format == "JPEG" and len(result.phash) == 16
    assert_no_metadata(result.jpeg)


def test_small_images_are_not_upscaled():
    result = normalise(real_jpeg("chelsea.jpg"), CFG)
    assert (result.width, result.height) == (451, 300)


def test_exif_orientation_applied_and_all_metadata_stripped():
    raw, displayed = bad_images.exif_rotated_jpeg()
    assert b"CameraMaker" in raw and Image.open(io.BytesIO(raw)).getexif().get_ifd(0x8825)  # GPS really there
    result = normalise(raw, CFG)
    assert (result.original_width, result.original_height) == displayed
    assert result.height > result.width  # portrait after rotation
    assert_no_metadata(result.jpeg)


def _oriented_landscape(entry_type: int, value: bytes) -> bytes:
    """A 2,400 x 1,200 JPEG, left half dark, whose EXIF Orientation (6: turn 90 degrees clockwise) is written
    with the given TIFF type: 3 is the SHORT the standard says, 5 a RATIONAL, 12 a DOUBLE."""
    pixels = np.full((1200, 2400, 3), 230, np.uint8)
    pixels[:, :1200] = 20
    count_and_value = struct.pack(">I", 1) + (value.ljust(4, b"\0") if len(value) <= 4 else struct.pack(">I", 26))
    ifd = struct.pack(">H", 1) + struct.pack(">HH", 0x0112, entry_type) + count_and_value + struct.pack(">I", 0)
    exif = b"Exif\0\0MM\0\x2a" + struct.pack(">I", 8) + ifd + (value if len(value) > 4 else b"")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


@pytest.mark.parametrize("entry_type,value,turned", [
    (3, struct.pack(">H", 6), True), (5, struct.pack(">II", 6, 1), False), (12, struct.pack(">d", 6.0), False)],
    ids=["short", "rational", "double"])
def test_an_orientation_that_is_not_an_integer_is_ignored_for_size_and_pixels_alike(entry_type, value, turned):
    """A RATIONAL 6/1 or DOUBLE 6.0 equals 6: it once swapped the size without turning the pixels, and a
    drafted JPEG's landscape was squashed into a portrait box. Only a SHORT is applied, to both."""
    raw = _oriented_landscape(entry_type, value)
    assert Image.open(io.BytesIO(raw)).getexif().get(0x0112) == 6  # the tag really is there, whatever its type
    result = normalise(raw, CFG)
    grey = np.asarray(Image.open(io.BytesIO(result.jpeg)).convert("L"), dtype=np.float64)
    if turned:  # the dark left half is now the top half
        assert (result.width, result.height) == (256, 512) and (result.original_width, result.original_height) == (
            1200, 2400)
        assert grey[:256].mean() < 60 and grey[256:].mean() > 190
    else:
        assert (result.width, result.height) == (512, 256) and (result.original_width, result.original_height) == (
            2400, 1200)
        assert grey[:, :256].mean() < 60 and grey[:, 256:].mean() > 190


@pytest.mark.parametrize("mode,key", [("RGB", (0, 0, 0)), ("L", 0), ("I;16", 0)])
def test_a_png_colour_key_is_transparency_composited_on_white(mode, key):
    """A grey (8 or 16 bits) or RGB PNG with a tRNS chunk names one colour transparent: it was stored as that
    colour (black here) where a palette image's or an alpha channel's transparency is white."""
    if mode == "I;16":
        pixels = (np.asarray(real_image("chelsea.jpg").convert("L"), dtype=np.uint16) * 257).copy()
    else:
        pixels = np.asarray(real_image("chelsea.jpg").convert(mode)).copy()
    pixels[:100] = 0  # the top rows in the key colour
    out = io.BytesIO()
    Image.fromarray(pixels, mode).save(out, "PNG", transparency=key)
    assert Image.open(io.BytesIO(out.getvalue())).info.get("transparency") == key  # the chunk is really there
    stored = np.asarray(Image.open(io.BytesIO(normalise(out.getvalue(), CFG).jpeg)).convert("L"), dtype=np.float64)
    assert stored[:95].mean() > 250 and stored[110:].mean() < 200  # white where transparent, the cat below


def test_an_rgb_png_colour_key_is_white_beside_an_icc_profile_too():
    """The ICC profile path returned before the colour key was looked at: the key colour was stored as it is."""
    pixels = np.asarray(real_image("chelsea.jpg").convert("RGB")).copy()
    pixels[:100] = 0
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "PNG", transparency=(0, 0, 0),
                                        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    assert Image.open(io.BytesIO(out.getvalue())).info.get("icc_profile")  # both chunks are really there
    stored = np.asarray(Image.open(io.BytesIO(normalise(out.getvalue(), CFG).jpeg)).convert("L"), dtype=np.float64)
    assert stored[:95].mean() > 250 and stored[110:].mean() < 200


@pytest.mark.parametrize("key,near", [((0, 0, 0), 40), ((300, 300, 300), 44), ((65535, 0, 65535), None)],
                         ids=["black-key-beside-near-black", "key-above-255", "magenta-key"])
def test_a_16_bit_rgb_png_colour_key_makes_exactly_its_pixels_white(key, near):
    """Pillow keeps a 16-bit sample's high byte and compared those with the key's low bytes: a black key made every
    pixel below 1/256 of full scale white too, a key of 300 made nothing transparent. Only the key's pixels are."""
    pixels = np.asarray(real_image("chelsea.jpg").convert("RGB")).astype(np.uint32) * 257
    pixels[:100] = key
    if near is not None:
        pixels[100:200] = near  # one 16-bit step from the key's high byte, or below: dark, not transparent
    stored = np.asarray(Image.open(io.BytesIO(normalise(bad_images.rgb16_png(pixels, key), CFG).jpeg)).convert("L"),
                        dtype=np.float64)
    assert stored[:95].mean() > 250  # the key's pixels: white
    if near is not None:
        assert stored[105:195].mean() < 5  # near-black stays near black
    assert abs(stored[205:].mean() - np.asarray(real_image("chelsea.jpg").convert("L"))[205:].mean()) < 3


@pytest.mark.parametrize("size,orientation,stored", [
    ((451, 300), 1, (451, 300)),  # the decoded image itself is stored: it is copied first
    ((1024, 681), 1, (512, 340)),  # an exact 2x box reduction: a new image carrying the source's info
    ((903, 600), 1, (512, 340)),  # a Lanczos resize: the same
    ((451, 300), 6, (300, 451)),  # a transposed image at its own size: the same
])
def test_a_stored_photo_keeps_no_comment_xmp_or_exif(size, orientation, stored):
    """Whatever made the stored pixels (nothing, a reduction, a resize, a turn), the image they are encoded
    from carries the source's info (comment, XMP, EXIF, ICC) until normalise empties it: only pixels may
    reach the file, and the decoded source object is never changed in place."""
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif[0x0112] = orientation
    xmp = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>http://ns.adobe.com/xap secret</x:xmpmeta>"
    buffer = io.BytesIO()
    real_image("chelsea.jpg").resize(size).save(buffer, "JPEG", quality=90, comment=b"secret comment", xmp=xmp,
                                                exif=exif.tobytes())
    raw = buffer.getvalue()
    decoded = Image.open(io.BytesIO(raw))
    assert {"comment", "xmp", "exif"} <= set(decoded.info) and decoded.size == size  # all really there
    result = normalise(raw, CFG)
    assert (result.width, result.height) == stored
    assert_no_metadata(result.jpeg)
    assert b"secret" not in result.jpeg and "comment" not in Image.open(io.BytesIO(result.jpeg)).info


def test_the_source_image_is_copied_before_its_info_is_emptied(monkeypatch):
    """Stored at its own size, the opened file object is what would be encoded: normalise copies it
    instead of emptying the info of an image it was handed by Image.open."""
    raw = encode(real_image("chelsea.jpg"), "JPEG", quality=90, comment=b"note")
    opened: list[Image.Image] = []
    real_open = image_stage._open

    def observed(data: bytes) -> Image.Image:
        opened.append(real_open(data))
        return opened[-1]

    monkeypatch.setattr(image_stage, "_open", observed)
    normalise(raw, CFG)
    assert opened[0].info.get("comment") == b"note"


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64), st.sampled_from(["L", "RGB"]), st.integers(0, 2**32 - 1),
       st.integers(0, 255))
def test_channel_stddev_is_the_exact_population_stddev(width, height, mode, seed, spread):
    """Against the brute force: Python's statistics.pstdev of each band's values (exact rational arithmetic
    on integers), the largest; flat, near-flat and noisy images."""
    import statistics

    bands = len(mode)
    values = np.random.default_rng(seed).integers(0, spread + 1, (height, width, bands), dtype=np.uint8)
    img = Image.fromarray(values[:, :, 0] if bands == 1 else values, mode)
    expected = max(statistics.pstdev(values[:, :, band].ravel().tolist()) for band in range(bands))
    assert math.isclose(image_stage.channel_stddev(img), expected, rel_tol=1e-12, abs_tol=1e-12)
    # numpy's float64 std agrees to its own precision (the float32 one it replaced was off by up to ~3e-5)
    assert math.isclose(image_stage.channel_stddev(img),
                        float(np.asarray(img, dtype=np.float64).reshape(height, width, bands).std(axis=(0, 1)).max()),
                        rel_tol=1e-9, abs_tol=1e-9)


def test_channel_stddev_refuses_an_image_too_large_for_exact_sums_or_wider_than_8_bits():
    with pytest.raises(ValueError, match="too many pixels"):
        image_stage.channel_stddev(Image.new("L", (4000, 3000)))
    wide = Image.fromarray(np.array([[0, 2**30], [2**30, 0]], dtype=np.int32), "I")
    with pytest.raises(ValueError, match="8-bit"):
        image_stage.channel_stddev(wide)
    for mode in ("I;16", "I;16B", "F", "1"):  # Pillow's histogram of these is not 256 bins of 8-bit values
        with pytest.raises(ValueError, match="8-bit"):
            image_stage.channel_stddev(Image.new(mode, (4, 4)))


@pytest.mark.parametrize("raw", [b"\xff", b"\xff\xd8", b"\xff\xd8\xff", b"\x89P", b"GIF", b"RIFF"])
def test_a_file_of_a_few_bytes_is_rejected_not_a_crash(raw):
    """Some of Pillow's signature checks read 4 bytes or more; Image.open catches what they raise on a shorter
    prefix, and so must the format check before it (b"\xff\xd8" raised struct.error)."""
    with pytest.raises(ImageRejected):
        normalise(raw, CFG)


@pytest.mark.parametrize("make,fmt", [
    (bad_images.cmyk_jpeg, "JPEG"),
    (bad_images.png16, "PNG"),
    (bad_images.animated_gif, "GIF"),
    (bad_images.rgba_png, "PNG"),
])
def test_awkward_modes_become_rgb(make, fmt):
    result = normalise(make(), CFG)
    stored = Image.open(io.BytesIO(result.jpeg))
    assert stored.mode == "RGB" and stored.format == "JPEG" and result.original_format == fmt


def test_sixteen_bit_png_keeps_its_contrast():
    stored = Image.open(io.BytesIO(normalise(bad_images.png16(), CFG).jpeg)).convert("L")
    reference = real_image("coffee.jpg").convert("L")
    assert abs(stored.getextrema()[1] - reference.getextrema()[1]) < 12  # scaled, not clipped to white


def test_animated_gif_keeps_first_frame():
    stored = Image.open(io.BytesIO(normalise(bad_images.animated_gif(), CFG).jpeg))
    first = real_image("chelsea.jpg")
    assert imagehash.phash(stored) - imagehash.phash(first) <= 6


def test_phash_is_of_the_stored_image_and_deterministic():
    one, two = normalise(real_jpeg(), CFG), normalise(real_jpeg(), CFG)
    assert one == two
    # computed on the stored pixels before JPEG encoding: decoding the JPEG moves it by a bit or two at most
    assert imagehash.hex_to_hash(one.phash) - imagehash.phash(Image.open(io.BytesIO(one.jpeg))) <= 2


def test_hashes_are_exactly_imagehash_of_the_stored_pixels():
    """Pins the hash values, so that a faster way of computing them cannot change a release's bytes."""
    result = normalise(real_jpeg(), CFG)
    img = Image.open(io.BytesIO(real_jpeg()))
    img.draft("RGB", (CFG.max_side, CFG.max_side))
    rgb = img.convert("RGB")
    stored = rgb.resize((result.width, result.height), Image.Resampling.LANCZOS) if rgb.width > CFG.max_side \
        or rgb.height > CFG.max_side else rgb
    assert (result.phash, result.dhash) == (str(imagehash.phash(stored)), str(imagehash.dhash(stored)))


def test_stored_pixels_are_converted_to_grey_once_for_both_hashes(monkeypatch):
    """pHash and dHash both start from the greyscale stored image: one conversion, not one each."""
    conversions = []
    convert = Image.Image.convert

    def counting(self, mode=None, *args, **kwargs):
        if mode == "L" and self.mode == "RGB":
            conversions.append(self.size)
        return convert(self, mode, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "convert", counting)
    result = normalise(real_jpeg(), CFG)
    assert conversions.count((result.width, result.height)) == 1


def test_recompressed_copy_has_close_phash():
    original = normalise(real_jpeg("coffee.jpg"), CFG)
    copy = normalise(encode(real_image("coffee.jpg").resize((300, 200)), "JPEG", quality=60), CFG)
    assert imagehash.hex_to_hash(original.phash) - imagehash.hex_to_hash(copy.phash) <= 4


def test_stage_hashes_and_drops_raw_bytes():
    raw = real_jpeg()
    photos = [photo("1", raw=raw), photo("2", raw=bad_images.HTML)]
    with local_pipeline() as p:
        out = p | beam.Create(photos) | NormaliseImages(CFG)

        def summary(ph):
            return (ph.photo_id, ph.raw, ph.download_sha256, ph.sha256 == hashlib.sha256(ph.image).hexdigest())

        assert_that(out.kept | beam.Map(summary),
                    equal_to([("1", b"", hashlib.sha256(raw).hexdigest(), True)]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason)),
                    equal_to([("2", "image", "not_an_image")]), label="rejected")


# --- hostile structure: refused from the header, before any pixel is decoded ------------------------------------


def test_jpeg_with_thousands_of_scans_is_refused_before_decoding():
    raw = bad_images.jpeg_scan_bomb(8000, 20_000)  # ~2.5 MB; decoding it would take minutes of CPU
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    rejected = rejection_of(raw)
    assert (rejected.reason, time.process_time() - started < 2.0) == ("too_many_scans", True)


def test_scan_limit_counts_real_scans_only():
    # At the limit the file is decoded as usual (and is a flat grey, so "blank"); one more scan is refused.
    assert reason(bad_images.jpeg_scan_bomb(64, MAX_JPEG_SCANS)) == "blank"
    assert reason(bad_images.jpeg_scan_bomb(64, MAX_JPEG_SCANS + 1)) == "too_many_scans"
    # SOS marker bytes inside a comment segment (or an embedded EXIF thumbnail) are not scans.
    photo_with_noise = encode(real_image(), "JPEG", quality=90, comment=b"\xff\xda\x00\x08" * 5000)
    assert normalise(photo_with_noise, CFG).original_format == "JPEG"


def test_scans_that_pass_over_a_large_image_too_many_times_are_refused_before_decoding():
    """100 scans (the limit) each visiting all 1 M blocks of an 8000 x 8000 file of 137 KB took 1.5 s of CPU; 100
    real refinement scans of a 64 MP 4:4:4 file (770 KB, jpegtran) 3.8 s (2026-12-04). What a scan costs is the
    blocks it visits: 12 passes over the image's blocks are decoded (libjpeg's own progressive scripts make ~5)."""
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    assert reason(bad_images.jpeg_scan_bomb(8000, MAX_JPEG_SCANS)) == "too_many_scans"
    assert time.process_time() - started < 0.5
    assert reason(bad_images.jpeg_scan_bomb(8000, MAX_JPEG_BLOCK_PASSES + 1)) == "too_many_scans"
    assert reason(bad_images.jpeg_scan_bomb(8000, MAX_JPEG_BLOCK_PASSES)) == "blank"  # decoded
    for subsampling in ("4:2:0", "4:4:4"):
        progressive = encode(real_image("chelsea.jpg"), "JPEG", progressive=True, subsampling=subsampling)
        assert normalise(progressive, CFG).original_format == "JPEG"
        last_scan = progressive.rindex(b"\xff\xda")
        for cut in range(last_scan, last_scan + 6):  # cut inside the scan header: a reason, never an IndexError
            assert reason(progressive[:cut]) in ("truncated", "corrupt")


def test_a_lossless_jpeg_may_code_each_component_once_or_twice():
    """A lossless frame's scans decode every sample: 0.22 s of CPU a pass over a 64 MP component of a flat file (1 bit
    a sample), 6 times a refinement scan's pass over the same pixels. Each 8 x 8 samples count as 6 block visits, and
    a lossless file passing over its components more than twice is refused before decoding (an arithmetic-coded one
    more than once: its data is decoded twice)."""
    assert reason(bad_images.lossless_jpeg(1600, 1)) == "blank"  # decoded (a flat grey)
    assert reason(bad_images.lossless_jpeg(1600, 2)) == "blank"
    rejected = rejection_of(bad_images.lossless_jpeg(1600, 3))
    assert (rejected.reason, "lossless" in rejected.detail) == ("too_many_scans", True)


_NORMALISED = """
import sys
from pathlib import Path
from pipeline.stages import image
try:
    result = image.normalise(Path(sys.argv[1]).read_bytes(), image.ImageConfig())
    print("stored", result.width, result.height)
except image.ImageRejected as rejected:
    print(rejected.reason, rejected.detail)
"""


def test_a_large_lossless_jpeg_is_decoded_at_full_size_not_drafted(tmp_path):
    """libjpeg cannot scale a lossless frame and decodes it at full size, whatever Pillow asks: drafted to 1/2, a
    3000 x 3000 lossless JPEG's rows overran the ones Pillow made for 1500 x 1500, and the process died (SIGSEGV, or
    glibc's "double free or corruption"). In a process of its own: before, it took the test run with it."""
    (tmp_path / "lossless").write_bytes(bad_images.lossless_jpeg(3000, 1))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-c", _NORMALISED, str(tmp_path / "lossless")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.split()[:1]) == (0, ["blank"]), done.stderr[-500:]  # decoded: a flat grey


@pytest.mark.parametrize("make,expected", [
    # Pillow walks the header in Python: 20 MB of these cost it 10-50 s before the first pixel.
    pytest.param(lambda: bad_images.jpeg_with_header_padding(b"\xff\xe0\x00\x02" * 5000), "too_many_segments",
                 id="jpeg-5000-empty-APP0"),
    pytest.param(lambda: bad_images.jpeg_with_header_padding(b"\xff" * 1_000_000), "corrupt", id="jpeg-1MB-fill-bytes"),
    pytest.param(lambda: bad_images.png_with_chunks([(b"abXd", b"")] * 100_000), "too_many_segments",
                 id="png-100000-empty-chunks"),
])
def test_header_floods_are_refused_before_pillow_walks_them(make, expected):
    raw = make()
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    assert reason(raw) == expected
    assert time.process_time() - started < 1.0  # the walk takes milliseconds; Pillow took seconds


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "ICO"])
def test_formats_outside_the_allowed_list_are_named(fmt):
    rejected = rejection_of(encode(real_image(), fmt))
    assert (rejected.reason, rejected.detail) == ("unsupported_format", fmt)


def test_icon_wrapping_a_huge_png_is_refused_without_decoding_it():
    # 190 KB: an ICO declaring 256 x 256 whose image is a 14000 x 14000 PNG (196 MB once decoded).
    raw = bad_images.ico_holding(bad_images.png_bomb(14_000))
    rejections = []
    growth = peak_memory_growth_mib(lambda: rejections.append(rejection_of(raw)))
    assert (rejections[0].reason, rejections[0].detail) == ("unsupported_format", "ICO")
    assert growth < 40, f"peak memory grew by {growth:.0f} MiB"


def _alpha_png(side: int) -> bytes:
    """A `side` x `side` PNG with alpha of a few kB: ~18 bytes a pixel to decode, composite and convert."""
    img = Image.new("RGBA", (side, side), (40, 90, 160, 200))
    img.paste(Image.new("RGBA", (side // 2, side // 2), (250, 20, 20, 60)), (0, 0))
    return encode(img, "PNG")


def test_threads_decoding_huge_images_share_the_process_pixel_budget():
    """--max_pixels bounds one image, the budget a process: six threads each given a 16 MP PNG with alpha (a
    hostile source's cheapest way to spend memory) decode them one at a time under a 16 MP budget, so the peak
    is about one image's, not six's."""
    import threading

    raw = _alpha_png(4000)
    cfg = replace(CFG, decode_pixel_budget=16_000_000)
    one = peak_memory_growth_mib(lambda: normalise(raw, cfg))
    results: list[object] = []

    def six_at_once() -> None:
        threads = [threading.Thread(target=lambda: results.append(normalise(raw, cfg))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    growth = peak_memory_growth_mib(six_at_once)
    assert len(results) == 6 and len({result.jpeg for result in results}) == 1
    assert one > 150, f"one image grew the peak by only {one:.0f} MiB: the test no longer measures decoding"
    # Not 1x: glibc gives each thread its own malloc arena and keeps what a finished thread freed there. Without
    # the budget, ~4x here (six threads on two cores).
    assert growth < 2.5 * one, f"six threads grew the peak by {growth:.0f} MiB, one image by {one:.0f} MiB"


def test_the_budget_counts_the_pixels_decoded_not_the_header_s(monkeypatch):
    # A JPEG decoded at reduced scale (draft) takes only its drafted pixels from the budget.
    held: list[int] = []
    budget = image_stage.process_budget(CFG.decode_pixel_budget)
    real_hold = budget.hold
    monkeypatch.setattr(budget, "hold", lambda pixels: (held.append(pixels), real_hold(pixels))[1])
    big = real_image().resize((4096, 3072))
    normalise(encode(big, "JPEG"), CFG)
    normalise(encode(big, "PNG"), CFG)
    assert held == [1024 * 768, 4096 * 3072]  # drafted at 1/4 (twice the stored 512 x 384), the PNG in full


def _frames(side: int, mode: str, count: int = 2) -> list[Image.Image]:
    """`count` frames of `side` x `side` in `mode`: gradients (a few kB once compressed) with a corner of noise,
    each frame's alpha its own."""
    rng = np.random.default_rng(side)
    frames = []
    for index in range(count):
        pixels = np.zeros((side, side, 4), np.uint8)
        pixels[..., 0] = np.arange(side)[None, :] * 255 // side
        pixels[..., 1] = np.arange(side)[:, None] * 255 // side
        pixels[:64, :64, :3] = rng.integers(0, 256, (64, 64, 3))
        pixels[..., 3] = 200 + 10 * index
        frames.append(Image.fromarray(pixels, "RGBA").convert(mode))
    return frames


def _grey16(side: int) -> np.ndarray:
    return (np.arange(side)[None, :] * 65_000 // side + np.arange(side)[:, None] * 500 // side).astype(np.uint16)


def _animated(side: int, mode: str, fmt: str, **params) -> bytes:
    frames = _frames(side, mode) if fmt != "GIF" else [frame.convert("P") for frame in _frames(side, mode)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], **params)


def _turned(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


_PEAK_AND_HOLD = """
import sys
from pathlib import Path
from pipeline.stages import image
held = []
budget = image.process_budget(image.ImageConfig().decode_pixel_budget)
real_hold = budget.hold
budget.hold = lambda pixels: (held.append(pixels), real_hold(pixels))[1]
def peak_kib():
    return next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
image.normalise(Path(sys.argv[2]).read_bytes(), image.ImageConfig())  # the plugin's first use
raw = Path(sys.argv[1]).read_bytes()
Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak RSS to the current RSS
before = peak_kib()
image.normalise(raw, image.ImageConfig())
print(peak_kib() - before, held[-1])
"""


@pytest.mark.parametrize("make", [
    pytest.param(lambda side: _animated(side, "RGBA", "WEBP", quality=50, method=0), id="webp-animated-alpha"),
    pytest.param(lambda side: encode(_frames(side, "RGBA")[0], "WEBP", quality=50, method=0), id="webp-alpha"),
    pytest.param(lambda side: _animated(side, "RGB", "WEBP", quality=50, method=0), id="webp-animated"),
    pytest.param(lambda side: _animated(side, "RGBA", "PNG"), id="png-animated-alpha"),
    pytest.param(lambda side: _animated(side, "RGB", "GIF"), id="gif-animated"),
    pytest.param(lambda side: encode(_frames(side, "LA")[0], "PNG"), id="png-grey-alpha"),
    pytest.param(lambda side: encode(_frames(side, "RGB")[0].convert("P"), "PNG"), id="png-palette"),
    pytest.param(lambda side: encode(Image.fromarray(_grey16(side)), "PNG", transparency=5), id="png-grey16-key"),
    pytest.param(lambda side: bad_images.rgb16_png(np.stack([_grey16(side)] * 3, axis=-1), (1, 2, 3)),
                 id="png-rgb16-key"),
    pytest.param(lambda side: encode(_frames(side, "RGB")[0], "PNG", transparency=(1, 2, 3)), id="png-rgb-key"),
    pytest.param(lambda side: encode(_frames(side, "L")[0], "PNG", transparency=5), id="png-grey-key"),
    # Turned upright by their EXIF: the turned copy was held beside the decoded pixels through the compositing (a
    # PNG with alpha 20 bytes a pixel at the peak, counted 16; grey with alpha 24, a WebP with alpha 28).
    pytest.param(lambda side: encode(_frames(side, "RGBA")[0], "PNG", exif=_turned()), id="png-alpha-turned"),
    pytest.param(lambda side: encode(_frames(side, "LA")[0], "PNG", exif=_turned()), id="png-grey-alpha-turned"),
    pytest.param(lambda side: encode(_frames(side, "RGBA")[0], "WEBP", quality=50, method=0, exif=_turned()),
                 id="webp-alpha-turned"),
])
def test_what_an_image_takes_from_the_budget_covers_its_peak_memory(tmp_path, make):
    """The budget counts a pixel as 16 bytes; a source whose pixels take more at the peak must take more from it
    (a 6000 x 6000 WebP with alpha took 823 MiB, counted as 549). Measured in a process of its own, where no
    earlier test's freed memory hides the growth; 3000 x 3000: every buffer is mmapped afresh (over glibc's 32 MiB
    threshold), so the peak grows with the pixels; a few MiB for the rest."""
    _assert_the_budget_covers_the_peak(tmp_path, make(3000), make(256))


def _assert_the_budget_covers_the_peak(tmp_path: Path, large: bytes, small: bytes) -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("measuring peak memory needs Linux's /proc/self/clear_refs")
    (tmp_path / "large").write_bytes(large)
    (tmp_path / "small").write_bytes(small)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-c", _PEAK_AND_HOLD, str(tmp_path / "large"), str(tmp_path / "small")],
                          env=env, capture_output=True, text=True, timeout=300, check=True)
    growth_kib, held = map(int, done.stdout.split())
    growth = growth_kib / 1024
    assert growth > 100, f"the peak grew by only {growth:.0f} MiB: the test no longer measures decoding"
    assert growth <= held * 16 / 2**20 + 8, f"{growth:.0f} MiB at the peak, {held:,} pixels taken"


def _gradient_jpeg(side: int, **params) -> bytes:
    return encode(_frames(side, "RGB", count=1)[0], "JPEG", quality=90, **params)


def _junk_before_the_frame(jpeg: bytes) -> bytes:
    """`jpeg` with a byte that is no marker before its frame header, which libjpeg (with a warning) and Pillow skip."""
    frame = min(jpeg.index(bytes([0xFF, code])) for code in (0xC0, 0xC2) if bytes([0xFF, code]) in jpeg)
    return jpeg[:frame] + b"\x00" + jpeg[frame:]


def _non_interleaved(jpeg: bytes) -> bytes:
    """`jpeg` re-coded by jpegtran (the same coefficients) with each component in a scan of its own."""
    if shutil.which("jpegtran") is None:
        pytest.skip("needs jpegtran (libjpeg-turbo-progs)")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "scans").write_text("0;\n1;\n2;\n")
        return subprocess.run(["jpegtran", "-scans", str(Path(folder) / "scans")], input=jpeg, capture_output=True,
                              check=True, timeout=60).stdout


@pytest.mark.parametrize("make", [
    pytest.param(lambda side: _gradient_jpeg(side, progressive=True, subsampling="4:4:4"), id="progressive-4:4:4"),
    pytest.param(lambda side: _non_interleaved(_gradient_jpeg(side, subsampling="4:2:0")),
                 id="a-scan-per-component-4:2:0"),
    pytest.param(lambda side: _junk_before_the_frame(_gradient_jpeg(side, progressive=True, subsampling="4:4:4")),
                 id="progressive-4:4:4-junk-before-its-frame"),
])
def test_a_jpeg_whose_coefficients_libjpeg_holds_whole_takes_them_from_the_budget(tmp_path, make):
    """libjpeg keeps every DCT coefficient of a progressive JPEG, or of one whose components come in scans of their
    own, whatever the scale it decodes at: a 36 MP 4:4:4 file drafted to 1500 x 1500 took 215 MiB at the peak, and
    the budget counted its 2.25 M decoded pixels (34 MiB); 64 MP, 385 MiB counted as 16 (2026-12-04). One byte of
    junk before the frame header (libjpeg and Pillow skip it) hid the coefficients from the count: 215 MiB, 34
    counted."""
    _assert_the_budget_covers_the_peak(tmp_path, make(6000), make(256))


def test_coefficient_bytes_are_counted_only_where_libjpeg_holds_them_whole():
    baseline = _gradient_jpeg(1000, subsampling="4:2:0")
    assert jpeg_pixels.coefficient_bytes(baseline) == 0  # decoded a row of blocks at a time
    assert jpeg_pixels.coefficient_bytes(_gradient_jpeg(1000, progressive=True, subsampling="4:2:0")) == \
        128 * (126 * 126 + 2 * 63 * 63)  # luma 125 x 125 blocks rounded up to whole MCUs of 2 x 2; chroma 63 x 63
    assert jpeg_pixels.coefficient_bytes(_gradient_jpeg(1000, progressive=True, subsampling="4:4:4")) == \
        128 * 3 * 125 * 125
    assert jpeg_pixels.coefficient_bytes(baseline[:200]) == 0  # no scan


@pytest.mark.parametrize("make", [
    pytest.param(lambda: bad_images.png_with_chunks([bad_images.ztxt(b"Comment", 100_000_000)]), id="zTXt-100MB"),
    pytest.param(lambda: bad_images.png_with_chunks([bad_images.itxt_compressed(b"XML:com.adobe.xmp", 100_000_000)]),
                 id="iTXt-100MB"),
    pytest.param(lambda: bad_images.png_with_chunks([bad_images.ztxt(b"k%d" % i, 1_000_000) for i in range(70)]),
                 id="70-zTXt-of-1MB"),
    pytest.param(lambda: bad_images.png_with_chunks([(b"tEXt", b"Comment\x00" + b" " * 6_000_000)]), id="tEXt-6MB"),
    pytest.param(lambda: bad_images.png_with_chunks([(b"tEXt", b"k%d\x00v" % i) for i in range(5000)]),
                 id="5000-tEXt"),
    pytest.param(lambda: bad_images.png_with_chunks(after_idat=[bad_images.ztxt(b"Comment", 100_000_000)]),
                 id="zTXt-after-image-data"),
])
def test_png_text_chunk_bombs_are_metadata_bombs_and_cheap(make):
    raw = make()
    rejections = []
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    growth = peak_memory_growth_mib(lambda: rejections.append(rejection_of(raw)))
    assert rejections[0].reason == "metadata_bomb"
    assert growth < 24, f"peak memory grew by {growth:.0f} MiB"
    assert time.process_time() - started < 2.0


@pytest.mark.parametrize("chunk", [(b"tRNS", b""), (b"tRNS", b"\x01"), (b"gAMA", b"\x01\x02\x03"),
                                   (b"cHRM", b"\x01\x02\x03"), (b"iCCP", b"")], ids=lambda c: f"{c[0]!r}{len(c[1])}")
def test_a_png_chunk_cut_short_after_the_image_data_is_corrupt_not_an_internal_error(chunk):
    """Pillow runs these chunks' handlers only when it loads the pixels, where they raised struct.error or IndexError:
    the photo was an internal_error (never decided, so every refresh fetched it again), not `corrupt`."""
    raw = bad_images.png_with_chunks(after_idat=[chunk])
    assert rejection_of(raw).reason == "corrupt"
    assert rejection_of(bad_images.png_with_chunks(before_idat=[chunk])).reason in ("corrupt", "not_an_image")


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_palette_png_whose_trns_is_longer_than_any_palette_is_corrupt_not_a_crash(where):
    """Pillow keeps a tRNS of 257 alphas and raised ValueError turning the image into RGBA (2026-12-03): an exception
    out of the DoFn, not a rejection."""
    raw = bad_images.palette_png_with_trns(b"\x80" * 257)
    if where == "after":  # Pillow reads a tRNS after the image data while it loads the pixels
        trns = raw.index(b"tRNS") - 4
        chunk = raw[trns:trns + 12 + 257]
        raw = raw[:trns] + raw[trns + len(chunk):]
        raw = raw[:-12] + chunk + raw[-12:]
    assert rejection_of(raw).reason == "corrupt"
    assert normalise(bad_images.palette_png_with_trns(b"\x80" * 16), CFG).original_format == "PNG"  # one per colour
    assert normalise(bad_images.palette_png_with_trns(b"\x80" * 256), CFG).original_format == "PNG"  # at the limit


def test_ordinary_png_metadata_is_accepted_and_stripped():
    xmp = b"<x:xmpmeta>" + b"<rdf:li>keyword</rdf:li>" * 4000 + b"</x:xmpmeta>"  # ~100 KB
    raw = bad_images.png_with_chunks([(b"tEXt", b"Author\x00CameraMaker"), bad_images.ztxt(b"Comment", 50_000),
                                      (b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)])
    result = normalise(raw, CFG)
    assert result.original_format == "PNG"
    assert_no_metadata(result.jpeg)


def test_mpo_is_a_jpeg_and_keeps_its_first_image():
    raw, first = bad_images.mpo_pair()
    assert Image.open(io.BytesIO(raw)).n_frames == 2  # really a two-image MPO
    result = normalise(raw, CFG)
    assert result.original_format == "JPEG"
    assert result.jpeg == normalise(encode(first, "JPEG"), CFG).jpeg  # the first image, pixel for pixel


JPEGS = Path(__file__).parent / "jpegs"


@pytest.mark.parametrize("junk", [b"", b"\x00junk\xff\x00"], ids=["", "junk-before-the-frame"])
@pytest.mark.parametrize("progressive,marker", [(False, 0xC9), (True, 0xCA), (False, 0xCD)],
                         ids=["baseline-as-SOF9", "progressive-as-SOF10", "baseline-as-SOF13"])
def test_a_huffman_coded_jpeg_whose_frame_header_says_arithmetic_is_refused_as_corrupt(progressive, marker, junk):
    """libjpeg's arithmetic decoder reads Huffman-coded data as noise and only warns; Pillow ignores the warning,
    and the noise was stored as the photo. Bytes between two segments, which libjpeg and Pillow skip, hid the frame
    header from the check, and the noise was stored again."""
    raw = encode(real_image("coffee.jpg"), "JPEG", progressive=progressive)
    frame = raw.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    relabelled = bytearray(raw[:frame] + junk + raw[frame:])
    relabelled[frame + len(junk) + 1] = marker
    assert jpeg_pixels.frame_type(bytes(relabelled)) == marker
    rejected = rejection_of(bytes(relabelled))
    assert rejected.reason == "corrupt" and rejected.detail.startswith("data libjpeg does not decode cleanly")


@pytest.mark.parametrize("name", ["coffee_small_arithmetic.jpg", "coffee_small_arithmetic_progressive.jpg"])
def test_a_genuine_arithmetic_coded_jpeg_is_stored_as_its_huffman_coded_original(name):
    """jpegtran re-coded the same coefficients (tests/jpegs/SOURCES.md): the same pixels, so the same stored JPEG."""
    raw = (JPEGS / name).read_bytes()
    assert jpeg_pixels.frame_type(raw) in jpeg_pixels.ARITHMETIC_FRAMES
    assert normalise(raw, CFG).jpeg == normalise((JPEGS / "coffee_small.jpg").read_bytes(), CFG).jpeg


def _without_huffman_tables(raw: bytes) -> bytes:
    """`raw` with its DHT segments left out (those before its first scan)."""
    out, pos = bytearray(raw[:2]), 2
    while raw[pos + 1] != 0xDA:
        end = pos + 2 + int.from_bytes(raw[pos + 2:pos + 4], "big")
        if raw[pos + 1] != 0xC4:
            out += raw[pos:end]
        pos = end
    return bytes(out + raw[pos:])


def test_an_arithmetic_coded_jpeg_whose_frame_header_says_huffman_is_refused_as_corrupt():
    """The reverse relabelling: it has no Huffman table, libjpeg decodes its data with the standard ones, as noise
    (a mean difference of 115 of 255 from the photo), and only warns. A Huffman-coded file that relies on the
    standard tables (as Motion-JPEG frames do) decodes cleanly and is stored as the same photo."""
    relabelled = bytearray((JPEGS / "coffee_small_arithmetic.jpg").read_bytes())
    relabelled[relabelled.index(b"\xff\xc9") + 1] = 0xC0
    assert not jpeg_pixels.defines_huffman_tables(bytes(relabelled))
    rejected = rejection_of(bytes(relabelled))
    assert rejected.reason == "corrupt" and rejected.detail.startswith("data libjpeg does not decode cleanly")
    original = (JPEGS / "coffee_small.jpg").read_bytes()  # made with the standard tables (Pillow, not optimized)
    standard = _without_huffman_tables(original)
    assert len(standard) < len(original) and not jpeg_pixels.defines_huffman_tables(standard)
    assert normalise(standard, CFG).jpeg == normalise(original, CFG).jpeg


def assert_a_cheap_metadata_bomb(raw: bytes) -> None:
    """`raw` is refused as a metadata bomb with under 8 MiB traced: before Pillow parses what it would copy."""
    tracemalloc.start()
    try:
        with pytest.raises(ImageRejected) as rejected:
            normalise(raw, CFG)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rejected.value.reason == "metadata_bomb" and peak < 8 * 2**20


@pytest.mark.parametrize("tags,claimed", [(5_000, 50_000), (33, 8), (20, 200)],
                         ids=["5000-tags-of-50KB", "33-tags", "20-overlapping-tags"])
def test_an_mpo_index_bomb_is_refused_before_pillow_reads_it(tags, claimed):
    # 5,000 tags each pointing at one 50 KB run: Pillow took 260 MiB to open these 64 KB (2026-12-03).
    raw = bad_images.mpo_index_bomb(tags, claimed)
    assert_a_cheap_metadata_bomb(raw)


def test_a_camera_mpo_index_passes_the_check():
    raw, _ = bad_images.mpo_pair()
    check_jpeg_structure(raw)  # Pillow's own MPO writer: 3 tags, values inside the segment
    assert normalise(bad_images.mpo_index_bomb(5, 4), CFG).original_format == "JPEG"  # small, in bounds


@pytest.mark.parametrize("tags,claimed,segments", [(2_700, 30_000, 1), (2_000, 100_000, 3)],
                         ids=["2700-tags-on-30KB", "2000-tags-on-100KB-over-3-segments"])
def test_a_jpeg_exif_whose_first_directory_shares_one_value_is_refused_before_pillow_reads_it(tags, claimed, segments):
    # Pillow reads the first directory's values on open: 2,700 tags pointing at one 30 KB run took 85 MiB for 86 KB,
    # 20,000 on one 700 KB run over 16 segments 13 GiB and 33 s (2026-12-03).
    raw = bad_images.jpeg_exif_shared_value(tags, claimed, segments)
    assert_a_cheap_metadata_bomb(raw)


@pytest.mark.parametrize("make", [lambda: bad_images.jpeg_exif_shared_value(2_700, 20_000, 1),
                                  lambda: bad_images.mpo_index_bomb(5_000, 50_000)], ids=["exif", "mpo-index"])
def test_an_end_of_image_marker_before_the_first_scan_hides_no_bomb(make):
    # Pillow reads segments on to the first scan whatever comes before it: an FF D9 after the SOI stopped our walk
    # there, and the bomb behind it took 959 MiB (EXIF) or 242 MiB (MPO index) before the file was refused as corrupt.
    raw = make()
    assert_a_cheap_metadata_bomb(raw[:2] + b"\xff\xd9" + raw[2:])


def test_a_file_whose_signature_pillow_then_cannot_identify_is_corrupt_not_no_image():
    # Its signature names the format: it was "not_an_image: unrecognised bytes", which sends a reader looking for
    # an HTML error page.
    with pytest.raises(ImageRejected) as rejected:
        normalise(bad_images.mpo_index_of_every_image(), CFG)
    assert rejected.value.reason == "corrupt" and "JPEG" in rejected.value.detail


def test_an_mpo_index_pillow_cannot_read_is_left_to_it():
    # Pillow opens a JPEG whose MPO index has no TIFF header as a plain JPEG (with a warning): no reason to refuse it.
    raw = bad_images.mpo_index_bomb(40, 4)
    header = raw.index(b"MPF\0") + 4
    garbage = raw[:header] + b"XX*\0" + raw[header + 4:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert normalise(garbage, CFG).original_format == "JPEG"


def test_a_jpeg_exif_whose_values_fit_in_it_passes_the_check():
    assert normalise(bad_images.jpeg_exif_shared_value(1, 30_000, 1), CFG).original_format == "JPEG"
    # A value past the block's end stops Pillow's walk, as it stops ours: the tags after it are never read.
    broken = bad_images.jpeg_exif_shared_value(2, 30_000, 1).replace(struct.pack("<HHLL", 0x8000, 7, 30_000, 38),
                                                                      struct.pack("<HHLL", 0x8000, 7, 10**6, 38))
    assert normalise(broken, CFG).original_format == "JPEG"


def _resized_coffee(size: tuple[int, int], fmt: str) -> Callable[[], bytes]:
    return lambda: encode(real_image("coffee.jpg").resize(size), fmt)


@pytest.mark.parametrize("make,kept", [
    pytest.param(lambda: bad_images.thin_strip(64, 1_000_000), False, id="64x1000000-stored-as-1x512"),
    pytest.param(_resized_coffee((1024, 128), "PNG"), True, id="stored-512x64"),
    pytest.param(_resized_coffee((1024, 126), "PNG"), False, id="stored-512x63"),
    pytest.param(_resized_coffee((8192, 1024), "JPEG"), True, id="jpeg-drafted-4096x512-stored-512x64"),
    pytest.param(_resized_coffee((9000, 1100), "JPEG"), False, id="jpeg-drafted-4500x550-stored-512x63"),
])
def test_min_side_applies_to_the_stored_size_too(make, kept):
    raw = make()
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    if kept:
        result = normalise(raw, CFG)
        assert min(result.width, result.height) == CFG.min_side
    else:
        assert reason(raw) == "too_small"
        assert time.process_time() - started < 1.0  # refused from the header: the 64 MP strip is never decoded


def _decoded_sizes(monkeypatch) -> list[tuple[int, int]]:
    """The pixel size of every JPEG decode from now on (after any draft), as `load()` sees it or as the
    full-size decode to mapped pixels (io/jpeg_pixels.py) gives it."""
    sizes: list[tuple[int, int]] = []
    load = JpegImagePlugin.JpegImageFile.load
    jpeg_pixels.agrees_with_pillow()  # its probes (Pillow decodes), once per process: before observing
    mapped = jpeg_pixels.rgb

    def observed(self):
        if self.tile:  # still to be decoded: later calls of load() are no-ops
            sizes.append(self.size)
        return load(self)

    def observed_mapped(raw: bytes, size: tuple[int, int]) -> Image.Image | None:
        image = mapped(raw, size)
        if image is not None:
            sizes.append(image.size)
        return image

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", observed)
    monkeypatch.setattr(jpeg_pixels, "rgb", observed_mapped)
    return sizes


def _psnr(one: bytes, two: bytes) -> float:
    a, b = (np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float64) for jpeg in (one, two))
    return 10 * math.log10(255 ** 2 / float(((a - b) ** 2).mean()))


@pytest.mark.parametrize("supersample,size,decoded", [
    pytest.param(2, (4096, 4096), (1024, 1024), id="default-4096-square-at-1/4-not-1/8"),
    pytest.param(2, (2048, 1000), (1024, 500), id="default-2048x1000-at-1/2"),
    pytest.param(2, (1024, 768), (1024, 768), id="default-1024-at-full-size"),
    pytest.param(1, (4096, 4096), (512, 512), id="1x-4096-square-at-1/8"),
    pytest.param(1, (2048, 1000), (512, 250), id="1x-2048x1000-at-1/4"),
    pytest.param(1, (1024, 768), (512, 384), id="1x-1024-at-1/2"),
    pytest.param(1, (1000, 750), (1000, 750), id="1x-under-twice-the-stored-size-at-full-size"),
])
def test_large_jpegs_are_decoded_at_the_smallest_dct_scale_the_rule_allows(monkeypatch, supersample, size,
                                                                           decoded):
    """One decode, at the smallest DCT scale that leaves `draft_supersample` times the stored size (the
    default 2: a 2x supersample for the resize; 1: the stored size itself)."""
    raw = encode(real_image("coffee.jpg").resize(size), "JPEG")
    cfg = replace(CFG, draft_supersample=supersample)
    sizes = _decoded_sizes(monkeypatch)
    drafted = normalise(raw, cfg)
    assert sizes == [decoded]
    full = normalise(raw, replace(CFG, draft_supersample=0))
    assert sizes[1:] == [size]  # draft_supersample=0: the full decode, as the reference
    assert (drafted.width, drafted.height) == (full.width, full.height)
    assert drafted == normalise(raw, cfg)  # deterministic
    if drafted.jpeg != full.jpeg:
        assert _psnr(drafted.jpeg, full.jpeg) > 38
        assert imagehash.hex_to_hash(drafted.phash) - imagehash.hex_to_hash(full.phash) <= 2


def _stored_like(pixels: Image.Image, cfg: ImageConfig) -> bytes:
    out = io.BytesIO()
    pixels.save(out, "JPEG", quality=cfg.jpeg_quality, optimize=False, progressive=False, subsampling="4:2:0")
    return out.getvalue()


def test_a_2x_reduction_is_a_2x2_box_average_and_0_keeps_the_plain_lanczos():
    """The oracle: numpy's mean of each 2x2 block (rounded) for the default gap of 1.0; Pillow's one-step
    Lanczos for --resize_reducing_gap=0. The two stay close (the box is no blur or shift)."""
    raw = encode(real_image("coffee.jpg").resize((1024, 768)), "JPEG")
    full_decode = replace(CFG, draft_supersample=0)  # whatever the draft rule: a decode at 1024 px
    decoded = Image.open(io.BytesIO(raw)).convert("RGB")
    blocks = np.asarray(decoded, dtype=np.float64).reshape(384, 2, 512, 2, 3).mean(axis=(1, 3))
    box = Image.fromarray(np.floor(blocks + 0.5).astype(np.uint8))
    stored = normalise(raw, full_decode)
    assert (stored.width, stored.height) == (512, 384)
    assert stored.jpeg == _stored_like(box, CFG)
    plain = normalise(raw, replace(full_decode, resize_reducing_gap=0))
    assert plain.jpeg == _stored_like(decoded.resize((512, 384), Image.Resampling.LANCZOS), CFG)
    assert stored.jpeg != plain.jpeg and _psnr(stored.jpeg, plain.jpeg) > 38
    assert imagehash.hex_to_hash(stored.phash) - imagehash.hex_to_hash(plain.phash) <= 2


def _box_average(pixels: np.ndarray, factor: int, size: tuple[int, int]) -> np.ndarray:
    """The oracle for an integer reduction: each factor x factor block's mean (the last row or column of
    blocks over the pixels there are), rounded half up, cut to `size` (width, height)."""
    height, width = -(-pixels.shape[0] // factor), -(-pixels.shape[1] // factor)
    out = np.empty((height, width, pixels.shape[2]))
    for y in range(height):
        for x in range(width):
            block = pixels[y * factor:(y + 1) * factor, x * factor:(x + 1) * factor]
            out[y, x] = block.reshape(-1, pixels.shape[2]).mean(axis=0)
    return np.floor(out + 0.5).astype(np.uint8)[:size[1], :size[0]]


@pytest.mark.parametrize("source,size", [
    pytest.param((1024, 683), (512, 342), id="odd-height-rounded-up-keeps-the-half-row"),
    pytest.param((1024, 685), (512, 342), id="odd-height-rounded-down-cuts-the-half-row"),
    pytest.param((683, 1024), (342, 512), id="portrait-odd-width"),
    pytest.param((1024, 768), (512, 384), id="even"),
])
def test_an_exact_2x_reduction_is_a_box_average_whatever_the_parity_of_the_shorter_side(source, size):
    """The stored size is rounded (683 / 2 = 341.5 -> 342): Pillow's own rule, which picks the reduction of
    each side on its own, reduced such a photo 2x1 and Lanczos-filtered its 683 rows (3.5 ms of the ~11 ms
    of normalise). Every stored pixel is now the mean of a 2x2 block, as for an even side."""
    raw = encode(real_image("coffee.jpg").resize(source), "JPEG")
    decoded = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
    stored = normalise(raw, replace(CFG, draft_supersample=0))
    assert (stored.width, stored.height) == size
    assert stored.jpeg == _stored_like(Image.fromarray(_box_average(decoded, 2, size)), CFG)
    assert stored == normalise(raw, CFG)  # a 1024 px JPEG is decoded at full size by the default rule


def test_a_drafted_jpeg_that_decodes_to_an_exact_multiple_is_box_averaged_and_cut_to_its_stored_size():
    """4096 x 2731 decodes at 1/4 to 1024 x 683 (libjpeg rounds up), 2x the stored 512 x 341 (rounded from the
    full size, 341.4): every stored pixel the mean of a 2x2 block of the drafted pixels, the half row cut."""
    raw = encode(real_image("coffee.jpg").resize((4096, 2731)), "JPEG")
    drafted = Image.open(io.BytesIO(raw))
    drafted.draft("RGB", (4096 // 4, 2731 // 4))  # what normalise asks for
    pixels = np.asarray(drafted.convert("RGB"))
    assert pixels.shape == (683, 1024, 3)
    stored = normalise(raw, CFG)
    assert (stored.width, stored.height) == (512, 341)
    assert stored.jpeg == _stored_like(Image.fromarray(_box_average(pixels, 2, (512, 341))), CFG)


@settings(max_examples=60, deadline=None)
@given(factor=st.integers(2, 4), stored_longer=st.integers(4, 24), shorter_share=st.floats(0.05, 1.0),
       portrait=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_a_reduction_by_an_exact_integer_factor_matches_the_block_mean_oracle(factor, stored_longer, shorter_share,
                                                                            portrait, seed):
    """Any integer factor, any shorter side: the stored size is the rounded one, and every pixel the mean
    of its block (Pillow's fixed-point reciprocal of factor^2 rounds 3x3 and 4x4 means off by at most 1)."""
    longer = factor * stored_longer
    shorter = max(1, round(longer * shorter_share))
    size = (shorter, longer) if portrait else (longer, shorter)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    target = image_stage._target_size(*size, stored_longer)
    resized = image_stage._resize(Image.fromarray(pixels), target, 1.0)
    assert resized.size == target
    difference = np.abs(np.asarray(resized, dtype=int) - _box_average(pixels, factor, target).astype(int))
    assert difference.max() <= (0 if factor == 2 else 1)


def test_a_reduction_by_a_fraction_or_with_a_wider_gap_stays_pillows_rule():
    """Only an exact integer factor takes the box path: 1.25x (Flickr's 640 px copy), 2.54x (a portrait)
    and a 2x reduction under --resize_reducing_gap=2 are Pillow's resize with that gap, pixel for pixel."""
    img = real_image("coffee.jpg").convert("RGB")
    for source, gap in (((640, 427), 1.0), ((1024, 1300), 1.0), ((1024, 683), 2.0), ((1024, 683), 0.0)):
        original = img.resize(source)
        target = image_stage._target_size(*source, 512)
        expected = original.resize(target, Image.Resampling.LANCZOS, reducing_gap=gap or None)
        assert np.array_equal(np.asarray(image_stage._resize(original, target, gap)), np.asarray(expected))


def test_a_reduction_by_less_than_2x_is_lanczos_whatever_the_gap():
    """Flickr's 640 px copies stored at 512: nothing to reduce by an integer factor, same bytes either way."""
    raw = encode(real_image("coffee.jpg").resize((640, 427)), "JPEG")
    assert normalise(raw, CFG) == normalise(raw, replace(CFG, resize_reducing_gap=0))


def test_the_blank_check_filters_the_stored_pixels_not_the_decoded_ones(monkeypatch):
    """Four times fewer pixels to filter for a 2x reduction; and blank is what the dataset would hold."""
    raw = encode(real_image("coffee.jpg").resize((1024, 768)), "JPEG")
    filtered: list[tuple[int, int]] = []
    resize = Image.Image.resize

    def observed(self, size, *args, **kwargs):
        if tuple(size) == (64, 64):
            filtered.append(self.size)
        return resize(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", observed)
    normalise(raw, replace(CFG, draft_supersample=0))  # decoded at 1024 x 768 under any rule
    assert filtered == [(512, 384)]


def test_drafted_jpeg_is_stored_at_the_size_of_its_full_decode():
    """libjpeg rounds a scaled side up (1229 px at 1/2 is 615): the stored size follows the source's."""
    raw = encode(real_image("coffee.jpg").resize((1229, 4099)), "JPEG")
    full = normalise(raw, replace(CFG, draft_supersample=0))
    drafted = normalise(raw, CFG)
    assert (drafted.width, drafted.height) == (full.width, full.height) == (154, 512)


def _profiles() -> dict[str, bytes]:
    from PIL import ImageCms

    return {"sRGB": ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
            "swapped primaries": swapped_primaries_profile()}


@pytest.mark.parametrize("profile", ["sRGB", "swapped primaries"])
def test_an_embedded_profile_converts_as_profile_to_profile_does(profile):
    """Through io/srgb.py: the pixels ImageCms.profileToProfile makes (tests/test_srgb.py tests the caches)."""
    from PIL import ImageCms

    icc = _profiles()[profile]
    img = real_image("coffee.jpg")
    img.info["icc_profile"] = icc
    converted = image_stage._to_srgb(img)
    expected = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                         ImageCms.createProfile("sRGB"), outputMode="RGB")
    assert converted.mode == "RGB" and converted.tobytes() == expected.tobytes()
    if profile == "swapped primaries":  # the transform acted
        assert converted.tobytes() != img.tobytes()


@pytest.mark.parametrize("fmt,mode", [("PNG", "RGBA"), ("PNG", "P"), ("WEBP", "RGBA")])
def test_an_embedded_profile_converts_an_image_with_alpha_or_a_palette_too(fmt, mode):
    """The profile was applied to RGB and CMYK pixels only: a PNG or WebP with alpha, or a palette PNG, carrying an
    Adobe RGB or Display P3 profile was stored in its own colours, read as sRGB. Now it is composited on white in its
    own colours, then converted: stored as the same composite saved as RGB with the same profile is."""
    icc = swapped_primaries_profile()
    rgb = real_image("chelsea.jpg")
    if mode == "P":
        source = rgb.quantize(256)
        flat = source.convert("RGB")
    else:
        alpha = np.full((rgb.height, rgb.width), 255, dtype=np.uint8)
        alpha[:40], alpha[40:80] = 0, 128  # a transparent band and a half-transparent one
        source = Image.merge("RGBA", (*rgb.split(), Image.fromarray(alpha, "L")))
        flat = Image.alpha_composite(Image.new("RGBA", rgb.size, (255, 255, 255, 255)), source).convert("RGB")
    lossless = {"lossless": True} if fmt == "WEBP" else {}
    raw = encode(source, fmt, icc_profile=icc, **lossless)
    opened = Image.open(io.BytesIO(raw))
    assert opened.mode == mode and opened.info.get("icc_profile") == icc  # the file really is what the case says
    stored = normalise(raw, CFG).jpeg
    assert stored == normalise(encode(flat, fmt, icc_profile=icc, **lossless), CFG).jpeg
    assert stored != normalise(encode(flat, fmt, **lossless), CFG).jpeg  # the profile acted


@pytest.mark.parametrize("fmt,bits", [("JPEG", 8), ("PNG", 8), ("PNG", 16)])
def test_an_embedded_grey_profile_converts_a_greyscale_image_too(fmt, bits):
    """A grey profile (Photoshop's greyscale default, a linear or a gamma 1.8 grey) was ignored: the greys were stored
    as they are, read as sRGB. Now they convert as ImageCms.profileToProfile converts them (a 16-bit grey after its
    mapping onto 0-255)."""
    icc = grey_profile(1.0)
    grey = real_image("chelsea.jpg").convert("L")
    source = grey if bits == 8 else Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    raw = encode(source, fmt, icc_profile=icc)
    opened = Image.open(io.BytesIO(raw))
    assert opened.info.get("icc_profile") == icc and (opened.mode == "L") == (bits == 8)
    opened.load()
    expected = ImageCms.profileToProfile(Image.open(io.BytesIO(raw)).convert("L") if bits == 8 else grey,
                                         ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"),
                                         outputMode="RGB")
    assert image_stage._to_srgb(opened).tobytes() == expected.tobytes()
    stored = np.asarray(Image.open(io.BytesIO(normalise(raw, CFG).jpeg)).convert("L"), dtype=np.float64)
    plain = np.asarray(Image.open(io.BytesIO(normalise(encode(source, fmt), CFG).jpeg)).convert("L"), dtype=np.float64)
    assert stored.mean() > plain.mean() + 20  # a linear grey's mid-tones are far lighter in sRGB


@pytest.mark.parametrize("mode", ["LA", "L with a colour key", "I;16 with a colour key"])
def test_an_embedded_grey_profile_converts_a_greyscale_image_with_alpha_or_a_colour_key_too(mode):
    """The grey profile was applied to grey pixels without transparency only: a grey PNG with alpha, or with a tRNS
    colour key (8 or 16 bits), went through the alpha path, where only colour images met their profile, and was
    stored in its own greys read as sRGB (a linear grey's mid-tones far too dark), unlike the same greys without
    alpha. Now it is composited on white in its own greys, then converted by its profile as a grey image is."""
    icc = grey_profile(1.0)
    grey = real_image("chelsea.jpg").convert("L")
    pixels = np.asarray(grey)
    opaque = Image.fromarray(np.full(pixels.shape, 255, dtype=np.uint8), "L")
    if mode == "LA":
        source, options = Image.merge("LA", (grey, opaque)), {}
    elif mode.startswith("L "):  # a key value no pixel has: every pixel opaque
        source, options = Image.fromarray(np.maximum(pixels, 1), "L"), {"transparency": 0}
        grey = source
    else:
        source, options = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257), {"transparency": 1}
    raw = encode(source, "PNG", icc_profile=icc, **options)
    opened = Image.open(io.BytesIO(raw))
    assert opened.info.get("icc_profile") == icc and (mode == "LA") == (opened.mode == "LA")
    assert mode == "LA" or "transparency" in opened.info  # the file really is what the case says
    stored = normalise(raw, CFG).jpeg
    assert stored == normalise(encode(grey, "PNG", icc_profile=icc), CFG).jpeg  # as the same greys without alpha
    assert stored != normalise(encode(grey, "PNG"), CFG).jpeg  # the profile acted


def test_a_grey_png_colour_key_is_white_beside_a_grey_profile_too():
    """The key makes the grey image RGBA before any profile could convert it: its colour is no colour of the photo."""
    pixels = np.asarray(real_image("chelsea.jpg").convert("L")).copy()
    pixels[:100] = 0
    raw = encode(Image.fromarray(pixels, "L"), "PNG", transparency=0, icc_profile=grey_profile(1.0))
    assert {"transparency", "icc_profile"} <= set(Image.open(io.BytesIO(raw)).info)
    stored = np.asarray(Image.open(io.BytesIO(normalise(raw, CFG).jpeg)).convert("L"), dtype=np.float64)
    assert stored[:95].mean() > 250


@pytest.mark.parametrize("keyed", [False, True], ids=["alpha", "colour key"])
def test_a_grey_profile_converts_a_grey_image_with_alpha_or_a_colour_key_too(keyed):
    """A grey PNG with alpha (LA), or with a colour key, was composited on white and stored in its own greys read as
    sRGB, its grey profile ignored. Now, composited on white first, its greys convert as a grey image's do."""
    icc = grey_profile(1.0)
    pixels = np.asarray(real_image("chelsea.jpg").convert("L")).copy()
    if keyed:
        pixels[:100] = 0
        raw = encode(Image.fromarray(pixels, "L"), "PNG", transparency=0, icc_profile=icc)
    else:
        alpha = np.full_like(pixels, 255)
        alpha[:100] = 0
        raw = encode(Image.merge("LA", (Image.fromarray(pixels, "L"), Image.fromarray(alpha, "L"))), "PNG",
                     icc_profile=icc)
    opened = Image.open(io.BytesIO(raw))
    assert opened.info.get("icc_profile") == icc and opened.mode == ("L" if keyed else "LA")
    opened.load()
    white = Image.new("RGBA", opened.size, (255, 255, 255, 255))
    composited = Image.alpha_composite(white, opened.convert("RGBA")).convert("L")
    expected = ImageCms.profileToProfile(composited, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                         ImageCms.createProfile("sRGB"), outputMode="RGB")
    assert image_stage._to_srgb(opened).tobytes() == expected.tobytes()
    stored = np.asarray(Image.open(io.BytesIO(normalise(raw, CFG).jpeg)).convert("L"), dtype=np.float64)
    assert stored[:95].mean() > 250  # the transparent rows white, as before
    plain = composited.crop((0, 110, composited.width, composited.height))
    assert np.asarray(expected.convert("L"))[110:].mean() > np.asarray(plain).mean() + 20  # a linear grey, lighter


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("matrices,segments", [(900, 0), (0, 5_000)], ids=["900-matrices", "3-curves-of-5000-segments"])
def test_an_icc_profile_whose_float_pipeline_littlecms_would_evaluate_for_seconds_is_refused(matrices, segments, fmt):
    """LittleCMS evaluates every step of a profile's D2B0 pipeline for each colour it samples: 900 matrices (a 61 KB
    profile) took 1.5 s to build the transform, 5,000 (13 KB compressed in a PNG) 7.5 s (2026-12-03)."""
    profile = bad_images.float_pipeline_profile(matrices, segments)
    raw = encode(real_image("chelsea.jpg"), fmt, icc_profile=profile + struct.pack(">L", len(fmt)))  # not cached
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    assert rejection_of(raw).reason == "metadata_bomb" and time.process_time() - started < 0.5


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("channels,matrices,clut", [(14, 0, True), (12, 0, True), (15, 60, False)],
                         ids=["clut-of-14-inputs", "clut-of-12-inputs", "60-matrices-of-15x15"])
def test_a_float_pipeline_of_few_elements_widened_to_many_channels_is_refused(channels, matrices, clut, fmt):
    """An element costs LittleCMS more with every channel: a matrix widening RGB to 14 channels then a CLUT of 14
    inputs (two elements, 197 KB) took 6.8 s to build the transform, 12 inputs 1.6 s, 62 matrices of 15 x 15 1.4 s;
    counted as elements they passed the check (2026-12-04)."""
    profile = bad_images.wide_pipeline_profile(channels, matrices, clut)
    raw = encode(real_image("chelsea.jpg"), fmt, icc_profile=profile + struct.pack(">L", len(fmt)))  # not cached
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    assert rejection_of(raw).reason == "metadata_bomb" and time.process_time() - started < 0.5


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_an_icc_profile_larger_than_any_real_one_is_refused_before_littlecms_parses_it(fmt):
    """A JPEG's APP2 segments or a WebP's ICCP chunk may carry a profile as large as the file: LittleCMS took ~10
    bytes for each of its bytes to build the transform (a 16 MB CLUT in a 16 MB JPEG: 159 MiB at the peak, a
    ~450 x 300 photo), counted by no budget, in every thread at once. A PNG's were bounded with its metadata."""
    big = bad_images.clut_profile(120)  # 5.2 MB
    raw = encode(real_image("chelsea.jpg"), fmt, icc_profile=big)
    assert Image.open(io.BytesIO(raw)).info.get("icc_profile") == big
    rejected = rejection_of(raw)
    assert rejected.reason == "metadata_bomb" and "ICC profile" in rejected.detail
    # A large real one (press CMYK profiles reach ~2-3 MB) still converts.
    fits = encode(real_image("chelsea.jpg"), fmt, icc_profile=bad_images.clut_profile(96))  # 2.7 MB
    assert normalise(fits, CFG).jpeg != normalise(encode(real_image("chelsea.jpg"), fmt), CFG).jpeg


@pytest.mark.parametrize("profile", [
    pytest.param(lambda: bad_images.float_pipeline_profile(2, 3), id="2-matrices-3-curves-of-3-segments"),  # 13 steps
    pytest.param(lambda: bad_images.wide_pipeline_profile(4), id="clut-of-4-inputs"),  # as a CMYK profile's
    pytest.param(lambda: bad_images.wide_pipeline_profile(4, 2, clut=False), id="4x4-matrices"),
])
def test_a_small_float_pipeline_profile_passes_the_check(profile):
    raw = encode(real_image("chelsea.jpg"), "JPEG", icc_profile=profile())
    plain = encode(real_image("chelsea.jpg"), "JPEG")
    stored = normalise(raw, CFG)
    assert stored.original_format == "JPEG" and stored.jpeg != normalise(plain, CFG).jpeg  # the profile converted it


@pytest.mark.parametrize("case", ["not a profile", "RGB profile on CMYK pixels"])
def test_a_profile_that_cannot_convert_the_pixels_falls_back_to_the_plain_conversion(case):
    img = real_image("coffee.jpg").convert("CMYK" if case.endswith("CMYK pixels") else "RGB")
    img.info["icc_profile"] = b"acsp" * 40 if case == "not a profile" else _profiles()["sRGB"]
    assert image_stage._to_srgb(img).tobytes() == img.convert("RGB").tobytes()


def _shared_value_exif(entries: int, blob: int) -> bytes:
    """An IFD of `entries` distinct tags whose values all point at one `blob`-byte value."""
    offset = 8 + 2 + 12 * entries + 4
    ifd = struct.pack("<H", entries) + b"".join(struct.pack("<HHLL", 0x8000 + t, 7, blob, offset)
                                                for t in range(entries))
    return b"II*\x00" + struct.pack("<L", 8) + ifd + b"\x00" * (4 + blob)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_an_exif_whose_entries_share_one_value_is_not_read_once_per_entry(fmt):
    """Pillow's getexif() copies each entry's value: 300 entries on one 1 MiB value took ~310 MiB (a 1.1 MB PNG,
    964 MiB); the orientation is read from the first IFD alone."""
    import tracemalloc

    exif, out = _shared_value_exif(300, 1 << 20), io.BytesIO()
    picture = real_image("chelsea.jpg").resize((200, 200))
    if fmt == "PNG":
        picture.save(out, "PNG")
        raw = out.getvalue()[:33] + bad_images._png_chunk(b"eXIf", exif) + out.getvalue()[33:]
    else:
        picture.save(out, "WEBP", exif=b"Exif\x00\x00" + exif)
        raw = out.getvalue()
    tracemalloc.start()
    try:
        with contextlib.suppress(ImageRejected):
            normalise(raw, ImageConfig())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 << 20


def test_a_png_turned_by_an_exif_chunk_after_its_pixels_is_stored_upright():
    """The eXIf chunk may follow the image data: read once the pixels are decoded."""
    exif = exif_block("<", [(0x0112, 3, 1, b"\x06\x00\x00\x00")], b"")
    raw = bad_images.png_with_chunks(after_idat=[(b"eXIf", exif)])
    plain = real_image("chelsea.jpg")
    stored = Image.open(io.BytesIO(normalise(raw, ImageConfig()).jpeg))
    assert (stored.width < stored.height) == (plain.width > plain.height)


def _gif_with_extensions(extensions: bytes) -> bytes:
    """A real photo as GIF with extension blocks before its first image."""
    plain = encode(real_image("chelsea.jpg").convert("L").resize((128, 96)), "GIF")
    first_image = 13 + (3 << ((plain[10] & 7) + 1) if plain[10] & 0x80 else 0)
    assert plain[first_image] == 0x2C
    return plain[:first_image] + extensions + plain[first_image:]


@pytest.mark.parametrize("extensions", [b"!\xfe\x01c\x00" * 400_000,  # many comments (Pillow: ~5 s)
                                        b"!\xfe" + (b"\xff" + b"c" * 255) * 20_000 + b"\x00"])  # one of 5 MB
def test_a_gif_whose_comments_pillow_would_join_for_seconds_is_refused_cheaply(extensions):
    raw = _gif_with_extensions(extensions)
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    with pytest.raises(ImageRejected) as rejected:
        normalise(raw, ImageConfig())
    assert rejected.value.reason == "metadata_bomb" and time.process_time() - started < 1.0


def test_a_gif_with_a_few_comments_and_application_blocks_is_stored():
    netscape = b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    stored = normalise(_gif_with_extensions(netscape + b"!\xfe\x05hello\x00" * 10), ImageConfig())
    assert Image.open(io.BytesIO(stored.jpeg)).size == (128, 96)


def test_a_one_bit_png_colour_key_is_composited_on_white():
    """A 1-bit grey PNG's tRNS key was ignored: its transparent black was stored black. Composited on white, a
    1-bit image whose black is transparent is blank; one whose white is, is what it shows."""

    def one_bit_png(key: bytes) -> bytes:
        rows = [np.packbits((np.arange(128) >= 64) ^ ((np.arange(128) % 3 == 0) & bool(y % 2))).tobytes()
                for y in range(128)]
        ihdr = struct.pack(">IIBBBBB", 128, 128, 1, 0, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + bad_images._png_chunk(b"IHDR", ihdr) + bad_images._png_chunk(b"tRNS", key)
                + bad_images._png_chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + row for row in rows)))
                + bad_images._png_chunk(b"IEND", b""))

    with pytest.raises(ImageRejected, match="blank"):
        normalise(one_bit_png(b"\x00\x00"), ImageConfig())  # black transparent: white on white
    stored = Image.open(io.BytesIO(normalise(one_bit_png(b"\x00\x01"), ImageConfig()).jpeg)).convert("L")
    assert stored.getpixel((1, 0)) < 40 and stored.getpixel((100, 0)) > 240
