"""A reviewers' decisions file (pipeline/decisions_file.py): its rows read and checked, whole where it is small and a
chunk at a time where it is a release's store (at launch, on a worker), each reading refusing what the others refuse
with the same line."""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import decisions_file
from pipeline.decision_table import DECISIONS, Decision
from pipeline.decisions_file import (
    decisions_text,
    parse_decisions,
    read_decision_table,
    read_decisions,
    stage_decisions,
)
from pipeline.io.sinks import csv_cell
from tests.conftest import traced_peak
from tests.decision_stores import hostile_stores, read_whole, small_bounds

_NOTES = st.text(st.sampled_from("ab ,\"'=+-@;\t\r\n\u2028é"), max_size=12)
_IDS = st.one_of(st.integers(1, 99), st.integers(1, 10**20 - 1), st.integers(2**63 - 3, 2**63 + 3),
                 st.integers(10**19, 10**20 - 1))


@st.composite
def stores(draw: st.DrawFn) -> str:
    """A decisions store's text as `parse_decisions` reads it at launch: its columns in any order (the note's and the
    sha256's optional, another beside them), ids spelled with leading zeros, a photo decided over several rows (the
    same verdict and image, another note: the later row stands), CRLF line ends, a byte order mark, blank lines."""
    photos = draw(st.lists(st.tuples(_IDS, st.sampled_from(DECISIONS), st.one_of(st.just(""), st.binary(
        min_size=32, max_size=32).map(bytes.hex))), max_size=12, unique_by=lambda photo: photo[0]))
    columns = draw(st.permutations(["photo_id", "decision", *draw(st.sets(st.sampled_from(
        ["note", "sha256", "other"])))]))
    rows = draw(st.lists(st.tuples(st.sampled_from(photos), st.integers(0, 3), _NOTES), max_size=30)
                if photos else st.just([]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(columns)]
    for (number, verdict, sha256), zeros, note in rows:
        cells = {"photo_id": str(number).zfill(min(20, len(str(number)) + zeros)),  # 20 digits at most
                 "decision": verdict, "note": note,
                 "sha256": sha256 if "sha256" in columns else "", "other": "x"}
        lines.append(",".join(csv_cell(cells[name]) for name in columns))
        lines.extend([""] * draw(st.integers(0, 1)))
    return draw(st.sampled_from(["", "\ufeff"])) + end.join(lines) + end


@settings(max_examples=300)
@given(stores(), st.lists(st.one_of(_IDS.map(str), st.text(st.sampled_from("07 +.٧x"), max_size=4)), max_size=5))
def test_a_worker_s_table_answers_as_the_launcher_s_dict_for_every_id(text, others):
    """The staged store as a worker reads it (a MiB at a time into a compact table) gives every id the decision
    the dict of `parse_decisions` gives, and none to an id it does not decide (spelled otherwise: '07', '+7', '٧')."""
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "reviews.csv"
        store.write_bytes(text.encode())
        oracle = parse_decisions(text.removeprefix("\ufeff"), str)
        decisions_file._staged_decisions.cache_clear()
        table = decisions_file._staged_decisions(stage_decisions(str(store), folder))
    assert len(table) == len(oracle) and list(table.items()) == sorted(oracle.items(), key=lambda item: int(item[0]))
    for photo_id in [*oracle, *others, *(f"0{photo_id}" for photo_id in oracle)]:
        assert table.get(photo_id) == oracle.get(photo_id) and (photo_id in table) == (photo_id in oracle), photo_id
        if photo_id in oracle:
            assert table.get(photo_id).verdict is oracle[photo_id].verdict  # one string of DECISIONS


def test_a_worker_holds_a_store_in_a_fraction_of_the_memory_of_its_text_and_a_dict(tmp_path):
    """1.44 million decisions (121 MB, with sha256) were read whole on every worker, their bytes, their text and a
    dict of them together: ~576 MiB and ~26 s in each process (~360 bytes a decision at the peak here). Read a MiB at
    a time into a table: ~46 bytes a decision held, ~107 at the peak (~75, and ~5 MB for the chunks read)."""
    count = 150_000
    store = tmp_path / "reviews.csv"
    store.write_text("photo_id,decision,note,sha256\n" + "".join(
        f"{1_000_000_000 + 7 * number},{DECISIONS[number % 3]},{'a face' if number % 10 == 0 else ''},"
        f"{number:064x}\n" for number in range(count)))
    staged = stage_decisions(str(store), str(tmp_path / "staging"))
    decisions_file._staged_decisions.cache_clear()
    table, peak = traced_peak(lambda: decisions_file._staged_decisions(staged))
    assert table.get(str(1_000_000_000 + 7 * 20)) == Decision(DECISIONS[2], "a face", f"{20:064x}")
    assert len(table) == count and peak < 135 * count, peak


def test_decisions_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("photo_id,decision,note\n1,accept,\n2,reject_human,child in the corner\n")
    assert read_decisions(str(path)) == {"1": ("accept", "", ""), "2": ("reject_human", "child in the corner", "")}
    path.write_text("photo_id,decision,note\n1,maybe,\n")
    try:
        read_decisions(str(path))
    except ValueError as err:
        assert ":2:" in str(err)
    else:
        raise AssertionError("a bad decision was accepted")


@pytest.mark.parametrize("row", ["5,maybe,", "7.0,accept,", "5,accept,,abc", '5,accept,"ok" then',
                                 "5,accept," + "x" * (1 << 20)])
def test_a_worker_reading_a_store_row_the_launch_would_refuse_names_it_as_the_launch_does(row):
    """The table a worker reads the staged store into (`decision_table`) only ever reads what the launch checked;
    a row it cannot read all the same is the launch's one line naming its place, not an error of the table's."""
    import io

    from pipeline.decisions_file import decision_table

    text = f"photo_id,decision,note,sha256\n3,accept,fine,\n\n{row}\n"
    with pytest.raises(ValueError) as launch:
        parse_decisions(text, lambda line: f"reviews.csv:{line}")
    with pytest.raises(ValueError) as worker:
        decision_table(io.StringIO(text, newline=""), "reviews.csv")
    assert str(worker.value) == str(launch.value) and str(worker.value).startswith("reviews.csv:4: ")


@settings(max_examples=400, deadline=None)
@given(hostile_stores(), st.sampled_from([1, 2, 3, 7, 64, 1 << 20]))
def test_the_launch_checks_a_store_read_a_chunk_at_a_time_as_the_whole_file_was_checked(raw, chunk):
    """The launch read the store whole (its bytes, its text, a dict: ~584 MiB at 1.44 million decisions) to check it;
    read a chunk at a time into a compact table, it accepts what that accepted, staging the same bytes under their
    sha256, and refuses what that refused with the same line (the first refusal in the file, in its order), staging
    nothing. Bounds made small so that every refusal is reached: the file's bytes, its rows, a row's characters."""
    from pipeline.decisions_file import stage_decisions

    with tempfile.TemporaryDirectory() as folder, small_bounds():
        store, staging = Path(folder) / "reviews.csv", Path(folder) / "staging"
        store.write_bytes(raw)
        refused = read_whole(str(store))[1]
        if refused is None:
            staged = stage_decisions(str(store), str(staging), chunk)
            assert Path(staged.path).read_bytes() == raw and staged.sha256 == hashlib.sha256(raw).hexdigest()
            assert [path.name for path in staging.iterdir()] == [f"{staged.sha256}.csv"]
        else:
            with pytest.raises(ValueError) as streamed:
                stage_decisions(str(store), str(staging), chunk)
            assert str(streamed.value) == refused
            assert not staging.exists() or not list(staging.iterdir())


def test_the_launch_checks_a_store_in_a_fraction_of_the_memory_of_its_text_and_a_dict(tmp_path):
    """1.44 million decisions (121 MB with sha256) were read whole at launch to be checked, their bytes, their text
    and a dict together (~450 bytes a decision at the peak here, ~584 MiB there). Copied and read back a MiB at a time
    into a compact table (~46 bytes a decision and its line, ~16 more to sort them): ~92 at the peak here."""
    from pipeline.decisions_file import stage_decisions

    count = 150_000
    store = tmp_path / "reviews.csv"
    store.write_text("photo_id,decision,note,sha256\n" + "".join(
        f"{1_000_000_000 + 7 * number},{DECISIONS[number % 3]},{'a face' if number % 10 == 0 else ''},"
        f"{number:064x}\n" for number in range(count)) + f"{1_000_000_000 + 7 * 5},accept,,\n")
    with pytest.raises(ValueError, match=f"reviews.csv:{count + 2}: photo 1000000035 is decided otherwise at "
                                         r".*reviews.csv:7; keep one row per photo"):
        stage_decisions(str(store), str(tmp_path / "refused"))
    store.write_bytes(store.read_bytes()[:-len(f"{1_000_000_000 + 7 * 5},accept,,\n")])
    staged, peak = traced_peak(lambda: stage_decisions(str(store), str(tmp_path / "staging")))
    assert staged.sha256 == hashlib.sha256(store.read_bytes()).hexdigest() and peak < 150 * count, peak


@pytest.mark.parametrize("text", ["", "\n\n\n", "\r\n\r\n"], ids=["empty", "blank lines", "blank CRLF lines"])
def test_a_decisions_file_of_no_header_says_so_at_its_first_line(tmp_path, text):
    """An empty decisions file, or one of blank lines only, was refused as 'line 4: no photo_id or decision column
    (its header: )', naming a line past its end and a header it does not have."""
    given = tmp_path / "decisions.csv"
    given.write_text(text)
    with pytest.raises(ValueError, match=r"decisions.csv:1: no header row \(photo_id,decision,note,sha256\)"):
        read_decisions(str(given))


def test_a_decisions_text_is_read_without_a_copy_of_it_at_four_bytes_a_character():
    """The decisions text went through io.StringIO, which holds its own copy at 4 bytes a character: a 256 MiB file
    took 1 GiB more than its text. Read in place, reading one costs less than its text again (here rows deciding one
    photo, so no memory is kept for them)."""
    from pipeline.decisions_file import parse_decisions
    from tests.conftest import traced_peak

    text = "photo_id,decision,note,sha256\n" + f"5,accept,fine,{'a' * 64}\n" * 50_000
    decisions, peak = traced_peak(lambda: parse_decisions(text, str))
    assert decisions == {"5": ("accept", "fine", "a" * 64)}
    assert peak < len(text), (peak, len(text))


def test_a_header_of_many_columns_costs_a_row_nothing_more():
    """Each row was read as a dict of every column the header names, filled in for the cells a row lacks: a header of
    500,000 names (a 0.5 MB line) made each 9-byte row `5,accept` 20 ms of CPU, a 16 MB file of them hours at a run's
    launch. A row is read by its four columns' places alone: here 20 rows under 100,000 names cost the header's
    memory only (a row's dict of them, 5 MB each, was more than the header)."""
    from pipeline.decisions_file import parse_decisions
    from tests.conftest import traced_peak

    header = "photo_id,decision," + ",".join(f"c{n}" for n in range(100_000))
    text = header + "\n" + "".join(f"{n},accept\n" for n in range(1, 21))
    decisions, peak = traced_peak(lambda: parse_decisions(text, str))
    assert sorted(decisions, key=int) == [str(n) for n in range(1, 21)]
    assert peak < 16 * len(text), (peak, len(text))  # the header's names as strings and a list of them: ~10 bytes each


# What each of the four readings of a decisions file gives: the page's and template's read whole (`parse_decisions`),
# the store checked at launch a chunk at a time (`stage_decisions`), read by `review apply` (`read_decision_table`)
# and on a worker (`decision_table`). {photo id: (verdict, note, sha256)}, or the refusal's line.
def _readings(text: str, folder: Path) -> list[dict[str, tuple[str, str, str]] | str]:
    import io
    from collections.abc import Callable, Iterable

    from pipeline.decisions_file import decision_table, read_decision_table

    path = folder / "d.csv"
    path.write_text(text, encoding="utf-8", newline="")

    def staged() -> Iterable[tuple[str, Decision]]:  # checked and copied: no decision to give back
        stage_decisions(str(path), str(folder / "staged"), 3)
        return ()

    readings: list[dict[str, tuple[str, str, str]] | str] = []
    reads: list[Callable[[], Iterable[tuple[str, Decision]]]] = [
        lambda: read_decisions(str(path)).items(),
        lambda: decision_table(io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8-sig", newline=""),
                               str(path)).items(),
        lambda: read_decision_table(str(path)).items(),
        staged]
    for read in reads:
        try:
            readings.append({photo_id: (decision.verdict, decision.note, decision.sha256)
                             for photo_id, decision in read()})
        except ValueError as err:
            readings.append(str(err).replace(str(path), "d.csv"))
    return readings


_HEADER = "photo_id,decision,note,sha256\n"


@pytest.mark.parametrize(("text", "refusal"), [
    # a spreadsheet's byte order mark at a row's start (two files joined, the second saved as "CSV UTF-8")
    (_HEADER + "5,accept,,\n\ufeff6,accept,,\n", r"d.csv:3: photo_id '\ufeff6' is not a Flickr photo number"),
    (_HEADER + "5\x00,accept,,\n", r"d.csv:2: photo_id '5\x00' is not a Flickr photo number"),
    (_HEADER + "5,reject_human\x00,,\n", "d.csv:2: decision must be one of accept, reject_human, reject_other, "
                                         r"not 'reject_human\x00'"),
    # formulas where a number or a verdict is read: never taken for one
    (_HEADER + "=5,accept,,\n", "d.csv:2: photo_id '=5' is not a Flickr photo number"),
    (_HEADER + "5,=accept,,\n", "d.csv:2: decision must be one of"),
    (_HEADER + "5,'accept,,\n", "d.csv:2: decision must be one of"),
    # verdicts that are none, spelled as a person may spell them
    (_HEADER + "5,Accept,,\n", "d.csv:2: decision must be one of accept, reject_human, reject_other, not 'Accept'"),
    (_HEADER + "5,reject,,\n", "d.csv:2: decision must be one of"),
    (_HEADER + "5,reject-human,,\n", "d.csv:2: decision must be one of"),
    # line ends mixed (\n, \r\n, a lone \r): each is a line, and the refusal names the line an editor shows
    ("photo_id,decision\n5,accept\r\n6,reject_human\r7,accept\n8,maybe\n", "d.csv:5: decision must be one of"),
    ("photo_id,decision\r\n5,accept\r6,maybe\n", "d.csv:3: decision must be one of"),
    # U+2028 and a form feed are no line end to a CSV reader: the row is wider than the header, not two rows
    ("photo_id,decision\n5,accept\u20286,reject_human\n", "d.csv:2: 3 cells, more than the 2 columns"),
    ("photo_id,decision\n5,accept\x0c6,reject_human\n", "d.csv:2: 3 cells, more than the 2 columns"),
    # a second byte order mark (the first is the encoding's): no photo_id column, the header quoted escaped
    ("\ufeff\ufeff" + _HEADER + "5,accept,,\n", r"d.csv:1: no photo_id column (its header: \ufeffphoto_id, decision"),
    ("photo_id;decision\n5;accept\n", "d.csv:1: no photo_id or decision column (its header: photo_id;decision)"),
    ("Photo_ID,Decision\n5,accept\n", "d.csv:1: no photo_id or decision column"),
    (_HEADER + "5,accept,,\n05,reject_human,,\n", "d.csv:3: photo 5 is decided otherwise at d.csv:2"),
    (_HEADER + f"5,accept,,{'a' * 64}\n5,accept,,{'b' * 64}\n", "d.csv:3: photo 5 is decided otherwise at d.csv:2"),
    (_HEADER + "5,accept,," + "g" * 64 + "\n", "d.csv:2: sha256 'ggg"),
    (_HEADER + "5,accept,,abc\n", "d.csv:2: sha256 'abc' is not the sha256 of an image (64 hex digits)"),
])
def test_a_hostile_decisions_file_is_refused_with_its_line_by_every_reading(tmp_path, text, refusal):
    """Decisions files come from annotators outside the team: a byte order mark or a NUL in an id or a verdict, a
    formula where a number or a verdict goes, a verdict misspelt, line ends mixed, a photo decided twice otherwise,
    a header of another dialect. Each is refused, naming its line, and alike by the four readings of the file."""
    readings = _readings(text, tmp_path)
    assert readings[0] == readings[2] == readings[3], readings
    assert isinstance(readings[0], str) and readings[0].startswith(refusal), readings[0]
    # A worker reads only what the launch checked: it refuses as the launch does, but a photo decided twice otherwise
    # is the launch's refusal alone (the worker's table keeps the later row).
    assert readings[1] == readings[0] or "decided otherwise" in refusal, readings[1]


@pytest.mark.parametrize(("text", "decisions"), [
    # mixed line ends and a lone CR (a classic Mac export): every row read
    ("photo_id,decision\r5,accept\r6,reject_human\r", {"5": ("accept", "", ""), "6": ("reject_human", "", "")}),
    ("photo_id,decision\n5,accept\r\n6,reject_human\r7,reject_other\n",
     {"5": ("accept", "", ""), "6": ("reject_human", "", ""), "7": ("reject_other", "", "")}),
    # a note is kept as the reviewer wrote it, a NUL and a formula included (the store writes it safe: `csv_cell`)
    (_HEADER + "5,accept,a\x00b,\n", {"5": ("accept", "a\x00b", "")}),
    (_HEADER + "5,accept,=cmd|' /C calc'!A0,\n", {"5": ("accept", "=cmd|' /C calc'!A0", "")}),
    (_HEADER + "5,accept,@SUM(1+1)*cmd|' /C calc'!A0,\n", {"5": ("accept", "@SUM(1+1)*cmd|' /C calc'!A0", "")}),
    # as the store writes such a note ('=...): read back as written
    (_HEADER + "5,accept,'=cmd|' /C calc'!A0,\n", {"5": ("accept", "=cmd|' /C calc'!A0", "")}),
    (_HEADER + "5,accept,''=x,\n", {"5": ("accept", "'=x", "")}),
    # an id in its one spelling, a verdict and a sha256 as a spreadsheet may space and case them
    (_HEADER + f' 007 ,\taccept ,,{"A" * 64} \n', {"7": ("accept", "", "a" * 64)}),
    (_HEADER + '"5","reject_other","a ""quoted"", note",\n', {"5": ("reject_other", 'a "quoted", note', "")}),
    # the same decision of the same image twice: the later note stands
    (_HEADER + "5,accept,first,\n05,accept,second,\n", {"5": ("accept", "second", "")}),
    # columns in another order, others beside them
    ("sha256,extra,decision,photo_id\n,x,reject_human,5\n", {"5": ("reject_human", "", "")}),
])
def test_a_decisions_file_as_hands_and_spreadsheets_write_it_is_read_alike_by_every_reading(tmp_path, text,
                                                                                          decisions):
    """What a decisions file holds, however its lines end and its cells are spaced, quoted or cased: each reading
    gives the same decisions."""
    readings = _readings(text, tmp_path)
    assert readings[:3] == [decisions] * 3 and readings[3] == {}, readings  # staged: checked, no error


def test_an_undecided_row_is_skipped_only_where_asked():
    """The template's rows not decided yet (`review apply` skips them) are refused in a store."""
    text = "photo_id,decision\n5,accept\n6,\n7, \n"
    assert parse_decisions(text, str, skip_undecided=True) == {"5": ("accept", "", "")}
    with pytest.raises(ValueError, match=r"^3: decision must be one of accept, reject_human, reject_other, not ''$"):
        parse_decisions(text, str)


def test_a_line_over_the_bound_and_a_cell_over_the_csv_limit_are_refused_naming_their_line():
    """A line of a MiB (annotators' files come from outside the team; the reader makes a list of 8 bytes a comma) and
    a cell over the csv module's own limit are each one line naming where, not the reader's error."""
    import csv

    from pipeline.decisions_file import MAX_DECISION_LINE

    with pytest.raises(ValueError, match=rf"^d.csv:3: a line over {MAX_DECISION_LINE:,} characters$"):
        parse_decisions(_HEADER + "5,accept,,\n6,accept," + "," * MAX_DECISION_LINE + "\n", "d.csv:{}".format)
    cell = csv.field_size_limit() + 1
    with pytest.raises(ValueError, match=rf"^d.csv:2: a cell over {cell - 1:,} characters \(a note is at most that "
                                         r"long: shorten it\)$"):
        parse_decisions(_HEADER + f'5,accept,"{"x" * cell}",\n', "d.csv:{}".format)


def test_the_columns_of_a_header_are_checked_and_quoted_escaped_and_bounded():
    from pipeline.decisions_file import check_decision_columns

    check_decision_columns(["note", "decision", "photo_id", "other", "other"], "d.csv:1")  # others may repeat
    for columns, said in ((None, "no photo_id or decision column (its header: )"),
                          (["photo_id"], "no decision column (its header: photo_id)"),
                          (["photo_id", "decision", "sha256", "sha256", "note", "note"],
                           "the column note and sha256 is named twice")):
        with pytest.raises(ValueError) as refused:
            check_decision_columns(columns, "d.csv:1")
        assert str(refused.value) == f"d.csv:1: {said}"
    with pytest.raises(ValueError) as refused:
        check_decision_columns(["photo_id", "\x1b[2J" + "v" * 1000], "d.csv:1")
    message = str(refused.value)
    assert "\x1b" not in message and "\\x1b[2J" in message and len(message) < 300, message


def test_an_id_and_a_sha256_are_read_in_their_one_spelling_or_refused_naming_where():
    from pipeline.decisions_file import decided_photo_id, decided_sha256

    assert decided_photo_id(" 0042 ", "here") == "42" and decided_photo_id(str(10**20 - 1), "") == str(10**20 - 1)
    for cell in ("7.0", "7e0", "", "0", "٧", "+7", str(10**20)):
        with pytest.raises(ValueError, match=r"^here: photo_id .* is not a Flickr photo number"):
            decided_photo_id(cell, "here")
    with pytest.raises(ValueError) as refused:
        decided_photo_id("9" * 1000, "here")
    assert len(str(refused.value)) < 200  # the cell quoted in part
    assert decided_sha256(f" {'AB' * 32} ", "") == "ab" * 32 and decided_sha256("", "") == ""
    for cell in ("a" * 63, "a" * 65, "g" * 64, "0x" + "a" * 62):
        with pytest.raises(ValueError, match=r"^here: sha256 .* is not the sha256 of an image"):
            decided_sha256(cell, "here")


def test_a_decisions_files_bytes_are_its_text_past_a_byte_order_mark_or_refused_naming_the_line_and_byte():
    from pipeline.decisions_file import text_of_decisions

    assert text_of_decisions("\ufeffphoto_id,decision\n".encode(), "d.csv") == "photo_id,decision\n"
    assert text_of_decisions(b"photo_id,decision\n", "d.csv") == "photo_id,decision\n"
    with pytest.raises(ValueError, match=r"^d.csv:3: not UTF-8 text \(byte 29\); save it as CSV UTF-8$"):
        text_of_decisions(b"photo_id,decision\r\n5,accept\r\n\xe96,accept\n", "d.csv")
    with pytest.raises(ValueError, match=r"^d.csv:1: not UTF-8 text \(byte 0\)"):
        text_of_decisions(b"\xef\xbb", "d.csv")  # a byte order mark cut short


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_a_decisions_file_read_a_chunk_at_a_time_counts_its_characters_and_refuses_as_read_whole(tmp_path, chunk):
    """`DecisionsText` counts the characters of the text (past a byte order mark split over chunks) and refuses bytes
    that are no UTF-8 with the line and byte `text_of_decisions` names, whichever the chunk size."""
    from pipeline.decisions_file import DecisionsText, text_of_decisions

    for raw in ("\ufeffphoto_id,decision\n5,accepté\n".encode(), "photo_id,decision\n€5\n".encode(),
                b"photo_id,decision\n5,accept\n\xff\n", "\ufeff".encode() + b"\n\n\xc3", b"", b"\xef\xbb"):
        path = tmp_path / "d.csv"
        path.write_bytes(raw)
        text = DecisionsText(str(path))
        with path.open("rb") as handle:
            assert b"".join(text.chunks(handle, chunk)) == raw
        try:
            whole = text_of_decisions(raw, str(path))
        except ValueError as err:
            with pytest.raises(ValueError) as streamed:
                text.refuse(str(path))
            assert str(streamed.value) == str(err)
        else:
            text.refuse(str(path))
            assert text.characters == len(whole), raw


def test_no_store_is_no_decision_and_decisions_in_memory_are_given_back_as_they_are(tmp_path):
    from pipeline.decisions_file import decisions_of

    assert read_decisions(None) == {} and read_decisions("") == {}
    assert stage_decisions(None, str(tmp_path)) == {} and stage_decisions("", str(tmp_path)) == {}
    assert list(tmp_path.iterdir()) == []  # nothing staged
    held = {"5": Decision("accept", "", "")}
    assert decisions_of(held) is held
    store = tmp_path / "d.csv"
    store.write_text(_HEADER + "5,accept,fine,\n")
    staged = stage_decisions(str(store), str(tmp_path / "staged"))
    decisions_file._staged_decisions.cache_clear()
    table = decisions_of(staged)
    assert dict(table.items()) == {"5": Decision("accept", "fine", "")} and decisions_of(staged) is table  # read once


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_bytes_that_are_no_utf8_after_a_byte_order_mark_are_named_at_their_line_and_byte_in_the_file(tmp_path, chunk):
    """The line was counted in the file's bytes up to the decoder's place, which lies past the byte order mark: a file
    saved as "CSV UTF-8" (it begins with the mark) with a Latin-1 byte at a line's start was said to be no UTF-8 on the
    line before it, and at a byte three before the file's own. The line and byte are the file's, in every reading."""
    from pipeline.decisions_file import read_decision_table

    decisions = tmp_path / "d.csv"
    decisions.write_bytes("\ufeffphoto_id,decision\r\n5,accept\r\n".encode() + b"\xe96,accept\n")
    said = f"{decisions}:3: not UTF-8 text (byte 32); save it as CSV UTF-8"
    for read in (read_decisions, read_decision_table,
                 lambda path: stage_decisions(path, str(tmp_path / "staged"), chunk)):
        with pytest.raises(ValueError) as refused:
            read(str(decisions))
        assert str(refused.value) == said
    assert not (tmp_path / "staged").exists() or not list((tmp_path / "staged").iterdir())  # nothing staged
    decisions.write_bytes("\ufeffphoto_id,decision\n5,accept\n".encode() + b"7,reject_human,caf\xe9\n")
    with pytest.raises(ValueError, match=r":3: not UTF-8 text \(byte 48\)"):
        read_decisions(str(decisions))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_a_decisions_file_saved_as_utf16_or_utf32_is_refused_naming_it_not_read_as_no_decision(tmp_path, encoding):
    """A spreadsheet's "Unicode text" (UTF-16, with or without its byte order mark) or UTF-32: refused naming the file,
    line and byte, read whole or a MiB at a time, never read as a header without photo_id (a NUL after each letter)."""
    path = tmp_path / "d.csv"
    path.write_bytes("photo_id,decision,note\n5,reject_human,\n".encode(encoding))
    first_bad = 0 if encoding != "utf-16-le" else 1  # 'p' then NUL is UTF-8; a BOM (FF FE) is not
    pattern = rf"^{re.escape(str(path))}:1: not UTF-8 text \(byte {first_bad}\); save it as CSV UTF-8$"
    if encoding == "utf-16-le":  # NULs are UTF-8: the header is read, and its NULs shown escaped, never as they are
        pattern = r"no photo_id or decision column \(its header: p\\x00h\\x00o"
    for read in (decisions_text, read_decision_table):
        with pytest.raises(ValueError, match=pattern):
            text = read(str(path))
            if isinstance(text, str):
                parse_decisions(text, lambda line: f"{path}:{line}")


@pytest.mark.parametrize(("text", "said"), [
    ("photo_id,decision,note\n5,reject_human,\n".encode("utf-16-le"),
     "; a NUL after each letter: the file is UTF-16 (a spreadsheet's Unicode text): save it as CSV UTF-8"),
    (b"photo_id;decision;note\n5;reject_human;\n",
     "; its columns are separated by semicolons: save it as CSV with commas"),
    (b"photo_id\tdecision\tnote\n5\treject_human\t\n",
     "; its columns are separated by tabs: save it as CSV with commas"),
    (b"id,verdict\n5,reject_human\n", ""),
])
def test_a_header_without_the_columns_says_how_the_file_was_saved_where_that_is_plain(tmp_path, text, said):
    """A spreadsheet's Unicode text without its byte order mark (UTF-16: its NULs are UTF-8, so its header is read)
    and a CSV of semicolons or tabs were refused as "no photo_id or decision column (its header: ...)" alone; the
    line says what the file is and what to save instead. Another header is refused as before."""
    path = tmp_path / "d.csv"
    path.write_bytes(text)
    for read in (decisions_text, read_decision_table):
        with pytest.raises(ValueError, match=r"no photo_id or decision column \(its header: [^\n]*\)" + re.escape(said)
                           + "$"):
            found = read(str(path))
            if isinstance(found, str):
                parse_decisions(found, lambda line: f"{path}:{line}")
