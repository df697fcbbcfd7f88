"""benchmarks/verify_license_calls.py on 20 carried photos per regime: a row per photos-per-owner regime whose
counts add up, per-photo checks at one call per photo, the adaptive strategy never above it, and the hours line."""

from __future__ import annotations

import random
import re

import pytest

from benchmarks import verify_license_calls
from benchmarks.verify_license_calls import REGIMES, owners_for


@pytest.mark.parametrize("mean", REGIMES)
def test_owners_carry_the_photos_at_the_asked_mean(mean):
    counts = owners_for(100, mean, random.Random(0))
    assert sum(counts) == 100 and all(count >= 1 for count in counts)
    assert all(count in (int(mean), int(mean) + 1) for count in counts[:-1])  # the last takes what is left
    assert 100 / len(counts) == pytest.approx(mean, rel=0.25)


def test_every_regime_is_a_row_and_no_invariant_breaks(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["verify_license_calls", "--photos=20"])
    assert verify_license_calls.main() == 0
    captured = capsys.readouterr()
    assert "INVARIANT VIOLATED" not in captured.err
    lines = captured.out.splitlines()
    assert re.fullmatch(r"\s*photos/owner\s+photos\s+owners\s+missing\s+calls per photo:\s+per photo\s+owner first\s+"
                        r"adaptive", lines[0]), lines[0]
    row = re.compile(r"\s*(\d+(?:\.\d+)?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+\.\d{3})\s+(\d+\.\d{3})\s+(\d+\.\d{3})")
    ratios = []
    for mean, line in zip(REGIMES, lines[1:6], strict=True):
        found = row.fullmatch(line)
        assert found, line
        assert float(found.group(1)) == mean and int(found.group(2)) == 20
        owners, missing = int(found.group(3)), int(found.group(4))
        assert 1 <= owners <= 20 and 0 <= missing <= 20
        per_photo, owner_first, adaptive = (float(found.group(i)) for i in (5, 6, 7))
        assert per_photo == 1.0 and owner_first > 0 and 0 < adaptive <= 1.0
        if mean >= verify_license_calls.MANY:
            assert adaptive * 20 <= owners + missing
        ratios.append(adaptive)
    hours = re.fullmatch(r"PASS \(1\.44M images\) at 3,600 calls/hour/key: per photo 400 hours; adaptive between "
                         r"([\d,]+) and ([\d,]+) hours by photos per owner", lines[6])
    assert hours, lines[6]
    low, high = (int(hours.group(i).replace(",", "")) for i in (1, 2))
    assert (low, high) == (round(400 * min(ratios)), round(400 * max(ratios)))  # 1.44M / 3,600 = 400 per call/photo
