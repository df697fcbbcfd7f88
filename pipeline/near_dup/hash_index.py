"""An in-memory pHash index for lookups against a fixed list (blocklists, evaluation sets).

Built with the same pigeonhole keys as the near-duplicate stage: every indexed hash is stored
under each of its C(r + k, k) block-combination keys, and a query looks only at the hashes that
share one of its keys, so a lookup costs a few dictionary probes and popcounts instead of a
scan of the whole list. Exact for every entry whose own distance is at most the index radius.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Generic, TypeVar

from pipeline.near_dup.pigeonhole import key_masks

Payload = TypeVar("Payload")


class PigeonholeBuckets:
    """Positions of 64-bit hashes under each of their pigeonhole keys (one dict per key mask, keyed
    by the masked bits). A probe gets, once each, every stored position whose hash shares a key with
    it: a superset of those within the radius the masks were made for."""

    def __init__(self, masks: Sequence[int]) -> None:
        self._masks = list(masks)
        self._buckets: list[dict[int, list[int]]] = [defaultdict(list) for _ in self._masks]

    def add(self, value: int, position: int) -> None:
        for bucket, mask in zip(self._buckets, self._masks, strict=True):
            bucket[value & mask].append(position)

    def candidates(self, value: int) -> set[int]:
        found: set[int] = set()
        for bucket, mask in zip(self._buckets, self._masks, strict=True):
            found.update(bucket.get(value & mask, ()))
        return found


class HashIndex(Generic[Payload]):
    def __init__(self, entries: Sequence[tuple[int, int, Payload]], key_blocks: int = 2) -> None:
        """`entries`: (64-bit hash, distance it blocks within, payload)."""
        self._entries = list(entries)
        radius = max((distance for _, distance, _ in self._entries), default=0)
        self._buckets = PigeonholeBuckets(key_masks(radius, key_blocks))
        for position, (value, _, _) in enumerate(self._entries):
            self._buckets.add(value, position)

    def __len__(self) -> int:
        return len(self._entries)

    def nearest(self, value: int) -> tuple[Payload, int] | None:
        """The closest entry within its own distance of `value` (first listed on ties), or None."""
        best: tuple[int, int] | None = None
        for position in self._buckets.candidates(value):
            entry_value, distance, _ = self._entries[position]
            d = (entry_value ^ value).bit_count()
            if d <= distance and (best is None or (d, position) < best):
                best = (d, position)
        if best is None:
            return None
        return self._entries[best[1]][2], best[0]
