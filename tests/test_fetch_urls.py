"""Which URLs may be fetched (`io/fetch_urls.py`): allow-list patterns with ports and IPv6 spellings, URLs that
parsers could read as different hosts, and Flickr's deleted-photo placeholder. Requests for them are tested in
test_http_client.py, against local servers."""

from __future__ import annotations

import pytest

from pipeline.io.fetch_urls import host_allowed, is_placeholder


def test_allow_list_patterns():
    patterns = ("live.staticflickr.com", "farm*.staticflickr.com", "127.0.0.1:8080")
    assert host_allowed("https://live.staticflickr.com/1/2_ab.jpg", patterns)
    assert host_allowed("http://farm3.staticflickr.com/1/2_ab.jpg", patterns)
    assert host_allowed("http://127.0.0.1:8080/x.jpg", patterns)
    assert not host_allowed("http://127.0.0.1:8081/x.jpg", patterns)
    assert not host_allowed("http://live.staticflickr.com.evil.com/x.jpg", patterns)
    assert not host_allowed("ftp://live.staticflickr.com/x.jpg", patterns)
    assert not host_allowed("file:///etc/passwd", patterns)
    # A pattern without a port allows the scheme's own port only; one with a port, that port (the default too).
    assert host_allowed("https://live.staticflickr.com:443/1/2_ab.jpg", patterns)
    assert host_allowed("http://farm3.staticflickr.com:80/1/2_ab.jpg", patterns)
    assert not host_allowed("https://live.staticflickr.com:6379/x.jpg", patterns)
    assert not host_allowed("http://live.staticflickr.com:443/x.jpg", patterns)
    assert host_allowed("https://images.example.org/x.jpg", ("images.example.org:443",))
    assert not host_allowed("http://images.example.org/x.jpg", ("images.example.org:443",))
    # IPv6: alone (more than one colon) or in brackets, with or without a port.
    assert host_allowed("http://[::1]/a.jpg", ("::1",)) and host_allowed("http://[2001:db8::1]/a.jpg", ("2001:db8::1",))
    assert not host_allowed("http://[::1]:8080/a.jpg", ("::1",))
    assert host_allowed("http://[::1]:8080/a.jpg", ("[::1]:8080",)) and host_allowed("http://[::1]/a.jpg", ("[::1]",))
    assert not host_allowed("http://[::1]:8081/a.jpg", ("[::1]:8080",))
    # An address matches however either side spells it (the long and the short form are one host).
    assert host_allowed("http://[2001:db8:0:0:0:0:0:1]/a.jpg", ("2001:db8::1",))
    assert host_allowed("http://[2001:DB8::1]:8080/a.jpg", ("[2001:0db8:0::0001]:8080",))
    assert not host_allowed("http://[2001:db8:0:0:0:0:0:2]/a.jpg", ("2001:db8::1",))
    # A wildcard pattern matches either spelling of the address
    for url in ("http://[2001:db8::1]/a.jpg", "http://[2001:db8:0:0:0:0:0:1]/a.jpg"):
        assert host_allowed(url, ("2001:db8::*",)) and host_allowed(url, ("2001:0db8:0000:*",)), url
    assert host_allowed("http://[2001:db8:0:0:0:0:0:1]/a.jpg", ("2001:db8:0:0:*",))  # as the URL writes it
    assert not host_allowed("http://[2001:db9::1]/a.jpg", ("2001:0db8:0000:*",))


def test_host_names_match_the_allow_list_whatever_the_case_either_writes_them_in():
    """Host names are case-insensitive: a pattern written 'Live.StaticFlickr.com' (as --allowed_hosts may be typed)
    allows the host however a URL writes it, and only that host. Compared as written, such a pattern matched no
    URL (hosts are read lower-cased), and every download was host_not_allowed."""
    for pattern in ("Live.StaticFlickr.com", "LIVE.STATICFLICKR.COM:443", "Farm*.StaticFlickr.com"):
        for url in ("https://live.staticflickr.com/1/2_ab.jpg", "https://LIVE.StaticFlickr.com/1/2_ab.jpg"):
            allowed = host_allowed(url, (pattern,)) if not pattern.startswith("Farm") else \
                host_allowed(url.replace("live", "farm3").replace("LIVE", "FARM3"), (pattern,))
            assert allowed, (pattern, url)
    assert not host_allowed("https://live.staticflickr.com.evil.com/x.jpg", ("Live.StaticFlickr.com",))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:1\\@127.0.0.1:8080/x.jpg",  # backslash
    "http://127.0.0.1:8080/a\\b.jpg",
    "http://u:p@127.0.0.1:8080/x.jpg",  # user info
    "http://127.0.0.1:8080 /x.jpg",  # spaces, tabs, newlines: urllib.parse drops some, urllib3 does not
    "http://127.0.0.1:8080/x\t.jpg",
    "http://127.0.0.1:8080/x\n.jpg",
    "http://127.0.0.1:8080/\u00e4.jpg",  # non-ASCII
    "http://127.0.0.%31:8080/x.jpg",  # hosts that parse differently
    "http://127.0.0.1:99999/x.jpg",  # bad ports
    "http://127.0.0.1:80a/x.jpg",
    "http:///x.jpg",  # no host
    "http:127.0.0.1:8080/x.jpg",
])
def test_allow_list_refuses_ambiguous_urls(url):
    assert not host_allowed(url, ("127.0.0.*", "127.0.0.1:8080", "*"))


def test_flickr_s_deleted_photo_placeholder_is_recognised():
    assert is_placeholder("https://s.yimg.com/pw/images/fr-fr/photo_unavailable_t.png")
    assert is_placeholder("https://l.yimg.com/g/images/photo_unavailable.gif")
    assert not is_placeholder("https://s.yimg.com/pw/images/logo.png")
    assert not is_placeholder("https://evil.example/pw/images/photo_unavailable.png")
