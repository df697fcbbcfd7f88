"""Globs read as POSIX names read them: '*' any run of characters but '/', '**' any run at all, '?' one character
but '/', a class as fnmatch reads it. Pure text, no filesystem: `files.matching` lists with it, `file_pins` matches
the paths a check read against a glob with it."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator


def glob_parts(pattern: str) -> Iterator[tuple[str, str]]:
    """The tokens of a glob as Beam's FileSystem.translate_pattern reads them: ('*', run of stars), ('?', '?'),
    ('[', class text with its brackets) or ('', one literal character). An unclosed '[' is a literal."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            yield "*", pattern[i:j]
            i = j
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j < n:
                yield "[", pattern[i:j + 1]
                i = j + 1
                continue
        yield ("?", c) if c == "?" else ("", c)
        i += 1


def is_glob(pattern: str) -> bool:
    """Whether `files.matching` reads `pattern` as a glob (a '*', a '?', a closed '[...]', or a folder's files: a '/'
    at its end) rather than as one file's name (an unclosed '[' is a literal, as to Beam)."""
    return pattern.endswith("/") or any(kind for kind, _ in glob_parts(pattern))


def _fnmatch_class(text: str) -> str:
    """The regex of one closed `[...]` class as fnmatch translates it (its `(?s:...)\\Z` wrapper taken off)."""
    translated = fnmatch.translate(text)
    found = re.fullmatch(r"\(\?s:(.*)\)\\[Zz]", translated, re.S)
    if found is None:  # another Python's wrapper: the class must still be read, never dropped
        raise ValueError(f"fnmatch.translate gave {translated!r}")
    return found.group(1)


def posix_glob(pattern: str) -> tuple[str, re.Pattern[str]]:
    """(a broader pattern for Beam's listing, the regex of the glob as POSIX reads it). Beam's '*' is
    `[^/\\]*`: it never matches a backslash, a Windows separator to Beam but an ordinary character of a
    name on Linux and in GCS, so `dumps/*` skipped a file named `a\\b.bz2` and every row in it, silently.
    Here '*' is any run of characters but '/', '**' any run at all, '?' one character but '/'. Beam lists
    everything under the pattern's literal prefix either way, so the broader pattern costs nothing more."""
    if pattern.endswith("/"):
        pattern += "*"  # a folder: its files, as Beam reads it
    broad, regex = [], []
    for kind, text in glob_parts(pattern):
        if kind == "*":
            broad.append("**")
            regex.append("[^/]*" if len(text) == 1 else ".*")
        elif kind == "?":
            broad.append("?")
            regex.append("[^/]")
        elif kind == "[":
            # Beam hands a class to `re` as it is: `[a-[]` (a range running backwards) failed the listing with a
            # BeamIOError. The listing takes any run instead, and the class is read as fnmatch reads it (a backward
            # range matches nothing, `!` negates, `^` and `[` are literal).
            broad.append("**")
            regex.append(_fnmatch_class(text))
        else:
            broad.append(text)
            regex.append(re.escape(text))
    return "".join(broad), re.compile("(?s)" + "".join(regex) + r"\Z")
