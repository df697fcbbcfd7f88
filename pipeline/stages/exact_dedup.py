"""Exact duplicates: photos whose stored pixels are identical keep one survivor.

Normalisation is deterministic, so identical downloaded bytes always give identical stored
bytes: grouping by the stored image's sha256 catches both cases in one shuffle, and the detail
says which one it was. Near duplicates (perceptual hashes) are a separate stage.

Survivor rule, the same wherever duplicates are resolved: the larger original resolution, then
the earlier upload, then the smaller photo id. Every other copy is rejected with `duplicate_of`
naming the survivor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from pipeline.records import Photo, Rejection, survivor_rank
from pipeline.stage import StageOutput, Tagged, apply_keyed_stage, apply_stage, best_and_rest, reject

STAGE = "exact_dedup"
NEW, CARRIED = "new", "carried"


class _KeepSurvivor(beam.DoFn):
    def process(self, keyed: tuple[str, Iterable[Photo]]) -> Iterator:
        _, photos = keyed
        best, copies = best_and_rest(photos, survivor_rank)
        yield best
        for photo in copies:
            same_bytes = photo.download_sha256 == best.download_sha256
            detail = "identical downloaded bytes" if same_bytes else "identical pixels after normalisation"
            yield reject(Rejection.of(photo.replace(image=b""), STAGE, "duplicate", detail,
                                      duplicate_of=best.photo_id))


class _KeepUncarried(beam.DoFn):
    """(sha256, [("new", photo) | ("carried", photo id)]): stored bytes a carried photo already has are that
    photo's (it is in a published release); each new copy is its duplicate."""

    def process(self, keyed: tuple[str, Iterable[tuple[str, Any]]]) -> Iterator:
        key, group = keyed
        carried = min(Tagged(group, CARRIED), default=None, key=lambda photo_id: (len(photo_id), photo_id))
        new = Tagged(group, NEW)
        if carried is None:
            yield from _KeepSurvivor().process((key, new))
            return
        for photo in new:
            yield reject(Rejection.of(photo.replace(image=b""), STAGE, "duplicate",
                                      "identical pixels after normalisation to a carried-over photo",
                                      duplicate_of=carried))


class ExactDuplicates(beam.PTransform):
    """PCollection[Photo] (hashed) -> (PCollection[Photo] with unique stored bytes, PCollection[Rejection]).

    With `carried` (PCollection[Photo], a refresh's carried-over rows), new photos are compared with them too and
    lose to them: the near-duplicate stage does so as well, but it can be switched off (--near_dup_distance=-1)."""

    def __init__(self, carried: beam.PCollection | None = None) -> None:
        super().__init__()
        self._carried = carried

    def expand(self, photos: beam.PCollection) -> StageOutput:
        if self._carried is None:
            return apply_keyed_stage(photos, STAGE, lambda photo: photo.sha256, _KeepSurvivor())
        new = photos | "BySha256" >> beam.Map(lambda photo: (photo.sha256, (NEW, photo)))
        carried = self._carried | "CarriedBySha256" >> beam.Map(lambda photo: (photo.sha256, (CARRIED, photo.photo_id)))
        grouped = (new, carried) | "WithCarried" >> beam.Flatten() | "GroupWithCarried" >> beam.GroupByKey()
        return apply_stage(grouped, STAGE, _KeepUncarried())
