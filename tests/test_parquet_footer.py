"""The Parquet footer bound, read from a file's last 8 bytes before pyarrow parses the footer."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.io import parquet_footer
from pipeline.io.parquet_footer import FooterTooLarge, check_footer, footer_problem


def wide_parquet(row_groups: int = 40) -> tuple[bytes, int]:
    """A Parquet file of one-row row groups (each listed in the footer, column by column) and its footer's size."""
    out = io.BytesIO()
    columns = {"photo_id": [str(n) for n in range(row_groups)], **{f"c{n}": [None] * row_groups for n in range(20)}}
    pq.write_table(pa.table(columns), out, row_group_size=1)
    data = out.getvalue()
    footer = pq.ParquetFile(io.BytesIO(data)).metadata.serialized_size
    return data, footer


def test_a_footer_over_the_bound_is_told_from_the_length_the_file_states(monkeypatch):
    data, footer = wide_parquet()
    assert int.from_bytes(data[-8:-4], "little") == footer  # what a writer states, pyarrow's own measure
    monkeypatch.setattr(parquet_footer, "MAX_FOOTER_BYTES", footer - 1)
    assert footer_problem(data[-8:]) == (f"its Parquet footer is {footer:,} bytes, over the limit of {footer - 1:,} "
                                         "(a file of fewer, larger row groups has a smaller one)")
    handle = io.BytesIO(data)
    with pytest.raises(FooterTooLarge, match=f"{footer:,} bytes"):
        check_footer(handle)
    monkeypatch.setattr(parquet_footer, "MAX_FOOTER_BYTES", footer)
    assert footer_problem(data[-8:]) is None
    handle.seek(100)
    check_footer(handle)
    assert handle.tell() == 0  # left at the start, for pyarrow


@pytest.mark.parametrize("tail", [b"", b"PAR1", b"\xff\xff\xff\xffPAR2", b"\xff\xff\xff\xffPAR1"[1:]])
def test_what_ends_in_no_footer_length_is_left_to_pyarrow(tail):
    assert footer_problem(tail) is None
    check_footer(io.BytesIO(tail))  # too short, or no Parquet file: pyarrow says what it is


def test_a_file_that_states_a_footer_of_gigabytes_is_refused_unparsed():
    """Only the stated length is read: a hostile file claiming a 4 GiB footer is refused from its last 8 bytes."""
    data = b"PAR1" + b"\0" * 100 + (2**32 - 1).to_bytes(4, "little") + b"PAR1"
    with pytest.raises(FooterTooLarge, match="4,294,967,295 bytes"):
        check_footer(io.BytesIO(data))
