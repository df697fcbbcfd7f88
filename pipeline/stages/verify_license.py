"""`--verify_license`: confirm, before any download, that each photo still exists and is still CC BY.

PASS trusted YFCC100M's 2014 license field; photos have since been deleted or relicensed. A
per-photo `flickr.photos.getInfo` costs one call per photo (1.44M photos = 400 hours at Flickr's
3,600 calls per hour). One `flickr.photos.search(user_id=…, license=4,11)` page lists up to 500 of
an owner's current CC BY photos in one call: photos found there are verified (their license id
refreshed); only those missing from it cost a getInfo, which tells deleted (error 1) from relicensed.

An owner is a photo's account as the owner cap counts it (`owner_group`): a table's rows, which carry no owner id,
are their Flickr pages' account, else the account id their owner column credits. A search only pays when it saves
more getInfo calls than it costs, so each owner gets the cheaper of the two, judged before and during the search:
  * an owner carrying fewer than `MIN_PHOTOS_FOR_SEARCH` photos is checked photo by photo (a search
    would cost the same call and, for a missing photo, a getInfo on top);
  * otherwise one search page, bounded to the carried photos' upload times (an owner's other
    thousands of photos stay out of it), whose total says what the rest of the listing would cost
    (more pages; windows, with their counts, past the search depth). Further pages are read only
    while they cost fewer calls than the getInfo they could save, and not once every carried photo
    is found; what the search did not list is checked photo by photo.
A refused or malformed search answer costs nothing but the calls made: the photos it did not list
are checked one by one. Calls are paced per worker (`--flickr_calls_per_second`); the budget of a
job is that times its workers, times the number of keys it spreads over.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import apache_beam as beam
import flickrapi

from pipeline.flickr.client import (
    PER_PAGE,
    SEARCH_DEPTH,
    BadApiResponse,
    FlickrClient,
    answer_count,
    later_pages,
    page_numbers,
    search_paging,
    split_windows,
)
from pipeline.flickr.credentials import load_credentials
from pipeline.flickr.licenses import CANONICAL, CC_BY_LICENSE_IDS, LICENSES
from pipeline.io.flickr_pages import account, page_owner
from pipeline.records import Photo, Rejection, canonical_owner_id
from pipeline.stage import StageOutput, apply_keyed_stage, reject

STAGE = "verify_license"
# A search costs at least one call, as one getInfo does: with one carried photo it can only lose.
MIN_PHOTOS_FOR_SEARCH = 2
# The owner search spans the carried photos' upload times, widened so that a clock or rounding
# difference between the record and Flickr does not leave a photo out.
UPLOAD_MARGIN = 86_400
ALL_TIME = (0, 2**31)
_DIGITS = re.compile(r"[0-9]{1,12}")
# The group key of a photo naming no owner: the photo's own (an account id never holds a ':').
NO_OWNER = "photo:"
MAX_LICENSE_ID = 1000  # Flickr's ids are 0-16: more than three digits is no licence id


@dataclass(frozen=True)
class VerifyConfig:
    rest_url: str | None
    credentials_path: str | None
    licenses: str
    calls_per_second: float
    search_depth: int = SEARCH_DEPTH


def owner_group(photo: Photo) -> str:
    """What photos are grouped by: their account (`io/flickr_pages.account`, as the owner cap and the datasheet count
    them: the row's id in Flickr's one spelling, else the account its Flickr page names, else the account id a table's
    row credits as its creator), one owner search serving its photos; or, for a photo whose account cannot be known (a
    dump's row without an owner, a table's row whose page names an alias or none and which credits a name), the photo
    alone. A table's rows carry no owner id: each was a group of its own, one getInfo a photo, where an account's
    photos listed by their pages cost one search. Every photo naming no owner was once one group, checked one getInfo
    after another by one worker whatever the job's workers: a table of 1.44 million rows took 400 hours at one call a
    second where the job's budget (`--flickr_calls_per_second` times its keys and workers) had paid for many
    workers."""
    return account(photo.owner_nsid, photo.page_url, photo.owner_name) or f"{NO_OWNER}{photo.photo_id}"


def with_license(photo: Photo, license_id: int) -> Photo:
    """The photo with the license Flickr confirmed: canonical name and URL, and Flickr's own words for
    it as the source text (the API is now the source of the license recorded)."""
    name, url = CANONICAL.get(license_id, ("", ""))
    source_text, source_url = LICENSES.get(license_id, ("", ""))
    return photo.replace(license_name=name, license_url=url, license_source_text=source_text,
                         license_source_url=source_url)


def _number(value: object) -> int | None:
    """A count or id Flickr sends as an int or a string of digits; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    return int(value) if isinstance(value, str) and _DIGITS.fullmatch(value) else None


def upload_span(photos: list[Photo]) -> tuple[int, int]:
    """The upload times the owner search must cover: the carried photos' own, with a margin; all
    time when any of them has no readable upload date."""
    times = []
    for photo in photos:
        try:
            times.append(int(dt.datetime.fromisoformat(photo.date_uploaded).timestamp()))
        except (TypeError, ValueError):
            return ALL_TIME
    return max(ALL_TIME[0], min(times) - UPLOAD_MARGIN), min(ALL_TIME[1], max(times) + UPLOAD_MARGIN)


def windowed_cost(total: int, depth: int, per_page: int = PER_PAGE) -> int:
    """Calls to list `total` results past the search depth: at least total/depth windows, whose
    binary split costs about two counts each, and their pages."""
    windows = -(-total // depth)
    return 2 * windows - 1 + windows * len(page_numbers(depth, per_page, depth))


class _VerifyOwner(beam.DoFn):
    min_photos_for_search = MIN_PHOTOS_FOR_SEARCH  # the benchmark's reference strategies change it

    def __init__(self, cfg: VerifyConfig) -> None:
        self._cfg = cfg
        # CC BY only, whatever the ids asked: validate() refuses others at launch, and this stays true without it
        self._allowed = {int(x) for x in cfg.licenses.split(",") if x.strip().isdigit()} & CC_BY_LICENSE_IDS

    def setup(self) -> None:
        self._client = FlickrClient(load_credentials(self._cfg.credentials_path), self._cfg.rest_url,
                                    calls_per_second=self._cfg.calls_per_second)

    def _search(self, owner: str, low: int, high: int, **params: object) -> dict:
        answer = self._client.call("flickr.photos.search", user_id=owner, license=self._cfg.licenses,
                                   min_upload_date=low, max_upload_date=high, extras="license", **params)
        results = answer.get("photos") if isinstance(answer, dict) else None
        if not isinstance(results, dict) or not isinstance(results.get("photo"), list):
            raise BadApiResponse("the answer has no photo list")
        return results

    def _collect(self, owner: str, results: dict, wanted: set[str], found: dict[str, int | None]) -> None:
        """Carried photos a page of `owner`'s search lists with an allowed license; anything malformed, or listed
        as another owner's (an answer not about this search), is left out: its photo is then checked on its own.

        A photo listed with a license that is not allowed or no id, or listed twice with two licenses (on one page or
        two), is settled as doubted (None): the search says nothing of it, its own getInfo decides. It was kept as
        CC BY when one listing said CC BY 2.0 and another CC BY-NC 2.0."""
        for entry in results["photo"]:
            if not isinstance(entry, dict) or str(entry.get("id")) not in wanted or entry.get("owner") != owner:
                continue
            photo_id = str(entry["id"])
            license_id = _number(entry.get("license"))
            if license_id not in self._allowed or found.get(photo_id, license_id) != license_id:
                license_id = None
            found[photo_id] = license_id

    def _listed(self, owner: str, photos: list[Photo]) -> dict[str, int | None]:
        """{photo id: license id, or None where its listings doubt it} of the carried photos the owner's CC BY search
        lists, read only as far as it pays (module docstring); whatever it could not list, or doubts, is checked per
        photo."""
        wanted = {photo.photo_id for photo in photos}
        found: dict[str, int | None] = {}
        low, high = upload_span(photos)
        depth = self._cfg.search_depth
        try:
            first = self._search(owner, low, high, per_page=PER_PAGE, page=1)
            total = answer_count(first, "total")
            self._collect(owner, first, wanted, found)
            if total <= depth:
                # The pages the first answer says it has (an API serving 100 a page has five times as many): planned
                # at 500 a page, every photo after the first page's was checked by its own getInfo instead.
                rest = list(later_pages(search_paging(first), depth))
                while rest and len(found) < len(wanted) and len(rest) < len(wanted) - len(found):
                    self._collect(owner, self._search(owner, low, high, per_page=PER_PAGE, page=rest.pop(0)), wanted,
                                  found)
            elif windowed_cost(total, depth) < len(wanted) - len(found):
                self._read_windows(owner, (low, high, total), wanted, found)
        except (flickrapi.FlickrError, BadApiResponse):
            # e.g. error 2 "unknown user" for a closed account: each photo's own getInfo then says
            # deleted or relicensed, which is the reason the rejections table needs.
            pass
        return found

    def _read_windows(self, owner: str, span: tuple[int, int, int], wanted: set[str],
                      found: dict[str, int | None]) -> None:
        """Past the search depth: windows under it (the span's own total is known: not asked again), in at most as
        many calls as the per-photo checks it saves. The plan (`windowed_cost`) trusts the first total; an API whose
        sub-window totals do not shrink made the split ask ~2 x span seconds counts. Photos not found by then are
        checked one by one."""
        low, high, total = span
        budget = len(wanted) - len(found)
        calls = 0

        def count(lo: int, hi: int) -> int:
            nonlocal calls
            if (lo, hi) == (low, high):
                return total
            calls += 1
            return answer_count(self._search(owner, lo, hi, per_page=1), "total")

        depth = self._cfg.search_depth
        for lo, hi, window_total in split_windows(count, low, high, depth=depth, max_counts=budget):
            for page in page_numbers(window_total, depth=depth):
                if len(found) == len(wanted) or calls >= budget:
                    return
                calls += 1
                self._collect(owner, self._search(owner, lo, hi, per_page=PER_PAGE, page=page), wanted, found)

    def process(self, keyed: tuple[str, Iterable[Photo]]) -> Iterator:
        owner, photos = keyed
        photos = list(photos)
        searchable = owner and not owner.startswith(NO_OWNER)
        current = self._listed(owner, photos) if searchable and len(photos) >= self.min_photos_for_search else {}
        for photo in photos:
            license_id = current.get(photo.photo_id)
            if license_id is not None:
                yield with_license(photo, license_id)
                continue
            yield from self._check_one(photo)

    def _check_one(self, photo: Photo) -> Iterator:
        """The per-photo check: deleted, relicensed, or CC BY (not listed by, or not worth, a search)."""
        try:
            info = self._client.call("flickr.photos.getInfo", photo_id=photo.photo_id)["photo"]
        except flickrapi.FlickrError as err:
            code = getattr(err, "code", None)
            reason = "deleted" if code == 1 else "api_error"
            yield reject(Rejection.of(photo, STAGE, reason, f"flickr.photos.getInfo error {code}"))
            return
        except BadApiResponse as err:
            yield reject(Rejection.of(photo, STAGE, "bad_api_response", f"getInfo: {err}"[:300]))
            return
        except (KeyError, TypeError) as err:
            yield reject(Rejection.of(photo, STAGE, "bad_api_response", f"getInfo answer without a photo: {err}"[:300]))
            return
        problem = _other_photo(info, photo)
        if problem:
            yield reject(Rejection.of(photo, STAGE, problem[0], problem[1]))
            return
        # No licence, or one that is no id, is a broken answer (it was read as licence -1: `relicensed`); an id has at
        # most three digits, as a search entry's (sources.flickr: 10**4000 was `relicensed` to it, every digit said)
        value = info.get("license")
        license_id = _number(value)
        if license_id is None or license_id >= MAX_LICENSE_ID:
            yield reject(Rejection.of(photo, STAGE, "bad_api_response", f"license {repr(value)[:40]} is no license id"))
            return
        if license_id not in self._allowed:
            new = CANONICAL.get(license_id, (str(license_id), ""))[0]
            yield reject(Rejection.of(photo, STAGE, "relicensed", f"{photo.license_name or '?'} -> {new}"))
            return
        yield with_license(photo, license_id)


def _other_photo(info: object, photo: Photo) -> tuple[str, str] | None:
    """(reason, detail) when a getInfo answer is not about this photo as the row credits it, else None.

    An answer about another photo (a cache or proxy mixing answers up) would lend this photo that photo's licence:
    `bad_api_response`. An owner other than the row's means the row credits someone else with the photo (Flickr
    photos never change owners), or than the account its Flickr page names when it has no owner id:
    `owner_mismatch`, since publishing it would attribute it wrongly."""
    if not isinstance(info, dict):
        return "bad_api_response", "getInfo answer without a photo"
    answered = info.get("id")
    if not isinstance(answered, (str, int)) or isinstance(answered, bool) or str(answered) != photo.photo_id:
        return "bad_api_response", f"getInfo answered for photo {repr(answered)[:40]}"
    owner = info.get("owner")
    nsid = owner.get("nsid") if isinstance(owner, dict) else None
    if not isinstance(nsid, str) or not nsid:
        return "bad_api_response", "getInfo answer without an owner"
    # A table's row names no owner id, only its Flickr page or the account id it credits as its creator: that account is
    # the row's credit, as the owner cap and the owner searches read it (a page, or a table's owner column, naming
    # another account's photo was verified as it stood).
    credited = account(photo.owner_nsid, photo.page_url, photo.owner_name)
    if credited and canonical_owner_id(nsid) != credited:
        if photo.owner_nsid:
            said = f"the row credits {photo.owner_nsid[:40]!r}"
        elif page_owner(photo.page_url) == credited:
            said = f"the row's Flickr page names {credited[:40]!r}"
        else:
            said = f"the row credits {credited[:40]!r} as its creator"
        return "owner_mismatch", f"{said}, Flickr says {nsid[:40]!r}"
    return None


class VerifyLicense(beam.PTransform):
    """PCollection[Photo] -> (PCollection[Photo] still existing and CC BY today, PCollection[Rejection])."""

    def __init__(self, cfg: VerifyConfig) -> None:
        super().__init__()
        self._cfg = cfg
        FlickrClient(load_credentials(cfg.credentials_path), cfg.rest_url).check_key()  # fail at start

    def expand(self, photos: beam.PCollection) -> StageOutput:
        return apply_keyed_stage(photos, STAGE, owner_group, _VerifyOwner(self._cfg))
