"""Generators of the bad and awkward images every crawl meets; used by the image and e2e tests."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.conftest import encode, real_image, real_jpeg


def png_bomb(side: int = 12_000) -> bytes:
    """A real decompression bomb: a valid greyscale PNG of side x side zero pixels, ~100 KB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    data = real_jpeg("coffee.jpg")
    return data[: len(data) // 2]


def cmyk_jpeg() -> bytes:
    return encode(real_image("coffee.jpg").convert("CMYK"), "JPEG", quality=90)


def png16() -> bytes:
    grey = np.asarray(real_image("coffee.jpg").convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(grey.astype(np.uint16), "I;16"), "PNG")


def animated_gif() -> bytes:
    frames = [real_image("chelsea.jpg").convert("P"), real_image("coffee.jpg").resize((451, 300)).convert("P")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def exif_rotated_jpeg() -> tuple[bytes, tuple[int, int]]:
    """A landscape-stored JPEG with EXIF orientation 6 (display rotated 90 degrees) and a GPS tag."""
    img = real_image("coffee.jpg")  # 600 x 400
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "CameraMaker"
    gps = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    exif[0x8825] = gps
    return encode(img, "JPEG", exif=exif.tobytes(), quality=90), (400, 600)


def single_colour() -> bytes:
    return encode(Image.new("RGB", (256, 256), (90, 140, 200)), "PNG")


def one_by_one() -> bytes:
    return encode(Image.new("RGB", (1, 1), (255, 0, 0)), "PNG")


def rgba_png() -> bytes:
    img = real_image("chelsea.jpg").convert("RGBA")
    img.putalpha(128)
    return encode(img, "PNG")


HTML = b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Not here</body></html>"


def crop_variant(name: str, i: int) -> bytes:
    """Quadrant i (0-3) of a real photo: distinct content, so neither an exact nor a near duplicate."""
    img = real_image(name)
    w, h = img.width // 2, img.height // 2
    x, y = (i % 2) * w, (i // 2) * h
    return encode(img.crop((x, y, x + w, y + h)), "JPEG", quality=90)
