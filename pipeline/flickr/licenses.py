"""Flickr's license ids (flickr.photos.licenses.getInfo) with today's names and URLs: the search API
returns only the id, the dataset records name and URL.

Sources word one license differently (YFCC: "Attribution License" with an http URL; the API's
table: the same words with https, or "CC BY 4.0"), so the dataset records one canonical name and
https URL per license (`CANONICAL`, found by `canonical_license`) and keeps the source's own words
beside them (Photo.license_source_text / license_source_url).
"""

from __future__ import annotations

import re

from pipeline.cc_by import CC_BY_LICENSE_IDS as CC_BY_LICENSE_IDS  # (re-exported: the stages read it here)

# Per Flickr license id: Flickr's own name for it (flickr.photos.licenses.getInfo), the short SPDX-like
# name Creative Commons itself uses, which the dataset records, and the license's URL. One table, so
# the two names of a license cannot drift apart.
_TABLE = {
    0: ("All Rights Reserved", "All Rights Reserved", ""),
    1: ("Attribution-NonCommercial-ShareAlike License", "CC BY-NC-SA 2.0",
        "https://creativecommons.org/licenses/by-nc-sa/2.0/"),
    2: ("Attribution-NonCommercial License", "CC BY-NC 2.0", "https://creativecommons.org/licenses/by-nc/2.0/"),
    3: ("Attribution-NonCommercial-NoDerivs License", "CC BY-NC-ND 2.0",
        "https://creativecommons.org/licenses/by-nc-nd/2.0/"),
    4: ("Attribution License", "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"),
    5: ("Attribution-ShareAlike License", "CC BY-SA 2.0", "https://creativecommons.org/licenses/by-sa/2.0/"),
    6: ("Attribution-NoDerivs License", "CC BY-ND 2.0", "https://creativecommons.org/licenses/by-nd/2.0/"),
    7: ("No known copyright restrictions", "No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    8: ("United States Government Work", "United States Government Work", "https://www.usa.gov/copyright.shtml"),
    9: ("Public Domain Dedication (CC0)", "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    10: ("Public Domain Mark", "Public Domain Mark 1.0", "https://creativecommons.org/publicdomain/mark/1.0/"),
    11: ("CC BY 4.0", "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    12: ("CC BY-SA 4.0", "CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
    13: ("CC BY-ND 4.0", "CC BY-ND 4.0", "https://creativecommons.org/licenses/by-nd/4.0/"),
    14: ("CC BY-NC 4.0", "CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
    15: ("CC BY-NC-SA 4.0", "CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
    16: ("CC BY-NC-ND 4.0", "CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
}
# Flickr's table still words a few URLs with http: those are its own words, kept as Flickr gives them.
_FLICKR_URL = {8: "http://www.usa.gov/copyright.shtml"}

# Flickr's words per license id: (name, URL) as flickr.photos.licenses.getInfo gives them.
LICENSES = {license_id: (flickr_name, _FLICKR_URL.get(license_id, url))
            for license_id, (flickr_name, _, url) in _TABLE.items()}
# The one name and https URL the dataset records per license id.
CANONICAL = {license_id: (name, url) for license_id, (_, name, url) in _TABLE.items()}
_SCHEME = re.compile(r"^https?://(www\.)?", re.IGNORECASE)


# The pages of one licence Creative Commons links to besides its folder: the deed in a language, the legal code
# (`by/4.0/deed.en`, `by/4.0/legalcode.fr`), and the chooser's `?ref=chooser-v1`. A table exported with those URLs
# lost every row as not_cc_by.
_LICENCE_PAGE = re.compile(r"(?<=/)(deed|legalcode)(\.[a-z]{2,3}([_-][a-z0-9]{1,8})*)?/?$")


def _bare_url(url: str) -> str:
    """'HTTP://www.CreativeCommons.org/licenses/by/2.0' -> 'creativecommons.org/licenses/by/2.0/'; on
    creativecommons.org, a deed or legal code page ('.../by/4.0/deed.en', '.../legalcode') and a query or fragment
    name the licence's folder."""
    bare = _SCHEME.sub("", url.strip()).lower()
    if bare.startswith("creativecommons.org/"):
        bare = bare.split("#", 1)[0].split("?", 1)[0]
        if bare.rstrip("/").count("/") == 4:  # creativecommons.org/licenses/by/4.0/PAGE
            bare = _LICENCE_PAGE.sub("", bare)
    return bare if not bare or bare.endswith("/") else bare + "/"


def _bare_name(name: str) -> str:
    """'CC-BY-4.0' (SPDX) -> 'cc by 4.0': '-' read as a space, as the license stage reads names."""
    return " ".join(name.replace("-", " ").split()).lower()


_BY_URL = {_bare_url(url): license_id for table in (LICENSES, CANONICAL)
           for license_id, (_, url) in table.items() if url}
_BY_NAME = {_bare_name(name): license_id for table in (LICENSES, CANONICAL)
            for license_id, (name, _) in table.items()}


def license_id_of(name: str, url: str) -> int | None:
    """The Flickr license id that a source's name and URL denote, or None. The URL decides when there
    is one (it is unambiguous, whatever its scheme or case); the name only when it is absent."""
    if url.strip():
        return _BY_URL.get(_bare_url(url))
    return _BY_NAME.get(_bare_name(name)) if name.strip() else None


def canonical_license(name: str, url: str) -> tuple[str, str]:
    """(canonical name, https URL) for a license a source words as `name` and `url`; a license this
    table does not know is left as the source wrote it (the license stage then rejects it)."""
    license_id = license_id_of(name, url)
    return CANONICAL[license_id] if license_id is not None else (name, url)


def words_disagree(name: str, url: str) -> bool:
    """True when a source gives both a licence name and a URL and they do not denote the same licence: "All Rights
    Reserved" or "Attribution-NonCommercial License" beside the CC BY 2.0 URL. `license_id_of` lets the URL decide,
    so such a row was kept as CC BY with the contradicting words published beside it; a name no table knows beside
    a URL is no agreement either."""
    if not (name.strip() and url.strip()):
        return False
    by_url = _BY_URL.get(_bare_url(url))
    return by_url is None or _BY_NAME.get(_bare_name(name)) != by_url
