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

The run's other tables are checked against the kept photos (`_Accounts`), as far as the writer guarantees it:
every input row ends kept or rejected (the totals' input_rows are kept + rejected: a run publishes nothing
otherwise); no kept photo is also a rejection of a stage that each photo id reaches once (after `unique_id` and
the ledger: a repeated row of a kept photo is rightly rejected as `read`, `license`, `unique_id`, `ledger` or
`carry`, a refresh's carried copies included); the rejections by stage and reason are stats.json's; the ledger
(if listed) holds each kept photo once, decided `kept`; and the near-duplicate index (if listed) holds every kept
photo, and nothing else when the run added no --previous_index to it.

Every file is read as a stream twice: hashed (its size and sha256, `HashingReader`), then, only if they are the
manifest's, hashed again while its records are checked one at a time: a tar member by member, a TFRecord record by
record, a CSV line by line, a Parquet file by batches of rows (the least Parquet can read is a page, and a run writes
a row group's images, up to 512, into one). What verify holds is one record (one image and its metadata; a Parquet
row group's image page), the few bytes it keeps of each photo id (`_Seen`), and stats.json and the dataset card's
first bytes, whatever the size of a shard. A file that is not the one the manifest lists is reported as such and
never parsed: parsed first, a crafted tar header or a Parquet page inflating to gigabytes cost a changed file hours
or gigabytes."""

from __future__ import annotations

import bisect
import csv
import hashlib
import heapq
import io
import json
import os
import posixpath
import re
import tarfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.io.attribution import ATTRIBUTION_COLUMNS, BIDI_CONTROLS, credit, shows_something
from pipeline.io.dataset_card import card_text
from pipeline.io.files import HashingReader, matching, open_reader, read_bytes, size_and_kind
from pipeline.io.formats import WRITERS, decode_example, image_bytes, masked_crc
from pipeline.io.layout import ATTRIBUTION, DATASET_CARD, FORMAT_FOLDERS, RUN_PATH, STAGING, STATS
from pipeline.io.lock import LOCK, LOCK_TEMPORARY
from pipeline.io.report import build_stats
from pipeline.io.sinks import CONTROLS, csv_text, shard_name
from pipeline.records import BadPhotoId, canonical_photo_id

MANIFEST = "manifest.json"
# Files a release may hold without listing them: only the manifest, which cannot contain its own hash.
UNLISTED_ALLOWED = frozenset({MANIFEST})
_SHARD_NAME = re.compile(r"(?P<prefix>.+)-(?P<index>[0-9]{5})-of-(?P<total>[0-9]{5})\.(?P<extension>[A-Za-z0-9]+)")
# Which total of the manifest each format's records add up to (near_dup_index and review have none).
_TOTAL_OF_FORMAT = {**{name: "kept" for name in WRITERS}, "attribution": "kept", "rejections": "rejected"}
# How much of a file is read at once where verify chooses (a tar's `.jpg` member, a Parquet column's buffer), and
# how many rows a batch of a Parquet dataset shard (images) or of a table of ids (rejections, ledger, index) holds.
_CHUNK = 1 << 20
_HASH_CHUNK = 1 << 16  # the hashing pass's reads: nothing of the file is kept
_IMAGE_ROWS = 8
_TABLE_ROWS = 16_384
# Of stats.json, held until every file is read, at most this (a run's is a few kB); of the dataset card, whose front
# matter alone is compared, its first bytes.
_MAX_STATS = 16 << 20
_CARD_HEAD = 1 << 20


@dataclass(frozen=True)
class Problem:
    """One line of the report. Both parts can quote the release's own bytes (file names, photo ids from its
    shards, parse errors): any unprintable character is quoted, so a resealed release cannot forge or hide
    lines of the report (a newline and "RELEASE: OK", or a terminal escape hiding the rest)."""

    path: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", _printable(self.path))
        object.__setattr__(self, "message", _printable(self.message))


Source = bytes | BinaryIO  # a file's bytes, or a stream of them (verify reads files as `HashingReader`s)


def _stream(source: Source) -> BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source


def _read_up_to(stream: BinaryIO, size: int, left: int | None = None) -> bytes:
    """`size` bytes of a stream, or fewer at its end. In one read when the stream is known to hold them (`left`: the
    bytes it has left), else `_CHUNK` bytes at a time: a file's reader allocates what it is asked for, and a hostile
    length field may ask for any number."""
    if left is not None and size <= left:
        return stream.read(size)
    parts = []
    while size > 0 and (data := stream.read(min(size, _CHUNK))):
        parts.append(data)
        size -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def tfrecords(source: Source, size: int | None = None) -> Iterator[bytes]:
    """The records of a TFRecord file (its bytes, or a stream of its `size` bytes, read one record at a time),
    checking both CRCs of each: its length's before the record is read, then its data's (the bytes re-framing the
    record must reproduce)."""
    stream, count, offset = _stream(source), 0, 0
    left = len(source) if isinstance(source, bytes | bytearray | memoryview) else size
    while header := _read_up_to(stream, 12):
        length = int.from_bytes(header[:8], "little")
        framed = len(header) == 12 and header[8:] == masked_crc(header[:8]).to_bytes(4, "little")
        offset += len(header)
        record = _read_up_to(stream, length, None if left is None else left - offset) if framed else b""
        crc = _read_up_to(stream, 4) if len(record) == length else b""
        if not framed or len(crc) != 4 or crc != masked_crc(record).to_bytes(4, "little"):
            raise ValueError(f"record {count} has a bad length or CRC")
        offset += length + 4
        yield record
        del record  # not held while the next one is read
        count += 1


# Formats whose records are the dataset's photos, one each: the same ids in each, none twice.
_PHOTO_FORMATS = ("webdataset", "parquet", "tfrecord", "attribution")


# What verify holds of a file's records to compare each with the same photo's record in another format, `_DIGEST`
# bytes a record, one after another in the order of its ids: their images' sha256 (None where the format holds no
# image), and digests of their credits (creator, title, page, licence) as ATTRIBUTION.csv states them.
Facts = tuple[bytes | None, bytes]
Records = tuple[list[str], list[str], Facts]
_DIGEST = 16


_CREDIT_FIELDS = ("owner_name", "owner_nsid", "title", "page_url", "license_name", "license_url")


def _credit_digest(fields: list[Any]) -> bytes:
    """The digest of a credit as ATTRIBUTION.csv gives it back: control characters U+FFFD, as `csv_cell` writes them,
    bidi formatting dropped (as `credit` drops it; a file an earlier version wrote holds it), and a credit by the
    owner's Flickr id compared as one whatever creator it shows (`_by_owner_id`)."""
    text = [BIDI_CONTROLS.sub("", CONTROLS.sub("\ufffd", value if isinstance(value, str) else
                                                "" if value is None else str(value))) for value in fields]
    return hashlib.blake2b(json.dumps(_by_owner_id(text)).encode(), digest_size=_DIGEST).digest()


def _by_owner_id(text: list[str]) -> list[str]:
    """A whole credit (creator, creator URL, ...) whose creator is the owner's id, or a name that shows nothing, with
    the creator left empty: `credit` names the owner's id where the name shows nothing, and a file an earlier
    version wrote holds the blank name, a name of control characters as U+FFFD (`csv_cell`). A real name swapped for
    the id still differs."""
    if len(text) != len(_CREDIT_FIELDS):
        return text
    creator, creator_url = text[0], text[1]
    if not shows_something(creator.replace("\ufffd", "")) or creator_url == f"https://www.flickr.com/people/{creator}/":
        return ["", *text[1:]]
    return text


def _record_credit(record: dict[str, Any], names: tuple[str, ...] = _CREDIT_FIELDS) -> bytes:
    """The credit digest of a shard's record, its fields under `names` (in `_CREDIT_FIELDS`' order)."""
    texts = [value.decode("utf-8", "replace") if isinstance(value, bytes) else "" if value is None else str(value)
             for value in (record.get(name) for name in names)]
    return _credit_digest(list(credit(*texts)))


def _metadata(payload: bytes) -> dict[str, Any]:
    try:
        metadata = json.loads(payload)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than Python recurses
        return {}
    return metadata if isinstance(metadata, dict) else {}


@dataclass
class _Sample:
    """What verify keeps of a tar sample once its members are read: its image's sha256, and of its metadata
    whether it names the sample's photo, the sha256 it gives and the credit digest (never the members' bytes)."""

    image: bytes | None = None
    metadata: tuple[bool, str | None, bytes] | None = None


def _webdataset_records(source: Source, size: int | None = None) -> Records:
    """(ids, ids of samples that are not what a run writes, the facts of each id): each member `<id>.jpg` or
    `<id>.json`, a sample both, its metadata naming the photo and the image's sha256. Counting `.jpg` members alone
    passed a tar holding an extra `9999999.json` or a JPEG other than the one its metadata describes. Read as a
    stream, member by member: an image is hashed a chunk at a time, a metadata member parsed and let go (a shard
    held whole, or all its members at once, cost a shard of memory: ~1 GB at 5,000 images). `size`: the bytes the
    stream holds; a member that would end past them is the file unreadable (a stream skips a member by reading to its
    end: one claiming 2^80 bytes was read for ever)."""
    end = len(source) if isinstance(source, bytes | bytearray | memoryview) else size
    samples: dict[str, _Sample] = {}
    odd: list[str] = []
    # "r|": the plain tar a run writes. Read before its hash is known, a compressed one (a bzip2 stream of a few kB
    # holds a member of any number of GB) would be decompressed whatever the file.
    with tarfile.open(fileobj=_stream(source), mode="r|") as tar:
        for member in tar:
            if end is not None and member.offset_data + member.size > end:
                raise tarfile.ReadError("a member runs past the end of the file")
            key, dot, extension = member.name.partition(".")
            sample = samples.get(key)
            if not dot or extension not in ("jpg", "json") or not member.isfile() or (
                    sample is not None and getattr(sample, "image" if extension == "jpg" else "metadata") is not None):
                odd.append(member.name)
                continue
            handle = tar.extractfile(member)
            if handle is None:  # not for a regular file; as for any other member that is none
                odd.append(member.name)
                continue
            sample = samples.setdefault(key, _Sample())
            if extension == "jpg":
                digest = hashlib.sha256()
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                sample.image = digest.digest()
            else:
                metadata = _metadata(handle.read())
                sha256 = metadata.get("sha256")
                sample.metadata = (str(metadata.get("photo_id")) == key, sha256 if isinstance(sha256, str) else None,
                                   _record_credit(metadata))
    unnamed = _record_credit({})  # the credit of a sample without metadata, or metadata that is no JSON object
    for key, sample in samples.items():
        if not (sample.metadata is not None and sample.image is not None and sample.metadata[0]
                and sample.metadata[1] == sample.image.hex()):
            odd.append(key)
    photos = [key for key, sample in samples.items() if sample.image is not None]
    return photos, odd, (b"".join(samples[key].image[:_DIGEST] for key in photos),  # type: ignore[index]
                         b"".join(samples[key].metadata[2] if samples[key].metadata else unnamed  # type: ignore[index]
                                  for key in photos))


def _parquet_file(source: Source) -> pq.ParquetFile:
    """A Parquet file read a page at a time where it asks for its columns (not a row group's chunks at once, as
    pre-buffering reads them), its footer first."""
    return pq.ParquetFile(_stream(source), pre_buffer=False, buffer_size=_CHUNK)


def _as_binary(column: pa.Array) -> pa.Array:
    """Text as bytes: text that is no UTF-8 is then a credit that differs, not a crash."""
    return column.cast(pa.binary()) if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) \
        else column


def _parquet_records(source: Source) -> Records:
    """(ids, ids whose image bytes do not hash to their sha256 column, the facts of each id), a few rows at a time
    (`_IMAGE_ROWS`): a run writes a row group's images into one page, which Parquet reads whole, so at most one row
    group's images are held at once, never a shard's."""
    ids, odd, images, credits = [], [], bytearray(), bytearray()
    columns = ["photo_id", "image", "sha256", *_CREDIT_FIELDS]
    for batch in _parquet_file(source).iter_batches(batch_size=_IMAGE_ROWS, columns=columns, use_threads=False):
        found = [str(value) for value in batch.column("photo_id").to_pylist()]
        digests = [hashlib.sha256(image_bytes(image)).digest() for image in batch.column("image").to_pylist()]
        ids += found
        odd += [photo_id for photo_id, digest, sha256 in zip(found, digests, batch.column("sha256").to_pylist(),
                                                             strict=True) if digest.hex() != sha256]
        images += b"".join(digest[:_DIGEST] for digest in digests)
        text = {name: _as_binary(batch.column(name)).to_pylist() for name in _CREDIT_FIELDS}
        credits += b"".join(_record_credit({name: text[name][row] for name in _CREDIT_FIELDS})
                            for row in range(batch.num_rows))
    return ids, odd, (bytes(images), bytes(credits))


def _tfrecord_records(source: Source, size: int | None = None) -> Records:
    """(ids, ids whose encoded image does not hash to their image/sha256, the facts of each id), a record at a
    time: none is held once its facts are taken (`_tfrecord_facts`)."""
    ids, odd, images, credits = [], [], bytearray(), bytearray()
    for photo_id, digest, credit_digest, matches in map(_tfrecord_facts, tfrecords(source, size)):
        ids.append(photo_id)
        images += digest[:_DIGEST]
        credits += credit_digest
        if not matches:
            odd.append(photo_id)
    return ids, odd, (bytes(images), bytes(credits))


def _tfrecord_facts(record: bytes) -> tuple[str, bytes, bytes, bool]:
    """(photo id, image sha256, credit digest, whether the image hashes to its image/sha256) of an Example."""
    example = decode_example(record)
    photo_id = example.get("image/id", b"")
    photo_id = photo_id.decode("utf-8") if isinstance(photo_id, bytes) else str(photo_id)
    image, sha256 = example.get("image/encoded"), example.get("image/sha256")
    digest = hashlib.sha256(image if isinstance(image, bytes) else b"").digest()
    matches = isinstance(image, bytes) and isinstance(sha256, bytes) and digest.hex() == sha256.decode()
    return photo_id, digest, _record_credit(example, _TFRECORD_CREDIT), matches


_TFRECORD_CREDIT = ("creator", "creator_nsid", "title", "page_url", "license", "license_url")


def _attribution_records(source: Source) -> Records:
    """(ids, [], the facts of each row: no image, the digest of its credit as written). Decoded as it is read, a line
    at a time: decoding the whole file first held it again as text, at up to 4 bytes a character (5-8 times the file:
    ~10 GB for a 1.4M-photo release's ATTRIBUTION.csv). A header other than the run's is the file's first odd
    record."""
    ids, odd, credits = [], [], bytearray()
    text = io.TextIOWrapper(_stream(source), encoding="utf-8", newline="")
    try:
        rows = csv.reader(text)
        if tuple(next(rows, ())) != ATTRIBUTION_COLUMNS:
            odd.append("(header)")
        for row in rows:
            ids.append(row[0] if row else "")
            whole = len(row) == len(ATTRIBUTION_COLUMNS)
            credits += _credit_digest([csv_text(cell) for cell in row[1:]] if whole else [str(row)])
    finally:
        text.detach()  # the stream stays open: the caller hashes the rest of it
    return ids, odd, (None, bytes(credits))


def record_ids(fmt: str, source: Source, size: int | None = None) -> Records | None:
    """(the photo id of each record of a dataset file, the ids of records that are not what a run writes: an image
    that does not hash to the sha256 beside it, a stray tar member, the facts of each id to compare across formats);
    None for files that are not the dataset's. `source`: the file's bytes, or a stream of them (read once, a record
    at a time; `size`: the bytes it holds, where known)."""
    if fmt == "webdataset":
        return _webdataset_records(source, size)
    if fmt == "parquet":
        return _parquet_records(source)
    if fmt == "tfrecord":
        return _tfrecord_records(source, size)
    if fmt == "attribution":
        return _attribution_records(source)
    return None


@dataclass
class _Seen:
    """Each photo's facts as the first format read that holds them gave them (its reference), and which photos of
    another format differ: a shard resealed with another image under a photo's id (its sha256 beside it changed to
    match) kept every id and every hash of its own format, and passed though its photo was not the one the other
    formats publish; so did an ATTRIBUTION.csv crediting a kept photo to another creator or licence. Only the
    reference's digests are held, `_DIGEST` bytes a photo; an id it lacks is reported by `_id_problems`."""

    # (path, bytes) of each listed file of a format checked against the others once all are read (`_CHECKED_LAST`):
    # stats.json, the dataset card's first `_CARD_HEAD` bytes
    files: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    reference: dict[str, str] = field(default_factory=dict)  # "image" or "credit": the format first read
    digests: dict[str, dict[str, bytes]] = field(default_factory=dict)  # kind: {photo id: digest}
    differ: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    def add(self, fmt: str, photo_ids: list[str], facts: Facts) -> None:
        for what, blob in zip(("image", "credit"), facts, strict=True):
            if blob is None:
                continue
            reference = self.reference.setdefault(what, fmt)
            digests = self.digests.setdefault(what, {})
            for index, photo_id in enumerate(photo_ids):
                digest = blob[index * _DIGEST:(index + 1) * _DIGEST]
                if fmt == reference:
                    digests.setdefault(photo_id, digest)  # a photo twice in one format is reported as such
                elif digests.get(photo_id, digest) != digest:
                    self.differ.setdefault((fmt, what, reference), []).append(photo_id)

    def problems(self) -> Iterator[Problem]:
        for (fmt, what, reference), found in sorted(self.differ.items()):
            shown = ", ".join(sorted(found)[:3])
            yield Problem(fmt, f"{len(found)} photos whose {what} differs from {reference}'s, e.g. {shown}")


def _id_problems(ids: dict[str, Counter[str]]) -> Iterator[Problem]:
    """Each photo once per format, and the same photos in each: counts and hashes alone let a release holding one
    photo twice (and another not at all) pass."""
    for fmt, counted in sorted(ids.items()):
        twice = sorted(photo_id for photo_id, count in counted.items() if count > 1)
        if twice:
            yield Problem(fmt, f"{len(twice)} photo ids in more than one record, e.g. {', '.join(twice[:3])}")
    if len(ids) < 2:
        return
    reference, *others = sorted(ids, key=_PHOTO_FORMATS.index)
    for fmt in others:
        missing, extra = ids[reference].keys() - ids[fmt].keys(), ids[fmt].keys() - ids[reference].keys()
        for what, found in (("not in", missing), ("only in", extra)):
            if found:
                shown = ", ".join(sorted(found)[:3])
                yield Problem(fmt, f"{len(found)} photo ids {what} {fmt} (against {reference}), e.g. {shown}")


def _reference(ids: Mapping[str, Counter[str]]) -> str:
    """The format the others' ids are compared with (`_id_problems`): the first of `_PHOTO_FORMATS` read."""
    return min(ids, key=_PHOTO_FORMATS.index, default="")


# The stages that see every row of a photo id: a kept photo may be rejected by them too (a repeated row of it, or one
# refused for its licence or skipped as decided before the row that was kept; one of a refresh's carried copies when
# the previous release held it twice). `unique_id` and the ledger leave one row an id (a refresh's new rows for an id
# it carries are repeats), and every later stage passes that row or rejects it: a kept photo rejected there was
# published and refused at once, which no run does.
_ROW_STAGES = frozenset({"read", "license", "unique_id", "ledger", "carry"})
# More (stage, reason) pairs than any run writes (stages and reasons are the code's words): not tallied further.
_MAX_REASONS = 10_000
_KEPT = "kept"  # a ledger row's decision for a kept photo (stages/ledger.py)


class _Some:
    """How many, and the least few for the report: bounded whatever the count."""

    def __init__(self) -> None:
        self.count, self.least = 0, []

    def add(self, value: str, times: int = 1) -> None:
        self.count += times
        if value not in self.least and (len(self.least) < 3 or value < self.least[-1]):
            bisect.insort(self.least, value)
            del self.least[3:]

    def merge(self, other: _Some) -> None:
        for value in other.least:
            self.add(value, 0)
        self.count += other.count


@dataclass
class _Accounts:
    """What the rejections, the ledger and the near-duplicate index say of the kept photos, `kept` (the reference
    format's ids, `_reference`), added up over their files: each file's own accounts are merged only once its size and
    sha256 are the manifest's. Held: the kept ids each table names (at most each kept photo once), counts, examples.

    What a run's writer guarantees (build.py; stages/ledger.py; io/sinks.py), and so what is checked:
    - the rejections: no kept photo is rejected by a stage after `_ROW_STAGES`; their stage/reason counts are
      stats.json's rejections by stage (one tally of one collection makes both);
    - the ledger: one row a kept photo (every kept id is in its one spelling: sources and carried rows refuse any
      other), decided `kept` (this run's decision of an id replaces the previous ledger's, and no run rejects a photo
      it keeps);
    - the near-duplicate index: a row for every kept photo; nothing else unless the run added a previous index
      (--previous_index without --carry_over: that index's photos, a kept one perhaps under an older pHash).
    Not checked: a ledger's other rows (a run keeps the previous ledger's rows for ids it did not see, kept ones
    included), a rejection of an id nothing keeps, the index's hashes."""

    kept: Mapping[str, int] = field(default_factory=dict)
    reference: str = ""
    rejected: set[str] = field(default_factory=set)  # kept ids rejected after the row stages
    stages: set[str] = field(default_factory=set)  # by which stages
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)  # rejections by (stage, reason)
    too_many_reasons: bool = False
    decided: set[str] = field(default_factory=set)  # kept ids with a ledger row
    decided_twice: set[str] = field(default_factory=set)
    decided_otherwise: set[str] = field(default_factory=set)  # kept ids whose ledger row is not `kept`
    indexed: set[str] = field(default_factory=set)  # kept ids with an index row
    indexed_twice: set[str] = field(default_factory=set)
    strangers: _Some = field(default_factory=_Some)  # index rows of ids the release does not keep
    read: set[str] = field(default_factory=set)  # formats of which a file was read
    unread: set[str] = field(default_factory=set)  # formats of which a listed file was not (missing, not its hash)

    def for_a_file(self) -> _Accounts:
        return _Accounts(self.kept, self.reference)

    def rejections(self, batch: pa.RecordBatch) -> None:
        stage, reason = _text(batch, "stage"), _text(batch, "reason")
        counts = pa.table({"stage": stage, "reason": reason}).group_by(["stage", "reason"]).aggregate(
            [([], "count_all")])
        for key, n in zip(zip(counts.column("stage").to_pylist(), counts.column("reason").to_pylist(), strict=True),
                          counts.column("count_all").to_pylist(), strict=True):
            self.reasons[key] += n
        if len(self.reasons) > _MAX_REASONS:
            self.too_many_reasons = True
            self.reasons.clear()
        stages = None
        for row, photo_id in enumerate(_text(batch, "photo_id").to_pylist()):
            if photo_id in self.kept:
                stages = stages or stage.to_pylist()
                if stages[row] not in _ROW_STAGES:
                    self.rejected.add(photo_id)
                    self.stages.add(str(stages[row]))

    def ledger(self, batch: pa.RecordBatch) -> None:
        decisions = None
        for row, photo_id in enumerate(_text(batch, "photo_id").to_pylist()):
            if photo_id in self.kept:
                (self.decided_twice if photo_id in self.decided else self.decided).add(photo_id)
                decisions = decisions or _text(batch, "decision").to_pylist()
                if decisions[row] != _KEPT:
                    self.decided_otherwise.add(photo_id)

    def index(self, batch: pa.RecordBatch) -> None:
        for photo_id in _text(batch, "photo_id").to_pylist():
            if photo_id in self.kept:
                (self.indexed_twice if photo_id in self.indexed else self.indexed).add(photo_id)
            else:
                self.strangers.add(str(photo_id))

    def merge(self, other: _Accounts) -> None:
        self.rejected |= other.rejected
        self.stages |= other.stages
        self.too_many_reasons |= other.too_many_reasons
        if not self.too_many_reasons:
            self.reasons.update(other.reasons)
        self.decided_twice |= other.decided_twice | (self.decided & other.decided)
        self.decided |= other.decided
        self.decided_otherwise |= other.decided_otherwise
        self.indexed_twice |= other.indexed_twice | (self.indexed & other.indexed)
        self.indexed |= other.indexed
        self.strangers.merge(other.strangers)

    def rejections_by_reason(self) -> Counter[tuple[str, str]] | None:
        """The rejections' (stage, reason) counts, when every listed file of theirs was read; else None."""
        whole = "rejections" in self.read and "rejections" not in self.unread
        return self.reasons if whole and not self.too_many_reasons else None

    def problems(self, manifest: dict[str, Any]) -> Iterator[Problem]:
        if self.too_many_reasons:
            yield Problem("rejections", f"over {_MAX_REASONS} stage/reason pairs, more than any run writes; not "
                                        "compared with stats.json")
        if not self.reference:
            return
        against = f"(against {self.reference})"
        # Whether every kept photo and every row is known: else a missing shard's photos would be reported again.
        whole = self.reference not in self.unread
        if self.rejected:
            yield Problem("rejections", f"{len(self.rejected)} kept photos also rejected by "
                                        f"{', '.join(sorted(self.stages))}, which see each photo once {against}, "
                                        f"e.g. {_least(self.rejected)}")
        if "ledger" in self.read:
            if self.decided_otherwise:
                yield Problem("ledger", f"{len(self.decided_otherwise)} kept photos decided otherwise than kept "
                                        f"{against}, e.g. {_least(self.decided_otherwise)}")
            if self.decided_twice:
                yield Problem("ledger", f"{len(self.decided_twice)} kept photos in more than one row {against}, "
                                        f"e.g. {_least(self.decided_twice)}")
            missing = _canonical(self.kept.keys() - self.decided) if whole and "ledger" not in self.unread else set()
            if missing:
                yield Problem("ledger", f"{len(missing)} kept photos not in the ledger {against}, e.g. "
                                        f"{_least(missing)}")
        if "near_dup_index" in self.read:
            options = manifest.get("options")
            # A run adds a previous index's rows to its own only with --previous_index and no --carry_over (build.py)
            exact = isinstance(options, dict) and not (options.get("previous_index") and not options.get("carry_over"))
            missing = self.kept.keys() - self.indexed if whole and "near_dup_index" not in self.unread else set()
            if missing:
                yield Problem("near_dup_index", f"{len(missing)} kept photos not in the near-duplicate index "
                                                f"{against}, e.g. {_least(missing)}")
            if exact and self.indexed_twice:
                yield Problem("near_dup_index", f"{len(self.indexed_twice)} kept photos in more than one row "
                                                f"{against}, e.g. {_least(self.indexed_twice)}")
            if exact and whole and self.strangers.count:
                yield Problem("near_dup_index", f"{self.strangers.count} rows of photos the release does not hold "
                                                f"{against}, e.g. {', '.join(self.strangers.least)}")


def _text(batch: pa.RecordBatch, name: str) -> pa.Array:
    """A column as text, as a run writes it (a column of another type that text cannot hold is refused: ArrowException,
    the file unreadable)."""
    column = batch.column(name)
    return column if pa.types.is_string(column.type) else column.cast(pa.string())


def _least(ids: set[str]) -> str:
    return ", ".join(heapq.nsmallest(3, ids))


def _canonical(ids: set[str]) -> set[str]:
    """The ids in their one spelling: the only ones a ledger records (stages/ledger.py)."""
    def canonical(photo_id: str) -> bool:
        try:
            return canonical_photo_id(photo_id) == photo_id
        except BadPhotoId:
            return False

    return {photo_id for photo_id in ids if canonical(photo_id)}


def _printable(text: str) -> str:
    """`text` with each unprintable character (control, line or paragraph separator, bidi control) written as
    Python writes it in a string literal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _shown(path: str) -> str:
    """A path as printed on a problem's line: Python's quoting when it holds a newline or another
    unprintable character, so a crafted file name cannot forge a line of the report."""
    return path if path.isprintable() else repr(path)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _load_manifest(path: str) -> tuple[dict[str, Any] | None, str]:
    """The manifest as a dict, or None and why not."""
    try:
        manifest = json.loads(read_bytes(path).decode("utf-8"))
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
        wrong.append(f'"format" must be "{_run_format(entry["path"])}" for {_shown(entry["path"])}, as a run writes it')
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
    accounts: _Accounts | None = None  # a rejections, ledger or index file's
    head: bytes | None = None  # stats.json, the dataset card's first bytes (`_CHECKED_LAST`)
    larger: bool = False  # stats.json larger than `_MAX_STATS`
    error: str = ""  # why its content could not be read


# Parquet files whose rows are counted (from their footer), and the columns read of those whose rows are checked.
_TABLE_COLUMNS = {"rejections": ("photo_id", "stage", "reason"), "ledger": ("photo_id", "decision"),
                  "near_dup_index": ("photo_id",), "review": ()}


def _read(fmt: str, reader: HashingReader, size: int, accounts: _Accounts) -> _Found:
    """A listed file's content, read through `reader` as a stream (its size and sha256 are `reader.finish()`'s)."""
    found = _Found()
    try:
        if fmt in _PHOTO_FORMATS:
            found.records = record_ids(fmt, reader, size)
            found.count = len(found.records[0]) if fmt != "attribution" else None  # type: ignore[index]
        elif fmt in _TABLE_COLUMNS:
            parquet = _parquet_file(reader)
            found.count = parquet.metadata.num_rows
            columns = _TABLE_COLUMNS[fmt]
            if columns:
                found.accounts = accounts.for_a_file()
                add = getattr(found.accounts, "index" if fmt == "near_dup_index" else fmt)
                for batch in parquet.iter_batches(batch_size=_TABLE_ROWS, columns=list(columns), use_threads=False):
                    add(batch)
        elif fmt in _CHECKED_LAST:
            limit = _MAX_STATS if fmt == "stats" else _CARD_HEAD
            found.head = _read_up_to(reader, limit + (fmt == "stats"))
            found.larger = len(found.head) > limit and fmt == "stats"
    except (ValueError, TypeError, OSError, EOFError, tarfile.TarError, csv.Error, KeyError, pa.ArrowException) as err:
        found.error = _one_line(err)  # TypeError: a column of a type no run writes (a list where an image goes)
    return found


def _size_and_sha256(path: str) -> tuple[int, str]:
    """A file's size and sha256, read as a stream (`_HASH_CHUNK` at a time)."""
    with open_reader(path) as handle:
        reader = HashingReader(handle)
        while reader.read(_HASH_CHUNK):
            pass
        return reader.finish()


def _check_file(release: str, entry: dict[str, Any], ids: dict[str, Counter[str]], seen: _Seen,
                accounts: _Accounts) -> Iterator[Problem]:
    """One listed file against its entry: there, inside the release, its size, hash and records; the photo ids of a
    dataset file are added to `ids` (by format), their facts to `seen`, what a rejections, ledger or index file says
    of the kept photos to `accounts`. Read as a stream twice: hashed, then parsed only if its size and hash are the
    manifest's (and hashed again, so that what was parsed is what matched); a listed file not read so puts its format
    in `accounts.unread`."""
    fmt = entry.get("format", "")
    if (yield from _file_problems(release, entry, ids, seen, accounts)):
        accounts.read.add(fmt)
    else:
        accounts.unread.add(fmt)


def _file_problems(release: str, entry: dict[str, Any], ids: dict[str, Counter[str]], seen: _Seen,
                   accounts: _Accounts) -> Iterator[Problem]:
    """`_check_file`'s problems; returns whether the file was read and was the manifest's."""
    relative, fmt = entry["path"], entry.get("format", "")
    if not RUN_PATH.fullmatch(relative):
        yield Problem(_shown(relative), "not a plain relative path inside the release; not read")
        return False
    path = FileSystems.join(release, relative)
    if not FileSystems.exists(path):
        yield Problem(relative, "missing")
        return False
    if _leaves_release(release, path):
        yield Problem(relative, "a link that leads outside the release; not read")
        return False
    size, kind = size_and_kind(path)
    if kind:
        yield Problem(relative, f"{kind}, not a regular file; not read")  # a FIFO would block the read for ever
        return False
    if size is not None and size != entry["bytes"]:
        yield Problem(relative, f"{size} bytes, manifest says {entry['bytes']}; not read")
        return False
    try:
        size, sha256 = _size_and_sha256(path)
        if size != entry["bytes"] or sha256 != entry["sha256"]:
            if size != entry["bytes"]:
                yield Problem(relative, f"{size} bytes, manifest says {entry['bytes']}")
            if sha256 != entry["sha256"]:
                yield Problem(relative, "sha256 differs from the manifest")
            return False
        # Parsed only once its bytes are the manifest's: a file changed and not resealed (a crafted tar header, a
        # Parquet page inflating to gigabytes) is the one line above, never a parser's work. Hashed again while
        # parsed, so that what is parsed is what was hashed.
        with open_reader(path) as handle:
            reader = HashingReader(handle)
            found = _read(fmt, reader, entry["bytes"], accounts)
            if reader.finish() != (size, sha256):
                yield Problem(relative, "changed while it was being read")
                return False
    except OSError as err:
        yield Problem(relative, f"unreadable: {_one_line(err)}")
        return False
    if found.larger:
        yield Problem(relative, f"over {_MAX_STATS} bytes, more than any run writes; not read")
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
        ids.setdefault(fmt, Counter()).update(photo_ids)
        seen.add(fmt, photo_ids, facts)
        if odd:
            yield Problem(relative, f"{len(odd)} records not as a run writes them (an image that does not hash to "
                                    f"the sha256 beside it, a stray or unpaired member), e.g. "
                                    f"{', '.join(_shown(name) for name in sorted(odd)[:3])}")
    if found.count is not None and "records" in entry and found.count != entry["records"]:
        yield Problem(relative, f"{found.count} records, manifest says {entry['records']}")
    return True


def _unlisted(release: str, listed: set[str], published: bool) -> Iterator[Problem]:
    """Every file in the release's folder (at any depth) that the manifest does not list, except what a
    run in progress or a killed one leaves beside a dataset and the next run removes: the lock (and its
    temporary), staging folders. They are no part of the dataset, which is intact beside them. Not in a
    published release: no run writes there (one is refused before it takes the lock), so such files were
    put there otherwise, and a staging folder holding a publish plan would be carried out by a run."""
    prefix, known = FileSystems.join(release, ""), listed | UNLISTED_ALLOWED
    for found in _everything_under(release):
        relative = found[len(prefix):] if found.startswith(prefix) else found
        if not relative or relative.endswith("/") or relative in known or (not published and _run_leftover(relative)):
            continue
        yield Problem(_shown(relative), "not listed in the manifest")


def _everything_under(release: str) -> list[str]:
    """Every file below the release; locally also every link to a folder (a glob does not enter one, and
    what it holds would go unseen) and anything that is no regular file."""
    if FileSystems.get_scheme(release) is not None:
        return matching(FileSystems.join(release, "**"))
    found = []
    for folder, folders, files in os.walk(release):
        found += [os.path.join(folder, name) for name in files]
        found += [os.path.join(folder, name) for name in folders if os.path.islink(os.path.join(folder, name))]
    return sorted(path.replace(os.sep, "/") for path in found)


def _run_leftover(relative: str) -> bool:
    return relative.startswith(f"{STAGING}/") or relative == LOCK or (
        relative.startswith(LOCK_TEMPORARY) and "/" not in relative)


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
        for index in sorted(set(range(total)) - indices):
            yield Problem(posixpath.join(folder, shard_name(prefix, index, total, extension)),
                          f"shard {index} of {total} is not listed in the manifest")
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
    try:
        stats = json.loads(data.decode("utf-8"))
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
    between versions, and a release written by an earlier one must still verify."""
    written = {entry.get("format") for entry in entries}
    expected = card_text(written, "near_dup_index" in written)
    front = expected[:expected.index("\n---\n") + 5]
    if not data.startswith(front.encode("utf-8")):
        yield Problem(path, "its front matter (configurations, licence) is not what a run writes for these files")


_CHECKED_LAST = frozenset({"stats", "dataset_card"})


def _unaccounted(manifest: dict[str, Any]) -> Iterator[Problem]:
    """Every input row ends kept or rejected: a run whose counts do not add up publishes nothing (commands/run.py's
    `refusal`), so totals that do not are not a run's."""
    totals = manifest.get("totals") or {}
    if all(key in totals for key in ("input_rows", "kept", "rejected")) and \
            totals["input_rows"] != totals["kept"] + totals["rejected"]:
        yield Problem(MANIFEST, f'"totals": input_rows {totals["input_rows"]} are not kept {totals["kept"]} + '
                                f'rejected {totals["rejected"]}, as every published run\'s are')


def verify(release: str) -> Iterator[Problem]:
    """Every problem of the release in RELEASE (a local folder or gs://), one at a time; none for an intact one.
    The dataset's files are read first, then the others: the rejections, the ledger and the near-duplicate index are
    checked against the kept photos as each is read (`_Accounts`)."""
    manifest_path = FileSystems.join(release, MANIFEST)
    if not FileSystems.exists(manifest_path):
        yield Problem(manifest_path, "no manifest.json")
        return
    manifest, why = _load_manifest(manifest_path)
    if manifest is None:
        yield Problem(MANIFEST, why)
        return
    entries, listed = [], set()
    for index, entry in enumerate(manifest["files"]):
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            if entry["path"] in listed:
                yield Problem(_shown(entry["path"]), "listed more than once in the manifest")
                continue
            listed.add(entry["path"])
        wrong = _entry_problems(index, entry)
        yield from (Problem(MANIFEST, message) for message in wrong)
        if not wrong:
            entries.append(entry)
    ids: dict[str, Counter[str]] = {}
    seen, accounts = _Seen(), _Accounts()
    dataset = [entry for entry in entries if entry.get("format") in _PHOTO_FORMATS]
    for entry in dataset:
        yield from _check_file(release, entry, ids, seen, accounts)
    reference = _reference(ids)
    accounts.kept, accounts.reference = ids.get(reference, {}), reference
    for entry in entries:
        if entry.get("format") not in _PHOTO_FORMATS:
            yield from _check_file(release, entry, ids, seen, accounts)
    yield from _id_problems(ids)
    yield from seen.problems()
    yield from accounts.problems(manifest)
    yield from _unlisted(release, listed, published=bool(manifest.get("release")))
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
