"""Parquet tables (`sources/parquet_rows.py`): typed cells, bounded memory however the file is made (cells, pages,
dictionaries, footers), and the rows a file states."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.records import Photo
from pipeline.sources.input_files import MAX_LINE_BYTES
from pipeline.sources.table import ReadTable, read_rows, sniff, table_layout
from tests.conftest import local_pipeline
from tests.parquet_footers import rows_of, values_of, with_integers
from tests.test_sources_table import GOOD, THEIRS, read_all, why, write_table


def test_wrong_types_in_parquet_columns_are_rejections_not_crashes(tmp_path):
    table = pa.table({
        "photo_id": pa.array([21.0, 22.5, None], pa.float64()),
        "photo_url": pa.array([1, 2, 3], pa.int64()),
        "licence": pa.array(["CC BY 4.0"] * 3),
    })
    pq.write_table(table, tmp_path / "floats.parquet")
    items = read_all(tmp_path / "floats.parquet", "parquet")
    assert [(item.source_ref, item.reason) for item in items] == [
        ("floats.parquet:1", "bad_id"), ("floats.parquet:2", "bad_id"), ("floats.parquet:3", "missing_id")]
    assert "decimal number" in items[0].detail
    ints = pa.table({"photo_id": pa.array([31, 32], pa.int64()), "photo_url": pa.array([5, None], pa.int64()),
                     "licence": pa.array(["CC BY 4.0", "CC BY 4.0"])})
    pq.write_table(ints, tmp_path / "ints.parquet")
    items = read_all(tmp_path / "ints.parquet", "parquet")
    assert [(item.photo_id, item.reason) for item in items] == [("31", "bad_field"), ("32", "missing_url")]
    assert "column 'photo_url' holds a whole number, not text" in items[0].detail  # "holds a int"
    # A struct, list or map column is never one of our fields, and is not read: a list's row can span any number
    # of pages, so no page bound would bound its batch. Every row is rejected, the null one too.
    nested = ints.append_column("caption", pa.array([{"a": 1}, None], pa.struct([("a", pa.int64())])))
    pq.write_table(nested, tmp_path / "nested.parquet")
    items = read_all(tmp_path / "nested.parquet", "parquet")
    assert [(item.photo_id, item.reason) for item in items] == [("nested.parquet:1", "bad_field"),
                                                                ("nested.parquet:2", "bad_field")]
    assert "'caption' holds struct<a: int64> values" in items[0].detail


def test_an_unreadable_parquet_file_is_a_rejection_and_the_other_files_are_read(tmp_path):
    write_table(tmp_path / "good.parquet", "parquet", GOOD)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / "*.parquet"), table_layout("parquet", THEIRS))
        assert_that(read.kept | beam.Map(lambda photo: photo.photo_id), equal_to(["11", "12"]), label="kept")
        assert_that(read.rejected | beam.Map(why), equal_to([("bad.parquet:1", "read", "unreadable_file")]),
                    label="rejected")


def test_an_empty_file_beside_parquet_parts_is_no_rows_and_no_error(tmp_path):
    (tmp_path / "_SUCCESS").write_bytes(b"")
    assert read_all(tmp_path / "_SUCCESS", "parquet") == []
    assert sniff(str(tmp_path / "_SUCCESS"), table_layout("parquet", THEIRS)) == "is empty"


def test_a_parquet_cell_python_cannot_hold_is_its_rows_rejection_and_the_file_goes_on(tmp_path):
    """A date32 of 2**31 - 1 days or a timestamp past year 9999 in a mapped column made pyarrow's batch conversion
    raise OverflowError, which no reader caught: the whole job failed. Now that row alone is a rejection."""
    rows = 2_000  # the bad cell in the second batch of 1,024
    days = [0] * rows
    days[1500] = 2**31 - 1
    seconds = [0] * rows
    seconds[1500] = 10**12
    for name, column in (("dates", pa.array(days, pa.int32()).view(pa.date32())),
                         ("stamps", pa.array(seconds, pa.int64()).view(pa.timestamp("s")))):
        pq.write_table(pa.table({"photo_id": pa.array(range(1, rows + 1), pa.int64()),
                                 "photo_url": [f"https://h/{i}.jpg" for i in range(1, rows + 1)],
                                 "licence": ["CC BY 4.0"] * rows, "caption": column}), tmp_path / f"{name}.parquet")
        items = read_all(tmp_path / f"{name}.parquet", "parquet")
        assert [item.source_ref for item in items] == [f"{name}.parquet:{i}" for i in range(1, rows + 1)]
        assert {item.reason for item in items} == {"bad_field"}  # a date is no caption, even one Python can hold
        assert "cannot be read" in items[1500].detail and "'caption'" in items[1500].detail
        assert "cannot be read" not in items[1499].detail + items[1501].detail
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / "*.parquet"), table_layout("parquet", THEIRS))
        assert_that(read.rejected | beam.combiners.Count.Globally(), equal_to([2 * rows]))


# Reads a Parquet file in a fresh process: what it gave, and how much its peak memory grew over the read alone
# (VmHWM after the imports; a fresh process, as Linux carries a parent's peak in ru_maxrss across fork and exec).
_READ_AND_MEASURE = """
import collections, json, sys
from pathlib import Path
from pipeline.sources.table import read_rows, table_layout

def peak_mib():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) // 1024

before = peak_mib()
items = list(read_rows(sys.argv[1], table_layout("parquet", sys.argv[2])))
grown = peak_mib() - before
print(json.dumps([[getattr(item, "reason", "photo"), getattr(item, "detail", "")] for item in items] + [grown]))
"""


def read_in_a_fresh_process(path: Path) -> tuple[list[tuple[str, str]], int]:
    """(reason or 'photo', detail) of each item `read_rows` gives, and the MiB its reading added to the peak."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc (Linux) to measure a process's peak memory")
    done = subprocess.run([sys.executable, "-c", _READ_AND_MEASURE, str(path), THEIRS], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    *items, grown = json.loads(done.stdout)
    return [tuple(item) for item in items], grown


def test_a_parquet_cell_bomb_is_refused_before_it_is_decompressed(tmp_path):
    """3 KiB of zstd holding one 64 MiB title: decompressed, decoded and made a Python str before the length
    check refused it, its read took 264 MiB (a 1 GiB cell in 33 KiB: 4.3 GiB). The page's stated size is
    checked first now, and the file is refused unread."""
    path = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"photo_id": ["1"], "photo_url": ["https://h/1.jpg"], "licence": ["CC BY 4.0"],
                             "caption": ["a" * (64 << 20)]}), path, compression="zstd")
    assert path.stat().st_size < 8192
    items, grown = read_in_a_fresh_process(path)
    assert [reason for reason, _ in items] == ["unreadable_file"]
    assert "'caption'" in items[0][1] and "67,108,9" in items[0][1]
    assert grown < 32, f"reading it added {grown} MiB to the peak"


def test_a_parquet_dictionary_entry_many_rows_name_is_read_in_bounded_memory(tmp_path):
    """A 1.6 KiB file: a dictionary page holding one 4 MiB title among small ones, which its last 64 rows name.
    pyarrow decoded it once for each row of a batch (and Python again): 1,046 MiB. Its longest entry, found before
    the row group is read, makes the batches that small; the rows are refused from their length."""
    dictionary = pa.array(["b" * (4 << 20)] + [f"title {i}" for i in range(255)])
    titles = pa.DictionaryArray.from_arrays(pa.array([1, 2] + [0] * 64, pa.int32()), dictionary)
    rows = len(titles)
    path = tmp_path / "names.parquet"
    pq.write_table(pa.table({"photo_id": [str(i) for i in range(1, rows + 1)], "licence": ["CC BY 4.0"] * rows,
                             "photo_url": [f"https://h/{i}.jpg" for i in range(rows)], "caption": titles}),
                   path, compression="zstd", dictionary_pagesize_limit=64 << 20, store_schema=False)
    items, grown = read_in_a_fresh_process(path)
    refused = ("bad_field", "column 'caption' holds 4,194,304 bytes, over the limit of 65,536 characters")
    assert items == [("photo", "")] * 2 + [refused] * 64
    assert grown < 256, f"reading it added {grown} MiB to the peak"


def test_parquet_cells_near_the_limit_are_read_a_few_rows_at_a_time(tmp_path):
    """27 KiB of zstd: 384 rows whose three text cells are each 256 KiB, the most a cell may hold in bytes. Read
    1,024 rows to a batch, that took 831 MiB; the batches are small enough now that it takes a quarter of it."""
    rows, near = 384, pa.array(["q" * (4 * MAX_LINE_BYTES - 16)]).take(pa.array([0] * 384))
    path = tmp_path / "near.parquet"
    pq.write_table(pa.table({"photo_id": [str(i) for i in range(1, rows + 1)], "photo_url": near, "caption": near,
                             "licence": near}), path, compression="zstd", use_dictionary=False, write_batch_size=8)
    items, grown = read_in_a_fresh_process(path)
    assert [reason for reason, _ in items] == ["bad_field"] * rows
    assert grown < 400, f"reading it added {grown} MiB to the peak"


def test_a_parquet_column_the_file_types_as_a_dictionary_is_bounded_as_a_whole(tmp_path):
    """The file's Arrow schema says dictionary (a pandas category), its pages are plain: pyarrow holds every
    distinct value of the row group at once, whatever the batch. Over 64 MiB of them, the file is refused."""
    rows = 300
    titles = pa.array([f"{i:08}" + "t" * (4 * MAX_LINE_BYTES - 16) for i in range(rows)]).dictionary_encode()
    path = tmp_path / "category.parquet"
    pq.write_table(pa.table({"photo_id": [str(i) for i in range(1, rows + 1)], "licence": ["CC BY 4.0"] * rows,
                             "photo_url": [f"https://h/{i}.jpg" for i in range(rows)], "caption": titles}),
                   path, compression="zstd", use_dictionary=False, write_batch_size=8)
    assert pq.ParquetFile(path).schema_arrow.field("caption").type == titles.type
    [item] = read_all(path, "parquet")
    assert (item.source_ref, item.reason) == ("category.parquet:1", "unreadable_file")
    assert "read as a dictionary" in item.detail


def test_parquet_text_of_every_kind_gives_its_rows(tmp_path):
    """Every kind of text column (dictionary or plain pages, large_string, binary, nulls, a long legal value)."""
    long_title = "é" * MAX_LINE_BYTES  # the limit in characters, twice that in bytes
    table = pa.table({
        "photo_id": pa.array(["1", "2", "3", "4"], pa.large_string()),
        "photo_url": pa.array([b"https://h/1.jpg", b"https://h/2.jpg", b"https://h/3.jpg", b"https://h/4.jpg"]),
        "licence": ["CC BY 4.0"] * 4,
        "caption": pa.array([long_title, None, "", "x" * (MAX_LINE_BYTES + 1)], pa.large_string()),
        "author": pa.array(["ann", "ann", "bob", None]).dictionary_encode(),
    })
    for options in ({}, {"use_dictionary": False}, {"store_schema": False}):
        pq.write_table(table, tmp_path / "t.parquet", **options)
        items = read_all(tmp_path / "t.parquet", "parquet")
        assert [(item.photo_id, item.download_url, item.title == long_title, item.owner_name) for item in items[:3]] \
            == [("1", "https://h/1.jpg", True, "ann"), ("2", "https://h/2.jpg", False, "ann"),
                ("3", "https://h/3.jpg", False, "bob")], options
        assert (items[3].reason, items[3].detail) == (
            "bad_field", "column 'caption' holds 65,537 characters, over the limit of 65,536"), options


def test_a_parquet_timestamp_in_a_time_zone_no_database_knows_is_its_rows_rejection(tmp_path):
    """pyarrow raises a KeyError (an unknown time zone) converting such a cell: it failed the whole job."""
    pq.write_table(pa.table({"photo_id": pa.array([1, 2], pa.int64()), "photo_url": ["https://h/1.jpg", "https://h/2.jpg"],
                             "licence": ["CC BY 4.0"] * 2,
                             "caption": pa.array([0, 0], type=pa.timestamp("s", tz="Mars/Olympus"))}),
                   tmp_path / "mars.parquet")
    items = read_all(tmp_path / "mars.parquet", "parquet")
    assert [item.reason for item in items] == ["bad_field", "bad_field"]
    assert "cannot be read" in items[0].detail and "'caption'" in items[0].detail


def test_a_parquet_footer_over_its_bound_is_refused_before_pyarrow_parses_it(tmp_path, monkeypatch):
    """pyarrow parses a file's whole footer into memory at ~15 times its size before any row is read: a 61 MB file of
    3,000 one-row row groups of 203 columns (a 37 MB footer) took 541 MB to open, its launch check as much: one of
    hundreds of MB, gigabytes. A footer over its bound is the file's one `unreadable_file`, refused
    from the length the file's last bytes state; the launch check says so."""
    from pipeline.io import parquet_footer

    path = tmp_path / "wide.parquet"
    columns = {"id": [str(number) for number in range(1, 41)], "url": ["https://h/1.jpg"] * 40,
               "license": ["CC BY 4.0"] * 40, **{f"c{number}": [None] * 40 for number in range(30)}}
    pq.write_table(pa.table(columns), path, row_group_size=1)
    footer = pq.ParquetFile(path).metadata.serialized_size
    monkeypatch.setattr(parquet_footer, "MAX_FOOTER_BYTES", footer - 1)
    items = list(read_rows(str(path), table_layout("parquet")))
    assert [(item.source_ref, item.reason) for item in items] == [("wide.parquet:1", "unreadable_file")]
    assert f"its Parquet footer is {footer:,} bytes, over the limit of {footer - 1:,}" in items[0].detail
    assert f"its Parquet footer is {footer:,} bytes" in sniff(str(path), table_layout("parquet"))
    monkeypatch.setattr(parquet_footer, "MAX_FOOTER_BYTES", footer)
    assert len([item for item in read_rows(str(path), table_layout("parquet")) if isinstance(item, Photo)]) == 40


def test_a_parquet_file_lacking_a_column_rejects_each_row_its_row_groups_hold_whatever_its_own_count_says(tmp_path):
    """A file whose columns cannot give our fields rejects each of its rows unread, counted from the footer: from the
    file's own count, which a writer states apart from its row groups', so a footer understating it (2 of 10) made the
    other rows vanish with no rejection, where a file with every column reads all 10. Counted from the row groups, as
    they are read."""
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"id": [str(number) for number in range(1, 11)], "url": ["http://h/x.jpg"] * 10}), path,
                   row_group_size=4)
    with_integers(path, {(3,): 2})
    assert pq.ParquetFile(path).metadata.num_rows == 2
    items = read_all(path, "parquet", "")
    assert [(item.source_ref, item.reason) for item in items] == [
        (f"b.parquet:{number}", "missing_column") for number in range(1, 11)]
    whole = tmp_path / "whole.parquet"  # the same understatement where every column is there: its rows are read
    pq.write_table(pa.table({"id": [str(number) for number in range(1, 11)], "url": ["http://h/x.jpg"] * 10,
                             "license": ["CC BY 4.0"] * 10}), whole, row_group_size=4)
    with_integers(whole, {(3,): 2})
    assert [item.photo_id for item in read_all(whole, "parquet", "")] == [str(number) for number in range(1, 11)]


# The footer's integers forged (by their paths, as with_integers takes them) and what the refusal says of the count.
_FORGED_COUNTS: list[tuple[dict[tuple[int, ...], int], str]] = [
    ({(4, 1, 3): 2}, "its column 'id' holds 4 values (as the footer says)"),
    ({(4, 1, 3): 0}, "its column 'id' holds 4 values (as the footer says)"),
    ({(4, 1, 3): 3, **{(4, 1, 1, leaf, 3, 5): 3 for leaf in range(3)}}, "holds 4 values (as its pages' headers say)"),
    ({(4, 1, 3): 6}, "its column 'id' holds 4 values (as the footer says)"),
    ({(4, 1, 3): 6, **{(4, 1, 1, leaf, 3, 5): 6 for leaf in range(3)}}, "holds 4 values (as its pages' headers say)"),
    ({(4, 1, 3): 0, **{(4, 1, 1, leaf, 3, 5): 0 for leaf in range(3)}}, "holds 4 values (as its pages' headers say)"),
    ({(4, 1, 3): 0, **{(4, 1, 1, leaf, 3, field): 0 for leaf in range(3) for field in (5, 9)}},
     "holds 4 values (as its pages' headers say)"),
]


@pytest.mark.parametrize(("forged", "counted"), _FORGED_COUNTS, ids=[
    "understated", "none", "understated everywhere", "overstated", "overstated everywhere", "none everywhere",
    "none everywhere from its dictionary page"])
def test_a_footer_stating_other_rows_than_a_row_group_holds_is_a_broken_file_not_rows_lost(tmp_path, forged, counted):
    """pyarrow reads the rows a footer states for a row group and no more: a footer saying 2 (or 0) of a row group's 4
    rows lost the others unread, no photo and no rejection, the rows after them numbered as if they were not there.
    Each of our columns must hold a value for each row stated, as the footer and then each page header count them;
    a row group that does not is the file's `unreadable_file` from its first row, the rows before it read. A row
    group stated empty, its columns' counts too, had no page read (its data page offsets zeroed as well, its pages
    lie after its dictionary pages, as in a writer's empty row group)."""
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"id": [str(number) for number in range(1, 11)],
                             "url": [f"http://h/{number}.jpg" for number in range(1, 11)],
                             "license": ["CC BY 4.0"] * 10}), path, row_group_size=4)
    with_integers(path, forged)
    assert pq.ParquetFile(path).metadata.row_group(1).num_rows == forged[(4, 1, 3)]
    items = read_all(path, "parquet", "")
    assert [(item.source_ref, getattr(item, "reason", item.photo_id)) for item in items] == [
        ("f.parquet:1", "1"), ("f.parquet:2", "2"), ("f.parquet:3", "3"), ("f.parquet:4", "4"),
        ("f.parquet:5", "unreadable_file")]
    assert f"RowsMismatch: row group 2 states {forged[(4, 1, 3)]:,} rows" in items[-1].detail
    assert counted in items[-1].detail
    with local_pipeline() as p:  # the job: the rows before it, and the rest one rejection
        read = p | ReadTable(str(path), table_layout("parquet"))
        assert_that(read.kept | beam.Map(lambda photo: photo.photo_id), equal_to(["1", "2", "3", "4"]), label="kept")
        assert_that(read.rejected | beam.Map(why), equal_to([("f.parquet:5", "read", "unreadable_file")]),
                    label="rejected")


def _with_an_empty_row_group(path: Path, columns: dict[str, list]) -> None:
    """`columns` written as a writer appending an empty batch writes them: rows 1-4, a row group of none, the rest."""
    table = pa.table(columns)
    with pq.ParquetWriter(path, table.schema) as writer:
        writer.write_table(table.slice(0, 4))
        writer.write_table(table.slice(0, 0))
        writer.write_table(table.slice(4))


def test_a_row_group_a_writer_leaves_empty_is_no_rows_and_no_broken_file(tmp_path):
    """A writer given an empty batch writes a row group of no rows (pyarrow: a dictionary page, no data page, its
    data page offset 0), or states no page at all (its offsets 0): it holds no rows, whether the file is read or its
    rows rejected for a missing column."""
    path = tmp_path / "e.parquet"
    _with_an_empty_row_group(path, {"id": [str(number) for number in range(1, 11)],
                                    "url": [f"http://h/{number}.jpg" for number in range(1, 11)],
                                    "license": ["CC BY 4.0"] * 10})
    assert [pq.ParquetFile(path).metadata.row_group(group).num_rows for group in range(3)] == [4, 0, 6]
    assert [item.photo_id for item in read_all(path, "parquet", "")] == [str(number) for number in range(1, 11)]
    with_integers(path, {(4, 1, 1, leaf, 3, 11): 0 for leaf in range(3)})  # its dictionary pages' offsets too
    assert [item.photo_id for item in read_all(path, "parquet", "")] == [str(number) for number in range(1, 11)]
    lacking = tmp_path / "l.parquet"
    _with_an_empty_row_group(lacking, {"id": [str(number) for number in range(1, 11)], "url": ["http://h/x.jpg"] * 10})
    assert [(item.source_ref, item.reason) for item in read_all(lacking, "parquet", "")] == [
        (f"l.parquet:{number}", "missing_column") for number in range(1, 11)]


@pytest.mark.parametrize(("forged", "counted"), [
    ({rows_of(1): 0}, "its column 'id' holds 4 values (as the footer says)"),
    ({rows_of(1): 0, **{values_of(1, leaf): 0 for leaf in range(2)}}, "holds 4 values (as its pages' headers say)"),
    ({rows_of(1): 10**12}, "its column 'id' holds 4 values (as the footer says)"),
    ({rows_of(1): 10**12, **{values_of(1, leaf): 10**12 for leaf in range(2)}},
     "holds 4 values (as its pages' headers say)"),
], ids=["none", "none everywhere", "a trillion", "a trillion everywhere"])
def test_a_parquet_file_lacking_a_column_counts_the_rows_its_row_groups_hold_as_a_read_checks_them(tmp_path, forged,
                                                                                                      counted):
    """A file whose columns cannot give our fields rejects each of its rows unread, counted from its row groups' counts
    in the footer, which nothing checked: a row group stated empty (its 4 rows vanished, no rejection) or of 10^12
    rows (10^12 rejections, 100,000 of them and `too_many_rows` in the job, for a file of 10 rows). Each count is
    checked as a read checks it, against the values its columns hold (footer, then page headers): a row group that
    does not hold its stated rows is the file's `unreadable_file` from its first row, the rows before it rejected."""
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"id": [str(number) for number in range(1, 11)], "url": ["http://h/x.jpg"] * 10}), path,
                   row_group_size=4)
    with_integers(path, forged)
    assert pq.ParquetFile(path).metadata.row_group(1).num_rows == forged[rows_of(1)]
    items = list(itertools.islice(read_rows(str(path), table_layout("parquet", "")), 20))
    assert [(item.source_ref, item.reason) for item in items] == [
        *((f"b.parquet:{number}", "missing_column") for number in range(1, 5)), ("b.parquet:5", "unreadable_file")]
    assert f"RowsMismatch: row group 2 states {forged[rows_of(1)]:,} rows" in items[-1].detail
    assert counted in items[-1].detail


def test_a_parquet_file_lacking_a_column_whose_rows_no_column_counts_is_one_rejection(tmp_path):
    """A file lacking one of our columns whose columns all hold lists: a list's values are not its rows, so no page
    header checks the rows its footer states (10^12, or none of its 10). It is one rejection, saying so, never 10^12
    nor none."""
    path = tmp_path / "lists.parquet"
    pq.write_table(pa.table({"id": [[str(number)] for number in range(1, 11)], "url": [["http://h/x.jpg"]] * 10}),
                   path, row_group_size=4)
    with_integers(path, {rows_of(1): 10**12})
    items = list(itertools.islice(read_rows(str(path), table_layout("parquet", "")), 20))
    assert [(item.source_ref, item.reason) for item in items] == [("lists.parquet:1", "missing_column")]
    assert items[0].detail.endswith("none of its columns holds one value a row, so its rows cannot be counted: the "
                                    "file is one rejection")


def test_an_empty_parquet_file_of_lists_lacking_a_column_is_no_rejection(tmp_path):
    """A file of lists alone that holds no row (an empty table, as pyarrow writes it: one row group of none) gave
    one rejection for a row it does not hold, as a file of rows no column counts does; rows stated none but held
    are still that one rejection."""
    empty = pa.table({"id": pa.array([], pa.list_(pa.string())), "url": pa.array([], pa.list_(pa.string()))})
    pq.write_table(empty, tmp_path / "empty.parquet")
    assert list(read_rows(str(tmp_path / "empty.parquet"), table_layout("parquet", ""))) == []
    held = tmp_path / "held.parquet"
    pq.write_table(pa.table({"id": [["1"], [], None], "url": [["http://h/x.jpg"]] * 3}), held)
    with_integers(held, {rows_of(0): 0, values_of(0, 0): 0, values_of(0, 1): 0})
    items = list(read_rows(str(held), table_layout("parquet", "")))
    assert [(item.source_ref, item.reason) for item in items] == [("held.parquet:1", "missing_column")]
    assert "its rows cannot be counted" in items[0].detail


def test_a_parquet_file_holding_none_of_our_columns_counts_its_rows_by_its_own(tmp_path):
    """A file none of whose columns is ours (the wrong file, or --columns forgotten) counts its rows by its first
    column of one value a row: its row group stated empty is not its 4 rows lost."""
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"tags": [["a"]] * 10, "photo": [str(number) for number in range(1, 11)]}), path,
                   row_group_size=4)
    with_integers(path, {rows_of(1): 0})
    items = list(itertools.islice(read_rows(str(path), table_layout("parquet", "")), 20))
    assert [(item.source_ref, item.reason) for item in items] == [
        *((f"other.parquet:{number}", "missing_column") for number in range(1, 5)),
        ("other.parquet:5", "unreadable_file")]
    assert "row group 2 states 0 rows, its column 'photo' holds 4 values (as the footer says)" in items[-1].detail
