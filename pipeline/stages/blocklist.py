"""Blocklists: takedown requests and hash lists from safety organisations, applied to every run.

A list is a text file, one entry per line (`#` starts a comment):

    photo_id 123456789
    url https://www.flickr.com/photos/someone/123456789/
    sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    phash 0f1e2d3c4b5a6978 6        # optional distance; --near_dup_distance otherwise

The same transform runs twice: before fetching with the metadata kinds (photo_id, url), so a
taken-down photo is never downloaded again, and after normalisation with the content kinds
(sha256 of downloaded or stored bytes, pHash within a distance). Each match is rejected with the
list, line and entry that matched.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.near_dup.hash_index import HashIndex
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "blocklist"
METADATA_KINDS = ("photo_id", "url")
CONTENT_KINDS = ("sha256", "phash")


@dataclass(frozen=True)
class Entry:
    kind: str
    value: str
    distance: int
    source: str  # "list.txt:12"


def parse_blocklist(text: str, name: str, default_distance: int) -> list[Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"{name}:{number}"
        kind = fields[0].lower()
        if kind not in METADATA_KINDS + CONTENT_KINDS or len(fields) < 2:
            raise ValueError(f"{where}: expected '<photo_id|url|sha256|phash> VALUE', got {line.strip()[:80]!r}")
        value = fields[1] if kind == "url" else fields[1].lower()
        if kind == "phash" and (len(value) != 16 or any(c not in "0123456789abcdef" for c in value)):
            raise ValueError(f"{where}: a pHash is 16 hex digits")
        distance = int(fields[2]) if kind == "phash" and len(fields) > 2 else default_distance
        entries.append(Entry(kind, value, distance, where))
    return entries


def load_blocklists(paths: Sequence[str], default_distance: int) -> list[Entry]:
    entries = []
    for path in paths:
        with FileSystems.open(path) as handle:
            text = handle.read().decode("utf-8")
        entries += parse_blocklist(text, posixpath.basename(path), default_distance)
    return entries


class Matcher:
    """Exact lookups for ids, URLs and sha256; a pigeonhole `HashIndex` for the listed pHashes."""

    def __init__(self, entries: Sequence[Entry], kinds: Sequence[str]) -> None:
        self._exact = {(e.kind, e.value): e for e in entries if e.kind in kinds and e.kind != "phash"}
        self._hashes = HashIndex([(int(e.value, 16), e.distance, e) for e in entries
                                  if e.kind == "phash" and "phash" in kinds])

    def match(self, photo: Photo) -> Entry | None:
        candidates = [("photo_id", photo.photo_id)]
        candidates += [("url", url) for url in (photo.page_url, photo.download_url, photo.fetched_url) if url]
        candidates += [("sha256", sha) for sha in (photo.download_sha256, photo.sha256) if sha]
        for key in candidates:
            if key in self._exact:
                return self._exact[key]
        if photo.phash and len(self._hashes):
            found = self._hashes.nearest(int(photo.phash, 16))
            if found:
                return found[0]
        return None


class _DropListed(beam.DoFn):
    def __init__(self, paths: Sequence[str], distance: int, kinds: Sequence[str], stage: str) -> None:
        self._paths, self._distance, self._kinds, self._stage = list(paths), distance, tuple(kinds), stage

    def setup(self) -> None:
        self._matcher = Matcher(load_blocklists(self._paths, self._distance), self._kinds)

    def process(self, photo: Photo) -> Iterator:
        entry = self._matcher.match(photo)
        if entry is None:
            yield photo
        else:
            detail = f"{entry.source} {entry.kind} {entry.value}"
            yield reject(Rejection.of(photo, self._stage, "blocklisted", detail))


class Blocklist(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo] not on any list, PCollection[Rejection]).

    `kinds` chooses which entries apply: METADATA_KINDS before fetching, CONTENT_KINDS after
    hashing. Lists are parsed once at construction (a malformed list fails the job at start) and
    loaded again in each worker's setup()."""

    def __init__(self, paths: Sequence[str], distance: int, kinds: Sequence[str], stage: str = STAGE) -> None:
        super().__init__()
        load_blocklists(paths, distance)  # fail fast, before any worker starts
        self._stage = stage
        self._fn = _DropListed(paths, distance, kinds, stage)

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_stage(photos, self._stage, self._fn)
