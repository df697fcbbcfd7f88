"""The reviewers' decisions as a worker holds them: a compact, read-only lookup answering `get` and `in` as the dict
`detect.parse_decisions` gives ({canonical photo id: Decision}, the later of two rows for a photo winning), at ~46
bytes a decision instead of ~230 in a dict (1.44 million decisions: ~66 MB, not ~330 MB in every worker process).

Photo ids are canonical (ASCII digits, no leading zero): those of at most 19 digits are kept as a sorted array of
unsigned 64-bit numbers (`records.id_number`), each with its row; any other (an id of 20 digits) in a small dict.
Per row: the verdict as its place in `DECISIONS` (one byte), the sha256 of the image the reviewer saw as 32 raw bytes
(zeros and a flag where the row has none), the note only where there is one."""

from __future__ import annotations

from array import array
from typing import NamedTuple

import numpy as np

from pipeline.records import id_number

DECISIONS = ("accept", "reject_human", "reject_other")

_NO_SHA256 = bytes(32)


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

    def get(self, photo_id: object, default: Decision | None = None) -> Decision | None:
        number = id_number(photo_id)
        if number is None:
            return self._others.get(photo_id, default)  # type: ignore[call-overload]
        at = int(np.searchsorted(self._ids, np.uint64(number)))  # an int64 past 2**53 is compared as a float
        if at == len(self._ids) or int(self._ids[at]) != number:
            return default
        row = int(self._rows[at])
        sha256 = self._sha256[32 * row:32 * row + 32].hex() if self._signed[row] else ""
        return Decision(DECISIONS[self._verdicts[row]], self._notes.get(row, ""), sha256)


class DecisionTableBuilder:
    """A `DecisionTable` of decisions added one at a time, the later of two for one photo id winning."""

    def __init__(self) -> None:
        self._ids = array("Q")
        self._verdicts, self._sha256, self._signed = bytearray(), bytearray(), bytearray()
        self._notes: dict[int, str] = {}
        self._others: dict[str, Decision] = {}

    def add(self, photo_id: str, verdict: int, note: str, sha256: str) -> None:
        """The decision DECISIONS[verdict] (note, sha256 hex or "") for the photo `photo_id`."""
        number = id_number(photo_id)
        if number is None:
            self._others[photo_id] = Decision(DECISIONS[verdict], note, sha256)
            return
        row = len(self._ids)
        self._ids.append(number)
        self._verdicts.append(verdict)
        self._signed.append(bool(sha256))
        self._sha256 += bytes.fromhex(sha256) if sha256 else _NO_SHA256
        if note:
            self._notes[row] = note

    def table(self) -> DecisionTable:
        ids = np.frombuffer(self._ids, dtype=np.uint64) if self._ids else np.zeros(0, dtype=np.uint64)
        order = np.argsort(ids, kind="stable")  # rows of one id in file order: the last of them is the one kept
        ordered = ids[order]
        last = np.ones(len(ordered), dtype=bool)
        last[:-1] = ordered[1:] != ordered[:-1]
        return DecisionTable(ordered[last], order[last].astype(np.int32), self._verdicts, self._sha256, self._signed,
                             self._notes, self._others)
