"""Lines for Python's csv reader, bounded per record: the reader splits a line at each of its commas into a list
of 8 bytes a comma (a 1 GB line of commas: 8 GB), and a quoted value's line breaks let one record run on over any
number of lines, so a bound on each line alone is no bound (`a,"` then lines of `",,,…,"`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TextIO

_LINE_END = re.compile(r"\r\n?|\n")
_BLANK = ("\n", "\r\n", "\r")  # a line that is only its ending, outside a quoted value
_BLANK_RUN = re.compile(r"[\r\n]+")


class TextLines:
    """A str's lines as `io.StringIO(text, newline="")` reads them (each with its own ending: \\n, \\r\\n or \\r), read
    in place: StringIO keeps a copy of the text at 4 bytes a character (a 256 MiB decisions file took 1 GiB more)."""

    def __init__(self, text: str) -> None:
        self._text, self._at = text, 0

    def readline(self, size: int = -1) -> str:
        start, text = self._at, self._text
        end = len(text) if size is None or size < 0 else min(len(text), start + size)
        found = _LINE_END.search(text, start, end)
        self._at = found.end() if found else end
        return text[start:self._at]

    def skip_blank_lines(self) -> int:
        """Past the blank lines (only their endings) from here, in one step; how many they were."""
        found = _BLANK_RUN.match(self._text, self._at)
        if not found:
            return 0
        start, self._at = self._at, found.end()
        text, end = self._text, self._at
        return text.count("\n", start, end) + text.count("\r", start, end) - text.count("\r\n", start, end)


class BoundedRecordLines:
    """The lines of `text` for `csv.reader`; a ValueError saying `too_long(first, last)` (the record's first and last
    line, from 1) once one record's lines together pass `limit` characters (blank lines before a record are none of
    its lines: the reader skips them, keeping nothing). Call `next_record()` after each row the reader gives: it reads
    no line ahead of the row it returns, so the count starts again with the next row's."""

    def __init__(self, text: TextIO | TextLines, limit: int, too_long: Callable[[int, int], str]) -> None:
        self._text, self._limit, self._too_long = text, limit, too_long
        self._number = self._chars = 0
        self._first = 1  # the line the record being read starts on

    def __iter__(self) -> BoundedRecordLines:
        return self

    @property
    def first(self) -> int:
        """The line the record being read (or just read) starts on, past the blank lines before it."""
        return self._first

    def __next__(self) -> str:
        if not self._chars and isinstance(self._text, TextLines):  # blank lines before a record skipped in one step
            self._number += self._text.skip_blank_lines()  # (one by one, 256 MiB of them took ~17 minutes)
            self._first = self._number + 1
        line = self._text.readline(self._limit + 1 - self._chars)  # never more than one character past the bound
        if not line:
            raise StopIteration
        self._number += 1
        if not self._chars and line in _BLANK:  # no row: csv.DictReader skips it, reading on to the next row's lines
            self._first = self._number + 1  # (a million blank lines were 'a row over the bound' with the row after)
            return line
        self._chars += len(line)
        if self._chars > self._limit:
            raise ValueError(self._too_long(self._first, self._number))
        return line

    def next_record(self) -> None:
        self._chars, self._first = 0, self._number + 1
