"""pipeline/stages/ledger.py: a refresh skips the ids an earlier release decided for good."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from pipeline.records import Rejection
from pipeline.stages.ledger import (
    KEPT,
    REJECTED,
    SkipDecided,
    entry_of_kept,
    entry_of_rejection,
    merged,
    permanent,
    reopened_id,
)
from tests.conftest import local_pipeline, photo


def rejection(photo_id: str, stage: str, reason: str) -> Rejection:
    return Rejection.of(photo(photo_id), stage, reason)


def test_undecided_ids_go_on_and_decided_ones_are_rejected_with_how_and_when():
    ledger = [{"photo_id": "7", "decision": KEPT, "stage": "", "reason": "", "release": "2026-10"},
              {"photo_id": "8", "decision": REJECTED, "stage": "detect", "reason": "human", "release": "2026-09"}]
    photos = [photo("6"), photo("007"), photo("8"), photo("8")]  # "007" is photo 7; a repeated 8 stays two rows
    with local_pipeline() as p:
        out = p | "Photos" >> beam.Create(photos) | SkipDecided(p | "Ledger" >> beam.Create(ledger))
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["6"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason, r.detail)), equal_to([
            ("007", "ledger", "already_decided", "kept in release 2026-10: carried over, not fetched again"),
            ("8", "ledger", "already_decided", "rejected in release 2026-09: detect/human"),
            ("8", "ledger", "already_decided", "rejected in release 2026-09: detect/human")]), label="rejected")


def test_an_empty_ledger_lets_everything_through():
    with local_pipeline() as p:
        out = p | "Photos" >> beam.Create([photo("1"), photo("2")]) | SkipDecided(p | "Ledger" >> beam.Create([]))
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["1", "2"]), label="kept")
        assert_that(out.rejected, equal_to([]), label="rejected")


def test_only_verdicts_that_cannot_change_are_recorded():
    assert permanent(rejection("1", "detect", "human")) and permanent(rejection("1", "fetch", "deleted"))
    assert permanent(rejection("1", "exact_dedup", "duplicate"))
    transient = [("fetch", "connection_error"), ("fetch", "timeout"), ("fetch", "deadline_exceeded"),
                 ("fetch", "rate_limited"), ("fetch", "server_error"), ("fetch", "truncated_body"),
                 ("fetch", "protocol_error"), ("fetch", "bad_response"), ("fetch", "address_not_public"),
                 ("read", "api_error"), ("read", "bad_api_response"), ("verify_license", "api_error"),
                 ("verify_license", "bad_api_response"), ("verify_license", "owner_mismatch"),
                 ("detect", "needs_review"), ("owner_cap", "owner_cap"), ("image", "internal_error"),
                 ("carry", "image_mismatch"), ("carry", "unreadable_row"),
                 ("image", "staged_image_missing"), ("image", "staged_image_corrupt")]  # the job's own copy, lost
    about_the_row = [("read", "bad_id"), ("license", "not_cc_by"), ("unique_id", "repeated_id"),
                     ("ledger", "already_decided")]
    for stage, reason in transient + about_the_row:
        assert not permanent(rejection("1", stage, reason)), (stage, reason)
    assert entry_of_rejection(rejection("1", "fetch", "timeout"), "r") is None
    assert entry_of_rejection(rejection("012", "detect", "human"), "r") == (
        "12", {"photo_id": "12", "decision": REJECTED, "stage": "detect", "reason": "human", "release": "r"})
    assert entry_of_kept(photo("012"), "r") == (
        "12", {"photo_id": "12", "decision": KEPT, "stage": "", "reason": "", "release": "r"})
    assert entry_of_kept(photo("../x"), "r") is None  # an id that is not one is never recorded
    assert entry_of_rejection(rejection("../x", "detect", "human"), "r") is None
    # a rejection that may change reopens the id (any earlier decision is dropped); one about the row does not
    about_a_photo = [(stage, reason) for stage, reason in transient if stage != "read"]  # read: about the row
    assert [reopened_id(rejection("012", stage, reason)) for stage, reason in about_a_photo] == ["12"] * len(
        about_a_photo)
    assert {reopened_id(rejection("1", "read", "api_error")), reopened_id(rejection("1", "read", "bad_id"))} == {None}
    assert {reopened_id(rejection("1", stage, reason)) for stage, reason in about_the_row} == {None}
    assert reopened_id(rejection("1", "detect", "human")) is None


ENTRY = st.builds(lambda decision, release, stage, reason: {"photo_id": "1", "decision": decision, "stage": stage,
                                                            "reason": reason, "release": release},
                  st.sampled_from([KEPT, REJECTED]), st.sampled_from(["2026-09", "2026-10", "2026-11"]),
                  st.sampled_from(["detect", "fetch"]), st.sampled_from(["human", "gone"]))


@given(new=st.lists(ENTRY, max_size=4), old=st.lists(ENTRY, max_size=3), has_old=st.booleans(),
       reopened=st.integers(0, 2))
def test_merged_prefers_this_runs_rejection_then_its_kept_then_the_old_entry(new, old, has_old, reopened):
    groups = {"new": new, "old": old, "reopened": [True] * reopened} if has_old else {"new": new}
    out = list(merged(("1", groups)))
    # The oracle, spelled out: any rejection of this run wins (the first by stage, reason and release), else this
    # run's kept, else the old entry.
    def first(decision: str) -> list[dict]:
        return sorted((e for e in new if e["decision"] == decision), key=lambda e: (e["stage"], e["reason"],
                                                                                    e["release"]))[:1]

    def first_old() -> list[dict]:  # a previous ledger holding one id twice is outside input too
        return sorted(old, key=lambda e: (e["decision"] == KEPT, e["stage"], e["reason"], e["release"]))[:1]

    # ...unless this run rejected the id only for a reason that may change: then it is undecided again
    expected = first(REJECTED) or first(KEPT) or (first_old() if has_old and not reopened else [])
    assert out == expected
    # whatever order the runner delivers them in (two rejections of one id used to be recorded as the first to come)
    reversed_groups = {"new": new[::-1], "old": old[::-1], "reopened": [True] * reopened} if has_old else {
        "new": new[::-1]}
    assert list(merged(("1", reversed_groups))) == out


GOOD_ROW = {"photo_id": "7", "decision": KEPT, "stage": "", "reason": "", "release": "2026-10"}


def test_a_ledger_row_is_taken_only_as_a_run_writes_it():
    from pipeline.stages.ledger import checked_row

    assert checked_row(GOOD_ROW) == ("7", GOOD_ROW)
    for changed in ({"photo_id": "007"}, {"photo_id": "../../x"}, {"photo_id": 7}, {"photo_id": None},
                    {"decision": "maybe"}, {"stage": "detect/../x"}, {"reason": None}, {"reason": "a b"},
                    {"release": "r1\nforged line"}, {"release": "x" * 201}):
        assert checked_row({**GOOD_ROW, **changed}) is None, changed
    assert checked_row(["7", KEPT]) is None


def test_a_takedown_is_decided_again_by_the_list_a_run_reads_and_stands_without_it():
    """A takedown recorded in the ledger skipped the photo's row as decided in every later refresh, even once the
    entry was struck off the list: the stages a run re-decides from the lists it reads (`rechecked`: the build gives
    the id pass's where a takedown list is given, `test_refresh.py` shows it) decide nothing from the ledger. A run
    without them keeps the ledger's rejection (the taken-down photo stays out)."""
    ledger = [{**GOOD_ROW, "photo_id": str(pid), "decision": REJECTED, "stage": stage, "reason": reason}
              for pid, stage, reason in ((1, "blocklist", "blocklisted"), (2, "blocklist_content", "blocklisted"),
                                         (3, "decontaminate", "eval_overlap"), (4, "detect", "human"))]
    photos = [photo(str(pid)) for pid in range(1, 6)]
    for rechecked, passing in ((frozenset(), ["5"]), (frozenset({"blocklist", "blocklist_content"}), ["1", "2", "5"]),
                               (frozenset({"blocklist", "blocklist_content", "decontaminate"}), ["1", "2", "3", "5"])):
        with local_pipeline() as p:
            out = p | "Photos" >> beam.Create(photos) | SkipDecided(p | "Ledger" >> beam.Create(ledger),
                                                                     rechecked=rechecked)
            assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(passing), label="kept")


def test_a_takedown_stands_through_a_run_that_re_decided_it_and_reached_no_verdict():
    """A run given the lists decides a takedown's id again; an API error before the id pass, or a timeout before the
    content pass, reopened the id and the ledger's rejection was dropped: the next run without the lists (an
    inherited list dropped with `--blocklist=`, a run given none) fetched and published the taken-down photo."""
    for stage, reason in (("blocklist", "blocklisted"), ("blocklist_content", "blocklisted"),
                          ("decontaminate", "eval_overlap")):
        old = {**GOOD_ROW, "photo_id": "1", "decision": REJECTED, "stage": stage, "reason": reason}
        assert list(merged(("1", {"new": [], "old": [old], "reopened": [True]}))) == [old], stage
    # what reopening is for is unchanged: an old "kept" (or another verdict) reopened leaves no entry
    for old in (GOOD_ROW, {**GOOD_ROW, "decision": REJECTED, "stage": "detect", "reason": "human"}):
        assert list(merged(("7", {"new": [], "old": [old], "reopened": [True]}))) == []


def test_rows_no_run_writes_skip_nothing():
    ledger = [GOOD_ROW, {**GOOD_ROW, "photo_id": "08"}, {**GOOD_ROW, "photo_id": "9", "decision": "maybe"}]
    with local_pipeline() as p:
        out = p | "Photos" >> beam.Create([photo("7"), photo("8"), photo("9")]) | SkipDecided(
            p | "Ledger" >> beam.Create(ledger))
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["8", "9"]), label="kept")


def test_a_previous_ledger_holding_one_id_twice_skips_it_the_same_way_in_any_order():
    rows = [{**GOOD_ROW, "release": "2026-09"},
            {**GOOD_ROW, "decision": REJECTED, "stage": "detect", "reason": "human", "release": "2026-10"}]
    for order in (rows, rows[::-1]):
        with local_pipeline() as p:
            out = p | "Photos" >> beam.Create([photo("7")]) | SkipDecided(
                p | "Ledger" >> beam.Create(order, reshuffle=False))
            assert_that(out.rejected | beam.Map(lambda r: r.detail),
                        equal_to(["rejected in release 2026-10: detect/human"]))


STAGES = st.sampled_from(["", "fetch", "read", "license", "unique_id", "ledger", "verify_license", "detect",
                          "owner_cap", "carry", "image", "blocklist", "near_dedup"])
REASONS = st.sampled_from(["", "timeout", "rate_limited", "owner_mismatch", "api_error", "needs_review", "owner_cap",
                           "unreadable_row", "internal_error", "human", "blank", "not_found", "deleted",
                           "blocklisted", "repeated_id", "already_decided"])


@given(stage=STAGES, reason=REASONS)
def test_a_previous_rejection_is_taken_only_where_a_run_would_record_it(stage, reason):
    """A ledger written before owner_mismatch or the carry checks were transient holds such rejections (and an
    edited one any): taken, they skipped the photo as decided for ever, and the old entry was carried on. A rejected
    row is taken exactly when this run would write it (`entry_of_rejection`), else it decides nothing."""
    from pipeline.stages.ledger import checked_row

    row = {"photo_id": "7", "decision": REJECTED, "stage": stage, "reason": reason, "release": "2026-09"}
    written = entry_of_rejection(rejection("7", stage, reason), "2026-09") if stage and reason else None
    assert checked_row(row) == written


def test_rows_whose_verdict_may_change_skip_nothing():
    ledger = [{**GOOD_ROW, "photo_id": photo_id, "decision": REJECTED, "stage": stage, "reason": reason}
              for photo_id, stage, reason in (("8", "verify_license", "owner_mismatch"),
                                              ("9", "carry", "unreadable_row"), ("10", "image", "internal_error"))]
    with local_pipeline() as p:
        out = p | "Photos" >> beam.Create([photo("8"), photo("9"), photo("10")]) | SkipDecided(
            p | "Ledger" >> beam.Create(ledger))
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["8", "9", "10"]), label="kept")


def test_a_photo_refused_by_the_runs_allowed_hosts_is_not_decided_for_good():
    """--allowed_hosts is the run's, and a refresh does not inherit it: a refresh that left out a mirror's host rejected
    its new photos `fetch/host_not_allowed`, recorded for good, so the next one, given the host, skipped them as
    `already_decided` in every later release. The verdict is the list's, not the photo's: never recorded, and a
    ledger holding one (written before) decides nothing."""
    refused = [("fetch", "host_not_allowed"), ("fetch", "redirect_not_allowed")]
    for stage, reason in refused:
        assert entry_of_rejection(rejection("6", stage, reason), "2026-12") is None, reason
        assert reopened_id(rejection("06", stage, reason)) == "6", reason
    ledger = [{**GOOD_ROW, "photo_id": photo_id, "decision": REJECTED, "stage": stage, "reason": reason}
              for photo_id, (stage, reason) in zip(("6", "7"), refused, strict=True)]
    with local_pipeline() as p:
        out = p | "Photos" >> beam.Create([photo("6"), photo("7")]) | SkipDecided(p | "Ledger" >> beam.Create(ledger))
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["6", "7"]), label="kept")


def test_a_ledger_file_whose_name_holds_a_backslash_is_read(demo_release, tmp_path):
    """--ledger was read by Beam's ReadFromParquet, whose '*' never matches a backslash: the launch check (`matching`)
    found the file and the job did not, so every photo it had decided was fetched and decided again."""
    import shutil

    from pipeline.cli import run
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.fixtures.static_server import StaticServer
    from tests.conftest import FAST

    ledger = tmp_path / "ledger"
    ledger.mkdir()
    [shard] = sorted((demo_release / "ledger").glob("*.parquet"))
    shutil.copy(shard, ledger / "ledger\\part-0.parquet")
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path / "in")
        stats = run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                     f"--ledger={ledger}/*.parquet", "--allow_empty", *FAST])
    assert stats["accounted"] and stats["rejections_by_stage"]["ledger"]["already_decided"] >= 10
