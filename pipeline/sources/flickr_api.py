"""The Flickr API as the pipeline uses it: credentials, retries, call accounting, and the
time-window split that keeps every search under Flickr's result-depth cap.

Plain Python over `flickrapi` (no Beam), so it is tested directly against the fixture server. The
Beam source (`--source=flickr`) is built on these pieces.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import flickrapi
from apache_beam.metrics import Metrics

from pipeline.http_client import Pacer

# flickrapi, oauthlib and requests-oauthlib log the key (the client repr, the signed request) at DEBUG:
# keep them quiet whatever the root logger's level, so credentials never reach a log.
for _name in ("flickrapi", "oauthlib", "requests_oauthlib"):
    logging.getLogger(_name).setLevel(logging.WARNING)

API_METRICS = "flickr_api"
SEARCH_DEPTH = 4000  # results Flickr returns per query at most; deeper pages repeat
RETRYABLE_CODES = frozenset({0, 105, 201})  # "unknown", "service unavailable", "unexpected error"
INVALID_KEY = 100


class CredentialsError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    key: str
    secret: str

    def __repr__(self) -> str:  # never let a key reach a log or an exception message
        return "Credentials(key=***, secret=***)"

    __str__ = __repr__


def load_credentials(path: str | None = None, environ: dict[str, str] | None = None) -> Credentials:
    """From a JSON file {"key": …, "secret": …} given by path, else FLICKR_API_KEY / FLICKR_API_SECRET."""
    env = os.environ if environ is None else environ
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            return Credentials(str(data["key"]), str(data["secret"]))
        except (OSError, ValueError, KeyError) as err:
            raise CredentialsError(f"cannot read Flickr credentials from {path}: {type(err).__name__}") from None
    key, secret = env.get("FLICKR_API_KEY", ""), env.get("FLICKR_API_SECRET", "")
    if not key or not secret:
        raise CredentialsError("no Flickr credentials: set FLICKR_API_KEY and FLICKR_API_SECRET or pass a file")
    return Credentials(key, secret)


class FlickrClient:
    """flickrapi with retries on transient errors and a count of calls per method."""

    # One pace per worker process and rate, shared by every client and thread in it.
    _pacers: ClassVar[dict[float, Pacer]] = {}
    _pacers_lock = threading.Lock()

    def __init__(self, credentials: Credentials, rest_url: str | None = None, max_retries: int = 4,
                 backoff_base: float = 1.0, timeout: float = 30.0, calls_per_second: float = 0.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._api = flickrapi.FlickrAPI(credentials.key, credentials.secret, format="parsed-json", store_token=False,
                                        cache=False)
        if rest_url:
            self._api.REST_URL = rest_url  # the fixture server, or a proxy
        self._max_retries, self._backoff, self._sleep = max_retries, backoff_base, sleep
        self._timeout = timeout
        with FlickrClient._pacers_lock:
            self._pacer = FlickrClient._pacers.setdefault(calls_per_second, Pacer(calls_per_second))
        self.calls: Counter[str] = Counter()

    def call(self, method: str, **params: object) -> dict:
        """One API call; retried on error codes 0/105/201, HTTP 429 and 5xx; other errors raise
        flickrapi.FlickrError with Flickr's code and message (never the key)."""
        attempt = 0
        while True:
            self._pacer.wait()  # Flickr allows 3,600 calls per hour per key
            self.calls[method] += 1
            Metrics.counter(API_METRICS, method).inc()  # summed over workers into stats.json "api_calls"
            try:
                return self._api.do_flickr_call(method, timeout=self._timeout, **params)
            except flickrapi.FlickrError as err:
                code = getattr(err, "code", None)
                transient = code in RETRYABLE_CODES or (code is None and _http_status(err) in (429, 500, 502, 503, 504))
                if not transient or attempt >= self._max_retries:
                    raise
            self._sleep(self._backoff * 2**attempt)
            attempt += 1

    def check_key(self) -> None:
        """Fails at start with a clear message when the key is refused (error 100)."""
        try:
            self.call("flickr.photos.licenses.getInfo")
        except flickrapi.FlickrError as err:
            if getattr(err, "code", None) == INVALID_KEY:
                raise CredentialsError("Flickr refused the API key (error 100: invalid key)") from None
            raise


def _http_status(err: Exception) -> int | None:
    text = str(err)
    marker = "Status code "
    if marker in text:
        digits = text.split(marker, 1)[1][:3]
        return int(digits) if digits.isdigit() else None
    return None


def split_windows(total_in: Callable[[int, int], int], low: int, high: int,
                  depth: int = SEARCH_DEPTH) -> Iterator[tuple[int, int, int]]:
    """(low, high, total) windows of upload time, inclusive at both ends, that together cover
    [low, high] exactly once and each hold at most `depth` results, so that paging through each
    window never reaches the depth past which Flickr repeats results. A one-second window that is
    still over the cap is yielded as it is (it cannot be split further) with its true total.

    `total_in(lo, hi)` asks the API for the number of matching photos (one call with per_page=1).
    """
    stack = [(low, high)]
    while stack:
        lo, hi = stack.pop()
        total = total_in(lo, hi)
        if total == 0:
            continue
        if total <= depth or lo == hi:
            yield lo, hi, total
            continue
        middle = (lo + hi) // 2
        stack.append((middle + 1, hi))  # popped second: windows come out in time order
        stack.append((lo, middle))
