"""What each published file format holds, read as a stream (`verify`'s readers): a WebDataset tar member by member,
a TFRecord file record by record (both CRCs checked), ATTRIBUTION.csv line by line, a Parquet shard a few rows at a
time. Each gives its photo ids, the records not as a run writes them, and per photo the digest of its image and of its
credit, so that `verify` compares the formats with each other without holding any of them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Self

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io.attribution import ATTRIBUTION_COLUMNS, credit
from pipeline.io.bounded_lines import BoundedRecordLines
from pipeline.io.files import HashingReader
from pipeline.io.formats import decode_example, image_bytes, masked_crc
from pipeline.io.json_keys import each_key_once
from pipeline.io.names import shows_something
from pipeline.io.parquet_footer import check_footer
from pipeline.io.published_text import published_text
from pipeline.io.sinks import CONTROLS, csv_text
from pipeline.io.stored_jpeg import StoredJpegCheck, stored_jpeg_problem
from pipeline.release.id_sets import IdList
from pipeline.sources.parquet_pages import Pages, TooLarge, check_footer_rows, check_inflation, check_page_rows
from pipeline.sources.row_bound import ROW_FLOOR, ROWS_PER_BYTE, row_limit

# How much of a file is read at once where a reader chooses (a tar's `.jpg` member, a Parquet column's buffer), and
# how many rows a batch of a Parquet dataset shard (images) holds.
_CHUNK = 1 << 20
_IMAGE_ROWS = 8
# The least a dataset shard's row takes in its file: its JPEG alone is more (incompressible, never twice in a run's
# shards), so a shard of more rows holds rows no run writes, each of which verify keeps ~100 bytes of (its id, digests).
_IMAGE_ROW_BYTES = 128
# What a Parquet page may decompress to (`bounded_batches`): images and ids barely compress, a page of ids or reasons
# at most ~1 MiB as pyarrow writes it; and what rows copying a dictionary's entries may take.
_PAGE_RATIO = 8
_PAGE_FLOOR = 64 << 20
_DICTIONARY_ROWS_BYTES = 256 << 20
# What a row group's columns read may decompress to in all: a page each within `_PAGE_FLOOR` is no bound on a batch
# of rows, each naming its own page.
_GROUP_FLOOR = 256 << 20  # or `_PAGE_RATIO` times the file's size

Stream = BinaryIO | HashingReader  # verify reads files as `HashingReader`s
Source = bytes | Stream  # a file's bytes, or a stream of them


def _stream(source: Source) -> Stream:
    return io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source


def read_up_to(stream: Stream, size: int, left: int | None = None) -> bytes:
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
    while header := read_up_to(stream, 12):
        length = int.from_bytes(header[:8], "little")
        framed = len(header) == 12 and header[8:] == masked_crc(header[:8]).to_bytes(4, "little")
        offset += len(header)
        if framed and left is not None and length + 4 > left - offset:  # read, it was the rest of the file at once
            raise ValueError(f"record {count} claims {length:,} bytes, past the end of the file")
        record = read_up_to(stream, length, None if left is None else left - offset) if framed else b""
        crc = read_up_to(stream, 4) if len(record) == length else b""
        if not framed or len(crc) != 4 or crc != masked_crc(record).to_bytes(4, "little"):
            raise ValueError(f"record {count} has a bad length or CRC")
        offset += length + 4
        yield record
        del record  # not held while the next one is read
        count += 1


# Formats whose records are the dataset's photos, one each: the same ids in each, none twice.
PHOTO_FORMATS = ("webdataset", "parquet", "tfrecord", "attribution")


# What verify holds of a file's records to compare each with the same photo's record in another format, `DIGEST`
# bytes a record, one after another in the order of its ids: their images' sha256 (None where the format holds no
# image), and digests of their credits (creator, title, page, licence) as ATTRIBUTION.csv states them: one a row of
# ATTRIBUTION.csv, `CREDIT_FORMS` a shard's record (`_record_credit`).
Facts = tuple[bytes | None, bytes]
Records = tuple[Sequence[str], list[str], Facts]  # ATTRIBUTION.csv's ids an `IdList`: a release's at once
DIGEST = 16
# The credits an ATTRIBUTION.csv row may hold for a shard's record: the one this version writes, and the ones earlier
# versions wrote where they differ (the same where they do not): a table's row without a creator link, then linked
# beside a blank name (`_earlier_credits`).
CREDIT_FORMS = 3


def credit_forms(fmt: str) -> int:
    """How many credit digests a record of `fmt` gives (`Facts`)."""
    return 1 if fmt == "attribution" else CREDIT_FORMS


_CREDIT_FIELDS = ("owner_name", "owner_nsid", "title", "page_url", "license_name", "license_url")


def _credit_digest(fields: list[Any]) -> bytes:
    """The digest of a credit as ATTRIBUTION.csv gives it back (`_credit_text`)."""
    return _digest(_credit_text(fields))


def _credit_text(fields: list[Any]) -> list[str]:
    """A credit's cells as ATTRIBUTION.csv gives them back: control characters U+FFFD, as `csv_cell` writes them,
    each cell as `published_text` leaves it (as `credit` does; a file an earlier version wrote holds what it drops:
    bidi formatting, tag characters, marks past the bound), and a creator that shows nothing read as none (a file an
    earlier version wrote holds a blank name as it came, a name of control characters as U+FFFD)."""
    text = [published_text(CONTROLS.sub("\ufffd", value if isinstance(value, str) else
                                        "" if value is None else str(value))) for value in fields]
    if len(text) == len(_CREDIT_FIELDS) and not shows_something(text[0].replace("\ufffd", "")):
        text[0] = ""
    return text


def _digest(text: list[str]) -> bytes:
    return hashlib.blake2b(json.dumps(text).encode(), digest_size=DIGEST).digest()


def _record_credit(record: dict[str, Any], names: tuple[str, ...] = _CREDIT_FIELDS) -> bytes:
    """The `CREDIT_FORMS` credit digests of a shard's record, its fields under `names` (in `_CREDIT_FIELDS`' order):
    the credit `credit` writes, then the ones earlier versions wrote for it, which a release's ATTRIBUTION.csv may
    hold instead (`_earlier_credits`). Each form is what that version wrote of this very record, so that a cell
    removed from the file is told from a credit an earlier version wrote: read from ATTRIBUTION.csv alone, a row
    with an owner id whose page names the same account read as a table's row whose link an earlier version left
    out, and a table's row crediting an account id by name as a blank name credited by its account."""
    texts = [value.decode("utf-8", "replace") if isinstance(value, bytes) else "" if value is None else str(value)
             for value in (record.get(name) for name in names)]
    written = _credit_text(list(credit(*texts)))  # its cells normalised once: each earlier form is made of them
    forms = [tuple(form) for form in (written, *_earlier_credits(written, texts))]
    digests = {form: _digest(list(form)) for form in dict.fromkeys(forms)}  # most records: one credit, hashed once
    return b"".join(digests[form] for form in forms)


def _earlier_credits(written: list[str], texts: list[str]) -> tuple[list[str], list[str]]:
    """The credits earlier versions wrote of a record whose credit this version writes as `written`: a name that
    shows nothing, credited by the account's id now, was written as it came (`owner_name or owner_nsid`: an empty
    name was credited by the owner id in every version, so it is no blank one), and a table's row (no owner id) was
    first given no creator link, then the link this version gives it beside that name (before the blank name was
    credited by the linked account too). A TFRecord's `creator` is read as a Parquet row's name: where it names an
    account, ATTRIBUTION.csv named it too in every version that wrote it so (a blank name became the owner id there
    before it did in the TFRecord; a table's row's blank name was credited by its page's account in both at once),
    and a table whose owner column is an account id was credited by that name, without a link before; an earlier
    TFRecord held an empty name as it came."""
    creator, nsid = texts[0], texts[1]
    blank = not shows_something(creator) and not (creator == "" and nsid)
    named = "" if blank else written[0]
    return [named, written[1] if nsid else "", *written[2:]], [named, *written[1:]]


def _metadata(payload: bytes) -> dict[str, Any]:
    try:  # a key given twice is none of a run's (Python keeps the last, other readers the first)
        metadata = json.loads(payload, object_pairs_hook=each_key_once)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested deeper than Python recurses, a key twice
        return {}
    return metadata if isinstance(metadata, dict) else {}


@dataclass
class _Sample:
    """What verify keeps of a tar sample once its members are read: its image's sha256, and of its metadata
    whether it names the sample's photo, the sha256 it gives and the credit digest (never the members' bytes)."""

    image: bytes | None = None
    as_stored: bool = False  # whether the image is a JPEG the image stage writes (`stored_jpeg`)
    metadata: tuple[bool, str | None, bytes] | None = None


# Headers that describe the next member (pax, GNU long names, GNU sparse maps): a run writes plain USTAR members, and
# Python's tarfile (3.11.7 here) parses a pax header with a search that is quadratic in its size: 80 kB of digits took
# 6 s of CPU, 1 MB a quarter of an hour, and a shard may be gigabytes.
_EXTENDED_HEADERS = frozenset({tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                               tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_SPARSE})


class _RunMember(tarfile.TarInfo):
    """A member header as a run writes it: an extended header is the file unreadable, refused from its type before
    tarfile reads what it holds."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        member = super().frombuf(buf, encoding, errors)
        if member.type in _EXTENDED_HEADERS:
            raise tarfile.ReadError(f"a pax or GNU extended header (type {member.type.decode('latin-1')!r}), which "
                                    "a run's USTAR tar never holds")
        return member


# Longer than any sample's metadata a run writes (its text fields at most 64 KiB each from a source); a `.json`
# member is parsed whole, and JSON of many short keys takes ~12 times its bytes as Python objects.
MAX_METADATA_MEMBER = 4 << 20


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
    with tarfile.open(fileobj=_stream(source), mode="r|", tarinfo=_RunMember) as tar:
        for member in tar:
            if end is not None and member.offset_data + member.size > end:
                raise tarfile.ReadError("a member runs past the end of the file")
            key, dot, extension = member.name.partition(".")
            sample = samples.get(key)
            if not dot or extension not in ("jpg", "json") or not member.isfile() or (
                    sample is not None and getattr(sample, "image" if extension == "jpg" else "metadata") is not None
            ) or (extension == "json" and member.size > MAX_METADATA_MEMBER):
                odd.append(member.name)
                continue
            handle = tar.extractfile(member)
            if handle is None:  # not for a regular file; as for any other member that is none
                odd.append(member.name)
                continue
            sample = samples.setdefault(key, _Sample())
            if extension == "jpg":
                digest, stored = hashlib.sha256(), StoredJpegCheck()
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    stored.update(chunk)
                sample.image = digest.digest()
                sample.as_stored = stored.problem() is None
            else:
                metadata = _metadata(handle.read())
                sha256 = metadata.get("sha256")
                sample.metadata = (str(metadata.get("photo_id")) == key, sha256 if isinstance(sha256, str) else None,
                                   _record_credit(metadata))
    unnamed = _record_credit({})  # the credit of a sample without metadata, or metadata that is no JSON object
    for key, sample in samples.items():
        if not (sample.metadata is not None and sample.image is not None and sample.metadata[0]
                and sample.metadata[1] == sample.image.hex() and sample.as_stored):
            odd.append(key)
    photos = [key for key, sample in samples.items() if sample.image is not None]
    return photos, odd, (b"".join(samples[key].image[:DIGEST] for key in photos),  # type: ignore[index]
                         b"".join(samples[key].metadata[2] if samples[key].metadata else unnamed  # type: ignore[index]
                                  for key in photos))


def parquet_file(source: Source, bytes_per_row: int | None = None) -> pq.ParquetFile:
    """A Parquet file read a page at a time where it asks for its columns (not a row group's chunks at once, as
    pre-buffering reads them), its footer first; `TooLarge` for a footer counting more rows than the file's size
    allows (`row_bound.row_limit`: 4 a byte, 100,000 in any file). A run's rows cost bytes (an image, an id), but a
    dictionary-encoded column repeats one value in a few bytes for any number of rows: a resealed shard of kilobytes
    gave millions of rows, each hashed, digested and its id kept (tens of bytes each) however small the file.
    `bytes_per_row`: the least a row of this file takes where it holds more than ids (a dataset shard's, its image).
    FooterTooLarge for a footer over `parquet_footer.MAX_FOOTER_BYTES`, from the length the file states."""
    stream = _stream(source)
    check_footer(stream)  # pyarrow parses a footer whole, at ~15 times its size, before anything below can refuse it
    parquet = pq.ParquetFile(stream, pre_buffer=False, buffer_size=_CHUNK)
    metadata, size = parquet.metadata, stream.seek(0, io.SEEK_END)
    rows = max(metadata.num_rows, sum(metadata.row_group(group).num_rows for group in range(metadata.num_row_groups)))
    limit, rule = row_limit(size), f"{ROWS_PER_BYTE} a byte"
    if bytes_per_row:
        limit, rule = max(ROW_FLOOR, size // bytes_per_row), f"one per {bytes_per_row} bytes"
    if rows > limit:
        raise TooLarge(f"its footer counts {rows:,} rows, over the {limit:,} a file of {size:,} bytes may hold "
                       f"({rule}, {ROW_FLOOR:,} in any file)")
    return parquet


def bounded_batches(source: Source, columns: list[str], rows: int,
                    parquet: pq.ParquetFile | None = None) -> Iterator[pa.RecordBatch]:
    """The batches of `columns` of a Parquet file (`parquet`, when the caller opened it on `source` already), at
    most `rows` rows each, in memory bounded by the file's own size: each row group's pages are checked before it is
    read (`parquet_pages.check_inflation`: no page may decompress to more than `_PAGE_RATIO` times its stored size
    and `_PAGE_FLOOR`, nor the group's columns in all to more than `_PAGE_RATIO` times the file and `_GROUP_FLOOR`),
    each of its columns read of one value a row must hold as many values as the rows it states, as the footer and
    each page header count them (`RowsMismatch`: pyarrow reads the stated rows and no more, so a footer understating
    them hid the others from every reader, verify and the next refresh alike),
    and a row group with dictionary pages is read in batches few enough that rows each naming the largest entry of
    every dictionary stay within `_DICTIONARY_ROWS_BYTES` (pyarrow copies a dictionary's value into each row naming
    it). Runs write JPEG, WebP and ids, which barely compress: a resealed shard holding a page of 1 GiB of
    zstd-compressed zeros took 4.3 GB."""
    stream = _stream(source)
    parquet = parquet or parquet_file(stream)
    metadata = parquet.metadata
    file_size = stream.seek(0, io.SEEK_END)
    paths = [metadata.schema.column(leaf).path for leaf in range(metadata.num_columns)]
    # A column's leaves: itself, or the fields of a struct (a dataset shard's `image` is struct<bytes, path>).
    leaves = [leaf for leaf, path in enumerate(paths) if path in columns or path.split(".", 1)[0] in columns]
    for group in range(metadata.num_row_groups):
        pages = _checked_group(stream, metadata, group, leaves, file_size)
        dictionaries = sum(chunk.dictionary for chunk in pages)  # a row names an entry of each
        batch_rows = max(1, min(rows, _DICTIONARY_ROWS_BYTES // max(dictionaries, 1)))
        yield from parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns,
                                        use_threads=False)


def _checked_group(stream: Stream, metadata: pq.FileMetaData, group: int, leaves: list[int],
                   file_size: int) -> list[Pages]:
    """The `Pages` of these leaf columns of a row group, checked as `bounded_batches` checks them before reading."""
    pages = check_inflation(stream, metadata, group, leaves, _PAGE_FLOOR, _PAGE_RATIO, file_size)
    # The leaves of one value a row (a list's values are not rows), whose counts must be their row group's rows.
    flat = [leaf for leaf in leaves if metadata.schema.column(leaf).max_repetition_level == 0]
    counted, paths = dict(zip(leaves, pages, strict=True)), [metadata.schema.column(leaf).path for leaf in flat]
    check_footer_rows(metadata, group, list(zip(paths, flat, strict=True)))
    check_page_rows(metadata, group, paths, [counted[leaf].values for leaf in flat])
    grown, allowed = sum(chunk.total for chunk in pages), max(_GROUP_FLOOR, _PAGE_RATIO * file_size)
    if grown > allowed:
        raise TooLarge(f"row group {group + 1}: its columns read would decompress to {grown:,} bytes, over the "
                       f"{allowed:,} allowed for a file of {file_size:,}")
    return pages


def check_row_groups(handle: BinaryIO, metadata: pq.FileMetaData) -> None:
    """Every row group of the Parquet file behind `handle` (whose footer is `metadata`), in all its columns, checked
    as `bounded_batches` checks it before reading (`TooLarge`, `RowsMismatch`, `BadPageHeader`, `BadFooter`), from
    its footer and page headers: nothing is decompressed. For a file a job reads with pyarrow alone (an earlier
    release's ledger or index)."""
    file_size = handle.seek(0, io.SEEK_END)
    for group in range(metadata.num_row_groups):
        _checked_group(handle, metadata, group, list(range(metadata.num_columns)), file_size)


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
    stream = _stream(source)
    for batch in bounded_batches(stream, columns, _IMAGE_ROWS, parquet_file(stream, _IMAGE_ROW_BYTES)):
        column = batch.column("photo_id")
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            # read as text, int64 ids matched the other formats' and passed: a release no run writes
            raise pa.ArrowTypeError(f"column photo_id is {column.type}, not text as a run writes it")
        found = [str(value) for value in column.to_pylist()]
        encoded = [image_bytes(image) for image in batch.column("image").to_pylist()]
        digests = [hashlib.sha256(image).digest() for image in encoded]
        ids += found
        odd += [photo_id for photo_id, image, digest, sha256 in zip(found, encoded, digests,
                                                                    batch.column("sha256").to_pylist(), strict=True)
                if digest.hex() != sha256 or stored_jpeg_problem(image) is not None]
        images += b"".join(digest[:DIGEST] for digest in digests)
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
        images += digest[:DIGEST]
        credits += credit_digest
        if not matches:
            odd.append(photo_id)
    return ids, odd, (bytes(images), bytes(credits))


def _tfrecord_facts(record: bytes) -> tuple[str, bytes, bytes, bool]:
    """(photo id, image sha256, credit digest, whether the image hashes to its image/sha256 and is a JPEG the image
    stage writes) of an Example."""
    example = decode_example(record)
    raw_id = example.get("image/id", b"")
    photo_id = raw_id.decode("utf-8") if isinstance(raw_id, bytes) else str(raw_id)
    image, sha256 = example.get("image/encoded"), example.get("image/sha256")
    digest = hashlib.sha256(image if isinstance(image, bytes) else b"").digest()
    matches = (isinstance(image, bytes) and isinstance(sha256, bytes) and digest.hex() == sha256.decode()
               and stored_jpeg_problem(image) is None)
    return photo_id, digest, _record_credit(example, _TFRECORD_CREDIT), matches


_TFRECORD_CREDIT = ("creator", "creator_nsid", "title", "page_url", "license", "license_url")


# Longer than any record a run writes (its longest fields, each at most 64 KiB from a source, quotes doubled, make a
# few hundred kB); bounds a forged one, which the csv reader otherwise splits at each of its commas into a list of
# 8 bytes a comma (a 1 GB line of commas: 8 GB).
MAX_ATTRIBUTION_LINE = 4 << 20
# The least a row of a run's ATTRIBUTION.csv takes on average: a photo from a table with no owner, title or page still
# has its licence's name and URL (53 bytes), six commas and a line end: about 60 bytes and its id, over 64 from id
# 10,000 (the 9,999 ids below it are within the floor of ROW_FLOOR rows). Rows from Flickr or YFCC are over 120.
_ATTRIBUTION_ROW_BYTES = 64


def _attribution_records(source: Source, size: int | None = None) -> Records:
    """(ids, an `IdList`; [], the facts of each row: no image, the digest of its credit as written). Decoded as it is
    read, a line at a time: decoding the whole file first held it again as text, at up to 4 bytes a character (5-8
    times the file: ~10 GB for a 1.4M-photo release's ATTRIBUTION.csv). A header other than the run's is the file's
    first odd record. More rows than one per `_ATTRIBUTION_ROW_BYTES` of its `size` (`ROW_FLOOR` in any file) is the
    file unreadable: each row's id and digest are kept, 24 bytes (an id that is no number's one spelling, ~80), and a
    row of `10,,,,,,` takes 9."""
    ids, odd, credits = IdList(), [], bytearray()
    stream = _stream(source)
    if size is None:
        size = stream.seek(0, io.SEEK_END)
        stream.seek(0)
    most = max(ROW_FLOOR, size // _ATTRIBUTION_ROW_BYTES)
    # Ignored: typeshed asks of the wrapped stream a `name`, which a HashingReader lacks; TextIOWrapper reads it
    # only when asked for its own
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")  # type: ignore[type-var]
    try:
        lines = BoundedRecordLines(text, MAX_ATTRIBUTION_LINE, lambda first, last: (
            f"a line or record over {MAX_ATTRIBUTION_LINE:,} characters, longer than any a run writes"))
        rows = csv.reader(lines)
        if tuple(next(rows, ())) != ATTRIBUTION_COLUMNS:
            odd.append("(header)")
        lines.next_record()
        for row in rows:
            lines.next_record()
            if len(ids) == most:
                raise ValueError(f"over {most:,} rows, more than a file of {size:,} bytes holds as a run writes it (a "
                                 f"row credits a photo in at least {_ATTRIBUTION_ROW_BYTES} bytes: its licence's name "
                                 "and URL, its id)")
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
        return _attribution_records(source, size)
    return None
