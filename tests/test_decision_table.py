import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import decisions_file
from pipeline.decision_table import DECISIONS, Decision, DecisionTableBuilder
from pipeline.decisions_file import parse_decisions, stage_decisions
from pipeline.io.sinks import csv_cell
from tests.conftest import traced_peak

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


def test_a_later_decision_for_a_photo_replaces_its_note_and_image_whole():
    table = DecisionTableBuilder()
    table.add("7", 0, "looks fine", "ab" * 32)
    table.add("5", 2, "blurry", "")
    table.add("7", 0, "", "")
    built = table.table()
    assert built.get("7") == Decision("accept", "", "") and built.get("5") == Decision("reject_other", "blurry", "")
    assert built.get("6") is None and built.get("6", Decision("accept", "")) == Decision("accept", "")
    assert DecisionTableBuilder().table().get("7") is None and "7" not in DecisionTableBuilder().table()


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
