"""Keep only CC BY photos (Flickr license ids 4 and 11: CC BY 2.0 and CC BY 4.0), never videos.

CC BY is the one Creative Commons license that allows redistribution for any purpose with
nothing but attribution; ShareAlike, NonCommercial and NoDerivatives variants are rejected
with their license as the detail, so the funnel shows what was left out and why.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam

from pipeline.flickr.licenses import CC_BY_LICENSE_IDS, license_id_of, words_disagree
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_stage, reject

STAGE = "license"


def is_cc_by(license_name: str, license_url: str) -> bool:
    """The URL decides when there is one (it is unambiguous); the name only when it is absent
    (`flickr.licenses.license_id_of`, the one table of licence names and URLs). Names are compared with '-' read
    as a space, so SPDX's 'CC-BY-4.0' is 'CC BY 4.0' (and 'CC-BY-NC-4.0' stays 'cc by nc 4.0', rejected)."""
    return license_id_of(license_name, license_url) in CC_BY_LICENSE_IDS


def license_rejection(photo: Photo) -> Rejection | None:
    if photo.marker == 1:
        return Rejection.of(photo, STAGE, "video", "marker=1")
    if words_disagree(photo.license_source_text, photo.license_source_url):
        # The source's own words, before canonical_license let the URL decide: a row contradicting itself is no
        # evidence of CC BY, whichever half says so.
        detail = f"{photo.license_source_text[:100]} | {photo.license_source_url[:200]}"
        return Rejection.of(photo, STAGE, "license_conflict", detail)
    if not is_cc_by(photo.license_name, photo.license_url):
        # Bounded as a conflict's detail is: a name and a URL of tens of kB each were copied whole into every such row.
        detail = " | ".join(part for part in (photo.license_name[:100], photo.license_url[:200]) if part) or (
            "no license given")
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
