"""--source=flickr end to end: the real flickrapi client against the fixture world, the whole job."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.cli import main, run
from pipeline.fixtures.demo_world import DEMO_PHOTOS, demo_image
from pipeline.fixtures.flickr_server import FixturePhoto, FlickrServer, World
from pipeline.sources.flickr import parse_date, photo_from_search
from tests.conftest import FAST, LOCAL

DAY = 1_600_000_000 - 1_600_000_000 % 86400  # a UTC midnight
# Photographs of people: found by the detectors and never kept, whatever their license.
PEOPLE = {str(5000 + i) for i, (_, name, *_) in enumerate(DEMO_PHOTOS) if name in ("astronaut.jpg", "camera.jpg")}


@pytest.fixture
def flickr(tmp_path, monkeypatch):
    photos = []
    for i, (_, name, title, credit, _) in enumerate(DEMO_PHOTOS):
        license_id = (4, 11, 2)[i % 3]  # 2 = BY-NC: never returned by a license=4,11 search
        photos.append(FixturePhoto(str(5000 + i), f"o{i}@N01", license_id, DAY + i * 3600, owner_name=credit,
                                   title=title, jpeg=demo_image(name)))
    photos[1].deleted = True  # deleted since: absent from search results
    world = World(photos)
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "fixture-key", "secret": "fixture-secret"}))
    with FlickrServer(world, api_keys={"fixture-key"}) as server:
        yield server, credentials


def test_job_reads_cc_by_photos_from_the_api(flickr, tmp_path):
    server, credentials = flickr
    stats = run(["--source=flickr", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
                 "--min_upload_date=2020-09-13", "--max_upload_date=2020-09-13", f"--output={tmp_path / 'out'}",
                 f"--allowed_hosts={server.host}", "--near_dup_distance=-1", *LOCAL])
    expected = {p.photo_id for p in server.world.photos if p.license in (4, 11) and not p.deleted} - PEOPLE
    rows = pq.read_table(tmp_path / "out" / "parquet").to_pylist()
    assert stats["accounted"] and {row["photo_id"] for row in rows} == expected
    row = next(r for r in rows if r["photo_id"] == "5003")
    assert row["license_url"] == "https://creativecommons.org/licenses/by/2.0/"
    assert row["owner_name"] == "Rachel Michetti"
    assert row["page_url"] == "https://www.flickr.com/photos/o3@N01/5003/" and row["fetched_url"].endswith("_z.jpg")
    assert stats["api_calls"]["flickr.photos.search"] == server.calls["flickr.photos.search"] >= 2
    for path in (tmp_path / "out").rglob("*"):  # the key and secret appear in no output
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


def test_originals_only_on_request(flickr, tmp_path):
    server, credentials = flickr
    server.world.photos[3].can_download_original = False  # the owner does not allow original downloads
    args = ["--source=flickr", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
            "--min_upload_date=2020-09-13", "--max_upload_date=2020-09-13", f"--allowed_hosts={server.host}",
            "--near_dup_distance=-1", *FAST]
    run([*args, f"--output={tmp_path / 'sized'}"])
    sized = pq.read_table(tmp_path / "sized" / "parquet").to_pylist()
    assert sized and not any("_o." in row["fetched_url"] for row in sized)
    run([*args, f"--output={tmp_path / 'orig'}", "--flickr_originals"])
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
                if p.license in (4, 11) and not p.deleted and not low <= p.date_upload <= high} - PEOPLE
    kept = {row["photo_id"] for row in pq.read_table(tmp_path / "out" / "parquet").to_pylist()}
    assert kept == expected and 0 < len(kept) < 5  # the rest of the range was still read


def test_search_entry_mapping():
    entry = {"id": "7", "owner": "x@N01", "ownername": "X", "license": "11", "dateupload": "1600000000",
             "url_m": "http://h/1/7_a_m.jpg", "url_z": "http://h/1/7_a_z.jpg", "url_b": "http://h/1/7_a_b.jpg",
             "tags": "sea  sun", "description": {"_content": "d"}}
    photo = photo_from_search(entry, "ref", 512)
    assert photo.license_name == "CC BY 4.0" and photo.download_url.endswith("_z.jpg")
    assert photo.date_uploaded == "2020-09-13T12:26:40Z" and photo.tags == "sea,sun"
    assert photo_from_search(entry, "ref", 2048).download_url.endswith("_b.jpg")
    assert parse_date("2020-09-13") == 1599955200 and parse_date("42") == 42


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
    windows, refused = [], []
    for item in split.process((0, 10_000)):
        if isinstance(item, tuple):
            windows.append(item[:2])
        else:
            low, high = item.value.photo_id.removeprefix("flickr:").split("-")
            refused.append((int(low), int(high)))
    for t in times:
        holders = [r for r in windows + refused if r[0] <= t <= r[1]]
        assert len(holders) == 1, (t, holders)
