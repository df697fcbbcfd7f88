"""The csv reader's lines bounded per record, against an oracle that reads the whole text unbounded and adds up each
record's lines (hypothesis), and the forged record the bound is for."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.io.bounded_lines import BoundedRecordLines


def read(text: str, limit: int) -> list[list[str]]:
    lines = BoundedRecordLines(io.StringIO(text, newline=""), limit, lambda first, last: f"{first}-{last}")
    rows = []
    for row in csv.reader(lines):
        rows.append(row)
        lines.next_record()
    return rows


def oracle(text: str, limit: int) -> list[list[str]] | str:
    """The rows, or "first-last" of the first record whose lines passed `limit` characters together (last: the line
    on which the sum passed it); a blank line is no record's."""
    physical = io.StringIO(text, newline="").readlines()
    reader = csv.reader(iter(physical))
    rows, first = [], 1
    for row in reader:
        if row == [] and physical[first - 1] in ("\n", "\r\n", "\r"):  # a blank line: no record's
            first = reader.line_num + 1
            rows.append(row)
            continue
        total = 0
        for number in range(first, reader.line_num + 1):
            total += len(physical[number - 1])
            if total > limit:
                return f"{first}-{number}"
        rows.append(row)
        first = reader.line_num + 1
    return rows


cells = st.text(alphabet=st.sampled_from('ab,"\n\r x'), max_size=12)


@settings(max_examples=400, deadline=None)
@given(records=st.lists(st.lists(cells, min_size=1, max_size=4), max_size=6), limit=st.integers(1, 60),
       terminator=st.sampled_from(["\r\n", "\n"]))
def test_rows_are_the_readers_unless_a_record_passes_the_bound(records, limit, terminator):
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=terminator).writerows(records)
    text = out.getvalue()
    expected = oracle(text, limit)
    if isinstance(expected, str):
        with pytest.raises(ValueError) as err:
            read(text, limit)
        assert str(err.value) == expected
    else:
        assert read(text, limit) == expected


def test_a_record_of_commas_over_many_lines_is_refused_after_reading_about_the_bound():
    """`a,"` then lines of `",,,…,"`, each line within the bound: the record is refused once its lines together pass
    it, naming its first line, having read one character past the bound at most."""
    text = 'id,note\n1,ok\n2,"\n' + ('"' + "," * 1000 + '"\n') * 50 + '"\n'
    source = io.StringIO(text, newline="")
    lines = BoundedRecordLines(source, 10_000, lambda first, last: f"row at line {first}, lines {first}-{last}")
    with pytest.raises(ValueError, match=r"row at line 3, lines 3-13$"):
        for _ in csv.reader(lines):
            lines.next_record()
    assert source.tell() <= len('id,note\n1,ok\n') + 10_001


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet=st.sampled_from('ab,"\n\r'), max_size=40),
       sizes=st.lists(st.one_of(st.just(-1), st.integers(0, 8)), min_size=1, max_size=30))
def test_a_texts_lines_are_string_ios(text, sizes):
    """TextLines reads a str's lines as io.StringIO(text, newline="") does (which copies the text at 4 bytes a
    character): each line with its own ending (\\n, \\r\\n or \\r), at most `size` characters of it."""
    from pipeline.io.bounded_lines import TextLines

    mine, theirs = TextLines(text), io.StringIO(text, newline="")
    for size in sizes:
        assert mine.readline(size) == theirs.readline(size)


def test_blank_lines_before_a_record_are_skipped_in_one_step_and_counted():
    """A text's blank lines before a record (which csv.DictReader skips, keeping nothing) were handed to the reader one
    by one: a 256 MiB decisions file of blank lines took ~17 minutes of CPU. They are skipped at once, counted in the
    line numbers; a blank line inside a quoted value is the value's."""
    from pipeline.io.bounded_lines import TextLines

    text = 'a,b\n\n\r\n\r\n\r\rc,"d\n\ne"\n\n'
    lines = BoundedRecordLines(TextLines(text), 100, lambda first, last: f"{first}-{last}")
    rows, given = [], []

    def handed():
        for line in lines:
            given.append(line)
            yield line

    for row in csv.reader(handed()):
        rows.append((lines.first, row))
        lines.next_record()
    assert rows == [(1, ["a", "b"]), (7, ["c", "d\n\ne"])]
    assert given == ["a,b\n", 'c,"d\n', "\n", 'e"\n']


@settings(max_examples=500)
@given(st.text(st.sampled_from("a,\r\n\"é"), max_size=60), st.integers(1, 7),
       st.lists(st.one_of(st.integers(-1, 9), st.none()), max_size=40))
def test_a_stream_s_lines_are_its_text_s_read_a_chunk_at_a_time(text, chunk, steps):
    """`StreamLines` of a stream read a few characters at a time gives each `readline(size)` and `skip_blank_lines()`
    what `TextLines` of the whole text gives, wherever a chunk ends ('\\r' and '\\n' of one line end in two, a blank
    run or a line going on in the next)."""
    from pipeline.io.bounded_lines import StreamLines, TextLines

    whole, streamed = TextLines(text), StreamLines(io.StringIO(text, newline=""), chunk)
    for step in [*steps, *[None, -1] * len(text)]:  # then to the end, whatever the steps left
        if step is None:
            assert streamed.skip_blank_lines() == whole.skip_blank_lines()
        else:
            assert streamed.readline(step) == whole.readline(step)
    assert streamed.readline() == whole.readline() == ""


def test_a_run_of_blank_lines_in_a_stream_is_skipped_a_chunk_at_a_time():
    """8 MB of blank lines read one by one took 4 s (a worker reading the decisions store through its stream);
    skipped a chunk at a time, as `TextLines` skips them, none of them is a line read, and the line after them is
    numbered past them."""
    from pipeline.io.bounded_lines import StreamLines

    steps = 0

    class Counted(StreamLines):
        def readline(self, size: int = -1) -> str:
            nonlocal steps
            steps += 1
            return super().readline(size)

    stream = io.StringIO("a\n" + "\r\n" * 3_000_000 + "\n" * 2_000_000 + "b,c\n", newline="")
    lines = BoundedRecordLines(Counted(stream), 100, lambda first, last: f"{first}-{last}")
    rows = []
    for row in csv.reader(lines):
        rows.append((lines.first, row))
        lines.next_record()
    assert rows == [(1, ["a"]), (5_000_002, ["b", "c"])] and steps < 10, steps
