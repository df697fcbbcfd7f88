"""Which pHash radius separates copies from different photos? Measured on the real photographs the
project ships: distances between each photo and its re-encoded, resized and slightly cropped
copies, against distances between different photos (and different crops of one photo).

    .venv/bin/python -m benchmarks.near_dup_radius
"""

from __future__ import annotations

import io
import itertools
from collections import Counter

import imagehash
from PIL import Image, ImageEnhance

from pipeline.demo import DEMO_PHOTOS, demo_image
from pipeline.images import ImageConfig, normalise


def stored_hash(img: Image.Image, quality: int = 90) -> imagehash.ImageHash:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, "JPEG", quality=quality)
    return imagehash.hex_to_hash(normalise(buffer.getvalue(), ImageConfig(min_side=16)).phash)


def copies(img: Image.Image) -> dict[str, Image.Image]:
    w, h = img.size
    return {
        "jpeg q50": img, "jpeg q30": img,
        "resize 0.5x": img.resize((w // 2, h // 2)), "resize 2x": img.resize((w * 2, h * 2)),
        "crop 2%": img.crop((w // 50, h // 50, w - w // 50, h - h // 50)),
        "crop 5%": img.crop((w // 20, h // 20, w - w // 20, h - h // 20)),
        "crop 10%": img.crop((w // 10, h // 10, w - w // 10, h - h // 10)),
        "brightness +10%": ImageEnhance.Brightness(img).enhance(1.1),
        "greyscale": img.convert("L").convert("RGB"),
    }


def main() -> None:
    originals = {name: Image.open(io.BytesIO(demo_image(name))).convert("RGB") for _, name, *_ in DEMO_PHOTOS}
    base = {name: stored_hash(img) for name, img in originals.items()}
    by_transform: dict[str, list[int]] = {}
    for name, img in originals.items():
        for label, copy in copies(img).items():
            quality = 50 if label == "jpeg q50" else 30 if label == "jpeg q30" else 90
            by_transform.setdefault(label, []).append(base[name] - stored_hash(copy, quality))
    print("copy of the same photo -> pHash distance (min / median / max over 10 photos)")
    for label, values in by_transform.items():
        ordered = sorted(values)
        print(f"  {label:18s} {ordered[0]:3d} {ordered[len(ordered) // 2]:3d} {ordered[-1]:3d}")
    different = [base[a] - base[b] for a, b in itertools.combinations(base, 2)]
    quadrants = []
    for img in originals.values():
        w, h = img.size
        quads = [stored_hash(img.crop((x, y, x + w // 2, y + h // 2))) for x in (0, w // 2) for y in (0, h // 2)]
        quadrants += [a - b for a, b in itertools.combinations(quads, 2)]
    print(f"different photos: min {min(different)}, histogram {sorted(Counter(different).items())[:6]} ...")
    print(f"different quadrants of one photo: min {min(quadrants)}")


if __name__ == "__main__":
    main()
