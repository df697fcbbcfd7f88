from collections import Counter

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from pipeline.io.report import INDEX_ENTRY, INPUT_ROW, KEPT_ROW, LEDGER_ENTRY, Tally, build_stats
from tests.conftest import local_pipeline


def test_funnel_in_stage_order_and_accounting():
    stats = build_stats(10, 4, [(("fetch", "not_found"), 2), (("read", "bad_id"), 1), (("license", "video"), 1),
                                (("fetch", "timeout"), 2)])
    assert [step["stage"] for step in stats["funnel"]][:7] == [
        "read", "license", "unique_id", "ledger", "verify_license", "blocklist", "fetch"]
    fetch = next(step for step in stats["funnel"] if step["stage"] == "fetch")
    assert fetch == {"stage": "fetch", "in": 8, "rejected": 4, "out": 4}
    assert stats["accounted"] and stats["rejected"] == 6
    assert stats["rejections_by_stage"]["fetch"] == {"not_found": 2, "timeout": 2}


def test_unaccounted_rows_are_flagged():
    assert not build_stats(10, 4, [(("fetch", "timeout"), 1)])["accounted"]


def test_tally_counts_input_rows_kept_and_reasons_in_one_combine():
    elements = [INPUT_ROW] * 6 + [KEPT_ROW] * 2 + [("fetch", "timeout"), ("read", "bad_id"), ("fetch", "timeout")]
    elements += [LEDGER_ENTRY] * 4 + [INDEX_ENTRY] * 3
    with local_pipeline() as p:
        tally = p | beam.Create(elements) | beam.CombineGlobally(Tally())
        assert_that(tally, equal_to([{"input_rows": 6, "kept": 2, "rejected": 3, "ledger_entries": 4,
                                      "index_entries": 3,
                                      "reasons": [(("fetch", "timeout"), 2), (("read", "bad_id"), 1)]}]))


def test_tally_of_nothing_is_one_zero_tally():
    # The report hangs on the tally's one element: an empty run must still get one, or no stats.json.
    with local_pipeline() as p:
        tally = p | beam.Create([]) | beam.CombineGlobally(Tally())
        assert_that(tally, equal_to([{"input_rows": 0, "kept": 0, "rejected": 0, "ledger_entries": 0,
                                      "index_entries": 0, "reasons": []}]))


@given(st.lists(st.one_of(st.sampled_from([INPUT_ROW, KEPT_ROW, LEDGER_ENTRY, INDEX_ENTRY]),
                          st.tuples(st.sampled_from(["read", "fetch"]), st.sampled_from(["a", "b"]))),
                max_size=30),
       st.integers(1, 4))
def test_tally_merges_partial_counts_as_one_count(elements, parts):
    # Beam combines per bundle, then merges: any split gives what one pass over the elements gives.
    tally = Tally()
    accumulators = []
    for part in range(parts):
        accumulator = tally.create_accumulator()
        for element in elements[part::parts]:
            accumulator = tally.add_input(accumulator, element)
        accumulators.append(accumulator)
    result = tally.extract_output(tally.merge_accumulators(accumulators))
    assert result["input_rows"] == elements.count(INPUT_ROW) and result["kept"] == elements.count(KEPT_ROW)
    assert result[LEDGER_ENTRY] == elements.count(LEDGER_ENTRY) and result[INDEX_ENTRY] == elements.count(INDEX_ENTRY)
    assert result["reasons"] == sorted(Counter(e for e in elements if isinstance(e, tuple)).items())
    assert result["rejected"] == sum(isinstance(e, tuple) for e in elements)
