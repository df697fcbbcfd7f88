"""io/files.matching: globs read as POSIX reads them, on local disk (gs:// in test_cloud_storage.py)."""

import fnmatch
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from pipeline.io.files import files_to_read, matching

# Characters a file name on Linux or in GCS may hold, the glob's own among them.
_NAME_CHARS = "ab.\\*?[]!-"
_PATTERN_TOKENS = ["a", "b", ".", "\\", "-", "*", "?", "[ab]", "[!a]", "[\\]", "[a-b]", "[", "]"]


def test_a_star_matches_a_name_holding_a_backslash(tmp_path):
    # Beam's own glob reads '*' as "anything but / or \": a dump named like this was skipped with every row in it.
    for name in ("a.tsv", "b\\c.tsv", "d[1].tsv", "e?.tsv", "f*.tsv"):
        (tmp_path / name).write_text("x")
    expected = [str(tmp_path / name) for name in ("a.tsv", "b\\c.tsv", "d[1].tsv", "e?.tsv", "f*.tsv")]
    assert matching(str(tmp_path / "*")) == sorted(expected)
    assert matching(str(tmp_path / "*.tsv")) == sorted(expected)
    assert matching(str(tmp_path) + "/") == sorted(expected)  # a folder: its files
    assert matching(str(tmp_path / "b\\c.tsv")) == [str(tmp_path / "b\\c.tsv")]  # no wildcard: the one file


def test_one_star_and_question_mark_stay_in_their_folder_and_two_stars_go_down(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "deep.tsv").write_text("x")
    (tmp_path / "top.tsv").write_text("x")
    assert matching(str(tmp_path / "*.tsv")) == [str(tmp_path / "top.tsv")]
    assert matching(str(tmp_path / "x?deep.tsv")) == []  # '?' is no '/'
    assert matching(str(tmp_path / "**.tsv")) == sorted([str(tmp_path / "top.tsv"), str(tmp_path / "x" / "deep.tsv")])
    assert matching(str(tmp_path / "*" / "*.tsv")) == [str(tmp_path / "x" / "deep.tsv")]
    assert matching(str(tmp_path / "none-*")) == []


def test_a_glob_in_the_working_folder_matches_its_files(tmp_path, monkeypatch):
    # Beam lists a glob's literal prefix's folder, '' for `photos-*.csv.gz`, which it finds no folder: the README's own
    # `--input='photos-*.csv.gz'` matched no file ("--input ... matches no file") unless spelled `./photos-*.csv.gz`.
    (tmp_path / "x").mkdir()
    for name in ("photos-1.csv.gz", "photos-2.csv.gz", "other.tsv", "x/photos-3.csv.gz", "a[b.tsv"):
        (tmp_path / name).write_text("x")
    monkeypatch.chdir(tmp_path)
    assert matching("photos-*.csv.gz") == ["photos-1.csv.gz", "photos-2.csv.gz"]  # spelled as given: relative
    assert matching("photos-?.csv.gz") == ["photos-1.csv.gz", "photos-2.csv.gz"]
    assert matching("[o]ther.tsv") == ["other.tsv"]
    assert matching("**.csv.gz") == ["photos-1.csv.gz", "photos-2.csv.gz", "x/photos-3.csv.gz"]
    assert matching("*/photos-*.csv.gz") == ["x/photos-3.csv.gz"]
    assert matching("./photos-*.csv.gz") == ["./photos-1.csv.gz", "./photos-2.csv.gz"]
    assert matching("none-*") == []
    assert matching("a[b.tsv") == ["a[b.tsv"]  # an unclosed '[' is itself: one file's name
    assert files_to_read("photos-*.csv.gz") == ["photos-1.csv.gz", "photos-2.csv.gz"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("names")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.sets(st.text(alphabet=_NAME_CHARS, min_size=1, max_size=5), min_size=1, max_size=8),
       tokens=st.lists(st.sampled_from(_PATTERN_TOKENS), min_size=1, max_size=5))
@example(names={"?", "a", "b", "["}, tokens=["[", "a", "-", "[ab]"])  # `[a-[ab]`: a backward range; Beam's re failed
def test_matching_in_one_folder_is_fnmatch_on_the_names(folder, names, tokens):
    # Oracle: within one folder (names without '/'), Python's fnmatch: '*' any run, '?' one character,
    # '[...]' a class, an unclosed '[' itself; our regex and Beam's listing must agree with it on every name.
    names = {name for name in names if name not in (".", "..")}
    here = folder / f"case{len(list(folder.iterdir()))}"
    here.mkdir()
    for name in names:
        (here / name).write_text("x")
    pattern = "".join(tokens)
    assume(pattern not in (".", ".."))  # the folder itself, or its parent: no name in it
    expected = sorted(str(here / name) for name in names if fnmatch.fnmatchcase(name, pattern))
    assert matching(f"{here}/{pattern}") == expected


def test_a_hashing_reader_hashes_the_whole_file_once_whatever_its_reader_seeks():
    """verify hashes each file as it reads it (io/files.HashingReader): a Parquet reader reads the footer first and
    skips columns, a tar or CSV reader goes forward, one stopped by a bad record leaves the rest unread; the size and
    sha256 are the file's in every case, and a forward reader costs one pass."""
    import hashlib
    import io
    import random

    from pipeline.io.files import HashingReader

    data = random.Random(7).randbytes(300_000)
    expected = (len(data), hashlib.sha256(data).hexdigest())

    class Counted(io.BytesIO):
        read_bytes = 0

        def read(self, size=-1):
            chunk = super().read(size)
            Counted.read_bytes += len(chunk)
            return chunk

    patterns = {
        "forward": [(0, 1000), (1000, 50_000), (51_000, 10)],
        "footer first, then columns skipped": [(299_000, 1000), (4, 97), (2000, 400), (10_000, 30_000), (299_990, 10)],
        "far jumps, back and forth": [(250_000, 10), (5, 5), (200_000, 1), (0, 300_000)],
        "nothing read": [],
    }
    for name, reads in patterns.items():
        Counted.read_bytes = 0
        reader = HashingReader(Counted(data), gap=64 << 10, chunk=4096)
        for start, size in reads:
            reader.seek(start)
            assert reader.read(size) == data[start:start + size], name
        assert reader.finish() == expected, name
        if name == "forward":
            assert Counted.read_bytes == len(data)  # every byte read once
    reader = HashingReader(Counted(data))
    assert reader.seek(-10, io.SEEK_END) == len(data) - 10 and reader.read() == data[-10:]


def test_only_a_file_named_without_a_wildcard_is_read_when_no_longer_there(tmp_path):
    """Gone, a named file is still listed, so that its reader reports it; a glob matching nothing lists nothing (a
    folder emptied on purpose looks the same)."""
    (tmp_path / "here.tsv").write_text("")
    assert files_to_read(str(tmp_path / "gone.tsv")) == [str(tmp_path / "gone.tsv")]
    assert files_to_read(str(tmp_path / "gone[.tsv")) == [str(tmp_path / "gone[.tsv")]  # unclosed: a literal
    for glob in ("*.gz", "gone?.tsv", "gone[0-9].tsv", "empty/"):
        assert files_to_read(f"{tmp_path}/{glob}") == []
    assert files_to_read(str(tmp_path / "here.tsv")) == [str(tmp_path / "here.tsv")]


def test_parquet_files_named_by_overlapping_patterns_are_read_once(tmp_path):
    """`--ledger=ledger/*,ledger/a.parquet` read a.parquet's rows twice."""
    import apache_beam as beam
    import pyarrow as pa
    import pyarrow.parquet as pq
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.io.files import ReadParquetFiles
    from tests.conftest import local_pipeline

    for name, photo_id in (("a.parquet", "1"), ("b\\c.parquet", "2")):
        pq.write_table(pa.table({"photo_id": [photo_id]}), tmp_path / name)
    with local_pipeline() as p:
        rows = p | ReadParquetFiles([f"{tmp_path}/*.parquet", f"{tmp_path}/a.parquet"])
        assert_that(rows | beam.Map(lambda row: row["photo_id"]), equal_to(["1", "2"]))


def test_a_parquet_file_whose_footer_is_over_its_bound_is_refused_before_pyarrow_parses_it(tmp_path, monkeypatch):
    """pyarrow parses a footer at ~15 times its size before any row: a previous release's shard, a ledger or a cache
    file stating a footer of gigabytes (all outside input) took that much memory before anything could refuse it.
    `read_parquet` (a previous release's ids, its rejections) and ReadParquetFiles (--ledger, --previous_index, once
    the job runs) refuse it from the length its last bytes state."""
    from pipeline.io import parquet_footer
    from pipeline.io.files import ReadParquetFiles, read_parquet
    from pipeline.io.parquet_footer import FooterTooLarge
    from tests.conftest import local_pipeline
    from tests.test_parquet_footer import wide_parquet

    data, footer = wide_parquet()
    (tmp_path / "ledger.parquet").write_bytes(data)
    assert read_parquet(str(tmp_path / "ledger.parquet"), ["photo_id"]).num_rows == 40
    monkeypatch.setattr(parquet_footer, "MAX_FOOTER_BYTES", footer - 1)
    with pytest.raises(FooterTooLarge, match=f"ledger.parquet: its Parquet footer is {footer:,} bytes"):
        read_parquet(str(tmp_path / "ledger.parquet"))
    with pytest.raises(FooterTooLarge, match=f"its Parquet footer is {footer:,} bytes"), local_pipeline() as p:
        _ = p | ReadParquetFiles([f"{tmp_path}/*.parquet"])


def test_a_socket_is_no_regular_file_to_read_regular_file(tmp_path):
    """A Unix socket cannot be opened at all (ENXIO, where a named pipe opens without waiting), so read_regular_file
    raised that OSError instead of its "no regular file": a socket left as a release's manifest.json ended a refresh
    with --previous=latest as "the job failed: [Errno 6] No such device or address"; it is a manifest that cannot be
    read, as a named pipe's is."""
    import json
    import socket

    from pipeline.io.files import read_regular_file
    from pipeline.io.layout import published_releases

    for name in ("r1", "r2"):
        (tmp_path / "releases" / name).mkdir(parents=True)
    (tmp_path / "releases" / "r1" / "manifest.json").write_text(json.dumps({"release": "r1", "files": []}))
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(tmp_path / "releases" / "r2" / "manifest.json"))
        with pytest.raises(ValueError, match="is no regular file"):
            read_regular_file(str(tmp_path / "releases" / "r2" / "manifest.json"))
        unreadable: list[str] = []
        assert published_releases(str(tmp_path), unreadable) == [str(tmp_path / "releases" / "r1")]
        assert unreadable == [str(tmp_path / "releases" / "r2")]


def test_read_regular_file_takes_memory_by_what_it_reads_not_by_its_bound(tmp_path):
    """read_regular_file read a local file as `read(limit + 1)`, which allocates the whole bound before reading: every
    manifest.json read by layout.manifest_of (each release's for --previous=latest, each folder above a run's output)
    took 64 MiB for a file of a few kB. It reads a MiB at a time, as read_bytes does."""
    from pipeline.io.files import read_regular_file
    from tests.conftest import traced_peak

    (tmp_path / "manifest.json").write_text('{"files": []}')
    data, peak = traced_peak(lambda: read_regular_file(str(tmp_path / "manifest.json"), 64 << 20))
    assert data == b'{"files": []}'
    assert peak < 4 << 20, peak
    (tmp_path / "large").write_bytes(b"x" * (3 << 20))
    assert len(read_regular_file(str(tmp_path / "large"), 3 << 20)) == 3 << 20
    with pytest.raises(ValueError, match="is over 3,145,727 bytes"):
        read_regular_file(str(tmp_path / "large"), (3 << 20) - 1)


def test_read_parquet_reads_the_columns_asked_for_not_the_whole_file(tmp_path, monkeypatch):
    """A release's ids (a refresh's changelog, verify --previous) and its datasheet's figures read every shard whole,
    its images with it: for a 1.44-million-image release, tens of GB through the launcher for ids of a few MB. A local
    shard is read by Arrow itself (the bytes this process reads, /proc/self/io), any other through its handle."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io import file_pins, files
    from tests.read_through import ReadThrough

    ids = [str(1000 + i) for i in range(40)]
    images = [hashlib.sha256(str(i).encode()).digest() * 15_625 for i in range(40)]  # 20 MB, incompressible
    pq.write_table(pa.table({"photo_id": ids, "image": images}), tmp_path / "shard.parquet", compression="none")
    size = (tmp_path / "shard.parquet").stat().st_size
    shard = str(tmp_path / "shard.parquet")

    def read_bytes_of(read):
        before = int(Path("/proc/self/io").read_text().split("rchar: ")[1].split()[0])
        result = read()
        return result, int(Path("/proc/self/io").read_text().split("rchar: ")[1].split()[0]) - before

    table, read = read_bytes_of(lambda: files.read_parquet(shard, ["photo_id"]))
    assert table.column(0).to_pylist() == ids and size > 20_000_000 and read < 1_000_000, (size, read)
    table, read = read_bytes_of(lambda: files.read_parquet(shard))
    assert table.column("image").to_pylist() == images and read >= size - 1_000, (size, read)

    read_through = []  # a handle that is no local file (an object store's): read through it, seeking as Arrow asks

    opened = files.open_regular_file
    monkeypatch.setattr(file_pins, "open_regular_file",
                        lambda path: io.BufferedReader(ReadThrough(opened(path), read_through.append), 65536))
    assert files.read_parquet(shard, ["photo_id"]).column(0).to_pylist() == ids
    assert 0 < sum(read_through) < 1_000_000, sum(read_through)


READ_AND_EXIT = """
import io, sys
from pipeline.io import file_pins, files
from tests.read_through import ReadThrough

path = sys.argv[1]
assert files.read_parquet(path, ["photo_id"]).num_rows == 50_000
if sys.argv[2] == "read":
    sys.exit(0)


reads = []


def failing(count):  # a disk or an object store failing part way through the file
    reads.append(count)
    if len(reads) > 3:
        raise OSError("the disk went away")


opened = files.open_regular_file
file_pins.open_regular_file = lambda name: io.BufferedReader(ReadThrough(opened(name), failing), 8192)
try:
    files.read_parquet(path)
except OSError as err:
    print("refused:", err)
"""


def test_a_process_that_read_parquet_files_exits_as_it_would_have(tmp_path):
    """pq.read_table from a Python handle left pyarrow's threads to abort the process at its exit ("terminate called
    without an active exception", status 134): most runs of a command that had read a shard (a refresh, verify
    --previous). Several processes: the abort was not every time."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"photo_id": [str(i) for i in range(50_000)],
                             "image": [hashlib.sha256(str(i).encode()).digest() * 7 for i in range(50_000)]}),
                   tmp_path / "shard.parquet", row_group_size=5_000)
    for how in ("read", "read", "read", "read", "read", "fail"):
        done = subprocess.run([sys.executable, "-c", READ_AND_EXIT, str(tmp_path / "shard.parquet"), how],
                              capture_output=True, timeout=120)
        assert done.returncode == 0, (how, done.returncode, done.stderr[-500:])
    assert b"refused: the disk went away" in done.stdout, done.stdout


def test_read_parquet_refuses_a_column_the_file_does_not_hold(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io.files import read_parquet

    pq.write_table(pa.table({"id": ["7"]}), tmp_path / "shard.parquet")
    with pytest.raises(ValueError, match=r"shard\.parquet: no column photo_id \(its columns: id\)"):
        read_parquet(str(tmp_path / "shard.parquet"), ["photo_id"])
    assert read_parquet(str(tmp_path / "shard.parquet"), ["id"]).to_pylist() == [{"id": "7"}]


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(st.characters(exclude_categories=["Cs"])),
    lambda children: st.lists(children) | st.dictionaries(st.text(max_size=3), children), max_leaves=30)


@given(_JSON_VALUES, st.integers(1, 40))
def test_a_json_file_holds_the_bytes_json_dumps_gave(value, block):
    """Encoded a block at a time (`block` characters, crossing every kind of piece), the bytes are what
    json.dumps(indent=2, sort_keys=True, ensure_ascii=False) and a line end gave."""
    from unittest import mock

    from pipeline.io import files

    with mock.patch.object(files, "_JSON_BLOCK", block):
        written = b"".join(files.json_blocks(value))
    assert written == (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def test_a_json_file_of_a_changelogs_million_ids_is_written_without_a_piece_for_each(tmp_path):
    """json.dumps with an indent joined a list of every piece it wrote, one or more a list's item as Python text: a
    first refresh's changelog.json of 1.44 million ids took ~120 MiB of pieces beside the 30 MB it wrote. The peak of
    writing 200,000 ids is under half of what it was (93 bytes an id); the file holds the same bytes."""
    import sys

    from pipeline.io.files import write_json
    from tests.conftest import traced_peak

    rows = 200_000
    log = {"added": [str(5_000_000_000 + 37 * i) for i in range(rows)], "release": "r2"}
    held = sys.getsizeof(log["added"]) + sum(map(sys.getsizeof, log["added"]))
    entry, peak = traced_peak(lambda: write_json(str(tmp_path), "changelog.json", log))
    data = (tmp_path / "changelog.json").read_bytes()
    assert data == (json.dumps(log, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    assert entry == {"path": "changelog.json", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert peak < 40 * rows, f"{peak:,} bytes at the peak writing the {held:,} of the ids"


def test_a_value_json_cannot_encode_leaves_no_file(tmp_path):
    """A text that is no Unicode (a lone surrogate: an argument of bytes that are no UTF-8, as Python decodes it) is
    refused before the file is opened: no temporary is left where the release is."""
    from pipeline.io.files import write_json

    with pytest.raises(UnicodeEncodeError):
        write_json(str(tmp_path), "manifest.json", {"options": {"blocklist": "/lists/\udcff"}, "files": ["x"] * 100})
    assert list(tmp_path.iterdir()) == []


def test_a_local_path_holding_colon_slash_slash_is_resolved_as_a_local_one(tmp_path, monkeypatch):
    """Whether a path was an object store's was `"://" in path` in a dozen places: a local output `runs/a://b` got the
    object store's best-effort lock (no O_EXCL create), no check of links in its place and one spelling per text (its
    `..` and links not resolved), so two spellings of one folder were two outputs. Local is what Beam says is local."""
    from pipeline.io.files import canonical_path

    (tmp_path / "runs" / "a:" / "b").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "runs" / "a:")
    monkeypatch.chdir(tmp_path)
    assert canonical_path("runs/a://b") == canonical_path("link//b/") == canonical_path("runs/a:/b/../b") == \
        str((tmp_path / "runs" / "a:" / "b").resolve())
    assert canonical_path("gs://bucket//a/./b/../c/") == "gs://bucket/a/c"


def test_parquet_files_read_with_pins_carry_the_pins_of_the_files_their_patterns_name_alone(tmp_path):
    """ReadParquetFiles' steps are pickled into the job graph with their arguments: the pins of every file a check
    read (a whole release's, for a refresh's --ledger) went with each. They carry those of the files their patterns
    name (one read through a link: where it leads), and a file added since under a folder the check read is still
    refused, as it was by the whole."""
    import os

    import apache_beam as beam
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io.file_pins import VERIFIED, ChangedSinceChecked, Pins, canonical
    from pipeline.io.files import ReadParquetFiles, open_regular_file
    from tests.conftest import carried_pins, local_pipeline

    (tmp_path / "ledger").mkdir()
    (tmp_path / "parquet").mkdir()
    for name in ("ledger/a.parquet", "ledger/b.parquet", "parquet/c.parquet", "elsewhere.parquet"):
        pq.write_table(pa.table({"photo_id": [name]}), tmp_path / name)
    os.symlink(tmp_path / "elsewhere.parquet", tmp_path / "ledger" / "linked.parquet")
    pins = Pins(folders={str(tmp_path)})
    for path in sorted(tmp_path.rglob("*.parquet")):
        with open_regular_file(str(path)) as handle:
            pins.add(str(path), handle, VERIFIED)
    p = local_pipeline()
    _ = p | ReadParquetFiles([f"{tmp_path}/ledger/*.parquet"], pins) | beam.Map(lambda row: row)
    carried = carried_pins(p)
    assert len(carried) == 2
    for [held] in carried.values():
        assert set(held.versions) == {canonical(str(tmp_path / name)) for name in (
            "ledger/a.parquet", "ledger/b.parquet", "elsewhere.parquet")}
    p.run().wait_until_finish()  # read as checked, the linked file too
    pq.write_table(pa.table({"photo_id": ["added"]}), tmp_path / "ledger" / "d.parquet")
    with pytest.raises(ChangedSinceChecked, match=r"d\.parquet: added since verify checked its folder"), \
            local_pipeline() as p:
        _ = p | ReadParquetFiles([f"{tmp_path}/ledger/*.parquet"], pins) | beam.Map(lambda row: row)
