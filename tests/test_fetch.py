import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipeline.fixtures.static_server import StaticServer, image, status
from pipeline.options import PassOptions
from pipeline.stages.fetch import Fetch, sized_url
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
            out = p | beam.Create(photos) | Fetch(opts)
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
