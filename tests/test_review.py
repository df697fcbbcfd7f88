"""review/ outputs, the decisions store, and the whole loop: a borderline photo waits for review,
the reviewer's decision is applied, and the next run honours it."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.review import apply_decisions, contact_sheet, write_review
from tests.conftest import photo, real_jpeg


def test_review_files_sorted_by_score(tmp_path):
    photos = [photo("1", image=real_jpeg("coffee.jpg"), scores=(("x.person", 0.35),), page_url="https://f/1"),
              photo("2", image=real_jpeg("chelsea.jpg"), scores=(("x.person", 0.45),))]
    entries = write_review(photos, str(tmp_path))
    assert [e["path"] for e in entries] == ["review/review.parquet", "review/index.html",
                                            "review/decisions_template.csv"]
    table = pq.read_table(tmp_path / "review" / "review.parquet").to_pylist()
    assert [row["photo_id"] for row in table] == ["2", "1"] and table[0]["image"] == photos[1].image
    assert json.loads(table[1]["scores"]) == {"x.person": 0.35}
    page = (tmp_path / "review" / "index.html").read_text()
    assert page.index(">2</a>") < page.index(">1</a>") and "data:image/jpeg;base64," in page
    rows = list(csv.reader((tmp_path / "review" / "decisions_template.csv").open()))
    assert rows == [["photo_id", "decision", "note"], ["2", "", ""], ["1", "", ""]]


def test_contact_sheet_escapes_metadata():
    sheet = contact_sheet([photo("<b>", image=real_jpeg("coffee.jpg"), page_url='"><script>')]).decode()
    assert "<script>" not in sheet and "&lt;b&gt;" in sheet


def test_apply_merges_later_decisions_over_earlier(tmp_path):
    store = str(tmp_path / "reviews.csv")
    first = tmp_path / "d1.csv"
    first.write_text("photo_id,decision,note\n5,accept,\n7,reject_human,reflection in window\n9,,\n")
    assert apply_decisions(str(first), store) == (2, 2)
    second = tmp_path / "d2.csv"
    second.write_text("photo_id,decision,note\n5,reject_other,watermark\n")
    assert main(["review", "apply", str(second), "--store", store]) == 0
    assert (tmp_path / "reviews.csv").read_text() == (
        "photo_id,decision,note\n5,reject_other,watermark\n7,reject_human,reflection in window\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("photo_id,decision,note\n5,perhaps,\n")
    with pytest.raises(ValueError, match="row 2"):
        apply_decisions(str(bad), store)
