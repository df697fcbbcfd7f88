"""A reviewers' decisions file (pipeline/decisions_file.py): its rows read and checked, whole where it is small and a
chunk at a time where it is a release's store (at launch, on a worker), each reading refusing what the others refuse
with the same line."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import decisions_file
from pipeline.decision_table import DECISIONS, Decision
from pipeline.decisions_file import parse_decisions, read_decisions, stage_decisions
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
