"""The survivor rule, global and greedy, without the edges: representatives that have a partner
within r are visited best first; each probes an index of the ones already kept and is dropped as
a duplicate of its best kept partner, or kept and added to the index.

Only the kept are indexed, and kept hashes are more than r apart (except previous-release ones,
which are all kept, and pairs a dHash vetoed), so a dense cluster of n hashes all within r costs n
probes of a bucket holding one kept hash, where the edges between them would number n^2 / 2. The
index is the pigeonhole one (`key_masks`): a kept hash within r of a probe shares one of its keys.
It runs on one worker over every representative that has a partner (millions in a large run), so it
is kept small: sorted arrays of the kept hashes under each key, searched a chunk of probes at a time
(`KeptIndex`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from pipeline.near_dup.hash_index import PigeonholeBuckets
from pipeline.near_dup.pigeonhole import COMPARISONS, HASH_BITS, Node, key_masks


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

    __slots__ = ("_by_dhash", "_masks", "_without_dhash", "nodes")

    def __init__(self, dhash_masks: Sequence[int] | None, first: Node) -> None:
        self.nodes: list[Node] = [first]
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


# Nodes probed together against the settled levels of the kept index (one vectorised search per key mask and level).
CHUNK = 8192
_LARGE_RUN = 64  # a probe meeting this many settled values under one key compares them in place, on its own


class _Level(NamedTuple):
    """The kept pHash values of positions start..end under each key mask: the values with the mask's bits moved to
    the top (`_Moves`), in order, and the position of each (12 bytes an entry a key, where a dict of lists of tuples
    took ~230). The values sharing a key are one run of each sorted array, compared in place."""

    start: int
    end: int
    keys: list[np.ndarray]  # per mask: uint64, sorted
    positions: list[np.ndarray]  # per mask: uint32


class _Moves:
    """A permutation of the 64 bits that puts a mask's bits on top, the others below them, each run in order. Bits
    permuted alike keep their Hamming distances, and hashes agreeing on the mask's bits agree on the top ones."""

    def __init__(self, mask: int) -> None:
        runs: list[tuple[bool, int, int]] = []  # (in the mask, lowest bit, length)
        bit = 0
        while bit < HASH_BITS:
            inside = bool(mask >> bit & 1)
            length = 1
            while bit + length < HASH_BITS and bool(mask >> (bit + length) & 1) == inside:
                length += 1
            runs.append((inside, bit, length))
            bit += length
        self._moves: list[tuple[np.uint64, np.uint64, np.uint64]] = []
        top = HASH_BITS
        for _, low, length in sorted(runs, key=lambda run: not run[0]):  # the mask's runs first
            top -= length
            self._moves.append((np.uint64(low), np.uint64((1 << length) - 1), np.uint64(top)))
        self.below = np.uint64((1 << (HASH_BITS - mask.bit_count())) - 1)  # the bits under the key

    def __call__(self, values: np.ndarray) -> np.ndarray:
        moved = np.zeros(len(values), dtype=np.uint64)
        for low, ones, top in self._moves:
            moved |= ((values >> low) & ones) << top
        return moved


class KeptIndex:
    """Kept representatives under each pigeonhole key of their pHash, for probes within Hamming distance r; with
    the dHash check, each pHash value's nodes also under pigeonhole keys of their dHash.

    A kept pHash value gets a position (its value in one array, its node, or its nodes, in one list). Positions
    kept since the last `settle` are in dicts (`PigeonholeBuckets`); `settle` moves them into sorted arrays, levels
    of at least twice the size of the next (so a position is sorted again about log2(n / CHUNK) times), which a
    chunk of nodes probes in one vectorised search (`settled_near`) before its nodes are visited one by one. Dicts
    for every kept value held ~3.5 KB each (a million involved nodes, 2 GiB on one worker)."""

    def __init__(self, masks: Sequence[int], dhash_distance: int = -1) -> None:
        self._masks = list(masks)
        self._moves = [_Moves(mask) for mask in self._masks]
        self._values = np.zeros(1024, dtype=np.uint64)  # the kept pHash values, by position
        self._groups: list[Node | _SameValue] = []  # the kept nodes of each position: one, or a _SameValue
        self._levels: list[_Level] = []
        self._recent = PigeonholeBuckets(self._masks)  # positions since the last settle
        self._compared = 0  # entries compared in the levels, and in earlier recent dicts
        keyed = 0 <= dhash_distance <= MAX_KEYED_DHASH_DISTANCE
        self._dhash_masks = key_masks(dhash_distance, 2) if keyed else None

    @property
    def probes(self) -> int:
        """Stored hashes compared, all probes together (an entry met under several keys counts each time)."""
        return self._compared + self._recent.compared

    def settled_near(self, values: Sequence[int], distance: int) -> dict[int, dict[int, int]]:
        """{index in `values`: {position: Hamming distance}} of the settled kept values within `distance`."""
        query = np.array(values, dtype=np.uint64)
        found: dict[int, dict[int, int]] = {}
        if not self._levels:
            return found
        for m, moves in enumerate(self._moves):
            moved = moves(query)
            key_low, key_high = moved & ~moves.below, moved | moves.below
            for level in self._levels:
                keys, positions = level.keys[m], level.positions[m]
                low = keys.searchsorted(key_low)
                counts = keys.searchsorted(key_high, "right") - low
                hit = np.flatnonzero(counts)
                if not len(hit):
                    continue
                counts, low = counts[hit], low[hit]
                self._compared += int(counts.sum())
                large = counts >= _LARGE_RUN
                for i, start, count in zip(hit[large].tolist(), low[large].tolist(), counts[large].tolist(),
                                           strict=True):  # a skewed key's run: compared in place
                    gaps = np.bitwise_count(keys[start:start + count] ^ moved[i])
                    close = np.flatnonzero(gaps <= distance)
                    self._found(found, [i] * len(close), positions[start + close], gaps[close])
                hit, counts, low = hit[~large], counts[~large], low[~large]
                if not len(hit):
                    continue
                ends = np.cumsum(counts)
                entries = np.repeat(low - (ends - counts), counts)
                entries += np.arange(len(entries))
                gaps = np.bitwise_count(keys[entries] ^ np.repeat(moved[hit], counts))
                close = np.flatnonzero(gaps <= distance)
                self._found(found, hit[ends.searchsorted(close, "right")].tolist(), positions[entries[close]],
                            gaps[close])
        return found

    @staticmethod
    def _found(found: dict[int, dict[int, int]], probes: list[int], positions: np.ndarray, gaps: np.ndarray) -> None:
        for i, position, gap in zip(probes, positions.tolist(), gaps.tolist(), strict=True):
            found.setdefault(i, {})[position] = gap

    def near(self, value: int, distance: int, settled: dict[int, int] | None) -> dict[int, int]:
        """{position: Hamming distance} of every kept value within `distance`; `settled`: the levels' answer."""
        close = self._recent.within(value, distance)
        if settled:
            close.update(settled)
        return close

    def partners(self, node: Node, close: dict[int, int], dhash_distance: int) -> list[tuple[Node, int]]:
        """The kept nodes at the positions `close` (`near`) that the dHash confirms, with their distance."""
        found: list[tuple[Node, int]] = []
        for position, gap in close.items():
            group = self._groups[position]
            if isinstance(group, _SameValue):
                found += [(other, gap) for other in group.confirmed_near(node, dhash_distance)]
            elif confirmed(node, group, dhash_distance):
                found.append((group, gap))
        return found

    def add(self, node: Node, close: dict[int, int]) -> None:
        """Keep `node`; `close`: `near` for its value (a kept node of the same pHash is there, at distance 0)."""
        same = next((position for position, gap in close.items() if gap == 0), None)
        if same is not None:
            group = self._groups[same]
            if not isinstance(group, _SameValue):
                group = self._groups[same] = _SameValue(self._dhash_masks, group)
            group.add(node)
            return
        position = len(self._groups)
        if position == len(self._values):
            self._values = np.concatenate([self._values, np.zeros_like(self._values)])
        self._values[position] = node.value
        self._groups.append(node)
        self._recent.add(node.value, position)

    def settle(self) -> None:
        """Move the positions kept since the last settle into a level, merging levels under twice its size."""
        start = self._levels[-1].end if self._levels else 0
        if start == len(self._groups):
            return
        self._compared += self._recent.compared
        self._recent = PigeonholeBuckets(self._masks)
        end = len(self._groups)
        while self._levels and self._levels[-1].end - self._levels[-1].start < 2 * (end - start):
            start = self._levels.pop().start  # its arrays let go before the merged ones are made
        self._levels.append(self._level(start, end))

    def _level(self, start: int, end: int) -> _Level:
        values = self._values[start:end]
        keys, positions = [], []
        for moves in self._moves:
            moved = moves(values)
            order = np.argsort(moved)
            keys.append(moved[order])
            positions.append((order + start).astype(np.uint32))
        return _Level(start, end, keys, positions)


def greedy_survivors(nodes: Iterable[Node], masks: Sequence[int], distance: int, dhash_distance: int,
                     index: KeptIndex | None = None) -> dict[Node, tuple[str, int, bool]]:
    """{dropped representative: (survivor photo id, distance, survivor is from a previous release)}.

    Visited by rank (previous-release images rank first and are always kept: two of them are never
    a pair); a new one with kept partners is dropped as a duplicate of the best of them (by rank,
    then photo id, then distance), otherwise kept. Visited a chunk at a time: the chunk's nodes are
    first searched for together in the kept index's settled part, then one by one in what was kept since.
    """
    kept = KeptIndex(masks, dhash_distance) if index is None else index
    dropped: dict[Node, tuple[str, int, bool]] = {}
    ordered = sorted(nodes, key=lambda n: n.rank)
    for start in range(0, len(ordered), CHUNK):
        chunk = ordered[start:start + CHUNK]
        before = kept.probes
        settled = kept.settled_near([node.value for node in chunk], distance)
        for i, node in enumerate(chunk):
            close = kept.near(node.value, distance, settled.get(i))
            partners = [] if node.previous else kept.partners(node, close, dhash_distance)
            if partners:
                _, survivor, gap, previous = min((other.rank, other.photo_id, gap, other.previous)
                                                 for other, gap in partners)
                dropped[node] = (survivor, gap, previous)
            else:
                kept.add(node, close)
        kept.settle()
        COMPARISONS.inc(kept.probes - before)
    return dropped
