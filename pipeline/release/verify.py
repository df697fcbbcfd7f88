"""`pass-pipeline verify RELEASE`: re-check every file of a release against its manifest.json —
existence, byte size, sha256 — and, for sharded files, that the record count inside matches (tar members, Parquet
rows, TFRecord records with their CRCs, the rows of the rejections, ledger and index), and that the WebDataset,
Parquet and ATTRIBUTION.csv records hold each photo id once and the same ids, with the same credit (creator, title,
page, licence) and, in the formats holding images, the same image under each id; and that stats.json's counts are
the manifest's totals and add up as a run writes them, and the dataset card's front matter is what a run writes for
the files listed. Works on local paths and gs://.

The release must also hold nothing else: every file in its folder is listed (manifest.json, which
cannot list its own hash, excepted), every shard of a sharded set is listed, and the records of each
format add up to the manifest's totals, so a shard deleted together with its entry is found too.
The manifest itself is hostile input: a malformed one is a problem, never a traceback, and an
entry whose path would leave the release is never read.

The run's other tables are checked against the kept photos (`Accounts`), as far as the writer guarantees it:
every input row ends kept or rejected (the totals' input_rows are kept + rejected: a run publishes nothing
otherwise); no kept photo is also a rejection of a stage that each photo id reaches once (after `unique_id` and
the ledger: a repeated row of a kept photo is rightly rejected as `read`, `license`, `unique_id`, `ledger` or
`carry`, a refresh's carried copies included); the rejections by stage and reason are stats.json's; the ledger
(if listed) holds each kept photo once, decided `kept`; and the near-duplicate index (if listed) holds every kept
photo, and nothing else when the run added no --previous_index to it.

Every file is opened once (locally without waiting, and only a regular file: `open_regular_file`) and read through
that handle as a stream twice: hashed (its size and sha256, `HashingReader`), then, only if they are the manifest's,
from its start again, hashed again while its records are checked one at a time: a tar member by member, a TFRecord
record by record, a CSV line by line, a Parquet file by batches of rows (the least Parquet can read is a page, and a
run writes a row group's images, up to 512, into one). What verify holds is one record (one image and its metadata;
a Parquet row group's image page), the few bytes it keeps of each photo id (`_Seen`), and stats.json and the dataset
card's first bytes, whatever the size of a shard. A file that is not the one the manifest lists is reported as such
and never parsed: parsed first, a crafted tar header or a Parquet page inflating to gigabytes cost a changed file
hours or gigabytes."""

from __future__ import annotations

import csv
import hashlib
import heapq
import itertools
import json
import os
import posixpath
import re
import tarfile
from collections import Counter
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipeline.io.dataset_card import front_matters
from pipeline.io.file_pins import UNCHECKED, VERIFIED, Pins, pin_of
from pipeline.io.files import (
    HashingReader,
    matching_sizes,
    open_regular_file,
    size_and_kind,
)
from pipeline.io.formats import WRITERS
from pipeline.io.json_keys import KeyTwice, each_key_once
from pipeline.io.layout import (
    ATTRIBUTION,
    DATASET_CARD,
    FORMAT_FOLDERS,
    MAX_MANIFEST_BYTES,
    RUN_PATH,
    STAGING,
    STATS,
    is_published,
    staged_runs,
)
from pipeline.io.lock import LOCK, LOCK_TEMPORARY
from pipeline.io.report import build_stats
from pipeline.io.sinks import shard_name
from pipeline.printable import printable, quoted
from pipeline.release.accounts import Accounts
from pipeline.release.changelog_problems import CHANGELOG_JSON, changelog_problems
from pipeline.release.id_sets import IdCount, IdList, IdSet, first_of_each
from pipeline.release.problem import Problem
from pipeline.release.record_readers import (
    DIGEST,
    PHOTO_FORMATS,
    Facts,
    Records,
    bounded_batches,
    credit_forms,
    parquet_file,
    read_up_to,
    record_ids,
)
from pipeline.release.refresh import UnreadableShard, photo_ids

MANIFEST = "manifest.json"
# Files a release may hold without listing them: only the manifest, which cannot contain its own hash.
UNLISTED_ALLOWED = frozenset({MANIFEST})
UNLISTED = "not listed in the manifest"  # what verify says of a file in the release that its manifest does not list
_SHARD_NAME = re.compile(r"(?P<prefix>.+)-(?P<index>[0-9]{5})-of-(?P<total>[0-9]{5})\.(?P<extension>[A-Za-z0-9]+)")
# Which total of the manifest each format's records add up to (near_dup_index and review have none).
_TOTAL_OF_FORMAT = {**{name: "kept" for name in WRITERS}, "attribution": "kept", "rejections": "rejected"}
# The hashing pass's reads (nothing of the file is kept), and how many rows a batch of a table of ids (rejections,
# ledger, index) holds.
_HASH_CHUNK = 1 << 16
_TABLE_ROWS = 16_384
# Of stats.json, held until every file is read, at most this (a run's is a few kB); of the dataset card, whose front
# matter alone is compared, its first bytes.
_MAX_STATS = 16 << 20
_CARD_HEAD = 1 << 20
# Of changelog.json, read whole and parsed: ~20 bytes a photo id added or removed (a month's refresh of a 1.4M-photo
# release lists tens of thousands; a first refresh of a whole new source, at most the release's millions).
_MAX_CHANGELOG = 256 << 20
# Of manifest.json, read whole and parsed: a run's lists each file in ~250 bytes (a release of 1.4M photos in shards
# of 5,000 lists ~1,000 files: a few hundred kB).
_MAX_MANIFEST = MAX_MANIFEST_BYTES


class _Digests:
    """The reference format's digest of each photo, `DIGEST` bytes, the first it gave for an id: the ids that are
    numbers (`id_number`) in a sorted array beside their digests (each file's added as it is read, merged in before
    the next lookup), any other id by itself. As a dict of text, 1.44 million photos took ~200 MiB a kind."""

    def __init__(self) -> None:
        self.numbers = np.zeros(0, dtype=np.uint64)
        self.digests = np.zeros((0, DIGEST), dtype=np.uint8)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.others: dict[str, bytes] = {}

    def add(self, photo_ids: Sequence[str], blob: bytes) -> None:
        for ids, digests in _chunks(photo_ids, blob):
            for place, photo_id in ids.others.items():
                self.others.setdefault(photo_id, digests[place * DIGEST:(place + 1) * DIGEST])
            numbers = np.frombuffer(ids.numbers, dtype=np.uint64)
            numbered = numbers != 0  # 0 is no id's number: the others' place
            self.pending.append((numbers[numbered], _rows(digests)[numbered]))

    def differing(self, photo_ids: Sequence[str], blob: bytes, forms: int = 1) -> list[str]:
        """The ids whose digests in `blob` (`forms` a record, one after another) are none of them the reference's
        (one it does not hold differs in nothing)."""
        self._merge()
        found: list[str] = []
        for ids, digests in _chunks(photo_ids, blob, forms):
            numbers = np.frombuffer(ids.numbers, dtype=np.uint64)
            differ = np.zeros(len(numbers), dtype=bool)
            if len(self.numbers):
                at = np.minimum(np.searchsorted(self.numbers, numbers), len(self.numbers) - 1)
                own = np.frombuffer(digests, dtype=np.uint8).reshape(-1, forms, DIGEST)
                same = (self.digests[at][:, None, :] == own).all(axis=2).any(axis=1)
                differ = (self.numbers[at] == numbers) & ~same
            for place, photo_id in ids.others.items():
                given = [digests[(place * forms + form) * DIGEST:(place * forms + form + 1) * DIGEST]
                         for form in range(forms)]
                differ[place] = photo_id in self.others and self.others[photo_id] not in given
            found += [ids[place] for place in np.flatnonzero(differ).tolist()]
        return found

    def _merge(self) -> None:
        if self.pending:
            numbers = np.concatenate([self.numbers, *(numbers for numbers, _ in self.pending)])
            digests = np.concatenate([self.digests, *(rows for _, rows in self.pending)])
            self.pending.clear()
            self.numbers, first = first_of_each(numbers)
            self.digests = digests[first]


# A file's ids compared at a time: ATTRIBUTION.csv gives a release's at once.
_CHUNK_IDS = 1 << 16


def _chunks(photo_ids: Sequence[str], blob: bytes, forms: int = 1) -> Iterator[tuple[IdList, bytes]]:
    """A file's ids (as numbers where they are: `IdList`) and their digests (`forms` an id), `_CHUNK_IDS` at a
    time."""
    ids = photo_ids if isinstance(photo_ids, IdList) else IdList(photo_ids)
    width = forms * DIGEST
    for start, part in zip(range(0, len(ids), _CHUNK_IDS), ids.parts(_CHUNK_IDS), strict=True):
        yield part, blob[start * width:(start + _CHUNK_IDS) * width]


def _rows(blob: bytes) -> np.ndarray:
    """The digests of a `Facts` blob, one row each."""
    return np.frombuffer(blob, dtype=np.uint8).reshape(-1, DIGEST)


def _first_forms(blob: bytes, forms: int, kept: int) -> bytes:
    """A `Facts` blob of `forms` digests a record with only its first `kept` each."""
    if kept == forms:
        return blob
    return np.frombuffer(blob, dtype=np.uint8).reshape(-1, forms, DIGEST)[:, :kept].tobytes()


@dataclass
class _Seen:
    """Each photo's facts as the first format read that holds them gave them (its reference), and which photos of
    another format differ: a shard resealed with another image under a photo's id (its sha256 beside it changed to
    match) kept every id and every hash of its own format, and passed though its photo was not the one the other
    formats publish; so did an ATTRIBUTION.csv crediting a kept photo to another creator or licence. Only the
    reference's digests are held, `DIGEST` bytes a photo (`_Digests`); an id it lacks is reported by `_id_problems`."""

    # (path, bytes) of each listed file of a format checked against the others once all are read (`_CHECKED_LAST`):
    # stats.json, the dataset card's first `_CARD_HEAD` bytes
    files: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    reference: dict[str, str] = field(default_factory=dict)  # "image" or "credit": the format first read
    digests: dict[str, _Digests] = field(default_factory=dict)  # kind: the reference's digests
    # (format, kind, reference): how many records differ, and the least three of their ids
    differ: dict[tuple[str, str, str], tuple[int, list[str]]] = field(default_factory=dict)

    def add(self, fmt: str, photo_ids: Sequence[str], facts: Facts) -> None:
        for what, blob in zip(("image", "credit"), facts, strict=True):
            if blob is None:
                continue
            reference = self.reference.setdefault(what, fmt)
            digests = self.digests.setdefault(what, _Digests())
            forms = credit_forms(fmt) if what == "credit" else 1
            if fmt == reference:  # a photo twice in one format is reported as such
                digests.add(photo_ids, _first_forms(blob, forms, 1))
                continue
            # An ATTRIBUTION.csv row (read first: `_dataset_order`) may hold the credit this version writes of a
            # shard's record or one an earlier version wrote; shards' records, each other's as this one writes them.
            kept = forms if reference == "attribution" else 1
            if found := digests.differing(photo_ids, _first_forms(blob, forms, kept), kept):
                count, least = self.differ.get((fmt, what, reference), (0, []))
                self.differ[fmt, what, reference] = (count + len(found), heapq.nsmallest(3, [*least, *found]))

    def problems(self) -> Iterator[Problem]:
        for (fmt, what, reference), (count, least) in sorted(self.differ.items()):
            yield Problem(fmt, f"{count} photos whose {what} differs from {reference}'s, e.g. {', '.join(least)}")


def _id_problems(ids: Mapping[str, tuple[IdSet, IdSet]]) -> Iterator[Problem]:
    """Each photo once per format, and the same photos in each: counts and hashes alone let a release holding one
    photo twice (and another not at all) pass. `ids`: each format's (photo ids, those in more than one record)."""
    for fmt, (_, twice) in sorted(ids.items()):
        if twice:
            yield Problem(fmt, f"{len(twice)} photo ids in more than one record, e.g. {', '.join(twice.least(3))}")
    if len(ids) < 2:
        return
    reference, *others = sorted(ids, key=PHOTO_FORMATS.index)
    for fmt in others:
        missing, extra = ids[reference][0] - ids[fmt][0], ids[fmt][0] - ids[reference][0]
        for what, found in (("not in", missing), ("only in", extra)):
            if found:
                shown = ", ".join(found.least(3))
                yield Problem(fmt, f"{len(found)} photo ids {what} {fmt} (against {reference}), e.g. {shown}")


def _dataset_order(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The dataset's files in the order they are read: ATTRIBUTION.csv first (as a run lists it), so that its credits
    are the ones the shards' are compared with, a digest a photo (each shard's record gives `CREDIT_FORMS`),
    however a manifest lists the files; the rest as listed."""
    return sorted(entries, key=lambda entry: entry.get("format") != "attribution")


def _reference(ids: Mapping[str, Any]) -> str:
    """The format the others' ids are compared with (`_id_problems`): the first of `PHOTO_FORMATS` read."""
    return min(ids, key=PHOTO_FORMATS.index, default="")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _load_manifest(release: str, path: str, pins: Pins = UNCHECKED) -> tuple[dict[str, Any] | None, str]:
    """The manifest as a dict, or None and why not. Like every file of the release, it is read only inside the
    release, only if it is a regular file, and only up to `_MAX_MANIFEST` bytes: read whole wherever it led, a
    manifest.json linked to one outside was read and the release passed as that one's, linked to /dev/zero it was
    read until memory ran out, a named pipe blocked verify for ever, and a folder was a traceback. `pins`: gets the
    version read (`file_pins`), which the refresh reads the options it inherits from."""
    if _leaves_release(release, path):
        return None, f"{MANIFEST} is a link that leads outside the release; not read"
    try:
        size, kind = size_and_kind(path)
        if kind:
            return None, f"{MANIFEST} is {kind}, not a regular file; not read"
        if size is not None and size > _MAX_MANIFEST:
            return None, f"{MANIFEST} is {size:,} bytes, over the {_MAX_MANIFEST:,} any run writes; not read"
        # Opened without waiting, judged by what was opened: replaced since its kind was taken (by a named pipe), it
        # was waited on for good
        with open_regular_file(path) as handle:
            opened = pin_of(path, handle)
            data = read_up_to(handle, _MAX_MANIFEST + 1)
            if len(data) > _MAX_MANIFEST:
                raise ValueError(f"{path} is over {_MAX_MANIFEST:,} bytes, more than any run writes")
            if pin_of(path, handle) != opened:  # written in place as it was read: not the version pinned
                raise ValueError(f"{path} was written as it was read")
            pins.add(path, opened, VERIFIED, (len(data), hashlib.sha256(data).hexdigest()))
    except OSError as err:
        return None, f"{MANIFEST} is unreadable: {_one_line(err)}"
    except ValueError as err:  # grown past the bound since its size was taken (or a store's size not true), or no file
        return None, f"{MANIFEST} changed as it was read ({_one_line(err)[:300]}); not read"
    try:
        manifest = json.loads(data.decode("utf-8"), object_pairs_hook=each_key_once)
    except KeyTwice as err:
        return None, f"{MANIFEST} gives {err} twice in one object (JSON readers differ on which counts; a run " \
                     "writes each key once)"
    except (ValueError, RecursionError) as err:  # bad JSON, not UTF-8, or nested deeper than Python recurses
        return None, f"{MANIFEST} is not valid JSON: {_one_line(err)[:200]}"
    if not isinstance(manifest, dict):
        return None, f"{MANIFEST} is not a JSON object but {type(manifest).__name__}"
    if not isinstance(manifest.get("files"), list):
        return None, f'{MANIFEST}: "files" must be a list of entries'
    return manifest, ""


# The format a run gives the files verify reads the records or counts of, by path: the folder of a sharded set (named
# so by the sinks), the file otherwise. Listed under another format (a Parquet shard as "notes"), a file went unread.
_FORMAT_OF_FOLDER = {folder: folder for folder in (*FORMAT_FOLDERS, "rejections", "near_dup_index", "ledger")}
_FORMAT_OF_FILE = {ATTRIBUTION: "attribution", STATS: "stats", DATASET_CARD: "dataset_card"}


def _run_format(path: str) -> str | None:
    folder, slash, _ = path.partition("/")
    return _FORMAT_OF_FOLDER.get(folder) if slash else _FORMAT_OF_FILE.get(path)


def _entry_problems(index: int, entry: Any) -> list[str]:
    """What is wrong with the shape of files[index]; [] when it can be checked."""
    if not isinstance(entry, dict):
        return [f"files[{index}] is not an object"]
    wrong = []
    if not isinstance(entry.get("path"), str):
        wrong.append('"path" must be a string')
    if not _whole(entry.get("bytes")):
        wrong.append('"bytes" must be a whole number')
    if not isinstance(entry.get("sha256"), str):
        wrong.append('"sha256" must be a string')
    wrong += [f'"{key}" must be a whole number' for key in ("records", "shard")
              if key in entry and not _whole(entry[key])]
    if "format" in entry and not isinstance(entry["format"], str):
        wrong.append('"format" must be a string')
    elif isinstance(entry.get("path"), str) and _run_format(entry["path"]) not in (None, entry.get("format")):
        wrong.append(f'"format" must be "{_run_format(entry["path"])}" for {quoted(entry["path"])}, as a run writes it')
    return [f"files[{index}]: {message}" for message in wrong]


def _totals_problem(manifest: dict[str, Any]) -> str:
    totals = manifest.get("totals", {})
    if not isinstance(totals, dict) or not all(_whole(value) for value in totals.values()):
        return f'{MANIFEST}: "totals" must be an object of whole numbers'
    return ""


def _leaves_release(release: str, path: str) -> bool:
    """A local file that is a link (or lies under one) to somewhere outside the release. Object
    stores such as gs:// have no links."""
    if FileSystems.get_scheme(release) is not None:
        return False
    root = os.path.realpath(release)
    return os.path.commonpath([root, os.path.realpath(path)]) != root


@dataclass
class _Found:
    """What reading one file gave, used only once its size and sha256 are the manifest's."""

    records: Records | None = None  # a dataset file's
    count: int | None = None  # its records, for the files that hold records
    accounts: Accounts | None = None  # a rejections, ledger or index file's
    head: bytes | None = None  # stats.json, the dataset card's first bytes (`_CHECKED_LAST`)
    larger: bool = False  # stats.json larger than `_MAX_STATS`
    error: str = ""  # why its content could not be read


# Parquet files whose rows are counted (from their footer), and the columns read of those whose rows are checked.
_TABLE_COLUMNS = {"rejections": ("photo_id", "stage", "reason"), "ledger": ("photo_id", "decision"),
                  "near_dup_index": ("photo_id",), "review": ()}


def _read(fmt: str, reader: HashingReader, size: int, accounts: Accounts) -> _Found:
    """A listed file's content, read through `reader` as a stream (its size and sha256 are `reader.finish()`'s)."""
    found = _Found()
    try:
        if fmt in PHOTO_FORMATS:
            found.records = record_ids(fmt, reader, size)
            found.count = len(found.records[0]) if fmt != "attribution" else None  # type: ignore[index]
        elif fmt in _TABLE_COLUMNS:
            parquet = parquet_file(reader)
            found.count = _stated_rows(parquet.metadata)
            columns = _TABLE_COLUMNS[fmt]
            if columns:
                found.accounts = accounts.for_a_file()
                add = getattr(found.accounts, "index" if fmt == "near_dup_index" else fmt)
                for batch in bounded_batches(reader, list(columns), _TABLE_ROWS, parquet):
                    add(batch)
        elif fmt in _CHECKED_LAST:
            limit, whole = _LIMITS[fmt]
            found.head = read_up_to(reader, limit + whole)
            found.larger = whole and len(found.head) > limit
    except (ValueError, TypeError, OSError, EOFError, tarfile.TarError, csv.Error, KeyError, pa.ArrowException) as err:
        found.error = _one_line(err)  # TypeError: a column of a type no run writes (a list where an image goes)
    return found


def _stated_rows(metadata: Any) -> int:
    """A Parquet table's rows as its row groups state them, what every reader reads (and `bounded_batches` checks
    against their columns' values); a footer whose count in all differs is a ValueError: counted from it, a table
    resealed stating a row fewer in all than its row groups hold passed against a manifest saying as much."""
    groups = sum(metadata.row_group(group).num_rows for group in range(metadata.num_row_groups))
    if metadata.num_rows != groups:
        raise ValueError(f"its footer counts {metadata.num_rows} rows in all, its row groups {groups}")
    return groups


def _hashed(handle: BinaryIO) -> tuple[int, str]:
    """The size and sha256 of what `handle` holds from where it is, read as a stream (nothing of it kept)."""
    reader = HashingReader(handle)
    while reader.read(_HASH_CHUNK):
        pass
    return reader.finish()


def _check_file(release: str, entry: dict[str, Any], ids: dict[str, IdCount], seen: _Seen,
                accounts: Accounts, pins: Pins = UNCHECKED) -> Iterator[Problem]:
    """One listed file against its entry: there, inside the release, its size, hash and records; the photo ids of a
    dataset file are added to `ids` (by format), their facts to `seen`, what a rejections, ledger or index file says
    of the kept photos to `accounts`. Opened once and read through that handle as a stream twice: hashed, then parsed
    only if its size and hash are the manifest's (and hashed again, so that what was parsed is what matched); a listed
    file not read so puts its format in `accounts.unread`. `pins`: gets the version read of a file that matched."""
    fmt = entry.get("format", "")
    if (yield from _file_problems(release, entry, ids, seen, accounts, pins)):
        accounts.read.add(fmt)
    else:
        accounts.unread.add(fmt)


def _file_problems(release: str, entry: dict[str, Any], ids: dict[str, IdCount], seen: _Seen,
                   accounts: Accounts, pins: Pins = UNCHECKED) -> Generator[Problem, None, bool]:
    """`_check_file`'s problems; returns whether the file was read and was the manifest's."""
    relative, fmt = entry["path"], entry.get("format", "")
    if not RUN_PATH.fullmatch(relative):
        yield Problem(quoted(relative), "not a plain relative path inside the release; not read")
        return False
    path = FileSystems.join(release, relative)
    if not FileSystems.exists(path):
        yield Problem(relative, "missing")
        return False
    if _leaves_release(release, path):
        yield Problem(relative, "a link that leads outside the release; not read")
        return False
    try:
        size, kind = size_and_kind(path)
    except OSError as err:  # gone since it was found (a folder being cleaned), or a store's error: not a traceback
        yield Problem(relative, f"unreadable: {_one_line(err)}")
        return False
    if kind:
        yield Problem(relative, f"{kind}, not a regular file; not read")  # a FIFO would block the read for ever
        return False
    if size is not None and size != entry["bytes"]:
        yield Problem(relative, f"{size} bytes, manifest says {entry['bytes']}; not read")
        return False
    try:
        # One open for both reads, without waiting, judged by what was opened: opened again to be parsed, a named pipe
        # put in its place once it was hashed was waited on for good (and another file read than the one hashed).
        handle = open_regular_file(path)
    except ValueError as err:  # no regular file since its kind was taken (a named pipe put in its place)
        yield Problem(relative, f"changed as it was read ({_one_line(err)[:300]}); not read")
        return False
    except OSError as err:
        yield Problem(relative, f"unreadable: {_one_line(err)}")
        return False
    try:
        with handle:
            # The version read (`file_pins`), which the refresh's reads compare theirs with: taken at open (the file
            # replaced under its name once opened is read as it was, its old inode's change time moved by the unlink)
            opened = pin_of(path, handle)
            size, sha256 = _hashed(handle)
            if size != entry["bytes"] or sha256 != entry["sha256"]:
                if size != entry["bytes"]:
                    yield Problem(relative, f"{size} bytes, manifest says {entry['bytes']}")
                if sha256 != entry["sha256"]:
                    yield Problem(relative, "sha256 differs from the manifest")
                return False
            # Parsed only once its bytes are the manifest's: a file changed and not resealed (a crafted tar header, a
            # Parquet page inflating to gigabytes) is the one line above, never a parser's work. Read again from its
            # start through the same handle, and hashed again while parsed, so that what is parsed is what was hashed
            # (a file written in place meanwhile is said to have changed).
            handle.seek(0)
            reader = HashingReader(handle)
            found = _read(fmt, reader, entry["bytes"], accounts)
            if reader.finish() != (size, sha256):
                yield Problem(relative, "changed while it was being read")
                return False
            pins.add(path, opened, VERIFIED, (size, sha256))
    except OSError as err:
        yield Problem(relative, f"unreadable: {_one_line(err)}")
        return False
    if found.larger:
        yield Problem(relative, f"over {_LIMITS[fmt][0]} bytes, more than any run writes; not read")
        return False
    if found.head is not None:
        seen.files.setdefault(fmt, []).append((relative, found.head))
    if found.error:
        yield Problem(relative, f"unreadable: {found.error}")
        return False
    if found.accounts is not None:
        accounts.merge(found.accounts)
    if found.records is not None:
        photo_ids, odd, facts = found.records
        ids.setdefault(fmt, IdCount()).add_each(photo_ids)
        seen.add(fmt, photo_ids, facts)
        if odd:
            # an image holding what no run writes: EXIF, GPS, a comment, bytes after its end (`stored_jpeg`)
            yield Problem(relative, f"{len(odd)} records not as a run writes them (an image that does not hash to "
                                    f"the sha256 beside it or holds what no run writes, a stray or unpaired member), "
                                    f"e.g. {', '.join(quoted(name) for name in sorted(odd)[:3])}")
    if found.count is not None and "records" in entry and found.count != entry["records"]:
        yield Problem(relative, f"{found.count} records, manifest says {entry['records']}")
    return True


def _unlisted(release: str, listed: set[str], published: bool) -> Iterator[Problem]:
    """Every file in the release's folder (at any depth) that the manifest does not list, except what a
    run in progress or a killed one leaves beside a dataset and the next run removes: the lock (and its
    temporary), staging folders. They are no part of the dataset, which is intact beside them. Not in a
    published release: no run writes there (one is refused before it takes the lock), so such files were
    put there otherwise, and a staging folder holding a publish plan would be carried out by a run. A folder
    that cannot be listed is a problem too: what it holds went unseen, and the release passed."""
    prefix, known = FileSystems.join(release, ""), listed | UNLISTED_ALLOWED
    unlistable: list[OSError] = []
    found = _everything_under(release, unlistable)
    for err in unlistable:
        folder = str(err.filename or release).replace(os.sep, "/")
        relative = folder[len(prefix):] if folder.startswith(prefix) else folder
        yield Problem(quoted(relative or "."), f"cannot be listed ({err.strerror or _one_line(err)}): a file in it "
                                               "that the manifest does not list would go unseen")
    for path in found:
        relative = path[len(prefix):] if path.startswith(prefix) else path
        if not relative or relative in known or (not published and run_leftover(relative)):
            continue
        yield Problem(quoted(relative), UNLISTED)


def _everything_under(release: str, unlistable: list[OSError]) -> list[str]:
    """Every file below the release; locally also every link to a folder (a glob does not enter one, and
    what it holds would go unseen) and anything that is no regular file. `unlistable` gets the error of each
    local folder that cannot be listed (os.walk skipped it, and all it holds, without a word); not of one gone
    since its parent was listed (a run removing its staging folder), which holds nothing to check."""
    if FileSystems.get_scheme(release) is not None:
        # Not a folder's placeholder (an empty object named with a '/' at its end: the console's "create folder"),
        # which is no file; one holding bytes is an object as any other (every name ending in '/' was skipped)
        return [path for path, size in matching_sizes(FileSystems.join(release, "**"))
                if not (path.endswith("/") and size == 0)]

    def refused(err: OSError) -> None:
        if not isinstance(err, FileNotFoundError):
            unlistable.append(err)

    found = []
    for folder, folders, files in os.walk(release, onerror=refused):
        found += [os.path.join(folder, name) for name in files]
        found += [os.path.join(folder, name) for name in folders if os.path.islink(os.path.join(folder, name))]
    return sorted(path.replace(os.sep, "/") for path in found)


_NOT_THROUGH = ("a publish not through (its plan written, its manifest not moved in): a run stopped as it published, "
                "or publishing now; the next run into the folder carries it out, replacing the dataset checked here "
                "with that run's")


def _publishes_not_through(release: str) -> Iterator[Problem]:
    """A run's output (no published release) whose staging folder holds a publish not through: the folder is no
    finished dataset, whatever the files checked here, since the next run into it replaces them with that run's
    (io/layout.py's `staged_runs`). It was one of the staging folders verify took for leftovers, without a word."""
    try:
        runs = staged_runs(release)
    except OSError:  # `_staging` cannot be listed: said by `_unlisted`
        return
    for name, pending in sorted(runs.items()):
        if pending:
            yield Problem(quoted(f"{STAGING}/{name}"), _NOT_THROUGH)


def staging_note(release: str) -> str:
    """The line verify prints beside its verdict on a run's output (no published release, where each file of a staging
    folder is a problem of its own) that holds staging folders of no publish left to carry out: what a run stopped
    before publishing left, one stopped as it removed its folder once published, or a run under way. No part of the
    dataset, which the next run into the folder removes: the verdict stands, but where they came from is said (they
    went unmentioned). '' when there are none."""
    if is_published(release):
        return ""
    try:
        left = sorted(name for name, pending in staged_runs(release).items() if not pending)
    except OSError:
        return ""
    if not left:
        return ""
    shown = ", ".join(printable(name, limit=100) for name in left[:3]) + (f" and {len(left) - 3} more" if len(left) > 3
                                                                     else "")
    # The folder as typed, a path at the start of a line as each report line's is: in Python's quoting (`quoted`), as
    # theirs (printed as it was, its escapes drove the terminal and its line break printed a forged line of its own)
    return (f"{quoted(FileSystems.join(release, STAGING))}: note: {len(left)} run folder(s) ({shown}) left by a run "
            "stopped before publishing (or as it removed its folder once published), or by a run under way: no part of "
            "the dataset, not checked; the next run into the folder removes them")


def run_leftover(relative: str) -> bool:
    """Whether a path in a release (relative to it) is what a run leaves beside a dataset: its lock, the lock's
    temporary, a file in a staging folder."""
    return relative.startswith(f"{STAGING}/") or relative == LOCK or (
        relative.startswith(LOCK_TEMPORARY) and "/" not in relative)


# The holes of a sharded set named one line each; more are one line for the set.
_HOLES_SHOWN = 3


def _missing_shards(entries: list[dict[str, Any]]) -> Iterator[Problem]:
    """Sharded sets (PREFIX-00000-of-00004.EXT) are written with every index, empty ones included:
    a hole in the numbering is a shard removed along with its entry."""
    sets: dict[tuple[str, str, int, str], set[int]] = {}
    for entry in entries:
        folder, name = posixpath.split(entry["path"])
        match = _SHARD_NAME.fullmatch(name)
        if match:
            key = (folder, match["prefix"], int(match["total"]), match["extension"])
            sets.setdefault(key, set()).add(int(match["index"]))
    for (folder, prefix, total, extension), indices in sorted(sets.items()):
        # The first few holes, found without walking the whole numbering (a manifest may claim 99,999 shards for
        # each of its entries); one line each when they are all, else one line for the set: an entry of 60 bytes
        # naming shard 0 of 99,999 printed 99,998 lines.
        holes = list(itertools.islice((index for index in range(total) if index not in indices), _HOLES_SHOWN + 1))
        if len(holes) <= _HOLES_SHOWN:
            for index in holes:
                yield Problem(posixpath.join(folder, shard_name(prefix, index, total, extension)),
                              f"shard {index} of {total} is not listed in the manifest")
        else:
            missing = total - sum(1 for index in indices if index < total)
            yield Problem(posixpath.join(folder, f"{prefix}-*-of-{total:05d}.{extension}"),
                          f"{missing:,} shards of {total:,} are not listed in the manifest, e.g. "
                          f"{', '.join(str(index) for index in holes[:_HOLES_SHOWN])}")
        for index in sorted(i for i in indices if i >= total):
            yield Problem(posixpath.join(folder, shard_name(prefix, index, total, extension)),
                          f"shard {index} of {total} is beyond the set's count")


def _wrong_totals(manifest: dict[str, Any], entries: list[dict[str, Any]]) -> Iterator[Problem]:
    """Each format's records, summed over its listed files, against the manifest's totals."""
    totals = manifest.get("totals")
    if not totals:
        return  # a manifest without totals (e.g. written by hand for review files) has nothing to add up
    records: dict[str, int] = {}
    for entry in entries:
        if isinstance(entry.get("format"), str) and "records" in entry:
            records[entry["format"]] = records.get(entry["format"], 0) + entry["records"]
    options = manifest.get("options")
    wanted = options.get("formats") if isinstance(options, dict) else None
    expected = {"attribution", "rejections", *records} | (
        {name.strip() for name in wanted.split(",")} if isinstance(wanted, str) else set())
    for fmt in sorted(expected):
        total = _TOTAL_OF_FORMAT.get(fmt)
        if total not in totals:
            continue
        if fmt not in records:
            yield Problem(fmt, f"no files listed, manifest totals say {total} {totals[total]}")
        elif records[fmt] != totals[total]:
            yield Problem(fmt, f"{records[fmt]} records in its files, manifest totals say {total} {totals[total]}")


def _stats_problems(path: str, data: bytes, totals: dict[str, Any],
                    rejections: Counter[tuple[str, str]] | None = None) -> Iterator[Problem]:
    """stats.json against the manifest's totals, and its funnel and rejections by stage against each other as
    `build_stats` writes them: a resealed stats.json claiming 12 kept and 6 rejected (or a funnel losing a stage's
    rejections) passed, and the datasheet states its figures. Its rejections by stage and reason against the
    rejections' own (`rejections`, their files' counts, when all were read): one tally of one collection makes both,
    and the totals alone let rejections move from one reason to another (a takedown made a fetch error)."""
    try:  # a key given twice is refused as in the manifest: a reader keeping the first saw other counts than verify
        stats = json.loads(data.decode("utf-8"), object_pairs_hook=each_key_once)
    except KeyTwice as err:
        yield Problem(path, f"gives the key {err} twice in one object (readers differ on which counts)")
        return
    except (ValueError, RecursionError) as err:
        yield Problem(path, f"not valid JSON: {_one_line(err)[:200]}")
        return
    by_stage = stats.get("rejections_by_stage") if isinstance(stats, dict) else None
    if not (isinstance(by_stage, dict) and all(isinstance(reasons, dict) and all(_whole(n) for n in reasons.values())
                                               for reasons in by_stage.values())
            and _whole(stats.get("input_rows")) and _whole(stats.get("kept"))):
        yield Problem(path, "not the counts a run writes (input_rows, kept, rejections_by_stage)")
        return
    for key in ("input_rows", "kept", "rejected"):
        if key in totals and stats.get(key) != totals[key]:
            yield Problem(path, f"{key} {stats.get(key)}, manifest totals say {totals[key]}")
    reasons = [((stage, reason), n) for stage, counts in by_stage.items() for reason, n in counts.items()]
    expected = build_stats(stats["input_rows"], stats["kept"], reasons)
    wrong = sorted(key for key, value in expected.items() if stats.get(key) != value)
    if wrong:
        yield Problem(path, f"{', '.join(wrong)} disagree with its rejections by stage")
    if rejections is None:
        return
    stated = Counter({key: n for key, n in reasons if n})
    differ = sorted((key for key in stated.keys() | rejections.keys() if stated[key] != rejections[key]), key=str)
    if differ:
        shown = ", ".join(f"{stage}/{reason}: {rejections[stage, reason]} in its files, {stated[stage, reason]} in "
                          f"stats.json" for stage, reason in differ[:3])
        yield Problem("rejections", f"{len(differ)} stage/reason counts differ from stats.json's, e.g. {shown}")


def _card_problems(path: str, data: bytes, entries: list[dict[str, Any]]) -> Iterator[Problem]:
    """The dataset card's front matter, what `datasets.load_dataset` and the Hub read (its configurations' files, its
    licence), against what a run writes for the formats listed: a resealed README.md whose default configuration
    loaded the rejections (or any path, or another licence) passed. Its text below is not compared: it has changed
    between versions, and a release written by an earlier one must still verify (its front matter may be the one an
    earlier version wrote for its files: `dataset_card.front_matters`)."""
    written = {fmt for entry in entries if isinstance(fmt := entry.get("format"), str)}  # none is read as another
    if not any(data.startswith(front.encode("utf-8")) for front in front_matters(written, "near_dup_index" in written)):
        yield Problem(path, "its front matter (configurations, licence) is not what a run writes for these files")


_CHECKED_LAST = frozenset({"stats", "dataset_card", "changelog"})
# What of each is held (at most, and whether it must be read whole: the dataset card's front matter is its head).
_LIMITS = {"stats": (_MAX_STATS, True), "dataset_card": (_CARD_HEAD, False), "changelog": (_MAX_CHANGELOG, True)}


def _unaccounted(manifest: dict[str, Any]) -> Iterator[Problem]:
    """Every input row ends kept or rejected: a run whose counts do not add up publishes nothing (commands/run.py's
    `refusal`), so totals that do not are not a run's."""
    totals = manifest.get("totals") or {}
    if all(key in totals for key in ("input_rows", "kept", "rejected")) and \
            totals["input_rows"] != totals["kept"] + totals["rejected"]:
        yield Problem(MANIFEST, f'"totals": input_rows {totals["input_rows"]} are not kept {totals["kept"]} + '
                                f'rejected {totals["rejected"]}, as every published run\'s are')


def verify(release: str, previous: str | None = None, pins: Pins = UNCHECKED) -> Iterator[Problem]:
    """Every problem of the release in RELEASE (a local folder or gs://), one at a time; none for an intact one.
    The dataset's files are read first, then the others: the rejections, the ledger and the near-duplicate index are
    checked against the kept photos as each is read (`Accounts`). `previous`: the release it was made from, whose
    photo ids (read, not verified) its changelog.json is compared with. `pins`: gets the version read of each file
    that is the manifest's (the manifest too), and the release as a folder whose every file was read
    (`file_pins`): what the refresh then reads of it must be those."""
    manifest_path = FileSystems.join(release, MANIFEST)
    if not FileSystems.exists(manifest_path):
        if FileSystems.get_scheme(release) is None and not os.path.isdir(release):  # a typo'd path: say so
            yield Problem(release, "no such folder" if not os.path.exists(release) else "not a folder")
        else:  # a run's working folder, or one stopped before publishing: its manifest is published last
            yield Problem(manifest_path, "no manifest.json: no published release or dataset here")
        return
    manifest, why = _load_manifest(release, manifest_path, pins)
    if manifest is None:
        yield Problem(MANIFEST, why)
        return
    entries, listed = [], set()
    for index, entry in enumerate(manifest["files"]):
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            if entry["path"] in listed:
                yield Problem(quoted(entry["path"]), "listed more than once in the manifest")
                continue
            listed.add(entry["path"])
        wrong = _entry_problems(index, entry)
        yield from (Problem(MANIFEST, message) for message in wrong)
        if not wrong:
            entries.append(entry)
    ids: dict[str, IdCount] = {}
    seen, accounts = _Seen(), Accounts()
    dataset = _dataset_order([entry for entry in entries if entry.get("format") in PHOTO_FORMATS])
    for entry in dataset:
        yield from _check_file(release, entry, ids, seen, accounts, pins)
    counted = {fmt: found.counted() for fmt, found in ids.items()}  # (its ids, those twice) by format
    # The files left hold no dataset records, nothing to compare with the reference's digests (~48 bytes a photo): held
    # to the end, they were beside the rejections', ledger's and index's ids as those were read and counted
    ids.clear()
    seen.digests.clear()
    reference = _reference(counted)
    accounts.kept, accounts.reference = counted[reference][0] if reference else IdSet(), reference
    for entry in entries:
        if entry.get("format") not in PHOTO_FORMATS:
            yield from _check_file(release, entry, ids, seen, accounts, pins)
    pins.cover(release)
    yield from _id_problems(counted)
    yield from seen.problems()
    yield from accounts.problems(manifest)
    published = bool(manifest.get("release"))
    yield from _unlisted(release, listed, published)
    if not published:
        yield from _publishes_not_through(release)
    yield from _missing_shards([e for e in entries if RUN_PATH.fullmatch(e["path"])])
    totals_problem = _totals_problem(manifest)
    if totals_problem:
        yield Problem(MANIFEST, totals_problem)
    else:
        yield from _unaccounted(manifest)
        yield from _wrong_totals(manifest, entries)
        for path, data in seen.files.get("stats", []):
            yield from _stats_problems(path, data, manifest.get("totals", {}), accounts.rejections_by_reason())
    for path, data in seen.files.get("dataset_card", []):
        yield from _card_problems(path, data, entries)
    logs = [data for path, data in seen.files.get("changelog", []) if path == CHANGELOG_JSON]  # not CHANGELOG.md
    if previous and not logs and CHANGELOG_JSON not in listed:
        yield Problem(CHANGELOG_JSON, "not in the release, so nothing to compare with the previous release (a release "
                                      "made by a refresh from one lists it)")
    before = None
    if previous and logs:
        try:
            before = photo_ids(previous)
        except UnreadableShard as err:  # read, not verified: said, beside what the release itself holds
            yield Problem(CHANGELOG_JSON, f"the previous release's {err.shard} cannot be read ({err.why}), so the "
                                          "changelog is not compared with that release")
    for data in logs:
        yield from changelog_problems(CHANGELOG_JSON, data, accounts.kept if reference else None,
                                      manifest.get("release"), before)
