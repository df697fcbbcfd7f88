"""What a release's rejections, ledger and near-duplicate index say of its kept photos (pipeline/release/accounts.py):
tallied batch by batch and file by file, then compared with the kept photos."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.release import accounts
from pipeline.release.accounts import Accounts, _Some
from pipeline.release.id_sets import IdSet

KEPT = ["1", "2", "30", "007"]  # "007" is no id's one spelling: a ledger never records it so


def kept_accounts(*read: str) -> Accounts:
    found = Accounts(IdSet.of(KEPT), "parquet")
    found.read.update(read)
    return found


def rows(**columns: list[object]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({name: pa.array(values, pa.string()) for name, values in columns.items()})


def said(found: Accounts, manifest: dict[str, object] | None = None) -> list[tuple[str, str]]:
    return [(problem.path, problem.message) for problem in found.problems(manifest or {"options": {}})]


@given(st.lists(st.tuples(st.text(max_size=3), st.integers(0, 3)), max_size=30), st.integers(0, 30))
def test_some_counts_everything_and_holds_the_three_least_in_text_order(values, cut):
    whole, first, second = _Some(), _Some(), _Some()
    for at, (value, times) in enumerate(values):
        whole.add(value, times)
        (first if at < cut else second).add(value, times)
    first.merge(second)
    for some in (whole, first):
        assert some.count == sum(times for _, times in values)
        assert some.least == sorted({value for value, _ in values})[:3]


def test_rejections_are_tallied_by_stage_and_reason_over_batches():
    found = kept_accounts("rejections")
    found.rejections(rows(photo_id=["5", "6", "7"], stage=["fetch", "fetch", "detect"],
                          reason=["http_404", "http_404", "person"]))
    found.rejections(rows(photo_id=["8"], stage=["fetch"], reason=["http_404"]))
    assert found.rejections_by_reason() == Counter({("fetch", "http_404"): 3, ("detect", "person"): 1})
    assert said(found) == []


def test_the_rejections_count_only_when_every_file_of_theirs_was_read():
    found = kept_accounts()
    assert found.rejections_by_reason() is None
    found.read.add("rejections")
    assert found.rejections_by_reason() == Counter()
    found.unread.add("rejections")
    assert found.rejections_by_reason() is None


def test_a_kept_photo_rejected_after_the_row_stages_is_a_problem_and_before_them_is_not():
    found = kept_accounts("rejections")
    found.rejections(rows(photo_id=["1", "2", "30", "99", "007"],
                          stage=["unique_id", "detect", "near_dup", "detect", "license"],
                          reason=["repeated_id", "person", "near_duplicate", "person", "not_cc_by"]))
    assert found.rejected == {"2", "30"} and found.stages == {"detect", "near_dup"}
    assert said(found) == [("rejections", "2 kept photos also rejected by detect, near_dup, which see each photo once "
                                          "(against parquet), e.g. 2, 30")]


def test_a_hostile_rejections_table_with_null_cells_is_tallied_not_a_crash():
    found = kept_accounts("rejections")
    found.rejections(rows(photo_id=[None, "1"], stage=[None, None], reason=[None, "x"]))
    assert found.rejections_by_reason() == Counter({(None, None): 1, (None, "x"): 1})
    assert found.rejected == {"1"} and found.stages == {"None"}


@pytest.mark.parametrize("column", ["photo_id", "stage", "reason"])
def test_a_column_that_is_not_text_is_refused(column):
    batch = rows(photo_id=["1"], stage=["fetch"], reason=["http_404"])
    batch = batch.set_column(batch.schema.get_field_index(column), column, pa.array([1], pa.int64()))
    with pytest.raises(pa.ArrowTypeError, match=f"column {column} is int64, not text as a run writes it"):
        kept_accounts().rejections(batch)


def test_large_text_columns_are_text():
    batch = pa.RecordBatch.from_pydict({name: pa.array(values, pa.large_string()) for name, values in
                                        {"photo_id": ["2"], "stage": ["detect"], "reason": ["person"]}.items()})
    found = kept_accounts()
    found.rejections(batch)
    assert found.rejected == {"2"}


def test_more_stage_and_reason_pairs_than_any_run_writes_are_not_tallied_further(monkeypatch):
    monkeypatch.setattr(accounts, "_MAX_REASONS", 3)
    found = kept_accounts("rejections")
    found.rejections(rows(photo_id=["5"] * 4, stage=["s"] * 4, reason=["a", "b", "c", "d"]))
    assert found.too_many_reasons and not found.reasons
    assert found.rejections_by_reason() is None
    assert ("rejections", "over 3 stage/reason pairs, more than any run writes; not compared with stats.json") in \
        said(found)


def test_files_each_within_the_bound_of_reasons_are_not_tallied_past_it_together(monkeypatch):
    """Each file's accounts were cleared past the bound, but their merge was not: a resealed release of many
    rejections files, each of 10,000 made-up reasons, was held whole in memory (1,000 files of 10,000 reasons of a
    kilobyte: ~10 GB) and compared with stats.json."""
    monkeypatch.setattr(accounts, "_MAX_REASONS", 3)
    release = kept_accounts("rejections")
    for reasons in (["a", "b"], ["c", "d"], ["e"]):
        found = release.for_a_file()
        found.rejections(rows(photo_id=["5"] * len(reasons), stage=["s"] * len(reasons), reason=reasons))
        assert not found.too_many_reasons
        release.merge(found)
        assert len(release.reasons) <= 3
    assert release.too_many_reasons and release.rejections_by_reason() is None
    assert ("rejections", "over 3 stage/reason pairs, more than any run writes; not compared with stats.json") in \
        said(release)


def test_the_ledger_holds_each_kept_photo_once_decided_kept():
    found = kept_accounts("ledger")
    found.ledger(rows(photo_id=["1", "2", "30", "99"], decision=["kept", "kept", "kept", "rejected"]))
    assert said(found) == []


def test_a_ledger_missing_a_kept_photo_deciding_it_otherwise_or_twice_is_a_problem():
    found = kept_accounts("ledger")
    found.ledger(rows(photo_id=["1", "2"], decision=["kept", "rejected"]))
    found.ledger(rows(photo_id=["1"], decision=["kept"]))
    assert said(found) == [
        ("ledger", "1 kept photos decided otherwise than kept (against parquet), e.g. 2"),
        ("ledger", "1 kept photos in more than one row (against parquet), e.g. 1"),
        ("ledger", "1 kept photos not in the ledger (against parquet), e.g. 30"),  # "007": a ledger never holds it
    ]


def test_no_photo_is_said_missing_from_a_ledger_or_index_not_read_whole():
    found = kept_accounts("ledger", "near_dup_index")
    found.unread.add("ledger")
    found.unread.add("near_dup_index")
    assert said(found) == []
    found = kept_accounts("ledger", "near_dup_index")
    found.unread.add("parquet")  # a shard of the kept photos unread: they are not all known
    assert said(found) == []


def test_the_near_duplicate_index_holds_a_row_for_every_kept_photo_and_nothing_else():
    found = kept_accounts("near_dup_index")
    found.index(rows(photo_id=["1", "2", "30", "007"]))
    assert said(found) == []
    found.index(rows(photo_id=["1", "5", "4", None]))
    assert said(found) == [
        ("near_dup_index", "1 kept photos in more than one row (against parquet), e.g. 1"),
        ("near_dup_index", "3 rows of photos the release does not hold (against parquet), e.g. 4, 5, None"),
    ]


def test_an_index_a_run_added_a_previous_one_to_may_hold_other_photos_and_repeats():
    found = kept_accounts("near_dup_index")
    found.index(rows(photo_id=["1", "2", "30", "007", "1", "9"]))
    assert said(found, {"options": {"previous_index": "gs://b/old", "carry_over": False}}) == []
    assert len(said(found, {"options": {"previous_index": "gs://b/old", "carry_over": True}})) == 2
    assert len(said(found, {"options": "hostile"})) == 0  # options that are no object: nothing exact is known
    found = kept_accounts("near_dup_index")
    found.index(rows(photo_id=["1"]))
    assert said(found, {"options": {"previous_index": "gs://b/old"}}) == [
        ("near_dup_index", "3 kept photos not in the near-duplicate index (against parquet), e.g. 007, 2, 30")]


def test_files_merge_into_the_release_accounts():
    release = kept_accounts("rejections", "ledger", "near_dup_index")
    for photo_id in ("1", "2"):
        found = release.for_a_file()
        assert found.kept is release.kept and found.reference == release.reference
        found.rejections(rows(photo_id=[photo_id], stage=["detect"], reason=["person"]))
        found.ledger(rows(photo_id=[photo_id], decision=["kept"]))
        found.index(rows(photo_id=[photo_id, "9"]))
        release.merge(found)
    assert release.rejections_by_reason() == Counter({("detect", "person"): 2})
    assert release.rejected == {"1", "2"}
    assert release.strangers.count == 2 and release.strangers.least == ["9"]


def test_without_a_reference_only_the_count_of_reasons_is_checked(monkeypatch):
    monkeypatch.setattr(accounts, "_MAX_REASONS", 0)
    found = Accounts()
    found.read.update({"rejections", "ledger"})
    found.rejections(rows(photo_id=["1"], stage=["detect"], reason=["person"]))
    found.ledger(rows(photo_id=["1"], decision=["rejected"]))
    assert [problem.path for problem in found.problems({})] == ["rejections"]
