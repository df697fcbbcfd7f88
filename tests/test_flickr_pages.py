"""Flickr photo pages (pipeline/io/flickr_pages.py): the host as it is sent, the owner a page names, the account a row
credits, and the one account a photo is of."""

from __future__ import annotations

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from pipeline.io.flickr_pages import account, credited_account, normal_host, page_owner

# A final dot, each way it may be written: IDNA makes the ideographic, full-width and half-width full stops a '.', and
# an escape of any of them is one to whoever decodes the host.
FINAL_DOTS = [".", "\u3002", "\uff0e", "\uff61", "%2E", "%2e", "%E3%80%82", "%ef%bc%8e", "%EF%BD%A1"]
HOST_PARTS = st.sampled_from(["www", "flickr", "com", "m", "secure", "\uff46\uff4c\uff49\uff43\uff4b\uff52", "W",
                              "b\u00fccher", "xn--bcher-kva", "de", "\u00ad", "%41", "%2e", "%", "ex_ample", "\u0131",
                              "\u200b", "-", ".", "\u3002", "1", "%25", "%C3%BC", "%ef%bd%97", "%C2%AD", "%FF",
                              "%E3%80%82", "%2F", "[", "%5B", "%40"])
HOSTS = st.lists(HOST_PARTS | st.text(max_size=3), max_size=6).map("".join)


def test_a_host_is_lower_cased_with_its_escapes_normal():
    assert normal_host("WWW.FLICKR.COM") == "www.flickr.com"
    assert normal_host("fl%69ckr.com") == "flickr.com"


def test_an_international_host_is_in_the_idna_form_requests_sends():
    assert normal_host("B\u00dccher.de") == "xn--bcher-kva.de"
    assert normal_host("\uff46\uff4c\uff49\uff43\uff4b\uff52.com") == "flickr.com"  # full-width letters
    assert normal_host("fl\u00adickr.com") == "flickr.com"  # a soft hyphen, which IDNA drops


def test_a_host_idna_refuses_is_compared_as_written():
    assert normal_host("ex_ample.\u00e9.com") == "ex_ample.%c3%a9.com"


def test_a_lone_surrogate_in_a_host_is_a_value_error():
    with pytest.raises(ValueError):
        normal_host("flickr.com\udc80")


@given(HOSTS)
def test_normal_host_is_idempotent(host):
    try:
        normal = normal_host(host)
    except ValueError:
        reject()  # refused hosts are tested above; too many refused and Hypothesis fails the test, never a pass
    assert normal_host(normal) == normal
    assert normal.isascii() and normal == normal.lower() and not normal.endswith(".")


@pytest.mark.parametrize("dot", FINAL_DOTS)
def test_a_final_dot_however_written_is_dropped(dot):
    """A final dot escaped after full-width letters (IDNA refused the '%', so the letters stayed escaped), and one
    written as an escaped ideographic or full-width full stop, was kept: Flickr's own host read as none of its."""
    assert normal_host(f"www.flickr.com{dot}") == "www.flickr.com"
    assert normal_host(f"\uff57\uff57\uff57.flickr.com{dot}") == "www.flickr.com"  # with full-width letters too


@pytest.mark.parametrize("dots", ["..", "\u3002\u3002", ".\u3002", "\u3002.", "%2E\u3002", "\uff0e%2e", "%2E%2E"])
def test_several_final_dots_however_written_are_all_dropped(dots):
    """Several plain final dots were all dropped and so were escaped ones, but two ideographic ones (or a plain one
    before an ideographic one) were kept, escaped: the same host read as none of Flickr's."""
    assert normal_host(f"www.flickr.com{dots}") == "www.flickr.com"
    assert normal_host(f"www.flickr.com{dots * 500_000}") == "www.flickr.com"  # a million of them, read once


def test_a_final_dot_is_dropped():
    assert normal_host("www.flickr.com.") == normal_host("www.flickr.com..") == "www.flickr.com"
    assert normal_host("www.flickr.com\u3002") == normal_host("www.flickr.com.%2E") == "www.flickr.com"


@given(HOSTS, st.lists(st.sampled_from(FINAL_DOTS), min_size=1, max_size=3))
def test_final_dots_however_written_name_the_host_without_them(host, dots):
    try:
        expected = normal_host(host)
    except ValueError:
        reject()  # as above: a normal_host refusing every host fails here, not passes
    assert normal_host(host + "".join(dots)) == expected


@pytest.mark.parametrize("url", [
    "https://www.flickr.com/photos/12345@N01/7/",
    "https://www.flickr.com/photos/12345@N01/7",
    "www.flickr.com/photos/12345@N01/7/",  # pasted without its scheme
    "http://flickr.com/photos/12345@N01/7/in/album-1/",
    "https://m.flickr.com/photos/12345@N01/7/",
    "https://secure.flickr.com/photos/12345@N01/7/",
    "https://WWW.FLICKR.COM./photos/12345@N01/7/",
    "https://www.flickr.com/photos/0012345@n01/7/",  # another spelling of the same account
    "https://www.flickr.com/photos/12345%40N01/7/",  # "@" escaped, as a server reads it
    "https://www.flickr.com/photos/%31%32%33%34%35@N01/0007/",
    "https://www.flickr.com/photos/alias/../12345@N01/7/",  # dot segments, as requests sends the path
    "https://www.flickr.com/photos/alias/%2E%2E/12345@N01/7/",
    "https://\uff46\uff4c\uff49\uff43\uff4b\uff52.com/photos/12345@N01/7/",
    "https://www.flickr.com\u3002/photos/12345@N01/7/",
    "https://www.flickr.com:443/photos/12345@N01/7/?ref=a#top",
    "https://editor@www.flickr.com/photos/12345@N01/7/",
    " https://www.flickr.com/photos/12345@N01/7/",  # leading space, as urlsplit and browsers drop it
])
def test_a_flickr_photo_page_names_its_owner_in_flickrs_one_spelling(url):
    assert page_owner(url) == "12345@N01"


@pytest.mark.parametrize("url", [
    "https://www.flickr.com/photos/someone/7/",  # an alias: only the API knows whose it is
    "https://www.flickr.com/photos/12345@N01/",  # the account's page, not a photo's
    "https://www.flickr.com/photos/12345@N01/abc/",
    "https://www.flickr.com/people/12345@N01/",
    "https://www.flickr.com/Photos/12345@N01/7/",
    "https://www.flickr.com//photos/12345@N01/7/",
    "https://www.flickr.com/photos/12345@N01//7/",
    "https://flickr.com.evil.example/photos/12345@N01/7/",
    "https://evil.example/photos/12345@N01/7/",
    "https://www.flickr.com@evil.example/photos/12345@N01/7/",  # the host is evil.example
    "https://blog.flickr.com/photos/12345@N01/7/",
    "https://www.fl\u0131ckr.com/photos/12345@N01/7/",  # a dotless i
    "https://www.flickr.com/photos/\uff11\uff12\uff13\uff14\uff15@N01/7/",  # full-width digits: another path
    "https://www.flickr.com/photos/12345\u200b@N01/7/",  # a zero-width space
    "https://www.flickr.com/photos/12345@N01%00/7/",
    "https://www.flickr.com/photos/12345@N001/7/",
    "https://www.flickr.com/photos/123456789012345678901@N01/7/",  # an id of 21 digits
    "https://www.flickr.com/photos/12345%2540N01/7/",  # an escaped "%": "%40" as data, not "@"
    "https://[::1/photos/12345@N01/7/",  # no URL urlsplit reads
    "https://www.flickr.com/photos/12345@N01/7/\udc80",  # a lone surrogate
    "",
    "12345@N01",
])
def test_any_other_url_names_no_owner(url):
    assert page_owner(url) is None


def test_a_huge_url_names_no_owner_and_is_read_whole():
    assert page_owner("https://www.flickr.com/photos/" + "1" * 1_000_000 + "@N01/7/") is None
    assert page_owner("https://www.flickr.com/photos/12345@N01/" + "0" * 1_000_000 + "x") is None
    assert page_owner("https://www.flickr.com/photos/12345@N01/7/" + "../" * 100_000) is None
    assert page_owner("https://www.flickr.com/photos/12345@N01/7/" + "a/" * 100_000) == "12345@N01"


@given(st.text(max_size=60))
def test_page_owner_takes_any_text_and_answers_an_account_id_or_none(text):
    for url in (text, f"https://www.flickr.com/photos/{text}", f"https://www.flickr.com/photos/{text}/7/"):
        owner = page_owner(url)
        assert owner is None or credited_account(owner) == owner


@pytest.mark.parametrize(("credited", "expected"), [
    ("12345@N01", "12345@N01"),
    ("0012345@n01", "12345@N01"),
    (" 12345@N01\n", "12345@N01"),  # as a table's cell may hold it
    ("Ann Smith", ""),
    ("", ""),
    ("12345@N01 12345@N01", ""),
    ("\u200b12345@N01", ""),  # a zero-width space is no white space: a name, not the id
    ("\uff11\uff12\uff13@N01", ""),  # full-width digits
    ("12345@N01x", ""),
])
def test_a_credited_account_is_an_account_id_in_flickrs_one_spelling_else_empty(credited, expected):
    assert credited_account(credited) == expected


def test_a_photos_account_is_its_owner_id_then_its_page_then_what_its_row_credits():
    page = "https://www.flickr.com/photos/222@N02/7/"
    assert account("0111@n01", page, "333@N03") == "111@N01"  # the owner id, in Flickr's one spelling
    assert account("someone", page, "333@N03") == "someone"  # an owner id that is no NSID, as it is
    assert account("", page, "333@N03") == "222@N02"
    assert account("", "https://www.flickr.com/photos/alias/7/", "0333@n03") == "333@N03"
    assert account("", "", "333@N03") == "333@N03"
    assert account("", "https://www.flickr.com/photos/alias/7/", "Ann Smith") == ""
    assert account("", "", "") == ""


@pytest.mark.parametrize(("host", "expected"), [
    ("%EF%BD%97%EF%BD%97%EF%BD%97.flickr.com", "www.flickr.com"),  # full-width "www", escaped
    ("\uff57\uff57\uff57%2Eflickr.com", "www.flickr.com"),  # an escaped dot between full-width letters
    ("www.flickr.com%C2%AD", "www.flickr.com"),  # an escaped soft hyphen, which IDNA drops
    ("b%C3%BCcher.de", "xn--bcher-kva.de"),
    ("www.flickr%252Ecom", "www.flickr%252ecom"),  # an escaped '%' is decoded once, as a browser does: no dot
    ("www.flickr.com%252E", "www.flickr.com%252e"),
    ("a.example%2Fb", "a.example%2fb"),  # a delimiter stays escaped: no host holds one, and a.example/b is a path
    ("evil.example%40www.flickr.com", "evil.example%40www.flickr.com"),
    ("%EF%BC%8F%EF%BD%97", "%ef%bc%8f%ef%bd%97"),  # a full-width '/' IDNA refuses: as written
])
def test_a_host_is_read_with_its_escapes_decoded_as_a_browser_decodes_them(host, expected):
    """A browser decodes every escape of a host (as UTF-8) before IDNA reads it; here only an escaped ASCII letter,
    digit or dot was, so a host of escaped full-width letters or an escaped soft hyphen, which a browser opens as
    www.flickr.com, was read as none of Flickr's: its page named no account (the owner cap, an `owner` takedown and
    the credit missed it)."""
    assert normal_host(host) == expected


@pytest.mark.parametrize("url", [
    "https://%EF%BD%97%EF%BD%97%EF%BD%97.flickr.com/photos/12345@N01/7/",
    "https://\uff57\uff57\uff57%2Eflickr.com/photos/12345@N01/7/",
    "https://www.flickr.com%C2%AD/photos/12345@N01/7/",
    "https://%EF%BD%86%EF%BD%8C%EF%BD%89%EF%BD%83%EF%BD%8B%EF%BD%92.com/photos/12345@N01/7/",
])
def test_a_flickr_page_whose_host_is_escaped_names_its_owner(url):
    assert page_owner(url) == "12345@N01"


@pytest.mark.parametrize("url", [
    "https://evil.example%40www.flickr.com/photos/12345@N01/7/",  # a browser refuses a host holding '@'
    "https://www.flickr.com%2Fevil.example/photos/12345@N01/7/",
    "https://www.flickr.com%252E/photos/12345@N01/7/",  # '%' left once decoded: no host a browser opens
    "https://%FF.flickr.com/photos/12345@N01/7/",  # no UTF-8
])
def test_a_host_whose_escapes_decode_to_no_flickr_host_names_no_owner(url):
    assert page_owner(url) is None
