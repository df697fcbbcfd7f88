"""`--source=flickr`: CC BY photos straight from the Flickr API, in the same `Photo` schema as the
YFCC source, so every later stage is shared.

The upload-time range is split into windows that each stay under Flickr's search depth
(`flickr.client.split_windows`), windows and then their pages are reshuffled so that they fan out
across workers, and each page's results become Photos. Credentials are loaded in each worker's
`setup()` from the environment or a file (local or gs://), so they are never part of the
pickled pipeline. A page the API refuses becomes one rejection naming the window and page.

Pages follow what the answers say, not what was asked: a window's first page is read first, and its
answer's `perpage`, `pages` and `total` (each checked: a count, a page size of 1 to the 500 asked)
plan the window's other pages, never past the depth (`flickr.client.later_pages`), which then fan out.
An API serving 100 a page (a proxy's cap, or per_page not honoured) is read 100 at a time. Every
page tallies the photos it listed; a window whose pages together listed fewer different photos than
its answers counted (short, repeated or lying pages, a total that changed while paging) is one
`incomplete_window` rejection naming the window and how many were never listed.

Every byte of an answer is treated as hostile: a page whose photo list is not a list is one
rejection for the page (`bad_api_response`), as is a page listing more photos than its `perpage` (one answer
of 64 MiB listed 4 million entries, each a row), and each entry is checked on its own, so one
malformed entry (no id, license "abc", a title that is an object or of megabytes, an absurd date) is one rejection
naming window, page and position (`flickr:LOW-HIGH:pPAGE:INDEX`) while the rest of the page goes
on. An entry whose `media` says video (the search asked for photos only) is marked as one, as a YFCC row is, for the
license stage to reject. Ids, dates and URL parts go through the same checks as the YFCC source
(`records.canonical_photo_id`, `sources.fields`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import apache_beam as beam
import flickrapi

from pipeline.flickr.client import (
    PER_PAGE,
    SEARCH_DEPTH,
    BadApiResponse,
    FlickrClient,
    SearchPaging,
    answer_count,
    later_pages,
    search_paging,
    split_windows,
)
from pipeline.flickr.credentials import CredentialsError, load_credentials
from pipeline.flickr.licenses import CANONICAL, LICENSES
from pipeline.flickr.sizes import BY_EXTRA, RESIZED, smallest_covering
from pipeline.records import BadPhotoId, Photo, Rejection, canonical_photo_id, is_utf8_text, value_kind
from pipeline.sources import STAGE, fields
from pipeline.sources.fields import MAX_URL_CHARS, BadField
from pipeline.sources.input_files import MAX_LINE_BYTES
from pipeline.stage import StageOutput, apply_stage, apply_stage_with_outputs, reject

# Every whole-photo copy by its documented extra name (flickr.sizes): an entry lists only the copies the
# photo has (no 800 px copy before March 2012, ...), and the source picks among those.
_SIZE_EXTRAS = tuple(size.extra for size in RESIZED)
EXTRAS = ",".join(("license,owner_name,date_upload,date_taken,original_format,o_dims,description,tags,path_alias,media",
                   *_SIZE_EXTRAS, "url_o"))
# Entry fields read as text; each must be a string where present (a null, number or object is malformed).
_TEXT_FIELDS = ("owner", "ownername", "title", "tags", *_SIZE_EXTRAS, "url_o")
_LICENSE_ID = re.compile(r"[0-9]{1,3}")
# An entry's texts are bounded as the other sources' are: a YFCC line (so any text in it) and a table's value at
# 64 KiB, a URL at 4,096 characters. Unbounded, one title of 8 MiB in a 64 MiB answer was published whole in
# ATTRIBUTION.csv, the tar and the TFRecord.
MAX_TEXT_CHARS = MAX_LINE_BYTES
_URL_FIELDS = frozenset((*_SIZE_EXTRAS, "url_o"))
# _ReadPage's outputs beside photos and rejections: the pages a first page's answer plans, and each page's tally.
LATER_PAGES = "later_pages"
TALLY = "tally"


@dataclass(frozen=True)
class FlickrSourceConfig:
    rest_url: str | None
    credentials_path: str | None
    licenses: str
    min_upload: int
    max_upload: int
    max_side: int
    calls_per_second: float = 0.0
    originals: bool = False
    search_depth: int = SEARCH_DEPTH


class OfAnotherWindow(BadField):
    """An entry whose upload time is outside the window it was listed for: it lists none of the window's photos."""


def _license_id(entry: dict) -> int:
    value = entry.get("license")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1000:
        return value
    if isinstance(value, str) and _LICENSE_ID.fullmatch(value):
        return int(value)
    raise BadField("bad_api_entry", f"license {repr(value)[:40]} is not a Flickr license id")


def _marker(entry: dict) -> int:
    """The entry's `media` as YFCC's marker: 1 for a video (the license stage rejects it as `video`), 0 for a photo
    or an entry that does not say. The search asks for photos (media=photos) and trusted that alone: an answer that
    ignored it (a proxy's, one mixing searches up) had a video's poster frame fetched and published as a photo."""
    media = entry.get("media", "photo")
    if media not in ("photo", "video"):
        raise BadField("bad_api_entry", f"media {repr(media)[:40]} is not photo or video")
    return 1 if media == "video" else 0


def _texts(entry: dict) -> dict[str, str]:
    texts = {name: entry.get(name, "") for name in _TEXT_FIELDS}
    for name, value in texts.items():
        if not isinstance(value, str):
            raise BadField("bad_api_entry", f"{name} is a {value_kind(value)}, not text")
        if not is_utf8_text(value):
            raise BadField("bad_api_entry", f"{name} holds a lone surrogate, which is no UTF-8 text")
        fields.no_nul(value, name, "bad_api_entry")
        _bounded(value, name, MAX_URL_CHARS if name in _URL_FIELDS else MAX_TEXT_CHARS)
    texts["owner"] = fields.owner_id(texts["owner"], "owner", "bad_api_entry")
    if not texts["owner"]:  # Flickr names every photo's owner: without one the photo was published crediting no one
        raise BadField("bad_api_entry", "no owner: the photo's credit would name no one")
    return texts


def _description(entry: dict) -> str:
    description = entry.get("description", {})
    text = description.get("_content", "") if isinstance(description, dict) else description
    if not isinstance(text, str):
        raise BadField("bad_api_entry", f"description is a {value_kind(text)}, not text")
    if not is_utf8_text(text):
        raise BadField("bad_api_entry", "description holds a lone surrogate, which is no UTF-8 text")
    return _bounded(fields.no_nul(text, "description", "bad_api_entry"), "description", MAX_TEXT_CHARS)


def _bounded(text: str, name: str, limit: int) -> str:
    if len(text) > limit:
        raise BadField("bad_api_entry", f"{name} is {len(text):,} characters, more than the {limit:,} allowed")
    return text


def photo_from_search(entry: dict, ref: str, max_side: int, originals: bool = False,
                      window: tuple[int, int] | None = None) -> Photo:
    """One search result -> a Photo; an entry that is not shaped as Flickr documents it raises
    `BadPhotoId` or `BadField` (reason `bad_api_entry`, `bad_date` or `bad_field`), as does one whose upload time
    is outside the `window` (first and last second) it was listed for, or not given: the search asked for none such,
    so the answer is not about it (it was kept from outside the run's range, and took a place in its window's count
    that one of the window's own photos, never listed, had)."""
    if not isinstance(entry, dict):
        raise BadField("bad_api_entry", f"the entry is a {value_kind(entry)}, not an object")
    photo_id = canonical_photo_id(entry.get("id", ""))
    license_id = _license_id(entry)
    # An id Flickr's table does not hold is named by its number: with no name the license stage said "no license
    # given" of an entry that gave one.
    license_name, license_url = CANONICAL.get(license_id, (f"Flickr license id {license_id}", ""))
    source_text, source_url = LICENSES.get(license_id, ("", ""))  # the API gives an id: Flickr's words for it
    texts = _texts(entry)
    uploaded = entry.get("dateupload", "")
    date_uploaded = fields.upload_date(uploaded, "dateupload")
    if window and not date_uploaded:  # asked for (EXTRAS): without it the entry passed the window's check unchecked
        raise BadField("bad_api_entry", "no dateupload: whether it is of the window searched cannot be told")
    if window and not window[0] <= int(uploaded) <= window[1]:
        raise OfAnotherWindow("bad_api_entry", f"dateupload {uploaded} is outside the window searched, "
                                               f"{window[0]}-{window[1]}")
    listed = tuple(BY_EXTRA[name] for name in _SIZE_EXTRAS if texts[name])  # smallest first
    chosen = smallest_covering(listed, max_side)
    download_url = texts[chosen.extra] if chosen else ""  # none listed: fetch builds the 500 px URL
    if originals and texts["url_o"]:  # url_o is present only where the owner allows original downloads
        download_url = texts["url_o"]
    fields.names_this_photo(photo_id, "", download_url, "bad_api_entry")
    return Photo(
        photo_id=photo_id,
        source="flickr",
        source_ref=ref,
        owner_nsid=texts["owner"],
        owner_name=texts["ownername"],
        title=texts["title"],
        description=_description(entry),
        tags=",".join(texts["tags"].split()),
        date_taken=fields.taken_date(entry.get("datetaken", ""), "datetaken"),
        date_uploaded=date_uploaded,
        page_url=f"https://www.flickr.com/photos/{texts['owner']}/{photo_id}/",
        download_url=download_url,
        license_name=license_name,
        license_url=license_url,
        license_source_text=source_text,
        license_source_url=source_url,
        marker=_marker(entry),
        server_id=fields.url_token(entry.get("server", ""), "server"),
        farm_id=fields.url_token(entry.get("farm", ""), "farm"),
        secret=fields.url_token(entry.get("secret", ""), "secret"),
        secret_original=fields.url_token(entry.get("originalsecret", ""), "originalsecret"),
        extension=fields.url_token(entry.get("originalformat", "jpg"), "originalformat"),
    )


def _entry_id(entry: object) -> str | None:
    """The entry's canonical id where it has a valid one, so that its rejection can name the photo."""
    try:
        return canonical_photo_id(entry.get("id", "")) if isinstance(entry, dict) else None
    except BadPhotoId:
        return None


class _ClientDoFn(beam.DoFn):
    def __init__(self, cfg: FlickrSourceConfig) -> None:
        self._cfg = cfg

    def setup(self) -> None:
        self._client = FlickrClient(load_credentials(self._cfg.credentials_path), self._cfg.rest_url,
                                    calls_per_second=self._cfg.calls_per_second)

    def _search(self, low: int, high: int, **params: object) -> dict:
        answer = self._client.call("flickr.photos.search", license=self._cfg.licenses, media="photos",
                                   safe_search=1, min_upload_date=low, max_upload_date=high, **params)
        photos = answer.get("photos") if isinstance(answer, dict) else None
        if not isinstance(photos, dict):
            raise BadApiResponse(f"the answer has no 'photos' object but a {value_kind(photos)}")
        return photos


class _SplitWindows(_ClientDoFn):
    """(low, high) -> windows under the depth cap. A count the API refuses (after retries) or
    answers with something that is no count becomes one rejection naming the sub-range it could not
    size; the rest of the range is still split.

    A range counted empty is a window too, of total 0, whose first page is read all the same (one call): the split
    dropped it unread, so one count of 0 that was not so (a blip of Flickr's search databases) lost the photos of
    that half of the range, never said. Its first page's answer plans the rest and its check says what was missed."""

    def process(self, span: tuple[int, int]) -> Iterator:
        refused: list[tuple[int, int, str, str]] = []
        counted_empty: list[tuple[int, int, int]] = []

        def total_in(low: int, high: int) -> int:
            try:
                total = answer_count(self._search(low, high, per_page=1), "total")
                if total == 0:
                    counted_empty.append((low, high, 0))
                return total
            except flickrapi.FlickrError as err:
                code = getattr(err, "code", None)
                refused.append((low, high, "api_error", f"window count refused, code {code}: {err}"))
            except BadApiResponse as err:
                refused.append((low, high, "bad_api_response", f"window count unreadable: {err}"))
            return 0  # skipped by split_windows; reported below

        depth = self._cfg.search_depth
        for window in split_windows(total_in, *span, depth=depth):
            yield window
            if window[2] > depth:  # one second past the depth, or the split's budget spent on totals that never shrink
                where = f"flickr:{window[0]}-{window[1]}"
                # the count is the API's: a JSON integer of 4,000 digits was a detail of 5,400 characters
                detail = f"the API counts {_shown_count(window[2])} results in this window; a search lists the first "
                yield reject(Rejection(where, STAGE, "over_search_depth", f"{detail}{depth:,}", "", where))
        yield from counted_empty
        for low, high, reason, detail in refused:
            where = f"flickr:{low}-{high}"
            yield reject(Rejection(where, STAGE, reason, detail[:300], "", where))


def _shown_count(count: int) -> str:
    """A count as a detail says it: with its thousands marked, or, past any count a search could mean (a JSON
    integer of thousands of digits is a count to `answer_count`), how many digits it has."""
    return f"{count:,}" if count < 10**15 else f"a {len(str(count)):,}-digit number of"


class PageTally(NamedTuple):
    """What one page of a window gave, for the window's check (`_CheckWindow`)."""

    page: int
    # each entry's photo id, or its window:page:position where it has no valid id; not an entry saying it was uploaded
    # outside the window (OfAnotherWindow)
    listed: frozenset[str]
    paging: SearchPaging | None  # what the answer said of its paging; None: refused or unreadable (its own rejection)
    planned: int  # page 1: the window's pages its answer planned (itself included); 0 for the others


class _ReadPage(_ClientDoFn):
    """(window, page) -> the page's Photos, a rejection per malformed entry (or one for a page refused or
    unreadable), the page's tally (TALLY), and for page 1 the window's other pages (LATER_PAGES)."""

    def process(self, window_page: tuple[tuple[int, int, int], int]) -> Iterator:
        window, page = window_page
        low, high, _total = window
        where = f"flickr:{low}-{high}:p{page}"
        # The later pages are planned from page 1's answer alone: without it they are not read (said here).
        unread = "; the window's later pages, planned from this answer, were not read" if page == 1 else ""
        try:
            results = self._search(low, high, per_page=PER_PAGE, page=page, extras=EXTRAS)
            paging = search_paging(results, PER_PAGE)
            entries = results.get("photo")
            if not isinstance(entries, list):
                raise BadApiResponse(f"the page's photo list is a {value_kind(entries)}")
            if len(entries) > paging.perpage:  # 64 MiB of entries was 4 million rows from one call, not 500
                raise BadApiResponse(f"the page lists {len(entries):,} photos, "
                                     f"more than its perpage of {paging.perpage}")
        except flickrapi.FlickrError as err:
            code = getattr(err, "code", None)
            detail = f"code {code}: {err}"[:300 - len(unread)] + unread
            yield reject(Rejection(where, STAGE, "api_error", detail, "", where))
            yield self._tally(window, PageTally(page, frozenset(), None, 0))
            return
        except BadApiResponse as err:
            detail = str(err)[:300 - len(unread)] + unread
            yield reject(Rejection(where, STAGE, "bad_api_response", detail, "", where))
            yield self._tally(window, PageTally(page, frozenset(), None, 0))
            return
        planned = 0
        if page == 1:
            pages = later_pages(paging, self._cfg.search_depth)
            planned = 1 + len(pages)
            for later in pages:
                yield beam.pvalue.TaggedOutput(LATER_PAGES, (window, later))
        listed = set()
        for index, entry in enumerate(entries):
            out, of_window = self._photo_or_rejection(entry, f"{where}:{index}", (low, high))
            if of_window:
                # An entry of another window is none of this one's: counted, it stood in for a photo of the window
                # that was never listed, and that photo's loss was said nowhere.
                listed.add(out.photo_id if isinstance(out, Photo) else out.value.photo_id)
            yield out
        yield self._tally(window, PageTally(page, frozenset(listed), paging, planned))

    @staticmethod
    def _tally(window: tuple[int, int, int], tally: PageTally) -> beam.pvalue.TaggedOutput:
        return beam.pvalue.TaggedOutput(TALLY, (window, tally))

    def _photo_or_rejection(self, entry: object, ref: str,
                            window: tuple[int, int]) -> tuple[Photo | beam.pvalue.TaggedOutput, bool]:
        """One entry's own outcome (a bad entry costs that entry, never the page it came in), and whether it may be
        one of the window's photos (False for an entry saying it was uploaded outside the window)."""
        try:
            return photo_from_search(entry, ref, self._cfg.max_side, self._cfg.originals,  # type: ignore[arg-type]
                                     window), True
        except (BadPhotoId, BadField) as err:
            rejection = Rejection(_entry_id(entry) or ref, STAGE, err.reason, str(err)[:300], "", ref)
            return reject(rejection), not isinstance(err, OfAnotherWindow)
        except Exception as err:  # a case no check foresaw: still this entry's outcome, not the whole page's
            detail = f"{type(err).__name__}: {err}"[:300]
            return reject(Rejection(_entry_id(entry) or ref, STAGE, "internal_error", detail, "", ref)), True


def window_shortfall(tallies: Iterable[PageTally], window_total: int, depth: int) -> tuple[int, str] | None:
    """(photos never listed, what happened) for a window whose pages together listed fewer different photos than
    it is said to hold, else None.

    What it holds is the largest total stated for it, by the count that sized it (`window_total`) or by any of its
    pages (a total can change while a search is paged; the larger is the one photos may have been missed from), up
    to the depth, past which no search lists. What a page's total puts past the depth is never listed either: only
    what the window's count put there is said by its over_search_depth rejection, the rest here (a window counted
    at 3,990 whose pages said 4,010 once 20 photos were uploaded in it lost its 10 oldest unsaid). Different photos:
    a page repeating another's (an API past its own depth, one ignoring `page`) adds none. A page refused or
    unreadable has its own rejection: the photos its place in the listing holds (a page of them, fewer for the
    last) are laid to it, not said twice. Laying a whole page to a short last page hid as many photos missing from
    the others: 50 missing from page 5 of 1,010 at 100 a page were never said when page 11 (10 photos) was
    unreadable. A window whose first page was not read has no plan to check: that page's rejection says the window
    was not read."""
    tallies = list(tallies)
    first = next((tally for tally in tallies if tally.page == 1), None)
    if first is None or first.paging is None:
        return None
    read = [tally.paging for tally in tallies if tally.paging is not None]
    counted = max(window_total, *(paging.total for paging in read))
    listed = len(frozenset().union(*(tally.listed for tally in tallies)))
    held, perpage = min(counted, depth), first.paging.perpage
    unread_pages = [tally.page for tally in tallies if tally.paging is None]
    unread = len(unread_pages)
    # Past the depth no page lists: an over_search_depth rejection says what the window's count put there, the rest
    # (uploads counted by its pages only) are never listed too.
    beyond = max(0, counted - max(window_total, depth))
    missing = held - listed - sum(max(0, min(perpage, held - (page - 1) * perpage)) for page in unread_pages) + beyond
    if missing <= 0:
        return None
    detail = (f"the API counts {counted:,} results in this window"
              + (f" (a search lists {depth:,})" if counted > depth else "")
              + f"; its {len(read)} of {first.planned} pages of {first.paging.perpage} listed {listed:,} different"
              + (f", {unread} unreadable (rejected on their own)" if unread else "")
              + f": {missing:,} never listed")
    return missing, detail


class _CheckWindow(beam.DoFn):
    """((low, high, total), [PageTally]) -> an `incomplete_window` rejection where the window's pages listed fewer
    photos than it holds (`window_shortfall`).

    A rejection naming the window, as `over_search_depth` and a refused count are, not a counter: photos never
    listed have no id to name, and a read rejection is what the run counts as an input row, so the window shows in
    the rejections table, the summary's funnel and `accounted`, where the source's other API problems are."""

    def __init__(self, depth: int) -> None:
        self._depth = depth

    def process(self, window_tallies: tuple[tuple[int, int, int], Iterable[PageTally]]) -> Iterator:
        (low, high, total), tallies = window_tallies
        shortfall = window_shortfall(tallies, total, self._depth)
        if shortfall is not None:
            where = f"flickr:{low}-{high}"
            yield reject(Rejection(where, STAGE, "incomplete_window", shortfall[1][:300], "", where))


class ReadFlickr(beam.PTransform):
    """PBegin -> (PCollection[Photo], PCollection[Rejection]): CC BY photos uploaded in the range."""

    def __init__(self, cfg: FlickrSourceConfig) -> None:
        super().__init__()
        self._cfg = cfg
        # Fail at construction, not in thousands of rejections: a refused key or missing credentials.
        FlickrClient(load_credentials(cfg.credentials_path), cfg.rest_url).check_key()

    def expand(self, pbegin: beam.pvalue.PBegin) -> StageOutput:
        span = pbegin | "Range" >> beam.Create([(self._cfg.min_upload, self._cfg.max_upload)])
        windows = apply_stage(span, STAGE, _SplitWindows(self._cfg), label=f"{STAGE}.windows")
        first_pages = (
            windows.kept
            | "SpreadWindows" >> beam.Reshuffle()
            | "FirstPages" >> beam.Map(lambda window: (window, 1))
        )
        tags = (LATER_PAGES, TALLY)
        first, first_out = apply_stage_with_outputs(first_pages, STAGE, _ReadPage(self._cfg), tags,
                                                    label=f"{STAGE}.first_pages")
        later_pages = first_out[LATER_PAGES] | "SpreadPages" >> beam.Reshuffle()
        later, later_out = apply_stage_with_outputs(later_pages, STAGE, _ReadPage(self._cfg), tags,
                                                    label=f"{STAGE}.pages")
        tallies = (
            (first_out[TALLY], later_out[TALLY])
            | "Tallies" >> beam.Flatten()
            | "ByWindow" >> beam.GroupByKey()
        )
        checked = apply_stage(tallies, STAGE, _CheckWindow(self._cfg.search_depth), label=f"{STAGE}.check_windows")
        kept = (first.kept, later.kept) | "Photos" >> beam.Flatten()
        rejected = (windows.rejected, first.rejected, later.rejected, checked.rejected) | "Rejections" >> beam.Flatten()
        return StageOutput(kept, rejected)


__all__ = ["CredentialsError", "FlickrSourceConfig", "ReadFlickr", "photo_from_search"]
