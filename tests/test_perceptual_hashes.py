"""The fast pHash/dHash against their definition: Pillow's Lanczos resize and imagehash itself."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.near_dup import perceptual_hashes
from pipeline.near_dup.perceptual_hashes import DHASH_SIZE, PHASH_SIDE, lanczos_resized, phash_dhash

PHOTOS = Path(__file__).parent / "photos"


def _pattern(kind: str, width: int, height: int, seed: int) -> np.ndarray:
    """Contents that stress different parts of the arithmetic: noise and hard edges reach the clipping at
    0 and 255 through the Lanczos lobes, gradients the rounding, constants the skipped-pass shortcuts."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (height, width), dtype=np.uint8)
    if kind == "binary":  # only 0 and 255: every overshoot is clipped
        return (rng.random((height, width)) < 0.5).astype(np.uint8) * 255
    if kind == "gradient":
        slope = rng.random(2) * 4
        return (np.add.outer(np.arange(height) * slope[0], np.arange(width) * slope[1]) % 256).astype(np.uint8)
    return np.full((height, width), seed % 256, dtype=np.uint8)


sides = st.integers(min_value=1, max_value=700)
kinds = st.sampled_from(["noise", "binary", "gradient", "constant"])
# Strips more than 100 times taller than wide, which Pillow 12.3 resizes vertically first, and their edge.
tall_shapes = st.integers(1, 10).flatmap(lambda width: st.tuples(st.just(width), st.integers(width * 95, 1024)))


@settings(max_examples=150, deadline=None)
@given(width=sides, height=sides, kind=kinds, seed=st.integers(0, 2**32 - 1))
def test_resized_pixels_are_pillows(width: int, height: int, kind: str, seed: int) -> None:
    grey = _pattern(kind, width, height, seed)
    for size in ((PHASH_SIDE, PHASH_SIDE), DHASH_SIZE):
        expected = np.asarray(Image.fromarray(grey, "L").resize(size, Image.Resampling.LANCZOS))
        assert np.array_equal(lanczos_resized(grey, size), expected), (width, height, kind, size)


@settings(max_examples=150, deadline=None)
@given(width=sides, height=sides, kind=kinds, seed=st.integers(0, 2**32 - 1))
def test_hashes_are_imagehashs(width: int, height: int, kind: str, seed: int) -> None:
    grey = Image.fromarray(_pattern(kind, width, height, seed), "L")
    assert phash_dhash(grey) == (str(imagehash.phash(grey)), str(imagehash.dhash(grey)))


@settings(max_examples=60, deadline=None)
@given(shape=tall_shapes, kind=kinds, seed=st.integers(0, 2**32 - 1))
def test_strips_far_taller_than_wide_are_resized_as_pillow_does(shape: tuple[int, int], kind: str,
                                                                seed: int) -> None:
    grey = _pattern(kind, *shape, seed)
    for size in ((PHASH_SIDE, PHASH_SIDE), DHASH_SIZE):
        expected = np.asarray(Image.fromarray(grey, "L").resize(size, Image.Resampling.LANCZOS))
        assert np.array_equal(lanczos_resized(grey, size), expected), (shape, kind, size)
    image = Image.fromarray(grey, "L")
    assert phash_dhash(image) == (str(imagehash.phash(image)), str(imagehash.dhash(image)))


@pytest.mark.parametrize("shape", [(2, 300), (3, 400), (4, 400), (4, 401), (5, 600), (7, 800), (10, 1001),
                                   (300, 2), (1, 1024), (1024, 1)])
def test_extreme_aspect_ratios(shape: tuple[int, int]) -> None:
    grey = Image.fromarray(_pattern("noise", *shape, seed=3), "L")
    assert phash_dhash(grey) == (str(imagehash.phash(grey)), str(imagehash.dhash(grey)))


@pytest.mark.parametrize("size", [(32, 32), (9, 8), (32, 8), (9, 32), (32, 500), (500, 8), (9, 9)])
def test_a_side_already_at_the_hash_size_is_not_resampled(size: tuple[int, int]) -> None:
    # Pillow skips the pass of a side that keeps its size; a Lanczos pass at scale 1 would be the identity
    # anyway, but the shortcut is part of what must match.
    grey = Image.fromarray(_pattern("noise", *size, seed=7), "L")
    assert phash_dhash(grey) == (str(imagehash.phash(grey)), str(imagehash.dhash(grey)))


def test_photographs_stored_by_the_pipeline() -> None:
    photos = sorted(PHOTOS.glob("*.jpg"))
    assert len(photos) >= 10
    for path in photos:
        with Image.open(path) as img:
            grey = img.convert("L")
        assert phash_dhash(grey) == (str(imagehash.phash(grey)), str(imagehash.dhash(grey))), path.name


def test_only_greyscale_images() -> None:
    with pytest.raises(ValueError, match="greyscale"):
        phash_dhash(Image.new("RGB", (64, 64)))


def test_single_threaded_blas_keeps_blas_to_one_thread() -> None:
    # In a child process: the limit is process-wide and lasting, by design (a worker's setup()).
    script = ("import threadpoolctl; from pipeline.near_dup.perceptual_hashes import single_threaded_blas; "
              "single_threaded_blas(); "
              "print(sorted({p['num_threads'] for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas'}))")
    # Four threads to begin with, so that a function doing nothing cannot pass on a one-core machine.
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "4"})
    assert result.stdout.strip() == "[1]"


def _pillows_coefficients(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's own integer coefficients: a horizontal LANCZOS resize of an identity image scaled by 2**22
    in 32-bit mode ("I": double weights, rounded half away from zero, as the 8-bit path's integers are).
    Row i of the result holds input pixel i's coefficient for each output pixel."""
    impulses = Image.fromarray(np.eye(in_size, dtype=np.int32) << 22, "I")
    return np.asarray(impulses.resize((out_size, in_size), Image.Resampling.LANCZOS), dtype=np.float64)


@settings(max_examples=200, deadline=None)
@given(in_size=st.integers(1, 1024), out_size=st.sampled_from([32, 9, 8, 1, 2, 64, 700]))
def test_coefficients_are_pillows_own(in_size: int, out_size: int) -> None:
    assert np.array_equal(perceptual_hashes._coefficients(in_size, out_size),
                          _pillows_coefficients(in_size, out_size))


@settings(max_examples=200, deadline=None)
@given(in_size=st.integers(1, 1024), out_size=st.sampled_from([32, 9, 8, 1, 2, 64, 700]))
def test_bands_hold_every_coefficient_once(in_size: int, out_size: int) -> None:
    """The banded horizontal pass against the dense matrix it cuts: the bands cover the outputs in order,
    one after the other, and laid back into a zero matrix they give the dense one (no tap dropped)."""
    dense = perceptual_hashes._coefficients(in_size, out_size)
    rebuilt = np.zeros_like(dense)
    next_output = 0
    for lo, hi, start, end, block in perceptual_hashes._bands(in_size, out_size):
        assert start == next_output and end > start and 0 <= lo < hi <= in_size
        assert end - start <= perceptual_hashes._BAND_OUTPUTS
        rebuilt[lo:hi, start:end] = block
        next_output = end
    assert next_output == out_size and np.array_equal(rebuilt, dense)


def test_the_hashes_bands_are_narrower_than_the_row() -> None:
    """What makes it cheaper: pHash's outputs of a 512 px row go 8 to a band spanning well under half of it;
    dHash's (each spanning two thirds of the row inside it) mostly one by one: a band is never wider than
    half the row or its first output's own inputs."""
    phash_bands = perceptual_hashes._bands(512, PHASH_SIDE)
    assert len(phash_bands) == 4 and all(hi - lo <= 256 for lo, hi, *_ in phash_bands)
    dense = perceptual_hashes._coefficients(512, DHASH_SIZE[0]) != 0
    dhash_bands = perceptual_hashes._bands(512, DHASH_SIZE[0])
    assert len(dhash_bands) >= 5
    assert all(hi - lo <= max(256, dense[:, start].sum()) for lo, hi, start, _, _ in dhash_bands)


def test_columns_near_a_rounding_tie_are_computed_scalar_by_scalar(monkeypatch: pytest.MonkeyPatch) -> None:
    # With a margin that flags every column, the whole matrix comes from the scalar path: Pillow's too.
    perceptual_hashes._coefficients.cache_clear()
    monkeypatch.setattr(perceptual_hashes, "_TIE_MARGIN", 1.0)
    calls = []
    exactly = perceptual_hashes._column_exactly

    def counted(*args):
        calls.append(args)
        return exactly(*args)

    monkeypatch.setattr(perceptual_hashes, "_column_exactly", counted)
    try:
        assert np.array_equal(perceptual_hashes._coefficients(437, 9), _pillows_coefficients(437, 9))
        assert len(calls) == 9
    finally:
        perceptual_hashes._coefficients.cache_clear()


def test_a_pillow_that_resizes_otherwise_sends_every_hash_to_imagehash(monkeypatch, caplog) -> None:
    # Without the tall-strip branch this module no longer resizes a 3 x 400 probe as Pillow 12.3 does.
    perceptual_hashes._agrees_with_pillow.cache_clear()
    monkeypatch.setattr(perceptual_hashes, "_TALL", 10**9)
    used: list[str] = []
    phash = imagehash.phash

    def used_phash(image):
        used.append("imagehash")
        return phash(image)

    monkeypatch.setattr(imagehash, "phash", used_phash)
    try:
        grey = Image.fromarray(_pattern("noise", 200, 150, seed=1), "L")
        assert phash_dhash(grey) == (str(phash(grey)), str(imagehash.dhash(grey)))
        assert used == ["imagehash"] and "hashing with imagehash itself" in caplog.text
    finally:
        perceptual_hashes._agrees_with_pillow.cache_clear()
    monkeypatch.undo()
    assert perceptual_hashes._agrees_with_pillow()  # the real rule agrees with this Pillow


def test_images_larger_than_stored_ones_are_hashed_by_imagehash(monkeypatch) -> None:
    big = Image.fromarray(_pattern("gradient", perceptual_hashes.MAX_SIDE + 1, 300, seed=2), "L")
    monkeypatch.setattr(perceptual_hashes, "_resized", lambda *args: pytest.fail("dense path used"))
    assert phash_dhash(big) == (str(imagehash.phash(big)), str(imagehash.dhash(big)))


@settings(max_examples=100, deadline=None)
@given(bits=st.lists(st.booleans(), min_size=1, max_size=100))
def test_hex_is_imagehashs(bits: list[bool]) -> None:
    array = np.array(bits)
    assert perceptual_hashes._hex(array) == imagehash._binary_array_to_hex(array)


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG")
    return out.getvalue()


def test_stored_phash_is_the_pixels_phash_and_hashes_a_repeated_image_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A refresh with a pHash takedown list and --decontaminate looks at each carried image twice, one stage after the
    # other: the second look must not decode and hash it again.
    calls = []
    real = perceptual_hashes.phash_dhash

    def counted(grey):
        calls.append(grey.size)
        return real(grey)

    monkeypatch.setattr(perceptual_hashes, "phash_dhash", counted)
    perceptual_hashes.stored_phash.cache_clear()
    jpeg = _jpeg(0)
    with Image.open(io.BytesIO(jpeg)) as img:
        expected = str(imagehash.phash(img.convert("L")))
    assert perceptual_hashes.stored_phash(jpeg) == expected
    assert perceptual_hashes.stored_phash(jpeg) == expected
    assert calls == [(32, 24)]
    assert perceptual_hashes.stored_phash(b"not a jpeg") is None


def test_stored_phash_does_not_keep_every_image_it_hashed() -> None:
    # A refresh carries a whole release through one worker: holding each image's bytes would hold the release.
    perceptual_hashes.stored_phash.cache_clear()
    first = _jpeg(1)
    held_before = sys.getrefcount(first)
    perceptual_hashes.stored_phash(first)
    for seed in range(2, 60):
        perceptual_hashes.stored_phash(_jpeg(seed))
    assert sys.getrefcount(first) == held_before


def test_single_threaded_blas_asks_threadpoolctl_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every DoFn's setup() calls it; threadpoolctl looks up the process's libraries on each call.
    calls = []
    monkeypatch.setattr(perceptual_hashes.threadpoolctl, "threadpool_limits", lambda *a, **k: calls.append(a))
    perceptual_hashes.single_threaded_blas.cache_clear()
    try:
        perceptual_hashes.single_threaded_blas()
        perceptual_hashes.single_threaded_blas()
    finally:
        perceptual_hashes.single_threaded_blas.cache_clear()  # the next real call limits this process's BLAS
    assert calls == [(1,)]
