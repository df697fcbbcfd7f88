import csv
import hashlib
import io
import re
from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.io.files import write_atomically
from pipeline.io.sinks import WriteDataset, shard_count, shard_of
from tests.conftest import local_pipeline, peak_bytes_consuming, photo, real_jpeg


def test_shard_of_is_stable_and_roughly_uniform():
    # Pinned values: a change here would silently reshuffle every released dataset.
    assert [shard_of(str(i), 7) for i in range(5)] == [3, 2, 3, 1, 1]
    assert shard_of("53412345678", 1000) == 617
    counts = Counter(shard_of(str(i), 8) for i in range(8000))
    assert min(counts.values()) > 850 and max(counts.values()) < 1150


def test_shard_count():
    assert shard_count(0, 0, 100) == 1 and shard_count(250, 0, 100) == 3 and shard_count(250, 5, 100) == 5
    # A small dataset still feeds several loader workers, without more shards than images.
    assert [shard_count(n, 0, 5000, 8) for n in (0, 1, 3, 10, 39_999, 40_001)] == [1, 1, 3, 8, 8, 9]


def test_empty_shards_are_still_written(tmp_path):
    photos = [photo("1", image=real_jpeg(), width=451, height=300)]
    with local_pipeline() as p:
        entries = p | beam.Create(photos) | WriteDataset(str(tmp_path), ["webdataset", "parquet"], 4, 100)
        assert_that(entries | beam.Map(lambda e: (e["format"], e["records"])),
                    equal_to([("webdataset", 1), ("parquet", 1)] + [("webdataset", 0), ("parquet", 0)] * 3))
    assert sorted(p.name for p in (tmp_path / "webdataset").iterdir()) == [
        f"pass-0000{i}-of-00004.tar" for i in range(4)]


def test_shards_sized_by_a_given_count_are_those_sized_by_counting(tmp_path):
    # The job hands the writers its tally's count instead of counting again: 9 photos are 8 shards
    # (MIN_DATASET_SHARDS) either way, and the count is what sizes them (2 photos: 2 shards).
    photos = [photo(str(i), image=real_jpeg(), width=451, height=300) for i in range(1, 10)]
    eight = [1, 1, 0, 2, 0, 0, 3, 2]
    expected = {"counted": eight, "given": eight, "wrong": [4, 5]}
    for name, count in (("counted", None), ("given", 9), ("wrong", 2)):
        with local_pipeline() as p:
            given = None if count is None else p | f"Count{name}" >> beam.Create([count])
            entries = p | beam.Create(photos) | WriteDataset(str(tmp_path / name), ["parquet"], 0, 4, count=given)
            shards = len(expected[name])
            assert_that(entries | beam.Map(lambda e: (e["path"], e["records"])),
                        equal_to([(f"parquet/pass-{i:05d}-of-{shards:05d}.parquet", n)
                                  for i, n in enumerate(expected[name])]))


def test_write_atomically_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    entry = write_atomically(str(target), lambda handle: handle.write(b"new"))
    assert target.read_bytes() == b"new" and entry == {"bytes": 3, "sha256": hashlib.sha256(b"new").hexdigest()}
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_write_atomically_never_leaves_the_name_without_a_file(tmp_path, monkeypatch):
    """A kill at any point leaves the old or the new file under the name: the temporary is renamed over
    the old file, never after deleting it (a kill between a delete and a rename left no file)."""
    from apache_beam.io.filesystems import FileSystems

    target = tmp_path / "manifest.json"
    target.write_bytes(b"old")
    seen, rename = [], FileSystems.rename

    def watched_rename(sources, destinations):
        seen.append(target.read_bytes())  # the old file is still there when the new one goes in
        return rename(sources, destinations)

    def refused_delete(paths):
        raise AssertionError(f"deleted {paths} before renaming")

    monkeypatch.setattr(FileSystems, "rename", staticmethod(watched_rename))
    monkeypatch.setattr(FileSystems, "delete", staticmethod(refused_delete))
    write_atomically(str(target), lambda handle: handle.write(b"new"))
    assert seen == [b"old"] and target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_write_atomically_deletes_first_only_where_a_rename_cannot_replace(tmp_path, monkeypatch):
    """A filesystem whose rename refuses an existing destination (os.rename on Windows) still gets the
    file replaced; a rename that fails for any other reason is raised."""
    from apache_beam.io.filesystem import BeamIOError
    from apache_beam.io.filesystems import FileSystems

    rename = FileSystems.rename

    def windows_rename(sources, destinations):
        if any(FileSystems.exists(d) for d in destinations):
            raise BeamIOError("Rename operation failed", {(sources[0], destinations[0]): FileExistsError()})
        return rename(sources, destinations)

    target = tmp_path / "stats.json"
    target.write_bytes(b"old")
    monkeypatch.setattr(FileSystems, "rename", staticmethod(windows_rename))
    write_atomically(str(target), lambda handle: handle.write(b"new"))
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["stats.json"]

    def failing_rename(sources, destinations):
        raise BeamIOError("Rename operation failed", {(sources[0], destinations[0]): PermissionError()})

    fresh = tmp_path / "fresh.json"
    monkeypatch.setattr(FileSystems, "rename", staticmethod(failing_rename))
    with pytest.raises(BeamIOError):  # nothing there to delete first: the failure is the caller's to see
        write_atomically(str(fresh), lambda handle: handle.write(b"x"))
    assert not fresh.exists() and target.read_bytes() == b"new"
    # A rename that fails for another reason over an existing file (permissions, a transient error) is raised
    # with the old file untouched: deleting it first, the fallback would leave no file if the retry failed too.
    with pytest.raises(BeamIOError):
        write_atomically(str(target), lambda handle: handle.write(b"newer"))
    assert target.read_bytes() == b"new"


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(["'", "=", "+", "-", "@", "\t", "\r", "\n", ",", '"', "a", " ", "é",
                                               ";"]), max_size=8))
def test_csv_text_gives_back_exactly_what_csv_cell_was_given(text):
    """The review store is read back and written again at every merge: a note must survive any number of
    round trips ("'=x" lost its quote on the first one). No cell a spreadsheet could make of it starts with a
    formula character: not at its start, nor after a ';' or a tab inside it, where a spreadsheet splitting on
    them (a ';' locale, a row pasted as text) starts a cell ('Bob;=1+1' gave '=1+1')."""
    from pipeline.io.sinks import csv_bytes, csv_text

    row = next(csv.reader(io.StringIO(csv_bytes(["note"], [[text]]).decode("utf-8").split("\n", 1)[1])), [""])
    cell = row[0] if row else ""
    formula = ("=", "+", "-", "@", "\t", "\r")
    assert csv_text(cell) == text and not cell.startswith(formula)
    assert not any(part.startswith(formula) for part in re.split("[;\t]", cell)[1:]), cell


def test_a_line_separator_in_a_cell_is_quoted_so_a_reader_of_lines_keeps_the_row_whole():
    """U+2028 and U+2029 end a line for `str.splitlines()` (and editors): a bare one in a title split the
    ATTRIBUTION.csv row in two for `csv.reader(text.splitlines(keepends=True))`; quoted, the row reads whole."""
    from pipeline.io.sinks import csv_bytes

    for separator in ("\u2028", "\u2029", "\r", "\n"):
        text = csv_bytes(["id", "title"], [["1", f"first{separator}second"], ["2", "plain"]]).decode("utf-8")
        assert list(csv.reader(text.splitlines(keepends=True))) == [
            ["id", "title"], ["1", f"first{separator}second"], ["2", "plain"]], repr(separator)


def test_a_control_character_is_never_written_into_a_csv():
    """ATTRIBUTION.csv and the review CSVs are read in terminals: an ESC in a title set the reader's clipboard
    (OSC 52) or reset the terminal. Tab and line ends stay (quoted); every other C0, DEL and C1 character is
    U+FFFD."""
    from pipeline.io.sinks import csv_bytes

    title = "Sunset\x1b]52;c;cm0gLXJmIH4K\x07\x9b2J\x7f\x00 end\tx\r\ny"
    written = csv_bytes(["title"], [[title]]).decode("utf-8")
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", written)
    cell = next(csv.reader(io.StringIO(written.split("\n", 1)[1])))[0]
    assert cell == "Sunset\ufffd]52;c;cm0gLXJmIH4K\ufffd\ufffd2J\ufffd\ufffd end\tx\r\ny"


def _staged_shard(folder, count: int, size: int):
    """`count` photos whose distinct `size`-byte images are staged under `folder`, the photos without them."""
    from pipeline.io.staged_images import stage_image

    photos = []
    for index in range(count):
        image = index.to_bytes(4, "big") * (size // 4)
        full = photo(str(index + 1), image=image, sha256=hashlib.sha256(image).hexdigest(), width=512, height=384)
        photos.append(stage_image(str(folder), full))
    return photos


@pytest.mark.parametrize("reads_ahead", [False, True])
def test_a_shard_is_written_from_one_read_of_each_image_and_never_held_whole(tmp_path, monkeypatch, reads_ahead):
    """Every format of a dataset shard comes from one read of each staged image, a few images in memory at a
    time (the writers used to list the shard's images: 5,000 x ~60 KiB per shard), with the bytes the
    format writers give for the listed photos; also with reads in flight on threads, as on an object store."""
    from pipeline.io import formats, sinks, staged_images

    size, count = 192 * 1024, 200  # 37.5 MiB of images
    staged = _staged_shard(tmp_path / "images", count, size)
    reads = Counter()
    read_staged = staged_images.read_staged

    def counted_read(folder, staged_photo):
        reads[staged_photo.photo_id] += 1
        return read_staged(folder, staged_photo)

    monkeypatch.setattr(sinks, "read_staged", counted_read)
    if reads_ahead:  # what an object-store output gets (its path has "://"), on local files here
        monkeypatch.setattr(sinks, "read_ahead_depth", lambda output: sinks.READ_AHEAD)
    wanted = ["webdataset", "tfrecord"]  # Parquet holds a row group (512 photos) by design
    outputs = [(name, formats.WRITERS[name][0], formats.WRITERS[name][1]) for name in wanted]
    shard = sinks._WriteShard(str(tmp_path / "out"), "pass", outputs, sinks.photo_order,
                              sinks._with_staged_image(str(tmp_path / "images")))
    shuffled = list(reversed(staged))
    entries = []
    peak = peak_bytes_consuming(entries.append(entry) or entry for entry in shard.process((0, shuffled), 1))
    # The reads in flight, the photo being written and what the writers hold for it (a TFRecord frame, its copies).
    ahead = sinks.READ_AHEAD if reads_ahead else 1
    assert peak < (ahead + 6) * size, f"{peak / size:.1f} images held at once"
    assert reads == {str(index + 1): 1 for index in range(count)}
    listed = [read_staged(str(tmp_path / "images"), p) for p in sorted(staged, key=sinks.photo_order)]
    for name, entry in zip(wanted, entries, strict=True):
        handle = io.BytesIO()
        formats.write_all(formats.WRITERS[name][1](handle), listed)
        written = (tmp_path / "out" / entry["path"]).read_bytes()
        assert written == handle.getvalue() and entry["records"] == count
        assert entry["sha256"] == hashlib.sha256(written).hexdigest()


def test_a_staged_image_gone_fails_the_shard_and_publishes_none_of_its_files(tmp_path):
    from pipeline.io import formats, sinks
    from pipeline.io.staged_images import StagedImageLost, staged_path

    staged = _staged_shard(tmp_path / "images", 40, 4096)
    (tmp_path / "images" / staged_path("", staged[30].sha256)).unlink()
    outputs = [(name, *formats.WRITERS[name]) for name in ("webdataset", "parquet", "tfrecord")]
    shard = sinks._WriteShard(str(tmp_path / "out"), "pass", outputs, sinks.photo_order,
                              sinks._with_staged_image(str(tmp_path / "images")))
    with pytest.raises(StagedImageLost):
        list(shard.process((0, staged), 1))
    # Temporary files may stay (a retry writes new ones); no file under a shard's name.
    assert not [path for path in (tmp_path / "out").rglob("pass-*") if ".tmp-" not in path.name]


SHARD_MEMORY_BUDGET = 256 * 1024 * 1024  # what one shard's sort may hold, at its full size


@pytest.mark.parametrize("table", ["ledger", "index", "rejections"])
def test_a_full_ledger_index_or_rejections_shard_sorts_within_its_memory_budget(tmp_path, table):
    """Each shard's rows are sorted by one worker in memory: the bytes per row measured here, times the rows a
    shard may hold, stay within a worker's share (the ledger and index held 5,000,000 rows: ~1.3 GB)."""
    from pipeline.io import formats, sinks
    from pipeline.records import Rejection
    from pipeline.stages.ledger import entry_of_rejection
    from tests.conftest import Regrouped

    release, rows = "2026-12-01", 20_000

    def make(index: int):
        photo_id = str(53_000_000_000 + index * 7919 % rows)
        rejection = Rejection(photo_id=photo_id, stage="detect", reason="human",
                              detail=f"fused 0.91 (centerface.face 0.88, nanodet_person.person 0.{index % 97:02d})",
                              source_ref=f"yfcc100m_dataset-7.bz2:{index}")
        if table == "ledger":
            entry = entry_of_rejection(rejection, release)
            assert entry is not None  # for the type checker: a detect rejection is a permanent one, entered
            return entry[1]
        if table == "index":
            return (f"{index * 2654435761 % 2**64:016x}", photo_id, f"{index * 40503 % 2**64:016x}")
        return rejection

    writers = {"ledger": (formats.LedgerWriter, lambda entry: int(entry["photo_id"]), sinks.INDEX_ROWS_PER_SHARD),
               "index": (formats.IndexWriter, lambda entry: (entry[1], entry[0]), sinks.INDEX_ROWS_PER_SHARD),
               "rejections": (formats.RejectionWriter, sinks.rejection_order, sinks.REJECTIONS_PER_SHARD)}
    write, order, per_shard = writers[table]
    shard = sinks._WriteShard(str(tmp_path), table, [(table, "parquet", write)], order)
    peak = peak_bytes_consuming(shard.process((0, Regrouped(make, rows)), 1))
    assert peak / rows * per_shard < SHARD_MEMORY_BUDGET, f"{peak / rows:.0f} bytes per row"


def test_files_written_side_by_side_are_renamed_only_when_the_block_ends_without_an_error(tmp_path):
    from contextlib import ExitStack

    from pipeline.io.files import atomic_file

    old = tmp_path / "a.tar"
    old.write_bytes(b"old")
    with pytest.raises(OSError, match="read failed"), ExitStack() as files:
        a, b = (files.enter_context(atomic_file(str(tmp_path / name))) for name in ("a.tar", "b.parquet"))
        a.handle.write(b"new a")
        b.handle.write(b"new b")
        raise OSError("read failed")
    assert old.read_bytes() == b"old" and not (tmp_path / "b.parquet").exists()
    with ExitStack() as files:
        a, b = (files.enter_context(atomic_file(str(tmp_path / name))) for name in ("a.tar", "b.parquet"))
        a.handle.write(b"new a")
        b.handle.write(b"new b")
    assert old.read_bytes() == b"new a" and (tmp_path / "b.parquet").read_bytes() == b"new b"
    assert a.entry == {"bytes": 5, "sha256": hashlib.sha256(b"new a").hexdigest()}


def test_rejections_equal_but_for_the_photo_they_duplicate_sort_one_way():
    """The shard's sort key left out duplicate_of: two such rejections kept the order the runner gave them."""
    from pipeline.io.sinks import rejection_order
    from pipeline.records import Rejection

    a = Rejection("5", "near_dedup", "near_duplicate", "distance 2", duplicate_of="3", source_ref="x:1")
    b = Rejection("5", "near_dedup", "near_duplicate", "distance 2", duplicate_of="4", source_ref="x:1")
    assert sorted([a, b], key=rejection_order) == sorted([b, a], key=rejection_order) == [a, b]
