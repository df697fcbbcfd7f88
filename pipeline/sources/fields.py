"""Checks the sources share for the metadata fields later stages trust: dates, the photo/video
marker, and the parts of a Flickr URL that `fetch` builds URLs from.

Each refusal is a `BadField` carrying the rejection reason and a detail that names the field, so
that a source turns one absurd row into one rejection (never an `internal_error`, never a silent
pass). Unknown stays allowed: an empty date is "not known", not an error.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from pipeline.io.url_paths import normal_escapes, without_dot_segments
from pipeline.records import BadValue, canonical_owner_id, value_kind

# No photo was uploaded to Flickr before 1970 or will be after 2100: outside is a corrupt row
# (and past year 9999 `datetime` itself would raise).
UPLOAD_EPOCHS = (0, int(dt.datetime(2100, 1, 1, tzinfo=dt.UTC).timestamp()))
# Camera clocks are often wrong, so the range is wide; a year outside it is not a clock, it is garbage.
TAKEN_YEARS = (1800, 2100)
_EPOCH = re.compile(r"[0-9]{1,12}")  # bounded before int(): a 5,000-digit number would make int() raise
# "2012-07-11 17:11:05.0" (YFCC, with a database ".0"), "2020-01-01 12:00:00" (Flickr) or a bare day.
_TAKEN = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?: ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.0)?)?")
# MySQL's zero date is how the dumps say "unknown".
_ZERO_DATE = re.compile(r"0000-00-00(?: 00:00:00(?:\.0)?)?")
# Server, farm, secret and extension are pasted into static URLs (fetch.sized_url): letters and
# digits only, so that no '/', '?', '#' or '..' can steer a built URL.
_URL_TOKEN = re.compile(r"[0-9A-Za-z]{0,40}")


# An owner NSID ("12345678@N01") goes into the creator and page URLs: no '/', '?', space or markup.
_OWNER = re.compile(r"[A-Za-z0-9_@.-]{0,100}")
# A page URL the attribution links to: http(s), no space or control character, bounded (a browser stops near 8 KB).
_PAGE_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]{1,4000}", re.IGNORECASE)


class BadField(BadValue):
    """A field (date, marker, URL part, API entry) no source may pass on."""


# A Flickr static file's name: {photo id}_{secret}[_{size}].{extension}, the last part of every image URL Flickr
# serves (live.staticflickr.com/{server}/..., the farm hosts', and the fixtures' alike).
_STATIC_FILE = re.compile(r"/0*([0-9]{1,20})_[0-9a-f]+(?:_[0-9a-z]+)?\.[0-9a-z]+", re.IGNORECASE)
# A Flickr photo page: flickr.com/photos/{owner or alias}/{photo id}[/...].
_FLICKR_HOSTS = frozenset({"flickr.com", "www.flickr.com", "m.flickr.com", "secure.flickr.com"})
_PHOTO_PAGE_PATH = re.compile(r"/photos/[^/]+/0*([0-9]{1,20})(?:/.*)?")


def _path(url: str) -> tuple[str, str]:
    """(host, path) of a URL; ('', '') when it cannot be read (fetch names such a URL `bad_url`)."""
    try:
        parts = urlsplit(url)
        return (parts.hostname or "").rstrip("."), parts.path
    except ValueError:
        return "", ""


def _as_sent(path: str) -> str:
    """A URL path as a client sends it and a server reads it (RFC 3986 6.2.2): `/a/7001_x.jpg/b/..` and
    `/a/7001%5Fx.jpg` are `/a/7001_x.jpg/` and `/a/7001_x.jpg`. A path that is no UTF-8 text names nothing (fetch
    refuses its URL)."""
    try:
        return without_dot_segments(normal_escapes(path))
    except ValueError:
        return ""


def _readings(path: str) -> Iterator[str]:
    """The ways a server may read a path as sent: as RFC 3986 does (`_as_sent`), and, where it holds an escaped
    slash or backslash (`%2F`, `%5C`), as a server decoding those before it removes dot segments does (nginx reads
    `/65535/7000_x.jpg/..%2F7001_x.jpg` as `/65535/7001_x.jpg`). A Flickr URL holds neither."""
    sent = _as_sent(path)
    yield sent
    slashed = re.sub("%2F|%5C", "/", sent)  # escapes are upper case once sent
    if slashed != sent:
        yield without_dot_segments(slashed)


def _files_named(path: str) -> Iterator[str]:
    """The photo ids of the Flickr file names anywhere in a path, a segment's parameters (`;…`) included: only the
    last names the file on Flickr's servers, but a server reading `7001_x.jpg/` or `5_x.jpg;7001_x.jpg` otherwise
    would serve another photo under this one's licence and credit."""
    for segment in path.split("/"):
        for part in segment.split(";"):
            match = _STATIC_FILE.fullmatch("/" + part)
            if match:
                yield match[1]


def names_this_photo(photo_id: str, page: str, download: str, reason: str = "bad_field",
                     flickr_page: bool = False) -> None:
    """BadField when a row of Flickr's own (a YFCC row, an API entry) names another photo in its URLs: a download
    URL whose file is another photo's (`{id}_{secret}...`), or a Flickr page of another photo. A CC BY row pointing
    at a CC BY-NC photo's file had that photo's pixels fetched and published under this one's id, licence and
    credit; another photo's page sends the attribution elsewhere. A file name in no Flickr form names nothing.

    Not for generic tables: their ids may be their own numbering, and a file on their own host may be named
    anything (`20210612_143015.jpg`, as phones name photos); they state their licence themselves.

    `flickr_page`: the page URL must be this photo's Flickr page (a YFCC row linking its attribution to
    `https://phish.example/login` was published as it was)."""
    _, path = _path(download)
    for named in (named for reading in _readings(path) for named in _files_named(reading)):
        if named != photo_id:
            raise BadField(reason, f"download URL names photo {named[:20]}, not {photo_id}")
    if not page:
        return
    host, path = _path(page)
    match = _PHOTO_PAGE_PATH.fullmatch(_as_sent(path)) if host.lower() in _FLICKR_HOSTS else None
    if match and match[1] != photo_id:
        raise BadField(reason, f"page URL names photo {match[1][:20]}, not {photo_id}")
    if flickr_page and not match:
        raise BadField(reason, f"page URL {_shown(page)} is not a Flickr photo page")


def _shown(value: object) -> str:
    return repr(value)[:40]


def upload_date(value: str | int, name: str) -> str:
    """Epoch seconds (a string of digits, or an int from JSON) -> ISO 8601 UTC; '' stays unknown."""
    if value == "":
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and _EPOCH.fullmatch(value):
        seconds = int(value)
    else:
        raise BadField("bad_date", f"{name} {_shown(value)} is not epoch seconds")
    low, high = UPLOAD_EPOCHS
    if not low <= seconds < high:
        raise BadField("bad_date", f"{name} {_shown(value)} is outside 1970..2099")
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def taken_date(value: str, name: str) -> str:
    """'2012-07-11 17:11:05.0' -> '2012-07-11 17:11:05' (the '.0' is a database artefact); '' and
    MySQL's zero date -> '' (unknown); a day that does not exist or a year outside TAKEN_YEARS is refused."""
    if not isinstance(value, str):
        raise BadField("bad_date", f"{name} is a {value_kind(value)}, not a date")
    if value == "" or _ZERO_DATE.fullmatch(value):
        return ""
    match = _TAKEN.fullmatch(value)
    if not match:
        raise BadField("bad_date", f"{name} {_shown(value)} is not YYYY-MM-DD[ HH:MM:SS]")
    numbers = [int(part) for part in match.groups() if part is not None]
    try:
        dt.datetime(*numbers)  # type: ignore[arg-type]  # 3 or 6 parts: a day, or a day and time
    except ValueError:
        raise BadField("bad_date", f"{name} {_shown(value)} is no real date or time") from None
    if not TAKEN_YEARS[0] <= numbers[0] <= TAKEN_YEARS[1]:
        raise BadField("bad_date", f"{name} {_shown(value)} is outside {TAKEN_YEARS[0]}..{TAKEN_YEARS[1]}")
    return value.removesuffix(".0")


def marker(value: str) -> int:
    """YFCC's photo/video marker: '0' photo, '1' video, '' (not given) photo; anything else is refused,
    since a '2' read as "not 1" would let a video through as a photo."""
    if value in ("", "0"):
        return 0
    if value == "1":
        return 1
    raise BadField("bad_field", f"marker {_shown(value)} is not 0 or 1")


def url_token(value: object, name: str) -> str:
    """A server id, farm id, secret or extension: '' or up to 40 ASCII letters and digits. JSON
    numbers (Flickr sends the farm as one) are taken as their decimal digits."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**20:
        return str(value)
    if isinstance(value, str) and _URL_TOKEN.fullmatch(value):
        return value
    raise BadField("bad_field", f"{name} {_shown(value)} is not letters and digits")


def owner_id(value: str, name: str, reason: str = "bad_field") -> str:
    """An account id ('' when unknown): letters, digits and `_@.-` only, as it is pasted into URLs, and at least one
    letter or digit (`..` made the creator link https://www.flickr.com/people/../, Flickr's home page); an NSID in
    Flickr's one spelling (`records.canonical_owner_id`: "007@n01" is "7@N01")."""
    if not _OWNER.fullmatch(value) or (value and not any(c.isascii() and c.isalnum() for c in value)):
        raise BadField(reason, f"{name} {_shown(value)} is not a Flickr account id")
    return canonical_owner_id(value)


# Longer URLs are not photo URLs (browsers and servers stop near 8 KB): every source refuses one.
MAX_URL_CHARS = 4096


def bounded_url(value: str, name: str, reason: str = "bad_field") -> str:
    """A URL of at most MAX_URL_CHARS characters."""
    if len(value) > MAX_URL_CHARS:
        raise BadField(reason, f"{name} holds {len(value):,} characters, over the limit of {MAX_URL_CHARS:,}")
    return value


def page_url(value: str, name: str) -> str:
    """'' or an http(s) URL without spaces or control characters: the page ATTRIBUTION.csv links to."""
    if value and not _PAGE_URL.fullmatch(value):
        raise BadField("bad_field", f"{name} {_shown(value)} is not an http(s) URL")
    return value


def no_nul(value: str, name: str, reason: str = "bad_field") -> str:
    """Text without a NUL character: never text, and C libraries downstream cut a value short at it."""
    if "\x00" in value:
        raise BadField(reason, f"{name} holds a NUL character")
    return value
