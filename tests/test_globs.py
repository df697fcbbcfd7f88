"""io/globs: a glob read as POSIX names read it, held to a brute-force oracle (fnmatch, one path segment at a time)."""

from __future__ import annotations

import fnmatch

from hypothesis import given, reject, settings
from hypothesis import strategies as st

from pipeline.io.globs import glob_parts, posix_glob

SEGMENT_CHARS = "ab*?[]!-\\^."
NAME_CHARS = "ab[]!-\\^.*?"


def _oracle(pattern: str, path: str) -> bool:
    """'*' and '?' never cross a '/' and '**' is not used: segment by segment, as fnmatch reads each."""
    parts, names = pattern.split("/"), path.split("/")
    return len(parts) == len(names) and all(fnmatch.fnmatchcase(name, part)
                                            for part, name in zip(parts, names, strict=True))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(SEGMENT_CHARS, min_size=1, max_size=6).filter(lambda s: "**" not in s), min_size=1,
                max_size=3),
       st.lists(st.text(NAME_CHARS, min_size=1, max_size=6), min_size=1, max_size=3))
def test_a_glob_matches_what_fnmatch_matches_segment_by_segment(parts, names):
    pattern, path = "/".join(parts), "/".join(names)
    # a class holding a '/' is not a class to a segment-by-segment oracle: left out
    if any(kind == "[" and "/" in text for kind, text in glob_parts(pattern)):
        reject()  # not a pass: a glob_parts that found such a class everywhere would check nothing, and fail here
    assert bool(posix_glob(pattern)[1].match(path)) == _oracle(pattern, path)


def test_two_stars_cross_folders_and_a_folder_means_its_files():
    assert posix_glob("a/**.gz")[1].match("a/b/c.gz")
    assert not posix_glob("a/*.gz")[1].match("a/b/c.gz")
    assert posix_glob("dumps/")[1].match("dumps/x.bz2") and not posix_glob("dumps/")[1].match("dumps/x/y.bz2")
    assert posix_glob("a\\b*")[1].match("a\\bc")  # a backslash is an ordinary character of a name
    assert [kind for kind, _ in glob_parts("x[ab")] == ["", "", "", ""]  # an unclosed '[' is a literal
