from urllib.parse import urlsplit, urlunsplit

import apache_beam as beam
import pytest
import requests
from apache_beam.testing.util import assert_that, equal_to

from pipeline.build import fetch_settings
from pipeline.fixtures.static_server import PLACEHOLDER_URL, StaticServer, image, redirect, status
from pipeline.io.http_client import FetchConfig, Fetcher
from pipeline.io.http_deadline import DeadlineAdapter
from pipeline.options import PassOptions
from pipeline.stages.fetch import Fetch, _FetchBatch, sized_url
from tests.conftest import local_pipeline, photo, real_jpeg


@pytest.mark.parametrize("max_side,suffix", [
    (240, ""), (500, ""), (512, "_z"), (800, "_c"), (1024, "_b"), (4096, "_b")])
def test_sized_url_picks_smallest_flickr_size_covering_max_side(max_side, suffix):
    p = photo("123", download_url="http://farm4.staticflickr.com/3069/123_a5cea91de3.jpg")
    assert sized_url(p, max_side) == f"http://farm4.staticflickr.com/3069/123_a5cea91de3{suffix}.jpg"


def test_sized_url_builds_live_url_and_keeps_other_shapes():
    assert sized_url(photo("9", server_id="65535", secret="ab12"), 500) == "https://live.staticflickr.com/65535/9_ab12.jpg"
    assert sized_url(photo("9", download_url="http://h/x/y.png"), 1024) == "http://h/x/y.png"
    assert sized_url(photo("9"), 500) == ""
    # Digits of another script name no Flickr photo, nor does a URL ending in a newline: such a URL is fetched as given
    # (and refused as bad_url), never rebuilt as a sized copy.
    for odd in ("http://farm4.staticflickr.com/3069/\u0663_a5cea91de3.jpg",
                "http://farm\u0664.staticflickr.com/3069/9_a5cea91de3.jpg",
                "http://farm4.staticflickr.com/3069/9_a5cea91de3.jpg\n"):
        assert sized_url(photo("9", download_url=odd), 1024) == odd


def test_stage_fetches_concurrently_and_rejects_with_reasons():
    jpeg = real_jpeg()
    with StaticServer() as server, StaticServer() as elsewhere:
        photos = [photo(str(i), download_url=server.add(f"/1/{i}_ab.jpg", image(jpeg))) for i in range(40)]
        photos.append(photo("404", download_url=server.add("/1/404_ab.jpg", status(404))))
        photos.append(photo("nourl"))
        # Checked as the allowed host by urllib.parse, fetched from `elsewhere` by requests: refused.
        elsewhere.add("/1/7_ab.jpg", image(jpeg))
        photos.append(photo("7", download_url=f"http://{elsewhere.host}\\@{server.host}/1/7_ab.jpg"))
        opts = PassOptions([f"--allowed_hosts={server.host}", "--fetch_threads=8"])
        with local_pipeline() as p:
            out = p | beam.Create(photos) | Fetch(fetch_settings(opts))
            assert_that(out.kept | beam.Map(lambda ph: (ph.photo_id, ph.raw == jpeg)),
                        equal_to([(str(i), True) for i in range(40)]), label="kept")
            assert_that(out.rejected | beam.Map(lambda r: (r.photo_id, r.stage, r.reason)),
                        equal_to([("404", "fetch", "not_found"), ("nourl", "fetch", "no_url"),
                                  ("7", "fetch", "bad_url")]), label="rejected")
        assert sum(elsewhere.hits.values()) == 0


def test_originals_only_on_request():
    p = photo("9", download_url="http://farm4.staticflickr.com/3069/9_a5cea91de3.jpg", secret_original="77aa",
              extension="png")
    assert sized_url(p, 500) == "http://farm4.staticflickr.com/3069/9_a5cea91de3.jpg"
    assert sized_url(p, 500, originals=True) == "http://farm4.staticflickr.com/3069/9_77aa_o.png"
    given = photo("9", download_url="http://h/1/9_77aa_o.jpg")  # an _o URL is never rewritten to a size
    assert sized_url(given, 500) == sized_url(given, 500, originals=True) == "http://h/1/9_77aa_o.jpg"
    no_original = photo("9", server_id="1", secret="ab")  # the owner allows no original: the sized copy
    assert sized_url(no_original, 1024, originals=True) == "https://live.staticflickr.com/1/9_ab_b.jpg"


@pytest.mark.parametrize("host", ["live.staticflickr.com", "farm4.staticflickr.com", "farm66.static.flickr.com",
                                  "c1.staticflickr.com", "LIVE.staticflickr.com"])
def test_sized_url_rewrites_flickr_static_hosts(host):
    p = photo("123", download_url=f"https://{host}/3069/123_a5cea91de3.jpg")
    assert sized_url(p, 512) == f"https://{host}/3069/123_a5cea91de3_z.jpg"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/files/123_a5cea91de3.jpg", "https://photos.example.org/3069/123_a5cea91de3.jpg",
    "https://live.staticflickr.com.evil.com/3069/123_a5cea91de3.jpg", "https://evilstaticflickr.com/1/123_ab.jpg",
    "https://farm4.staticflickr.com:8443/1/123_ab.jpg", "https://staticflickr.com.example.org/1/123_ab.jpg"])
def test_sized_url_keeps_urls_on_other_hosts(url):
    """A user's own server has no Flickr sizes: `_b` there is a 404 (issue 14 #5)."""
    assert sized_url(photo("123", download_url=url), 1024) == url


MAY_2010_ISO, MARCH_2012_ISO = "2010-05-25T00:00:00Z", "2012-03-01T00:00:00Z"


@pytest.mark.parametrize(("uploaded", "max_side", "suffix"), [
    ("2008-06-01T10:00:00Z", 500, ""), ("2008-06-01T10:00:00Z", 512, "_z"), ("2008-06-01T10:00:00Z", 800, "_z"),
    ("2008-06-01T10:00:00Z", 1024, "_z"), ("2010-05-24T23:59:59Z", 1024, "_z"),  # no b unless very large
    (MAY_2010_ISO, 800, "_b"), ("2012-02-29T23:59:59Z", 800, "_b"), (MAY_2010_ISO, 2048, "_b"),  # no c yet
    (MARCH_2012_ISO, 800, "_c"), (MARCH_2012_ISO, 1024, "_b"), (MARCH_2012_ISO, 4096, "_b"),
    ("not a date", 800, "_c"), ("", 1024, "_b")])  # unknown: the documented size, with the fallback behind it
def test_sized_url_asks_only_for_copies_that_exist_for_the_upload_date(uploaded, max_side, suffix):
    p = photo("123", download_url="http://farm4.staticflickr.com/3069/123_a5cea91de3.jpg", date_uploaded=uploaded)
    assert sized_url(p, max_side) == f"http://farm4.staticflickr.com/3069/123_a5cea91de3{suffix}.jpg"


def test_a_sized_url_the_source_chose_is_used_as_given():
    """The API lists only copies that exist (url_h/url_k even with secrets of their own): kept."""
    for name in ("9_ab_z.jpg", "9_ab_b.jpg", "9_f00d_k.jpg"):
        url = f"https://live.staticflickr.com/1/{name}"
        assert sized_url(photo("9", source="flickr", download_url=url, date_uploaded="2020-01-01T00:00:00Z"),
                         800) == url


class _ToLocal(DeadlineAdapter):
    """Sends requests for Flickr's static hosts to a local server (the path is all it reads)."""

    def __init__(self, local_host: str) -> None:
        super().__init__(max_retries=0)
        self._local = local_host

    def send(self, request, *args, **kwargs):
        parts = urlsplit(request.url)
        if (parts.hostname or "").endswith(("staticflickr.com", "static.flickr.com")):
            request.url = urlunsplit(("http", self._local, parts.path, parts.query, ""))
        return super().send(request, *args, **kwargs)


def _batch_against(server: StaticServer, max_side: int) -> _FetchBatch:
    config = FetchConfig(allowed_hosts=("live.staticflickr.com", "farm*.staticflickr.com"), user_agent="test",
                         max_retries=0)
    batch = _FetchBatch(config, max_side, threads=1, originals=False)
    session = requests.Session()
    session.mount("http://", _ToLocal(server.host))
    session.mount("https://", _ToLocal(server.host))
    batch._fetcher = Fetcher(config, session=session)
    return batch


def test_a_missing_sized_copy_falls_back_to_the_rows_own_url():
    jpeg = real_jpeg()
    row = "https://farm3.staticflickr.com/1/{}_ab.jpg"
    with StaticServer() as server:
        server.add("/1/1_ab_b.jpg", status(404))
        server.add("/1/1_ab.jpg", image(jpeg))
        server.add("/1/2_ab_b.jpg", status(410))
        server.add("/1/2_ab.jpg", image(jpeg))
        server.add("/1/3_ab_b.jpg", status(404))
        server.add("/1/3_ab.jpg", status(404))
        server.add("/1/4_ab_b.jpg", redirect(PLACEHOLDER_URL))  # deleted: no second try
        server.add("/1/4_ab.jpg", image(jpeg))
        batch = _batch_against(server, 1024)
        kept = batch._download(photo("1", download_url=row.format(1)))
        assert kept.raw == jpeg and kept.fetched_url == row.format(1)
        assert batch._download(photo("2", download_url=row.format(2))).fetched_url == row.format(2)
        both = batch._download(photo("3", download_url=row.format(3)))
        assert (both.stage, both.reason) == ("fetch", "not_found")
        assert row.format(3).replace(".jpg", "_b.jpg") in both.detail and f"{row.format(3)}:" in both.detail
        deleted = batch._download(photo("4", download_url=row.format(4)))
        assert deleted.reason == "deleted" and server.hits["/1/4_ab.jpg"] == 0
        assert server.hits["/1/1_ab_b.jpg"] == server.hits["/1/1_ab.jpg"] == 1


def test_the_500_px_copy_an_api_entry_lists_as_its_largest_is_fetched_without_asking_for_a_larger_one():
    """A 2020 upload of 600 x 450 has no 640 px copy, and its search entry lists none: the source takes url_m, the
    largest listed. Unsuffixed, it was rewritten as a YFCC row's URL is, to the _z copy the entry did not list (a
    404 from Flickr for every such photo, then the entry's own URL). An entry listing no copy still gets the sized
    copy built from its server and secret."""
    import io

    import flickrapi
    from PIL import Image

    from pipeline.fixtures.flickr_server import OMIT, FixturePhoto, FlickrServer, World
    from pipeline.sources.flickr import EXTRAS, photo_from_search

    no_urls = {f"url_{letter}": OMIT for letter in ("sq", "q", "t", "s", "n", "w", "m", "z", "c", "l", "h", "k", "o")}
    world = World([FixturePhoto("1", "o@N01", 4, 1_600_000_000, width=600, height=450),
                   FixturePhoto("2", "o@N01", 4, 1_600_000_000, width=2100, height=1400, search_overrides=no_urls)])
    with FlickrServer(world, api_keys={"k"}) as server:
        api = flickrapi.FlickrAPI("k", "s", format="parsed-json", store_token=False)
        api.REST_URL = server.rest_url
        here = f"http://{server.host}/"
        # As Flickr serves it: every copy's URL on its static host.
        entries = {entry["id"]: {name: value.replace(here, "https://live.staticflickr.com/")
                                 if isinstance(value, str) else value for name, value in entry.items()}
                   for entry in api.photos.search(license="4", extras=EXTRAS)["photos"]["photo"]}
        assert "url_m" in entries["1"] and "url_z" not in entries["1"]
        batch = _batch_against(server, 512)
        small = batch._download(photo_from_search(entries["1"], "ref", 512))
        built = batch._download(photo_from_search(entries["2"], "ref", 512))
    assert small.fetched_url == "https://live.staticflickr.com/65535/1_abcdef0123.jpg", small
    assert server.hits["/65535/1_abcdef0123_z.jpg"] == 0 and server.hits["/65535/1_abcdef0123.jpg"] == 1
    assert built.fetched_url == "https://live.staticflickr.com/65535/2_abcdef0123_z.jpg", built
    assert [max(Image.open(io.BytesIO(got.raw)).size) for got in (small, built)] == [500, 640]


def test_the_rows_own_url_gets_what_is_left_of_the_photos_deadline_not_a_fresh_one():
    """The fallback used to start its own --fetch_deadline: a photo could hold a thread (and a host slot) for two.
    Here the missing copy answers its 404 after 0.8 s of a 1 s deadline; the row's own URL, 0.6 s later, is past
    the photo's deadline (it was fetched whole, in a deadline of its own)."""
    from dataclasses import replace

    from pipeline.fixtures.static_server import Response

    row = "https://farm3.staticflickr.com/1/1_ab.jpg"
    with StaticServer() as server:
        server.add("/1/1_ab_b.jpg", Response(404, b"", delay=0.8))
        server.add("/1/1_ab.jpg", replace(image(real_jpeg()), delay=0.6))
        batch = _batch_against(server, 1024)
        batch._fetcher.config = replace(batch._fetcher.config, deadline=1.0)
        late = batch._download(photo("1", download_url=row))
    assert (late.stage, late.reason) == ("fetch", "deadline_exceeded"), late


def test_rows_on_a_users_own_server_are_fetched_as_given():
    jpeg = real_jpeg()
    with StaticServer() as server:
        url = server.add("/files/5_ab12.jpg", image(jpeg))
        server.add("/files/5_ab12_b.jpg", status(404))  # what the old rewrite asked for
        opts = PassOptions([f"--allowed_hosts={server.host}", "--max_side=1024"])
        with local_pipeline() as p:
            out = p | beam.Create([photo("5", download_url=url)]) | Fetch(fetch_settings(opts))
            assert_that(out.kept | beam.Map(lambda ph: (ph.photo_id, ph.fetched_url)), equal_to([("5", url)]),
                        label="kept")
            assert_that(out.rejected, equal_to([]), label="rejected")


def test_a_row_url_with_a_bracket_left_open_is_a_bad_url():
    """urlsplit raises on it: the photo was an internal_error, not named for what it is."""
    batch = _FetchBatch(FetchConfig(allowed_hosts=("127.0.0.1",), user_agent="t"), 512, 2, False)
    batch.setup()
    try:
        assert batch._one(photo("1", download_url="http://[x/1_ab.jpg")).reason == "bad_url"
    finally:
        batch.teardown()
