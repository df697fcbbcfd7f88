"""Reading a .tar.gz a package registry serves (an npm tarball, a PyPI sdist; an old sdist's .tar.bz2 too) without
trusting it.

`tarfile.open` on a gzip stream answers every backward seek by inflating again from the start, reads a GNU long name's
or a pax header's data whole, and (Python 3.11) takes a negative member size, which sends the listing back to an
earlier header for ever: a small hostile tarball could hold a CPU for hours or claim gigabytes. Here the tarball is
inflated once (gzip or bzip2, as its name says), to a file beside it, under MAX_INFLATED_BYTES, and listed once: at
most MAX_TAR_MEMBERS members, each after the one before, no header over MAX_HEADER_BYTES. Members are then looked up
in that list and read one by one (the caller bounds each read); nothing is extracted.
"""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

MAX_INFLATED_BYTES = 512 << 20
MAX_HEADER_BYTES = 1 << 20  # a GNU long name or a pax header: real ones are a few hundred bytes
MAX_TAR_MEMBERS = 100_000
# bzip2 inflates at ~20 MB/s of output here (gzip ~10 times faster), so the byte cap alone allows ~30 s of CPU a
# package; this bounds the time too, checked after each chunk (one chunk's read is bounded by the file's size)
INFLATE_DEADLINE_S = 300.0
_CHUNK = 1 << 20
# the compression a file's name says, and nothing else: another kind of stream under that name is an error, not a guess
DECOMPRESSORS: dict[str, Callable[[Path], io.BufferedIOBase]] = {
    ".tar.gz": gzip.GzipFile, ".tgz": gzip.GzipFile, ".tar.bz2": bz2.BZ2File}


class ArchiveError(RuntimeError):
    """A tarball refused: it inflates too far, holds too many members, or its headers are hostile."""


def _inflate(path: Path) -> Path:
    """The tarball at `path` inflated once, beside it, refused past MAX_INFLATED_BYTES: members are then read from
    a plain file, where a seek costs nothing (a gzip or bzip2 stream answers a backward seek by inflating again from
    its start, which a hostile archive can ask for a hundred thousand times)."""
    opener = next((open_ for suffix, open_ in DECOMPRESSORS.items() if path.name.endswith(suffix)), None)
    if opener is None:
        raise ArchiveError(f"{path.name!r} is not named as one of {sorted(DECOMPRESSORS)}: refused")
    out = path.with_name("inflated.tar")
    written, started = 0, time.monotonic()
    with opener(path) as stream, out.open("wb") as plain:
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            if written > MAX_INFLATED_BYTES:
                raise ArchiveError(f"the tarball inflates to more than {MAX_INFLATED_BYTES} bytes: refused")
            if time.monotonic() - started > INFLATE_DEADLINE_S:
                raise ArchiveError(f"the tarball took more than {INFLATE_DEADLINE_S:g} s to inflate: refused")
            plain.write(chunk)
    return out


class _HeaderReads:
    """The inflated tar as tarfile lists it: a read of more than MAX_HEADER_BYTES at once is refused while
    `listing` (tarfile reads a GNU long name's or a pax header's data whole, so one header could claim gigabytes;
    a member's own data it skips by seeking)."""

    name = None  # tarfile asks

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self.listing = raw, True

    def read(self, size: int = -1) -> bytes:
        if self.listing and (size is None or size < 0 or size > MAX_HEADER_BYTES):
            raise ArchiveError(f"a tar header of more than {MAX_HEADER_BYTES} bytes in the tarball: refused")
        return self._raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


class _NoSparseMembers(tarfile.TarInfo):
    """tarfile's TarInfo refusing sparse members while listing: their maps (GNU sparse 1.0, and old GNU 'S' members'
    extension blocks) are read 512 bytes at a time, under MAX_HEADER_BYTES each, into Python lists without bound (a
    31 kB tarball: 15 s and 920 MB). No package ships a photograph so."""

    def _proc_sparse(self, tarfile: tarfile.TarFile) -> tarfile.TarInfo:
        raise ArchiveError(f"the tarball's member {self.name[:200]!r} is a sparse file: refused")

    def _proc_gnusparse_10(self, next: tarfile.TarInfo, pax_headers: dict, tarfile: tarfile.TarFile) -> None:
        raise ArchiveError(f"the tarball's member {next.name[:200]!r} is a sparse file: refused")


@contextmanager
def open_tar(path: Path) -> Iterator[tarfile.TarFile]:
    """The tarball at `path` (.tar.gz, .tgz or .tar.bz2), inflated once under MAX_INFLATED_BYTES and listed once
    under MAX_TAR_MEMBERS, each member after the one before (a negative size, which Python 3.11's tarfile takes,
    would send the listing back to an earlier header for ever); members are then looked up in that list and read
    one by one, nothing extracted."""
    plain = _inflate(path)
    with plain.open("rb") as raw:
        reads = _HeaderReads(raw)
        with tarfile.open(fileobj=reads, mode="r:", tarinfo=_NoSparseMembers) as archive:  # type: ignore[call-overload]
            count, last = 0, -1
            while (member := archive.next()) is not None:  # the list that tarfile's getmember() then reads
                count += 1
                if count > MAX_TAR_MEMBERS:
                    raise ArchiveError(f"the tarball holds more than {MAX_TAR_MEMBERS} members: refused")
                if member.size < 0 or member.offset <= last:
                    raise ArchiveError(f"the tarball's tar member {member.name[:200]!r} is out of order: refused")
                last = member.offset
            reads.listing = False
            yield archive
