"""Monthly releases over the Flickr fixture world: three consecutive refreshes in which photos are
added, deleted, relicensed and taken down in between; each release's content matches the world's
ground truth, earlier releases stay byte-identical, and a killed-and-resumed refresh writes the
same release as an uninterrupted one."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.detectors.fusion import builtin_fusion
from pipeline.fixtures.demo_world import demo_image
from pipeline.fixtures.flickr_server import FixturePhoto, FlickrServer, World
from pipeline.stages.image import STORAGE_RULE_VERSION
from tests.bad_images import crop_variant
from tests.conftest import LOCAL, encode, real_image

SEPT = int(dt.datetime(2020, 9, 1, tzinfo=dt.UTC).timestamp())
DAY = 86400
BY, BY_NC = 4, 2


def fixture_photo(photo_id: str, name: str, day: int, license_id: int = BY, jpeg: bytes = b"") -> FixturePhoto:
    return FixturePhoto(photo_id, f"owner{photo_id}@N01", license_id, SEPT + day * DAY + 3600,
                        owner_name=f"Owner {photo_id}", title=name, jpeg=jpeg or demo_image(name))


def initial_world() -> World:
    return World([
        # A quadrant of the coins photo: the cat's close-up would be rejected (NanoDet's false alarm).
        fixture_photo("100", "coins.jpg", 1, jpeg=crop_variant("coins.jpg", 0)),
        fixture_photo("101", "coffee.jpg", 2),
        fixture_photo("102", "rocket.jpg", 3),
        fixture_photo("103", "brick.jpg", 4),
        fixture_photo("104", "astronaut.jpg", 5),  # a person: never released
        fixture_photo("105", "coins.jpg", 6, license_id=BY_NC),  # never returned by a CC BY search
    ])


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def data_files(release: Path) -> dict[str, str]:
    """The content of a release that must not depend on when or where it was written."""
    return {path: digest for path, digest in snapshot(release).items()
            if path.split("/")[0] in ("webdataset", "parquet", "tfrecord", "rejections", "near_dup_index")
            or path in ("ATTRIBUTION.csv", "changelog.json", "CHANGELOG.md")}


def released(release: Path) -> set[str]:
    return {row["photo_id"] for row in pq.read_table(release / "parquet", columns=["photo_id"]).to_pylist()}


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    credentials = folder / "flickr.json"
    credentials.write_text(json.dumps({"key": "release-key", "secret": "release-secret"}))
    with FlickrServer(initial_world(), api_keys={"release-key"}) as server:
        yield server, credentials, folder


def refresh(server, credentials, root: Path, name: str, previous: str = "", *extra: str) -> int:
    args = ["refresh", f"--output={root}", f"--release={name}", f"--flickr_rest_url={server.rest_url}",
            f"--flickr_credentials={credentials}", f"--allowed_hosts={server.host}", "--flickr_calls_per_second=0",
            *extra, *LOCAL]
    if previous:
        args.insert(1, f"--previous={previous}")
    return main(args)


@pytest.mark.slow
def test_three_consecutive_releases(flickr, tmp_path):
    server, credentials, folder = flickr
    root = tmp_path / "root"
    # --- 2020-09: the first release, uploads of September 1-10 -----------------------------------
    assert refresh(server, credentials, root, "2020-09", "", "--source=flickr", "--min_upload_date=2020-09-01",
                   "--max_upload_date=2020-09-10") == 0
    first = root / "releases" / "2020-09"
    assert released(first) == {"100", "101", "102", "103"}
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["release"] == "2020-09" and manifest["previous_release"] is None
    assert manifest["inputs"]["source"] == "flickr" and manifest["inputs"]["max_upload_date"] == "2020-09-10"
    assert manifest["storage_rule_version"] == STORAGE_RULE_VERSION  # which rule stored the images it adds
    assert manifest["code_version"] and {m["name"] for m in manifest["models"]} == {
        "centerface", "open_nsfw", "nanodet_person", "oidv4_person", "fusion"}
    fusion = next(m for m in manifest["models"] if m["name"] == "fusion")
    assert fusion["sha256"] == builtin_fusion().sha256 and fusion["features"] == list(builtin_fusion().features)
    assert "held-out labelled photographs" in (first / "DATASHEET.md").read_text()
    assert {"DATASHEET.md", "datasheet.html", "datasheet/funnel.png", "datasheet/scores.png",
            "datasheet/sample.jpg"} <= {f["path"] for f in manifest["files"]}
    assert main(["verify", str(first)]) == 0
    sheet = (first / "DATASHEET.md").read_text()
    for heading in ("Motivation", "Composition", "Collection process", "Preprocessing", "Uses", "Distribution",
                    "Maintenance", "Takedown"):
        assert heading in sheet
    first_files = snapshot(first)

    # --- between releases: new uploads, a near copy, a deletion, a relicensing, a takedown -----------
    world = server.world
    world.photos += [fixture_photo("106", "grass.jpg", 15), fixture_photo("107", "gravel.jpg", 16),
                     fixture_photo("108", "coffee.jpg", 17,
                                   jpeg=encode(real_image("coffee.jpg").resize((400, 267)), quality=70))]
    world.delete("102")
    world.relicense("103", BY_NC, SEPT + 20 * DAY)
    takedowns = folder / "takedowns.txt"
    takedowns.write_text("photo_id 100  # the photographer asked on 2020-09-25\n")
    assert refresh(server, credentials, root, "2020-10", str(first), "--verify_license",
                   f"--blocklist={takedowns}", "--max_upload_date=2020-09-30") == 0
    second = root / "releases" / "2020-10"
    assert released(second) == {"101", "106", "107"}
    log = json.loads((second / "changelog.json").read_text())
    assert log["added"] == ["106", "107"] and log["unchanged"] == 1
    assert log["removed"] == {"blocklist/blocklisted": ["100"], "verify_license/deleted": ["102"],
                              "verify_license/relicensed": ["103"]}
    near = {r["photo_id"]: r for r in pq.read_table(second / "rejections").to_pylist()}["108"]
    assert (near["reason"], near["duplicate_of"]) == ("near_duplicate", "101")
    rows = {r["photo_id"]: r for r in pq.read_table(second / "parquet").to_pylist()}
    assert rows["101"]["first_release"] == "2020-09" and rows["106"]["first_release"] == "2020-10"
    assert rows["101"]["image"] == {r["photo_id"]: r for r in pq.read_table(first / "parquet").to_pylist()}[
        "101"]["image"]  # carried over as released, not refetched and re-encoded
    assert "100" in (second / "CHANGELOG.md").read_text()
    assert snapshot(first) == first_files  # the previous release was only read
    assert main(["verify", str(second)]) == 0
    second_files = snapshot(second)

    # --- 2020-11: one more upload, one more deletion -----------------------------------------------
    # (Not the deep field: its specks are held for review as possible distant people.)
    world.photos.append(fixture_photo("109", "coins.jpg", 35, jpeg=crop_variant("coins.jpg", 3)))
    world.delete("106")
    hits_before = dict(server.hits)
    # As the monthly schedule launches it: --previous=latest finds 2020-10, the newest published release.
    assert refresh(server, credentials, root, "2020-11", "latest", "--verify_license",
                   f"--blocklist={takedowns}", "--max_upload_date=2020-10-31") == 0
    third = root / "releases" / "2020-11"
    assert released(third) == {"101", "107", "109"}
    assert json.loads((third / "changelog.json").read_text())["removed"] == {"verify_license/deleted": ["106"]}
    fetched = {path for path, count in server.hits.items() if count > hits_before.get(path, 0)}
    assert all("/109_" in path for path in fetched)  # only the new upload was downloaded
    assert snapshot(first) == first_files and snapshot(second) == second_files
    # A published release is never an output again, not even with --overwrite.
    assert refresh(server, credentials, root, "2020-11", str(second)) == 2
    assert main(["run", f"--output={third}", "--overwrite", f"--carry_over={second}", *LOCAL]) == 2
    assert snapshot(second) == second_files


@pytest.mark.slow
def test_a_killed_refresh_resumes_to_the_same_release(flickr, tmp_path):
    server, credentials, _ = flickr
    server.world = initial_world()
    server.world.photos += [fixture_photo("106", "grass.jpg", 15), fixture_photo("107", "gravel.jpg", 16),
                            fixture_photo("109", "hubble_deep_field.jpg", 18)]
    base = tmp_path / "base"
    # Detection off (the refreshes inherit it): what is under test is resuming, not detecting.
    assert refresh(server, credentials, base, "2020-09", "", "--source=flickr", "--min_upload_date=2020-09-01",
                   "--max_upload_date=2020-09-10", "--detectors=none") == 0
    previous = str(base / "releases" / "2020-09")
    assert refresh(server, credentials, tmp_path / "straight", "2020-10", previous,
                   "--max_upload_date=2020-09-30") == 0

    interrupted = tmp_path / "interrupted"
    server.static_delay = 0.3  # slow downloads, so that the run is still busy when it is killed
    command = [sys.executable, "-m", "pipeline", "refresh", f"--previous={previous}", f"--output={interrupted}",
               "--release=2020-10", f"--flickr_rest_url={server.rest_url}", f"--flickr_credentials={credentials}",
               f"--allowed_hosts={server.host}", "--flickr_calls_per_second=0", "--max_upload_date=2020-09-30", *LOCAL]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = interrupted / "work" / "2020-10" / "cache"
    deadline = time.monotonic() + 240
    try:
        while not list(cache.glob("*.parquet")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    server.static_delay = 0.0
    release = interrupted / "releases" / "2020-10"
    assert list(cache.glob("*.parquet")), "the run was killed before it cached anything"
    assert not (release / "manifest.json").exists(), "the run finished before it could be killed"
    hits_before = dict(server.hits)
    assert refresh(server, credentials, interrupted, "2020-10", previous, "--max_upload_date=2020-09-30") == 0
    refetched = [path for path, count in server.hits.items() if count > hits_before.get(path, 0)]
    assert not refetched  # everything downloaded before the kill came from the cache
    assert not (interrupted / "work" / "2020-10").exists()  # served its rerun; removed once the release is published
    assert data_files(release) == data_files(tmp_path / "straight" / "releases" / "2020-10")
