"""The batched candidate search against the per-element one it replaces: the same pairs, once each."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.near_dup.candidate_pairs import node_id, pairs_in_partition, rows_of, split_partitions
from pipeline.near_dup.pigeonhole import Edge, Node, key_masks
from tests.oracles import confirmed


def flip(value, rng, bits):
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


def nodes_world(seed, r, size, giant):
    rng = random.Random(seed)
    values = []
    for _ in range(size):
        base = rng.getrandbits(64)
        values += [base, flip(base, rng, rng.randint(0, r + 1))]
    prefix = rng.getrandbits(24) << 40
    values += [prefix | rng.getrandbits(min(40, r + 3)) for _ in range(giant)]
    dbase = rng.getrandbits(64)
    nodes = []
    for k, value in enumerate(dict.fromkeys(values)):  # distinct pHashes, as after collapsing
        dhash = rng.choice([dbase, flip(dbase, rng, 3), flip(dbase, rng, 12), None])
        previous = rng.random() < 0.2
        nodes.append(Node(value, (k,), f"{k}", previous, dhash, f"g{k}"))
    return nodes


def brute(nodes, r, dhash_distance):
    out = set()
    for x, a in enumerate(nodes):
        for b in nodes[x + 1:]:
            d = (a.value ^ b.value).bit_count()
            if d <= r and not (a.previous and b.previous) and confirmed(Edge(a, b, d), dhash_distance):
                out.add((frozenset((node_id(a), node_id(b))), d))
    return out


@given(seed=st.integers(0, 10**6), r=st.integers(0, 8), key_blocks=st.integers(1, 3), giant=st.integers(0, 80),
       cap=st.sampled_from([2, 6, 64]), bits=st.integers(0, 6), dhash_distance=st.sampled_from([-1, 5]))
@settings(max_examples=80, deadline=None)
def test_batched_pairs_equal_brute_force(seed, r, key_blocks, giant, cap, bits, dhash_distance):
    nodes = nodes_world(seed, r, 30, giant)
    masks = key_masks(r, key_blocks)
    rows = rows_of(nodes, masks)
    found = []
    for _, part in split_partitions(rows, bits):
        a, b, d = pairs_in_partition(part, masks, r, dhash_distance, cap)
        found += [(frozenset((int(x), int(y))), int(z)) for x, y, z in zip(a, b, d, strict=True)]
    assert len(found) == len(set(found)), "a pair was reported twice"
    assert set(found) == brute(nodes, r, dhash_distance)
