"""benchmarks/working_copy.py measures on the fetched tuning photographs (a download of package archives, not
possible here), so it runs on the project's own photographs of that split (tests/photos, labelled in their
SOURCES.md) in their place: the threshold that keeps a share of clean photos, and the table it prints."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from benchmarks import working_copy
from pipeline.photo_sets.fetch import Row

PHOTOS = Path(__file__).parent / "photos"
LABELS = {"hand_feeding_bird.jpg": "body_part", "tiny_tourists_at_pisa.jpg": "tiny_person",
          "tiny_people_at_eiffel_tower.jpg": "tiny_person", "eiffel_tower_no_people.jpg": "no_person",
          "dallas_sunset.jpg": "no_person", "macaque.jpg": "no_person"}


def test_the_threshold_keeps_the_asked_share_of_clean_scores():
    clean = [0.1 * i for i in range(10)]  # 0.0 .. 0.9
    for keep, kept in ((0.9, 9), (0.5, 5), (1.0, 10), (0.0, 1)):  # at least one photo kept: the lowest score
        cut = working_copy.threshold_keeping(clean, keep)
        assert sum(score < cut for score in clean) == kept  # a photo is removed at score >= threshold
    assert working_copy.threshold_keeping([0.7, 0.2, 0.5], 2 / 3) == pytest.approx(0.5)  # unsorted scores


@pytest.fixture
def tuning(tmp_path, monkeypatch):
    """The photographs stored under their sha256 as fetch stores them, as the tuning split's rows."""
    rows = []
    for name, label in LABELS.items():
        data = (PHOTOS / name).read_bytes()
        row = Row("tests", "1", "local", f"photos/{name}", hashlib.sha256(data).hexdigest(), 1, 1, label, "",
                  "tuning", "")
        shutil.copyfile(PHOTOS / name, tmp_path / row.file_name)
        rows.append(row)
    monkeypatch.setattr(working_copy, "load_rows", lambda split: rows if split == "tuning" else [])
    return tmp_path


def test_the_table_has_a_row_per_variant_and_its_counts_add_up(tuning, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["working_copy", "--photos", str(tuning), "--keep", "0.5,1.0",
                                     "--variants", "ssdlite_person:256:2,ssdlite_person:512:0"])
    working_copy.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "tuning split: 6 photographs, 3 with a human (2 tiny people), 3 without"
    assert lines[1] == ("| detector, working copy, grid | views per image | CPU ms per image (copy + views) "
                        "| recall at keep 50%: all / tiny | recall at keep 100%: all / tiny |")
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| ssdlite_person, 256 px, 2 x 2",
                                                            "| ssdlite_person, 512 px, whole image"]
    cell = re.compile(r"(\d+)/3 \((\d+)%\) / (\d+)/2 \((\d+)%\) at (\d+\.\d+)")
    for line in lines[2:]:
        cells = line.strip("| ").split(" | ")
        assert len(cells) == 5 and float(cells[2]) > 0
        views = float(cells[1])
        # a 2 x 2 grid adds 4 views to the whole image where the working copy is large enough to tile
        assert views == 1.0 if "whole image" in line else 1.0 <= views <= 5.0
        found = [cell.fullmatch(text) for text in cells[3:]]
        assert all(found), cells
        for match in found:
            assert assert_share(match, 1) and assert_share(match, 3)
        # keeping every clean photo sets the threshold above each clean score: no more found than at 50%
        assert int(found[1].group(1)) <= int(found[0].group(1))


def assert_share(match: re.Match, group: int) -> bool:
    """The percentage printed after a count is that count's share of the photos (3 with a human, 2 tiny)."""
    total = 3 if group == 1 else 2
    return round(100 * int(match.group(group)) / total) == int(match.group(group + 1))


@pytest.mark.parametrize(("argv", "said"), [
    (["--keep", "0.9,x"], "is not comma-separated numbers"), (["--keep", "95"], "must be within 0..1"),
    (["--variants", "ssdlite_person:512"], "is not detector:longest side:grid"),
    (["--variants", "ssdlite_person:0:2"], "a side of at least 1"),
])
def test_keep_rates_and_variants_it_cannot_measure_are_refused_before_a_photograph_is_read(
        tmp_path, monkeypatch, capsys, argv, said):
    """A word among the keep-rates, or a variant without its grid, was a ValueError traceback once the photographs
    had been read; a keep-rate of 95 put the threshold past every score."""
    monkeypatch.setattr(working_copy, "load_samples", lambda *_: pytest.fail("photographs read"))
    monkeypatch.setattr("sys.argv", ["working_copy", "--photos", str(tmp_path), *argv])
    with pytest.raises(SystemExit) as stopped:
        working_copy.main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and said in err and err.startswith("working_copy: error: ")
    assert err.count("\n") == 1, err  # one line, as an unknown option's (argparse's usage came before it)


def test_photographs_not_fetched_are_one_line(tmp_path, monkeypatch, capsys):
    """load_samples' PhotoSetError was a traceback."""
    row = Row("tests", "1", "local", "photos/macaque.jpg", "ab" * 32, 1, 1, "no_person", "", "tuning", "")
    monkeypatch.setattr(working_copy, "load_rows", lambda split: [row])
    monkeypatch.setattr("sys.argv", ["working_copy", "--photos", str(tmp_path)])
    with pytest.raises(SystemExit) as stopped:
        working_copy.main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "labelled photograph(s) missing under" in err and "Traceback" not in err
