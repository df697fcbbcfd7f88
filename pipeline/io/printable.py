"""Text from outside shown to a person (a report line, a refusal, a log line) with nothing in it that a terminal or a
reader would act on: a release's, a lock's, an annotator's or a benchmark's own bytes cannot forge or hide a line."""

from __future__ import annotations


def printable(text: str) -> str:
    """`text` with each unprintable character (control, line or paragraph separator, bidi control) written as
    Python writes it in a string literal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
