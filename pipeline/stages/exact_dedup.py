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

import apache_beam as beam

from pipeline.records import Photo, Rejection, survivor_rank
from pipeline.stage import StageOutput, apply_keyed_stage, reject

STAGE = "exact_dedup"


class _KeepSurvivor(beam.DoFn):
    def process(self, keyed: tuple[str, Iterable[Photo]]) -> Iterator:
        # Two passes over the group (a GroupByKey's values can be iterated again; on Dataflow they are
        # paged in from the shuffle): the first finds the survivor, the second rejects every other copy
        # as it goes. Never a list of the group: a blank image shared by 10^5 uploads is 10^5 photos.
        _, photos = keyed
        best = min(photos, key=survivor_rank)
        best_rank = survivor_rank(best)
        yield best
        passed = False
        for photo in photos:
            if not passed and survivor_rank(photo) == best_rank:  # the survivor itself, met again
                passed = True
                continue
            same_bytes = photo.download_sha256 == best.download_sha256
            detail = "identical downloaded bytes" if same_bytes else "identical pixels after normalisation"
            yield reject(Rejection.of(photo.replace(image=b""), STAGE, "duplicate", detail,
                                      duplicate_of=best.photo_id))


class ExactDuplicates(beam.PTransform):
    """PCollection[Photo] (hashed) -> (PCollection[Photo] with unique stored bytes, PCollection[Rejection])."""

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_keyed_stage(photos, STAGE, lambda photo: photo.sha256, _KeepSurvivor())
