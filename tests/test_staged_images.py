"""Stored images staged once by sha256 and read back where pixels are needed (io/staged_images.py)."""

from __future__ import annotations

import hashlib

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing.util import assert_that, equal_to

from pipeline.io import staged_images
from pipeline.io.staged_images import (
    CORRUPT,
    MISSING,
    ReadBackImages,
    StagedImageLost,
    drop_image,
    read_staged,
    stage_image,
    staged_path,
)
from pipeline.records import Photo
from tests.conftest import local_pipeline, real_jpeg


def normalised(photo_id: str = "1", image: bytes | None = None) -> Photo:
    image = real_jpeg() if image is None else image
    return Photo(photo_id, image=image, sha256=hashlib.sha256(image).hexdigest(), source_ref=f"m.tsv:{photo_id}")


def test_an_image_is_staged_once_under_its_sha256_and_the_photo_leaves_without_it(tmp_path):
    photo = normalised()
    staged = stage_image(str(tmp_path), photo)
    assert staged == photo.replace(image=b"")
    assert (tmp_path / f"{photo.sha256}.jpg").read_bytes() == photo.image
    assert [p.name for p in tmp_path.iterdir()] == [f"{photo.sha256}.jpg"]  # no temporary file left


def test_a_retry_or_an_exact_duplicate_does_not_write_again(tmp_path, monkeypatch):
    photo = normalised()
    stage_image(str(tmp_path), photo)
    created = []
    monkeypatch.setattr(FileSystems, "create", lambda *args, **kwargs: created.append(args))
    assert stage_image(str(tmp_path), normalised("2")) == normalised("2").replace(image=b"")
    assert created == []


def test_read_back_gives_the_same_bytes(tmp_path):
    photo = normalised()
    assert read_staged(str(tmp_path), stage_image(str(tmp_path), photo)) == photo


def test_bytes_that_do_not_match_their_sha256_are_never_staged_and_stay_in_the_photo(tmp_path):
    odd = normalised().replace(sha256="0" * 64)
    assert stage_image(str(tmp_path), odd) == odd
    assert drop_image(odd) == odd
    assert list(tmp_path.iterdir()) == []
    assert read_staged(str(tmp_path), odd) == odd  # carries its bytes: nothing to read


def test_a_missing_or_altered_staged_image_is_named_as_such(tmp_path):
    photo = stage_image(str(tmp_path), normalised())
    path = staged_path(str(tmp_path), photo.sha256)
    FileSystems.delete([path])
    with pytest.raises(StagedImageLost) as missing:
        read_staged(str(tmp_path), photo)
    assert missing.value.reason == MISSING
    (tmp_path / f"{photo.sha256}.jpg").write_bytes(b"other bytes")
    with pytest.raises(StagedImageLost) as corrupt:
        read_staged(str(tmp_path), photo)
    assert corrupt.value.reason == CORRUPT


@pytest.mark.parametrize("check_only", [False, True])
def test_read_back_rejects_a_photo_whose_staged_image_is_gone_rather_than_failing(tmp_path, check_only):
    folder = str(tmp_path)
    here, gone = stage_image(folder, normalised("1")), stage_image(folder, normalised("2", real_jpeg("coffee.jpg")))
    FileSystems.delete([staged_path(folder, gone.sha256)])
    with local_pipeline() as p:
        result = p | beam.Create([here, gone]) | ReadBackImages(folder, check_only=check_only)
        assert_that(result.kept | "Kept" >> beam.Map(lambda photo: (photo.photo_id, len(photo.image) > 0)),
                    equal_to([("1", not check_only)]), label="kept")
        assert_that(result.rejected | "Why" >> beam.Map(lambda r: (r.photo_id, r.stage, r.reason)),
                    equal_to([("2", staged_images.STAGE, MISSING)]), label="rejected")
