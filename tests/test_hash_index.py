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


def test_empty_index():
    assert HashIndex([]).nearest(123) is None and len(HashIndex([])) == 0
