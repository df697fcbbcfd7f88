"""One record per photo id: a dump that lists a photo twice must not fetch it twice, nor put two
copies under one WebDataset key. The first occurrence (by file, then line) wins. Ids are compared
in their canonical spelling (`records.canonical_photo_id`), so '007' and '7' are one photo even
where a record did not come through a source that canonicalised it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import apache_beam as beam

from pipeline.records import BadPhotoId, Photo, Rejection, canonical_photo_id
from pipeline.stage import StageOutput, apply_stage, best_and_rest, reject

STAGE = "unique_id"


def source_order(photo: Photo) -> tuple:
    """Sort key of 'file:line' refs in which line numbers compare as numbers ('a:9' < 'a:10')."""
    # [0-9], not \d or str.isdigit(): those also pass digits int() reads differently or refuses ('²')
    return tuple(int(part) if part.isascii() and part.isdigit() else part
                 for part in re.split(r"([0-9]+)", photo.source_ref))


def id_key(photo: Photo) -> str:
    """The photo's id as the stage compares it: canonical where it is a valid id, as given otherwise."""
    try:
        return canonical_photo_id(photo.photo_id)
    except BadPhotoId:
        return photo.photo_id


class _KeepFirst(beam.DoFn):
    def process(self, keyed: tuple[str, Iterable[Photo]]) -> Iterator:
        _, photos = keyed
        first, repeats = best_and_rest(photos, source_order)
        yield first
        for repeat in repeats:
            yield reject(Rejection.of(repeat, STAGE, "repeated_id", f"same photo id as {first.source_ref}",
                                      duplicate_of=first.photo_id))


class DropRepeatedIds(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo], PCollection[Rejection]): one Photo per photo_id."""

    def expand(self, photos: beam.PCollection) -> StageOutput:
        grouped = (
            photos
            | "ById" >> beam.Map(lambda photo: (id_key(photo), photo)).with_output_types(tuple[str, Photo])
            | "Group" >> beam.GroupByKey()
        )
        return apply_stage(grouped, STAGE, _KeepFirst())
