"""Read YFCC100M metadata dumps: tab-separated, 25 columns (or the original 23), plain, .gz or .bz2.

Text fields are URL-encoded with '+' for space. A malformed line becomes a `Rejection` whose
id is "file:line", so a broken dump never stops the job and never loses a row silently. Lines are
read with a length bound (`input_files.MAX_LINE_BYTES`): a longer one, such as a "line bomb" that a small .gz
inflates to gigabytes, is refused as that file:line without ever being held, and reading goes on.
Ids, dates, the marker and the URL parts go through the checks every source shares
(`records.canonical_photo_id`, `sources.fields`).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote_plus

import apache_beam as beam

from pipeline.flickr.licenses import canonical_license
from pipeline.io.files import NotAFile
from pipeline.options import INPUT_FORMATS
from pipeline.records import BadPhotoId, Photo, Rejection, canonical_photo_id
from pipeline.sources import STAGE, fields
from pipeline.sources.fields import BadField
from pipeline.sources.input_files import (
    BROKEN_FILE_ERRORS,
    SNIFFED_ROWS,
    VALUE_REASONS,
    file_label,
    read_numbered_lines,
    spread_files,
)
from pipeline.sources.row_bound import bounded_rows
from pipeline.stage import KEPT, REJECTED, StageOutput, apply_stage, reject

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
# Columns fetch.sized_url pastes into a static URL.
_URL_TOKENS = ("server_id", "farm_id", "secret", "secret_original", "extension")
# The YFCC columns a Photo keeps under the same name, as read (after _ENCODED's unquoting).
_SAME_NAMED = ("owner_nsid", "owner_name", "title", "description", "tags", "machine_tags", "date_taken",
               "date_uploaded", "capture_device", "page_url", "download_url", *_URL_TOKENS)


def _check(row: dict[str, str]) -> int:
    """Checks and normalises the row's dates and URL parts in place and returns its marker
    (`BadField` otherwise). YFCC stores the upload date as epoch seconds; the dataset carries ISO 8601 UTC."""
    for name in _URL_TOKENS:
        fields.url_token(row[name], name)
    for name in (*_SAME_NAMED, "license_name", "license_url"):  # the licence columns too: the Photo keeps them
        fields.no_nul(row[name], name)
    row["owner_nsid"] = fields.owner_id(row["owner_nsid"], "owner_nsid")
    fields.page_url(row["page_url"], "page_url")
    fields.bounded_url(row["download_url"], "download_url")  # as a table's or an API entry's
    row["date_taken"] = fields.taken_date(row["date_taken"], "date_taken")
    row["date_uploaded"] = fields.upload_date(row["date_uploaded"], "date_uploaded")
    return fields.marker(row["marker"])


def _unquoted(value: str, name: str) -> str:
    """A URL-encoded YFCC text decoded; BadField when its %-escapes spell bytes that are no UTF-8 ('%FF'), as a table's
    cell of bytes that are no UTF-8 is. unquote_plus put U+FFFD for them, and the photo was published crediting an
    owner name or a title with characters its owner never wrote."""
    try:
        return unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        raise BadField("bad_field", f"{name} holds %-escapes whose bytes are not UTF-8") from None


def parse_line(raw: bytes, ref: str) -> Photo | Rejection:
    """One dump line (without its newline) -> a `Photo`, or a `Rejection` saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return Rejection(ref, STAGE, "bad_encoding", f"invalid UTF-8 at byte {err.start}", "", ref)
    cells = text.split("\t")
    names: tuple[str, ...]
    if len(cells) == len(COLUMNS_25):
        names = COLUMNS_25
    elif len(cells) == len(COLUMNS_23):
        names = COLUMNS_23
    else:
        return Rejection(ref, STAGE, "wrong_column_count", f"{len(cells)} columns, expected 23 or 25", "", ref)
    row = dict(zip(names, (cell.strip() for cell in cells), strict=True))
    try:
        photo_id = canonical_photo_id(row["photo_id"])
    except BadPhotoId as err:  # the row has no usable id: it is named by its file:line
        return Rejection(ref, STAGE, err.reason, str(err), "", ref)
    try:
        marker = _check(row)
        for name in _ENCODED:
            row[name] = fields.no_nul(_unquoted(row[name], name), name)  # '%00' decodes to one
        fields.names_this_photo(photo_id, row["page_url"], row["download_url"], flickr_page=True)
    except BadField as err:
        return Rejection(photo_id, STAGE, err.reason, str(err), "", ref)
    license_name, license_url = canonical_license(row["license_name"], row["license_url"])
    return Photo(
        photo_id=photo_id,
        source="yfcc",
        source_ref=ref,
        license_name=license_name,
        license_url=license_url,
        license_source_text=row["license_name"],
        license_source_url=row["license_url"],
        marker=marker,
        # each a str field of Photo, which mypy cannot tell from a dict of names
        **{name: row[name] for name in _SAME_NAMED},  # type: ignore[arg-type]
    )


def sniff(path: str, lines: int = 5) -> str | None:
    """Why `path` does not look like a YFCC dump, judged on its first lines (None when at least one
    parses): a JPEG or an img2dataset `url,caption` CSV given as --input (`lines` lines refused for their form), or
    a dump whose first SNIFFED_ROWS lines give no photo, fails at launch instead of becoming a run that rejects every
    row."""
    first, refused, unusable = "", 0, 0
    try:
        for item in read_numbered_lines(path, checked=False):  # a few lines: cheap, even of a large dump
            found = item if isinstance(item, Rejection) else parse_line(item[1], item[0])
            if isinstance(found, Photo):
                return None
            first = first or f"{found.photo_id}: {found.reason} ({found.detail})"
            if found.reason in VALUE_REASONS:  # a line of 23 or 25 columns: reading on costs little
                unusable += 1
                if unusable >= SNIFFED_ROWS:
                    break
            else:
                refused += 1
                if refused >= lines:
                    break
    except NotAFile as err:  # our own words, which say what to give instead
        return f"cannot be read: {err}"[:300]
    except BROKEN_FILE_ERRORS as err:  # what it meant, as the file's rejection says it ("EOFError" alone said nothing)
        return f"cannot be read: {type(err).__name__}: {' '.join(str(err).split())}"[:300].rstrip(": ")
    if not first:
        return "is empty"
    if not refused:
        return f"gives no photo in its first {unusable:,} lines: {first[:200]}"
    # --input_format defaults to yfcc: a table of one's own given without it was refused with no word of the flag
    # every table format: the hint left out tsv_plain, the one a database export (no quoting) needs
    tables = "|".join(name for name in INPUT_FORMATS if name != "yfcc")
    return (f"does not look like YFCC100M metadata (tab-separated, 23 or 25 columns): {first[:200]}; a table "
            f"of your own takes --input_format={tables}")


class _ReadLines(beam.DoFn):
    """Streams a file's lines; a file that cannot be read becomes one rejection naming the first line that could
    not be read, after the lines that could: a damaged .gz or .bz2 (corrupt, truncated) is found by its check before
    its first line, so it gives no line and the rejection names line 1. `pattern`: the glob the file was listed
    by, which its refs name it below (`file_label`)."""

    def __init__(self, pattern: str) -> None:
        self._pattern = pattern

    def process(self, path: str) -> Iterator:
        name = file_label(path, self._pattern)
        last_ref = f"{name}:0"
        try:
            for item in bounded_rows(path, read_numbered_lines(path, name=name), STAGE, name=name):
                if isinstance(item, Rejection):
                    last_ref = item.source_ref
                    yield reject(item)
                else:
                    last_ref = item[0]
                    yield item
        except BROKEN_FILE_ERRORS as err:
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
        lines = spread_files(pbegin, self._pattern) | "Lines" >> beam.ParDo(_ReadLines(self._pattern)).with_outputs(
            REJECTED, main=KEPT)
        parsed = apply_stage(lines[KEPT] | "SpreadLines" >> beam.Reshuffle(), STAGE, _ParseLine())
        unreadable = lines[REJECTED]
        return StageOutput(parsed.kept, (parsed.rejected, unreadable) | "ReadRejections" >> beam.Flatten())
