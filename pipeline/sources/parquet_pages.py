"""What reading a Parquet column chunk would cost in memory, judged from the file before pyarrow decompresses it.

pyarrow decompresses a page whole, into a buffer of the size its header states (a page that decompresses to any
other size fails), and builds a batch's column from whole values: a 33 KiB file whose one `title` cell is 1 GiB of
one letter took 4.3 GiB before any length check could refuse the cell. So the sizes are checked where they are
stated, before anything is decompressed: the column chunk's total in the footer, then each page's header (read
here with a small Thrift compact-protocol reader, as pyarrow shows no page header), against what values of at most
`max_value_bytes` each could take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import pyarrow.parquet as pq

if TYPE_CHECKING:
    from pipeline.io.files import SeekableReader

# Writers cut pages near 1 MiB (pyarrow, parquet-mr, polars, ClickHouse; their dictionary pages too); a page is
# decompressed whole, so this caps what one costs, with room for writers that cut larger ones (fastparquet writes a
# row group's column as one page: one of over 32 MiB of our columns is refused).
MAX_PAGE_BYTES = 32 * 1024 * 1024
# What a value takes besides its bytes: a BYTE_ARRAY's 4-byte length, its levels; and a page besides its values.
_PER_VALUE = 16
_PER_PAGE = 4096
# A page header is a few dozen fields, its statistics two values at most (skipped with a seek): junk, such as a
# list of a billion bools, is refused after this many reads, not hours later. pyarrow's own size limit is 16 MiB.
_MAX_HEADER_READS = 4096
_MAX_HEADER_BYTES = 16 * 1024 * 1024
_MAX_DEPTH = 8  # PageHeader > DataPageHeader > Statistics is 3 deep

# Thrift compact protocol: the type of a field or a list's element.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
# PageHeader: 1 type, 2 uncompressed_page_size, 3 compressed_page_size, and num_values (field 1) of the header
# for its type: 5 a data page, 7 a dictionary page, 8 a data page v2.
_TYPE, _UNCOMPRESSED, _COMPRESSED = 1, 2, 3
_VALUE_HEADERS = (5, 7, 8)
_DICTIONARY_PAGE = 2  # PageType
_DATA_PAGES = (0, 3)  # PageType: DATA_PAGE, DATA_PAGE_V2 (their values are the column's; a dictionary's are entries)


class BadPageHeader(ValueError):
    """A page header that cannot be read (it is no Thrift, or runs past its limit)."""


class BadFooter(ValueError):
    """A footer whose row group lists fewer column chunks than its schema has columns (pyarrow's IndexError is no
    ValueError, which a reader takes for a broken file)."""


class RowsMismatch(ValueError):
    """A row group whose column holds another number of values than the rows its footer states: pyarrow reads the
    stated rows and no more, so a footer understating a row group's rows hid the others, with no word."""


class TooLarge(ValueError):
    """A column chunk whose pages could take more memory than its values may, read: refused unread."""


class _Input:
    """A Thrift compact-protocol reader over a file, from a given offset, counting what it consumes."""

    def __init__(self, handle: SeekableReader, offset: int) -> None:
        handle.seek(offset)
        self._handle = handle
        self.consumed = 0
        self._reads = 0

    def _count(self, size: int) -> None:
        self.consumed += size
        self._reads += 1
        if self.consumed > _MAX_HEADER_BYTES or self._reads > _MAX_HEADER_READS:
            raise BadPageHeader(f"a page header of over {_MAX_HEADER_BYTES:,} bytes or {_MAX_HEADER_READS:,} items")

    def skip(self, count: int) -> None:
        """Seeks past `count` bytes (a binary value: statistics), never reading them."""
        if count < 0:
            raise BadPageHeader("a negative length in a page header")
        self._count(count)
        self._handle.seek(count, 1)

    def byte(self) -> int:
        self._count(1)
        data = self._handle.read(1)
        if not data:
            raise BadPageHeader("the file ends inside a page header")
        return data[0]

    def varint(self) -> int:
        value = shift = 0
        while shift < 70:
            part = self.byte()
            value |= (part & 0x7F) << shift
            if not part & 0x80:
                return value
            shift += 7
        raise BadPageHeader("a varint of over 10 bytes in a page header")

    def integer(self) -> int:
        """A zigzag varint: Thrift's i16, i32 and i64."""
        value = self.varint()
        return (value >> 1) ^ -(value & 1)


def _element(kind: int) -> int:
    """The type of a list's or a map's element as written: a bool takes a byte there, not its type's bits."""
    return _BYTE if kind in (_TRUE, _FALSE) else kind


def _skip(source: _Input, kind: int, depth: int) -> None:
    """Reads past one value of Thrift type `kind`. Every element of a list or map takes a read at least, so a
    claimed size of billions runs into _MAX_HEADER_READS, not into the hours."""
    if depth > _MAX_DEPTH:
        raise BadPageHeader(f"a page header nested over {_MAX_DEPTH} deep")
    if kind in (_TRUE, _FALSE):
        return
    if kind == _BYTE:
        source.skip(1)
    elif kind in (_I16, _I32, _I64):
        source.varint()
    elif kind == _DOUBLE:
        source.skip(8)
    elif kind == _BINARY:
        source.skip(source.varint())
    elif kind in (_LIST, _SET):
        head = source.byte()
        size = head >> 4 if head >> 4 != 15 else source.varint()
        for _ in range(size):
            _skip(source, _element(head & 0x0F), depth + 1)
    elif kind == _MAP:
        size = source.varint()
        types = source.byte() if size else 0
        for _ in range(size):
            _skip(source, _element(types >> 4), depth + 1)
            _skip(source, _element(types & 0x0F), depth + 1)
    elif kind == _STRUCT:
        _struct(source, depth + 1)
    else:
        raise BadPageHeader(f"Thrift type {kind} in a page header")


def _struct(source: _Input, depth: int) -> dict[int, int | dict]:
    """A struct's integer fields and nested structs by field id; everything else is read past."""
    if depth > _MAX_DEPTH:
        raise BadPageHeader(f"a page header nested over {_MAX_DEPTH} deep")
    fields: dict[int, int | dict] = {}
    field = 0
    while True:
        head = source.byte()
        if head == 0:
            return fields
        kind = head & 0x0F
        field = field + (head >> 4) if head >> 4 else source.integer()
        if kind in (_I16, _I32, _I64):
            fields[field] = source.integer()
        elif kind == _STRUCT:
            fields[field] = _struct(source, depth + 1)
        else:
            _skip(source, kind, depth)


def _value_count(header: dict[int, int | dict]) -> int:
    """How many values a page header says its page holds (0 for an index page, or when it does not say)."""
    for field in _VALUE_HEADERS:
        part = header.get(field)
        if isinstance(part, dict):
            count = part.get(1)
            return count if isinstance(count, int) and count > 0 else 0
    return 0


def _values(count: int) -> str:
    return "1 value" if count == 1 else f"{count:,} values"


def check_rows(metadata: pq.FileMetaData, row_group: int, counts: Sequence[tuple[str, int, str]]) -> None:
    """RowsMismatch unless each (column, values, where counted) says as many values as the row group states rows: a
    column of one value a row (a null too) holds as many as its row group's rows."""
    stated = metadata.row_group(row_group).num_rows
    for name, values, where in counts:
        if values != stated:
            raise RowsMismatch(f"row group {row_group + 1} states {stated:,} rows, its column {name[:40]!r} holds "
                               f"{values:,} values ({where}): the file's rows cannot be told")


def check_footer_rows(metadata: pq.FileMetaData, row_group: int, columns: Sequence[tuple[str, int]]) -> None:
    """`check_rows` of these (column name, leaf column) as the footer counts their values (a leaf the row group lacks
    is left to the reads of its pages, which refuse it)."""
    footer = metadata.row_group(row_group)
    check_rows(metadata, row_group, [(name, footer.column(leaf).num_values, "as the footer says")
                                     for name, leaf in columns if leaf < footer.num_columns])


def check_page_rows(metadata: pq.FileMetaData, row_group: int, names: Sequence[str], values: Sequence[int]) -> None:
    """`check_rows` of these columns as their page headers count their values (`Pages.values`, `count_values`)."""
    check_rows(metadata, row_group, [(name, found, "as its pages' headers say")
                                     for name, found in zip(names, values, strict=True)])


_NO_SIZES = "a page header without its sizes"


def _sizes(header: dict[int, int | dict]) -> tuple[int, int] | None:
    """(uncompressed, compressed) sizes of a page, None unless both are there as ints of 0 or more."""
    uncompressed, compressed = header.get(_UNCOMPRESSED), header.get(_COMPRESSED)
    if not isinstance(uncompressed, int) or not isinstance(compressed, int) or uncompressed < 0 or compressed < 0:
        return None
    return uncompressed, compressed


def _sizes_problem(header: dict[int, int | dict]) -> str | None:
    return _NO_SIZES if _sizes(header) is None else None


def _page_problem(header: dict[int, int | dict], max_value_bytes: int) -> str | None:
    sizes = _sizes(header)
    if sizes is None:
        return _NO_SIZES
    uncompressed, _ = sizes
    count = _value_count(header)
    allowed = min(MAX_PAGE_BYTES, count * (max_value_bytes + _PER_VALUE) + _PER_PAGE)
    if uncompressed > allowed:
        return f"a page of {uncompressed:,} bytes once decompressed for {_values(count)}, over the {allowed:,} allowed"
    return None


def _inflation_problem(header: dict[int, int | dict], floor: int, ratio: int, file_size: int) -> str | None:
    sizes = _sizes(header)
    if sizes is None:
        return _NO_SIZES
    uncompressed, compressed = sizes
    # A page's stored bytes lie in the file: a header claiming more cannot buy a larger allowance.
    allowed = max(floor, ratio * min(compressed, file_size))
    if uncompressed > allowed:
        return f"a page of {compressed:,} bytes stated to decompress to {uncompressed:,}, over the {allowed:,} allowed"
    return None


def _column(group: pq.RowGroupMetaData, leaf: int, row_group: int) -> pq.ColumnChunkMetaData:
    if not 0 <= leaf < group.num_columns:
        raise BadFooter(f"row group {row_group + 1} lists {group.num_columns} column chunks, not column {leaf + 1}")
    return group.column(leaf)


def _chunk_range(chunk: pq.ColumnChunkMetaData) -> tuple[int, int]:
    """Where a column chunk's pages lie, as pyarrow reads them: from its dictionary page when it has one (a chunk of
    no rows as pyarrow writes it has a dictionary page and no data page: its data page offset is 0)."""
    start = chunk.data_page_offset
    dictionary = (chunk.dictionary_page_offset or 0) if chunk.has_dictionary_page else 0
    if dictionary > 0 and (dictionary < start or start <= 0):
        start = dictionary
    return start, start + chunk.total_compressed_size


# "PAR1" precedes the first page: a chunk of no values said to start inside it has no page (pyarrow's empty chunk
# without a dictionary: offsets 0, 0 bytes).
_MAGIC = 4


class Pages(NamedTuple):
    """What a column chunk's page headers say it holds once decompressed."""

    total: int  # all its pages
    dictionary: int  # its dictionary page (0: it has none)
    values: int = 0  # the values its data pages' headers say they hold, nulls included: a flat column's rows


def _pages(handle: SeekableReader, chunk: pq.ColumnChunkMetaData, judge: Callable[[dict[int, int | dict]], str | None],
           within: int | None = None) -> Pages | str:
    """The sizes of a column chunk's pages, or why decompressing one of them could take more memory than `judge`
    allows (`_page_problem`, `_inflation_problem`). Each page is judged by its own header, whatever the footer says:
    pyarrow sizes a page by its header alone (and fails a page that decompresses to any other size), never checking
    pages against the footer. With `within` (the file's size), a page running past its chunk or the file is a
    problem too: pyarrow allocates a page's stated compressed size before finding the file too short (a 747-byte
    file took 2 GB)."""
    position, end = _chunk_range(chunk)
    if position < _MAGIC and not chunk.num_values:
        return Pages(0, 0)
    total = dictionary = values = 0
    while position < end:
        source = _Input(handle, position)
        header = _struct(source, 1)
        problem = judge(header)
        if problem:
            return f"{problem} (the page at byte {position:,})"
        sizes = _sizes(header)
        assert sizes is not None  # for the type checker: every `judge` finds a page without its sizes a problem
        size, stored = sizes
        if within is not None and position + source.consumed + stored > min(end, within):
            return f"a page of {stored:,} bytes running past its column chunk (the page at byte {position:,})"
        total += size
        dictionary += size if header.get(_TYPE) == _DICTIONARY_PAGE else 0
        values += _value_count(header) if header.get(_TYPE) in _DATA_PAGES else 0
        position += source.consumed + stored
    return Pages(total, dictionary, values)


def count_values(handle: SeekableReader, metadata: pq.FileMetaData, row_group: int, leaves: Sequence[int],
                 file_size: int) -> list[int]:
    """The values the data pages of the column chunks `leaves` of `row_group` hold, as their headers say (a flat
    column's rows), read from the page headers alone: nothing is decompressed, so no size is judged but the file's
    (`BadPageHeader` for a page header that cannot be read or a page running past its chunk or the file,
    `BadFooter` for a column chunk the row group lacks). Costs a read of each page header."""
    group = metadata.row_group(row_group)
    found = []
    for leaf in leaves:
        chunk = _column(group, leaf, row_group)
        pages = _pages(handle, chunk, _sizes_problem, within=file_size)
        if isinstance(pages, str):
            raise BadPageHeader(f"row group {row_group + 1}, column {chunk.path_in_schema[:40]!r}: {pages}")
        found.append(pages.values)
    return found


def check_row_group(handle: SeekableReader, metadata: pq.FileMetaData, row_group: int, leaves: Sequence[int],
                    max_value_bytes: int) -> list[Pages]:
    """The `Pages` of the column chunks `leaves` (leaf column numbers) of `row_group`; `TooLarge` when reading one
    could take more memory than values of at most `max_value_bytes` each need, one page at a time: judged first
    from the footer's totals, then from every page header (`BadPageHeader` for one that cannot be read). Costs a
    read of each page header, a seek and a few dozen bytes per page of ~1 MiB; where a file system reads ahead in
    large blocks (GCS), about one more read of our columns' bytes. A row group stated to hold no rows is read too,
    though pyarrow reads none of it: its data pages must hold no values (`Pages.values`)."""
    group = metadata.row_group(row_group)
    found = []
    for leaf in leaves:
        chunk = _column(group, leaf, row_group)
        where = f"row group {row_group + 1}, column {chunk.path_in_schema[:40]!r}"
        allowed = chunk.num_values * (max_value_bytes + _PER_VALUE) + _PER_PAGE
        if chunk.total_uncompressed_size > allowed:
            raise TooLarge(f"{where}: {chunk.total_uncompressed_size:,} bytes once decompressed for "
                           f"{_values(chunk.num_values)}, over the {allowed:,} allowed")
        pages = _pages(handle, chunk, lambda header: _page_problem(header, max_value_bytes))
        if isinstance(pages, str):
            raise TooLarge(f"{where}: {pages}")
        found.append(pages)
    return found


def check_inflation(handle: SeekableReader, metadata: pq.FileMetaData, row_group: int, leaves: Sequence[int],
                    floor: int, ratio: int, file_size: int) -> list[Pages]:
    """The `Pages` of the column chunks `leaves` of `row_group`; `TooLarge` when a page would decompress to more
    than `ratio` times its stored size (at most the file's `file_size`) and more than `floor` bytes. For files whose
    values carry no bound of their own (the images of a published shard, whatever `--max_side` made them), where a
    page's stored size bounds it instead: a compression bomb is by its nature a page that grows; a JPEG barely does
    (`BadPageHeader` for a page header that cannot be read, `BadFooter` for a column chunk the row group lacks). A
    page running past its column chunk or the file is `TooLarge` too. A row group stated to hold no rows is read too,
    though pyarrow reads none of it: its data pages must hold no values (`Pages.values`)."""
    group = metadata.row_group(row_group)
    found = []
    for leaf in leaves:
        chunk = _column(group, leaf, row_group)
        pages = _pages(handle, chunk, lambda header: _inflation_problem(header, floor, ratio, file_size),
                       within=file_size)
        if isinstance(pages, str):
            raise TooLarge(f"row group {row_group + 1}, column {chunk.path_in_schema[:40]!r}: {pages}")
        found.append(pages)
    return found
