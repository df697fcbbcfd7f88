"""Image -> model input: the views a detector looks at (the whole image, plus overlapping tiles of
large images so that small people in the background are seen at a useful scale) and each view
turned into the tensor its registry entry describes."""

from __future__ import annotations

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
        offset = (side - size) // 2
        img = img.crop((offset, offset, offset + size, offset + size))
    else:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(img, dtype=np.uint8)
    if spec.channels == "BGR":
        pixels = pixels[:, :, ::-1]
    if spec.dtype == "uint8":
        array = np.ascontiguousarray(pixels)
    else:
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # checked just below
            array = pixels.astype(np.float32) * np.float32(spec.scale)
            array = (array - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
        if not np.isfinite(array).all():
            # A normalisation that is no normalisation (a std of 0, a huge scale): some models answer 0 for
            # such input, which would read as "no person". The batch fails instead (its photos rejected).
            raise NonFiniteInput("the input's normalisation (scale, mean, std) gives values that are no finite number")
    if spec.layout == "NCHW":
        array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(array)
