"""Carry a previous release's images into the next one without refetching: its Parquet shards
hold every field and the stored JPEG, so each row becomes the `Photo` it was when released.

Carried photos then go through the checks that can change over time — license re-verification,
the takedown blocklist, decontamination, and detection again when the detectors or their thresholds
changed (`--redetect`) — and skip those whose answer cannot change (fetch, normalisation, near duplicates
among themselves).

A release is read back as outside input: a folder on shared storage that its manifest's checksums
protect only against accidents (whoever can change a shard can reseal the manifest). So each row is
checked as a source's row is, before it becomes a photo (`CheckRows`, stage "carry"): an id in its one
spelling, hashes of the right shape, a stored JPEG whose sha256 and size are the row's, that holds nothing the image
stage never writes (EXIF, GPS, a comment, bytes after its end) and that decodes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import posixpath
import warnings
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from PIL import Image

from pipeline.flickr.licenses import canonical_license
from pipeline.io.file_pins import UNCHECKED, VERIFIED, Pins
from pipeline.io.files import matching
from pipeline.io.formats import image_bytes, scores_from_entries
from pipeline.io.image_headers import ImageRejected, check_jpeg_structure
from pipeline.io.parquet_footer import check_footer
from pipeline.io.stored_jpeg import stored_jpeg_problem
from pipeline.records import (
    FLICKR_SOURCES,
    HASH16,
    NOT_STORED,
    SHA256_HEX,
    BadPhotoId,
    Photo,
    Rejection,
    canonical_owner_id,
    canonical_photo_id,
)
from pipeline.sources import fields
from pipeline.sources.fields import BadField
from pipeline.stage import StageOutput, apply_stage, reject
from pipeline.stages.image import ImageConfig

STAGE = "carry"

# What a row gives a photo: every field a run stores, not the raw download, the row's origin or the video marker.
_FIELDS = {f.name for f in dataclasses.fields(Photo)} - NOT_STORED
# The fields a run writes as text and as whole numbers (a release's Parquet schema, formats.PARQUET_SCHEMA).
_TEXT = frozenset(f.name for f in dataclasses.fields(Photo) if f.type == "str") & _FIELDS
_WHOLE = frozenset(f.name for f in dataclasses.fields(Photo) if f.type == "int") & _FIELDS


def release_shards(release: str, pins: Pins = UNCHECKED) -> list[str]:
    """The release's Parquet shards, listed when the job is built (a release never changes); with `pins` (what
    verify read, `file_pins`), those it read that are gone since too, whose read then says so."""
    pattern = FileSystems.join(release, "parquet", "*.parquet")
    return pins.listed(pattern, matching(pattern))


def release_name(release: str) -> str:
    """A release's name, its folder's: what carried rows' source_ref begin with (`NAME/parquet/SHARD:ROW`)."""
    return release.rstrip("/").rsplit("/", 1)[-1]


def photo_from_row(row: dict, release_name: str) -> Photo:
    values = {name: value for name, value in row.items() if name in _FIELDS and value is not None}
    values["scores"] = scores_from_entries(row.get("scores"))
    values["image"] = image_bytes(row.get("image"))
    values["first_release"] = row.get("first_release") or release_name
    # A release written before owner ids were canonical holds the source's spelling ("007@n01"): carried as it was,
    # one account was two in the new release (a new row's 7@N01 beside it), in its owner_nsid column and the
    # creator links of ATTRIBUTION.csv, where the datasheet, the owner cap and the takedown list count one.
    if isinstance(values.get("owner_nsid"), str):
        values["owner_nsid"] = canonical_owner_id(values["owner_nsid"])
    if "license_source_text" not in row:
        values.update(_canonical_license_fields(row))
    return Photo(**values)


def _canonical_license_fields(row: dict) -> dict[str, str]:
    """A release written before license names were canonical stored the source's words as
    license_name/url: they become the source text, and the row gets the canonical name and URL."""
    name, url = row.get("license_name") or "", row.get("license_url") or ""
    canonical_name, canonical_url = canonical_license(name, url)
    return {"license_name": canonical_name, "license_url": canonical_url,
            "license_source_text": name, "license_source_url": url}


@dataclasses.dataclass(frozen=True)
class UnreadableRow:
    """In place of a row its shard holds but cannot give (a text cell that is no UTF-8 in it): the
    row's photo id as the shard gives it, and why."""

    photo_id: object
    why: str


class UnreadableShard(ValueError):
    """A shard of the previous release that is no Parquet at all (cut short): not even its ids can be read."""


def _read_shard(path: str, pins: Pins = UNCHECKED) -> Iterator[tuple[str, dict | UnreadableRow]]:
    """(where, row) for each row of a shard; `where` ("SHARD:ROW") names a row whose id cannot.

    Read a row group at a time (a shard of 5,000 images read whole was its bytes three times over, per worker
    thread: the file, the table and its rows). A read that fails (a connection reset) fails the bundle, which the
    runner retries, never a rejection (`_Watched` tells it from a decoding failure). A row group whose rows cannot
    be decoded but whose ids can gives one UnreadableRow per row from it to the shard's end, which CheckRows rejects
    by photo id (so the ledger and the changelog name each); a shard without even readable ids fails the refresh (it
    passed `verify` against its manifest, so it was resealed after damage: refresh from an intact copy).

    `pins`: the versions verify read (`file_pins`); a shard that is not the one verify read (replaced or written
    since, added or gone) fails the refresh, before its first row and again once its last is read (a write in place
    meanwhile): a failure of the bundle, so that none of its rows is used."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    with pins.open(path, VERIFIED) as remote:
        yield from _shard_rows(remote, name)
        pins.check(path, remote, VERIFIED)


def _shard_rows(remote: Any, name: str) -> Iterator[tuple[str, dict | UnreadableRow]]:
    """`_read_shard`'s rows of the shard open in `remote`."""
    watched = _Watched(remote)
    try:
        check_footer(watched)
        shard = pq.ParquetFile(watched, pre_buffer=False, buffer_size=_READ_CHUNK)
    except (OSError, ValueError, pa.ArrowException) as err:
        watched.raise_a_failed_read()
        raise UnreadableShard(f"{name} of the previous release cannot be read ({_why(err)}); refresh from an "
                              "intact copy of the release") from None
    done = 0
    for group in range(shard.num_row_groups):
        try:
            rows = shard.read_row_group(group).to_pylist()
        except (OSError, ValueError, pa.ArrowException) as err:
            watched.raise_a_failed_read()
            yield from _unreadable_rows(shard, watched, group, done, name, _why(err))
            return
        for row in rows:
            done += 1
            yield f"{name}:{done}", row
        del rows  # before the next group is decoded, not after


_READ_CHUNK = 1 << 20


class _Watched(io.RawIOBase):
    """A file handle whose failed reads are remembered: pyarrow reports a read that failed as it reports a page it
    cannot decode (an OSError either way), and only the second may become a rejection."""

    def __init__(self, handle: Any) -> None:
        super().__init__()
        self._handle = handle
        self.failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._handle.seekable())

    def tell(self) -> int:
        return self._handle.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._handle.read(len(buffer))
        except BaseException as err:
            self.failure = err
            raise
        buffer[:len(data)] = data
        return len(data)

    def raise_a_failed_read(self) -> None:
        if self.failure is not None:
            raise self.failure


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err)[:300]}"


def _unreadable_rows(shard: pq.ParquetFile, watched: _Watched, group: int, done: int, name: str,
                     why: str) -> Iterator[tuple[str, UnreadableRow]]:
    """An UnreadableRow for each row of row groups `group` onwards, read by its id alone."""
    try:
        ids = shard.read_row_groups(range(group, shard.num_row_groups), columns=["photo_id"]).column(
            "photo_id").to_pylist()
    except (OSError, ValueError, KeyError, pa.ArrowException):
        watched.raise_a_failed_read()
        raise UnreadableShard(f"{name} of the previous release cannot be read ({why}); refresh from an intact copy "
                              "of the release") from None
    for index, photo_id in enumerate(ids, start=done + 1):
        yield f"{name}:{index}", UnreadableRow(photo_id, why)


def row_problem(row: dict, max_pixels: int = ImageConfig.max_pixels) -> tuple[str, str] | None:
    """(reason, detail) when a release row is not one a run writes, else None. `max_pixels`: the run's
    --max_pixels, the most any image it decodes may hold (a stored one is never larger than its source)."""
    try:
        if canonical_photo_id(row.get("photo_id")) != row.get("photo_id"):
            return "bad_id", f"photo id {str(row.get('photo_id'))[:40]!r} is not in its one spelling"
    except BadPhotoId as err:
        return "bad_id", str(err)
    # verify checks a release's files, ids, images and credits, not each column's type: a text column of numbers
    # passed it and failed the refresh at its very end, in the Parquet writer
    for name in sorted(row.keys() & (_TEXT | _WHOLE)):
        value = row[name]
        if value is not None and type(value) is not (str if name in _TEXT else int):
            written = "text" if name in _TEXT else "whole number"
            return "bad_field", f"{name} is a {type(value).__name__}, not the {written} a run writes"
    for name, shape, digits in (("phash", HASH16, 16), ("dhash", HASH16, 16), ("sha256", SHA256_HEX, 64)):
        value = row.get(name)
        if value and not (isinstance(value, str) and shape.fullmatch(value)):
            return "bad_field", f"{name} {str(value)[:70]!r} is not {digits} lowercase hexadecimal digits"
    if not row.get("sha256") or not row.get("phash"):
        return "bad_field", "no sha256 or pHash"
    try:  # pasted into ATTRIBUTION.csv's links, as a source's rows are checked
        fields.owner_id(_text_or_empty(row.get("owner_nsid")), "owner_nsid")
        fields.page_url(_text_or_empty(row.get("page_url")), "page_url")
        if row.get("source") in FLICKR_SOURCES:  # a generic table's ids and URLs are its own (fields.py)
            fields.names_this_photo(row["photo_id"], _text_or_empty(row.get("page_url")),
                                    _text_or_empty(row.get("fetched_url")))
    except BadField as err:
        return err.reason, str(err)
    jpeg = image_bytes(row.get("image")) if isinstance(row.get("image"), dict | bytes | None) else b""
    if not jpeg:
        return "no_image", "the row holds no image"
    if hashlib.sha256(jpeg).hexdigest() != row["sha256"]:
        return "image_mismatch", "the stored image's sha256 is not the row's"
    return _image_problem(jpeg, row, max_pixels)


def _text_or_empty(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else repr(value)[:40]


def _image_problem(jpeg: bytes, row: dict, max_pixels: int) -> tuple[str, str] | None:
    try:  # before Pillow: a resealed 216 KB JPEG of 5,000 scans took 22 s to decode here, 20,000 minutes
        check_jpeg_structure(jpeg)
    except ImageRejected as rejected:
        return rejected.reason, rejected.detail
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as img:
                if img.width * img.height > max_pixels:
                    return "image_mismatch", f"{img.width}x{img.height} is over --max_pixels {max_pixels}"
                if (img.width, img.height) != (row.get("width"), row.get("height")):
                    return "image_mismatch", f"the image is {img.width}x{img.height}, the row says " \
                                             f"{str(row.get('width'))[:12]}x{str(row.get('height'))[:12]}"
                img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return "not_an_image", f"{type(err).__name__}: {str(err)[:200]}"
    # Carried byte for byte into the next release's shards: a resealed row's JPEG carrying EXIF with GPS, XMP, an ICC
    # profile, a comment or bytes after its end was published again, though every run strips them.
    written = stored_jpeg_problem(jpeg)
    if written is not None:
        return "image_not_as_stored", f"the stored image is no JPEG the image stage writes: {written}"
    return None


class _CheckRow(beam.DoFn):
    def __init__(self, release_name: str, max_pixels: int) -> None:
        self._release, self._max_pixels = release_name, max_pixels

    def process(self, item: tuple[str, dict | UnreadableRow]) -> Iterator:
        where, row = item
        ref = f"{self._release}/parquet/{where}"
        if isinstance(row, UnreadableRow):
            yield reject(Rejection(_id_or(row.photo_id, ref), STAGE, "unreadable_row", row.why, "", ref))
            return
        problem = row_problem(row, self._max_pixels)
        if problem is None:
            try:
                # The row's place is its source_ref: the order in which copies of one id are judged
                # (unique_id keeps the first), and where a rejection of it points.
                yield photo_from_row(row, self._release).replace(source_ref=ref)
                return
            except (TypeError, ValueError, KeyError) as err:  # a field of another type than a run writes
                problem = ("bad_field", f"{type(err).__name__}: {str(err)[:200]}")
        yield reject(Rejection(_id_or(row.get("photo_id"), ref), STAGE, problem[0], problem[1][:300], "", ref))


def _id_or(shown: object, ref: str) -> str:
    """The row's photo id where it is a plain number; else the row's place (a hostile id never becomes
    a rejection's photo id: it reaches tables and file names)."""
    return shown if isinstance(shown, str) and shown.isascii() and shown.isdigit() else ref


class ReadRelease(beam.PTransform):
    """PBegin -> PCollection[tuple[str, dict]]: every row of a finished release, as (where, row); the rows
    a job counts as its carried input. `CheckRows` makes them photos."""

    def __init__(self, release: str, release_name: str, pins: Pins = UNCHECKED) -> None:
        super().__init__()
        self._shards = release_shards(release, pins)
        if not self._shards:
            raise ValueError(f"{release} has no parquet/*.parquet shards to carry over")
        # the shards' entries alone: the transform is pickled into the job graph with them (`Pins.only`)
        self._name, self._pins = release_name, pins.only(self._shards)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (pbegin
                | "Shards" >> beam.Create(self._shards)
                | "SpreadShards" >> beam.Reshuffle()
                | "Rows" >> beam.FlatMap(_read_shard, self._pins))


def _id_and_shard(named_row: tuple[str, dict], release_name: str) -> Iterator[tuple[str, str]]:
    path, row = named_row
    try:
        yield canonical_photo_id(row.get("photo_id")), f"{release_name}/parquet/{posixpath.basename(path)}"
    except BadPhotoId:  # CheckRows rejects the row itself
        return


class CarriedIds(beam.PTransform):
    """PBegin -> PCollection[tuple[str, str]]: (photo id, shard) of every row of a finished release, reading its
    ids alone. The ids a run's new rows must not repeat, known long before the carried rows are re-checked (the
    license re-check alone can take hours), so that the new rows' downloads need not wait for it."""

    def __init__(self, release: str, release_name: str, pins: Pins = UNCHECKED) -> None:
        super().__init__()
        self._shards = release_shards(release, pins)
        self._name, self._pins = release_name, pins.only(self._shards)  # as ReadRelease

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (pbegin
                | "Shards" >> beam.Create(self._shards)
                | "SpreadShards" >> beam.Reshuffle()
                | "Ids" >> beam.FlatMap(_shard_ids, self._pins)
                | "Canonical" >> beam.FlatMap(_id_and_shard, self._name))


def _shard_ids(path: str, pins: Pins = UNCHECKED) -> Iterator[tuple[str, dict]]:
    """(path, {"photo_id": id}) for each row of a shard, its ids alone read, a row group at a time, as Beam's
    ReadAllFromParquet gave them (which opened the shard again by its name, whatever was there since verify read it:
    `pins`, as `_read_shard`)."""
    with pins.open(path, VERIFIED) as handle:
        check_footer(handle)
        shard = pq.ParquetFile(handle, pre_buffer=False, buffer_size=_READ_CHUNK)
        for group in range(shard.num_row_groups):
            for photo_id in shard.read_row_group(group, columns=["photo_id"]).column("photo_id").to_pylist():
                yield path, {"photo_id": photo_id}
        pins.check(path, handle, VERIFIED)


class CheckRows(beam.PTransform):
    """PCollection[tuple[str, dict]] (ReadRelease) -> (PCollection[Photo] as released, PCollection[Rejection]):
    rows a run could have written become photos; any other is a rejection of stage "carry" (`row_problem`)."""

    def __init__(self, release_name: str, max_pixels: int = ImageConfig.max_pixels) -> None:
        super().__init__()
        self._name, self._max_pixels = release_name, max_pixels

    def expand(self, rows: beam.PCollection) -> StageOutput:
        return apply_stage(rows, STAGE, _CheckRow(self._name, self._max_pixels))
