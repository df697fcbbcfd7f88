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
from pipeline.near_dup.pigeonhole import COMPARISONS, Node, key_masks


def confirmed(a: Node, b: Node, dhash_distance: int) -> bool:
    """The dHash second opinion, when asked for; a missing dHash (an older index) cannot veto."""
    if dhash_distance < 0 or a.dhash is None or b.dhash is None:
        return True
    return (a.dhash ^ b.dhash).bit_count() <= dhash_distance


# Past this dHash distance pigeonhole keys on the dHash cost more than they save (C(d + 2, 2) keys a hash): a
# pHash value's kept nodes are then compared one by one.
MAX_KEYED_DHASH_DISTANCE = 16
SMALL_GROUP = 32  # kept nodes of one pHash value compared one by one


class _SameValue:
    """The kept nodes of one pHash value. Past SMALL_GROUP of them, and with the dHash check on, those with a dHash
    go under pigeonhole keys of it, so that a probe meets only the ones within its dHash distance. Without them, n
    nodes sharing a pHash that the dHash kept apart (dark photographs share pHashes by the thousand) were all
    compared on every probe: n^2 / 2 Python comparisons (90 s for 16,000). A small group, nearly every one, is
    compared one by one and costs no keys."""

    def __init__(self, dhash_masks: Sequence[int] | None) -> None:
        self.nodes: list[Node] = []
        self._masks = dhash_masks
        self._without_dhash: list[int] = []  # an older index's nodes: no dHash to veto with
        self._by_dhash: PigeonholeBuckets | None = None

    def add(self, node: Node) -> None:
        self.nodes.append(node)
        if self._by_dhash is not None:
            self._key(len(self.nodes) - 1)
        elif self._masks is not None and len(self.nodes) > SMALL_GROUP:
            self._by_dhash = PigeonholeBuckets(self._masks)
            for position in range(len(self.nodes)):
                self._key(position)

    def _key(self, position: int) -> None:
        dhash = self.nodes[position].dhash
        if dhash is None:
            self._without_dhash.append(position)
        else:
            self._by_dhash.add(dhash, position)  # type: ignore[union-attr]

    def confirmed_near(self, node: Node, dhash_distance: int) -> list[Node]:
        """The nodes the dHash confirms as `node`'s partners (all, when there is no check to make)."""
        if self._by_dhash is None or node.dhash is None:
            return [other for other in self.nodes if confirmed(node, other, dhash_distance)]
        close = self._by_dhash.within(node.dhash, dhash_distance)
        return [self.nodes[position] for position in sorted({*close, *self._without_dhash})]


class KeptIndex:
    """Kept representatives under each pigeonhole key of their pHash, for probes within Hamming distance r; with
    the dHash check, each pHash value's nodes also under pigeonhole keys of their dHash."""

    def __init__(self, masks: Sequence[int], dhash_distance: int = -1) -> None:
        self._buckets = PigeonholeBuckets(masks)
        self._values: list[_SameValue] = []
        self._position: dict[int, int] = {}
        keyed = 0 <= dhash_distance <= MAX_KEYED_DHASH_DISTANCE
        self._dhash_masks = key_masks(dhash_distance, 2) if keyed else None

    @property
    def probes(self) -> int:
        """Stored hashes compared, all probes together (an entry met under several keys counts each time)."""
        return self._buckets.compared

    def add(self, node: Node) -> None:
        position = self._position.get(node.value)
        if position is None:
            position = self._position[node.value] = len(self._values)
            self._buckets.add(node.value, position)
            self._values.append(_SameValue(self._dhash_masks))
        self._values[position].add(node)

    def near(self, node: Node, distance: int, dhash_distance: int) -> list[tuple[Node, int]]:
        """Every kept representative within `distance` of `node` (and dHash-confirmed), with its distance."""
        before = self._buckets.compared
        close = self._buckets.within(node.value, distance)
        COMPARISONS.inc(self._buckets.compared - before)
        return [(other, gap) for position, gap in close.items()
                for other in self._values[position].confirmed_near(node, dhash_distance)]


def greedy_survivors(nodes: Iterable[Node], masks: Sequence[int], distance: int, dhash_distance: int,
                     index: KeptIndex | None = None) -> dict[Node, tuple[str, int, bool]]:
    """{dropped representative: (survivor photo id, distance, survivor is from a previous release)}.

    Visited by rank (previous-release images rank first and are always kept: two of them are never
    a pair); a new one with kept partners is dropped as a duplicate of the best of them (by rank,
    then photo id, then distance), otherwise kept.
    """
    kept = KeptIndex(masks, dhash_distance) if index is None else index
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
