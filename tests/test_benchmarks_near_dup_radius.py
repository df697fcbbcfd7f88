"""benchmarks/near_dup_radius.py: the pHash distances of each demo photograph's copies, of different photographs
and of one photograph's quadrants, the lines README's "Why r = 4" reads; and the dHash confirmation's counts."""

from __future__ import annotations

import io
import re

from PIL import Image

from benchmarks import near_dup_radius
from pipeline.fixtures.demo_world import DEMO_PHOTOS, demo_image


def test_the_copies_are_of_the_photo_and_the_simple_images_are_of_four_kinds():
    img = Image.open(io.BytesIO(demo_image("coffee.jpg"))).convert("RGB")
    copies = near_dup_radius.copies(img)
    assert copies["resize 0.5x"].size == (img.width // 2, img.height // 2)
    assert copies["crop 10%"].size == (img.width - 2 * (img.width // 10), img.height - 2 * (img.height // 10))
    assert near_dup_radius.stored_hash(copies["jpeg q50"], 50) - near_dup_radius.stored_hash(img) <= 4
    simple = [near_dup_radius.simple_image(i) for i in range(8)]
    assert all(image.size == (400, 300) for image in simple)
    assert simple[0].tobytes() == near_dup_radius.simple_image(0).tobytes()  # repeatable
    assert len({image.tobytes() for image in simple}) == 8


def test_every_line_of_the_measurement_is_printed_with_plain_numbers(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["near_dup_radius"])
    near_dup_radius.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "copy of the same photo -> pHash distance (min / median / max over 10 photos)"
    labels = list(near_dup_radius.copies(Image.new("RGB", (100, 100))))
    for label, line in zip(labels, lines[1:], strict=False):
        found = re.fullmatch(r"  (.+?)\s+(\d+)\s+(\d+)\s+(\d+)", line)
        assert found and found.group(1) == label, line
        low, median, high = (int(found.group(i)) for i in (2, 3, 4))
        assert 0 <= low <= median <= high <= 64
    rest = lines[1 + len(labels):]
    different = re.fullmatch(r"different photos: min (\d+), histogram (\[.*\]) \.\.\.", rest[0])
    assert different, rest[0]
    histogram = re.findall(r"\((\d+), (\d+)\)", different.group(2))
    assert different.group(2) == "[" + ", ".join(f"({d}, {n})" for d, n in histogram) + "]"  # plain numbers
    distances = [int(d) for d, _ in histogram]
    assert distances == sorted(distances) and distances[0] == int(different.group(1)) and len(distances) <= 6
    assert sum(int(n) for _, n in histogram) <= len(DEMO_PHOTOS) * (len(DEMO_PHOTOS) - 1) // 2
    assert re.fullmatch(r"different quadrants of one photo: min \d+", rest[1])
    assert rest[2:4] == ["", "dHash confirmation (pHash <= 4, then dHash <= 10):"]
    pairs = re.fullmatch(r"  simple images: (\d+) pairs, (\d+) pHash false positives, (\d+) of them also within "
                         r"dHash 10 \(i\.e\. not removed by confirming\)", rest[4])
    assert pairs and int(pairs.group(1)) == 600 * 599 // 2 and int(pairs.group(3)) <= int(pairs.group(2)), rest[4]
    copies = re.fullmatch(r"  true copies of real photos: max dHash (\d+) over (\d+) copies", rest[5])
    assert copies and int(copies.group(2)) == 3 * len(DEMO_PHOTOS), rest[5]
    assert len(rest) == 6
