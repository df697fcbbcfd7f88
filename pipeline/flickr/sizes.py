"""Flickr's resized copies of a photo, as documented: one table for the source (which search extras
to ask for and which copy to download), the fetch stage (which static URL to build) and the
fixture server (which copies to list and serve, at which size).

From https://www.flickr.com/services/api/misc.urls.html and the `extras` of flickr.photos.search:
the static URL of a copy is `…/{server}/{id}_{secret}_{suffix}.jpg` (no `_{suffix}` for the 500 px
"Medium"), and a search asked for `extras=url_X` answers `url_X`, `width_X` and `height_X` for the
copy of that *label*, which is not always its suffix: `url_s` is the 240 px `_m` copy, `url_m` the
500 px unsuffixed one, `url_l` the 1024 px `_b` one. There is no `url_b`.

Which copies exist (the documentation's footnotes):
  * Medium 800 (c), Large 1600 (h) and Large 2048 (k) only for photos uploaded after 1 March 2012;
  * Large 1024 (b) for photos uploaded before 25 May 2010 only when the original is very large;
  * h, k and the original have a secret of their own, given only by the API (`url_h`, `url_k`,
    `originalsecret`): their URLs cannot be built from the shared `secret`.
Most of YFCC100M predates both dates, so a copy above 640 px cannot be assumed to exist.
"""

from __future__ import annotations

from dataclasses import dataclass

MEDIUM_800_SINCE = 1_330_560_000  # 2012-03-01T00:00:00Z: c, h and k exist for uploads from then on
LARGE_SINCE = 1_274_745_600  # 2010-05-25T00:00:00Z: b exists for every large-enough upload from then on
# "Very large" is not quantified by the API documentation; Flickr's help of the time said a large
# copy was made when the original's longest side exceeded 1280 px. Only the fixture world relies on it.
VERY_LARGE = 1280


@dataclass(frozen=True)
class FlickrSize:
    suffix: str  # in the static URL: "_z"; "" for the 500 px Medium
    extra: str  # the photos.search extra: "url_z" (with "width_z", "height_z"); "" where none exists
    longest: int  # longest side in pixels; 0 for the original (its own size)
    label: str
    cropped: bool = False  # a cropped square, never the whole photo
    own_secret: bool = False  # its URL needs a secret only the API gives (never built from `secret`)
    since: int = 0  # uploads before this epoch second have the copy only when their original is over `old_if_over`
    old_if_over: int | None = None  # None: uploads before `since` never have it

    @property
    def letter(self) -> str:
        """The extra's own letter(s): "z" for url_z, "l" for url_l (whose suffix is "_b")."""
        return self.extra.removeprefix("url_")

    def exists_for(self, uploaded: int | None, original_side: int | None) -> bool | None:
        """Whether Flickr has this copy of a photo uploaded at `uploaded` (epoch seconds) whose
        original's longest side is `original_side`; None when that cannot be told (unknown date
        or original size where the answer depends on it). A copy is never larger than the original."""
        if self.longest > 500 and original_side is not None and original_side < self.longest:
            return False
        if uploaded is None:
            return None if self.since else True
        if uploaded >= self.since:
            return True
        if self.old_if_over is None:
            return False
        return None if original_side is None else original_side > self.old_if_over


SIZES: tuple[FlickrSize, ...] = (
    FlickrSize("_s", "url_sq", 75, "Square", cropped=True),
    FlickrSize("_q", "url_q", 150, "Large Square", cropped=True),
    FlickrSize("_t", "url_t", 100, "Thumbnail"),
    FlickrSize("_m", "url_s", 240, "Small"),
    FlickrSize("_n", "url_n", 320, "Small 320"),
    FlickrSize("_w", "url_w", 400, "Small 400"),
    FlickrSize("", "url_m", 500, "Medium"),
    FlickrSize("_z", "url_z", 640, "Medium 640"),
    FlickrSize("_c", "url_c", 800, "Medium 800", since=MEDIUM_800_SINCE),
    FlickrSize("_b", "url_l", 1024, "Large", since=LARGE_SINCE, old_if_over=VERY_LARGE),
    FlickrSize("_h", "url_h", 1600, "Large 1600", own_secret=True, since=MEDIUM_800_SINCE),
    FlickrSize("_k", "url_k", 2048, "Large 2048", own_secret=True, since=MEDIUM_800_SINCE),
    FlickrSize("_o", "url_o", 0, "Original", own_secret=True),
)
BY_SUFFIX = {size.suffix: size for size in SIZES}
BY_EXTRA = {size.extra: size for size in SIZES}
# Whole-photo resized copies, smallest first: what a dataset may download.
RESIZED = tuple(sorted((s for s in SIZES if s.longest and not s.cropped), key=lambda s: s.longest))
# Those whose URL can be built from a photo's shared secret, smallest first (the unsuffixed 500 px
# copy and up: smaller ones are never worth fetching for a dataset).
BUILDABLE = tuple(s for s in RESIZED if not s.own_secret and s.longest >= 500)


def smallest_covering(sizes: tuple[FlickrSize, ...], max_side: int) -> FlickrSize | None:
    """The smallest of `sizes` (sorted smallest first) whose longest side reaches `max_side`, else
    the largest of them; None when `sizes` is empty."""
    return next((size for size in sizes if size.longest >= max_side), sizes[-1] if sizes else None)
