import hashlib
import io

import apache_beam as beam
import imagehash
import pytest
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from pipeline.stages.image import ImageConfig, ImageRejected, NormaliseImages, normalise
from tests import bad_images
from tests.conftest import encode, local_pipeline, photo, real_image, real_jpeg

CFG = ImageConfig(max_side=512, min_side=64, max_pixels=64_000_000)


def reason(raw: bytes, cfg: ImageConfig = CFG) -> str:
    with pytest.raises(ImageRejected) as info:
        normalise(raw, cfg)
    return info.value.reason


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
