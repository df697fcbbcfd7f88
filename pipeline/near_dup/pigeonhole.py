"""The pigeonhole search for pairs of 64-bit hashes within Hamming distance r (no Beam transforms).

The 64 bits are cut into r + k blocks; two hashes within distance r differ in at most r blocks,
so they agree exactly on at least k blocks. Keying every hash by each choice of k blocks
(C(r+k, k) keys of about 64k/(r+k) bits) and comparing only hashes that share a key finds every
pair. A bucket larger than a cap is split again on the bits in which its hashes vary, to a
bounded depth; what is left is compared with vectorised XOR/popcount in numpy, in chunks. The
survivor rule is a global greedy pass over the edges (`greedy_survivors`). The Beam stage that
uses this is `pipeline/stages/near_dedup.py`; `candidate_pairs.py` batches the keys as numpy rows.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from apache_beam.metrics import Metrics

HASH_BITS = 64


def block_masks(distance: int, key_blocks: int) -> list[int]:
    """Bit masks of the r + k blocks, as even as possible, covering all 64 bits."""
    count = distance + key_blocks
    bounds = [round(i * HASH_BITS / count) for i in range(count + 1)]
    return [((1 << (high - low)) - 1) << low for low, high in itertools.pairwise(bounds)]


def key_masks(distance: int, key_blocks: int) -> list[int]:
    """One mask per choice of k blocks: two hashes within r agree exactly on at least one of them."""
    blocks = block_masks(distance, key_blocks)
    return [sum(combo) for combo in itertools.combinations(blocks, key_blocks)]


def candidate_keys(value: int, masks: Sequence[int]) -> list[str]:
    return [f"{index}:{value & mask:016x}" for index, mask in enumerate(masks)]


class Node(NamedTuple):
    """A representative in the pairwise step: hash, survivor rank, photo id. Light by design.
    `previous` marks an image of an earlier release (from its persisted index): it always wins.
    `group` is the key its photos were collapsed under (the pHash, plus the dHash when confirming)."""

    value: int
    rank: tuple
    photo_id: str
    previous: bool = False
    dhash: int | None = None
    group: str = ""


def previous_node(phash: str, photo_id: str, dhash: str = "") -> Node:
    # -inf sorts before every rank of a new image: released images are never displaced.
    return Node(int(phash, 16), (float("-inf"), photo_id), photo_id, True, int(dhash, 16) if dhash else None)


class Edge(NamedTuple):
    a: Node
    b: Node
    distance: int


MAX_SPLIT_DEPTH = 3
_BRUTE_CHUNK = 2048


COMPARISONS = Metrics.counter("near_dedup", "hash_comparisons")


def _pairs_brute(nodes: Sequence[Node], distance: int, avoid: Sequence[int] = ()) -> dict[tuple, Edge]:
    """Every pair within `distance` that differs somewhere on each mask of `avoid`, vectorised:
    XOR and popcount in numpy, in row chunks so that memory stays at chunk x n. (`avoid` holds the
    sub-blocks a split visited before this group: a pair agreeing on one of them was found there.)"""
    found: dict[tuple, Edge] = {}
    if len(nodes) < 2:
        return found
    COMPARISONS.inc(len(nodes) * (len(nodes) - 1) // 2)
    values = np.array([node.value for node in nodes], dtype=np.uint64)
    idents = [_ident(node) for node in nodes]
    for start in range(0, len(nodes), _BRUTE_CHUNK):
        rows = values[start:start + _BRUTE_CHUNK]
        xor = rows[:, None] ^ values[None, :]
        distances = np.bitwise_count(xor)
        # Upper triangle only: each unordered pair once.
        wanted = (distances <= distance) & (np.arange(start, start + len(rows))[:, None] < np.arange(len(nodes)))
        for mask in avoid:
            wanted &= (xor & np.uint64(mask)) != 0
        for i, j in zip(*np.nonzero(wanted), strict=True):
            a, b = start + int(i), int(j)
            key = (idents[a], idents[b]) if idents[a] < idents[b] else (idents[b], idents[a])
            found[key] = Edge(nodes[a], nodes[b], int(distances[i, j]))
    return found


def cross_pairs(new: Sequence[Node], old: Sequence[Node], distance: int) -> dict[tuple, Edge]:
    """Pairs within `distance` between new images and a previous release's (never old with old)."""
    found: dict[tuple, Edge] = {}
    if not new or not old:
        return found
    COMPARISONS.inc(len(new) * len(old))
    old_values = np.array([node.value for node in old], dtype=np.uint64)
    for start in range(0, len(new), _BRUTE_CHUNK):
        rows = np.array([node.value for node in new[start:start + _BRUTE_CHUNK]], dtype=np.uint64)
        distances = np.bitwise_count(rows[:, None] ^ old_values[None, :])
        for i, j in zip(*np.nonzero(distances <= distance), strict=True):
            edge = Edge(old[int(j)], new[start + int(i)], int(distances[i, j]))
            found[_ordered(edge)] = edge
    return found


def bucket_pairs(nodes: Sequence[Node], distance: int, fixed_mask: int, bucket_cap: int,
                 depth: int = 0, avoid: tuple[int, ...] = ()) -> dict[tuple, Edge]:
    """All pairs within `distance` among `nodes`, which agree on the bits of `fixed_mask`.

    Small buckets are compared pairwise (vectorised). A large one is split: bits on which all of
    its hashes agree are fixed; the varying bits are cut into distance + 1 sub-blocks, any close
    pair agrees on one of them, so grouping by each sub-block and recursing finds every pair, and
    each group is strictly smaller than the bucket. A pair is reported only from the first
    sub-block it agrees on (`avoid` carries the earlier ones down), so an adversarial bucket, where
    most pairs agree on many sub-blocks, does not rebuild the same edge at every leaf. The depth is
    bounded, so such buckets cost at most (distance + 1)^depth times their size in vectorised
    comparisons. Returns {(smaller id, larger id): edge}.
    """
    if len(nodes) > bucket_cap and depth < MAX_SPLIT_DEPTH:
        first = nodes[0].value
        varying = 0
        for node in nodes:
            varying |= node.value ^ first
        varying &= ~fixed_mask
        free = [bit for bit in range(HASH_BITS) if varying >> bit & 1]
        if len(free) > distance + 1:
            found: dict[tuple, Edge] = {}
            parts = distance + 1
            # Each part holds at least one bit (len(free) > parts): an empty mask would avoid everything.
            sub_masks = [sum(1 << bit for bit in free[len(free) * i // parts: len(free) * (i + 1) // parts])
                         for i in range(parts)]
            for i, sub_mask in enumerate(sub_masks):
                groups: dict[int, list[Node]] = defaultdict(list)
                for node in nodes:
                    groups[node.value & sub_mask].append(node)
                for group in groups.values():
                    found.update(bucket_pairs(group, distance, fixed_mask | sub_mask, bucket_cap, depth + 1,
                                              (*avoid, *sub_masks[:i])))
            return found
    return _pairs_brute(nodes, distance, avoid)


def _ident(node: Node) -> str:
    # A photo of the previous release may come back as a new record: the two are distinct nodes.
    return f"{'p' if node.previous else 'n'}:{node.photo_id}"


def _ordered(edge: Edge) -> tuple[str, str]:
    return tuple(sorted((_ident(edge.a), _ident(edge.b))))


def greedy_survivors(edges: Iterable[Edge]) -> dict[Node, tuple[str, int, bool]]:
    """{dropped representative: (survivor photo id, distance, survivor is from a previous release)}
    by the global greedy rule (module doc)."""
    neighbours: dict[str, list[tuple[Node, int]]] = defaultdict(list)
    nodes: dict[str, Node] = {}
    for edge in edges:
        neighbours[_ident(edge.a)].append((edge.b, edge.distance))
        neighbours[_ident(edge.b)].append((edge.a, edge.distance))
        nodes[_ident(edge.a)], nodes[_ident(edge.b)] = edge.a, edge.b
    kept: set[str] = set()
    dropped: dict[Node, tuple[str, int, bool]] = {}
    for node in sorted(nodes.values(), key=lambda n: n.rank):
        close_kept = [(other.rank, other.photo_id, d, other.previous) for other, d in neighbours[_ident(node)]
                      if _ident(other) in kept]
        if close_kept:
            _, survivor, d, previous = min(close_kept)
            dropped[node] = (survivor, d, previous)
        else:
            kept.add(_ident(node))
    return dropped
