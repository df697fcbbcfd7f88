"""One record per photo id: a dump that lists a photo twice must not fetch it twice, nor put two
copies under one WebDataset key. The first occurrence (by file, then line) wins. Ids are compared
in their canonical spelling (`records.canonical_photo_id`), so '007' and '7' are one photo even
where a record did not come through a source that canonicalised it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import fields

import apache_beam as beam

from pipeline.records import BadPhotoId, Photo, Rejection, canonical_photo_id
from pipeline.stage import REFERENCE, StageOutput, Tagged, apply_stage, best_and_rest, reject

STAGE = "unique_id"
NEW, REFUSED = "new", REFERENCE  # a refused row is a reference: a failed group does not account for it again
_FIELDS = tuple(field.name for field in fields(Photo))


def source_order(photo: Photo) -> tuple:
    """Sort key of 'file:line' refs in which line numbers compare as numbers ('a:9' < 'a:10'), and files by their
    paths below the input glob's folder: a file in a folder is named `./FOLDER/NAME` (`input_files.file_label`), and
    that `./` put every such file before every file beside the folders (`./z/b.tsv` before `a.tsv`), so an id's row
    of `dumps/z/b.tsv` was kept over its row of `dumps/a.tsv`."""
    # [0-9], not \d or str.isdigit(): those also pass digits int() reads differently or refuses ('²')
    return tuple(int(part) if part.isascii() and part.isdigit() else part
                 for part in re.split(r"([0-9]+)", photo.source_ref.removeprefix("./")))


def first_row_order(photo: Photo) -> tuple:
    """Which row of one id comes first: by `source_order`, then by the row's content. Refs named a file by its base
    name, so two inputs called x.tsv in two folders both gave 'x.tsv:1', and which of them won depended on the order
    the runner delivered them in. Files of one glob now have refs of their own (`input_files.file_label`); the
    content still decides where two refs are one all the same (a carried release's `NAME/parquet/SHARD:ROW` beside an
    input folder of that name), so the same inputs always keep the same photo."""
    return source_order(photo), tuple(getattr(photo, name) for name in _FIELDS)


def id_key(photo: Photo) -> str:
    """The photo's id as the stage compares it: canonical where it is a valid id, as given otherwise."""
    return key_of_id(photo.photo_id)


def key_of_id(photo_id: str) -> str:
    """`id_key` of an id."""
    try:
        return canonical_photo_id(photo_id)
    except BadPhotoId:
        return photo_id


class _KeepFirst(beam.DoFn):
    def process(self, keyed: tuple[str, Iterable[Photo]]) -> Iterator:
        _, photos = keyed
        first, repeats = best_and_rest(photos, first_row_order)
        yield first
        for repeat in repeats:
            yield reject(Rejection.of(repeat, STAGE, "repeated_id", f"same photo id as {first.source_ref}",
                                      duplicate_of=first.photo_id))


class _KeepUncarried(beam.DoFn):
    """(id, {"new": photos, "carried": where the release holds it}): an id a carried release row already holds is
    that row's, and every new row for it a repeat (the release's copy is carried over; fetching it again would only
    make a second)."""

    def process(self, keyed: tuple[str, dict[str, Iterable]]) -> Iterator:
        key, groups = keyed
        carried = min(groups["carried"], default=None)
        if carried is None:
            yield from _KeepFirst().process((key, groups["new"]))
            return
        for repeat in groups["new"]:
            yield reject(Rejection.of(repeat, STAGE, "repeated_id", f"same photo id as {carried} (carried over)",
                                      duplicate_of=repeat.photo_id))


class _KeepFirstUnrefused(beam.DoFn):
    """(id, [(NEW | REFUSED, photo)]), a refused photo holding only the id and ref of a row an earlier stage
    refused: when the id's first row was refused (a CC BY-NC row before a CC BY row of one photo), every later row of
    it is a repeat. Without this the later row was published as CC BY while the rejections said the photo was not:
    the first row did not win. The group is read in passes, never listed (one id can have 10^4 rows)."""

    def process(self, keyed: tuple[str, Iterable[tuple[str, Photo]]]) -> Iterator:
        key, group = keyed
        new = Tagged(group, NEW)
        first = min(new, key=first_row_order, default=None)
        if first is None:
            return
        refused = min(Tagged(group, REFUSED), default=None, key=source_order)
        if refused is None or source_order(first) < source_order(refused):  # a tie: the refusal stands
            yield from _KeepFirst().process((key, new))
            return
        for repeat in new:
            yield reject(Rejection.of(repeat, STAGE, "repeated_id", f"same photo id as {refused.source_ref} (refused)",
                                      duplicate_of=repeat.photo_id))


def _refused_row(rejection: Rejection) -> tuple[str, tuple[str, Photo]]:
    return key_of_id(rejection.photo_id), (REFUSED, Photo(photo_id=rejection.photo_id, source_ref=rejection.source_ref))


class DropRepeatedIds(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo], PCollection[Rejection]): one Photo per photo_id.

    With `carried` (PCollection[tuple[str, str]]: (photo id, where) of each row of the release a run carries over,
    `carry.CarriedIds`), an id the release holds is rejected among the new photos: a run merges both before the
    writers, and nothing else keeps one id from being written twice.

    With `refused` (PCollection[Rejection] of the rows a stage before refused, the license stage's), the first row
    of an id is looked for among those too: a later row of a refused photo is a repeat. Only (id, ref) pairs of the
    refused rows are shuffled (most of a YFCC dump is refused for its licence: whole rows would cost ~25 times more)."""

    def __init__(self, carried: beam.PCollection | None = None, refused: beam.PCollection | None = None) -> None:
        super().__init__()
        self._carried, self._refused = carried, refused

    def expand(self, photos: beam.PCollection) -> StageOutput:
        by_id = photos | "ById" >> beam.Map(lambda photo: (id_key(photo), photo)).with_output_types(tuple[str, Photo])
        if self._refused is not None:
            # Both tags carry a Photo (a refused row as one holding only its id and ref), so that the shuffle encodes
            # them with PhotoCoder, as the plain grouping does, not by pickling a union.
            tagged = tuple[str, tuple[str, Photo]]
            tagged_new = by_id | "TagNew" >> beam.MapTuple(lambda key, photo: (key, (NEW, photo))).with_output_types(
                tagged)
            refused = self._refused | "TagRefused" >> beam.Map(_refused_row).with_output_types(tagged)
            grouped = (tagged_new, refused) | "WithRefused" >> beam.Flatten() | "Group" >> beam.GroupByKey()
            return apply_stage(grouped, STAGE, _KeepFirstUnrefused())
        if self._carried is None:
            return apply_stage(by_id | "Group" >> beam.GroupByKey(), STAGE, _KeepFirst())
        joined = {"new": by_id, "carried": self._carried} | "GroupWithCarried" >> beam.CoGroupByKey()
        return apply_stage(joined, STAGE, _KeepUncarried())
