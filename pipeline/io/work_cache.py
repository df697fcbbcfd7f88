"""Fetch-and-normalise with a work cache, so that a killed run started again does not download
and decode again what it already had (`--cache=DIR`, local or gs://). `split_by_cache` and
`WriteEntries` serve the detection stage's score cache the same way.

Each normalised image is stored under a key made of the photo id, its download URL and every
option that shapes the stored bytes (and the version of the storage code's rule, and those of the
libraries that make them); a later run with the same key takes the cached result and skips both the
download and the decode. Normalisation is deterministic for one set of libraries, so a resumed run writes
the same release as an uninterrupted one. Entries are
Parquet files written once per bundle under a fresh name (temporary file, then rename), so a worker
killed mid-write leaves nothing half-written, and concurrent writers never collide. Only successes
are cached: a failed download is tried again on the next run, which is what a transient error deserves.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from PIL import Image

from pipeline.io.fetch_urls import host_allowed
from pipeline.io.files import matching, read_parquet, write_atomically
from pipeline.io.storage_rule import STORAGE_RULE_VERSION
from pipeline.io.stored_jpeg import stored_jpeg_problem
from pipeline.options import PassOptions, shaping
from pipeline.printable import printable
from pipeline.records import HASH16, Photo
from pipeline.stage import StageOutput

CACHED_FIELDS = ("fetched_url", "download_sha256", "image", "sha256", "width", "height", "original_format",
                 "original_width", "original_height", "phash", "dhash")
_INT_FIELDS = {"width", "height", "original_width", "original_height"}
CACHE_SCHEMA = pa.schema([("key", pa.string())] + [
    (name, pa.int32() if name in _INT_FIELDS else pa.binary() if name == "image" else pa.string())
    for name in CACHED_FIELDS])
MISS = "miss"


def shaping_options(opts: PassOptions) -> str:
    """Every option that changes which bytes are fetched or how they are stored (their role says so), and
    the version of the code's own storage rule."""
    return json.dumps({**shaping(opts), "storage_rule_version": STORAGE_RULE_VERSION}, sort_keys=True, default=str)


def image_libraries() -> dict[str, str]:
    """The versions of what decodes, converts, resizes and encodes a stored image and computes its hashes: Pillow and
    the codecs it was built with (libjpeg-turbo, libwebp, zlib, LittleCMS), numpy and scipy (the pHash's DCT). A run
    resumed after its environment was rebuilt (another Pillow, as pyproject allows) took every entry the old one had
    stored, and its release mixed images of both, which no uninterrupted run writes (the score cache keys on the
    onnxruntime release for the same reason): under another version each photo is stored again. Read where the key is
    made, in the worker that stores the image (a launcher's own libraries may be others)."""
    import importlib.metadata

    import numpy
    import PIL
    from PIL import features

    codecs = {name: str(features.version(name)) for name in ("libjpeg_turbo", "webp", "zlib", "littlecms2")}
    # scipy's version read without importing it (the hashes import it on first use, not every command)
    return {"pillow": PIL.__version__, **codecs, "numpy": numpy.__version__,
            "scipy": importlib.metadata.version("scipy")}


@functools.cache
def _libraries() -> str:
    return json.dumps(image_libraries(), sort_keys=True)  # once a process: reading the versions takes ~3 ms


def cache_key(photo: Photo, shaping: str) -> str:
    parts = [photo.photo_id, photo.download_url, photo.server_id, photo.secret, photo.secret_original, shaping,
             _libraries()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_files(cache: str, prefix: str = "images") -> list[str]:
    return matching(FileSystems.join(cache, f"{prefix}-*.parquet"))


# A cache file is written in seconds; a temporary this old was left by a killed run. Younger ones may be
# another live run's (a cache can be shared by runs into other outputs, which this run's lock does not stop).
STALE_TEMPORARY_SECONDS = 6 * 3600


def remove_stale_temporaries(cache: str, now: float | None = None) -> int:
    """Deletes the cache's temporaries (`*.tmp-*`, from write_atomically) that killed runs left behind:
    nothing ever reads them, and each is a bundle's worth of images. Returns how many."""
    if not cache:
        return 0
    now = time.time() if now is None else now
    found = FileSystems.match([FileSystems.join(cache, "*.tmp-*")])[0].metadata_list
    stale = [m.path for m in found if now - (m.last_updated_in_seconds or now) > STALE_TEMPORARY_SECONDS]
    if stale:
        FileSystems.delete(stale)
    return len(stale)


UNREADABLE_FILES = Metrics.counter("work_cache", "unreadable_files")


def _read_entries(path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A cache file's entries by key; none from a file that is no Parquet file with a text `key` column (a torn
    copy, a disk error): every photo it held is a miss, fetched or scored again, and the file is named in the log.
    It failed every later run that used the cache."""
    try:
        rows = read_parquet(path).to_pylist()
        problem = "" if all(isinstance(row.get("key"), str) for row in rows) else "no text key column"
    except (pa.ArrowException, OSError, ValueError) as err:
        rows, problem = [], f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
    if problem:
        UNREADABLE_FILES.inc()
        # Escaped: a refresh's cache lies under the releases' root, which others may write to (a file named with
        # terminal escapes and a line break sent them to the terminal, and printed a forged log line of its own)
        logging.getLogger(__name__).warning("work cache file %s is unreadable, its entries are misses: %s",
                                            printable(path), printable(problem))
        return
    for row in rows:
        yield row.pop("key"), row




def entry_problem(row: dict[str, Any], max_side: int | None = None) -> str | None:
    """Why an image cache entry is not one a run writes, else None: its image is not the JPEG whose sha256 and size
    it records, or not one the image stage writes (`stored_jpeg_problem`; larger than `max_side`, the run's
    --max_side, which is in the entry's key), or its hashes are not hashes. A cache is a folder outside the job (a
    disk corrupts, anyone with access can change it): an entry whose image disagreed with its own sha256 went into
    the dataset as it was, and verify, which checks files against the manifest the run wrote, passed it; so did
    one whose image carried EXIF with GPS, or was 20,000 px wide."""
    image, sha256 = row.get("image"), row.get("sha256")
    if not isinstance(image, bytes) or not isinstance(sha256, str) or hashlib.sha256(image).hexdigest() != sha256:
        return "its image is not the one whose sha256 it records"
    if not all(isinstance(row.get(name), str) and HASH16.fullmatch(row[name]) for name in ("phash", "dhash")):
        return "its perceptual hashes are not 16 hexadecimal digits"
    written = stored_jpeg_problem(image)
    if written is not None:
        return f"its image is no JPEG the image stage writes: {written}"
    try:
        with Image.open(io.BytesIO(image), formats=["JPEG"]) as img:
            size = img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "its image is no JPEG"
    if size != (row.get("width"), row.get("height")):
        return "its image is not the size it records"
    if max_side is not None and max(size) > max_side:
        return f"its image is {size[0]}x{size[1]}, larger than --max_side {max_side}"
    return None


def _from_cache(photo: Photo, row: dict[str, Any], allowed_hosts: Sequence[str] = (), max_side: int | None = None
                ) -> Photo | None:
    """The photo completed from its entry; None (fetched again) for an entry with a problem, or one fetched from a
    host this run's --allowed_hosts does not allow: a cache shared with a run allowing more hosts gave this one
    their images, which its own fetch would have refused (host_not_allowed). `max_side`: the run's --max_side."""
    if entry_problem(row, max_side):
        return None
    if allowed_hosts and not host_allowed(str(row.get("fetched_url") or ""), allowed_hosts):
        return None
    return photo.replace(**row)


def _entry_order(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=lambda value: hashlib.sha256(value).hexdigest())


class _Join(beam.DoFn):
    """(key, {photos, cached}) -> photos completed from their cache entry (main) or as they are (MISS). `complete`
    returns None for an entry it cannot use: the photo is then a miss, done again. Of several entries under one key
    (runs that shared a cache), the first by content that `complete` accepts, so that which one does not depend on
    the order they came in, and a bad entry never hides a good one (it sorted first, and every resumed run fetched
    the photo again)."""

    def __init__(self, complete: Callable[[Photo, dict[str, Any]], Photo | None]) -> None:
        self._complete = complete

    def process(self, joined: tuple[str, dict[str, Iterable]]) -> Iterator:
        _, groups = joined
        entries = sorted(groups["cached"], key=_entry_order)  # a key's entries: one a run, in practice
        for photo in groups["photos"]:
            completed = next((done for entry in entries if (done := self._complete(photo, entry)) is not None), None)
            yield completed if completed is not None else pvalue.TaggedOutput(MISS, photo)


class WriteEntries(beam.DoFn):
    """Passes elements (photos, or detectors' results) through; writes their cache entries
    (`entry(element)` -> row with "key", or None for one not to cache) once per bundle, as
    CACHE/PREFIX-<random>.parquet."""

    def __init__(self, cache: str, prefix: str, schema: pa.Schema, entry: Callable[[Any], dict[str, Any] | None]
                 ) -> None:
        self._cache, self._prefix, self._schema, self._entry = cache, prefix, schema, entry

    def start_bundle(self) -> None:
        self._rows: list[dict[str, Any]] = []

    def process(self, element: Any) -> Iterator[Any]:
        row = self._entry(element)
        if row is not None:
            self._rows.append(row)
        yield element

    def finish_bundle(self) -> None:
        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=self._schema)
        path = FileSystems.join(self._cache, f"{self._prefix}-{uuid.uuid4().hex}.parquet")
        write_atomically(path, lambda handle: pq.write_table(table, handle, compression="zstd"))
        self._rows = []


def split_by_cache(photos: beam.PCollection, cache: str, prefix: str, key: Callable[[Photo], str],
                   complete: Callable[[Photo, dict[str, Any]], Photo | None], label: str
                   ) -> tuple[beam.PCollection, beam.PCollection]:
    """(photos completed from the cache, photos the cache does not know). The cache's files are
    listed when the job is built: entries written by this run are for the next one."""
    keyed = photos | f"{label}.Key" >> beam.Map(lambda photo: (key(photo), photo))
    entries = (photos.pipeline
               | f"{label}.Files" >> beam.Create(cache_files(cache, prefix))
               | f"{label}.Entries" >> beam.FlatMap(_read_entries))
    joined = ({"photos": keyed, "cached": entries}
              | f"{label}.Join" >> beam.CoGroupByKey()
              | f"{label}.Split" >> beam.ParDo(_Join(complete)).with_outputs(MISS, main="hit"))
    return joined["hit"], joined[MISS]


def _image_entry(shaping: str) -> Callable[[Photo], dict[str, Any]]:
    def entry(photo: Photo) -> dict[str, Any]:
        return {"key": cache_key(photo, shaping), **{f: getattr(photo, f) for f in CACHED_FIELDS}}

    return entry


class ThroughCache(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo] with `image`, sizes and hashes, PCollection[Rejection]):
    `inner` (the fetch and image stages, wired by build.py) applied only to the photos the work cache
    does not already hold under the same shaping options; what it keeps is added to the cache, so a
    run started again after being killed downloads and decodes nothing twice. `max_side`: the run's --max_side,
    past which no entry's image is taken (`entry_problem`)."""

    def __init__(self, inner: Callable[[beam.PCollection], StageOutput], cache: str, shaping: str,
                 allowed_hosts: Sequence[str] = (), *, max_side: int) -> None:
        super().__init__()
        self._inner, self._cache, self._shaping = inner, cache, shaping
        self._allowed_hosts = tuple(allowed_hosts)
        self._max_side = max_side

    def expand(self, photos: beam.PCollection) -> StageOutput:
        if not self._cache:
            return self._inner(photos)
        shaping = self._shaping
        hits, misses = split_by_cache(photos, self._cache, "images", lambda photo: cache_key(photo, shaping),
                                      functools.partial(_from_cache, allowed_hosts=self._allowed_hosts,
                                                        max_side=self._max_side), "Cache")
        fresh = self._inner(misses)
        written = fresh.kept | "WriteCache" >> beam.ParDo(WriteEntries(self._cache, "images", CACHE_SCHEMA,
                                                                       _image_entry(shaping)))
        return StageOutput((hits, written) | "Kept" >> beam.Flatten(), fresh.rejected)
