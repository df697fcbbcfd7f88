"""Write the dataset, the rejections, the near-duplicate index and the ledger (ATTRIBUTION.csv: attribution.py).

Sharding follows TensorFlow Datasets' Beam writer rather than Beam's file sinks: each record
goes to shard `hash(photo id) mod N`, shards are sorted by photo id and written to a temporary
name, then renamed into place. Beam's own sinks assign records to shards round-robin per
bundle, so their shard contents change with the runner and the worker count; ours do not.
N is fixed by --shards or derived from the kept count, so it is deterministic too.
"""

from __future__ import annotations

import hashlib
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import Any

import apache_beam as beam
from apache_beam import typehints
from apache_beam.io.filesystems import FileSystems

from pipeline.io import formats
from pipeline.io.file_reads import is_remote
from pipeline.io.files import atomic_file
from pipeline.io.formats import RecordWriter
from pipeline.io.read_ahead import read_ahead
from pipeline.io.staged_images import read_staged
from pipeline.records import Photo, Rejection, ascii_number

DATASET_PREFIX = "pass"
# One worker sorts a shard's rows in memory, ~300-340 bytes a row as Python objects with the sort and the
# writer's row group (tests/test_sinks.py): 500,000 rows are ~170 MB. The ledger and the near-duplicate index
# had 5,000,000 rows a shard, ~1.6 GB: YFCC100M's ~17 million decided ids were four such shards, two of them
# on a 3.75 GB worker at once.
REJECTIONS_PER_SHARD = 500_000
INDEX_ROWS_PER_SHARD = 500_000


def shard_of(key: str, num_shards: int) -> int:
    """Stable across processes and Python versions (unlike hash()), uniform over shards."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % num_shards


# A small dataset still gets several shards: data loaders hand each worker whole shards (a torch
# DataLoader with 2 workers over 1 WebDataset shard leaves a worker idle, or fails).
MIN_DATASET_SHARDS = 8


def shard_count(count: int, fixed: int, per_shard: int, min_shards: int = 1) -> int:
    """--shards when given; else enough shards of `per_shard`, at least `min_shards` but no more
    than there are records (and at least one file)."""
    if fixed > 0:
        return fixed
    return max(1, min(count, max(min_shards, math.ceil(count / per_shard))))


def shard_name(prefix: str, index: int, total: int, extension: str) -> str:
    return f"{prefix}-{index:05d}-of-{total:05d}.{extension}"


# Staged-image reads in flight while a shard is written to an object store (which answers each in tens of ms):
# with the record being written, what a shard holds in memory beyond its sorted records (and a Parquet row
# group's 512 images), whatever its size.
READ_AHEAD = 8


def read_ahead_depth(output: str) -> int:
    """Reads of a local file take microseconds: threads would cost more than they save there."""
    return READ_AHEAD if is_remote(output) else 1


class _WriteShard(beam.DoFn):
    def __init__(self, output: str, prefix: str, outputs: list[tuple[str, str, Callable[[Any], RecordWriter]]],
                 sort_key: Callable[[Any], Any], complete: Callable[[Any], Any] | None = None) -> None:
        self._output = output
        self._prefix = prefix
        self._outputs = outputs  # (folder, extension, writer made from a file handle) per format
        self._sort_key = sort_key
        self._complete = complete  # what each record needs after the shuffle (its image read back)

    def process(self, keyed: tuple[int, Iterable[Any]], num_shards: int) -> Iterator[dict[str, Any]]:
        index, values = keyed
        # The records as shuffled (a dataset photo without its image: ~1 KiB) are sorted in memory; the
        # images are read back one at a time, each record going to every format's file before the next.
        records = sorted((value for value in values if value is not None), key=self._sort_key)
        stream: Iterable[Any] = records
        if self._complete is not None:
            stream = read_ahead(self._complete, records, read_ahead_depth(self._output))
        relatives = [posixpath.join(folder, shard_name(self._prefix, index, num_shards, extension))
                     for folder, extension, _ in self._outputs]
        with ExitStack() as files:  # an error leaves every file of the shard unrenamed
            opened = [files.enter_context(atomic_file(FileSystems.join(self._output, relative)))
                      for relative in relatives]
            formats.write_side_by_side(
                [make(file.handle) for file, (_, _, make) in zip(opened, self._outputs, strict=True)], stream)
        for relative, (folder, _, _), file in zip(relatives, self._outputs, opened, strict=True):
            yield {"path": relative, "format": folder, "shard": index, "records": len(records), **file.entry}


class WriteSharded(beam.PTransform):
    """PCollection[T] -> PCollection[dict]: one manifest entry (path, format, shard, records,
    bytes, sha256) per file written. Every shard index gets a file, empty ones included."""

    def __init__(self, output: str, prefix: str, outputs: list[tuple[str, str, Callable]],
                 key: Callable[[Any], str], sort_key: Callable[[Any], Any], fixed_shards: int,
                 per_shard: int, min_shards: int = 1, complete: Callable[[Any], Any] | None = None,
                 record_type: type | None = None, count: beam.PCollection | None = None) -> None:
        """`record_type`: the records' type when it has a registered coder (Photo), for the shuffle.
        `count`: a one-element PCollection holding the number of records, when the job counts them
        already (its tally); without it the records are counted here."""
        super().__init__()
        self._count = count
        self._output, self._prefix, self._outputs, self._complete = output, prefix, outputs, complete
        self._record_type = record_type
        self._key, self._sort_key = key, sort_key
        self._fixed, self._per_shard, self._min = fixed_shards, per_shard, min_shards

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        fixed, per_shard, least, key = self._fixed, self._per_shard, self._min, self._key
        counted = self._count if self._count is not None else records | "Count" >> beam.combiners.Count.Globally()
        num_shards = counted | "NumShards" >> beam.Map(lambda count: shard_count(count, fixed, per_shard, least))
        every = beam.FlatMap(lambda n: [(index, None) for index in range(n)])
        to_shard = beam.Map(lambda record, n: (shard_of(key(record), n), record), n=beam.pvalue.AsSingleton(num_shards))
        if self._record_type is not None:  # typed: the shuffle then uses the type's coder, not pickle
            shard_type = typehints.Tuple[int, typehints.Optional[self._record_type]]
            every, to_shard = every.with_output_types(shard_type), to_shard.with_output_types(shard_type)
        every_shard = num_shards | "EveryShard" >> every
        keyed = records | "ToShard" >> to_shard
        return (
            (keyed, every_shard)
            | "Merge" >> beam.Flatten()
            | "GroupShards" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteShard(self._output, self._prefix, self._outputs, self._sort_key,
                                               self._complete), num_shards=beam.pvalue.AsSingleton(num_shards))
        )


def photo_order(photo: Photo) -> tuple[int, str]:
    number = ascii_number(photo.photo_id)
    return (-1 if number is None else number, photo.photo_id)


def _with_staged_image(images: str) -> Callable[[Photo], Photo]:
    def complete(photo: Photo) -> Photo:
        # Checked present before the photo was counted as kept (ReadBackImages(check_only=True));
        # a file gone since is a broken staging area, not a property of the photo: the bundle fails.
        return read_staged(images, photo)
    return complete


class WriteDataset(beam.PTransform):
    """PCollection[Photo] -> PCollection[dict] of shard entries, one per file per format. With
    `images` (the run's staged-images folder), a photo without bytes has them read back from there
    after the shard shuffle, so the shuffle carries none."""

    def __init__(self, output: str, formats_wanted: list[str], fixed_shards: int, per_shard: int,
                 images: str = "", count: beam.PCollection | None = None) -> None:
        super().__init__()
        outputs = [(name, formats.WRITERS[name][0], formats.WRITERS[name][1]) for name in formats_wanted]
        self._write = WriteSharded(output, DATASET_PREFIX, outputs, key=lambda photo: photo.photo_id,
                                   sort_key=photo_order, fixed_shards=fixed_shards, per_shard=per_shard,
                                   min_shards=MIN_DATASET_SHARDS,
                                   complete=_with_staged_image(images) if images else None, record_type=Photo,
                                   count=count)

    def expand(self, photos: beam.PCollection) -> beam.PCollection:
        return photos | self._write


def rejection_order(rejection: Rejection) -> tuple:
    """Every field: two rejections equal in all but one still come out in one order, so a shard's bytes do not
    depend on the order the runner delivered them in."""
    return (rejection.photo_id, rejection.stage, rejection.reason, rejection.source_ref, rejection.detail,
            rejection.duplicate_of)


class WriteRejections(beam.PTransform):
    """PCollection[Rejection] -> PCollection[dict] of file entries under rejections/."""

    def __init__(self, output: str, count: beam.PCollection | None = None) -> None:
        super().__init__()
        self._write = WriteSharded(
            output, "rejections", [("rejections", "parquet", formats.RejectionWriter)],
            key=lambda rejection: rejection.photo_id, sort_key=rejection_order, fixed_shards=0,
            per_shard=REJECTIONS_PER_SHARD, count=count,
        )

    def expand(self, rejections: beam.PCollection) -> beam.PCollection:
        return rejections | self._write


class WriteNearDupIndex(beam.PTransform):
    """PCollection[(phash, photo id, dhash)] -> PCollection[dict]: the release's near-duplicate index under
    near_dup_index/, which a later run reads with --previous_index to compare only its new images."""

    def __init__(self, output: str, count: beam.PCollection | None = None) -> None:
        super().__init__()
        self._write = WriteSharded(
            output, "index", [("near_dup_index", "parquet", formats.IndexWriter)],
            # every field, so that two entries of one id (a hostile previous index's) come out in one order
            key=lambda entry: entry[1], sort_key=lambda entry: (entry[1], entry[0], entry[2]), fixed_shards=0,
            per_shard=INDEX_ROWS_PER_SHARD, count=count,
        )

    def expand(self, entries: beam.PCollection) -> beam.PCollection:
        return entries | self._write


class WriteLedger(beam.PTransform):
    """PCollection[dict] (photo_id, decision, stage, reason, release) -> PCollection[dict]: the
    release's ledger of decided photo ids under ledger/ (see stages/ledger.py)."""

    def __init__(self, output: str, count: beam.PCollection | None = None) -> None:
        super().__init__()
        self._write = WriteSharded(
            output, "ledger", [("ledger", "parquet", formats.LedgerWriter)],
            key=lambda entry: entry["photo_id"], sort_key=lambda entry: int(entry["photo_id"]), fixed_shards=0,
            per_shard=INDEX_ROWS_PER_SHARD, count=count,
        )

    def expand(self, entries: beam.PCollection) -> beam.PCollection:
        return entries | self._write


# A spreadsheet evaluates a cell that starts with one of these as a formula (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# Control characters but tab and line ends (C0, DEL, C1): no text shows them, and a terminal printing the file
# obeys them (ESC starts a sequence that can set the clipboard, hide lines or reset it; U+009B is one alone). A
# title or a note holding one is written with U+FFFD in its place.
CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


# A spreadsheet that splits on ';' (the list separator of many locales) or a tab (a row pasted as text) starts a
# cell inside ours after either: a formula character there gets the same quote as at the start of a cell.
INNER_FORMULA = re.compile(r"([;\t])(?='*[=+\-@\t\r])")
_INNER_QUOTED = re.compile(r"([;\t])'(?='*[=+\-@\t\r])")


# Quoted when a cell holds one: a comma, a quote, and every character Python's `str.splitlines()` ends a line at that
# CONTROLS leaves (U+2028 and U+2029 too: a bare one in a title split the row for `csv.reader(text.splitlines(True))`
# and for editors that break lines there).
LINE_ENDS = ',"\r\n\u2028\u2029'


def csv_cell(value: str) -> str:
    """One CSV field, safe to open in a spreadsheet: a cell that would be evaluated gets a leading
    single quote (spreadsheets show the text, the quote marks it as text) and is always quoted, as
    OWASP recommends; the text itself is kept. So does a formula character after a ';' or a tab inside
    it (`INNER_FORMULA`: `Bob;=1+1` split on ';' gave a cell '=1+1'). Otherwise quoted as csv.writer
    does, except that a lone CR, U+2028 and U+2029 are quoted too: csv.writer leaves them bare, and readers then
    start a new row there. Quotes already before a formula character get one more too, so that `csv_text` gives every
    text back exactly ("'=x" is written "''=x", read back "'=x"), but for control characters (`CONTROLS`):
    each is written as U+FFFD."""
    value = INNER_FORMULA.sub(r"\1'", CONTROLS.sub("\ufffd", value))
    if value.lstrip("'").startswith(FORMULA_STARTS):
        return '"' + ("'" + value).replace('"', '""') + '"'
    if any(char in value for char in LINE_ENDS):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_text(cell: str) -> str:
    """The text csv_cell was given: the leading quote it adds before quotes and a formula character taken off."""
    if "'" not in cell:  # nothing to take off (most cells: ids, verdicts, hashes), without the regex's ~2 us
        return cell
    text = cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS) else cell
    return _INNER_QUOTED.sub(r"\1", text)


def csv_lines(rows: Iterable[Iterable[str]]) -> bytes:
    """CSV lines (UTF-8, "\\n" line ends) whose every cell went through csv_cell."""
    return "".join(",".join(csv_cell(str(value)) for value in row) + "\n" for row in rows).encode("utf-8")


def csv_bytes(header: Iterable[str], rows: Iterable[Iterable[str]]) -> bytes:
    """A CSV file: its header line, then its rows (`csv_lines`)."""
    return csv_lines((header, *rows))
