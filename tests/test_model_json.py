"""The text of the detectors' own JSON files (pipeline/detectors/model_json.py): UTF-8 without a byte-order mark,
each key once, known keys only, a _comment of text."""

from __future__ import annotations

import codecs
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.detectors.model_json import (
    NotUTF8,
    comment_problems,
    is_text_or_lines,
    unique_keys,
    unknown_keys,
    utf8_text,
)

MODEL = '{"name": "fusion", "_comment": ["Zoë\'s", "model"], "reject_at": 0.5}'


def test_utf8_text_without_a_mark_is_its_text():
    assert utf8_text(MODEL.encode()) == MODEL
    assert utf8_text(b"") == ""


@given(st.text())
def test_any_text_saved_as_utf8_reads_back_as_itself(text):
    data = text.encode("utf-8", "surrogatepass")
    if text[:1] == "\ufeff" or any(0xD800 <= ord(char) <= 0xDFFF for char in text) or "\x00" in text[:4]:
        return  # a leading mark, surrogates and early NULs are what the next tests refuse
    assert utf8_text(data) == text


def test_a_utf8_byte_order_mark_is_refused():
    with pytest.raises(NotUTF8, match="byte-order mark"):
        utf8_text(codecs.BOM_UTF8 + MODEL.encode())


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_text_is_refused_naming_its_encoding(encoding):
    """json.loads read these too, guessing from the first bytes: the same model under another sha256."""
    with pytest.raises(NotUTF8, match=f"is {encoding.upper()} text by its first bytes; save it as UTF-8"):
        utf8_text(MODEL.encode(encoding))


@pytest.mark.parametrize(("data", "at", "byte"), [
    (b'{"a": "\xff"}', 7, "b'\\xff'"),
    (b'{"a": "caf\xe9"}', 10, "b'\\xe9'"),  # Latin-1
    (b'{"a": "\xed\xa0\x80"}', 7, "b'\\xed'"),  # a surrogate encoded as UTF-8 (CESU-8)
    (b'{"a": "\xc0\xaf"}', 7, "b'\\xc0'"),  # an overlong "/"
    (b'{"a": "\xe2\x82', 7, "b'\\xe2'"),  # cut in the middle of a character
])
def test_bytes_that_are_no_utf8_are_refused_naming_the_first_bad_byte(data, at, byte):
    with pytest.raises(NotUTF8, match=f"not UTF-8 text: byte {at} is {byte}$".replace("\\", "\\\\")):
        utf8_text(data)


def test_a_key_given_twice_in_one_object_is_refused_naming_it():
    with pytest.raises(ValueError, match="key 'reject_at' is given twice in one object"):
        json.loads('{"reject_at": 0.5, "w": {"reject_at": 1}, "reject_at": 0.9}', object_pairs_hook=unique_keys)
    with pytest.raises(ValueError, match="key 'k' is given twice"):
        json.loads('{"a": [{"k": 1, "\\u006b": 2}]}', object_pairs_hook=unique_keys)
    long_key = "\u202e" + "x" * 10_000
    with pytest.raises(ValueError) as err:
        unique_keys([(long_key, 1), (long_key, 2)])
    assert str(err.value) == f"key {long_key[:60]!r} is given twice in one object"  # escaped, at most 60 characters


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "A", "", "\u00e9", "e\u0301"]), st.integers()), max_size=6))
def test_unique_keys_is_the_dict_of_its_pairs_when_each_key_is_once(pairs):
    if len({key for key, _ in pairs}) == len(pairs):
        assert unique_keys(pairs) == dict(pairs)
    else:
        with pytest.raises(ValueError, match="is given twice in one object"):
            unique_keys(pairs)


@pytest.mark.parametrize(("value", "expected"), [
    ("a comment", True), ("", True), ([], True), (["line 1", "line 2"], True),
    (["line", 2], False), ([["nested"]], False), (None, False), (3, False), ({"text": "x"}, False), (b"x", False),
    (("a", "b"), False),
])
def test_a_comment_is_a_text_or_a_list_of_texts(value, expected):
    assert is_text_or_lines(value) is expected


def test_keys_outside_those_allowed_are_one_problem_naming_at_most_five():
    allowed = frozenset({"name", "reject_at", "_comment"})
    assert unknown_keys({"name": 1, "_comment": 2}, allowed, "a model") == []
    assert unknown_keys([], allowed, "a model") == []
    assert unknown_keys(["transfrom", "name"], allowed, "a model") == [
        "unknown key(s) 'transfrom'; a model holds _comment, name, reject_at"]
    problems = unknown_keys([f"k{n}" for n in range(7, 0, -1)], allowed, "a model")
    assert problems == ["unknown key(s) 'k1', 'k2', 'k3', 'k4', 'k5'; a model holds _comment, name, reject_at"]


def test_an_unknown_key_is_named_escaped_and_cut():
    allowed = frozenset({"name"})
    key = "\x1b[2J" + "x" * 1000
    [problem] = unknown_keys([key, 7], allowed, "a model")
    assert problem == f"unknown key(s) {key[:40]!r}, '7'; a model holds name"  # in the order of text
    assert "\x1b" not in problem


def test_a_comment_that_is_no_text_nor_lines_is_a_problem():
    assert comment_problems({"_comment": "x"}) == []
    assert comment_problems({"_comment": ["x", "y"]}) == []
    assert comment_problems({"name": 1}) == []
    assert comment_problems({"_comment": 3}) == ["_comment must be a text or a list of texts, not int"]
    assert comment_problems({"_comment": ["x", None]}) == ["_comment must be a text or a list of texts, not list"]
    assert comment_problems({"_comment": None}) == ["_comment must be a text or a list of texts, not NoneType"]
