"""A total deadline for a download, enforced on every socket read (headers and body alike).

requests' read timeout limits each `recv`, not the whole response: a server that sends one
byte a second never trips it and can hold a download thread for ever. Here every read made
for a response first shrinks the socket's timeout to what is left of the calling thread's
deadline, and refuses to read at all once the deadline has passed.

The deadline is per thread (`deadline_scope`), so the pooled connections of one session can be
shared by the fetch stage's thread pool: a read always runs in the thread that asked for it.

A scope may also cap the bytes its responses take off the socket (`max_bytes`): a limit on decoded
body bytes is checked only when urllib3 hands some over, and it reads on without returning while a
body decodes to nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Deadline:
    """A point in time.monotonic(); `hit` records that a read was cut short (or refused) by it. With `max_bytes`,
    also a cap on the bytes read off the socket in its scope; `over` records that a read passed it."""

    def __init__(self, seconds: float, max_bytes: int | None = None) -> None:
        self.at = time.monotonic() + seconds
        self.hit = False
        self.max_bytes = max_bytes
        self.received = 0
        self.over = False

    def left(self) -> float:
        return self.at - time.monotonic()

    def count(self, received: int) -> None:
        """Adds `received` bytes; raises OSError (urllib3 reports it as a broken connection) past `max_bytes`."""
        self.received += received
        if self.max_bytes is not None and self.received > self.max_bytes:
            self.over = True
        if self.over:
            raise OSError(f"answer over {self.max_bytes} bytes")


_CURRENT = threading.local()


@contextmanager
def deadline_scope(seconds: float, max_bytes: int | None = None) -> Iterator[Deadline]:
    """Every response read by this thread inside the block ends `seconds` from now at the latest, and (with
    `max_bytes`) once the block's responses have taken more than `max_bytes` bytes off the socket."""
    previous = getattr(_CURRENT, "deadline", None)
    deadline = _CURRENT.deadline = Deadline(seconds, max_bytes)
    try:
        yield deadline
    finally:
        _CURRENT.deadline = previous


class _DeadlineReader(io.RawIOBase):
    """The raw stream under a response's buffered reader: each read is bounded by the thread's deadline."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)
        # urllib3 sets the socket's timeout to the request's read timeout just before the response
        # is created; each read may wait that long, or until the deadline, whichever comes first.
        self._read_timeout = sock.gettimeout()

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def readinto(self, buffer: Any) -> int | None:
        deadline: Deadline | None = getattr(_CURRENT, "deadline", None)
        if deadline is None:
            return self._raw.readinto(buffer)
        deadline.count(0)  # refuses to read on once over
        received = self._timed_readinto(deadline, buffer)
        if received:
            deadline.count(received)
        return received

    def _timed_readinto(self, deadline: Deadline, buffer: Any) -> int | None:
        left = deadline.left()
        if left <= 0:
            deadline.hit = True
            raise TimeoutError("fetch deadline passed")  # urllib3 reports it as a read timeout
        if self._read_timeout is not None and self._read_timeout <= left:
            return self._raw.readinto(buffer)
        self._sock.settimeout(left)
        try:
            return self._raw.readinto(buffer)
        except TimeoutError:
            deadline.hit = True
            raise
        finally:
            # A kept-alive connection would send its next request with whatever timeout is left here.
            with contextlib.suppress(OSError):
                self._sock.settimeout(self._read_timeout)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _ReadsWithDeadline:
    """What http.client.HTTPResponse is given instead of the socket: it only calls makefile('rb')."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock))


# Interim (1xx) answers a client must read past to the final one (RFC 9110 15.2). http.client skips 100 Continue
# only: a server or CDN sending 103 Early Hints lost every photo as "HTTP 103". 101 switches protocols, which is
# never asked for: it stays the answer. Their headers are skipped as http.client skips a 100's, and their reads count
# towards the deadline and the byte cap (a flood of 103s is too_large).
_INTERIM = frozenset(range(102, 200))


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(_ReadsWithDeadline(sock), *args, **kwargs)  # type: ignore[arg-type]

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if status not in _INTERIM:
                return version, status, reason
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]


class _DeadlineHTTPConnection(HTTPConnection):
    response_class = _DeadlineResponse


class _DeadlineHTTPSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose responses honour the calling thread's `deadline_scope`.

    Outside a scope it behaves exactly like HTTPAdapter. The TLS handshake is not covered: it is
    bounded per read by the connect timeout only.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}
