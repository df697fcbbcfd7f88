"""The field checks every source shares: here, that a row's URLs name the photo the row is about."""

from __future__ import annotations

import pytest

from pipeline.sources.fields import BadField, names_this_photo

OTHER_FILES = [
    "https://live.staticflickr.com/65535/7001_abcdef0123.jpg",
    "http://farm3.staticflickr.com/2/7001_abcdef0123_b.jpg",
    "https://live.staticflickr.com/65535/7001_0123abcd_o.png",
    "http://127.0.0.1:8000/1/007001_abcdef0123_z.jpg",
    "https://live.staticflickr.com/65535/7001_ABCDEF0123.JPG",
]
OTHER_PAGES = [
    "https://www.flickr.com/photos/someone/7001/",
    "http://flickr.com/photos/someone/7001",
    "https://m.flickr.com/photos/someone/07001/in/album-1/",
    "https://WWW.FLICKR.COM/photos/a@N01/7001/",
]


@pytest.mark.parametrize("url", OTHER_FILES)
def test_a_download_url_of_another_photos_file_is_refused(url):
    with pytest.raises(BadField, match="download URL names photo 7001, not 7000") as err:
        names_this_photo("7000", "", url)
    assert err.value.reason == "bad_field"


@pytest.mark.parametrize("page", OTHER_PAGES)
def test_a_flickr_page_of_another_photo_is_refused(page):
    with pytest.raises(BadField, match="page URL names photo 7001, not 7000"):
        names_this_photo("7000", page, "")


@pytest.mark.parametrize(("page", "download"), [
    ("https://www.flickr.com/photos/someone/7000/", "https://live.staticflickr.com/65535/7000_abcdef0123.jpg"),
    ("http://www.flickr.com/photos/a@N01/007000/", "http://farm3.staticflickr.com/2/7000_abcdef0123_o.jpg"),
    ("", "https://img.example.org/a/7001.jpg"),  # a user's own mirror: its file names say nothing
    ("https://example.org/p/7001", "http://h/x.jpg"),  # not a Flickr page
    ("", ""), ("", "http://[::1/x"),  # no URL, or one fetch names bad_url
])
def test_urls_naming_this_photo_or_nothing_pass(page, download):
    names_this_photo("7000", page, download)


def test_a_flickr_source_s_page_must_be_the_photo_s_flickr_page():
    for page in ("https://phish.example/login", "https://www.flickr.com/photos/someone/", "https://flickr.com/x/7000"):
        with pytest.raises(BadField, match="is not a Flickr photo page"):
            names_this_photo("7000", page, "", flickr_page=True)
    names_this_photo("7000", "http://www.flickr.com/photos/12345678@N00/7000/", "", flickr_page=True)
    names_this_photo("7000", "", "", flickr_page=True)  # no page: the attribution builds none from it
    with pytest.raises(BadField) as err:
        names_this_photo("7000", "", OTHER_FILES[0], "bad_api_entry")
    assert err.value.reason == "bad_api_entry"


@pytest.mark.parametrize("url", [
    "https://live.staticflickr.com/65535/7001_abcdef0123_z.jpg/x/..",  # sent as .../7001_abcdef0123_z.jpg/
    "https://live.staticflickr.com/65535/7001_abcdef0123_z.jpg/",
    "https://live.staticflickr.com/65535/7001_abcdef0123_z.jpg;7000_abcdef0123_z.jpg",
    "https://live.staticflickr.com/65535/7000_abcdef0123_z.jpg;7001_abcdef0123_z.jpg",
    "https://live.staticflickr.com/65535/7001_abcdef0123_z.jpg/./",
    "https://live.staticflickr.com/65535/7001%5Fabcdef0123_z.jpg",  # an escaped unreserved character is itself
    "https://live.staticflickr.com/65535/7001_abcdef0123_z.jpg/%2e",
])
def test_another_photos_file_anywhere_in_the_path_is_refused(url):
    """Only the raw last segment was read: a URL whose last segment is `..`, empty or holds a `;` named nothing and
    passed, though the client sends `/65535/7001_…jpg/` (dot segments removed) and a server may read `;…` as a
    parameter: another photo's file, fetched under this one's licence and credit."""
    with pytest.raises(BadField, match="download URL names photo 7001, not 7000"):
        names_this_photo("7000", "", url)


@pytest.mark.parametrize("url", [
    "https://live.staticflickr.com/65535/7000_abcdef0123_z.jpg/..%2F7001_abcdef0123_z.jpg",
    "https://live.staticflickr.com/65535/7000_abcdef0123_z.jpg/..%2f7001_abcdef0123_z.jpg",
    "https://live.staticflickr.com/65535/7000_abcdef0123_z.jpg%2F..%2F7001_abcdef0123_z.jpg",
    "https://live.staticflickr.com/65535/7000_abcdef0123_z.jpg/..%5C7001_abcdef0123_z.jpg",
    "https://live.staticflickr.com/65535/7000_abcdef0123_z.jpg/..%252F..%2F7001_abcdef0123_z.jpg",
])
def test_another_photos_file_reached_through_an_escaped_slash_is_refused(url):
    """A server decoding `%2F` (or `%5C`) before it removes dot segments, as nginx does, serves
    `/65535/7000_….jpg/..%2F7001_….jpg` as photo 7001's file: it passed, read as RFC 3986 reads it (one segment
    naming nothing), and that photo would be published under this one's licence and credit."""
    with pytest.raises(BadField, match="download URL names photo 7001, not 7000"):
        names_this_photo("7000", "", url)


def test_an_escaped_slash_reaching_this_photos_own_file_passes():
    names_this_photo("7000", "", "https://live.staticflickr.com/65535/x%2F..%2F7000_abcdef0123_z.jpg")


def test_a_flickr_page_is_read_as_a_browser_reaches_it():
    with pytest.raises(BadField, match="page URL names photo 7001, not 7000"):
        names_this_photo("7000", "https://www.flickr.com/photos/someone/7000/../../someone/7001/", "")
    names_this_photo("7000", "https://www.flickr.com/photos/someone/7001/../7000/", "", flickr_page=True)
