"""A polite, bounded image downloader: the part of the fetch stage that speaks HTTP.

Everything here is plain Python (no Beam), so it is tested directly against a local server.
Safety rules, in the order they apply to every hop of a request:
  1. the URL is http(s), unambiguous (no backslash, user info, whitespace or non-ASCII; read the
     same way by urllib.parse and by urllib3, which requests connects with) and its host is on
     the allow-list (redirects too: a redirect off the list is refused, never followed);
  2. a redirect to Flickr's "photo unavailable" placeholder means the photo was deleted;
  3. per-host concurrency and request-rate limits, shared by all threads of the process;
  4. a host name must resolve to public addresses only (an address written in the URL is the allow-list's
     business), and the lookup and the connect are bounded (see `http_deadline`);
  5. connect/read timeouts, a total deadline enforced on every socket read (see `http_deadline`),
     and a body-size limit checked while streaming (decompressed bytes included, and the bytes taken off
     the socket: see `_WIRE_ROOM`);
  6. retries with exponential backoff on 429, 5xx, connection errors and truncated bodies,
     honouring Retry-After for the whole host (`_HostGate.rest`); an answer that is no HTTP (`protocol_error`) is
     the host's doing, not retried.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import http.cookiejar
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import IncompleteRead, InvalidChunkLength, ProtocolError

from pipeline.io.fetch_urls import character_problem, host_allowed, is_placeholder, url_problem
from pipeline.io.http_deadline import Deadline, DeadlineAdapter, deadline_scope
from pipeline.io.pacing import Pacer

MAX_REDIRECTS = 5
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# What one answer may take off the socket beyond --max_bytes: its status line, headers and chunk framing (a real
# answer's are a few kB). The body limit counts decoded bytes only when urllib3 hands some over, and urllib3 reads
# on without returning while a body decodes to nothing; it even keeps a deflate body's bytes until they first decode
# (to retry them as raw deflate). Empty deflate blocks were held that way until the deadline: 48 MiB in 15 s under a
# 1 MiB --max_bytes (test_a_body_that_decodes_to_nothing_is_bounded_on_the_wire).
_WIRE_ROOM = 1 << 20
# An error this close to the deadline is the deadline's doing (timeouts are clamped to it).
_DEADLINE_SLACK = 0.05
_NOAI = re.compile(r"(?<![\w-])(noai|noimageai)(?![\w-])", re.IGNORECASE)


@dataclass(frozen=True)
class FetchConfig:
    allowed_hosts: tuple[str, ...]
    user_agent: str
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 120.0
    max_bytes: int = 20 * 1024 * 1024
    max_retries: int = 3
    backoff_base: float = 1.0
    max_backoff: float = 60.0
    per_host_concurrency: int = 16
    per_host_rps: float = 0.0


@dataclass(frozen=True)
class FetchResult:
    """Either `body` (and the final URL), or a rejection `reason` with a human-readable detail."""

    url: str
    body: bytes = b""
    reason: str = ""
    detail: str = ""
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return not self.reason


def user_agent(version: str, contact: str) -> str:
    return f"pass-pipeline/{version} (+{contact}; CC-BY image dataset builder; honours X-Robots-Tag noai)"


def forbids_ai(x_robots_tag: str) -> bool:
    """X-Robots-Tag carrying noai or noimageai (for any crawler: we read it conservatively)."""
    return bool(_NOAI.search(x_robots_tag or ""))


# A header's whole number: ASCII digits only. A header decodes as latin-1, where '\xb2' is '²', which
# str.isdigit() passes and int() refuses.
_WHOLE_NUMBER = re.compile(r"[0-9]+")


def _backed_off(cfg: FetchConfig, asked: float | None, attempt: int) -> float:
    """The wait before retry `attempt` + 1 (0: the first retry): the backoff, or the host's Retry-After where longer,
    at most max_backoff. The host's word is no shorter wait: `Retry-After: 0` (or a date past) on every answer made
    each retry at once, a burst of max_retries requests at a host that said it was overloaded."""
    return min(cfg.max_backoff, max(asked or 0.0, cfg.backoff_base * 2**attempt))


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP date, in seconds from now; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if _WHOLE_NUMBER.fullmatch(value):  # not str.isdigit(): it passes '²', which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year of 14 digits, which datetime cannot hold
        return None
    if when.tzinfo is None:
        # An HTTP date is GMT (RFC 9110, 5.6.7); the parser gives one without a zone, or with "-0000", no zone, which
        # timestamp() reads in the worker's local time: a rest 9 hours shorter in Tokyo, and the last second of 9999
        # east of Greenwich a year datetime cannot hold (ValueError out of the download, or of a Flickr API call).
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)


class _HostGate:
    """Per-host concurrency (a semaphore) and request rate (a Pacer), and the rest a host asked for (Retry-After)."""

    def __init__(self, concurrency: int, rps: float) -> None:
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pacer = Pacer(rps)
        self._lock = threading.Lock()
        self._rest_until = 0.0
        self.rest_reason = "rate_limited"  # what the answer that began the latest rest was (429 or 503)

    def rest(self, until: float, reason: str = "rate_limited") -> None:
        """No request to this host starts before `until` (time.monotonic()): it answered 429 or 503 with a
        Retry-After. Honoured by the photo that got the answer only, the other photos went on at the full rate (40
        photos all answered "429, Retry-After: 30" were asked for in 3.9 s): the host asked for a rest, not that
        one photo."""
        with self._lock:
            if until >= self._rest_until:
                self._rest_until, self.rest_reason = until, reason

    def rest_left(self, now: float) -> float:
        """Seconds of the host's rest still to come (0 when none)."""
        return max(0.0, self._rest_until - now)

    @contextmanager
    def slot(self, patience: float | None = None) -> Iterator[bool]:
        """Yields True once this thread holds a slot and its start time has come; False, without sleeping, when
        either would take more than `patience` seconds (what is left of the caller's deadline): a photo past its
        deadline fails then, not after queueing behind a slow host. A start time is claimed only when it will be
        used (Pacer.reserve_within)."""
        begun = time.monotonic()
        if not self._slots.acquire(timeout=None if patience is None else max(0.0, patience)):
            yield False
            return
        try:
            delay = self._pacer.reserve_within(None if patience is None else patience - (time.monotonic() - begun))
            if delay is None:
                yield False
            else:
                if delay > 0:
                    time.sleep(delay)
                yield True
        finally:
            self._slots.release()


_GATES: dict[tuple[str, int, float], _HostGate] = {}
_GATES_LOCK = threading.Lock()


def host_gate(host: str, concurrency: int, rps: float) -> _HostGate:
    """The process-wide gate of a host (its name: a photo redirected from http to https on it stays behind one
    gate): every DoFn instance and thread of a worker shares it."""
    key = (host, concurrency, rps)
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = _HostGate(concurrency, rps)
        return gate


class _Retry(Exception):
    def __init__(self, reason: str, detail: str, wait: float | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.wait = reason, detail, wait


class _Stop(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class _OwnRedirectsSession(requests.Session):
    """A session that never prepares a redirect itself: even with allow_redirects=False, requests builds the next
    request of a 30x with a Location (`Response.next`) and reads the whole body first, decoded, before anything
    here sees the response (a 255 kB gzip body on a 302 to a refused host took 515 MiB, past --max_bytes and the
    allow-list). `Fetcher._redirect_target` reads the Location header itself."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Refuses every cookie, both ways."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


class Fetcher:
    """Downloads one URL at a time per calling thread; safe to share across threads.

    A `session` given by the caller should mount `DeadlineAdapter`, or the fetch deadline is only
    checked between body chunks."""

    def __init__(self, config: FetchConfig, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._session = session or self._new_session(config)
        self._sleep = sleep
        self._clock = clock

    @staticmethod
    def _new_session(config: FetchConfig) -> requests.Session:
        session = _OwnRedirectsSession()
        # No cookie is kept: a host could tie our downloads together, make one photo's bytes depend on which was
        # fetched before it, and grow the jar and the Cookie header without bound.
        session.cookies.set_policy(_NoCookies())
        session.headers["User-Agent"] = config.user_agent
        session.headers["Accept"] = "image/avif,image/webp,image/jpeg,image/png,image/*;q=0.8"
        session.trust_env = False  # no proxy or .netrc credentials picked up from the environment
        pool = config.per_host_concurrency + 4
        # Its responses end at the thread's fetch deadline, whatever pace the server sends at, and it connects to
        # public addresses only: an allow-listed name must not lead a worker into its own network.
        adapter = DeadlineAdapter(pool_connections=pool, pool_maxsize=pool, max_retries=0, public_only=True)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def close(self) -> None:
        self._session.close()

    def deadline(self) -> float:
        """When a download started now must end, on this fetcher's clock: one to share between tries of one photo."""
        return self._clock() + self.config.deadline

    def fetch(self, url: str, deadline: float | None = None) -> FetchResult:
        """`url`, within `deadline` (a `deadline()` already taken: a second URL for the same photo gets what is left
        of the first's, not a fresh one) or --fetch_deadline from now."""
        cfg = self.config
        problem = url_problem(url)
        if problem:
            return FetchResult(url, reason="bad_url", detail=f"{problem}: {_shown(url)}")
        if not host_allowed(url, cfg.allowed_hosts):
            return FetchResult(url, reason="host_not_allowed", detail=_describe(url))
        deadline = self.deadline() if deadline is None else deadline
        attempt = 0
        while True:
            try:
                return self._attempt(url, deadline, attempt + 1)
            except _Stop as stop:
                return FetchResult(url, reason=stop.reason, detail=stop.detail, attempts=attempt + 1)
            except _Retry as retry:
                if attempt >= cfg.max_retries:
                    return FetchResult(url, reason=retry.reason, detail=f"{retry.detail} after {attempt + 1} attempts",
                                       attempts=attempt + 1)
                wait = _backed_off(cfg, retry.wait, attempt)
                if self._clock() + wait > deadline:
                    return FetchResult(url, reason=retry.reason,
                                       detail=f"{retry.detail}; next retry would pass the {cfg.deadline:g}s deadline",
                                       attempts=attempt + 1)
                if retry.wait is None:  # a Retry-After's wait is the host's rest, which the next attempt waits out
                    self._sleep(wait)
                attempt += 1

    def _attempt(self, url: str, deadline: float, attempt: int) -> FetchResult:
        """One attempt: follows allowed redirects, returns the body, raises _Retry or _Stop."""
        cfg = self.config
        for _hop in range(MAX_REDIRECTS + 1):
            host = (urlsplit(url).hostname or "").lower()
            gate = host_gate(host, cfg.per_host_concurrency, cfg.per_host_rps)
            with gate.slot(patience=deadline - self._clock()) as started:
                if not started or deadline - self._clock() <= 0:
                    raise _Stop("deadline_exceeded", f"no answer within {cfg.deadline:g}s")
                # Looked at with the slot held, so that no rest another photo's answer began meanwhile is missed.
                rest = gate.rest_left(self._clock())
                if rest > 0:
                    if self._clock() + rest > deadline:
                        # Named as the answer that began the rest: a busy server's 503 is a server_error.
                        raise _Stop(gate.rest_reason, f"the host asked for a rest (Retry-After) ending {rest:.1f}s "
                                                      f"from now, past the {cfg.deadline:g}s deadline")
                    self._sleep(rest)
                left = deadline - self._clock()  # waiting for the slot and the rest counts too
                with deadline_scope(left, max_bytes=cfg.max_bytes + _WIRE_ROOM) as cutoff:
                    try:
                        outcome = self._hop(url, left, cutoff, attempt)
                    except _Retry as retry:
                        if retry.wait is not None:  # the whole host rests, as long as this photo will
                            gate.rest(self._clock() + _backed_off(cfg, retry.wait, attempt - 1), retry.reason)
                        raise
            if isinstance(outcome, FetchResult):
                return outcome
            url = outcome
        raise _Stop("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")

    def _hop(self, url: str, left: float, cutoff: Deadline, attempt: int) -> FetchResult | str:
        """One request: the result, or the URL a redirect points to; raises _Retry or _Stop."""
        cfg = self.config
        try:
            response = self._session.get(url, stream=True, allow_redirects=False,
                                         timeout=(min(cfg.connect_timeout, left), min(cfg.read_timeout, left)))
        except requests.exceptions.RequestException as err:
            raise self._failure(err, cutoff, reading_body=False) from None
        with response:
            status = response.status_code
            if status in REDIRECT_STATUS:
                return self._redirect_target(url, response)
            if status == 200:
                return FetchResult(url, body=self._read_body(response, cutoff), attempts=attempt)
            wait = retry_after_seconds(response.headers.get("Retry-After"), time.time())
            if status == 429:
                raise _Retry("rate_limited", "HTTP 429", wait)
            if status in RETRYABLE_STATUS:
                raise _Retry("server_error", f"HTTP {status}", wait)
            if status == 404:
                raise _Stop("not_found", "HTTP 404")
            if status == 410:
                raise _Stop("gone", "HTTP 410")
            raise _Stop("http_error", f"HTTP {status}")

    def _redirect_target(self, url: str, response: requests.Response) -> str:
        location = response.headers.get("Location", "")
        if not location:
            # Following it would re-request the same URL until too_many_redirects.
            raise _Stop("bad_redirect", f"HTTP {response.status_code} without a Location header")
        # urljoin quietly drops tabs and newlines, so the raw header is checked first; it raises on a bracket
        # left open ("http://[::1/x.jpg").
        problem = character_problem(location)
        try:
            target = urljoin(url, location)
        except ValueError as err:
            problem, target = problem or f"unreadable URL ({err})", ""
        problem = problem or url_problem(target)
        if problem:
            raise _Stop("bad_redirect", f"redirect to {_shown(location)}: {problem}")
        if is_placeholder(target):
            # _shown: a Location of 60 kB was a 60 kB detail, its query string (a signed URL's token) published with it
            raise _Stop("deleted", f"redirected to the photo-unavailable placeholder {_shown(target)}")
        if not host_allowed(target, self.config.allowed_hosts):
            raise _Stop("redirect_not_allowed", f"redirect to {_describe(target)}")
        if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
            # An https download stays https: a downgrade hands the bytes to whoever sits on the path.
            raise _Stop("redirect_not_allowed", f"redirect from https to {_describe(target)}")
        return target

    def _read_body(self, response: requests.Response, cutoff: Deadline) -> bytes:
        cfg = self.config
        if is_placeholder(response.url):
            raise _Stop("deleted", "served the photo-unavailable placeholder")
        robots = response.headers.get("X-Robots-Tag", "")
        if forbids_ai(robots):
            raise _Stop("robots_noai", f"X-Robots-Tag: {robots[:200]}")
        declared = response.headers.get("Content-Length", "")
        # A lie is caught while reading. More than 18 digits is more than any limit (and int() refuses
        # over 4,300 of them).
        if _WHOLE_NUMBER.fullmatch(declared) and (len(declared) > 18 or int(declared) > cfg.max_bytes):
            raise _Stop("too_large", f"Content-Length {declared} > {cfg.max_bytes}")
        chunks, size = [], 0
        try:
            # Decoded chunks: urllib3 (>= 2.6) inflates at most chunk_size bytes per read, so a
            # compression bomb is stopped by the size check below, not by running out of memory.
            for chunk in response.iter_content(chunk_size=64 * 1024):
                size += len(chunk)
                if size > cfg.max_bytes:
                    raise _Stop("too_large", f"body over {cfg.max_bytes} bytes")
                if cutoff.left() <= 0:
                    raise _Stop("deadline_exceeded", f"body not complete within {cfg.deadline:g}s")
                chunks.append(chunk)
        except requests.exceptions.RequestException as err:
            raise self._failure(err, cutoff, reading_body=True, body_read=size) from None
        except ValueError as err:
            # urllib3 reads a chunk size of "-5" (int(line, 16)) and asks http.client for -5 bytes, which raises
            # ValueError; like a chunk size it cannot read ("zz"), a framing no server may send (`_protocol_problem`).
            raise _Stop("protocol_error", f"unreadable chunk size ({_short(err)})") from None
        return b"".join(chunks)

    def _failure(self, err: requests.exceptions.RequestException, cutoff: Deadline,
                 reading_body: bool, body_read: int = 0) -> _Retry | _Stop:
        """The specific reason of a failed request or body read (`body_read`: the body's bytes read before it, decoded),
        and whether it is worth retrying."""
        if cutoff.over:
            return _Stop("too_large", f"answer over {self.config.max_bytes} bytes (+{_WIRE_ROOM} for headers) "
                                      "on the wire")
        if cutoff.refused_address:
            # Names resolve the same way again within a run: not retried.
            return _Stop("address_not_public", cutoff.refused_address)
        if cutoff.hit or cutoff.left() <= _DEADLINE_SLACK:
            return _Stop("deadline_exceeded", f"no complete answer within {self.config.deadline:g}s")
        if isinstance(err, requests.exceptions.ContentDecodingError):
            # The same bytes would fail the same way: not retried.
            if "too many content encodings" in str(err).lower():
                return _Stop("too_many_encodings", _short(err))
            return _Stop("bad_content_encoding", _short(err))
        if isinstance(err, requests.exceptions.InvalidHeader):
            # Headers that contradict each other (two different Content-Lengths) come the same way again: not retried.
            return _Stop("bad_response", _short(err))
        # How much of the body came is the detail's own count: urllib3's ("0 bytes read, 3 more expected") is of
        # its last read alone, within a chunk or a size line, and a cut between chunks says none.
        came = f"; {body_read} bytes of the body came" if reading_body else ""
        if _incomplete_read(err):
            return _Retry("truncated_body", _short(err) + came)
        if reading_body and _chunks_ended_early(err):
            # The same cut as one within a chunk or short of a Content-Length, made at a chunk's boundary: it was a
            # connection_error, where the same cut elsewhere in the body was a truncated_body.
            return _Retry("truncated_body", f"{_short(err)}: the body ended before its last chunk{came}")
        if isinstance(err, requests.exceptions.Timeout):
            return _Retry("timeout", _short(err))
        if reading_body and isinstance(err, requests.exceptions.ConnectionError) and "timed out" in str(err).lower():
            return _Retry("timeout", _short(err))  # urllib3 reports a read timeout in mid-body as a connection error
        if _protocol_problem(err):
            # The host answered, but not in HTTP (or TLS) a client can read: its doing, not the network's. It was a
            # connection_error, counted against --max_failure_rate (one such host among many made a healthy run
            # refused), and retried for the same bytes again: not retried.
            return _Stop("protocol_error", _short(err))
        return _Retry("connection_error", _short(err))


def _causes(err: BaseException) -> Iterator[BaseException]:
    """`err` and what it wraps: its cause and context, urllib3's `reason` (MaxRetryError) and the exceptions among
    its arguments (ProtocolError("Connection aborted.", BadStatusLine(...)))."""
    seen: set[int] = set()
    todo = [err]
    while todo and len(seen) < 32:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        yield one
        wrapped = [one.__cause__, one.__context__, getattr(one, "reason", None), *one.args]
        todo.extend(inner for inner in wrapped if isinstance(inner, BaseException))


# urllib3's words for a chunked body's size line or trailer line over its limit (64 KiB): a bare ProtocolError, as
# "Response ended prematurely" is (`_chunks_ended_early`), told apart by its message alone.
_OVERLONG_CHUNK_LINES = (("Response chunk size line exceeded maximum allowed length",),
                         ("Response chunk trailer line exceeded maximum allowed length",))


def _protocol_problem(err: requests.exceptions.RequestException) -> bool:
    """The host answered what a client cannot read as HTTP: another protocol or garbage where the status line goes
    (BadStatusLine), a status or header line over 64 KiB, over 100 headers, a chunk size that is no number, a chunk
    size or trailer line over 64 KiB, or a TLS handshake that failed on what the host sent (a certificate that does
    not verify, plain HTTP on an https port). Not a connection closed before any answer (RemoteDisconnected, also
    what a keep-alive connection the host closed gives), nor a TLS handshake the host hung up on (SSLEOFError,
    SSLZeroReturnError): those are connection errors, retried, as a reset is."""
    causes = list(_causes(err))
    if any(isinstance(cause, InvalidChunkLength) for cause in causes):  # an IncompleteRead by class only
        return True
    # A line no server sends, as a header line that long: it was a connection_error, retried for the same garbage
    # and counted against --max_failure_rate as the network's failure
    if any(isinstance(cause, ProtocolError) and cause.args in _OVERLONG_CHUNK_LINES for cause in causes):
        return True
    hung_up = (http.client.RemoteDisconnected, http.client.IncompleteRead, ssl.SSLEOFError, ssl.SSLZeroReturnError)
    return not any(isinstance(cause, hung_up) for cause in causes) and any(
        isinstance(cause, (http.client.HTTPException, ssl.SSLError)) for cause in causes)


def _incomplete_read(err: requests.exceptions.RequestException) -> bool:
    """The connection closed before Content-Length bytes (urllib3's IncompleteRead) or the end of
    a chunk (http.client's) arrived. Not a chunk size line that is no number (urllib3's InvalidChunkLength, an
    IncompleteRead by class): a truncated line still reads as a smaller size, so that is the host's garbage."""
    cause = err.args[0] if err.args else None
    return isinstance(cause, ProtocolError) and any(
        isinstance(arg, (IncompleteRead, http.client.IncompleteRead)) and not isinstance(arg, InvalidChunkLength)
        for arg in cause.args)


def _chunks_ended_early(err: requests.exceptions.RequestException) -> bool:
    """The connection closed where a chunked body's next chunk size line belongs, before its last (0-size) chunk:
    urllib3 reads an empty line there and raises a bare ProtocolError ("Response ended prematurely"), no
    IncompleteRead (a cut within a chunk or its size line gives one). Not a reset (its ProtocolError wraps the
    OSError) nor a size line over urllib3's limit (another message)."""
    return any(isinstance(cause, ProtocolError) and cause.args == ("Response ended prematurely",)
               for cause in _causes(err))


def masked_url(url: str) -> str:
    """`url` with its user info (it may be a password or a token) and its query string and fragment masked: what a
    message or a published detail may show of it (a takedown list's entry too)."""
    # The user info before the host however the slashes after the scheme are written ("http:/u:p@h", backslashes,
    # none): only after "//" was it masked, and such a URL, refused as bad_url, published its password.
    masked = re.sub(r"^([^/\\?#@]*?:)?([/\\]*)[^/\\?#]*@", lambda m: f"{m[1] or ''}{m[2]}…@", url)
    return re.sub(r"[?#].*", "?…", masked, flags=re.DOTALL)


def _shown(url: str) -> str:
    """A refused URL for messages, 200 characters at most, masked (`masked_url`)."""
    return repr(masked_url(url)[:200])


def _describe(url: str) -> str:
    """A URL for messages: scheme and host only, so no query string (tokens) ends up in outputs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else repr(url[:100])


def _short(err: Exception) -> str:
    # requests' messages repeat the full URL with its query; keep the exception type and a prefix.
    text = re.sub(r"\?[^\s'\"]*", "?…", str(err))
    return f"{type(err).__name__}: {text}"[:300]
