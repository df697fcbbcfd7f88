"""One record per photo id: a dump that lists a photo twice must not fetch it twice, nor put two
copies under one WebDataset key. The first occurrence (by file, then line) wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import apache_beam as beam

from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "unique_id"


def source_order(photo: Photo) -> tuple:
    """Sort key of 'file:line' refs in which line numbers compare as numbers ('a:9' < 'a:10')."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", photo.source_ref))


class _KeepFirst(beam.DoFn):
    def process(self, keyed: tuple[str, Iterable[Photo]]) -> Iterator:
        _, photos = keyed
        ordered = sorted(photos, key=source_order)
        first = ordered[0]
        yield first
        for repeat in ordered[1:]:
            yield reject(Rejection.of(repeat, STAGE, "repeated_id", f"same photo id as {first.source_ref}",
                                      duplicate_of=first.photo_id))


class DropRepeatedIds(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo], PCollection[Rejection]): one Photo per photo_id."""

    def expand(self, photos: beam.PCollection) -> StageOutput:
        grouped = (
            photos
            | "ById" >> beam.Map(lambda photo: (photo.photo_id, photo))
            | "Group" >> beam.GroupByKey()
        )
        return apply_stage(grouped, STAGE, _KeepFirst())
