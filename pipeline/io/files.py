"""Files on any Beam filesystem (local disk, gs://): whole-file reads, reads that hash as they go, globbing,
Parquet tables, and atomic writes (temporary name, then rename) that report each file's size and sha256."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import posixpath
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

# One file's reads live in file_reads.py (Beam imported only for an object store's path, so the detectors' registry
# and the photo_sets fit scripts read models without it), and are named here as they always were.
from pipeline.io.file_pins import LAUNCH_CHECK, UNCHECKED, VERIFIED, Pins
from pipeline.io.file_reads import is_remote as is_remote
from pipeline.io.file_reads import open_reader as open_reader
from pipeline.io.file_reads import open_regular_file as open_regular_file
from pipeline.io.file_reads import read_bytes as read_bytes
from pipeline.io.file_reads import size_and_kind as size_and_kind
from pipeline.io.globs import is_glob as is_glob
from pipeline.io.globs import posix_glob
from pipeline.io.parquet_footer import FooterTooLarge, check_footer
from pipeline.io.regular_files import read_at_most, size_and_sha256_of


class _HashingWriter(io.RawIOBase):
    """Passes writes through to a file handle while counting bytes and hashing them."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__()
        self._handle = handle
        self.size = 0
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self._handle.write(data)
        self.size += len(data)
        self.digest.update(data)
        return len(data)

    def tell(self) -> int:
        return self.size


@dataclass
class AtomicFile:
    """What `atomic_file` hands out: the handle to write to, and once it is in place, its size and sha256."""

    handle: BinaryIO
    entry: dict[str, Any] = field(default_factory=dict)


@contextmanager
def atomic_file(path: str) -> Iterator[AtomicFile]:
    """A file written through a temporary name and renamed into place when the block ends without an error;
    a retried or killed worker never leaves a half-written file under the final name, and an existing file
    stays readable under it until the new one replaces it. An error leaves the temporary (a retry writes
    another). Several can be open at once: a shard's formats are written side by side."""
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(temporary, mime_type="application/octet-stream",
                            compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        hashing = _HashingWriter(handle)
        written = AtomicFile(hashing)  # type: ignore[arg-type]  # a binary writer, as the writers need
        yield written
    rename_into_place(temporary, path)
    written.entry = {"bytes": hashing.size, "sha256": hashing.digest.hexdigest()}


def write_atomically(path: str, write: Callable[[BinaryIO], object]) -> dict[str, Any]:
    """`write` into the handle of an `atomic_file` (what it returns is ignored); returns the file's size and sha256."""
    with atomic_file(path) as written:
        write(written.handle)
    return written.entry


def rename_into_place(temporary: str, path: str) -> None:
    """`temporary` renamed to `path`, over a file already there."""
    try:
        # Over the old file, not after deleting it: a kill between a delete and the rename would leave
        # no file at all. Local disk renames over a file in one step (POSIX rename); GCS's rename is a
        # copy, which overwrites, then a delete of the temporary.
        FileSystems.rename([temporary], [path])
    except BeamIOError as err:
        if not _refused_as_existing(err) or is_remote(path):
            raise  # any other failure leaves the old file as it is
        # A local filesystem that will not rename over a file (os.rename on Windows): the old way, window and all.
        FileSystems.delete([path])
        FileSystems.rename([temporary], [path])


def _refused_as_existing(err: BeamIOError) -> bool:
    """Whether a rename failed only because its destination exists (Beam wraps the OSError in IOError)."""
    causes = list((err.exception_details or {}).values())
    return bool(causes) and all(isinstance(cause, FileExistsError) or isinstance(
        (getattr(cause, "args", ()) or (None,))[0], FileExistsError) for cause in causes)


def read_regular_file(path: str, limit: int | None = None) -> bytes:
    """`read_bytes` of a file a run wrote (a publish plan, a manifest): on a local disk, only a regular file is read,
    anything else (a named pipe, a device, through a link too) is a ValueError, as a file that is no such plan. A named
    pipe read as a file waited for a writer that never came: the command hung for good (`open_regular_file`).
    `limit`: a file over that many bytes is a ValueError, read no further (a link to /dev/zero is a device; a file may
    still be of any size)."""
    with open_regular_file(path) as handle:
        data = handle.read() if limit is None else read_at_most(handle, limit + 1)
    if limit is not None and len(data) > limit:
        raise ValueError(f"{path} is over {limit:,} bytes, more than any run writes")
    return data


class SeekableReader(Protocol):
    """What a reader of a file's bytes takes: a file opened for reading, or a `HashingReader` reading one."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int: ...

    def tell(self) -> int: ...


class HashingReader(io.RawIOBase):
    """A file handle read through while its size and sha256 are computed, as `_HashingWriter` computed them when
    the file was written (the manifest's `bytes` and `sha256`): each byte hashed once, in file order, whatever the
    reader's seeks, and nothing kept. A read starting past the bytes hashed so far first hashes the gap when it is
    at most `gap` bytes (read `chunk` bytes at a time: a Parquet reader skipping the columns it does not need); a
    longer jump (Parquet's footer, read first) is served unhashed, and `finish` hashes whatever is left, reading the
    file to its end. So a reader that reads forward costs one pass over the file, one that jumps about at most two.
    Closing it leaves `handle` open (its opener closes it)."""

    def __init__(self, handle: BinaryIO, gap: int = 8 << 20, chunk: int = 1 << 20) -> None:
        super().__init__()
        self._handle, self._gap, self._chunk = handle, gap, chunk
        self._position = 0  # where the next read starts
        self._at = 0  # where the handle is
        self._hashed = 0  # bytes [0, _hashed) are hashed
        self._digest = hashlib.sha256()
        self.largest_read = 0  # the most bytes one read of the handle gave: what a file costs in memory at once

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._handle.seekable())

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self._handle.seek(offset, io.SEEK_END)
            self._at = target = self._handle.tell()
        else:
            target = offset + (self._position if whence == io.SEEK_CUR else 0)
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._position = target
        return target

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        parts = []
        while data := self.read(self._chunk):
            parts.append(data)
        return b"".join(parts)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        start = self._position
        if self._hashed < start <= self._hashed + self._gap:
            self._hash_up_to(start)
        data = self._read_at(start, size)
        self._position = start + len(data)
        if start <= self._hashed < self._position:
            self._digest.update(memoryview(data)[self._hashed - start:])
            self._hashed = self._position
        return data

    def _read_at(self, start: int, size: int) -> bytes:
        if self._at != start:
            self._handle.seek(start)
        data = self._handle.read(size)
        self._at = start + len(data)
        self.largest_read = max(self.largest_read, len(data))
        return data

    def _hash_up_to(self, end: int | None) -> None:
        """Hashes the bytes from the end of those hashed to `end` (None: to the file's end)."""
        while end is None or self._hashed < end:
            data = self._read_at(self._hashed, self._chunk if end is None else min(self._chunk, end - self._hashed))
            if not data:
                return
            self._digest.update(data)
            self._hashed += len(data)

    def finish(self) -> tuple[int, str]:
        """(size, sha256 hex) of the whole file: what no read reached is read now."""
        self._hash_up_to(None)
        return self._hashed, self._digest.hexdigest()


def size_and_sha256(path: str, chunk: int = 1 << 20) -> tuple[int, str]:
    """A file's size and sha256 (local or on any Beam filesystem), read as a stream, `chunk` bytes at a time; a local
    path that is no regular file (a named pipe, a device, a folder) is a ValueError, not waited on or read for ever."""
    with open_regular_file(path) as handle:
        return size_and_sha256_of(handle, chunk=chunk)


def canonical_path(path: str) -> str:
    """One spelling of a path, so that two spellings of one file or folder compare equal: a local path resolved
    (links too), an object-store path with '.' and '..' segments and repeated slashes folded; no trailing '/'."""
    if is_remote(path):
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.normpath('/' + rest).lstrip('/')}"
    return os.path.realpath(path)


class NotAFile(OSError):
    """A local path that is a folder, a named pipe, a socket or a device where a file is read (an OSError: a broken
    file's error, one rejection where the job meets it)."""


def refuse_other_than_a_file(path: str) -> None:
    """`NotAFile` when a local `path` is a named pipe, a socket, a device or a folder: opened as a file, a named pipe
    waits for a writer, and the job (its launch check first) with it."""
    if FileSystems.get_scheme(path) is None and os.path.exists(path):
        kind = size_and_kind(path)[1]
        if kind == "a folder":  # the likeliest: --input naming the folder of the dumps
            raise NotAFile(f"{path} is a folder, not a file (name its files: '{path.rstrip('/')}/*')")
        if kind:
            raise NotAFile(f"{path} is {kind}, not a file")


def matching(pattern: str) -> list[str]:
    """Paths matching a glob, local or on any Beam filesystem, sorted; [] when none match. The glob is read as
    Beam reads it (no way to quote a wildcard), except that '*' and '?' match any character but '/'."""
    return [path for path, _ in matching_sizes(pattern)]


def matching_sizes(pattern: str) -> list[tuple[str, int]]:
    """`matching`'s paths with their sizes in bytes, from the one listing (a path looked up again is read as a glob:
    a file named `part[1].csv` is not found by its own name)."""
    broad, regex = posix_glob(pattern)
    # Beam lists the folder of the glob's literal prefix: '' for `photos-*.csv.gz`, which it finds no folder, so a
    # glob in the working folder matched nothing. It is listed as `./…`, and its paths given back as spelled.
    prefix = re.split(r"[\[*?]", broad, maxsplit=1)[0]  # as Beam takes it: a pattern with none is one file's name
    here = prefix != broad and "/" not in prefix
    listed = FileSystems.match([f"./{broad}" if here else broad])[0].metadata_list
    found = ((m.path.removeprefix("./") if here else m.path, m.size_in_bytes) for m in listed)
    return sorted((path, size) for path, size in found if regex.match(path))


def link_left_out(pattern: str) -> str | None:
    """A local link that `matching(pattern)` leaves out though the glob reaches it, in words: a link to a folder
    below which a file matches (Beam's listing walks folders without following links: `dumps/**` read none of the
    files of `dumps/2014 -> /mnt/disk2/2014`), or a matching link that leads nowhere (to a disk not mounted, or a loop),
    which the listing drops. None for an object store's pattern (no links there) or a file's name."""
    if is_remote(pattern) or not is_glob(pattern):
        return None
    broad, regex = posix_glob(pattern)
    prefix = re.split(r"[\[*?]", broad, maxsplit=1)[0]
    here = "/" not in prefix  # listed as `./…` (`matching_sizes`), and spelled without it

    def spelled(path: str) -> str:
        return path.removeprefix("./") if here else path

    # Without '**' (or a class, which may hold '/'), a match holds as many '/' as the pattern: a link that deep or
    # deeper holds none, and the tree it leads to is not walked for nothing (a home folder's link to a large share)
    depth = None if "**" in pattern or "[" in pattern else broad.count("/")
    top = posixpath.dirname(f"./{prefix}" if here else prefix) or "/"
    real_top = os.path.realpath(top)

    def read_by_its_own_name(file: str) -> bool:
        """Whether the listing reads the file below a link by its path without links: the link leads back into the
        folders the glob walks (`dumps/latest -> 2026-11`, a newest month named so), whose files are read already."""
        inside = os.path.relpath(os.path.realpath(file), real_top)
        if inside == ".." or inside.startswith("../"):  # elsewhere: read by no name but the link's
            return False
        return bool(regex.match(spelled(os.path.join(top, inside))))

    for folder, folders, files in os.walk(top):
        for name in sorted(folders):  # a link to a folder is one of them, never walked into
            path = os.path.join(folder, name)
            if depth is not None and spelled(path).count("/") >= depth:
                continue
            if os.path.islink(path) and any(regex.match(spelled(os.path.join(below, file)))
                                            and not read_by_its_own_name(os.path.join(below, file))
                                            for below, _, found in os.walk(path) for file in found):
                return f"{spelled(path)} is a link to a folder, whose files the listing leaves out"
        for name in sorted(files):
            path = os.path.join(folder, name)
            if os.path.islink(path) and not os.path.exists(path) and regex.match(spelled(path)):
                return f"{spelled(path)} is a link leading nowhere ({os.readlink(path)[:200]!r}: not there, or a loop)"
    return None


def glob_matches(pattern: str, path: str) -> bool:
    """Whether `matching(pattern)` would list `path` were it there (the same spelling: both absolute, or both
    relative to one folder)."""
    return bool(posix_glob(pattern)[1].match(path))


def files_to_read(pattern: str) -> list[str]:
    """The files a job reads for `pattern`, listed when it runs (`matching`). A file named without a wildcard is
    listed even when it is no longer there: the launch check saw it, so its reader's failure to open it is reported
    (a source's `unreadable_file` rejection), where listing it away lost its rows without a word (beside other
    input, a carried release, the run was published). A glob that matches nothing when the job runs cannot be told
    from a folder emptied on purpose, and gives no file."""
    found = matching(pattern)
    return found if found or is_glob(pattern) else [pattern]


def write_json(output: str, name: str, value: Any) -> dict[str, Any]:
    blocks = json_blocks(value)  # encoded whole before the file is opened: a value it cannot encode leaves no file
    entry = write_atomically(FileSystems.join(output, name), lambda handle: [handle.write(block) for block in blocks])
    return {"path": name, **entry}


_JSON_BLOCK = 1 << 16  # characters of JSON encoded to bytes at a time


def json_blocks(value: Any) -> list[bytes]:
    """`json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"` in UTF-8, as blocks of about
    `_JSON_BLOCK` bytes: json.dumps with an indent joins a list of every piece it writes (three or so a list's item,
    ~50 bytes each as Python text), and a first refresh's changelog.json lists 1.44 million ids (~120 MiB of pieces
    for 30 MB of JSON, beside the text joined and its bytes)."""
    blocks: list[bytes] = []
    pieces: list[str] = []
    size = 0
    for piece in json.JSONEncoder(indent=2, sort_keys=True, ensure_ascii=False).iterencode(value):
        pieces.append(piece)
        size += len(piece)
        if size >= _JSON_BLOCK:
            blocks.append("".join(pieces).encode("utf-8"))
            pieces, size = [], 0
    pieces.append("\n")
    blocks.append("".join(pieces).encode("utf-8"))
    return blocks


def _is_local_file(handle: Any) -> bool:
    """A handle of a local file whose descriptor /proc names (Linux): what Arrow can open again as itself."""
    try:
        return isinstance(handle.fileno(), int) and os.path.exists(f"/proc/self/fd/{handle.fileno()}")
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


def read_parquet(path: str, columns: Sequence[str] | None = None, pins: Pins = UNCHECKED) -> pa.Table:
    """A Parquet file's `columns` (all by default), local or on any Beam filesystem, as one table in memory (our
    Parquet files are shards of bounded size). Only those columns' bytes are read: the file was read whole, so a
    release's ids or its datasheet's figures read every shard's images too (a 1.44-million-image release: its
    every byte, tens of GB, for ids of 15 MB). FooterTooLarge for a footer pyarrow would parse at ~15 times its size
    (a previous release's shard, a cache's file: outside input). Only a regular file (`open_regular_file`): a named
    pipe among a release's shards was waited on for good. `pins`: the version a check read (`file_pins`), which the
    file must still be, when it is opened and once it is read."""
    with pins.open(path, VERIFIED) as handle:
        table = _read_parquet(path, handle, columns)
        pins.check(path, handle, VERIFIED)
        return table


def _read_parquet(path: str, handle: BinaryIO, columns: Sequence[str] | None) -> pa.Table:
    """`read_parquet` of the file open in `handle`."""
    try:
        check_footer(handle)
    except FooterTooLarge as err:
        raise FooterTooLarge(f"{path}: {err}") from None
    # Read as release/record_readers.py reads a shard: pq.read_table from a Python handle left pyarrow's threads
    # to abort the process as it exited ("terminate called without an active exception", exit 134), most runs
    # of a command that had read one, and more often after a read of the handle failed. A local file is read by
    # Arrow itself, through the descriptor opened and judged above (the same file, whatever is put under its name
    # since): Arrow reading through Python's handle calls back into Python from its own code.
    local = _is_local_file(handle)
    with pa.OSFile(f"/proc/self/fd/{handle.fileno()}") if local else nullcontext(handle) as source:
        parquet = pq.ParquetFile(source, pre_buffer=False)
        missing = [name for name in columns or () if name not in parquet.schema_arrow.names]
        if missing:  # read_table refused them; ParquetFile.read leaves them out unsaid
            raise ValueError(f"{path}: no column {', '.join(missing)[:200]} (its columns: "
                             f"{', '.join(parquet.schema_arrow.names)[:200]})")
        return parquet.read(columns=list(columns) if columns is not None else None, use_threads=False)


_PARQUET_BATCH_ROWS = 16_384  # rows in memory at a time: a ledger shard can hold millions


class _ParquetRows(beam.DoFn):
    """A Parquet file's rows as dicts (column name -> value), as Beam's ReadFromParquet gives them, a batch of rows
    at a time. `pins`: the versions the launch check (or verify) read (`file_pins`), which each file must still be,
    when it is opened and once it is read: a failure of the bundle otherwise, so that none of its rows is used."""

    def __init__(self, pins: Pins = UNCHECKED) -> None:
        super().__init__()
        self._pins = pins

    def process(self, path: str) -> Iterator[dict[str, Any]]:
        with self._pins.open(path, LAUNCH_CHECK) as handle:
            check_footer(handle)
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=_PARQUET_BATCH_ROWS):
                yield from batch.to_pylist()
            self._pins.check(path, handle, LAUNCH_CHECK)


def _files_of_all(patterns: Sequence[str], pins: Pins = UNCHECKED) -> list[str]:
    """Each file the patterns name, once: patterns that overlap (`ledger/*`, `ledger/a.parquet`) read it twice. With
    `pins`, those the check read that are gone since too (`Pins.listed`)."""
    return sorted({path for pattern in patterns for path in pins.listed(pattern, files_to_read(pattern))})


class ReadParquetFiles(beam.PTransform):
    """PBegin -> PCollection[dict]: every row of the Parquet files `patterns` name, listed by `files_to_read` when
    the job runs, as the launch check lists them. Not Beam's ReadFromParquet: its glob's '*' skips a name holding a
    backslash, and ReadAllFromParquet matches each listed name again as a glob (`a[1].parquet` is not itself).
    `pins`: the versions the launch check read (`file_pins`): a file listed now that it did not read, or another
    version of one it read, fails the job (it was read as checked)."""

    def __init__(self, patterns: Sequence[str], pins: Pins = UNCHECKED) -> None:
        super().__init__()
        self._patterns = list(patterns)
        # Only the entries of the files the patterns may name: the transform is pickled into the job graph with them
        # (`Pins.only`). A local file read through a link is held by where the link leads, which no glob names: the
        # patterns' local files as listed now are named too (listed only where there are pins: a generator).
        self._pins = pins.only(itertools.chain(self._patterns, (
            path for pattern in self._patterns if not is_remote(pattern) for path in files_to_read(pattern))))

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (pbegin
                | "Patterns" >> beam.Create([self._patterns])
                | "Files" >> beam.FlatMap(_files_of_all, self._pins)
                | "SpreadFiles" >> beam.Reshuffle()
                | "Rows" >> beam.ParDo(_ParquetRows(self._pins)))
