"""What the rejections, ledger and near-duplicate index of a release say of its kept photos (`verify`'s cross-checks):
each table is read in batches and tallied here, and `Accounts.problems` compares the tallies with the kept photos.
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipeline.records import BadPhotoId, canonical_photo_id
from pipeline.release.id_sets import IdCount, IdSet
from pipeline.release.problem import Problem

# The stages that see every row of a photo id: a kept photo may be rejected by them too (a repeated row of it, or one
# refused for its licence or skipped as decided before the row that was kept; one of a refresh's carried copies when
# the previous release held it twice). `unique_id` and the ledger leave one row an id (a refresh's new rows for an id
# it carries are repeats), and every later stage passes that row or rejects it: a kept photo rejected there was
# published and refused at once, which no run does.
_ROW_STAGES = frozenset({"read", "license", "unique_id", "ledger", "carry"})
# More (stage, reason) pairs than any run writes (stages and reasons are the code's words): not tallied further.
_MAX_REASONS = 10_000
_KEPT = "kept"  # a ledger row's decision for a kept photo (stages/ledger.py)


class _Some:
    """How many, and the least few for the report: bounded whatever the count."""

    def __init__(self) -> None:
        self.count = 0
        self.least: list[str] = []

    def add(self, value: str, times: int = 1) -> None:
        self.count += times
        if value not in self.least and (len(self.least) < 3 or value < self.least[-1]):
            bisect.insort(self.least, value)
            del self.least[3:]

    def merge(self, other: _Some) -> None:
        for value in other.least:
            self.add(value, 0)
        self.count += other.count


@dataclass
class Accounts:
    """What the rejections, the ledger and the near-duplicate index say of the kept photos, `kept` (the reference
    format's ids, `_reference`), added up over their files: each file's own accounts are merged only once its size and
    sha256 are the manifest's. Held: the kept ids each table names (as numbers where they are: `IdCount`), counts,
    examples.

    What a run's writer guarantees (build.py; stages/ledger.py; io/sinks.py), and so what is checked:
    - the rejections: no kept photo is rejected by a stage after `_ROW_STAGES`; their stage/reason counts are
      stats.json's rejections by stage (one tally of one collection makes both);
    - the ledger: one row a kept photo (every kept id is in its one spelling: sources and carried rows refuse any
      other), decided `kept` (this run's decision of an id replaces the previous ledger's, and no run rejects a photo
      it keeps);
    - the near-duplicate index: a row for every kept photo; nothing else unless the run added a previous index
      (--previous_index without --carry_over: that index's photos, a kept one perhaps under an older pHash).
    Not checked: a ledger's other rows (a run keeps the previous ledger's rows for ids it did not see, kept ones
    included), a rejection of an id nothing keeps, the index's hashes."""

    kept: IdSet = field(default_factory=IdSet)
    reference: str = ""
    rejected: set[str] = field(default_factory=set)  # kept ids rejected after the row stages
    stages: set[str] = field(default_factory=set)  # by which stages
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)  # rejections by (stage, reason)
    too_many_reasons: bool = False
    decided: IdCount = field(default_factory=IdCount)  # the kept id of each ledger row naming one
    decided_otherwise: set[str] = field(default_factory=set)  # kept ids whose ledger row is not `kept`
    indexed: IdCount = field(default_factory=IdCount)  # the kept id of each index row naming one
    strangers: _Some = field(default_factory=_Some)  # index rows of ids the release does not keep
    read: set[str] = field(default_factory=set)  # formats of which a file was read
    unread: set[str] = field(default_factory=set)  # formats of which a listed file was not (missing, not its hash)

    def for_a_file(self) -> Accounts:
        return Accounts(self.kept, self.reference)

    def rejections(self, batch: pa.RecordBatch) -> None:
        stage, reason = _text(batch, "stage"), _text(batch, "reason")
        counts = pa.table({"stage": stage, "reason": reason}).group_by(["stage", "reason"]).aggregate(
            [([], "count_all")])
        self._tally(zip(zip(counts.column("stage").to_pylist(), counts.column("reason").to_pylist(), strict=True),
                        counts.column("count_all").to_pylist(), strict=True))
        stages = None
        ids = _text(batch, "photo_id").to_pylist()
        for row, (photo_id, kept) in enumerate(zip(ids, self.kept.holds_each(ids), strict=True)):
            if kept:
                stages = stages or stage.to_pylist()
                if stages[row] not in _ROW_STAGES:
                    self.rejected.add(photo_id)
                    self.stages.add(str(stages[row]))

    def ledger(self, batch: pa.RecordBatch) -> None:
        decisions = None
        ids = _text(batch, "photo_id").to_pylist()
        for row, (photo_id, kept) in enumerate(zip(ids, self.kept.holds_each(ids), strict=True)):
            if kept:
                self.decided.add(photo_id)
                decisions = decisions or _text(batch, "decision").to_pylist()
                if decisions[row] != _KEPT:
                    self.decided_otherwise.add(photo_id)

    def index(self, batch: pa.RecordBatch) -> None:
        ids = _text(batch, "photo_id").to_pylist()
        for photo_id, kept in zip(ids, self.kept.holds_each(ids), strict=True):
            if kept:
                self.indexed.add(photo_id)
            else:
                self.strangers.add(str(photo_id))

    def _tally(self, counts: Iterable[tuple[tuple[str, str], int]]) -> None:
        """Adds (stage, reason) counts until there are more pairs than any run writes; from then on none are held."""
        if self.too_many_reasons:
            return
        for key, n in counts:
            self.reasons[key] += n
        if len(self.reasons) > _MAX_REASONS:
            self.too_many_reasons = True
            self.reasons.clear()

    def merge(self, other: Accounts) -> None:
        self.rejected |= other.rejected
        self.stages |= other.stages
        if other.too_many_reasons:
            self.too_many_reasons = True
            self.reasons.clear()
        # Files each within the bound may pass it together: a resealed release of many rejections files, each of
        # 10,000 made-up reasons, was held whole
        self._tally(other.reasons.items())
        self.decided.extend(other.decided)
        self.decided_otherwise |= other.decided_otherwise
        self.indexed.extend(other.indexed)
        self.strangers.merge(other.strangers)

    def rejections_by_reason(self) -> Counter[tuple[str, str]] | None:
        """The rejections' (stage, reason) counts, when every listed file of theirs was read; else None."""
        whole = "rejections" in self.read and "rejections" not in self.unread
        return self.reasons if whole and not self.too_many_reasons else None

    def problems(self, manifest: dict[str, Any]) -> Iterator[Problem]:
        if self.too_many_reasons:
            yield Problem("rejections", f"over {_MAX_REASONS} stage/reason pairs, more than any run writes; not "
                                        "compared with stats.json")
        if not self.reference:
            return
        against = f"(against {self.reference})"
        # Whether every kept photo and every row is known: else a missing shard's photos would be reported again.
        whole = self.reference not in self.unread
        if self.rejected:
            yield Problem("rejections", f"{len(self.rejected)} kept photos also rejected by "
                                        f"{', '.join(sorted(self.stages))}, which see each photo once {against}, "
                                        f"e.g. {_least(self.rejected)}")
        if "ledger" in self.read:
            decided, decided_twice = self.decided.counted()
            if self.decided_otherwise:
                yield Problem("ledger", f"{len(self.decided_otherwise)} kept photos decided otherwise than kept "
                                        f"{against}, e.g. {_least(self.decided_otherwise)}")
            if decided_twice:
                yield Problem("ledger", f"{len(decided_twice)} kept photos in more than one row {against}, "
                                        f"e.g. {_least(decided_twice)}")
            missing = _canonical(self.kept - decided) if whole and "ledger" not in self.unread else IdSet()
            if missing:
                yield Problem("ledger", f"{len(missing)} kept photos not in the ledger {against}, e.g. "
                                        f"{_least(missing)}")
        if "near_dup_index" in self.read:
            options = manifest.get("options")
            # A run adds a previous index's rows to its own only with --previous_index and no --carry_over (build.py)
            exact = isinstance(options, dict) and not (options.get("previous_index") and not options.get("carry_over"))
            indexed, indexed_twice = self.indexed.counted()
            missing = self.kept - indexed if whole and "near_dup_index" not in self.unread else IdSet()
            if missing:
                yield Problem("near_dup_index", f"{len(missing)} kept photos not in the near-duplicate index "
                                                f"{against}, e.g. {_least(missing)}")
            if exact and indexed_twice:
                yield Problem("near_dup_index", f"{len(indexed_twice)} kept photos in more than one row "
                                                f"{against}, e.g. {_least(indexed_twice)}")
            if exact and whole and self.strangers.count:
                yield Problem("near_dup_index", f"{self.strangers.count} rows of photos the release does not hold "
                                                f"{against}, e.g. {', '.join(self.strangers.least)}")


def _text(batch: pa.RecordBatch, name: str) -> pa.Array:
    """A column of text, as a run writes it; one of another type is refused (ArrowTypeError: the file unreadable).
    Cast to text, a ledger's int64 ids passed here, and the next refresh, which takes only text ids, ignored every
    row: nothing decided was skipped."""
    column = batch.column(name)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise pa.ArrowTypeError(f"column {name} is {column.type}, not text as a run writes it")
    return column


def _least(ids: Iterable[str]) -> str:
    return ", ".join(heapq.nsmallest(3, ids))


def _canonical(ids: IdSet) -> IdSet:
    """The ids in their one spelling: the only ones a ledger records (stages/ledger.py). Every id held as a number
    is one (`as_number`)."""
    def canonical(photo_id: str) -> bool:
        try:
            return canonical_photo_id(photo_id) == photo_id
        except BadPhotoId:
            return False

    return IdSet(ids.numbers, (photo_id for photo_id in ids.others if canonical(photo_id)))
