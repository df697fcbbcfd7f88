"""benchmarks/storage_decisions.py: two storage rules, the photographs they store differently, the decisions."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from benchmarks import storage_decisions
from pipeline.photo_sets.fetch import Row


def _jpeg(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = (np.add.outer(np.arange(height), np.arange(width))[..., None] * rng.random(3) % 256).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """Two JPEGs at least twice the stored size (drafted under draft_supersample=1, not under 2) and one
    smaller, which no draft rule touches."""
    files = {"big.jpg": (_jpeg(1100, 800, 1), "person"), "wide.jpg": (_jpeg(1300, 900, 2), "no_person"),
             "small.jpg": (_jpeg(640, 480, 3), "no_person")}
    rows = []
    for name, (data, label) in files.items():
        row = Row("pkg", "1", "pypi", f"pkg/{name}", hashlib.sha256(data).hexdigest(), 1, 1, label, "", "heldout", "")
        (tmp_path / row.file_name).write_bytes(data)
        rows.append(row)
    monkeypatch.setattr(storage_decisions, "load_rows", lambda split: rows)
    return tmp_path


def test_rules_are_parsed_from_run_options():
    assert storage_decisions.parse_rule("draft_supersample=1") == storage_decisions.Rule(draft_supersample=1)
    assert storage_decisions.parse_rule(" resize_reducing_gap=0 , draft_supersample=0") == \
        storage_decisions.Rule(draft_supersample=0, resize_reducing_gap=0.0)
    assert storage_decisions.parse_rule("") == storage_decisions.Rule()
    for bad in ("max_side=256", "draft_supersample", "draft_supersample=x"):
        with pytest.raises(ValueError):
            storage_decisions.parse_rule(bad)


def test_only_photographs_stored_differently_are_scored_and_compared(photos):
    a, b = storage_decisions.Rule(draft_supersample=2), storage_decisions.Rule(draft_supersample=1)
    count, differ, largest, _ = storage_decisions.compare_split(photos, "heldout", a, b, "open_nsfw", "none")
    assert (count, differ) == (3, 2)
    assert 0 <= largest < 1  # scores are probabilities; the pairing itself is checked below
    assert storage_decisions.compare_split(photos, "heldout", a, a, "open_nsfw", "none")[1] == 0


def test_a_decision_that_changes_is_named_with_its_label(photos, monkeypatch):
    # Rule B's scores of the first photograph rise past open_nsfw's threshold: rejected under B only.
    def scores(jpegs, specs, runtime):
        return [{"open_nsfw.nsfw": 0.99 if index == 1 else 0.0, "open_nsfw.sfw": 0.0} for index in range(len(jpegs))]

    monkeypatch.setattr(storage_decisions, "score_stored", scores)
    a, b = storage_decisions.Rule(draft_supersample=2), storage_decisions.Rule(draft_supersample=1)
    _, differ, largest, changes = storage_decisions.compare_split(photos, "heldout", a, b, "open_nsfw", "none")
    assert differ == 2 and largest == pytest.approx(0.99)
    assert changes == [storage_decisions.Change("pkg:pkg/big.jpg", "person", "kept", "rejected")]


@pytest.mark.parametrize("argv,message", [
    (["--b", "draft_supersample=9"], "draft_supersample must be within 0..8"),
    (["--b", "resize_reducing_gap=0.5"], "resize_reducing_gap must be 0 (off) or within 1..8"),
    (["--b", "resize_reducing_gap=nan"], "resize_reducing_gap must be 0 (off) or within 1..8"),
    (["--b", "draft_supersample=two"], "is not a number"),
    (["--b", "draft_supersample=1", "--splits", "tuning,heldout99"], "unknown split(s) heldout99"),
])
def test_bad_rules_and_splits_are_refused_before_any_photograph_is_read(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        storage_decisions.main(["--photos", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and err.startswith("storage_decisions: error: ")
    assert err.count("\n") == 1, err  # one line, as an unknown option's (argparse's usage came before it)


def test_the_command_prints_each_split_and_the_total(photos, capsys):
    storage_decisions.main(["--photos", str(photos), "--b", "draft_supersample=1", "--splits", "heldout",
                            "--detectors", "open_nsfw", "--fusion", "none"])
    out = capsys.readouterr().out
    assert "heldout: 3 photographs, 2 stored differently" in out
    assert "total: 2 of 3 stored differently" in out


def test_photographs_not_fetched_are_one_line(tmp_path, capsys):
    """A split whose photographs are not under --photos was load_samples' PhotoSetError traceback."""
    with pytest.raises(SystemExit) as exited:
        storage_decisions.main(["--photos", str(tmp_path), "--b", "draft_supersample=1", "--splits", "tuning"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "labelled photograph(s) missing under" in err and "Traceback" not in err


def test_a_later_split_not_fetched_is_refused_before_the_first_is_scored(photos, monkeypatch, capsys):
    """`pipeline.photo_sets.fetch --split=...` fetches one split at a time: with the default --splits, one not
    fetched was refused only when its turn came, after the splits before it were stored twice and scored (minutes)."""
    fetched = storage_decisions.load_rows("heldout")
    missing = Row("pkg", "1", "pypi", "pkg/gone.jpg", "0" * 64, 1, 1, "person", "", "tuning", "")
    monkeypatch.setattr(storage_decisions, "load_rows", lambda split: fetched if split == "heldout" else [missing])
    monkeypatch.setattr(storage_decisions, "score_stored", lambda *a: pytest.fail("scored although refused"))
    with pytest.raises(SystemExit) as exited:
        storage_decisions.main(["--photos", str(photos), "--b", "draft_supersample=1", "--splits", "heldout,tuning",
                                "--detectors", "open_nsfw", "--fusion", "none"])
    captured = capsys.readouterr()
    assert exited.value.code == 2 and "labelled photograph(s) missing under" in captured.err, captured.err
    assert "heldout:" not in captured.out
