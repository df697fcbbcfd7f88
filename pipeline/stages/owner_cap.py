"""Per-photographer cap: at most N images per Flickr account, as PASS did (N = 80), so that a few
prolific accounts cannot dominate the dataset.

Which N survive is decided by a hash of the photo id: deterministic, independent of input
order and worker count, and unbiased with respect to upload time or anything in the metadata.
Images carried over from a previous release rank before new ones: a new image never displaces a released one.
Released images over the cap still leave (a refresh given a lower --per_owner_cap, or one account's photos
published under two spellings of its id before ids were made canonical): the cap is the account's.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Iterator

import apache_beam as beam

from pipeline.io.flickr_pages import account
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_keyed_stage, empty, reject

STAGE = "owner_cap"


def cap_rank(photo: Photo) -> tuple[int, str, str]:
    # Images already published come first, so a refresh never drops a released image for a new one.
    released = 0 if photo.first_release else 1
    return released, hashlib.sha256(photo.photo_id.encode()).hexdigest(), photo.photo_id


def owner_key(photo: Photo) -> str:
    # One account, one quota, however a row spells its id ("7@n01", a carried row's, is 7@N01's). A table's rows carry
    # no owner id, only their Flickr page, which names the account (`flickr.com/photos/NSID/ID/`), and the creator they
    # credit, which a table made from Flickr's search answers gives as the account's id: each was a group of its own,
    # so a table of one photographer's 10,000 photos was never capped. A photo whose owner cannot be known (no id, a
    # page naming an alias or none, a creator's name) cannot be attributed to anyone's quota: it is its own group.
    owner = account(photo.owner_nsid, photo.page_url, photo.owner_name)
    return f"owner:{owner}" if owner else f"photo:{photo.photo_id}"


class _KeepFirstN(beam.DoFn):
    """Streams an owner's photos keeping a heap of the N best ranks, so memory is O(N) photos
    even for an account with a hundred thousand of them: each photo evicted is rejected at once
    (collected until the end, they made memory grow with the account after all)."""

    def __init__(self, cap: int) -> None:
        self._cap = cap

    def process(self, keyed: tuple[str, Iterable[Photo]]) -> Iterator:
        owner, photos = keyed
        heap: list[tuple[_Reversed, Photo]] = []  # max-heap by rank, via negated order below
        detail = f"{owner.removeprefix('owner:')} has more than {self._cap} images"
        for photo in photos:
            entry = (_Reversed(cap_rank(photo)), photo)
            if len(heap) < self._cap:
                heapq.heappush(heap, entry)
            else:
                evicted = heapq.heappushpop(heap, entry)[1]
                yield reject(Rejection.of(evicted, STAGE, "owner_cap", detail))
        for _, photo in heap:
            yield photo


class _Reversed:
    """Inverts comparisons so that heapq's min-heap keeps the largest rank on top (to evict)."""

    __slots__ = ("rank",)

    def __init__(self, rank: tuple[int, str, str]) -> None:
        self.rank = rank

    def __lt__(self, other: _Reversed) -> bool:
        return self.rank > other.rank


class CapPerOwner(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo], at most `cap` per owner; PCollection[Rejection])."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self._cap = cap

    def expand(self, photos: beam.PCollection) -> StageOutput:
        if self._cap <= 0:
            return StageOutput(photos, empty(photos.pipeline))
        return apply_keyed_stage(photos, STAGE, owner_key, _KeepFirstN(self._cap))
