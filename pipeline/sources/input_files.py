"""The files a file source reads: named and spread across workers (`spread_files`), and read a bounded line at a
time, plain, .gz or .bz2 (`read_numbered_lines`), a compressed file checked whole before its first line and bounded
in how far it may inflate. Shared by the YFCC reader (`yfcc`) and the text tables' (`delimited`, JSON lines).

A line longer than `MAX_LINE_BYTES`, such as a "line bomb" that a small .gz inflates to gigabytes, is refused as that
file:line without ever being held, and reading goes on; a file that cannot be read is its reader's one rejection.
"""

from __future__ import annotations

import bz2
import gzip
import io
import posixpath
import re
import zlib
from array import array
from collections.abc import Callable, Generator, Iterator
from itertools import takewhile
from typing import TYPE_CHECKING, BinaryIO

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.api_core import exceptions as google_exceptions

from pipeline.io.files import files_to_read, refuse_other_than_a_file, size_and_kind
from pipeline.io.globs import glob_parts, is_glob
from pipeline.records import Rejection
from pipeline.sources import STAGE

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12: what RawIOBase.readinto takes

# A YFCC line is under 10 KB; 64 KiB leaves room for long descriptions and bounds what one line costs.
MAX_LINE_BYTES = 64 * 1024
_SKIP_CHUNK = 64 * 1024  # how much of a too-long line is read (and dropped) at a time


# What reading a broken file raises: a truncated gzip or bzip2 stream (EOFError), a bad CRC or a bz2 stream that
# is no bzip2 (OSError), and a deflate stream corrupt midway, which raises zlib.error, none of those. On GCS, an object
# gone or refused raises the client library's own NotFound or Forbidden, no OSError: they ended the job (an --input
# object deleted after the launch check). Other client errors (429, 401: the service or our credentials, not
# the file) and 5xx are left to fail the bundle, which the runner retries, and the job if they persist.
BROKEN_FILE_ERRORS = (OSError, EOFError, ValueError, zlib.error, google_exceptions.NotFound,
                      google_exceptions.Forbidden)


_RAW_CHUNK = 64 * 1024  # how much compressed input a decompressor is given at a time


class _Bzip2Streams(io.RawIOBase):
    """The data of a .bz2 file of one stream or many (pbzip2 and lbzip2 write one per block), read strictly: what
    follows the end of a stream must be another whole stream, or zero bytes to the end of the file. Python's
    BZ2File takes anything after a stream that does not decompress as the end of the data: a damaged header on a
    later stream dropped that stream and every one after it without a word (1,000 of 2,000 rows gone, no
    rejection). Zeros are what a copy through tape or block storage pads a file with, and what `bzip2 -d` (with a
    warning) and Python's gzip reader skip; refused, they made the whole file one `unreadable_file`. A byte other
    than zero after them is refused as before (bzip2 -d ignores whatever follows, a whole stream too)."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._decompressor = bz2.BZ2Decompressor()
        self._stream = 1
        self._ended = False  # the last stream's end and any zero padding after it are read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        with memoryview(buffer) as view, view.cast("B") as target:
            data = self._next(len(target))
            target[:len(data)] = data
        return len(data)

    def _next(self, size: int) -> bytes:
        """At most `size` bytes of data, never more held: b'' only after the last stream's end-of-stream marker."""
        while not self._ended:
            if self._decompressor.eof:
                block = self._decompressor.unused_data or self._raw.read(_RAW_CHUNK)
                if not block or block[0] == 0:  # no stream starts with a zero byte: padding, or nothing
                    self._read_zero_padding(block)
                    self._ended = True
                    return b""
                self._decompressor = bz2.BZ2Decompressor()  # bytes after a stream: they must start another
                self._stream += 1
            elif self._decompressor.needs_input:
                block = self._raw.read(_RAW_CHUNK)
                if not block:  # an empty file too, as BZ2File has it: no bzip2 stream at all
                    raise EOFError(f"bzip2 stream {self._stream} ended before its end-of-stream marker")
            else:
                block = b""
            try:
                data = self._decompressor.decompress(block, size)
            except OSError as err:  # 'Invalid data stream': not bzip2, or a damaged block or header
                raise OSError(f"bzip2 stream {self._stream}: {err}") from err
            if data:
                return data
        return b""

    def _read_zero_padding(self, block: bytes) -> None:
        """Reads the rest of the file after the last stream, from its first bytes `block`, a piece at a time:
        OSError unless every byte is zero."""
        padding = 0
        while block:
            if block.count(0) != len(block):
                at = padding + len(block) - len(block.lstrip(b"\0"))
                raise OSError(f"bzip2 stream {self._stream + 1}: a byte other than zero at byte {at:,} of the padding "
                              f"after stream {self._stream}")
            padding += len(block)
            block = self._raw.read(_RAW_CHUNK)


# What a compressed input may inflate to: `MAX_INFLATION` times its size, and `INFLATION_FLOOR` bytes whatever its
# size. Metadata compresses 3 to 10 times (a YFCC100M dump about 5); a file of one line repeated inflates a thousand-
# to a million-fold, and its check alone decompressed all of it (10 MB of .bz2, terabytes: days, and a CRC array of
# gigabytes) before its first row was read.
MAX_INFLATION = 64
INFLATION_FLOOR = 256 * 1024 * 1024
_INFLATION_BUFFER = 8 * 1024  # the readers above it read in pieces of their own: a small buffer, little held


class _Inflation(io.RawIOBase):
    """A decompressed stream that fails (OSError) once it has given more than `limit` bytes."""

    def __init__(self, handle: io.BufferedIOBase, limit: int, size: int) -> None:
        super().__init__()
        self._handle, self._limit, self._size, self._given = handle, limit, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        with memoryview(buffer) as view, view.cast("B") as target:
            # Into the caller's buffer: no copy held beside it. One byte past the limit is enough to know.
            given = self._handle.readinto(target[:min(len(target), self._limit + 1 - self._given)]) or 0
        self._given += given
        if self._given > self._limit:
            raise OSError(f"it inflates to over {self._limit:,} bytes from {self._size:,} (at most "
                          f"{MAX_INFLATION} times its size, or {INFLATION_FLOOR:,} bytes): a compression bomb")
        return given

    def close(self) -> None:
        self._handle.close()
        super().close()


def inflation_limit(size: int) -> int:
    return max(INFLATION_FLOOR, MAX_INFLATION * size)


_COMPRESSED = (".gz", ".bz2")


def compression_of(path: str) -> str | None:
    """".gz" or ".bz2" where the name ends so in any case (Beam's own suffix check reads it so), else None. Checked
    as written, a dump copied by a tool that upper-cases names (`DUMP.TSV.GZ`, `part.Bz2`) was read raw: refused at
    launch as no dump, and in the job each of its "lines" of compressed bytes a rejection."""
    lowered = path.lower()
    return next((suffix for suffix in _COMPRESSED if lowered.endswith(suffix)), None)


def compressed_another_way(path: str) -> str | None:
    """The suffix of a name Beam takes for another compression (".xz", ".zst", ".deflate", in any case), which an
    input file is not read as: read as stored, its compressed bytes were lines, each a rejection. None otherwise."""
    if compression_of(path) or CompressionTypes.detect_compression_type(path) == CompressionTypes.UNCOMPRESSED:
        return None
    return "." + path.rsplit(".", 1)[-1].lower()


def open_decompressed(path: str) -> BinaryIO:
    """Python's own gzip reader and a strict bzip2 one, not Beam's: they raise on a truncated file, where
    Beam's decompressor silently returns the partial data. A compressed file's data is bounded by `inflation_limit`
    of its size."""
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    compression = compression_of(path)
    if compression == ".gz":
        inflated: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb")
    elif compression == ".bz2":
        inflated = io.BufferedReader(_Bzip2Streams(raw), buffer_size=_RAW_CHUNK)
    else:
        return raw
    size = size_and_kind(path)[0] or 0
    return io.BufferedReader(_Inflation(inflated, inflation_limit(size), size), buffer_size=_INFLATION_BUFFER)


_NOT_CR = re.compile(rb"[^\r]")


class _Lines:
    """The lines of a binary stream, each ended by a \\n, a \\r\\n or a lone \\r, as Python's universal newlines and
    its csv module read them: readline() ends a line at \\n only, so a file whose lines end in a lone CR (a classic
    Mac or "CSV (Macintosh)" export) was one line: a table's header holding every row, read as no row and no
    rejection, or a dump's line 1, its rows one rejection. A line ended by a lone CR keeps it, so that a quoted value
    spanning lines keeps the line break it holds; the CRs before a \\n are its end (Windows' text mode writes
    "\\r\\r\\n"). What was read past a lone CR is held for the next lines: never more than one line's bound."""

    def __init__(self, handle: BinaryIO, max_line: int, lone_cr: bool = True,
                 dropped: Callable[[bytes], None] | None = None) -> None:
        self._handle, self._max, self._lone_cr = handle, max_line, lone_cr
        # Given each piece of a line over the bound as it is dropped (its end left out), in order: a table reader
        # follows its quotes through it, never holding it
        self._dropped = dropped
        self._held, self._at = b"", 0  # self._held[self._at:]: read past a lone CR, the next lines' start
        # How many lone CRs the held bytes start with, each a line: known once, never searched again for each of them
        # (a run of 200,000 CRs was searched to its end for each, 56 s)
        self._crs = 0

    def _data(self, size: int) -> tuple[bytes, int]:
        """(buffer, start): the data up to its next line break, the held bytes first; at most `size` bytes read."""
        held, at = self._held, self._at
        self._held, self._at = b"", 0
        if at < len(held) and (held.find(b"\r", at) != -1 or held.find(b"\n", at) != -1 or len(held) - at >= size):
            return held, at  # a lone-CR file's lines: found in the buffer, never copied with all after them
        return held[at:] + self._handle.readline(size - (len(held) - at)), 0

    def _crs_end_the_line(self) -> bool:
        """After a CR that ends what was read, and the CRs held after it: whether CRs and then a \\n follow (its
        line's end, all of them, then dropped) or another byte (they are lines of their own, held). Reads on one byte
        at a time, up to the bound, while they are CRs."""
        crs, after = len(self._held) - self._at, b""
        while crs <= self._max and (after := self._handle.read(1)) == b"\r":
            crs, after = crs + 1, b""
        self._held, self._at = (b"" if after == b"\n" else b"\r" * crs + after), 0
        self._crs = 0 if after == b"\n" else crs
        return after == b"\n"

    def next(self) -> bytes | int | None:
        """The next line without its end (a lone CR kept), its length in bytes when it is over the bound (then
        dropped unread, a piece at a time), or None at the end of the data."""
        if not self._lone_cr:
            return self._line_to_newline()
        if self._crs:
            self._crs, self._at = self._crs - 1, self._at + 1
            return b"\r"
        if self._held:
            line, at = self._data(self._max + 1)
        else:  # most lines: nothing held
            line, at = self._handle.readline(self._max + 1), 0  # room for the newline of a line of exactly max_line
        cr = line.find(b"\r", at)
        if cr == -1:
            if line.endswith(b"\n"):
                return line[:-1] if at == 0 else self._bounded(line, at, len(line) - 1)
            if len(line) - at > self._max:
                self._drop(line[at:])
                return len(line) - at + self._skip_rest()
            return line[at:] if at < len(line) else None
        found = _NOT_CR.search(line, cr)
        if found is not None and line[found.start()] == 0x0A:  # CRs, then the \\n that ends what was read
            return self._bounded(line, at, cr)
        self._held, self._at = line, cr + 1
        if found is not None:
            self._crs = found.start() - cr - 1
        elif self._crs_end_the_line():  # CRs to the end of what was read, then a \\n
            return self._bounded(line, at, cr)
        return self._bounded(line, at, cr, b"\r")  # a lone CR: the line ends there, the CRs after it are lines

    def _line_to_newline(self) -> bytes | int | None:
        """`next` where only a \\n ends a line (the CRs before it dropped), as JSON lines are defined: a lone CR
        there is whitespace between a value's tokens."""
        line = self._handle.readline(self._max + 1)
        if not line:
            return None
        if len(line) > self._max and not line.endswith(b"\n"):
            dropped = 0
            while (chunk := self._handle.readline(_SKIP_CHUNK)) and not chunk.endswith(b"\n"):
                dropped += len(chunk)
            return len(line) + dropped + len(chunk)
        return line.removesuffix(b"\n").rstrip(b"\r")

    def _bounded(self, line: bytes, at: int, end: int, kept: bytes = b"") -> bytes | int:
        """The line line[at:end] and the end it keeps, or its length when it is over the bound (the held bytes
        that ended it are at most a skipped piece: a line in them may be over it)."""
        if end - at > self._max:
            self._drop(line[at:end])
            return end - at
        return line[at:end] + kept

    def _drop(self, piece: bytes) -> None:
        if self._dropped is not None and piece:
            self._dropped(piece)

    def _skip_rest(self) -> int:
        """Reads past the end of the current line in bounded pieces; returns how many bytes it dropped."""
        dropped = 0
        while True:
            chunk, at = self._data(_SKIP_CHUNK)
            cr = chunk.find(b"\r", at)
            if cr != -1:
                found = _NOT_CR.search(chunk, cr)
                self._held, self._at = chunk, cr + 1
                if found is None:
                    self._crs_end_the_line()
                elif chunk[found.start()] == 0x0A:
                    self._held, self._at = b"", 0
                else:
                    self._crs = found.start() - cr - 1
                self._drop(chunk[at:cr])
                return dropped + cr - at
            dropped += len(chunk) - at
            self._drop(chunk[at:len(chunk) - chunk.endswith(b"\n")])
            if not chunk or chunk.endswith(b"\n"):
                return dropped


_BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark
# The check of a compressed file keeps a CRC-32 of each such piece of its data (4 bytes per 32 KiB: 6 MiB for a
# 50 GB dump); the reading pass hands on no byte of a piece before its CRC matched. One piece is held at a time
# (64 KiB pieces took the reading of a 32 MiB line to 550 KB, over test_yfcc's bound; 32 KiB, 390 KB).
_CHECKED_PIECE = 32 * 1024
_VERIFIED_BUFFER = 8 * 1024  # readline's buffer over the checked pieces: they are in memory already


def _pieces(handle: BinaryIO) -> Iterator[bytes]:
    """The data of `handle` in pieces of exactly `_CHECKED_PIECE` bytes, the last one shorter."""
    pending = b""
    while data := handle.read(_CHECKED_PIECE - len(pending)):
        pending += data
        if len(pending) == _CHECKED_PIECE:
            yield pending
            pending = b""
    if pending:
        yield pending


def check_compressed(path: str) -> array | None:
    """Decompresses a .gz or .bz2 file to its end and returns the CRC-32 of each `_CHECKED_PIECE` of its data:
    raises what reading the file would (`BROKEN_FILE_ERRORS`) before any of its lines is used. A plain file has
    nothing to check (None).

    Gzip checks a member's CRC and length only at its end, bzip2 a block's CRC only after giving the block's data:
    read once, a file damaged midway gave lines decoded from damaged data (one flipped bit: 2,015 "rows" of a
    2,000-row file, 1,202 of them CC BY photos that do not exist) before the error said the file was corrupt. The
    price is a second decompression of every compressed file, and its bytes read twice from storage: on a 37 MiB
    dump, reading took 17% longer as .gz and 80% longer as .bz2, whose decompression is most of the read. Memory
    stays one piece; a decompressed copy kept for the real pass would take a disk as large as the data. The CRCs let
    the reading pass refuse data the check did not see: a file replaced or damaged between the two passes."""
    if compression_of(path) is None:
        return None
    with open_decompressed(path) as handle:
        return array("I", (zlib.crc32(piece) for piece in _pieces(handle)))


class _AsChecked(io.RawIOBase):
    """A compressed file's data as its check saw it: each piece is handed on only once its CRC matches the check's,
    else OSError. Without it a file replaced between the passes (an object overwritten in a bucket) gave the lines
    of data nobody checked, damaged ones included, before its own CRC failed at its end."""

    def __init__(self, handle: BinaryIO, crcs: array) -> None:
        super().__init__()
        self._pieces = _pieces(handle)
        self._handle, self._crcs = handle, crcs
        self._index, self._piece, self._at = 0, b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        if self._at == len(self._piece):
            self._piece = b""  # not held beside the next one
            self._piece, self._at = self._next_piece(), 0
        with memoryview(buffer) as view, view.cast("B") as target, memoryview(self._piece) as piece:
            size = min(len(target), len(piece) - self._at)
            target[:size] = piece[self._at:self._at + size]
        self._at += size
        return size

    def _next_piece(self) -> bytes:
        piece = next(self._pieces, b"")
        where = f"{self._index * _CHECKED_PIECE:,}"
        if not piece:
            if self._index < len(self._crcs):
                raise OSError(f"the file is shorter than when it was checked: its data ends at byte {where}")
            return b""
        if self._index >= len(self._crcs) or zlib.crc32(piece) != self._crcs[self._index]:
            raise OSError(f"the file changed after it was checked: its data from byte {where} differs")
        self._index += 1
        return piece

    def close(self) -> None:
        self._handle.close()
        super().close()


def read_numbered_lines(path: str, max_line: int = MAX_LINE_BYTES, checked: bool = True, lone_cr: bool = True,
                        dropped: Callable[[bytes], None] | None = None,
                        crcs: array | None = None, name: str | None = None,
                        ) -> Generator[tuple[str, bytes] | Rejection, None, None]:
    """(file:line, raw bytes) for every line of a possibly compressed file (ended by a \\n, a \\r\\n or a lone \\r:
    `_Lines`; `lone_cr=False`: at a \\n only, as JSON lines are defined); lines count from 1.

    A line longer than `max_line` bytes (without its newline) is a `Rejection` for that file:line
    instead: readline() is always given a limit, so no line is ever held whole, however long. A byte order mark
    opening the file is dropped (it rejected a JSON line's or a 23-column dump's first row). A compressed file is
    `check_compressed` whole before its first line, so a damaged one gives no line at all, and its lines are read
    from data that matches the check piece for piece (`_AsChecked`); `checked=False` skips both for a launch check,
    which reads a few lines of a file the job reads again. `dropped` is given the bytes of each line over the bound,
    in pieces, before its `Rejection` comes (`_Lines`). `crcs`: the file's `check_compressed` made before (a reader
    reading it again), which its data must match as it did then, not checked again. `name`: the file as its refs
    name it (`file_label`; its base name where not given)."""
    name = name or posixpath.basename(path.rstrip("/"))
    refuse_other_than_a_file(path)
    crcs = crcs if crcs is not None else check_compressed(path) if checked else None
    with open_decompressed(path) as opened:
        handle = opened if crcs is None else io.BufferedReader(_AsChecked(opened, crcs), buffer_size=_VERIFIED_BUFFER)
        lines = _Lines(handle, max_line, lone_cr, dropped)
        number = 0
        while (line := lines.next()) is not None:
            number += 1
            ref = f"{name}:{number}"
            if isinstance(line, int):
                detail = f"a line of {line:,} bytes, over the limit of {max_line:,}"
                yield Rejection(ref, STAGE, "line_too_long", detail, "", ref)
                continue
            if number == 1 and line.startswith(_BOM):  # an editor's or a spreadsheet's export: no part of the row
                line = line[len(_BOM):]
            yield ref, line


# Rejections of a row read in its file's format, for its values: rows whose ids are bad or URLs missing, listed first,
# are no sign of a file in another format. Five of them refused the whole --input at launch as "does not look like";
# the launch checks read on past them, up to SNIFFED_ROWS, for a photo.
VALUE_REASONS = frozenset({"missing_id", "bad_id", "missing_url", "bad_field", "bad_date"})
SNIFFED_ROWS = 1000


def file_label(path: str, pattern: str) -> str:
    """The file at `path`, one that `pattern` names, as its rows' refs (FILE:LINE) name it: its path below the
    glob's literal folder, `./` first where it holds a folder (`./2026-10/part-0.tsv` for `dumps/**` or
    `dumps/*/part-0.tsv`; `part-0.tsv` for `dumps/*.tsv`), its base name for a file named without a wildcard. Every
    file one glob names has its own: refs named the base name alone, so the rows and rejections of
    `dumps/2026-10/part-0.tsv` and `dumps/2026-11/part-0.tsv` both read `part-0.tsv:LINE`. The path below the
    folder, never the whole path: refs stay the same on every machine and under any mount point. The `./` keeps
    them apart from a carried row's `NAME/parquet/SHARD:ROW` (release/carry.py), which a refresh's changelog tells
    by its start: an input glob over copies of releases (`backup/*/parquet/*.parquet`) would give those very refs."""
    base = posixpath.basename(path.rstrip("/"))
    if not is_glob(pattern):
        return base
    literal = "".join(text for _, text in takewhile(lambda part: not part[0], glob_parts(pattern)))
    folder = literal[:literal.rfind("/") + 1]
    below = path[len(folder):] if path.startswith(folder) else ""
    return (f"./{below}" if "/" in below else below) or base


def spread_files(pbegin: beam.pvalue.PBegin, pattern: str) -> beam.PCollection:
    """PBegin -> PCollection[str]: the paths of the files `pattern` names (`files_to_read`, any Beam filesystem),
    reshuffled so that each file is read on its own worker. Shared by the file-reading sources."""
    return (pbegin
            | "Pattern" >> beam.Create([pattern])
            | "Match" >> beam.FlatMap(files_to_read)  # not fileio.MatchFiles: its '*' skips names with a backslash
            | "SpreadFiles" >> beam.Reshuffle())
