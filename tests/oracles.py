"""Brute-force oracles the property tests compare the clever code against."""

from __future__ import annotations

from pipeline.near_dup.pigeonhole import Edge


def confirmed(edge: Edge, dhash_distance: int) -> bool:
    """The optional second opinion: a pHash pair counts only if its dHashes are close as well
    (a missing dHash, e.g. from an older index, cannot veto)."""
    if dhash_distance < 0 or edge.a.dhash is None or edge.b.dhash is None:
        return True
    return (edge.a.dhash ^ edge.b.dhash).bit_count() <= dhash_distance
