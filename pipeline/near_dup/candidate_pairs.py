"""Batched candidate search for the near-duplicate stage: the pigeonhole keys of `near_dedup.py`,
computed and compared as numpy arrays instead of one Beam element per key.

Per bundle, every representative's C(r + k, k) keys become rows (key index, key value, hash,
dHash, previous-release flag, node id), routed to one of 2^bits partitions by a hash of
(key index, key value). A partition's rows are sorted by (key index, key value); each run of equal
keys is a bucket. Small buckets are compared by shifting the sorted arrays against themselves (one
vectorised pass per offset, at most `bucket_cap` passes); larger ones go through
`pigeonhole.close_flags` (split on varying bits, then vectorised popcount). What comes out is the
ids of the representatives that have a partner, not the pairs: the survivor rule
(`greedy.greedy_survivors`) finds the partners again from an index of the kept ones.

Shuffled elements: one per (bundle, partition) instead of C(r + k, k) per image, which removes
Beam's per-element cost (about 10 µs of Python each) from the hot path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from pipeline.near_dup.pigeonhole import COMPARISONS, Hashes, Node, close_flags, dhash_agrees

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


def node_id(node: Node) -> int:
    """A 64-bit id per representative: its collapse group, or for a previous-release node its photo id and hashes
    (an index may list one id twice, its image replaced between releases: with the id alone, which of the two
    took part depended on the order the rows arrived in)."""
    name = f"p:{node.photo_id}:{node.value:016x}:{node.dhash}" if node.previous else f"n:{node.group or node.photo_id}"
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


def involved_in_partition(rows: Rows, masks: Sequence[int], distance: int, dhash_distance: int,
                          bucket_cap: int) -> np.ndarray:
    """Node ids (unique, sorted) that have a partner within `distance` sharing a key in these rows:
    never two previous-release nodes, dHash-confirmed if asked. The pairs themselves are never
    listed, so a dense cluster yields one id per node, not one edge per pair; a node found from
    several keys or partitions is merged by id downstream."""
    order = np.lexsort((rows.key, rows.mask))
    rows = rows.take(order)
    n = len(rows.key)
    if n < 2:
        return np.empty(0, dtype=np.uint64)
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (rows.key[1:] != rows.key[:-1]) | (rows.mask[1:] != rows.mask[:-1])
    run_id = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    lengths = np.diff(np.append(starts, n))
    big_runs = np.flatnonzero(lengths > bucket_cap)
    small = ~np.isin(run_id, big_runs)
    flags = np.zeros(n, dtype=bool)
    # Small buckets: the sorted rows against themselves shifted by 1..longest - 1, one vectorised pass each.
    for offset in range(1, int(lengths[lengths <= bucket_cap].max(initial=1))):
        i = np.flatnonzero((run_id[:n - offset] == run_id[offset:]) & small[:n - offset])
        j = i + offset
        COMPARISONS.inc(len(i))
        close = np.bitwise_count(rows.value[i] ^ rows.value[j]) <= distance
        close &= ~(rows.previous[i] & rows.previous[j])
        close &= dhash_agrees(rows.dhash[i], rows.has_dhash[i], rows.dhash[j], rows.has_dhash[j], dhash_distance)
        flags[i[close]] = True
        flags[j[close]] = True
    for run in big_runs:
        span = np.arange(starts[run], starts[run] + lengths[run])
        hashes = Hashes(rows.value[span], rows.dhash[span], rows.has_dhash[span], rows.previous[span])
        flags[span] |= close_flags(hashes, distance, dhash_distance, int(masks[int(rows.mask[span[0]])]), bucket_cap)
    return np.unique(rows.ids[flags])
