"""Text from outside shown to a person (a report line, a refusal, a log line) with nothing in it that a terminal or a
reader would act on: a release's, a lock's, an annotator's or a benchmark's own bytes cannot forge or hide a line."""

from __future__ import annotations


def printable(text: str, limit: int | None = None) -> str:
    """`text` with each unprintable character (control, line or paragraph separator, bidi control) written as
    Python writes it in a string literal. `limit`: at most that many characters shown, cut where no escape is split
    (cut after escaping, `\\x1b` could end as `\\x1`, which reads as other text); the text is read no further than
    what is shown."""
    if text.isprintable():
        return text[:limit]
    shown: list[str] = []
    length = 0
    for char in text:
        piece = char if char.isprintable() else repr(char)[1:-1]
        length += len(piece)
        if limit is not None and length > limit:
            break
        shown.append(piece)
    return "".join(shown)


def said(err: BaseException) -> str:
    """An error's message as a command's one line says it (pass-pipeline's error line, evaluate's, a script's usage
    error): a message can quote what came from outside (a failure the Flickr API answered, a record's or a release's
    text), whose escapes drove the terminal and whose line break printed a forged line of its own."""
    return printable(str(err))
