"""`pass-pipeline verify RELEASE`: re-check every file of a release against its manifest.json —
existence, byte size, sha256 — and, for dataset shards, that the record count inside matches (tar
members, Parquet rows, TFRecord records with their CRCs), and that the WebDataset, Parquet and ATTRIBUTION.csv
records hold each photo id once and the same ids, with the same credit (creator, title, page, licence) and, in the
formats holding images, the same image under each id; and that stats.json's counts are the manifest's totals and
add up as a run writes them, and the dataset card's front matter is what a run writes for the files listed. Works on
local paths and gs://.

The release must also hold nothing else: every file in its folder is listed (manifest.json, which
cannot list its own hash, excepted), every shard of a sharded set is listed, and the records of each
format add up to the manifest's totals, so a shard deleted together with its entry is found too.
The manifest itself is hostile input: a malformed one is a problem, never a traceback, and an
entry whose path would leave the release is never read."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.io.attribution import ATTRIBUTION_COLUMNS, BIDI_CONTROLS, credit
from pipeline.io.dataset_card import card_text
from pipeline.io.files import matching, read_bytes, size_and_kind
from pipeline.io.formats import WRITERS, decode_example, image_bytes, tfrecord_frame
from pipeline.io.layout import ATTRIBUTION, DATASET_CARD, FORMAT_FOLDERS, RUN_PATH, STAGING, STATS
from pipeline.io.lock import LOCK, LOCK_TEMPORARY
from pipeline.io.report import build_stats
from pipeline.io.sinks import CONTROLS, csv_text, shard_name

MANIFEST = "manifest.json"
# Files a release may hold without listing them: only the manifest, which cannot contain its own hash.
UNLISTED_ALLOWED = frozenset({MANIFEST})
_SHARD_NAME = re.compile(r"(?P<prefix>.+)-(?P<index>[0-9]{5})-of-(?P<total>[0-9]{5})\.(?P<extension>[A-Za-z0-9]+)")
# Which total of the manifest each format's records add up to (near_dup_index and review have none).
_TOTAL_OF_FORMAT = {**{name: "kept" for name in WRITERS}, "attribution": "kept", "rejections": "rejected"}


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


def tfrecords(data: bytes) -> Iterator[bytes]:
    """The records of a TFRecord file, checking both CRCs of each (re-framing must reproduce the bytes)."""
    count, offset = 0, 0
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 8], "little")
        record = data[offset + 12: offset + 12 + length]
        frame = tfrecord_frame(record)
        if data[offset: offset + len(frame)] != frame:
            raise ValueError(f"record {count} has a bad length or CRC")
        yield record
        offset += len(frame)
        count += 1


def record_count(fmt: str, data: bytes, ids: list[str]) -> int | None:
    """Records in a listed file: a tar's or TFRecord's from the ids `record_ids` read from it (the file was read
    whole once, its CRCs checked then: a second `.jpg` of one sample counts once, and is one of the odd members),
    a Parquet file's from its metadata; None for files that hold no records."""
    if fmt in ("webdataset", "tfrecord"):
        return len(ids)
    if fmt in ("parquet", "rejections", "near_dup_index", "review"):
        return pq.read_metadata(io.BytesIO(data)).num_rows
    return None


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
    bidi formatting dropped (as `credit` drops it; a file an earlier version wrote holds it)."""
    text = [BIDI_CONTROLS.sub("", CONTROLS.sub("\ufffd", value if isinstance(value, str) else
                                                "" if value is None else str(value))) for value in fields]
    return hashlib.blake2b(json.dumps(text).encode(), digest_size=_DIGEST).digest()


def _record_credit(record: dict[str, Any], names: tuple[str, ...] = _CREDIT_FIELDS) -> bytes:
    """The credit digest of a shard's record, its fields under `names` (in `_CREDIT_FIELDS`' order)."""
    texts = [value.decode("utf-8", "replace") if isinstance(value, bytes) else "" if value is None else str(value)
             for value in (record.get(name) for name in names)]
    return _credit_digest(list(credit(*texts)))


def _webdataset_records(data: bytes) -> Records:
    """(ids, ids of samples that are not what a run writes, the facts of each id): each member `<id>.jpg` or
    `<id>.json`, a sample both, its metadata naming the photo and the image's sha256. Counting `.jpg` members alone
    passed a tar holding an extra `9999999.json` or a JPEG other than the one its metadata describes."""
    members: dict[str, dict[str, bytes]] = {}
    odd: list[str] = []

    def _metadata(sample: dict[str, bytes]) -> dict[str, Any]:
        try:
            metadata = json.loads(sample.get("json", b"null"))
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested deeper than Python recurses
            return {}
        return metadata if isinstance(metadata, dict) else {}

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            key, dot, extension = member.name.partition(".")
            handle = tar.extractfile(member) if member.isfile() else None
            if not dot or extension not in ("jpg", "json") or handle is None or extension in members.get(key, {}):
                odd.append(member.name)
                continue
            members.setdefault(key, {})[extension] = handle.read()
    digests = {key: hashlib.sha256(sample["jpg"]).hexdigest() for key, sample in members.items() if "jpg" in sample}
    for key, sample in members.items():
        metadata = _metadata(sample)
        if not ("json" in sample and "jpg" in sample and str(metadata.get("photo_id")) == key
                and metadata.get("sha256") == digests[key]):
            odd.append(key)
    photos = [key for key, sample in members.items() if "jpg" in sample]
    return photos, odd, (b"".join(bytes.fromhex(digests[key])[:_DIGEST] for key in photos),
                         b"".join(_record_credit(_metadata(members[key])) for key in photos))


def _parquet_records(data: bytes) -> Records:
    """(ids, ids whose image bytes do not hash to their sha256 column, the facts of each id)."""
    table = pq.read_table(io.BytesIO(data), columns=["photo_id", "image", "sha256", *_CREDIT_FIELDS])
    ids = [str(value) for value in table.column("photo_id").to_pylist()]
    images = [hashlib.sha256(image_bytes(image)).digest() for image in table.column("image").to_pylist()]
    odd = [photo_id for photo_id, image, sha256 in zip(ids, images, table.column("sha256").to_pylist(), strict=True)
           if image.hex() != sha256]
    text = table.select(list(_CREDIT_FIELDS))  # as bytes: text that is no UTF-8 is a credit that differs, no crash
    text = text.cast(pa.schema([pa.field(f.name, pa.binary() if pa.types.is_string(f.type) else f.type)
                                for f in text.schema]))
    credits = b"".join(_record_credit(row) for row in text.to_pylist())
    return ids, odd, (b"".join(image[:_DIGEST] for image in images), credits)


def _tfrecord_records(data: bytes) -> Records:
    """(ids, ids whose encoded image does not hash to their image/sha256, the facts of each id)."""
    ids, odd, images, credits = [], [], bytearray(), bytearray()
    for record in tfrecords(data):
        example = decode_example(record)
        photo_id = example.get("image/id", b"")
        photo_id = photo_id.decode("utf-8") if isinstance(photo_id, bytes) else str(photo_id)
        ids.append(photo_id)
        image, sha256 = example.get("image/encoded"), example.get("image/sha256")
        digest = hashlib.sha256(image if isinstance(image, bytes) else b"").digest()
        images += digest[:_DIGEST]
        credits += _record_credit(example, _TFRECORD_CREDIT)
        if not isinstance(image, bytes) or not isinstance(sha256, bytes) or digest.hex() != sha256.decode():
            odd.append(photo_id)
    return ids, odd, (bytes(images), bytes(credits))


_TFRECORD_CREDIT = ("creator", "creator_nsid", "title", "page_url", "license", "license_url")


def _attribution_records(data: bytes) -> Records:
    """(ids, [], the facts of each row: no image, the digest of its credit as written). Decoded as it is read:
    decoding the whole file first held it again as text, at up to 4 bytes a character (5-8 times the file: ~10 GB for
    a 1.4M-photo release's ATTRIBUTION.csv). A header other than the run's is the file's first odd record."""
    ids, odd, credits = [], [], bytearray()
    rows = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""))
    if tuple(next(rows, ())) != ATTRIBUTION_COLUMNS:
        odd.append("(header)")
    for row in rows:
        ids.append(row[0] if row else "")
        whole = len(row) == len(ATTRIBUTION_COLUMNS)
        credits += _credit_digest([csv_text(cell) for cell in row[1:]] if whole else [str(row)])
    return ids, odd, (None, bytes(credits))


def record_ids(fmt: str, data: bytes) -> Records | None:
    """(the photo id of each record of a dataset file, the ids of records that are not what a run writes: an image
    that does not hash to the sha256 beside it, a stray tar member, the facts of each id to compare across formats);
    None for files that are not the dataset's."""
    if fmt == "webdataset":
        return _webdataset_records(data)
    if fmt == "parquet":
        return _parquet_records(data)
    if fmt == "tfrecord":
        return _tfrecord_records(data)
    if fmt == "attribution":
        return _attribution_records(data)
    return None


@dataclass
class _Seen:
    """Each photo's facts as the first format read that holds them gave them (its reference), and which photos of
    another format differ: a shard resealed with another image under a photo's id (its sha256 beside it changed to
    match) kept every id and every hash of its own format, and passed though its photo was not the one the other
    formats publish; so did an ATTRIBUTION.csv crediting a kept photo to another creator or licence. Only the
    reference's digests are held, `_DIGEST` bytes a photo; an id it lacks is reported by `_id_problems`."""

    # (path, bytes) of each listed file of a format checked against the others once all are read (`_CHECKED_LAST`)
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
_FORMAT_OF_FOLDER = {folder: folder for folder in (*FORMAT_FOLDERS, "rejections", "near_dup_index")}
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


def _check_file(release: str, entry: dict[str, Any], ids: dict[str, Counter[str]], seen: _Seen) -> Iterator[Problem]:
    """One listed file against its entry: there, inside the release, its size, hash and records; the photo ids of a
    dataset file are added to `ids` (by format), their facts to `seen`."""
    relative = entry["path"]
    if not RUN_PATH.fullmatch(relative):
        yield Problem(_shown(relative), "not a plain relative path inside the release; not read")
        return
    path = FileSystems.join(release, relative)
    if not FileSystems.exists(path):
        yield Problem(relative, "missing")
        return
    if _leaves_release(release, path):
        yield Problem(relative, "a link that leads outside the release; not read")
        return
    size, kind = size_and_kind(path)
    if kind:
        yield Problem(relative, f"{kind}, not a regular file; not read")  # a FIFO would block the read for ever
        return
    if size is not None and size != entry["bytes"]:
        yield Problem(relative, f"{size} bytes, manifest says {entry['bytes']}; not read")
        return
    try:
        data = read_bytes(path)
    except OSError as err:
        yield Problem(relative, f"unreadable: {_one_line(err)}")
        return
    if len(data) != entry["bytes"]:
        yield Problem(relative, f"{len(data)} bytes, manifest says {entry['bytes']}")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        yield Problem(relative, "sha256 differs from the manifest")
        return
    fmt = entry.get("format", "")
    if fmt in _CHECKED_LAST:
        seen.files.setdefault(fmt, []).append((relative, data))
    try:
        photo_ids = record_ids(fmt, data) if fmt in _PHOTO_FORMATS else None
        count = record_count(fmt, data, photo_ids[0] if photo_ids is not None else [])
    except (ValueError, OSError, EOFError, tarfile.TarError, csv.Error, KeyError, pa.ArrowException) as err:
        yield Problem(relative, f"unreadable: {_one_line(err)}")
        return
    if photo_ids is not None:
        found, odd, facts = photo_ids
        ids.setdefault(fmt, Counter()).update(found)
        seen.add(fmt, found, facts)
        if odd:
            yield Problem(relative, f"{len(odd)} records not as a run writes them (an image that does not hash to "
                                    f"the sha256 beside it, a stray or unpaired member), e.g. "
                                    f"{', '.join(_shown(name) for name in sorted(odd)[:3])}")
    if count is not None and "records" in entry and count != entry["records"]:
        yield Problem(relative, f"{count} records, manifest says {entry['records']}")


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


def _stats_problems(path: str, data: bytes, totals: dict[str, Any]) -> Iterator[Problem]:
    """stats.json against the manifest's totals, and its funnel and rejections by stage against each other as
    `build_stats` writes them: a resealed stats.json claiming 12 kept and 6 rejected (or a funnel losing a stage's
    rejections) passed, and the datasheet states its figures."""
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


def verify(release: str) -> Iterator[Problem]:
    manifest_path = FileSystems.join(release, MANIFEST)
    if not FileSystems.exists(manifest_path):
        yield Problem(manifest_path, "no manifest.json")
        return
    manifest, why = _load_manifest(manifest_path)
    if manifest is None:
        yield Problem(MANIFEST, why)
        return
    entries, listed = [], set()
    ids: dict[str, Counter[str]] = {}
    seen = _Seen()
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
            yield from _check_file(release, entry, ids, seen)
    yield from _id_problems(ids)
    yield from seen.problems()
    yield from _unlisted(release, listed, published=bool(manifest.get("release")))
    yield from _missing_shards([e for e in entries if RUN_PATH.fullmatch(e["path"])])
    totals_problem = _totals_problem(manifest)
    if totals_problem:
        yield Problem(MANIFEST, totals_problem)
    else:
        yield from _wrong_totals(manifest, entries)
        for path, data in seen.files.get("stats", []):
            yield from _stats_problems(path, data, manifest.get("totals", {}))
    for path, data in seen.files.get("dataset_card", []):
        yield from _card_problems(path, data, entries)
