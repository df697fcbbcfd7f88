"""Blocklists: takedown requests and hash lists from safety organisations, applied to every run.

A list is a text file (plain, .gz or .bz2, the suffix in any case), one entry per line (ended by LF, CRLF or a lone
CR; `#` starts a comment):

    photo_id 123456789
    owner 12345678@N01          # every photo of one Flickr account (a photographer opting out): a row's
                                # owner id (a table's row: the creator it credits, where that is an account
                                # id), or the one its Flickr photo page names
    url https://www.flickr.com/photos/someone/123456789/
    sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    phash 0f1e2d3c4b5a6978 6        # optional distance; --near_dup_distance otherwise (4 when that is -1)

The same transform runs twice (each list read at launch, its text sent to the workers): before fetching with the
metadata kinds (photo_id, owner, url), so a taken-down photo is never downloaded again, and after normalisation with the
content kinds (sha256 of downloaded or stored bytes, pHash within a distance) and URLs again (the URL the image
was served from, after redirects, is known only then). Each match is rejected with the list, line and entry that
matched.

A takedown names a photo however it was written down, so ids and URLs are compared in canonical
form: photo ids without leading zeros (`records.canonical_photo_id`); a Flickr photo page
(`flickr.com/photos/<owner>/<id>/…`, `photo.gne?id=`), static image
(`live.staticflickr.com/65535/<id>_<secret>_b.jpg`, `farmN.staticflickr.com/…`,
`farmN.static.flickr.com/…`) or short URL (`flic.kr/p/<base58>`) stands for the photo id it names,
whoever's alias or whichever size it shows: the row of that id, and any row whose own Flickr URLs name it (a table's
row of that id whose photo is another site's too: a takedown is never missed for a table that gives Flickr's ids
with a mirror's URLs and no page, and a wrong removal costs one photo); any other URL is compared without its scheme
(http = https), `www.`, host case, default port, trailing slash and fragment (its query is kept:
on another site it may be what names the image). Both sides, the list's URLs and the photos', are
first normalised as RFC 3986 6.2.2 says (and as requests sends them): an escaped unreserved
character decoded (`%41lice` is `Alice`), escapes' hex digits upper-cased (`%2f` is `%2F`), a
character outside the URL alphabet escaped as UTF-8 (a space is `%20`, `café` is `caf%C3%A9`), `.`
and `..` segments removed, an international host in its IDNA form. An escaped reserved character
is never decoded: `a%2Fb` and `a/b` are different paths to a server.

Decision: a list entry that cannot be understood fails the run at launch, with `file:line` and
what is wrong (an unknown kind, a missing or extra field, an id that is not a photo number, a URL
that is not http(s), holds a character no one sees or ends in punctuation a sentence put after it, a
Flickr URL that names no photo such as an album, a URL on a host that reads as Flickr's and is not one of its
own (`flickr.com.evil.example`, `fIickr.com`, a Cyrillic letter for a Latin one: it would name no photo), a pHash
that is not 16 hex digits, a distance outside 0..16, a file that is not UTF-8). A blocklist is an operator's input,
checked before any worker starts; skipping a bad entry would silently keep a photo someone asked to take down, which
is worse than a run that does not start. Nor is an entry repaired (a character no one sees dropped, punctuation cut
off): a URL may end in what looks copied, and the line is fixed once where its author can see it.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import itertools
import posixpath
import re
import threading
import unicodedata
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipeline.io.flickr_pages import NSID as _NSID
from pipeline.io.flickr_pages import PAGE_HOSTS as _PAGE_HOSTS
from pipeline.io.flickr_pages import PAGE_PATH as _PAGE_PATH
from pipeline.io.flickr_pages import credited_account, page_owner
from pipeline.io.flickr_pages import normal_host as _normal_host
from pipeline.io.http_client import masked_url
from pipeline.io.staged_copy import StagedCopy, stage_copy
from pipeline.io.url_paths import normal_escapes, without_dot_segments
from pipeline.near_dup.hash_index import HashIndex
from pipeline.near_dup.perceptual_hashes import stored_phash
from pipeline.records import (
    BadPhotoId,
    Photo,
    Rejection,
    canonical_owner_id,
    canonical_photo_id,
)
from pipeline.sources.input_files import BROKEN_FILE_ERRORS, compression_of, open_decompressed
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "blocklist"
METADATA_KINDS = ("photo_id", "owner", "url")
CONTENT_KINDS = ("sha256", "phash")
# What the pass after fetching looks up: the content, and URLs again, since the URL the image was served from
# (`fetched_url`, after redirects) is known only then. Without it a takedown naming that URL was matched only by the
# next refresh's check of the carried row: the photo was published in the release before.
AFTER_FETCH_KINDS = (*CONTENT_KINDS, "url")
MAX_DISTANCE = 16  # the same bound as --near_dup_distance; beyond it a pHash "match" is noise
_HEX = re.compile(r"[0-9a-f]+")
_DISTANCE = re.compile(r"[0-9]{1,2}")
_STATIC_HOST = re.compile(r"(?:[a-z0-9-]+\.)*(?:staticflickr\.com|static\.flickr\.com)")
# /[farm/]server/<id>_<secret>[_size].ext
_STATIC_PATH = re.compile(r"(?:/[0-9]+){1,2}/0*([0-9]{1,20})_[0-9a-f]+(?:_[0-9a-z]{1,2})?\.[0-9a-z]{2,5}", re.I)
_NOT_OWNERS = frozenset({"tags"})
_ACCOUNT_PATH = re.compile(r"/(?:photos|people)/([^/]+)/?")  # an account's photostream or profile
_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # Flickr's short-URL alphabet
_SHORT_PATH = re.compile(rf"/p/([{_BASE58}]{{1,12}})/?")


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str
    value: str
    distance: int
    source: str  # "list.txt:12"


def _flickr_photo_id(host: str, path: str, query: str) -> str | None:
    """The photo id a Flickr URL names; None for a host that is not Flickr's; ValueError for a
    Flickr URL that names no photo (an album, a user page), which as a takedown would block nothing."""
    if host == "flic.kr":
        short = _SHORT_PATH.fullmatch(path)
        if not short:
            raise ValueError("a flic.kr URL names a photo only as flic.kr/p/<base58>")
        number = 0
        for digit in short[1]:
            number = number * 58 + _BASE58.index(digit)
        return canonical_photo_id(number)
    if _STATIC_HOST.fullmatch(host):
        static = _STATIC_PATH.fullmatch(path)
        if not static:
            raise ValueError("a Flickr static URL names a photo only as /<server>/<id>_<secret>[_size].<ext>")
        return canonical_photo_id(static[1])
    if host in _PAGE_HOSTS:
        page = _PAGE_PATH.fullmatch(path)
        if page and page[1].lower() not in _NOT_OWNERS:
            return canonical_photo_id(page[2])
        ids = parse_qs(query).get("id", []) if path == "/photo.gne" else []
        if len(ids) == 1:
            return canonical_photo_id(ids[0])
        account = _ACCOUNT_PATH.fullmatch(path)
        if account and _NSID.fullmatch(unquote(account[1])):
            # a photographer's takedown given as their page: the photos' ids alone miss their later uploads
            raise ValueError(f"this Flickr URL is an account's page: 'owner {canonical_owner_id(unquote(account[1]))}'"
                             " keeps out every photo of the account")
        raise ValueError("this Flickr URL names no photo (an album, a user or tag page?): list the photos' ids")
    return None


# Flickr's own hosts, the only ones a takedown URL names a Flickr photo on (`_flickr_photo_id`), as a refusal lists them
_FLICKR_HOSTS = ("www.flickr.com, flickr.com, m.flickr.com, secure.flickr.com, flic.kr, live.staticflickr.com and "
                 "the other *.staticflickr.com and *.static.flickr.com")
# Characters that show as a letter of Flickr's names, or are taken for one at a glance, each as that letter (after
# case folding, NFKC and accents dropped): I, 1 and | for the l (and so the l and i read alike: fIickr is fiickr once
# lower-cased), Cyrillic and Greek letters of the same shape, IPA and small capitals.
_READS_AS = str.maketrans({
    **dict.fromkeys("i1|!\u0131\u0269\u026a\u03b9\u0456\u04cf\u01c0\u0142\u019a\u0197\u1d09", "l"),
    **dict.fromkeys("\u0441\u03f2\u1d04\u0188\u217d", "c"),
    **dict.fromkeys("\u043a\u03ba\u0138\u1d0b\u049b\u049d", "k"),
    **dict.fromkeys("\u0433\u0280\u027c\u027d\u027e\u1d26", "r"),
    **dict.fromkeys("\u0192\ua799", "f"),
})
_READ_FLICKR = "flickr".translate(_READS_AS)  # "fllckr"


def _unicode_labels(text: str) -> list[str]:
    """A host name's labels as they show: compatibility forms (full-width letters, ℓ) made plain, a punycode label
    (xn--…) as the letters it shows."""
    labels = []
    for label in unicodedata.normalize("NFKC", text).replace("\u3002", ".").split("."):
        if label[:4].lower() == "xn--":
            with contextlib.suppress(UnicodeError, ValueError):  # no punycode: read as written
                label = label[4:].encode("ascii").decode("punycode")
        labels.append(label)
    return labels


def _as_read(text: str) -> list[str]:
    """A host name's labels as they read: as they show, case folded, accents dropped, and each character of
    `_READS_AS` the letter it shows as."""
    return ["".join(c for c in unicodedata.normalize("NFKD", label.casefold()) if not unicodedata.combining(c))
            .translate(_READS_AS) for label in _unicode_labels(text)]


def _reads_as_flickr(text: str) -> bool:
    """Whether a host name (or what shows as one) reads as one of Flickr's: "flickr" in any of its labels
    (flickr.com.evil.example, www.flickr.com-x.example, fIickr.com, a Cyrillic i for the i, staticflickr.com.x)
    or flic.kr."""
    labels = _as_read(text)
    return any(_READ_FLICKR in label for label in labels) or any(
        (first, second) == ("fllc", "kr") for first, second in itertools.pairwise(labels))


def _refuse_look_alike(url: str) -> None:
    """ValueError for a takedown URL whose host reads as Flickr's and is not one of Flickr's own hosts (`_READS_AS`),
    or is Flickr's but none of its photos' hosts, or whose user info reads as Flickr's before another host: taken as
    another site's URL, a key no photo has, the photo its author meant (Flickr's) was kept without a word. A Flickr
    photo is named only on Flickr's own hosts; what is written on a look-alike is refused, never matched, as no
    server of Flickr's would be asked for it."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if "\\" in parts.netloc:
        # evil.example\@www.flickr.com: Python reads www.flickr.com after the '@', a browser evil.example before the
        # backslash (a '/' to it); the list's author may have meant either, and the fetcher refuses such a URL
        raise ValueError(f"the URL's host part {masked_url(parts.netloc)[:80]!a} holds a backslash, which browsers "
                         "read as a '/' and Python does not: which host it names is not clear")
    host = _normal_host(parts.hostname or "").removeprefix("www.")
    if host in _PAGE_HOSTS or host == "flic.kr" or _STATIC_HOST.fullmatch(host):
        return
    user_info, _, written = parts.netloc.rpartition("@")
    written = re.sub(r":[0-9]*$", "", written)  # the host as written (urlsplit's is lower-cased: fIickr read fiickr)
    shows = ".".join(_unicode_labels(written))
    shown = f"{written!a}" + (f" (shown as {shows!a})" if shows != written else "")
    if host.endswith(".flickr.com"):
        raise ValueError(f"the host {shown} is Flickr's but not one of Flickr's hosts of photos ({_FLICKR_HOSTS}): "
                         "it names no Flickr photo; write the photo's www.flickr.com page")
    advice = ("a look-alike names no Flickr photo: list Flickr's photo by its www.flickr.com page, another site's by "
              "its photo_id or sha256")
    if _reads_as_flickr(unquote(written)):
        raise ValueError(f"the host {shown} reads as Flickr's and is not one of Flickr's ({_FLICKR_HOSTS}); {advice}")
    if user_info and _reads_as_flickr(unquote(user_info).replace(":", ".")):
        user, colon, _ = user_info.partition(":")  # what follows a ':' there is a password: never shown
        user_shown = user[:60] + (":…" if colon else "")
        raise ValueError(f"the host is {shown}, {user_shown!a} before its '@' being user info, which reads as "
                         f"Flickr's host; {written!a} is not one of Flickr's ({_FLICKR_HOSTS}); {advice}")


def canonical_url(url: str) -> tuple[str, str]:
    """The key a URL is compared by: ("photo_id", id) for a Flickr photo URL of any form, else
    ("url", host[:port]/path[?query]) without scheme, "www.", trailing slash or fragment, after RFC 3986 6.2.2
    normalisation (`normal_escapes`, `without_dot_segments`, an IDNA host), so that every spelling requests sends
    as one request gives one key. ValueError (or BadPhotoId, a ValueError) for what is not an http(s) URL or a
    Flickr URL naming no photo."""
    text = url if "://" in url else f"https://{url}"  # "www.flickr.com/photos/x/1/" as pasted from a browser
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: scheme {parts.scheme[:20]!r}")
    host = _normal_host(parts.hostname or "")  # urlsplit lower-cases the host
    if "." not in host:
        raise ValueError("not a URL: no host name")
    host = host.removeprefix("www.")
    # Normalised before Flickr's forms are recognised too: "/photos/x/%34%33/" names photo 43.
    path = without_dot_segments(normal_escapes(parts.path))
    query = normal_escapes(parts.query)
    photo_id = _flickr_photo_id(host, path, query)
    if photo_id is not None:
        return "photo_id", photo_id
    port = parts.port  # raises ValueError for a port that is not a number
    where = host if port in (None, 80, 443) else f"{host}:{port}"
    return "url", where + path.rstrip("/") + (f"?{query}" if query else "")


# Characters a takedown URL shows no sign of where it is read: format characters (a zero-width space, a left-to-right
# mark, a soft hyphen, a byte order mark) and control characters.
_UNSEEN = frozenset({"Cf", "Cc"})
# What a sentence puts after a URL it quotes ("see https://…/a.jpg.", "(…/123),"): copied with it, the URL was another
# site's key no photo has, or a Flickr page refused as naming no photo.
_PROSE_AFTER = frozenset(".,;:)")


def _prose_tail(url: str) -> str:
    """The punctuation `url` ends in that a sentence may have put after it; a ")" only where the URL opens fewer
    parentheses than it closes (`wiki/Lake_(Bled)` ends in its own)."""
    end = len(url)
    while end and url[end - 1] in _PROSE_AFTER:
        if url[end - 1] == ")" and url.count("(", 0, end) >= url.count(")", 0, end):
            break
        end -= 1
    return url[end:]


def _refuse_prose_tail(url: str) -> None:
    """ValueError for a URL ending in punctuation without which it is another key: refused, as a character no one
    sees is, not cut off, since a URL may end so (`a%2E` writes one that does)."""
    tail = _prose_tail(url)
    if not tail:
        return
    try:
        bare = canonical_url(url[:-len(tail)])
    except ValueError:
        return  # no URL without it either: its own refusal says what is wrong
    try:
        same = canonical_url(url) == bare  # a dot segment ("/123/."), or past a Flickr page's path ("/123/,")
    except ValueError:
        same = False
    if not same:
        # Only a '.' has an escape that is the same key (%2E, unreserved); an escaped ';', ':', ',' or ')' is another
        # URL, never decoded: told to escape, such an entry was taken and blocked nothing, the photo kept unsaid
        own = ("a URL that does end in '.' takes it escaped, %2E" if set(tail) == {"."} else
               f"a URL that does end in {tail!r} is listed by its photo's photo_id or sha256: escaped, it is "
               "another URL")
        raise ValueError(f"the URL ends in {tail!r}, punctuation copied with it from a sentence? Write it without "
                         f"({own})")


def _entry(fields: list[str], where: str, default_distance: int) -> Entry:
    """One list line's fields -> an Entry, or ValueError saying what is wrong (without the place)."""
    kind, value, *rest = fields
    kind = kind.lower()
    if kind == "phash":
        if len(rest) > 1:
            raise ValueError("expected 'phash HASH [DISTANCE]'")
        value = value.lower()
        if len(value) != 16 or not _HEX.fullmatch(value):
            raise ValueError("a pHash is 16 hex digits")
        if rest and not (_DISTANCE.fullmatch(rest[0]) and int(rest[0]) <= MAX_DISTANCE):
            raise ValueError(f"a pHash distance is a whole number in 0..{MAX_DISTANCE}, got {rest[0][:20]!r}")
        return Entry(kind, value, int(rest[0]) if rest else default_distance, where)
    if rest:
        raise ValueError(f"expected '{kind} VALUE' and nothing more")
    if kind == "photo_id":
        return Entry(kind, canonical_photo_id(value), default_distance, where)
    if kind == "owner":
        nsid = _NSID.fullmatch(value)
        if not nsid:
            raise ValueError("an owner is a Flickr account id such as 12345678@N01 (an alias names it only through "
                             "Flickr's API: look the id up on the account's page)")
        return Entry(kind, canonical_owner_id(value), default_distance, where)
    if kind == "url":
        if hidden := next((char for char in value if unicodedata.category(char) in _UNSEEN), None):
            # Copied from a page, a PDF or an e-mail with it: sent escaped, such a URL matched no photo, unsaid
            raise ValueError(f"the URL holds U+{ord(hidden):04X} ({unicodedata.name(hidden, 'a control character')}), "
                             "which no one sees: copied with it? (write it escaped if the URL holds it)")
        _refuse_prose_tail(value)
        canonical_url(value)  # understood, or ValueError; matched by its canonical key
        _refuse_look_alike(value)
        return Entry(kind, value, default_distance, where)
    value = value.lower()
    if len(value) != 64 or not _HEX.fullmatch(value):  # a shortened hash would silently block nothing
        raise ValueError("a sha256 is 64 hex digits")
    return Entry(kind, value, default_distance, where)


# Line breaks other than "\n", "\r\n" and a lone "\r" (which end a line): inside a comment one fails the list at
# launch. A list saved with old Mac line ends ("\r" alone) was one line, and behind a first "# takedowns" comment
# every entry was silently a comment; U+2028, NEL or a form feed, which some editors show as line ends, did the same.
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def list_lines(text: str) -> list[str]:
    """An operator's list's lines (this one's, and `--decontaminate`'s list files), numbered as an editor counts them:
    ended by \\n, \\r\\n or a lone \\r, and by no other character (`str.splitlines()` also ends one at U+2028, NEL, a
    form feed, which a file name may hold: a path in a list was cut in two)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def break_in_comment(comment: str, where: str) -> None:
    """ValueError naming `where` for a line break other than a list's own (`_OTHER_BREAKS`) in a line's `comment`,
    which would make what follows it, an entry to the eye, part of the comment."""
    if hidden := _OTHER_BREAKS.search(comment):
        raise ValueError(f"{where}: a line break {hidden[0]!a} in a comment would make what follows it a comment "
                         "too; end lines with \\n")


def parse_blocklist(text: str, name: str, default_distance: int) -> list[Entry]:
    """Every entry of one list; ValueError naming `name:line` for the first one that cannot be understood."""
    entries = []
    for number, line in enumerate(list_lines(text), start=1):
        body, _, comment = line.partition("#")
        fields = body.split()
        where = f"{name}:{number}"
        break_in_comment(comment, where)
        if not fields:
            continue
        if fields[0].lower() not in METADATA_KINDS + CONTENT_KINDS or len(fields) < 2:
            raise ValueError(f"{where}: expected '<photo_id|owner|url|sha256|phash> VALUE', got "
                             f"{line.strip()[:80]!r}")
        try:
            entries.append(_entry(fields, where, default_distance))
        except ValueError as err:  # BadPhotoId included
            # A URL's user info (a password) and query (a signed URL's token) masked, as every message shows a URL
            shown = " ".join([fields[0], *map(masked_url, fields[1:])]) if fields[0].lower() == "url" else line.strip()
            raise ValueError(f"{where}: {err} (in {shown[:80]!r})") from None
    return entries


def _decoded(raw: bytes, name: str) -> str:
    """A list's text (UTF-8, a byte order mark allowed); ValueError naming the line that is not UTF-8."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        before = raw[:err.start]
        line = before.replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1  # as parse_blocklist counts
        raise ValueError(f"{name}:{line}: not UTF-8 text (byte {err.start})") from None


def read_blocklists(paths: Sequence[str]) -> list[tuple[str, bytes]]:
    """(name, bytes) of each list, as read now."""
    return [(posixpath.basename(path), _list_bytes(path)) for path in paths]


def _list_bytes(path: str) -> bytes:
    """A list's bytes: plain, or a .gz or .bz2 read as an input file is (`input_files.open_decompressed`: checked to
    its end, its inflation bounded); ValueError naming it otherwise. Beam's decompressors gave a list cut short (a hash
    list's download stopped) as far as it went, without a word: the entries after the cut were never applied, and the
    cut one could name another photo (`photo_id 4242` cut to `photo_id 42`); and a .gz of one line repeated was
    inflated whole into the launcher's memory."""
    if compression_of(path):  # in any case: `TAKEDOWNS.TXT.GZ` was refused as compressed another way
        opened = open_decompressed(path)
    elif CompressionTypes.detect_compression_type(path) == CompressionTypes.UNCOMPRESSED:
        opened = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    else:
        raise ValueError(f"{path}: a list is read plain, .gz or .bz2 (each checked to its end); name it so")
    try:
        with opened as handle:
            return handle.read()
    except BROKEN_FILE_ERRORS as err:  # a truncated or corrupt stream, a compression bomb
        raise ValueError(f"{path}: cannot be read: {type(err).__name__}: {' '.join(str(err).split())}"[:300]) from None


def parse_blocklists(texts: Sequence[tuple[str, bytes]], default_distance: int) -> list[Entry]:
    return [entry for name, raw in texts for entry in parse_blocklist(_decoded(raw, name), name, default_distance)]


def _entry_key(entry: Entry) -> tuple[str, str]:
    return canonical_url(entry.value) if entry.kind == "url" else (entry.kind, entry.value)


def _photo_keys(photo: Photo) -> list[tuple[str, str]]:
    """What a photo can be listed by: its id (a `photo_id` entry or a Flickr URL naming it, whatever the row's site),
    the photo ids its Flickr URLs name, its owner (the row's id, else the account id a table's row credits as its
    creator; and the one its Flickr page names: a table's rows have only their page), its other URLs (canonical where
    they parse, as given where they do not), its hashes."""
    try:
        keys = [("photo_id", canonical_photo_id(photo.photo_id))]
    except BadPhotoId:
        keys = [("photo_id", photo.photo_id)]
    if photo.owner_nsid:
        keys.append(("owner", canonical_owner_id(photo.owner_nsid)))
    elif credited := credited_account(photo.owner_name):
        # A table's row has no owner id: the creator it credits, where that is an account id (a table made from
        # Flickr's search answers, whose `owner` is the NSID), is the account it names, as the owner cap counts it; a
        # row of Flickr's own is matched by its owner id alone (its owner name is a screen name, which may read as
        # another's id).
        keys.append(("owner", credited))
    if photo.page_url and (owner := page_owner(photo.page_url)):
        keys.append(("owner", owner))
    for url in (photo.page_url, photo.download_url, photo.fetched_url):
        if url:
            try:
                keys.append(canonical_url(url))
            except ValueError:
                keys.append(("url", url))
    keys += [("sha256", sha) for sha in (photo.download_sha256, photo.sha256) if sha]
    return keys


class Matcher:
    """Exact lookups for ids, URLs and sha256; a pigeonhole `HashIndex` for the listed pHashes."""

    def __init__(self, entries: Sequence[Entry], kinds: Sequence[str]) -> None:
        self._exact: dict[tuple[str, str], Entry] = {}
        for e in entries:
            if e.kind in kinds and e.kind != "phash":
                self._exact.setdefault(_entry_key(e), e)  # the first listed of equal entries is reported
        self._hashes = HashIndex([(int(e.value, 16), e.distance, e) for e in entries
                                  if e.kind == "phash" and "phash" in kinds])

    def match(self, photo: Photo, rehash: bool = False) -> Entry | None:
        """The first entry `photo` is listed by. `rehash`: its stored image's pHash is looked up too, not only the one
        its row states (a carried row's, which the previous release states)."""
        for key in _photo_keys(photo):
            if key in self._exact:
                return self._exact[key]
        if not len(self._hashes):
            return None
        hashes = [photo.phash] if photo.phash else []
        if rehash and photo.image and (own := stored_phash(photo.image)) not in hashes:
            hashes += [own] if own else []
        for value in hashes:
            found = self._hashes.nearest(int(value, 16))
            if found:
                return found[0]
        return None


def copy_blocklists(texts: Sequence[tuple[str, bytes]], folder: str) -> list[StagedCopy]:
    """Each list's bytes copied under `folder` (`io/staged_copy.py`), for the workers to read instead of carrying
    the text in the job graph."""
    return [stage_copy(name, raw, folder) for name, raw in texts]


# The matchers of a worker process, by what they were made from: a runner sets up a stage's DoFn once per thread
# (a bundle processor each), and a refresh has two stages of each kind (its new photos' and its carried ones'), so a
# list of 2 million entries (630 MB parsed) was parsed and held as many times over, per process.
_MATCHERS: weakref.WeakValueDictionary[tuple, Matcher] = weakref.WeakValueDictionary()
_MATCHERS_LOCK = threading.Lock()


def _shared_matcher(texts: Sequence[tuple[str, bytes]], distance: int, kinds: tuple[str, ...]) -> Matcher:
    """The process's Matcher of these lists' bytes and names, at this distance, for these kinds: made once and held
    while any stage instance holds it."""
    key = (tuple((name, hashlib.sha256(raw).digest()) for name, raw in texts), distance, kinds)
    with _MATCHERS_LOCK:
        matcher = _MATCHERS.get(key)
        if matcher is None:
            matcher = Matcher(parse_blocklists(texts, distance), kinds)
            _MATCHERS[key] = matcher
        return matcher


# The characters of a takedown URL a rejection shows: its list's line names the entry whole.
_SHOWN_URL_CHARS = 200


def _shown_value(entry: Entry) -> str:
    """An entry's value as a published rejection shows it: a URL's user info and query string masked, as a fetch's
    rejection masks them (a password, a signed URL's token), and bounded; the other kinds as they are (an id, an
    account id, a hash)."""
    if entry.kind != "url":
        return entry.value
    masked = masked_url(entry.value)
    return masked if len(masked) <= _SHOWN_URL_CHARS else f"{masked[:_SHOWN_URL_CHARS]}…"


class _DropListed(beam.DoFn):
    def __init__(self, lists: Sequence[tuple[str, bytes]] | Sequence[StagedCopy], distance: int, kinds: Sequence[str],
                 stage: str, rehash: bool = False) -> None:
        self._lists, self._distance, self._kinds, self._stage = list(lists), distance, tuple(kinds), stage
        self._rehash = rehash

    def setup(self) -> None:
        copies = [item for item in self._lists if isinstance(item, StagedCopy)]
        texts = [(copy.name, copy.read()) for copy in copies] if copies else self._lists
        self._matcher = _shared_matcher(texts, self._distance, self._kinds)  # type: ignore[arg-type]

    def process(self, photo: Photo) -> Iterator:
        entry = self._matcher.match(photo, self._rehash)
        if entry is None:
            yield photo
        else:
            detail = f"{entry.source} {entry.kind} {_shown_value(entry)}"
            yield reject(Rejection.of(photo, self._stage, "blocklisted", detail))


class Blocklist(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo] not on any list, PCollection[Rejection]).

    `kinds` chooses which entries apply: METADATA_KINDS before fetching, CONTENT_KINDS after
    hashing. Lists are read and parsed once at construction (a malformed list fails the job at start), and what
    was read reaches each worker's setup() (its copy in the run's staging folder, or its text): read again there, a
    list edited while the job ran (takedown requests come at any time) was applied in one version to some photos and
    in another to others, an entry checked at launch could be gone, and a list saved half-written failed the whole
    job in a worker."""

    def __init__(self, paths: Sequence[str], distance: int, kinds: Sequence[str], stage: str = STAGE,
                 texts: Sequence[tuple[str, bytes]] | None = None, copies: Sequence[StagedCopy] = (),
                 rehash: bool = False) -> None:
        super().__init__()
        # `texts`: the lists as `read_blocklists` read them once for all of a job's Blocklist stages (a refresh has
        # four: read by each, a list saved meanwhile was applied in two versions); `copies`: where the job copied
        # them (`copy_blocklists`), which the workers then read instead of carrying the text in the job graph;
        # `rehash`: pHashes are looked up for the photos' stored images too (Matcher.match), for carried rows
        texts = read_blocklists(paths) if texts is None else texts
        parse_blocklists(texts, distance)  # fail fast, before any worker starts
        self._stage = stage
        self._fn = _DropListed(list(copies) or texts, distance, kinds, stage, rehash)

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_stage(photos, self._stage, self._fn)
