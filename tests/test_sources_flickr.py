"""--source=flickr end to end: the real flickrapi client against the fixture world, the whole job."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main, run
from pipeline.fixtures.demo_world import DEMO_PHOTOS, demo_image
from pipeline.fixtures.flickr_server import FixturePhoto, FlickrServer, World
from pipeline.fixtures.static_server import Response
from pipeline.flickr.licenses import LICENSES
from pipeline.options import parse_date
from pipeline.sources.fields import BadField
from pipeline.sources.flickr import FlickrSourceConfig, _ReadPage, _SplitWindows, photo_from_search
from tests.conftest import FAST

DAY = 1_600_000_000 - 1_600_000_000 % 86400  # a UTC midnight


def fixture_world() -> World:
    photos = []
    for i, (_, name, title, credit, _) in enumerate(DEMO_PHOTOS):
        license_id = (4, 11, 2)[i % 3]  # 2 = BY-NC: never returned by a license=4,11 search
        photos.append(FixturePhoto(str(5000 + i), f"o{i}@N01", license_id, DAY + i * 3600, owner_name=credit,
                                   title=title, jpeg=demo_image(name)))
    photos[1].deleted = True  # deleted since: absent from search results
    return World(photos)


def serve(folder: Path):
    credentials = folder / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "fixture-secret"}))
    return FlickrServer(fixture_world(), api_keys={"fixture-key"}), credentials


@pytest.fixture
def flickr(tmp_path):
    server, credentials = serve(tmp_path)
    with server:
        yield server, credentials


def job_args(server: FlickrServer, credentials: Path) -> list[str]:
    """One day of uploads, sized downloads, detection off (not these tests' subject)."""
    return ["--source=flickr", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
            "--min_upload_date=2020-09-13", "--max_upload_date=2020-09-13", f"--allowed_hosts={server.host}",
            "--near_dup_distance=-1", *FAST]


@pytest.fixture(scope="module")
def sized_run(tmp_path_factory):
    """One job over a fresh fixture world, read by two tests; its server stays up for the second's run."""
    folder = tmp_path_factory.mktemp("flickr")
    server, credentials = serve(folder)
    with server:
        stats = run([*job_args(server, credentials), f"--output={folder / 'sized'}"])
        yield server, credentials, stats, dict(server.calls), folder / "sized"


def test_job_reads_cc_by_photos_from_the_api(sized_run):
    server, _, stats, calls, output = sized_run
    # Detection off: every CC BY photo still listed is kept, people too.
    expected = {p.photo_id for p in server.world.photos if p.license in (4, 11) and not p.deleted}
    rows = pq.read_table(output / "parquet").to_pylist()
    assert stats["accounted"] and {row["photo_id"] for row in rows} == expected
    row = next(r for r in rows if r["photo_id"] == "5003")
    assert row["license_url"] == "https://creativecommons.org/licenses/by/2.0/"
    assert row["owner_name"] == "Rachel Michetti"
    assert row["page_url"] == "https://www.flickr.com/photos/o3@N01/5003/" and row["fetched_url"].endswith("_z.jpg")
    assert stats["api_calls"]["flickr.photos.search"] == calls["flickr.photos.search"] >= 2
    for path in output.rglob("*"):  # the key and secret appear in no output
        if path.is_file():
            data = path.read_bytes()
            assert b"fixture-key" not in data and b"fixture-secret" not in data, path


def test_refused_key_fails_the_job_at_start(flickr, tmp_path, capsys):
    server, _ = flickr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"key": "not-a-key", "secret": "x"}))
    assert main(["run", "--source=flickr", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={bad}",
                 "--min_upload_date=2020-09-13", "--max_upload_date=2020-09-13", f"--output={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert "error 100" in err and "not-a-key" not in err


def test_a_rerun_at_another_api_endpoint_is_another_command(flickr, tmp_path, capsys):
    """--flickr_rest_url was left out of the run's record: the same words at another endpoint (another proxy, another
    API, other answers) were told the output "already holds the dataset of this same command", exit 0, and what that
    endpoint lists never read. The endpoint is recorded, without its user info and query (a proxy's token)."""
    server, credentials = flickr
    output = tmp_path / "out"
    with FlickrServer(fixture_world(), api_keys={"fixture-key"}) as other:
        words = [arg for arg in job_args(server, credentials) if not arg.startswith(("--allowed_hosts=",
                                                                                       "--flickr_rest_url="))]
        words.append(f"--allowed_hosts={server.host},{other.host}")
        here, there = server.rest_url, other.rest_url.replace("http://", "http://user:s3cretPW@") + "?token=t0kenXY"
        assert main(["run", f"--output={output}", f"--flickr_rest_url={here}", *words]) == 0
        assert main(["run", f"--output={output}", f"--flickr_rest_url={here}", *words]) == 0  # the same command
        assert "already holds the dataset of this same command" in capsys.readouterr().err
        assert main(["run", f"--output={output}", f"--flickr_rest_url={there}", *words]) == 2
        err = capsys.readouterr().err
        assert "already holds a dataset" in err and "this same command" not in err, err
        assert main(["run", f"--output={output}", f"--flickr_rest_url={there}", "--overwrite", *words]) == 0
    manifest = (output / "manifest.json").read_text()
    masked = other.rest_url.replace("http://", "http://…@") + "?…"
    assert json.loads(manifest)["run_fingerprint"]["flickr_endpoint"] == masked
    assert "s3cretPW" not in manifest and "t0kenXY" not in manifest


def test_originals_only_on_request(sized_run, tmp_path):
    server, credentials, _, _, output = sized_run
    sized = pq.read_table(output / "parquet").to_pylist()
    assert sized and not any("_o." in row["fetched_url"] for row in sized)
    server.world.photos[3].can_download_original = False  # the owner does not allow original downloads
    run([*job_args(server, credentials), f"--output={tmp_path / 'orig'}", "--flickr_originals"])
    fetched = {row["photo_id"]: row["fetched_url"] for row in pq.read_table(tmp_path / "orig" / "parquet").to_pylist()}
    assert fetched.keys() == {row["photo_id"] for row in sized}
    by_id = server.world.by_id()
    for photo_id, url in fetched.items():
        photo = by_id[photo_id]
        expected = (f"_{photo.original_secret}_o.jpg" if photo.can_download_original else f"_{photo.secret}_z.jpg")
        assert url.endswith(expected), (photo_id, url)
    assert "5003" in fetched  # the photo without an original still came, sized


def test_a_refused_window_count_is_a_rejection_not_a_failed_job(flickr, tmp_path):
    server, credentials = flickr
    server.search_depth = 4  # the server repeats past 4 results, the job splits at 4: the second count is refused
    for photo in server.world.photos[::2]:
        photo.date_upload += 13 * 3600  # half the photos in the afternoon, the half of the day still read
    server.inject_delay(0.0, method="flickr.photos.search")  # the first count answers normally
    server.inject_api_error(3, "General request failure", method="flickr.photos.search")  # not retryable
    stats = run(["--source=flickr", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
                 "--min_upload_date=2020-09-13", "--max_upload_date=2020-09-13", f"--output={tmp_path / 'out'}",
                 f"--allowed_hosts={server.host}", "--near_dup_distance=-1", "--flickr_search_depth=4", *FAST])
    assert stats["accounted"] and stats["rejections_by_stage"]["read"] == {"api_error": 1}
    [refused] = [r for r in pq.read_table(tmp_path / "out" / "rejections").to_pylist() if r["stage"] == "read"]
    assert refused["stage"] == "read" and "window count refused, code 3" in refused["detail"]
    low, high = (int(x) for x in refused["photo_id"].removeprefix("flickr:").split("-"))
    expected = {p.photo_id for p in server.world.photos
                if p.license in (4, 11) and not p.deleted and not low <= p.date_upload <= high}  # detection is off
    kept = {row["photo_id"] for row in pq.read_table(tmp_path / "out" / "parquet").to_pylist()}
    assert kept == expected and 0 < len(kept) < 5  # the rest of the range was still read


def test_search_entry_mapping():
    entry = {"id": "7", "owner": "x@N01", "ownername": "X", "license": "11", "dateupload": "1600000000",
             "url_s": "http://h/1/7_a_m.jpg", "url_m": "http://h/1/7_a.jpg", "url_z": "http://h/1/7_a_z.jpg",
             "url_l": "http://h/1/7_a_b.jpg", "tags": "sea  sun", "description": {"_content": "d"}}
    photo = photo_from_search(entry, "ref", 512)
    assert photo.license_name == "CC BY 4.0" and photo.download_url.endswith("_z.jpg")
    assert photo.date_uploaded == "2020-09-13T12:26:40Z" and photo.tags == "sea,sun"
    assert photo_from_search(entry, "ref", 2048).download_url.endswith("_b.jpg")  # url_l: the largest listed
    assert parse_date("2020-09-13") == 1599955200 and parse_date("42") == 42


def test_extras_are_flickr_documented_size_names():
    from pipeline.sources.flickr import EXTRAS
    from tests.test_flickr_sizes import DOCUMENTED

    names = {name for name in EXTRAS.split(",") if name.startswith("url_")}
    assert names <= {extra for _, extra in DOCUMENTED.values()} | {"url_o"}
    assert {"url_m", "url_z", "url_c", "url_l", "url_o"} <= names and "url_b" not in names


# Every copy a new, large photo has, by the documented extra names (url_s is 240 px, url_m 500, url_l 1024).
ALL_COPIES = {"url_t": "7_a_t.jpg", "url_s": "7_a_m.jpg", "url_n": "7_a_n.jpg", "url_w": "7_a_w.jpg",
              "url_m": "7_a.jpg", "url_z": "7_a_z.jpg", "url_c": "7_a_c.jpg", "url_l": "7_a_b.jpg",
              "url_h": "7_f1_h.jpg", "url_k": "7_f2_k.jpg", "url_sq": "7_a_s.jpg", "url_q": "7_a_q.jpg"}
OLD_COPIES = ("url_t", "url_s", "url_n", "url_m", "url_z", "url_sq", "url_q")  # before 2010, not very large


@pytest.mark.parametrize(("max_side", "new", "old"), [
    (90, "7_a_t.jpg", "7_a_t.jpg"), (240, "7_a_m.jpg", "7_a_m.jpg"), (400, "7_a_w.jpg", "7_a.jpg"),
    (500, "7_a.jpg", "7_a.jpg"), (512, "7_a_z.jpg", "7_a_z.jpg"), (800, "7_a_c.jpg", "7_a_z.jpg"),
    (1000, "7_a_b.jpg", "7_a_z.jpg"), (1600, "7_f1_h.jpg", "7_a_z.jpg"), (4096, "7_f2_k.jpg", "7_a_z.jpg")])
def test_the_smallest_listed_copy_covering_max_side_else_the_largest(max_side, new, old):
    """Never a cropped square, never a copy the entry does not list (older photos have fewer)."""
    base = {"id": "7", "owner": "x@N01", "license": "4"}
    every = {**base, **{name: f"http://h/1/{file}" for name, file in ALL_COPIES.items()}}
    fewer = {**base, **{name: f"http://h/1/{ALL_COPIES[name]}" for name in OLD_COPIES}}
    assert photo_from_search(every, "ref", max_side).download_url == f"http://h/1/{new}"
    assert photo_from_search(fewer, "ref", max_side).download_url == f"http://h/1/{old}"
    only_square = {**base, "url_sq": "http://h/1/7_a_s.jpg", "url_b": "http://h/1/7_a_b.jpg"}  # url_b: no such extra
    assert photo_from_search(only_square, "ref", max_side).download_url == ""  # fetch builds the 500 px URL


def test_the_copy_chosen_from_the_fixture_api_exists(tmp_path):
    """Through the real client: for a 2020 photo and a 2008 one, the URL chosen for each max_side
    is one the (documented) static server has, of the documented size."""
    import io

    import flickrapi
    from PIL import Image

    from pipeline.io.http_client import FetchConfig, Fetcher
    from pipeline.sources.flickr import EXTRAS

    photos = [FixturePhoto("1", "o@N01", 4, 1_600_000_000, width=2100, height=1400),
              FixturePhoto("2", "o@N01", 4, 1_200_000_000, width=1200, height=900)]
    with FlickrServer(World(photos), api_keys={"fixture-key"}) as server:
        api = flickrapi.FlickrAPI("fixture-key", "s", format="parsed-json", store_token=False)
        api.REST_URL = server.rest_url
        entries = {e["id"]: e for e in api.photos.search(license="4", extras=EXTRAS)["photos"]["photo"]}
        fetcher = Fetcher(FetchConfig(allowed_hosts=(server.host,), user_agent="test", max_retries=0))
        for max_side, new_side, old_side in ((512, 640, 640), (800, 800, 640), (1024, 1024, 640), (2048, 2048, 640)):
            for photo_id, side in (("1", new_side), ("2", old_side)):
                url = photo_from_search(entries[photo_id], "ref", max_side).download_url
                got = fetcher.fetch(url)
                assert got.ok and max(Image.open(io.BytesIO(got.body)).size) == side, (max_side, photo_id, url)


def test_credentials_from_secret_manager(flickr, monkeypatch):
    """The real Secret Manager client (REST transport) against a local server that answers
    AccessSecretVersion as the API does: the payload base64-encoded, with its CRC32C."""
    import base64

    import google_crc32c

    from pipeline.fixtures.static_server import Response, StaticServer, status
    from pipeline.flickr.credentials import Credentials, CredentialsError, load_credentials
    from pipeline.sources.flickr import FlickrSourceConfig, ReadFlickr

    server, _ = flickr
    document = json.dumps({"keys": [{"key": "fixture-key", "secret": "fixture-secret"},
                                    {"key": "second-key", "secret": "second-secret"}]}).encode()

    def answer(data: bytes, crc: int) -> Response:
        body = {"name": "projects/p/secrets/flickr/versions/3",
                "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(crc)}}
        return Response(200, json.dumps(body).encode(), "application/json")

    with StaticServer() as secrets:
        secrets.add("/v1/projects/p/secrets/flickr/versions/latest:access", answer(document,
                                                                                   google_crc32c.value(document)))
        secrets.add("/v1/projects/p/secrets/bad/versions/latest:access", answer(document, 12345))
        secrets.add("/v1/projects/p/secrets/gone/versions/latest:access", status(404))
        monkeypatch.setenv("SECRET_MANAGER_EMULATOR_HOST", f"http://{secrets.host}")
        assert load_credentials("sm://projects/p/secrets/flickr") == (
            Credentials("fixture-key", "fixture-secret"), Credentials("second-key", "second-secret"))
        server.api_keys = {"fixture-key", "second-key"}
        ReadFlickr(FlickrSourceConfig(server.rest_url, "sm://projects/p/secrets/flickr", "4,11", 0, 1, 512))
        with pytest.raises(CredentialsError, match="corrupted"):
            load_credentials("sm://projects/p/secrets/bad")
        with pytest.raises(CredentialsError, match="NotFound") as err:
            load_credentials("sm://projects/p/secrets/gone")
        assert "fixture" not in str(err.value)


@settings(max_examples=60, deadline=None)
@given(times=st.lists(st.integers(0, 10_000), max_size=300), refuse=st.sets(st.integers(0, 40), max_size=6),
       depth=st.integers(1, 50))
def test_refused_counts_lose_no_photo_silently(times, refuse, depth):
    """Oracle: every photo's upload time lies in exactly one window that will be read or in exactly
    one refused range that became a rejection, whichever counts the API refuses."""
    import flickrapi

    from pipeline.sources.flickr import FlickrSourceConfig, _SplitWindows

    calls = []

    def search(low, high, **params):
        calls.append((low, high))
        if len(calls) - 1 in refuse:
            raise flickrapi.FlickrError("Error: 3: General request failure", code=3)
        return {"total": sum(low <= t <= high for t in times)}

    split = _SplitWindows(FlickrSourceConfig(None, None, "4", 0, 10_000, 512, search_depth=depth))
    split._search = search
    windows, refused, over = [], [], []
    for item in split.process((0, 10_000)):
        if isinstance(item, tuple):
            windows.append(item)
        else:
            low, high = item.value.photo_id.removeprefix("flickr:").split("-")
            (over if item.value.reason == "over_search_depth" else refused).append((int(low), int(high)))
    for t in times:
        holders = [r[:2] for r in windows + refused if r[0] <= t <= r[1]]
        assert len(holders) == 1, (t, holders)
    assert over == [window[:2] for window in windows if window[2] > depth]  # said, one by one


# Uploaded at second 150: inside the window 100-200 that `_read_page` reads it for.
GOOD_ENTRY = {"id": "7", "owner": "x@N01", "ownername": "X", "license": "4", "dateupload": "150",
              "datetaken": "2020-01-01 12:00:00", "title": "t", "tags": "a b", "description": {"_content": "d"},
              "secret": "abc123", "server": "65535", "farm": 66, "originalsecret": "def456", "originalformat": "jpg",
              "url_z": "http://h/65535/7_abc123_z.jpg", "url_l": "http://h/65535/7_abc123_b.jpg"}


def _entry(photo_id: object) -> dict:
    """GOOD_ENTRY for another id, its URLs naming that photo (a URL of another photo's file is `bad_api_entry`)."""
    return {**GOOD_ENTRY, "id": photo_id, "url_z": f"http://h/65535/{photo_id}_abc123_z.jpg",
            "url_l": f"http://h/65535/{photo_id}_abc123_b.jpg"}


def _without(name: str) -> dict:
    return {key: value for key, value in GOOD_ENTRY.items() if key != name}


def _outputs(out: list, tag: str) -> list:
    """The values a DoFn yielded to `tag` ("kept": its main output)."""
    from apache_beam.pvalue import TaggedOutput

    return [x.value if isinstance(x, TaggedOutput) else x for x in out
            if (x.tag if isinstance(x, TaggedOutput) else "kept") == tag]


def _read_page(entries: object, search=None) -> tuple[list, list]:
    """Runs the page reader on one page whose `photo` list is `entries`: (Photos, Rejections)."""
    from pipeline.sources.flickr import FlickrSourceConfig, _ReadPage

    reader = _ReadPage(FlickrSourceConfig(None, None, "4,11", 0, 10, 512))
    answer = {"page": 3, "pages": 3, "perpage": 500, "total": "1500", "photo": entries}
    reader._search = search or (lambda low, high, **params: answer)  # type: ignore[method-assign]  # the page, given
    out = list(reader.process(((100, 200, 1500), 3)))
    return _outputs(out, "kept"), _outputs(out, "rejected")


BAD_ENTRIES = [
    (_without("id"), "missing_id"),
    ({**GOOD_ENTRY, "license": "abc"}, "bad_api_entry"),
    ({**GOOD_ENTRY, "license": None}, "bad_api_entry"),
    ({**GOOD_ENTRY, "license": "-1"}, "bad_api_entry"),
    (_without("license"), "bad_api_entry"),
    ({**GOOD_ENTRY, "title": {"_content": "x"}}, "bad_api_entry"),
    ({**GOOD_ENTRY, "tags": ["a", "b"]}, "bad_api_entry"),
    ({**GOOD_ENTRY, "description": ["d"]}, "bad_api_entry"),
    ({**GOOD_ENTRY, "description": {"_content": 5}}, "bad_api_entry"),
    ({**GOOD_ENTRY, "owner": None}, "bad_api_entry"),
    # no owner: kept crediting no one, its page https://www.flickr.com/photos//ID/
    (_without("owner"), "bad_api_entry"),
    ({**GOOD_ENTRY, "owner": ""}, "bad_api_entry"),
    ({**GOOD_ENTRY, "owner": "x/../../y"}, "bad_api_entry"),
    ({**GOOD_ENTRY, "url_z": 5}, "bad_api_entry"),
    ({**GOOD_ENTRY, "dateupload": "99999999999999"}, "bad_date"),
    ({**GOOD_ENTRY, "dateupload": "-5"}, "bad_date"),
    ({**GOOD_ENTRY, "dateupload": 1.5}, "bad_date"),
    # listed for the window 100-200, uploaded (it says) outside it: the search asked for no such photo
    ({**GOOD_ENTRY, "dateupload": "99"}, "bad_api_entry"),
    ({**GOOD_ENTRY, "dateupload": 201}, "bad_api_entry"),
    ({**GOOD_ENTRY, "dateupload": "1600000000"}, "bad_api_entry"),
    # no upload time (the search asks for it): whether it is of the window cannot be told, and it passed unchecked
    (_without("dateupload"), "bad_api_entry"),
    ({**GOOD_ENTRY, "dateupload": ""}, "bad_api_entry"),
    ({**GOOD_ENTRY, "datetaken": "99999-01-01 00:00:00"}, "bad_date"),
    ({**GOOD_ENTRY, "server": "../x"}, "bad_field"),
    ({**GOOD_ENTRY, "secret": ["x"]}, "bad_field"),
    ({**GOOD_ENTRY, "originalformat": "jpg?x=1"}, "bad_field"),
    ({**GOOD_ENTRY, "media": "audio"}, "bad_api_entry"),
    ({**GOOD_ENTRY, "media": None}, "bad_api_entry"),
    # another photo's file: its pixels would be published as this photo, under this one's licence and credit
    ({**GOOD_ENTRY, "url_z": "http://h/65535/8_abc123_z.jpg", "url_l": "http://h/65535/8_abc123_b.jpg"},
     "bad_api_entry"),
    ("not an entry", "bad_api_entry"),
    (None, "bad_api_entry"),
    ([1, 2], "bad_api_entry"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_ENTRIES)
def test_one_malformed_entry_is_one_rejection_and_the_page_goes_on(bad, reason):
    page = [_entry("5"), bad, _entry("6")]
    kept, rejected = _read_page(page)
    assert [photo.photo_id for photo in kept] == ["5", "6"]
    [rejection] = rejected
    assert (rejection.stage, rejection.reason, rejection.source_ref) == ("read", reason, "flickr:100-200:p3:1")
    assert rejection.photo_id in ("7", "flickr:100-200:p3:1") and rejection.detail


@pytest.mark.parametrize("perpage", [500, 100])
def test_a_page_listing_more_photos_than_its_perpage_is_one_rejection_for_the_page(perpage):
    """A page is at most `perpage` photos (never more than the 500 asked): one answer of 64 MiB listing 4 million
    entries became 4 million rows (photos or rejections) from one call, and a window's eight pages eight times that."""
    answer = {"page": 1, "pages": 1, "perpage": perpage, "total": perpage, "photo": [_entry(str(10**6 + i))
                                                                                    for i in range(perpage + 1)]}
    kept, rejected = _read_page(None, search=lambda low, high, **params: answer)
    assert not kept
    [rejection] = rejected
    assert (rejection.photo_id, rejection.reason) == ("flickr:100-200:p3", "bad_api_response")
    assert f"lists {perpage + 1:,} photos, more than its perpage of {perpage}" in rejection.detail
    answer["photo"].pop()
    kept, rejected = _read_page(None, search=lambda low, high, **params: answer)
    assert len(kept) == perpage and not rejected


@pytest.mark.parametrize("photo_id", ["../../x", "a/b", "1.2", "", "<b>9</b>", " 9", "9\n", "\u00b2", "0", "00",
                                      "1" * 21, 7.0, True, None, -7, 10**30, {"id": 7}])
def test_ids_that_are_not_photo_numbers_are_rejected_not_kept(photo_id):
    kept, [rejection] = _read_page([{**GOOD_ENTRY, "id": photo_id}])
    assert not kept and rejection.reason in ("bad_id", "missing_id"), photo_id
    assert rejection.photo_id == rejection.source_ref == "flickr:100-200:p3:0"  # a bad id never names a record


def test_ids_are_canonical_whatever_their_spelling():
    kept, rejected = _read_page([_entry("007"), _entry(8)])
    assert not rejected and [photo.photo_id for photo in kept] == ["7", "8"]
    assert kept[0].page_url == "https://www.flickr.com/photos/x@N01/7/"


def test_a_malformed_page_is_one_rejection_naming_it():
    for answer in ({"photo": "garbage"}, {"photo": None}, {"nothing": []}, ["not", "a", "dict"]):
        kept, [rejection] = _read_page(None, search=lambda low, high, _answer=answer, **params: _answer)
        assert not kept and (rejection.reason, rejection.source_ref) == ("bad_api_response", "flickr:100-200:p3")
    assert _read_page([]) == ([], [])


@pytest.mark.parametrize("answer", [{"total": "lots"}, {"total": -4}, {"total": None}, {"total": 1.5}, {}, "garbage"])
def test_a_count_that_is_not_a_number_is_a_rejection_for_its_range(answer):
    from pipeline.sources.flickr import FlickrSourceConfig, _SplitWindows

    answers = {(0, 99): {"total": 6}, (0, 49): {"total": 3}, (50, 99): answer}  # 6 > depth 5: split in two
    split = _SplitWindows(FlickrSourceConfig(None, None, "4", 0, 99, 512, search_depth=5))
    split._search = lambda low, high, **params: answers[(low, high)]
    out = list(split.process((0, 99)))
    assert out[0] == (0, 49, 3)  # the half that answered is still read
    [rejection] = [item.value for item in out[1:]]
    assert (rejection.photo_id, rejection.stage, rejection.reason) == ("flickr:50-99", "read", "bad_api_response")


def test_malformed_entries_through_the_transform(tmp_path):
    """The real client against the fixture server: good photos of a page with malformed entries
    all arrive, and each bad entry is one rejection naming window, page and position."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from pipeline.fixtures.flickr_server import OMIT
    from pipeline.sources.flickr import FlickrSourceConfig, ReadFlickr
    from tests.conftest import local_pipeline

    overrides = {1: {"id": OMIT}, 2: {"license": "abc"}, 3: {"id": "../../x"}, 4: {"title": ["x"]},
                 5: {"dateupload": "99999999999999"}}
    photos = [FixturePhoto(str(6000 + i), f"o{i}@N01", 4, DAY + i, search_overrides=overrides.get(i, {}))
              for i in range(8)]
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    where = f"flickr:{DAY}-{DAY + 86399}:p1"
    position = {i: 7 - i for i in range(8)}  # newest first
    with FlickrServer(World(photos), api_keys={"fixture-key"}) as server, local_pipeline() as p:
        read = p | ReadFlickr(FlickrSourceConfig(server.rest_url, str(credentials), "4", DAY, DAY + 86399, 512))
        assert_that(read.kept | beam.Map(lambda photo: photo.photo_id), equal_to(["6000", "6006", "6007"]),
                    label="kept")
        assert_that(read.rejected | beam.Map(lambda r: (r.stage, r.reason, r.source_ref)),
                    equal_to([("read", reason, f"{where}:{position[i]}") for i, reason in
                              ((1, "missing_id"), (2, "bad_api_entry"), (3, "bad_id"), (4, "bad_api_entry"),
                               (5, "bad_date"))]), label="rejected")


def test_an_entry_holding_megabytes_of_text_is_that_entrys_rejection(tmp_path):
    """A title of 8 MiB in an answer under its 64 MiB cap was published whole (ATTRIBUTION.csv, tar, TFRecord): each
    text of an entry is bounded as a YFCC line or a table's value is (64 KiB), a URL at 4,096 characters; a text at
    the bound is still kept."""
    from pipeline.fixtures.flickr_server import OMIT
    from pipeline.sources.fields import MAX_URL_CHARS
    from pipeline.sources.input_files import MAX_LINE_BYTES as MAX_TEXT_CHARS

    photos = _window_photos(8)
    url = f"http://h/65535/{photos[4].photo_id}_abc123_z.jpg"
    overrides = [{"title": "T" * (8 << 20)}, {"description": {"_content": "d" * (MAX_TEXT_CHARS + 1)}},
                 {"ownername": "n" * (MAX_TEXT_CHARS + 1)}, {"tags": "a " * MAX_TEXT_CHARS},
                 {"url_z": url + "?" + "x" * (MAX_URL_CHARS - len(url)), "url_c": OMIT, "url_l": OMIT},
                 {"title": "T" * MAX_TEXT_CHARS, "description": {"_content": "d" * MAX_TEXT_CHARS}}]
    for photo, override in zip(photos, overrides, strict=False):
        photo.search_overrides = override
    with FlickrServer(World(photos)) as server:
        kept, rejected = _read_day(server, tmp_path)
    assert kept == sorted(p.photo_id for p in photos[5:])
    assert [(photo_id, reason) for photo_id, reason, _ in rejected] == [(p.photo_id, "bad_api_entry")
                                                                       for p in photos[:5]]
    details = {detail for _, _, detail in rejected}
    assert {"title is 8,388,608 characters, more than the 65,536 allowed",
            f"url_z is {MAX_URL_CHARS + 1:,} characters, more than the {MAX_URL_CHARS:,} allowed"} <= details


def test_an_answer_without_a_photos_object_is_one_rejection_for_the_page():
    from types import SimpleNamespace

    from pipeline.sources.flickr import FlickrSourceConfig, _ReadPage

    reader = _ReadPage(FlickrSourceConfig(None, None, "4,11", 0, 10, 512))
    reader._client = SimpleNamespace(call=lambda method, **params: {"stat": "ok", "photos": ["x"]})
    [rejected] = _outputs(list(reader.process(((100, 200, 10), 1))), "rejected")
    assert (rejected.photo_id, rejected.reason) == ("flickr:100-200:p1", "bad_api_response")


def test_an_unforeseen_failure_costs_one_entry_not_the_page(monkeypatch):
    import pipeline.sources.flickr as flickr

    real = flickr.photo_from_search

    def flaky(entry, ref, *args):
        if entry.get("id") == "6":
            raise RuntimeError("boom")
        return real(entry, ref, *args)

    monkeypatch.setattr(flickr, "photo_from_search", flaky)
    kept, [rejection] = _read_page([_entry(str(i)) for i in (5, 6, 7)])
    assert [photo.photo_id for photo in kept] == ["5", "7"]
    assert (rejection.photo_id, rejection.reason) == ("6", "internal_error")
    assert rejection.source_ref == "flickr:100-200:p3:1"


@pytest.mark.parametrize(("license_id", "yfcc_words"), [
    (4, ("Attribution License", "http://creativecommons.org/licenses/by/2.0/")),
    (2, ("Attribution-NonCommercial License", "http://creativecommons.org/licenses/by-nc/2.0/")),
])
def test_both_sources_record_one_canonical_license_and_keep_their_own_words(license_id, yfcc_words):
    from pipeline.fixtures.yfcc_rows import yfcc_line
    from pipeline.sources.yfcc import parse_line

    entry = {"id": "7", "owner": "x@N01", "license": str(license_id), "dateupload": "1600000000"}
    api = photo_from_search(entry, "ref", 512)
    dump = parse_line(yfcc_line(1, "7", "http://x/7_a.jpg", license=yfcc_words).encode(), "f:1")
    assert (api.license_name, api.license_url) == (dump.license_name, dump.license_url)
    assert api.license_url.startswith("https://creativecommons.org/licenses/")
    assert (dump.license_source_text, dump.license_source_url) == yfcc_words
    assert (api.license_source_text, api.license_source_url) == LICENSES[license_id]  # Flickr's words for the id


# --- the real client's own failures: each costs its range or page, never the rest -------------------------

HOSTILE_ANSWERS = {
    "html": Response(200, b"<html>proxy error</html>", "text/html"),
    "json_list": Response(200, b"[1, 2]", "application/json"),
    "fail_without_code": Response(200, json.dumps({"stat": "fail"}).encode(), "application/json"),
    "code_is_object": Response(200, json.dumps({"stat": "fail", "code": {"x": 1}, "message": "m"}).encode(),
                               "application/json"),
    # "license" "0" (All Rights Reserved) then "4": json.loads kept the last copy, a CC BY 2.0 photo
    "key_twice": Response(200, b'{"photos": {"page": 1, "pages": 1, "perpage": 500, "total": 1, "photo": [{"id": '
                          b'"5000", "owner": "o0@N01", "license": "0", "license": "4", "dateupload": "'
                          + str(DAY).encode() + b'"}]}, "stat": "ok"}', "application/json"),
}


def _source_config(server: FlickrServer, credentials: Path) -> FlickrSourceConfig:
    return FlickrSourceConfig(server.rest_url, str(credentials), "4,11", DAY, DAY + 86399, 512)


@pytest.mark.parametrize("name", list(HOSTILE_ANSWERS))
def test_a_hostile_count_answer_is_a_rejection_for_its_range(flickr, name):
    """Through flickrapi itself (the test above replaces the search): its parser's JSONDecodeError,
    AttributeError, KeyError or TypeError left the DoFn, and the whole span became one internal_error."""
    server, credentials = flickr
    split = _SplitWindows(_source_config(server, credentials))
    split.setup()
    server.faults.append(("flickr.photos.search", HOSTILE_ANSWERS[name]))
    [rejection] = [item.value for item in split.process((DAY, DAY + 86399))]
    assert (rejection.photo_id, rejection.reason) == (f"flickr:{DAY}-{DAY + 86399}", "bad_api_response")


@pytest.mark.parametrize("name", list(HOSTILE_ANSWERS))
def test_a_hostile_page_answer_is_a_rejection_for_the_page(flickr, name):
    server, credentials = flickr
    reader = _ReadPage(_source_config(server, credentials))
    reader.setup()
    server.faults.append(("flickr.photos.search", HOSTILE_ANSWERS[name]))
    [rejection] = _outputs(list(reader.process(((DAY, DAY + 86399, 16), 1))), "rejected")
    assert (rejection.photo_id, rejection.reason) == (f"flickr:{DAY}-{DAY + 86399}:p1", "bad_api_response")


def test_a_count_without_an_answer_is_retried_then_an_api_error_for_its_range(flickr):
    server, credentials = flickr
    split = _SplitWindows(_source_config(server, credentials))
    split.setup()
    split._client._timeout, split._client._sleep = 0.5, lambda seconds: None
    server.inject_delay(2.0, method="flickr.photos.search")  # one slow answer: retried, then read
    windows = list(split.process((DAY, DAY + 86399)))
    assert len(windows) == 1 and windows[0][:2] == (DAY, DAY + 86399)
    server.inject_delay(2.0, count=5, method="flickr.photos.search")  # the first try and four retries
    [rejection] = [item.value for item in split.process((DAY, DAY + 86399))]
    assert rejection.reason == "api_error" and "no answer from the Flickr API after 5 attempts" in rejection.detail


def test_a_hostile_get_info_answer_is_that_photos_rejection(flickr):
    """The licence re-check's per-photo call: a non-JSON answer is bad_api_response for that photo."""
    from pipeline.stages.verify_license import VerifyConfig, _VerifyOwner

    server, credentials = flickr
    verify = _VerifyOwner(VerifyConfig(server.rest_url, str(credentials), "4,11", 0.0))
    verify.setup()
    server.faults.append(("flickr.photos.getInfo", HOSTILE_ANSWERS["html"]))
    [rejection] = [item.value for item in verify._check_one(photo_from_search(
        {"id": "5000", "owner": "o0@N01", "license": "4", "dateupload": str(DAY)}, "ref", 512))]
    assert (rejection.photo_id, rejection.reason) == ("5000", "bad_api_response")


def test_a_lone_surrogate_in_an_api_entry_is_that_entrys_rejection():
    """The API's JSON can hold '\ud800' too: one bad_api_entry, not a job failed at the first shuffle."""
    from pipeline.sources.fields import BadField

    entry = {"id": "7", "owner": "x@N01", "license": "4", "dateupload": str(DAY), "title": "a \ud800 b"}
    with pytest.raises(BadField, match="lone surrogate"):
        photo_from_search(entry, "ref", 512)
    with pytest.raises(BadField, match="lone surrogate"):
        photo_from_search({**entry, "title": "ok", "description": {"_content": "\udfff"}}, "ref", 512)
    assert photo_from_search({**entry, "title": "ok"}, "ref", 512).title == "ok"


def test_an_api_error_message_that_is_no_utf8_text_is_escaped_in_its_rejection(flickr):
    """Flickr's error message goes into the rejection's detail: a lone surrogate in it failed the rejections
    writer, and with it the whole job. Every Rejection escapes such text (records.Rejection)."""
    from pipeline.records import Rejection

    server, credentials = flickr
    split = _SplitWindows(_source_config(server, credentials))
    split.setup()
    server.inject_api_error(3, "General \ud800 failure", method="flickr.photos.search")
    [rejection] = [item.value for item in split.process((DAY, DAY + 86399))]
    assert rejection.reason == "api_error" and "General \\ud800 failure" in rejection.detail
    rejection.detail.encode("utf-8")  # what every writer does
    assert Rejection("1", "s", "r", "caf\udce9", "", "f\udce9:1").source_ref == "f\\udce9:1"


@pytest.mark.parametrize("extra", [{"title": "x\u0000y"}, {"ownername": "\u0000"},
                                   {"description": {"_content": "a\u0000"}}])
def test_an_entry_whose_text_holds_a_nul_is_a_malformed_entry(extra):
    """The table and YFCC sources refuse a NUL; an API entry's title, owner name or description reached
    ATTRIBUTION.csv with one."""
    entry = {"id": "124", "license": 4, "owner": "a@N01", **extra}
    with pytest.raises(BadField) as refused:
        photo_from_search(entry, "ref", 512)
    assert refused.value.reason == "bad_api_entry" and "NUL" in str(refused.value)


def test_totals_that_never_shrink_cost_a_bounded_number_of_calls_and_are_said():
    """Every window "holds" 4,001 photos, however small: the split asked ~2 x 86,400 counts for one day (and 691,200
    page calls). The split now stops at its budget; each window it leaves over the depth is read to the depth and
    named in a rejection."""
    from itertools import pairwise

    from pipeline.flickr.client import count_budget
    from pipeline.sources.flickr import FlickrSourceConfig, _SplitWindows

    calls = []
    split = _SplitWindows(FlickrSourceConfig(None, None, "4", 0, 86_399, 512))
    split._search = lambda low, high, **params: calls.append((low, high)) or {"total": 4001}
    out = list(split.process((0, 86_399)))
    windows = [item for item in out if isinstance(item, tuple)]
    over = [item.value for item in out if not isinstance(item, tuple)]
    assert len(calls) <= count_budget(4001, 86_400) + 20 < 300
    assert [(w[0], w[1]) for w in windows] == sorted((w[0], w[1]) for w in windows)  # in time order,
    assert windows[0][0] == 0 and windows[-1][1] == 86_399  # covering the day
    assert all(a[1] + 1 == b[0] for a, b in pairwise(windows))  # once
    assert {r.reason for r in over} == {"over_search_depth"} and len(over) == len(windows)


@pytest.mark.parametrize("total", ["999999999999", 10 ** 15])
def test_an_absurd_total_does_not_buy_the_split_more_counts(total):
    """The budget came from the API's own first total: "999999999999" bought 1.7e10 counts, and a day's split
    asked 172,799 of them (and 691,200 page calls to come). A total is taken up to MAX_MATCHES_PER_SECOND over
    the span."""
    from pipeline.flickr.client import MAX_MATCHES_PER_SECOND, count_budget
    from pipeline.sources.flickr import FlickrSourceConfig, _SplitWindows

    calls = []
    split = _SplitWindows(FlickrSourceConfig(None, None, "4", 0, 86_399, 512))
    split._search = lambda low, high, **params: calls.append((low, high)) or {"total": total}
    windows = [item for item in split.process((0, 86_399)) if isinstance(item, tuple)]
    assert len(calls) <= count_budget(MAX_MATCHES_PER_SECOND * 86_400, 86_400) + 20 < 10_000
    assert windows[0][0] == 0 and windows[-1][1] == 86_399


# --- paging as the answers say: no photo lost silently to short, repeated or endless pages ---------------------------

def _window_photos(count: int) -> list[FixturePhoto]:
    return [FixturePhoto(str(6000 + i), f"o{i % 7}@N01", 4, DAY + i) for i in range(count)]


def _read_day(server: FlickrServer, tmp_path: Path, depth: int = 4000) -> tuple[list[str], list[tuple[str, str, str]]]:
    """ReadFlickr over the day through the real client: (kept photo ids, sorted; (photo_id, reason, detail) of
    each rejection, sorted)."""
    import apache_beam as beam

    from pipeline.sources.flickr import ReadFlickr
    from tests.conftest import local_pipeline

    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    out = tmp_path / "read"
    out.mkdir(exist_ok=True)
    server.api_keys = {"fixture-key"}
    with local_pipeline() as p:
        read = p | ReadFlickr(FlickrSourceConfig(server.rest_url, str(credentials), "4", DAY, DAY + 86399, 512,
                                                     search_depth=depth))
        for name, pcoll, row in (("kept", read.kept, lambda photo: photo.photo_id),
                                 ("rejected", read.rejected, lambda r: (r.photo_id, r.reason, r.detail))):
            _ = (pcoll | f"{name}.row" >> beam.Map(row) | f"{name}.all" >> beam.combiners.ToList()
                 | f"{name}.write" >> beam.Map(lambda rows, path=out / name: path.write_text(json.dumps(rows))))
    kept = sorted(json.loads((out / "kept").read_text()))
    return kept, sorted(tuple(r) for r in json.loads((out / "rejected").read_text()))


def _page_reads(hook):
    """A `search_paging` hook for page reads only (a window's count asks per_page=1 and no extras)."""
    return lambda params, photos: hook(int(params["page"]), photos) if "extras" in params else {}


def test_an_api_serving_short_pages_is_read_as_its_answers_say(tmp_path):
    """A proxy (or an API not honouring per_page) serving 100 a page: the source planned 2 pages of 500 for a
    window of 1,000, read 200 photos, and said nothing of the other 800. Pages now follow the answer's perpage."""
    photos = _window_photos(1000)
    with FlickrServer(World(photos)) as server:
        server.max_per_page = 100
        kept, rejected = _read_day(server, tmp_path)
        calls = server.calls["flickr.photos.search"]
    assert kept == sorted(p.photo_id for p in photos) and rejected == []
    assert calls == 1 + 10  # the window's count, then its ten pages of 100


def _lying_pages(page: int, photos: dict) -> dict:
    return {"perpage": 500, "pages": 2}  # serves 100 a page, says 500 and 2 pages


def _endless(page: int, photos: dict) -> dict:
    return {"pages": 10**9, "total": str(10**12 - 1)}  # a search that never ends


@pytest.mark.parametrize(("count", "per_page", "server_depth", "hook", "kept_count", "never_listed"), [
    (1000, 100, 4000, _lying_pages, 200, 800),  # paging that disagrees with itself: as much as it says, and said
    (1000, 100, 300, None, 300, 700),  # Flickr's depth lower than --flickr_search_depth: its pages past it repeat
    # read to the depth (40 pages of 100), never further; what its total puts past the depth is never listed either
    (250, 100, 4000, _endless, 250, 10**12 - 1 - 250),
])
def test_a_window_whose_pages_list_fewer_photos_than_it_counts_is_said(tmp_path, count, per_page, server_depth,
                                                                      hook, kept_count, never_listed):
    photos = _window_photos(count)
    with FlickrServer(World(photos)) as server:
        server.max_per_page, server.search_depth = per_page, server_depth
        server.search_paging = _page_reads(hook) if hook else None
        kept, rejected = _read_day(server, tmp_path)
        calls = server.calls["flickr.photos.search"]
    assert len(set(kept)) == kept_count and set(kept) <= {p.photo_id for p in photos}
    [(where, reason, detail)] = rejected
    assert (where, reason) == (f"flickr:{DAY}-{DAY + 86399}", "incomplete_window")
    assert detail.endswith(f": {never_listed:,} never listed"), detail
    assert calls <= 1 + 4000 // per_page  # bounded by the depth whatever the answers claim


def test_photos_a_shrinking_total_shifts_past_are_said(tmp_path):
    """300 photos deleted once the first page is served: the later pages shift by 300, and 100 photos still there
    are on no page read. The window's largest total (1,000) against the 700 different photos listed says so."""
    photos = _window_photos(1000)

    def delete_the_newest(page: int, answer: dict) -> dict:
        if page == 1:
            for photo in sorted(photos, key=lambda p: -p.date_upload)[:300]:
                photo.deleted = True
        return {}

    with FlickrServer(World(photos)) as server:
        server.max_per_page = 100
        server.search_paging = _page_reads(delete_the_newest)
        kept, rejected = _read_day(server, tmp_path)
    assert len(set(kept)) == 700
    assert rejected == [(f"flickr:{DAY}-{DAY + 86399}", "incomplete_window",
                         "the API counts 1,000 results in this window; its 10 of 10 pages of 100 listed 700 different:"
                         " 300 never listed")]


@pytest.mark.parametrize("paging", [{"perpage": "abc"}, {"perpage": 0}, {"perpage": None}, {"perpage": 501},
                                    {"perpage": True}, {"pages": "many"}, {"pages": -1}, {"total": 1.5},
                                    {"total": [1000]}])
def test_a_first_page_with_hostile_paging_is_one_rejection_for_the_window(tmp_path, paging):
    """Page 1's answer plans the window's pages: paging that is no count (or a page size of 0, which would plan
    endless pages) is that page's bad_api_response, saying the window's later pages were not read."""
    with FlickrServer(World(_window_photos(1000))) as server:
        server.max_per_page = 100
        server.search_paging = _page_reads(lambda page, photos: paging)
        kept, rejected = _read_day(server, tmp_path)
        calls = server.calls["flickr.photos.search"]
    assert kept == [] and calls == 2
    [(where, reason, detail)] = rejected
    assert (where, reason) == (f"flickr:{DAY}-{DAY + 86399}:p1", "bad_api_response")
    assert detail.endswith("later pages, planned from this answer, were not read"), detail


@pytest.mark.parametrize("when", ["counted", "first_page"])
def test_uploads_that_push_a_counted_window_past_the_depth_are_said(tmp_path, when):
    """A window counted at 39 under a depth of 40 (a range reaching the present): 2 uploads land in it once it is
    counted, or once its first page is read (the pages after it shift by 2). Its pages then count 41, list the
    newest 40 and never the oldest: said nowhere, as the window's count was under the depth, or said short."""
    photos = [FixturePhoto(str(6000 + i), "o@N01", 4, DAY + i) for i in range(39)]

    def upload(params: dict, answer: dict) -> dict:
        if len(photos) == 39 and ("extras" in params) == (when == "first_page"):
            photos.extend(FixturePhoto(str(7000 + i), "n@N01", 4, DAY + 80_000 + i) for i in range(2))
        return {}

    with FlickrServer(World(photos)) as server:
        server.max_per_page, server.search_depth, server.search_paging = 10, 40, upload
        kept, rejected = _read_day(server, tmp_path, depth=40)
    never = {p.photo_id for p in photos} - set(kept)
    assert len(never) == (1 if when == "counted" else 3)
    assert rejected == [(f"flickr:{DAY}-{DAY + 86399}", "incomplete_window",
                         f"the API counts 41 results in this window (a search lists 40); its 4 of 4 pages of 10 listed "
                         f"{41 - len(never)} different: {len(never)} never listed")]


def test_an_entry_uploaded_outside_its_window_is_that_entrys_rejection(tmp_path):
    """Two of a day's 20 photos listed as uploaded the day before and the day after (an answer mixing up searches):
    they were kept, outside the range asked, each counted as one of the window's photos (one such entry standing
    in for a photo of the window hid that photo's loss). Entries at the window's first and last second are its
    own. The day is counted at 20 and lists 18 of its own: 2 of it never listed, as far as the source can tell."""
    photos = [FixturePhoto(str(6000 + i), "o@N01", 4, DAY + i) for i in range(18)]
    photos += [FixturePhoto("6100", "o@N01", 4, DAY + 86399), FixturePhoto("6101", "o@N01", 4, DAY + 86398)]
    photos[3].search_overrides = {"dateupload": str(DAY - 1)}
    photos[4].search_overrides = {"dateupload": str(DAY + 86400)}
    with FlickrServer(World(photos)) as server:
        kept, rejected = _read_day(server, tmp_path)
    assert kept == sorted(p.photo_id for p in photos if p not in photos[3:5])
    assert [(photo_id, reason) for photo_id, reason, _ in rejected] == [("6003", "bad_api_entry"),
                                                                       ("6004", "bad_api_entry"),
                                                                       (f"flickr:{DAY}-{DAY + 86399}",
                                                                        "incomplete_window")]
    assert rejected[0][2] == f"dateupload {DAY - 1} is outside the window searched, {DAY}-{DAY + 86399}"
    assert rejected[2][2].endswith("listed 18 different: 2 never listed"), rejected[2][2]


def test_an_entry_of_another_window_standing_in_for_one_of_this_window_s_photos_does_not_hide_its_loss(tmp_path):
    """An answer mixing up searches lists, in place of one of the day's 20 photos, a photo of the day before: that
    entry was its bad_api_entry, but the window's tally still counted it as one of the day's, so 20 listed of 20
    counted and the day's photo it stood in for was lost, said nowhere. An entry saying it is of another window lists
    none of this one's."""
    photos = _window_photos(20)

    def mixed_up(page: int, answer: dict) -> dict:
        entries = [entry for entry in answer["photo"] if entry["id"] != "6019"]
        stranger = {name: value for name, value in answer["photo"][0].items() if not name.startswith("url_")}
        return {"photo": [*entries, {**stranger, "id": "5999", "dateupload": str(DAY - 1)}]}

    with FlickrServer(World(photos)) as server:
        server.search_paging = _page_reads(mixed_up)
        kept, rejected = _read_day(server, tmp_path)
    assert kept == sorted(p.photo_id for p in photos if p.photo_id != "6019")
    assert [(photo_id, reason) for photo_id, reason, _ in rejected] == [("5999", "bad_api_entry"),
                                                                       (f"flickr:{DAY}-{DAY + 86399}",
                                                                        "incomplete_window")]
    assert rejected[1][2].endswith("listed 19 different: 1 never listed"), rejected[1][2]


def test_a_range_counted_empty_is_still_read_once(tmp_path):
    """100 photos over a day, split at 60: the first half's count answers 0 once (a blip of the search databases).
    The split dropped that half unread, and its 54 photos were lost, never said; its first page is now read all
    the same. A half that is empty costs that one call."""
    photos = [FixturePhoto(str(6000 + i), "o@N01", 4, DAY + i * 800) for i in range(100)]
    counts = []

    def blip(params: dict, answer: dict) -> dict:
        if "extras" in params:
            return {}
        counts.append(params["min_upload_date"])
        return {"total": 0, "pages": 0, "photo": []} if len(counts) == 2 else {}

    with FlickrServer(World(photos)) as server:
        server.search_paging = blip
        kept, rejected = _read_day(server, tmp_path, depth=60)
        calls = server.calls["flickr.photos.search"]
    assert kept == sorted(p.photo_id for p in photos) and rejected == []
    assert calls == 3 + 2  # the day's count and its halves', then each half's one page
    for photo in photos[:54]:
        photo.deleted = True  # the morning is empty: its half is counted 0 and read once, to no photo
    with FlickrServer(World(photos)) as server:
        kept, rejected = _read_day(server, tmp_path, depth=30)  # the afternoon's 46 are split in two
        calls = server.calls["flickr.photos.search"]
    assert kept == sorted(p.photo_id for p in photos[54:]) and rejected == []
    assert calls == 5 + 3  # the day, its halves and the afternoon's halves counted; a page for each but the day's


def test_an_unreadable_later_page_is_its_own_rejection_and_not_said_twice(tmp_path):
    photos = _window_photos(1000)
    with FlickrServer(World(photos)) as server:
        server.max_per_page = 100
        server.search_paging = _page_reads(lambda page, answer: {"total": None} if page == 5 else {})
        kept, rejected = _read_day(server, tmp_path)
    assert len(kept) == 900 and rejected == [(f"flickr:{DAY}-{DAY + 86399}:p5", "bad_api_response",
                                              "total None is not a count")]


def test_an_unreadable_short_last_page_hides_no_photos_missing_from_the_others(tmp_path):
    """1,010 photos at 100 a page: page 11 holds 10 and is unreadable, page 5 lists 50 of its 100. The unreadable
    page was laid a whole page of 100, so the 50 never listed were said nowhere; it answers for its 10 only."""
    photos = _window_photos(1010)

    def hostile(page: int, answer: dict) -> dict:
        return {"total": None} if page == 11 else {"photo": answer["photo"][:50]} if page == 5 else {}

    with FlickrServer(World(photos)) as server:
        server.max_per_page = 100
        server.search_paging = _page_reads(hostile)
        kept, rejected = _read_day(server, tmp_path)
    assert len(set(kept)) == len(kept) == 1010 - 10 - 50
    assert rejected == [(f"flickr:{DAY}-{DAY + 86399}", "incomplete_window",
                         "the API counts 1,010 results in this window; its 10 of 11 pages of 100 listed 950 different, "
                         "1 unreadable (rejected on their own): 50 never listed"),
                        (f"flickr:{DAY}-{DAY + 86399}:p11", "bad_api_response", "total None is not a count")]


def test_a_later_page_the_api_refuses_is_its_own_rejection_and_not_said_twice(tmp_path):
    with FlickrServer(World(_window_photos(1000))) as server:
        server.max_per_page = 100
        server.inject_delay(0.0, count=2, method="flickr.photos.search")  # the count and page 1 answer
        server.inject_api_error(3, "General request failure", method="flickr.photos.search")  # not retried
        kept, rejected = _read_day(server, tmp_path)
    [(where, reason, detail)] = rejected
    assert reason == "api_error" and "code 3" in detail
    assert where.startswith(f"flickr:{DAY}-{DAY + 86399}:p") and not where.endswith(":p1")
    assert len(set(kept)) == len(kept) == 900


def test_an_entry_s_account_id_is_kept_in_flickrs_one_spelling():
    """An entry owned by "07@n01" (an answer of another spelling than Flickr's) is 7@N01's, its page link too."""
    photo = photo_from_search({"id": "7", "owner": "07@n01", "license": "4", "dateupload": str(DAY)}, "ref", 512)
    assert (photo.owner_nsid, photo.page_url) == ("7@N01", "https://www.flickr.com/photos/7@N01/7/")


def test_a_video_an_answer_lists_is_a_video_not_a_photo(tmp_path):
    """The search asks for photos (media=photos) and trusted that alone: an answer listing a video anyway (a proxy
    ignoring the parameter, one mixing searches up) had the video's poster frame fetched and published as a photo.
    The entry's media says so, and the license stage rejects it as it rejects a YFCC row marked as a video."""
    from pipeline.stages.license import license_rejection

    credentials = tmp_path / "k.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "s"}))
    photos = [FixturePhoto("6000", "o@N01", 4, DAY), FixturePhoto("6001", "o@N01", 4, DAY + 1,
                                                                  search_overrides={"media": "video"})]
    with FlickrServer(World(photos), api_keys={"fixture-key"}) as server:
        reader = _ReadPage(_source_config(server, credentials))
        reader.setup()
        kept = _outputs(list(reader.process(((DAY, DAY + 86399, 2), 1))), "kept")
    outcomes = {photo.photo_id: license_rejection(photo) for photo in kept}
    assert outcomes["6000"] is None and (outcomes["6001"].stage, outcomes["6001"].reason) == ("license", "video")


def test_a_window_counted_in_thousands_of_digits_is_said_in_one_short_detail():
    """A count answer's total may be any JSON integer (`answer_count`): one of 4,000 digits was written whole, with
    its thousands marked, into the window's over_search_depth detail (5,400 characters)."""
    split = _SplitWindows(FlickrSourceConfig(None, None, "4", 0, 0, 512))
    split._search = lambda low, high, **params: {"total": 10**4000}
    [window, over] = list(split.process((0, 0)))
    assert window == (0, 0, 10**4000) and over.value.reason == "over_search_depth"
    assert over.value.detail == ("the API counts a 4,001-digit number of results in this window; a search lists the "
                                 "first 4,000")



def test_a_license_id_flickr_does_not_list_is_rejected_naming_the_id():
    """An entry's licence id outside Flickr's table (a `"99"`) was `not_cc_by` with the detail "no license given"."""
    from pipeline.stages.license import license_rejection

    api = photo_from_search({"id": "7", "owner": "x@N01", "license": "99", "dateupload": "1600000000"}, "ref", 512)
    rejection = license_rejection(api)
    assert rejection is not None and (rejection.reason, rejection.detail) == ("not_cc_by", "Flickr license id 99")
