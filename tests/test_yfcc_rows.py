"""YFCC100M metadata lines for the demo, tests and benchmarks (pipeline/fixtures/yfcc_rows.py): 25 tab-separated
columns without the newline, text fields URL-encoded, read back by the YFCC source as they were given."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.fixtures.yfcc_rows import CC_BY_2, CC_BY_NC_2, yfcc_line
from pipeline.records import Photo
from pipeline.sources.yfcc import COLUMNS_25, parse_line

# Any text but a NUL (the source refuses one, '%00' included) and lone surrogates (no UTF-8 spells them).
_TEXT = st.text(st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=40)


def _cells(line: str) -> dict[str, str]:
    assert "\n" not in line and "\r" not in line, line
    cells = line.split("\t")
    assert len(cells) == len(COLUMNS_25), cells
    return dict(zip(COLUMNS_25, cells, strict=True))


def test_a_line_is_25_columns_of_a_cc_by_photo_on_its_flickr_page():
    cells = _cells(yfcc_line(7, "123", "http://h/1/123_ab.jpg"))
    assert (cells["line_number"], cells["photo_id"], cells["download_url"]) == ("7", "123", "http://h/1/123_ab.jpg")
    assert len(cells["photo_hash"]) == 16 and int(cells["photo_hash"], 16) >= 0
    assert cells["page_url"] == "http://www.flickr.com/photos/12345678@N00/123/"
    assert (cells["license_name"], cells["license_url"]) == CC_BY_2  # as YFCC gives them: not encoded
    assert cells["marker"] == "0" and cells["extension"] == "jpg"
    photo = parse_line(yfcc_line(7, "123", "http://h/1/123_ab.jpg").encode(), "f.tsv:7")
    assert isinstance(photo, Photo) and photo.photo_id == "123" and photo.marker == 0
    assert (photo.license_source_text, photo.license_source_url) == CC_BY_2
    assert photo.owner_nsid == "12345678@N00" and photo.owner_name == "demo owner"


def test_each_photo_is_its_own_and_the_same_each_time():
    """The demo and benchmarks build their metadata again on every run: a photo's line is the same each time, and two
    photos' hashes and upload dates differ."""
    assert yfcc_line(1, "5", "u") == yfcc_line(1, "5", "u")
    first, second = _cells(yfcc_line(1, "5", "u")), _cells(yfcc_line(2, "6", "u"))
    assert first["photo_hash"] != second["photo_hash"] and first["date_uploaded"] != second["date_uploaded"]


def test_the_licence_owner_title_and_marker_given_are_the_line_s():
    photo = parse_line(yfcc_line(3, "9", "http://h/9_ab.jpg", owner_nsid="99@N01", owner_name="Zoë",
                                 title="A title", license=CC_BY_NC_2, marker=1).encode(), "f:3")
    assert isinstance(photo, Photo)
    assert (photo.owner_nsid, photo.owner_name, photo.title, photo.marker) == ("99@N01", "Zoë", "A title", 1)
    assert (photo.license_source_text, photo.license_source_url) == CC_BY_NC_2
    assert photo.page_url == "http://www.flickr.com/photos/99@N01/9/"


@pytest.mark.parametrize("name", ["owner_name", "title", "description", "tags", "machine_tags", "capture_device"])
@given(text=_TEXT)
def test_a_text_field_is_url_encoded_and_read_back_as_given(name, text):
    """Tabs, line breaks, '+', '%' and any other character stay inside their column and come back as given. The
    capture device, given, was written as it was (its default spelt encoded): `Nikon D3+` was read as `Nikon D3 `."""
    line = yfcc_line(1, "5", "http://h/5_ab.jpg", **{name: text})
    _cells(line)
    photo = parse_line(line.encode(), "f:1")
    assert isinstance(photo, Photo) and getattr(photo, name) == text, photo


def test_another_column_given_replaces_its_value_as_it_is():
    """A test may give any column as it wants it read (a date, a page URL): written as given, not encoded."""
    cells = _cells(yfcc_line(1, "5", "u", date_uploaded="1367400123", page_url="http://x/y", secret="s3"))
    assert (cells["date_uploaded"], cells["page_url"], cells["secret"]) == ("1367400123", "http://x/y", "s3")


def test_a_column_no_yfcc_line_has_is_refused_not_dropped():
    """A column misspelt (`titel=`, `licence_url=`) was dropped without a word: the line was the default one, and a
    test meaning to give a title or a licence checked a line without it, passing whatever the source did."""
    for misspelt in ({"titel": "A title"}, {"licence_url": "http://x/"}, {"Title": "x"}):
        with pytest.raises(TypeError, match=f"no YFCC column {next(iter(misspelt))!r}"):
            yfcc_line(1, "5", "u", **misspelt)
