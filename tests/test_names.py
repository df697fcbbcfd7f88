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


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15.1), which a renderer draws as nothing
# whether or not it knows the character: assigned (format characters, variation selectors, Hangul fillers) and
# reserved for such use alike.
DEFAULT_IGNORABLE = [(0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
                     (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
                     (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
                     (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF)]


def blank(char: str) -> bool:
    """The oracle: a separator (Z*), a control, a format character, a non-spacing or enclosing mark, one of the
    letters and symbols fonts draw blank, or a default ignorable code point."""
    category = unicodedata.category(char)
    return (category.startswith("Z") or category in ("Cc", "Cf", "Mn", "Me") or char in "\u115f\u1160\u3164\uffa0\u2800"
            or any(first <= ord(char) <= last for first, last in DEFAULT_IGNORABLE))


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


def test_every_default_ignorable_code_point_shows_nothing():
    """The ones Unicode has not assigned yet (U+2065, U+FFF0..FFF8, most of U+E0000..E0FFF) were drawn to
    `shows_something`, as an unassigned character's box is, so a name of them was the credit: a renderer draws
    them as nothing, as it does the assigned ones, and the row read as no one's."""
    drawn = [hex(code) for first, last in DEFAULT_IGNORABLE for code in range(first, last + 1)
             if shows_something(chr(code))]
    assert drawn == []
    assert creator_name("\U000e0080\ufff0\u2065", "12345@N01") == "12345@N01"


def test_a_name_showing_nothing_and_no_id_is_an_empty_credit():
    assert creator_name("\u200b", "") == ""
