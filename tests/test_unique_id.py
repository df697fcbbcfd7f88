import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from pipeline.stages.unique_id import DropRepeatedIds, source_order
from tests.conftest import Regrouped, local_pipeline, peak_bytes_consuming, photo


def test_first_occurrence_by_file_then_numeric_line_wins():
    photos = [photo("7", source_ref="a.tsv:10"), photo("7", source_ref="a.tsv:9"), photo("7", source_ref="b.tsv:1"),
              photo("8", source_ref="a.tsv:11")]
    with local_pipeline() as p:
        out = p | beam.Create(photos) | DropRepeatedIds()
        assert_that(out.kept | beam.Map(lambda ph: (ph.photo_id, ph.source_ref)),
                    equal_to([("7", "a.tsv:9"), ("8", "a.tsv:11")]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.source_ref, r.reason, r.duplicate_of)),
                    equal_to([("a.tsv:10", "repeated_id", "7"), ("b.tsv:1", "repeated_id", "7")]), label="rejected")


def test_a_row_whose_score_is_nan_is_kept_once_and_never_a_repeat_of_itself():
    """Carried rows (`CarriedUniqueIds`) hold a release's scores: one row of an id listed twice with a NaN score was the
    first row, kept, and also rejected as a repeat of itself once the group was paged in afresh (its order key,
    holding the NaN, equalled nothing): a record ending twice."""
    from pipeline.stages.unique_id import _KeepFirst

    def row(i):
        return photo("7", source_ref=f"part-0.parquet:{i + 1}", scores=(("open_nsfw.nsfw", float("nan")),))

    outputs = list(_KeepFirst().process(("7", Regrouped(row, 3))))
    assert outputs[0].source_ref == "part-0.parquet:1"
    assert [(o.value.source_ref, o.value.reason) for o in outputs[1:]] == [
        ("part-0.parquet:2", "repeated_id"), ("part-0.parquet:3", "repeated_id")]


def test_source_order_takes_any_file_name():
    """Only ASCII digits are numbers: a '²' between them (a file named so) was int()-ed and raised,
    and with it the whole repeated-id step; text and number parts stay in step, so keys always compare."""
    refs = ["part1²2.tsv:10", "part1²2.tsv:7", "x:9", "٣:2"]
    keys = {ref: source_order(photo("1", source_ref=ref)) for ref in refs}
    assert sorted(refs, key=keys.get) == ["part1²2.tsv:7", "part1²2.tsv:10", "x:9", "٣:2"]


def test_source_order_compares_numbers_numerically():
    assert source_order(photo("1", source_ref="x:9")) < source_order(photo("1", source_ref="x:10"))


def test_leading_zeros_do_not_make_a_second_photo():
    """'007' and '7' name one Flickr photo: the later row is a repeat, whatever the spelling."""
    photos = [photo("7", source_ref="a.tsv:2"), photo("007", source_ref="a.tsv:1"), photo("70", source_ref="a.tsv:3")]
    with local_pipeline() as p:
        out = p | beam.Create(photos) | DropRepeatedIds()
        assert_that(out.kept | beam.Map(lambda ph: ph.source_ref), equal_to(["a.tsv:1", "a.tsv:3"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.source_ref, r.reason)),
                    equal_to([("a.tsv:2", "repeated_id")]), label="rejected")


def test_a_photo_listed_twenty_thousand_times_is_never_held_in_memory():
    """The group is read twice, never listed (37 MB of tracemalloc peak when it was sorted; well under 2 MB now)."""
    from pipeline.stages.unique_id import _KeepFirst

    group = Regrouped(lambda i: photo("5", source_ref=f"f.tsv:{20_000 - i}"), 20_000)
    assert peak_bytes_consuming(_KeepFirst().process(("5", group))) < 2_000_000
    outputs = list(_KeepFirst().process(("5", group)))
    assert outputs[0].source_ref == "f.tsv:1" and len(outputs) == 20_000
    assert sorted(int(o.value.source_ref.split(":")[1]) for o in outputs[1:]) == list(range(2, 20_001))
    assert {o.value.reason for o in outputs[1:]} == {"repeated_id"}


def test_an_id_a_carried_photo_holds_is_a_repeat_among_the_new_ones():
    """A run carrying a release over (--carry_over) without its ledger fetched a new row for an id the release held
    and wrote both under one id (two parquet rows, two tar members of one key). The carried row wins: it is
    published."""
    shard = "rel1/parquet/pass-00000-of-00002.parquet"
    carried = [("1003", shard), ("1004", "rel1/parquet/pass-00001-of-00002.parquet")]
    new = [photo("1003", source_ref="a.tsv:1"), photo("01003", source_ref="a.tsv:2"), photo("7", source_ref="a.tsv:3"),
           photo("7", source_ref="a.tsv:4")]
    with local_pipeline() as p:
        out = p | "New" >> beam.Create(new) | DropRepeatedIds(p | "Carried" >> beam.Create(carried))
        assert_that(out.kept | beam.Map(lambda ph: ph.source_ref), equal_to(["a.tsv:3"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.source_ref, r.reason, r.duplicate_of, r.detail)), equal_to([
            ("a.tsv:1", "repeated_id", "1003", f"same photo id as {shard} (carried over)"),
            ("a.tsv:2", "repeated_id", "01003", f"same photo id as {shard} (carried over)"),
            ("a.tsv:4", "repeated_id", "7", "same photo id as a.tsv:3")]), label="rejected")


def test_rows_from_two_files_of_one_name_give_the_same_first_row_in_any_order():
    """d1/x.tsv and d2/x.tsv both give refs 'x.tsv:1': the photo kept used to be whichever the runner delivered
    first (two outcomes in four multi-process runs). The content breaks the tie: the same photo whatever the order."""
    rows = [photo("7", source_ref="x.tsv:1", download_url="https://h/brick.jpg", owner_nsid="1@N01"),
            photo("7", source_ref="x.tsv:1", download_url="https://h/grass.jpg", owner_nsid="2@N01")]
    for order in (rows, rows[::-1]):
        with local_pipeline() as p:
            out = p | beam.Create(order, reshuffle=False) | DropRepeatedIds()
            assert_that(out.kept | beam.Map(lambda ph: ph.download_url), equal_to(["https://h/brick.jpg"]))


def test_a_photo_whose_first_row_was_refused_is_not_kept_from_a_later_row():
    """Photo 7 listed first as CC BY-NC (refused by the license stage), then as CC BY: the later row was published
    as CC BY while the rejections said the photo was not. Now the first row wins whichever stage refused it; a
    photo whose refused row comes later keeps its first row (as before), and a tie leaves the refusal standing."""
    from pipeline.records import Rejection

    new = [photo("7", source_ref="a.tsv:2"), photo("8", source_ref="a.tsv:3"), photo("08", source_ref="a.tsv:5"),
           photo("9", source_ref="b.tsv:1")]
    refused = [Rejection("7", "license", "not_cc_by", "CC BY-NC 2.0", "", "a.tsv:1"),
               Rejection("8", "license", "not_cc_by", "CC BY-NC 2.0", "", "a.tsv:4"),
               Rejection("9", "license", "video", "marker=1", "", "b.tsv:1"),
               Rejection("10", "license", "not_cc_by", "CC BY-NC 2.0", "", "a.tsv:6")]
    with local_pipeline() as p:
        out = p | "New" >> beam.Create(new) | DropRepeatedIds(refused=p | "Refused" >> beam.Create(refused))
        assert_that(out.kept | beam.Map(lambda ph: ph.source_ref), equal_to(["a.tsv:3"]), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.source_ref, r.reason, r.detail)), equal_to([
            ("a.tsv:2", "repeated_id", "same photo id as a.tsv:1 (refused)"),
            ("a.tsv:5", "repeated_id", "same photo id as a.tsv:3"),
            ("b.tsv:1", "repeated_id", "same photo id as b.tsv:1 (refused)")]), label="rejected")


def test_a_refused_photo_listed_twenty_thousand_times_is_never_held_in_memory():
    from pipeline.stages.unique_id import NEW, REFUSED, _KeepFirstUnrefused

    group = Regrouped(lambda i: (REFUSED, photo("5", source_ref="f.tsv:1")) if i == 0 else (
        NEW, photo("5", source_ref=f"f.tsv:{i + 1}")),
                      20_000)
    assert peak_bytes_consuming(_KeepFirstUnrefused().process(("5", group))) < 2_000_000
    outputs = list(_KeepFirstUnrefused().process(("5", group)))
    assert len(outputs) == 19_999 and {o.value.reason for o in outputs} == {"repeated_id"}


def test_rows_of_one_glob_come_in_the_order_of_their_paths_below_its_folder():
    """An id's first row is the first by file, the file named by its path below the glob's folder (README). A file
    in a folder is named `./FOLDER/NAME` (`file_label`), and the `./` put every file in a folder before every file
    beside them: under `--input='dumps/**'` a row of `dumps/z/b.tsv` was kept over the same id's row of
    `dumps/a.tsv`, which the base names (`a.tsv` before `b.tsv`) had kept. Files compare by their paths below the
    folder, as the listing orders them: `2026-10/part.tsv`, `a.tsv`, `a/a.tsv`, `ab.tsv`, `z/b.tsv`."""
    from pipeline.sources.input_files import file_label

    paths = ["dumps/z/b.tsv", "dumps/a.tsv", "dumps/2026-10/part.tsv", "dumps/a/a.tsv", "dumps/ab.tsv"]
    refs = [f"{file_label(path, 'dumps/**')}:1" for path in paths]
    ordered = sorted(refs, key=lambda ref: source_order(photo("1", source_ref=ref)))
    assert ordered == ["./2026-10/part.tsv:1", "a.tsv:1", "./a/a.tsv:1", "ab.tsv:1", "./z/b.tsv:1"]
    with local_pipeline() as p:
        out = p | beam.Create([photo("7", source_ref="./z/b.tsv:1"), photo("7", source_ref="a.tsv:2")]) \
            | DropRepeatedIds()
        assert_that(out.kept | beam.Map(lambda ph: ph.source_ref), equal_to(["a.tsv:2"]))
