"""Conversion of profiled pixels to sRGB (pipeline/io/srgb.py): LittleCMS's result pixel for pixel, from a cached
transform or, for profiles that change few colours, from an exact table of the colours they change."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from pipeline.io import srgb
from tests.conftest import real_image, swapped_primaries_profile

PHOTOS = ("coffee.jpg", "chelsea.jpg", "astronaut.jpg", "rocket.jpg")


def builtin_srgb() -> bytes:
    """LittleCMS's own sRGB: converting it to sRGB changes no colour."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def near_srgb() -> bytes:
    """LittleCMS's sRGB with the blue curve's gamma 778/65536 higher (its own copy of the 'para' tag): converting
    it to sRGB moves exactly one blue level by one, 65,536 of the 2^24 colours, as "sRGB IEC61966-2.1" moves
    66,560."""
    profile = bytearray(builtin_srgb())
    count = int.from_bytes(profile[128:132], "big")
    entries = {bytes(profile[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(count)}
    blue = entries[b"bTRC"]
    offset, size = int.from_bytes(profile[blue + 4:blue + 8], "big"), int.from_bytes(profile[blue + 8:blue + 12], "big")
    curve = bytearray(profile[offset:offset + size])
    assert curve[:4] == b"para"
    curve[12:16] = (int.from_bytes(curve[12:16], "big") + 778).to_bytes(4, "big")  # s15Fixed16 gamma
    profile[blue + 4:blue + 8] = len(profile).to_bytes(4, "big")
    profile += curve
    profile[0:4] = len(profile).to_bytes(4, "big")
    return bytes(profile)


PROFILES = {"built-in sRGB": builtin_srgb, "near sRGB": near_srgb, "swapped primaries": swapped_primaries_profile}


def littlecms(img: Image.Image, icc: bytes) -> bytes:
    converted = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                          ImageCms.createProfile("sRGB"), outputMode="RGB")
    assert converted is not None  # for the type checker: None only for a conversion in place
    return converted.tobytes()


@pytest.fixture
def fresh(monkeypatch):
    """An empty cache, and the exhaustive pass after 2 photos instead of 64."""
    monkeypatch.setattr(srgb, "_profiles", type(srgb._profiles)())
    monkeypatch.setattr(srgb, "_EXHAUSTIVE_AFTER", 2)
    return srgb


def _all_colours(start: int, count: int) -> Image.Image:
    words = np.arange(start, start + count, dtype="<u4") | np.uint32(0xFF000000)
    return Image.frombuffer("RGBX", (1024, count // 1024), words.tobytes(), "raw", "RGBX", 0, 1).convert("RGB")


@pytest.mark.parametrize(("name", "changed"), [("built-in sRGB", 0), ("near sRGB", 65_536),
                                               ("swapped primaries", None)])
def test_the_exhaustive_pass_finds_the_colours_a_transform_changes(name, changed):
    icc = PROFILES[name]()
    table = srgb._changes(srgb._profile(icc, "RGB").transform)
    if changed is None:
        assert table is False  # nearly every colour: LittleCMS does the work
    else:
        assert isinstance(table, srgb._Changes) and table.colours.size == changed
        assert np.all(np.diff(table.colours.astype(np.int64)) > 0)


def test_the_table_reproduces_littlecms_on_every_one_of_the_2_24_colours():
    """The brute-force oracle: every 8-bit colour through LittleCMS and through the table."""
    icc = near_srgb()
    transform = srgb._profile(icc, "RGB").transform
    table = srgb._changes(transform)
    assert isinstance(table, srgb._Changes)
    for start in range(0, 1 << 24, 1 << 20):
        colours = _all_colours(start, 1 << 20)
        assert srgb._corrected(colours, table).tobytes() == transform.apply(colours).tobytes()


@pytest.mark.parametrize("name", ["built-in sRGB", "near sRGB", "swapped primaries"])
def test_photos_convert_as_profile_to_profile_converts_them_before_and_after_the_pass(fresh, name):
    icc = PROFILES[name]()
    for photo in PHOTOS * 2:  # the pass runs at the second photo
        img = real_image(photo)
        converted = fresh.to_srgb(img, icc)
        assert converted.mode == "RGB" and converted.tobytes() == littlecms(img, icc)
    table = next(iter(fresh._profiles.values())).table
    assert (table is False) if name == "swapped primaries" else isinstance(table, srgb._Changes)
    if name == "near sRGB":  # the photos have pixels of the changed blue level: the table acted
        assert any(fresh._corrected(real_image(photo), table).tobytes() != real_image(photo).tobytes()
                   for photo in PHOTOS)


def test_the_caches_are_bounded_and_keep_no_profile_bytes(fresh, monkeypatch):
    monkeypatch.setattr(srgb, "_TRANSFORMS_KEPT", 3)
    monkeypatch.setattr(srgb, "_TABLES_KEPT", 1)
    img = real_image("coffee.jpg")
    for icc in (builtin_srgb(), near_srgb()):  # each gets a table; the older one's is dropped
        for _ in range(2):
            assert fresh.to_srgb(img, icc).tobytes() == littlecms(img, icc)
    older, newer = fresh._profiles.values()
    assert (older.table, older.uses) == (None, 0)  # dropped: counts again, rebuilt if it stays in use
    assert isinstance(newer.table, srgb._Changes)
    base = bytearray(builtin_srgb())
    for i in range(5):  # distinct profiles (their last byte differs): only the 3 latest transforms stay
        variant = bytearray(base)
        variant[-1] = i
        fresh._profile(bytes(variant), "RGB")
    assert len(fresh._profiles) == 3
    assert all(len(digest) == 32 and mode == "RGB" for digest, mode in fresh._profiles)  # no profile bytes


def test_many_threads_converting_at_once_get_littlecms_pixels(fresh):
    icc = near_srgb()
    images = [real_image(photo) for photo in PHOTOS * 4]
    expected = [littlecms(img, icc) for img in images]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda img: fresh.to_srgb(img, icc).tobytes(), images)) == expected
    assert isinstance(next(iter(fresh._profiles.values())).table, srgb._Changes)


class _DenseTransform:
    """A stand-in transform from a dense table of all 2^24 colours (the brute-force oracle): any colours mapped
    anywhere, unlike a real profile's, whose changes line up along one channel."""

    def __init__(self, colours: np.ndarray, results: np.ndarray) -> None:
        self.table = np.arange(1 << 24, dtype="<u4")
        self.table[colours] = results

    def apply(self, img: Image.Image) -> Image.Image:
        words = self.table[srgb._words(img) & np.uint32(0xFFFFFF)] | np.uint32(0xFF000000)
        return Image.frombuffer("RGBX", img.size, words.astype("<u4").tobytes(), "raw", "RGBX", 0, 1).convert("RGB")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 5_000))
def test_the_table_against_a_dense_table_of_scattered_changes(seed, count):
    rng = np.random.default_rng(seed)
    colours = np.unique(rng.integers(0, 1 << 24, count, dtype=np.uint32))
    results = rng.integers(0, 1 << 24, colours.size, dtype=np.uint32)
    results[results == colours] ^= 1  # every listed colour really changes
    oracle = _DenseTransform(colours, results)
    table = srgb._changes(oracle)
    assert isinstance(table, srgb._Changes) and np.array_equal(table.colours, colours)
    # Pixels: half of them changed colours, half anything (most unchanged), and their neighbours in code order.
    pixels = np.where(rng.random(96 * 64) < 0.5, rng.choice(colours, 96 * 64),
                      rng.integers(0, 1 << 24, 96 * 64, dtype=np.uint32))
    pixels[::7] = np.clip(pixels[::7].astype(np.int64) + rng.integers(-8, 9, pixels[::7].size), 0, (1 << 24) - 1)
    img = Image.frombuffer("RGBX", (96, 64), (pixels | np.uint32(0xFF000000)).astype("<u4").tobytes(),
                           "raw", "RGBX", 0, 1).convert("RGB")
    assert srgb._corrected(img, table).tobytes() == oracle.apply(img).tobytes()
    with pytest.MonkeyPatch.context() as patch:  # in bands of 5, 1 and all 64 rows
        for band in (5 * 96, 1, 96 * 64):
            patch.setattr(srgb, "_BAND_PIXELS", band)
            assert srgb._corrected(img, table).tobytes() == oracle.apply(img).tobytes()


def test_a_table_built_and_dropped_at_once_still_converts_that_photo(fresh, monkeypatch):
    """Another thread's table may push this profile's out between building it and using it: the photo uses the
    table it built (the drop read back from the profile once raised AttributeError)."""
    monkeypatch.setattr(srgb, "_TABLES_KEPT", 0)
    icc, img = near_srgb(), real_image("chelsea.jpg")
    for _ in range(2):
        assert fresh.to_srgb(img, icc).tobytes() == littlecms(img, icc)
    assert next(iter(fresh._profiles.values())).table is None


def test_a_correction_of_a_large_image_holds_its_arrays_a_band_at_a_time():
    """The lookup's numpy arrays (traced by tracemalloc) for a 12 MP image: a band's worth, not the image's
    (~5 arrays of 4 bytes a pixel: ~240 MB at once)."""
    import tracemalloc

    icc = near_srgb()
    table = srgb._changes(srgb._profile(icc, "RGB").transform)
    assert isinstance(table, srgb._Changes)
    img = real_image("coffee.jpg").resize((4000, 3000))
    tracemalloc.start()
    try:
        corrected = srgb._corrected(img, table)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, peak
    assert corrected.tobytes() == srgb._profile(icc, "RGB").transform.apply(img).tobytes()
