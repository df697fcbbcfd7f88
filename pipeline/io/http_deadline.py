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

Opening a connection is bounded too (`_GuardedConnect`): the name lookup, which has no timeout of its own, and each
connect wait at most the connect timeout and what is left of the deadline, and at most `MAX_ADDRESSES` of a name's
addresses are tried, IPv4 and IPv6 taking turns. An adapter made with `public_only` also refuses a host *name* that
resolves to an address that is not public (loopback, private, link-local, shared, reserved): an allow-listed name
then cannot lead a download into the worker's own network. An address written in the URL as such is not looked up
and not judged: it reached the connection only because the allow-list names it.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

# Addresses of one name tried in turn: each connect may wait the whole connect timeout, so a name answering with
# hundreds of unreachable addresses held a download that long times over, past its deadline.
MAX_ADDRESSES = 4
# A connect timeout of urllib3's "default" sentinel (no number) waits this long.
_FALLBACK_CONNECT_TIMEOUT = 10.0


class Deadline:
    """A point in time.monotonic(); `hit` records that a read was cut short (or refused) by it. With `max_bytes`,
    also a cap on the bytes read off the socket in its scope; `over` records that a read passed it."""

    def __init__(self, seconds: float, max_bytes: int | None = None) -> None:
        self.at = time.monotonic() + seconds
        self.hit = False
        self.max_bytes = max_bytes
        self.received = 0
        self.over = False
        self.refused_address = ""  # why a connection in this scope was not opened (a host not public), if one was

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


class AddressNotPublic(OSError):
    """A host name resolved to an address a public-only connection may not reach."""


# IPv6 addresses that carry an IPv4 address a network may deliver them to: NAT64's well-known prefix (RFC 6052), SIIT's
# IPv4-translated form `::ffff:0:a.b.c.d` (RFC 2765) and the deprecated IPv4-compatible form; 6to4 (2002::/16) and the
# mapped form are read by ipaddress itself. The local-use NAT64 prefix (RFC 8215) carries one at positions of the
# operator's choosing, and is no public address itself.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def is_public(address: str) -> bool:
    """True for an address on the public internet; an IPv4 address written as IPv6 (`::ffff:10.0.0.1`, and the
    forms a translator or tunnel delivers to it: `64:ff9b::10.0.0.1`, `2002:a00:1::`, `::ffff:0:10.0.0.1`,
    `::10.0.0.1`) is judged as the IPv4 address it is."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64:
            return False
        if ip.ipv4_mapped is not None or ip.sixtofour is not None:
            return (ip.ipv4_mapped or ip.sixtofour).is_global  # type: ignore[union-attr]
        if ip in _NAT64 or ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF).is_global
    return ip.is_global


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _wait_limit(timeout: object) -> float:
    """How long one step of opening a connection may wait: the connect timeout, and no longer than what is left of
    the thread's deadline (a step started past it fails at once)."""
    limit = float(timeout) if isinstance(timeout, (int, float)) else _FALLBACK_CONNECT_TIMEOUT
    deadline: Deadline | None = getattr(_CURRENT, "deadline", None)
    if deadline is not None:
        left = deadline.left()
        if left <= 0:
            deadline.hit = True
        limit = min(limit, left)
    if limit <= 0:
        raise TimeoutError("fetch deadline passed before the connection was open")
    return limit


def resolve(host: str, port: int, family: int, limit: float) -> list[tuple]:
    """getaddrinfo for a stream socket, given up after `limit` seconds: the lookup has no timeout of its own (a
    resolver that does not answer holds the caller through all of its retries), so it runs in a thread the caller
    stops waiting for. A late lookup finishes on its own and its answer is dropped."""
    answer: list[Any] = []

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, family, socket.SOCK_STREAM))
        except Exception as error:  # an IDNA UnicodeError too: the caller must never wait for nothing
            answer.append(error if isinstance(error, OSError) else socket.gaierror(f"looking up {host}: {error!r}"))

    thread = threading.Thread(target=lookup, name=f"resolve {host[:50]}", daemon=True)
    thread.start()
    thread.join(limit)
    if not answer:
        raise TimeoutError(f"looking up {host} took over {limit:.1f}s")
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]


def interleave_families(answers: list[tuple]) -> list[tuple]:
    """The resolver's answers with the address families taking turns, the first answer's family first (RFC 8305,
    4): only the first `MAX_ADDRESSES` are tried, and a name listing many IPv6 addresses before its IPv4 ones must
    not be given up on an IPv4-only worker."""
    by_family: dict[int, list[tuple]] = {}
    for answer in answers:
        by_family.setdefault(answer[0], []).append(answer)
    queues = list(by_family.values())
    turns: list[tuple] = []
    for index in range(max(map(len, queues), default=0)):
        turns.extend(queue[index] for queue in queues if index < len(queue))
    return turns


def _connect_one(family: int, kind: int, proto: int, address: Any, limit: float,
                 options: list[tuple[int, int, int]], source_address: tuple[str, int] | None) -> socket.socket:
    sock = socket.socket(family, kind, proto)
    try:
        for option in options:
            sock.setsockopt(*option)
        sock.settimeout(limit)
        if source_address:
            sock.bind(source_address)
        sock.connect(address)
        return sock
    except BaseException:
        sock.close()
        raise


class _GuardedConnect:
    """urllib3's `_new_conn` with the lookup and every connect bounded by the connect timeout and the deadline, at
    most `MAX_ADDRESSES` addresses tried and, with `public_only`, a name's non-public addresses refused
    (`AddressNotPublic`, recorded on the deadline so that the caller can name the reason)."""

    public_only = False

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        host = conn._dns_host.strip("[]")
        try:
            sock = self._open(conn, host)
        except AddressNotPublic as refused:
            deadline: Deadline | None = getattr(_CURRENT, "deadline", None)
            if deadline is not None:
                deadline.refused_address = str(refused)
            raise NewConnectionError(conn, f"Refused to connect: {refused}") from refused
        except socket.gaierror as error:
            raise NameResolutionError(conn.host, conn, error) from error
        except TimeoutError as error:
            raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out ({error})") from error
        except OSError as error:
            raise NewConnectionError(conn, f"Failed to establish a new connection: {error}") from error
        sys.audit("http.client.connect", conn, conn.host, conn.port)
        return sock

    def _open(self, conn: Any, host: str) -> socket.socket:
        literal = _is_address(host)
        if literal:  # nothing to look up: no thread, no resolver
            answers = socket.getaddrinfo(host, conn.port, allowed_gai_family(), socket.SOCK_STREAM, 0,
                                         socket.AI_NUMERICHOST)
        else:
            answers = resolve(host, conn.port, allowed_gai_family(), _wait_limit(conn.timeout))
        if self.public_only and not literal:
            # All of them, not only the one connected to: which one that is depends on the resolver's order.
            hidden = sorted({str(answer[4][0]) for answer in answers if not is_public(str(answer[4][0]))})
            if hidden:
                raise AddressNotPublic(f"{host} resolves to {', '.join(hidden[:3])}, not a public address")
        error: OSError = socket.gaierror(f"{host} has no address")
        for family, kind, proto, _, address in interleave_families(answers)[:MAX_ADDRESSES]:
            try:
                return _connect_one(family, kind, proto, address, _wait_limit(conn.timeout),
                                    list(conn.socket_options or ()), conn.source_address)
            except OSError as failed:
                error = failed
        raise error


class _DeadlineHTTPConnection(_GuardedConnect, HTTPConnection):
    response_class = _DeadlineResponse


class _DeadlineHTTPSConnection(_GuardedConnect, HTTPSConnection):
    response_class = _DeadlineResponse


class _PublicHTTPConnection(_DeadlineHTTPConnection):
    public_only = True


class _PublicHTTPSConnection(_DeadlineHTTPSConnection):
    public_only = True


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _PublicHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PublicHTTPConnection


class _PublicHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PublicHTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose responses honour the calling thread's `deadline_scope`, and whose connections are opened
    within the connect timeout and the deadline (`_GuardedConnect`); with `public_only`, only to public addresses
    where the URL names a host rather than an address.

    Outside a scope it behaves like HTTPAdapter but for those bounds. The TLS handshake is not covered: it is
    bounded per read by the connect timeout only.
    """

    # What a pickled adapter keeps. A class attribute, as HTTPAdapter's is, though requests annotates its own without
    # ClassVar, which mypy then reads as an instance variable this may not override.
    __attrs__: ClassVar[list[str]] = [*HTTPAdapter.__attrs__, "public_only"]  # type: ignore[misc]

    def __init__(self, *args: Any, public_only: bool = False, **kwargs: Any) -> None:
        self.public_only = public_only  # before HTTPAdapter's __init__, which makes the pool manager
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        pools = (_PublicHTTPPool, _PublicHTTPSPool) if self.public_only else (_DeadlineHTTPPool, _DeadlineHTTPSPool)
        self.poolmanager.pool_classes_by_scheme = dict(zip(("http", "https"), pools, strict=True))
