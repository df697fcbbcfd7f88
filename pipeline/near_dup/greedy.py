"""The survivor rule, global and greedy, without the edges: representatives that have a partner
within r are visited best first; each probes an index of the ones already kept and is dropped as
a duplicate of its best kept partner, or kept and added to the index.

Only the kept are indexed, and kept hashes are more than r apart (except previous-release ones,
which are all kept, and pairs a dHash vetoed), so a dense cluster of n hashes all within r costs n
probes of a bucket holding one kept hash, where the edges between them would number n^2 / 2. The
index is the pigeonhole one (`key_masks`): a kept hash within r of a probe shares one of its keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pipeline.near_dup.hash_index import PigeonholeBuckets
from pipeline.near_dup.pigeonhole import COMPARISONS, Node


def confirmed(a: Node, b: Node, dhash_distance: int) -> bool:
    """The dHash second opinion, when asked for; a missing dHash (an older index) cannot veto."""
    if dhash_distance < 0 or a.dhash is None or b.dhash is None:
        return True
    return (a.dhash ^ b.dhash).bit_count() <= dhash_distance


class KeptIndex:
    """Kept representatives under each pigeonhole key, for probes within Hamming distance r."""

    def __init__(self, masks: Sequence[int]) -> None:
        self._buckets = PigeonholeBuckets(masks)
        self._nodes: list[Node] = []

    @property
    def probes(self) -> int:
        """Stored hashes compared, all probes together (an entry met under several keys counts each time)."""
        return self._buckets.compared

    def add(self, node: Node) -> None:
        self._buckets.add(node.value, len(self._nodes))
        self._nodes.append(node)

    def near(self, node: Node, distance: int, dhash_distance: int) -> list[tuple[Node, int]]:
        """Every kept representative within `distance` of `node` (and dHash-confirmed), with its distance."""
        before = self._buckets.compared
        close = self._buckets.within(node.value, distance)
        COMPARISONS.inc(self._buckets.compared - before)
        return [(self._nodes[position], gap) for position, gap in close.items()
                if confirmed(node, self._nodes[position], dhash_distance)]


def greedy_survivors(nodes: Iterable[Node], masks: Sequence[int], distance: int, dhash_distance: int,
                     index: KeptIndex | None = None) -> dict[Node, tuple[str, int, bool]]:
    """{dropped representative: (survivor photo id, distance, survivor is from a previous release)}.

    Visited by rank (previous-release images rank first and are always kept: two of them are never
    a pair); a new one with kept partners is dropped as a duplicate of the best of them (by rank,
    then photo id, then distance), otherwise kept.
    """
    kept = KeptIndex(masks) if index is None else index
    dropped: dict[Node, tuple[str, int, bool]] = {}
    for node in sorted(nodes, key=lambda n: n.rank):
        partners = [] if node.previous else kept.near(node, distance, dhash_distance)
        if partners:
            _, survivor, gap, previous = min((other.rank, other.photo_id, gap, other.previous)
                                             for other, gap in partners)
            dropped[node] = (survivor, gap, previous)
        else:
            kept.add(node)
    return dropped
