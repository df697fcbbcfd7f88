"""Text from outside shown to a person (a report line, a refusal, a log line) with nothing in it that a terminal or a
reader would act on: a release's, a lock's, an annotator's or a benchmark's own bytes cannot forge or hide a line."""

from __future__ import annotations

import logging
import traceback
from typing import Any


def printable(text: str, limit: int | None = None) -> str:
    """`text` with each unprintable character (control, line or paragraph separator, bidi control) written as
    Python writes it in a string literal. `limit`: at most that many characters shown, cut where no escape is split
    (cut after escaping, `\\x1b` could end as `\\x1`, which reads as other text); nothing past the cut is escaped.
    A negative `limit` is a ValueError: it cut a printable text's last characters as a slice does, and showed
    nothing of any other."""
    if limit is not None and limit < 0:
        raise ValueError(f"printable: limit {limit} is negative (a count of characters shown)")
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


def quoted(path: str) -> str:
    """A path the reader acts on (a file to remove, a report line's path): as it is when printable, else in Python's
    quoting. `printable` escapes a message, which reads as text: a name holding a backslash and an `n` and one holding
    a line break are then the same text, and the reader cannot tell which file is meant; quoted, with its backslashes
    doubled, each reads back as the name it is."""
    return path if path.isprintable() else repr(path)


def said(err: BaseException) -> str:
    """An error's message as a command's one line says it (pass-pipeline's error line, evaluate's, a script's usage
    error): a message can quote what came from outside (a failure the Flickr API answered, a record's or a release's
    text), whose escapes drove the terminal and whose line break printed a forged line of its own."""
    return printable(str(err))


class PrintableFormatter(logging.Formatter):
    """A log handler's formatter whose every line is printable: a record's message (the project's own, or a library's
    quoting outside text with %s itself: urllib3's "Failed to parse headers (url=%s)" names a photo's URL, whose
    check lets a right-to-left override through; Beam's or Flickr's lines quote what an endpoint answered) is one
    line, each unprintable character escaped (the format's fields too, for they are one line with it). A traceback
    or a stack after it stays the lines it is, each line escaped, but for the error's line, which quotes the error's
    message: one line, as a record's message is."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging.Formatter's name, overridden)
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging.Formatter's name, overridden)
        # A traceback's own lines (its frames, the line joining a chained error) stay lines; the error's line quotes
        # its message, outside text as a record's message is: one line (each line escaped alone, a line break in it
        # wrote a forged log line of its own)
        lines: list[str] = []
        for chunk in traceback.format_exception(*ei):
            # an exception group's pieces are drawn in its margin (`  | `): each line escaped alone, as before
            if chunk.startswith(_TRACEBACKS_OWN) or chunk.lstrip(" ").startswith(("|", "+")):
                lines.extend(chunk.removesuffix("\n").split("\n"))
            else:
                lines.append(printable(chunk.removesuffix("\n")))
        return "\n".join(lines)

    def format(self, record: logging.LogRecord) -> str:
        # the traceback's text can come cached on the record by another handler's formatter, unescaped: made again
        # here (and the record's cache left as it was); a record with a cached text and no exception (one unpickled)
        # keeps its text, each line escaped below. The first line is the message, printable already.
        cached = record.exc_text
        if record.exc_info:
            record.exc_text = None
        try:
            text = super().format(record)
        finally:
            record.exc_text = cached
        return "\n".join(printable(line) for line in text.split("\n"))


# The line a log record is: its level, its logger's name (the library's, when a library logs) and its message.
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def log_printably(level: int = logging.WARNING) -> None:
    """Every record, whoever logs it, one escaped line on stderr (`PrintableFormatter`): pass-pipeline's log handler,
    set up at the start of each `python -m` script too, where a library's warning went to logging's last resort as it
    came. Nothing is done where the root logger has a handler already (logging.basicConfig's rule): called twice, it
    is set up once."""
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])


# How the pieces of a traceback (traceback.format_exception's) that are its own lines begin: its heading, a frame, a
# frame's repetition, the line joining a chained error; the others are an error's line and its notes.
_TRACEBACKS_OWN = ("Traceback (most recent call last):", '  File "', "  [Previous line repeated",
                   "\nThe above exception was the direct cause", "\nDuring handling of the above exception")
