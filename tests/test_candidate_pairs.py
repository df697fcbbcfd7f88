"""The batched candidate search against brute force: exactly the representatives that have a partner."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.near_dup.candidate_pairs import involved_in_partition, node_id, rows_of, split_partitions
from pipeline.near_dup.pigeonhole import Node, key_masks
from tests.oracles import partnered


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


@given(seed=st.integers(0, 10**6), r=st.integers(0, 8), key_blocks=st.integers(1, 3), giant=st.integers(0, 80),
       cap=st.sampled_from([2, 6, 64]), bits=st.integers(0, 6), dhash_distance=st.sampled_from([-1, 5]))
@settings(max_examples=80, deadline=None)
def test_batched_search_finds_exactly_the_partnered(seed, r, key_blocks, giant, cap, bits, dhash_distance):
    nodes = nodes_world(seed, r, 30, giant)
    masks = key_masks(r, key_blocks)
    found: set[int] = set()
    for _, part in split_partitions(rows_of(nodes, masks), bits):
        found |= {int(i) for i in involved_in_partition(part, masks, r, dhash_distance, cap)}
    assert found == {node_id(n) for n in partnered(nodes, r, dhash_distance)}


def test_a_dense_cluster_yields_one_id_per_image_not_one_edge_per_pair():
    """3,000 hashes all within 4 of each other: 4.5 million pairs, reported as 3,000 ids."""
    rng = random.Random(3)
    base = rng.getrandbits(64)
    nodes = [Node(flip(base, rng, 2), (k,), f"{k}", False, None, f"g{k}") for k in range(3000)]
    nodes = list({n.value: n for n in nodes}.values())  # distinct pHashes, as after collapsing
    masks = key_masks(4, 2)
    found = [involved_in_partition(part, masks, 4, -1, 64) for _, part in split_partitions(rows_of(nodes, masks), 0)]
    assert sorted(int(i) for ids in found for i in ids) == sorted(node_id(n) for n in nodes)
