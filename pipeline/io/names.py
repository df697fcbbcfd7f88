"""Whom a credit names: the owner's name, or their Flickr id where the name shows nothing. Shared by ATTRIBUTION.csv
(io/attribution.py), the TFRecord's `creator` (io/formats.py) and `verify`."""

from __future__ import annotations

import unicodedata

# Characters that show nothing: separators, controls, format characters (zero-width spaces and joiners, bidi marks),
# combining marks with nothing to combine with, and the letters and symbols fonts draw blank (Hangul fillers, the
# blank Braille pattern).
_BLANK_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me"})
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def shows_something(text: str) -> bool:
    """True when `text` holds a character that is drawn: a name made only of zero-width spaces looks empty."""
    return any(unicodedata.category(c) not in _BLANK_CATEGORIES and c not in _BLANK_CHARACTERS for c in text)


def creator_name(owner_name: str, owner_nsid: str) -> str:
    """Whom a credit names: the owner's name, or their Flickr id where the name shows nothing (empty, spaces,
    zero-width characters only: the credit read as no one's)."""
    return owner_name if shows_something(owner_name) else owner_nsid
