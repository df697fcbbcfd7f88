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
    assert 0 <= largest < 1
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
