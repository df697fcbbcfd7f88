"""The text of the detectors' own JSON files (a registry, a fusion model, a context probe): UTF-8 without a byte-order
mark, each key once in an object. json.loads read bytes in UTF-16 and UTF-32 too, and a UTF-8 mark, guessing from the
first bytes (a file saved so by an editor was the same model under another sha256 than the one its figures, the
registry's pin and a manifest name), and kept the last of a key given twice (a hand-edited file with a second
"reject_at" or threshold was decided by it)."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable
from typing import Any


class NotUTF8(ValueError):
    """A file's bytes are no UTF-8 text without a byte-order mark (the message says what they are)."""


def utf8_text(data: bytes) -> str:
    """The text of `data`; NotUTF8 naming what is wrong."""
    if data.startswith(codecs.BOM_UTF8):
        raise NotUTF8("starts with a UTF-8 byte-order mark; save it as UTF-8 without one")
    encoding = json.detect_encoding(data)
    if encoding != "utf-8":
        raise NotUTF8(f"is {encoding.upper()} text by its first bytes; save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise NotUTF8(f"not UTF-8 text: byte {err.start} is {data[err.start:err.start + 1]!r}") from None


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads' object hook for these files: a key given twice in one object is refused."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key[:60]!r} is given twice in one object")
        seen[key] = value
    return seen


def is_text_or_lines(value: object) -> bool:
    """A _comment's shape: a text, or a list of texts (its lines)."""
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(line, str) for line in value))


def unknown_keys(found: Iterable[object], allowed: frozenset[str], holder: str) -> list[str]:
    """A problem naming the keys of `found` outside `allowed` (at most five), and what `holder` holds; none if none:
    a misspelt key ("review_bands", "transfrom") was ignored, and the file read as another model."""
    unknown = sorted({str(key) for key in found} - allowed)
    if not unknown:
        return []
    return [f"unknown key(s) {', '.join(repr(key[:40]) for key in unknown[:5])}; {holder} holds "
            f"{', '.join(sorted(allowed))}"]


def comment_problems(data: dict[str, Any]) -> list[str]:
    """A _comment that is no text nor a list of texts."""
    if "_comment" in data and not is_text_or_lines(data["_comment"]):
        return [f"_comment must be a text or a list of texts, not {type(data['_comment']).__name__}"]
    return []
