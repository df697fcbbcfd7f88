"""A file the job read once at launch, copied into the run's staging folder for its workers to read.

Takedown lists and the reviewers' decisions store are read at launch (a file edited while the job ran was applied in
one version to some photos and in another to others). Pickled into the stages that apply them, their text went into
the job graph once per stage: 200,000 sha256 entries were 9 MB a Blocklist stage, 100,000 review decisions 416 kB
for each detector and decision step, and Dataflow refuses a job graph over its request limit. A copy travels as its
path and sha256; a worker reading a copy someone changed after launch fails its bundle, never applies it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from apache_beam.io.filesystems import CompressionTypes, FileSystems

from pipeline.io.files import HashingReader, open_reader, read_bytes, rename_into_place, write_atomically


@dataclass(frozen=True)
class StagedCopy:
    """Where the job copied a file it read at launch (`stage_copy`), and the sha256 of what it read."""

    name: str  # the file as the user gave it, as errors and rejections cite it
    path: str
    sha256: str

    def read(self) -> bytes:
        """The bytes the job read at launch; RuntimeError if the copy no longer holds them."""
        raw = read_bytes(self.path)
        if hashlib.sha256(raw).hexdigest() != self.sha256:  # someone wrote into the run's staging folder
            raise RuntimeError(self._changed())
        return raw

    def reading(self) -> contextlib.AbstractContextManager[io.BufferedReader]:
        """The copy as a stream, read a MiB at a time (never whole in memory); RuntimeError as the block ends if the
        copy no longer holds the bytes the job read at launch, whatever the block raised (it read another file)."""
        return reading_as_hashed(self.path, self.sha256, lambda: RuntimeError(self._changed()))

    def _changed(self) -> str:
        return f"the copy of {self.name} the job made at launch ({self.path}) has changed"


@contextlib.contextmanager
def reading_as_hashed(path: str, sha256: str, changed: Callable[[], Exception]) -> Iterator[io.BufferedReader]:
    """A file as a stream, read a MiB at a time; `changed()` raised as the block ends if its bytes are not those of
    the sha256 `sha256` (hashed to the end), whatever the block raised (it read another file)."""
    with open_reader(path) as handle:
        hashing = HashingReader(handle)
        try:
            yield io.BufferedReader(hashing, 1 << 20)
        finally:
            if hashing.finish()[1] != sha256:
                raise changed()


def stage_copy(name: str, raw: bytes, folder: str, suffix: str = ".txt") -> StagedCopy:
    """`raw` written under `folder` (a run's staging folder's `_lists`, never published), named by its sha256: two
    files with the same bytes share one copy."""
    digest = hashlib.sha256(raw).hexdigest()
    path = FileSystems.join(folder, f"{digest}{suffix}")
    write_atomically(path, lambda handle: handle.write(raw))
    return StagedCopy(name, path, digest)


def stage_chunks(name: str, chunks: Iterable[bytes], folder: str, check: Callable[[StagedCopy], None],
                 suffix: str = ".txt") -> StagedCopy:
    """`stage_copy` of a file given a chunk at a time (never whole in memory), `check`ed as the copy it wrote, read
    back (`StagedCopy.reading`), before it is named by its sha256: an error from the chunks or the check leaves nothing
    staged."""
    temporary = FileSystems.join(folder, f"{uuid.uuid4().hex}.tmp{suffix}")
    digest = hashlib.sha256()
    try:
        with FileSystems.create(temporary, mime_type="application/octet-stream",
                                compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            for chunk in chunks:
                handle.write(chunk)
                digest.update(chunk)
        check(StagedCopy(name, temporary, digest.hexdigest()))
        path = FileSystems.join(folder, f"{digest.hexdigest()}{suffix}")
        rename_into_place(temporary, path)
    except BaseException:
        with contextlib.suppress(Exception):
            FileSystems.delete([temporary])
        raise
    return StagedCopy(name, path, digest.hexdigest())
