"""imagehash's pHash and dHash of a greyscale image, bit for bit, at ~40-55% of its CPU.

The stored hashes must stay those of `imagehash.phash` / `imagehash.dhash` (4.3.2): earlier releases,
blocklists and takedown lists hold them. Each of those starts with its own Pillow Lanczos resize of the
whole image (to 32 x 32 and to 9 x 8), and the two resizes were ~80% of their cost (about 1.8 ms for a
512 px image). Pillow resizes an 8-bit image in two passes of fixed-point sums (`Resample.c`): a
horizontal pass into an 8-bit intermediate, then a vertical pass (Pillow 12.3's `Image.resize` swaps the
order for an image more than 100 times taller than wide), each output
`clip(floor((sum(pixel * coefficient) + 2**21) / 2**22), 0, 255)` with integer coefficients (the
Lanczos weights, normalised to sum 1, times 2**22, rounded half away from zero). This module computes
the same coefficients (the same double-precision expressions, with the same libm `sin`) and does each
horizontal pass as float64 matrix products over bands of neighbouring outputs, then each vertical pass
as one product: float64 holds every product (below 2**31) and every sum (below 2**40) exactly, so the
order of the additions cannot matter and the intermediate and final pixels are Pillow's exactly.
`tests/test_perceptual_hashes.py` checks the coefficients against Pillow's own (an impulse image in
32-bit mode), the resized pixels against Pillow and the hashes against imagehash. At first use each
process checks a few shapes against the installed Pillow and computes every hash with imagehash itself
if one differs (another Pillow version), and sides above MAX_SIDE go to imagehash too (the cached
coefficients grow with the square of the side).
"""

from __future__ import annotations

import functools
import io
import logging
import math

import imagehash
import numpy as np
import threadpoolctl
from PIL import Image

_PRECISION_BITS = 22  # Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2
_ONE = float(1 << _PRECISION_BITS)
_HALF = float(1 << (_PRECISION_BITS - 1))
_LANCZOS_SUPPORT = 3.0
PHASH_SIDE = 32  # imagehash.phash: hash_size 8 * highfreq_factor 4
DHASH_SIZE = (9, 8)  # imagehash.dhash: (hash_size + 1) x hash_size
# Stored images are at most --max_side (512 by default). The coefficients of every side length up to 512 (the
# vertical passes' dense matrices and the horizontal passes' bands, float32) take ~29 MB together, up to 1024 px
# ~115 MB; larger images go to imagehash. The 2,000-image benchmark corpus has ~450 distinct side lengths.
MAX_SIDE = 1024
# Pillow 12.3's Image.resize resizes an image this many times taller than wide vertically first.
_TALL = 100
_log = logging.getLogger(__name__)


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


def _support(in_size: int, out_size: int) -> tuple[float, float, float]:
    """Pillow's (scale, support, 1 / filterscale) for a Lanczos resize of in_size pixels to out_size."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    return scale, _LANCZOS_SUPPORT * filterscale, 1.0 / filterscale


def _bounds(center: float, support: float, in_size: int) -> tuple[int, int]:
    first = max(int(center - support + 0.5), 0)  # int() truncates toward zero, as C's cast does
    return first, min(int(center + support + 0.5), in_size) - first


def _fixed_point(weight: float) -> int:
    """normalize_coeffs_8bpc: a weight times 2**22, rounded half away from zero."""
    return int(weight * _ONE - 0.5) if weight < 0 else int(weight * _ONE + 0.5)


def _column_exactly(in_size: int, out_size: int, out: int) -> tuple[int, list[int]]:
    """One output pixel's coefficients as Pillow computes them, scalar by scalar: libm's sin through
    math.sin, the weights summed in order. (first input pixel, integer coefficients)."""
    scale, support, inverse = _support(in_size, out_size)
    center = (out + 0.5) * scale
    first, count = _bounds(center, support, in_size)
    weights = [_lanczos((x + first - center + 0.5) * inverse) for x in range(count)]
    total = 0.0
    for weight in weights:
        total += weight
    return first, [_fixed_point(weight / total if total != 0.0 else weight) for weight in weights]


# A vectorised weight may differ from libm's by an ulp or two (numpy's own sin on some CPUs), which moves a
# coefficient times 2**22 by less than 1e-8; only one within this of a rounding tie could round differently.
_TIE_MARGIN = 1e-6


@functools.cache  # bounded: see MAX_SIDE
def _coefficients(in_size: int, out_size: int) -> np.ndarray:
    """(in_size, out_size) matrix of Pillow's integer Lanczos coefficients (`precompute_coeffs`, then
    `normalize_coeffs_8bpc`): column j weighs the input pixels output pixel j sums. float32 holds them
    exactly (|c| <= 2**23); numpy widens them to float64 in each product. Computed once per process and
    side length with numpy (~0.3 ms instead of ~5 ms scalar by scalar); every output that has a
    coefficient near a rounding tie is computed again exactly, scalar by scalar."""
    scale, support, inverse = _support(in_size, out_size)
    centers = (np.arange(out_size) + 0.5) * scale
    firsts = np.maximum(np.trunc(centers - support + 0.5), 0).astype(np.int64)
    counts = np.minimum(np.trunc(centers + support + 0.5), in_size).astype(np.int64) - firsts
    taps = np.arange(int(counts.max(initial=0)))
    inside = taps[None, :] < counts[:, None]
    # The same IEEE operations in the same order as Pillow's C, element by element.
    x = ((taps[None, :] + firsts[:, None]) - centers[:, None] + 0.5) * inverse
    with np.errstate(invalid="ignore", divide="ignore"):
        lobe, outer = x * np.pi, (x / 3) * np.pi
        weights = (np.where(x == 0.0, 1.0, np.sin(lobe) / lobe) *
                   np.where(x == 0.0, 1.0, np.sin(outer) / outer))
    weights = np.where(inside & (x >= -3.0) & (x < 3.0), weights, 0.0)
    totals = np.cumsum(weights, axis=1)[:, -1:] if taps.size else np.zeros((out_size, 1))
    scaled = np.where(totals != 0.0, weights / np.where(totals != 0.0, totals, 1.0), weights) * _ONE
    fixed = np.trunc(scaled + np.where(scaled < 0, -0.5, 0.5))
    near_tie = (np.abs(np.abs(scaled) % 1.0 - 0.5) < _TIE_MARGIN) & inside
    matrix = np.zeros((in_size, out_size), dtype=np.float32)
    outs = np.broadcast_to(np.arange(out_size)[:, None], inside.shape)
    matrix[(taps[None, :] + firsts[:, None])[inside], outs[inside]] = fixed[inside]
    for out in np.flatnonzero(near_tie.any(axis=1)):
        first, exact = _column_exactly(in_size, out_size, int(out))
        matrix[:, out] = 0.0
        matrix[first:first + len(exact), out] = exact
    matrix.setflags(write=False)
    return matrix


# A band of outputs whose inputs span at most this share of the row is one product; 8 outputs at most.
_BAND_SHARE = 0.5
_BAND_OUTPUTS = 8


@functools.cache  # bounded: see MAX_SIDE
def _bands(in_size: int, out_size: int) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """The horizontal pass cut into bands of neighbouring outputs: (first input, end input, first output, end
    output, float32 coefficients of that block). An output sums ~6 x (in / out) inputs, a sixth of the row
    for a 32-wide pHash, so the dense product multiplied mostly zeros: pHash's outputs go 8 to a product
    (their inputs a fraction of the row), dHash's 9 one by one (each spans two thirds of it), ~0.55 -> ~0.3
    ms for a 512 x 384 image. Exact all the same: every sum is exact in float64, whichever products and
    order make it. The blocks are float32 (exact, as in `_coefficients`), widened in each product; the dense
    matrix they are cut from is not kept (the vertical passes' are)."""
    matrix = _coefficients.__wrapped__(in_size, out_size)
    used = matrix != 0
    firsts = used.argmax(axis=0)
    ends = in_size - used[::-1].argmax(axis=0)
    bands = []
    start = 0
    while start < out_size:
        end = start + 1
        while (end < out_size and end - start < _BAND_OUTPUTS
               and ends[end] - firsts[start] <= max(_BAND_SHARE * in_size, ends[start] - firsts[start])):
            end += 1
        lo, hi = int(firsts[start:end].min()), int(ends[start:end].max())
        block = np.ascontiguousarray(matrix[lo:hi, start:end])
        block.setflags(write=False)
        bands.append((lo, hi, start, end, block))
        start = end
    return tuple(bands)


def _horizontal(pixels: np.ndarray, out_width: int) -> np.ndarray:
    """The horizontal pass's fixed-point sums (before `_to_pixels`) of a float64 (rows, width) array."""
    sums = np.empty((pixels.shape[0], out_width))
    for lo, hi, start, end, block in _bands(pixels.shape[1], out_width):
        np.matmul(pixels[:, lo:hi], block, out=sums[:, start:end])
    return sums


def _to_pixels(sums: np.ndarray) -> np.ndarray:
    """Pillow's clip8: the fixed-point sums (still without the rounding half) as 0..255 pixels, float64."""
    return np.clip(np.floor((sums + _HALF) / _ONE), 0.0, 255.0)


def lanczos_resized(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`Image.fromarray(grey).resize(size, LANCZOS)`'s pixels (float64), for a uint8 (height, width) array."""
    return _resized(grey, [size])[0]


def _resized(grey: np.ndarray, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Pillow's LANCZOS resizes of one greyscale image to each (width, height) of `sizes`, as Image.resize
    makes them; the horizontal passes in bands (`_bands`). A pass whose side keeps its length is skipped,
    as Pillow skips it."""
    height, width = grey.shape
    pixels = grey.astype(np.float64)
    out = []
    for target_width, target_height in sizes:
        if height > width * _TALL and target_height < height:  # vertical first
            resized = _to_pixels(_coefficients(height, target_height).T @ pixels)
            if target_width != width:
                resized = _to_pixels(resized @ _coefficients(width, target_width))
        else:
            resized = pixels
            if target_width != width:
                resized = _to_pixels(_horizontal(pixels, target_width))
            if target_height != height:
                resized = _to_pixels(_coefficients(height, target_height).T @ resized)
        out.append(resized)
    return out


# Shapes a stored image can have (landscape, portrait, a panorama, a tall strip) and the tall-image branch.
_PROBES = ((512, 384), (384, 512), (512, 64), (64, 512), (9, 8), (32, 32), (3, 400), (5, 700))


@functools.cache
def _agrees_with_pillow() -> bool:
    """Whether this module resizes as the installed Pillow does, on random contents of _PROBES (~60 ms once
    per process, most of it the probes' coefficients): a Pillow version that resizes otherwise makes
    phash_dhash use imagehash itself."""
    rng = np.random.default_rng(0)
    for width, height in _PROBES:
        grey = rng.integers(0, 256, (height, width), dtype=np.uint8)
        sizes = [(PHASH_SIDE, PHASH_SIDE), DHASH_SIZE]
        ours = _resized(grey, sizes)
        for size, resized in zip(sizes, ours, strict=True):
            theirs = np.asarray(Image.fromarray(grey, "L").resize(size, Image.Resampling.LANCZOS))
            if not np.array_equal(resized, theirs):
                _log.warning("perceptual hashes: this Pillow resizes a %dx%d image to %s otherwise; "
                             "hashing with imagehash itself (slower, the same hashes)", width, height, size)
                return False
    return True


def _hex(bits: np.ndarray) -> str:
    """imagehash's `str(ImageHash)`: the bits, row by row, as zero-padded hexadecimal."""
    flat = bits.ravel()
    value = int.from_bytes(np.packbits(flat).tobytes(), "big") >> (-flat.size % 8)  # packbits pads the end
    return f"{value:0{-(-flat.size // 4)}x}"


def phash_dhash(grey: Image.Image) -> tuple[str, str]:
    """(str(imagehash.phash(grey)), str(imagehash.dhash(grey))) of an "L" image, exactly."""
    if grey.mode != "L":
        raise ValueError(f"a greyscale ('L') image is needed, not {grey.mode!r}")
    if max(grey.size) > MAX_SIDE or not _agrees_with_pillow():
        return str(imagehash.phash(grey)), str(imagehash.dhash(grey))
    import scipy.fftpack  # as imagehash does: on first use (~0.2-0.5 s), not by every command's imports

    small, diffs = _resized(np.asarray(grey), [(PHASH_SIDE, PHASH_SIDE), DHASH_SIZE])
    # imagehash hands scipy the uint8 pixels: the same DCT of the same values.
    dct = scipy.fftpack.dct(scipy.fftpack.dct(small.astype(np.uint8), axis=0), axis=1)
    low = dct[:8, :8]
    return _hex(low > np.median(low)), _hex(diffs[:, 1:] > diffs[:, :-1])


# A refresh given a pHash takedown list and --decontaminate hashes each carried image in both stages, one after the
# other in the same fused worker: the last few images are all a second look needs. (A cache of every image hashed
# would hold every carried image's bytes for the life of the worker.)
_RECENT_IMAGES = 16


@functools.lru_cache(maxsize=_RECENT_IMAGES)
def stored_phash(jpeg: bytes) -> str | None:
    """The pHash of a stored JPEG's pixels (the image stage hashes them before encoding: a bit or two apart at most
    in the demo images), or None where they cannot be decoded (a carried row's image is checked before: carry.py).
    A carried row's pHash is the previous release's word: changed there (the manifest resealed), a photo listed by its
    pHash was carried into the next release, 32 bits away from the entry."""
    try:
        with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as img:
            return phash_dhash(img.convert("L"))[0]
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


@functools.cache  # once per process: threadpoolctl looks up the loaded libraries each time
def single_threaded_blas() -> None:
    """Keeps this process's BLAS (numpy's OpenBLAS) to one thread. The hashes' products (~8 M multiply-adds
    per image) are above OpenBLAS's threshold for threading, so it would wake a thread per core for each
    image: on a worker that shares its cores with other worker processes that is time taken from them and
    ~0.2 ms of hand-over per image, where one thread does the product in ~0.5 ms. Exact either way (the
    sums are exact in any order). Process-wide and lasting, once per process: called from the image
    stage's `setup()`, so under the in-process runner it also holds for the launcher (or a test process)
    for the rest of its life. A BLAS threadpoolctl cannot control (e.g. macOS's Accelerate) is left as
    it is."""
    threadpoolctl.threadpool_limits(1, user_api="blas")
