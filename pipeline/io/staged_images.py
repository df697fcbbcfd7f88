"""Stored images written once, to a content-addressed folder of the run's staging area, so that
the shuffles between the image stage and the writers carry only metadata and hashes.

A stored JPEG is ~50-60 KiB and the rest of a Photo ~1 KiB: carried inside every record, the image
crossed the exact-duplicate, near-duplicate, owner-cap and shard shuffles, each a full copy of the
dataset's bytes (billed per GB on Dataflow). Instead `StageImages` writes each image once, right
after it is made, to `<staging>/_images/<sha256>.jpg` and clears `Photo.image`; the bytes are read
back only where pixels are needed: before detection (`ReadBackImages`) and by the shard writers
(`read_staged`). The folder lives in the run's staging folder, so it goes with it: `publish`
leaves it out, a killed run's is removed by the next run, which stages its images again (from the
work cache when there is one).

Writes are idempotent (a retried bundle or an exact duplicate finds the file there) and atomic
(temporary name, then rename), and every read is checked against the sha256 it is named by.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io.filesystems import CompressionTypes, FileSystems

from pipeline.io.files import read_bytes
from pipeline.io.layout import STAGED_IMAGES
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

# The image stage made the staged bytes: losing them afterwards is that stage's product lost.
STAGE = "image"
MISSING, CORRUPT = "staged_image_missing", "staged_image_corrupt"


class StagedImageLost(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def images_folder(staging: str) -> str:
    return FileSystems.join(staging, STAGED_IMAGES)


def staged_path(folder: str, sha256: str) -> str:
    return FileSystems.join(folder, f"{sha256}.jpg")


def _is_staged(photo: Photo) -> bool:
    """Whether the photo's image lives in the staging folder rather than in the record."""
    return not photo.image and bool(photo.sha256)


def stage_image(folder: str, photo: Photo) -> Photo:
    """Writes the photo's stored JPEG under its sha256 (once) and returns the photo without it.
    A photo whose bytes do not match its sha256 (never one the image stage made) keeps them."""
    if not photo.image or hashlib.sha256(photo.image).hexdigest() != photo.sha256:
        return photo
    path = staged_path(folder, photo.sha256)
    if not FileSystems.exists(path):
        temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        with FileSystems.create(temporary, mime_type="image/jpeg",
                                compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            handle.write(photo.image)
        # Same name, same bytes: a concurrent writer of the same image (a retry, an exact duplicate)
        # renames identical content into place.
        FileSystems.rename([temporary], [path])
    return photo.replace(image=b"")


def read_staged(folder: str, photo: Photo) -> Photo:
    """The photo with its stored JPEG read back; raises StagedImageLost when the file is gone or
    its bytes are not those its name promises. A photo that carries its bytes is returned as is."""
    if not _is_staged(photo):
        return photo
    path = staged_path(folder, photo.sha256)
    try:
        image = read_bytes(path)
    except OSError as err:  # FileNotFoundError locally, an IOError of the object store's client
        raise StagedImageLost(MISSING, f"{path}: {type(err).__name__}") from None
    if hashlib.sha256(image).hexdigest() != photo.sha256:
        raise StagedImageLost(CORRUPT, f"{path}: {len(image)} bytes with another sha256")
    return photo.replace(image=image)


def drop_image(photo: Photo) -> Photo:
    """The photo without the bytes `read_staged` gave it (they stay in the staging folder); one
    whose bytes were never staged (they do not match its sha256) keeps them."""
    if photo.image and hashlib.sha256(photo.image).hexdigest() == photo.sha256:
        return photo.replace(image=b"")
    return photo


class StageImages(beam.PTransform):
    """PCollection[Photo] with `image` -> PCollection[Photo] without it, the bytes under `folder`."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self._folder = folder

    def expand(self, photos: beam.PCollection) -> beam.PCollection:
        folder = self._folder
        return photos | "Stage" >> beam.Map(lambda photo: stage_image(folder, photo))


class _ReadBack(beam.DoFn):
    def __init__(self, folder: str, check_only: bool) -> None:
        self._folder, self._check_only = folder, check_only

    def process(self, photo: Photo) -> Iterator:
        try:
            if self._check_only and _is_staged(photo):
                path = staged_path(self._folder, photo.sha256)
                if not FileSystems.exists(path):
                    raise StagedImageLost(MISSING, path)
                yield photo
            else:
                yield read_staged(self._folder, photo)
        except StagedImageLost as lost:
            yield reject(Rejection.of(photo, STAGE, lost.reason, lost.detail))


class ReadBackImages(beam.PTransform):
    """PCollection[Photo] (staged) -> (PCollection[Photo] with `image` again, PCollection[Rejection]).
    With `check_only`, the bytes stay in the folder and only their presence is checked (before the
    writers, which read them back after their shuffle)."""

    def __init__(self, folder: str, check_only: bool = False) -> None:
        super().__init__()
        self._folder, self._check_only = folder, check_only

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_stage(photos, STAGE, _ReadBack(self._folder, self._check_only))
