"""Generic metadata tables (CSV, TSV, Parquet, JSON lines) with a column mapping: the rows they
give, every bad row as a rejection with a reason, and the launch-time refusal of files that are
not what --input_format says."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.cli import main
from pipeline.fixtures.demo_world import demo_image
from pipeline.fixtures.static_server import StaticServer, image
from pipeline.records import Photo, Rejection
from pipeline.sources.table import ReadTable, read_rows, sniff, table_layout
from pipeline.stages.fetch import sized_url
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


def test_a_table_whose_suffix_is_in_upper_case_is_read_as_the_lower_case_suffix_says(tmp_path):
    """`META.CSV.GZ` was read raw: refused at launch as no CSV, its compressed bytes rows in the job."""
    layout = table_layout("csv", THEIRS)
    (tmp_path / "a.CSV.GZ").write_bytes(gzip.compress(csv_text(GOOD).encode()))
    (tmp_path / "b.csv.BZ2").write_bytes(bz2.compress(csv_text(GOOD).encode()))
    for name in ("a.CSV.GZ", "b.csv.BZ2"):
        assert sniff(str(tmp_path / name), layout) is None, name
        assert [item.photo_id for item in read_all(tmp_path / name, "csv")] == ["11", "12"], name
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / "a.CSV.GZ"), layout)
        assert_that(read.kept | beam.Map(lambda photo: photo.source_ref), equal_to(["a.CSV.GZ:2", "a.CSV.GZ:3"]))


def test_blank_lines_are_not_records(tmp_path):
    path = tmp_path / "meta.jsonl"
    path.write_text("\n" + json.dumps(GOOD[0]) + "\n  \n\r\n")
    assert [item.photo_id for item in read_all(path, "jsonl")] == ["11"]


def test_a_byte_order_mark_opening_a_json_lines_file_is_no_part_of_its_first_row(tmp_path):
    """CSV and TSV headers dropped it; a JSON lines file's first row was a malformed_row."""
    path = tmp_path / "meta.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(row) + "\n" for row in GOOD[:2]).encode())
    assert [item.photo_id for item in read_all(path, "jsonl")] == ["11", "12"]


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


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_named_without_a_wildcard_and_gone_when_read_is_a_rejection(tmp_path, fmt):
    """The launch check saw it; gone when the job lists it, it gave no row and no rejection."""
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / f"gone.{fmt}"), table_layout(fmt, THEIRS))
        assert_that(read.kept, equal_to([]), label="kept")
        assert_that(read.rejected | beam.Map(why), equal_to([(f"gone.{fmt}:1", "read", "unreadable_file")]),
                    label="rejected")


def test_the_readme_example_is_read_as_documented(tmp_path):
    """And its command fetches the example's URL: the table's URL was on 127.0.0.1:8000 while the command allowed
    images.example.org only, so the two copied as written kept nothing (exit 4, fetch/host_not_allowed)."""
    from pipeline.io.http_client import host_allowed

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Generic tables", 1)[1].split("## What the job does", 1)[0]
    example, command = [block.split("```", 1)[0].strip() for block in section.split("```\n")[1::2]]
    columns = command.split("--columns=", 1)[1].split()[0]
    path = tmp_path / "photos.csv"
    path.write_text(example + "\n")
    (photo,) = read_all(path, "csv", columns)
    assert shape(photo)[:7] == ("1003", "https://images.example.org/1003.jpg", "demo owner",
                                "Chelsea the cat", "", "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/")
    allowed = command.split("--allowed_hosts=", 1)[1].split()[0]
    assert host_allowed(photo.download_url, allowed.split(","))


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
    from pipeline.sources.input_files import SNIFFED_ROWS

    layout = table_layout(fmt, THEIRS)
    gone = [{**GOOD[0], "photo_id": str(number), "photo_url": ""} for number in range(100, 120)]
    path = write_table(tmp_path / f"meta.{fmt}", fmt, [*gone, *GOOD])
    assert sniff(str(path), layout) is None
    path = write_table(tmp_path / f"none.{fmt}", fmt, [{**gone[0], "photo_id": str(number)}
                                                         for number in range(100, 100 + SNIFFED_ROWS + 5)])
    assert sniff(str(path), layout).startswith(f"gives no photo in its first {SNIFFED_ROWS:,} rows: none.{fmt}:")
    assert "missing_url" in sniff(str(path), layout)


def test_a_lone_cr_between_a_json_line_s_tokens_is_whitespace_not_a_line_end(tmp_path):
    """JSON lines end at a \\n (a CRLF's CR dropped); a lone CR is whitespace a JSON value may hold between its tokens:
    ended there as a CSV's line is, one object was two malformed rows."""
    text = json.dumps(GOOD[0]).replace(", ", ",\r", 2) + "\r\n" + json.dumps(GOOD[1]) + "\n"
    (tmp_path / "meta.jsonl").write_bytes(text.encode())
    items = read_all(tmp_path / "meta.jsonl", "jsonl")
    assert [shape(item) for item in items] == [(*row[:7], f"meta.jsonl:{row[7] - 1}", "jsonl") for row in EXPECTED]


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
    """The table readers read a compressed file as checked (`input_files._AsChecked`), as the YFCC reader does."""
    from pipeline.sources import input_files

    rows = [{**GOOD[0], "photo_id": str(i)} for i in range(1, 2_001)]
    path = tmp_path / "meta.csv.gz"
    path.write_bytes(gzip.compress(csv_text(rows).encode()))
    checked = input_files.check_compressed

    def check_then_replace(name: str):
        crcs = checked(name)
        path.write_bytes(gzip.compress(csv_text(rows[:1_000] + [{**GOOD[0], "photo_id": "999999"}] * 1_000).encode()))
        return crcs

    monkeypatch.setattr(input_files, "check_compressed", check_then_replace)
    monkeypatch.setattr(input_files, "_CHECKED_PIECE", 16 * 1024)
    items = read_all(path, "csv")
    kept = [item.photo_id for item in items if isinstance(item, Photo)]
    assert 0 < len(kept) <= 1_000 and kept == [str(i) for i in range(1, len(kept) + 1)]
    assert [(item.source_ref, item.reason) for item in items[len(kept):]] == [
        (f"meta.csv.gz:{len(kept) + 2}", "unreadable_file")]  # line 1 is the header


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl"])
def test_tables_of_one_name_in_two_folders_are_told_apart_by_their_folder(tmp_path, fmt):
    """`--input='exports/*/rows.csv'`: each row's ref named its file by its base name alone, so two folders' rows
    and rejections could not be told apart (`rows.csv:2` twice). A ref names the file below the glob's folder."""
    for folder in ("a", "b"):
        (tmp_path / "exports" / folder).mkdir(parents=True)
        write_table(tmp_path / "exports" / folder / f"rows.{fmt}", fmt, GOOD[:1])
    with local_pipeline() as p:
        read = p | ReadTable(str(tmp_path / "exports" / "*" / f"rows.{fmt}"), table_layout(fmt, THEIRS))
        line = 1 if fmt in ("jsonl", "parquet") else 2
        assert_that(read.kept | beam.Map(lambda photo: photo.source_ref),
                    equal_to([f"./a/rows.{fmt}:{line}", f"./b/rows.{fmt}:{line}"]), label="kept")
        assert_that(read.rejected, equal_to([]), label="rejected")
