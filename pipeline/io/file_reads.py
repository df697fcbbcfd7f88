"""Reads of one file, local or on any Beam filesystem (gs://), that import Beam only for a path naming a filesystem.

The detectors' registry, its probes and the fusion models are read through these, and the photo_sets fit scripts
(fit_fusion, fit_probe, cross_validate) import them: with Beam imported at the start (through pipeline.io.files),
`python -m pipeline.photo_sets.fit_fusion --help` spent ~3.5 s importing it before it printed a line. A local file is
opened as Beam's local filesystem opens one read as stored (`open(path, "rb")`); any other through Beam, as before.
"""

from __future__ import annotations

import os
import re
import stat
from typing import TYPE_CHECKING, BinaryIO

from pipeline.io.regular_files import kind_of, open_local_regular, read_at_most

if TYPE_CHECKING:
    from apache_beam.io.filesystems import FileSystems

# Beam's own test of a path naming a filesystem (FileSystems.get_scheme: this pattern matched against the stripped
# path); a path it does not match is local to Beam, whatever else it holds.
_SCHEME = re.compile(r"(?P<scheme>[a-zA-Z][-a-zA-Z0-9+.]*)://.*")


def scheme_of(path: str) -> str | None:
    """The filesystem a path names ('gs'), or None for a local path: what FileSystems.get_scheme says."""
    found = _SCHEME.match(path.strip())
    return found.group("scheme") if found else None


def is_remote(path: str) -> bool:
    """Whether `path` names an object store's (any Beam filesystem but the local one), as Beam reads it: a local
    `out/a://b` is local ("://" somewhere in a path names no filesystem)."""
    return scheme_of(path) is not None


def spaced_path_problem(flag: str, value: str | None) -> str | None:
    """A path with spaces before its scheme (a quoted `--output=' gs://b/out'`): Beam reads the scheme past the spaces
    and then refuses the path as no object store's ("Basepath ' gs://b/out' must be GCS path"), which names neither
    the flag nor the spaces."""
    if isinstance(value, str) and value != value.strip() and is_remote(value):
        return f"{flag} {value[:80]!r} has spaces around an object store's path; give it without them"
    return None


def dot_segment_problem(flag: str, value: str | None) -> str | None:
    """An object store's path a run writes under (its --output, its --cache) holding a '.', '..' or empty segment
    (`gs://b/ds/.`, `gs://b/ds/x/..`, `gs://b/ds//more`). An object store folds none of them: the objects are named
    with them as spelled (`ds/./parquet/…`, inside the prefix of `gs://b/ds`), where every launch check (a published
    release or a dataset at or above the output, a cache inside it) reads the folder they lead to, as a local path's
    would (on the GCS emulator the tests use, whose download links are not escaped, a read of such a name even reads
    another object; real GCS escapes them). A run into `gs://b/ds/.` passed the checks beside the dataset
    `gs://b/ds`, took a lock of its own and wrote among its files. One trailing '/' is a folder's spelling, not a
    segment."""
    if not isinstance(value, str) or not is_remote(value):
        return None
    rest = value.strip().split("://", 1)[1]
    segments = (rest[:-1] if rest.endswith("/") else rest).split("/")[1:]  # past the bucket
    bad = next((segment for segment in segments if segment in ("", ".", "..")), None)
    if bad is None:
        return None
    shown = "an empty segment ('//')" if bad == "" else f"a '{bad}' segment"
    return (f"{flag} {value[:200]!r} holds {shown}, which an object store keeps in its objects' names as spelled, "
            "where the checks of where a run writes read the folder it leads to; give the path without it")


def filesystems() -> type[FileSystems]:
    """Beam's FileSystems, imported on first use (seconds, once per process)."""
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def open_reader(path: str) -> BinaryIO:
    """A file opened for reading as stored (no decompression), local or on any Beam filesystem; seekable on both."""
    if scheme_of(path) is None:
        return open(path, "rb")  # what FileSystems.open(path, UNCOMPRESSED) does for a local path (io.open)
    from apache_beam.io.filesystem import CompressionTypes

    return filesystems().open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str, limit: int | None = None) -> bytes:
    """A whole file, local or on any Beam filesystem; with `limit`, at most `limit` + 1 bytes of it (more than
    `limit`: the file is larger), read a MiB at a time (a device or a file growing as it is read has no end)."""
    with open_reader(path) as handle:
        return handle.read() if limit is None else read_at_most(handle, limit + 1)


def open_regular_file(path: str) -> BinaryIO:
    """`open_reader` of a file that must be a regular one (a release's file, a publish plan, a manifest): on a local
    disk it is opened without waiting and judged by what was opened, so a named pipe, a device or a folder (through a
    link too, or put in the file's place since it was looked at) is a ValueError, never a wait for a writer that does
    not come. The handle is that file's for as long as it is open, whatever is put under its name meanwhile: read
    twice through it (hashed, then parsed), a file is read twice as one. Object stores hold only files."""
    return open_reader(path) if is_remote(path) else open_local_regular(path)


def size_and_kind(path: str) -> tuple[int | None, str]:
    """(size in bytes, '' or what the path is instead of a regular file), before anything is read: verify checks a
    file's size against its manifest, and a model's against its cap, so that nothing is read whole that should not
    be (a named pipe or a device would be read for ever)."""
    if scheme_of(path) is not None:
        from apache_beam.io.filesystem import BeamIOError

        # The object itself: matched as a glob, a name holding '[1]' was not found and one holding '*' could give
        # another object's size (the bounds on what an input may give follow its size: sources/row_bound.py).
        filesystem = filesystems().get_filesystem(path)
        try:
            return filesystem.metadata(path).size_in_bytes, ""
        except BeamIOError:
            if filesystem.exists(path):
                raise
            return None, ""
    info = os.stat(path)
    if stat.S_ISREG(info.st_mode):
        return info.st_size, ""
    return None, kind_of(info.st_mode)
