"""pipeline/photo_sets/sdist.py: PyPI source distributions taken from a PyPI-like index on 127.0.0.1, checked
against the index's sha256, read as archives under caps; hostile index answers, redirects, slow servers and
archive bombs refused with a reason."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from pipeline.photo_sets import sdist
from pipeline.photo_sets.sdist import SdistError, check_place, normalized_name, sdist_file
from pipeline.photo_sets.tar_gz import open_tar

PHOTO = b"\xff\xd8a photograph in an sdist's docs"
MEMBER = "Pkg_Name-1.0/docs/beach.jpg"


class _Index(http.server.BaseHTTPRequestHandler):
    """Answers from `self.server.pages`: path -> (status, body) or a callable that writes the answer itself."""

    def do_GET(self) -> None:  # the standard library's name
        self.server.requests.append((self.path, self.headers.get("Accept", "")))  # type: ignore[attr-defined]
        page = self.server.pages.get(self.path, (404, b"not here"))  # type: ignore[attr-defined]
        try:
            if callable(page):
                page(self)
                return
            status, body = page
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up, as it should have
            pass

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def pypi_index(monkeypatch):
    """A PyPI-like simple index on 127.0.0.1, the only allowed place; sdist's PYPI_SIMPLE_URL points at it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Index)
    server.pages, server.requests = {}, []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(sdist, "PYPI_SIMPLE_URL", base + "/simple/")
    monkeypatch.setattr(sdist, "ALLOWED_PLACES", frozenset({base}))
    yield server
    server.shutdown()
    server.server_close()


def tarball(members: dict[str, bytes], mode: Literal["w:gz", "w:bz2"]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    return tarball(members, "w:gz")


def tar_bz2(members: dict[str, bytes]) -> bytes:  # an old sdist's format
    return tarball(members, "w:bz2")


def a_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def page(*files: tuple[str, str, str]) -> bytes:
    """A PEP 691 project page listing (filename, url, sha256) files."""
    return json.dumps({"meta": {"api-version": "1.1"}, "name": "pkg-name", "files": [
        {"filename": name, "url": url, "hashes": {"sha256": digest}} for name, url, digest in files]}).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_an_sdist_is_found_by_its_pep503_name_downloaded_and_checked(pypi_index, tmp_path):
    server = pypi_index
    tar = tar_gz({MEMBER: PHOTO})
    server.pages["/simple/pkg-name/"] = (200, page(
        ("pkg_name-1.0-py3-none-any.whl", "/files/w.whl", sha(b"wheel")),
        ("Pkg_Name-0.9.tar.gz", "/files/old.tar.gz", "0" * 64),
        ("Pkg_Name-1.0.tar.gz", "../../files/Pkg_Name-1.0.tar.gz", sha(tar))))  # relative to the page
    server.pages["/files/Pkg_Name-1.0.tar.gz"] = (200, tar)
    path = sdist.download("Pkg.Name", "1.0", tmp_path / "not yet made")
    assert path == tmp_path / "not yet made" / "sdist.tar.gz" and path.read_bytes() == tar
    assert server.requests == [("/simple/pkg-name/", "application/vnd.pypi.simple.v1+json"),
                               ("/files/Pkg_Name-1.0.tar.gz", "")]
    with open_tar(path) as archive:
        assert archive.extractfile(archive.getmember(MEMBER)).read() == PHOTO


def test_the_preferred_format_is_taken_and_a_legacy_version_may_hold_a_dash():
    listed = page(("pkg-name-1.0-beta.zip", "/z", "a" * 64), ("Pkg_Name-1.0-beta.tar.gz", "/t", "b" * 64),
                  ("pkg-name-extra-1.0-beta.tar.gz", "/x", "c" * 64), ("pkg-name-1.0.tar.gz", "/y", "d" * 64))
    assert sdist_file(listed, "pkg.name", "1.0-beta") == ("/t", "b" * 64, ".tar.gz")
    assert sdist_file(page(("pkg-name-1.0-beta.zip", "/z", "a" * 64)), "pkg-name", "1.0-beta")[2] == ".zip"
    assert sdist_file(page(("pkg-name-1.0-beta.zip", "/z", "a" * 64), ("pkg_name-1.0-beta.tgz", "/g", "e" * 64)),
                      "pkg-name", "1.0-beta") == ("/g", "e" * 64, ".tgz")
    old = ("pkg-name-1.0-beta.tar.bz2", "/b", "f" * 64)  # old releases: taken only when nothing else is listed
    assert sdist_file(page(old, ("pkg-name-1.0-beta.zip", "/z", "a" * 64)), "pkg-name", "1.0-beta")[2] == ".zip"
    assert sdist_file(page(old), "pkg-name", "1.0-beta") == ("/b", "f" * 64, ".tar.bz2")


def _redirect_to(location: str) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


def _trickle(handler: http.server.BaseHTTPRequestHandler) -> None:
    """A byte every 0.1 s: each read is well inside any socket timeout, the whole never ends in time."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    for _ in range(1000):
        handler.wfile.write(b"x")
        handler.wfile.flush()
        time.sleep(0.1)


def _not_http(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n")


@pytest.mark.parametrize("case", [
    "tampered", "no_sdist", "two_of_one_format", "not_json", "deeply_nested_json", "no_sha256", "sha256_not_hex",
    "http_elsewhere", "https_elsewhere", "user_info_trick", "redirected_elsewhere", "index_redirected_elsewhere",
    "index_too_large", "sdist_too_large", "gone", "not_http", "trickle", "url_with_a_space", "bad_name"])
def test_a_hostile_or_broken_answer_is_refused_naming_why(pypi_index, tmp_path, monkeypatch, case):
    server = pypi_index
    port = server.server_address[1]
    tar = tar_gz({MEMBER: PHOTO})
    good = sha(tar)
    server.pages["/files/s.tar.gz"] = (200, tar)
    listing = page(("Pkg_Name-1.0.tar.gz", "/files/s.tar.gz", good))
    pages: dict[str, object] = {"/simple/pkg-name/": (200, listing)}
    package, reason, downloaded = "Pkg.Name", "", False
    if case == "tampered":
        pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", "/files/s.tar.gz", "f" * 64)))
        reason, downloaded = "is not the " + "f" * 64, True
    elif case == "no_sdist":
        pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.1.tar.gz", "/files/s.tar.gz", good)))
        reason = "lists 0 sdists"
    elif case == "two_of_one_format":
        pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", "/files/s.tar.gz", good),
                                                ("pkg-name-1.0.tar.gz", "/files/s.tar.gz", good)))
        reason = "lists 2 sdists"
    elif case == "not_json":
        pages["/simple/pkg-name/"] = (200, b"<html>a mirror's HTML page</html>")
        reason = "not the JSON"
    elif case == "deeply_nested_json":
        pages["/simple/pkg-name/"] = (200, b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        reason = "not the JSON"
    elif case == "no_sha256":
        pages["/simple/pkg-name/"] = (200, json.dumps({"files": [
            {"filename": "Pkg_Name-1.0.tar.gz", "url": "/files/s.tar.gz", "hashes": {"md5": "x"}}]}).encode())
        reason = "no sha256"
    elif case == "sha256_not_hex":
        pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", "/files/s.tar.gz", "../" + "a" * 61)))
        reason = "no sha256"
    elif case == "http_elsewhere":  # the same server under another host name
        pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", f"http://localhost:{port}/files/s.tar.gz",
                                                 good)))
        reason = f"http://localhost:{port} is not an allowed place"
    elif case == "https_elsewhere":  # an internal address over https: refused before any connection
        pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", "https://10.0.0.1:8443/s.tar.gz", good)))
        reason = "https://10.0.0.1:8443 is not an allowed place"
    elif case == "user_info_trick":
        pages["/simple/pkg-name/"] = (200, page(
            ("Pkg_Name-1.0.tar.gz", f"http://127.0.0.1:{port}@localhost:{port}/files/s.tar.gz", good)))
        reason = "carries user information"
    elif case == "redirected_elsewhere":
        pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", "/files/r", good)))
        pages["/files/r"] = _redirect_to(f"http://localhost:{port}/files/s.tar.gz")
        reason = f"http://localhost:{port} is not an allowed place"
    elif case == "index_redirected_elsewhere":
        pages["/simple/pkg-name/"] = _redirect_to(f"ftp://127.0.0.1:{port}/simple/pkg-name/")
        reason = f"ftp://127.0.0.1:{port} is not an allowed place"
    elif case == "index_too_large":
        monkeypatch.setattr(sdist, "MAX_INDEX_BYTES", 100)
        reason = "larger than 100 bytes"
    elif case == "sdist_too_large":
        monkeypatch.setattr(sdist, "MAX_SDIST_BYTES", 100)
        reason, downloaded = "larger than 100 bytes", True
    elif case == "gone":
        del pages["/simple/pkg-name/"]
        reason = "404"
    elif case == "not_http":
        pages["/simple/pkg-name/"] = _not_http
        reason = "BadStatusLine"
    elif case == "trickle":
        pages["/simple/pkg-name/"] = _trickle
        monkeypatch.setattr(sdist, "INDEX_DEADLINE_S", 0.5)
        reason = "took longer than"
    elif case == "url_with_a_space":
        pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", "/files/a b.tar.gz", good)))
        reason = "InvalidURL"
    elif case == "bad_name":
        package, reason = "//evil.example/x?", "is not a package name"
    server.pages.update(pages)
    started = time.monotonic()
    with pytest.raises(SdistError, match=None) as refused:
        sdist.download(package, "1.0", tmp_path)
    assert reason in str(refused.value), str(refused.value)
    assert time.monotonic() - started < 10
    fetched = [path for path, _ in server.requests if path.startswith("/files/s")]
    assert bool(fetched) == downloaded, server.requests  # never from elsewhere, nor after a refused index answer


def test_allowed_places():
    for url in ("https://pypi.org/simple/x/", "https://pypi.org:443/simple/x/",
                "https://files.pythonhosted.org/packages/a/b/x-1.0.tar.gz"):
        check_place(url)
    for url in ("http://pypi.org/simple/x/", "https://pypi.org:8443/", "ftp://files.pythonhosted.org/x",
                "https://pypi.org@evil.example/", "https://evil.example/?https://pypi.org", "file:///etc/passwd",
                "https://pypi.org:99999/", "https://files.pythonhosted.org.evil.example/x", "https://evil@pypi.org/",
                "https://user:secret@files.pythonhosted.org/x"):
        with pytest.raises(SdistError):
            check_place(url)


def test_pep503_names():
    assert {normalized_name(name) for name in ("Pkg.Name", "pkg_name", "PKG--name", "pkg-._name")} == {"pkg-name"}


def test_a_zip_sdist_is_downloaded_as_a_zip(pypi_index, tmp_path):
    server = pypi_index
    archive = a_zip({"pkg.name-1.0/examples/cat.jpg": PHOTO})
    server.pages["/simple/pkg-name/"] = (200, page(("pkg.name-1.0.zip", "/files/s.zip", sha(archive))))
    server.pages["/files/s.zip"] = (200, archive)
    path = sdist.download("pkg.name", "1.0", tmp_path)
    with zipfile.ZipFile(path) as opened:
        assert path.suffix == ".zip" and opened.read("pkg.name-1.0/examples/cat.jpg") == PHOTO


def test_sdist_download_never_builds(pypi_index, tmp_path, monkeypatch):
    """No subprocess is started to take an sdist (pip download would run its build code)."""
    import subprocess

    server = pypi_index
    tar = tar_gz({MEMBER: PHOTO, "Pkg_Name-1.0/setup.py": b"raise SystemExit('built')"})
    server.pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", "/files/s.tar.gz", sha(tar))))
    server.pages["/files/s.tar.gz"] = (200, tar)

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process was started")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    with open_tar(sdist.download("Pkg.Name", "1.0", tmp_path)) as archive:
        assert archive.extractfile(archive.getmember(MEMBER)).read() == PHOTO


def test_paths_are_ours(pypi_index, tmp_path):
    """The downloaded file is named by this module, never by the index's file name or URL."""
    server = pypi_index
    tar = tar_gz({MEMBER: PHOTO})
    server.pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", "/files/..%2F..%2Fevil.tar.gz",
                                                    sha(tar))))
    server.pages["/files/..%2F..%2Fevil.tar.gz"] = (200, tar)
    assert sdist.download("Pkg.Name", "1.0", tmp_path) == tmp_path / "sdist.tar.gz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdist.tar.gz"]
    assert not Path(tmp_path.parent / "evil.tar.gz").exists()


def _headers_a_byte_at_a_time(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Never gets past its status line in time: each byte well inside the socket timeout."""
    for byte in b"HTTP/1.1 200 OK\r\n":
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.3)


def test_a_server_that_sends_its_headers_slowly_is_cut_off_at_the_deadline(pypi_index, tmp_path, monkeypatch):
    pypi_index.pages["/simple/pkg-name/"] = _headers_a_byte_at_a_time
    monkeypatch.setattr(sdist, "INDEX_DEADLINE_S", 0.5)
    started = time.monotonic()
    with pytest.raises(SdistError, match=r"took longer than 0\.5 s"):
        sdist.download("Pkg.Name", "1.0", tmp_path)
    assert time.monotonic() - started < 2.5  # the status line alone would take 5 s


@pytest.fixture
def silent_place(monkeypatch):
    """A listener on 127.0.0.1 that never answers: its backlog is full, so a connect waits for a SYN answer that
    never comes. Yields a function that makes its (scheme) place the index and the only allowed place."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = socket.create_connection(("127.0.0.1", port))  # fills the backlog: the kernel drops later SYNs

    def use(scheme: str) -> None:
        monkeypatch.setattr(sdist, "PYPI_SIMPLE_URL", f"{scheme}://127.0.0.1:{port}/simple/")
        monkeypatch.setattr(sdist, "ALLOWED_PLACES", frozenset({f"{scheme}://127.0.0.1:{port}"}))
    yield listener, use
    held.close()
    listener.close()


def test_a_connect_that_is_never_answered_is_cut_off_at_the_deadline(silent_place, tmp_path, monkeypatch):
    _, use = silent_place
    use("http")
    monkeypatch.setattr(sdist, "INDEX_DEADLINE_S", 0.5)  # each connect alone may wait SOCKET_TIMEOUT_S (60 s)
    started = time.monotonic()
    with pytest.raises(SdistError, match=r"took longer than 0\.5 s"):
        sdist.download("Pkg.Name", "1.0", tmp_path)
    assert time.monotonic() - started < 2.5


def test_a_tls_handshake_that_is_never_answered_is_cut_off_at_the_deadline(silent_place, tmp_path, monkeypatch):
    """The TCP connect succeeds (the server accepts) and the server then says nothing: the handshake's reads are
    shut at the deadline, though wrapping the socket for TLS made a new socket object."""
    listener, use = silent_place
    use("https")
    listener.accept()[0].close()  # room in the backlog again; the next connection is accepted by the kernel
    monkeypatch.setattr(sdist, "INDEX_DEADLINE_S", 0.5)
    started = time.monotonic()
    with pytest.raises(SdistError, match=r"took longer than 0\.5 s"):
        sdist.download("Pkg.Name", "1.0", tmp_path)
    assert time.monotonic() - started < 2.5


def test_an_address_lookup_that_does_not_answer_is_cut_off_at_the_deadline(pypi_index, tmp_path, monkeypatch):
    real = socket.getaddrinfo

    def slow_resolver(*args, **kwargs):  # a resolver retrying a server that does not answer
        time.sleep(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    monkeypatch.setattr(sdist, "INDEX_DEADLINE_S", 0.5)
    started = time.monotonic()
    with pytest.raises(SdistError, match=r"took longer than 0\.5 s"):
        sdist.download("Pkg.Name", "1.0", tmp_path)
    assert time.monotonic() - started < 2.5


def _redirect_claiming_a_terabyte(handler: http.server.BaseHTTPRequestHandler) -> None:
    handler.send_response(302)
    handler.send_header("Location", "/simple/elsewhere/")
    handler.send_header("Content-Length", str(10**12))  # urllib would read (and allocate) it whole
    handler.end_headers()
    handler.wfile.write(b"x" * 1000)


def test_a_redirects_own_body_is_never_read(pypi_index, tmp_path):
    """Before: MemoryError (a Content-Length of a terabyte allocated up front), the end of a whole fetch."""
    pypi_index.pages["/simple/pkg-name/"] = _redirect_claiming_a_terabyte
    pypi_index.pages["/simple/elsewhere/"] = (404, b"no")
    with pytest.raises(SdistError, match="404"):
        sdist.download("Pkg.Name", "1.0", tmp_path)
    assert [path for path, _ in pypi_index.requests] == ["/simple/pkg-name/", "/simple/elsewhere/"]


def test_a_failed_connects_descriptors_are_let_go_at_once(pypi_index, tmp_path, monkeypatch):
    """A lookup answering many refusing addresses before the good one: each failed attempt's watched duplicate is
    closed then, not held to the end of the download (before: one descriptor held per address)."""
    port = int(sdist.PYPI_SIMPLE_URL.split(":")[2].split("/")[0])
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refusing = closed.getsockname()[1]
    closed.close()  # nothing listens there now: a connect is refused at once
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *_a, **_k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", refusing))] * 50 + real(host, port, type=1))
    held, real_exit = [], sdist._Watchdog.__exit__
    monkeypatch.setattr(sdist._Watchdog, "__exit__", lambda self, *exc: (held.append(len(self._sockets)),
                                                                           real_exit(self, *exc)))
    tar = tar_gz({MEMBER: PHOTO})
    pypi_index.pages["/simple/pkg-name/"] = (200, page(("Pkg_Name-1.0.tar.gz", "/f", sha(tar))))
    pypi_index.pages["/f"] = (200, tar)
    assert sdist.download("Pkg.Name", "1.0", tmp_path).read_bytes() == tar
    assert held == [1, 1]  # the index page's connection, then the file's: the 50 refused attempts' were closed


def test_a_lookup_that_fails_without_an_oserror_is_one_refusal_at_once(pypi_index, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise UnicodeError("label empty or too long")  # what IDNA encoding raises for a hostile host name
    monkeypatch.setattr(socket, "getaddrinfo", broken)
    started = time.monotonic()
    with pytest.raises(SdistError, match="label empty or too long"):
        sdist.download("Pkg.Name", "1.0", tmp_path)
    assert time.monotonic() - started < 5  # before: the whole INDEX_DEADLINE_S (120 s), then "took longer"


@pytest.mark.photos
def test_a_real_sdist_from_pypi(tmp_path):
    """Opt-in (network: PyPI): a small real sdist through the real index, its file checked by sha256."""
    from pipeline.photo_sets.fetch import member_bytes, tar_reader

    with open_tar(sdist.download("imutils", "0.5.4", tmp_path)) as archive:
        data = member_bytes(tar_reader(archive), "imutils-0.5.4/setup.py")
    assert sha(data) == "7eb558e6a2b81ed509cdafdafb9c568cb6ebd08ed75b71b86912aaf9186e0193"
