"""ATTRIBUTION.csv: creator, title, page and license of every kept image, as CC BY asks of
redistributors, in photo id order, written without any worker holding every row.

The rows are cut into parts that are *ranges* of the file's order, so the file is the parts one
after another: no merge, and one part open at a time. The ranges come from the data, deterministically:
ids are counted per block (their number of digits and first `BLOCK_DIGITS` digits: ranges of 10^7
consecutive ids for Flickr's 11-digit ids, and never more than ~180,000 blocks whatever ids a table
holds; ids that are not numbers form one block, first, as they sort first), and consecutive blocks
are packed into parts of at most `ATTRIBUTION_ROWS_PER_PART` rows and `ATTRIBUTION_BYTES_PER_PART` bytes of text
(a block is never split, so a part exceeds either only when one block holds that much). Each part is sorted by one
worker and written as CSV lines under the staging folder's `_parts/` (never published, removed with the
staging folder); the last step copies them, in order, after the header.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any, BinaryIO

import apache_beam as beam
from apache_beam.io.filesystems import CompressionTypes, FileSystems

from pipeline.io.files import write_atomically
from pipeline.io.flickr_pages import account_link, credited_owner
from pipeline.io.layout import ATTRIBUTION, STAGED_PARTS
from pipeline.io.names import creator_name
from pipeline.io.published_text import published_text
from pipeline.io.sinks import csv_bytes, csv_lines
from pipeline.records import Photo, ascii_number

ATTRIBUTION_COLUMNS = ("photo_id", "creator", "creator_url", "title", "page_url", "license_name", "license_url")
ATTRIBUTION_ROWS_PER_PART = 100_000  # ~1.2 KB a row: what one worker sorts at once, ~120 MB
# A source's title and owner name may each be 64 Ki characters: cut by rows alone, a part of such rows was gigabytes,
# sorted and encoded whole by one worker.
ATTRIBUTION_BYTES_PER_PART = 128 << 20
BLOCK_DIGITS = 4  # leading digits that name a block (with the digit count)
_COPY_CHUNK = 1 << 20


def credit(owner_name: str, owner_nsid: str, title: str, page_url: str, license_name: str,
           license_url: str) -> tuple[str, ...]:
    """An attribution row but its photo id, from a photo's fields (also `verify`'s, from a shard's record), each cell
    as the Markdown and HTML show it too (`published_text`: no bidi formatting, no tag characters but a flag's, at
    most a few combining marks on a character)."""
    owner = credited_owner(owner_nsid, page_url, owner_name)
    return tuple(published_text(text) for text in (creator_name(owner_name, owner), account_link(owner), title,
                                                    page_url, license_name, license_url))


def attribution_row(photo: Photo) -> tuple[str, ...]:
    return (photo.photo_id, *credit(photo.owner_name, photo.owner_nsid, photo.title, photo.page_url,
                                    photo.license_name, photo.license_url))


def attribution_order(row: tuple[str, ...]) -> tuple[int, str]:
    number = ascii_number(row[0])  # not str.isdigit(): '²' ended the write with a ValueError
    return (-1 if number is None else number, row[0])


def attribution_csv(rows: Iterable[tuple[str, ...]]) -> bytes:
    """The whole file at once, from rows in any order (what the parts add up to)."""
    ordered = sorted(rows, key=attribution_order)  # sorted alone: within the call, mypy reads its rows as csv_bytes's
    return csv_bytes(ATTRIBUTION_COLUMNS, ordered)


def id_block(row: tuple[str, ...]) -> tuple[int, str]:
    """The row's block, monotone in `attribution_order` (numbers without leading zeros compare as
    their digit count, then their digits), so blocks in order are rows in order."""
    if ascii_number(row[0]) is None:
        return (-1, "")
    digits = str(int(row[0]))
    return (len(digits), digits[:BLOCK_DIGITS])


def row_bytes(row: tuple[str, ...]) -> int:
    """About a row's bytes in its part (its cells in UTF-8 and their commas; quoting aside)."""
    return sum(len(cell.encode("utf-8")) for cell in row) + len(row)


def _add_sizes(sizes: Iterable[tuple[int, int]]) -> tuple[int, int]:
    rows, size = 0, 0
    for count, nbytes in sizes:
        rows, size = rows + count, size + nbytes
    return rows, size


def plan_parts(block_sizes: Iterable[tuple[tuple[int, str], tuple[int, int]]], rows_per_part: int,
               bytes_per_part: int) -> dict[tuple[int, str], int]:
    """{block: part}: consecutive blocks, each given as (block, (rows, bytes)), packed into parts of at most
    `rows_per_part` rows and `bytes_per_part` bytes (a block larger than either is a part of its own)."""
    plan: dict[tuple[int, str], int] = {}
    part, filled, size = 0, 0, 0
    for block, (count, nbytes) in sorted(block_sizes):
        if filled and (filled + count > rows_per_part or size + nbytes > bytes_per_part):
            part, filled, size = part + 1, 0, 0
        plan[block] = part
        filled, size = filled + count, size + nbytes
    return plan


def part_name(part: int) -> str:
    return posixpath.join("attribution", f"attribution-{part:06d}.csv")


class _WritePart(beam.DoFn):
    def __init__(self, folder: str) -> None:
        self._folder = folder

    def process(self, keyed: tuple[int, Iterable[tuple[str, ...]]]) -> Iterable[dict[str, Any]]:
        part, rows = keyed
        ordered = sorted(rows, key=attribution_order)
        payload = csv_lines(ordered)
        write_atomically(FileSystems.join(self._folder, part_name(part)), lambda handle: handle.write(payload))
        yield {"part": part, "records": len(ordered)}


def _concatenate(output: str, folder: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The header, then each part's bytes in order, copied a chunk at a time."""
    paths = [FileSystems.join(folder, part_name(entry["part"])) for entry in sorted(parts, key=lambda e: e["part"])]

    def write(handle: BinaryIO) -> None:
        handle.write(csv_lines([ATTRIBUTION_COLUMNS]))
        for path in paths:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as part:
                while chunk := part.read(_COPY_CHUNK):
                    handle.write(chunk)

    # The parts stay: a retried step reads them again, and publish leaves _parts/ with the staging folder.
    entry = write_atomically(FileSystems.join(output, ATTRIBUTION), write)
    return {"path": ATTRIBUTION, "format": "attribution", "records": sum(e["records"] for e in parts), **entry}


class WriteAttribution(beam.PTransform):
    """PCollection[Photo] -> PCollection[dict]: the single manifest entry of ATTRIBUTION.csv (module doc)."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._output = output

    def expand(self, photos: beam.PCollection) -> beam.PCollection:
        output, folder = self._output, FileSystems.join(self._output, STAGED_PARTS)
        per_part, bytes_per_part = ATTRIBUTION_ROWS_PER_PART, ATTRIBUTION_BYTES_PER_PART
        rows = photos | "Row" >> beam.Map(attribution_row)
        plan = (
            rows
            | "Block" >> beam.Map(lambda row: (id_block(row), (1, row_bytes(row))))
            | "PerBlock" >> beam.CombinePerKey(_add_sizes)
            | "Blocks" >> beam.combiners.ToList()  # one (block, (rows, bytes)) per block: 180,000 at most
            | "Plan" >> beam.Map(plan_parts, per_part, bytes_per_part)
        )
        return (
            rows
            | "ToPart" >> beam.Map(lambda row, parts: (parts[id_block(row)], row), parts=beam.pvalue.AsSingleton(plan))
            | "GroupParts" >> beam.GroupByKey()
            | "WritePart" >> beam.ParDo(_WritePart(folder))
            | "Parts" >> beam.combiners.ToList()  # one small entry per part
            | "Concatenate" >> beam.Map(lambda parts: _concatenate(output, folder, parts))
        )
