"""Image -> model input: the views a detector looks at (the whole image, plus overlapping tiles of
large images so that small people in the background are seen at a useful scale) and each view
turned into the tensor its registry entry describes."""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

from pipeline.detectors.registry import InputSpec

TILE_GRID = 2  # 2 x 2 tiles ...
TILE_OVERLAP = 0.25  # ... each overlapping its neighbour by a quarter, so nobody is cut in half unseen



class NonFiniteInput(ValueError):
    """A model input that holds NaN or infinity: no image a model can judge."""

def decode(image_bytes: bytes) -> Image.Image:
    """The stored image (already validated, bounded and re-encoded by the images stage) as RGB."""
    with Image.open(io.BytesIO(image_bytes)) as img:
        return img.convert("RGB")


def tile_boxes(width: int, height: int, grid: int = TILE_GRID, overlap: float = TILE_OVERLAP
               ) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of grid x grid tiles covering the image, neighbours overlapping."""
    def spans(length: int) -> list[tuple[int, int]]:
        size = min(length, int(np.ceil(length / (grid - (grid - 1) * overlap))))
        starts = np.linspace(0, length - size, grid).round().astype(int)
        return [(int(s), int(s) + size) for s in starts]

    return [(left, top, right, bottom) for top, bottom in spans(height) for left, right in spans(width)]


def tiled(size: tuple[int, int], tiles: bool, tile_min_side: int) -> bool:
    """Whether an image of this size is also checked as tiles: tiling on and the image large enough to gain."""
    return tiles and tile_min_side > 0 and max(size) >= tile_min_side


def views(img: Image.Image, tiles: bool, tile_min_side: int) -> list[Image.Image]:
    """The whole image, then its tiles when tiling is on and the image is large enough to gain."""
    out = [img]
    if tiled(img.size, tiles, tile_min_side):
        out += [img.crop(box) for box in tile_boxes(*img.size)]
    return out


def to_tensor(img: Image.Image, spec: InputSpec) -> np.ndarray:
    """One view as the model's input, without the batch axis."""
    size = spec.size
    if spec.resize == "letterbox":  # keep the aspect ratio, pad with black (right/bottom, or centred)
        scale = size / max(img.size)
        resized = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (size, size))
        offset = ((size - resized.width) // 2, (size - resized.height) // 2) if spec.align == "center" else (0, 0)
        canvas.paste(resized, offset)
        img = canvas
    elif spec.resize == "resize_center_crop":
        side = spec.resize_to or size
        img = img.resize((side, side), Image.Resampling.BILINEAR)
        margin = (side - size) // 2
        img = img.crop((margin, margin, margin + size, margin + size))
    else:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(img, dtype=np.uint8)
    if spec.channels == "BGR":
        pixels = pixels[:, :, ::-1]
    if spec.layout == "NCHW":
        pixels = pixels.transpose(2, 0, 1)
    if spec.dtype == "uint8":
        return np.ascontiguousarray(pixels)
    table = float_values(spec.scale, spec.mean, spec.std)
    array = np.empty(pixels.shape, np.float32)
    for channel in range(3):
        plane = (slice(None),) * (0 if spec.layout == "NCHW" else 2) + (channel,)
        # mode="clip": a uint8 always indexes a 256-entry table, and "raise" writes through a buffer (4x slower)
        np.take(table[channel], pixels[plane], out=array[plane], mode="clip")
    return array


def float_values(scale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256): what each pixel value of each channel becomes, (value x scale - mean) / std in float32,
    the same operations in the same order as when they ran over a whole view, so a view looked up here
    is bit for bit what computing it gave. Looking up is cheaper than three passes of float arithmetic
    and a finiteness pass over every view (CenterFace's 512 x 512 views were prepared 2.5 to 4.7 times
    faster, measured against the computation in one process), and the finiteness check covers every value
    a view can hold, once."""
    # Kept by the float32 bytes the arithmetic uses: keyed by the floats, -0.0 == 0.0 served a table of -0.0s
    # for a mean of 0.0, a sign bit the computation never gave.
    return _table(*(np.asarray(value, np.float32).tobytes() for value in (scale, mean, std)))


@functools.lru_cache(maxsize=64)
def _table(scale: bytes, mean: bytes, std: bytes) -> np.ndarray:
    values = np.arange(256, dtype=np.uint8).astype(np.float32)[:, None]
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # checked just below
        table: np.ndarray = values * np.frombuffer(scale, np.float32)
        table = (table - np.frombuffer(mean, np.float32)) / np.frombuffer(std, np.float32)
    if not np.isfinite(table).all():
        # A normalisation that is no normalisation (a std of 0, a huge scale): some models answer 0 for
        # such input, which would read as "no person". The batch fails instead (its photos rejected).
        raise NonFiniteInput("the input's normalisation (scale, mean, std) gives values that are no finite number")
    table = np.ascontiguousarray(np.broadcast_to(table, (256, 3)).T)
    table.setflags(write=False)  # one table serves every view and thread
    return table
