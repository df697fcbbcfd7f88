import hashlib
from collections import Counter

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from pipeline.io.files import write_atomically
from pipeline.io.sinks import WriteDataset, attribution_csv, shard_count, shard_of
from tests.conftest import local_pipeline, photo, real_jpeg


def test_shard_of_is_stable_and_roughly_uniform():
    # Pinned values: a change here would silently reshuffle every released dataset.
    assert [shard_of(str(i), 7) for i in range(5)] == [
        int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:8], "big") % 7 for i in range(5)]
    counts = Counter(shard_of(str(i), 8) for i in range(8000))
    assert min(counts.values()) > 850 and max(counts.values()) < 1150


def test_shard_count():
    assert shard_count(0, 0, 100) == 1 and shard_count(250, 0, 100) == 3 and shard_count(250, 5, 100) == 5


def test_empty_shards_are_still_written(tmp_path):
    photos = [photo("1", image=real_jpeg(), width=451, height=300)]
    with local_pipeline() as p:
        entries = p | beam.Create(photos) | WriteDataset(str(tmp_path), ["webdataset", "parquet"], 4, 100)
        assert_that(entries | beam.Map(lambda e: (e["format"], e["records"])),
                    equal_to([("webdataset", 1), ("parquet", 1)] + [("webdataset", 0), ("parquet", 0)] * 3))
    assert sorted(p.name for p in (tmp_path / "webdataset").iterdir()) == [
        f"pass-0000{i}-of-00004.tar" for i in range(4)]


def test_write_atomically_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    entry = write_atomically(str(target), lambda handle: handle.write(b"new"))
    assert target.read_bytes() == b"new" and entry == {"bytes": 3, "sha256": hashlib.sha256(b"new").hexdigest()}
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_attribution_csv_sorted_by_numeric_id():
    text = attribution_csv([("10", "b", "", "t", "p", "n", "u"), ("9", "a", "", "t", "p", "n", "u")]).decode()
    assert text.splitlines()[1].startswith("9,") and text.splitlines()[2].startswith("10,")
