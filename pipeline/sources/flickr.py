"""`--source=flickr`: CC BY photos straight from the Flickr API, in the same `Photo` schema as the
YFCC source, so every later stage is shared.

The upload-time range is split into windows that each stay under Flickr's search depth
(`flickr.client.split_windows`), windows and then their pages are reshuffled so that they fan out
across workers, and each page's results become Photos. Credentials are loaded in each worker's
`setup()` from the environment or a file (local or gs://), so they are never part of the
pickled pipeline. A page the API refuses becomes one rejection naming the window and page.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import flickrapi

from pipeline.flickr.client import SEARCH_DEPTH, FlickrClient, split_windows
from pipeline.flickr.credentials import CredentialsError, load_credentials
from pipeline.flickr.licenses import LICENSES
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "read"
PER_PAGE = 500
EXTRAS = ("license,owner_name,date_upload,date_taken,original_format,o_dims,description,tags,path_alias,"
          "url_m,url_z,url_c,url_b,url_o")
# Smallest Flickr size whose longer side covers max_side (the same rule as stages.fetch.sized_url).
_SIZES = ((240, "url_m"), (640, "url_z"), (800, "url_c"), (1024, "url_b"))


@dataclass(frozen=True)
class FlickrSourceConfig:
    rest_url: str | None
    credentials_path: str | None
    licenses: str
    min_upload: int
    max_upload: int
    max_side: int
    calls_per_second: float = 0.0
    originals: bool = False
    search_depth: int = SEARCH_DEPTH


def parse_date(value: str) -> int:
    """'2024-01-31' (UTC midnight) or epoch seconds -> epoch seconds."""
    if value.strip().isdigit():
        return int(value)
    day = dt.datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=dt.UTC)
    return int(day.timestamp())


def photo_from_search(entry: dict, ref: str, max_side: int, originals: bool = False) -> Photo:
    license_name, license_url = LICENSES.get(int(entry.get("license", -1)), ("", ""))
    url_key = next((key for side, key in _SIZES if side >= max_side and entry.get(key)), None)
    download_url = entry.get(url_key) if url_key else next(
        (entry[key] for _, key in reversed(_SIZES) if entry.get(key)), "")
    if originals and entry.get("url_o"):  # url_o is present only where the owner allows original downloads
        download_url = entry["url_o"]
    uploaded = entry.get("dateupload", "")
    description = entry.get("description", {})
    return Photo(
        photo_id=str(entry["id"]),
        source="flickr",
        source_ref=ref,
        owner_nsid=entry.get("owner", ""),
        owner_name=entry.get("ownername", ""),
        title=entry.get("title", ""),
        description=description.get("_content", "") if isinstance(description, dict) else str(description),
        tags=",".join(entry.get("tags", "").split()),
        date_taken=entry.get("datetaken", ""),
        date_uploaded=dt.datetime.fromtimestamp(int(uploaded), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if str(uploaded).isdigit() else "",
        page_url=f"https://www.flickr.com/photos/{entry.get('owner', '')}/{entry['id']}/",
        download_url=download_url or "",
        license_name=license_name,
        license_url=license_url,
        server_id=str(entry.get("server", "")),
        farm_id=str(entry.get("farm", "")),
        secret=entry.get("secret", ""),
        secret_original=entry.get("originalsecret", ""),
        extension=entry.get("originalformat", "jpg"),
    )


class _ClientDoFn(beam.DoFn):
    def __init__(self, cfg: FlickrSourceConfig) -> None:
        self._cfg = cfg

    def setup(self) -> None:
        self._client = FlickrClient(load_credentials(self._cfg.credentials_path), self._cfg.rest_url,
                                    calls_per_second=self._cfg.calls_per_second)

    def _search(self, low: int, high: int, **params: object) -> dict:
        return self._client.call("flickr.photos.search", license=self._cfg.licenses, media="photos", safe_search=1,
                                 min_upload_date=low, max_upload_date=high, **params)["photos"]


class _SplitWindows(_ClientDoFn):
    """(low, high) -> windows under the depth cap. A count the API refuses (after retries) becomes
    one rejection naming the sub-range it could not size; the rest of the range is still split."""

    def process(self, span: tuple[int, int]) -> Iterator:
        refused: list[tuple[int, int, flickrapi.FlickrError]] = []

        def total_in(low: int, high: int) -> int:
            try:
                return int(self._search(low, high, per_page=1)["total"])
            except flickrapi.FlickrError as err:
                refused.append((low, high, err))
                return 0  # skipped by split_windows; reported below

        yield from split_windows(total_in, *span, depth=self._cfg.search_depth)
        for low, high, err in refused:
            where = f"flickr:{low}-{high}"
            code = getattr(err, "code", None)
            yield reject(Rejection(where, STAGE, "api_error", f"window count refused, code {code}: {err}"[:300],
                                   "", where))


class _ReadPage(_ClientDoFn):
    def process(self, window_page: tuple[tuple[int, int, int], int]) -> Iterator:
        (low, high, _total), page = window_page
        where = f"flickr:{low}-{high}:p{page}"
        try:
            results = self._search(low, high, per_page=PER_PAGE, page=page, extras=EXTRAS)
        except flickrapi.FlickrError as err:
            code = getattr(err, "code", None)
            yield reject(Rejection(where, STAGE, "api_error", f"code {code}: {err}"[:300], "", where))
            return
        for index, entry in enumerate(results.get("photo", [])):
            yield photo_from_search(entry, f"{where}:{index}", self._cfg.max_side, self._cfg.originals)


def _pages(window: tuple[int, int, int]) -> list[tuple[tuple[int, int, int], int]]:
    return [(window, page) for page in range(1, math.ceil(window[2] / PER_PAGE) + 1)]


class ReadFlickr(beam.PTransform):
    """PBegin -> (PCollection[Photo], PCollection[Rejection]): CC BY photos uploaded in the range."""

    def __init__(self, cfg: FlickrSourceConfig) -> None:
        super().__init__()
        self._cfg = cfg
        # Fail at construction, not in thousands of rejections: a refused key or missing credentials.
        FlickrClient(load_credentials(cfg.credentials_path), cfg.rest_url).check_key()

    def expand(self, pbegin: beam.pvalue.PBegin) -> StageOutput:
        span = pbegin | "Range" >> beam.Create([(self._cfg.min_upload, self._cfg.max_upload)])
        windows = apply_stage(span, STAGE, _SplitWindows(self._cfg), label=f"{STAGE}.windows")
        pages = (
            windows.kept
            | "SpreadWindows" >> beam.Reshuffle()
            | "Pages" >> beam.FlatMap(_pages)
            | "SpreadPages" >> beam.Reshuffle()
        )
        read = apply_stage(pages, STAGE, _ReadPage(self._cfg))
        rejected = (windows.rejected, read.rejected) | "Rejections" >> beam.Flatten()
        return StageOutput(read.kept, rejected)


__all__ = ["CredentialsError", "FlickrSourceConfig", "ReadFlickr", "parse_date", "photo_from_search"]
