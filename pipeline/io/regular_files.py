"""A local file read only if it is a regular one, without waiting, and at most so many bytes of it: what
`io/files.py` (any Beam filesystem) and the evaluation scripts' own readers and writers (`whole_file.py`,
`photo_sets/scores_file.py`, which import no Beam) share. A named pipe read as a file waits for a writer that may
never come; a device or a file growing as it is read has no end. And the hash of what a handle reads."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from typing import BinaryIO


def open_local_regular(path: str) -> BinaryIO:
    """`path` opened for reading without waiting and judged by what was opened: a named pipe, a device, a socket or
    a folder (through a link too, or put in the file's place since it was looked at) is a ValueError ("PATH is no
    regular file"). The handle is that file's for as long as it is open, whatever is put under its name meanwhile."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        if err.errno != errno.ENXIO:
            raise
        raise ValueError(f"{path} is no regular file") from None  # a socket: it cannot be opened at all
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ValueError(f"{path} is no regular file")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def read_at_most(handle: BinaryIO, size: int) -> bytes:
    """At most `size` bytes of `handle`, a MiB at a time: `read(size)` allocates all of `size` before reading."""
    parts, left = [], size
    while left > 0 and (data := handle.read(min(left, 1 << 20))):
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def size_and_sha256_of(handle: BinaryIO, most: int | None = None, chunk: int = 1 << 20) -> tuple[int, str]:
    """(size, sha256 hex) of what `handle` reads from where it is, `chunk` bytes at a time (nothing kept); with
    `most`, of no more than its first `most` bytes. What `files.size_and_sha256` and `file_pins` hash files with."""
    digest, size = hashlib.sha256(), 0
    while (most is None or size < most) and (data := handle.read(chunk if most is None else min(chunk, most - size))):
        digest.update(data)
        size += len(data)
    return size, digest.hexdigest()


_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket",
          stat.S_ISCHR: "a device", stat.S_ISBLK: "a device"}


def kind_of(mode: int) -> str:
    """What a file of this `st_mode` that is no regular file is, in words: "a folder", "a named pipe", ..."""
    return next((kind for test, kind in _KINDS.items() if test(mode)), "not a plain file")
