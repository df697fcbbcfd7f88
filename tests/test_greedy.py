"""The survivor rule over an index of kept hashes against the brute-force greedy: the same drops,
survivors and distances; and a dense cluster costs probes in proportion to its size."""

from __future__ import annotations

import random
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.near_dup import greedy as greedy_module
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
       big_bucket=st.sampled_from([1, 4, 64]), chunk=st.sampled_from([1, 3, 16, 8192]),
       large_run=st.sampled_from([1, 3, 64]))
@settings(max_examples=120, deadline=None)
def test_index_greedy_equals_brute_force(seed, r, key_blocks, per_cluster, dhash_distance, skewed, big_bucket, chunk,
                                         large_run):
    """`chunk`: nodes searched for together in the index's settled levels (1 and 3: a level for nearly every node,
    levels merged; 8,192: one chunk, the recent dicts alone); `large_run`: runs of a key compared in place."""
    nodes = clustered_nodes(seed, r, 15, per_cluster, skewed)
    with mock.patch.object(hash_index, "BIG_BUCKET", big_bucket), mock.patch.object(greedy_module, "CHUNK", chunk), \
            mock.patch.object(greedy_module, "_LARGE_RUN", large_run):  # BIG_BUCKET 1 and 4: the vectorised buckets too
        found = greedy_survivors(nodes, key_masks(r, key_blocks), r, dhash_distance)
    assert found == greedy(nodes, r, dhash_distance)
    assert not any(node.previous for node in found), "an image of the previous release was displaced"


@given(seed=st.integers(0, 10**6), r=st.integers(1, 8), ids=st.integers(1, 3), dhash_distance=st.sampled_from([-1, 5]))
@settings(max_examples=80, deadline=None)
def test_previous_images_sharing_an_id_tie_as_brute_force_breaks_it(seed, r, ids, dhash_distance):
    """A previous index may list one id several times (its image replaced between releases): those nodes share a
    rank and an id, so a new image near several of them names that id at the smallest distance. Random ids never
    tie, so the property test above could not see which distance was named."""
    def shared(node: Node) -> Node:  # half of the nodes previous ones, under `ids` ids between them
        number = int(node.photo_id.removeprefix("old"))
        if not node.previous and number % 2:
            return node
        return previous_node(f"{node.value:016x}", f"old{number % ids}",
                             f"{node.dhash:016x}" if node.dhash is not None else "")

    nodes = [shared(node) for node in clustered_nodes(seed, r, 6, 8)]
    assert greedy_survivors(nodes, key_masks(r, 2), r, dhash_distance) == greedy(nodes, r, dhash_distance)


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


def shared_value_nodes(seed: int, values: int, per_value: int) -> list[Node]:
    """Nodes sharing a few pHash values (near each other too) whose dHashes differ: what the dHash check keeps
    apart, as dark photographs sharing a pHash are."""
    rng = random.Random(seed)
    centre, dbase = rng.getrandbits(64), rng.getrandbits(64)
    phashes = [flip(centre, rng, rng.randint(0, 3)) for _ in range(values)]
    nodes = []
    for k in range(values * per_value):
        dhash = rng.choice([flip(dbase, rng, rng.randint(0, 20)), None]) if rng.random() < 0.9 else None
        if rng.random() < 0.1:
            nodes.append(previous_node(f"{phashes[k % values]:016x}", f"old{k}",
                                       f"{dhash:016x}" if dhash is not None else ""))
        else:
            nodes.append(Node(phashes[k % values], (rng.randint(0, 5), f"{k}"), f"{k}", False, dhash, f"g{k}"))
    rng.shuffle(nodes)
    return nodes


@given(seed=st.integers(0, 10**6), values=st.integers(1, 4), per_value=st.integers(1, 40),
       dhash_distance=st.sampled_from([0, 3, 8, 16, 20]), small_group=st.sampled_from([0, 2, 32]),
       chunk=st.sampled_from([1, 5, 8192]))
@settings(max_examples=80, deadline=None)
def test_nodes_sharing_a_phash_kept_apart_by_the_dhash_match_brute_force(seed, values, per_value, dhash_distance,
                                                                         small_group, chunk):
    nodes = shared_value_nodes(seed, values, per_value)
    with mock.patch.object(greedy_module, "SMALL_GROUP", small_group), \
            mock.patch.object(greedy_module, "CHUNK", chunk):  # SMALL_GROUP 0 and 2: the dHash keys from the start
        found = greedy_survivors(nodes, key_masks(4, 2), 4, dhash_distance)
    assert found == greedy(nodes, 4, dhash_distance)


def test_thousands_of_nodes_sharing_a_phash_cost_dhash_checks_in_proportion_to_their_number():
    """3,000 nodes of one pHash, their dHashes far apart: all kept. Each probe used to check the dHash of every kept
    node (4.5 million checks; 16,000 nodes took 90 s); under the dHash keys a probe meets the few sharing a key."""
    rng = random.Random(9)
    nodes = [Node(0xABCDEF, (k,), f"{k}", False, rng.getrandbits(64), f"g{k}") for k in range(3000)]
    with mock.patch.object(greedy_module, "confirmed", wraps=greedy_module.confirmed) as checks:
        dropped = greedy_survivors(nodes, key_masks(4, 2), 4, 3)
    assert dropped == {}  # 64 random bits: no two dHashes within 3
    assert checks.call_count <= greedy_module.SMALL_GROUP * len(nodes), checks.call_count


def brute_force_by_arrays(nodes: list[Node], r: int, dhash_distance: int) -> dict[Node, tuple[str, int, bool]]:
    """`greedy` of tests/oracles.py, each node compared with every kept one in one numpy pass: the same O(n^2)
    rule, fast enough for the thousands of nodes that make an index hold several levels."""
    import numpy as np

    kept: list[Node] = []
    values, dhashes = np.zeros(len(nodes), np.uint64), np.zeros(len(nodes), np.uint64)
    known, previous = np.zeros(len(nodes), bool), np.zeros(len(nodes), bool)
    dropped = {}
    for node in sorted(nodes, key=lambda n: n.rank):
        k = len(kept)
        close = np.bitwise_count(values[:k] ^ np.uint64(node.value)) <= r
        if dhash_distance >= 0 and node.dhash is not None:
            close &= ~known[:k] | (np.bitwise_count(dhashes[:k] ^ np.uint64(node.dhash)) <= dhash_distance)
        if node.previous:
            close &= ~previous[:k]
        partners = [kept[i] for i in np.flatnonzero(close).tolist()]
        if partners:
            dropped[node] = min((p.rank, p.photo_id, (p.value ^ node.value).bit_count(), p.previous)
                                for p in partners)[1:]
            continue
        values[k], previous[k] = node.value, node.previous
        dhashes[k], known[k] = node.dhash or 0, node.dhash is not None
        kept.append(node)
    return dropped


def realistic_nodes(seed: int, count: int) -> list[Node]:
    """The involved nodes of a large run, in miniature: pairs and triples, clusters of 4-20, a dense cluster of
    hundreds within 3 bits, pHashes shared under different dHashes, previous-release images, tied ranks."""
    rng = random.Random(seed)
    dbase = rng.getrandbits(64)
    values: list[int] = []
    while len(values) < count:
        centre = rng.getrandbits(64)
        size = rng.choice([2] * 14 + [3] * 5 + [rng.randint(4, 20)] + ([rng.randint(200, 600)] if rng.random() < 0.02
                                                                         else []))
        values += [flip(centre, rng, rng.randint(0, 3)) for _ in range(size)]
    nodes = []
    for k, value in enumerate(values[:count]):
        dhash = rng.choice([flip(dbase, rng, rng.randint(0, 12)), None, rng.getrandbits(64)])
        if rng.random() < 0.1:
            nodes.append(previous_node(f"{value:016x}", f"old{k % 50}", f"{dhash:016x}" if dhash is not None else ""))
        else:
            nodes.append(Node(value, (rng.randint(0, 3), f"{k}"), f"{k}", False, dhash, f"g{k}"))
    rng.shuffle(nodes)
    return nodes


def test_thousands_of_realistic_nodes_match_brute_force():
    """Enough nodes that the index holds thousands of kept hashes, with and without the dHash check, searched for a
    chunk at a time in its settled levels."""
    nodes = realistic_nodes(3, 6000)
    small = realistic_nodes(4, 400)
    for dhash_distance in (-1, 5):
        assert brute_force_by_arrays(small, 4, dhash_distance) == greedy(small, 4, dhash_distance)
        expected = brute_force_by_arrays(nodes, 4, dhash_distance)
        for chunk, run in ((8192, 64), (97, 64), (97, 2)):  # one chunk; sixty, levels merged; runs of 2 in place
            with mock.patch.object(greedy_module, "CHUNK", chunk), mock.patch.object(greedy_module, "_LARGE_RUN", run):
                assert greedy_survivors(nodes, key_masks(4, 2), 4, dhash_distance) == expected


def test_the_kept_index_holds_a_few_hundred_bytes_a_kept_hash():
    """12,000 pairs: 12,000 hashes kept. Dicts of lists of tuples under each of 15 keys held ~3.5 KB for each (a
    million involved nodes took 2 GiB on the one worker that runs the survivor rule); sorted arrays hold ~200 bytes,
    the dicts only what was kept in the last chunk."""
    import tracemalloc

    rng = random.Random(11)
    nodes = []
    for k in range(12_000):
        value = rng.getrandbits(64)
        nodes += [Node(value, (0, f"a{k}"), f"a{k}"), Node(flip(value, rng, 2), (1, f"b{k}"), f"b{k}")]
    with mock.patch.object(greedy_module, "CHUNK", 1024):
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            dropped = greedy_survivors(nodes, key_masks(4, 2), 4, -1)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
    assert len(dropped) == 12_000
    assert peak / 12_000 < 1_200, f"{peak / 12_000:.0f} bytes a kept hash"
