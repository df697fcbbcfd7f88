"""How many rows one input file may give: in proportion to its bytes, however small its compressed or encoded form.

A row costs bytes where it is stored (a photo id and a URL with its secret, at least), but formats let a few bytes
stand for very many rows: a .gz or .bz2 of one short line repeated inflates a thousand- to a million-fold, and a
Parquet file of a few kB can claim billions of rows that an all-null column encodes in a handful of bytes, or that a
file whose columns cannot be mapped rejects one by one from its footer's count. Each of those rows is then a
rejection to write, so such a file held the job for days. Past `row_limit(size)` rows, a file's reading stops with
one `too_many_rows` rejection naming the first row not read, as a damaged file ends with `unreadable_file`: what was
read is accounted for, and the rest is one record.

Real inputs stay far below the bound: the YFCC100M dump gives about one row per 120 bytes of .bz2, and a usable row
carries at least a photo's random secret (5 bytes however it is compressed).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import TypeVar

from pipeline.io.files import size_and_kind
from pipeline.records import Photo, Rejection

ROWS_PER_BYTE = 4
ROW_FLOOR = 100_000  # a small file may always give this many: the bound is for bombs, not for small tables
REASON = "too_many_rows"

Item = TypeVar("Item")


def row_limit(size: int | None) -> int:
    """Rows a file of `size` bytes may give (the floor when its size cannot be known)."""
    return max(ROW_FLOOR, ROWS_PER_BYTE * (size or 0))


def file_row_limit(path: str) -> int:
    try:
        size, _ = size_and_kind(path)
    except OSError:
        size = None  # the reader then says why the file cannot be read
    return row_limit(size)


def _line_of(item: object) -> int | None:
    """The row number an item names ("name:12" -> 12): a Photo's or Rejection's source_ref, or a (ref, line) pair."""
    ref = item.source_ref if isinstance(item, (Photo, Rejection)) else item[0] if isinstance(item, tuple) else ""
    number = str(ref).rpartition(":")[2]
    return int(number) if number.isascii() and number.isdigit() else None


def bounded_rows(path: str, items: Iterator[Item], stage: str, limit: int | None = None,
                 name: str | None = None) -> Iterator[Item | Rejection]:
    """`items` (a reader's rows and rejections for the file at `path`), until `limit` of them (by default
    `file_row_limit(path)`) have come; then one `too_many_rows` rejection, and the reader is closed unread. `name`:
    the file as its refs name it (`input_files.file_label`; its base name where not given)."""
    limit = file_row_limit(path) if limit is None else limit
    previous: object = None
    for given, item in enumerate(items):
        if given >= limit:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            # The row number is looked up here only, not for every row read (a dump holds a hundred million).
            number = _line_of(item) or (_line_of(previous) or given) + 1
            ref = f"{name or posixpath.basename(path.rstrip('/'))}:{number}"
            detail = (f"more than {limit:,} rows (a file may give {ROWS_PER_BYTE} a byte of its size, and "
                      f"{ROW_FLOOR:,} whatever its size): the rest of the file is not read")
            yield Rejection(ref, stage, REASON, detail, "", ref)
            return
        previous = item
        yield item
