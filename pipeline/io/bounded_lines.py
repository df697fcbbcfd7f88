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


class StreamLines(TextLines):
    """`TextLines` of a text stream (opened with newline=""), read `chunk` characters at a time: about a chunk of it
    held at once, not the whole text (a worker reading the reviewers' decisions store of 1.44 million decisions held
    its bytes and its text together, 240 MB), and a run of blank lines skipped a chunk at a time as `TextLines` skips
    it (read one by one, 8 MB of them took 4 s)."""

    def __init__(self, stream: TextIO, chunk: int = 1 << 20) -> None:
        super().__init__("")
        self._stream, self._chunk, self._ended = stream, chunk, False

    def _more(self) -> bool:
        """What is held from here on and the stream's next chunk; False at the stream's end."""
        data = "" if self._ended else self._stream.read(self._chunk)
        if not data:
            self._ended = True
            return False
        self._text, self._at = self._text[self._at:] + data, 0
        return True

    def readline(self, size: int = -1) -> str:
        # A line is known once the text past it is held: a '\r' ending what is held may be a '\r\n' cut in two,
        # and a line without its end may go on in the next chunk.
        while True:
            text, start = self._text, self._at
            end = len(text) if size is None or size < 0 else min(len(text), start + size)
            found = _LINE_END.search(text, start, end)
            if (found and found.end() < len(text)) or (size is not None and 0 <= size < len(text) - start) \
                    or not self._more():
                break
        self._at = found.end() if found else end
        return text[start:self._at]

    def skip_blank_lines(self) -> int:
        skipped = 0
        while True:
            text, start = self._text, self._at
            found = _BLANK_RUN.match(text, start)
            end = found.end() if found else start
            reached = end == len(text)  # the run may go on in the next chunk
            if reached and end > start and text[end - 1] == "\r" and not self._ended:
                end -= 1  # perhaps a '\r\n' cut in two: counted with the chunk that holds its '\n'
            skipped += text.count("\n", start, end) + text.count("\r", start, end) - text.count("\r\n", start, end)
            self._at = end
            if not reached or (not self._more() and self._at == len(self._text)):
                return skipped


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
