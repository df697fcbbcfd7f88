"""The Flickr API as the pipeline uses it: several keys, retries, call accounting, and the
time-window split that keeps every search under Flickr's result-depth cap.

Plain Python over `flickrapi` (no Beam), so it is tested directly against the fixture server. The
Beam source (`--source=flickr`) is built on these pieces.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import flickrapi
import requests
from apache_beam.metrics import Metrics

from pipeline.flickr.credentials import Credentials, CredentialsError, fingerprint
from pipeline.io.http_client import retry_after_seconds
from pipeline.io.http_deadline import DeadlineAdapter, deadline_scope
from pipeline.io.json_keys import KeyTwice, each_key_once
from pipeline.io.pacing import Pacer

# flickrapi, oauthlib and requests-oauthlib log the key (the client repr, the signed request) at DEBUG:
# keep them quiet whatever the root logger's level, so credentials never reach a log. flickrapi also logs a
# non-200 answer's whole body at ERROR, a line per '&' with each part URL-decoded (a 200 kB body of '&' was a
# million lines, and '%0A' forged lines of our own loggers): our error says what happened, in one line.
logging.getLogger("flickrapi").setLevel(logging.CRITICAL)
for _name in ("oauthlib", "requests_oauthlib"):
    logging.getLogger(_name).setLevel(logging.WARNING)

API_METRICS = "flickr_api"
SEARCH_DEPTH = 4000  # results Flickr returns per query at most; deeper pages repeat
PER_PAGE = 500  # the most results photos.search returns per page
RETRYABLE_CODES = frozenset({0, 105, 201})  # "unknown", "service unavailable", "unexpected error"
# Codes a method documents as temporary: photos.search's 10, "the Flickr API search databases are temporarily
# unavailable" (not retried, one such blip cost a window's page of 500 photos, or an owner search, as api_error).
RETRYABLE_FOR = {"flickr.photos.search": frozenset({10})}
INVALID_KEY = 100
# A search page of 500 photos with every extra (descriptions, tags) is a few MB; more is no Flickr answer.
MAX_ANSWER_BYTES = 64 << 20
# What one answer may take off the socket beyond its bound: status line, headers, chunk framing (a real answer's are a
# few kB). The bound counts decoded bytes only when urllib3 hands some over, and urllib3 reads on without returning
# while a body decodes to nothing (it keeps a deflate body's bytes until they first decode): an endless body of empty
# deflate blocks was held until the call's deadline, ~300 MiB in the default 30 s, then retried as no answer.
WIRE_ROOM = 1 << 20
# What parsing an answer may build: JSON makes a value at most for each ',' '{' and '[' (a page of 500 photos with
# every extra holds tens of thousands); parsed, 64 MiB of `[{},{},...]` took ~1.5 GB, per call and thread.
MAX_ANSWER_VALUES = 1_000_000
# Flickr's error codes are small numbers (0 to a few hundred): a failure coded otherwise is no answer of Flickr's.
MAX_ERROR_CODE = 99_999
# An error's message as the client raises it: "Error: CODE: " and up to 200 characters of what Flickr said.
MAX_ERROR_CHARS = 220
# The longest wait a Retry-After of a 429 or 503 is honoured for before the next attempt: the API asking for a rest
# was retried after 1, 2, 4 and 8 s whatever it asked, each attempt another refusal, and a call given up after 15 s
# that an answer of "Retry-After: 30" would have let through. Longer asks are capped (a hostile day-long one would
# hold a worker's thread).
MAX_RETRY_AFTER_S = 60.0
# What the latest non-200 answer on this thread asked for (Retry-After, seconds), read by the call that made it:
# flickrapi raises on the status alone, with no headers.
_ASKED = threading.local()
# What stands for one of our keys or secrets in a message or an answer's text.
REDACTED = "[redacted]"
# The shortest key or secret taken out of an answer's texts: Flickr's are 32 and 16 hexadecimal digits, and a text of a
# few letters (a test's key "k") is in every answer's words. A shorter key is refused at start (`check_key`).
MIN_REDACTED_CHARS = 8


class FlickrUnreachable(Exception):
    """The API endpoint cannot be reached at all (DNS, refused connection, timeout)."""


class BadApiResponse(ValueError):
    """An answer that is not shaped as Flickr documents it: no JSON, JSON of another shape (a count that is
    no number, no photo list), a key given twice in one object, an error without a code, or more than
    MAX_ANSWER_BYTES."""


class NoAnswer(flickrapi.FlickrError):
    """No answer after the retries (connection refused or reset, a timeout, the call's deadline): an API
    error without a code, as callers report any refused call. `cause`: the last error's type name."""

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause


def parsed_answer(data: object, secrets: Sequence[str] = ()) -> dict:
    """An answer's JSON as Flickr documents it, else BadApiResponse; a failure Flickr answered (stat "fail")
    raises FlickrError with its code, as flickrapi's own parser does. Parsed here, not by flickrapi, so that
    only the answer's own faults become BadApiResponse (a catch around flickrapi's parser caught bugs in
    everything it calls too). Every text of the answer (keys, values, texts in lists) comes back with `secrets`,
    our API keys and secrets, taken out as it is parsed (`_redacting`)."""
    each_key_once_without = _redacting(secrets)
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        # counted in C before anything is built
        flood = isinstance(text, str) and text.count(",") + text.count("{") + text.count("[") > MAX_ANSWER_VALUES
        parsed = (json.loads(text, object_pairs_hook=each_key_once_without)
                  if isinstance(text, str) and not flood else None)
    except KeyTwice as err:  # Python keeps a key's last copy, other readers the first: "license" "0" then "4"
        raise BadApiResponse(f"the answer gives key {str(err)[:40]} twice in one object: which copy is Flickr's "
                             "cannot be told") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise BadApiResponse(f"the answer is no Flickr JSON: {type(err).__name__}") from None
    if flood:
        raise BadApiResponse(f"the answer would make over {MAX_ANSWER_VALUES:,} values, more than any Flickr answer "
                             "holds")
    if not isinstance(parsed, dict):
        raise BadApiResponse(f"the answer is no Flickr JSON: a {type(parsed).__name__}, not an object")
    if parsed.get("stat") == "fail":
        code = parsed.get("code")
        if isinstance(code, bool) or not isinstance(code, int):
            raise BadApiResponse(f"a failure whose code {repr(code)[:40]} is no number")
        if not 0 <= code <= MAX_ERROR_CODE:  # every digit of a code of 4,000 went into each refused photo's detail
            raise BadApiResponse(f"a failure whose code {_shown_number(code)} is no Flickr error code")
        # Whole: FlickrClient takes its keys out, then cuts it to MAX_ERROR_CHARS (a key cut in two kept its half).
        raise flickrapi.FlickrError(f"Error: {code}: {parsed.get('message', '')}", code=code)
    return parsed


def _redacting(secrets: Sequence[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """`each_key_once` over an object whose texts have `secrets` taken out. An endpoint or a proxy echoing the request
    into an answer put our key where callers quote values (a licence that is no licence id, a failure's code, a key
    given twice), in titles stored in the dataset, and in ids; only an error's message was redacted. Done on the
    decoded texts, so that a key written with JSON escapes is found too; each object's own call of the hook has
    seen to the objects inside it. `secrets`: longest first (a secret holding another's text is taken out whole);
    those shorter than MIN_REDACTED_CHARS are left (they would take letters out of every word of an answer)."""
    secrets = [secret for secret in secrets if len(secret) >= MIN_REDACTED_CHARS]
    if not secrets:
        return each_key_once

    def without(value: Any) -> Any:
        if isinstance(value, str):
            for secret in secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, list):
            return [without(item) for item in value]
        return value

    return lambda pairs: each_key_once([(without(key), without(value)) for key, value in pairs])


def _shown_number(number: int) -> str:
    """A number an answer gave, as a message shows it: whole up to 15 digits, else how many digits it has."""
    digits = len(str(abs(number)))
    return str(number) if digits <= 15 else f"of {digits:,} digits"


def _bounded_answer(max_bytes: int) -> Callable[..., requests.Response]:
    """A response hook reading the body itself, at most `max_bytes` of it: flickrapi reads `content`
    whole, which requests would otherwise fill with whatever the server sends.

    The body of an answer other than 200 is not read at all: flickrapi raises on its status alone, after splitting
    the body's text at each '&' and URL-decoding every part for a log line we silence. 60 MB of '&' in a 503 cost
    16 s of CPU and 0.5 GB of memory per attempt, five attempts a call."""

    def hook(response: requests.Response, *args: object, **kwargs: object) -> requests.Response:
        _ASKED.retry_after = None
        if response.status_code != 200:
            if response.status_code in (429, 503):
                _ASKED.retry_after = retry_after_seconds(response.headers.get("Retry-After"), time.time())
            response.close()
            response._content = b""
            return response
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                response.close()
                raise BadApiResponse(f"the answer is over {max_bytes} bytes")
            chunks.append(chunk)
        response._content = b"".join(chunks)  # what `content` returns from now on
        return response

    return hook


def _api_session(max_bytes: int) -> requests.Session:
    """flickrapi's calls go through one requests.Session shared by every flickrapi object in the process (a
    class attribute); each of ours gets its own: every read bounded by the call's deadline, the body by
    `max_bytes`, no redirect (the API answers at its URL), no proxy or .netrc from the environment."""
    session = requests.Session()
    session.trust_env = False
    session.max_redirects = 0
    adapter = DeadlineAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.hooks["response"].append(_bounded_answer(max_bytes))
    return session


class KeyPool:
    """Spreads calls over several API keys, each paced at `per_second` in this worker process:
    a job's call budget is per_second x keys x worker processes. Each call takes the key that is
    free soonest, so keys stay evenly used whichever thread or DoFn instance calls; a key Flickr refuses
    once the job has started is taken by no later call (`refuse`)."""

    def __init__(self, keys: tuple[Credentials, ...], per_second: float) -> None:
        self._pacers = [Pacer(per_second) for _ in keys]
        self._lock = threading.Lock()
        self._refused: set[int] = set()  # keys Flickr refused (error 100) since the start: no longer taken

    def acquire(self, index: int | None = None) -> tuple[int, float]:
        """(index of the key to use, seconds to wait before using it); `index` asks for one key."""
        with self._lock:
            if index is None:
                usable = [i for i in range(len(self._pacers)) if i not in self._refused] or range(len(self._pacers))
                index = min(usable, key=lambda i: self._pacers[i].free_at)
            return index, self._pacers[index].reserve()

    def refuse(self, index: int) -> bool:
        """Takes a key Flickr refused out of use; True while another key is left to take its calls."""
        with self._lock:
            self._refused.add(index)
            return len(self._refused) < len(self._pacers)


class FlickrClient:
    """flickrapi with retries on transient errors and a count of calls per method."""

    # One pool per worker process, key set and rate, shared by every client and thread in it.
    _pools: ClassVar[dict[tuple[tuple[str, ...], float], KeyPool]] = {}
    _pools_lock = threading.Lock()

    def __init__(self, credentials: Credentials | Sequence[Credentials], rest_url: str | None = None,
                 max_retries: int = 4, backoff_base: float = 1.0, timeout: float = 30.0,
                 calls_per_second: float = 0.0, sleep: Callable[[float], None] = time.sleep,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        """`timeout`: seconds for one call, connection to last byte (each attempt)."""
        keys = (credentials,) if isinstance(credentials, Credentials) else tuple(credentials)
        if not keys:
            raise CredentialsError("no Flickr API key given")
        # format="json": flickrapi hands back the answer's bytes, which parsed_answer reads.
        self._apis = [flickrapi.FlickrAPI(k.key, k.secret, format="json", store_token=False, cache=False)
                      for k in keys]
        for api in self._apis:
            if rest_url:
                api.REST_URL = rest_url  # the fixture server, or a proxy
            api.flickr_oauth.session = _api_session(max_answer_bytes)  # shadows the shared class attribute
        self._max_retries, self._backoff, self._sleep = max_retries, backoff_base, sleep
        self._timeout = timeout
        self._max_answer_bytes = max_answer_bytes
        # Longest first: a secret holding another's text is taken out whole.
        self._secrets = sorted({text for k in keys for text in (k.key, k.secret) if text}, key=len, reverse=True)
        self._key_lengths = [len(k.key) for k in keys]
        pool_id = (tuple(fingerprint(k) for k in keys), calls_per_second)
        with FlickrClient._pools_lock:
            self._pool = FlickrClient._pools.setdefault(pool_id, KeyPool(keys, calls_per_second))
        self.calls: Counter[str] = Counter()

    def call(self, method: str, **params: object) -> dict:
        """One API call; retried on error codes 0/105/201 (and those its method documents as temporary:
        RETRYABLE_FOR), HTTP 429 and 5xx, and when nothing answers in
        time. Raises flickrapi.FlickrError with Flickr's code and message (never the key) for an error,
        NoAnswer (a FlickrError without a code) when the retries found no answer, BadApiResponse for an
        answer that is not Flickr's JSON or a redirect (not retried). Our keys and secrets are taken out of every
        text of the answer."""
        return self._call(None, method, params)

    def _call(self, key_index: int | None, method: str, params: dict[str, object],
              retry_unanswered: bool = True) -> dict:
        attempt = 0
        while True:
            index, wait = self._pool.acquire(key_index)  # Flickr allows 3,600 calls per hour per key
            if wait > 0:
                self._sleep(wait)
            self.calls[method] += 1
            Metrics.counter(API_METRICS, method).inc()  # summed over workers into stats.json "api_calls"
            # requests' timeout bounds each read, not the answer; the bytes off the socket are bounded too (WIRE_ROOM)
            scope = deadline_scope(self._timeout, max_bytes=self._max_answer_bytes + WIRE_ROOM)
            try:
                with scope as cutoff:
                    return parsed_answer(self._apis[index].do_flickr_call(method, timeout=self._timeout, **params),
                                         self._secrets)
            except requests.exceptions.TooManyRedirects as err:
                # An answer, not Flickr's (a captive portal, a proxy): the same one would come again. Its Location
                # is not quoted (a portal's may carry a token).
                status = err.response.status_code if err.response is not None else "3xx"
                raise BadApiResponse(f"the answer is a redirect (HTTP {status}), not Flickr's: the API answers at "
                                     "its own URL") from None
            except requests.exceptions.RequestException as err:
                if cutoff.over:  # the same answer would come again: refused, not retried
                    raise BadApiResponse(f"the answer is over {self._max_answer_bytes} bytes (+{WIRE_ROOM} for "
                                         "headers) on the wire") from None
                if not retry_unanswered or attempt >= self._max_retries:
                    raise NoAnswer(f"no answer from the Flickr API after {attempt + 1} attempts: "
                                   f"{type(err).__name__}", type(err).__name__) from None
            except flickrapi.FlickrError as err:  # an HTTP status (flickrapi), or a failure Flickr answered
                code = getattr(err, "code", None)
                # A key refused mid-run (revoked, disabled for its rate): its calls go to the others, at once. It
                # answered each call that took it with error 100 (half a job's pages with two keys, as api_error).
                if code == INVALID_KEY and key_index is None and self._pool.refuse(index):
                    continue
                transient = (code in RETRYABLE_CODES or code in RETRYABLE_FOR.get(method, ())
                             or (code is None and _http_status(err) in (429, 500, 502, 503, 504)))
                if not transient or attempt >= self._max_retries:
                    raise self._redacted(err) from None
                asked = getattr(_ASKED, "retry_after", None) if code is None else None
                if asked is not None:  # the API's own word on when to come back, within MAX_RETRY_AFTER_S
                    self._sleep(min(MAX_RETRY_AFTER_S, max(asked, self._backoff * 2**attempt)))
                    attempt += 1
                    continue
            self._sleep(self._backoff * 2**attempt)
            attempt += 1

    def _redacted(self, err: flickrapi.FlickrError) -> flickrapi.FlickrError:
        """The error with our keys and secrets taken out of its message: it is published (`api_error` details) and
        printed, and an endpoint or a proxy echoing the request would otherwise put them there."""
        message = str(err)
        for secret in self._secrets:
            message = message.replace(secret, REDACTED)
        message = message[:MAX_ERROR_CHARS]  # cut after the keys are out: a key cut at the mark kept its first half
        return err if message == str(err) else flickrapi.FlickrError(message, code=getattr(err, "code", None))

    def check_key(self) -> None:
        """Fails at start with a clear message when any key is refused (error 100) or too short to be taken out of
        answers, naming it by its position only."""
        for position, length in enumerate(self._key_lengths, start=1):
            if length < MIN_REDACTED_CHARS:
                # The key goes with every call, so an endpoint echoing the request (a proxy given --flickr_rest_url,
                # which may take any key) can put it in the answers' texts, published in titles and details; one
                # this short is not taken out of them (`_redacting`). Flickr's own refuses it anyway (error 100). The
                # secret is never sent (it signs the calls), so no answer can echo it: its length is not checked.
                raise CredentialsError(f"Flickr API key {position} of {len(self._apis)} is {length} characters: a "
                                       f"Flickr key is 32 hexadecimal digits, and one under {MIN_REDACTED_CHARS} "
                                       "could not be kept out of the answers' texts")
        for position in range(1, len(self._apis) + 1):
            try:
                # Not retried when nothing answers: a wrong URL or a closed port is said at once.
                self._call(position - 1, "flickr.photos.licenses.getInfo", {}, retry_unanswered=False)
            except NoAnswer as err:  # nothing answered: say where, not who
                raise FlickrUnreachable(f"cannot reach the Flickr API at {self._apis[0].REST_URL}: "
                                        f"{err.cause}") from None
            except BadApiResponse as err:  # an answer that is not Flickr's (a redirect to a portal): say where too
                raise FlickrUnreachable(f"the Flickr API at {self._apis[0].REST_URL} gave no Flickr answer: "
                                        f"{err}") from None
            except flickrapi.FlickrError as err:
                if getattr(err, "code", None) == INVALID_KEY:
                    raise CredentialsError(f"Flickr refused API key {position} of {len(self._apis)} "
                                           "(error 100: invalid key)") from None
                raise


def _http_status(err: Exception) -> int | None:
    text = str(err)
    marker = "Status code "
    if marker in text:
        digits = text.split(marker, 1)[1][:3]
        return int(digits) if digits.isascii() and digits.isdigit() else None
    return None


# CC BY uploads a second, far above any Flickr has seen (~100M CC BY photos in 18 years: ~0.2 a second on average):
# only this much of a range's total sets the split's budget. A range that truly held more would have windows left
# over the depth, each named in an over_search_depth rejection, never dropped.
MAX_MATCHES_PER_SECOND = 5


def count_budget(total: int, span: int, depth: int = SEARCH_DEPTH) -> int:
    """Counts `split_windows` may ask for a range of `span` seconds holding `total` results. Counts that add up
    (the halves of a window hold what it holds) never need more: each level of the split has fewer than
    total/depth windows over the depth, so the whole split asks under 2 x levels x total/depth; twice that leaves
    room for Flickr's approximate totals. The total is the API's answer: taken up to MAX_MATCHES_PER_SECOND over
    the span (a total of "999999999999" gave a budget of 1.7e10, and a day's split asked 172,799 counts)."""
    levels = max(1, math.ceil(math.log2(max(span, 2))))
    plausible = min(total, MAX_MATCHES_PER_SECOND * max(span, 1))
    return 4 * (-(-plausible // depth) + 1) * levels


def split_windows(total_in: Callable[[int, int], int], low: int, high: int,
                  depth: int = SEARCH_DEPTH, max_counts: int | None = None) -> Iterator[tuple[int, int, int]]:
    """(low, high, total) windows of upload time, inclusive at both ends, that together cover
    [low, high] exactly once and each hold at most `depth` results, so that paging through each
    window never reaches the depth past which Flickr repeats results. A one-second window that is
    still over the cap is yielded as it is (it cannot be split further) with its true total.

    At most `max_counts` counts go to splitting (default: `count_budget` of the whole range's total). An API whose
    sub-window totals do not shrink (each half "holds" what the whole does) was asked ~2 x (high - low) times, the
    seconds of all time for a photo with no upload date. Past the budget each window left (at most one per level)
    is counted once and yielded as it is, however large: read to the depth, like a one-second window.

    `total_in(lo, hi)` asks the API for the number of matching photos (one call with per_page=1).
    """
    stack = [(low, high)]
    counts = 0
    while stack:
        lo, hi = stack.pop()
        total = total_in(lo, hi)
        counts += 1
        if max_counts is None:
            max_counts = count_budget(total, high - low + 1, depth)
        if total == 0:
            continue
        if total <= depth or lo == hi or counts >= max_counts:
            yield lo, hi, total
            continue
        middle = (lo + hi) // 2
        stack.append((middle + 1, hi))  # popped second: windows come out in time order
        stack.append((lo, middle))


def page_numbers(total: int, per_page: int = PER_PAGE, depth: int = SEARCH_DEPTH) -> range:
    """The pages (1-based) to read for a search of `total` results: pages past the depth cap only
    repeat results, so a window still over the cap (one second) is read to the cap. Assumes every page holds
    `per_page` results; `search_paging` and `later_pages` plan from what an answer says it served instead."""
    return range(1, -(-min(total, depth) // per_page) + 1)


def answer_count(results: object, name: str) -> int:
    """A search answer's count field (`total`, `pages`, `perpage`): an int or a string of digits (Flickr
    sends either); BadApiResponse naming the field otherwise (a bool, a float, "lots", -4). However large, a count
    only ever plans what the depth allows (`count_budget`, `later_pages`)."""
    value = results.get(name) if isinstance(results, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value):
        return int(value)
    raise BadApiResponse(f"{name} {repr(value)[:40]} is not a count")


@dataclass(frozen=True)
class SearchPaging:
    """What one photos.search answer says of its paging (Flickr documents page, pages, perpage and total on
    every answer); `total` may change from page to page while a search is paged."""

    total: int
    pages: int
    perpage: int


def search_paging(results: object, per_page: int = PER_PAGE) -> SearchPaging:
    """The paging a search answer states, read as hostile: each field a count, and a page size of 1 to the
    `per_page` asked (an API may serve fewer than asked, as a proxy's cap or Flickr's default 100 does; 0 would
    plan endless pages, and more than asked is not an answer to the question). BadApiResponse otherwise."""
    total, pages, perpage = (answer_count(results, name) for name in ("total", "pages", "perpage"))
    if not 1 <= perpage <= per_page:
        raise BadApiResponse(f"perpage {perpage} is not a page size of 1 to the {per_page} asked")
    return SearchPaging(total, pages, perpage)


def later_pages(first: SearchPaging, depth: int = SEARCH_DEPTH) -> range:
    """The pages after the first to read, planned from the first page's answer: as many as its `pages` or its
    `total` over its `perpage` call for, whichever is more (an answer whose fields disagree costs a few more calls,
    never a page unread), and never past the depth, where pages only repeat: at most depth / perpage pages,
    whatever an answer claims."""
    wanted = max(first.pages, -(-first.total // first.perpage))
    return range(2, min(wanted, -(-depth // first.perpage)) + 1)
