"""Which version of a file a check read, so that a later read reads that very version or refuses.

A refresh verifies the previous release (every file's sha256 against its manifest, `release/verify.py`), and a run
checks the --ledger and --previous_index files it is given at launch (`commands/run.py`); the job then opens those
files again. Whatever replaced or changed one in between (another process, a bucket writer) was read as if checked:
rows no check saw entered the new release. Hashing the bytes again as the job parses them would cost a second pass
over every shard (the carried ids and the changelog read one column; the hash needs all of the file), so the check
records which version it read instead, from the handle it read through, and every later read compares the version its
own handle holds:

- a local file: its device, inode, size, modification and change times (`fstat` of the open descriptor). A file
  replaced under its name is another inode; one written in place has another change time, which no user can set
  back (`touch -d` sets the modification time, and changes the change time). The kernel's file clock ticks every few
  milliseconds: only a write in the very tick of the file's last change before the check keeps its change time (a
  release is checked long after it was written);
- a GCS object: its generation, which every rewrite of the object changes. Beam's reader asks for that generation by
  number on each read (google-cloud-storage's `Blob.reload` at open), so what a handle reads is the version it names;
- another object store: its size and its time of last update, as the store lists them.

A local file is compared again once it is read (a write in place during the read); a GCS handle cannot read another
generation. A file the check never saw (added since under a glob it read) or gone since is refused the same way.

A version told apart from the one checked is not always other bytes: a change time moves with any change of the inode
(a `chmod` or `chown`, even to what it was; a hard link made or removed, as `cp -al` snapshots do; a backup tool setting
back the access time it moved, as `tar --atime-preserve` does), a file put back with the same bytes is another inode,
and an object rewritten to another storage class another generation. Refused, the refresh failed on a release that
was as verified, after hours of its job, and again each time such a tool ran meanwhile. Where the check knows the
file's hash (verify: the manifest's), the file is hashed once more through the handle that reads it, only then, and
read if it holds those bytes, its version now the one later compared (a write as it is read still refused).

Every reader takes pins: `UNCHECKED` where no check read its files before (opened as regular files, nothing
compared), so that each reads one way. A Beam step is given the entries of the files it reads alone (`Pins.only`):
it is pickled into the job graph with them.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pipeline.io.file_reads import is_remote, open_regular_file
from pipeline.io.globs import is_glob, posix_glob
from pipeline.io.regular_files import size_and_sha256_of

Pin = tuple[Any, ...]
# The checks, as their lines name them, and what the lines tell the operator to do
VERIFIED = "verify"
LAUNCH_CHECK = "the launch check"
_AGAIN = "run again once its writer is done"


class ChangedSinceChecked(ValueError):
    """A file read after it was checked is not the version the check read: one line naming it and what differs."""


def _descriptor(handle: Any) -> int | None:
    try:
        descriptor = handle.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return descriptor if isinstance(descriptor, int) else None


def pin_of(path: str, handle: Any) -> Pin:
    """The version of the file `handle` (opened from `path`) reads: see the module's words."""
    descriptor = _descriptor(handle)
    if descriptor is not None:
        info = os.fstat(descriptor)
        return ("inode", info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    blob = getattr(handle, "_blob", None)  # Beam's GCS reader: the blob it reloaded at open
    if blob is not None and hasattr(blob, "reload") and hasattr(blob, "generation"):
        # Each download sets the generation the server says it served (X-Goog-Generation): one that says none (an
        # emulator) is asked which generation the object is now
        if blob.generation is None:
            try:
                blob.reload()
            except Exception as err:  # gone since (NotFound), or the store's error: no version to compare
                return ("generation", f"unknown ({type(err).__name__})", None)
        return ("generation", int(blob.generation), int(blob.size or 0))
    from apache_beam.io.filesystems import FileSystems

    metadata = FileSystems.get_filesystem(path).metadata(path)
    return ("listed", metadata.size_in_bytes, metadata.last_updated_in_seconds)


def _difference(before: Pin, now: Pin) -> str:
    if before[0] != now[0]:
        return "read otherwise than it was checked"
    if before[0] == "inode":
        if before[1:3] != now[1:3]:
            return "another file under its name"
        return f"written in place: {before[3]} bytes then, {now[3]} now" if before[3] != now[3] else \
            "written in place"
    if before[0] == "generation":
        return f"rewritten: generation {before[1]} then, {now[1]} now"
    return f"rewritten: {before[1]} bytes updated at {before[2]} then, {now[1]} at {now[2]} now"


def canonical(path: str) -> str:
    """One spelling of a file's path (`files.canonical_path`'s, without Beam)."""
    if is_remote(path):
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.normpath('/' + rest).lstrip('/')}"
    return os.path.realpath(path)


@dataclass
class Pins:
    """The version of each file a check read, by `canonical` path; `folders`: the folders (canonical) whose every
    file the check read (a verified release), where a file it did not read is refused too."""

    versions: dict[str, Pin] = field(default_factory=dict)
    folders: set[str] = field(default_factory=set)
    by: dict[str, str] = field(default_factory=dict)  # which check read each (`VERIFIED`, `LAUNCH_CHECK`)
    # the size and sha256 of the bytes the check read, where it knows them (verify: the manifest's)
    contents: dict[str, tuple[int, str]] = field(default_factory=dict)

    def add(self, path: str, read: Any, what: str, content: tuple[int, str] | None = None) -> None:
        """`path`'s version as the handle `read` reads it (or `read` itself: a `Pin` taken from the handle before);
        `content`: the (size, sha256) of the bytes the check read of it, if known."""
        self.versions[canonical(path)] = read if isinstance(read, tuple) else pin_of(path, read)
        self.by[canonical(path)] = what
        if content is not None:
            self.contents[canonical(path)] = content

    def cover(self, folder: str) -> None:
        """Every file under `folder` was read by the check (`folders`): one it did not read is refused too."""
        self.folders.add(canonical(folder))

    def clear(self) -> None:
        self.versions.clear()
        self.folders.clear()
        self.by.clear()
        self.contents.clear()

    def holds(self, path: str) -> bool:
        return canonical(path) in self.versions

    def covers(self, folder: str) -> bool:
        """Whether every file under `folder` was checked (`folders`)."""
        root = canonical(folder).rstrip("/") + "/"
        return any(root.startswith(checked.rstrip("/") + "/") for checked in self.folders)

    def check(self, path: str, handle: Any, what: str) -> None:
        """`ChangedSinceChecked` unless `handle` reads the version of `path` the check read. `what`: the check that
        read the files listed with it, in words, for a file it did not read."""
        before = self.versions.get(canonical(path))
        what = self.by.get(canonical(path)) or (VERIFIED if self.covers(path) else what)
        if before is None:
            raise ChangedSinceChecked(f"{path}: added since {what} checked its folder; not read: {_AGAIN}")
        now = pin_of(path, handle)
        if now != before:
            raise ChangedSinceChecked(f"{path} changed since {what} checked it ({_difference(before, now)}); none "
                                      f"of it used: {_AGAIN}")

    def open(self, path: str, what: str) -> BinaryIO:
        """`path` opened as a regular file (`open_regular_file`) and checked (`check`); one gone since is refused."""
        what = self.by.get(canonical(path), what)
        try:
            handle = open_regular_file(path)
        except FileNotFoundError:
            if canonical(path) not in self.versions:
                raise
            raise ChangedSinceChecked(f"{path}: gone since {what} checked it: {_AGAIN}") from None
        try:
            self.confirm(path, handle, what)
        except BaseException:
            handle.close()
            raise
        return handle

    def confirm(self, path: str, handle: Any, what: str) -> None:
        """`check` of a handle just opened, at its start: a version other than the one checked is read if the check
        knew the file's bytes and the handle reads those very bytes (hashed through it, then back at its start); that
        version is the one compared from then on."""
        try:
            self.check(path, handle, what)
        except ChangedSinceChecked:
            content = self.contents.get(canonical(path))
            if content is None:
                raise
            now = pin_of(path, handle)  # before the hash: a write as it is hashed or read moves it
            if _content(handle, content[0]) != content:  # whatever its kind (a worker's other reader): its bytes
                raise
            self.versions[canonical(path)] = now

    def only(self, names: Iterable[str]) -> Pins:
        """The entries of the files `names` may name (paths, or globs as `listed` reads them; a path by any spelling
        of it, `canonical`), with every folder: what a reader of those files carries. A Beam step is pickled into the
        job graph with its arguments, and the whole of a release's pins (10,000 files: ~0.6 MB as Beam pickles it,
        `benchmarks/pins_size.py`) went with each step that read any of its files. A file the subset holds no entry
        for is refused as the whole would refuse it (`check`: added since), and its `folders` still name the check
        that read its folder."""
        names = list(names)
        regexes = [_pattern_regex(name) for name in names if is_glob(name)]  # a path: its entry, by name
        keep = {path for path in map(canonical, names) if path in self.versions} | {
            path for path in self.versions if any(regex.match(path) for regex in regexes)}
        return Pins({path: self.versions[path] for path in keep}, set(self.folders),
                    {path: self.by[path] for path in keep if path in self.by},
                    {path: self.contents[path] for path in keep if path in self.contents})

    def listed(self, pattern: str, found: list[str]) -> list[str]:
        """The files to read for `pattern`: `found` (its listing now) and the checked files it would list that are
        gone (whose open then says so), each once, in `found`'s spelling where they are there."""
        here = {canonical(path) for path in found}
        regex = _pattern_regex(pattern)
        gone = [path for path in self.versions if path not in here and regex.match(path)]
        return sorted({*found, *gone})


class _Unchecked(Pins):
    """`UNCHECKED`: the pins of files no check read before (a run given no previous release, a release read by a
    command that verified none): each is opened as a regular file (`open_regular_file`) and read as it is, and
    nothing is recorded. So that a reader reads one way, its files checked before or not."""

    def add(self, path: str, read: Any, what: str, content: tuple[int, str] | None = None) -> None:
        return None

    def cover(self, folder: str) -> None:
        return None

    def check(self, path: str, handle: Any, what: str) -> None:
        return None

    def open(self, path: str, what: str) -> BinaryIO:
        return open_regular_file(path)

    def confirm(self, path: str, handle: Any, what: str) -> None:
        return None

    def only(self, names: Iterable[str]) -> Pins:
        return self

    def listed(self, pattern: str, found: list[str]) -> list[str]:
        return list(found)


UNCHECKED: Pins = _Unchecked()


def _content(handle: Any, most: int) -> tuple[int, str]:
    """(size, sha256) of what `handle` reads from its start, read no further than `most` + 1 bytes; the handle is
    left at its start."""
    handle.seek(0)
    content = size_and_sha256_of(handle, most + 1)
    handle.seek(0)
    return content


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A glob's regex over `canonical` paths: its literal folder made canonical, the rest as `files.matching` reads
    it."""
    literal = re.split(r"[\[*?]", pattern, maxsplit=1)[0]
    if "/" not in literal:  # a glob of the working folder's files (`*.parquet`): no folder of its own to cut off
        return posix_glob(canonical(".").rstrip("/") + "/" + pattern)[1]
    folder = literal.rsplit("/", 1)[0]
    rest = pattern[len(folder):]
    return posix_glob(canonical(folder).rstrip("/") + rest)[1]

