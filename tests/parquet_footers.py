"""A Parquet file's footer with some of its integer fields rewritten, as anyone who can write the file can: a row
group's row count (`(4, GROUP, 3)`), a column chunk's count of values (`(4, GROUP, 1, COLUMN, 3, 5)`), the file's
own row count (`(3,)`), each path of field ids and list indexes as the footer's Thrift nests them."""

from __future__ import annotations

import io
from pathlib import Path

from pipeline.sources import parquet_pages


def rows_of(group: int) -> tuple[int, ...]:
    """The path of a row group's num_rows (counted from 0)."""
    return (4, group, 3)


def values_of(group: int, column: int) -> tuple[int, ...]:
    """The path of a column chunk's num_values (both counted from 0)."""
    return (4, group, 1, column, 3, 5)


def _zigzag(value: int) -> bytes:
    """A non-negative integer as Thrift's compact protocol writes an i32/i64 field: zigzag, then a varint."""
    zigzag, varint = value << 1, bytearray()
    while True:
        varint.append((zigzag & 0x7F) | (0x80 if zigzag >> 7 else 0))
        zigzag >>= 7
        if not zigzag:
            return bytes(varint)


def footer_integers(footer: bytes) -> dict[tuple[int, ...], tuple[int, int]]:
    """Where each integer field of a Parquet footer lies ((start, end) of its varint), by its path of field ids and
    list indexes: (4, 1, 3) is row group 2's num_rows, (4, 1, 1, 0, 3, 5) the num_values of its first column chunk."""
    source, found = parquet_pages._Input(io.BytesIO(footer), 0), {}

    def struct(path: tuple[int, ...]) -> None:
        field = 0
        while (head := source.byte()) != 0:
            field = field + (head >> 4) if head >> 4 else source.integer()
            kind = head & 0x0F
            if kind in (4, 5, 6):  # i16, i32, i64
                start = source.consumed
                source.varint()
                found[(*path, field)] = (start, source.consumed)
            elif kind == 12:
                struct((*path, field))
            elif kind == 9 and field in (1, 4):  # the row groups and their column chunks: lists of structs
                size = source.byte() >> 4
                size = source.varint() if size == 15 else size
                for index in range(size):
                    struct((*path, field, index))
            else:
                parquet_pages._skip(source, kind, 1)

    struct(())
    return found


def with_integers(path: Path, values: dict[tuple[int, ...], int]) -> None:
    """Rewrites the footer of the Parquet file at `path` with these integer fields (`footer_integers`' paths)."""
    data = path.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - length:-8]
    where = footer_integers(footer)
    for field, value in sorted(values.items(), key=lambda item: -where[item[0]][0]):  # from the end: offsets hold
        start, end = where[field]
        footer = footer[:start] + _zigzag(value) + footer[end:]
    path.write_bytes(data[:-8 - length] + footer + len(footer).to_bytes(4, "little") + b"PAR1")
