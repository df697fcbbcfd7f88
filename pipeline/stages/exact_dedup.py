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
from pipeline.stage import StageOutput, apply_keyed_stage, best_and_rest, reject

STAGE = "exact_dedup"


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


class ExactDuplicates(beam.PTransform):
    """PCollection[Photo] (hashed) -> (PCollection[Photo] with unique stored bytes, PCollection[Rejection])."""

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_keyed_stage(photos, STAGE, lambda photo: photo.sha256, _KeepSurvivor())
