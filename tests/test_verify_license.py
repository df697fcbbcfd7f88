"""--verify_license through the real flickrapi client against the fixture world: deleted and relicensed
photos are caught, and only photos missing from their owner's CC BY list cost a per-photo call."""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main, run
from pipeline.fixtures.demo_world import demo_image
from pipeline.fixtures.flickr_server import FixturePhoto, FlickrServer, World
from pipeline.fixtures.yfcc_rows import yfcc_line
from pipeline.flickr.client import FlickrClient
from pipeline.flickr.credentials import Credentials
from tests.conftest import FAST


@pytest.fixture
def world_and_input(tmp_path):
    names = ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "brick.jpg", "coins.jpg"]
    photos = [FixturePhoto(str(7000 + i), owner, 4, 1_300_000_000 + i, jpeg=demo_image(name))
              for i, (owner, name) in enumerate(zip(["a@N01"] * 3 + ["b@N01"] * 2, names, strict=True))]
    world = World(photos)
    world.relicense("7001", 2, 1_500_000_000)  # now non-commercial: must go
    world.delete("7002")
    world.relicense("7003", 11, 1_500_000_000)  # CC BY 2.0 -> 4.0: still fine, license updated
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "k", "secret": "s"}))
    with FlickrServer(world, api_keys={"k"}) as server:
        lines = [yfcc_line(i + 1, p.photo_id, server.static_url(p), owner_nsid=p.owner)
                 for i, p in enumerate(photos)]
        (tmp_path / "in.tsv").write_text("\n".join(lines) + "\n")
        yield server, credentials, tmp_path / "in.tsv"


def test_deleted_and_relicensed_photos_are_rejected_before_fetch(world_and_input, tmp_path):
    server, credentials, metadata = world_and_input
    stats = run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                 "--verify_license", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
                 "--flickr_calls_per_second=0", *FAST])
    assert stats["accounted"]
    rejections = {r["photo_id"]: (r["reason"], r["detail"]) for r in pq.read_table(tmp_path / "out" / "rejections")
                  .to_pylist()}
    assert rejections["7001"] == ("relicensed", "Attribution License -> Attribution-NonCommercial License")
    assert rejections["7002"][0] == "deleted"
    kept = {row["photo_id"]: row["license_name"] for row in pq.read_table(tmp_path / "out" / "parquet").to_pylist()}
    assert kept == {"7000": "Attribution License", "7003": "CC BY 4.0", "7004": "Attribution License"}
    # The owner strategy: 2 searches per owner (a count, one page); getInfo only for the two missing photos.
    assert server.calls["flickr.photos.search"] == 4 and server.calls["flickr.photos.getInfo"] == 2
    assert stats["api_calls"] == {"flickr.photos.getInfo": 2, "flickr.photos.search": 4}  # as the server counted
    assert main(["verify", str(tmp_path / "out")]) == 0  # stats.json rewritten, manifest still agrees
    static_hits = [path for path in server.hits if "7001" in path or "7002" in path]
    assert not static_hits  # rejected photos were never downloaded


def test_calls_are_paced_per_process(world_and_input):
    server, _, _ = world_and_input
    client = FlickrClient(Credentials("k", "s"), server.rest_url, calls_per_second=4.0)
    other = FlickrClient(Credentials("k", "s"), server.rest_url, calls_per_second=4.0)  # shares the pace
    start = time.monotonic()
    for api in (client, other, client, other, client):
        api.call("flickr.photos.licenses.getInfo")
    assert time.monotonic() - start >= 4 * 0.25 - 0.02  # five calls at 4/s span four intervals


def test_a_refused_owner_search_falls_back_to_per_photo_checks(world_and_input, tmp_path):
    server, credentials, metadata = world_and_input
    server.inject_api_error(2, "Unknown user", method="flickr.photos.search")  # e.g. a closed account
    stats = run([f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                 "--verify_license", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
                 "--flickr_calls_per_second=0", *FAST])
    reasons = {r["photo_id"]: r["reason"] for r in pq.read_table(tmp_path / "out" / "rejections").to_pylist()}
    kept = {row["photo_id"] for row in pq.read_table(tmp_path / "out" / "parquet").to_pylist()}
    assert stats["accounted"] and reasons == {"7001": "relicensed", "7002": "deleted"}
    assert kept == {"7000", "7003", "7004"}
    assert server.calls["flickr.photos.getInfo"] > 2  # the refused owner's listed photos were checked one by one
