"""Which pHash radius separates copies from different photos? Measured on the real photographs the
project ships: distances between each photo and its re-encoded, resized and slightly cropped
copies, against distances between different photos (and different crops of one photo).

Second question: would confirming each pHash match with a dHash cut false positives on simple,
low-detail images (gradients, shapes, stripes, text-like bars) without losing true copies?

    .venv/bin/python -m benchmarks.near_dup_radius
"""

from __future__ import annotations

import io
import itertools
from collections import Counter

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from pipeline.fixtures.demo_world import DEMO_PHOTOS, demo_image
from pipeline.stages.image import ImageConfig, normalise
from pipeline.usage import OneLineParser, usage_said


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


def simple_image(i: int) -> Image.Image:
    """Low-detail synthetic images of four kinds, with mild noise: where pHash collides most."""
    rng = np.random.default_rng(i)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    img = Image.new("RGB", (400, 300), colour)
    draw = ImageDraw.Draw(img)
    kind = i % 4
    if kind == 0:
        ramp = np.tile(np.linspace(rng.integers(0, 120), rng.integers(130, 256), 400), (300, 1))
        img = Image.fromarray(np.stack([ramp, ramp * rng.random(), ramp * rng.random()], -1).astype(np.uint8))
    elif kind == 1:
        x, y, r = int(rng.integers(50, 350)), int(rng.integers(50, 250)), int(rng.integers(20, 80))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    elif kind == 2:
        for _ in range(int(rng.integers(2, 6))):
            x = int(rng.integers(0, 400))
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.rectangle((x, 0, x + int(rng.integers(5, 40)), 300), fill=fill)
    else:
        for line in range(8):
            draw.rectangle((20, 20 + line * 35, 20 + int(rng.integers(100, 360)), 32 + line * 35), fill=(20, 20, 20))
    noisy = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (300, 400, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def both_hashes(img: Image.Image, quality: int = 90) -> tuple[imagehash.ImageHash, imagehash.ImageHash]:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, "JPEG", quality=quality)
    stored = normalise(buffer.getvalue(), ImageConfig(min_side=16, min_stddev=0.0))
    return imagehash.hex_to_hash(stored.phash), imagehash.dhash(Image.open(io.BytesIO(stored.jpeg)))


def dhash_confirmation(radius: int = 4, dhash_radius: int = 10, count: int = 600) -> None:
    simple = [both_hashes(simple_image(i)) for i in range(count)]
    false_positives = [(a[0] - b[0], a[1] - b[1]) for a, b in itertools.combinations(simple, 2)
                       if a[0] - b[0] <= radius]
    kept_by_dhash = sum(1 for _, d in false_positives if d <= dhash_radius)
    copies = []
    for _, name, *_ in DEMO_PHOTOS:
        img = Image.open(io.BytesIO(demo_image(name))).convert("RGB")
        original = both_hashes(img)
        for copy, quality in ((img.resize((img.width // 2, img.height // 2)), 90), (img, 30),
                              (img.convert("L").convert("RGB"), 90)):
            hashed = both_hashes(copy, quality)
            copies.append((original[0] - hashed[0], original[1] - hashed[1]))
    print(f"\ndHash confirmation (pHash <= {radius}, then dHash <= {dhash_radius}):")
    print(f"  simple images: {count * (count - 1) // 2} pairs, {len(false_positives)} pHash false positives, "
          f"{kept_by_dhash} of them also within dHash {dhash_radius} (i.e. not removed by confirming)")
    print(f"  true copies of real photos: max dHash {max(d for _, d in copies)} over {len(copies)} copies")


@usage_said("near_dup_radius")
def main() -> None:
    # no options; parsed so that --help answers, and an unknown option is refused, instead of running the measurement
    OneLineParser(prog="python -m benchmarks.near_dup_radius",
                  description=(__doc__ or "").split("\n\n")[0]).parse_args()
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
    # int(): imagehash's distance is a numpy integer, which the histogram's list would print as np.int64(22)
    different = [int(base[a] - base[b]) for a, b in itertools.combinations(base, 2)]
    quadrants = []
    for img in originals.values():
        w, h = img.size
        quads = [stored_hash(img.crop((x, y, x + w // 2, y + h // 2))) for x in (0, w // 2) for y in (0, h // 2)]
        quadrants += [a - b for a, b in itertools.combinations(quads, 2)]
    print(f"different photos: min {min(different)}, histogram {sorted(Counter(different).items())[:6]} ...")
    print(f"different quadrants of one photo: min {min(quadrants)}")
    dhash_confirmation()


if __name__ == "__main__":
    main()
