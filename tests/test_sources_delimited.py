"""CSV and TSV tables (`sources/delimited.py`): records as Python's csv reader reads the whole text, quoted values of
several lines, stray quotes, values over the record bound, and tab-separated text without quoting."""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.records import Photo, Rejection
from pipeline.sources.input_files import MAX_LINE_BYTES
from pipeline.sources.table import ReadTable, read_rows, sniff, table_layout
from tests.conftest import local_pipeline
from tests.test_sources_table import GOOD, HEADER, csv_text, read_all, why


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


CELL = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r"), max_size=30)


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


def test_a_header_without_a_required_column_rejects_each_record_once_not_each_line(tmp_path):
    """Each line of a file whose header lacks the license column was a rejection: a title of two lines was two rows
    refused, the rejections more than the rows. A header read gives each record's extent, as when it is complete."""
    (tmp_path / "a.csv").write_text('id,url,title\n1,http://h/1.jpg,"two\nlines"\n2,http://h/2.jpg,"three\nlines\n'
                                    'here"\n3,http://h/3.jpg,one\n', encoding="utf-8")
    items = list(read_rows(str(tmp_path / "a.csv"), table_layout("csv")))
    assert [(item.source_ref, item.reason) for item in items] == [
        ("a.csv:2", "missing_column"), ("a.csv:4", "missing_column"), ("a.csv:7", "missing_column")]


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
    of the second block are each a record, and the third block's value never closes: its line is refused alone and
    the lines after it, read again, are each a record."""
    from pipeline.sources import delimited

    parsed = []
    real = delimited._quote_left_open
    monkeypatch.setattr(delimited, "_quote_left_open",
                        lambda raw, delimiter: parsed.append(len(raw)) or real(raw, delimiter))
    block = '5,http://h/5.jpg,CC BY 4.0,"open\n' + ('""' * 30 + "\n") * 1000
    (tmp_path / "h.csv").write_text("id,url,license,title\n" + block * 3, encoding="utf-8")
    items = list(read_rows(str(tmp_path / "h.csv"), table_layout("csv")))
    assert [item.reason for item in items] == (["malformed_row"] + ["wrong_column_count"] * 1000) * 2
    assert [item.source_ref for item in items[::1001]] == ["h.csv:2", "h.csv:2004"]
    assert "never closes: the file ends inside its value, 1,000 lines on (line 3004)" in items[1001].detail
    assert sum(parsed) < 3 * (tmp_path / "h.csv").stat().st_size, sum(parsed)


def test_lines_that_each_open_a_quote_none_closes_are_each_parsed_a_bounded_number_of_times(tmp_path, monkeypatch):
    """Each line of `a","b` leaves a quote open, alone or read inside a value: each took the 1,024 lines after it,
    checked again for every line before them, so 5,000 such lines (30 kB) took 17 s, a 30 MB file hours. Each line is
    now checked once as the value's continuation, which never closes, and once more read again after it: each line
    leaves a quote open that never closes, its own rejection."""
    from pipeline.sources import delimited

    parsed = []
    real = delimited._quote_left_open
    monkeypatch.setattr(delimited, "_quote_left_open",
                        lambda raw, delimiter: parsed.append(len(raw)) or real(raw, delimiter))
    (tmp_path / "h.csv").write_text("id,url,license,title\n" + 'a","b\n' * 3000, encoding="utf-8")
    items = list(read_rows(str(tmp_path / "h.csv"), table_layout("csv")))
    assert [(item.source_ref, item.reason) for item in items] == [
        (f"h.csv:{number}", "malformed_row") for number in range(2, 3002)]
    assert "the file ends inside its value, 2,999 lines on (line 3001)" in items[0].detail
    assert "a quote opened on line 3001 never closes, as the one on line 2 does not" in items[-1].detail
    assert sum(parsed) < 3 * (tmp_path / "h.csv").stat().st_size, sum(parsed)


def test_a_record_that_closes_at_the_wrong_width_is_not_joined_again_for_each_line_it_took(tmp_path, monkeypatch):
    """A line opening a quote that a later line closes, the record then of the wrong width: each line that the value
    took and that opens a quote again (`a","b`) took the same lines up to the same closing one, joined and parsed
    again: 1,000 such lines between an opening and a closing line cost a million lines of joining and parsing (20 s of
    CPU a MB, a good row 0.4). The record is now one rejection, its lines each read once and joined and parsed once."""
    from pipeline.sources import delimited

    parsed = []
    real = delimited._split
    monkeypatch.setattr(delimited, "_split", lambda raw, ref, delimiter, *quoted: parsed.append(len(raw))
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
@pytest.mark.parametrize("compressed", [False, True])
def test_a_quote_that_never_closes_is_its_line_s_rejection_and_the_rows_after_it_are_read(tmp_path, fmt, after,
                                                                                          compressed):
    """A stray quote opening a title (`"Sunset`) that no later line closes made every line after it one record, as
    Python's csv reader reads the file: one `malformed_row` for the rest of the file, its 3,000 photos lost. A quote
    the file ends inside is no value: its line alone is refused, saying so, and each line after it is read as its own
    row, a later line opening a quote (which never closes either) its own rejection."""
    import gzip

    delimiter = "," if fmt == "csv" else "\t"
    rows = [["id", "url", "license", "title"], ["1", "http://h/1.jpg", "CC BY 4.0", '"Sunset']]
    rows += [[str(number), f"http://h/{number}.jpg", "CC BY 4.0", "plain"] for number in range(2, 2 + after)]
    # line 4 leaves a quote open too (`red","blue`: a line closing the value opened on line 2 would end its record)
    rows[3][3] = f'red"{delimiter}"blue'
    data = "".join(delimiter.join(row) + "\r\n" for row in rows).encode()
    path = tmp_path / (f"s.{fmt}.gz" if compressed else f"s.{fmt}")
    path.write_bytes(gzip.compress(data) if compressed else data)
    items = list(read_rows(str(path), table_layout(fmt)))
    assert [(item.source_ref, getattr(item, "reason", item.photo_id)) for item in items] == [
        (f"{path.name}:2", "malformed_row"), (f"{path.name}:3", "2"), (f"{path.name}:4", "malformed_row"),
        *((f"{path.name}:{number + 1}", str(number)) for number in range(4, 2 + after))]
    assert items[0].detail == (f"a quote opened on line 2 never closes: the file ends inside its value, {after:,} "
                               f"lines on (line {after + 2}); this line is refused alone, the lines after it read as "
                               "rows")
    assert items[2].detail.startswith("a quote opened on line 4 never closes, as the one on line 2 does not")
    with local_pipeline() as p:  # the job: each line once, a photo or a rejection
        read = p | ReadTable(str(path), table_layout(fmt))
        assert_that(read.kept | beam.Map(lambda photo: photo.photo_id),
                    equal_to(["2", *(str(number) for number in range(4, 2 + after))]), label="kept")
        assert_that(read.rejected | beam.Map(why), equal_to([(f"{path.name}:2", "read", "malformed_row"),
                                                             (f"{path.name}:4", "read", "malformed_row")]),
                    label="rejected")


def test_the_lines_after_a_quote_that_never_closes_are_read_again_as_the_check_saw_them(tmp_path, monkeypatch):
    """The lines after a quote that never closes are read a second time: a .gz replaced between the two reads (an
    object overwritten in a bucket) gave the new file's rows after the old one's rejection, each checked on its own.
    The second read is of the data the file's one check saw: a file changed since is unreadable from there."""
    import gzip

    from pipeline.sources import delimited

    def table(ids: range, stray: bool) -> bytes:
        lines = ["id,url,license,title"] + [f"{n},http://h/{n}.jpg,CC BY 4.0,plain" for n in ids]
        lines[1] += ',"Sunset' if stray else ""
        return gzip.compress(("\n".join(lines) + "\n").encode())

    path = tmp_path / "s.csv.gz"
    path.write_bytes(table(range(1, 3001), stray=True))
    real, reads = delimited.read_numbered_lines, []

    def replaced_before_the_second_read(*args, **kwargs):
        reads.append(args[0])
        if len(reads) == 2:
            path.write_bytes(table(range(5001, 8001), stray=False))
        return real(*args, **kwargs)

    monkeypatch.setattr(delimited, "read_numbered_lines", replaced_before_the_second_read)
    items = list(read_rows(str(path), table_layout("csv")))
    assert len(reads) == 2
    assert [(item.source_ref, item.reason) for item in items] == [("s.csv.gz:2", "malformed_row"),
                                                                  ("s.csv.gz:3", "unreadable_file")]
    assert "the file changed after it was checked" in items[1].detail


@pytest.mark.parametrize(("bound", "over"), [("lines", 0), ("lines", 1), ("bytes", 0), ("bytes", 1)])
def test_a_record_at_its_bound_is_read_and_one_past_it_refused(tmp_path, bound, over):
    """A value whose closing quote is on the record's 1,024th line, or whose record is 65,536 bytes, is a row; a line
    or a byte more and it is refused whole, the row after it read."""
    from pipeline.sources import delimited

    if bound == "lines":
        description = "d\n" * (delimited.MAX_RECORD_LINES + over - 1) + "d"
    else:  # the record `5,http://h/5.jpg,CC BY 4.0,"…"` in two lines
        rest = delimited.MAX_LINE_BYTES + over - len('5,http://h/5.jpg,CC BY 4.0,"') - len('"') - len("\n")
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
    from pipeline.sources import delimited

    raw = line.encode()
    tracked = delimited._Overlong(delimiter)
    at = 0
    for cut in sorted(cuts):
        tracked.feed(raw[at:cut])
        at = max(at, cut)
    tracked.feed(raw[at:])
    opens = delimited._quote_left_open
    assert tracked.take() == (opens(raw, delimiter), opens(b'"' + raw, delimiter))
    assert tracked.take() == (False, True)  # nothing fed since: a line of nothing


def _csv_records(text: str, delimiter: str) -> list[tuple[int, int, list[str] | None]]:
    """The oracle: each record (first line, last line, its cells or None where the reader refuses it) as Python's csv
    reader reads the whole text, strict, as the table reader's quoting rules are; a quote that never closes (the text
    ends inside its value) is its line's record alone, refused, and the text is read again from the next line, by
    brute force."""
    import csv
    import io

    lines = io.StringIO(text, newline="").readlines()
    records: list[tuple[int, int, list[str] | None]] = []
    start = 1
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    offset = 0  # the line the reader's text starts after
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return records
        except csv.Error as err:
            if "unexpected end of data" in str(err) and offset + reader.line_num == len(lines):
                records.append((start, start, None))  # never closes: read again from the line after it
                offset, start = start, start + 1
                reader = csv.reader(io.StringIO("".join(lines[offset:]), newline=""), delimiter=delimiter,
                                    strict=True)
                continue
            cells = None
        records.append((start, offset + reader.line_num, cells))
        start = offset + reader.line_num + 1


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
    from pipeline.sources import delimited

    fmt = "csv" if delimiter == "," else "tsv"
    header = delimiter.join(["id", "url", "license", "title"])
    text = header + "\n" + "".join(line + (ends[number] if number < len(ends) else "\n")
                                   for number, line in enumerate(lines))
    path = tmp_path_factory.mktemp("t") / f"t.{fmt}"
    path.write_bytes(text.encode())
    records = [(first, last, cells) for first, last, cells in _csv_records(text, delimiter)[1:]
               if first != last or "".join(text.splitlines()[first - 1:last]).strip()]
    real = delimited.read_numbered_lines
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(delimited, "MAX_RECORD_LINES", bounds[0])
        patch.setattr(delimited, "MAX_LINE_BYTES", bounds[1])
        patch.setattr(delimited, "read_numbered_lines", lambda *args, **kwargs: real(*args, max_line=24, **kwargs))
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
    """A quote that never closes on line 2 is known only at the end of the file: the launch check, which reads a
    few rows, read the whole file (50 GB, hours) before it could say so. It follows a value for LAUNCH_CHECK_BYTES
    and says so there; the job still reads the value to the file's end, then the rows after its line."""
    from pipeline.sources import delimited

    monkeypatch.setattr(delimited, "LAUNCH_CHECK_BYTES", 1000)
    rows = "".join(f"{number},http://h/{number}.jpg,CC BY 4.0,plain\n" for number in range(2, 3000))
    (tmp_path / "s.csv").write_text('id,url,license,title\n1,http://h/1.jpg,CC BY 4.0,"Sunset\n' + rows)
    said = sniff(str(tmp_path / "s.csv"), table_layout("csv"))
    assert said == ("does not look like CSV with a header row: s.csv:2: malformed_row (a quoted value from line 2 "
                    "runs on past line 31, over 1,000 bytes: the launch check reads no further)")  # 32 bytes a line
    items = list(read_rows(str(tmp_path / "s.csv"), table_layout("csv")))
    assert [getattr(item, "reason", "kept") for item in items] == ["malformed_row"] + ["kept"] * 2998
    assert "2,998 lines on (line 3000)" in items[0].detail


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


@pytest.mark.parametrize("fmt", ["csv", "tsv", "tsv_plain"])
def test_a_header_repeated_after_line_1_is_no_row_and_the_rows_after_it_are_read_by_it(tmp_path, fmt):
    """Two exports appended to one another (`cat a.csv b.csv`, the second from a Windows tool: its own byte order mark
    and CRLF): b's header was read as a row (`bad_id`) and b's rows by a's columns, so where b wrote its columns in
    another order the photo was published crediting its title as its owner. A line that reads as the table's header
    (every column the first header maps, any order) is a `bad_header` rejection of its own line, and the rows after it
    are read by its columns."""
    delimiter = "," if fmt == "csv" else "\t"
    other = ("photo_id", "photo_url", "caption", "author", "page", "licence", "unused")  # the credit and title swapped
    first = csv_text([GOOD[0]], delimiter)
    again = csv_text([GOOD[1]], delimiter)  # the same columns in the same order
    second = csv_text([{**GOOD[0], "photo_id": "13", "caption": "Harbour at dawn", "author": "Bob"}], delimiter,
                      header=other)
    path = tmp_path / f"meta.{fmt}"
    path.write_bytes(first.encode() + again.encode() + b"\xef\xbb\xbf" + second.replace("\n", "\r\n").encode())
    items = read_all(path, fmt)
    kept = [(item.photo_id, item.owner_name, item.title, item.source_ref) for item in items if isinstance(item, Photo)]
    assert kept == [("11", "demo owner", "Chelsea the cat", f"meta.{fmt}:2"), ("12", "", "", f"meta.{fmt}:4"),
                    ("13", "Bob", "Harbour at dawn", f"meta.{fmt}:6")]
    rejected = [(item.source_ref, item.reason, item.detail) for item in items if isinstance(item, Rejection)]
    assert [(ref, reason) for ref, reason, _ in rejected] == [(f"meta.{fmt}:3", "bad_header"),
                                                              (f"meta.{fmt}:5", "bad_header")], rejected
    assert "repeats the header" in rejected[0][2] and "its own order" in rejected[1][2], rejected
    # A row whose cells happen to name columns is still a row: one giving a photo is never taken for a header.
    path.write_text(csv_text([GOOD[0], {**GOOD[0], "photo_id": "14", "author": "photo_url", "caption": "photo_id"}],
                             delimiter), encoding="utf-8")
    assert [item.photo_id for item in read_all(path, fmt) if isinstance(item, Photo)] == ["11", "14"]


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_records_after_a_repeated_header_are_told_apart_by_its_columns(tmp_path, fmt):
    """After a header repeated in its own columns (`cat a.csv b.csv`), b's rows were read by b's columns, but its
    records of several lines were still told by a's: with a column more in b, a description of two lines made 8
    cells where a's header has 7, a `wrong_column_count`, the photo lost; with b's id and url after its title, a stray
    quote opening one title and another closing a title two rows on made one photo (the last) whose title held the
    rows between, which read as rows by b's columns but not by a's: those photos gone without a word, where one header
    refuses the record, saying why. The header in force tells a record's extent."""
    delimiter = "," if fmt == "csv" else "\t"
    first = csv_text([GOOD[0]], delimiter)
    wider = csv_text([{**GOOD[0], "photo_id": "13", "caption": '"Harbour\nat dawn"', "notes": "seen"}], delimiter,
                     header=(*HEADER, "notes"))
    path = tmp_path / f"meta.{fmt}"
    path.write_text(first + wider, encoding="utf-8")
    items = read_all(path, fmt)
    assert [(item.photo_id, item.title) for item in items if isinstance(item, Photo)] == [
        ("11", "Chelsea the cat"), ("13", "Harbour\nat dawn")], items
    assert [(item.source_ref, item.reason) for item in items if isinstance(item, Rejection)] == [
        (f"meta.{fmt}:3", "bad_header")]

    title_first = ("caption", "photo_id", "photo_url", "author", "page", "licence", "unused")
    rows = [{**GOOD[0], "photo_id": str(number), "photo_url": f"https://img.example.org/a/{number}.jpg",
             "caption": caption} for number, caption in ((21, '"Sunset'), (22, "Harbour"), (23, 'at dusk"'))]
    path.write_text(first + csv_text(rows, delimiter, header=title_first), encoding="utf-8")
    items = read_all(path, fmt)
    assert [item.photo_id for item in items if isinstance(item, Photo)] == ["11"], items
    rejected = [(item.source_ref, item.reason, item.detail) for item in items if isinstance(item, Rejection)]
    assert [(ref, reason) for ref, reason, _ in rejected] == [(f"meta.{fmt}:3", "bad_header"),
                                                              (f"meta.{fmt}:4", "malformed_row")], rejected
    assert "holds line 5, which reads as a row of its own" in rejected[1][2], rejected
    # as the same rows under one header are read
    path.write_text(csv_text(rows, delimiter, header=title_first), encoding="utf-8")
    assert [(item.source_ref, item.reason) for item in read_all(path, fmt)] == [(f"meta.{fmt}:2", "malformed_row")]
