"""RFC 3986 6.2.2 normalisation of a URL's parts, as requests sends them and as servers read them: escaped
unreserved characters decoded, dot segments removed. Shared by the takedown lists' URL matching
(stages/blocklist.py) and the check that a row's URLs name its own photo (sources/fields.py)."""

from __future__ import annotations

import re
import string

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
# An escape, or one character that may not stand in a URL as it is: not unreserved, not reserved (RFC 3986 2.2), not
# the "%" of an escape. "[" and "]" stay as written, as requests sends them.
_ESCAPE_OR_OUTSIDE = re.compile(r"%([0-9A-Fa-f]{2})|[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]")


def _escaped(match: re.Match[str]) -> str:
    hex_digits = match[1]
    if hex_digits is None:  # a space, a non-ASCII character, a "%" that starts no escape: its UTF-8 bytes escaped
        try:
            return "".join(f"%{byte:02X}" for byte in match[0].encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("the URL holds a lone surrogate, which is no UTF-8 text") from None
    char = chr(int(hex_digits, 16))
    # Only an unreserved character means the same escaped or not; an escaped reserved one ("%2F", "%3F") is data,
    # not a delimiter, and decoding it would make "a%2Fb" the path "a/b", another resource.
    return char if char in _UNRESERVED else f"%{hex_digits.upper()}"


def normal_escapes(text: str) -> str:
    """`text` (a URL's path, query or host) with RFC 3986 6.2.2.2 percent-encoding normalisation: escaped unreserved
    characters decoded, other escapes in upper case, characters outside the URL alphabet escaped as UTF-8 (as
    requests does before sending). ValueError for a lone surrogate."""
    return _ESCAPE_OR_OUTSIDE.sub(_escaped, text)


def without_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 remove_dot_segments, on a path whose escapes are already normal ("%2E" is "." by then):
    "/a/./b/../c" is "/a/c", as requests (urllib3) sends it and as 6.2.2.3 compares it. That is for a path starting
    with "/" (or empty), as a URL with a host has; a relative one (a URL with no host, naming nothing fetched) keeps
    its first segment, "a/../b" being "a/b" where 5.2.4 makes it "/b", so a check of each segment still reads it."""
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")  # "/a/b/.." is "/a/": the directory
        elif segment == ".":
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/".join(output)
