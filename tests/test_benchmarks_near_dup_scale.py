"""benchmarks/near_dup_scale.py: the synthetic hashes it searches (uniform, planted near copies, a skewed share),
the dense clusters, and its lines: a size N searches N photos, not a whole chunk of 50,000 whatever N."""

from __future__ import annotations

import math
import re

import pytest

from benchmarks import near_dup_scale
from benchmarks.near_dup_scale import SKEW_PREFIX, beam_run, dense_cluster, synthetic_hashes


def test_the_hashes_hold_planted_near_copies_and_a_skewed_share():
    hashes = synthetic_hashes(20_000, seed=3)
    assert len(hashes) == 20_000 and synthetic_hashes(100, seed=3) == hashes[:100]  # a prefix: repeatable
    skewed = sum(value >> 40 == SKEW_PREFIX >> 40 for value in hashes)
    assert 0.015 < skewed / len(hashes) < 0.025  # 2%
    seen: set[int] = set()
    planted = 0
    for value in hashes[:5000]:
        planted += any((value ^ (1 << bit)) in seen for bit in range(64))  # one bit from an earlier hash
        seen.add(value)
    assert planted > 0


def test_a_dense_cluster_is_distinct_hashes_within_the_distance_of_one_centre():
    photos = dense_cluster(200, 4)
    values = [int(photo.phash, 16) for photo in photos]
    assert len(set(values)) == 200
    # every two within 2r of each other: within r of the one centre
    assert max((a ^ b).bit_count() for a in values[:50] for b in values[:50]) <= 8


def test_a_size_below_a_chunk_searches_that_many_photos():
    """It searched a whole chunk of 50,000 photos, whatever the size below it (and reported per image of the size).
    Its comparisons are counted (the planted near duplicates must be compared), far fewer than the brute force's."""
    seconds, comparisons, searched = beam_run(1_000, 4)
    assert searched == 1_000 and seconds > 0 and 0 < comparisons < 1_000 * 999 // 20


@pytest.mark.parametrize("size", [1, 50_000, 60_000, 100_000])
def test_the_chunks_of_a_size_hold_that_many_photos(size):
    """Between whole chunks, 60,000 searched 50,000 photos."""
    chunks = near_dup_scale.chunks(size)
    assert [chunk for chunk, _ in chunks] == list(range(len(chunks)))  # each chunk's own seed and ids
    assert all(0 < count <= near_dup_scale.CHUNK for _, count in chunks) and sum(count for _, count in chunks) == size
    last = near_dup_scale.photos_of_chunk(chunks[-1])
    assert len(last) == chunks[-1][1] and len({photo.photo_id for photo in last}) == len(last)


def test_every_line_is_printed_with_its_ratio(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["near_dup_scale", "--sizes", "1000", "--dense", "20", "50", "--subset", "2000"])
    near_dup_scale.main()
    lines = capsys.readouterr().out.splitlines()
    dense = re.compile(r"dense cluster n=\s*([\d,]+)  beam\s+(\d+\.\d) s   peak RSS\s+(\d+) MiB   comparisons/image\s+"
                       r"(\d+\.\d)   time/image vs n=20:\s+(\d+\.\d\d)x")
    clusters = [dense.fullmatch(line) for line in lines[:2]]
    assert all(clusters), lines[:2]
    assert [found.group(1) for found in clusters if found] == ["20", "50"]
    assert clusters[0] and clusters[0].group(5) == "1.00"  # the smallest cluster is the baseline
    assert re.fullmatch(r"brute force \(numpy popcount\), 2,000 hashes: \d+\.\d\d s", lines[2]), lines[2]
    assert lines[3].startswith("imagededup ")
    size = re.fullmatch(r"N=\s+1,000  beam\s+(\d+\.\d) s   peak RSS\s+(\d+) MiB   comparisons/image\s+(\d+\.\d\d)   "
                        r"brute force extrapolated\s+(\d+) s   ratio\s+(\d+\.\d)x", lines[-1])
    assert size, lines[-1]
    assert all(math.isfinite(float(value)) and float(value) >= 0 for value in size.groups())


@pytest.mark.parametrize("argv", [["--sizes", "0"], ["--sizes", "1000", "-5"], ["--dense", "0"], ["--subset", "0"],
                                  ["--distance", "-1"], ["--distance", "17"]])
def test_a_size_that_is_no_positive_count_is_refused_in_one_line(monkeypatch, capsys, argv):
    """`--sizes 0` ran the search and then divided by zero (a ZeroDivisionError traceback after the brute force);
    `--distance 17` searched the subset by brute force and then built the Beam search, which refuses a distance past
    16 (a ValueError traceback after the brute force's minutes at the default --subset)."""
    monkeypatch.setattr("sys.argv", ["near_dup_scale", *argv])
    monkeypatch.setattr(near_dup_scale, "brute_force_seconds", lambda *a: pytest.fail("measured although refused"))
    with pytest.raises(SystemExit) as stopped:
        near_dup_scale.main()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"near_dup_scale: error: argument --\w+: must be at (least [01]|most 16), not -?\d+ \(see "
                        r"`python -m benchmarks\.near_dup_scale --help`\)\n", err), err
