"""The human-review loop, as PASS's annotators worked but recorded: borderline photos go to
`review/` (Parquet with the images, a static HTML page, a decisions template), a reviewer decides
each photo on the page (or in the template) and downloads the decisions CSV, `pass-pipeline review
apply DECISIONS.csv --store FILE` folds them into a cumulative decisions file, and the next run reads
it with `--review_decisions FILE`: accepted photos are kept (as long as their image is the one the reviewer saw,
by its sha256), rejected ones leave with the reviewer's note.

Most suspicious first: photos are ordered by the score that came closest to rejecting them, relative
to its threshold, among the classes that can reject (human and nsfw classes). Scores of other classes
(open_nsfw's `sfw`, about 1.0 for every safe photo) say nothing about why a photo is here.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import html
import io
import json
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from pipeline.decision_table import DECISIONS, Decision, DecisionTable, DecisionTableBuilder
from pipeline.decisions_file import decisions_text, parse_decisions, read_decision_table
from pipeline.detectors.fusion import Fusion
from pipeline.detectors.registry import DetectorSpec
from pipeline.io.files import is_remote, write_atomically
from pipeline.io.lock import LockIsALink, OutputLock, OutputLocked, OutputNotWritable
from pipeline.io.regular_files import kind_of
from pipeline.io.sinks import CONTROLS, FORMULA_STARTS, INNER_FORMULA, LINE_ENDS, csv_bytes, csv_lines
from pipeline.io.stopping import StopSignals
from pipeline.printable import printable
from pipeline.records import Photo

THUMBNAIL = 256
# The most photos review/ shows at once, the most suspicious first (`review_order`). They reach one worker with
# their images (~60 KiB each, twice over in the Parquet table, plus a thumbnail): gathered whole, the band grew with
# the run (up to 17.5% of clean photos are held), and a run holding 100,000 would need some 12 GiB in one worker
# after the whole crawl. A page is looked at by a person: a photo past the cap stays a `needs_review` rejection, and
# comes up in a later run's page once those before it are decided (a decided photo is held no more).
MAX_REVIEW_PHOTOS = 5_000
# sha256: of the stored image the reviewer saw; an acceptance holds for that image only
# (detectors/reviewer_decisions.applies).
DECISION_COLUMNS = ("photo_id", "decision", "note", "sha256")


class Trigger(NamedTuple):
    """The detector class that brought a photo closest to rejection."""

    name: str  # DETECTOR.CLASS
    score: float
    threshold: float
    band: float  # the lower end of its review band

    @property
    def ratio(self) -> float:
        return self.score / self.threshold if self.threshold > 0 else float("inf")


def trigger(photo: Photo, specs: Sequence[DetectorSpec], fusion: Fusion | None = None) -> Trigger | None:
    """Among the human and nsfw classes of `specs` that scored the photo (the fused score standing
    for the classes the fusion model reads), the one whose score is highest relative to its
    threshold; None when none of them scored it."""
    scores = dict(photo.scores)
    fused = set(fusion.features) if fusion else set()
    candidates = [
        Trigger(spec.score_name(cls), scores[spec.score_name(cls)], spec.thresholds[cls],
                spec.review_band.get(cls, spec.thresholds[cls]))
        for spec in specs for cls in spec.classes
        if spec.score_name(cls) in scores and not (spec.score_name(cls) in fused and cls in spec.human_classes)
    ]
    if fusion is not None and fused & set(scores):
        candidates.append(Trigger("fused", fusion.score(scores), fusion.reject_at, fusion.review_from))
    return max(candidates, key=lambda t: (t.ratio, t.name), default=None)


def review_order(photo: Photo, specs: Sequence[DetectorSpec] = (), fusion: Fusion | None = None
                 ) -> tuple[float, str]:
    """Most suspicious first: the rejecting class closest to its threshold, then the id (deterministic)."""
    found = trigger(photo, specs, fusion)
    return (-(found.ratio if found else 0.0), photo.photo_id)


def _thumbnail(image: bytes) -> str:
    with Image.open(io.BytesIO(image)) as opened:
        img = opened.convert("RGB")
        img.thumbnail((THUMBNAIL, THUMBNAIL))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=80)
    return base64.b64encode(out.getvalue()).decode("ascii")


# An absolute http(s) URL made only of the characters a URL may hold (RFC 3986): no whitespace,
# control characters, quotes or angle brackets, which browsers strip or which end the attribute.
_HTTP_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+", re.IGNORECASE)


def link(url: str, text: str) -> str:
    """A link only to an http(s) URL without user info (`https://www.flickr.com@evil.example/` opens evil.example:
    the photo's id on the page was a link to another host than the one it seems to name); anything else
    (javascript:, data:, vbscript:, however spelled or padded) gets an <a> without href (a placeholder, no target)
    followed by the URL as escaped text, so a reviewer still sees what the metadata said: each unprintable character
    in it shown as its escape (`printable`), as a bidi override (U+202E, which the sources' URL check lets through)
    reversed the rest of it, and the page showed another URL than the metadata's."""
    if _HTTP_URL.fullmatch(url) and "@" not in url.split("/", 3)[2]:
        return f'<a href="{html.escape(url)}">{html.escape(text)}</a>'
    return f"<a>{html.escape(text)}</a>" + (f" {html.escape(printable(url))}" if url else "")


def _trigger_text(found: Trigger | None) -> str:
    if found is None:
        return "no human or nsfw class scored this photo"
    return f"{found.name} {found.score:.3f} (threshold {found.threshold:.3f}, review from {found.band:.3f})"


_DECISION_LABELS = {"accept": "accept", "reject_human": "reject: human", "reject_other": "reject: other"}


def _item(index: int, photo: Photo, specs: Sequence[DetectorSpec], fusion: Fusion | None) -> str:
    """One photo: thumbnail, link, what triggered it, the decision buttons and a note field. The id
    goes into the page only HTML-escaped; the script reads it back from data-id, never from source."""
    found = trigger(photo, specs, fusion)
    photo_id = html.escape(photo.photo_id)
    buttons = "".join(
        f'<label><input type=radio name="d{index}" value="{value}"> {label}</label> '
        for value, label in _DECISION_LABELS.items())
    return (
        f'<figure data-id="{photo_id}" data-sha256="{html.escape(photo.sha256)}">'
        f'<img src="data:image/jpeg;base64,{_thumbnail(photo.image)}" alt="{photo_id}">'
        f"<figcaption>{link(photo.page_url, photo.photo_id)}<br>"
        f'<span class=trigger>{html.escape(_trigger_text(found))}</span><br>'
        f'{buttons}<br><input class=note placeholder="note" aria-label="note for {photo_id}"></figcaption></figure>')


# The page's only script: decisions from the buttons to a CSV that `review apply` reads, written by
# the rules of sinks.csv_cell (a cell a spreadsheet would evaluate gets a leading quote and quotes, as does a
# formula character after a ';' or a tab; a control character becomes U+FFFD), with the patterns sinks uses.
# `?accept=ID&reject_human=ID&note:ID=TEXT` pre-selects decisions (a link to a half-done review; tests).
_SCRIPT = r"""
const DECISIONS = %(decisions)s;
const FORMULA_STARTS = %(formula_starts)s;
const HEADER = %(header)s;
const CONTROLS = new RegExp(%(controls)s, "g");
const INNER_FORMULA = new RegExp(%(inner_formula)s, "g");
const LINE_ENDS = Array.from(%(line_ends)s);
function csvCell(value) {
  value = value.replace(CONTROLS, "\ufffd").replace(INNER_FORMULA, "$1'");
  const bare = value.replace(/^'+/, "");  // quotes before a formula character get one more, as in csv_cell
  if (FORMULA_STARTS.some((start) => bare.startsWith(start))) {
    return '"' + ("'" + value).replace(/"/g, '""') + '"';
  }
  // U+2028 and U+2029 too (LINE_ENDS): a note pasted holding one was written bare, and editors split the row there
  if (LINE_ENDS.some((end) => value.includes(end))) return '"' + value.replace(/"/g, '""') + '"';
  return value;
}
function items() { return Array.from(document.querySelectorAll("figure[data-id]")); }
function decisionOf(item) {
  const checked = item.querySelector("input[type=radio]:checked");
  return checked ? checked.value : "";
}
function noteOf(item) { return item.querySelector("input.note").value; }
function decisionsCsv() {
  const rows = [HEADER].concat(items().map((item) => [item.dataset.id, decisionOf(item), noteOf(item),
                                                      item.dataset.sha256]));
  return rows.map((row) => row.map(csvCell).join(",") + "\n").join("");
}
function update() {
  const decided = items().filter((item) => decisionOf(item) !== "").length;
  document.getElementById("progress").textContent = decided + " of " + items().length + " decided";
  document.getElementById("csv").textContent = decisionsCsv();
}
function preselect(params) {
  for (const item of items()) {
    for (const decision of DECISIONS) {
      if (params.getAll(decision).includes(item.dataset.id)) {
        item.querySelector('input[value="' + decision + '"]').checked = true;
      }
    }
    const note = params.get("note:" + item.dataset.id);
    if (note !== null) item.querySelector("input.note").value = note;
  }
}
function download() {
  const blob = new Blob([decisionsCsv()], {type: "text/csv;charset=utf-8"});
  const anchor = document.createElement("a");
  anchor.href = URL.createObjectURL(blob);
  anchor.download = "decisions.csv";
  document.body.appendChild(anchor);
  anchor.click();
  anchor.remove();
}
preselect(new URLSearchParams(location.search));
document.addEventListener("input", update);
document.addEventListener("change", update);
document.getElementById("download").addEventListener("click", download);
update();
"""


def review_script() -> str:
    return _SCRIPT % {"decisions": json.dumps(DECISIONS), "formula_starts": json.dumps(FORMULA_STARTS),
                      "header": json.dumps(DECISION_COLUMNS), "controls": json.dumps(CONTROLS.pattern),
                      "inner_formula": json.dumps(INNER_FORMULA.pattern),
                      "line_ends": json.dumps(LINE_ENDS)}


def contact_sheet(photos: list[Photo], specs: Sequence[DetectorSpec] = (), fusion: Fusion | None = None,
                  held: int | None = None) -> bytes:
    """One self-contained HTML page (thumbnails inline) in the order given, each photo with the class
    that triggered its review and the decision buttons; the decisions download as the CSV that
    `review apply` reads. A Content-Security-Policy lets only this page's own script run (by its
    hash) and load nothing from anywhere, so even markup slipped into the metadata could not. `held`: how many
    photos the run held, when more than it shows (`MAX_REVIEW_PHOTOS`)."""
    script = review_script()
    more = "" if held is None or held <= len(photos) else (
        f" (the most suspicious {len(photos)} of {held} held: the others come up once these are decided)")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    policy = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    cells = "".join(_item(index, photo, specs, fusion) for index, photo in enumerate(photos))
    page = (
        f'<!doctype html><meta charset=utf-8><meta http-equiv="Content-Security-Policy" content="{policy}">'
        "<title>pass-pipeline review</title>"
        "<style>body{font-family:sans-serif}figure{display:inline-block;width:280px;margin:6px;vertical-align:top}"
        "img{max-width:256px;max-height:256px}figcaption{font-size:12px}.trigger{font-weight:bold}"
        "input.note{width:250px}pre{font-size:11px}</style>"
        f"<h1>Borderline photos: {len(photos)}{more}</h1><p>Most suspicious first: ordered by the score closest to "
        "its rejection threshold among the human and nsfw classes; each photo says which class that is. Choose "
        "a decision per photo, then <button id=download type=button>Download decisions.csv</button> "
        "(<span id=progress></span>) and run <code>pass-pipeline review apply decisions.csv --store "
        "REVIEWS.csv</code>; pass <code>--review_decisions REVIEWS.csv</code> to the next run. "
        "(decisions_template.csv is the same list, for a spreadsheet.)</p>"
        f"{cells}<h2>decisions.csv</h2><pre id=csv></pre><script>{script}</script>")
    return page.encode("utf-8")


def _table(photos: list[Photo], specs: Sequence[DetectorSpec], fusion: Fusion | None) -> pa.Table:
    triggers = [trigger(p, specs, fusion) for p in photos]
    return pa.table({
        "photo_id": [p.photo_id for p in photos],
        "page_url": [p.page_url for p in photos],
        "owner_nsid": [p.owner_nsid for p in photos],
        "title": [p.title for p in photos],
        "scores": [json.dumps(dict(p.scores), sort_keys=True) for p in photos],
        "trigger": [found.name if found else "" for found in triggers],
        "trigger_score": pa.array([found.score if found else None for found in triggers], pa.float64()),
        "trigger_threshold": pa.array([found.threshold if found else None for found in triggers], pa.float64()),
        "sha256": [p.sha256 for p in photos],
        "image": pa.array([p.image for p in photos], pa.binary()),
    })


def write_review(photos: Iterable[Photo], output: str, specs: Sequence[DetectorSpec], fusion: Fusion | None = None,
                 held: int | None = None) -> list[dict[str, Any]]:
    """review/review.parquet, review/index.html, review/decisions_template.csv -> manifest entries.
    `specs` are the detectors that decided (their classes and thresholds order the photos). One worker writes
    them: `WriteReview` hands it at most MAX_REVIEW_PHOTOS photos, and `held` says how many the run held."""
    ordered = sorted(photos, key=lambda photo: review_order(photo, specs, fusion))
    held = len(ordered) if held is None else held

    def parquet(handle: Any) -> None:
        pq.write_table(_table(ordered, specs, fusion), handle)

    def template(handle: Any) -> None:  # reviewers open it in a spreadsheet: no cell may be a formula
        handle.write(csv_bytes(DECISION_COLUMNS, ((photo.photo_id, "", "", photo.sha256) for photo in ordered)))

    sheet = contact_sheet(ordered, specs, fusion, held)
    entries = []
    for name, kind, write in (("review/review.parquet", "review", parquet),
                              ("review/index.html", "review_sheet", lambda h: h.write(sheet)),
                              ("review/decisions_template.csv", "review_template", template)):
        entry = write_atomically(FileSystems.join(output, name), write)
        entries.append({"path": name, "format": kind, "records": len(ordered), "held": held, **entry})
    return entries


class WriteReview(beam.PTransform):
    """PCollection[Photo] (the borderline band) -> PCollection[dict] manifest entries of review/: the `most`
    most suspicious photos (`MAX_REVIEW_PHOTOS`), no more held in memory at once wherever the band is larger."""

    def __init__(self, output: str, specs: Sequence[DetectorSpec], fusion: Fusion | None = None,
                 most: int = MAX_REVIEW_PHOTOS) -> None:
        super().__init__()
        self._output, self._specs, self._fusion, self._most = output, list(specs), fusion, most

    def expand(self, photos: beam.PCollection) -> beam.PCollection:
        specs, fusion = self._specs, self._fusion
        held = photos | "Held" >> beam.combiners.Count.Globally()
        # The smallest review_order first (reverse=True): the most suspicious; photo ids break every tie.
        return (photos
                | "MostSuspicious" >> beam.combiners.Top.Of(
                    self._most, key=lambda photo: review_order(photo, specs, fusion), reverse=True)
                | "Write" >> beam.FlatMap(write_review, output=self._output, specs=specs, fusion=fusion,
                                          held=beam.pvalue.AsSingleton(held)))


@dataclass
class Overturned:
    """The store's rejections a merge replaced by an acceptance: how many, and the first few photo ids (by number)."""

    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, photo_id: str) -> None:
        self.count += 1
        if len(self.first) < 3:
            self.first.append(photo_id)


def apply_decisions(decisions_csv: str, store: str, overturned: Overturned | None = None) -> tuple[int, int]:
    """Merges a reviewer's decisions into the cumulative store (created if missing); a later
    decision for the same photo replaces the earlier one. Rows with an empty decision (photos not
    yet looked at) are skipped. Every id is a photo number, in its one spelling ('007' is photo 7; a
    '7.0' is refused with its line: stored, it would never match). The store is written formula-safe,
    as the template is: reviewers open it in a spreadsheet too. Returns (rows applied, photos in the store);
    `overturned` gets the store's rejections an acceptance replaced (a photo the store kept out let in)."""
    # read as the store is (any Beam filesystem: a gs:// path passed the existence check, then Python's open failed)
    # "line", as the file's line numbers count (a quoted note holding a line break spans two; its row count would not)
    new = parse_decisions(decisions_text(decisions_csv), lambda line: f"{decisions_csv}: line {line}",
                          skip_undecided=True)
    if not new:  # the template applied as written said "0 decision(s) applied", exit 0, and wrote an empty store
        raise ValueError(f"{decisions_csv} holds no decision (every row's decision is empty: the template as "
                         "written?): fill in accept, reject_human or reject_other for the photos looked at, or "
                         "download decisions.csv from review/index.html; the store is unchanged")
    # Held from the read to the write: two applies at once each read the store, and the later write dropped the
    # other's decisions (a reject_human among them), both saying they were applied.
    # Taken as a run's lock is (io/lock.py): one a stopped apply left on this machine (a closed terminal's SIGHUP, the
    # OOM killer: no `finally` runs) is stale and taken over; written as plain text, it refused every later apply.
    lock = OutputLock(store, "review apply", path=f"{store}.lock")
    # SIGTERM (a closed session's, a scheduler's) killed the apply with its lock in place, which on gs:// no later
    # apply takes over: it now stops as Ctrl-C does, the store whole (written atomically) and the lock released.
    with StopSignals(release=lock.release):
        try:
            lock.acquire()
        except LockIsALink as err:  # no apply's lock: said as what it is (as "another apply writing", no wait ended it)
            raise ValueError(str(err)) from None
        except (OutputLocked, OutputNotWritable) as err:
            raise ValueError(f"another `review apply` is writing {store} ({err}): run this one again once it is done"
                             if isinstance(err, OutputLocked) else f"cannot write the lock of {store}: {err}") from None
        try:
            _refuse_a_store_that_is_no_file(store)
            # What an apply killed as it wrote (SIGKILL, a machine lost: nothing ran to remove it) left beside the
            # store; under the lock no apply is writing, so every temporary of the store is such a part.
            _remove_partial_stores(store)
            # Read and written a MiB at a time, the store held as a compact table (`read_decision_table`): whole,
            # its text, a dict of it, the merged rows and their text took ~900 MiB at 1.44 million decisions.
            held = read_decision_table(store) if FileSystems.exists(store) else DecisionTableBuilder().table()
            counted: list[int] = []
            try:
                write_atomically(store, lambda handle: counted.append(_write_merged(handle, held, new,
                                                                                         overturned)))
            except BaseException:  # a stop (SIGTERM, Ctrl-C) too
                _remove_partial_stores(store)
                raise
        finally:
            lock.release()
    return len(new), counted[0]


# The name `write_atomically` gives a file's temporary: the file's, then ".tmp-" and 32 hex digits.
_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{32}")


def _remove_partial_stores(store: str) -> None:
    """The store's temporaries removed, as far as they can be: a write stopped short (SIGTERM, Ctrl-C, a full disk)
    left a part of the store beside it, under a name like its own, which no later apply removed. Called under the
    store's lock, which no other apply holds: every temporary of the store is a part of a store no apply is writing
    (this one's, or one a killed apply left)."""
    try:
        if is_remote(store):
            found = [meta.path for match in FileSystems.match([f"{store}.tmp-*"]) for meta in match.metadata_list]
        else:
            folder, name = os.path.split(store)
            found = [os.path.join(folder, entry) for entry in os.listdir(folder or ".")
                     if entry.startswith(f"{name}.tmp-")]
        found = [path for path in found if _TEMPORARY.fullmatch(path[len(store):])]
        if found:
            FileSystems.delete(found)
    except Exception:  # what cannot be removed stays, as before; the write's own error is the one to say
        return


def _refuse_a_store_that_is_no_file(store: str) -> None:
    """ValueError where the store is a symbolic link, no regular file (a named pipe, a device) or a file of several
    names (hard links), on a local disk, checked under its lock. The store is written whole under its own name and
    renamed into place, which replaced a link by a file of its own: the store it led to (one the team shares, the one
    the next run reads) was left without the decisions, a reject_human among them, while the apply said they were
    applied. Written through the link instead, two links to one store would each be locked by a lock of their own:
    its own name is asked for."""
    if is_remote(store):
        return
    try:
        info = os.lstat(store)
    except FileNotFoundError:  # a new store
        return
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        raise ValueError(f"--store {store} is a symbolic link (to {printable(os.readlink(store), limit=200)}): `review "
                         "apply` writes the store whole under its name, which would replace the link and leave the "
                         "store it leads to without these decisions; give that store's own path as --store")
    # A named pipe (a file replaced by one, `--store=>(cmd)`) was opened to be read, twice, each time waiting for a
    # writer for good with the store's lock held; what writers gave was read as the store and the pipe then replaced.
    if not stat.S_ISREG(mode):
        raise ValueError(f"--store {store} is {kind_of(mode)}, not a file: name the CSV file the decisions are kept in")
    # One of several names of one file (a hard link to the store the team shares): written whole under this name, a
    # new file, the other names kept the old decisions, without these.
    if info.st_nlink > 1:
        raise ValueError(f"--store {store} is one of {info.st_nlink} names of one file (hard links): `review apply` "
                         "writes the store whole under this name, a new file, and the others would keep the old "
                         "decisions without these; give a store that has one name (copy it, or remove the other names)")


def _write_merged(handle: BinaryIO, held: DecisionTable, new: dict[str, Decision],
                  overturned: Overturned | None = None) -> int:
    """The store's decisions and the new ones (which replace the store's for the same photo) as the store's CSV,
    ordered by photo number, written a few thousand rows at a time; how many rows. `overturned` gets each photo
    whose rejection in the store an acceptance replaced."""
    later = sorted(new.items(), key=lambda item: int(item[0]))
    merged = heapq.merge(((int(photo_id), 0, photo_id, decided) for photo_id, decided in later),
                         ((int(photo_id), 1, photo_id, decided) for photo_id, decided in held.items()))
    handle.write(csv_lines([DECISION_COLUMNS]))
    count, last, rows = 0, None, []
    written: tuple[str, ...] = ()  # the last row written: a photo's new decision comes before the store's
    for number, _, photo_id, decided in merged:
        if number == last:  # the store's decision for a photo decided anew
            if overturned is not None and decided[0] != "accept" and written[1] == "accept":
                overturned.add(written[0])
            continue
        last, count, written = number, count + 1, (photo_id, *decided)
        rows.append(written)
        if len(rows) == 10_000:
            handle.write(csv_lines(rows))
            rows = []
    handle.write(csv_lines(rows))
    return count
