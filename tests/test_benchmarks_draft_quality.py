"""benchmarks/draft_quality.py on two corpus photos and the demo photographs: a table per image set with a row per
draft rule, whose counts stay within the images, against the full decode; and its PSNR and old box rule."""

from __future__ import annotations

import math
import re

import numpy as np

from benchmarks import draft_quality
from pipeline.stages.image import ImageConfig


def test_psnr_is_infinite_for_the_same_pixels_and_falls_with_the_error():
    a = np.zeros((4, 4, 3))
    assert draft_quality._psnr(a, a) == math.inf
    assert draft_quality._psnr(a, a + 1) == 10 * math.log10(255 ** 2)  # mse 1
    assert draft_quality._psnr(a, a + 16) < draft_quality._psnr(a, a + 4)


def test_the_box_rule_reduced_only_where_both_sides_were_twice_the_stored_size():
    cfg = ImageConfig(max_side=512)
    assert draft_quality._box_rule(4096, 4096, cfg) == 8
    assert draft_quality._box_rule(4096, 1024, cfg) == 2  # the shorter side decides
    assert draft_quality._box_rule(3000, 1500, cfg) == 2
    assert draft_quality._box_rule(4096, 1000, cfg) == 1  # under twice on one side: full size


def test_each_image_set_has_a_row_per_rule_and_its_counts_stay_within_the_images(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["draft_quality", "--images=2"])
    draft_quality.main()
    out = capsys.readouterr().out
    title = re.compile(r"(.+): (\d+) images stored at (\d+) px; full decode (\d+\.\d) ms/image; "
                       r"yardstick: JPEG q90 encoding itself, PSNR mean (\d+\.\d)")
    identical = re.compile(r"   (box \(before\)|2x|1x)\s+(\d+)\s+(\d+\.\d)   \(identical to the full decode\)")
    measured = re.compile(r"   (box \(before\)|2x|1x)\s+(\d+)\s+(\d+\.\d)\s+(\d+)\s+(\d+\.\d\d)\s+(\d+\.\d)\s+(\d+\.\d)"
                          r"\s+(\d+)\s+(\d+)")
    sets = [block.splitlines() for block in out.strip("\n").split("\n\n")]
    assert [(lines[0].split(":")[0], re.sub(r"\D+", " ", lines[0].split(";")[0]).split()[-2:]) for lines in sets] == [
        ("benchmark corpus (1024 px wide)", ["2", "512"]), ("demo photographs", ["10", "512"]),
        ("demo photographs", ["10", "256"]), ("demo photographs", ["10", "128"])]
    for lines in sets:
        head = title.fullmatch(lines[0])
        assert head, lines[0]
        count = int(head.group(2))
        assert float(head.group(4)) > 0 and float(head.group(5)) > 20  # q90: well above 20 dB
        assert lines[1].split() == ["rule", "drafted", "ms/img", "max", "|d|", "mean", "|d|", "PSNR", "min", "PSNR",
                                    "mean", "pHash", "moved", "max", "bits"]
        rows = lines[2:]
        assert [row.split("  ")[1].strip() for row in rows] == ["box (before)", "2x", "1x"]
        for row in rows:
            if found := identical.fullmatch(row):
                assert 0 <= int(found.group(2)) <= count and float(found.group(3)) > 0
                continue
            found = measured.fullmatch(row)
            assert found, row
            drafted, moved, bits = int(found.group(2)), int(found.group(8)), int(found.group(9))
            assert 1 <= drafted <= count and moved <= drafted and 0 <= bits <= 64
            assert 0 < float(found.group(4)) <= 255 and 0 < float(found.group(5)) <= float(found.group(4))
            assert 0 < float(found.group(6)) <= float(found.group(7))  # the smallest PSNR is not above the mean
    # the default rule keeps twice the stored size: 1024 px corpus photos at 512 px are never drafted by it
    assert re.match(r"   2x\s+0 ", sets[0][3])
