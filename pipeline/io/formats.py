"""Encoders of the three dataset formats, written to any binary file handle, byte-for-byte
deterministic: records in a given order produce the same bytes on every run and machine.

- WebDataset: a POSIX tar of KEY.jpg + KEY.json per image, fixed mtime/owner/mode.
- Parquet: one row per image with the metadata columns and the JPEG bytes, laid out so that Hugging
  Face `datasets`, pandas and DuckDB read it as it is: no map columns (`scores` is a list of
  {detector, class, score}), and the image as HF's own Parquet exports store one,
  struct<bytes, path>, declared an `Image` feature in the schema's `huggingface` metadata.
- TFRecord: tf.train.Example records, framed with masked CRC32C like TensorFlow's writer;
  the Example protobuf is encoded here directly (a few fields), so no TensorFlow is needed.
"""

from __future__ import annotations

import io
import itertools
import json
import struct
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from typing import Any, BinaryIO, Protocol

import google_crc32c
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.io.flickr_pages import credited_owner
from pipeline.io.names import creator_name
from pipeline.records import Photo, Rejection

# ---------------------------------------------------------------------------------------------
# WebDataset
# ---------------------------------------------------------------------------------------------
_TAR_MTIME = 0  # a fixed timestamp: the archive must not depend on when it was written


def _tar_member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = _TAR_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(payload))


# ---------------------------------------------------------------------------------------------
# Detector scores, one representation in every format
# ---------------------------------------------------------------------------------------------
# A photo's scores are named "DETECTOR.CLASS" (DetectorSpec.score_name). They are stored as a list of
# {detector, class, score} rather than a map (which HF `datasets` cannot type) or a struct with one
# field per score name (whose schema would change with the detectors selected, differ between a
# release and its refresh, and be an empty struct, which Parquet cannot store, with detection off).
SCORE_ENTRY = pa.struct([("detector", pa.string()), ("class", pa.string()), ("score", pa.float64())])


def score_entries(scores: Iterable[tuple[str, float]]) -> list[dict[str, object]]:
    """[(name, score)] -> [{detector, class, score}], split at the first dot. A name with no detector
    part (no dot, or a leading one) keeps the whole name as its class and an empty detector, so
    `scores_from_entries` gives back exactly the names written."""
    entries = []
    for name, score in scores:
        detector, dot, cls = name.partition(".")
        if not (detector and dot):
            detector, cls = "", name
        entries.append({"detector": detector, "class": cls, "score": float(score)})
    return entries


def _score_name(entry: dict | tuple) -> tuple[str, float]:
    if isinstance(entry, tuple):  # (name, score): a map column, as releases before this layout stored it
        return str(entry[0]), float(entry[1])
    name = f"{entry['detector']}.{entry['class']}" if entry["detector"] else entry["class"]
    return name, float(entry["score"])


def scores_from_entries(entries: Iterable[dict | tuple] | None) -> tuple[tuple[str, float], ...]:
    """The inverse of `score_entries`, as `Photo.scores` holds them (sorted by name)."""
    return tuple(sorted(_score_name(entry) for entry in entries or ()))


def metadata_json(photo: Photo) -> bytes:
    metadata = photo.metadata()
    metadata["scores"] = score_entries(photo.scores)  # the Parquet column's shape, not a dict
    return json.dumps(metadata, sort_keys=True, ensure_ascii=False).encode("utf-8")


class RecordWriter(Protocol):
    """A file's records written one at a time (`add`), then ended (`close`): a shard's formats are written
    side by side from one read of each record (io/sinks.py). Each `write_*` function below is one of these
    run over an iterable."""

    def add(self, record: Any) -> None: ...

    def close(self) -> None: ...


def write_side_by_side(writers: Sequence[RecordWriter], records: Iterable[Any]) -> None:
    """Every record to every writer, in order, then each writer ended. When a record cannot be read or
    written, the writers are still ended (quietly) before the error goes on: left open, the tar and Parquet
    writers would end themselves later, into a file already closed. Their files are then incomplete: the
    caller must not publish them (io/files.atomic_file renames nothing when its block fails)."""
    try:
        for record in records:
            for writer in writers:
                writer.add(record)
    except BaseException:
        for writer in writers:
            with suppress(Exception):
                writer.close()
        raise
    for writer in writers:
        writer.close()


def write_all(writer: RecordWriter, records: Iterable[Any]) -> None:
    write_side_by_side([writer], records)


class WebDatasetWriter:
    def __init__(self, handle: BinaryIO) -> None:
        # Closed by close(): the writer outlives any one block (its records arrive one at a time).
        self._tar = tarfile.open(fileobj=handle, mode="w|", format=tarfile.USTAR_FORMAT)  # noqa: SIM115

    def add(self, photo: Photo) -> None:
        # Keys must not contain dots (WebDataset splits the extension at the first one).
        key = photo.photo_id
        _tar_member(self._tar, f"{key}.jpg", photo.image)
        _tar_member(self._tar, f"{key}.json", metadata_json(photo))

    def close(self) -> None:
        self._tar.close()


def write_webdataset(handle: BinaryIO, photos: Iterable[Photo]) -> None:
    write_all(WebDatasetWriter(handle), photos)


# ---------------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------------
# How HF `datasets` stores an image in Parquet: it decodes such a column to a PIL image when the
# schema's "huggingface" metadata declares it an Image feature (Features.from_arrow_schema).
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_HF_FEATURES = {"info": {"features": {"image": {"_type": "Image"}}}}

PARQUET_SCHEMA = pa.schema([
    ("photo_id", pa.string()),
    ("owner_nsid", pa.string()),
    ("owner_name", pa.string()),
    ("title", pa.string()),
    ("description", pa.string()),
    ("tags", pa.string()),
    ("license_name", pa.string()),
    ("license_url", pa.string()),
    ("license_source_text", pa.string()),
    ("license_source_url", pa.string()),
    ("page_url", pa.string()),
    ("download_url", pa.string()),
    ("fetched_url", pa.string()),
    ("date_taken", pa.string()),
    ("date_uploaded", pa.string()),
    ("source", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("original_width", pa.int32()),
    ("original_height", pa.int32()),
    ("original_format", pa.string()),
    ("sha256", pa.string()),
    ("download_sha256", pa.string()),
    ("phash", pa.string()),
    ("dhash", pa.string()),
    ("scores", pa.list_(SCORE_ENTRY)),
    # Everything else a later release needs to carry the image over unchanged without refetching.
    ("machine_tags", pa.string()),
    ("capture_device", pa.string()),
    ("server_id", pa.string()),
    ("farm_id", pa.string()),
    ("secret", pa.string()),
    ("secret_original", pa.string()),
    ("extension", pa.string()),
    ("first_release", pa.string()),
    ("image", IMAGE_TYPE),
], metadata={"huggingface": json.dumps(_HF_FEATURES, sort_keys=True)})
_ROW_GROUP = 512


def _parquet_row(photo: Photo) -> dict:
    row = {name: getattr(photo, name) for name in PARQUET_SCHEMA.names if name not in ("scores", "image")}
    row["scores"] = score_entries(photo.scores)
    row["image"] = {"bytes": photo.image, "path": f"{photo.photo_id}.jpg"}
    return row


def image_bytes(value: dict | bytes | None) -> bytes:
    """The JPEG of a dataset row's image cell (struct<bytes, path>; plain bytes in releases written
    before the column became a struct, so they still carry over)."""
    if isinstance(value, dict):
        return value.get("bytes") or b""
    return value or b""


class ParquetRows:
    """Rows into a zstd Parquet file, a row group every `_ROW_GROUP` rows; `to_row` makes a record a row."""

    def __init__(self, handle: BinaryIO, schema: pa.Schema, to_row: Callable[[Any], dict] = lambda row: row) -> None:
        self._writer = pq.ParquetWriter(handle, schema, compression="zstd")
        self._schema, self._to_row = schema, to_row
        self._batch: list[dict] = []

    def add(self, record: Any) -> None:
        self._batch.append(self._to_row(record))
        if len(self._batch) == _ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        self._writer.write_table(pa.Table.from_pylist(self._batch, schema=self._schema))
        self._batch = []

    def close(self) -> None:
        if self._batch:
            self._flush()
        self._writer.close()


class ParquetWriter(ParquetRows):
    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle, PARQUET_SCHEMA, _parquet_row)


def write_parquet(handle: BinaryIO, photos: Iterable[Photo]) -> None:
    write_all(ParquetWriter(handle), photos)


REJECTION_SCHEMA = pa.schema([
    ("photo_id", pa.string()),
    ("stage", pa.string()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("duplicate_of", pa.string()),
    ("source_ref", pa.string()),
])


class RejectionWriter(ParquetRows):
    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle, REJECTION_SCHEMA,
                         lambda r: {name: getattr(r, name) for name in REJECTION_SCHEMA.names})


def write_rejections(handle: BinaryIO, rejections: Iterable[Rejection]) -> None:
    write_all(RejectionWriter(handle), rejections)


LEDGER_SCHEMA = pa.schema([("photo_id", pa.string()), ("decision", pa.string()), ("stage", pa.string()),
                           ("reason", pa.string()), ("release", pa.string())])


class LedgerWriter(ParquetRows):
    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle, LEDGER_SCHEMA)


def write_ledger(handle: BinaryIO, entries: Iterable[dict]) -> None:
    write_all(LedgerWriter(handle), entries)


INDEX_SCHEMA = pa.schema([("phash", pa.string()), ("photo_id", pa.string()), ("dhash", pa.string())])


class IndexWriter(ParquetRows):
    """The near-duplicate index of a release: (pHash, photo id, dHash) of every image in it."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__(handle, INDEX_SCHEMA,
                         lambda entry: {"phash": entry[0], "photo_id": entry[1], "dhash": entry[2]})


def write_index(handle: BinaryIO, entries: Iterable[tuple[str, str, str]]) -> None:
    write_all(IndexWriter(handle), entries)


# ---------------------------------------------------------------------------------------------
# TFRecord of tf.train.Example
# ---------------------------------------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64 are encoded as their two's complement, like protobuf
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature(value: bytes | str | int) -> bytes:
    # Feature { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    if isinstance(value, int):
        return _field(3, _field(1, _varint(value)))  # Int64List { repeated int64 value = 1 [packed] }
    data = value.encode("utf-8") if isinstance(value, str) else value
    return _field(1, _field(1, data))  # BytesList { repeated bytes value = 1; }


def encode_example(features: dict[str, bytes | str | int]) -> bytes:
    """tf.train.Example { Features features = 1; } with Features { map<string, Feature> feature = 1; }."""
    entries = b"".join(
        _field(1, _field(1, key.encode("utf-8")) + _field(2, _feature(value)))
        for key, value in sorted(features.items())
    )
    return _field(1, entries)


def _read_varint(data: memoryview, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data) or shift > 63:
            raise ValueError("a varint runs past its message")
        byte = data[offset]
        value |= (byte & 0x7F) << shift
        offset, shift = offset + 1, shift + 7
        if not byte & 0x80:
            return value, offset


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview]]:
    """(field number, payload) of each length-delimited field of a message, as views (an image is not copied at
    each of its five levels); any other wire type is refused: none is in what encode_example writes."""
    offset = 0
    while offset < len(data):
        tag, offset = _read_varint(data, offset)
        if tag & 7 != 2:
            raise ValueError(f"wire type {tag & 7} where encode_example writes only length-delimited fields")
        length, offset = _read_varint(data, offset)
        if offset + length > len(data):
            raise ValueError("a field runs past its message")
        yield tag >> 3, data[offset:offset + length]
        offset += length


def _only(fields: Iterator[tuple[int, memoryview]], number: int) -> memoryview:
    """The one field `number` of a message holding nothing else: more, fewer or others are not what encode_example
    writes (a BytesList of two images, the second hashing to image/sha256, passed verify; TensorFlow reads both)."""
    found = list(itertools.islice(fields, 5))  # enough to say what is wrong: all of them took ~120 bytes a byte
    if len(found) != 1 or found[0][0] != number:
        raise ValueError(f"expected exactly one field {number}, found {[n for n, _ in found][:5]}")
    return found[0][1]


# More features than an Example a run writes holds (`photo_example`: 15).
_MAX_FEATURES = 64


def decode_example(data: bytes) -> dict[str, bytes | int]:
    """encode_example's inverse, exactly: what `verify` reads back. Bytes features as bytes, int64 features as ints.
    ValueError for anything encode_example never writes (a list of several values, a key twice, other fields)."""
    features: dict[str, bytes | int] = {}
    for entry_number, entry in _fields(_only(_fields(memoryview(data)), 1)):
        if len(features) == _MAX_FEATURES:  # each kept took ~15 times its bytes, and a record may be the whole shard
            raise ValueError(f"over {_MAX_FEATURES} features, more than encode_example writes")
        if entry_number != 1:
            raise ValueError(f"field {entry_number} in Features")
        parts = list(itertools.islice(_fields(entry), 3))
        if [number for number, _ in parts] != [1, 2]:
            raise ValueError("a feature entry that is not one key and one value")
        key = bytes(parts[0][1]).decode("utf-8")
        if key in features:
            raise ValueError(f"feature {key!r} twice")
        kind, values = _only_kind(parts[1][1])
        if kind == 1:  # BytesList { repeated bytes value = 1 }
            features[key] = bytes(_only(_fields(values), 1))
        else:  # Int64List { repeated int64 value = 1 [packed] }
            packed = _only(_fields(values), 1)
            number_value, end = _read_varint(packed, 0)
            if end != len(packed):
                raise ValueError(f"feature {key!r} holds more than one number")
            features[key] = number_value - (1 << 64) if number_value >= 1 << 63 else number_value
    return features


def _only_kind(feature: memoryview) -> tuple[int, memoryview]:
    """(1, BytesList) or (3, Int64List): a Feature holding one list of a kind encode_example writes."""
    found = list(itertools.islice(_fields(feature), 2))
    if len(found) != 1 or found[0][0] not in (1, 3):
        raise ValueError("a feature that is not one bytes or int64 list")
    return found[0]


def photo_example(photo: Photo) -> bytes:
    return encode_example({
        "image/encoded": photo.image,
        "image/format": "jpeg",
        "image/height": photo.height,
        "image/width": photo.width,
        "image/id": photo.photo_id,
        "image/sha256": photo.sha256,
        "image/phash": photo.phash,
        "license": photo.license_name,
        "license_url": photo.license_url,
        "license_source_text": photo.license_source_text,
        "license_source_url": photo.license_source_url,
        # Whom ATTRIBUTION.csv credits: the owner's Flickr id where the name shows nothing (the raw name was empty
        # here, a credit to no one, for photos the CSV credits to their owner id).
        "creator": creator_name(photo.owner_name, credited_owner(photo.owner_nsid, photo.page_url, photo.owner_name)),
        "creator_nsid": photo.owner_nsid,
        "title": photo.title,
        "page_url": photo.page_url,
    })


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C of `data` (a record's length bytes, or the record), as TensorFlow's writer frames it."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(record: bytes) -> bytes:
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", masked_crc(length)) + record + struct.pack("<I", masked_crc(record))


class TFRecordWriter:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def add(self, photo: Photo) -> None:
        self._handle.write(tfrecord_frame(photo_example(photo)))

    def close(self) -> None:
        pass


def write_tfrecord(handle: BinaryIO, photos: Iterable[Photo]) -> None:
    write_all(TFRecordWriter(handle), photos)


# Each dataset format: its file extension and its writer (a RecordWriter made from a file handle).
WRITERS: dict[str, tuple[str, Callable[[BinaryIO], RecordWriter]]] = {
    "webdataset": ("tar", WebDatasetWriter),
    "parquet": ("parquet", ParquetWriter),
    "tfrecord": ("tfrecord", TFRecordWriter),
}
