"""Carry a previous release's images into the next one without refetching: its Parquet shards
hold every field and the stored JPEG, so each row becomes the `Photo` it was when released.

Carried photos then go through the checks that can change over time — license re-verification,
the takedown blocklist, and detection again when the detectors or their thresholds changed
(`--redetect`) — and skip those whose answer cannot change (fetch, normalisation, near duplicates
among themselves).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.flickr.licenses import canonical_license
from pipeline.io.files import matching, read_parquet
from pipeline.io.formats import image_bytes, scores_from_entries
from pipeline.records import Photo

_FIELDS = {f.name for f in dataclasses.fields(Photo)}


def release_shards(release: str) -> list[str]:
    """The release's Parquet shards, listed when the job is built (a release never changes)."""
    return matching(FileSystems.join(release, "parquet", "*.parquet"))


def photo_from_row(row: dict, release_name: str) -> Photo:
    values = {name: value for name, value in row.items() if name in _FIELDS and value is not None}
    values["scores"] = scores_from_entries(row.get("scores"))
    values["image"] = image_bytes(row.get("image"))
    values["first_release"] = row.get("first_release") or release_name
    if "license_source_text" not in row:
        values.update(_canonical_license_fields(row))
    return Photo(**values)


def _canonical_license_fields(row: dict) -> dict[str, str]:
    """A release written before license names were canonical stored the source's words as
    license_name/url: they become the source text, and the row gets the canonical name and URL."""
    name, url = row.get("license_name") or "", row.get("license_url") or ""
    canonical_name, canonical_url = canonical_license(name, url)
    return {"license_name": canonical_name, "license_url": canonical_url,
            "license_source_text": name, "license_source_url": url}


def _read_shard(path: str, release_name: str) -> Iterator[Photo]:
    table = read_parquet(path)
    for row in table.to_pylist():
        yield photo_from_row(row, release_name)


class ReadRelease(beam.PTransform):
    """PBegin -> PCollection[Photo]: every image of a finished release, as it was released."""

    def __init__(self, release: str, release_name: str) -> None:
        super().__init__()
        self._shards = release_shards(release)
        if not self._shards:
            raise ValueError(f"{release} has no parquet/*.parquet shards to carry over")
        self._name = release_name

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (pbegin
                | "Shards" >> beam.Create(self._shards)
                | "SpreadShards" >> beam.Reshuffle()
                | "Rows" >> beam.FlatMap(_read_shard, release_name=self._name))
