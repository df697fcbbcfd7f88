import contextlib
import functools
import gzip
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from pipeline.fixtures.static_server import PLACEHOLDER_URL, Response, StaticServer, image, redirect, status
from pipeline.io.http_client import (
    FetchConfig,
    Fetcher,
    forbids_ai,
    host_allowed,
    host_gate,
    retry_after_seconds,
    user_agent,
)
from tests.conftest import local_time_zone, real_jpeg

JPEG = real_jpeg()


@pytest.fixture
def server():
    with StaticServer() as srv:
        yield srv


def fetcher(server, sleeps=None, **overrides) -> Fetcher:
    settings: dict[str, Any] = dict(  # FetchConfig's fields by name, each of its own type
        allowed_hosts=(server.host,), user_agent=user_agent("test", "https://example.org/contact"), connect_timeout=2.0,
        read_timeout=2.0, deadline=20.0, max_retries=3, backoff_base=0.01, max_backoff=5.0)
    settings.update(overrides)
    record = sleeps.append if sleeps is not None else (lambda seconds: None)
    return Fetcher(FetchConfig(**settings), sleep=record)


def test_downloads_and_sends_identifiable_user_agent(server):
    url = server.add("/1/1_ab.jpg", image(JPEG))
    result = fetcher(server).fetch(url)
    assert result.ok and result.body == JPEG and result.url == url
    assert "pass-pipeline/test" in server.user_agents[-1] and "https://example.org/contact" in server.user_agents[-1]


@pytest.mark.parametrize("code,reason", [(404, "not_found"), (410, "gone"), (403, "http_error")])
def test_permanent_http_errors_are_not_retried(server, code, reason):
    url = server.add("/x.jpg", status(code))
    result = fetcher(server).fetch(url)
    assert (result.ok, result.reason, result.attempts) == (False, reason, 1)
    assert server.hits["/x.jpg"] == 1


def test_500_then_success_is_retried_with_exponential_backoff(server):
    sleeps = []
    url = server.add("/x.jpg", status(500), status(503), image(JPEG))
    result = fetcher(server, sleeps).fetch(url)
    assert result.ok and result.body == JPEG and result.attempts == 3
    assert sleeps == pytest.approx([0.01, 0.02])


def test_a_retry_whose_backoff_would_pass_the_deadline_is_not_waited_for(server):
    """A retry is not begun when its backoff alone would outlast the fetch deadline: the photo fails at once with the
    server's reason, instead of waiting 10 s (here: the sleep recorded) for an attempt that cannot finish in time."""
    sleeps = []
    url = server.add("/x.jpg", status(500), image(JPEG))
    result = fetcher(server, sleeps, deadline=5.0, backoff_base=10.0, max_backoff=60.0).fetch(url)
    assert (result.reason, result.attempts, sleeps, server.hits["/x.jpg"]) == ("server_error", 1, [], 1), result
    assert "next retry would pass the 5s deadline" in result.detail


def test_429_honours_retry_after(server):
    sleeps = []
    url = server.add("/x.jpg", status(429, Retry_After="3"), image(JPEG))
    result = fetcher(server, sleeps).fetch(url)
    assert result.ok and sleeps == [pytest.approx(3.0, abs=0.5)]  # the host's rest, waited out before the retry


def test_persistent_429_gives_up_after_max_retries(server):
    sleeps = []
    url = server.add("/x.jpg", status(429, Retry_After="1"))
    result = fetcher(server, sleeps, max_retries=2).fetch(url)
    assert result.reason == "rate_limited" and server.hits["/x.jpg"] == 3
    assert sleeps == [pytest.approx(1.0, abs=0.5)] * 2


def test_a_retry_after_rests_the_whole_host_not_only_the_photo_that_got_it(server):
    """Honoured by the photo that got it only, the other photos went on at the full rate (40 photos all answered
    "429, Retry-After: 30" were asked for in 3.9 s). Now every photo of the host waits the rest out, and one whose
    deadline comes first fails without asking."""
    limited = server.add("/a.jpg", status(429, Retry_After="2"), image(JPEG))
    other = server.add("/b.jpg", image(JPEG), image(JPEG))
    assert fetcher(server, max_retries=0).fetch(limited).reason == "rate_limited"  # its 429 rests the host 2 s
    sleeps = []
    assert fetcher(server, sleeps).fetch(other).ok and sleeps == [pytest.approx(2.0, abs=0.5)]
    resting = server.add("/c.jpg", status(429, Retry_After="30"))
    fetcher(server, max_retries=0, max_backoff=30.0).fetch(resting)
    result = fetcher(server, deadline=5.0).fetch(other)
    assert result.reason == "rate_limited" and "rest" in result.detail and server.hits["/b.jpg"] == 1
    with StaticServer() as other_port:  # the host is its name: a photo sent from http to https on it rests too
        url = other_port.add("/d.jpg", image(JPEG))
        assert fetcher(other_port, deadline=5.0).fetch(url).reason == "rate_limited" and not other_port.hits



def test_a_retry_after_shorter_than_the_backoff_waits_the_backoff(server):
    """`Retry-After: 0` (or a date already past) on a 429 made every retry at once: a host answering it to each
    request (a misconfigured or hostile one) was asked max_retries more times in a burst, where a 429 with no
    Retry-After backs off. The host's word is a floor on the wait, never under the backoff."""
    sleeps = []
    url = server.add("/x.jpg", status(429, Retry_After="0"), status(503, Retry_After="Mon, 01 Jan 2001 00:00:00 GMT"),
                     image(JPEG))
    assert fetcher(server, sleeps, backoff_base=0.5).fetch(url).ok and server.hits["/x.jpg"] == 3
    assert sleeps == [pytest.approx(0.5, abs=0.2), pytest.approx(1.0, abs=0.2)]


def test_a_photo_failing_within_a_rest_a_503_began_is_a_server_error():
    """It was rate_limited whatever began the rest: a busy server read as our asking too fast."""
    with StaticServer() as server:
        busy = server.add("/a.jpg", status(503, Retry_After="30"))
        assert fetcher(server, max_retries=0, max_backoff=30.0).fetch(busy).reason == "server_error"
        result = fetcher(server, deadline=5.0).fetch(server.add("/b.jpg", image(JPEG)))
        assert result.reason == "server_error" and "rest" in result.detail and not server.hits.get("/b.jpg")


def test_retry_after_is_capped_by_max_backoff_and_deadline(server):
    url = server.add("/x.jpg", status(503, Retry_After="3600"))
    result = fetcher(server, [], max_backoff=60.0, deadline=10.0).fetch(url)
    assert result.reason == "server_error" and "deadline" in result.detail


def test_read_timeout_is_retried_then_reported(server):
    url = server.add("/slow.jpg", Response(200, JPEG, delay=0.5))
    result = fetcher(server, read_timeout=0.1, max_retries=1).fetch(url)
    assert result.reason == "timeout" and server.hits["/slow.jpg"] == 2


def test_slow_then_fast_succeeds(server):
    url = server.add("/x.jpg", Response(200, JPEG, delay=0.5), image(JPEG))
    assert fetcher(server, read_timeout=0.1).fetch(url).ok


def test_redirect_within_allow_list_is_followed(server):
    target = server.add("/real.jpg", image(JPEG))
    url = server.add("/moved.jpg", redirect(target, 301))
    result = fetcher(server).fetch(url)
    assert result.ok and result.url == target


def test_redirect_off_allow_list_is_refused_not_followed(server):
    url = server.add("/x.jpg", redirect("http://evil.example.com/x.jpg"))
    result = fetcher(server).fetch(url)
    assert result.reason == "redirect_not_allowed" and "evil.example.com" in result.detail


@pytest.mark.parametrize(("source", "location", "followed"), [
    ("https://cdn.example.org/a.jpg", "http://cdn.example.org/b.jpg", False),  # a downgrade, same host
    ("https://cdn.example.org/a.jpg", "//cdn.example.org/b.jpg", True),  # scheme-relative: stays https
    ("https://cdn.example.org/a.jpg", "https://cdn.example.org/b.jpg", True),
    ("http://cdn.example.org/a.jpg", "https://cdn.example.org/b.jpg", True),  # an upgrade is fine
])
def test_an_https_download_is_never_redirected_to_http(source, location, followed):
    """A redirect is checked before any request is made to its target (no TLS server needed here): the
    allow-list and the scheme. The host is allowed in every case; only a downgrade is refused."""
    import requests

    from pipeline.io.http_client import _Stop

    answer = requests.Response()
    answer.status_code, answer.headers["Location"] = 302, location
    cdn = Fetcher(FetchConfig(allowed_hosts=("cdn.example.org",), user_agent="t"))
    if followed:
        assert cdn._redirect_target(source, answer).startswith("https://cdn.example.org/b.jpg")
    else:
        with pytest.raises(_Stop) as stop:
            cdn._redirect_target(source, answer)
        assert stop.value.reason == "redirect_not_allowed" and "from https" in stop.value.detail


def test_redirect_to_placeholder_means_deleted(server):
    for path, location in [("/a.jpg", PLACEHOLDER_URL),
                           ("/b.jpg", "https://l.yimg.com/g/images/photo_unavailable.gif"),
                           ("/c.jpg", "https://s.yimg.com/pw/images/de-de/photo_unavailable_l.png")]:
        result = fetcher(server).fetch(server.add(path, redirect(location)))
        assert result.reason == "deleted" and not result.body


def test_a_placeholder_redirect_s_detail_is_bounded_and_keeps_no_query_string(server):
    """The placeholder a photo was redirected to was named whole in its `deleted` detail: a Location of 60 kB (the
    most a header line holds) was a 60 kB rejection, and a query string in it (a signed URL's token) was published
    with it. It is named as any URL a message shows: its query masked, 200 characters at most."""
    location = "https://s.yimg.com/pw/" + "a/" * 30_000 + "photo_unavailable.png?sig=TOKEN-123"
    result = fetcher(server).fetch(server.add("/a.jpg", redirect(location)))
    assert result.reason == "deleted" and len(result.detail) < 300 and "TOKEN-123" not in result.detail
    assert "redirected to the photo-unavailable placeholder 'https://s.yimg.com/pw/a/a/" in result.detail


def test_a_bad_url_s_detail_is_bounded_whatever_its_scheme(server):
    """A URL's scheme was quoted whole in its `bad_url` detail: 4,000 letters before '://' (a source allows URLs of
    4,096 characters) were a 4 kB rejection, beside the URL's own 200 characters."""
    result = fetcher(server).fetch("a" * 4000 + "://example.org/x.jpg")
    assert result.reason == "bad_url" and len(result.detail) < 400, len(result.detail)
    assert result.detail.startswith("scheme 'aaaa") and "is not http or https" in result.detail


def test_redirect_loop_stops(server):
    url = server.add("/loop.jpg", redirect("/loop.jpg"))
    assert fetcher(server).fetch(url).reason == "too_many_redirects"


def test_a_chain_of_more_than_five_redirects_is_refused_and_five_are_followed(server):
    """Redirects are followed at most MAX_REDIRECTS (5) times, each to a new URL: a loop is not the only way to make a
    download hop for ever (a chain of distinct URLs). The loop test alone let the bound be anything."""
    urls = [server.add(f"/r{i}.jpg", redirect(f"/r{i + 1}.jpg")) for i in range(6)]
    server.add("/r6.jpg", image(JPEG))
    assert fetcher(server).fetch(urls[0]).reason == "too_many_redirects"
    assert server.hits["/r5.jpg"] == 1 and server.hits["/r6.jpg"] == 0
    assert fetcher(server).fetch(urls[1]).ok


def test_host_not_on_allow_list_is_never_contacted(server):
    url = server.add("/x.jpg", image(JPEG))
    result = fetcher(server, allowed_hosts=("live.staticflickr.com",)).fetch(url)
    assert result.reason == "host_not_allowed" and server.hits["/x.jpg"] == 0


def test_body_over_max_bytes_is_refused(server):
    url = server.add("/big.jpg", image(b"\xff" * 5000))
    assert fetcher(server, max_bytes=4000).fetch(url).reason == "too_large"


def test_a_body_without_a_content_length_is_refused_past_max_bytes():
    """An answer that declares no length is bounded while it is read: 5,000 bytes under a max_bytes of 4,000 are
    too_large (the Content-Length check alone refused the test's other bodies, whatever the read allowed)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n"
    with RawServer(send_then(head, b"\xff" * 5000)) as server:
        result = fetcher(server, max_bytes=4000, max_retries=0).fetch(server.url("/x.jpg"))
    assert (result.reason, result.detail) == ("too_large", "body over 4000 bytes"), result


def test_a_declared_length_over_max_bytes_is_refused_before_the_body_is_read():
    """A Content-Length over max_bytes is refused on its word, before any of the body is waited for: a server that
    declares 1 MB and sends two bytes is too_large at once, not a broken download retried (what reading it gave)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n"
    with RawServer(send_then(head, b"\xff\xd8")) as server:
        result = fetcher(server, max_bytes=4000, max_retries=0).fetch(server.url("/x.jpg"))
    assert (result.reason, result.detail) == ("too_large", "Content-Length 1000000 > 4000"), result


def test_x_robots_tag_noai_is_honoured(server):
    url = server.add("/x.jpg", image(JPEG, **{"X-Robots-Tag": "noindex, noimageai"}))
    assert fetcher(server).fetch(url).reason == "robots_noai"


def test_connection_refused_is_a_connection_error(server):
    result = fetcher(server, max_retries=1, allowed_hosts=("127.0.0.1:9",)).fetch("http://127.0.0.1:9/x.jpg")
    assert result.reason == "connection_error"


def test_robots_and_retry_after_parsing():
    assert forbids_ai("noai") and forbids_ai("noindex, NoImageAI") and not forbids_ai("noindex, noarchive")
    assert retry_after_seconds("120", 0) == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470) == pytest.approx(10)
    assert retry_after_seconds("soon", 0) is None


def test_host_gate_spaces_requests_by_rate():
    gate = host_gate("rate.test", 4, 20.0)
    start = time.monotonic()
    for _ in range(5):
        with gate.slot():
            pass
    assert time.monotonic() - start >= 0.19  # 5 starts at 20/s span at least 4 intervals of 50 ms


def test_a_photo_does_not_wait_past_its_deadline_for_a_busy_or_slow_host(server):
    url = server.add("/x.jpg", image(JPEG))
    # Concurrency: the host's one slot is held for 3 s by another photo.
    busy = fetcher(server, deadline=0.5, per_host_concurrency=1, per_host_rps=0.0)
    holder = threading.Event()
    gate = host_gate("127.0.0.1", 1, 0.0)  # the gate of the URL's host name

    def hold() -> None:
        with gate.slot():
            holder.set()
            time.sleep(3)
    holding = threading.Thread(target=hold, daemon=True)
    holding.start()
    assert holder.wait(60)  # the slot held before the fetch (unchecked, a thread started late let the fetch take it)
    started = time.monotonic()
    result = busy.fetch(url)
    assert result.reason == "deadline_exceeded" and time.monotonic() - started < 1.5
    holding.join()  # gates are process-wide: leave this one free for other tests
    # Rate: one start each 10 s; the next photo's start time lies past its 0.5 s deadline, so it fails at once
    # instead of sleeping 10 s first.
    slow = fetcher(server, deadline=0.5, per_host_rps=0.1)
    assert slow.fetch(url).ok
    started = time.monotonic()
    result = slow.fetch(url)
    assert result.reason == "deadline_exceeded" and time.monotonic() - started < 0.4


def test_photos_that_give_up_on_a_rate_limited_host_leave_its_start_times_to_later_ones():
    """Each photo past its deadline claimed a start time it never used: after a burst of 100 at 1/s the next start
    lay 99 s ahead, and every photo for that host failed for minutes while it received nothing."""
    gate = host_gate("burst.test", 4, 1.0)
    with gate.slot(patience=0.5) as started:
        assert started
    for _ in range(100):
        with gate.slot(patience=0.5) as started:
            assert not started  # the next start is ~1 s away, past the 0.5 s deadline
    assert gate._pacer.free_at - time.monotonic() < 1.0  # the 100 claimed nothing
    time.sleep(1.0)
    with gate.slot(patience=0.5) as started:
        assert started


# --- 1. the URL checked is the URL fetched -------------------------------------------------------------------

@pytest.fixture
def two_servers():
    with StaticServer() as allowed, StaticServer() as other:
        yield allowed, other


def _bypass_url(allowed: StaticServer, other: StaticServer) -> str:
    # urllib.parse reads host `allowed` (after the last @); urllib3, which requests uses, reads `other`.
    return f"http://{other.host}\\@{allowed.host}/x.jpg"


def test_backslash_userinfo_url_is_refused_not_fetched_from_another_host(two_servers):
    allowed, other = two_servers
    allowed.add("/x.jpg", image(JPEG))
    result = fetcher(allowed).fetch(_bypass_url(allowed, other))
    assert result.reason == "bad_url" and "backslash" in result.detail and allowed.host in result.detail
    assert sum(other.hits.values()) == 0 and sum(allowed.hits.values()) == 0


def test_redirect_to_backslash_userinfo_url_is_refused(two_servers):
    allowed, other = two_servers
    url = allowed.add("/r.jpg", redirect(_bypass_url(allowed, other)))
    result = fetcher(allowed).fetch(url)
    assert result.reason == "bad_redirect" and "backslash" in result.detail
    assert sum(other.hits.values()) == 0 and allowed.hits["/r.jpg"] == 1


@pytest.mark.parametrize("userinfo", ["user@", "user:secret@", ":secret@", "a;b@"])
def test_url_with_userinfo_is_refused_and_password_not_echoed(server, userinfo):
    server.add("/x.jpg", image(JPEG))
    result = fetcher(server).fetch(f"http://{userinfo}{server.host}/x.jpg")
    assert result.reason == "bad_url" and "user info" in result.detail and "secret" not in result.detail
    assert sum(server.hits.values()) == 0


def test_redirect_with_userinfo_is_refused(server):
    url = server.add("/r.jpg", redirect(f"http://user:secret@{server.host}/x.jpg"))
    server.add("/x.jpg", image(JPEG))
    result = fetcher(server).fetch(url)
    assert result.reason == "bad_redirect" and "secret" not in result.detail and server.hits["/x.jpg"] == 0


def test_url_whose_host_parses_differently_is_refused(server):
    # urllib.parse reads host '127.0.0.%31', urllib3 percent-decodes it to '127.0.0.1': a wildcard
    # allow-list entry must not be matched against one spelling while the other is contacted.
    host, port = server.host.split(":")
    url = f"http://{host[:-1]}%31:{port}/x.jpg"
    server.add("/x.jpg", image(JPEG))
    assert not host_allowed(url, ("127.0.0.*",))
    result = fetcher(server, allowed_hosts=("127.0.0.*",)).fetch(url)
    assert result.reason == "bad_url" and sum(server.hits.values()) == 0


# --- answers StaticServer cannot give: a raw TCP server scripted byte by byte -------------------------------

Script = Callable[[socket.socket, threading.Event], None]


class RawServer:
    """Accepts connections on 127.0.0.1, reads each request's head, then runs `script(conn, stop)` on it."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connections = 0
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    def __enter__(self) -> "RawServer":
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(2)
        self._listener.close()
        for thread in self._threads:
            thread.join(2)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                self._script(conn, self._stop)
            except OSError:
                pass  # the client gave up: that is what most of these tests want


def trickle(data: bytes, interval: float, give_up_after: float = 8.0) -> Script:
    """Send `data` one byte every `interval` seconds (then hang up after `give_up_after` at most)."""
    def script(conn: socket.socket, stop: threading.Event) -> None:
        started = time.monotonic()
        for byte in data:
            if stop.wait(interval) or time.monotonic() - started > give_up_after:
                return
            conn.sendall(bytes([byte]))
    return script


def send_then(head: bytes, body: bytes = b"", then_trickle: bytes = b"", interval: float = 0.25) -> Script:
    def script(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head + body)
        trickle(then_trickle, interval)(conn, stop)
    return script


# --- 2. the fetch deadline bounds the whole download, whatever the server does -------------------------------

HEAD_1000 = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n"


@pytest.mark.parametrize("script", [
    trickle(HEAD_1000 + b"\xff" * 1000, 0.25),  # headers trickled
    send_then(HEAD_1000, b"\xff\xd8", then_trickle=b"\xff" * 998),  # body trickled
], ids=["headers", "body"])
def test_deadline_bounds_a_trickling_server(script):
    with RawServer(script) as server:
        started = time.monotonic()
        result = fetcher(server, deadline=2.0, read_timeout=5.0).fetch(server.url("/x.jpg"))
        elapsed = time.monotonic() - started
    assert result.reason == "deadline_exceeded" and "2s" in result.detail
    assert 1.9 <= elapsed < 3.5


def test_deadline_applies_to_each_thread_separately():
    # A fresh fetch in another thread gets its own deadline, not what is left of a slow one's.
    with RawServer(trickle(HEAD_1000 + b"\xff" * 1000, 0.25)) as slow, StaticServer() as fast:
        url = fast.add("/x.jpg", image(JPEG))
        shared = Fetcher(FetchConfig(allowed_hosts=(slow.host, fast.host), user_agent="test", deadline=1.5,
                                     read_timeout=5.0))
        results: dict[str, object] = {}
        slow_thread = threading.Thread(target=lambda: results.update(slow=shared.fetch(slow.url("/x.jpg"))))
        slow_thread.start()
        time.sleep(1.2)
        results["fast"] = shared.fetch(url)
        slow_thread.join(5)
    assert results["slow"].reason == "deadline_exceeded" and results["fast"].ok


# --- 3. specific reasons ------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    HEAD_1000 + b"\xff\xd8" * 5,  # 10 of 1000 bytes, then the connection closes
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789",  # 10 of a 16-byte chunk
], ids=["content-length", "chunked"])
def test_body_cut_short_is_truncated_body_and_retried(answer):
    with RawServer(send_then(answer)) as server:
        result = fetcher(server, max_retries=1).fetch(server.url("/x.jpg"))
        assert server.connections == 2
    assert result.reason == "truncated_body" and "10 bytes read" in result.detail and result.attempts == 2


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(("body", "said"), [
    # two whole chunks, closed where the next chunk's size line goes
    (b"5\r\n01234\r\n5\r\n56789\r\n", "before its last chunk; 10 bytes of the body came"),
    # closed within a size line ("3…"): urllib3's count is of its last read alone, the body's is the detail's own
    (b"5\r\n01234\r\n5\r\n56789\r\n3", "3 more expected)); 10 bytes of the body came"),
    # before a chunk's closing CRLF: urllib3 hands on no chunk without it, so the second chunk's 5 bytes did not come
    (b"5\r\n01234\r\n5\r\n56789", "2 more expected)); 5 bytes of the body came"),
], ids=["between-chunks", "within-a-size-line", "before-a-chunk-s-crlf"])
def test_a_chunked_body_cut_before_its_last_chunk_is_truncated_body_as_a_content_length_cut_is(body, said):
    """A chunked body ends with a chunk of size 0; one the host hangs up on at a chunk's boundary was a
    connection_error (urllib3's "Response ended prematurely"), counted against --max_failure_rate as the network's
    failure, where a body cut short of its Content-Length, or within a chunk, is a truncated_body. Both are retried."""
    with RawServer(send_then(CHUNKED_HEAD + body)) as server:
        result = fetcher(server, max_retries=1).fetch(server.url("/x.jpg"))
        assert server.connections == 2
    assert (result.reason, result.attempts) == ("truncated_body", 2), result
    assert said in result.detail


def test_a_negative_chunk_size_is_a_broken_body_not_an_exception():
    """urllib3 reads the chunk size `-5` (int(line, 16)) and asks http.client for -5 bytes: the ValueError left
    fetch() (the stage filed an internal_error). It is a framing no server may send, as an unreadable size (`zz`)."""
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n0123456789\r\n0\r\n\r\n"
    with RawServer(send_then(answer)) as server:
        result = fetcher(server, max_retries=1).fetch(server.url("/x.jpg"))
        assert server.connections == 1
    assert result.reason == "protocol_error" and "chunk" in result.detail and result.attempts == 1


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH_9.6\r\n",  # another protocol on the port
    b"\x00\x00\x12\x04\x00\x00\x00\x00\x00",  # an HTTP/2 frame to an HTTP/1.1 request
    b"HTTP/1.1 abc OK\r\nContent-Length: 3\r\n\r\nabc",  # a malformed status line
    b"HTTP/1.1 200 " + b"O" * 70_000 + b"\r\nContent-Length: 3\r\n\r\nabc",  # a status line over 64 KiB
    b"HTTP/1.1 200 OK\r\nX-Filler: " + b"a" * 70_000 + b"\r\nContent-Length: 3\r\n\r\nabc",  # a header line too
    b"HTTP/1.1 200 OK\r\n" + b"X-Filler: a\r\n" * 150 + b"Content-Length: 3\r\n\r\nabc",  # over 100 headers
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n0123456789\r\n0\r\n\r\n",  # a size of no number
], ids=["other-protocol", "http2-frame", "status-line", "long-status-line", "long-header", "many-headers",
        "chunk-size"])
def test_a_host_answering_what_is_not_http_is_a_protocol_error_not_retried(answer):
    """It was a connection_error: tried again for the same garbage, and counted as the network's failure against
    --max_failure_rate, so one such host among many photos' hosts got a healthy run refused."""
    with RawServer(send_then(answer)) as server:
        result = fetcher(server, max_retries=2).fetch(server.url("/x.jpg"))
        assert (result.reason, result.attempts, server.connections) == ("protocol_error", 1, 1), result


@pytest.mark.parametrize("body", [
    b"5" + b"0" * 70_000 + b"\r\n01234\r\n0\r\n\r\n",  # a chunk size line over urllib3's 64 KiB
    b"5;" + b"x" * 70_000 + b"\r\n01234\r\n0\r\n\r\n",  # a chunk extension making it so
    b"5\r\n01234\r\n0\r\nX-Filler: " + b"a" * 70_000 + b"\r\n\r\n",  # a trailer line after the last chunk
], ids=["chunk-size-line", "chunk-extension", "trailer-line"])
def test_a_chunk_size_or_trailer_line_over_urllib3s_limit_is_a_protocol_error_not_retried(body):
    """urllib3 reads a chunked body's size and trailer lines up to 64 KiB, refusing a longer one with a bare
    ProtocolError ("Response chunk size line exceeded maximum allowed length"): it was a connection_error, retried
    for the same garbage and counted as the network's failure against --max_failure_rate, where a size that is no
    number is the host's protocol_error. No server sends such a line, as none sends a status or header line that
    long."""
    with RawServer(send_then(CHUNKED_HEAD + body)) as server:
        result = fetcher(server, max_retries=2).fetch(server.url("/x.jpg"))
        assert (result.reason, result.attempts, server.connections) == ("protocol_error", 1, 1), result
    assert "exceeded maximum allowed length" in result.detail, result


def test_a_host_hanging_up_is_still_a_connection_error_and_retried():
    """A connection closed before any answer is also what a keep-alive connection the host closed meanwhile gives:
    not taken for a protocol error (nor for a body cut short: there is no body)."""
    with RawServer(send_then(b"")) as server:
        result = fetcher(server, max_retries=1).fetch(server.url("/x.jpg"))
        assert (result.reason, result.attempts, server.connections) == ("connection_error", 2, 2), result


class TlsServer(RawServer):
    """Accepts connections on 127.0.0.1 and runs `answer(conn)` on each at once, its request unread: an https URL's
    TLS handshake meets whatever it sends."""

    def __init__(self, answer: Callable[[socket.socket], None]) -> None:
        super().__init__(lambda conn, stop: answer(conn))

    def url(self, path: str) -> str:
        return f"https://{self.host}{path}"

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            with contextlib.suppress(OSError):  # the client gave up
                self._script(conn, self._stop)


def _self_signed(directory) -> ssl.SSLContext:
    """A server context presenting a certificate no client trusts (made for 127.0.0.1)."""
    pytest.importorskip("cryptography")  # google-auth's dependency, installed with Beam's [gcp] extra
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


@pytest.mark.parametrize("case", ["plain-http", "untrusted-certificate", "hang-up"])
def test_a_tls_handshake_failing_on_what_the_host_sent_is_a_protocol_error(case, tmp_path):
    """Plain HTTP on an https port, a certificate that does not verify: the host's doing, as an answer that is no
    HTTP is (they were connection errors, retried and counted as the network's). A host hanging up in the
    handshake is still a connection error, retried."""
    def plain_http(conn: socket.socket) -> None:
        conn.recv(4096)  # the client's hello
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.recv(4096)

    def hang_up(conn: socket.socket) -> None:
        conn.recv(4096)

    answer = plain_http if case == "plain-http" else hang_up
    if case == "untrusted-certificate":
        context = _self_signed(tmp_path)

        def answer(conn: socket.socket) -> None:
            with contextlib.suppress(ssl.SSLError):  # the client refuses the certificate
                context.wrap_socket(conn, server_side=True).recv(4096)
    with TlsServer(answer) as server:
        result = fetcher(server, max_retries=1).fetch(server.url("/x.jpg"))
        expected = ("connection_error", 2, 2) if case == "hang-up" else ("protocol_error", 1, 1)
        assert (result.reason, result.attempts, server.connections) == expected, result


@pytest.mark.parametrize("informational", [
    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
    b"HTTP/1.1 102 Processing\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n",
], ids=["103", "102", "103-100-103"])
def test_interim_answers_before_the_image_are_skipped_not_taken_for_it(informational):
    """RFC 9110 15.2: a client must read 1xx answers before the final one. http.client skips 100 Continue only,
    so a server or CDN sending Early Hints lost every photo as http_error "HTTP 103"."""
    head = informational + b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(JPEG)
    with RawServer(send_then(head, JPEG)) as server:
        result = fetcher(server, max_retries=0).fetch(server.url("/x.jpg"))
    assert result.ok and result.body == JPEG, result


def test_an_endless_run_of_interim_answers_is_too_large_not_read_for_ever():
    with RawServer(_endless(b"", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" * 100)) as server:
        result = fetcher(server, max_bytes=1 << 20, deadline=5.0, max_retries=0).fetch(server.url("/x.jpg"))
    assert result.reason == "too_large" and "on the wire" in result.detail, result


def test_redirect_without_location_is_bad_redirect(server):
    url = server.add("/r.jpg", Response(302, b"", "text/html"))
    result = fetcher(server).fetch(url)
    assert result.reason == "bad_redirect" and "Location" in result.detail and server.hits["/r.jpg"] == 1


def test_fifty_stacked_content_encodings_are_refused(server):
    body = JPEG
    for _ in range(50):
        body = gzip.compress(body)
    url = server.add("/x.jpg", image(body, **{"Content-Encoding": ", ".join(["gzip"] * 50)}))
    result = fetcher(server).fetch(url)
    assert result.reason == "too_many_encodings" and result.attempts == 1 and server.hits["/x.jpg"] == 1


def test_corrupt_content_encoding_is_refused_not_retried(server):
    url = server.add("/x.jpg", image(b"this is not gzip", **{"Content-Encoding": "gzip"}))
    result = fetcher(server).fetch(url)
    assert result.reason == "bad_content_encoding" and server.hits["/x.jpg"] == 1


@functools.cache
def _gzip_bomb(expanded: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    zeros = bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(expanded >> 20)) + packer.flush()


@pytest.mark.parametrize("layers", [1, 2])
def test_compression_bomb_stays_bounded_in_memory(server, layers):
    body = _gzip_bomb(64 << 20)  # 64 MiB of zeros in about 64 KiB
    for _ in range(layers - 1):
        body = gzip.compress(body)
    url = server.add("/bomb.jpg", image(body, **{"Content-Encoding": ", ".join(["gzip"] * layers)}))
    tracemalloc.start()
    try:
        result = fetcher(server, max_bytes=1 << 20).fetch(url)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.reason == "too_large" and peak < 8 << 20


def _endless(head: bytes, unit: bytes) -> Script:
    """`head`, then `unit` over and over as fast as the client takes it, until it hangs up."""
    def script(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head)
        while not stop.is_set():
            conn.sendall(unit)
    return script


# Endless bodies that decode to nothing, as the client's and the Flickr client's tests serve them
bodies_decoding_to_nothing = pytest.mark.parametrize("script", [
    # a zlib header, then empty stored blocks: urllib3 keeps a deflate body's bytes until they first decode
    _endless(b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nConnection: close\r\n\r\n\x78\x9c",
             b"\x00\x00\x00\xff\xff" * 8192),
    _endless(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n", gzip.compress(b"") * 4096),
], ids=["empty-deflate-blocks", "empty-gzip-members"])


@bodies_decoding_to_nothing
def test_a_body_that_decodes_to_nothing_is_bounded_on_the_wire(script):
    """--max_bytes counted decoded bytes only, and urllib3 reads on without returning while nothing decodes: the
    deflate body was held whole until the deadline (48 MiB in 15 s, 1 MiB allowed), the gzip one read without end.
    The deadline is far off (a busy machine took 5 s to inflate the 1 MiB of empty gzip members): the download must
    end at the wire's bound, `too_large`, not at the deadline."""
    with RawServer(script) as server:
        tracemalloc.start()
        try:
            result = fetcher(server, max_bytes=1 << 20, deadline=60.0, max_retries=0).fetch(server.url("/x.jpg"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert result.reason == "too_large" and "on the wire" in result.detail, result
    assert peak < 16 << 20


# --- header numbers: ASCII digits only -------------------------------------------------------------------

@pytest.mark.parametrize(("head", "reason", "attempts"), [
    (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: \xb2\r\nContent-Length: 0\r\n\r\n", "server_error", 2),
    (b"HTTP/1.1 404 Not Found\r\nRetry-After: \xb9\r\nContent-Length: 0\r\n\r\n", "not_found", 1),
    (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Mon, 01 Jan 99999999999999 00:00:00 GMT\r\n"
     b"Content-Length: 0\r\n\r\n", "server_error", 2),
    (b"HTTP/1.1 404 Not Found\r\nRetry-After: Mon, 01 Jan 99999999999999 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n",
     "not_found", 1),
], ids=["503", "404", "503-year-of-14-digits", "404-year-of-14-digits"])
def test_a_retry_after_of_a_unicode_digit_is_ignored_not_an_exception(head, reason, attempts):
    """Headers decode as latin-1, where b'\\xb2' is '²': str.isdigit() passed it and float() raised, so a 503
    was not retried and a 404 not reported as such (the job filed an internal_error). A date whose year datetime
    cannot hold raised OverflowError the same way."""
    with RawServer(send_then(head)) as server:
        result = fetcher(server, max_retries=1).fetch(server.url("/x.jpg"))
    assert (result.reason, result.attempts) == (reason, attempts)


# Zones as POSIX strings (9 hours east of Greenwich, 8 west, no summer time): they need no time zone database.
@pytest.mark.parametrize("zone", ["UTC0", "JST-9", "PST8"])
def test_a_retry_after_date_is_read_as_gmt_whatever_the_worker_s_time_zone(zone):
    """An HTTP date is GMT (RFC 9110, 5.6.7). One written without a zone, or with '-0000' (which Python's parser
    returns without one), was read in the worker's local time: the host's rest was 9 hours shorter on a worker in
    Tokyo (here nothing: the date was already past), 8 longer in California."""
    with local_time_zone(zone):
        for value in ("Wed, 21 Oct 2015 07:28:00", "Wed, 21 Oct 2015 07:28:00 -0000", "Wed, 21 Oct 2015 07:28:00 GMT"):
            assert retry_after_seconds(value, 1445412470) == pytest.approx(10), value


@pytest.mark.parametrize(("head", "reason", "attempts"), [
    (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: Fri, 31 Dec 9999 23:59:59 -0000\r\nContent-Length: 0\r\n\r\n",
     "server_error", 2),
    (b"HTTP/1.1 404 Not Found\r\nRetry-After: Fri, 31 Dec 9999 23:59:59\r\nContent-Length: 0\r\n\r\n",
     "not_found", 1),
], ids=["503", "404"])
def test_a_retry_after_at_the_end_of_year_9999_is_no_exception_east_of_greenwich(head, reason, attempts):
    """The last second of 9999 without a zone, read in the local time of a worker east of Greenwich, is in the year
    10,000, which datetime cannot hold: ValueError out of the download (the photo an internal_error, a 503 not
    retried, a 404 not said). As GMT it is a rest far off, capped as any long one is."""
    with local_time_zone("JST-9"), RawServer(send_then(head)) as server:
        result = fetcher(server, max_retries=1).fetch(server.url("/x.jpg"))
    assert (result.reason, result.attempts) == (reason, attempts)


@pytest.mark.parametrize(("declared", "reason"), [(b"\xb2", ""), (b"9" * 5000, "too_large")],
                         ids=["unicode-digit", "5000-digits"])
def test_a_content_length_that_is_no_number_or_a_huge_one_is_read_or_refused(declared, reason):
    """'²' is no length: the body is read, bounded as ever (the image stage judges it); 5,000 digits are
    more than any limit (int() refuses over 4,300 digits). Both raised ValueError out of fetch()."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: " + declared +
            b"\r\nConnection: close\r\n\r\n")
    with RawServer(send_then(head, b"<html>")) as server:
        result = fetcher(server, max_retries=0).fetch(server.url("/x.jpg"))
    assert result.reason == reason, result


def test_a_redirects_body_is_never_read_before_the_redirect_is_judged():
    """requests reads (and decodes) a 30x's whole body to prepare the next request even when it follows none: a
    255 kB gzip body on a 302 to a refused host took 515 MiB, past max_bytes and the allow-list."""
    bomb = _gzip_bomb(256 << 20)
    head = (b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/x.jpg\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(bomb))
    with RawServer(send_then(head, bomb)) as server:
        tracemalloc.start()
        try:
            result = fetcher(server, max_bytes=1 << 20, max_retries=0).fetch(server.url("/x.jpg"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert result.reason == "redirect_not_allowed" and peak < 8 << 20


def test_cookies_set_by_one_download_are_not_sent_with_the_next():
    """A host could otherwise tie downloads together and answer one photo by what was fetched before it."""
    jpeg, heads = real_jpeg(), []
    listener = socket.create_server(("127.0.0.1", 0))
    host = f"127.0.0.1:{listener.getsockname()[1]}"

    def serve() -> None:
        for i in range(2):
            conn, _ = listener.accept()
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(4096)
                heads.append(head.lower())
                conn.sendall(b"HTTP/1.1 200 OK\r\nSet-Cookie: t=%d; Path=/\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n" % (i, len(jpeg)) + jpeg)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = Fetcher(FetchConfig(allowed_hosts=(host,), user_agent="test"))
        assert client.fetch(f"http://{host}/1.jpg").ok and client.fetch(f"http://{host}/2.jpg").ok
    finally:
        thread.join(10)
        listener.close()
    assert len(heads) == 2 and b"cookie:" not in heads[1]


@pytest.mark.parametrize("location", [b"/\xe9.jpg", b"http://[::1/x.jpg"])
def test_an_unreadable_redirect_location_is_a_bad_redirect(location):
    head = b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
    with RawServer(send_then(head)) as server:
        assert fetcher(server, max_retries=0).fetch(server.url("/x.jpg")).reason == "bad_redirect"


def test_an_allowed_name_that_resolves_to_a_private_address_is_refused_once_without_a_request(server, monkeypatch):
    """The allow-list judges names; where a name leads is judged when connecting: an allowed host whose DNS points
    at the worker's own network (loopback here) is `address_not_public`, not retried, and nothing is sent."""
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: real(
        "127.0.0.1" if host == "images.example.test" else host, port, *a, **k))
    server.add("/x.jpg", image(JPEG))
    port = server.host.split(":")[1]
    client = fetcher(server, allowed_hosts=(f"images.example.test:{port}",))
    result = client.fetch(f"http://images.example.test:{port}/x.jpg")
    assert (result.reason, result.attempts) == ("address_not_public", 1)
    assert "images.example.test resolves to 127.0.0.1" in result.detail
    assert server.hits.get("/x.jpg", 0) == 0
    assert fetcher(server).fetch(server.url("/x.jpg")).ok  # the address itself, allow-listed as such, is fetched


def test_contradictory_content_lengths_are_a_bad_response_not_retried():
    """They come the same way again: three attempts each asked for the whole photo for nothing."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Length: 5\r\n\r\n" % len(JPEG)
    with RawServer(send_then(head, JPEG)) as server:
        result = fetcher(server, max_retries=2).fetch(server.url("/x.jpg"))
        assert (result.reason, result.attempts, server.connections) == ("bad_response", 1, 1)


@pytest.mark.parametrize("host", ["farm" + "x" * 64 + ".staticflickr.com", "farm1." + "a." * 125 + "staticflickr.com"])
def test_a_host_name_longer_than_dns_allows_is_a_bad_url(host):
    """A wildcard allow-list entry (`farm*.staticflickr.com`) matches it; no name that long resolves, and it was a
    connection_error, tried again and counted as the network's failure."""
    result = Fetcher(FetchConfig(allowed_hosts=("farm*.staticflickr.com",), user_agent="test")).fetch(
        f"https://{host}/1/2_ab.jpg")
    assert (result.reason, result.attempts) == ("bad_url", 1) and "DNS" in result.detail


@pytest.mark.parametrize("url", [
    "http:/user:s3cr3tPW@127.0.0.1/x.jpg", "http:\\\\user:s3cr3tPW@127.0.0.1/x.jpg", "http:user:s3cr3tPW@127.0.0.1/x",
    "http:///user:s3cr3tPW@127.0.0.1/x.jpg", "user:s3cr3tPW@127.0.0.1/x.jpg", "https://user:s3cr3tPW@127.0.0.1/x.jpg",
    "ftp://user:s3cr3tPW@127.0.0.1/x.jpg", "redirect"])
def test_a_refused_url_s_user_info_is_masked_however_its_slashes_are_written(server, url):
    """User info was masked only after "//": a row's URL written "http:/user:password@host/…" (or with backslashes,
    or no slash) was refused as bad_url with the password in the published detail (a redirect to such a URL too)."""
    if url == "redirect":
        url = server.add("/moved.jpg", redirect("https://user:s3cr3tPW@elsewhere.example/x.jpg"))
    result = fetcher(server).fetch(url)
    assert not result.ok and "s3cr3tPW" not in result.detail, result
    assert "…@" in result.detail, result
