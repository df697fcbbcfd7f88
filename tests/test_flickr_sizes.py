"""The size table against Flickr's documentation (misc.urls.html and the photos.search extras),
written out here by hand so that a wrong entry in the code's table cannot agree with itself."""

from __future__ import annotations

import pytest

from pipeline.flickr.sizes import BUILDABLE, BY_EXTRA, BY_SUFFIX, RESIZED, SIZES, smallest_covering

# suffix in the static URL: (longest side in px, the photos.search extra that lists it)
DOCUMENTED = {
    "_s": (75, "url_sq"), "_q": (150, "url_q"), "_t": (100, "url_t"), "_m": (240, "url_s"),
    "_n": (320, "url_n"), "_w": (400, "url_w"), "": (500, "url_m"), "_z": (640, "url_z"),
    "_c": (800, "url_c"), "_b": (1024, "url_l"), "_h": (1600, "url_h"), "_k": (2048, "url_k"),
}
CROPPED = {"_s", "_q"}  # cropped squares, never the whole photo
OWN_SECRET = {"_h", "_k", "_o"}  # "has a unique secret": not buildable from the shared one
AFTER_2012_03_01 = {"_c", "_h", "_k"}
MARCH_2012, MAY_2010 = 1_330_560_000, 1_274_745_600


def test_the_table_is_the_documented_one():
    assert {s.suffix: (s.longest, s.extra) for s in SIZES if s.suffix != "_o"} == DOCUMENTED
    assert BY_SUFFIX["_o"].extra == "url_o" and "url_b" not in BY_EXTRA
    assert {s.suffix for s in SIZES if s.cropped} == CROPPED
    assert {s.suffix for s in SIZES if s.own_secret} == OWN_SECRET
    assert [s.suffix for s in BUILDABLE] == ["", "_z", "_c", "_b"]
    assert [s.longest for s in RESIZED] == sorted(s for suffix, (s, _) in DOCUMENTED.items() if suffix not in CROPPED)


@pytest.mark.parametrize("suffix", sorted(AFTER_2012_03_01))
def test_800_1600_and_2048_exist_only_after_march_2012(suffix):
    size = BY_SUFFIX[suffix]
    assert size.exists_for(MARCH_2012 - 1, 5000) is False and size.exists_for(MARCH_2012, 5000) is True
    assert size.exists_for(None, 5000) is None  # unknown upload date: cannot tell


def test_large_before_may_2010_only_for_very_large_originals():
    large = BY_SUFFIX["_b"]
    assert large.exists_for(MAY_2010, 1024) is True and large.exists_for(MAY_2010 - 1, 1024) is False
    assert large.exists_for(MAY_2010 - 1, 4000) is True and large.exists_for(MAY_2010 - 1, None) is None
    assert large.exists_for(MARCH_2012, 900) is False  # never larger than the original
    assert BY_SUFFIX["_z"].exists_for(1_000_000_000, None) is True and BY_SUFFIX[""].exists_for(0, 100) is True


@pytest.mark.parametrize(("max_side", "suffix"), [(100, "_t"), (240, "_m"), (300, "_n"), (500, ""), (512, "_z"),
                                                  (800, "_c"), (1000, "_b"), (2000, "_k"), (9999, "_k")])
def test_smallest_covering(max_side, suffix):
    assert smallest_covering(RESIZED, max_side).suffix == suffix
    assert smallest_covering((), max_side) is None
