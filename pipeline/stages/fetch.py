"""Download each photo's image bytes, politely and within bounds (see `http_client`).

Downloads run on a thread pool inside each worker process: a batch of photos is fetched
concurrently, while per-host limits are shared by every thread of the process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam

from pipeline import __version__
from pipeline.io.http_client import FetchConfig, Fetcher, user_agent
from pipeline.options import PassOptions, split_list
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "fetch"

# Flickr static URLs: .../{server}/{id}_{secret}[_{size}].{ext}
_STATIC_URL = re.compile(r"^(?P<base>https?://[^?#]+/)(?P<id>\d+)_(?P<secret>[0-9a-f]+)(?:_[a-np-z])?\.jpg$")
# Originals have their own secret, an `_o` suffix and the uploaded format's extension.
_ORIGINAL_URL = re.compile(r"_[0-9a-f]+_o\.[a-z]+$")
# Longest side of Flickr's resized copies by suffix ("" is the 500 px default), smallest first.
_SIZES = ((500, ""), (640, "_z"), (800, "_c"), (1024, "_b"))


def sized_url(photo: Photo, max_side: int, originals: bool = False) -> str:
    """The URL of the smallest Flickr size whose longer side is at least `max_side`.

    Fetching the 1024 px copy for a 512 px dataset would waste Flickr's bandwidth and ours;
    fetching 500 px for a 1024 px dataset would upscale. URLs of another shape are used as given.
    With `originals` (only on request: they are large), the original upload where its secret is
    known (the owner allows original downloads), else the sized copy.
    """
    url = photo.download_url
    if not url and photo.server_id and photo.secret:
        url = f"https://live.staticflickr.com/{photo.server_id}/{photo.photo_id}_{photo.secret}.jpg"
    match = _STATIC_URL.match(url)
    if originals:
        if _ORIGINAL_URL.search(url):
            return url
        if photo.secret_original and (match or photo.server_id):
            base = match["base"] if match else f"https://live.staticflickr.com/{photo.server_id}/"
            return f"{base}{photo.photo_id}_{photo.secret_original}_o.{photo.extension or 'jpg'}"
    if not match:
        return url
    suffix = next((suffix for side, suffix in _SIZES if side >= max_side), _SIZES[-1][1])
    return f"{match['base']}{match['id']}_{match['secret']}{suffix}.jpg"


def fetch_config(opts: PassOptions) -> FetchConfig:
    return FetchConfig(
        allowed_hosts=tuple(split_list(opts.allowed_hosts)),
        user_agent=user_agent(__version__, opts.contact),
        connect_timeout=opts.connect_timeout,
        read_timeout=opts.read_timeout,
        deadline=opts.fetch_deadline,
        max_bytes=opts.max_bytes,
        max_retries=opts.max_retries,
        backoff_base=opts.backoff_base,
        max_backoff=opts.max_backoff,
        per_host_concurrency=opts.per_host_concurrency,
        per_host_rps=opts.per_host_rps,
    )


class _FetchBatch(beam.DoFn):
    def __init__(self, config: FetchConfig, max_side: int, threads: int, originals: bool) -> None:
        self._config = config
        self._max_side = max_side
        self._threads = threads
        self._originals = originals

    def setup(self) -> None:
        # Sessions and threads are per process, created here, never pickled with the DoFn.
        self._fetcher = Fetcher(self._config)
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="fetch")

    def teardown(self) -> None:
        self._pool.shutdown(wait=True)
        self._fetcher.close()

    def _one(self, photo: Photo) -> Photo | Rejection:
        try:
            return self._download(photo)
        except Exception as err:
            return Rejection.of(photo, STAGE, "internal_error", f"{type(err).__name__}: {err}"[:500])

    def _download(self, photo: Photo) -> Photo | Rejection:
        url = sized_url(photo, self._max_side, self._originals)
        if not url:
            return Rejection.of(photo, STAGE, "no_url", "no download URL and no server/secret to build one")
        result = self._fetcher.fetch(url)
        if not result.ok:
            return Rejection.of(photo, STAGE, result.reason, result.detail)
        return photo.replace(fetched_url=result.url, raw=result.body)

    def process(self, batch: list[Photo]) -> Iterator:
        # map() keeps batch order, so outputs do not depend on which download finished first.
        for outcome in self._pool.map(self._one, batch):
            yield reject(outcome) if isinstance(outcome, Rejection) else outcome


class Fetch(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo] with `raw` and `fetched_url`, PCollection[Rejection])."""

    def __init__(self, opts: PassOptions) -> None:
        super().__init__()
        self._config = fetch_config(opts)
        self._max_side = opts.max_side
        self._threads = opts.fetch_threads
        self._originals = bool(opts.flickr_originals)

    def expand(self, photos: beam.PCollection) -> StageOutput:
        batches = photos | "Batch" >> beam.BatchElements(
            min_batch_size=self._threads, max_batch_size=self._threads * 4, element_size_fn=lambda _: 1
        )
        return apply_stage(batches, STAGE, _FetchBatch(self._config, self._max_side, self._threads, self._originals))
