"""Download each photo's image bytes, politely and within bounds (see `http_client`).

Downloads run on a thread pool inside each worker process: a batch of photos is fetched
concurrently, while per-host limits are shared by every thread of the process.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import apache_beam as beam

from pipeline.flickr.sizes import BUILDABLE, FlickrSize, smallest_covering
from pipeline.io.http_client import FetchConfig, Fetcher
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "fetch"

# Flickr static URLs: .../{server}/{id}_{secret}[_{size}].jpg. [0-9], not \d: that also matches other scripts'
# digits ('٣'), which name no Flickr photo. \Z, not $: that also matches before a last newline.
_STATIC_URL = re.compile(r"^(?P<base>https?://[^?#]+/)(?P<id>[0-9]+)_(?P<secret>[0-9a-f]+)(?P<suffix>_[a-np-z])?\.jpg\Z")
# Flickr's static hosts, the only ones that serve the size suffixes. Any other host (a user's own
# mirror) serves exactly the files it has: its URLs are fetched as given.
_FLICKR_STATIC_HOST = re.compile(
    r"live\.staticflickr\.com|(?:farm|c)[0-9]{1,4}\.staticflickr\.com|farm[0-9]{1,4}\.static\.flickr\.com")
# Originals have their own secret, an `_o` suffix and the uploaded format's extension.
_ORIGINAL_URL = re.compile(r"_[0-9a-f]+_o\.[a-z]+$")
# A sized copy that is missing (the row's own URL may still be there); the deleted-photo placeholder
# redirect is `deleted` and stays so.
_MISSING = frozenset({"not_found", "gone"})


def row_url(photo: Photo) -> str:
    """The row's own download URL, or the 500 px copy's built from its server and secret."""
    if photo.download_url or not (photo.server_id and photo.secret):
        return photo.download_url
    return f"https://live.staticflickr.com/{photo.server_id}/{photo.photo_id}_{photo.secret}.jpg"


def _flickr_static(url: str) -> re.Match[str] | None:
    match = _STATIC_URL.match(url)
    try:
        host = urlsplit(url).netloc.lower() if match else ""
    except ValueError:  # a bracket left open ("http://[x/..."): no static host; fetch names the URL bad
        return None
    return match if match and _FLICKR_STATIC_HOST.fullmatch(host) else None


def _uploaded(photo: Photo) -> int | None:
    """Upload time in epoch seconds; None when unknown or unreadable."""
    try:
        return int(dt.datetime.fromisoformat(photo.date_uploaded).timestamp()) if photo.date_uploaded else None
    except ValueError:
        return None


def _plausible_sizes(photo: Photo) -> tuple[FlickrSize, ...]:
    """The copies buildable from the shared secret that the photo may have, by its upload date. The
    original's size is not known here, so a copy that depends on it (the 1024 px copy of a photo
    uploaded before 25 May 2010) is not asked for; with no date every size is tried, the row's own
    URL behind it."""
    uploaded = _uploaded(photo)
    return tuple(size for size in BUILDABLE
                 if (exists := size.exists_for(uploaded, None)) or (exists is None and uploaded is None))


def sized_url(photo: Photo, max_side: int, originals: bool = False) -> str:
    """The URL of the smallest Flickr copy whose longer side is at least `max_side` (flickr.sizes),
    among those the photo can have (most of YFCC100M predates the 800 px copies); else the largest
    of those.

    Fetching the 1024 px copy for a 512 px dataset would waste Flickr's bandwidth and ours;
    fetching 500 px for a 1024 px dataset would upscale. Only URLs on Flickr's static hosts are
    rewritten, and only the unsuffixed 500 px form (the YFCC form, or one built from server and
    secret): a URL that already names a copy, or any URL an API search entry gave (`source` flickr: the
    500 px copy is its choice where it is the largest the entry lists), is the source's choice among
    copies the API listed.
    With `originals` (only on request: they are large), the original upload where its secret is
    known (the owner allows original downloads), else the sized copy.
    """
    url = row_url(photo)
    match = _flickr_static(url)
    if originals and (match or not url or _ORIGINAL_URL.search(url)):  # never from a user's own server
        if _ORIGINAL_URL.search(url):
            return url
        if photo.secret_original and (match or photo.server_id):
            base = match["base"] if match else f"https://live.staticflickr.com/{photo.server_id}/"
            return f"{base}{photo.photo_id}_{photo.secret_original}_o.{photo.extension or 'jpg'}"
    if not match or match["suffix"] or (photo.source == "flickr" and photo.download_url):
        return url
    size = smallest_covering(_plausible_sizes(photo), max_side)
    return f"{match['base']}{match['id']}_{match['secret']}{size.suffix}.jpg" if size else url


@dataclass(frozen=True)
class FetchSettings:
    """What the fetch stage needs: the HTTP client's bounds, the size to fetch, threads per process."""

    http: FetchConfig
    max_side: int = 512
    threads: int = 32
    originals: bool = False


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
        # After a finished bundle nothing is queued. After a stopped one (Ctrl-C, SIGTERM, a failed bundle) the
        # queued downloads are dropped and those under way not waited for: waiting held the stop for up to
        # --fetch_deadline per download.
        self._pool.shutdown(wait=False, cancel_futures=True)
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
        deadline = self._fetcher.deadline()  # one --fetch_deadline for the photo, both URLs together
        result = self._fetcher.fetch(url, deadline)
        own = row_url(photo)
        if result.reason in _MISSING and own and own != url:
            # The chosen copy is not there (Flickr's sizes vary with upload date and original size):
            # the row's own URL once, before the photo is given up.
            first, result = result, self._fetcher.fetch(own, deadline)
            if not result.ok:
                detail = f"{url}: {first.detail}; then {own}: {result.detail}"
                return Rejection.of(photo, STAGE, result.reason, detail[:500])
        if not result.ok:
            return Rejection.of(photo, STAGE, result.reason, result.detail)
        return photo.replace(fetched_url=result.url, raw=result.body)

    def process(self, batch: list[Photo]) -> Iterator:
        # map() keeps batch order, so outputs do not depend on which download finished first.
        for outcome in self._pool.map(self._one, batch):
            yield reject(outcome) if isinstance(outcome, Rejection) else outcome


class Fetch(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo] with `raw` and `fetched_url`, PCollection[Rejection])."""

    def __init__(self, settings: FetchSettings) -> None:
        super().__init__()
        self._settings = settings

    def expand(self, photos: beam.PCollection) -> StageOutput:
        threads = self._settings.threads
        batches = photos | "Batch" >> beam.BatchElements(
            min_batch_size=threads, max_batch_size=threads * 4, element_size_fn=lambda _: 1
        )
        cfg = self._settings
        return apply_stage(batches, STAGE, _FetchBatch(cfg.http, cfg.max_side, cfg.threads, cfg.originals))
