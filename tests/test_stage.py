import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from pipeline.records import Photo, PhotoCoder, Rejection, RejectionCoder
from pipeline.stage import apply_stage, empty, flatten, reject
from tests.conftest import LOCAL, Regrouped, local_pipeline, photo


class Explodes(beam.DoFn):
    def process(self, ph):
        if ph.photo_id == "2":
            raise ValueError("boom")
        if ph.photo_id == "4":  # a message holding an object's address, as Pillow's do
            raise OSError(f"cannot identify image file {object()!r}")
        if ph.photo_id == "3":
            yield reject(Rejection.of(ph, "t", "expected"))
            return
        yield ph


def test_unexpected_exception_becomes_internal_error_rejection():
    with local_pipeline() as p:
        out = apply_stage(p | beam.Create([photo("1"), photo("2"), photo("3"), photo("4")]), "t", Explodes())
        assert_that(out.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["1"]), label="kept")
        # The detail is the same in every run: the address is left out
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason, r.detail)),
                    equal_to([("2", "t", "internal_error", "ValueError('boom')"), ("3", "t", "expected", ""),
                              ("4", "t", "internal_error", "OSError('cannot identify image file <object object>')")]),
                    label="rejected")


class ExplodesOnGroups(beam.DoFn):
    def process(self, keyed):
        raise ValueError("boom")


def test_a_failed_group_accounts_for_its_records_not_for_references_to_rows_decided_before():
    """unique_id groups a photo's new rows with references to its rows the license stage refused: a group that
    failed named those again (`internal_error`), putting a refused row in the rejections twice."""
    from pipeline.stage import REFERENCE

    group = ("7", [("new", photo("7", source_ref="a.tsv:2")), (REFERENCE, photo("7", source_ref="a.tsv:1"))])
    with local_pipeline() as p:
        out = apply_stage(p | beam.Create([group]), "t", ExplodesOnGroups())
        assert_that(out.rejected | beam.Map(lambda r: (r.source_ref, r.reason)),
                    equal_to([("a.tsv:2", "internal_error")]))


def test_coders_round_trip_and_are_deterministic():
    ph = photo("7", image=b"\x00\xff", scores=(("face", 0.5),), original_width=3, title="Zoë")
    assert PhotoCoder().decode(PhotoCoder().encode(ph)) == ph
    assert PhotoCoder().encode(ph) == PhotoCoder().encode(Photo(**ph.__dict__))
    r = Rejection("7", "s", "r", "d", "1", "f:1")
    assert RejectionCoder().decode(RejectionCoder().encode(r)) == r
    assert beam.coders.registry.get_coder(Photo).is_deterministic()


class FailsOnGroups(beam.DoFn):
    def process(self, keyed):
        raise RuntimeError("unexpected")


def test_a_failed_cogrouped_element_rejects_each_of_its_photos_and_nothing_else():
    """A CoGroupByKey element is (key, {tag: records}): its photos are the records, not its tags
    or the other side's values (here near-duplicate decisions)."""
    with local_pipeline() as p:
        photos = p | "Photos" >> beam.Create([("h1", photo("1")), ("h1", photo("2")), ("h2", photo("3"))])
        decisions = p | "Decisions" >> beam.Create([("h1", ("9", 3, False))])
        grouped = {"photos": photos, "dropped": decisions} | beam.CoGroupByKey()
        out = apply_stage(grouped, "t", FailsOnGroups())
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.reason)),
                    equal_to([("1", "internal_error"), ("2", "internal_error"), ("3", "internal_error")]))


def test_a_failed_raw_line_is_rejected_under_its_file_and_line():
    with local_pipeline() as p:
        out = apply_stage(p | beam.Create([("a.tsv:7", b"x\ty")]), "read", FailsOnGroups())
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.source_ref)), equal_to([("a.tsv:7", "a.tsv:7")]))


def test_every_stage_module_is_named_as_its_stage_and_listed_in_flow_order():
    import importlib
    import pkgutil

    import pipeline.stages
    from pipeline.records import STAGES

    modules = [name for _, name, _ in pkgutil.iter_modules(pipeline.stages.__path__)]
    for name in modules:
        assert name == importlib.import_module(f"pipeline.stages.{name}").STAGE
    assert set(modules) == set(STAGES) - {"read", "blocklist_content"}
    assert importlib.import_module("pipeline.sources.yfcc").STAGE == "read" == STAGES[0]


def test_switched_off_stages_share_one_empty_collection_and_flatten_lists_it_once():
    with local_pipeline() as p:
        nothing = empty(p)
        assert empty(p) is nothing  # one Create([]) per pipeline, however many stages are off
        real = p | beam.Create(["a", "b"])
        # Given twice, a Flatten would emit a collection's elements twice: `flatten` lists each once.
        assert_that(flatten((nothing, real, nothing, real), "Both"), equal_to(["a", "b"]))


def test_the_shared_empty_collection_does_not_keep_its_pipeline_alive():
    import gc
    import weakref

    from apache_beam.options.pipeline_options import PipelineOptions

    pipeline = beam.Pipeline(options=PipelineOptions(LOCAL))
    assert empty(pipeline) is empty(pipeline)
    gone = weakref.ref(pipeline)
    del pipeline
    gc.collect()
    assert gone() is None  # a test session builds hundreds of pipelines: none may stay in memory


@given(st.lists(st.tuples(st.integers(0, 3), st.integers()), min_size=1, max_size=30))
def test_best_and_rest_is_the_first_smallest_and_every_other_value(values):
    from pipeline.stage import best_and_rest

    best, rest = best_and_rest(values, key=lambda value: value[0])
    first = min(range(len(values)), key=lambda i: values[i][0])
    assert best is values[first] and list(rest) == values[:first] + values[first + 1:]


def test_best_and_rest_never_gives_the_best_again_when_its_key_equals_nothing():
    """A key holding a NaN equals no key, not even its own recomputed from a value decoded afresh (a paged group's
    values are): the best was met again as one of the rest, so a photo was kept and rejected as a repeat of itself."""
    from pipeline.stage import best_and_rest

    group = Regrouped(lambda i: (i % 2, float("nan"), f"v{i}"), 5)  # each pass makes new values, as paging does
    best, rest = best_and_rest(group, key=lambda value: (value[0], value[1]))
    assert best[2] == "v0" and [value[2] for value in rest] == ["v1", "v2", "v3", "v4"]
