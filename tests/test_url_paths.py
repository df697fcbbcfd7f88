"""RFC 3986 6.2.2 normalisation of a URL's parts (pipeline/io/url_paths.py): escapes and dot segments, against
oracles written from the RFC's own words."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.io.url_paths import normal_escapes, without_dot_segments

UNRESERVED = string.ascii_letters + string.digits + "-._~"
RESERVED = ":/?#[]@!$&'()*+,;="  # RFC 3986 2.2


def escapes_oracle(text: str) -> str:
    """Character by character: an escape of an unreserved character decoded, any other escape in upper case, an
    unreserved or reserved character as it is, anything else (a "%" starting no escape included) as its UTF-8 bytes
    escaped."""
    out, at = [], 0
    while at < len(text):
        char = text[at]
        hex_digits = text[at + 1:at + 3]
        if char == "%" and len(hex_digits) == 2 and all(c in string.hexdigits for c in hex_digits):
            decoded = chr(int(hex_digits, 16))
            out.append(decoded if decoded in UNRESERVED else "%" + hex_digits.upper())
            at += 3
            continue
        out.append(char if char in UNRESERVED + RESERVED else "".join(f"%{b:02X}" for b in char.encode("utf-8")))
        at += 1
    return "".join(out)


def dot_segments_oracle(path: str) -> str:
    """RFC 3986 5.2.4 remove_dot_segments, its steps as the RFC writes them, on an input buffer."""
    inp, out = path, ""
    while inp:
        if inp.startswith("../"):
            inp = inp[3:]
        elif inp.startswith("./"):
            inp = inp[2:]
        elif inp.startswith("/./"):
            inp = "/" + inp[3:]
        elif inp == "/.":
            inp = "/"
        elif inp.startswith("/../"):
            inp = "/" + inp[4:]
            out = out[:max(out.rfind("/"), 0)]
        elif inp == "/..":
            inp = "/"
            out = out[:max(out.rfind("/"), 0)]
        elif inp in (".", ".."):
            inp = ""
        else:
            end = inp.find("/", 1)
            end = len(inp) if end == -1 else end
            out, inp = out + inp[:end], inp[end:]
    return out


# Text a URL's parts may hold, weighted towards what matters here: escapes (some broken), dots and slashes, and
# characters from outside the URL alphabet (spaces, controls, full-width and zero-width characters, look-alikes).
URL_ALPHABET = st.sampled_from([*UNRESERVED[:6], *RESERVED, "%", "%2e", "%2E", "%2F", "%2f", "%41", "%7e", "%7E",
                                "%25", "%C3%A9", "%zz", "%4", " ", "\t", "\x00", "\x7f", "é", "\uff0e", "\uff0f",
                                "\u200b", "\u2024", "\U0001f600", "\\", ".", "..", "/", "~"])
URL_TEXT = st.lists(URL_ALPHABET | st.characters(exclude_categories=["Cs"]), max_size=30).map("".join)
# Paths as a URL with a host has them (urlsplit's): empty, or from a "/"
PATHS = st.lists(st.sampled_from(["/", ".", "..", "a", "b", "%2E", "", "./", "../", "/.", "/.."]),
                 max_size=12).map(lambda parts: "/" + "".join(parts)) | st.just("")


def test_escapes_of_unreserved_characters_are_decoded_and_others_upper_cased():
    assert normal_escapes("/%7euser/%41%62c") == "/~user/Abc"
    assert normal_escapes("/a%2fb%3f") == "/a%2Fb%3F"  # an escaped "/" or "?" is data, not a delimiter: kept
    assert normal_escapes("/%2e%2E/") == "/../"  # escaped dots are dots, so dot segments are found after this


def test_characters_outside_the_url_alphabet_are_escaped_as_utf8():
    assert normal_escapes("/a b") == "/a%20b"
    assert normal_escapes("/café") == "/caf%C3%A9"
    assert normal_escapes("/％2e") == "/%EF%BC%852e"  # a full-width percent starts no escape
    assert normal_escapes("/\u200b") == "/%E2%80%8B"  # a zero-width space is not dropped: another path
    assert normal_escapes("/a\x00\n") == "/a%00%0A"
    assert normal_escapes("/50%") == "/50%25"  # a "%" that starts no escape is a character, escaped
    assert normal_escapes("/%zz%4") == "/%25zz%254"
    assert normal_escapes("[::1]") == "[::1]"  # brackets stay as written, as requests sends them


def test_an_escape_of_a_non_ascii_byte_is_kept_and_matches_the_character_written_out():
    assert normal_escapes("/caf%c3%a9") == normal_escapes("/café") == "/caf%C3%A9"


def test_a_lone_surrogate_is_a_value_error():
    with pytest.raises(ValueError, match="surrogate"):
        normal_escapes("/a\udc80")


def test_a_huge_text_is_normalised_whole():
    text = "%2e" * 200_000 + "é" * 200_000
    assert normal_escapes(text) == "." * 200_000 + "%C3%A9" * 200_000


@given(URL_TEXT)
def test_normal_escapes_agrees_with_the_oracle_and_is_idempotent(text):
    normal = normal_escapes(text)
    assert normal == escapes_oracle(text)
    assert normal_escapes(normal) == normal
    assert normal.isascii()
    # every "%" left starts an upper-case escape of a character that is not unreserved
    for escape in re.findall(r"%(..)", normal):
        assert re.fullmatch("[0-9A-F]{2}", escape) and chr(int(escape, 16)) not in UNRESERVED


@pytest.mark.parametrize(("path", "expected"), [
    # RFC 3986 5.2.4's examples, and 5.4's normal and abnormal examples' paths
    ("/a/b/c/./../../g", "/a/g"),
    ("mid/content=5/../6", "mid/6"),
    ("/b/c/g", "/b/c/g"),
    ("/b/c/.", "/b/c/"),
    ("/b/c/./", "/b/c/"),
    ("/b/c/..", "/b/"),
    ("/b/c/../", "/b/"),
    ("/b/c/../g", "/b/g"),
    ("/b/c/../..", "/"),
    ("/b/c/../../g", "/g"),
    ("/b/c/../../../g", "/g"),
    ("/b/c/../../../../g", "/g"),
    ("/./g", "/g"),
    ("/../g", "/g"),
    ("/b/c/g.", "/b/c/g."),
    ("/b/c/.g", "/b/c/.g"),
    ("/b/c/g..", "/b/c/g.."),
    ("/b/c/..g", "/b/c/..g"),
    ("/b/c/./../g", "/b/g"),
    ("/b/c/./g/.", "/b/c/g/"),
    ("/b/c/g/./h", "/b/c/g/h"),
    ("/b/c/g/../h", "/b/c/h"),
    ("", ""),
    ("/", "/"),
    ("/..", "/"),
    ("//a/../b", "//b"),
])
def test_dot_segments_are_removed_as_the_rfc_does(path, expected):
    assert without_dot_segments(path) == expected == dot_segments_oracle(path)


def test_a_huge_path_of_dot_segments_is_read_whole():
    assert without_dot_segments("/a" * 100_000 + "/.." * 100_001 + "/b") == "/b"


@given(PATHS)
def test_without_dot_segments_agrees_with_the_rfc_and_is_idempotent(path):
    result = without_dot_segments(path)
    assert result == dot_segments_oracle(path)
    assert without_dot_segments(result) == result


def test_a_relative_path_keeps_its_first_segment():
    """A path with no leading "/" (a URL with no host, which names nothing fetched): its first segment is never
    removed, where 5.2.4 would make `a/../b` the absolute `/b`, so that a check reading each segment still sees it."""
    assert without_dot_segments("a/../b") == "a/b"
    assert without_dot_segments("a/b/../c") == "a/c"
    assert without_dot_segments("../a") == "a" == dot_segments_oracle("../a")


@given(URL_TEXT)
def test_a_normal_path_holds_no_dot_segment(text):
    """As a caller uses them: escapes first ("%2E" is "." by then), then dot segments. What comes out is a fixed point
    of both, and names no "." or ".." segment, however the dots were written."""
    path = without_dot_segments(normal_escapes("/" + text))
    assert normal_escapes(path) == path and without_dot_segments(path) == path
    assert not {".", ".."} & set(path.split("/"))
