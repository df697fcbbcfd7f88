"""Read generic metadata tables — CSV, TSV, Parquet or JSON lines — whose columns are mapped to ours.

Our fields are `id` and `url` (required), `owner`, `title`, `page_url` and `license` (a license
URL or name; a value with a '/' in it is read as a URL). `--columns=url=photo_url,id=photo_id,…`
names the user's column for each field; a field not named is read from the column of its own name.
Rows come out as the same `Photo` the YFCC source emits, so every later stage — the license filter
first, which keeps CC BY 2.0 and 4.0 only — treats them alike.

Text tables have a header row and one record per line (a quoted value may hold the delimiter, quotes
and line breaks, as Python's csv reader reads them: no line inside a quoted value is ever read as a row, and a record
over its bound or holding a line that reads alone as a row is refused whole: `_records`); they are read
line by line with the YFCC reader's length bound, plain, .gz or .bz2. Every data row ends as a `Photo` or as a
`Rejection` named by its id, else by its "file:line" (Parquet and JSON lines count rows from 1, text tables count
the header as line 1).
Values are typed by the format: a JSON or Parquet number may be an id, never a URL or a title.
"""

from __future__ import annotations

import csv
import json
import posixpath
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.flickr.licenses import canonical_license
from pipeline.io.files import refuse_other_than_a_file
from pipeline.io.parquet_footer import check_footer
from pipeline.records import BadPhotoId, Photo, Rejection, canonical_photo_id, is_utf8_text, value_kind
from pipeline.sources import fields
from pipeline.sources.parquet_pages import TooLarge, check_row_group
from pipeline.sources.row_bound import bounded_rows
from pipeline.sources.yfcc import (
    BROKEN_FILE_ERRORS,
    MAX_LINE_BYTES,
    SNIFFED_ROWS,
    VALUE_REASONS,
    read_numbered_lines,
    spread_files,
)
from pipeline.stage import KEPT, REJECTED, StageOutput, reject

STAGE = "read"

FORMATS = ("csv", "tsv", "tsv_plain", "parquet", "jsonl")
# Our fields, in the order a row is checked: the id first, so that later problems name the photo.
FIELDS = ("id", "url", "owner", "title", "page_url", "license")
# Without an id or a URL there is no photo; without a license no row could pass the license stage.
REQUIRED = ("id", "url", "license")
DESCRIBED = {"csv": "CSV with a header row", "tsv": "tab-separated values with a header row",
             "tsv_plain": "tab-separated values with a header row, no quoting",
             "parquet": "Parquet", "jsonl": "JSON lines (one object per line)"}
_DELIMITERS = {"csv": ",", "tsv": "\t", "tsv_plain": "\t"}
# Tab-separated text with no quoting (what database exports and `cut` write: PostgreSQL's and MySQL's text formats
# escape a tab or line break inside a value instead of quoting it): each line is one record and a quote is a
# character. Read with CSV quoting, a title opening with a quote (`"Sunset` at dusk) took every line after it into its
# value, one rejection for the rest of the file.
_UNQUOTED = frozenset({"tsv_plain"})
# URLs are bounded as every source bounds them (`fields.MAX_URL_CHARS`); other values by the line limit in text
# tables and by this in Parquet, whose cells have no such bound.
MAX_URL_CHARS = fields.MAX_URL_CHARS
MAX_VALUE_CHARS = MAX_LINE_BYTES
# No text of MAX_VALUE_CHARS characters takes more bytes in UTF-8: a Parquet cell over it is refused before Python
# holds it, and a page or a column chunk that could only hold cells over it, before it is decompressed.
_MAX_CELL_BYTES = 4 * MAX_VALUE_CHARS
# A batch holds at most this many cells of _MAX_CELL_BYTES per column (16 MiB), in Arrow and then in Python: 384 rows
# of three 256 KiB cells took 831 MiB read 1,024 rows a batch, 222 MiB 64 at a time (1,024 read ~10% faster).
_PARQUET_BATCH_ROWS = 64
# pyarrow holds a text column it reads as a dictionary (the file's Arrow schema says so: a pandas category) as the
# distinct values of its whole row group, not a batch's: such a column chunk is bounded as a whole.
_MAX_DICTIONARY_CHUNK = 64 * 1024 * 1024
_FILE_ERRORS = (*BROKEN_FILE_ERRORS, pa.ArrowException)  # gzip, bz2, pyarrow: all of a broken file


@dataclass(frozen=True)
class TableLayout:
    """How to read a table: its format, the user's column for each of our fields, and which of
    those the user named (a named column that is missing is a mistake worth refusing at launch)."""

    format: str
    columns: tuple[tuple[str, str], ...]  # (our field, their column) for every field
    named: tuple[str, ...] = ()

    def column(self, name: str) -> str:
        return dict(self.columns)[name]


def table_layout(input_format: str, columns: str = "") -> TableLayout:
    """--input_format and --columns -> a `TableLayout`, else ValueError saying what is wrong."""
    if input_format not in FORMATS:
        raise ValueError(f"--input_format {input_format!r} is not one of {', '.join(FORMATS)}")
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in columns.split(",")):
        if not item:
            continue
        ours, equals, theirs = (part.strip() for part in item.partition("="))
        if not equals or not ours or not theirs:
            raise ValueError(f"--columns: {item!r}: expected FIELD=COLUMN")
        if ours not in FIELDS:
            raise ValueError(f"--columns: unknown field {ours!r} (fields: {', '.join(FIELDS)})")
        if ours in mapping:
            raise ValueError(f"--columns: {ours!r} is mapped twice")
        mapping[ours] = theirs
    return TableLayout(input_format, tuple((name, mapping.get(name, name)) for name in FIELDS), tuple(mapping))


def _rejection(ref: str, reason: str, detail: str, photo_id: str = "") -> Rejection:
    return Rejection(photo_id or ref, STAGE, reason, detail, "", ref)


def _shown(name: str) -> str:
    return repr(name[:40])


def _text(value: object, column: str, limit: int = MAX_VALUE_CHARS) -> str:
    """A cell that must hold text: '' when absent; ValueError with the detail otherwise."""
    if value is None:
        return ""
    if isinstance(value, bytes):  # Parquet writers may store text as plain binary
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"column {_shown(column)} holds bytes that are not UTF-8") from None
    if not isinstance(value, str):
        raise ValueError(f"column {_shown(column)} holds a {value_kind(value)}, not text")
    if len(value) > limit:
        raise ValueError(f"column {_shown(column)} holds {len(value):,} characters, over the limit of {limit:,}")
    if "\x00" in value:  # never text; C libraries downstream would cut the value short at it
        raise ValueError(f"column {_shown(column)} holds a NUL character")
    if not is_utf8_text(value):  # a JSON "\ud800": no writer (nor the shuffle) can encode it
        raise ValueError(f"column {_shown(column)} holds a lone surrogate, which is no UTF-8 text")
    return value.strip()


def parse_row(values: Mapping[str, Any], ref: str, layout: TableLayout) -> Photo | Rejection:
    """One row, as {their column: value}, -> a `Photo`, or a `Rejection` saying what is wrong.
    Absent columns are absent values here: a missing header column is the caller's to report."""
    column = layout.column
    raw_id = values.get(column("id"))
    try:
        photo_id = canonical_photo_id("" if raw_id is None else raw_id.strip() if isinstance(raw_id, str) else raw_id)
    except BadPhotoId as err:
        return _rejection(ref, err.reason, f"column {_shown(column('id'))}: {err}")
    try:
        url = _text(values.get(column("url")), column("url"), MAX_URL_CHARS)
        text = {name: _text(values.get(column(name)), column(name)) for name in ("owner", "title", "page_url",
                                                                                 "license")}
        fields.page_url(text["page_url"], f"column {_shown(column('page_url'))}")
    except ValueError as err:  # BadField is one too
        return _rejection(ref, "bad_field", str(err), photo_id)
    if not url:
        return _rejection(ref, "missing_url", f"column {_shown(column('url'))} is empty", photo_id)
    license_value = text["license"]
    is_url = "/" in license_value
    source_name, source_url = ("", license_value) if is_url else (license_value, "")
    # One canonical name and https URL per license, as every source records it; the table's words kept beside them
    license_name, license_url = canonical_license(source_name, source_url)
    return Photo(
        photo_id=photo_id,
        source=layout.format,
        source_ref=ref,
        owner_name=text["owner"],
        title=text["title"],
        page_url=text["page_url"],
        download_url=url,
        license_name=license_name,
        license_url=license_url,
        license_source_text=source_name,
        license_source_url=source_url,
    )


def _parsed(values: Mapping[str, Any], ref: str, layout: TableLayout) -> Photo | Rejection:
    """`parse_row`, with any exception it was not written for as one `internal_error` for this row
    alone (as the stages' wrapper does for a record), so that the rest of the file is still read."""
    try:
        return parse_row(values, ref, layout)
    except Exception as err:  # the safety net: every known problem has its reason in parse_row
        return _rejection(ref, "internal_error", f"{type(err).__name__}: {err}"[:500])


def header_problem(names: Sequence[str], layout: TableLayout) -> tuple[str, str] | None:
    """(reason, detail) when a file's columns cannot give our required fields, or give any field twice
    (two 'owner' columns: which one is the creator to credit?), else None."""
    for name in REQUIRED:
        theirs = layout.column(name)
        if theirs not in names and name in layout.named:
            return "missing_column", f"no column {_shown(theirs)} (--columns {name}={theirs})"
        if theirs not in names:  # "(--columns license=license)" told a newcomer who gave no --columns nothing to do
            return "missing_column", (f"no column {_shown(theirs)}, which the required field {name} is read from "
                                      f"unless --columns names yours ({name}=YOUR_COLUMN)")
    for name in FIELDS:
        theirs = layout.column(name)
        if list(names).count(theirs) > 1:
            return "bad_header", f"column {_shown(theirs)} {list(names).count(theirs)} times in its header"
    return None


def _named_missing(names: Sequence[str], layout: TableLayout) -> str | None:
    """A column the user named in --columns that the file does not have (a typo, most likely)."""
    for name in layout.named:
        theirs = layout.column(name)
        if theirs not in names:
            return f"no column {_shown(theirs)} (--columns {name}={theirs})"
    return None


def _split(raw: bytes, ref: str, delimiter: str, quoted: bool = True) -> list[str] | Rejection:
    """One line of a text table -> its cells, or why it has none. `quoted`: read with CSV quoting (else a quote is a
    character: `_UNQUOTED`)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return _rejection(ref, "bad_encoding", f"invalid UTF-8 at byte {err.start}")
    if "\x00" in text:
        return _rejection(ref, "bad_field", "the line holds a NUL character")
    try:
        if not quoted:
            return next(csv.reader([text], delimiter=delimiter, quoting=csv.QUOTE_NONE))
        return next(csv.reader([text], delimiter=delimiter, strict=True))
    except (csv.Error, StopIteration) as err:
        return _rejection(ref, "malformed_row", f"{type(err).__name__}: {err}"[:300])


def _header(first: tuple[str, bytes] | Rejection, delimiter: str, quoted: bool = True) -> list[str] | tuple[str, str]:
    """The header line -> column names (a byte order mark dropped), or (reason, detail) for its rows."""
    if isinstance(first, Rejection):
        return "bad_header", f"the header (line 1) is unreadable: {first.reason} ({first.detail})"
    cells = _split(first[1].removeprefix(b"\xef\xbb\xbf"), first[0], delimiter, quoted)
    if isinstance(cells, Rejection):
        return "bad_header", f"the header (line 1) is unreadable: {cells.reason} ({cells.detail})"
    return [cell.strip() for cell in cells]


def _is_blank(raw: bytes) -> bool:
    return not raw.strip()


def _content_lines(items: Iterator[tuple[str, bytes] | Rejection]) -> Iterator[tuple[str, bytes] | Rejection]:
    """The lines that hold a row, each (ref, raw), and the reader's own rejections (an overlong
    line, …) as they come; blank lines are no rows and no rejections."""
    for item in items:
        if isinstance(item, Rejection) or not _is_blank(item[1]):
            yield item


# A record whose quoted value holds line breaks is held and read within this many lines (and MAX_LINE_BYTES in all);
# a longer one is read on to its end without being held, one rejection. A launch check (`sniff`) reads a few rows: it
# follows one value for LAUNCH_CHECK_BYTES at most, then says so.
MAX_RECORD_LINES = 1024
LAUNCH_CHECK_BYTES = 64 * 1024 * 1024


def _quote_left_open(raw: bytes, delimiter: str) -> bool:
    """Whether the line ends inside a quoted value (the rest of the value is on the next lines)."""
    if b'"' not in raw:  # most lines: no second parse
        return False
    try:
        next(csv.reader([raw.decode("utf-8", "replace")], delimiter=delimiter, strict=True), None)
    except csv.Error as err:
        return "unexpected end of data" in str(err)
    return False


def _closes(item: tuple[str, bytes] | Rejection, delimiter: str) -> bool | None:
    """For a line read inside a quoted value: whether it closes the value (True), leaves it open (False), or is no
    line that can continue one (None: a `Rejection`, an overlong line). It closes it exactly when the line read from an
    opening quote does."""
    if isinstance(item, Rejection):
        return None
    return b'"' in item[1] and not _quote_left_open(b'"' + item[1], delimiter)


def _joined(lines: Sequence[bytes]) -> bytes:
    """A record's lines as one text: each line break a "\\n", but for a lone CR ending a line, kept as it is."""
    parts, last = [lines[0]], lines[0][-1:]
    for line in lines[1:]:
        parts += (b"", line) if last == b"\r" else (b"\n", line)
        last = line[-1:] or (last if last == b"\r" else b"\n")
    return b"".join(parts)


def _a_row_alone(item: tuple[str, bytes] | Rejection, delimiter: str, width: int,
                 row_at: tuple[int, int] | None) -> bool:
    """Whether a line reads alone as a row a photo comes of: no quote left open, `width` cells, a photo id and an
    http(s) URL where the table's id and url are (`row_at`). A list of years or figures as wide as the header
    (`2019,2020,2021,2022`) has an id where the id is, and is no row: a description of several lines holding one was
    refused, its photo lost."""
    if row_at is None or isinstance(item, Rejection) or _quote_left_open(item[1], delimiter):
        return False
    cells = _split(item[1], item[0], delimiter)
    return not isinstance(cells, Rejection) and len(cells) == width and _names_a_photo(cells, row_at)


def _names_a_photo(cells: Sequence[str], row_at: tuple[int, int]) -> bool:
    """Whether a row's cells hold a photo id and an http(s) URL where the id and url are (`row_at`)."""
    if not _HTTP_URL.match(cells[row_at[1]].strip()):
        return False
    try:
        canonical_photo_id(cells[row_at[0]].strip())
    except BadPhotoId:
        return False
    return True


_HTTP_URL = re.compile(r"https?://\S", re.IGNORECASE)
_QUOTE_RUN = re.compile(rb'"+')


class _QuoteState:
    """Where Python's csv reader (strict, `"` quoting, quotes doubled inside a value) stands after the bytes fed to it,
    which it never holds: in a quoted value ("quoted"), just past a quote in one ("quote"), at a field's start
    ("start"), inside an unquoted field ("field"), or past an error ("error": the reader drops the rest of the line).
    Each quoted value and each run of quotes is one step, the bytes between them found by `bytes.find`."""

    def __init__(self, delimiter: str, quoted: bool) -> None:
        self._delimiter = delimiter.encode()
        self._opening = self._delimiter + b'"'
        self.state = "quoted" if quoted else "start"

    def feed(self, data: bytes) -> None:
        state, at, end = self.state, 0, len(data)
        while at < end and state != "error":
            if state == "quoted":
                found = data.find(b'"', at)
                if found == -1:
                    break
                at = _QUOTE_RUN.match(data, found).end()  # type: ignore[union-attr]
                state = "quoted" if (at - found) % 2 == 0 else "quote"  # "" is a quote inside the value
            elif state == "quote":  # a quote ended the last piece: this one's first byte says what it was
                byte = data[at:at + 1]
                state = "quoted" if byte == b'"' else "start" if byte == self._delimiter else "error"
                at += 1
            elif state == "start" and data[at:at + 1] == b'"':
                state, at = "quoted", at + 1
            else:  # an unquoted field: a quote opens a value only at a field's start, just after a delimiter
                found = data.find(self._opening, at)
                if found == -1:
                    state, at = ("start" if data.endswith(self._delimiter) else "field"), end
                else:
                    state, at = "quoted", found + 2
        self.state = state


class _Overlong:
    """What each line too long to be read (`read_numbered_lines`' `dropped`) does to a quoted value, followed through
    its bytes as they are dropped: whether it leaves a quote open read from a record's start, and whether it leaves
    one open that was open at its start. `take()` after each such line's `Rejection`."""

    def __init__(self, delimiter: str) -> None:
        self._delimiter = delimiter
        self._reset()

    def _reset(self) -> None:
        self._fresh, self._inside = _QuoteState(self._delimiter, False), _QuoteState(self._delimiter, True)

    def feed(self, piece: bytes) -> None:
        self._fresh.feed(piece)
        self._inside.feed(piece)

    def take(self) -> tuple[bool, bool]:
        """(opens a quoted value, leaves open the one it continues) for the line fed since the last `take`."""
        opens, stays = self._fresh.state == "quoted", self._inside.state == "quoted"
        self._reset()
        return opens, stays


def _line(ref: str) -> str:
    return ref.rpartition(":")[2]


def _records(items: Iterator[tuple[str, bytes] | Rejection], delimiter: str, width: int,
             row_at: tuple[int, int] | None = None, overlong: _Overlong | None = None,
             give_up: int | None = None) -> Iterator[tuple[str, bytes] | Rejection]:
    """The records of a text table, each (the ref of its first line, its text), blank lines left out, or a `Rejection`.
    A quoted value may hold line breaks, as spreadsheets and pandas write a description of several lines: a record
    runs from a line that leaves a quote open to the line that closes it, as Python's csv reader reads the whole text
    (`_quote_left_open`, `_closes`; a line too long to be read, through `overlong`). No line inside a quoted value is
    ever read as a row, whatever the value's length: a Flickr description is its photographer's text, and one written
    as a row (`7001,https://…/7001_x_z.jpg,CC BY 4.0`) would be a photo the file does not list.

    A record's lines are held while it is within MAX_RECORD_LINES lines and MAX_LINE_BYTES bytes; past that its lines
    are read on, not held, their quotes followed, and the record is one `malformed_row` naming its first line and how
    many it spans (`_record`). A quote that never closes takes every line to the end of the file, and says so. A
    record held whole is one row when it makes `width` cells and no line of its value reads alone as a row of the
    table (`_a_row_alone`: a title opening with a stray quote, `"Sunset`, and a later one ending with one, `at dusk"`,
    made one record of the rows between them); otherwise it is refused whole, once. Each line is read once.

    `give_up` (a launch check's, which reads a few rows): a record past that many bytes is refused there and the
    reading ends, as no row after it can be found without its end (a quote that never closes on line 2 of a 50 GB
    file read the whole file before the check could say so)."""
    overlong = overlong or _Overlong(delimiter)
    source = iter(items)
    for item in source:
        if isinstance(item, Rejection):
            if item.reason != "line_too_long" or not overlong.take()[0]:
                yield item
                continue
            held: list[tuple[str, bytes]] | None = None  # a line too long opens the value: never held
        elif _is_blank(item[1]):
            continue
        elif not _quote_left_open(item[1], delimiter):
            yield item
            continue
        else:
            held = [item]
        first = item.source_ref if isinstance(item, Rejection) else item[0]
        last, count, closed, size = "", 1, False, MAX_LINE_BYTES if held is None else len(held[0][1])
        for more in source:
            count += 1
            if isinstance(more, Rejection):
                last, held, size = more.source_ref, None, size + MAX_LINE_BYTES  # over it, at least
                closed = more.reason != "line_too_long" or not overlong.take()[1]
            else:
                last, closed, size = more[0], bool(_closes(more, delimiter)), size + 1 + len(more[1])
                if held is not None:
                    held.append(more)
                    if len(held) > MAX_RECORD_LINES or size > MAX_LINE_BYTES:
                        held = None  # read on to the value's end, holding nothing
            if closed:
                break
            if give_up is not None and size > give_up:
                yield _rejection(first, "malformed_row", f"a quoted value from line {_line(first)} runs on past line "
                                                         f"{_line(last)}, over {give_up:,} bytes: the launch check "
                                                         "reads no further")
                return
        yield _record(first, last, count, held, closed, delimiter, width, row_at)


def _record(first: str, last: str, count: int, held: list[tuple[str, bytes]] | None, closed: bool, delimiter: str,
            width: int, row_at: tuple[int, int] | None) -> tuple[str, bytes] | Rejection:
    """A record of `count` lines from `first` to `last` (refs): (first, its text) or its one `Rejection`."""
    span = f"lines {_line(first)} to {_line(last)}" if last else f"line {_line(first)}"
    if not closed:
        lines = (f"the {count:,} lines from it to the end of the file ({span}) are all inside its value" if count > 1
                 else "the file ends inside its value")
        return _rejection(first, "malformed_row", f"a quote opened on line {_line(first)} never closes: {lines}, "
                                                  "refused as one record")
    if held is None:
        return _rejection(first, "malformed_row", f"a quoted value spans {span} ({count:,} lines), over the bound of "
                                                  f"a record ({MAX_RECORD_LINES:,} lines, {MAX_LINE_BYTES:,} bytes): "
                                                  "refused as one record, no line of it read as a row")
    # A value of several lines closes on a line holding the rest of this very row: where the value is the record's
    # first column (pandas writing a title first, then id, url, licence), or its last line holds a delimiter for each
    # column before it (owner, then a title ending `Paris, France`), read alone it has the header's width and this
    # row's own id, which refused the photo. That closing line is a row of its own only where its own text, not this
    # row's remaining cells, makes one: another photo's id.
    joined = _joined([raw for _, raw in held])
    cells = _split(joined, first, delimiter)
    own = len(held) > 1 and (_rest_of_the_row(held[-1], delimiter, width)
                             or _names_this_row(held[-1], cells, delimiter, width, row_at, held[0]))
    row = next((line for line in (held[1:-1] if own else held[1:]) if _a_row_alone(line, delimiter, width, row_at)),
               None)
    if row is not None:
        return _swallowing(first, row, held[-1])
    if isinstance(cells, Rejection):
        return replace(cells, detail=f"{cells.detail} (a record of {span})")
    if len(cells) != width:
        return _rejection(first, "wrong_column_count", f"{len(cells)} columns, the header has {width} (a record of "
                                                       f"{span}: a quoted value holds their line breaks)")
    return first, joined


def _rest_of_the_row(closing: tuple[str, bytes], delimiter: str, width: int) -> bool:
    """Whether a value's closing line, read from the value's opening quote, makes `width` cells: the value is the
    record's first, and the line the rest of its row."""
    cells = _split(b'"' + closing[1], closing[0], delimiter)
    return not isinstance(cells, Rejection) and len(cells) == width


def _names_this_row(closing: tuple[str, bytes], record: list[str] | Rejection, delimiter: str, width: int,
                    row_at: tuple[int, int] | None, opening: tuple[str, bytes]) -> bool:
    """Whether a value's closing line, read alone, is the record's own row: the same id where the id is as the whole
    record (`width` cells) has; or, the value after the id (a description ending on a line `2019, Paris`), the same
    URL, where the record's first line is no row of its own read with its quotes as text (a stray quote's, `1,"Sunset,
    http://h/1.jpg,CC BY 4.0`, which the closing line's row `3,at dusk",http://h/3.jpg,…` lent its URL). Its URL may be
    the value's own text (url, then a description ending on a line `https://instagram.com/me, thanks`, then the id)."""
    if row_at is None or isinstance(record, Rejection) or len(record) != width:
        return False
    cells = _split(closing[1], closing[0], delimiter)
    if isinstance(cells, Rejection) or len(cells) != width:
        return False
    if cells[row_at[0]].strip() == record[row_at[0]].strip():
        return True
    return cells[row_at[1]].strip() == record[row_at[1]].strip() and not _a_row_as_text(opening, delimiter, width,
                                                                                        row_at)


def _a_row_as_text(line: tuple[str, bytes], delimiter: str, width: int, row_at: tuple[int, int]) -> bool:
    """Whether a line, its quotes read as text, is a row: `width` cells, a photo id and an http(s) URL where they
    are."""
    cells = _split(line[1], line[0], delimiter, quoted=False)
    return not isinstance(cells, Rejection) and len(cells) == width and _names_a_photo(cells, row_at)


def _swallowing(ref: str, row: tuple[str, bytes], last: tuple[str, bytes]) -> Rejection:
    """The rejection of a record whose quoted value holds `row`, a line that reads alone as a row of the table: a stray
    quote in one row and another in a later one (the rows between were one photo's title), or a value holding a row's
    text (a description written to be read as a row: never one). `last`: the record's last line."""
    return _rejection(ref, "malformed_row", f"a quoted value from line {_line(ref)} to line {_line(last[0])} holds "
                                            f"line {_line(row[0])}, which reads as a row of its own (a stray quote?): "
                                            "refused as one record")


def _text_table_rows(path: str, layout: TableLayout, checked: bool) -> Iterator[Photo | Rejection]:
    """Rows of a CSV or TSV file; a header that cannot give our fields rejects each data row."""
    delimiter, quoted = _DELIMITERS[layout.format], layout.format not in _UNQUOTED
    overlong = _Overlong(delimiter) if quoted else None  # a value spans lines only where quotes are read
    lines = read_numbered_lines(path, checked=checked, dropped=overlong.feed if overlong else None)
    first = next(lines, None)
    if first is None:
        return
    header = _header(first, delimiter, quoted)
    problem = header if isinstance(header, tuple) else header_problem(header, layout)
    # A header read but lacking a column still gives each record's extent (a value of several lines is one row's)
    # A value never takes a line that reads as a row: a photo id and an http(s) URL where the id and url columns are
    row_at = ((header.index(layout.column("id")), header.index(layout.column("url")))
              if isinstance(header, list) and not problem else None)
    records = (_content_lines(lines) if isinstance(header, tuple) or overlong is None
               else _records(lines, delimiter, len(header), row_at, overlong, None if checked else LAUNCH_CHECK_BYTES))
    for item in records:
        if isinstance(item, Rejection):
            yield item
            continue
        ref, raw = item
        if problem:
            yield _rejection(ref, *problem)
            continue
        cells = _split(raw, ref, delimiter, quoted)
        if isinstance(cells, Rejection):
            yield cells
        elif len(cells) != len(header):
            yield _rejection(ref, "wrong_column_count", f"{len(cells)} columns, the header has {len(header)}")
        else:
            yield _parsed(dict(zip(header, cells, strict=True)), ref, layout)


def _json_rows(path: str, layout: TableLayout, checked: bool) -> Iterator[Photo | Rejection]:
    # JSON lines end at a \n: a lone CR is whitespace inside a line's object (JSON strings hold none unescaped)
    for item in _content_lines(read_numbered_lines(path, checked=checked, lone_cr=False)):
        if isinstance(item, Rejection):
            yield item
            continue
        ref, raw = item
        try:
            value = json.loads(raw.decode("utf-8"), object_pairs_hook=_json_object)
        except UnicodeDecodeError as err:
            yield _rejection(ref, "bad_encoding", f"invalid UTF-8 at byte {err.start}")
            continue
        except (ValueError, RecursionError) as err:  # JSONDecodeError, a 5,000-digit number, deep nesting
            yield _rejection(ref, "malformed_row", f"not JSON: {type(err).__name__}: {err}"[:300])
            continue
        if not isinstance(value, dict):
            yield _rejection(ref, "malformed_row", f"a JSON {type(value).__name__}, not an object")
            continue
        ours = {layout.column(name) for name in FIELDS}
        twice = next((key for key in getattr(value, "repeated", ()) if key in ours), None)
        if twice is not None:  # json.loads keeps the last silently: which 'owner' is the creator to credit?
            yield _rejection(ref, "malformed_row", f"key {_shown(twice)} appears more than once in the object")
            continue
        yield _parsed(value, ref, layout)


class _Object(dict):
    """A JSON object, with the keys it gave more than once (`repeated`)."""

    repeated: tuple[str, ...] = ()


def _json_object(pairs: list[tuple[str, object]]) -> dict:
    value = _Object(pairs)
    if len(value) != len(pairs):  # counted only then; a Counter, as a hostile line may repeat a key 10,000 times
        value.repeated = tuple(sorted(key for key, n in Counter(key for key, _ in pairs).items() if n > 1))
    return value


def _open_parquet(handle: Any) -> pq.ParquetFile | None:
    """The Parquet file behind `handle`; None for a file of no bytes (a writer's `_SUCCESS` marker
    beside its parts holds no rows and is no error). `FooterTooLarge` for a footer pyarrow would parse at ~15 times
    its size (io/parquet_footer.py): a 61 MB file of 3,000 row groups of 203 columns (a 37 MB footer) took 541 MB to
    open."""
    if not handle.read(1):
        return None
    check_footer(handle)
    return pq.ParquetFile(handle)


# What converting a cell Python cannot hold raises: a date32 of 2**31 - 1 days, a timestamp past year 9999
# (OverflowError, ValueError), a timestamp in a time zone no database knows ("Mars/Olympus": a KeyError).
_UNREADABLE_CELL = (OverflowError, ValueError, KeyError, pa.ArrowException)


class _Refused:
    """A cell left in Arrow, unconverted: why its row is rejected."""

    def __init__(self, detail: str) -> None:
        self.detail = detail[:500]


def _lengths(values: pa.Array) -> pa.Array | None:
    """Each value's length in bytes, for text and binary values (None for others, whose cells are small)."""
    kind = values.type
    if pa.types.is_string_view(kind) or pa.types.is_binary_view(kind):
        values = values.cast(pa.large_binary())
    elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
              or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind)):
        return None
    return pc.binary_length(values)


def _within_bounds(column: pa.Array) -> tuple[pa.Array, dict[int, int]]:
    """The column without a dictionary, its cells over _MAX_CELL_BYTES null, and those cells' lengths by row.
    A dictionary's entries are measured where they are, never decoded for a row that names one too long."""
    values, indices = (column.dictionary, column.indices) if pa.types.is_dictionary(column.type) else (column, None)
    lengths = None if values.nbytes <= _MAX_CELL_BYTES else _lengths(values)  # no cell can be over: most batches
    if lengths is None or (pc.max(lengths).as_py() or 0) <= _MAX_CELL_BYTES:
        return (values if indices is None else values.take(indices)), {}
    if indices is not None:
        lengths = lengths.take(indices)
    over = pc.fill_null(pc.greater(lengths, _MAX_CELL_BYTES), False)
    long = {row: lengths[row].as_py() for row in pc.indices_nonzero(over).to_pylist()}
    if indices is not None:
        return values.take(pc.if_else(over, pa.scalar(None, indices.type), indices)), long
    return pc.if_else(over, pa.scalar(None, column.type), column), long


def _cells(column: pa.Array, name: str) -> list:
    """A column's cells as Python values; a cell over _MAX_CELL_BYTES or that Python cannot hold
    (`_UNREADABLE_CELL`) is a `_Refused`, and its neighbours are still read."""
    column, long = _within_bounds(column)
    try:
        cells = column.to_pylist()
    except _UNREADABLE_CELL:  # the whole column's conversion fails on one cell: each is converted alone
        cells = [_cell(column, row, name) for row in range(len(column))]
    for row, length in long.items():
        cells[row] = _Refused(f"column {_shown(name)} holds {length:,} bytes, over the limit of "
                              f"{MAX_VALUE_CHARS:,} characters")
    return cells


def _cell(column: pa.Array, row: int, name: str) -> object:
    try:
        return column.slice(row, 1).to_pylist()[0]
    except _UNREADABLE_CELL as err:
        return _Refused(f"column {_shown(name)} ({column.type}) holds a value that cannot be read: "
                        f"{type(err).__name__}: {err}")


def _batch_rows(batch: pa.RecordBatch) -> Iterator[dict[str, Any] | str]:
    """A batch's rows as dicts; a row with a cell refused (`_cells`) is, alone, a string saying which column and
    why (the first such column)."""
    names = batch.schema.names
    columns = [_cells(column, name) for column, name in zip(batch.columns, names, strict=True)]
    for row in zip(*columns, strict=True):
        refused = next((cell for cell in row if isinstance(cell, _Refused)), None)
        yield refused.detail if refused is not None else dict(zip(names, row, strict=True))


def _leaves(table: pq.ParquetFile) -> dict[str, list[int]]:
    """Each top-level column's leaf columns (the Parquet column chunks that hold it), by number."""
    leaves: dict[str, list[int]] = {}
    for number, path in enumerate(table.reader.column_paths):
        leaves.setdefault(path[0], []).append(number)
    return leaves


def _nested_problem(table: pq.ParquetFile, wanted: Sequence[str]) -> tuple[str, str] | None:
    """(reason, detail) for the rows of a file where one of our columns holds lists, structs or maps. Never text
    nor an id, they are not read: a list's row can span any number of pages, so no page bound bounds a batch."""
    leaves = _leaves(table)
    for name in wanted:
        kind = table.schema_arrow.field(name).type
        if pa.types.is_nested(kind) or len(leaves.get(name, ())) != 1:
            return "bad_field", f"column {_shown(name)} holds {str(kind)[:60]} values, never text or an id"
    return None


def _text_columns(table: pq.ParquetFile, wanted: Sequence[str]) -> list[str]:
    """Our columns Parquet stores as BYTE_ARRAY (text, binary): the ones whose values have no fixed size."""
    leaves = _leaves(table)
    return [name for name in wanted if table.schema.column(leaves[name][0]).physical_type == "BYTE_ARRAY"]


def _longest_entry(handle: Any, table: pq.ParquetFile, group: int, names: Sequence[str], bound: int) -> int:
    """The longest value, in bytes, in the dictionary pages of these columns in this row group (at most `bound`,
    their largest page). Read as dictionaries for one row, which pyarrow gives with its whole dictionary page."""
    probe = pq.ParquetFile(handle, metadata=table.metadata, read_dictionary=list(names))
    batch = next(probe.iter_batches(batch_size=1, row_groups=[group], columns=list(names)), None)
    longest = 0
    for column in batch.columns if batch is not None else ():
        if not pa.types.is_dictionary(column.type):
            return bound  # never so in pyarrow: then the page's size is all there is to go by
        lengths = _lengths(column.dictionary)
        longest = max(longest, 0 if lengths is None else pc.max(lengths).as_py() or 0)
    return longest


def _is_dictionary(table: pq.ParquetFile, name: str) -> bool:
    return pa.types.is_dictionary(table.schema_arrow.field(name).type)


def _batch_rows_for(handle: Any, table: pq.ParquetFile, group: int, wanted: Sequence[str]) -> int:
    """How many rows a batch of this row group may hold; `TooLarge` when it cannot be read in bounded memory.

    Its pages are checked first (`parquet_pages.check_row_group`). A dictionary page is decoded into a batch once
    for each row that names an entry: one 32 MiB title named by 64 rows would take 2 GiB, so where a dictionary
    page could hold a value over _MAX_CELL_BYTES, its longest value sets the batch (one row, at worst)."""
    leaves = _leaves(table)
    chunks = check_row_group(handle, table.metadata, group, [leaves[name][0] for name in wanted], _MAX_CELL_BYTES)
    pages = dict(zip(wanted, chunks, strict=True))
    text = _text_columns(table, wanted)
    for name in text:
        if _is_dictionary(table, name) and pages[name].total > _MAX_DICTIONARY_CHUNK:
            raise TooLarge(f"row group {group + 1}, column {_shown(name)}: {pages[name].total:,} bytes once "
                           "decompressed, read as a dictionary (as the file's Arrow schema says) and so held at "
                           f"once: over {_MAX_DICTIONARY_CHUNK:,}")
    probed = [name for name in text if not _is_dictionary(table, name) and pages[name].dictionary > _MAX_CELL_BYTES]
    if not probed:
        return _PARQUET_BATCH_ROWS
    longest = _longest_entry(handle, table, group, probed, max(pages[name].dictionary for name in probed))
    return max(1, min(_PARQUET_BATCH_ROWS, _PARQUET_BATCH_ROWS * _MAX_CELL_BYTES // max(longest, 1)))


def _parquet_batches(handle: Any, table: pq.ParquetFile, wanted: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The file's rows in our columns, a row group at a time, each checked before it is read and in batches of
    at most `_batch_rows_for` rows: no page is decompressed that could hold more than its values may, and no
    batch holds more than _PARQUET_BATCH_ROWS values of _MAX_CELL_BYTES per column."""
    for group in range(table.num_row_groups):
        rows = _batch_rows_for(handle, table, group, wanted)
        yield from table.iter_batches(batch_size=rows, row_groups=[group], columns=list(wanted))


def _parquet_rows(path: str, layout: TableLayout, checked: bool) -> Iterator[Photo | Rejection]:
    """Rows of a Parquet file, read a batch at a time and only in the mapped columns. A file whose columns cannot
    give our fields rejects each of its rows, counted from its row groups' counts in the footer and never read (the
    file's own count, which a writer states apart from them, made rows vanish where it understated them)."""
    name = posixpath.basename(path.rstrip("/"))
    number = 0
    refuse_other_than_a_file(path)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        try:
            table = _open_parquet(handle)
            if table is None:
                return
            names = table.schema_arrow.names
            wanted = list(dict.fromkeys(c for _, c in layout.columns if c in names))
            problem = header_problem(names, layout) or _nested_problem(table, wanted)
            if problem:  # each row group's rows, as they would be read: the file's own count may understate them
                rows = sum(table.metadata.row_group(group).num_rows for group in range(table.num_row_groups))
                for number in range(1, rows + 1):
                    yield _rejection(f"{name}:{number}", *problem)
                return
            for batch in _parquet_batches(handle, table, wanted):
                for values in _batch_rows(batch):
                    number += 1
                    ref = f"{name}:{number}"
                    if isinstance(values, str):
                        yield _rejection(ref, "bad_field", values)
                    else:
                        yield _parsed(values, ref, layout)
        except _FILE_ERRORS as err:
            ref = f"{name}:{number + 1}"
            yield _rejection(ref, "unreadable_file", f"{type(err).__name__}: {err}"[:500])


_READERS = {"csv": _text_table_rows, "tsv": _text_table_rows, "tsv_plain": _text_table_rows, "jsonl": _json_rows,
            "parquet": _parquet_rows}


def read_rows(path: str, layout: TableLayout, checked: bool = True) -> Iterator[Photo | Rejection]:
    """Every row of one file as a `Photo` or a `Rejection`. A file that cannot be read ends with one rejection
    naming the first line that could not be read; a compressed text file is checked whole first
    (`yfcc.check_compressed`), so a damaged one (corrupt gzip, truncated bzip2) is that rejection for line 1 and
    gives no row, and then read as checked (one changed since is refused where it differs). `checked=False` skips
    both, for a launch check reading a few rows (which follows a quoted value for LAUNCH_CHECK_BYTES at most, then
    ends there); Parquet is never read through gzip or bzip2."""
    name = posixpath.basename(path.rstrip("/"))
    last = 0
    try:
        for item in _READERS[layout.format](path, layout, checked):
            last = int(item.source_ref.rpartition(":")[2])
            yield item
    except _FILE_ERRORS as err:
        ref = f"{name}:{last + 1}"
        yield _rejection(ref, "unreadable_file", f"{type(err).__name__}: {err}"[:500])


def _columns_of(path: str, layout: TableLayout) -> list[str] | None:
    """The file's column names (None for JSON lines, which have none); ValueError when unreadable."""
    if layout.format == "parquet":
        refuse_other_than_a_file(path)
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            table = _open_parquet(handle)
            return table.schema_arrow.names if table is not None else []
    if layout.format == "jsonl":
        return None
    first = next(read_numbered_lines(path, checked=False), None)
    if first is None:
        return []
    header = _header(first, _DELIMITERS[layout.format], layout.format not in _UNQUOTED)
    if isinstance(header, tuple):
        raise ValueError(header[1])
    return header


def sniff(path: str, layout: TableLayout, rows: int = 5) -> str | None:
    """Why `path` cannot be read as `layout` says, judged on its header and first rows (None when
    at least one row parses, or it has a header and no rows): a file in another format (`rows` rows refused for their
    form), or without a column --columns names, or whose first SNIFFED_ROWS rows give no photo, fails at launch
    instead of becoming a run that rejects every row."""
    described = DESCRIBED[layout.format]
    try:
        names = _columns_of(path, layout)
        if names == []:
            return "is empty"
        if names is not None:
            missing = header_problem(names, layout)
            if missing:
                shown = ", ".join(_shown(name) for name in names[:8]) + (", …" if len(names) > 8 else "")
                return f"has {missing[1]}; its columns: {shown} (is it {described}?)"
            typo = _named_missing(names, layout)
            if typo:
                return f"has {typo}"
        first, refused, unusable = "", 0, 0
        for item in read_rows(path, layout, checked=False):  # a few rows: cheap, even of a large file
            if isinstance(item, Photo):
                return None
            first = first or f"{item.source_ref}: {item.reason} ({item.detail})"
            if item.reason in VALUE_REASONS:  # a row read in the right format: reading on costs little
                unusable += 1
                if unusable >= SNIFFED_ROWS:
                    break
            else:
                refused += 1
                if refused >= rows:
                    break
    except _FILE_ERRORS as err:
        if layout.format == "parquet":
            return f"cannot be read as Parquet: {type(err).__name__}: {err}"[:300]
        return f"does not look like {described}: {err}"[:300]
    if not first:
        return None if names is not None else "is empty"
    if not refused:
        return f"gives no photo in its first {unusable:,} rows: {first}"[:500]
    return f"does not look like {described}: {first}"[:500]


class _ReadRows(beam.DoFn):
    """A file's rows: photos on the main output, rejections on `rejected`."""

    def __init__(self, layout: TableLayout) -> None:
        self._layout = layout

    def process(self, path: str) -> Iterator:
        for item in bounded_rows(path, read_rows(path, self._layout), STAGE):
            yield reject(item) if isinstance(item, Rejection) else item


class ReadTable(beam.PTransform):
    """PBegin -> (PCollection[Photo], PCollection[Rejection]).

    Reads every file matching `pattern` (local path, glob, or any Beam filesystem) in the format
    and with the column mapping of `layout`; rows are reshuffled so that one big file still fans
    out to every worker.
    """

    def __init__(self, pattern: str, layout: TableLayout) -> None:
        super().__init__()
        self._pattern = pattern
        self._layout = layout

    def expand(self, pbegin: beam.pvalue.PBegin) -> StageOutput:
        rows = spread_files(pbegin, self._pattern) | "Rows" >> beam.ParDo(_ReadRows(self._layout)).with_outputs(
            REJECTED, main=KEPT)
        return StageOutput(rows[KEPT] | "SpreadRows" >> beam.Reshuffle(), rows[REJECTED])
