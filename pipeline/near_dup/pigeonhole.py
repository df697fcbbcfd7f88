"""The pigeonhole search for 64-bit hashes within Hamming distance r of another (no Beam transforms).

The 64 bits are cut into r + k blocks; two hashes within distance r differ in at most r blocks,
so they agree exactly on at least k blocks. Keying every hash by each choice of k blocks
(C(r+k, k) keys of about 64k/(r+k) bits) and comparing only hashes that share a key finds every
pair. A bucket larger than a cap is split again on the bits in which its hashes vary, to a
bounded depth; what is left is compared with vectorised XOR/popcount in numpy, in chunks. What a
bucket yields is which hashes have a partner (`close_flags`), never the pairs: the survivor rule
(`greedy.py`) finds partners again in an index of the kept hashes. The Beam stage
that uses this is `pipeline/stages/near_dedup.py`; `candidate_pairs.py` batches the keys as numpy rows.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
from apache_beam.metrics import Metrics

HASH_BITS = 64


def block_masks(distance: int, key_blocks: int) -> list[int]:
    """Bit masks of the r + k blocks, as even as possible, covering all 64 bits."""
    count = distance + key_blocks
    bounds = [round(i * HASH_BITS / count) for i in range(count + 1)]
    return [((1 << (high - low)) - 1) << low for low, high in itertools.pairwise(bounds)]


def key_masks(distance: int, key_blocks: int) -> list[int]:
    """One mask per choice of k blocks: two hashes within r agree exactly on at least one of them."""
    blocks = block_masks(distance, key_blocks)
    return [sum(combo) for combo in itertools.combinations(blocks, key_blocks)]


class Node(NamedTuple):
    """A representative in the pairwise step: hash, survivor rank, photo id. Light by design.
    `previous` marks an image of an earlier release (from its persisted index): it always wins.
    `group` is the key its photos were collapsed under (the pHash, plus the dHash when confirming)."""

    value: int
    rank: tuple
    photo_id: str
    previous: bool = False
    dhash: int | None = None
    group: str = ""


def previous_node(phash: str, photo_id: str, dhash: str = "") -> Node:
    # -inf sorts before every rank of a new image: released images are never displaced.
    return Node(int(phash, 16), (float("-inf"), photo_id), photo_id, True, int(dhash, 16) if dhash else None)


MAX_SPLIT_DEPTH = 3
_BRUTE_CELLS = 1 << 22  # hashes compared per vectorised step: 32 MiB of XORs, whatever the bucket's size
LEADERS = 256  # most hashes a large bucket is first compared against (`_cover`)


COMPARISONS = Metrics.counter("near_dedup", "hash_comparisons")


class Hashes(NamedTuple):
    """One bucket's hashes as parallel arrays (no Python object per hash)."""

    value: np.ndarray  # uint64: the pHash
    dhash: np.ndarray  # uint64
    has_dhash: np.ndarray  # bool: a missing dHash (an older index) cannot veto a pair
    previous: np.ndarray  # bool: an image of the previous release; two of them are never a pair

    def take(self, index: np.ndarray) -> Hashes:
        return Hashes(*(array[index] for array in self))


def dhash_agrees(dhash_a: np.ndarray, known_a: np.ndarray, dhash_b: np.ndarray, known_b: np.ndarray,
                 dhash_distance: int) -> np.ndarray:
    """The dHash second opinion (when asked for): a pHash pair counts only if both dHashes, where
    known, are within `dhash_distance` too."""
    if dhash_distance < 0:
        return np.ones(np.broadcast(dhash_a, dhash_b).shape, dtype=bool)
    return ~(known_a & known_b) | (np.bitwise_count(dhash_a ^ dhash_b) <= dhash_distance)


def _pairs(hashes: Hashes, rows: np.ndarray, columns: np.ndarray, distance: int, dhash_distance: int,
           columns_are_all: bool = False) -> np.ndarray:
    """rows x columns: which are partners (within `distance`, dHash-confirmed, not one hash twice,
    not two previous-release hashes). `columns_are_all`: columns is every hash in order, so a row
    meets itself at (k, rows[k]); otherwise rows and columns never share a hash. Each filter runs only
    where it can change something: these are full rows x columns passes, the bulk of the search."""
    COMPARISONS.inc(len(rows) * len(columns))
    close = np.bitwise_count(hashes.value[rows, None] ^ hashes.value[None, columns]) <= distance
    if dhash_distance >= 0:
        close &= dhash_agrees(hashes.dhash[rows, None], hashes.has_dhash[rows, None], hashes.dhash[None, columns],
                              hashes.has_dhash[None, columns], dhash_distance)
    if columns_are_all:
        close[np.arange(len(rows)), rows] = False
    if hashes.previous[rows].any() and hashes.previous[columns].any():
        close &= ~(hashes.previous[rows, None] & hashes.previous[None, columns])
    return close


def _flags_brute(hashes: Hashes, distance: int, dhash_distance: int, wanted: np.ndarray) -> np.ndarray:
    """Flags for the `wanted` hashes (and any partner they meet): each wanted new hash against all,
    each wanted previous-release one against the new ones only, vectorised in steps of at most
    _BRUTE_CELLS comparisons, so a bucket of any size costs bounded memory."""
    count = len(hashes.value)
    if count * count <= _BRUTE_CELLS and not hashes.previous.any() and wanted.all():
        # The common leaf (a small group of new hashes, all asked): one symmetric pass. Leaves are many
        # (hundreds of thousands in a large sparse bucket), so their per-call overhead is the cost.
        every = np.arange(count)
        # numpy's stubs give any(axis=...) as a scalar or an array; of a 2-D array it is the 1-D array
        return _pairs(hashes, every, every, distance, dhash_distance, columns_are_all=True).any(axis=1)  # type: ignore[return-value]
    flags = np.zeros(count, dtype=bool)
    new = np.flatnonzero(~hashes.previous)
    for rows_of, columns, all_columns in ((wanted & ~hashes.previous, np.arange(count), True),
                                          (wanted & hashes.previous, new, False)):
        queries = np.flatnonzero(rows_of)
        step = max(1, _BRUTE_CELLS // max(1, len(columns)))
        for start in range(0, len(queries), step):
            rows = queries[start:start + step]
            close = _pairs(hashes, rows, columns, distance, dhash_distance, columns_are_all=all_columns)
            flags[rows] |= close.any(axis=1)
            flags[columns] |= close.any(axis=0)
    return flags


def _cover(hashes: Hashes, distance: int, dhash_distance: int) -> np.ndarray:
    """Flags found cheaply in a large bucket: every hash against up to LEADERS leaders, hashes taken
    in order that met no earlier leader. In a dense cluster (thousands within a few bits of one
    another) nearly every hash meets a leader and is answered here for LEADERS comparisons instead of
    n. A sparse bucket shows itself at once (under a quarter of the hashes met so far meet a leader):
    the cover stops there, having cost little more than LEADERS^2 comparisons. Hashes left unflagged are searched
    in full by the caller."""
    count = len(hashes.value)
    flags = np.zeros(count, dtype=bool)
    leaders = np.empty(0, dtype=np.int64)
    met_so_far = 0
    for start in range(0, count, LEADERS):
        rows = np.arange(start, min(count, start + LEADERS))
        met = np.zeros(len(rows), dtype=bool)
        if len(leaders):
            close = _pairs(hashes, rows, leaders, distance, dhash_distance)
            met = close.any(axis=1)  # type: ignore[assignment]  # a 1-D array (of a 2-D one), as above
            flags[rows] |= met
            flags[leaders] |= close.any(axis=0)
            met_so_far += int(met.sum())
            if 4 * met_so_far < start + len(rows) - LEADERS:  # under a quarter met: sparse, stop here
                break
        leaders = np.concatenate([leaders, rows[~met][:LEADERS - len(leaders)]])
    return flags


def close_flags(hashes: Hashes, distance: int, dhash_distance: int, fixed_mask: int, bucket_cap: int,
                depth: int = 0, wanted: np.ndarray | None = None) -> np.ndarray:
    """Which of a bucket's hashes (they agree on the bits of `fixed_mask`) have a partner within
    `distance`: one bool each, never the pairs, so a dense cluster of n hashes costs n flags, not
    n^2 edges. Exact for the `wanted` hashes (all by default); others may be flagged as partners.

    A bucket larger than the cap is first compared with a few leaders (`_cover`), which answers most
    of a dense cluster; for what is left it is split, unless one vectorised pass (_BRUTE_CELLS)
    compares it whole: bits on which all of its hashes agree are fixed; the varying bits are cut into
    distance + 1 sub-blocks, any close pair agrees on one of them, so grouping by each sub-block and
    recursing finds every partner of a wanted hash, and each group is strictly smaller than the
    bucket. The depth is bounded, so such buckets cost at most (distance + 1)^depth times their size
    in vectorised comparisons.
    """
    count = len(hashes.value)
    wanted = np.ones(count, dtype=bool) if wanted is None else wanted
    flags = np.zeros(count, dtype=bool)
    if count < 2 or hashes.previous.all():  # two previous-release hashes are never a pair
        return flags
    if count > max(bucket_cap, LEADERS):  # smaller buckets cost little more to search in full
        flags |= _cover(hashes, distance, dhash_distance)
        wanted = wanted & ~flags
        if not wanted.any():
            return flags
    # Split only a bucket that one vectorised pass cannot compare (over _BRUTE_CELLS pairs): at distance 16 a split
    # makes 17 groups, each split again to MAX_SPLIT_DEPTH, and a bucket of a few hundred just over the cap cost up to
    # 17^3 searches (55 s for 300 hashes within 17 bits) where one pass costs milliseconds.
    if count > bucket_cap and count * count > _BRUTE_CELLS and depth < MAX_SPLIT_DEPTH:
        varying = int(np.bitwise_or.reduce(hashes.value ^ hashes.value[0])) & ~fixed_mask
        free = [bit for bit in range(HASH_BITS) if varying >> bit & 1]
        if len(free) > distance + 1:
            parts = distance + 1
            for i in range(parts):
                sub_mask = sum(1 << bit for bit in free[len(free) * i // parts: len(free) * (i + 1) // parts])
                for group in _runs(hashes.value & np.uint64(sub_mask)):
                    if wanted[group].any():
                        flags[group] |= close_flags(hashes.take(group), distance, dhash_distance,
                                                    fixed_mask | sub_mask, bucket_cap, depth + 1, wanted[group])
            return flags
        if dhash_distance >= 0:
            split = _split_on_dhash(hashes, distance, dhash_distance, fixed_mask, bucket_cap, depth, wanted)
            if split is not None:
                return flags | split
    return flags | _flags_brute(hashes, distance, dhash_distance, wanted)


def _split_on_dhash(hashes: Hashes, distance: int, dhash_distance: int, fixed_mask: int, bucket_cap: int,
                    depth: int, wanted: np.ndarray) -> np.ndarray | None:
    """`close_flags` for a bucket whose pHashes vary in too few bits to split on (thousands of dark photographs
    sharing one pHash, told apart by the dHash check alone), split on their dHashes instead: a pair the check
    confirms agrees on one of dhash_distance + 1 sub-blocks of the dHash's varying bits. Hashes without a dHash (an
    older index's), which nothing vetoes, are compared with all. None where the dHashes vary in too few bits too,
    or where the groups of its sub-blocks would hold more pairs in all than the bucket.
    Compared whole, n such hashes cost n^2 comparisons under each of the C(r + k, k) keys they share (16,000 took
    ~20 s, 100,000 ~15 min). Groups up to the cap are compared in one vectorised pass per offset, as
    `candidate_pairs` compares small buckets; larger ones are searched again."""
    known = np.flatnonzero(hashes.has_dhash)
    varying = int(np.bitwise_or.reduce(hashes.dhash[known] ^ hashes.dhash[known[0]])) if len(known) else 0
    free = [bit for bit in range(HASH_BITS) if varying >> bit & 1]
    if len(free) <= dhash_distance + 1:
        return None
    sub, sub_wanted = hashes.take(known), wanted[known]
    parts = dhash_distance + 1
    groupings = [_grouped(sub.dhash & np.uint64(sum(1 << bit for bit in free[len(free) * i // parts:
                                                                            len(free) * (i + 1) // parts])))
                 for i in range(parts)]
    # Sub-blocks of a few bits each (a distance of 16 or more cuts 64 bits into 17+) group the hashes by so few keys
    # that the groups hold more pairs, summed over the sub-blocks, than the bucket itself: split, it cost up to 4 times
    # the comparisons of one pass over it (40,000 hashes at distance 16: 12.7 s, 4.7 s compared whole).
    if sum(int(np.square(lengths, dtype=np.float64).sum()) for *_, lengths in groupings) >= float(len(known)) ** 2:
        return None
    flags = np.zeros(len(hashes.value), dtype=bool)
    unknown = ~hashes.has_dhash
    if unknown.any():  # every pair with a hash of no dHash: those rows against all
        flags |= _flags_brute(hashes, distance, dhash_distance, unknown)
    sub_flags = np.zeros(len(known), dtype=bool)
    for order, run_id, starts, lengths in groupings:
        small = lengths[run_id] <= bucket_cap
        for offset in range(1, int(lengths[lengths <= bucket_cap].max(initial=1))):
            first = np.flatnonzero((run_id[:-offset] == run_id[offset:]) & small[:-offset])
            a, b = order[first], order[first + offset]
            COMPARISONS.inc(len(a))
            close = np.bitwise_count(sub.value[a] ^ sub.value[b]) <= distance
            close &= np.bitwise_count(sub.dhash[a] ^ sub.dhash[b]) <= dhash_distance
            close &= ~(sub.previous[a] & sub.previous[b])
            sub_flags[a[close]] = True
            sub_flags[b[close]] = True
        for run in np.flatnonzero(lengths > bucket_cap):
            group = order[starts[run]:starts[run] + lengths[run]]
            if sub_wanted[group].any():
                sub_flags[group] |= close_flags(sub.take(group), distance, dhash_distance, fixed_mask, bucket_cap,
                                                depth + 1, sub_wanted[group])
    flags[known] |= sub_flags
    return flags


def _grouped(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(order, run of each sorted position, start of each run, length of each run) of equal keys."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    new_run = np.ones(len(keys), dtype=bool)
    new_run[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(new_run)
    return order, np.cumsum(new_run) - 1, starts, np.diff(np.append(starts, len(keys)))


def _runs(keys: np.ndarray) -> list[np.ndarray]:
    """Indices of each group of equal keys holding two or more (a lone hash has no partner there)."""
    order, _, starts, lengths = _grouped(keys)
    return [order[start:start + length] for start, length in zip(starts, lengths, strict=True) if length > 1]
