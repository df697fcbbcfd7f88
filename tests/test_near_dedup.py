"""Near-duplicate search against a brute-force oracle: identical kept sets and survivors on random
hash sets with planted clusters at distances r and r + 1 and planted giant buckets."""

from __future__ import annotations

import random
from collections import defaultdict

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import run
from pipeline.fixtures.static_server import StaticServer, image
from pipeline.fixtures.yfcc_rows import yfcc_line
from pipeline.near_dup.candidate_pairs import involved_in_partition, node_id, rows_of, split_partitions
from pipeline.near_dup.greedy import greedy_survivors
from pipeline.near_dup.pigeonhole import Node, block_masks, key_masks, previous_node
from pipeline.records import survivor_rank
from pipeline.stages.near_dedup import NearDuplicates, collapse_key
from tests.bad_images import crop_variant
from tests.conftest import FAST, Regrouped, encode, local_pipeline, peak_bytes_consuming, photo, real_image


def near(a, b, r, dhash_distance=-1):
    if (int(a.phash, 16) ^ int(b.phash, 16)).bit_count() > r:
        return False
    return dhash_distance < 0 or (int(a.dhash, 16) ^ int(b.dhash, 16)).bit_count() <= dhash_distance


def oracle(photos, r, dhash_distance=-1):
    """Brute force: visit photos best first; keep one with no kept photo within r (and, when
    confirming, within the dHash distance too)."""
    kept, dropped = [], {}
    for p in sorted(photos, key=survivor_rank):
        close = [(survivor_rank(k), k.photo_id, (int(p.phash, 16) ^ int(k.phash, 16)).bit_count()) for k in kept
                 if near(p, k, r, dhash_distance)]
        if close:
            _, survivor, d = min(close)
            dropped[p.photo_id] = (survivor, d)
        else:
            kept.append(p)
    return {p.photo_id for p in kept}, dropped


def in_memory(photos, r, key_blocks, cap, dhash_distance=-1, partition_bits=3):
    """The transform's steps without Beam: collapse equal hashes, key rows by partition, find the
    partnered representatives, run the greedy survivor rule on them, resolve."""
    masks = key_masks(r, key_blocks)
    by_hash = defaultdict(list)
    for p in photos:
        by_hash[collapse_key(p, dhash_distance)].append(p)
    reps = {h: min(ps, key=survivor_rank) for h, ps in by_hash.items()}
    nodes = [Node(int(rep.phash, 16), survivor_rank(rep), rep.photo_id, False,
                  int(rep.dhash, 16) if rep.dhash else None, group) for group, rep in reps.items()]
    ids = set()
    for _, part in split_partitions(rows_of(nodes, masks), partition_bits):
        ids |= {int(i) for i in involved_in_partition(part, masks, r, dhash_distance, cap)}
    involved = [n for n in nodes if node_id(n) in ids]
    decisions = {n.group: d[:2] for n, d in greedy_survivors(involved, masks, r, dhash_distance).items()}
    kept, dropped = set(), {}
    for h, ps in by_hash.items():
        ordered = sorted(ps, key=survivor_rank)
        if h in decisions:
            for p in ordered:
                dropped[p.photo_id] = decisions[h]
        else:
            kept.add(ordered[0].photo_id)
            for p in ordered[1:]:
                dropped[p.photo_id] = (ordered[0].photo_id, 0)
    return kept, dropped


def flip(value: int, bits: list[int]) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


def planted_world(seed: int, r: int, size: int, giant: int) -> list:
    """Random hashes, clusters at exactly r and r + 1, chains, exact copies and a giant bucket
    (many hashes sharing their top 40 bits, like dark or blank images)."""
    rng = random.Random(seed)
    hashes = []
    for _ in range(size):
        base = rng.getrandbits(64)
        hashes.append(base)
        kind = rng.random()
        if kind < 0.3:
            hashes.append(flip(base, rng.sample(range(64), r)))
        elif kind < 0.5:
            hashes.append(flip(base, rng.sample(range(64), r + 1)))
        elif kind < 0.6:
            hashes.append(base)
        elif kind < 0.7:  # a chain: each step within r of the previous, the ends not
            step = base
            for _ in range(3):
                step = flip(step, rng.sample(range(64), max(1, r)))
                hashes.append(step)
    prefix = rng.getrandbits(24) << 40
    hashes += [prefix | rng.getrandbits(min(40, r + 3)) for _ in range(giant)]
    return [photo(str(i + 1), phash=f"{h:016x}", original_width=rng.choice([100, 200]), original_height=100,
                  date_uploaded=f"2014-01-{rng.randint(1, 28):02d}T00:00:00Z")
            for i, h in enumerate(hashes)]


@pytest.mark.slow
@given(seed=st.integers(0, 10**6), r=st.integers(0, 8), key_blocks=st.integers(1, 3), giant=st.integers(0, 120),
       cap=st.sampled_from([2, 8, 64]))
@settings(max_examples=80, deadline=None)
def test_identical_to_brute_force(seed, r, key_blocks, giant, cap):
    photos = planted_world(seed, r, 40, giant)
    kept, dropped = in_memory(photos, r, key_blocks, cap)
    assert (kept, dropped) == oracle(photos, r)


def test_kept_set_has_no_pair_within_r_and_survivors_are_kept():
    photos = planted_world(7, 4, 200, 300)
    kept, dropped = in_memory(photos, 4, 2, 16)
    values = {p.photo_id: int(p.phash, 16) for p in photos}
    kept_values = [values[i] for i in kept]
    assert all((a ^ b).bit_count() > 4 for i, a in enumerate(kept_values) for b in kept_values[i + 1:])
    assert all(survivor in kept for survivor, _ in dropped.values())
    assert len(kept) + len(dropped) == len(photos)


def with_dhashes(photos, seed):
    """Give every photo one of a few dHashes: equal, 3 bits apart or 12 bits apart from a base, so
    confirmation at distance 5 sometimes agrees with pHash and sometimes vetoes it."""
    rng = random.Random(seed)
    base = rng.getrandbits(64)
    choices = [base, flip(base, rng.sample(range(64), 3)), flip(base, rng.sample(range(64), 12))]
    return [p.replace(dhash=f"{rng.choice(choices):016x}") for p in photos]


@given(seed=st.integers(0, 10**6), r=st.integers(0, 6), giant=st.integers(0, 60), cap=st.sampled_from([4, 64]))
@settings(max_examples=40, deadline=None)
def test_dhash_confirmation_identical_to_brute_force(seed, r, giant, cap):
    photos = with_dhashes(planted_world(seed, r, 30, giant), seed)
    assert in_memory(photos, r, 2, cap, dhash_distance=5) == oracle(photos, r, dhash_distance=5)


def test_dhash_confirmation_in_the_transform():
    photos = with_dhashes(planted_world(21, 4, 50, 40), 21)
    kept, dropped = oracle(photos, 4, dhash_distance=5)
    assert kept != oracle(photos, 4)[0]  # confirmation changes the outcome on this world
    with local_pipeline() as p:
        out = p | beam.Create(photos) | NearDuplicates(4, key_blocks=2, bucket_cap=8, dhash_distance=5)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(sorted(kept)), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.duplicate_of)),
                    equal_to([(i, s) for i, (s, _) in dropped.items()]), label="rejected")


@pytest.mark.parametrize("r,k", [(0, 1), (4, 1), (4, 2), (8, 2), (6, 3)])
def test_blocks_cover_all_bits_and_pigeonhole_holds(r, k):
    blocks = block_masks(r, k)
    assert sum(blocks) == 2**64 - 1 and len(blocks) == r + k
    masks = key_masks(r, k)
    rng = random.Random(r * 10 + k)
    for _ in range(200):
        a = rng.getrandbits(64)
        b = flip(a, rng.sample(range(64), r))
        assert any((a ^ b) & mask == 0 for mask in masks)


def assert_decides_as_the_oracle_on_a_planted_world() -> None:
    """NearDuplicates keeps and rejects what the brute-force oracle does on a planted world of near copies."""
    photos = planted_world(3, 4, 60, 80)
    kept, dropped = oracle(photos, 4)
    with local_pipeline() as p:
        out = p | beam.Create(photos) | NearDuplicates(4, key_blocks=2, bucket_cap=8)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(sorted(kept)), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.duplicate_of, r.reason)),
                    equal_to([(i, s, "near_duplicate") for i, (s, _) in dropped.items()]), label="rejected")


def test_transform_matches_oracle_on_planted_world():
    assert_decides_as_the_oracle_on_a_planted_world()


def oracle_with_previous(photos, previous, r):
    """Brute force: every image of the previous release is kept first; then the greedy rule."""
    by_id = {p.photo_id: p for p in photos}
    kept = [(int(h, 16), pid, True) for h, pid in previous]
    dropped = {}
    for p in sorted(photos, key=survivor_rank):
        value = int(p.phash, 16)
        close = [((float("-inf"), pid) if old else survivor_rank(by_id[pid]), pid, (value ^ v).bit_count())
                 for v, pid, old in kept]
        close = [c for c in close if c[2] <= r]
        if close:
            dropped[p.photo_id] = min(close)[1]
        else:
            kept.append((value, p.photo_id, False))
    return {pid for _, pid, old in kept if not old}, dropped



def test_new_images_are_compared_against_the_previous_release_index():
    earlier = planted_world(11, 4, 40, 20)
    previous = [(p.phash, f"old{p.photo_id}") for p in earlier]
    rng = random.Random(5)
    # New images: near copies of released ones (within r), fresh ones, and near copies among themselves.
    photos = []
    for i, p in enumerate(earlier[:30]):
        value = flip(int(p.phash, 16), rng.sample(range(64), rng.randint(0, 4)))
        photos.append(photo(str(1000 + i), phash=f"{value:016x}", original_width=100, original_height=100))
    photos += planted_world(12, 4, 20, 0)
    kept, dropped = oracle_with_previous(photos, previous, 4)
    assert any(s.startswith("old") for s in dropped.values())
    with local_pipeline() as p:
        old = p | "Old" >> beam.Create(previous)
        out = p | beam.Create(photos) | NearDuplicates(4, key_blocks=2, bucket_cap=8, previous=old)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(sorted(kept)), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.duplicate_of)),
                    equal_to(sorted(dropped.items())), label="rejected")


def test_previous_node_always_ranks_first():
    assert previous_node("00000000000000ff", "9").rank < survivor_rank(photo("1", original_width=10**6,
                                                                             original_height=10**6))


def run_against_index(tmp_path, index) -> dict:
    """A second run into tmp_path/r2 against `index`: a re-encoded copy of the demo's photo 1004 and a new photo."""
    with StaticServer() as server:
        copy = encode(real_image("coffee.jpg").resize((450, 300)), "JPEG", quality=75)
        lines = [yfcc_line(1, "5001", server.add("/2/5001_ab.jpg", image(copy))),
                 yfcc_line(2, "5002", server.add("/2/5002_ab.jpg", image(crop_variant("hubble_deep_field.jpg", 2))))]
        second = tmp_path / "two.tsv"
        second.write_text("\n".join(lines) + "\n")
        return run([f"--input={second}", f"--output={tmp_path / 'r2'}", f"--allowed_hosts={server.host}",
                    f"--previous_index={index}", *FAST])


def test_second_run_compares_against_first_release_index(demo_release, tmp_path):
    """Run 1 on the demo world (the session's demo release) wrote near_dup_index/; run 2 reads it: a
    re-encoded copy of a released photo is rejected as its near duplicate, a new photo is kept, and
    run 2's index holds both runs."""
    stats = run_against_index(tmp_path, demo_release / "near_dup_index" / "*.parquet")
    assert stats["kept"] == 1 and stats["rejections_by_stage"]["near_dedup"] == {"near_duplicate": 1}
    rejection = pq.read_table(tmp_path / "r2" / "rejections").to_pylist()[0]
    assert (rejection["photo_id"], rejection["duplicate_of"]) == ("5001", "1004")
    assert "previous release" in rejection["detail"]
    first_index = pq.read_table(demo_release / "near_dup_index").column("photo_id").to_pylist()
    second_index = pq.read_table(tmp_path / "r2" / "near_dup_index").column("photo_id").to_pylist()
    assert len(first_index) == 10 and sorted(second_index) == sorted([*first_index, "5002"])



def test_an_index_file_whose_name_holds_a_backslash_is_read(demo_release, tmp_path):
    """Beam's ReadFromParquet read --previous_index with its own glob, whose '*' never matches a backslash: the launch
    check found the file, the job compared nothing with it."""
    import shutil

    index = tmp_path / "index"
    index.mkdir()
    for number, shard in enumerate(sorted((demo_release / "near_dup_index").glob("*.parquet"))):
        shutil.copy(shard, index / f"index\\{number}.parquet")
    stats = run_against_index(tmp_path, index / "*.parquet")
    assert stats["kept"] == 1 and stats["rejections_by_stage"]["near_dedup"] == {"near_duplicate": 1}

def test_a_group_of_twenty_thousand_identical_hashes_is_never_held_in_memory():
    """One collapse group (a blank image's pHash) of 20,000 photos: read in passes, never listed."""
    from pipeline.stages.near_dedup import _Resolve

    def tagged(i):
        return "photo", photo(str(i + 1), phash="00ff", original_width=100 + (i == 777), original_height=100)

    group = Regrouped(tagged, 20_000)
    assert peak_bytes_consuming(_Resolve().process(("00ff", group))) < 2_000_000
    outputs = list(_Resolve().process(("00ff", group)))
    assert outputs[0].photo_id == "778" and len(outputs) == 20_000
    assert {(o.value.duplicate_of, o.value.detail) for o in outputs[1:]} == {
        ("778", "pHash distance 0 (identical pHash)")}
    # Dropped as a whole group: every photo names the survivor the greedy step chose.
    dropped = Regrouped(lambda i: tagged(i) if i else ("dropped", ("42", 3, True)), 1_001)
    rejected = list(_Resolve().process(("00ff", dropped)))
    assert len(rejected) == 1_000 and {(r.value.duplicate_of, r.value.detail) for r in rejected} == {
        ("42", "pHash distance 3 to an image of the previous release")}


def test_previous_index_rows_no_run_writes_are_ignored_and_counted_and_an_index_without_dhashes_is_read(
        demo_release, tmp_path):
    """A --previous_index row with a pHash that is no hash failed the whole job, and so did an index written
    before the dHash column existed. Such rows are ignored (counted in stats.json); an index without dHashes is
    compared on pHashes alone."""
    import pyarrow as pa

    from pipeline.stages.near_dedup import previous_entry

    index = tmp_path / "index"
    index.mkdir()
    released = pq.read_table(demo_release / "near_dup_index")
    pq.write_table(released.drop_columns(["dhash"]), index / "old-00000.parquet")  # before dHashes
    pq.write_table(pa.table({"phash": ["not-a-hash", "00000000000000ff", "00000000000000ff"],
                             "photo_id": ["7", "../x", "8"], "dhash": ["", "", "xyz"]}), index / "bad.parquet")
    assert [list(previous_entry(row)) for row in pq.read_table(index / "bad.parquet").to_pylist()] == [[], [], []]
    assert list(previous_entry({"phash": "00000000000000ff", "photo_id": "007"})) == [("00000000000000ff", "7", "")]
    stats = run_against_index(tmp_path, index / "*.parquet")
    assert stats["kept"] == 1 and stats["rejections_by_stage"]["near_dedup"] == {"near_duplicate": 1}
    assert stats["previous_index_rows_ignored"] == 3
    rejection = pq.read_table(tmp_path / "r2" / "rejections").to_pylist()[0]
    assert (rejection["photo_id"], rejection["duplicate_of"]) == ("5001", "1004")


def test_an_id_listed_twice_in_the_previous_index_decides_the_same_whatever_the_order():
    """An image replaced under its id between releases is in an index twice, with two pHashes: both are compared
    (which one took part depended on the order the rows arrived in)."""
    close, far = ("00000000000000fe", "99", ""), ("ffffffffffff0000", "99", "")
    for previous in ([far, close], [close, far]):
        with local_pipeline() as p:
            old = p | "Old" >> beam.Create(previous)
            out = p | beam.Create([photo("5", phash="00000000000000ff")]) | NearDuplicates(4, previous=old)
            assert_that(out.kept, equal_to([]), label="kept")
            assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.duplicate_of)), equal_to([("5", "99")]))


def test_an_index_row_listed_a_hundred_thousand_times_joins_once_and_is_never_listed():
    """A previous index listing one row 100,000 times gives 100,000 copies of one representative under one id: a
    CoGroupByKey held them as one list in one worker; they are read as a stream, and the id joins the greedy step
    once, only when it has a partner."""
    from pipeline.stages.near_dedup import first_if_partnered

    node = previous_node("00000000000000ff", "9", "")
    made = [0]

    def tagged(i):
        made[0] += 1
        return ("node", node) if i < 100_000 else ("partnered", True)

    assert peak_bytes_consuming(first_if_partnered(("id", Regrouped(tagged, 100_001)))) < 1_000_000
    assert list(first_if_partnered(("id", Regrouped(tagged, 100_001)))) == [node]
    assert list(first_if_partnered(("id", Regrouped(tagged, 100_000)))) == []  # no partner: not involved
    partner_first = Regrouped(lambda i: tagged(100_000 - i), 100_001)
    assert list(first_if_partnered(("id", partner_first))) == [node]


def test_representatives_whose_ids_collide_each_join_the_greedy_step():
    """A representative's id is a 64-bit hash (`node_id`): of two under one id, the one that came first in the group
    joined the greedy step and the other never did, so it was kept beside its near copy (which one, by the order the
    shuffle gave). Each distinct representative under an id with a partner joins it, whatever the order."""
    from pipeline.stages.near_dedup import first_if_partnered

    one, other = previous_node("00000000000000ff", "9", ""), Node(0xFF00, (-100, "x", 3, "3"), "3", False, None, "g")
    for group in ([("node", one), ("node", other), ("partnered", True)], [("node", other), ("partnered", True),
                                                                          ("node", one), ("node", other)]):
        assert sorted(first_if_partnered(("id", group)), key=lambda node: node.photo_id) == [other, one]


def test_the_transform_decides_as_brute_force_when_representatives_ids_collide(monkeypatch):
    """Every representative's id folded onto four values: collisions everywhere, and the same decisions."""
    from pipeline.near_dup import candidate_pairs
    from pipeline.stages import near_dedup

    colliding = lambda node: node_id(node) & 3  # noqa: E731
    monkeypatch.setattr(candidate_pairs, "node_id", colliding)
    monkeypatch.setattr(near_dedup, "node_id", colliding)
    assert_decides_as_the_oracle_on_a_planted_world()


def test_an_index_listing_its_rows_three_times_decides_as_once():
    earlier = planted_world(11, 4, 40, 20)
    previous = [(p.phash, f"old{p.photo_id}") for p in earlier]
    rng = random.Random(6)
    photos = [photo(str(1000 + i), phash=f"{flip(int(p.phash, 16), rng.sample(range(64), 2)):016x}",
                    original_width=100, original_height=100) for i, p in enumerate(earlier[:20])]
    photos += planted_world(13, 4, 20, 0)
    kept, dropped = oracle_with_previous(photos, previous, 4)
    with local_pipeline() as p:
        old = p | "Old" >> beam.Create(previous * 3)
        out = p | beam.Create(photos) | NearDuplicates(4, key_blocks=2, bucket_cap=8, previous=old)
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(sorted(kept)), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.duplicate_of)),
                    equal_to(sorted(dropped.items())), label="rejected")
