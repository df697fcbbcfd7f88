"""Fetch-and-normalise with a work cache, so that a killed run started again does not download
and decode again what it already had (`--cache=DIR`, local or gs://).

Each normalised image is stored under a key made of the photo id, its download URL and every
option that shapes the stored bytes; a later run with the same key takes the cached result and
skips both the download and the decode. Normalisation is deterministic, so a resumed run writes
the same release as an uninterrupted one. Entries are Parquet files written once per bundle
under a fresh name (temporary file, then rename), so a worker killed mid-write leaves nothing
half-written, and concurrent writers never collide. Only successes are cached: a failed download
is tried again on the next run, which is what a transient error deserves.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems

from pipeline.fetch import Fetch
from pipeline.images import ImageConfig, NormaliseImages
from pipeline.options import PassOptions
from pipeline.records import Photo
from pipeline.sinks import write_atomically
from pipeline.stage import StageOutput

CACHED_FIELDS = ("fetched_url", "download_sha256", "image", "sha256", "width", "height", "original_format",
                 "original_width", "original_height", "phash", "dhash")
_INT_FIELDS = {"width", "height", "original_width", "original_height"}
CACHE_SCHEMA = pa.schema([("key", pa.string())] + [
    (name, pa.int32() if name in _INT_FIELDS else pa.binary() if name == "image" else pa.string())
    for name in CACHED_FIELDS])
MISS = "miss"


def shaping_options(opts: PassOptions) -> str:
    """Every option that changes which bytes are fetched or how they are stored."""
    return json.dumps([ImageConfig.from_options(opts).__dict__, opts.flickr_originals, opts.max_bytes],
                      sort_keys=True, default=str)


def cache_key(photo: Photo, shaping: str) -> str:
    parts = [photo.photo_id, photo.download_url, photo.server_id, photo.secret, photo.secret_original, shaping]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_files(cache: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([FileSystems.join(cache, "*.parquet")])[0].metadata_list)


def _read_entries(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    with FileSystems.open(path) as handle:
        for row in pq.read_table(io.BytesIO(handle.read())).to_pylist():
            yield row.pop("key"), row


class _Join(beam.DoFn):
    """(key, {photos, cached}) -> photos with the cached image (main) or without (MISS)."""

    def process(self, joined: tuple[str, dict[str, Iterable]]) -> Iterator:
        _, groups = joined
        cached = next(iter(groups["cached"]), None)
        for photo in groups["photos"]:
            yield photo.replace(**cached) if cached is not None else pvalue.TaggedOutput(MISS, photo)


class _WriteEntries(beam.DoFn):
    """Passes photos through; writes their cache entries once per bundle."""

    def __init__(self, cache: str, shaping: str) -> None:
        self._cache, self._shaping = cache, shaping

    def start_bundle(self) -> None:
        self._rows: list[dict[str, Any]] = []

    def process(self, photo: Photo) -> Iterator[Photo]:
        self._rows.append({"key": cache_key(photo, self._shaping), **{f: getattr(photo, f) for f in CACHED_FIELDS}})
        yield photo

    def finish_bundle(self) -> None:
        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=CACHE_SCHEMA)
        path = FileSystems.join(self._cache, f"images-{uuid.uuid4().hex}.parquet")
        write_atomically(path, lambda handle: pq.write_table(table, handle, compression="zstd"))
        self._rows = []


class FetchImages(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo] with `image`, sizes and hashes, PCollection[Rejection]
    of the fetch and image stages): Fetch then NormaliseImages, through the cache when one is given."""

    def __init__(self, opts: PassOptions) -> None:
        super().__init__()
        self._opts = opts
        self._cache = opts.cache or ""
        self._files = cache_files(self._cache) if self._cache else []
        self._shaping = shaping_options(opts)

    def _fetch_and_normalise(self, photos: beam.PCollection) -> tuple[beam.PCollection, list[beam.PCollection]]:
        fetched = photos | "Fetch" >> Fetch(self._opts)
        images = fetched.kept | "Images" >> NormaliseImages(ImageConfig.from_options(self._opts))
        return images.kept, [fetched.rejected, images.rejected]

    def expand(self, photos: beam.PCollection) -> StageOutput:
        if not self._cache:
            kept, rejected = self._fetch_and_normalise(photos)
            return StageOutput(kept, rejected | "Rejections" >> beam.Flatten())
        shaping = self._shaping
        keyed = photos | "Key" >> beam.Map(lambda photo: (cache_key(photo, shaping), photo))
        entries = (photos.pipeline
                   | "CacheFiles" >> beam.Create(self._files)
                   | "CacheEntries" >> beam.FlatMap(_read_entries))
        joined = ({"photos": keyed, "cached": entries}
                  | "JoinCache" >> beam.CoGroupByKey()
                  | "Split" >> beam.ParDo(_Join()).with_outputs(MISS, main="hit"))
        fresh, rejected = self._fetch_and_normalise(joined[MISS])
        written = fresh | "WriteCache" >> beam.ParDo(_WriteEntries(self._cache, shaping))
        kept = (joined["hit"], written) | "Kept" >> beam.Flatten()
        return StageOutput(kept, rejected | "Rejections" >> beam.Flatten())
