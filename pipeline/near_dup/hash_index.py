"""In-memory pHash indexes: `HashIndex` for lookups against a fixed list (blocklists, evaluation sets), and the
`PigeonholeBuckets` the near-duplicate stage's kept index grows.

Built with the same pigeonhole keys as the near-duplicate stage: every indexed hash is stored
under each of its C(r + k, k) block-combination keys, and a query looks only at the hashes that
share one of its keys, so a lookup costs a few probes and popcounts instead of a
scan of the whole list. Exact for every entry whose own distance is at most the index radius.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Generic, TypeVar

import numpy as np

from pipeline.near_dup.pigeonhole import key_masks

Payload = TypeVar("Payload")


BIG_BUCKET = 64  # entries past which a bucket becomes arrays scanned in one vectorised step


class _ArrayBucket:
    """A bucket with many entries (hashes that share a key, such as a skewed region's, yet are far
    apart): values and positions in arrays that double as they fill, scanned with XOR/popcount in C
    rather than one Python comparison per entry."""

    def __init__(self, entries: list[tuple[int, int]]) -> None:
        capacity = 2 * len(entries)
        self._values = np.zeros(capacity, dtype=np.uint64)
        self._positions = np.zeros(capacity, dtype=np.int64)
        self._size = 0
        for value, position in entries:
            self.append(value, position)

    def __len__(self) -> int:
        return self._size

    def append(self, value: int, position: int) -> None:
        if self._size == len(self._values):
            self._values = np.concatenate([self._values, np.zeros_like(self._values)])
            self._positions = np.concatenate([self._positions, np.zeros_like(self._positions)])
        self._values[self._size], self._positions[self._size] = value, position
        self._size += 1

    def within(self, value: int, distance: int) -> Iterator[tuple[int, int]]:
        gaps = np.bitwise_count(self._values[:self._size] ^ np.uint64(value))
        close = np.flatnonzero(gaps <= distance)
        return zip(self._positions[close].tolist(), gaps[close].tolist(), strict=True)


class PigeonholeBuckets:
    """Positions of 64-bit hashes under each of their pigeonhole keys (one dict per key mask, keyed
    by the masked bits). A probe finds every stored hash within `distance` that shares a key with it
    (all within the radius the masks were made for). A bucket past BIG_BUCKET entries is scanned
    vectorised (`_ArrayBucket`); `compared` counts the entries a probe looked at, all probes together."""

    def __init__(self, masks: Sequence[int]) -> None:
        self._masks = list(masks)
        self._buckets: list[dict[int, list[tuple[int, int]] | _ArrayBucket]] = [{} for _ in self._masks]
        self.compared = 0

    def add(self, value: int, position: int) -> None:
        for bucket, mask in zip(self._buckets, self._masks, strict=True):
            entries = bucket.setdefault(value & mask, [])
            if isinstance(entries, _ArrayBucket):
                entries.append(value, position)
            else:
                entries.append((value, position))
                if len(entries) > BIG_BUCKET:
                    bucket[value & mask] = _ArrayBucket(entries)

    def within(self, value: int, distance: int) -> dict[int, int]:
        """{position: Hamming distance} of the stored hashes within `distance` of `value`."""
        found: dict[int, int] = {}
        for bucket, mask in zip(self._buckets, self._masks, strict=True):
            entries = bucket.get(value & mask)
            if entries is None:
                continue
            self.compared += len(entries)
            if isinstance(entries, _ArrayBucket):
                found.update(entries.within(value, distance))
                continue
            for other, position in entries:
                gap = (other ^ value).bit_count()
                if gap <= distance:
                    found[position] = gap
        return found


class _SortedKeys:
    """A fixed list's hashes under each pigeonhole key, as sorted arrays: per key mask, the masked values in order
    and their positions, a probe two binary searches per key. ~16 bytes an entry a key, where dictionaries of
    tuples took ~220 (a million-entry list, ImageNet's training set for --decontaminate say, held 3.5 GB in every
    worker)."""

    def __init__(self, values: np.ndarray, positions: np.ndarray, masks: Sequence[int]) -> None:
        self._values, self._positions = values, positions
        self._keys: list[tuple[np.uint64, np.ndarray, np.ndarray]] = []
        for mask in masks:
            keys = values & np.uint64(mask)
            order = np.argsort(keys, kind="stable")
            self._keys.append((np.uint64(mask), keys[order], order))
        self.compared = 0

    def within(self, value: int, distance: int) -> Iterator[tuple[int, int]]:
        """(position, Hamming distance) of the stored hashes within `distance` of `value` (one may come twice)."""
        query = np.uint64(value)
        for mask, keys, order in self._keys:
            key = query & mask
            low = int(keys.searchsorted(key))
            if low == len(keys) or keys[low] != key:  # most keys of most queries: one search
                continue
            high = int(keys.searchsorted(key, "right"))
            self.compared += int(high - low)
            found = order[low:high]
            gaps = np.bitwise_count(self._values[found] ^ query)
            close = np.flatnonzero(gaps <= distance)
            yield from zip(self._positions[found[close]].tolist(), gaps[close].tolist(), strict=True)


class HashIndex(Generic[Payload]):
    def __init__(self, entries: Sequence[tuple[int, int, Payload]], key_blocks: int = 2) -> None:
        """`entries`: (64-bit hash, distance it blocks within, payload). The entries of each distance are keyed for
        that distance alone: keyed for the largest, one entry `phash X 16` in a list of 100,000 at 4 gave every
        entry 153 keys instead of 15 and made each lookup a hundred times dearer."""
        self._entries = list(entries)
        values = np.array([value for value, _, _ in self._entries], dtype=np.uint64)
        distances = np.array([distance for _, distance, _ in self._entries], dtype=np.int64)
        self._by_radius: list[tuple[int, _SortedKeys]] = []
        for radius in sorted(set(distances.tolist())):
            positions = np.flatnonzero(distances == radius)
            self._by_radius.append((radius, _SortedKeys(values[positions], positions,
                                                        key_masks(radius, key_blocks))))

    def __len__(self) -> int:
        return len(self._entries)

    def nearest(self, value: int) -> tuple[Payload, int] | None:
        """The closest entry within its own distance of `value` (first listed on ties), or None."""
        best: tuple[int, int] | None = None
        for radius, keys in self._by_radius:
            for position, d in keys.within(value, radius):
                if best is None or (d, position) < best:
                    best = (d, position)
        if best is None:
            return None
        return self._entries[best[1]][2], best[0]
