"""The human-review loop, as PASS's annotators worked but recorded: borderline photos go to
`review/` (Parquet with the images, a static HTML contact sheet sorted by score, a decisions
template), a reviewer fills in decisions, `pass-pipeline review apply DECISIONS.csv --store FILE`
folds them into a cumulative decisions file, and the next run reads it with
`--review_decisions FILE`: accepted photos are kept, rejected ones leave with the reviewer's note.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from pipeline.io.files import write_atomically
from pipeline.io.sinks import FORMULA_STARTS, csv_bytes
from pipeline.records import Photo
from pipeline.stages.detect import DECISIONS, read_decisions

THUMBNAIL = 256
DECISION_COLUMNS = ("photo_id", "decision", "note")


def review_order(photo: Photo) -> tuple[float, str]:
    """Most suspicious first: the highest detector score, then the id (deterministic)."""
    return (-max((score for _, score in photo.scores), default=0.0), photo.photo_id)


def _thumbnail(image: bytes) -> str:
    with Image.open(io.BytesIO(image)) as img:
        img = img.convert("RGB")
        img.thumbnail((THUMBNAIL, THUMBNAIL))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=80)
    return base64.b64encode(out.getvalue()).decode("ascii")


# An absolute http(s) URL made only of the characters a URL may hold (RFC 3986): no whitespace,
# control characters, quotes or angle brackets, which browsers strip or which end the attribute.
_HTTP_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)


def link(url: str, text: str) -> str:
    """A link only to an http(s) URL; anything else (javascript:, data:, vbscript:, however spelled
    or padded) gets an <a> without href (a placeholder, no target) followed by the URL as escaped
    text, so a reviewer still sees what the metadata said."""
    if _HTTP_URL.fullmatch(url):
        return f'<a href="{html.escape(url)}">{html.escape(text)}</a>'
    return f"<a>{html.escape(text)}</a>" + (f" {html.escape(url)}" if url else "")


def contact_sheet(photos: list[Photo]) -> bytes:
    """One self-contained HTML page (thumbnails inline), sorted by score, ids and scores readable."""
    cells = []
    for photo in photos:
        scores = ", ".join(f"{name} {score:.2f}" for name, score in sorted(photo.scores, key=lambda s: -s[1])[:4])
        cells.append(
            f'<figure><img src="data:image/jpeg;base64,{_thumbnail(photo.image)}" alt="{html.escape(photo.photo_id)}">'
            f"<figcaption>{link(photo.page_url, photo.photo_id)}<br>"
            f"{html.escape(scores)}</figcaption></figure>")
    page = (
        "<!doctype html><meta charset=utf-8><title>pass-pipeline review</title>"
        "<style>body{font-family:sans-serif}figure{display:inline-block;width:260px;margin:6px;vertical-align:top}"
        "img{max-width:256px;max-height:256px}figcaption{font-size:12px}</style>"
        f"<h1>Borderline photos: {len(photos)}</h1><p>Sorted by their highest detector score. Record a decision "
        "per photo id in decisions_template.csv (accept, reject_human, reject_other, with a note), then run "
        "<code>pass-pipeline review apply decisions.csv --store REVIEWS.csv</code> and pass "
        "<code>--review_decisions REVIEWS.csv</code> to the next run.</p>" + "".join(cells))
    return page.encode("utf-8")


def _table(photos: list[Photo]) -> pa.Table:
    return pa.table({
        "photo_id": [p.photo_id for p in photos],
        "page_url": [p.page_url for p in photos],
        "owner_nsid": [p.owner_nsid for p in photos],
        "title": [p.title for p in photos],
        "scores": [json.dumps(dict(p.scores), sort_keys=True) for p in photos],
        "sha256": [p.sha256 for p in photos],
        "image": pa.array([p.image for p in photos], pa.binary()),
    })


def write_review(photos: Iterable[Photo], output: str) -> list[dict[str, Any]]:
    """review/review.parquet, review/index.html, review/decisions_template.csv -> manifest entries.
    The borderline band is meant to be small (what a person can look at), so one worker writes it."""
    ordered = sorted(photos, key=review_order)

    def parquet(handle: Any) -> None:
        pq.write_table(_table(ordered), handle)

    def template(handle: Any) -> None:  # reviewers open it in a spreadsheet: no cell may be a formula
        handle.write(csv_bytes(DECISION_COLUMNS, ((photo.photo_id, "", "") for photo in ordered)))

    sheet = contact_sheet(ordered)
    entries = []
    for name, kind, write in (("review/review.parquet", "review", parquet),
                              ("review/index.html", "review_sheet", lambda h: h.write(sheet)),
                              ("review/decisions_template.csv", "review_template", template)):
        entry = write_atomically(FileSystems.join(output, name), write)
        entries.append({"path": name, "format": kind, "records": len(ordered), **entry})
    return entries


class WriteReview(beam.PTransform):
    """PCollection[Photo] (the borderline band) -> PCollection[dict] manifest entries of review/."""

    def __init__(self, output: str) -> None:
        super().__init__()
        self._output = output

    def expand(self, photos: beam.PCollection) -> beam.PCollection:
        return (photos
                | "All" >> beam.combiners.ToList()
                | "Write" >> beam.FlatMap(write_review, output=self._output))


def _unquoted_formula(cell: str) -> str:
    """The template writes a photo id a spreadsheet would evaluate as '=...; the reviewer's copy
    gives it back that way, and it still means the photo =...."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS) else cell


def apply_decisions(decisions_csv: str, store: str) -> tuple[int, int]:
    """Merges a reviewer's decisions into the cumulative store (created if missing); a later
    decision for the same photo replaces the earlier one. Rows with an empty decision (photos not
    yet looked at) are skipped. Returns (rows applied, photos in the store)."""
    with open(decisions_csv, encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if (row.get("decision") or "").strip()]
    new = {}
    for line, row in enumerate(rows, start=2):
        decision = row["decision"].strip()
        photo_id = _unquoted_formula((row.get("photo_id") or "").strip())
        if decision not in DECISIONS or not photo_id:
            raise ValueError(f"{decisions_csv}: row {line}: need a photo_id and a decision in {', '.join(DECISIONS)}")
        new[photo_id] = (decision, (row.get("note") or "").strip())
    merged = (read_decisions(store) if FileSystems.exists(store) else {}) | new
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(DECISION_COLUMNS)
    for photo_id in sorted(merged, key=lambda i: (int(i) if i.isdigit() else -1, i)):
        writer.writerow((photo_id, *merged[photo_id]))
    payload = text.getvalue().encode("utf-8")
    write_atomically(store, lambda handle: handle.write(payload))
    return len(new), len(merged)
