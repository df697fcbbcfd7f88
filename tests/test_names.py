"""Whom a credit names (pipeline/io/names.py): the owner's name where it shows something, else their Flickr id."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.io.names import creator_name, shows_something

# What shows nothing, written out character by character: white space and line breaks, controls, format characters
# (zero-width spaces and joiners, bidi marks, the byte-order mark, the soft hyphen), marks with nothing before them,
# and what fonts draw blank.
NOTHING = ["", " ", "\t\n\r", "\u00a0", "\u3000", "\u2028\u2029", "\x00\x1b\x7f", "\u0085", "\u200b\u200c\u200d",
           "\u2060\ufeff", "\u00ad", "\u200e\u200f\u202a\u202e\u2066\u2069", "\u180e", "\u0301\u0301", "\u20dd",
           "\u034f", "\ufe0f", "\U000e0041\U000e007f", "\u115f\u1160", "\u3164", "\uffa0", "\u2800", "\u200b" * 100_000]
SOMETHING = ["Ann", "a", ".", "0", "\u0417\u043e\u044f", "\u5f20\u4f1f", "e\u0301", "\u0301e", "\U0001f600", "\u2063x",
             "\uff21", "\u00a0\u00a0Ann\u200b", "\u0903", "\ufffd", "\ue000", "\u0378", "\u200b" * 100_000 + "a"]


@pytest.mark.parametrize("text", NOTHING)
def test_text_of_characters_that_are_not_drawn_shows_nothing(text):
    assert not shows_something(text)


@pytest.mark.parametrize("text", SOMETHING)
def test_text_holding_a_drawn_character_shows_something(text):
    """A letter, a digit, punctuation, a symbol, a spacing mark (U+0903), a private-use or an unassigned character
    (drawn as a box), the replacement character: each is drawn."""
    assert shows_something(text)


def blank(char: str) -> bool:
    """The oracle: a separator (Z*), a control, a format character, a non-spacing or enclosing mark, or one of the
    letters and symbols fonts draw blank."""
    category = unicodedata.category(char)
    return category.startswith("Z") or category in ("Cc", "Cf", "Mn", "Me") or char in "\u115f\u1160\u3164\uffa0\u2800"


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from("".join(NOTHING[:-1])),
               max_size=20))
def test_shows_something_agrees_with_the_oracle_character_by_character(text):
    assert shows_something(text) == any(not blank(char) for char in text)


@given(st.text(max_size=10), st.text(max_size=10))
def test_text_shows_something_when_a_part_of_it_does(a, b):
    assert shows_something(a + b) == (shows_something(a) or shows_something(b))


@pytest.mark.parametrize("name", NOTHING)
def test_a_name_that_shows_nothing_is_credited_as_the_owners_id(name):
    assert creator_name(name, "12345@N01") == "12345@N01"


@pytest.mark.parametrize("name", SOMETHING)
def test_a_name_that_shows_something_is_the_credit_as_it_is(name):
    assert creator_name(name, "12345@N01") == name  # not trimmed nor cleaned: that is published_text's


def test_a_name_showing_nothing_and_no_id_is_an_empty_credit():
    assert creator_name("\u200b", "") == ""
