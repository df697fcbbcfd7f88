"""Keep only CC BY photos (Flickr license ids 4 and 11: CC BY 2.0 and CC BY 4.0), never videos.

CC BY is the one Creative Commons license that allows redistribution for any purpose with
nothing but attribution; ShareAlike, NonCommercial and NoDerivatives variants are rejected
with their license as the detail, so the funnel shows what was left out and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import apache_beam as beam

from pipeline.flickr.licenses import words_disagree
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "license"

CC_BY_URLS = frozenset({"creativecommons.org/licenses/by/2.0/", "creativecommons.org/licenses/by/4.0/"})
CC_BY_NAMES = frozenset({"attribution license", "cc by 2.0", "cc by 4.0"})
_SCHEME = re.compile(r"^https?://(www\.)?", re.IGNORECASE)


def normalise_license_url(url: str) -> str:
    """'HTTPS://www.CreativeCommons.org/licenses/by/2.0' -> 'creativecommons.org/licenses/by/2.0/'."""
    bare = _SCHEME.sub("", url.strip()).lower()
    return bare if not bare or bare.endswith("/") else bare + "/"


def is_cc_by(license_name: str, license_url: str) -> bool:
    """The URL decides when there is one (it is unambiguous); the name only when it is absent.
    Names are compared with '-' read as a space, so SPDX's 'CC-BY-4.0' is 'CC BY 4.0' (and
    'CC-BY-NC-4.0' stays 'cc by nc 4.0', rejected)."""
    if license_url.strip():
        return normalise_license_url(license_url) in CC_BY_URLS
    return " ".join(license_name.replace("-", " ").split()).lower() in CC_BY_NAMES


def license_rejection(photo: Photo) -> Rejection | None:
    if photo.marker == 1:
        return Rejection.of(photo, STAGE, "video", "marker=1")
    if words_disagree(photo.license_source_text, photo.license_source_url):
        # The source's own words, before canonical_license let the URL decide: a row contradicting itself is no
        # evidence of CC BY, whichever half says so.
        detail = f"{photo.license_source_text[:100]} | {photo.license_source_url[:200]}"
        return Rejection.of(photo, STAGE, "license_conflict", detail)
    if not is_cc_by(photo.license_name, photo.license_url):
        detail = " | ".join(part for part in (photo.license_name, photo.license_url) if part) or "no license given"
        return Rejection.of(photo, STAGE, "not_cc_by", detail)
    return None


class _KeepCcBy(beam.DoFn):
    def process(self, photo: Photo) -> Iterator:
        rejection = license_rejection(photo)
        yield reject(rejection) if rejection else photo


class FilterLicense(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo], PCollection[Rejection]): CC BY photos kept."""

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_stage(photos, STAGE, _KeepCcBy())
