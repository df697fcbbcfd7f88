"""Decide each photo once: rows a previous release already decided are not fetched again.

Every release writes `ledger/`: one row per photo id it decided for good — kept, or rejected for a
reason that will not change (license, duplicate, deleted, blank, human, blocklisted, …) — carried
from release to release, with the release that decided it. A refresh reads the previous ledger
(`--ledger`) and, right after the repeated-id stage, rejects every row whose id is in it as
`already_decided` (the detail says how and when). So a monthly refresh of an unchanged YFCC dump
downloads nothing: only ids never seen, and ids rejected for a transient reason (timeouts, server
errors, rate limits, API errors, internal errors, held for review, over the owner cap) go on to
the fetch. Kept photos are not lost: the refresh carries them over from the previous release, where
their license is re-checked and takedowns apply.

The join is a CoGroupByKey on the photo id, so the ledger can hold every id of YFCC100M without any
worker holding it in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.io.staged_images import CORRUPT as STAGED_IMAGE_CORRUPT
from pipeline.io.staged_images import MISSING as STAGED_IMAGE_MISSING
from pipeline.records import BLOCKLIST_CONTENT, BadPhotoId, Photo, Rejection, canonical_photo_id
from pipeline.stage import StageOutput, apply_stage, reject
from pipeline.stages.blocklist import STAGE as BLOCKLIST_STAGE
from pipeline.stages.decontaminate import STAGE as DECONTAMINATE_STAGE

STAGE = "ledger"
KEPT, REJECTED = "kept", "rejected"
# (stage, reason) pairs, or whole stages ("*"), whose verdict may change on another try: never recorded.
TRANSIENT = {
    "fetch": {"connection_error", "timeout", "deadline_exceeded", "rate_limited", "server_error", "truncated_body",
              # where a name leads, and a server's contradictory headers, say something of the network, not of the photo
              "address_not_public", "bad_response",
              # an answer that is no HTTP (or TLS that fails: a certificate expired) is the host's, which may be mended
              "protocol_error",
              # the run's --allowed_hosts refused the URL or a redirect: the list's verdict, not the photo's (a refresh
              # does not inherit the list; one that left out a mirror's host lost its new photos for every release)
              "host_not_allowed", "redirect_not_allowed"},
    "read": {"api_error", "bad_api_response"},
    # A broken answer says nothing of the photo; an owner other than the row's says something of the row only (its
    # credit): a later row crediting the right owner must not find the photo decided for ever.
    "verify_license": {"api_error", "bad_api_response", "owner_mismatch"},
    "detect": {"needs_review"},
    "owner_cap": {"*"},  # a photo over its owner's cap may fit in a later release
    # A carried row the refresh's checks refuse (release/carry.py: unreadable, an image that is not its own) says
    # nothing of the photo, only of the release's copy: fetched from its source next time, not skipped for ever.
    "carry": {"*"},
    # The job's own staged copy of a stored image gone or changed before the writers read it back (a staging
    # folder cleaned mid-run, an object store's read failing after its retries): nothing about the photo, which was
    # recorded as decided and never fetched again.
    "image": {STAGED_IMAGE_MISSING, STAGED_IMAGE_CORRUPT},
}
# Stages deciding by lists each run reads as they are then (a takedown list, the evaluation sets). A run given a
# takedown list decides again the ids its id pass took down (SkipDecided's `rechecked`, set by build.py); a rejection
# by any of them stands through a run that reached no verdict for its id (`merged`).
LIST_STAGES = frozenset({BLOCKLIST_STAGE, BLOCKLIST_CONTENT, DECONTAMINATE_STAGE})


# Stages whose rejections say nothing about the photo for the ledger: "read" and "license" decide from
# the row itself, cheaply, every time; a repeated id or an already-decided row is about the row.
NOT_RECORDED = frozenset({"read", "license", "unique_id", STAGE})


def permanent(rejection: Rejection) -> bool:
    return permanent_verdict(rejection.stage, rejection.reason)


def permanent_verdict(stage: str, reason: str) -> bool:
    """Whether a rejection by `stage` for `reason` is recorded: a verdict that will not change."""
    reasons = TRANSIENT.get(stage, set())
    return stage not in NOT_RECORDED and reason != "internal_error" and "*" not in reasons and reason not in reasons


LEDGER_METRICS = "ledger"
IGNORED_ROWS = "previous_rows_ignored"
# What a run writes in a ledger row's text fields: stage and reason names, a release name.
_NAME = re.compile(r"[A-Za-z0-9_.:-]{0,100}")
_RELEASE = re.compile(r"[^\x00-\x1f\x7f]{0,200}")


def checked_row(row: object) -> tuple[str, dict] | None:
    """(photo id, row) for a previous ledger's row as a run writes it, else None. The previous release is outside
    input (whoever can change a file can reseal its manifest): an id in another spelling ('01003') never matched
    its photo and sat beside it in the new ledger, and one that is no number ('../../x') failed the whole job at
    its very end, in the ledger writer. A rejection whose verdict may change (TRANSIENT, internal errors, stages
    NOT_RECORDED; no stage or reason) is no row a run writes either. A refused row decides nothing: its photo, if
    listed, is decided again."""
    if not isinstance(row, dict):
        return None
    photo_id, decision = row.get("photo_id"), row.get("decision")
    stage, reason, release = (row.get(name) for name in ("stage", "reason", "release"))
    if not isinstance(photo_id, str) or _id(photo_id) != photo_id or decision not in (KEPT, REJECTED):
        return None
    if not (isinstance(stage, str) and isinstance(reason, str) and isinstance(release, str)):
        return None
    if not (_NAME.fullmatch(stage) and _NAME.fullmatch(reason) and _RELEASE.fullmatch(release)):
        return None
    # A rejection this version would not record (a reason that may change: a ledger written before owner_mismatch
    # or the carry checks were transient holds them) skipped its photo for ever, the old entry carried on unchanged.
    if decision == REJECTED and not (stage and reason and permanent_verdict(stage, reason)):
        return None
    return photo_id, {"photo_id": photo_id, "decision": decision, "stage": stage, "reason": reason, "release": release}


class CheckedRows(beam.DoFn):
    """Previous ledger rows (dict) -> (photo id, row) for each row a run could have written; the others counted in
    the `ledger` namespace (`previous_rows_ignored`, reported in stats.json)."""

    def __init__(self) -> None:
        self._ignored = Metrics.counter(LEDGER_METRICS, IGNORED_ROWS)

    def process(self, row: object) -> Iterator[tuple[str, dict]]:
        checked = checked_row(row)
        if checked is None:
            self._ignored.inc()
            return
        yield checked


def _id(value: str) -> str | None:
    try:
        return canonical_photo_id(value)
    except BadPhotoId:
        return None


def entry_of_kept(photo: Photo, release: str) -> tuple[str, dict] | None:
    photo_id = _id(photo.photo_id)
    return (photo_id, {"photo_id": photo_id, "decision": KEPT, "stage": "", "reason": "", "release": release}) \
        if photo_id else None


def entry_of_rejection(rejection: Rejection, release: str) -> tuple[str, dict] | None:
    photo_id = _id(rejection.photo_id)
    if not photo_id or not permanent(rejection):
        return None
    return photo_id, {"photo_id": photo_id, "decision": REJECTED, "stage": rejection.stage,
                      "reason": rejection.reason, "release": release}


def reopened_id(rejection: Rejection) -> str | None:
    """The id of a photo this run rejected for a reason that may change (TRANSIENT, internal errors): undecided
    again, whatever an earlier release decided."""
    photo_id = _id(rejection.photo_id)
    return photo_id if photo_id and rejection.stage not in NOT_RECORDED and not permanent(rejection) else None


def merged(keyed: tuple[str, dict[str, Iterable]]) -> Iterator[dict]:
    """This run's decision of an id replaces the previous ledger's; an id this run did not see
    keeps its old entry. A kept photo that this run also rejected (its carried copy was taken
    down, say) is recorded as rejected. An id this run rejected only for a reason that may change ("reopened":
    a carried photo over its owner's cap, held for review by stricter detectors, its licence check failing
    on an API error) loses its old entry: its old "kept" had the next refresh skip the photo's row as decided
    while no release held it any more, and the photo was lost for good. A rejection by a list (LIST_STAGES) keeps
    it: that run re-decided the id by the lists and reached no verdict."""
    _, groups = keyed
    chosen = first_entry(groups["new"])
    if chosen is None:
        old = first_entry(groups.get("old", ()))  # no "old": no previous ledger
        # A takedown or an evaluation-set overlap stands through a run that re-decided it by the lists and got only
        # a reason that may change (an API error before the id pass, a timeout before the content pass): dropped,
        # the next run without the lists (`--blocklist=` emptied, a run given none) fetched and published the photo.
        if old is not None and (not any(groups.get("reopened", ())) or
                                (old["decision"] == REJECTED and old["stage"] in LIST_STAGES)):
            chosen = old
    if chosen is not None:
        yield chosen


def first_entry(entries: Iterable[dict]) -> dict | None:
    """The entry that stands for an id among several: a rejection before a kept, then the first by stage, reason and
    release, whatever order they arrived in (a photo rejected twice, by a carried copy and a new row; a previous
    ledger, outside input, holding one id twice)."""
    return min(entries, key=lambda entry: (entry["decision"] == KEPT, entry["stage"], entry["reason"],
                                           entry["release"]), default=None)


class _SkipDecided(beam.DoFn):
    def __init__(self, rechecked: frozenset[str]) -> None:
        self._rechecked = rechecked

    def process(self, keyed: tuple[str, dict[str, Iterable]]) -> Iterator:
        _, groups = keyed
        decided = first_entry(entry for entry in groups["decided"]
                              if entry["decision"] == KEPT or entry["stage"] not in self._rechecked)
        if decided is not None and decided["decision"] == KEPT and "carried" in groups and \
                not any(groups["carried"]):
            decided = None  # "kept", yet the release it builds on does not hold it: nothing carries it over
        for photo in groups["photos"]:
            if decided is None:
                yield photo
            elif decided["decision"] == KEPT:
                yield reject(Rejection.of(photo, STAGE, "already_decided",
                                          f"kept in release {decided['release']}: carried over, not fetched again"))
            else:
                yield reject(Rejection.of(photo, STAGE, "already_decided",
                                          f"rejected in release {decided['release']}: "
                                          f"{decided['stage']}/{decided['reason']}"))


class SkipDecided(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo] never decided for good, PCollection[Rejection]
    `already_decided`), given the previous ledger as PCollection[dict] rows. `carried`: (photo id, anything) for each
    row of the release a refresh carries over; an id the ledger calls kept is decided only if that release holds it.
    The ledger is outside input (resealed with its release): a row calling a photo kept that the release does not hold
    skipped each new row of it as "carried over, not fetched again", and the photo was lost to every later release.
    `rechecked`: stages this run applies again from lists it reads as they are now (the takedown list's id pass, by
    id, owner or URL; takedowns by content and evaluation-set overlaps stay for good: see LIST_STAGES): their earlier
    rejections decide nothing, the lists do. Skipped as decided, a photo struck off the takedown list (a
    withdrawn or mistaken takedown, a hostile list replaced) stayed out of every later refresh. Without the list, the
    ledger's rejection stands (a run that was not given the list still keeps the taken-down photo out)."""

    def __init__(self, ledger: beam.PCollection, carried: beam.PCollection | None = None,
                 rechecked: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self._ledger, self._carried, self._rechecked = ledger, carried, rechecked

    def expand(self, photos: beam.PCollection) -> StageOutput:
        keyed = photos | "ById" >> beam.Map(lambda photo: (_id(photo.photo_id) or photo.photo_id, photo))
        decided = self._ledger | "LedgerById" >> beam.ParDo(CheckedRows())
        groups = {"photos": keyed, "decided": decided}
        if self._carried is not None:
            groups["carried"] = self._carried | "CarriedKeys" >> beam.Map(lambda item: (item[0], True))
        joined = groups | "Join" >> beam.CoGroupByKey()
        return apply_stage(joined, STAGE, _SkipDecided(self._rechecked))
