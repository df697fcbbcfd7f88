"""Batched candidate-pair search for the near-duplicate stage: the pigeonhole keys of
`near_dedup.py`, computed and compared as numpy arrays instead of one Beam element per key.

Per bundle, every representative's C(r + k, k) keys become rows (key index, key value, hash,
dHash, previous-release flag, node id), routed to one of 2^bits partitions by a hash of
(key index, key value). A partition's rows are sorted by (key index, key value); each run of equal
keys is a bucket. Small buckets are paired by shifting the sorted arrays against themselves (one
vectorised pass per offset, at most `bucket_cap` passes); larger ones go through
`near_dedup.bucket_pairs` (split on varying bits, then vectorised popcount). A pair is kept only
from the first key it shares, so it is reported exactly once across all partitions.

Shuffled elements: one per (bundle, partition) instead of C(r + k, k) per image, which removes
Beam's per-element cost (about 10 µs of Python each) from the hot path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from pipeline.near_dup.pigeonhole import COMPARISONS, Node, bucket_pairs, cross_pairs

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


def node_id(node: Node) -> int:
    """A 64-bit id per representative: its collapse group, or photo id for previous-release nodes."""
    name = f"p:{node.photo_id}" if node.previous else f"n:{node.group or node.photo_id}"
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


class Rows(NamedTuple):
    mask: np.ndarray  # int16: which key (block combination)
    key: np.ndarray  # uint64: the hash's bits under that key's mask
    value: np.ndarray  # uint64: the pHash
    dhash: np.ndarray  # uint64
    has_dhash: np.ndarray  # bool
    previous: np.ndarray  # bool
    ids: np.ndarray  # uint64: node_id

    @classmethod
    def concat(cls, parts: Sequence[Rows]) -> Rows:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls._fields))

    def take(self, index: np.ndarray) -> Rows:
        return Rows(*(array[index] for array in self))


def rows_of(nodes: Sequence[Node], masks: Sequence[int]) -> Rows:
    count = len(nodes)
    values = np.array([n.value for n in nodes], dtype=np.uint64)
    dhash = np.array([n.dhash or 0 for n in nodes], dtype=np.uint64)
    has_dhash = np.array([n.dhash is not None for n in nodes], dtype=bool)
    previous = np.array([n.previous for n in nodes], dtype=bool)
    ids = np.array([node_id(n) for n in nodes], dtype=np.uint64)
    mask_array = np.array(masks, dtype=np.uint64)
    return Rows(
        mask=np.repeat(np.arange(len(masks), dtype=np.int16), count),
        key=(values[None, :] & mask_array[:, None]).reshape(-1),
        value=np.tile(values, len(masks)),
        dhash=np.tile(dhash, len(masks)),
        has_dhash=np.tile(has_dhash, len(masks)),
        previous=np.tile(previous, len(masks)),
        ids=np.tile(ids, len(masks)),
    )


def partition_of(rows: Rows, bits: int) -> np.ndarray:
    if bits == 0:
        return np.zeros(len(rows.key), dtype=np.int64)
    mixed = (rows.key ^ (rows.mask.astype(np.uint64) * _GOLDEN)) * _MIX
    return (mixed >> np.uint64(64 - bits)).astype(np.int64)


def split_partitions(rows: Rows, bits: int) -> list[tuple[int, Rows]]:
    parts = partition_of(rows, bits)
    order = np.argsort(parts, kind="stable")
    sorted_parts = parts[order]
    bounds = np.flatnonzero(np.diff(sorted_parts)) + 1
    out = []
    for chunk in np.split(order, bounds):
        if len(chunk):
            out.append((int(parts[chunk[0]]), rows.take(chunk)))
    return out


def _first_shared(x: np.ndarray, masks: Sequence[int]) -> np.ndarray:
    """Index of the first key on which two hashes with XOR x agree (x & mask == 0)."""
    mask_array = np.array(masks, dtype=np.uint64)
    agree = (x[:, None] & mask_array[None, :]) == 0
    return np.argmax(agree, axis=1)


def pairs_in_partition(rows: Rows, masks: Sequence[int], distance: int, dhash_distance: int,
                       bucket_cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(id_a, id_b, distance) of every pair within `distance` that shares a key in these rows, reported
    only from the first key it shares; never two previous-release nodes; dHash-confirmed if asked."""
    order = np.lexsort((rows.key, rows.mask))
    rows = rows.take(order)
    n = len(rows.key)
    if n < 2:
        return _empty()
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (rows.key[1:] != rows.key[:-1]) | (rows.mask[1:] != rows.mask[:-1])
    run_id = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    lengths = np.diff(np.append(starts, n))
    big_runs = np.flatnonzero(lengths > bucket_cap)
    small = ~np.isin(run_id, big_runs)
    left, right = [], []
    longest = int(lengths[lengths <= bucket_cap].max(initial=1))
    for offset in range(1, longest):
        i = np.arange(n - offset)
        same = (run_id[i] == run_id[i + offset]) & small[i]
        left.append(i[same])
        right.append(i[same] + offset)
    i = np.concatenate(left) if left else np.empty(0, dtype=np.int64)
    j = np.concatenate(right) if right else np.empty(0, dtype=np.int64)
    COMPARISONS.inc(len(i))
    small_pairs = _filtered(rows, i, j, masks, distance, dhash_distance)
    big = [_big_run(rows.take(np.arange(starts[r], starts[r] + lengths[r])), masks, distance, dhash_distance,
                    bucket_cap) for r in big_runs]
    parts = [small_pairs, *big]
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def _filtered(rows: Rows, i: np.ndarray, j: np.ndarray, masks: Sequence[int], distance: int,
              dhash_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rows.value[i] ^ rows.value[j]
    d = np.bitwise_count(x)
    keep = (d <= distance) & ~(rows.previous[i] & rows.previous[j])
    i, j, x, d = i[keep], j[keep], x[keep], d[keep]
    keep = _first_shared(x, masks) == rows.mask[i]
    if dhash_distance >= 0:
        known = rows.has_dhash[i] & rows.has_dhash[j]
        close = np.bitwise_count(rows.dhash[i] ^ rows.dhash[j]) <= dhash_distance
        keep &= ~known | close
    return rows.ids[i][keep], rows.ids[j][keep], d[keep].astype(np.int64)


def _big_run(rows: Rows, masks: Sequence[int], distance: int, dhash_distance: int,
             bucket_cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A skewed bucket: the recursive splitter of near_dedup, then the same filters."""
    position = {int(node_id_): k for k, node_id_ in enumerate(rows.ids)}
    nodes = [Node(int(v), (), str(int(node)), bool(p)) for v, node, p in zip(rows.value, rows.ids, rows.previous,
                                                                            strict=True)]
    new = [node for node in nodes if not node.previous]
    old = [node for node in nodes if node.previous]
    fixed = int(masks[int(rows.mask[0])])
    found = bucket_pairs(new, distance, fixed, bucket_cap)
    found.update(cross_pairs(new, old, distance))
    if not found:
        return _empty()
    i = np.array([position[int(edge.a.photo_id)] for edge in found.values()], dtype=np.int64)
    j = np.array([position[int(edge.b.photo_id)] for edge in found.values()], dtype=np.int64)
    return _filtered(rows, i, j, masks, distance, dhash_distance)


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
