"""A reviewers' decisions file (`review/decisions.csv` from the page, the template filled in, the cumulative store
a run reads with --review_decisions): its rows read and checked, one reading for every reader (`decided_rows`), read
whole where it is small (`parse_decisions`, `read_decisions`), and streamed where it is a release's store
(`stage_decisions` at launch, `read_decision_table` in `review apply`, `decision_table` on a worker), each into a
compact table (`decision_table.py`). The Detect stage applies the decisions (`stages/detect.py`)."""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any, BinaryIO, NamedTuple, TextIO

from pipeline.decision_table import DECISIONS, Decision, DecisionTable, DecisionTableBuilder
from pipeline.io.bounded_lines import BoundedRecordLines, StreamLines, TextLines
from pipeline.io.files import open_reader, read_bytes
from pipeline.io.sinks import csv_text
from pipeline.io.staged_copy import StagedCopy, reading_as_hashed, stage_chunks
from pipeline.printable import printable
from pipeline.records import SHA256_HEX, BadPhotoId, canonical_photo_id


def decided_photo_id(cell: str, where: str) -> str:
    """A decision's photo id in its one spelling ('007' is photo 7), else ValueError naming `where`: an id
    spelled otherwise ('7.0' from a spreadsheet) would be stored and never match the photo it means."""
    try:
        return canonical_photo_id(csv_text(cell.strip()))
    except BadPhotoId as err:
        raise ValueError(f"{where}: photo_id {cell.strip()[:40]!r} is not a Flickr photo number ({err})") from None


_COLUMNS = ("photo_id", "decision", "note", "sha256")  # those a decisions file's rows are read by


def check_decision_columns(columns: Sequence[str] | None, where: str) -> None:
    """A decisions file names its photo_id and decision columns: without them every row read as undecided, and the
    file was applied as no decision at all, saying nothing."""
    missing = [name for name in ("photo_id", "decision") if name not in (columns or ())]
    if missing:
        # Quoted with its unprintable characters escaped: an annotator's header is printed to the reviewer's terminal
        header = printable(", ".join(columns or ())[:200])
        raise ValueError(f"{where}: no {' or '.join(missing)} column (its header: {header}){_saved_as(columns or ())}")
    # Two columns of one name: the reader keeps the last, and `accept` beside `reject_human` was read as either.
    twice = sorted({name for name in columns or () if name in _COLUMNS
                    and list(columns or ()).count(name) > 1})
    if twice:
        raise ValueError(f"{where}: the column {' and '.join(twice)} is named twice")


def _saved_as(columns: Sequence[str]) -> str:
    """What a header without the columns says of how the file was saved, where that is plain: a spreadsheet's
    "Unicode text" without its byte order mark (UTF-16: a NUL after each letter, which is UTF-8 and so reads as a
    header) or a CSV of another separator (`;`, a tab: one column holding every name). Refused either way; the
    reviewer is told what to save instead of only that the columns are missing."""
    joined = ",".join(columns)
    if "\x00" in joined and "photo_id" in joined.replace("\x00", ""):
        return "; a NUL after each letter: the file is UTF-16 (a spreadsheet's Unicode text): save it as CSV UTF-8"
    for separator, name in ((";", "semicolons"), ("\t", "tabs")):
        if len(columns) == 1 and {"photo_id", "decision"} <= {cell.strip() for cell in joined.split(separator)}:
            return f"; its columns are separated by {name}: save it as CSV with commas"
    return ""


def decided_sha256(cell: str, where: str) -> str:
    value = csv_text(cell.strip()).lower()
    if value and not SHA256_HEX.fullmatch(value):
        raise ValueError(f"{where}: sha256 {cell.strip()[:70]!r} is not the sha256 of an image (64 hex digits)")
    return value


class DecidedRow(NamedTuple):
    """A decisions file's row, read and checked (`decided_rows`)."""
    line: int  # the line it starts on
    photo_id: str  # canonical
    verdict: int  # its place in DECISIONS
    note: str
    sha256: str


def decided_rows(text: TextLines, where: Callable[[int], str], length: int | None,
                 skip_undecided: bool = False) -> Iterator[DecidedRow]:
    """The rows of a decisions CSV's text (photo_id, decision, note[, sha256]), each checked by itself, ids canonical,
    a note as the reviewer wrote it (the store writes one that looks like a formula as '=...); `where(line)` names a row
    in errors. The text is a str's (`TextLines`) or a stream's (`StreamLines`: a MiB of it held at once); `length`, its
    characters, bounds its rows (None: no bound, a copy the launch checked). A row with an empty decision (a photo not
    looked at yet) is skipped when `skip_undecided`, else refused. The one reading of a decisions file: the page's and
    template's (`review apply`), the store at launch and on a worker."""
    # strict: not strict, the reader took an unterminated quote to the end of the file (a hand-edited note opening a
    # quote hid every later row in it, reject_human included, unsaid) and glued text after a closing quote on
    lines = BoundedRecordLines(text, MAX_DECISION_LINE, _too_long(where))
    reader = csv.reader(lines, strict=True)
    header = _csv_rows(reader, lambda: next(reader, None), where, lines)
    if header is None:  # named the line past its end, "no photo_id or decision column (its header: )"
        raise ValueError(f"{where(1)}: no header row (photo_id,decision,note,sha256): the file is empty or blank")
    check_decision_columns(header, where(lines.first))
    lines.next_record()
    cell = _cells(header)
    most = -1 if length is None else max(DECISION_ROW_FLOOR, length // DECISION_ROW_BYTES)
    columns = len(header)
    for count, (line, row) in enumerate(_numbered_rows(reader, lines, where)):
        if count == most:  # every row the reader gives (not a blank line, which it skips): each costs time or memory
            raise ValueError(f"{where(line)}: over {most:,} rows, more than a decisions file of {length:,} "
                             f"characters holds (a row as review/ writes it takes over {DECISION_ROW_BYTES} bytes, "
                             f"its image's sha256; {DECISION_ROW_FLOOR:,} in any file); read no further")
        decision = cell(row, "decision").strip()
        try:  # the row's place made into a string only for an error (two a row were ~10% of the time)
            # Cells past the header's were dropped unsaid: a note cut at an unquoted comma, an image's sha256 under a
            # header without the column (the acceptance then held for any image).
            if len(row) > columns and any(value.strip() for value in row[columns:]):
                raise ValueError(f": {len(row)} cells, more than the {columns} columns its header names (a value "
                                 "holding a comma is quoted)")
            if not decision and skip_undecided:
                continue
            if decision not in DECISIONS:
                raise ValueError(f": decision must be one of {', '.join(DECISIONS)}, not {decision[:40]!r}")
            decided = DecidedRow(line, decided_photo_id(cell(row, "photo_id"), ""), DECISIONS.index(decision),
                                 csv_text(cell(row, "note").strip()), decided_sha256(cell(row, "sha256"), ""))
        except ValueError as err:
            raise ValueError(f"{where(line)}{err}") from None
        yield decided


def parse_decisions(text: str, where: Callable[[int], str], skip_undecided: bool = False) -> dict[str, Decision]:
    """{photo id: Decision} from a decisions CSV's text, its rows read and checked by `decided_rows`, a photo decided
    otherwise by two rows refused."""
    decisions: dict[str, Decision] = {}
    for row in decided_rows(TextLines(text), where, len(text), skip_undecided):
        # the verdict as the one string of DECISIONS, not a copy a row (~60 bytes each, as much as the row's id)
        decided = Decision(DECISIONS[row.verdict], row.note, row.sha256)
        # Two files joined, or a row copied in a spreadsheet: `05,reject_human` then `5,accept` kept the person, the
        # later row winning without a word. The same decision of the same image twice is harmless (the later note
        # stands); two others are the reviewer's call.
        earlier = decisions.get(row.photo_id)
        if earlier is not None and (earlier.verdict, earlier.sha256) != (decided.verdict, decided.sha256):
            raise ValueError(_decided_otherwise(where, row.line, row.photo_id,
                                                _first_line_deciding(text, row.photo_id)))
        decisions[row.photo_id] = decided
    return decisions


def _decided_otherwise(where: Callable[[int], str], line: int, photo_id: str, first: int) -> str:
    return f"{where(line)}: photo {photo_id} is decided otherwise at {where(first)}; keep one row per photo"


def check_decisions(text: TextLines, where: Callable[[int], str], length: int, notes: bool = True
                    ) -> DecisionTableBuilder:
    """`parse_decisions` of a text read as it comes (`StreamLines`): its decisions added to a compact table, not a
    dict (~50 bytes a row with the line it is on, not ~400 with the text), and the same first refusal, with the
    same line: a photo decided otherwise by two rows is found in the table once the rows are read, or before a later
    row's refusal is said. `notes`: kept in the table (the launch checks the store, and keeps no note)."""
    table = DecisionTableBuilder(lines=True)
    try:
        for row in decided_rows(text, where, length):
            table.add(row.photo_id, row.verdict, row.note if notes else "", row.sha256, row.line)
    except ValueError:
        _refuse_conflict(table, where)
        raise
    _refuse_conflict(table, where)
    return table


def _refuse_conflict(table: DecisionTableBuilder, where: Callable[[int], str]) -> None:
    conflict = table.conflict()
    if conflict is not None:
        raise ValueError(_decided_otherwise(where, *conflict)) from None


def _first_line_deciding(text: str, photo_id: str) -> int:
    """The line of the first row deciding `photo_id` in a decisions text read up to a later row deciding it: looked up
    again when it is asked for, not kept for every row (a dict of each photo's first line cost ~100 bytes a row)."""
    lines = BoundedRecordLines(TextLines(text), len(text), lambda first, last: "")  # numbered as parse_decisions does
    reader = csv.reader(lines, strict=True)
    cell = _cells(next(reader))  # the header, as parse_decisions reads it
    lines.next_record()
    for line, row in _numbered_rows(reader, lines, str):
        if cell(row, "decision").strip():
            try:
                if decided_photo_id(cell(row, "photo_id"), "") == photo_id:
                    return line
            except ValueError:
                continue
    raise AssertionError(f"no row decides photo {photo_id}")  # parse_decisions read one before asking


# The least a decisions row takes as review/ writes it (the page's decisions.csv, the template, the store): its
# image's sha256 is 64 hex digits. Past one row per DECISION_ROW_BYTES characters of a file, DECISION_ROW_FLOOR in any
# file (a store of a million rows without the sha256, from before the column, ~24 MB), a file is read no further:
# each row kept costs ~170 bytes of memory, and a 256 MiB file of `1,accept` rows (9 bytes) was 17 million of them.
DECISION_ROW_BYTES = 64
DECISION_ROW_FLOOR = 1_000_000

# Far longer than a decision's line (an id, a verdict, a note, a hash); bounds a line of commas, which the reader
# splits into a list of 8 bytes a comma (annotators' files come from outside the team; the store is read at launch).
MAX_DECISION_LINE = 1 << 20


def _too_long(where: Callable[[int], str]) -> Callable[[int, int], str]:
    """What a decisions row over `MAX_DECISION_LINE` characters is said to be (`BoundedRecordLines`)."""
    return lambda first, last: (
        f"{where(last)}: a line over {MAX_DECISION_LINE:,} characters" if first == last else
        f"{where(first)}: a row over {MAX_DECISION_LINE:,} characters (its lines {first}-{last} together)")


def _cells(header: list[str]) -> Callable[[list[str], str], str]:
    """cell(row, name): a row's cell in the header's column `name`, "" where the row or the header has none. A row is
    read by its four columns' places (csv.DictReader made each row a dict of every column the header names, filled in
    for the cells the row lacks: a header of 500,000 names made each 9-byte row 20 ms of CPU)."""
    places = {name: header.index(name) for name in _COLUMNS if name in header}

    def cell(row: list[str], name: str) -> str:
        place = places.get(name)
        return row[place] if place is not None and place < len(row) else ""

    return cell


def _csv_rows(reader: Iterator[list[str]], read: Callable[[], Any], where: Callable[[int], str],
              lines: BoundedRecordLines) -> Any:
    """`read()` from the reader, its csv.Error a ValueError naming the line the row being read starts on."""
    try:
        return read()
    except csv.Error as err:
        if str(err).startswith("field larger than field limit"):  # the csv module's own bound on a cell
            raise ValueError(f"{where(lines.first)}: a cell over {csv.field_size_limit():,} characters (a note is at "
                             "most that long: shorten it)") from None
        raise ValueError(f"{where(lines.first)}: not CSV as a spreadsheet writes it ({err})") from None


def _numbered_rows(reader: Iterator[list[str]], lines: BoundedRecordLines, where: Callable[[int], str]
                   ) -> Iterator[tuple[int, list[str]]]:
    """(the line its row starts on, row) for each row of a reader of `lines` (a quoted note may hold line breaks; the
    blank lines before a row are none of its lines), each row's lines then bounded afresh."""
    while True:
        row = _csv_rows(reader, lambda: next(reader, None), where, lines)
        if row is None:
            return
        if row:  # csv.DictReader skipped a row of no cells (a blank line, read in one step before a record)
            yield lines.first, row
        lines.next_record()


# More than any decisions file or store holds (a decision's row is ~100 bytes: millions of them); a file is read no
# further. Read whole, a decisions file that was /dev/zero (or a link to it) was read until memory ran out.
MAX_DECISIONS_BYTES = 256 << 20


def decisions_bytes(path: str) -> bytes:
    """A decisions file's bytes, local or on any Beam filesystem; ValueError past `MAX_DECISIONS_BYTES`."""
    raw = read_bytes(path, MAX_DECISIONS_BYTES)
    if len(raw) > MAX_DECISIONS_BYTES:
        raise ValueError(f"{path}: over {MAX_DECISIONS_BYTES:,} bytes, more than any decisions file or store holds; "
                         "read no further")
    return raw


def decisions_text(path: str) -> str:
    """A decisions file's text, local or on any Beam filesystem (`text_of_decisions`)."""
    return text_of_decisions(decisions_bytes(path), path)


def text_of_decisions(raw: bytes, path: str) -> str:
    """A decisions file's bytes as text; ValueError naming the file and line where it is no UTF-8. utf-8-sig: a
    spreadsheet's "CSV UTF-8" begins with a byte order mark, which would make the first column '\ufeffphoto_id' and
    every row's id empty."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        # The codec's place counts from past a byte order mark: the line counted up to it was the one before, where
        # the byte began a line, and the byte three before the file's own.
        at = err.start + (len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0)
        line = raw.count(b"\n", 0, at) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {at}); save it as CSV UTF-8") from None


def read_decisions(path: str | None) -> dict[str, Decision]:
    """The decisions store a run reads (--review_decisions): every row decided (`parse_decisions`)."""
    if not path:
        return {}
    return parse_decisions(decisions_text(path), lambda line: f"{path}:{line}")


# The decisions a job applies: in memory, or the store as the job read it at launch, copied for its workers.
Decisions = dict[str, Decision] | StagedCopy


def stage_decisions(path: str | None, folder: str, chunk: int = 1 << 20) -> Decisions:
    """The decisions store (--review_decisions) read and checked once at launch (a malformed store fails the job
    before any worker starts) and copied under `folder` for the workers (`io/staged_copy.py`): pickled into each
    detector's handler and the decision step, 100,000 decisions were 416 kB a step, several steps a Detect stage
    and two Detect stages in a refresh. Copied a MiB at a time, then the copy checked as it is read back: read whole,
    1.44 million decisions were their bytes, their text and a dict (~584 MiB at launch); refused as `read_decisions`
    refuses the store, nothing staged then. `chunk`: the bytes, and then the characters, read at a time."""
    if not path:
        return {}
    text = DecisionsText(path)

    def check(copy: StagedCopy) -> None:
        text.refuse(copy.path)
        with copy.reading() as raw:
            check_decisions(StreamLines(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), chunk),
                            lambda line: f"{path}:{line}", text.characters, notes=False)

    with open_reader(path) as handle:
        return stage_chunks(path, text.chunks(handle, chunk), folder, check, suffix=".csv")


def read_decision_table(path: str) -> DecisionTable:
    """The decisions store `read_decisions` reads, read and refused as it does, into a compact table (notes and all):
    its bytes read a MiB at a time, then its rows (`check_decisions`); ValueError if it changed in between. Read whole
    (`review apply`), 1.44 million decisions were their bytes, their text and a dict (~600 MiB)."""
    text, digest = DecisionsText(path), hashlib.sha256()
    with open_reader(path) as handle:
        for chunk in text.chunks(handle):
            digest.update(chunk)
    text.refuse(path)
    with reading_as_hashed(path, digest.hexdigest(), lambda: ValueError(
            f"{path} changed while it was read (another writer than `review apply`?); run again")) as raw:
        table = check_decisions(StreamLines(io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")),
                                lambda line: f"{path}:{line}", text.characters)
    return table.table()


class DecisionsText:
    """A decisions file's bytes a MiB at a time (`chunks`), refused (`refuse`) as `decisions_text` refuses them whole
    (over `MAX_DECISIONS_BYTES`, read no further; not UTF-8, the same line and byte named), and the characters of its
    text counted (`characters`: `decided_rows` bounds its rows by them), none of it kept."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._head: bytes | None = b""  # the first bytes, until there are three: a byte order mark or not
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._decoded = 0  # the file's bytes before those the decoder is given next (a byte order mark's included)
        self.characters = 0
        self._bad: int | None = None  # the file's byte where the text is no UTF-8, as text_of_decisions names it

    def chunks(self, handle: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes (`handle`'s) `size` at a time; ValueError once they pass `MAX_DECISIONS_BYTES`."""
        read = 0
        while chunk := handle.read(size):
            read += len(chunk)
            if read > MAX_DECISIONS_BYTES:
                raise ValueError(f"{self._path}: over {MAX_DECISIONS_BYTES:,} bytes, more than any decisions file or "
                                 "store holds; read no further")
            self._decode(chunk)
            yield chunk
        self._decode(b"", final=True)

    def _decode(self, chunk: bytes, final: bool = False) -> None:
        if self._bad is not None:
            return
        if self._head is not None:  # decoded from the fourth byte on when the first three are a byte order mark
            self._head += chunk
            if len(self._head) < 3 and not final:
                return
            chunk, head, self._head = self._head.removeprefix(codecs.BOM_UTF8), self._head, None
            self._decoded = len(head) - len(chunk)  # the mark's bytes, never decoded, are the file's
        held = len(self._decoder.getstate()[0])  # the bytes of a character cut at the last chunk's end
        try:
            self.characters += len(self._decoder.decode(chunk, final))
        except UnicodeDecodeError as err:
            self._bad = self._decoded - held + err.start  # the file's byte, as text_of_decisions names it
        self._decoded += len(chunk)

    def refuse(self, path: str) -> None:
        """ValueError if the text is no UTF-8, naming the line and byte `text_of_decisions` names (its line counted
        in `path`, the bytes read: the file or its copy)."""
        if self._bad is None:
            return
        newlines, left = 0, self._bad
        with open_reader(path) as raw:
            while left and (chunk := raw.read(min(left, 1 << 20))):
                newlines, left = newlines + chunk.count(b"\n"), left - len(chunk)
        raise ValueError(f"{self._path}:{newlines + 1}: not UTF-8 text (byte {self._bad}); save it as CSV UTF-8")


@functools.lru_cache(maxsize=4)
def _staged_decisions(copy: StagedCopy) -> DecisionTable:
    # once per worker process, not per DoFn instance and thread (each detector's handler and the decision step ask)
    with copy.reading() as raw:
        return decision_table(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), copy.name)


def decision_table(text: TextIO, name: str) -> DecisionTable:
    """The decisions of a store `parse_decisions` read and checked at launch (`stage_decisions`: the same bytes, by
    their sha256), read as it reads them, a MiB of the file at a time, into a compact table: read whole, 1.44 million
    decisions were their bytes, their text and a dict (~576 MiB and ~26 s in every worker process)."""
    def where(line: int) -> str:
        return f"{name}:{line}"

    table = DecisionTableBuilder()
    for row in decided_rows(StreamLines(text), where, None):
        table.add(row.photo_id, row.verdict, row.note, row.sha256)
    return table.table()


def decisions_of(source: Decisions) -> dict[str, Decision] | DecisionTable:
    """The decisions themselves (on a worker, a staged copy is read the first time it is asked for)."""
    return _staged_decisions(source) if isinstance(source, StagedCopy) else source
