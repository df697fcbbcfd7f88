"""The bound on the rows one input file may give (`sources/row_bound.py`)."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from pipeline.records import Rejection
from pipeline.sources.row_bound import REASON, ROW_FLOOR, ROWS_PER_BYTE, bounded_rows, file_row_limit, row_limit


def lines(name: str, count: int, closed: list[bool]) -> Iterator[tuple[str, bytes]]:
    try:
        for number in range(1, count + 1):
            yield f"{name}:{number}", b"x"
    finally:
        closed.append(True)


@given(st.integers(0, 40), st.integers(0, 40))
def test_rows_up_to_the_limit_pass_then_one_rejection_names_the_first_row_not_read(count, limit):
    closed: list[bool] = []
    out = list(bounded_rows("dir/x.tsv", lines("x.tsv", count, closed), "read", limit=limit))
    assert out[:min(count, limit)] == [(f"x.tsv:{n}", b"x") for n in range(1, min(count, limit) + 1)]
    if count <= limit:
        assert len(out) == count
    else:
        assert len(out) == limit + 1 and isinstance(out[-1], Rejection)
        assert (out[-1].reason, out[-1].source_ref, out[-1].photo_id) == (REASON, f"x.tsv:{limit + 1}",
                                                                          f"x.tsv:{limit + 1}")
    assert closed == [True]  # the reader is closed either way: by its end, or unread by the bound


def test_the_limit_grows_with_the_file_and_never_falls_below_the_floor(tmp_path):
    assert row_limit(None) == row_limit(0) == row_limit(10) == ROW_FLOOR
    assert row_limit(10 * ROW_FLOOR) == 10 * ROW_FLOOR * ROWS_PER_BYTE
    big = tmp_path / "big"
    with big.open("wb") as handle:
        handle.truncate(ROW_FLOOR)  # sparse: its size is what counts
    assert file_row_limit(str(big)) == ROW_FLOOR * ROWS_PER_BYTE
    assert file_row_limit(str(tmp_path / "missing")) == ROW_FLOOR


def _values(outputs) -> list:  # type: ignore[no-untyped-def]
    return [getattr(item, "value", item) for item in outputs]


def test_a_parquet_file_of_a_few_kb_claiming_many_rows_ends_at_the_bound(tmp_path, monkeypatch):
    """A Parquet file whose columns cannot be mapped rejects each row its footer counts: 500,000 rows of one all-null
    column take a few kB, and a footer may claim billions. The rows past the bound are one rejection."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.sources import row_bound
    from pipeline.sources.table import _ReadRows, table_layout

    monkeypatch.setattr(row_bound, "ROW_FLOOR", 1000)
    path = tmp_path / "claims.parquet"
    pq.write_table(pa.table({"unmapped": pa.nulls(500_000, pa.string())}), path)
    limit = ROWS_PER_BYTE * path.stat().st_size
    assert 1000 < limit < 500_000
    out = _values(_ReadRows(table_layout("parquet"), str(path)).process(str(path)))
    assert len(out) == limit + 1 and all(isinstance(item, Rejection) for item in out)
    assert out[-1].reason == REASON and out[-1].source_ref == f"claims.parquet:{limit + 1}"
    assert {item.reason for item in out[:-1]} != {REASON}


def test_a_compressed_dump_of_one_short_line_repeated_ends_at_the_bound(tmp_path, monkeypatch):
    """Within the inflation bound (400 kB of data here) yet 100,000 rows from a file of about 1 kB."""
    import gzip

    from pipeline.sources import row_bound
    from pipeline.sources.yfcc import _ReadLines

    monkeypatch.setattr(row_bound, "ROW_FLOOR", 1000)
    path = tmp_path / "rows.tsv.gz"
    path.write_bytes(gzip.compress(b"1\t2\t3\n" * 100_000))
    limit = ROWS_PER_BYTE * path.stat().st_size
    out = _values(_ReadLines(str(path)).process(str(path)))
    assert len(out) == limit + 1 and out[:limit] == [(f"rows.tsv.gz:{n}", b"1\t2\t3") for n in range(1, limit + 1)]
    assert (out[-1].reason, out[-1].source_ref) == (REASON, f"rows.tsv.gz:{limit + 1}")
