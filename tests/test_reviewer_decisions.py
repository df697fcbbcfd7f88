"""The reviewers' rejections for photos no detection runs on (`detectors/reviewer_decisions.py`)."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from pipeline.decision_table import Decision
from pipeline.decisions_file import stage_decisions
from pipeline.detectors.reviewer_decisions import STAGE, ReviewerRejections, applies
from pipeline.stages import detect
from tests.conftest import local_pipeline, photo

SEEN, OTHER = "a" * 64, "b" * 64


def test_an_acceptance_holds_for_the_image_the_reviewer_saw_and_a_rejection_always():
    assert applies(Decision("accept", "", SEEN), photo("7", sha256=SEEN))
    assert not applies(Decision("accept", "", SEEN), photo("7", sha256=OTHER))  # the owner replaced the image
    assert applies(Decision("accept", ""), photo("7", sha256=OTHER))  # a decision from before the column: by id
    assert applies(Decision("reject_human", "", SEEN), photo("7", sha256=OTHER))
    assert applies(Decision("reject_other", "", SEEN), photo("7", sha256=OTHER))


def _rejected_and_kept(decisions) -> None:
    photos = [photo(str(n), sha256=SEEN) for n in range(1, 6)]
    with local_pipeline() as p:
        out = p | beam.Create(photos) | ReviewerRejections(decisions)
        assert_that(out.kept | "Kept" >> beam.Map(lambda ph: ph.photo_id), equal_to(["3", "4", "5"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason, r.detail)), equal_to([
            ("1", "detect", "human", "reviewer: an arm at the edge"),
            ("2", "detect", "reviewer_rejected", "a screenshot")]), label="rejected")


DECISIONS = {"1": Decision("reject_human", "an arm at the edge", OTHER),  # a rejection holds for any image
             "2": Decision("reject_other", "a screenshot"),
             "3": Decision("accept", "", OTHER),  # an acceptance of another image: no detection here to decide it
             "4": Decision("accept", "")}


def test_a_photo_a_reviewer_rejected_leaves_as_detect_would_reject_it_and_the_others_pass_untouched():
    """Where no detection runs (--detectors=none, a refresh's carried photos when the detectors did not change), a
    reviewer's rejection still takes the photo out, under Detect's stage and reasons; acceptances change nothing."""
    assert STAGE == detect.STAGE
    _rejected_and_kept(DECISIONS)


def test_a_staged_decisions_store_rejects_as_the_decisions_read_whole_do(tmp_path):
    """A job passes the store's staged copy (its path and hash), read on the worker at setup."""
    store = tmp_path / "decisions.csv"
    store.write_text("photo_id,decision,note,sha256\n" + "".join(
        f"{photo_id},{d.verdict},{d.note},{d.sha256}\n" for photo_id, d in DECISIONS.items()))
    _rejected_and_kept(stage_decisions(str(store), str(tmp_path / "staged")))


def test_decisions_for_photos_the_run_does_not_hold_change_nothing(tmp_path):
    """A store is kept across releases and may come from another one's review (the wrong release's decisions.csv
    applied to it): its decisions for photos this run does not hold, a rejection among them, an id past 64 bits too,
    reject no one else and add no record, read whole or from the staged copy."""
    others = {"6": Decision("reject_human", "another release's photo", SEEN),
              "18446744073709551621": Decision("reject_other", "an id past 64 bits: 5 more than 2**64"),
              "99999999999999999999": Decision("reject_human", "")}
    _rejected_and_kept({**DECISIONS, **others})
    store = tmp_path / "decisions.csv"
    store.write_text("photo_id,decision,note,sha256\n" + "".join(
        f"{photo_id},{d.verdict},{d.note},{d.sha256}\n" for photo_id, d in {**others, **DECISIONS}.items()))
    _rejected_and_kept(stage_decisions(str(store), str(tmp_path / "staged")))
