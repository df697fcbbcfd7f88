"""`pass-pipeline verify RELEASE`: re-check every file of a release against its manifest.json —
existence, byte size, sha256 — and, for dataset shards, that the record count inside matches (tar
members, Parquet rows, TFRecord records with their CRCs). Works on local paths and gs://."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.io.files import read_bytes
from pipeline.io.formats import tfrecord_frame


@dataclass(frozen=True)
class Problem:
    path: str
    message: str


def tfrecord_count(data: bytes) -> int:
    """Records in a TFRecord file, checking both CRCs of each (re-framing must reproduce the bytes)."""
    count, offset = 0, 0
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 8], "little")
        record = data[offset + 12: offset + 12 + length]
        frame = tfrecord_frame(record)
        if data[offset: offset + len(frame)] != frame:
            raise ValueError(f"record {count} has a bad length or CRC")
        offset += len(frame)
        count += 1
    return count


def record_count(fmt: str, data: bytes) -> int | None:
    if fmt == "webdataset":
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return sum(1 for name in tar.getnames() if name.endswith(".jpg"))
    if fmt in ("parquet", "rejections", "near_dup_index", "review"):
        return pq.read_metadata(io.BytesIO(data)).num_rows
    if fmt == "tfrecord":
        return tfrecord_count(data)
    return None


def verify(release: str) -> Iterator[Problem]:
    manifest_path = FileSystems.join(release, "manifest.json")
    if not FileSystems.exists(manifest_path):
        yield Problem(manifest_path, "no manifest.json")
        return
    manifest = json.loads(read_bytes(manifest_path))
    for entry in manifest["files"]:
        path = FileSystems.join(release, entry["path"])
        if not FileSystems.exists(path):
            yield Problem(entry["path"], "missing")
            continue
        data = read_bytes(path)
        if len(data) != entry["bytes"]:
            yield Problem(entry["path"], f"{len(data)} bytes, manifest says {entry['bytes']}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            yield Problem(entry["path"], "sha256 differs from the manifest")
            continue
        try:
            count = record_count(entry.get("format", ""), data)
        except (ValueError, OSError, tarfile.TarError) as err:
            yield Problem(entry["path"], f"unreadable: {err}")
            continue
        if count is not None and "records" in entry and count != entry["records"]:
            yield Problem(entry["path"], f"{count} records, manifest says {entry['records']}")
