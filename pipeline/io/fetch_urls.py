"""Which URLs the fetcher may request: unambiguous http(s) URLs (read alike by urllib.parse and by urllib3, which
requests connects with) whose host is on the allow-list, and Flickr's "photo unavailable" placeholder, which a
deleted photo's URL redirects to. Plain Python; every hop of a request (redirects too) is judged here first.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

# Flickr's URLs are plain ASCII: anything else (spaces, tabs, newlines, non-ASCII) is either
# dropped by one parser and kept by another, or re-encoded differently by each.
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]*")
# Host names and IPv4 addresses, or IPv6 addresses (urlsplit's hostname drops the brackets).
_HOST = re.compile(r"[a-z0-9_.-]+|[0-9a-f:.]+")
# Flickr answers a deleted photo's static URL with a redirect to one of these images.
_PLACEHOLDER_HOSTS = frozenset({"s.yimg.com", "l.yimg.com"})
_PLACEHOLDER_PATH = re.compile(r"/photo_unavailable[^/]*\.(png|gif)$", re.IGNORECASE)


class BadURL(ValueError):
    """A URL refused before any request is made; the message says why."""


def character_problem(url: str) -> str:
    """Why a URL's characters make it ambiguous ("" when none do): checked on a redirect's raw Location header too,
    before urljoin quietly drops its tabs and newlines."""
    if not _PRINTABLE_ASCII.fullmatch(url):
        return "space, control or non-ASCII character in URL"
    if "\\" in url:
        return "backslash in URL"
    return ""


def parse_fetch_url(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of an http(s) URL that urllib.parse and requests (urllib3) read alike.

    The allow-list must judge the host requests will connect to. `http://A:1\\@B:2/` is host B
    to urllib.parse but host A to urllib3, so any URL the parsers could disagree on is refused
    outright (BadURL) rather than guessed at: backslashes, user info, odd characters, and what
    still parses differently after that.
    """
    problem = character_problem(url)
    if problem:
        raise BadURL(problem)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadURL("unreadable host or port") from None
    if parts.scheme not in ("http", "https"):
        # At most 40 characters of it: the URL is shown beside (a scheme of 4,000 letters was a 4 kB detail).
        raise BadURL(f"scheme {parts.scheme[:40]!r}{'…' if len(parts.scheme) > 40 else ''} is not http or https")
    if "@" in parts.netloc:
        raise BadURL("user info (user@ or user:pass@) in URL")
    host = parts.hostname or ""
    if not _HOST.fullmatch(host):
        raise BadURL("missing or malformed host")
    if ":" not in host and (len(host.rstrip(".")) > 253 or any(len(label) > 63 for label in host.split("."))):
        # No name resolves (RFC 1035): each try failed as a connection_error, retried and counted as the network's.
        raise BadURL("host name longer than DNS allows (a label over 63 characters, or over 253 in all)")
    ours = (parts.scheme, host, port)
    theirs = _client_reading(url)
    if theirs != ours:
        raise BadURL(f"urllib.parse reads {ours}, requests reads {theirs}")
    return ours


def _client_reading(url: str) -> tuple[str, str, int | None] | str:
    """(scheme, host, port) as requests will connect: urllib3's parse of the URL as given and as
    requests prepares it (IDNA, re-quoting); a description when they differ or cannot parse it."""
    try:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        readings = {_urllib3_reading(url), _urllib3_reading(prepared.url or "")}
    except (requests.exceptions.RequestException, LocationParseError, ValueError) as err:
        return f"nothing ({type(err).__name__})"
    return readings.pop() if len(readings) == 1 else f"several hosts {sorted(map(str, readings))}"


def _urllib3_reading(url: str) -> tuple[str, str, int | None] | str:
    parsed = parse_url(url)
    if parsed.auth is not None:
        return "user info"
    return (parsed.scheme or "", (parsed.host or "").strip("[]"), parsed.port)


def url_problem(url: str) -> str:
    """Why `url` may not be fetched at all, whatever the allow-list says; "" when it may."""
    try:
        parse_fetch_url(url)
    except BadURL as err:
        return str(err)
    return ""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_allowed(url: str, patterns: Sequence[str]) -> bool:
    """True when the URL is an unambiguous http(s) URL (see `parse_fetch_url`) and its host (or host:port) matches
    one allow-list pattern. A pattern without a port allows the scheme's own port only: `live.staticflickr.com`
    let a row point at `live.staticflickr.com:6379`, any service listening on that host."""
    try:
        scheme, host, port = parse_fetch_url(url)
    except BadURL:
        return False
    default = _DEFAULT_PORTS[scheme]
    spellings = _ipv6_spellings(host)
    for pattern in patterns:
        host_pattern, port_pattern = _host_and_port(pattern.lower())
        host_pattern = _ipv6_spellings(host_pattern)[0]
        if not any(fnmatch.fnmatchcase(spelling, host_pattern) for spelling in spellings):
            continue
        if port_pattern is None and port in (None, default):
            return True
        if port_pattern is not None and fnmatch.fnmatchcase(str(port or default), port_pattern):
            return True
    return False


def _ipv6_spellings(host: str) -> tuple[str, ...]:
    """An IPv6 address's short spelling, its full one and the one given (`2001:db8::1`, `2001:0db8:0000:...:0001`,
    `2001:db8:0:0:0:0:0:1`), the short first, so that an allow-list entry matches however a URL or the entry writes
    the address (a wildcard pattern is matched against each); anything else (a name, IPv4, a pattern) alone."""
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        return (host,)
    return address.compressed, address.exploded, host


def _host_and_port(pattern: str) -> tuple[str, str | None]:
    """An allow-list pattern's host and port (None when it names none): `host`, `host:port`, an IPv6 address alone
    (`::1`, more than one colon) or in brackets (`[::1]`, `[::1]:8080`)."""
    if pattern.startswith("["):
        host, _, rest = pattern[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if pattern.count(":") == 1:
        host, port = pattern.split(":")
        return host, port
    return pattern, None


def is_placeholder(url: str) -> bool:
    """Flickr's deleted-photo image, e.g. https://s.yimg.com/pw/images/en-us/photo_unavailable.png."""
    parts = urlsplit(url)
    return (parts.hostname or "").lower() in _PLACEHOLDER_HOSTS and bool(_PLACEHOLDER_PATH.search(parts.path))
