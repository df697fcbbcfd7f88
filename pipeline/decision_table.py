"""The reviewers' decisions as a worker holds them: a compact, read-only lookup answering `get` and `in` as the
dict `decisions_file.parse_decisions` gives ({canonical photo id: Decision}, the later of two rows for a photo winning),
at ~46 bytes a decision instead of ~230 in a dict (1.44 million decisions: ~66 MB, not ~330 MB in every worker process).

Photo ids are canonical (ASCII digits, no leading zero): those of at most 19 digits are kept as a sorted array of
unsigned 64-bit numbers (`records.id_number`), each with its row; any other (an id of 20 digits) in a small dict.
Per row: the verdict as its place in `DECISIONS` (one byte), the sha256 of the image the reviewer saw as 32 raw bytes
(zeros and a flag where the row has none), the note only where there is one."""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from pipeline.records import id_number

DECISIONS = ("accept", "reject_human", "reject_other")

_NO_SHA256 = bytes(32)
_SLICE = 1 << 16  # pairs of rows compared at once by `conflict`


class Decision(NamedTuple):
    """A reviewer's decision on one photo. `sha256`: of the stored image the reviewer saw (written by the review
    page and template); an acceptance holds for that image only, since a Flickr owner may replace a photo's image
    under the same id. Empty in decisions made before the column existed: those hold for the id."""
    verdict: str
    note: str
    sha256: str = ""


class DecisionTable:
    """{photo id: Decision}, read-only: `get(photo_id)` and `photo_id in table` (`DecisionTableBuilder` makes one)."""

    def __init__(self, ids: np.ndarray, rows: np.ndarray, verdicts: bytearray, sha256: bytearray,
                 signed: bytearray, notes: dict[int, str], others: dict[str, Decision]) -> None:
        self._ids, self._rows = ids, rows  # sorted ids, and the row deciding each (the later of two)
        self._verdicts, self._sha256, self._signed = verdicts, sha256, signed  # by row
        self._notes, self._others = notes, others

    def __len__(self) -> int:
        return len(self._ids) + len(self._others)

    def __contains__(self, photo_id: object) -> bool:
        return self.get(photo_id) is not None

    def items(self) -> Iterator[tuple[str, Decision]]:
        """(photo id, Decision) of every photo decided, by the number its id spells, smallest first."""
        numbers = ((str(number), self._decision(row)) for start in range(0, len(self._ids), _SLICE)
                   for number, row in zip(self._ids[start:start + _SLICE].tolist(),
                                          self._rows[start:start + _SLICE].tolist(), strict=True))
        return heapq.merge(numbers, sorted(self._others.items(), key=lambda item: int(item[0])),
                           key=lambda item: int(item[0]))

    def _decision(self, row: int) -> Decision:
        sha256 = self._sha256[32 * row:32 * row + 32].hex() if self._signed[row] else ""
        return Decision(DECISIONS[self._verdicts[row]], self._notes.get(row, ""), sha256)

    def get(self, photo_id: object, default: Decision | None = None) -> Decision | None:
        number = id_number(photo_id)
        if number is None:
            return self._others.get(photo_id, default)  # type: ignore[call-overload]
        at = int(np.searchsorted(self._ids, np.uint64(number)))  # an int64 past 2**53 is compared as a float
        if at == len(self._ids) or int(self._ids[at]) != number:
            return default
        return self._decision(int(self._rows[at]))


class DecisionTableBuilder:
    """A `DecisionTable` of decisions added one at a time, the later of two for one photo id winning. With `lines`,
    the line of each row is kept too (4 bytes a row) for `conflict`, which finds what `decisions_file.parse_decisions`
    refuses as it reads a row: a photo decided otherwise than an earlier row for it decided it."""

    def __init__(self, lines: bool = False) -> None:
        self._ids = array("Q")
        self._verdicts, self._sha256, self._signed = bytearray(), bytearray(), bytearray()
        self._notes: dict[int, str] = {}
        self._others: dict[str, Decision] = {}
        self._lines = array("I") if lines else None  # by row
        self._other_lines: dict[str, int] = {}  # the first line of an id no number, with `lines`
        self._other_conflict: tuple[int, str, int] | None = None

    def add(self, photo_id: str, verdict: int, note: str, sha256: str, line: int = 0) -> None:
        """The decision DECISIONS[verdict] (note, sha256 hex or "") for the photo `photo_id`, read on `line`."""
        number = id_number(photo_id)
        if number is None:
            decided = Decision(DECISIONS[verdict], note, sha256)
            if self._lines is not None:
                earlier = self._others.get(photo_id)
                if earlier is None:
                    self._other_lines[photo_id] = line
                elif (earlier.verdict, earlier.sha256) != (decided.verdict, sha256) and self._other_conflict is None:
                    self._other_conflict = (line, photo_id, self._other_lines[photo_id])
            self._others[photo_id] = decided
            return
        row = len(self._ids)
        self._ids.append(number)
        self._verdicts.append(verdict)
        self._signed.append(bool(sha256))
        self._sha256 += bytes.fromhex(sha256) if sha256 else _NO_SHA256
        if note:
            self._notes[row] = note
        if self._lines is not None:
            self._lines.append(line)

    def conflict(self) -> tuple[int, str, int] | None:
        """(its line, its photo id, the line of the photo's first row) of the first row added (with `lines`) that
        decides a photo otherwise (another verdict, another image's sha256 or none) than the row before it for the
        photo did; None if no row does. Found in the rows sorted by id, a slice of them at a time."""
        assert self._lines is not None, "a builder made without lines"
        found = self._other_conflict
        ids = np.frombuffer(self._ids, dtype=np.uint64) if self._ids else np.zeros(0, dtype=np.uint64)
        order = np.argsort(ids, kind="stable")  # each id's rows in the order added
        ordered = ids[order]
        verdicts = np.frombuffer(self._verdicts, dtype=np.uint8)
        signed = np.frombuffer(self._signed, dtype=np.uint8)
        sha256 = np.frombuffer(self._sha256, dtype=np.uint8).reshape(-1, 32)
        first = None
        for start in range(0, max(len(ordered) - 1, 0), _SLICE):
            end = min(start + _SLICE, len(ordered) - 1)  # rows start..end-1, each with the row after it
            pairs = np.flatnonzero(ordered[start + 1:end + 1] == ordered[start:end]) + start
            earlier, later = order[pairs], order[pairs + 1]
            differ = (verdicts[earlier] != verdicts[later]) | (signed[earlier] != signed[later]) \
                | (sha256[earlier] != sha256[later]).any(axis=1)
            if differ.any():
                row = int(later[differ].min())
                first = row if first is None else min(first, row)
        if first is not None:
            number = ids[first]
            line = self._lines[first]
            if found is None or line < found[0]:
                found = (line, str(int(number)),
                         self._lines[int(order[np.searchsorted(ordered, number, side="left")])])
        return found

    def table(self) -> DecisionTable:
        ids = np.frombuffer(self._ids, dtype=np.uint64) if self._ids else np.zeros(0, dtype=np.uint64)
        order = np.argsort(ids, kind="stable")  # rows of one id in file order: the last of them is the one kept
        ordered = ids[order]
        last = np.ones(len(ordered), dtype=bool)
        last[:-1] = ordered[1:] != ordered[:-1]
        return DecisionTable(ordered[last], order[last].astype(np.int32), self._verdicts, self._sha256, self._signed,
                             self._notes, self._others)
