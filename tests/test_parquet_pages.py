"""Parquet page bounds: what files writers write pass, a column chunk or a page whose stated size is beyond what its
values can take is refused from the footer or its header, before anything is decompressed, whatever the footer
says; a page header that is no Thrift is refused in bounded time."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.sources.parquet_pages import (
    MAX_PAGE_BYTES,
    BadFooter,
    BadPageHeader,
    TooLarge,
    check_inflation,
    check_row_group,
)

CELL = 4 * 65536  # what the table source allows a cell, in bytes


def check_all(path: Path) -> None:
    """Every column chunk within its bounds, its data pages holding a value for each of its row group's rows (the
    table reader refuses a row group whose pages say otherwise)."""
    metadata = pq.ParquetFile(path).metadata
    with path.open("rb") as handle:
        for group in range(metadata.num_row_groups):
            pages = check_row_group(handle, metadata, group, range(metadata.num_columns), CELL)
            assert {found.values for found in pages} == {metadata.row_group(group).num_rows}


def realistic(rows: int) -> pa.Table:
    return pa.table({
        "id": pa.array(range(1, rows + 1), pa.int64()),
        "url": [f"https://img.example.org/{i}/{i * 7919}_ab.jpg" for i in range(rows)],
        "title": [None if i % 11 == 0 else f"title {i % 3000} é ✓" for i in range(rows)],
        "long": ["x" * CELL if i == 5 else "y" for i in range(rows)],  # one value at the limit
        "license": ["CC BY 4.0"] * rows,
    })


@pytest.mark.parametrize("options", [
    {}, {"compression": "zstd", "data_page_version": "2.0"}, {"use_dictionary": False, "write_statistics": False},
    {"row_group_size": 7000, "compression": "gzip"}, {"compression": "brotli", "write_page_index": True},
    {"compression": "lz4"}, {"compression": "none"}, {"data_page_size": 8 << 20, "dictionary_pagesize_limit": 8 << 20},
], ids=str)
def test_files_as_writers_write_them_pass(tmp_path, options):
    path = tmp_path / "meta.parquet"
    pq.write_table(realistic(40_000), path, **options)
    check_all(path)


@pytest.mark.parametrize("dictionary", [True, False])
def test_a_chunk_s_pages_are_summed_and_its_dictionary_page_told_apart(tmp_path, dictionary):
    path = tmp_path / "meta.parquet"
    pq.write_table(realistic(40_000), path, use_dictionary=dictionary)
    metadata = pq.ParquetFile(path).metadata
    with path.open("rb") as handle:
        pages = check_row_group(handle, metadata, 0, [1, 2], CELL)
    for leaf, found in zip([1, 2], pages, strict=True):
        headers = metadata.row_group(0).column(leaf).total_uncompressed_size - found.total
        assert 0 < headers < 64 * 200  # the footer's total counts the page headers too: a few dozen bytes each
        assert (found.dictionary > 0) == dictionary


def one_cell_file(path: Path, size: int, rows: int = 1) -> pq.ColumnChunkMetaData:
    """A file with one text column (plain pages, zstd) of `rows` rows, the first `size` bytes of one letter."""
    titles = ["a" * size] + ["b"] * (rows - 1)
    pq.write_table(pa.table({"title": titles}), path, compression="zstd", use_dictionary=False)
    return pq.ParquetFile(path).metadata.row_group(0).column(0)


def test_a_column_chunk_larger_than_its_values_can_be_is_refused_from_the_footer(tmp_path):
    one_cell_file(tmp_path / "bomb.parquet", 64 << 20)
    assert (tmp_path / "bomb.parquet").stat().st_size < 8192
    with pytest.raises(TooLarge, match=r"row group 1, column 'title': 67,108,\d{3} bytes once decompressed for 1 "):
        check_all(tmp_path / "bomb.parquet")


def _varint(value: int, width: int) -> bytes:
    """`value` as a varint of exactly `width` bytes (what a same-size patch needs)."""
    out = bytearray()
    for index in range(width):
        out.append((value & 0x7F) | (0x80 if index < width - 1 else 0))
        value >>= 7
    assert not value
    return bytes(out)


def _zigzag(value: int) -> int:
    return value << 1


def test_a_page_larger_than_its_footer_says_is_refused_from_its_header(tmp_path):
    """The footer says a column chunk (and its row group: one column) holds 1.1 MB once decompressed, which 8
    values may; its page header says 16 MiB. pyarrow reads by the header and never compares: the footer cannot be
    what bounds the read."""
    path = tmp_path / "lies.parquet"
    chunk = one_cell_file(path, 16 << 20, rows=8)
    data = path.read_bytes()
    true_total, claimed = _zigzag(chunk.total_uncompressed_size), _zigzag(1_100_000)
    assert true_total.bit_length() <= 28 and claimed.bit_length() > 21  # both four bytes long
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    assert data.count(_varint(true_total, 4), footer) == 2
    path.write_bytes(data[:footer] + data[footer:].replace(_varint(true_total, 4), _varint(claimed, 4)))
    lying = pq.ParquetFile(path).metadata.row_group(0).column(0)
    assert lying.total_uncompressed_size == 1_100_000
    assert len(pq.read_table(path).column(0)[0].as_py()) == 16 << 20  # what pyarrow does: the footer is not read
    with pytest.raises(TooLarge, match=r"a page of 16,777,2\d\d bytes once decompressed for 8 values"):
        check_all(path)


def test_a_page_over_the_page_cap_is_refused_whatever_values_it_holds(tmp_path):
    """Values at the limit each, but more of them in one page than MAX_PAGE_BYTES: a page is decompressed whole."""
    path = tmp_path / "big-page.parquet"
    count = MAX_PAGE_BYTES // CELL + 1
    pq.write_table(pa.table({"title": [f"{i:06}" + "z" * (CELL - 6) for i in range(count)]}), path,
                   compression="zstd", use_dictionary=False, data_page_size=1 << 30)
    with pytest.raises(TooLarge, match=r"a page of [\d,]+ bytes once decompressed for 129 values, over the 33,554,432"):
        check_all(path)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    """(value, where it ends) of the varint at `at`."""
    value = shift = 0
    while True:
        value |= (data[at] & 0x7F) << shift
        at += 1
        if not data[at - 1] & 0x80:
            return value, at
        shift += 7


def test_a_page_header_that_lies_about_its_size_fails_in_pyarrow(tmp_path):
    """What pyarrow does with a header stating another size than its page decompresses to: it decompresses into a
    buffer of the stated size and fails the page, either way. So the stated size, which the bounds check, is what
    decompressing a page can cost."""
    path = tmp_path / "header.parquet"
    chunk = one_cell_file(path, 1 << 20)
    data = path.read_bytes()
    at = chunk.data_page_offset
    assert data[at] == 0x15  # field 1 (the page type), an i32
    _, size_at = _read_varint(data, at + 1)
    assert data[size_at] == 0x15  # field 2: the uncompressed size
    stated, end = _read_varint(data, size_at + 1)
    for other in (stated + 2000, stated - 2000):
        path.write_bytes(data[:size_at + 1] + _varint(other, end - size_at - 1) + data[end:])
        with pytest.raises(OSError):
            pq.read_table(path)


@pytest.mark.parametrize("header", [
    pytest.param(b"\xff" * 16, id="no-thrift"),
    pytest.param(b"\x19\xf1" + b"\xff\xff\xff\xff\x0f" + b"\x01" * 10_000, id="a-billion-bools"),
    pytest.param(b"\x1c" * 64, id="nested-deep"),
    pytest.param(b"\x15\x04", id="the-file-ends"),
])
def test_a_page_header_that_cannot_be_read_is_refused_in_bounded_time(tmp_path, header):
    path = tmp_path / "t.parquet"
    chunk = one_cell_file(path, 10)
    data = path.read_bytes()[:chunk.data_page_offset] + header
    started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
    with pytest.raises(BadPageHeader):
        check_row_group(io.BytesIO(data), pq.ParquetFile(path).metadata, 0, [0], CELL)
    assert time.process_time() - started < 5


def test_a_page_may_grow_to_its_ratio_of_what_it_stores_and_no_more_whatever_its_header_claims_it_stores(tmp_path):
    """`check_inflation` (verify's bound, for files whose values have no bound of their own): a page may decompress
    to `ratio` times its stored size or `floor`. A header claiming more stored bytes than the file holds does not
    buy a larger allowance."""
    path = tmp_path / "grows.parquet"
    noise = "".join(f"{index * 7919 % 9973:x}" for index in range(40))
    pq.write_table(pa.table({"title": [noise + "a" * 10_000]}), path, compression="zstd", use_dictionary=False)
    metadata = pq.ParquetFile(path).metadata
    chunk = metadata.row_group(0).column(0)
    data = path.read_bytes()

    def check(data: bytes, ratio: int) -> None:
        check_inflation(io.BytesIO(data), metadata, 0, [0], 1024, ratio, len(data))

    check(data, 100)  # ~10 kB from ~120 bytes stored
    with pytest.raises(TooLarge, match=r"row group 1, column 'title': a page of [\d,]+ bytes stated to decompress "
                                       r"to 10,\d{3}, over the [\d,]+ allowed"):
        check(data, 8)
    at = chunk.data_page_offset
    _, size_at = _read_varint(data, at + 1)
    _, stored_at = _read_varint(data, size_at + 1)
    assert data[stored_at] == 0x15  # field 3: the compressed size, a varint of two bytes here
    _, end = _read_varint(data, stored_at + 1)
    assert end - stored_at - 1 == 2 and 8 * len(data) < 10_000 < 8 * 8191 // 2
    claims_more = data[:stored_at + 1] + _varint(_zigzag(8191 // 2), 2) + data[end:]
    with pytest.raises(TooLarge, match=f"a page of 4,095 bytes stated to decompress to 10,\\d{{3}}, over the "
                                       f"{8 * len(data):,} allowed"):
        check(claims_more, 8)
    # Within the floor it is still refused: pyarrow allocates the stored bytes a header claims before it finds the
    # file too short (a 747-byte file claiming 2,000,000,000 took 2 GB).
    with pytest.raises(TooLarge, match=r"a page of 4,095 bytes running past its column chunk \(the page at byte 4\)"):
        check_inflation(io.BytesIO(claims_more), metadata, 0, [0], 1 << 20, 8, len(claims_more))


def test_a_footer_listing_fewer_column_chunks_than_its_schema_is_a_broken_file(tmp_path):
    """A forged footer whose row group lists one column chunk under a schema of two made pyarrow's
    `RowGroupMetaData.column` raise IndexError, which no reader takes for a broken file: an input table stopped its
    bundle (and the job), `verify` stopped. Both checks say `BadFooter`, a ValueError."""
    path = tmp_path / "two.parquet"
    pq.write_table(pa.table({"photo_id": ["a", "b"], "decision": ["kept", "kept"]}), path)
    real = pq.ParquetFile(path).metadata

    class OneChunk:  # what pyarrow reads from such a footer: the schema's two columns, one chunk in the row group
        num_rows = 2
        num_columns = 1

        def column(self, leaf: int) -> pq.ColumnChunkMetaData:
            if leaf >= 1:
                raise IndexError(f"{leaf} out of bounds")
            return real.row_group(0).column(leaf)

    class Forged:
        num_columns = 2

        def row_group(self, index: int) -> OneChunk:
            return OneChunk()

    with path.open("rb") as handle:
        for check in (lambda: check_row_group(handle, Forged(), 0, [0, 1], CELL),  # type: ignore[arg-type]
                      lambda: check_inflation(handle, Forged(), 0, [0, 1], 1 << 20, 8, 10_000)):  # type: ignore
            with pytest.raises(BadFooter, match="row group 1 lists 1 column chunks, not column 2"):
                check()
    assert issubclass(BadFooter, ValueError)
