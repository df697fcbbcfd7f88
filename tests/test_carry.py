"""Carrying a release over: every field the release stores comes back as it was written."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.io.formats import PARQUET_SCHEMA, write_parquet
from pipeline.release.carry import ReadRelease
from tests.conftest import local_pipeline, photo, real_jpeg

STORED = [name for name in PARQUET_SCHEMA.names]


def test_release_rows_come_back_as_the_photos_written(tmp_path):
    photos = [photo(str(i), image=real_jpeg("coffee.jpg"), width=512, height=341, sha256="ab" * 32,
                    phash="0123456789abcdef", scores=(("c.face", 0.123456), ("s.person", 0.5)),
                    secret="s3cr3t", server_id="65535", extension="jpg", title="Tasse — café",
                    first_release="2026-10" if i else "") for i in range(3)]
    (tmp_path / "parquet").mkdir()
    with (tmp_path / "parquet" / "pass-00000-of-00001.parquet").open("wb") as handle:
        write_parquet(handle, photos)
    want = [tuple(getattr(p.replace(first_release=p.first_release or "2026-09"), name) for name in STORED)
            for p in photos]
    with local_pipeline() as p:
        carried = p | ReadRelease(str(tmp_path), "2026-09")
        assert_that(carried | beam.Map(lambda ph: tuple(getattr(ph, name) for name in STORED)), equal_to(want))


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
