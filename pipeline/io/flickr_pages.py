"""Flickr photo pages: which account a page URL names as its owner, for the takedown list (an `owner` entry keeps
out an account's photos a table lists by their pages), and which account a photo is of (`account`: a table's rows
carry no owner id, only their page) for the per-photographer cap, the licence re-check's owner searches, the
datasheet's count of photographers and ATTRIBUTION.csv's creator link."""

from __future__ import annotations

import contextlib
import re
from urllib.parse import unquote, urlsplit

import idna

from pipeline.io.url_paths import normal_escapes, without_dot_segments
from pipeline.records import canonical_owner_id

# A Flickr account id (NSID), as search answers and the YFCC dumps give the owner: digits, "@N", two digits. An
# alias (flickr.com/photos/ALIAS) names the same account only through the API, so it is refused, not matched.
NSID = re.compile(r"([0-9]{1,20})@[Nn]([0-9]{2})")
PAGE_HOSTS = frozenset({"flickr.com", "m.flickr.com", "secure.flickr.com"})  # after "www." is dropped
# /photos/<owner or alias>/<id>[/anything], where the owner part is not one of Flickr's own words
PAGE_PATH = re.compile(r"/photos/([^/]+)/0*([0-9]{1,20})(?:/.*)?")
# A final dot, each way it may be written once the host's escapes are decoded: IDNA makes the ideographic, full-width
# and half-width full stops a '.'.
_FINAL_DOTS = (".", "\u3002", "\uff0e", "\uff61")


def normal_host(hostname: str) -> str:
    """The host lower-cased, its escapes normal, an international name in the IDNA form requests sends (BÜcher.de is
    xn--bcher-kva.de); a name IDNA refuses is compared as written (requests would not send it anyway). Without its
    final dot, however written: IDNA makes an ideographic or full-width full stop a '.', and an escaped one (%2E) is
    one, so `www.flickr.com。` was `flickr.com.`, no host of Flickr's, where `www.flickr.com.` was Flickr's. Every final
    dot goes before IDNA reads the rest: IDNA refuses a '%' and two final dots (an empty label), and a host it refuses
    stays escaped (`ｗｗｗ.flickr.com%2E` and `www.flickr.com。。` were Flickr's host read as none of Flickr's). Its
    escapes are decoded first, once, as UTF-8, as a browser decodes them before IDNA (`_decoded`): only an escaped
    ASCII letter, digit or dot was, so `%EF%BD%97%EF%BD%97%EF%BD%97.flickr.com` (full-width "www") or an escaped soft
    hyphen, which a browser opens as www.flickr.com, was read as none of Flickr's hosts."""
    host = _without_final_dots(_decoded(hostname))
    if not host.isascii():
        with contextlib.suppress(idna.IDNAError):
            host = idna.encode(host, uts46=True).decode("ascii")
    return normal_escapes(host).lower().rstrip(".")  # a final dot IDNA made of what it drops (a soft hyphen) after one


# What the decoding of a host's escapes must not make of them (`_decoded`): a '%' (decoded twice, no browser's
# reading) or a URL's delimiter, a host holding which a browser refuses (`a.com%2Fb` would be the host and path a.com/b,
# another URL's key).
_KEPT_ESCAPED = str.maketrans({char: f"%{ord(char):02X}" for char in "%/\\?#@:[]"})
# A run of escapes, or a '%' that starts none
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+|%")


def _decoded(host: str) -> str:
    """`host` with its escapes decoded as UTF-8 (one that is no UTF-8 is U+FFFD, which IDNA refuses, as a browser
    does), once: a '%' or a delimiter the decoding makes (`%252E` is `%2E`, `%2F` is '/') is escaped again, and so is a
    '%' that starts no escape, so no later step decodes anything a second time, which no browser does, and no host
    holds a delimiter it did not hold as written."""
    return _ESCAPES.sub(lambda run: unquote(run[0], errors="replace").translate(_KEPT_ESCAPED), host)


def _without_final_dots(host: str) -> str:
    """`host` without its final dots, each written in any of its `_FINAL_DOTS` ways (a final piece at a time, so a
    host of a million dots is read once)."""
    end = len(host)
    while True:
        dot = next((dot for dot in _FINAL_DOTS if end >= len(dot) and host[end - len(dot):end].upper() == dot), None)
        if dot is None:
            return host[:end]
        end -= len(dot)


def page_owner(url: str) -> str | None:
    """The account id a Flickr photo page names as its owner (`flickr.com/photos/<NSID>/<id>/`), in Flickr's one
    spelling; None for any other URL, or a page naming its owner by an alias (only the API knows whose that is)."""
    try:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        host = normal_host(parts.hostname or "").removeprefix("www.")
        page = PAGE_PATH.fullmatch(without_dot_segments(normal_escapes(parts.path)))
    except ValueError:
        return None
    owner = unquote(page[1]) if page and host in PAGE_HOSTS else ""  # "7%40N01", as a server reads it, is 7@N01
    return canonical_owner_id(owner) if NSID.fullmatch(owner) else None


def credited_account(credited: str) -> str:
    """The account a table's row credits as its creator (its `owner` column), where that is an account id (a table
    made from Flickr's search answers, whose `owner` is the NSID), in Flickr's one spelling; else '' (a creator's
    name)."""
    credited = credited.strip()
    return canonical_owner_id(credited) if NSID.fullmatch(credited) else ""


def account(owner_nsid: str, page_url: str, credited: str = "") -> str:
    """The Flickr account a photo is of, one notion for every stage and file that counts or groups photographers: its
    owner id in Flickr's one spelling when the row has one, else the account its Flickr photo page names (a table's
    rows carry no owner id, only their page), else the account id a table's row credits as its creator (`credited`:
    its owner name, read only where the row has no owner id: a dump's or the API's owner name is a screen name), else
    '' (unknown: no id, and a page naming an alias, which only the API can resolve, or none, and a creator's name)."""
    if owner_nsid:
        return canonical_owner_id(owner_nsid)
    return page_owner(page_url or "") or credited_account(credited)


def credited_owner(owner_nsid: str, page_url: str, owner_name: str) -> str:
    """The Flickr account a credit names and links: the owner id as the row holds it (as every release has linked
    it), else the account a table's row (no owner id) is known to be of, in Flickr's one spelling, never the row's own
    text: the one its page names where that is a plain Flickr page (`_plain_page`), else the account id its owner
    column credits; '' where none is known (a page naming an alias, a creator's name). The owner cap, the licence
    re-check and the datasheet count the account `account` reads of the row, which a page a browser opens elsewhere
    may name too (grouping more photos under it, never fewer); a credit links it only from a plain page."""
    if owner_nsid:
        return owner_nsid
    return account("", page_url if _plain_page(page_url) else "", owner_name)


def _plain_page(url: str) -> bool:
    """Whether `url` is opened by a browser at the host it names after `//`: http or https, no user info, no
    backslash before its path (`https://evil.example\\@www.flickr.com/photos/…` opens evil.example)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and not {"@", "\\"} & set(parts.netloc)


def account_link(owner: str) -> str:
    """The page of a Flickr account, as a credit links it; '' for no account."""
    return f"https://www.flickr.com/people/{owner}/" if owner else ""
