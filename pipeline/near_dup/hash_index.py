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

from pipeline.near_dup.pigeonhole import candidate_keys, key_masks

Payload = TypeVar("Payload")


class HashIndex(Generic[Payload]):
    def __init__(self, entries: Sequence[tuple[int, int, Payload]], key_blocks: int = 2) -> None:
        """`entries`: (64-bit hash, distance it blocks within, payload)."""
        self._entries = list(entries)
        radius = max((distance for _, distance, _ in self._entries), default=0)
        self._masks = key_masks(radius, key_blocks)
        self._buckets: dict[str, list[int]] = defaultdict(list)
        for position, (value, _, _) in enumerate(self._entries):
            for key in candidate_keys(value, self._masks):
                self._buckets[key].append(position)

    def __len__(self) -> int:
        return len(self._entries)

    def nearest(self, value: int) -> tuple[Payload, int] | None:
        """The closest entry within its own distance of `value` (first listed on ties), or None."""
        best: tuple[int, int] | None = None
        for key in candidate_keys(value, self._masks):
            for position in self._buckets.get(key, ()):
                entry_value, distance, _ = self._entries[position]
                d = (entry_value ^ value).bit_count()
                if d <= distance and (best is None or (d, position) < best):
                    best = (d, position)
        if best is None:
            return None
        return self._entries[best[1]][2], best[0]
