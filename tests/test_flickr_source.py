"""--source=flickr end to end: the real flickrapi client against the fixture world, the whole job."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main, run
from pipeline.demo import DEMO_PHOTOS, demo_image
from pipeline.fixtures.flickr_server import FixturePhoto, FlickrServer, World
from pipeline.sources.flickr import parse_date, photo_from_search
from tests.conftest import LOCAL

DAY = 1_600_000_000 - 1_600_000_000 % 86400  # a UTC midnight


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
    expected = {p.photo_id for p in server.world.photos if p.license in (4, 11) and not p.deleted}
    rows = pq.read_table(tmp_path / "out" / "parquet").to_pylist()
    assert stats["accounted"] and {row["photo_id"] for row in rows} == expected
    row = next(r for r in rows if r["photo_id"] == "5000")
    assert row["license_url"] == "https://creativecommons.org/licenses/by/2.0/" and row["owner_name"] == "NASA"
    assert row["page_url"] == "https://www.flickr.com/photos/o0@N01/5000/" and row["fetched_url"].endswith("_z.jpg")
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


def test_search_entry_mapping():
    entry = {"id": "7", "owner": "x@N01", "ownername": "X", "license": "11", "dateupload": "1600000000",
             "url_m": "http://h/1/7_a_m.jpg", "url_z": "http://h/1/7_a_z.jpg", "url_b": "http://h/1/7_a_b.jpg",
             "tags": "sea  sun", "description": {"_content": "d"}}
    photo = photo_from_search(entry, "ref", 512)
    assert photo.license_name == "CC BY 4.0" and photo.download_url.endswith("_z.jpg")
    assert photo.date_uploaded == "2020-09-13T12:26:40Z" and photo.tags == "sea,sun"
    assert photo_from_search(entry, "ref", 2048).download_url.endswith("_b.jpg")
    assert parse_date("2020-09-13") == 1599955200 and parse_date("42") == 42
