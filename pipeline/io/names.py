"""Whom a credit names: the owner's name, or their Flickr id where the name shows nothing. Shared by ATTRIBUTION.csv
(io/attribution.py), the TFRecord's `creator` (io/formats.py) and `verify`."""

from __future__ import annotations

import unicodedata

# Characters that show nothing: separators, controls, format characters (zero-width spaces and joiners, bidi marks),
# combining marks with nothing to combine with, and the letters and symbols fonts draw blank (Hangul fillers, the
# blank Braille pattern).
_BLANK_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me"})
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# The code points Unicode reserves as default ignorable and has not assigned yet (DerivedCoreProperties.txt's
# Default_Ignorable_Code_Point; the assigned ones are format characters and marks, blank above): a renderer draws
# them as nothing whether or not it knows them, where any other unassigned character is drawn as a box.
_IGNORABLE_UNASSIGNED = ((0x2065, 0x2065), (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF))


def _blank(char: str) -> bool:
    code = ord(char)
    return (unicodedata.category(char) in _BLANK_CATEGORIES or char in _BLANK_CHARACTERS
            or any(first <= code <= last for first, last in _IGNORABLE_UNASSIGNED))


def shows_something(text: str) -> bool:
    """True when `text` holds a character that is drawn: a name made only of zero-width spaces looks empty."""
    return not all(map(_blank, text))


def creator_name(owner_name: str, owner_nsid: str) -> str:
    """Whom a credit names: the owner's name, or their Flickr id where the name shows nothing (empty, spaces,
    zero-width characters only: the credit read as no one's)."""
    return owner_name if shows_something(owner_name) else owner_nsid
