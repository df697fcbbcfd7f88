"""close_flags, the bucket search, against brute force: exactly the hashes that have a partner,
whether the bucket is split on its varying bits or compared in many small vectorised steps."""

from __future__ import annotations

import random
from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.near_dup import pigeonhole
from pipeline.near_dup.pigeonhole import Hashes, Node, close_flags
from tests.oracles import partnered


def bucket(seed: int, size: int, varying_bits: int) -> list[Node]:
    """Hashes sharing their top bits (one bucket), varying in the low ones; dHashes near or far;
    some from the previous release."""
    rng = random.Random(seed)
    prefix = rng.getrandbits(64) & ~((1 << varying_bits) - 1)
    dbase = rng.getrandbits(64)
    nodes = []
    for k, value in enumerate(dict.fromkeys(prefix | rng.getrandbits(varying_bits) for _ in range(size))):
        dhash = rng.choice([dbase, dbase ^ 0b111, dbase ^ 0xFFF, None])
        nodes.append(Node(value, (k,), f"{k}", rng.random() < 0.25, dhash, f"g{k}"))
    return nodes


def as_hashes(nodes: list[Node]) -> Hashes:
    return Hashes(np.array([n.value for n in nodes], dtype=np.uint64),
                  np.array([n.dhash or 0 for n in nodes], dtype=np.uint64),
                  np.array([n.dhash is not None for n in nodes], dtype=bool),
                  np.array([n.previous for n in nodes], dtype=bool))


@given(seed=st.integers(0, 10**6), r=st.integers(0, 8), size=st.integers(0, 150), varying=st.integers(1, 24),
       cap=st.sampled_from([1, 4, 64, 1000]), cells=st.sampled_from([1, 7, 1 << 22]),
       leaders=st.sampled_from([1, 3, 256]), dhash_distance=st.sampled_from([-1, 5]))
@settings(max_examples=150, deadline=None)
def test_close_flags_equal_brute_force(seed, r, size, varying, cap, cells, leaders, dhash_distance):
    nodes = bucket(seed, size, varying)
    fixed = (2**64 - 1) ^ ((1 << varying) - 1)
    # 1 and 7 cells: many small steps; 1 and 3 leaders: covers that leave much to the full search
    with mock.patch.object(pigeonhole, "_BRUTE_CELLS", cells), mock.patch.object(pigeonhole, "LEADERS", leaders):
        flags = close_flags(as_hashes(nodes), r, dhash_distance, fixed, cap)
    assert {n for n, flag in zip(nodes, flags, strict=True) if flag} == partnered(nodes, r, dhash_distance)


def test_a_small_bucket_at_the_largest_distance_is_compared_in_one_pass_not_split_into_thousands():
    """At --near_dup_distance=16 a bucket just over the cap was split into 17 sub-blocks, each group again, to depth
    3: up to 17^3 searches for a few hundred hashes that one vectorised pass compares (200 hashes within 17 bits of
    one another, a burst of near-identical frames, took ~20 s in the batched search; 300 took 55 s)."""
    from pipeline.near_dup.candidate_pairs import involved_in_partition, node_id, rows_of
    from pipeline.near_dup.pigeonhole import key_masks

    rng = random.Random(0)
    base = rng.getrandbits(64)
    values = dict.fromkeys(base ^ sum(1 << bit for bit in rng.sample(range(64), rng.randint(0, 17)))
                           for _ in range(200))
    nodes = [Node(value, (k,), f"{k}", False, None, f"g{k}") for k, value in enumerate(values)]
    masks = key_masks(16, 2)
    with mock.patch.object(pigeonhole, "close_flags", wraps=pigeonhole.close_flags) as searched:
        ids = involved_in_partition(rows_of(nodes, masks), masks, 16, -1, 64)
    assert set(ids.tolist()) == {node_id(n) for n in partnered(nodes, 16, -1)}
    assert searched.call_count <= len(masks)  # one search per bucket over the cap, none split


def shared_phash_bucket(seed: int, size: int, phash_bits: int, dhash_bits: int) -> list[Node]:
    """Hashes whose pHashes vary in a few bits (dark photographs sharing one), their dHashes in `dhash_bits` low bits
    of one base, some close; some without a dHash (an older index's), some from the previous release."""
    rng = random.Random(seed)
    base, dbase = rng.getrandbits(64), rng.getrandbits(64)
    nodes = []
    for k in range(size):
        value = base ^ rng.getrandbits(phash_bits) if phash_bits else base
        dhash = None if rng.random() < 0.1 else dbase ^ rng.getrandbits(dhash_bits)
        nodes.append(Node(value, (k,), f"{k}", rng.random() < 0.2, dhash, f"g{k}"))
    return nodes


@given(seed=st.integers(0, 10**6), r=st.integers(0, 6), size=st.integers(0, 200), phash_bits=st.integers(0, 4),
       dhash_bits=st.integers(1, 64), dhash_distance=st.integers(0, 10), cap=st.sampled_from([1, 4, 64]),
       cells=st.sampled_from([1, 7, 1 << 22]))
@settings(max_examples=150, deadline=None)
def test_a_bucket_of_one_phash_split_on_its_dhashes_equals_brute_force(seed, r, size, phash_bits, dhash_bits,
                                                                        dhash_distance, cap, cells):
    nodes = shared_phash_bucket(seed, size, phash_bits, dhash_bits)
    with mock.patch.object(pigeonhole, "_BRUTE_CELLS", cells):
        flags = close_flags(as_hashes(nodes), r, dhash_distance, 0, cap)
    assert {n for n, flag in zip(nodes, flags, strict=True) if flag} == partnered(nodes, r, dhash_distance)


def brute_flags(hashes: Hashes, distance: int, dhash_distance: int) -> np.ndarray:
    """`oracles.partnered` as one numpy pass over all pairs, for buckets of thousands."""
    close = np.bitwise_count(hashes.value[:, None] ^ hashes.value[None, :]) <= distance
    vetoed = hashes.has_dhash[:, None] & hashes.has_dhash[None, :] \
        & (np.bitwise_count(hashes.dhash[:, None] ^ hashes.dhash[None, :]) > dhash_distance)
    close &= ~vetoed & ~(hashes.previous[:, None] & hashes.previous[None, :])
    np.fill_diagonal(close, False)
    return close.any(axis=1)


def test_thousands_sharing_a_phash_that_the_dhash_keeps_apart_are_not_compared_pair_by_pair():
    """A bucket's pHashes varying in too few bits to split on were compared whole: n hashes sharing one pHash (dark
    photographs), told apart by the dHash check, cost n^2 comparisons under each key they share (16,000 took ~20 s of
    the batched search, 100,000 ~15 min). Split on their dHashes, a pair the check confirms still meets."""
    rng = random.Random(1)
    size = 4000
    nodes = [Node(7, (k,), f"{k}", False, rng.getrandbits(64), f"g{k}") for k in range(size)]
    nodes += [Node(7 ^ 0b11, (size,), "near", False, nodes[0].dhash ^ 0b101, "near"),  # nodes[0]'s partner
              Node(7 ^ 0b1, (size + 1,), "old", True, None, "old")]  # an older index's: no dHash, pairs with all
    pairs = pigeonhole._pairs
    for given_nodes in (nodes, nodes[:-1]):
        hashes, compared = as_hashes(given_nodes), []

        def counted(hashes, rows, columns, *args, _compared=compared, **kwargs):
            _compared.append(len(rows) * len(columns))
            return pairs(hashes, rows, columns, *args, **kwargs)

        with mock.patch.object(pigeonhole, "_pairs", counted):
            flags = close_flags(hashes, 4, 3, 0, 64)
        assert np.array_equal(flags, brute_flags(hashes, 4, 3)) and flags[0] and flags[size]
        assert flags.sum() == (len(nodes) if given_nodes is nodes else 2)
        assert sum(compared) < 2 * len(given_nodes) * 64  # the no-dHash node against all, small groups: not n^2


@st.composite
def clustered_bucket(draw) -> tuple[list[Node], np.ndarray]:
    """One pHash or a few near ones; dHashes in a few clusters over any number of varying bits (none to all 64), some
    repeated whole; many, few or no hashes without a dHash or of the previous release; which hashes are asked for."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    phashes = [rng.getrandbits(64) for _ in range(draw(st.integers(1, 3)))]
    phash_flips = draw(st.integers(0, 3))
    dbits = rng.sample(range(64), draw(st.integers(0, 64)))
    dbase = rng.getrandbits(64)
    clusters = [dbase ^ sum(1 << bit for bit in rng.sample(dbits, rng.randint(0, len(dbits))))
                for _ in range(draw(st.integers(1, 5)))]
    no_dhash, previous, repeated, asked = (draw(st.sampled_from(shares)) for shares in (
        [0.0, 0.1, 0.5, 0.95], [0.0, 0.3, 0.9], [0.0, 0.3], [1.0, 0.5, 0.1]))
    nodes: list[Node] = []
    for k in range(draw(st.integers(0, 120))):
        if nodes and rng.random() < repeated:
            like = rng.choice(nodes)
            nodes.append(Node(like.value, (k,), f"{k}", rng.random() < previous, like.dhash, f"g{k}"))
            continue
        value = rng.choice(phashes)
        for _ in range(rng.randint(0, phash_flips)):
            value ^= 1 << rng.randrange(64)
        dhash = rng.choice(clusters)
        for _ in range(rng.randint(0, 3) if dbits else 0):
            dhash ^= 1 << rng.choice(dbits)
        nodes.append(Node(value, (k,), f"{k}", rng.random() < previous, None if rng.random() < no_dhash else dhash,
                          f"g{k}"))
    return nodes, np.array([rng.random() < asked for _ in nodes], dtype=bool)


@given(given_bucket=clustered_bucket(), r=st.integers(0, 10), dhash_distance=st.sampled_from([0, 1, 2, 5, 12, 62, 64]),
       cap=st.sampled_from([2, 3, 64]), cells=st.sampled_from([1, 4, 50]), leaders=st.sampled_from([1, 2, 256]),
       depth=st.sampled_from([1, 3]))
@settings(max_examples=300, deadline=None)
def test_a_bucket_split_on_its_dhashes_answers_the_hashes_asked_for_exactly(given_bucket, r, dhash_distance, cap,
                                                                            cells, leaders, depth):
    """Against brute force, with a mask of the hashes asked for: each asked-for hash is flagged exactly when it has a
    partner, and no hash without one is ever flagged."""
    nodes, wanted = given_bucket
    partners = partnered(nodes, r, dhash_distance)
    truth = np.array([n in partners for n in nodes], dtype=bool)
    with mock.patch.object(pigeonhole, "_BRUTE_CELLS", cells), mock.patch.object(pigeonhole, "LEADERS", leaders), \
            mock.patch.object(pigeonhole, "MAX_SPLIT_DEPTH", depth):
        flags = close_flags(as_hashes(nodes), r, dhash_distance, 0, cap, wanted=wanted.copy())
    assert np.array_equal(flags[wanted], truth[wanted]) and not (flags & ~truth).any()


def test_a_bucket_whose_dhash_sub_blocks_would_hold_more_pairs_than_itself_is_compared_whole():
    """At a dHash distance of 16 the dHash's 64 bits are cut into 17 sub-blocks of 3 or 4 bits: grouped by each, the
    groups held more pairs in all than the bucket, and the split cost up to 4 times the comparisons of comparing the
    bucket whole (40,000 hashes sharing one pHash: 12.7 s, against 4.7 s). Such a bucket is compared whole."""
    counted = mock.Mock()
    rng = np.random.default_rng(1)
    size, dhash_distance = 3000, 16
    hashes = Hashes(np.full(size, 7, dtype=np.uint64), rng.integers(0, 2**64, size, dtype=np.uint64),
                    np.ones(size, dtype=bool), np.zeros(size, dtype=bool))
    with mock.patch.object(pigeonhole, "COMPARISONS", counted):
        flags = close_flags(hashes, 4, dhash_distance, 0, 64)
    assert np.array_equal(flags, brute_flags(hashes, 4, dhash_distance))
    compared = sum(call.args[0] for call in counted.inc.call_args_list)
    assert compared <= size * size + size * pigeonhole.LEADERS  # one pass over the bucket, and its leaders
