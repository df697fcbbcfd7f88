"""The survivor rule over an index of kept hashes against the brute-force greedy: the same drops,
survivors and distances; and a dense cluster costs probes in proportion to its size."""

from __future__ import annotations

import random
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.near_dup import hash_index
from pipeline.near_dup.greedy import KeptIndex, greedy_survivors
from pipeline.near_dup.pigeonhole import Node, key_masks, previous_node
from tests.oracles import greedy


def flip(value: int, rng: random.Random, bits: int) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


def clustered_nodes(seed: int, r: int, clusters: int, per_cluster: int, skewed: bool = False) -> list[Node]:
    """Clusters of hashes a few bits from a centre (chains and overlaps included), some of them
    previous-release images, some with dHashes that veto, ranks with ties broken by photo id.
    `skewed`: every centre shares the top 24 bits, so one key's bucket holds many kept hashes."""
    rng = random.Random(seed)
    dbase = rng.getrandbits(64)
    prefix = rng.getrandbits(24) << 40
    values = []
    for _ in range(clusters):
        centre = prefix | rng.getrandbits(40) if skewed else rng.getrandbits(64)
        values += [flip(centre, rng, rng.randint(0, r + 1)) for _ in range(per_cluster)]
    nodes = []
    for k, value in enumerate(dict.fromkeys(values)):  # distinct pHashes, as after collapsing
        dhash = rng.choice([dbase, flip(dbase, rng, 3), flip(dbase, rng, 12), None])
        if rng.random() < 0.15:
            node = previous_node(f"{value:016x}", f"old{k}", f"{dhash:016x}" if dhash is not None else "")
        else:
            node = Node(value, (rng.randint(0, 5), f"{k}"), f"{k}", False, dhash, f"g{k}")
        nodes.append(node)
    rng.shuffle(nodes)
    return nodes


@given(seed=st.integers(0, 10**6), r=st.integers(0, 8), key_blocks=st.integers(1, 3),
       per_cluster=st.integers(1, 12), dhash_distance=st.sampled_from([-1, 5]), skewed=st.booleans(),
       big_bucket=st.sampled_from([1, 4, 64]))
@settings(max_examples=120, deadline=None)
def test_index_greedy_equals_brute_force(seed, r, key_blocks, per_cluster, dhash_distance, skewed, big_bucket):
    nodes = clustered_nodes(seed, r, 15, per_cluster, skewed)
    with mock.patch.object(hash_index, "BIG_BUCKET", big_bucket):  # 1 and 4: the vectorised buckets too
        found = greedy_survivors(nodes, key_masks(r, key_blocks), r, dhash_distance)
    assert found == greedy(nodes, r, dhash_distance)
    assert not any(node.previous for node in found), "an image of the previous release was displaced"


def test_a_dense_cluster_costs_probes_in_proportion_to_its_size():
    """3,000 hashes all within 4 of each other: one is kept, every other probe meets only it
    (an edge list would hold 4.5 million pairs)."""
    rng = random.Random(5)
    base = rng.getrandbits(64)
    nodes = list({n.value: n for n in (Node(flip(base, rng, 2), (k,), f"{k}") for k in range(3000))}.values())
    index = KeptIndex(key_masks(4, 2))
    dropped = greedy_survivors(nodes, key_masks(4, 2), 4, -1, index)
    assert len(dropped) == len(nodes) - 1
    assert index.probes <= len(key_masks(4, 2)) * (len(nodes) - 1)  # the one kept hash, under each key it shares
