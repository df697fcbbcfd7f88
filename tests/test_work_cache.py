"""The fetch and image stages through the work cache: a second run with the same photos downloads and decodes nothing
and yields the same images; failures are tried again; another max_side is another key."""

from __future__ import annotations

import hashlib
import io

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from pipeline.build import fetch_images
from pipeline.fixtures.static_server import StaticServer, image, status
from pipeline.io.work_cache import cache_files, cache_key, shaping_options
from pipeline.options import PassOptions
from pipeline.stages.image import ImageConfig, normalise
from tests import bad_images
from tests.conftest import local_pipeline, photo, real_jpeg


def options(server: StaticServer, cache: str, *extra: str) -> PassOptions:
    return PipelineOptions([f"--allowed_hosts={server.host}", f"--cache={cache}", "--output=x",
                            "--max_retries=0", *extra]).view_as(PassOptions)


def expected(name: str, photo_id: str, max_side: int) -> tuple[str, str, int]:
    """What fetch + normalisation give for this photo, computed without the pipeline."""
    result = normalise(real_jpeg(name), ImageConfig(max_side=max_side))
    return photo_id, hashlib.sha256(result.jpeg).hexdigest(), max(result.width, result.height)


def two_photos_cached(server: StaticServer, tmp_path) -> tuple[list, list, str]:
    """(photos, what a run keeps of them, the cache) after one run filled the cache with chelsea and coffee."""
    photos = [photo("1", download_url=server.add("/1/1_a.jpg", image(real_jpeg("chelsea.jpg")))),
              photo("2", download_url=server.add("/1/2_a.jpg", image(real_jpeg("coffee.jpg"))))]
    want = [expected("chelsea.jpg", "1", 512), expected("coffee.jpg", "2", 512)]
    cache = str(tmp_path / "cache")
    run_once(photos, options(server, cache), want)
    return photos, want, cache


def run_once(photos, opts, want):
    with local_pipeline() as p:
        out = p | beam.Create(photos) | fetch_images(opts)
        assert_that(out.kept | beam.Map(lambda ph: (ph.photo_id, ph.sha256, max(ph.width, ph.height))),
                    equal_to(want), label="kept")
        assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason)),
                    equal_to([("3", "fetch", "not_found")] if len(photos) == 3 else []), label="rejected")


def test_second_run_takes_everything_from_the_cache(tmp_path):
    with StaticServer() as server:
        photos = [photo("1", download_url=server.add("/1/1_a.jpg", image(real_jpeg("chelsea.jpg")))),
                  photo("2", download_url=server.add("/1/2_a.jpg", image(real_jpeg("coffee.jpg")))),
                  photo("3", download_url=server.add("/1/3_a.jpg", status(404)))]
        want = [expected("chelsea.jpg", "1", 512), expected("coffee.jpg", "2", 512)]
        cache = str(tmp_path / "cache")
        run_once(photos, options(server, cache), want)
        assert cache_files(cache) and server.hits["/1/1_a.jpg"] == 1
        server.hits.clear()
        run_once(photos, options(server, cache), want)  # the same images, from the cache
        assert server.hits["/1/1_a.jpg"] == 0 and server.hits["/1/2_a.jpg"] == 0
        assert server.hits["/1/3_a.jpg"] == 1  # failures are not cached: tried again
        smaller = options(server, cache, "--max_side=256")
        assert cache_key(photos[0], shaping_options(smaller)) != cache_key(photos[0],
                                                                           shaping_options(options(server, cache)))
        run_once(photos[:1], smaller, [expected("chelsea.jpg", "1", 256)])
        assert server.hits["/1/1_a.jpg"] == 1  # another shape of the stored image: fetched again


def test_a_run_resumed_under_other_image_libraries_stores_its_images_again_not_mixing_them(tmp_path, monkeypatch):
    """A run killed, then resumed once its environment was rebuilt (a newer Pillow, within what pyproject allows: a
    worker image rebuilt, `pip install -U`) took every entry the old Pillow had stored: its release mixed images
    encoded and resized by two versions, which no uninterrupted run writes (the score cache keys on the onnxruntime
    release for that reason). The image libraries' versions are in the key: fetched and stored again."""
    import PIL

    from pipeline.io import work_cache

    with StaticServer() as server:
        photos, want, cache = two_photos_cached(server, tmp_path)
        key = cache_key(photos[0], shaping_options(options(server, cache)))
        server.hits.clear()
        monkeypatch.setattr(PIL, "__version__", "11.0.0")
        work_cache._libraries.cache_clear()  # a process of the rebuilt environment
        try:
            assert cache_key(photos[0], shaping_options(options(server, cache))) != key
            run_once(photos, options(server, cache), want)
            assert server.hits["/1/1_a.jpg"] == 1 and server.hits["/1/2_a.jpg"] == 1
        finally:  # the versions read again, as they are, for what runs next in this process
            monkeypatch.undo()
            work_cache._libraries.cache_clear()
        server.hits.clear()
        run_once(photos, options(server, cache), want)  # the same libraries again: from the cache
        assert server.hits["/1/1_a.jpg"] == 0 and server.hits["/1/2_a.jpg"] == 0


def test_temporaries_a_killed_run_left_in_the_cache_are_removed_once_stale(tmp_path):
    """write_atomically's temporaries of a killed run were never removed (nothing reads them: the cache
    lists images-*.parquet). A young one may be another live run's (a cache can be shared): kept."""
    import os
    import time

    from pipeline.io.work_cache import STALE_TEMPORARY_SECONDS, remove_stale_temporaries

    now = time.time()
    for name, age in (("images-a.parquet.tmp-1", STALE_TEMPORARY_SECONDS + 60), ("scores-x-b.parquet.tmp-2", 86400 * 9),
                      ("images-c.parquet.tmp-3", 60), ("images-d.parquet", 86400 * 9)):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (now - age, now - age))
    assert remove_stale_temporaries(str(tmp_path), now) == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images-c.parquet.tmp-3", "images-d.parquet"]
    assert remove_stale_temporaries("", now) == 0  # no cache given


def _rewrite_entries(cache: str, change) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for path in cache_files(cache):
        table = pq.read_table(path)
        pq.write_table(pa.Table.from_pylist([change(row) for row in table.to_pylist()], schema=table.schema), path)


def test_an_entry_whose_image_is_not_the_one_it_records_is_fetched_again(tmp_path):
    """A cache is outside the job: an entry whose image bytes had been swapped went into the dataset under the
    sha256 and size it recorded, and verify passed it. Such an entry, or one whose hashes are no hashes, is a miss."""
    import pyarrow.parquet as pq

    from pipeline.io.work_cache import entry_problem

    with StaticServer() as server:
        photos, want, cache = two_photos_cached(server, tmp_path)
        other = normalise(real_jpeg("rocket.jpg"), ImageConfig()).jpeg
        _rewrite_entries(cache, lambda row: {**row, "image": other} if row["sha256"] == want[0][1] else
                         {**row, "phash": "not a hash"})
        rows = [row for path in cache_files(cache) for row in pq.read_table(path).to_pylist()]
        assert sorted(entry_problem(row) for row in rows) == [
            "its image is not the one whose sha256 it records", "its perceptual hashes are not 16 hexadecimal digits"]
        server.hits.clear()
        run_once(photos, options(server, cache), want)  # the true images, fetched again
        assert server.hits["/1/1_a.jpg"] == server.hits["/1/2_a.jpg"] == 1


def test_a_bad_entry_beside_a_good_one_under_the_same_key_does_not_hide_it(tmp_path):
    """Of several entries under one key (runs that shared a cache), one was chosen by content and only then
    checked: a bad one that sorted first made the photo a miss in every resumed run, beside a good entry."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with StaticServer() as server:
        photos = [photo("1", download_url=server.add("/1/1_a.jpg", image(real_jpeg("chelsea.jpg"))))]
        want = [expected("chelsea.jpg", "1", 512)]
        cache = str(tmp_path / "cache")
        run_once(photos, options(server, cache), want)
        [path] = cache_files(cache)
        good = pq.read_table(path).to_pylist()
        # A second file of the same key's entry with hashes that are no hashes; "0" sorts before any real pHash.
        bad = [{**row, "phash": "0"} for row in good]
        pq.write_table(pa.Table.from_pylist(bad, schema=pq.read_table(path).schema), f"{path}.bad.parquet")
        server.hits.clear()
        run_once(photos, options(server, cache), want)
        assert not server.hits  # the good entry was taken: nothing fetched again


def test_a_cache_shared_with_a_run_allowing_more_hosts_gives_this_run_none_of_their_images(tmp_path):
    """The cache key names the options that shape the bytes, not --allowed_hosts: a run allowing only another host
    kept a photo a wider run had cached, fetched from a host it forbids (alone, host_not_allowed)."""
    with StaticServer() as server:
        photos = [photo("1", download_url=server.add("/1/1_a.jpg", image(real_jpeg("chelsea.jpg"))))]
        cache = str(tmp_path / "cache")
        run_once(photos, options(server, cache), [expected("chelsea.jpg", "1", 512)])
        narrow = PipelineOptions(["--allowed_hosts=only.example.org", f"--cache={cache}", "--output=x",
                                  "--max_retries=0"]).view_as(PassOptions)
        server.hits.clear()
        with local_pipeline() as p:
            out = p | beam.Create(photos) | fetch_images(narrow)
            assert_that(out.kept, equal_to([]), label="kept")
            assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason)),
                        equal_to([("1", "fetch", "host_not_allowed")]), label="rejected")
        assert not server.hits


def test_a_cache_file_that_is_no_parquet_file_or_has_no_keys_makes_misses_not_a_failed_job(tmp_path, caplog):
    """A torn copy or a disk error in one cache file failed every later run that used the cache (ArrowInvalid,
    naming no file). Its entries are misses, and the file is named in the log."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with StaticServer() as server:
        photos, want, cache = two_photos_cached(server, tmp_path)
        [entries] = cache_files(cache)
        with open(entries, "r+b") as handle:
            handle.truncate(100)
        pq.write_table(pa.table({"other": ["x"]}), str(tmp_path / "cache" / "images-nokey.parquet"))
        server.hits.clear()
        run_once(photos, options(server, cache), want)  # fetched again
        assert server.hits["/1/1_a.jpg"] == server.hits["/1/2_a.jpg"] == 1
    unreadable = [record.getMessage() for record in caplog.records if "unreadable" in record.getMessage()]
    assert len(unreadable) == 2 and any(entries in message for message in unreadable)


def _entry_with_image(row: dict, jpeg: bytes) -> dict:
    with Image.open(io.BytesIO(jpeg)) as img:
        width, height = img.size
    return {**row, "image": jpeg, "sha256": hashlib.sha256(jpeg).hexdigest(), "width": width, "height": height}


def test_an_entry_whose_image_the_image_stage_never_writes_is_fetched_again(tmp_path):
    """A cache is outside the job, and its entry's JPEG went into the shards byte for byte, checked only against the
    sha256 and size the entry records itself: an entry carrying EXIF with GPS, an ICC profile, a comment or bytes
    after the image's end, or an image larger than --max_side (a 20,000 px one decoded by every detector), was
    published as it was. Such an entry is a miss: the photo is fetched and stored again."""
    import pyarrow.parquet as pq

    from pipeline.io.work_cache import entry_problem

    with StaticServer() as server:
        photos, want, cache = two_photos_cached(server, tmp_path)
        key = cache_key(photos[0], shaping_options(options(server, cache)))
        [row] = [row for path in cache_files(cache) for row in pq.read_table(path).to_pylist() if row["key"] == key]
        stored = row["image"]
        assert entry_problem(row, max_side=512) is None
        larger = normalise(real_jpeg("coffee.jpg"), ImageConfig(max_side=4096)).jpeg  # 600 x 400
        hostile = {**bad_images.not_as_stored(stored), "larger": larger}
        for name, jpeg in hostile.items():
            with Image.open(io.BytesIO(jpeg)) as img:
                img.load()  # each still decodes: only what it carries besides its pixels, or its size, is wrong
            assert entry_problem(_entry_with_image(row, jpeg), max_side=512) is not None, name
        for name, jpeg in hostile.items():
            _rewrite_entries(cache, lambda entry, jpeg=jpeg: _entry_with_image(entry, jpeg)
                             if entry["key"] == key else entry)
            server.hits.clear()
            with local_pipeline() as p:
                out = p | beam.Create(photos) | fetch_images(options(server, cache))
                assert_that(out.kept | beam.Map(lambda ph: (ph.photo_id, ph.sha256, max(ph.width, ph.height))),
                            equal_to(want), label="kept")
            assert server.hits["/1/1_a.jpg"] == 1, name  # fetched and stored again
            assert server.hits["/1/2_a.jpg"] == 0, name  # the clean entry beside it is still taken




def test_an_unreadable_cache_file_named_with_terminal_escapes_is_named_in_one_printable_log_line(tmp_path, caplog):
    """A refresh's work cache lies under the releases' root (ROOT/work/NAME/cache), which others may write to: a cache
    file there named with terminal escapes (OSC 52, ESC [2J) and a line break was named in the log as listed, and
    Arrow's error quoting its path too (the escapes sent to the terminal, a forged log line of its own). Both are
    shown with each unprintable character escaped as Python writes it in a string."""
    from pipeline.io.work_cache import _read_entries

    path = tmp_path / "images-\x1b]52;c;eA==\x07\x1b[2J\nWARNING forged.parquet"
    path.write_bytes(b"no Parquet file")
    assert list(_read_entries(str(path))) == []
    [message] = [record.getMessage() for record in caplog.records if "unreadable" in record.getMessage()]
    assert message.isprintable(), message
    assert "images-\\x1b]52;c;eA==\\x07\\x1b[2J\\nWARNING forged.parquet is unreadable" in message, message
