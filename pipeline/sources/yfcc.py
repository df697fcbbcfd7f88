"""Read YFCC100M metadata dumps: tab-separated, 25 columns (or the original 23), plain, .gz or .bz2.

Text fields are URL-encoded with '+' for space. A malformed line becomes a `Rejection` whose
id is "file:line", so a broken dump never stops the job and never loses a row silently.
"""

from __future__ import annotations

import bz2
import datetime as dt
import gzip
import posixpath
import re
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import unquote_plus

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.records import Photo, Rejection
from pipeline.stage import KEPT, REJECTED, StageOutput, apply_stage, reject

STAGE = "read"

# The 25-column layout of the public dump; the original 23-column one lacks line number and hash.
COLUMNS_25 = (
    "line_number", "photo_id", "photo_hash", "owner_nsid", "owner_name", "date_taken", "date_uploaded",
    "capture_device", "title", "description", "tags", "machine_tags", "longitude", "latitude", "accuracy",
    "page_url", "download_url", "license_name", "license_url", "server_id", "farm_id", "secret",
    "secret_original", "extension", "marker",
)
COLUMNS_23 = (COLUMNS_25[1], *COLUMNS_25[3:])  # no line number, no photo hash
# Fields YFCC stores URL-encoded ('+' for space, %XX for the rest).
_ENCODED = ("owner_name", "title", "description", "tags", "machine_tags", "capture_device")
_PHOTO_ID = re.compile(r"^[0-9]{1,20}$")


def _iso_upload_date(value: str) -> str:
    """YFCC stores the upload date as epoch seconds; the dataset carries ISO 8601 UTC."""
    if value.isdigit():
        return dt.datetime.fromtimestamp(int(value), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _taken_date(value: str) -> str:
    # "2012-07-11 17:11:05.0" -> "2012-07-11 17:11:05": the ".0" is a database artefact.
    return value[:-2] if value.endswith(".0") else value


def parse_line(raw: bytes, ref: str) -> Photo | Rejection:
    """One dump line (without its newline) -> a `Photo`, or a `Rejection` saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(ref, STAGE, "bad_encoding", f"invalid UTF-8 at byte {err.start}", "", ref)
    cells = text.split("\t")
    if len(cells) == len(COLUMNS_25):
        names = COLUMNS_25
    elif len(cells) == len(COLUMNS_23):
        names = COLUMNS_23
    else:
        return Rejection(ref, STAGE, "wrong_column_count", f"{len(cells)} columns, expected 23 or 25", "", ref)
    row = dict(zip(names, (cell.strip() for cell in cells), strict=True))
    photo_id = row["photo_id"]
    if not photo_id:
        return Rejection(ref, STAGE, "missing_id", "empty photo id column", "", ref)
    if not _PHOTO_ID.match(photo_id):
        return Rejection(ref, STAGE, "bad_id", f"photo id {photo_id[:40]!r} is not a number", "", ref)
    marker = row["marker"] or "0"
    if not marker.isdigit():
        return Rejection(photo_id, STAGE, "bad_field", f"marker {marker[:20]!r} is not 0 or 1", "", ref)
    for name in _ENCODED:
        row[name] = unquote_plus(row[name])
    return Photo(
        photo_id=photo_id,
        source="yfcc",
        source_ref=ref,
        owner_nsid=row["owner_nsid"],
        owner_name=row["owner_name"],
        title=row["title"],
        description=row["description"],
        tags=row["tags"],
        machine_tags=row["machine_tags"],
        date_taken=_taken_date(row["date_taken"]),
        date_uploaded=_iso_upload_date(row["date_uploaded"]),
        capture_device=row["capture_device"],
        page_url=row["page_url"],
        download_url=row["download_url"],
        license_name=row["license_name"],
        license_url=row["license_url"],
        server_id=row["server_id"],
        farm_id=row["farm_id"],
        secret=row["secret"],
        secret_original=row["secret_original"],
        extension=row["extension"],
        marker=int(marker),
    )


def _open_decompressed(path: str) -> BinaryIO:
    """Python's own gzip and bz2 readers, not Beam's: they raise EOFError on a truncated file,
    where Beam's decompressor silently returns the partial data."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if path.endswith(".bz2"):
        return bz2.BZ2File(raw, mode="rb")
    return raw


def read_numbered_lines(path: str) -> Iterator[tuple[str, bytes]]:
    """(file:line, raw bytes) for every line of a possibly compressed file; lines count from 1."""
    name = posixpath.basename(path.rstrip("/"))
    with _open_decompressed(path) as handle:
        number = 0
        while True:
            line = handle.readline()
            if not line:
                return
            number += 1
            yield f"{name}:{number}", line.rstrip(b"\n").rstrip(b"\r")


class _ReadLines(beam.DoFn):
    """Streams a file's lines; a file that breaks midway (corrupt gzip, truncated bzip2) becomes
    one rejection naming the first line that could not be read, after the lines that could."""

    def process(self, path: str) -> Iterator:
        last_ref = f"{posixpath.basename(path.rstrip('/'))}:0"
        try:
            for ref, raw in read_numbered_lines(path):
                last_ref = ref
                yield ref, raw
        except (OSError, EOFError, ValueError) as err:  # zlib.error and bz2 errors are OSError/ValueError
            name, _, number = last_ref.rpartition(":")
            ref = f"{name}:{int(number) + 1}"
            yield reject(Rejection(ref, STAGE, "unreadable_file", f"{type(err).__name__}: {err}"[:500], "", ref))


class _ParseLine(beam.DoFn):
    def process(self, numbered: tuple[str, bytes]) -> Iterator:
        ref, raw = numbered
        parsed = parse_line(raw, ref)
        yield reject(parsed) if isinstance(parsed, Rejection) else parsed


class ReadYfcc(beam.PTransform):
    """PBegin -> (PCollection[Photo], PCollection[Rejection]).

    Reads every file matching `pattern` (local path, glob, or any Beam filesystem) and parses
    each line; lines are reshuffled so that one big dump still fans out to every worker.
    """

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self._pattern = pattern

    def expand(self, pbegin: beam.pvalue.PBegin) -> StageOutput:
        lines = (
            pbegin
            | "Match" >> fileio.MatchFiles(self._pattern)
            | "Paths" >> beam.Map(lambda metadata: metadata.path)
            | "SpreadFiles" >> beam.Reshuffle()
            | "Lines" >> beam.ParDo(_ReadLines()).with_outputs(REJECTED, main=KEPT)
        )
        parsed = apply_stage(lines[KEPT] | "SpreadLines" >> beam.Reshuffle(), STAGE, _ParseLine())
        unreadable = lines[REJECTED]
        return StageOutput(parsed.kept, (parsed.rejected, unreadable) | "ReadRejections" >> beam.Flatten())
