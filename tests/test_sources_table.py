"""Generic metadata tables (CSV, TSV, Parquet, JSON lines) with a column mapping: the rows they
give, every bad row as a rejection with a reason, and the launch-time refusal of files that are
not what --input_format says."""

from __future__ import annotations

import bz2
import gzip
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
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.fixtures.demo_world import demo_image
from pipeline.fixtures.static_server import StaticServer, image
from pipeline.records import Photo, Rejection
from pipeline.sources.table import ReadTable, read_rows, sniff, table_layout
from pipeline.sources.yfcc import MAX_LINE_BYTES
from pipeline.stages.fetch import sized_url
from pipeline.stages.license import FilterLicense
from tests.conftest import FAST, corrupt_deflate, local_pipeline

THEIRS = "url=photo_url,id=photo_id,owner=author,title=caption,page_url=page,license=licence"
HEADER = ("photo_id", "photo_url", "author", "caption", "page", "licence", "unused")
GOOD = [
    {"photo_id": "11", "photo_url": "https://img.example.org/a/11.jpg", "author": "demo owner",
     "caption": "Chelsea the cat", "page": "https://example.org/p/11", "licence": "CC BY 4.0", "unused": "x"},
    {"photo_id": "012", "photo_url": "https://img.example.org/a/12.jpg", "author": "", "caption": "",
     "page": "", "licence": "https://creativecommons.org/licenses/by/2.0/", "unused": ""},
]
# What the YFCC source would emit for the same rows: (id, url, owner, title, page, license name, license url, ref),
# the license in its one canonical name and https URL whichever of them the row gave
EXPECTED = [
    ("11", "https://img.example.org/a/11.jpg", "demo owner", "Chelsea the cat", "https://example.org/p/11",
     "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/", 2),
    ("12", "https://img.example.org/a/12.jpg", "", "", "", "CC BY 2.0",
     "https://creativecommons.org/licenses/by/2.0/", 3),
]


def shape(photo: Photo) -> tuple:
    return (photo.photo_id, photo.download_url, photo.owner_name, photo.title, photo.page_url, photo.license_name,
            photo.license_url, photo.source_ref, photo.source)


def why(rejection: Rejection) -> tuple[str, str, str]:
    return rejection.photo_id, rejection.stage, rejection.reason


def csv_text(rows: list[dict], delimiter: str = ",", header: tuple[str, ...] = HEADER) -> str:
    lines = [delimiter.join(header)]
    lines += [delimiter.join(str(row.get(name, "")) for name in header) for row in rows]
    return "\n".join(lines) + "\n"


def write_table(path: Path, fmt: str, rows: list[dict]) -> Path:
    if fmt in ("csv", "tsv"):
        path.write_text(csv_text(rows, "," if fmt == "csv" else "\t"), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def read_all(path: Path, fmt: str, columns: str = THEIRS) -> list[Photo | Rejection]:
    return list(read_rows(str(path), table_layout(fmt, columns)))


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl"])
def test_every_format_gives_the_photos_the_yfcc_source_would(tmp_path, fmt):
    write_table(tmp_path / f"meta.{fmt}", fmt, GOOD)
    first_row = 1 if fmt in ("parquet", "jsonl") else 2  # text tables count their header as line 1
    expected = [(*row[:7], f"meta.{fmt}:{row[7] - 2 + first_row}", fmt) for row in EXPECTED]
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / "*"), table_layout(fmt, THEIRS))
        assert_that(read.kept | beam.Map(shape), equal_to(expected), label="kept")
        assert_that(read.rejected, equal_to([]), label="rejected")


def test_our_own_column_names_are_the_default_mapping(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("id,url,owner,title,page_url,license\n5,http://h/5.jpg,someone,t,http://p/5,CC BY 2.0\n")
    (photo,) = read_all(path, "csv", "")
    assert shape(photo) == ("5", "http://h/5.jpg", "someone", "t", "http://p/5", "CC BY 2.0",
                            "https://creativecommons.org/licenses/by/2.0/", "meta.csv:2", "csv")


def test_compressed_text_tables_and_a_byte_order_mark_are_read(tmp_path):
    text = "\ufeff" + csv_text(GOOD)
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "b.csv.bz2").write_bytes(bz2.compress(text.replace("a/1", "b/1").encode()))
    for name in ("a.csv.gz", "b.csv.bz2"):
        assert [item.photo_id for item in read_all(tmp_path / name, "csv")] == ["11", "12"]


def test_blank_lines_are_not_records(tmp_path):
    path = tmp_path / "meta.jsonl"
    path.write_text("\n" + json.dumps(GOOD[0]) + "\n  \n\r\n")
    assert [item.photo_id for item in read_all(path, "jsonl")] == ["11"]


def test_a_byte_order_mark_opening_a_json_lines_file_is_no_part_of_its_first_row(tmp_path):
    """CSV and TSV headers dropped it; a JSON lines file's first row was a malformed_row."""
    path = tmp_path / "meta.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(row) + "\n" for row in GOOD[:2]).encode())
    assert [item.photo_id for item in read_all(path, "jsonl")] == ["11", "12"]


BY_2, BY_4 = "https://creativecommons.org/licenses/by/2.0/", "https://creativecommons.org/licenses/by/4.0/"
LICENCES = [  # (the row's licence in one column that holds a URL or a name, kept as (name, URL) or rejected with)
    ("CC BY 4.0", ("CC BY 4.0", BY_4)),
    ("cc  by 2.0", ("CC BY 2.0", BY_2)),
    ("CC-BY-4.0", ("CC BY 4.0", BY_4)),  # the SPDX spelling
    ("Attribution License", ("CC BY 2.0", BY_2)),  # Flickr's name for CC BY 2.0
    ("https://creativecommons.org/licenses/by/4.0/", ("CC BY 4.0", BY_4)),
    ("HTTP://WWW.CreativeCommons.org/licenses/by/2.0", ("CC BY 2.0", BY_2)),
    ("CC BY 3.0", "CC BY 3.0"),  # only the versions Flickr offers (ids 4 and 11): see README
    ("https://creativecommons.org/licenses/by/3.0/", "https://creativecommons.org/licenses/by/3.0/"),
    ("CC BY-SA 4.0", "CC BY-SA 4.0 | https://creativecommons.org/licenses/by-sa/4.0/"),
    ("CC-BY-NC-4.0", "CC BY-NC 4.0 | https://creativecommons.org/licenses/by-nc/4.0/"),
    ("https://creativecommons.org/licenses/by-nc/2.0/", "CC BY-NC 2.0 | https://creativecommons.org/licenses/by-nc/2.0/"),
    ("All rights reserved", "All Rights Reserved"),
    ("", "no license given"),
]


def test_the_license_stage_decides_each_rows_licence(tmp_path):
    """Each row's license is recorded in its canonical name and https URL, the table's own words beside them (rows
    gave 'cc-by-4.0' with no URL, or an http URL with no name, into ATTRIBUTION.csv), and the license stage decides."""
    rows = [{**GOOD[0], "photo_id": str(number), "licence": licence}
            for number, (licence, _) in enumerate(LICENCES, 1)]
    path = write_table(tmp_path / "meta.csv", "csv", rows)
    kept = [(str(number), *outcome, licence) for number, (licence, outcome) in enumerate(LICENCES, 1)
            if isinstance(outcome, tuple)]
    rejected = [(str(number), "license", "not_cc_by", outcome)
                for number, (_, outcome) in enumerate(LICENCES, 1) if isinstance(outcome, str)]
    with local_pipeline() as p:
        licensed = (p | ReadTable(str(path), table_layout("csv", THEIRS))).kept | FilterLicense()
        assert_that(licensed.kept | beam.Map(lambda photo: (photo.photo_id, photo.license_name, photo.license_url,
                                                            photo.license_source_text + photo.license_source_url)),
                    equal_to(kept), label="kept")
        assert_that(licensed.rejected | beam.Map(lambda r: (*why(r), r.detail)), equal_to(rejected),
                    label="rejected")


def test_bad_csv_rows_are_rejections_with_reasons_and_good_rows_still_pass(tmp_path):
    good = csv_text([GOOD[0]]).splitlines()[1]
    lines = [
        ",".join(HEADER),
        good,                                                   # 2 kept
        good.replace("11,", ",", 1),                            # 3 missing_id
        good.replace("11,", "../x,", 1),                        # 4 bad_id
        good.replace("https://img.example.org/a/11.jpg", ""),   # 5 missing_url
        good + ",extra",                                        # 6 wrong_column_count
        good.replace("Chelsea the cat", '"Chelsea" the cat'),   # 7 malformed_row
        good.replace("Chelsea", "Chel\x00sea"),                 # 8 bad_field (NUL)
        good.replace("https://img", "https://" + "i" * 5000),   # 9 bad_field (url too long)
        good.replace("Chelsea the cat", "=HYPERLINK(\"http://evil\")".replace('"', '""').join('""')),  # 10 kept
        good.replace("https://img.example.org/a/11.jpg", "javascript:alert(1)").replace("11,", "13,", 1),  # 11 kept
    ]
    raw = ("\n".join(lines) + "\n").encode()
    raw += good.replace("Chelsea", "Ch\xe9lsea").encode("latin-1") + b"\n"  # 12 bad_encoding
    raw += good.replace("Chelsea the cat", "x" * (MAX_LINE_BYTES + 10)).encode() + b"\n"  # 13 line_too_long
    path = tmp_path / "meta.csv"
    path.write_bytes(raw)
    items = read_all(path, "csv")
    assert len(items) == 12  # every data line, once
    kept = [item for item in items if isinstance(item, Photo)]
    assert [(p.photo_id, p.source_ref) for p in kept] == [("11", "meta.csv:2"), ("11", "meta.csv:10"),
                                                          ("13", "meta.csv:11")]
    assert kept[1].title == '=HYPERLINK("http://evil")'  # text, neutralised where it is written (sinks)
    assert kept[2].download_url == "javascript:alert(1)"  # the fetch stage refuses it (bad_url)
    rejected = {item.source_ref: (item.photo_id, item.stage, item.reason)
                for item in items if isinstance(item, Rejection)}
    assert rejected == {
        "meta.csv:3": ("meta.csv:3", "read", "missing_id"),
        "meta.csv:4": ("meta.csv:4", "read", "bad_id"),
        "meta.csv:5": ("11", "read", "missing_url"),
        "meta.csv:6": ("meta.csv:6", "read", "wrong_column_count"),
        "meta.csv:7": ("meta.csv:7", "read", "malformed_row"),
        "meta.csv:8": ("meta.csv:8", "read", "bad_field"),
        "meta.csv:9": ("11", "read", "bad_field"),
        "meta.csv:12": ("meta.csv:12", "read", "bad_encoding"),
        "meta.csv:13": ("meta.csv:13", "read", "line_too_long"),
    }
    details = {item.source_ref: item.detail for item in items if isinstance(item, Rejection)}
    assert "NUL" in details["meta.csv:8"] and "url" in details["meta.csv:9"]
    assert "8 columns" in details["meta.csv:6"] and "header has 7" in details["meta.csv:6"]


def test_bad_json_lines_are_rejections_with_reasons(tmp_path):
    lines = [
        json.dumps(GOOD[0]),                                     # 1 kept
        "{not json",                                             # 2 malformed_row
        json.dumps([GOOD[0]]),                                   # 3 malformed_row (not an object)
        json.dumps({**GOOD[0], "photo_id": 1.5}),                # 4 bad_id
        json.dumps({**GOOD[0], "photo_id": 14}),                 # 5 kept: a JSON number id
        json.dumps({**GOOD[0], "photo_url": 7}),                 # 6 bad_field
        json.dumps({**GOOD[0], "caption": ["a", "list"]}),       # 7 bad_field
        json.dumps({**GOOD[0], "photo_url": None}),              # 8 missing_url
        json.dumps({key: value for key, value in GOOD[0].items() if key != "photo_id"}),  # 9 missing_id
        "[" * 100_000 + "]" * 100_000,                           # 10 line_too_long (before any parse)
        "[" * 30_000 + "]" * 30_000,                             # 11 malformed_row (nesting, not a crash)
        json.dumps({**GOOD[0], "author": "a\u0000b"}),           # 12 bad_field (NUL)
    ]
    path = tmp_path / "meta.jsonl"
    path.write_text("\n".join(lines) + "\n")
    items = read_all(path, "jsonl")
    assert [(item.photo_id, item.source_ref) for item in items if isinstance(item, Photo)] == [
        ("11", "meta.jsonl:1"), ("14", "meta.jsonl:5")]
    assert {item.source_ref: (item.photo_id, item.reason) for item in items if isinstance(item, Rejection)} == {
        "meta.jsonl:2": ("meta.jsonl:2", "malformed_row"),
        "meta.jsonl:3": ("meta.jsonl:3", "malformed_row"),
        "meta.jsonl:4": ("meta.jsonl:4", "bad_id"),
        "meta.jsonl:6": ("11", "bad_field"),
        "meta.jsonl:7": ("11", "bad_field"),
        "meta.jsonl:8": ("11", "missing_url"),
        "meta.jsonl:9": ("meta.jsonl:9", "missing_id"),
        "meta.jsonl:10": ("meta.jsonl:10", "line_too_long"),
        "meta.jsonl:11": ("meta.jsonl:11", "malformed_row"),
        "meta.jsonl:12": ("11", "bad_field"),
    }
    # Said in JSON's words: "photo id is a float, not a number" read as a contradiction, and a nested object was
    # named by the reader's own class ("holds a _Object").
    details = {item.source_ref: item.detail for item in items if isinstance(item, Rejection)}
    assert details["meta.jsonl:4"].endswith("photo id is a decimal number, not a whole number")
    assert "holds a list, not text" in details["meta.jsonl:7"]
    path.write_text(json.dumps({**GOOD[0], "caption": {"nested": 1}}) + "\n")
    assert "holds a JSON object, not text" in read_all(path, "jsonl")[0].detail


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
    assert "photo_url" in items[0].detail and "int" in items[0].detail
    # A struct, list or map column is never one of our fields, and is not read: a list's row can span any number
    # of pages, so no page bound would bound its batch. Every row is rejected, the null one too.
    nested = ints.append_column("caption", pa.array([{"a": 1}, None], pa.struct([("a", pa.int64())])))
    pq.write_table(nested, tmp_path / "nested.parquet")
    items = read_all(tmp_path / "nested.parquet", "parquet")
    assert [(item.photo_id, item.reason) for item in items] == [("nested.parquet:1", "bad_field"),
                                                                ("nested.parquet:2", "bad_field")]
    assert "'caption' holds struct<a: int64> values" in items[0].detail


def test_a_file_without_a_mapped_required_column_rejects_each_of_its_rows(tmp_path):
    (tmp_path / "a.csv").write_text("photo_id,licence\n1,CC BY 4.0\n2,CC BY 4.0\n")
    items = read_all(tmp_path / "a.csv", "csv")
    assert [(item.source_ref, item.reason) for item in items] == [("a.csv:2", "missing_column"),
                                                                  ("a.csv:3", "missing_column")]
    assert "photo_url" in items[0].detail
    pq.write_table(pa.table({"photo_id": ["1", "2"], "licence": ["CC BY 4.0"] * 2}), tmp_path / "b.parquet")
    assert [(item.source_ref, item.reason) for item in read_all(tmp_path / "b.parquet", "parquet")] == [
        ("b.parquet:1", "missing_column"), ("b.parquet:2", "missing_column")]
    (tmp_path / "c.csv").write_text("photo_id,photo_url,photo_url,licence\n1,http://h/1.jpg,x,CC BY 4.0\n")
    assert [(item.source_ref, item.reason) for item in read_all(tmp_path / "c.csv", "csv")] == [
        ("c.csv:2", "bad_header")]
    # An optional field twice too: which 'author' is the creator to credit? (the last one silently won)
    (tmp_path / "d.csv").write_text("photo_id,photo_url,author,licence,author\n1,http://h/1.jpg,Ann,CC BY 4.0,Bob\n")
    [rejection] = read_all(tmp_path / "d.csv", "csv")
    assert (rejection.source_ref, rejection.reason) == ("d.csv:2", "bad_header") and "'author'" in rejection.detail
    (tmp_path / "e.csv").write_text("photo_id,photo_url,licence,unused,unused\n1,http://h/1.jpg,CC BY 4.0,a,b\n")
    assert [item.photo_id for item in read_all(tmp_path / "e.csv", "csv")] == ["1"]  # columns we do not read
    # JSON lines: an object giving a field we read twice is that row's rejection; keys we do not read may repeat
    row = '"photo_url": "http://h/{0}.jpg", "licence": "CC BY 4.0"'
    lines = ['{"photo_id": "1", ' + row.format(1) + ', "author": "Ann", "author": "Bob"}',
             '{"photo_id": "2", ' + row.format(2) + ', "x": {"y": 1, "y": 2}, "z": 1, "z": 2}',
             '{"photo_id": "3", "photo_id": "4", ' + row.format(4) + '}',
             '{' + ', '.join(['"q": 1'] * 5_000) + ', "photo_id": "5", ' + row.format(5) + '}']
    (tmp_path / "f.jsonl").write_text("\n".join(lines) + "\n")
    items = read_all(tmp_path / "f.jsonl", "jsonl")
    assert [(getattr(item, "reason", None), item.source_ref) for item in items] == [
        ("malformed_row", "f.jsonl:1"), (None, "f.jsonl:2"), ("malformed_row", "f.jsonl:3"), (None, "f.jsonl:4")]
    assert "'author'" in items[0].detail and "'photo_id'" in items[2].detail


def test_an_unreadable_parquet_file_is_a_rejection_and_the_other_files_are_read(tmp_path):
    write_table(tmp_path / "good.parquet", "parquet", GOOD)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / "*.parquet"), table_layout("parquet", THEIRS))
        assert_that(read.kept | beam.Map(lambda photo: photo.photo_id), equal_to(["11", "12"]), label="kept")
        assert_that(read.rejected | beam.Map(why), equal_to([("bad.parquet:1", "read", "unreadable_file")]),
                    label="rejected")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_named_without_a_wildcard_and_gone_when_read_is_a_rejection(tmp_path, fmt):
    """The launch check saw it; gone when the job lists it, it gave no row and no rejection."""
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / f"gone.{fmt}"), table_layout(fmt, THEIRS))
        assert_that(read.kept, equal_to([]), label="kept")
        assert_that(read.rejected | beam.Map(why), equal_to([(f"gone.{fmt}:1", "read", "unreadable_file")]),
                    label="rejected")


def test_a_row_that_breaks_the_parser_unforeseen_is_one_internal_error_and_the_file_goes_on(tmp_path, monkeypatch):
    from pipeline.sources import table

    real = table.parse_row

    def fragile(values, ref, layout):
        if values["photo_id"] == "11":
            raise KeyError("unforeseen")
        return real(values, ref, layout)

    monkeypatch.setattr(table, "parse_row", fragile)
    items = read_all(write_table(tmp_path / "meta.csv", "csv", GOOD), "csv")
    assert [(item.source_ref, getattr(item, "reason", "kept")) for item in items] == [
        ("meta.csv:2", "internal_error"), ("meta.csv:3", "kept")]


def test_the_readme_example_is_read_as_documented(tmp_path):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Generic tables", 1)[1].split("## What the job does", 1)[0]
    example, command = [block.split("```", 1)[0].strip() for block in section.split("```\n")[1::2]]
    columns = command.split("--columns=", 1)[1].split()[0]
    path = tmp_path / "photos.csv"
    path.write_text(example + "\n")
    (photo,) = read_all(path, "csv", columns)
    assert shape(photo)[:7] == ("1003", "http://127.0.0.1:8000/1/1003_abcdef0123.jpg", "demo owner",
                                "Chelsea the cat", "", "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/")


CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=30)


@given(st.lists(st.lists(CELL, min_size=0, max_size=9), max_size=6))
def test_reading_any_csv_never_raises_and_accounts_for_every_line(cells):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.csv"
        lines = [",".join(HEADER), *(",".join(row) for row in cells)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        items = read_all(path, "csv")
    assert all(isinstance(item, (Photo, Rejection)) for item in items)
    # A record's first line names it, each once, in order; a quoted value's line breaks join lines into one record
    # (`"` then `",,,,,,`: one), so only a file without quotes gives one record a line (not blank: ASCII white space)
    starts = [int(item.source_ref.rpartition(":")[2]) for item in items]
    lines = [number for number, row in enumerate(cells, 2) if ",".join(row).encode().strip()]
    assert starts == sorted(set(starts)) and set(starts) <= set(lines) and starts[:1] == lines[:1]
    if not any('"' in cell for row in cells for cell in row):
        assert starts == lines


def test_a_generic_row_s_urls_are_its_own_whatever_their_file_names_say(tmp_path):
    """A table's ids may be its own numbering and its files named anything: a phone's `20210612_143015.jpg` on its
    own host, or its row 11 pointing at Flickr's file of photo 12, are kept (the YFCC and API sources, whose rows
    are Flickr's own, refuse a URL naming another photo: test_fields.py)."""
    rows = [{**GOOD[0], "photo_url": "https://images.example.org/2021/20210612_143015.jpg"},
            {**GOOD[0], "photo_id": "13", "photo_url": "https://live.staticflickr.com/1/12_abcdef0123.jpg",
             "page": "https://www.flickr.com/photos/someone/12/"}]
    kept = read_all(write_table(tmp_path / "meta.csv", "csv", rows), "csv")
    assert [(item.photo_id, item.download_url) for item in kept] == [("11", rows[0]["photo_url"]),
                                                                      ("13", rows[1]["photo_url"])]


def test_a_generic_row_on_another_host_is_fetched_as_given_not_as_a_flickr_size(tmp_path):
    url = "http://127.0.0.1:8000/1/1001_abcdef0123.jpg"  # shaped like a Flickr static URL
    path = write_table(tmp_path / "meta.csv", "csv", [{**GOOD[0], "photo_url": url}])
    (photo,) = read_all(path, "csv")
    assert sized_url(photo, 1024) == url
    flickr = write_table(tmp_path / "flickr.csv", "csv",
                         [{**GOOD[0], "photo_url": "https://live.staticflickr.com/1/1001_abcdef0123.jpg"}])
    (photo,) = read_all(flickr, "csv")
    assert sized_url(photo, 1024) != photo.download_url  # Flickr's own hosts still get a sized copy


@pytest.mark.parametrize("columns,message", [
    ("urll=photo_url", "unknown field 'urll'"),
    ("url=a,url=b", "'url' is mapped twice"),
    ("url", "expected FIELD=COLUMN"),
    ("url=", "expected FIELD=COLUMN"),
])
def test_a_column_mapping_that_cannot_be_understood_is_refused(columns, message):
    with pytest.raises(ValueError, match=message):
        table_layout("csv", columns)


def test_sniff_accepts_good_files_and_names_what_is_wrong_with_the_others(tmp_path):
    layout = table_layout("csv", THEIRS)
    assert sniff(str(write_table(tmp_path / "good.csv", "csv", GOOD)), layout) is None
    (tmp_path / "header_only.csv").write_text(",".join(HEADER) + "\n")
    assert sniff(str(tmp_path / "header_only.csv"), layout) is None
    (tmp_path / "empty.csv").write_text("")
    assert sniff(str(tmp_path / "empty.csv"), layout) == "is empty"
    (tmp_path / "no_url.csv").write_text("photo_id,licence,author\n1,CC BY 4.0,x\n")
    assert "no column 'photo_url' (--columns url=photo_url)" in sniff(str(tmp_path / "no_url.csv"), layout)
    (tmp_path / "typo.csv").write_text("photo_id,photo_url,licence\n1,http://h/1.jpg,CC BY 4.0\n")
    assert "no column 'author' (--columns owner=author)" in sniff(str(tmp_path / "typo.csv"), layout)
    (tmp_path / "twice.csv").write_text("photo_id,photo_url,licence,photo_url\n1,http://h/1.jpg,CC BY 4.0,x\n")
    assert sniff(str(tmp_path / "twice.csv"), layout).startswith(  # was "has column 'photo_url' appears 2 times"
        "has column 'photo_url' 2 times in its header; its columns:")
    (tmp_path / "jpeg.csv").write_bytes(b"\xff\xd8\xff\xe0 a JPEG given as --input")
    assert "does not look like CSV" in sniff(str(tmp_path / "jpeg.csv"), layout)
    rows = "".join(f"{i},,a,b,https://p/{i},CC BY 4.0,\n" for i in range(1, 11))  # no row has a URL
    (tmp_path / "no_urls.csv").write_text(",".join(HEADER) + "\n" + rows)
    assert "missing_url" in sniff(str(tmp_path / "no_urls.csv"), layout)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_sniff_reads_on_past_rows_refused_for_their_values_to_a_photo(tmp_path, fmt):
    """Five rows without a URL (photos deleted, listed first) refused the whole --input at launch as "does not look
    like CSV"; a row refused for its values is read in the right format, and the check reads on, up to SNIFFED_ROWS,
    for one that gives a photo. A file that gives none in those is still refused, saying so."""
    from pipeline.sources.table import SNIFFED_ROWS

    layout = table_layout(fmt, THEIRS)
    gone = [{**GOOD[0], "photo_id": str(number), "photo_url": ""} for number in range(100, 120)]
    path = write_table(tmp_path / f"meta.{fmt}", fmt, [*gone, *GOOD])
    assert sniff(str(path), layout) is None
    path = write_table(tmp_path / f"none.{fmt}", fmt, [{**gone[0], "photo_id": str(number)}
                                                         for number in range(100, 100 + SNIFFED_ROWS + 5)])
    assert sniff(str(path), layout).startswith(f"gives no photo in its first {SNIFFED_ROWS:,} rows: none.{fmt}:")
    assert "missing_url" in sniff(str(path), layout)


def test_a_header_without_a_required_column_rejects_each_record_once_not_each_line(tmp_path):
    """Each line of a file whose header lacks the license column was a rejection: a title of two lines was two rows
    refused, the rejections more than the rows. A header read gives each record's extent, as when it is complete."""
    (tmp_path / "a.csv").write_text('id,url,title\n1,http://h/1.jpg,"two\nlines"\n2,http://h/2.jpg,"three\nlines\n'
                                    'here"\n3,http://h/3.jpg,one\n', encoding="utf-8")
    items = list(read_rows(str(tmp_path / "a.csv"), table_layout("csv")))
    assert [(item.source_ref, item.reason) for item in items] == [
        ("a.csv:2", "missing_column"), ("a.csv:4", "missing_column"), ("a.csv:7", "missing_column")]


def test_a_lone_cr_between_a_json_line_s_tokens_is_whitespace_not_a_line_end(tmp_path):
    """JSON lines end at a \\n (a CRLF's CR dropped); a lone CR is whitespace a JSON value may hold between its tokens:
    ended there as a CSV's line is, one object was two malformed rows."""
    text = json.dumps(GOOD[0]).replace(", ", ",\r", 2) + "\r\n" + json.dumps(GOOD[1]) + "\n"
    (tmp_path / "meta.jsonl").write_bytes(text.encode())
    items = read_all(tmp_path / "meta.jsonl", "jsonl")
    assert [shape(item) for item in items] == [(*row[:7], f"meta.jsonl:{row[7] - 1}", "jsonl") for row in EXPECTED]


def test_an_empty_file_beside_parquet_parts_is_no_rows_and_no_error(tmp_path):
    (tmp_path / "_SUCCESS").write_bytes(b"")
    assert read_all(tmp_path / "_SUCCESS", "parquet") == []
    assert sniff(str(tmp_path / "_SUCCESS"), table_layout("parquet", THEIRS)) == "is empty"


def test_sniff_refuses_a_file_in_another_format_than_declared(tmp_path):
    parquet = write_table(tmp_path / "meta.parquet", "parquet", GOOD)
    jsonl = write_table(tmp_path / "meta.jsonl", "jsonl", GOOD)
    csv = write_table(tmp_path / "meta.csv", "csv", GOOD)
    assert sniff(str(parquet), table_layout("parquet", THEIRS)) is None
    assert sniff(str(jsonl), table_layout("jsonl", THEIRS)) is None
    assert "cannot be read as Parquet" in sniff(str(csv), table_layout("parquet", THEIRS))
    assert "does not look like JSON lines" in sniff(str(csv), table_layout("jsonl", THEIRS))
    assert "does not look like JSON lines" in sniff(str(parquet), table_layout("jsonl", THEIRS))
    assert "no column 'photo_id'" in sniff(str(csv), table_layout("tsv", THEIRS))  # one column: the whole line
    yfcc = tmp_path / "yfcc.tsv"
    yfcc.write_text("\t".join(["1", "123", *[""] * 23]) + "\n")
    assert "no column" in sniff(str(yfcc), table_layout("tsv", ""))


@pytest.mark.parametrize("argv,message", [
    (["--input_format=csv", f"--columns={THEIRS.replace('url=photo_url', 'url=nope')}"],
     "no column 'nope' (--columns url=nope)"),
    (["--input_format=parquet"], "cannot be read as Parquet"),
    (["--input_format=csv", "--columns=colour=x"], "--columns: unknown field 'colour'"),
    (["--columns=url=photo_url"], "--columns applies to --input_format=csv, tsv, tsv_plain, parquet or jsonl"),
])
def test_a_run_on_a_table_it_cannot_read_is_refused_at_launch_in_one_line(tmp_path, capsys, argv, message):
    given = write_table(tmp_path / "meta.csv", "csv", GOOD)
    assert main(["run", f"--input={given}", f"--output={tmp_path / 'out'}", *argv, *FAST]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and message in error, error
    assert not (tmp_path / "out").exists()


def test_a_dataset_built_from_a_generic_csv(tmp_path, capsys):
    """The whole job through the CLI: kept ids, every other row's rejection, no Flickr size asked of
    a host that is not Flickr's, and the format and mapping recorded in the manifest."""
    with StaticServer() as server:
        def url(name: str) -> str:
            return server.add(f"/1/{name}_abcdef0123.jpg", image(demo_image(f"{name}.jpg")))

        rows = [
            {"photo_id": "1", "photo_url": url("chelsea"), "author": "demo owner", "caption": "cat",
             "licence": "CC BY 4.0"},
            {"photo_id": "2", "photo_url": url("coffee"), "licence": "https://creativecommons.org/licenses/by/2.0/"},
            {"photo_id": "3", "photo_url": url("brick"), "caption": '"=HYPERLINK(""http://evil"")"',
             "licence": "Attribution License"},
            {"photo_id": "4", "photo_url": url("coins"), "licence": "CC BY-NC 4.0"},
            {"photo_id": "../5", "photo_url": url("gravel"), "licence": "CC BY 4.0"},
            {"photo_id": "6", "photo_url": "file:///etc/passwd", "licence": "CC BY 4.0"},
            {"photo_id": "7", "photo_url": "", "licence": "CC BY 4.0"},
            {"photo_id": "8", "photo_url": "http://elsewhere.example.org/8.jpg", "licence": "CC BY 4.0"},
        ]
        metadata = tmp_path / "photos.csv"
        metadata.write_text(csv_text(rows))
        output = tmp_path / "out"
        code = main(["run", f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}",
                     "--input_format=csv", f"--columns={THEIRS}", "--max_side=1024", "--min_side=16", *FAST])
        assert code == 0, capsys.readouterr().err
        assert set(server.hits) == {f"/1/{name}_abcdef0123.jpg" for name in ("chelsea", "coffee", "brick")}
    kept = pq.read_table(output / "parquet", columns=["photo_id", "title", "license_name", "license_url"])
    assert sorted(kept.column("photo_id").to_pylist()) == ["1", "2", "3"]
    assert '=HYPERLINK("http://evil")' in kept.column("title").to_pylist()
    rejections = pq.read_table(output / "rejections").to_pylist()
    assert {(r["photo_id"], r["stage"], r["reason"]) for r in rejections} == {
        ("4", "license", "not_cc_by"), ("photos.csv:6", "read", "bad_id"), ("6", "fetch", "bad_url"),
        ("7", "read", "missing_url"), ("8", "fetch", "host_not_allowed")}
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["options"]["input_format"] == "csv" and manifest["options"]["columns"] == THEIRS
    assert manifest["inputs"]["input_format"] == "csv"
    stats = json.loads((output / "stats.json").read_text())
    assert stats["input_rows"] == len(rows) and stats["accounted"]
    assert "'=HYPERLINK" in (output / "ATTRIBUTION.csv").read_text()


def test_a_lone_surrogate_is_a_rejection_not_a_failed_job(tmp_path):
    """'\\ud800' is valid JSON but no UTF-8 text: the record coder raised on it at the first shuffle and the
    whole job failed (exit 1, nothing written); every writer would have raised too."""
    row = '"photo_url": "http://h/{0}.jpg", "licence": "CC BY 4.0"'
    (tmp_path / "s.jsonl").write_text('{"photo_id": "1", ' + row.format(1) + ', "caption": "bad \\ud800 title"}\n'
                                      '{"photo_id": "2", ' + row.format(2) + ', "caption": "fine \\u00e9"}\n')
    items = read_all(tmp_path / "s.jsonl", "jsonl")
    assert [(getattr(item, "reason", None), item.photo_id) for item in items] == [("bad_field", "1"), (None, "2")]
    assert "lone surrogate" in items[0].detail and items[1].title == "fine é"


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


def test_a_gzip_table_corrupt_midway_is_one_rejection_and_no_row(tmp_path):
    """A deflate stream corrupt midway raises zlib.error (no OSError): it escaped the reader and failed the job.
    The file is checked whole before its first row, so the rows before the damage are not read either."""
    text = csv_text([{**GOOD[0], "photo_id": str(i)} for i in range(1, 20_001)]).encode()
    (tmp_path / "meta.csv.gz").write_bytes(corrupt_deflate(gzip.compress(text)))
    items = read_all(tmp_path / "meta.csv.gz", "csv")
    assert [(item.source_ref, item.reason) for item in items] == [("meta.csv.gz:1", "unreadable_file")]
    assert "error" in items[0].detail
    assert sniff(str(tmp_path / "meta.csv.gz"), table_layout("csv", THEIRS)) is None  # a few rows: no check
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / "meta.csv.gz"), table_layout("csv", THEIRS))
        assert_that(read.rejected | beam.Map(lambda r: r.reason), equal_to(["unreadable_file"]))


def test_a_gzip_table_replaced_after_its_check_gives_only_rows_the_check_saw(tmp_path, monkeypatch):
    """The table readers read a compressed file as checked (`yfcc._AsChecked`), as the YFCC reader does."""
    from pipeline.sources import yfcc

    rows = [{**GOOD[0], "photo_id": str(i)} for i in range(1, 2_001)]
    path = tmp_path / "meta.csv.gz"
    path.write_bytes(gzip.compress(csv_text(rows).encode()))
    checked = yfcc.check_compressed

    def check_then_replace(name: str):
        crcs = checked(name)
        path.write_bytes(gzip.compress(csv_text(rows[:1_000] + [{**GOOD[0], "photo_id": "999999"}] * 1_000).encode()))
        return crcs

    monkeypatch.setattr(yfcc, "check_compressed", check_then_replace)
    monkeypatch.setattr(yfcc, "_CHECKED_PIECE", 16 * 1024)
    items = read_all(path, "csv")
    kept = [item.photo_id for item in items if isinstance(item, Photo)]
    assert 0 < len(kept) <= 1_000 and kept == [str(i) for i in range(1, len(kept) + 1)]
    assert [(item.source_ref, item.reason) for item in items[len(kept):]] == [
        (f"meta.csv.gz:{len(kept) + 2}", "unreadable_file")]  # line 1 is the header


@pytest.mark.parametrize("page", ["javascript:alert(1)", "file:///etc/passwd", "https://p/a b", "https://p/\x1b[2J"])
def test_a_page_url_attribution_could_not_link_to_is_a_bad_field(tmp_path, page):
    """ATTRIBUTION.csv links each photo to its page: only http(s), with no space or control character."""
    items = read_all(write_table(tmp_path / "meta.jsonl", "jsonl", [{**GOOD[0], "page": page}, GOOD[1]]), "jsonl")
    assert [(item.photo_id, getattr(item, "reason", "kept")) for item in items] == [("11", "bad_field"), ("12", "kept")]
    assert "'page'" in items[0].detail and "http(s)" in items[0].detail


def test_a_quoted_value_holding_line_breaks_is_one_record_as_spreadsheets_and_pandas_write_it(tmp_path):
    """Each line was a row of its own: a description of two paragraphs made the photo's first line a malformed_row
    and the next a wrong_column_count, the photo lost. A stray quote takes the lines up to the one that closes it (here
    by a quote read as its value's end, then an error), as Python's csv reader reads the text: one record, refused."""
    (tmp_path / "a.csv").write_bytes(
        b'id,url,license,title,description\r\n'
        b'5,http://h/5.jpg,CC BY 4.0,"two\r\nlines","para 1\r\n\r\npara 3, with ""quotes"""\r\n'
        b'6,http://h/6.jpg,CC BY 4.0,"a stray quote,\r\n'
        b'7,http://h/7.jpg,CC BY 4.0,seven,\r\n'
        b'8,http://h/8.jpg,CC BY 4.0,eight,"closes ""the"" stray one\r\n'
        b'9,http://h/9.jpg,CC BY 4.0,nine,\r\n')
    items = list(read_rows(str(tmp_path / "a.csv"), table_layout("csv")))
    assert [(item.source_ref, getattr(item, "reason", "")) for item in items] == [
        ("a.csv:2", ""), ("a.csv:6", "malformed_row"), ("a.csv:9", "")]
    # a line break inside a value reads as "\n" whatever the file's line ends (a line's are dropped before its cells)
    assert items[0].title == "two\nlines" and [item.photo_id for item in items[::2]] == ["5", "9"]


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r"])
@given(rows=st.lists(st.tuples(st.integers(1, 10**6), st.text(st.sampled_from('ab ,"\n\r'), max_size=12)),
                     min_size=1, max_size=8))
def test_records_read_as_pythons_csv_module_reads_a_file_written_by_it(tmp_path_factory, rows, ending):
    """The oracle: Python's own csv reader over the whole text, which a line-by-line reader must agree with on any
    file csv.writer (or pandas, or a spreadsheet) writes, titles holding quotes, commas and line breaks (each line
    break read as "\n", carriage returns before it dropped, as a line's own end is), its rows ended by CRLF, LF or a
    lone CR (a classic Mac export: read as one line, its header holding every row, it gave no row and no rejection)."""
    import csv
    import io
    import re

    folder = tmp_path_factory.mktemp("csv")
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator=ending)
    writer.writerow(["id", "url", "license", "title"])
    for number, title in rows:
        writer.writerow([number, f"http://h/{number}.jpg", "CC BY 4.0", title])
    (folder / "t.csv").write_text(text.getvalue(), encoding="utf-8", newline="")
    expected = [row for row in csv.reader(io.StringIO(text.getvalue(), newline=""))][1:]
    items = list(read_rows(str(folder / "t.csv"), table_layout("csv")))
    # Python 3.11's writer quotes a value holding a line break only where the line terminator holds it: an unquoted
    # CR or LF ends the record there, for the oracle too, and what follows it is a record of its own, refused (a line
    # of spaces is no record, no row)
    assert [(item.photo_id, item.title) if isinstance(item, Photo) else item.reason for item in items] == [
        (row[0], re.sub("\r*\n", "\n", row[3]).strip()) if len(row) == 4 else "wrong_column_count"
        for row in expected if row != [] and row[0].strip() + str(len(row)) != "1"]


def test_a_record_left_open_is_parsed_a_line_at_a_time_not_again_as_it_grows(tmp_path, monkeypatch):
    """A quote left open took the lines after it, and the whole record so far was parsed again at each: 1,024 lines
    of escaped quotes (64 KiB) cost 32 MB of parsing, for every such line of a hostile file. Each line is now parsed
    once while the record grows (and once more for whether it reads as a row), and the record once it closes: here
    the first block's value runs to the next block's opening line (a quote then a letter: an error ends it), the lines
    of the second block are each a record, and the third block's value never closes."""
    from pipeline.sources import table

    parsed = []
    real = table._quote_left_open
    monkeypatch.setattr(table, "_quote_left_open",
                        lambda raw, delimiter: parsed.append(len(raw)) or real(raw, delimiter))
    block = '5,http://h/5.jpg,CC BY 4.0,"open\n' + ('""' * 30 + "\n") * 1000
    (tmp_path / "h.csv").write_text("id,url,license,title\n" + block * 3, encoding="utf-8")
    items = list(read_rows(str(tmp_path / "h.csv"), table_layout("csv")))
    assert [item.reason for item in items] == ["malformed_row"] + ["wrong_column_count"] * 1000 + ["malformed_row"]
    assert [item.source_ref for item in items[::1001]] == ["h.csv:2", "h.csv:2004"]
    assert "never closes: the 1,001 lines from it to the end of the file (lines 2004 to 3004)" in items[-1].detail
    assert sum(parsed) < 3 * (tmp_path / "h.csv").stat().st_size, sum(parsed)


def test_lines_that_each_open_a_quote_none_closes_are_each_parsed_a_bounded_number_of_times(tmp_path, monkeypatch):
    """Each line of `a","b` leaves a quote open, alone or read inside a value: each took the 1,024 lines after it,
    checked again for every line before them, so 5,000 such lines (30 kB) took 17 s, a 30 MB file hours. Each line is
    now checked once, as the value's continuation: all of them are one value that never closes, one rejection."""
    from pipeline.sources import table

    parsed = []
    real = table._quote_left_open
    monkeypatch.setattr(table, "_quote_left_open",
                        lambda raw, delimiter: parsed.append(len(raw)) or real(raw, delimiter))
    (tmp_path / "h.csv").write_text("id,url,license,title\n" + 'a","b\n' * 3000, encoding="utf-8")
    items = list(read_rows(str(tmp_path / "h.csv"), table_layout("csv")))
    assert [(item.source_ref, item.reason) for item in items] == [("h.csv:2", "malformed_row")]
    assert "the 3,000 lines from it to the end of the file (lines 2 to 3001)" in items[0].detail
    assert sum(parsed) < 3 * (tmp_path / "h.csv").stat().st_size, sum(parsed)


def test_a_missing_column_no_flag_named_says_how_to_name_one(tmp_path):
    """A newcomer's CSV without a `license` column, no --columns given, was told "no column 'license' (--columns
    license=license)": a flag to give that would change nothing."""
    given = tmp_path / "photos.csv"
    given.write_text("id,url,licence\n1001,http://127.0.0.1:9/1001.jpg,CC BY 4.0\n")
    said = sniff(str(given), table_layout("csv", ""))
    assert "no column 'license', which the required field license is read from" in said, said
    assert "unless --columns names yours (license=YOUR_COLUMN)" in said and "license=license" not in said
    assert "no column 'nope' (--columns url=nope)" in sniff(str(given), table_layout("csv", "url=nope"))


def test_a_record_that_closes_at_the_wrong_width_is_not_joined_again_for_each_line_it_took(tmp_path, monkeypatch):
    """A line opening a quote that a later line closes, the record then of the wrong width: each line that the value
    took and that opens a quote again (`a","b`) took the same lines up to the same closing one, joined and parsed
    again: 1,000 such lines between an opening and a closing line cost a million lines of joining and parsing (20 s of
    CPU a MB, a good row 0.4). The record is now one rejection, its lines each read once and joined and parsed once."""
    from pipeline.sources import table

    parsed = []
    real = table._split
    monkeypatch.setattr(table, "_split", lambda raw, ref, delimiter, *quoted: parsed.append(len(raw))
                        or real(raw, ref, delimiter, *quoted))
    block = '5,http://h/5.jpg,CC BY 4.0,"open\n' + 'a","b\n' * 1000 + 'end",x,x,x,x\n'  # 6 cells or more from any
    (tmp_path / "w.csv").write_text("id,url,license,title\n" + block * 3, encoding="utf-8")
    items = list(read_rows(str(tmp_path / "w.csv"), table_layout("csv")))
    assert [(item.source_ref, item.reason) for item in items] == [
        (f"w.csv:{number}", "wrong_column_count") for number in (2, 1004, 2006)]
    assert sum(parsed) < 3 * (tmp_path / "w.csv").stat().st_size, sum(parsed)


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_a_stray_quote_never_swallows_the_rows_after_it_into_its_value(tmp_path, delimiter):
    """A title opening with a stray quote (`"Sunset`) and a later one ending with one (`at dusk"`) made one record of
    every line between them: the first photo's title held the other rows, which gave no photo and no rejection. A
    record whose value holds a line reading alone as a row of the table (the header's width, a photo id where the id
    is) is refused whole, saying which lines it spans and which reads as a row."""
    fmt = "csv" if delimiter == "," else "tsv"
    rows = [["id", "url", "license", "title"], ["1", "http://h/1.jpg", "CC BY 4.0", '"Sunset'],
            ["2", "http://h/2.jpg", "CC BY 4.0", "plain"], ["3", "http://h/3.jpg", "CC BY 4.0", 'at dusk"'],
            ["4", "http://h/4.jpg", "CC BY 4.0", '"two\nlines"'], ["5", "http://h/5.jpg", "CC BY 4.0", "five"]]
    (tmp_path / f"s.{fmt}").write_text("".join(delimiter.join(row) + "\n" for row in rows), encoding="utf-8")
    items = list(read_rows(str(tmp_path / f"s.{fmt}"), table_layout(fmt)))
    assert [(item.source_ref, item.reason if isinstance(item, Rejection) else item.title) for item in items] == [
        (f"s.{fmt}:2", "malformed_row"), (f"s.{fmt}:5", "two\nlines"), (f"s.{fmt}:7", "five")]
    assert "from line 2 to line 4 holds line 3, which reads as a row of its own" in items[0].detail
    with local_pipeline() as p:  # the job: each record once, a photo or a rejection
        read = p | ReadTable(str(tmp_path / f"s.{fmt}"), table_layout(fmt))
        assert_that(read.kept | beam.Map(lambda photo: photo.photo_id), equal_to(["4", "5"]), label="kept")
        assert_that(read.rejected | beam.Map(why), equal_to([(f"s.{fmt}:2", "read", "malformed_row")]),
                    label="rejected")


def test_a_value_holding_a_row_s_text_is_never_read_as_a_row(tmp_path):
    """A description written to read as a row (a Flickr user's text, in a file pandas wrote from Flickr's answers)
    is one value, never a photo the file does not list: the record holding it is refused whole."""
    import pandas as pd

    description = "nice\n7001,https://live.staticflickr.com/1/7001_x_z.jpg,CC BY 4.0,someone else's"
    pd.DataFrame({"id": [5, 6], "url": ["http://h/5.jpg", "http://h/6.jpg"], "license": ["CC BY 4.0"] * 2,
                  "title": [description, "six"]}).to_csv(tmp_path / "p.csv", index=False)
    items = list(read_rows(str(tmp_path / "p.csv"), table_layout("csv")))
    assert [(item.photo_id, getattr(item, "reason", "kept")) for item in items] == [
        ("p.csv:2", "malformed_row"), ("6", "kept")]


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


_ROW_IN_TEXT = "7001,https://live.staticflickr.com/1/7001_x_z.jpg,CC BY 4.0,someone else's"


def _pandas_table(path: Path, description: str, **options: str) -> None:
    import pandas as pd

    pd.DataFrame({"id": [5, 6], "url": ["http://h/5.jpg", "http://h/6.jpg"], "license": ["CC BY 4.0"] * 2,
                  "title": [description, "six"]}).to_csv(path, index=False, **options)


@pytest.mark.parametrize(("description", "lines"), [
    ("line\n" * 1100 + _ROW_IN_TEXT, 1101),  # over the record's 1,024 lines
    (("x" * 1000 + "\n") * 70 + _ROW_IN_TEXT, 71),  # over its 64 KiB, each line within it
    ("y" * 70_000 + "\n" + _ROW_IN_TEXT, 2),  # its first line over the line bound: never read, its quote followed
    (_ROW_IN_TEXT + "\n" + 'z"' * 40_000, 2),  # its last line over the line bound, closing it after 40,000 quotes
    ("l\n" * 10_000 + _ROW_IN_TEXT + "\n" + "end", 10_002),  # a value that closes after 10,000 lines
], ids=["lines", "bytes", "long first line", "long last line", "10,000 lines"])
@pytest.mark.parametrize("options", [{}, {"lineterminator": "\r\n"}, {"sep": "\t"}], ids=["csv", "crlf", "tsv"])
def test_a_value_over_the_record_bound_is_one_rejection_and_no_line_of_it_a_row(tmp_path, description, lines,
                                                                                  options):
    """A description of more than 1,024 lines or 64 KiB (a photographer's text, in a file pandas wrote) holding a line
    written as a row: its first line was rejected alone and the lines after it read as rows, so photo 7001 came out
    under a licence and URL it named, beside 1,100 `wrong_column_count`. Past the bound the value's lines are read on,
    not held, their quotes followed to its end: the record is one `malformed_row` naming its lines."""
    fmt = "tsv" if options.get("sep") == "\t" else "csv"
    path = tmp_path / f"p.{fmt}"
    _pandas_table(path, description, **options)
    items = list(read_rows(str(path), table_layout(fmt)))
    assert [(item.photo_id, getattr(item, "reason", "kept")) for item in items] == [
        (f"p.{fmt}:2", "malformed_row"), ("6", "kept")]
    assert items[1].source_ref == f"p.{fmt}:{2 + lines}"
    assert f"a quoted value spans lines 2 to {1 + lines} ({lines:,} lines), over the bound" in items[0].detail


def test_a_value_over_the_bound_is_one_rejection_through_read_table(tmp_path):
    """The job: the record over the bound is one rejection, the rows after it read, and every record accounted for
    once (the job's input rows are what the read gives)."""
    _pandas_table(tmp_path / "p.csv", "line\n" * 1100 + _ROW_IN_TEXT)
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / "p.csv"), table_layout("csv"))
        assert_that(read.kept | beam.Map(lambda photo: photo.photo_id), equal_to(["6"]), label="kept")
        assert_that(read.rejected | beam.Map(why), equal_to([("p.csv:2", "read", "malformed_row")]), label="rejected")


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
@pytest.mark.parametrize("after", [3, 3000])
def test_a_quote_that_never_closes_takes_every_line_to_the_end_of_the_file(tmp_path, fmt, after):
    """A stray quote opening a title (`"Sunset`) that no later line closes: every line after it is inside its value,
    as Python's csv reader reads the file, so none is read as a row; the record is one `malformed_row` saying so."""
    delimiter = "," if fmt == "csv" else "\t"
    rows = [["id", "url", "license", "title"], ["1", "http://h/1.jpg", "CC BY 4.0", '"Sunset']]
    rows += [[str(number), f"http://h/{number}.jpg", "CC BY 4.0", "plain"] for number in range(2, 2 + after)]
    (tmp_path / f"s.{fmt}").write_text("".join(delimiter.join(row) + "\r\n" for row in rows), encoding="utf-8")
    items = list(read_rows(str(tmp_path / f"s.{fmt}"), table_layout(fmt)))
    assert [(item.source_ref, item.reason) for item in items] == [(f"s.{fmt}:2", "malformed_row")]
    assert (f"a quote opened on line 2 never closes: the {after + 1:,} lines from it to the end of the file (lines 2 "
            f"to {after + 2})") in items[0].detail


@pytest.mark.parametrize(("bound", "over"), [("lines", 0), ("lines", 1), ("bytes", 0), ("bytes", 1)])
def test_a_record_at_its_bound_is_read_and_one_past_it_refused(tmp_path, bound, over):
    """A value whose closing quote is on the record's 1,024th line, or whose record is 65,536 bytes, is a row; a line
    or a byte more and it is refused whole, the row after it read."""
    from pipeline.sources import table

    if bound == "lines":
        description = "d\n" * (table.MAX_RECORD_LINES + over - 1) + "d"
    else:  # the record `5,http://h/5.jpg,CC BY 4.0,"…"` in two lines
        rest = table.MAX_LINE_BYTES + over - len('5,http://h/5.jpg,CC BY 4.0,"') - len('"') - len("\n")
        description = "b" * (rest // 2) + "\n" + "b" * (rest - rest // 2)
    _pandas_table(tmp_path / "p.csv", description)
    items = list(read_rows(str(tmp_path / "p.csv"), table_layout("csv")))
    assert [getattr(item, "reason", item.photo_id) for item in items] == ["malformed_row" if over else "5", "6"]
    if not over:
        assert items[0].title == description


@settings(max_examples=1000)
@given(line=st.text(st.sampled_from(['a', ',', '"', '"', '\t', ' ', '\x00', 'é']), max_size=24),
       cuts=st.lists(st.integers(0, 24), max_size=6), delimiter=st.sampled_from([",", "\t"]))
def test_the_quotes_of_a_line_too_long_are_followed_as_pythons_csv_reader_reads_them(line, cuts, delimiter):
    """A line too long to be read is followed through its bytes, in any pieces: whether it leaves a quote open read
    from a record's start, and read inside a value, is what Python's csv reader says of the whole line."""
    from pipeline.sources import table

    raw = line.encode()
    tracked = table._Overlong(delimiter)
    at = 0
    for cut in sorted(cuts):
        tracked.feed(raw[at:cut])
        at = max(at, cut)
    tracked.feed(raw[at:])
    assert tracked.take() == (table._quote_left_open(raw, delimiter), table._quote_left_open(b'"' + raw, delimiter))
    assert tracked.take() == (False, True)  # nothing fed since: a line of nothing


def _csv_records(text: str, delimiter: str) -> list[tuple[int, int, list[str] | None]]:
    """The oracle: each record (first line, last line, its cells or None where the reader refuses it) as Python's csv
    reader reads the whole text, strict, as the table reader's quoting rules are."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records, start = [], 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return records
        except csv.Error:
            cells = None
        records.append((start, reader.line_num, cells))
        start = reader.line_num + 1


_ROW_LIKE = ["7001,h,CC BY 4.0,x", '7001,h,CC BY 4.0,"x', '7001,h,CC BY 4.0,x"', "7001\th\tCC BY 4.0\tx",
             '"', '""', '","', 'a","b', '"a""', '7001,h,CC BY 4.0,"a value too long to read',
             'a line too long to read, "x', 'a line too long to read" closing it',
             'a line too long to read",and,"opening one']


@settings(max_examples=300)
@given(lines=st.lists(st.one_of(st.sampled_from(_ROW_LIKE),
                                st.text(st.sampled_from(['7', '1', ',', '"', '\t', ' ', 'a']), max_size=30)),
                      max_size=16),
       ends=st.lists(st.sampled_from(["\n", "\r\n"]), max_size=16), delimiter=st.sampled_from([",", "\t"]),
       bounds=st.tuples(st.integers(1, 5), st.integers(8, 60)))
def test_no_photo_comes_from_a_line_inside_a_quoted_value(tmp_path_factory, lines, ends, delimiter, bounds):
    """Against Python's csv reader over the whole text: each item the table reader gives names a record's first line,
    one for each record that is not blank, in order, so no photo ever comes from a line inside a quoted value, over
    small record bounds and lines too long to be read (24 bytes here), and a photo is the record's own cells."""
    from pipeline.sources import table

    fmt = "csv" if delimiter == "," else "tsv"
    header = delimiter.join(["id", "url", "license", "title"])
    text = header + "\n" + "".join(line + (ends[number] if number < len(ends) else "\n")
                                   for number, line in enumerate(lines))
    path = tmp_path_factory.mktemp("t") / f"t.{fmt}"
    path.write_bytes(text.encode())
    records = [(first, last, cells) for first, last, cells in _csv_records(text, delimiter)[1:]
               if first != last or "".join(text.splitlines()[first - 1:last]).strip()]
    real = table.read_numbered_lines
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(table, "MAX_RECORD_LINES", bounds[0])
        patch.setattr(table, "MAX_LINE_BYTES", bounds[1])
        patch.setattr(table, "read_numbered_lines", lambda *args, **kwargs: real(*args, max_line=24, **kwargs))
        items = list(read_rows(str(path), table_layout(fmt)))
    assert [int(item.source_ref.rpartition(":")[2]) for item in items] == [first for first, _, _ in records]
    inside = {line for first, last, _ in records for line in range(first + 1, last + 1)}
    by_first = {first: cells for first, _, cells in records}
    for item in items:
        if isinstance(item, Photo):
            line = int(item.source_ref.rpartition(":")[2])
            assert line not in inside
            assert by_first[line] is not None and item.photo_id == by_first[line][0].strip()


def test_the_launch_check_follows_a_value_that_never_closes_only_so_far(tmp_path, monkeypatch):
    """A quote that never closes on line 2 takes every line to the end of the file: the launch check, which reads a
    few rows, read the whole file (50 GB, hours) before it could say so. It follows a value for LAUNCH_CHECK_BYTES
    and says so there; the job still reads the value to the file's end."""
    from pipeline.sources import table

    monkeypatch.setattr(table, "LAUNCH_CHECK_BYTES", 1000)
    rows = "".join(f"{number},http://h/{number}.jpg,CC BY 4.0,plain\n" for number in range(2, 3000))
    (tmp_path / "s.csv").write_text('id,url,license,title\n1,http://h/1.jpg,CC BY 4.0,"Sunset\n' + rows)
    said = sniff(str(tmp_path / "s.csv"), table_layout("csv"))
    assert said == ("does not look like CSV with a header row: s.csv:2: malformed_row (a quoted value from line 2 "
                    "runs on past line 31, over 1,000 bytes: the launch check reads no further)")  # 32 bytes a line
    items = list(read_rows(str(tmp_path / "s.csv"), table_layout("csv")))
    assert [item.reason for item in items] == ["malformed_row"] and "(lines 2 to 3000)" in items[0].detail


def _with_file_rows(path: Path, rows: int) -> None:
    """Rewrites the Parquet file at `path` with `rows` as its footer's own row count (FileMetaData field 3), its row
    groups' counts left as they are: what a writer states apart from them, which nothing makes agree."""
    import io

    from pipeline.sources import parquet_pages

    data = path.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - length:-8]
    source, field = parquet_pages._Input(io.BytesIO(footer), 0), 0
    while True:
        head = source.byte()
        field = field + (head >> 4) if head >> 4 else source.integer()
        if field == 3:
            start = source.consumed
            source.varint()
            end = source.consumed
            break
        parquet_pages._skip(source, head & 0x0F, 0)
    zigzag, varint = rows << 1, bytearray()
    while True:
        varint.append((zigzag & 0x7F) | (0x80 if zigzag >> 7 else 0))
        zigzag >>= 7
        if not zigzag:
            break
    footer = footer[:start] + bytes(varint) + footer[end:]
    path.write_bytes(data[:-8 - length] + footer + len(footer).to_bytes(4, "little") + b"PAR1")


def test_a_parquet_file_lacking_a_column_rejects_each_row_its_row_groups_hold_whatever_its_own_count_says(tmp_path):
    """A file whose columns cannot give our fields rejects each of its rows unread, counted from the footer: from the
    file's own count, which a writer states apart from its row groups', so a footer understating it (2 of 10) made the
    other rows vanish with no rejection, where a file with every column reads all 10. Counted from the row groups, as
    they are read."""
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"id": [str(number) for number in range(1, 11)], "url": ["http://h/x.jpg"] * 10}), path,
                   row_group_size=4)
    _with_file_rows(path, 2)
    assert pq.ParquetFile(path).metadata.num_rows == 2
    items = read_all(path, "parquet", "")
    assert [(item.source_ref, item.reason) for item in items] == [
        (f"b.parquet:{number}", "missing_column") for number in range(1, 11)]
    whole = tmp_path / "whole.parquet"  # the same understatement where every column is there: its rows are read
    pq.write_table(pa.table({"id": [str(number) for number in range(1, 11)], "url": ["http://h/x.jpg"] * 10,
                             "license": ["CC BY 4.0"] * 10}), whole, row_group_size=4)
    _with_file_rows(whole, 2)
    assert [item.photo_id for item in read_all(whole, "parquet", "")] == [str(number) for number in range(1, 11)]


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_a_value_of_several_lines_in_a_column_before_the_id_is_its_own_rows(tmp_path, delimiter):
    """A table pandas wrote with its free text first (title, then id, url, licence) ends a value of several lines with
    a line holding the rest of that very row: read alone it has the header's width and the row's own id where the id
    is, which refused the photo as a value holding a row. The value's closing line is a row of its own only where its
    text, not the row's remaining cells, makes it one."""
    import pandas as pd

    fmt = "csv" if delimiter == "," else "tsv"
    pd.DataFrame({"title": ["Sunset\nover the bay", "plain"], "id": [5, 6], "url": ["http://h/5.jpg", "http://h/6.jpg"],
                  "license": ["CC BY 4.0"] * 2}).to_csv(tmp_path / f"p.{fmt}", index=False, sep=delimiter)
    items = list(read_rows(str(tmp_path / f"p.{fmt}"), table_layout(fmt)))
    assert [(item.photo_id, getattr(item, "title", item.reason if isinstance(item, Rejection) else "")) for item in
            items] == [("5", "Sunset\nover the bay"), ("6", "plain")]
    # A stray quote opening that column still takes no row's line as its own: the line between reads as a row
    rows = ['title,id,url,license', '"Sunset,1,http://h/1.jpg,CC BY 4.0', 'plain,2,http://h/2.jpg,CC BY 4.0',
            'at dusk",3,http://h/3.jpg,CC BY 4.0', 'four,4,http://h/4.jpg,CC BY 4.0']
    (tmp_path / f"s.{fmt}").write_text("".join(row.replace(",", delimiter) + "\n" for row in rows), encoding="utf-8")
    items = list(read_rows(str(tmp_path / f"s.{fmt}"), table_layout(fmt)))
    assert [(item.source_ref, getattr(item, "reason", "kept")) for item in items] == [
        (f"s.{fmt}:2", "malformed_row"), (f"s.{fmt}:5", "kept")]
    # Nor can a title's inner line pass as a row: only the closing line is the row's own rest
    injected = delimiter.join(["t", "7001", "http://h/7001.jpg", "CC BY 4.0"])
    pd.DataFrame({"title": [f"x\n{injected}\ny"], "id": [5], "url": ["http://h/5.jpg"],
                  "license": ["CC BY-NC 2.0"]}).to_csv(tmp_path / f"i.{fmt}", index=False, sep=delimiter)
    assert [(item.source_ref, getattr(item, "reason", "kept")) for item in
            read_rows(str(tmp_path / f"i.{fmt}"), table_layout(fmt))] == [(f"i.{fmt}:2", "malformed_row")]


@pytest.mark.parametrize("options", [{}, {"lineterminator": "\r\n"}, {"sep": "\t"}, {"quoting": 1}],
                         ids=["csv", "crlf", "tsv", "quote-all"])
@pytest.mark.parametrize("order", [["id", "title", "url", "license"], ["title", "id", "url", "license"],
                                   ["id", "url", "license", "title"]], ids=["middle", "first", "last"])
def test_a_value_holding_a_line_of_numbers_as_wide_as_the_header_is_its_photo(tmp_path, options, order):
    """A description of several lines, one of them a list of years or figures as wide as the header (`2019,2020,2021,
    2022` in a table of four columns) where the id column reads a photo id, was refused whole as a value holding a row,
    in a file pandas wrote as Python's csv reader reads it: the photo lost. A stray quote's swallowed line is a row a
    photo comes of, an http(s) URL where the url is; a line without one reads as no row."""
    import pandas as pd

    fmt = "tsv" if options.get("sep") == "\t" else "csv"
    delimiter = options.get("sep", ",")
    titles = [f"Visited in\n{delimiter.join(['2019', '2020', '2021', '2022'])}\nand again",
              f"Prices\n{delimiter.join(['1', '000', '2', '500'])}", "plain"]
    pd.DataFrame({"id": [5, 6, 7], "title": titles, "url": [f"http://h/{n}.jpg" for n in (5, 6, 7)],
                  "license": ["CC BY 4.0"] * 3})[order].to_csv(tmp_path / f"p.{fmt}", index=False, **options)
    items = list(read_rows(str(tmp_path / f"p.{fmt}"), table_layout(fmt)))
    assert [(item.photo_id, getattr(item, "title", getattr(item, "reason", ""))) for item in items] == [
        ("5", titles[0]), ("6", titles[1]), ("7", "plain")]


@pytest.mark.parametrize("delimiter", [",", "\t"])
@pytest.mark.parametrize("before", [["owner"], ["owner", "description"]], ids=["one before", "two before"])
def test_a_value_whose_last_line_holds_as_many_delimiters_as_columns_before_it_is_its_photo(tmp_path, delimiter,
                                                                                               before):
    """A title of several lines in a column after the first (owner, title, id, url, licence), its last line holding a
    delimiter for each column before it (`Paris, France`), ends on a line that reads alone as a row: the header's
    width, with the row's own id and URL where they are, so the photo was refused as a value holding a row. A
    value's closing line naming the record's own photo is the row's rest; one naming another photo is still a row."""
    import pandas as pd

    fmt = "csv" if delimiter == "," else "tsv"
    last = delimiter.join(["Paris", " France", " 2019"][:len(before) + 1])
    titles = [f"Sunset\n{last}", "plain"]
    frame = pd.DataFrame({"owner": ["Jane Doe", "Li"], "description": ["a\nb", "c"], "title": titles, "id": [5, 6],
                          "url": ["https://h/5.jpg", "https://h/6.jpg"], "license": ["CC BY 4.0"] * 2})
    frame[[*before, "title", "id", "url", "license"]].to_csv(tmp_path / f"p.{fmt}", index=False, sep=delimiter)
    items = list(read_rows(str(tmp_path / f"p.{fmt}"), table_layout(fmt)))
    assert [(item.photo_id, getattr(item, "title", getattr(item, "reason", ""))) for item in items] == [
        ("5", titles[0]), ("6", "plain")]
    # A line of that title written as another photo's row is still refused whole, its closing line the row's rest
    other = delimiter.join(["x"] * len(before) + ["t", "7001", "https://h/7001.jpg", "CC BY 4.0"])
    frame.assign(title=[f"Sunset\n{other}\n{last}", "plain"])[[*before, "title", "id", "url", "license"]].to_csv(
        tmp_path / f"i.{fmt}", index=False, sep=delimiter)
    assert [(item.photo_id, getattr(item, "reason", "kept")) for item in
            read_rows(str(tmp_path / f"i.{fmt}"), table_layout(fmt))] == [
        (f"i.{fmt}:2", "malformed_row"), ("6", "kept")]
    # A description after the url whose last line opens with a link: the closing line's URL is the description's own
    description = f"Follow me\nhttps://instagram.com/me{delimiter} thanks"
    pd.DataFrame({"url": ["https://h/5.jpg"], "description": [description], "id": [5],
                  "license": ["CC BY 4.0"]}).to_csv(tmp_path / f"u.{fmt}", index=False, sep=delimiter)
    assert [item.photo_id for item in read_rows(str(tmp_path / f"u.{fmt}"), table_layout(fmt))] == ["5"]


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_a_value_after_the_id_ending_on_a_line_that_opens_with_a_number_is_its_photo(tmp_path, delimiter):
    """A description of several lines after the id (id, description, licence, url, owner, title) whose last line opens
    with a number and holds a delimiter for each column between them (`2019, Paris`) closed on a line reading alone as
    a row: that number where the id is, the row's own URL and licence after it, so the photo was refused as a value
    holding a row. Such a line is the row's rest unless the record's first line reads as a row itself, its quote a
    stray one (`1,"Sunset,…` then `3,at dusk",…`: still refused whole)."""
    import pandas as pd

    fmt = "csv" if delimiter == "," else "tsv"
    descriptions = [f"Visit\n2019{delimiter} Paris", "plain"]
    pd.DataFrame({"id": [5, 6], "description": descriptions, "license": ["CC BY 4.0"] * 2,
                  "url": ["https://h/5.jpg", "https://h/6.jpg"], "owner": ["Jane", "Li"],
                  "title": ["t", "u"]}).to_csv(tmp_path / f"p.{fmt}", index=False, sep=delimiter)
    items = list(read_rows(str(tmp_path / f"p.{fmt}"), table_layout(fmt)))
    assert [(item.photo_id, getattr(item, "reason", "kept")) for item in items] == [("5", "kept"), ("6", "kept")]
    rows = ["id,title,url,license", '1,"Sunset,http://h/1.jpg,CC BY 4.0', '3,at dusk",http://h/3.jpg,CC BY 4.0',
            "4,four,http://h/4.jpg,CC BY 4.0"]
    (tmp_path / f"s.{fmt}").write_text("".join(row.replace(",", delimiter) + "\n" for row in rows), encoding="utf-8")
    assert [(item.source_ref, getattr(item, "reason", "kept")) for item in
            read_rows(str(tmp_path / f"s.{fmt}"), table_layout(fmt))] == [
        (f"s.{fmt}:2", "malformed_row"), (f"s.{fmt}:4", "kept")]


def test_a_tsv_without_quoting_reads_a_quote_as_a_character_and_each_line_as_a_row(tmp_path):
    """Database exports (PostgreSQL's and MySQL's text formats) write tab-separated values without quoting: read with
    CSV quoting (`tsv`), a title opening with a quote that never closes took every line after it into one rejection
    (a 1,000-row file kept 2 photos). `--input_format=tsv_plain` reads each line as a row, its quotes as characters;
    a line of another width is still its own rejection, and a value cannot span lines."""
    rows = ["id\turl\tlicense\ttitle"] + [f"{n}\thttp://h/{n}.jpg\tCC BY 4.0\t{title}" for n, title in (
        (1, '"Hello'), (2, 'plain "quoted" word'), (3, 'at dusk"'), (4, '""'))] + ["5\thttp://h/5.jpg", ""]
    (tmp_path / "p.tsv").write_text("\n".join(rows), encoding="utf-8")
    items = list(read_rows(str(tmp_path / "p.tsv"), table_layout("tsv_plain")))
    assert [(item.photo_id, item.title) for item in items if isinstance(item, Photo)] == [
        ("1", '"Hello'), ("2", 'plain "quoted" word'), ("3", 'at dusk"'), ("4", '""')]
    assert [(item.source_ref, item.reason) for item in items if isinstance(item, Rejection)] == [
        ("p.tsv:6", "wrong_column_count")]
    assert sniff(str(tmp_path / "p.tsv"), table_layout("tsv_plain")) is None
    # The same file read with CSV quoting: the quote opening line 2's title takes line 3 into its value, and line 5's
    # title is the empty quoted value
    quoted = list(read_rows(str(tmp_path / "p.tsv"), table_layout("tsv")))
    assert [(item.source_ref, getattr(item, "reason", getattr(item, "title", ""))) for item in quoted] == [
        ("p.tsv:2", "malformed_row"), ("p.tsv:4", 'at dusk"'), ("p.tsv:5", ""), ("p.tsv:6", "wrong_column_count")]


def test_a_plain_tsv_through_read_table(tmp_path):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from tests.conftest import local_pipeline

    (tmp_path / "p.tsv").write_text('id\turl\tlicense\ttitle\n7\thttp://h/7.jpg\tCC BY 2.0\t"Sunset\n8\tx\n',
                                    encoding="utf-8")
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / "p.tsv"), table_layout("tsv_plain"))
        assert_that(read.kept | beam.Map(lambda photo: (photo.photo_id, photo.title)), equal_to([("7", '"Sunset')]),
                    label="kept")
        assert_that(read.rejected | beam.Map(lambda r: (r.source_ref, r.reason)),
                    equal_to([("p.tsv:3", "wrong_column_count")]), label="rejected")
