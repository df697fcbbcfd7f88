"""Rows of a Parquet table, read a bounded batch at a time and only in the mapped columns, each to one `Photo` or
`Rejection` (rows counted from 1).

Values are typed by the file: a number may be an id, never a URL or a title. Every size is judged before pyarrow
decompresses or holds it: the footer (`io/parquet_footer`), each page (`parquet_pages`), a dictionary page, each cell.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.io.files import refuse_other_than_a_file
from pipeline.io.parquet_footer import check_footer
from pipeline.records import Photo, Rejection
from pipeline.sources.parquet_pages import TooLarge, check_footer_rows, check_page_rows, check_row_group, count_values
from pipeline.sources.table_row import (
    FILE_ERRORS,
    MAX_VALUE_CHARS,
    TableLayout,
    header_problem,
    parsed,
    rejection,
    shown,
)

# No text of MAX_VALUE_CHARS characters takes more bytes in UTF-8: a Parquet cell over it is refused before Python
# holds it, and a page or a column chunk that could only hold cells over it, before it is decompressed.
_MAX_CELL_BYTES = 4 * MAX_VALUE_CHARS
# A batch holds at most this many cells of _MAX_CELL_BYTES per column (16 MiB), in Arrow and then in Python: 384 rows
# of three 256 KiB cells took 831 MiB read 1,024 rows a batch, 222 MiB 64 at a time (1,024 read ~10% faster).
_PARQUET_BATCH_ROWS = 64
# pyarrow holds a text column it reads as a dictionary (the file's Arrow schema says so: a pandas category) as the
# distinct values of its whole row group, not a batch's: such a column chunk is bounded as a whole.
_MAX_DICTIONARY_CHUNK = 64 * 1024 * 1024


def open_parquet(handle: Any) -> pq.ParquetFile | None:
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
        cells[row] = _Refused(f"column {shown(name)} holds {length:,} bytes, over the limit of "
                              f"{MAX_VALUE_CHARS:,} characters")
    return cells


def _cell(column: pa.Array, row: int, name: str) -> object:
    try:
        return column.slice(row, 1).to_pylist()[0]
    except _UNREADABLE_CELL as err:
        return _Refused(f"column {shown(name)} ({column.type}) holds a value that cannot be read: "
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
            return "bad_field", f"column {shown(name)} holds {str(kind)[:60]} values, never text or an id"
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

    Its rows are checked first: each of our columns must hold a value for each row the footer states, as the footer
    and then each page header count them (`RowsMismatch`; pyarrow reads the stated rows only). Its pages are
    checked (`parquet_pages.check_row_group`). A dictionary page is decoded into a batch once
    for each row that names an entry: one 32 MiB title named by 64 rows would take 2 GiB, so where a dictionary
    page could hold a value over _MAX_CELL_BYTES, its longest value sets the batch (one row, at worst)."""
    leaves = _leaves(table)
    # each of our columns holds one value a row, a null too (`_nested_problem` keeps lists and structs out)
    check_footer_rows(table.metadata, group, [(name, leaves[name][0]) for name in wanted])
    chunks = check_row_group(handle, table.metadata, group, [leaves[name][0] for name in wanted], _MAX_CELL_BYTES)
    pages = dict(zip(wanted, chunks, strict=True))
    check_page_rows(table.metadata, group, wanted, [pages[name].values for name in wanted])
    text = _text_columns(table, wanted)
    for name in text:
        if _is_dictionary(table, name) and pages[name].total > _MAX_DICTIONARY_CHUNK:
            raise TooLarge(f"row group {group + 1}, column {shown(name)}: {pages[name].total:,} bytes once "
                           "decompressed, read as a dictionary (as the file's Arrow schema says) and so held at "
                           f"once: over {_MAX_DICTIONARY_CHUNK:,}")
    probed = [name for name in text if not _is_dictionary(table, name) and pages[name].dictionary > _MAX_CELL_BYTES]
    if not probed:
        return _PARQUET_BATCH_ROWS
    longest = _longest_entry(handle, table, group, probed, max(pages[name].dictionary for name in probed))
    return max(1, min(_PARQUET_BATCH_ROWS, _PARQUET_BATCH_ROWS * _MAX_CELL_BYTES // max(longest, 1)))


def _counted_rows(handle: Any, table: pq.ParquetFile, wanted: Sequence[str]) -> Iterator[int]:
    """Each row group's rows, for a file whose rows are rejected unread: the footer's count, checked as a read checks
    it (`RowsMismatch`), against the values held by our columns of one value a row, or by the first such column of
    the file where it has none of ours (`RowsUnknown` where it has none at all: a list's values are not rows)."""
    leaves, paths = _leaves(table), table.reader.column_paths
    flat = [leaf for leaf in range(table.metadata.num_columns) if table.schema.column(leaf).max_repetition_level == 0]
    counted = [(name, leaves[name][0]) for name in wanted if len(leaves[name]) == 1 and leaves[name][0] in flat] \
        or [(paths[leaf][0], leaf) for leaf in flat[:1]]
    size = handle.seek(0, 2)
    if not counted:
        if _holds_no_rows(handle, table, size):  # an empty table of lists, as a writer leaves it: no row to reject
            return
        raise RowsUnknown("none of its columns holds one value a row, so its rows cannot be counted")
    for group in range(table.num_row_groups):
        check_footer_rows(table.metadata, group, counted)
        values = count_values(handle, table.metadata, group, [leaf for _, leaf in counted], size)
        check_page_rows(table.metadata, group, [name for name, _ in counted], values)
        yield table.metadata.row_group(group).num_rows


def _holds_no_rows(handle: Any, table: pq.ParquetFile, size: int) -> bool:
    """Whether a file whose columns all hold lists holds no row, hidden or not: each row group states none and its
    first column holds no value, in the footer and in its page headers (a row takes at least one value in every
    column: an empty list or a null is one)."""
    if not table.metadata.num_columns:
        return False
    for group in range(table.num_row_groups):
        (values,) = count_values(handle, table.metadata, group, [0], size)
        if values or table.metadata.row_group(group).num_rows or table.metadata.row_group(group).column(0).num_values:
            return False
    return True


class RowsUnknown(ValueError):
    """A file none of whose columns holds one value a row: its page headers cannot count its rows."""


def _parquet_batches(handle: Any, table: pq.ParquetFile, wanted: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The file's rows in our columns, a row group at a time, each checked before it is read and in batches of
    at most `_batch_rows_for` rows: no page is decompressed that could hold more than its values may, and no
    batch holds more than _PARQUET_BATCH_ROWS values of _MAX_CELL_BYTES per column."""
    for group in range(table.num_row_groups):
        rows = _batch_rows_for(handle, table, group, wanted)
        yield from table.iter_batches(batch_size=rows, row_groups=[group], columns=list(wanted))


def parquet_rows(path: str, layout: TableLayout, checked: bool, name: str | None = None,
                 ) -> Iterator[Photo | Rejection]:
    """Rows of a Parquet file, read a batch at a time and only in the mapped columns. A file whose columns cannot
    give our fields rejects each of its rows, counted from its row groups' counts in the footer and never read (the
    file's own count, which a writer states apart from them, made rows vanish where it understated them), each
    count checked against the values its columns hold (`_counted_rows`); a file none of whose columns can count its
    rows is one rejection (none where it holds no row: `_holds_no_rows`). `name`: the file as its refs name it."""
    name = name or posixpath.basename(path.rstrip("/"))
    number = 0
    refuse_other_than_a_file(path)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        try:
            table = open_parquet(handle)
            if table is None:
                return
            names = table.schema_arrow.names
            wanted = list(dict.fromkeys(c for _, c in layout.columns if c in names))
            problem = header_problem(names, layout) or _nested_problem(table, wanted)
            if problem:  # each row group's rows, as they would be read: the file's own count may understate them
                try:
                    for rows in _counted_rows(handle, table, wanted):
                        for _ in range(rows):
                            number += 1
                            yield rejection(f"{name}:{number}", *problem)
                except RowsUnknown as err:  # one rejection for the file, its count unchecked
                    yield rejection(f"{name}:1", problem[0], f"{problem[1]}; {err}: the file is one rejection"[:500])
                return
            for batch in _parquet_batches(handle, table, wanted):
                for values in _batch_rows(batch):
                    number += 1
                    ref = f"{name}:{number}"
                    if isinstance(values, str):
                        yield rejection(ref, "bad_field", values)
                    else:
                        yield parsed(values, ref, layout)
        except FILE_ERRORS as err:
            ref = f"{name}:{number + 1}"
            yield rejection(ref, "unreadable_file", f"{type(err).__name__}: {err}"[:500])



def parquet_columns(path: str) -> list[str]:
    """The file's column names ([] for a file of no bytes)."""
    refuse_other_than_a_file(path)
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        table = open_parquet(handle)
        return table.schema_arrow.names if table is not None else []
