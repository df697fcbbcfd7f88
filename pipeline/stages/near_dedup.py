"""Near duplicates: images whose 64-bit pHashes are within Hamming distance r keep one survivor.

Nothing here is quadratic in the dataset size:

1. Photos with the *same* pHash collapse to one representative first (the best by the survivor
   rule, `records.survivor_rank`): blank, dark and low-detail images, which share hashes by the thousand,
   never reach the pairwise step.
2. Candidate pairs come from the pigeonhole principle. The 64 bits are cut into r + k blocks;
   two hashes within distance r differ in at most r blocks, so they agree exactly on at least k
   blocks. Every representative is keyed by each choice of k blocks (C(r+k, k) keys of about
   64k/(r+k) bits each), and only hashes sharing a key are compared, by popcount (a pair under every key it
   shares). The keys travel as numpy rows, one element per bundle and partition (`near_dup/candidate_pairs.py`),
   not one per key; a partition reports which representatives have a partner, never the pairs.
3. A bucket larger than `bucket_cap` is split again on the bits in which its hashes vary (the
   same pigeonhole argument over the remaining bits), to a bounded depth; what is left is
   compared with vectorised XOR/popcount in numpy, in chunks, so memory stays bounded and a
   skewed bucket costs C-speed comparisons rather than Python loops.
4. With `dhash_distance` >= 0 a pair also needs close dHashes (equal pHashes alone no longer
   collapse: the dHash must be equal too).
5. Images of a previous release (its persisted index) join as representatives that always rank
   first; buckets holding only them are skipped, and two of them are never paired.
6. The survivor rule is greedy and global: representatives are visited best first; one with no
   kept neighbour within r is kept, otherwise it is dropped as a duplicate of its best kept
   neighbour. Only representatives that have at least one neighbour take part, as small nodes on
   one worker, which finds each one's kept neighbours in a pigeonhole index of the kept nodes
   (`near_dup/greedy.py`): no edge list, so a dense cluster of n images costs n probes, not n^2
   edges. The kept set has no pair within r, and every dropped image names a kept survivor and
   the distance.

With k = 1 this is the classic r + 1 bands; k = 2 (the default) makes keys twice as wide, which
keeps buckets small at 10^7-10^8 images.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import cast

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.near_dup import candidate_pairs
from pipeline.near_dup.candidate_pairs import node_id
from pipeline.near_dup.greedy import greedy_survivors
from pipeline.near_dup.pigeonhole import HASH_BITS, Node, key_masks, previous_node
from pipeline.records import HASH16, BadPhotoId, Photo, Rejection, canonical_photo_id, survivor_rank
from pipeline.stage import StageOutput, Tagged, apply_stage, best_and_rest, reject

STAGE = "near_dedup"
PREVIOUS_INDEX_METRICS = "near_dedup"
IGNORED_PREVIOUS_ROWS = "previous_index_rows_ignored"


def previous_entry(row: dict) -> Iterator[tuple[str, str, str]]:
    """(phash, photo id, dhash) of one --previous_index row, or nothing for a row no run writes (a pHash that is
    not 16 hexadecimal digits, an id that is no photo number, a dHash neither empty nor a hash), counted as
    `previous_index_rows_ignored` in stats.json: one such row failed the whole job. An index without a dHash
    column (written before there was one) gives every row an unknown dHash, which vetoes no pair."""
    phash, dhash = row.get("phash"), row.get("dhash") or ""
    try:
        photo_id = canonical_photo_id(row.get("photo_id"))
    except BadPhotoId:
        photo_id = ""
    if photo_id and isinstance(phash, str) and HASH16.fullmatch(phash) and isinstance(dhash, str) \
            and (not dhash or HASH16.fullmatch(dhash)):
        yield phash, photo_id, dhash
    else:
        Metrics.counter(PREVIOUS_INDEX_METRICS, IGNORED_PREVIOUS_ROWS).inc()


def collapse_key(photo: Photo, dhash_distance: int) -> str:
    """Photos under one key are duplicates outright. With dHash confirmation, equal pHashes alone
    are not enough: the dHash must be equal too (closer-but-unequal dHashes are paired below)."""
    return f"{photo.phash}:{photo.dhash}" if dhash_distance >= 0 else photo.phash


def _node(photo: Photo, dhash_distance: int) -> Node:
    dhash = int(photo.dhash, 16) if photo.dhash else None
    return Node(int(photo.phash, 16), survivor_rank(photo), photo.photo_id, False, dhash,
                collapse_key(photo, dhash_distance))


PARTITION_BITS = 8  # 256 partitions of candidate-key rows
REPRESENTATIVES_PER_BATCH = 16_384  # key rows are made for this many representatives at a time, at most


class _KeyRows(beam.DoFn):
    """A bundle's representatives -> (partition, key rows): a few elements per bundle, not one per key."""

    def __init__(self, masks: list[int]) -> None:
        self._masks = masks

    def process(self, batch: list[Node]) -> Iterator[tuple[int, tuple]]:
        for partition, rows in candidate_pairs.split_partitions(candidate_pairs.rows_of(batch, self._masks),
                                                                PARTITION_BITS):
            yield partition, tuple(rows)


class _PartitionInvolved(beam.DoFn):
    """A partition's key rows -> the ids of its representatives that have a partner within r."""

    def __init__(self, distance: int, masks: list[int], bucket_cap: int, dhash_distance: int) -> None:
        self._distance, self._masks, self._cap = distance, masks, bucket_cap
        self._dhash_distance = dhash_distance

    def process(self, keyed: tuple[int, Iterable[tuple]]) -> Iterator[tuple]:
        _, chunks = keyed
        rows = candidate_pairs.Rows.concat([candidate_pairs.Rows(*chunk) for chunk in chunks])
        ids = candidate_pairs.involved_in_partition(rows, self._masks, self._distance, self._dhash_distance,
                                                    self._cap)
        yield from ((f"{int(i):016x}", True) for i in ids)


def first_if_partnered(keyed: tuple[str, Iterable[tuple[str, object]]]) -> Iterator[Node]:
    """(node id, its values tagged ("node", Node) or ("partnered", True)) -> each distinct node under the id, once, if
    the id has a partner. The nodes under one id are one representative, but for two whose 64-bit ids collide (about
    1 run in 3,700 at 10^8 representatives, or crafted): the first alone joined, and the other was kept beside its
    near copy, which one by the order of the group. Each joins (one without a partner of its own is kept there, as it
    would be here). A previous index listing one row a million times gives a million equal nodes, which a
    CoGroupByKey held as one list in one worker, with the id's partner flags: read as a stream, the distinct ones held
    (one there)."""
    _, tagged = keyed
    nodes: dict[Node, None] = {}  # distinct, in the order met
    partnered = False
    for tag, value in tagged:
        if tag == "node":
            nodes.setdefault(cast(Node, value), None)  # a "node" tag's value is a Node
        elif tag == "partnered":
            partnered = True
    if partnered:
        yield from nodes


def _greedy(nodes: Iterable[Node], masks: list[int], distance: int, dhash_distance: int) -> list[tuple[str, tuple]]:
    decisions = greedy_survivors(nodes, masks, distance, dhash_distance)
    return [(node.group, decision) for node, decision in decisions.items()]


class _Resolve(beam.DoFn):
    """Per collapse key (pHash): its photos, tagged ("photo", Photo), and the decision of its
    representative, tagged ("dropped", decision), if it was dropped; read in passes, never listed
    (`stage.best_and_rest`)."""

    def process(self, keyed: tuple[str, Iterable[tuple[str, object]]]) -> Iterator:
        _, tagged = keyed
        photos = Tagged(tagged, "photo")
        decision = next(iter(Tagged(tagged, "dropped")), None)
        if decision is None:
            best, dropped = best_and_rest(photos, survivor_rank)
            survivor, distance, previous = best.photo_id, 0, False
            yield best
        else:
            dropped, (survivor, distance, previous) = iter(photos), decision
        detail = f"pHash distance {distance}" + (" (identical pHash)" if distance == 0 else "")
        detail += " to an image of the previous release" if previous else ""
        for photo in dropped:
            yield reject(Rejection.of(photo, STAGE, "near_duplicate", detail, duplicate_of=survivor))


class NearDuplicates(beam.PTransform):
    """PCollection[Photo] (with `phash`) -> (PCollection[Photo] with no two within `distance`,
    PCollection[Rejection] naming each dropped image's survivor and distance)."""

    def __init__(self, distance: int, key_blocks: int = 2, bucket_cap: int = 64,
                 previous: beam.PCollection | None = None, dhash_distance: int = -1) -> None:
        """`previous`: (phash, photo id, dhash) of an earlier release's images (its persisted index);
        new images are compared against them and among themselves, and never displace them.
        `dhash_distance` >= 0 also requires the dHashes of a pair to be that close."""
        super().__init__()
        self._previous = previous
        self._dhash_distance = dhash_distance
        if not 0 <= distance <= 16:
            raise ValueError("near-duplicate distance must be within 0..16")
        self._distance = distance
        self._masks = key_masks(distance, max(1, min(key_blocks, HASH_BITS - distance)))
        self._cap = bucket_cap

    def expand(self, photos: beam.PCollection) -> StageOutput:
        masks, dhash_distance = self._masks, self._dhash_distance  # locals: the lambdas must not capture self
        by_group = photos | "ByGroup" >> beam.Map(lambda photo: (collapse_key(photo, dhash_distance), ("photo", photo)))
        representatives = (
            photos
            | "Node" >> beam.Map(lambda photo: (collapse_key(photo, dhash_distance), _node(photo, dhash_distance)))
            | "Best" >> beam.CombinePerKey(lambda nodes: min(nodes, key=lambda n: n.rank))
            | "DropKey" >> beam.Values()
        )
        if self._previous is not None:
            old = self._previous | "PreviousNodes" >> beam.MapTuple(previous_node)
            representatives = (representatives, old) | "WithPrevious" >> beam.Flatten()
        distance = self._distance
        partnered_ids = (
            representatives
            # One batch per bundle (up to 16,384 representatives): each batch becomes up to 2^PARTITION_BITS
            # elements, each seven small arrays the shuffle pickles one by one. Grown from 1, as Beam's
            # adaptive batching does, 2,000 photos made ~8,200 such elements (0.5 s of encoding).
            | "Bundle" >> beam.BatchElements(min_batch_size=REPRESENTATIVES_PER_BATCH,
                                             max_batch_size=REPRESENTATIVES_PER_BATCH)
            | "KeyRows" >> beam.ParDo(_KeyRows(masks))
            | "Partitions" >> beam.GroupByKey()
            | "Partnered" >> beam.ParDo(_PartitionInvolved(distance, masks, self._cap, dhash_distance))
        )
        # Only representatives that have a neighbour take part in the greedy step: join them by id, a GroupByKey over
        # both tagged, read as a stream (`first_if_partnered`).
        involved = (
            (representatives | "ById" >> beam.Map(lambda node: (f"{node_id(node):016x}", ("node", node))),
             partnered_ids | "TagPartnered" >> beam.MapTuple(lambda key, _: (key, ("partnered", True))))
            | "NodesAndPartners" >> beam.Flatten()
            | "JoinIds" >> beam.GroupByKey()
            | "Involved" >> beam.FlatMap(first_if_partnered)
        )
        # Every involved node in one place for the global greedy step. A one-key GroupByKey, not
        # ToList: none involved then means no group and nothing dropped.
        dropped_by_group = (
            involved
            | "OneKey" >> beam.Map(lambda node: (0, node))
            | "AllInvolved" >> beam.GroupByKey()
            | "Greedy" >> beam.FlatMap(lambda keyed: _greedy(keyed[1], masks, distance, dhash_distance))
        )
        # A GroupByKey over both, tagged, not CoGroupByKey: Beam's CoGroupByKey builds a list per tag.
        grouped = (
            (by_group, dropped_by_group | "TagDropped" >> beam.MapTuple(lambda group, d: (group, ("dropped", d))))
            | "PhotosAndDecisions" >> beam.Flatten()
            | "JoinPhotos" >> beam.GroupByKey()
        )
        return apply_stage(grouped, STAGE, _Resolve())
