"""`--verify_license`: confirm, before any download, that each photo still exists and is still CC BY.

PASS trusted YFCC100M's 2014 license field; photos have since been deleted or relicensed. A
per-photo `flickr.photos.getInfo` costs one call per photo (1.44M photos = 400 hours at Flickr's
3,600 calls per hour), so the check goes by owner first: one `flickr.photos.search(user_id=…,
license=4,11)` returns up to 500 of an owner's current CC BY photos per call. Photos found there are
verified (their license id refreshed); only those missing from their owner's list cost a getInfo,
which tells deleted (error 1) from relicensed. Calls are paced per worker (`--flickr_calls_per_second`);
the budget of a job is that times its workers, times the number of keys it spreads over.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import apache_beam as beam
import flickrapi

from pipeline.flickr.client import SEARCH_DEPTH, FlickrClient, split_windows
from pipeline.flickr.credentials import load_credentials
from pipeline.flickr.licenses import LICENSES
from pipeline.records import Photo, Rejection
from pipeline.stage import StageOutput, apply_keyed_stage, reject

STAGE = "verify_license"
PER_PAGE = 500


@dataclass(frozen=True)
class VerifyConfig:
    rest_url: str | None
    credentials_path: str | None
    licenses: str
    calls_per_second: float
    search_depth: int = SEARCH_DEPTH


def with_license(photo: Photo, license_id: int) -> Photo:
    name, url = LICENSES.get(license_id, ("", ""))
    return photo.replace(license_name=name, license_url=url)


class _VerifyOwner(beam.DoFn):
    def __init__(self, cfg: VerifyConfig) -> None:
        self._cfg = cfg
        self._allowed = {int(x) for x in cfg.licenses.split(",") if x.strip().isdigit()}

    def setup(self) -> None:
        self._client = FlickrClient(load_credentials(self._cfg.credentials_path), self._cfg.rest_url,
                                    calls_per_second=self._cfg.calls_per_second)

    def _owner_licenses(self, owner: str) -> dict[str, int]:
        """{photo id: license id} of the owner's current CC BY photos, paging within the depth cap."""
        def search(low: int, high: int, **params: object) -> dict:
            return self._client.call("flickr.photos.search", user_id=owner, license=self._cfg.licenses,
                                     min_upload_date=low, max_upload_date=high, extras="license", **params)["photos"]

        found: dict[str, int] = {}
        count = lambda lo, hi: int(search(lo, hi, per_page=1)["total"])  # noqa: E731
        for low, high, total in split_windows(count, 0, 2**31, depth=self._cfg.search_depth):
            for page in range(1, -(-total // PER_PAGE) + 1):
                for entry in search(low, high, per_page=PER_PAGE, page=page)["photo"]:
                    found[str(entry["id"])] = int(entry["license"])
        return found

    def process(self, keyed: tuple[str, Iterable[Photo]]) -> Iterator:
        owner, photos = keyed
        photos = list(photos)
        try:
            current = self._owner_licenses(owner) if owner else {}
        except flickrapi.FlickrError:
            # e.g. error 2 "unknown user" for a closed account: each photo's own getInfo then says
            # deleted or relicensed, which is the reason the rejections table needs.
            current = {}
        for photo in photos:
            if photo.photo_id in current:
                yield with_license(photo, current[photo.photo_id])
                continue
            yield from self._check_one(photo)

    def _check_one(self, photo: Photo) -> Iterator:
        """The per-photo fallback: deleted, relicensed, or (rarely) CC BY but not listed by search."""
        try:
            info = self._client.call("flickr.photos.getInfo", photo_id=photo.photo_id)["photo"]
        except flickrapi.FlickrError as err:
            code = getattr(err, "code", None)
            reason = "deleted" if code == 1 else "api_error"
            yield reject(Rejection.of(photo, STAGE, reason, f"flickr.photos.getInfo error {code}"))
            return
        license_id = int(info.get("license", -1))
        if license_id not in self._allowed:
            new = LICENSES.get(license_id, (str(license_id), ""))[0]
            yield reject(Rejection.of(photo, STAGE, "relicensed", f"{photo.license_name or '?'} -> {new}"))
            return
        yield with_license(photo, license_id)


class VerifyLicense(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo] still existing and CC BY today, PCollection[Rejection])."""

    def __init__(self, cfg: VerifyConfig) -> None:
        super().__init__()
        self._cfg = cfg
        FlickrClient(load_credentials(cfg.credentials_path), cfg.rest_url).check_key()  # fail at start

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_keyed_stage(photos, STAGE, lambda photo: photo.owner_nsid, _VerifyOwner(self._cfg))
