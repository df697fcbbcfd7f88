"""Text from the data (a title, an owner name) as the published text files show it: ATTRIBUTION.csv
(io/attribution.py), DATASHEET.md, datasheet.html and CHANGELOG.md (release/markdown_html.py), and as `verify`
compares ATTRIBUTION.csv's credits with the shards' (release/record_readers.py). What would show a reader other
than the words as written is dropped: bidi formatting (reordering the rest of a line), tag characters (words no one
sees) and combining marks past a few on one character (drawn over other lines); the words stay. The dataset's own
records (Parquet, WebDataset, TFRecord) keep the source's text as it came.
"""

from __future__ import annotations

import re
import unicodedata

# Explicit bidi formatting (embeddings, overrides, isolates): one left open in a title ran on over the rest of its
# line in any text view of the file, showing the page and licence after it reversed (or reordered with isolates).
# Right-to-left text needs none of them to read right; the marks (LRM, RLM, ALM) and the joiners stay.
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")

# Unicode tag characters (U+E0000..U+E007F) show nothing, but a model reading the file reads the ASCII each shadows
# ("ASCII smuggling"): a title carried a sentence to it that no person reading the credits saw. Their one use is a
# subdivision flag: the black flag, the subdivision's code in tag letters and digits (3 to 7: "gbsct", "usca") and
# the cancel tag. Such a flag keeps them (it draws as one flag; at most 7 letters hide behind any flag glyph); every
# other tag character is dropped, a longer or upper-case "flag" becoming the black flag alone.
_TAGS = re.compile("(\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{3,7}\U000e007f)|[\U000e0000-\U000e007f]")

# Combining marks (Mn, Me) stacked on one character: "Zalgo" text (a letter carrying hundreds of them) drew over the
# lines above and below in any view of the file, other photos' credits hidden under it. Writing needs a few: two in
# Vietnamese written with combining accents, four in biblical Hebrew (dagesh, vowel, meteg, accent), six in a Tibetan
# stack of a Sanskrit syllable; a character keeps its first MAX_MARKS and the rest are dropped. Format characters
# (joiners, zero-width spaces, bidi marks) draw nothing and marks after one still stack on the same character, so
# they neither count nor start a new one; any other character does.
MAX_MARKS = 8
# A run of more than MAX_MARKS marks needs as many non-ASCII characters in a row: text without one is left at once.
_LONG_NON_ASCII = re.compile(f"[^\x00-\x7f]{{{MAX_MARKS + 1},}}")
_MARKS = frozenset({"Mn", "Me"})


def _kept_tags(match: re.Match[str]) -> str:
    return match[1] or ""


def published_text(text: str) -> str:
    """`text` as a published text file shows it: without bidi formatting (`BIDI_CONTROLS`), without tag characters
    but a subdivision flag's (`_TAGS`), and with at most `MAX_MARKS` combining marks on a character. Publishing it
    again changes nothing (verify compares a published credit with one it publishes)."""
    text = BIDI_CONTROLS.sub("", text)
    if not text.isascii() and max(text) >= "\U000e0000":  # a tag character or another plane-14 one
        text = _TAGS.sub(_kept_tags, text)
    return _bounded_marks(text) if _LONG_NON_ASCII.search(text) else text


def _bounded_marks(text: str) -> str:
    """`text` with at most `MAX_MARKS` combining marks on each character (its first ones)."""
    kept: list[str] = []
    marks = 0
    for char in text:
        category = unicodedata.category(char)
        if category in _MARKS:
            marks += 1
            if marks > MAX_MARKS:
                continue
        elif category != "Cf":
            marks = 0
        kept.append(char)
    return "".join(kept)
