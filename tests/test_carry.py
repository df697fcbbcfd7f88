"""Carrying a release over: every field the release stores comes back as it was written."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.io.formats import PARQUET_SCHEMA, write_parquet
from pipeline.records import Photo
from pipeline.release.carry import CheckRows, ReadRelease, UnreadableShard
from tests.conftest import local_pipeline, photo, real_jpeg

STORED = [name for name in PARQUET_SCHEMA.names]


COFFEE = real_jpeg("coffee.jpg")  # 600 x 400


def released(i: int | str, **changes) -> Photo:
    """A photo as a run stores it: its sha256 and size those of its stored JPEG."""
    fields = dict(image=COFFEE, width=600, height=400, sha256=hashlib.sha256(COFFEE).hexdigest(),
                  phash="0123456789abcdef", dhash="fedcba9876543210", scores=(("c.face", 0.123456), ("s.person", 0.5)),
                  secret="s3cr3t", server_id="65535", extension="jpg", title="Tasse — café",
                  first_release="2026-10" if i else "")
    return photo(str(changes.pop("photo_id", i)), **{**fields, **changes})


def carry(folder, photos: list[Photo]):
    """The release's rows through ReadRelease and CheckRows: (kept, rejected) PCollections' contents."""
    (folder / "parquet").mkdir(exist_ok=True)
    with (folder / "parquet" / "pass-00000-of-00001.parquet").open("wb") as handle:
        write_parquet(handle, photos)
    return folder


def test_release_rows_come_back_as_the_photos_written(tmp_path):
    photos = [released(i) for i in range(1, 4)]
    carry(tmp_path, photos)
    want = [tuple(getattr(p.replace(first_release=p.first_release or "2026-09"), name) for name in STORED)
            for p in photos]
    with local_pipeline() as p:
        carried = p | ReadRelease(str(tmp_path), "2026-09") | CheckRows("2026-09")
        assert_that(carried.kept | beam.Map(lambda ph: tuple(getattr(ph, name) for name in STORED)), equal_to(want))
        assert_that(carried.rejected, equal_to([]), label="none rejected")


def test_a_row_no_run_writes_is_a_rejection_of_its_own(tmp_path):
    """A release folder is outside input (whoever can change a shard can reseal its manifest): a row is
    checked as a source's row is, and one that is not what a run writes is rejected, the rest carried."""
    import io

    from PIL import Image

    other = io.BytesIO()
    Image.open(io.BytesIO(COFFEE)).resize((300, 200)).save(other, "JPEG")
    cases = {
        "bad_id": released(1, photo_id="../../evil<b>x</b>"),
        "bad_id ": released(2, photo_id="002"),
        "bad_field": released(3, phash="not-a-hash"),
        "image_mismatch": released(4, sha256="ab" * 32),
        "image_mismatch ": released(5, image=other.getvalue(), sha256=hashlib.sha256(other.getvalue()).hexdigest()),
        "not_an_image": released(6, image=b"GIF89a", sha256=hashlib.sha256(b"GIF89a").hexdigest()),
        "no_image": released(7, image=b"", sha256=hashlib.sha256(b"").hexdigest()),
        # pasted into ATTRIBUTION.csv's links: checked as a source's are
        "bad_field  ": released(8, owner_nsid="../../x?u=https://evil.example/#"),
        "bad_field   ": released(9, page_url="javascript:alert(1)"),
        "bad_field    ": released(11, page_url="https://www.flickr.com/photos/a@N01/12/"),  # another photo's page
    }
    # a generic table's row: its ids and URLs are its own (sources/fields.py)
    own = released(12, source="csv", page_url="https://www.flickr.com/photos/a@N01/13/")
    carry(tmp_path, [*cases.values(), released(10, owner_nsid="1@N01", page_url="https://www.flickr.com/p/1/"), own])
    with local_pipeline() as p:
        carried = p | ReadRelease(str(tmp_path), "2026-09") | CheckRows("2026-09")
        assert_that(carried.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["10", "12"]), label="kept")
        assert_that(carried.rejected | beam.Map(lambda r: (r.stage, r.reason, r.source_ref)), equal_to(
            [("carry", reason.strip(), f"2026-09/parquet/pass-00000-of-00001.parquet:{i}")
             for i, reason in enumerate(cases, start=1)]), label="rejected")
        # A hostile id never becomes the rejection's photo id (it reaches tables and file names): its row does.
        assert_that(carried.rejected | beam.Filter(lambda r: r.source_ref.endswith(":1"))
                    | beam.Map(lambda r: r.photo_id), equal_to(["2026-09/parquet/pass-00000-of-00001.parquet:1"]),
                    label="hostile id")


def test_a_row_whose_image_carries_what_no_run_writes_is_rejected_not_published_again(tmp_path):
    """A carried row's JPEG goes into the next release's shards byte for byte. It was checked for its sha256, size,
    scan structure and decoding, not for what it carries besides its pixels: a resealed release's photo with EXIF and
    GPS (or XMP, an ICC profile, a comment, a zip after its end) was published again, though every run strips them
    and every run's stored image holds only its JFIF header, tables, frame and scan."""
    from tests import bad_images

    hostile = bad_images.not_as_stored(COFFEE)
    rows = [released(i, image=jpeg, sha256=hashlib.sha256(jpeg).hexdigest())
            for i, jpeg in enumerate(hostile.values(), start=1)]
    carry(tmp_path, [*rows, released(99)])
    with local_pipeline() as p:
        carried = p | ReadRelease(str(tmp_path), "2026-09") | CheckRows("2026-09")
        assert_that(carried.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["99"]), label="kept")
        assert_that(carried.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason)), equal_to(
            [(str(i), "carry", "image_not_as_stored") for i in range(1, len(hostile) + 1)]), label="rejected")


def test_rows_a_shard_cannot_decode_are_rejected_by_photo_id_and_the_others_carry_over(tmp_path):
    """A text cell that is no UTF-8 (written past pyarrow's checks): every row of that shard is one
    `unreadable_row` rejection under its own photo id (so the ledger and changelog name it); the
    readable shard carries over."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    carry(tmp_path, [released(1), released(2)])
    (tmp_path / "other").mkdir()
    carry(tmp_path / "other", [released(3), released(4)])
    table = pq.read_table(tmp_path / "other" / "parquet" / "pass-00000-of-00001.parquet")
    data, offsets = pa.py_buffer(b"ok\xff\xfe"), pa.py_buffer(np.array([0, 2, 4], dtype=np.int32).tobytes())
    bad_title = pa.Array.from_buffers(pa.string(), 2, [None, offsets, data])
    pq.write_table(table.set_column(table.schema.get_field_index("title"), "title", bad_title),
                   tmp_path / "parquet" / "pass-00001-of-00002.parquet")
    with local_pipeline() as p:
        carried = p | ReadRelease(str(tmp_path), "2026-09") | CheckRows("2026-09")
        assert_that(carried.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["1", "2"]), label="kept")
        assert_that(carried.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason, r.source_ref)), equal_to(
            [(str(i), "carry", "unreadable_row", f"2026-09/parquet/pass-00001-of-00002.parquet:{i - 2}")
             for i in (3, 4)]), label="rejected")


def test_a_column_of_another_type_than_a_run_writes_is_a_bad_field_of_each_row(tmp_path):
    """verify checks a resealed release's files, ids, images and credits, not each column's type: a shard whose
    date_uploaded (or any text column the credit does not show) was rewritten as numbers passed it, its rows were
    carried as photos, and the refresh failed at its very end in the Parquet writer ("Expected bytes, got a 'int'
    object"); a `source` of lists was an internal_error. Columns no run stores (a `raw` download, a video `marker`)
    are not taken from a row either."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"date_uploaded": pa.array([1, 2], pa.int64()), "source": pa.array([["yfcc"], ["yfcc"]]),
               "original_width": pa.array([600.0, 600.0]), "width": pa.array([600.0, 600.0]),
               "tags": pa.array([b"a", b"b"]), "first_release": pa.array([True, False])}
    for name, values in columns.items():
        (tmp_path / name).mkdir()
        carry(tmp_path / name, [released(1), released(2)])
        path = tmp_path / name / "parquet" / "pass-00000-of-00001.parquet"
        table = pq.read_table(path)
        pq.write_table(table.set_column(table.schema.get_field_index(name), name, values), path)
    extra = tmp_path / "extra"
    extra.mkdir()
    carry(extra, [released(1)])
    path = extra / "parquet" / "pass-00000-of-00001.parquet"
    table = pq.read_table(path)
    pq.write_table(table.append_column("raw", pa.array([b"x" * 1000])).append_column("marker", pa.array([1])), path)
    with local_pipeline() as p:
        for name in columns:
            carried = p | f"Read{name}" >> ReadRelease(str(tmp_path / name), "2026-09") | f"Check{name}" >> CheckRows(
                "2026-09")
            assert_that(carried.kept, equal_to([]), label=f"{name} kept")
            assert_that(carried.rejected | f"Why{name}" >> beam.Map(
                            lambda r: (r.photo_id, r.stage, r.reason, r.detail.split(" ")[0])),
                        equal_to([(str(i), "carry", "bad_field", name) for i in (1, 2)]), label=f"{name} rejected")
        carried = p | "ReadExtra" >> ReadRelease(str(extra), "2026-09") | "CheckExtra" >> CheckRows("2026-09")
        assert_that(carried.kept | "Fields" >> beam.Map(lambda ph: (ph.photo_id, ph.raw, ph.marker)),
                    equal_to([("1", b"", 0)]),
                    label="extra kept")


def test_a_stored_jpeg_of_thousands_of_scans_is_refused_before_it_is_decoded():
    """A carried image is decoded to check it (verify only hashes it): a resealed release's 216 KB progressive JPEG
    of 5,000 scans took 22 s of CPU in the carry check, one of 20,000 minutes, and was carried on. The image stage's
    structure checks refuse such a file from its header; a carried one is refused the same way."""
    import time

    from pipeline.io.image_headers import MAX_JPEG_SCANS
    from pipeline.release.carry import row_problem
    from tests import bad_images

    for side, scans in ((64, MAX_JPEG_SCANS + 1), (2000, 2000)):
        bomb = bad_images.jpeg_scan_bomb(side, scans)
        row = dataclasses.asdict(released(5, image=bomb, sha256=hashlib.sha256(bomb).hexdigest(), width=side,
                                          height=side))
        row["image"] = {"bytes": bomb, "path": "5.jpg"}
        started = time.process_time()  # CPU time: what the refusal costs, which a loaded machine does not stretch
        assert (row_problem(row)[0], time.process_time() - started < 1.0) == ("too_many_scans", True)
    assert row_problem({**row, "image": {"bytes": COFFEE}, "sha256": hashlib.sha256(COFFEE).hexdigest(),
                        "width": 600, "height": 400}) is None


def test_a_shard_cut_short_fails_the_refresh_and_a_failed_read_is_not_a_rejection(tmp_path, monkeypatch):
    """A shard with not even its ids readable (it passed verify, so it was resealed after damage) fails
    the job; a read that fails (a connection reset) fails the bundle, for the runner to retry, instead
    of becoming a rejection that would drop the shard's photos from the release for good."""
    import requests

    from pipeline.io import file_pins

    carry(tmp_path, [released(1)])
    whole = (tmp_path / "parquet" / "pass-00000-of-00001.parquet").read_bytes()
    (tmp_path / "parquet" / "pass-00001-of-00002.parquet").write_bytes(whole[: len(whole) // 2])
    cut_short = r"pass-00001-of-00002\.parquet of the previous release cannot be read"
    with pytest.raises(UnreadableShard, match=cut_short), local_pipeline() as p:
        _ = p | ReadRelease(str(tmp_path), "2026-09") | CheckRows("2026-09")
    (tmp_path / "parquet" / "pass-00001-of-00002.parquet").unlink()

    class Reset(io.RawIOBase):  # the connection drops at the first read of the shard
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return True

        at = 0

        def seek(self, offset, whence=io.SEEK_SET):
            self.at = 4096 + offset if whence == io.SEEK_END else offset  # a file of 4 kB, as far as seeking tells
            return self.at

        def tell(self):
            return self.at

        def readinto(self, buffer):
            raise requests.exceptions.ConnectionError("Connection aborted.")

    monkeypatch.setattr(file_pins, "open_regular_file", lambda path: contextlib.nullcontext(Reset()))
    with pytest.raises(requests.exceptions.ConnectionError, match="Connection aborted"), local_pipeline() as p:
        _ = p | ReadRelease(str(tmp_path), "2026-09") | CheckRows("2026-09")


def test_a_release_without_shards_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no parquet"):
        ReadRelease(str(tmp_path), "x")


def test_every_field_a_photo_needs_is_stored():
    # Only the raw download, the row's origin (file:line) and the video marker are not carried.
    assert {f.name for f in dataclasses.fields(photo())} - set(STORED) == {"raw", "source_ref", "marker"}


def test_a_release_written_with_the_earlier_layout_still_carries_over(tmp_path):
    """Before the HF-loadable layout, scores were a map column and the image plain bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.release.carry import photo_from_row

    schema = pa.schema([("photo_id", pa.string()), ("scores", pa.map_(pa.string(), pa.float64())),
                        ("image", pa.binary())])
    path = tmp_path / "old.parquet"
    pq.write_table(pa.Table.from_pylist([{"photo_id": "5", "scores": [("c.face", 0.25)], "image": b"jpeg"}],
                                        schema=schema), path)
    row = pq.read_table(path).to_pylist()[0]
    carried = photo_from_row(row, "2026-01")
    assert (carried.scores, carried.image, carried.first_release) == ((("c.face", 0.25),), b"jpeg", "2026-01")


def test_a_release_written_before_canonical_license_names_carries_over_with_them():
    """Older releases stored the source's words ("Attribution License", http): carried, the row gets
    the canonical name and https URL, and those words move to the license_source_* fields."""
    from pipeline.release.carry import photo_from_row

    row = {"photo_id": "5", "license_name": "Attribution License",
           "license_url": "http://creativecommons.org/licenses/by/2.0/"}
    carried = photo_from_row(row, "2026-01")
    assert (carried.license_name, carried.license_url) == ("CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/")
    assert (carried.license_source_text, carried.license_source_url) == (
        "Attribution License", "http://creativecommons.org/licenses/by/2.0/")


def test_a_release_written_before_canonical_owner_ids_carries_over_in_flickr_s_spelling(tmp_path):
    """A release published before the sources kept an NSID in Flickr's one spelling holds the source's ("007@n01").
    Carried as it was, one account was two in the new release beside a new row's 7@N01 (its owner_nsid column,
    ATTRIBUTION.csv's creator links), where the datasheet, the owner cap and the takedown list count one. An alias
    and no owner stay as they are."""
    carry(tmp_path, [released(1, owner_nsid="007@n01"), released(2, owner_nsid="7@N01"),
                     released(3, owner_nsid="some_alias"), released(4, owner_nsid="")])
    with local_pipeline() as p:
        carried = p | ReadRelease(str(tmp_path), "2026-09") | CheckRows("2026-09")
        assert_that(carried.kept | beam.Map(lambda ph: (ph.photo_id, ph.owner_nsid)),
                    equal_to([("1", "7@N01"), ("2", "7@N01"), ("3", "some_alias"), ("4", "")]))
        assert_that(carried.rejected, equal_to([]), label="none rejected")


def test_a_carried_photo_is_judged_by_its_place_in_the_release_and_large_stored_images_pass(tmp_path):
    """Its source_ref is its shard and row: two copies of one id are ordered by it (unique_id keeps the
    first), where every carried photo once tied (no source_ref) and the runner's order chose. The pixel
    bound is the run's --max_pixels, not a fixed one: a release built with a large --max_side carries over."""
    import io

    from PIL import Image

    big = io.BytesIO()
    Image.new("RGB", (4200, 4000), (90, 120, 150)).save(big, "JPEG", quality=50)
    jpeg = big.getvalue()
    large = released(3, image=jpeg, width=4200, height=4000, sha256=hashlib.sha256(jpeg).hexdigest())
    carry(tmp_path, [released(1), released(2), large])
    where = "2026-09/parquet/pass-00000-of-00001.parquet"
    with local_pipeline() as p:
        rows = p | ReadRelease(str(tmp_path), "2026-09")
        carried = rows | CheckRows("2026-09")
        assert_that(carried.kept | beam.Map(lambda ph: (ph.photo_id, ph.source_ref)),
                    equal_to([("1", f"{where}:1"), ("2", f"{where}:2"), ("3", f"{where}:3")]), label="kept")
        strict = rows | "Strict" >> CheckRows("2026-09", max_pixels=4200 * 4000 - 1)
        assert_that(strict.rejected | beam.Map(lambda r: (r.photo_id, r.reason)), equal_to([("3", "image_mismatch")]),
                    label="over --max_pixels")


def test_a_run_carrying_a_release_over_writes_each_id_and_each_image_once(demo_release, tmp_path):
    """Without --ledger (a refresh gives it only when the previous release has one), a new row for an id the release
    holds was fetched and written beside the carried copy; with near duplicates off, so was a new id with a carried
    photo's very bytes. Both are now rejections, and every id and stored image is in the dataset once."""
    from collections import Counter

    import pyarrow.parquet as pq

    from pipeline.cli import run
    from pipeline.fixtures.demo_world import DEMO_PHOTOS, demo_image
    from pipeline.fixtures.static_server import StaticServer, image
    from pipeline.fixtures.yfcc_rows import yfcc_line
    from tests.conftest import FAST, encode, real_image

    released_rows = pq.read_table(demo_release / "parquet", columns=["photo_id"]).to_pylist()
    (taken_id, *_), (copied_id, copied_name, *_) = DEMO_PHOTOS[0], DEMO_PHOTOS[1]
    with StaticServer() as server:
        other = encode(real_image("hubble_deep_field.jpg").resize((480, 320)), "JPEG")
        lines = [yfcc_line(1, taken_id, server.add(f"/2/{taken_id}_ab.jpg", image(other))),
                 yfcc_line(2, "5001", server.add("/2/5001_ab.jpg", image(demo_image(copied_name))))]
        (tmp_path / "new.tsv").write_text("\n".join(lines) + "\n")
        stats = run([f"--input={tmp_path / 'new.tsv'}", f"--output={tmp_path / 'out'}",
                     f"--allowed_hosts={server.host}", f"--carry_over={demo_release}", "--near_dup_distance=-1", *FAST])
    kept = pq.read_table(tmp_path / "out" / "parquet", columns=["photo_id", "sha256"]).to_pylist()
    assert stats["accounted"] and len(kept) == len(released_rows) == 10
    assert max(Counter(row["photo_id"] for row in kept).values()) == 1
    assert max(Counter(row["sha256"] for row in kept).values()) == 1
    reasons = {row["photo_id"]: (row["stage"], row["reason"], row["duplicate_of"])
               for row in pq.read_table(tmp_path / "out" / "rejections").to_pylist()}
    assert reasons == {taken_id: ("unique_id", "repeated_id", taken_id),
                       "5001": ("exact_dedup", "duplicate", copied_id)}


def test_a_shard_is_read_a_row_group_at_a_time(tmp_path, monkeypatch):
    """A shard was read whole, then decoded whole into a table and into rows: a shard of 5,000 images (0.5-1 GB)
    took its bytes three times over in each worker thread. Only one row group's rows are held now."""
    import tracemalloc

    import pyarrow as pa

    from pipeline.io import formats
    from pipeline.release.carry import _read_shard

    monkeypatch.setattr(formats, "_ROW_GROUP", 4)
    images = [np.random.default_rng(i).bytes(1 << 20) for i in range(24)]  # 6 row groups of 4 MiB
    carry(tmp_path, [released(i + 1, image=image) for i, image in enumerate(images)])
    shard = str(tmp_path / "parquet" / "pass-00000-of-00001.parquet")
    arrow = []  # Arrow's own memory, which tracemalloc does not see
    tracemalloc.start()
    try:
        seen = []
        for where, row in _read_shard(shard):
            arrow.append(pa.total_allocated_bytes())
            seen.append((where, row["photo_id"], len(row["image"]["bytes"])))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == [(f"pass-00000-of-00001.parquet:{i}", str(i), 1 << 20) for i in range(1, 25)]
    # a row group's images as read (4 MiB) and as rows (4 MiB); read whole, the shard twice over (48 MiB and more)
    assert peak < 12 << 20, peak
    assert max(arrow) < 16 << 20, arrow  # a few row groups at most in Arrow: the whole shard is 24 MiB


def test_rows_of_a_row_group_that_cannot_be_decoded_are_rejected_from_there_on(tmp_path):
    """A shard's readable row groups carry over; from the first that cannot be decoded (a title that is no UTF-8),
    each row is an `unreadable_row` rejection under its photo id and its own row number."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    carry(tmp_path, [released(i) for i in range(1, 7)])
    path = tmp_path / "parquet" / "pass-00000-of-00001.parquet"
    table = pq.read_table(path)
    titles = b"".join([b"ok", b"ok", b"ok", b"\xff\xfe", b"ok", b"ok"])
    offsets = pa.py_buffer(np.array([0, 2, 4, 6, 8, 10, 12], dtype=np.int32).tobytes())
    bad_title = pa.Array.from_buffers(pa.string(), 6, [None, offsets, pa.py_buffer(titles)])
    pq.write_table(table.set_column(table.schema.get_field_index("title"), "title", bad_title), path,
                   row_group_size=2)
    with local_pipeline() as p:
        carried = p | ReadRelease(str(tmp_path), "2026-09") | CheckRows("2026-09")
        assert_that(carried.kept | beam.Map(lambda ph: ph.photo_id), equal_to(["1", "2"]), label="kept")
        assert_that(carried.rejected | beam.Map(lambda r: (r.photo_id, r.reason, r.source_ref)), equal_to(
            [(str(i), "unreadable_row", f"2026-09/parquet/pass-00000-of-00001.parquet:{i}") for i in (3, 4, 5, 6)]),
            label="rejected")


def test_a_shard_stating_a_footer_over_its_bound_fails_the_refresh_unparsed(tmp_path, monkeypatch):
    """A previous release's shard whose footer pyarrow would parse at ~15 times its size (one resealed with a footer of
    gigabytes) is refused from the length its last bytes state, as a shard that cannot be read."""
    import pyarrow.parquet as pq

    from pipeline.io import parquet_footer

    carry(tmp_path, [released(1)])
    footer = pq.ParquetFile(tmp_path / "parquet" / "pass-00000-of-00001.parquet").metadata.serialized_size
    monkeypatch.setattr(parquet_footer, "MAX_FOOTER_BYTES", footer - 1)
    with pytest.raises(UnreadableShard, match=r"pass-00000-of-00001\.parquet of the previous release cannot be read "
                                        rf"\(.*its Parquet footer is {footer:,} bytes"), local_pipeline() as p:
        _ = p | ReadRelease(str(tmp_path), "2026-09") | CheckRows("2026-09")


def test_the_release_readers_carry_the_pins_of_its_shards_alone(demo_release, tmp_path):
    """Each step is pickled into the job graph with its arguments: the pins of every file verify read of a release
    (~0.8 MB for 10,000 files) went with each step reading any of them. The steps reading the shards carry the
    shards' pins, and still refuse a shard added since verify checked the folder."""
    import shutil

    from pipeline.io.file_pins import ChangedSinceChecked, Pins, canonical
    from pipeline.release.carry import CarriedIds, _read_shard
    from pipeline.release.verify import verify
    from tests.conftest import carried_pins

    release = tmp_path / "r1"
    shutil.copytree(demo_release, release)
    pins = Pins()
    assert list(verify(str(release), pins=pins)) == []
    shards = {canonical(str(path)) for path in (release / "parquet").glob("*.parquet")}
    assert shards and len(pins.versions) > len(shards)
    p = local_pipeline()
    _ = p | "Rows" >> ReadRelease(str(release), "r1", pins)
    _ = p | "Ids" >> CarriedIds(str(release), "r1", pins)
    carried = carried_pins(p)
    assert sorted(carried) == ["Ids/Ids", "Rows/Rows"]
    for [held] in carried.values():
        assert set(held.versions) == shards and held.covers(str(release))
    (release / "parquet" / "extra.parquet").write_bytes((release / "ledger").glob("*.parquet").__next__().read_bytes())
    with pytest.raises(ChangedSinceChecked, match="added since verify checked its folder"):
        list(_read_shard(str(release / "parquet" / "extra.parquet"), carried["Rows/Rows"][0]))


def test_a_shard_that_is_no_regular_file_is_refused_not_waited_on_where_no_verify_came_before(tmp_path):
    """A release carried over with no verify before it (`run --carry_over`) had its shards opened as any file: a
    named pipe among them was waited on for good (the job hung), a folder was an IsADirectoryError. They are opened as
    a verified release's are (`open_regular_file`): refused, naming the shard, without waiting."""
    import os

    from pipeline.io.files import _ParquetRows
    from pipeline.release.carry import _read_shard, _shard_ids

    (tmp_path / "parquet").mkdir()
    (tmp_path / "parquet" / "pass-00000-of-00002.parquet").mkdir()
    os.mkfifo(tmp_path / "parquet" / "pass-00001-of-00002.parquet")
    for name in ("pass-00000-of-00002.parquet", "pass-00001-of-00002.parquet"):
        for read in (_read_shard, _shard_ids, _ParquetRows().process):
            with pytest.raises(ValueError, match=f"{name} is no regular file"):
                list(read(str(tmp_path / "parquet" / name)))
