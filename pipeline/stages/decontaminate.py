"""Evaluation-set decontamination: no dataset image may be a near copy of a test image.

`--decontaminate` names folders, globs or list files (one image path per line, relative to the
list) of evaluation images, e.g. ImageNet validation or a downstream benchmark. Each is
normalised exactly like a dataset image (so the pHashes are comparable) and hashed, in the
pipeline itself, in parallel; every worker then holds those hashes in a `HashIndex`, and any
dataset image within the near-duplicate distance of one is rejected, naming the test image by its file name (its
folder, the operator's, is never published).
Evaluation images that cannot be decoded, and files larger than MAX_EVAL_IMAGE_BYTES (never read whole), are
counted (metric `eval_images_unreadable`, in stats.json and the run's summary), not fatal.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import posixpath
import re
from collections.abc import Iterator, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from google.api_core import exceptions as google_exceptions

from pipeline.io.file_reads import is_remote
from pipeline.io.files import link_left_out, matching, refuse_other_than_a_file
from pipeline.near_dup.hash_index import HashIndex
from pipeline.near_dup.perceptual_hashes import stored_phash
from pipeline.printable import printable
from pipeline.records import Photo, Rejection, is_utf8_text, unusable_name
from pipeline.stage import StageOutput, apply_stage, reject
from pipeline.stages.blocklist import break_in_comment, list_lines
from pipeline.stages.image import ImageConfig, ImageRejected, normalise

STAGE = "decontaminate"
LIST_SUFFIXES = (".txt", ".lst")
_LOG = logging.getLogger(__name__)


# Listed paths checked at launch, one by one: all of a local list; on an object store the first ones only
# (a request each), the rest counted at hashing time (`eval_images_unreadable`) like an undecodable one.
CHECKED_REMOTE_PATHS = 100
UNREADABLE_EVAL_IMAGES = "eval_images_unreadable"  # a counter, reported in stats.json and the run's summary
# The most bytes of one evaluation file read: a larger one (an archive or a video left in the folder, a ".gz" Beam
# decompresses as it reads) was read whole into a worker's memory, and one of a few GB ended the job. 256 MiB holds
# any image of --max_pixels' default (64 Mpx) as 8-bit RGBA uncompressed; a larger file is counted as unreadable.
MAX_EVAL_IMAGE_BYTES = 256 * 1024 * 1024
_COMMENT = re.compile(r"(?:^|\s)#.*$")


def is_list_file(source: str) -> bool:
    """Whether a --decontaminate source is a list file (`LIST_SUFFIXES`, in any case: `EVAL.TXT` was taken for a
    folder with nothing below it)."""
    return source.lower().endswith(LIST_SUFFIXES)


def _located(base: str, entry: str) -> str:
    return entry if is_remote(entry) or entry.startswith("/") else FileSystems.join(base, entry)


def _is_file(path: str) -> bool:
    """A file (an object on a store): a folder a cut line would name is none."""
    return os.path.isfile(path) if not is_remote(path) else FileSystems.exists(path)


def eval_glob(source: str) -> str:
    """The glob a folder or a glob of evaluation images (not a list file) is read by. A folder with everything below
    it: benchmarks often keep one subfolder per class (ImageNet's validation set in its training layout), whose
    images a one-level glob skipped without a word."""
    return source if any(c in source for c in "*?[") else FileSystems.join(source.rstrip("/"), "**")


def expand_eval_source(source: str) -> list[str]:
    """A folder, a glob, or a list file -> image paths. A list is read as blocklists are (a byte order mark
    dropped, '#' comments, on their own line or after a path), and a path it names that is not there fails
    at launch with its line: a list that names nothing readable would decontaminate nothing, silently."""
    if is_list_file(source):
        with FileSystems.open(source) as handle:
            try:
                lines = list_lines(handle.read().decode("utf-8-sig"))  # ended as a takedown list's: never in a path
            except UnicodeDecodeError as err:
                raise ValueError(f"--decontaminate {source}: not UTF-8 ({err.reason} at byte {err.start})") from None
        base = posixpath.dirname(source)
        paths: list[str] = []
        for number, line in enumerate(lines, start=1):
            cut, comment = _COMMENT.sub("", line).strip(), _COMMENT.search(line)
            if not cut:  # blank, or a comment only
                break_in_comment(comment[0] if comment else "", f"--decontaminate {source}:{number}")
                continue
            # The whole line first: a path may hold " #" ("class #3/img.jpg"); else without its comment.
            choices = [_located(base, entry) for entry in dict.fromkeys((line.strip(), cut))]
            if is_remote(choices[-1]) and len(paths) >= CHECKED_REMOTE_PATHS:
                path = choices[-1]  # not checked (a request each): counted at hashing time if missing
            else:
                found = next((choice for choice in choices if _is_file(choice)), None)
                if found is None:
                    raise ValueError(f"--decontaminate {source}:{number}: {cut[:200]!r}: no such file")
                path = found
            if path != choices[0] and comment:  # its comment left out: a path a break in it shows on a line of its own
                break_in_comment(comment[0], f"--decontaminate {source}:{number}")
            paths.append(path)
        return paths
    paths = matching(eval_glob(source))
    left_out = link_left_out(eval_glob(source))
    if left_out:  # its images would never be hashed, their near copies kept without a word
        raise ValueError(f"--decontaminate {source}: {left_out}, and no image of it would be hashed: give where it "
                         "leads as a source of its own (--decontaminate=A,B)")
    unnamed = next((path for path in paths if not is_utf8_text(path)), None)
    if unnamed is not None:  # decoded with surrogates: the job's coder fails on it, and the whole job with it
        raise ValueError(f"--decontaminate {unnamed!a}: {unusable_name(unnamed)}")
    return paths


_READ_PIECE = 1024 * 1024
# What reading an evaluation image that cannot be read raises: OSError, and on GCS an object gone or refused, which
# raises the client library's NotFound or Forbidden, no OSError (`input_files.BROKEN_FILE_ERRORS`): out of the hashing
# step, one listed image deleted or misspelt past the paths the launch checks failed the whole job.
_UNREADABLE = (OSError, google_exceptions.NotFound, google_exceptions.Forbidden)


def _read_at_most(path: str, limit: int) -> bytes:
    """The file's bytes, read a piece at a time; ImageRejected past `limit` (read(limit + 1) set aside the whole
    limit, 256 MiB, for every file however small)."""
    pieces, size = [], 0
    # A named pipe in a benchmark's folder was opened and waited on for a writer for good, the job with it; a device
    # read to the bound: NotAFile, an OSError, counted as an image that cannot be read
    refuse_other_than_a_file(path)
    with FileSystems.open(path) as handle:
        while piece := handle.read(_READ_PIECE):
            size += len(piece)
            if size > limit:
                raise ImageRejected("too_large", f"more than {limit} bytes")
            pieces.append(piece)
    return b"".join(pieces)


class _HashEvalImage(beam.DoFn):
    def __init__(self, cfg: ImageConfig) -> None:
        # Keep every evaluation image, however small or plain: only its hash matters here.
        # The run's own decode and resize rule (draft, reducing gap), so the hash is the one a run would compute.
        self._cfg = dataclasses.replace(cfg, min_side=1, min_stddev=0.0)
        self._unreadable = Metrics.counter(STAGE, UNREADABLE_EVAL_IMAGES)

    def process(self, path: str) -> Iterator[tuple[int, str]]:
        try:
            raw = _read_at_most(path, MAX_EVAL_IMAGE_BYTES)
            yield int(normalise(raw, self._cfg).phash, 16), path
        except (ImageRejected, *_UNREADABLE) as err:
            self._unreadable.inc()
            # A benchmark's file names come from elsewhere: a line break or a terminal escape in one forged log lines
            _LOG.warning("decontaminate: skipping unreadable evaluation image %s: %s", printable(path),
                         printable(str(err)))


class _DropContaminated(beam.DoFn):
    def __init__(self, distance: int, rehash: bool = False) -> None:
        self._distance, self._rehash = distance, rehash
        self._index: HashIndex | None = None

    def process(self, photo: Photo, eval_hashes: Sequence[tuple[int, str]]) -> Iterator:
        if self._index is None:  # the side input is the same for the whole (global-window) job
            # Sorted: the side input comes in the order the workers hashed the images, and of equally close
            # evaluation images (copies under two names) the first listed is named in the rejection.
            self._index = HashIndex([(value, self._distance, path) for value, path in sorted(eval_hashes)])
        found = self._index.nearest(int(photo.phash, 16)) if photo.phash else None
        if found is None and self._rehash and photo.image and (own := stored_phash(photo.image)):
            found = self._index.nearest(int(own, 16))  # a carried row's pHash is the previous release's word
        if found is None:
            yield photo
            return
        path, distance = found
        # By its file name alone: the rejections are published, and a folder (a home folder's user name, a bucket's
        # layout) is the operator's, never the dataset's. Not a hash of the path either, which a guess of a user name
        # and a benchmark's usual folders would reveal.
        detail = f"pHash distance {distance} to evaluation image {posixpath.basename(path)}"
        yield reject(Rejection.of(photo, STAGE, "eval_overlap", detail))


class Decontaminate(beam.PTransform):
    """PCollection[Photo] (with `phash`) -> (PCollection[Photo] with no near copy of an evaluation
    image, PCollection[Rejection])."""

    def __init__(self, sources: Sequence[str], distance: int, cfg: ImageConfig, rehash: bool = False) -> None:
        """`rehash`: the photos' stored images are hashed too, not only their rows' pHash (carried rows')."""
        super().__init__()
        self._paths = [path for source in sources for path in expand_eval_source(source)]
        if not self._paths:
            raise ValueError(f"--decontaminate {','.join(sources)} names no image")
        self._distance, self._cfg, self._rehash = distance, cfg, rehash

    def expand(self, photos: beam.PCollection) -> StageOutput:
        eval_hashes = (
            photos.pipeline
            | "EvalImages" >> beam.Create(self._paths)
            | "SpreadEval" >> beam.Reshuffle()
            | "HashEval" >> beam.ParDo(_HashEvalImage(self._cfg))
        )
        return apply_stage(photos, STAGE, _DropContaminated(self._distance, self._rehash),
                           eval_hashes=beam.pvalue.AsList(eval_hashes))
