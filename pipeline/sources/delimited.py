"""Rows of a CSV or TSV table with a header row: the records its lines make, each to one `Photo` or `Rejection`.

A quoted value may hold the delimiter, quotes and line breaks, as Python's csv reader reads them: no line inside a
quoted value is ever read as a row, and a record over its bound or holding a line that reads alone as a row is refused
whole (`_records`); a quote the file ends inside is its line's rejection alone, the lines after it read as rows.
Lines are read with the YFCC reader's length bound, plain, .gz or .bz2; the header is line 1, and
a rejection names its record's first line. `tsv_plain` reads each line as a record and a quote as a character.
"""

from __future__ import annotations

import csv
import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from pipeline.io.files import refuse_other_than_a_file
from pipeline.records import BadPhotoId, Photo, Rejection, canonical_photo_id
from pipeline.sources import input_files
from pipeline.sources.input_files import MAX_LINE_BYTES, read_numbered_lines
from pipeline.sources.table_row import FIELDS, TableLayout, header_problem, parsed, rejection

_DELIMITERS = {"csv": ",", "tsv": "\t", "tsv_plain": "\t"}
# Tab-separated text with no quoting (what database exports and `cut` write: PostgreSQL's and MySQL's text formats
# escape a tab or line break inside a value instead of quoting it): each line is one record and a quote is a
# character. Read with CSV quoting, a title opening with a quote (`"Sunset` at dusk) took every line after it into its
# value, one rejection for the rest of the file.
_UNQUOTED = frozenset({"tsv_plain"})


def _split(raw: bytes, ref: str, delimiter: str, quoted: bool = True) -> list[str] | Rejection:
    """One line of a text table -> its cells, or why it has none. `quoted`: read with CSV quoting (else a quote is a
    character: `_UNQUOTED`)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return rejection(ref, "bad_encoding", f"invalid UTF-8 at byte {err.start}")
    if "\x00" in text:
        return rejection(ref, "bad_field", "the line holds a NUL character")
    try:
        if not quoted:
            return next(csv.reader([text], delimiter=delimiter, quoting=csv.QUOTE_NONE))
        return next(csv.reader([text], delimiter=delimiter, strict=True))
    except (csv.Error, StopIteration) as err:
        return rejection(ref, "malformed_row", f"{type(err).__name__}: {err}"[:300])


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


def content_lines(items: Iterator[tuple[str, bytes] | Rejection]) -> Iterator[tuple[str, bytes] | Rejection]:
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


Reopen = Callable[[int], tuple[Iterator[tuple[str, bytes] | Rejection], _Overlong]]


@dataclass
class _Shape:
    """The header in force where `_records` reads a record: its column count (`width`) and where the id and url are
    (`row_at`, None where the header lacks them), which tell a value of several lines from a stray quote. A header
    repeated in its own columns (`cat a.csv b.csv`, `_header_again`) replaces them for the records after its line:
    read by the first header's, a record of b's a column wider was a `wrong_column_count`, and lines of b held in a
    stray quote's value read as no row, the photos between the quotes lost inside the last one's title."""

    width: int
    row_at: tuple[int, int] | None


def _id_and_url(header: list[str], layout: TableLayout) -> tuple[int, int]:
    return header.index(layout.column("id")), header.index(layout.column("url"))


def _records(items: Iterator[tuple[str, bytes] | Rejection], delimiter: str, shape: _Shape,
             overlong: _Overlong | None = None,
             give_up: int | None = None, reopen: Reopen | None = None) -> Iterator[tuple[str, bytes] | Rejection]:
    """The records of a text table, each (the ref of its first line, its text), blank lines left out, or a `Rejection`.
    A quoted value may hold line breaks, as spreadsheets and pandas write a description of several lines: a record
    runs from a line that leaves a quote open to the line that closes it, as Python's csv reader reads the whole text
    (`_quote_left_open`, `_closes`; a line too long to be read, through `overlong`). No line inside a quoted value is
    ever read as a row, whatever the value's length: a Flickr description is its photographer's text, and one written
    as a row (`7001,https://…/7001_x_z.jpg,CC BY 4.0`) would be a photo the file does not list.

    A record's lines are held while it is within MAX_RECORD_LINES lines and MAX_LINE_BYTES bytes; past that its lines
    are read on, not held, their quotes followed, and the record is one `malformed_row` naming its first line and how
    many it spans (`_record`). A record held whole is one row when it makes as many cells as the header in force has
    (`shape`, read as each record is: its reader may replace it between two records) and no line of its value
    reads alone as a row of the table (`_a_row_alone`: a title opening with a stray quote, `"Sunset`, and a later one
    ending with one, `at dusk"`, made one record of the rows between them); otherwise it is refused whole, once.

    A quote that no line closes, to the end of the file, is no value: its line alone is refused, and the lines after
    it are read again (`reopen(n)`: the items from line n on, and their `_Overlong`) as rows of their own (they were
    all one rejection: a stray quote in a title on line 2 lost the file). From there each line is its own record: a
    line leaving a quote open leaves the reader inside a quoted value at that line's end, as the value that never
    closed does, and so never closes either (a line's effect on whether the reader is inside a value depends on that
    alone); it too is refused alone, read no further. A file is so read twice at most, however many quotes never
    close.

    `give_up` (a launch check's, which reads a few rows): a record past that many bytes is refused there and the
    reading ends, as no row after it can be found without its end (a quote that never closes on line 2 of a 50 GB
    file read the whole file before the check could say so)."""
    overlong = overlong or _Overlong(delimiter)
    source = iter(items)
    unclosed = ""  # the first line whose quote never closed, once one did: each line is its own record after it
    while (item := next(source, None)) is not None:
        if isinstance(item, Rejection):
            if item.reason != "line_too_long" or not overlong.take()[0] or unclosed:
                yield item  # a line too long opening a quote after one that never closed: its own rejection
                continue
            held: list[tuple[str, bytes]] | None = None  # a line too long opens the value: never held
        elif _is_blank(item[1]):
            continue
        elif not _quote_left_open(item[1], delimiter):
            yield item
            continue
        elif unclosed:
            yield rejection(item[0], "malformed_row", f"a quote opened on line {_line(item[0])} never closes, as "
                                                       f"the one on line {_line(unclosed)} does not: the file ends "
                                                       "inside its value; this line is refused alone, the lines "
                                                       "after it read as rows")
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
                yield rejection(first, "malformed_row", f"a quoted value from line {_line(first)} runs on past line "
                                                         f"{_line(last)}, over {give_up:,} bytes: the launch check "
                                                         "reads no further")
                return
        if closed or reopen is None or count == 1:
            yield _record(first, last, count, held, closed, delimiter, shape.width, shape.row_at)
            continue
        held = None  # the value's lines: read again, as rows
        yield rejection(first, "malformed_row", f"a quote opened on line {_line(first)} never closes: the file ends "
                                                 f"inside its value, {count - 1:,} lines on (line {_line(last)}); "
                                                 "this line is refused alone, the lines after it read as rows")
        unclosed = first
        source, overlong = reopen(int(_line(first)) + 1)


def _record(first: str, last: str, count: int, held: list[tuple[str, bytes]] | None, closed: bool, delimiter: str,
            width: int, row_at: tuple[int, int] | None) -> tuple[str, bytes] | Rejection:
    """A record of `count` lines from `first` to `last` (refs): (first, its text) or its one `Rejection`."""
    span = f"lines {_line(first)} to {_line(last)}" if last else f"line {_line(first)}"
    if not closed:
        lines = (f"the {count:,} lines from it to the end of the file ({span}) are all inside its value" if count > 1
                 else "the file ends inside its value")
        return rejection(first, "malformed_row", f"a quote opened on line {_line(first)} never closes: {lines}, "
                                                  "refused as one record")
    if held is None:
        return rejection(first, "malformed_row", f"a quoted value spans {span} ({count:,} lines), over the bound of "
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
        return rejection(first, "wrong_column_count", f"{len(cells)} columns, the header has {width} (a record of "
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
    return rejection(ref, "malformed_row", f"a quoted value from line {_line(ref)} to line {_line(last[0])} holds "
                                            f"line {_line(row[0])}, which reads as a row of its own (a stray quote?): "
                                            "refused as one record")


def _lines_from(path: str, line: int, delimiter: str, checked: bool, crcs: array | None,
                name: str | None) -> tuple[Iterator[tuple[str, bytes] | Rejection], _Overlong]:
    """The file's lines from `line` on, read again as they were (a compressed file's data must match its check,
    `crcs`: one replaced since is unreadable from there), and the `_Overlong` that follows the quotes of those too
    long to be read."""
    overlong = _Overlong(delimiter)
    lines = read_numbered_lines(path, checked=checked, dropped=overlong.feed, crcs=crcs, name=name)

    def after() -> Iterator[tuple[str, bytes] | Rejection]:
        try:
            for item in lines:
                if int(_line(item.source_ref if isinstance(item, Rejection) else item[0])) >= line:
                    yield item
                elif isinstance(item, Rejection) and item.reason == "line_too_long":
                    overlong.take()  # its quotes are nothing to the lines after it
        finally:
            lines.close()

    return after(), overlong


def delimited_rows(path: str, layout: TableLayout, checked: bool, name: str | None = None,
                   ) -> Iterator[Photo | Rejection]:
    """Rows of a CSV or TSV file; a header that cannot give our fields rejects each data row. `name`: the file as
    its refs name it."""
    delimiter, quoted = _DELIMITERS[layout.format], layout.format not in _UNQUOTED
    overlong = _Overlong(delimiter) if quoted else None  # a value spans lines only where quotes are read
    refuse_other_than_a_file(path)  # before a check reads it
    crcs = input_files.check_compressed(path) if checked else None  # kept for a second read of its lines
    lines = read_numbered_lines(path, checked=checked, dropped=overlong.feed if overlong else None, crcs=crcs,
                                name=name)
    first = next(lines, None)
    if first is None:
        return
    header = _header(first, delimiter, quoted)
    problem = header if isinstance(header, tuple) else header_problem(header, layout)
    # A header read but lacking a column still gives each record's extent (a value of several lines is one row's)
    # A value never takes a line that reads as a row: a photo id and an http(s) URL where the id and url columns are
    shape = _Shape(len(header), _id_and_url(header, layout) if not problem else None) if isinstance(header, list) \
        else None
    records = (content_lines(lines) if shape is None or overlong is None
               else _records(lines, delimiter, shape, overlong, None if checked else LAUNCH_CHECK_BYTES,
                             lambda line: _lines_from(path, line, delimiter, checked, crcs, name)))
    columns = header if isinstance(header, list) else []  # read by where there is no problem (a header read)
    for item in records:
        if isinstance(item, Rejection):
            yield item
            continue
        ref, raw = item
        if problem:
            yield rejection(ref, *problem)
            continue
        cells = _split(raw, ref, delimiter, quoted)
        if isinstance(cells, Rejection):
            yield cells
        elif (again := _header_again(cells, columns, ref, layout)) is not None:
            detail = (f"line {_line(ref)} repeats the header (a file appended to another?): no row" if again == columns
                      else f"line {_line(ref)} is a header in its own order (a file appended to another?): the rows "
                           "after it are read by its columns")
            columns = again
            if shape is not None:  # the records after this line are told by its columns (`_Shape`)
                shape.width, shape.row_at = len(again), _id_and_url(again, layout)
            yield rejection(ref, "bad_header", detail)
        elif len(cells) != len(columns):
            yield rejection(ref, "wrong_column_count", f"{len(cells)} columns, the header has {len(columns)}")
        else:
            yield parsed(dict(zip(columns, cells, strict=True)), ref, layout)



def _header_again(cells: list[str], header: list[str], ref: str, layout: TableLayout) -> list[str] | None:
    """The column names a line after the first gives where it reads as the table's header: every column the first
    header maps, in any order, none twice, and no photo when read as a row. Two exports appended to one another
    (`cat a.csv b.csv`) hold b's header there: read as a row it was a `bad_id`, and b's rows were read by a's columns,
    so where b wrote them in another order its photos were published crediting their titles as their owners. A row
    never gives every mapped column's name as its values and a photo too (its URL would be the url column's name)."""
    url = layout.column("url")
    if not any(cell.strip() == url for cell in cells):  # most lines: not a header, known at a glance
        return None
    names = [cell.strip() for cell in cells]
    names[0] = names[0].removeprefix("\ufeff")  # the appended file's own byte order mark (Excel's, Notepad's)
    mapped = {layout.column(field) for field in FIELDS}
    if any(name in mapped and name not in names for name in header) or header_problem(names, layout):
        return None
    if len(cells) == len(header) and isinstance(parsed(dict(zip(header, cells, strict=True)), ref, layout), Photo):
        return None
    return names


def header_of(path: str, layout: TableLayout) -> list[str]:
    """The file's column names ([] for an empty file); ValueError saying why when its header cannot be read."""
    first = next(read_numbered_lines(path, checked=False), None)
    if first is None:
        return []
    header = _header(first, _DELIMITERS[layout.format], layout.format not in _UNQUOTED)
    if isinstance(header, tuple):
        raise ValueError(header[1])
    return header
