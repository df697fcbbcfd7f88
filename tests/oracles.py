"""Brute-force oracles the property tests compare the clever code against."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.near_dup.pigeonhole import Node


def confirmed(a: Node, b: Node, dhash_distance: int) -> bool:
    """The optional second opinion: a pHash pair counts only if its dHashes are close as well
    (a missing dHash, e.g. from an older index, cannot veto)."""
    if dhash_distance < 0 or a.dhash is None or b.dhash is None:
        return True
    return (a.dhash ^ b.dhash).bit_count() <= dhash_distance


def is_pair(a: Node, b: Node, distance: int, dhash_distance: int) -> bool:
    """Near duplicates: pHashes within `distance`, dHash-confirmed, never two previous-release images."""
    return ((a.value ^ b.value).bit_count() <= distance and not (a.previous and b.previous)
            and confirmed(a, b, dhash_distance))


def partnered(nodes: Sequence[Node], distance: int, dhash_distance: int) -> set[Node]:
    """Every node with at least one partner, by comparing all pairs."""
    return {a for x, a in enumerate(nodes) for y, b in enumerate(nodes)
            if x != y and is_pair(a, b, distance, dhash_distance)}


def greedy(nodes: Sequence[Node], distance: int, dhash_distance: int) -> dict[Node, tuple[str, int, bool]]:
    """The survivor rule by brute force: best first, each compared with every kept node."""
    kept: list[Node] = []
    dropped = {}
    for node in sorted(nodes, key=lambda n: n.rank):
        close = [(k.rank, k.photo_id, (k.value ^ node.value).bit_count(), k.previous) for k in kept
                 if is_pair(node, k, distance, dhash_distance)]
        if close:
            dropped[node] = min(close)[1:]
        else:
            kept.append(node)
    return dropped
