"""A reviewer's rejections for photos no detection runs on: `ReviewerRejections`.

The Detect stage (`stages/detect.py`) applies the reviewers' decisions (`--review_decisions`) with the detectors'
scores: a decision for the photo wins. Where no detection runs (a run with `--detectors=none`; a refresh's carried
photos when the detectors did not change), a photo a reviewer rejected, on a first or a second look, still leaves: it
stayed in every later release otherwise. Its rejection is detection's (stage `detect`, `human` or
`reviewer_rejected`), as Detect's would be. It sits beside the detectors' decision rule, not in `stages/`, where each
module is one stage named as its STAGE: this is part of stage detect.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam

from pipeline.decision_table import Decision
from pipeline.decisions_file import Decisions, decisions_of
from pipeline.io.staged_copy import StagedCopy
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "detect"  # Detect's stage: a reviewer's rejection is one detection would have made


def applies(decision: Decision, photo: Photo) -> bool:
    """An acceptance holds only for the image the reviewer saw (when the decision names it): a photo whose image
    changed since, under the same id, is decided by the detectors again and, if borderline, reviewed again. A
    rejection always holds (rejecting is never unsafe)."""
    return decision.verdict != "accept" or not decision.sha256 or decision.sha256 == photo.sha256


def reviewer_rejection(decision: Decision, photo: Photo) -> Rejection | None:
    """The rejection a reviewer's decision makes of the photo (stage detect: `human`, or `reviewer_rejected` with
    the note), or None for an acceptance."""
    if decision.verdict == "reject_human":
        return Rejection.of(photo, STAGE, "human", f"reviewer: {decision.note}".rstrip(": "))
    if decision.verdict == "reject_other":
        return Rejection.of(photo, STAGE, "reviewer_rejected", decision.note)
    return None


class _ReviewerRejections(beam.DoFn):
    def __init__(self, decisions: Decisions) -> None:
        self._source = decisions

    def setup(self) -> None:
        self._decisions = decisions_of(self._source)

    def process(self, photo: Photo) -> Iterator:
        decision = self._decisions.get(photo.photo_id)
        rejection = reviewer_rejection(decision, photo) if decision is not None else None
        yield photo if rejection is None else reject(rejection)


class ReviewerRejections(beam.PTransform):
    """PCollection[Photo] -> StageOutput: the photos a reviewer rejected leave (stage detect, as `Detect` rejects
    them), the others pass untouched. For photos no detection runs on: a refresh's carried photos when the detectors
    did not change (a reviewer who rejects a released photo on a second look: it stayed in every later release)."""

    def __init__(self, decisions: Decisions) -> None:
        super().__init__()
        self._decisions = decisions if isinstance(decisions, StagedCopy) else {
            photo_id: d for photo_id, d in decisions.items() if d.verdict != "accept"}  # acceptances change nothing

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_stage(photos, STAGE, _ReviewerRejections(self._decisions), label="ReviewerRejections")
