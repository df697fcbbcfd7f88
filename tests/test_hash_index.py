import random
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.near_dup import hash_index
from pipeline.near_dup.hash_index import HashIndex


def brute(entries, value):
    close = [((e ^ value).bit_count(), i) for i, (e, d, _) in enumerate(entries) if (e ^ value).bit_count() <= d]
    if not close:
        return None
    d, i = min(close)
    return entries[i][2], d


@given(seed=st.integers(0, 10**6), size=st.integers(0, 60), key_blocks=st.integers(1, 3), skewed=st.booleans(),
       big_bucket=st.sampled_from([1, 4, 64]))
@settings(max_examples=60, deadline=None)
def test_nearest_matches_brute_force(seed, size, key_blocks, skewed, big_bucket):
    """Against brute force; `skewed` entries share their top 32 bits (one key's bucket holds them all),
    and small `big_bucket` sizes send the buckets through the vectorised scan."""
    rng = random.Random(seed)
    prefix = rng.getrandbits(32) << 32
    entries = [((prefix | rng.getrandbits(32)) if skewed else rng.getrandbits(64), rng.randint(0, 8), f"e{i}")
               for i in range(size)]
    with mock.patch.object(hash_index, "BIG_BUCKET", big_bucket):
        index = HashIndex(entries, key_blocks)
    queries = [rng.getrandbits(64) for _ in range(20)]
    for value, distance, _ in entries:  # planted queries at, inside and just outside each distance
        for flips in (distance, max(0, distance - 1), distance + 1):
            query = value
            for bit in rng.sample(range(64), flips):
                query ^= 1 << bit
            queries.append(query)
    for query in queries:
        assert index.nearest(query) == brute(entries, query)


@given(seed=st.integers(0, 10**6), pool=st.integers(1, 6), size=st.integers(0, 40), key_blocks=st.integers(1, 3),
       big_bucket=st.sampled_from([1, 4, 64]))
@settings(max_examples=80, deadline=None)
def test_nearest_matches_brute_force_on_ties_repeats_and_every_distance(seed, pool, size, key_blocks, big_bucket):
    """Entries a few bits from a handful of centres, so that many are equally close to a query (the first listed
    wins), one hash is listed several times with different distances (a list naming it twice), and distances run
    over all of 0..16, as a list's entries may (random entries almost never tie)."""
    rng = random.Random(seed)
    centres = [rng.getrandbits(64) for _ in range(pool)]

    def near(value, bits):
        for bit in rng.sample(range(64), bits):
            value ^= 1 << bit
        return value

    entries = [(near(rng.choice(centres), rng.randint(0, 3)), rng.randint(0, 16), f"e{i}") for i in range(size)]
    with mock.patch.object(hash_index, "BIG_BUCKET", big_bucket):
        index = HashIndex(entries, key_blocks)
    queries = [near(rng.choice(centres), rng.randint(0, 20)) for _ in range(40)] + [0, 2**64 - 1]
    for query in queries:
        assert index.nearest(query) == brute(entries, query)


def test_empty_index():
    assert HashIndex([]).nearest(123) is None and len(HashIndex([])) == 0


def test_one_wide_entry_does_not_widen_every_lookup():
    """A list of narrow entries and one `phash X 16`: keyed for the largest distance, every entry got 153 keys instead
    of 15 and each lookup compared a hundred times more (100,000 entries: 40 s to build, 1.2 ms a lookup). Each
    distance is keyed alone: the narrow entries' lookups compare what they did without the wide one."""
    from pipeline.near_dup.pigeonhole import key_masks

    rng = random.Random(3)
    narrow = [(rng.getrandbits(64), 4, f"n{i}") for i in range(5000)]
    wide = (rng.getrandbits(64), 16, "wide")
    alone, mixed = HashIndex(narrow), HashIndex([*narrow, wide])
    queries = [rng.getrandbits(64) for _ in range(300)] + [narrow[7][0] ^ 0b111, wide[0] ^ (2**16 - 1)]
    for query in queries:
        assert mixed.nearest(query) == brute([*narrow, wide], query)
    compared = {name: sum(buckets.compared for _, buckets in index._by_radius) for name, index in
                (("alone", alone), ("mixed", mixed))}
    assert compared["mixed"] <= compared["alone"] + len(queries) * len(key_masks(16, 2))


def test_a_large_list_is_held_in_arrays_not_python_objects():
    """Dictionaries of tuples held ~220 bytes an entry a key: a million-entry list (ImageNet's training set given to
    --decontaminate) took 3.5 GB in every worker. Sorted arrays take ~16 bytes an entry a key."""
    import tracemalloc

    rng = random.Random(4)
    entries = [(rng.getrandbits(64), 4, i) for i in range(50_000)]
    tracemalloc.start()
    try:
        index = HashIndex(entries)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert index.nearest(entries[123][0] ^ 0b1011) == (123, 3)
    assert held < 50_000 * 15 * 40, held  # well under 40 bytes an entry a key (was ~220)
