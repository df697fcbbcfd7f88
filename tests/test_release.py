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
from pipeline.commands.refresh import models_for
from pipeline.detectors.fusion import builtin_fusion
from pipeline.fixtures.demo_world import demo_image
from pipeline.fixtures.flickr_server import FixturePhoto, FlickrServer, World
from pipeline.release.refresh import ReleaseError, check_new_release, refresh_argv
from tests.conftest import LOCAL, encode, real_image

SEPT = int(dt.datetime(2020, 9, 1, tzinfo=dt.UTC).timestamp())
DAY = 86400
BY, BY_NC = 4, 2


def fixture_photo(photo_id: str, name: str, day: int, license_id: int = BY, jpeg: bytes = b"") -> FixturePhoto:
    return FixturePhoto(photo_id, f"owner{photo_id}@N01", license_id, SEPT + day * DAY + 3600,
                        owner_name=f"Owner {photo_id}", title=name, jpeg=jpeg or demo_image(name))


def initial_world() -> World:
    return World([
        fixture_photo("100", "chelsea.jpg", 1),
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
    assert manifest["code_version"] and {m["name"] for m in manifest["models"]} == {
        "centerface", "ssdlite_person", "open_nsfw", "mediapipe_palm", "fusion"}
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
    world.photos.append(fixture_photo("109", "hubble_deep_field.jpg", 35))
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
    assert data_files(release) == data_files(tmp_path / "straight" / "releases" / "2020-10")


def test_latest_published_release(tmp_path):
    from pipeline.release.refresh import latest_release

    assert latest_release(str(tmp_path)) is None
    for name, published in (("2026-09", True), ("2026-10", True), ("2026-11", False)):
        (tmp_path / "releases" / name).mkdir(parents=True)
        (tmp_path / "releases" / name / "manifest.json").write_text(json.dumps({"release": name if published
                                                                                 else None}))
    assert latest_release(str(tmp_path)) == str(tmp_path / "releases" / "2026-10")  # 2026-11 is unfinished


def test_guards_and_inherited_options(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"release": "r1", "options": {
        "source": "flickr", "max_upload_date": "2020-09-10", "formats": "parquet", "max_side": 256,
        "verify_license": True, "near_dup_distance": 4}}))
    with pytest.raises(ReleaseError, match="never modified"):
        check_new_release(str(tmp_path / "r1"), None)
    with pytest.raises(ReleaseError, match="inside, above or equal"):
        check_new_release(str(tmp_path / "r1" / "sub"), str(tmp_path / "r1"))
    argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", ["--max_side=512"], models_for,
                        today=dt.date(2020, 10, 2))
    assert "--max_side=512" in argv and "--max_side=256" not in argv and "--formats=parquet" in argv
    assert f"--min_upload_date={int(dt.datetime(2020, 9, 11, tzinfo=dt.UTC).timestamp())}" in argv
    assert "--max_upload_date=2020-10-01" in argv and f"--carry_over={tmp_path / 'r1'}" in argv
    assert f"--output={tmp_path / 'releases' / 'r2'}" in argv


def test_a_refresh_reads_the_next_table_the_way_the_release_read_its_own(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"release": "r1", "options": {
        "source": "yfcc", "input": "/data/list-2026-10.csv", "input_format": "csv",
        "columns": "url=photo_url,id=photo_id,license=licence"}}))
    argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", ["--input=/data/list-2026-11.csv"], models_for)
    assert "--input_format=csv" in argv and "--columns=url=photo_url,id=photo_id,license=licence" in argv
    assert "--input=/data/list-2026-10.csv" not in argv  # the input itself is the new one, never inherited


@pytest.mark.slow
def test_refresh_of_a_yfcc_release_rechecks_the_carried_images(tmp_path):
    """A YFCC dump has no new uploads: the refresh carries the release over and applies takedowns."""
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.fixtures.static_server import StaticServer

    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        # One person detector (the refreshes inherit it): a whole detector set would only cost time here.
        assert main(["refresh", f"--output={tmp_path / 'root'}", "--release=2026-10", f"--input={metadata}",
                     f"--allowed_hosts={server.host}", "--detectors=ssdlite_person", *LOCAL]) == 0
        first = tmp_path / "root" / "releases" / "2026-10"
        before = released(first)
        takedowns = tmp_path / "takedowns.txt"
        takedowns.write_text("photo_id 1004\n")
        server.hits.clear()
        assert main(["refresh", f"--previous={first}", f"--output={tmp_path / 'root'}", "--release=2026-11",
                     f"--blocklist={takedowns}", f"--allowed_hosts={server.host}", *LOCAL]) == 0
        assert not server.hits  # nothing downloaded: every image came from the previous release
        second = tmp_path / "root" / "releases" / "2026-11"
        assert released(second) == before - {"1004"}
        log = json.loads((second / "changelog.json").read_text())
        assert log["removed"] == {"blocklist/blocklisted": ["1004"]} and log["added"] == []
        stats = json.loads((second / "stats.json").read_text())
        assert stats["accounted"] and stats["input_rows"] == len(before)
        assert not json.loads((second / "manifest.json").read_text())["options"]["redetect"]  # same detectors
        # Stricter detectors than the released images were checked with: they are checked again, and
        # (at a person threshold of 0.005, everything "has a person": the demo photos score 0.0098 and
        # up) all leave the release as human.
        assert main(["refresh", f"--previous={second}", f"--output={tmp_path / 'root'}", "--release=2026-12",
                     "--detect_thresholds=ssdlite_person.person=0.005", f"--allowed_hosts={server.host}",
                     "--allow_empty", *LOCAL]) == 0
    third = tmp_path / "root" / "releases" / "2026-12"
    assert released(third) == set()
    assert json.loads((third / "manifest.json").read_text())["options"]["redetect"]
    assert json.loads((third / "changelog.json").read_text())["removed"] == {
        "detect/human": sorted(before - {"1004"}, key=int)}


def test_a_refresh_reproduces_every_option_that_shaped_the_release(tmp_path):
    """Built with every inherited option changed (a custom registry included), refreshed with none
    given: the new release records the same values, and the custom detector is still known."""
    from pipeline import options
    from pipeline.detectors.registry import BUILTIN_REGISTRY
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.fixtures.static_server import StaticServer

    entry = next(e for e in json.loads(BUILTIN_REGISTRY.read_text())["detectors"] if e["name"] == "open_nsfw")
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"detectors": [
        {**entry, "name": "nsfw_custom", "file": str(BUILTIN_REGISTRY.parent / entry["file"])}]}))
    shaping = {
        "source": "yfcc", "flickr_licenses": "4", "flickr_originals": "true", "formats": "parquet,webdataset",
        "max_bytes": "10000000", "max_side": "384", "min_side": "32", "max_pixels": "50000000", "min_stddev": "2.5",
        "jpeg_quality": "85", "near_dup_distance": "3", "near_dup_key_blocks": "3", "near_dup_dhash_distance": "12",
        "detectors": "nsfw_custom", "model_registry": str(registry), "detect_thresholds": "nsfw_custom.nsfw=0.9",
        "review_band": "nsfw_custom.nsfw=0.85", "detect_tile_min_side": "0", "per_owner_cap": "5",
        "fusion": "none", "draft_supersample": "1",
        # A refresh of a release built from a generic table reads the next table the same way; here the
        # YFCC format, stated explicitly (--columns is refused with it, so it stays empty).
        "input_format": "yfcc", "columns": "",
    }
    assert set(shaping) == set(options.INHERITED)  # a new inherited option must be added here
    root = tmp_path / "root"
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        assert main(["refresh", f"--output={root}", "--release=r1", f"--input={metadata}",
                     f"--allowed_hosts={server.host}", *(f"--{k}={v}" for k, v in shaping.items()), *LOCAL]) == 0
        assert main(["refresh", f"--previous={root / 'releases' / 'r1'}", f"--output={root}", "--release=r2",
                     f"--allowed_hosts={server.host}", *LOCAL]) == 0
    first, second = (json.loads((root / "releases" / name / "manifest.json").read_text())["options"]
                     for name in ("r1", "r2"))
    for name in options.INHERITED:
        assert second[name] == first[name], name
        # The input's kind stays YFCC here (the demo world is YFCC rows); a table's format and column
        # mapping are inherited in test_a_refresh_reads_the_next_table_the_way_the_release_read_its_own.
        if name not in ("source", "input_format", "columns"):
            assert first[name] != OPTIONS_DEFAULTS[name], name  # really changed from the default
    assert json.loads((root / "releases" / "r2" / "manifest.json").read_text())["models"][0]["name"] == "nsfw_custom"


OPTIONS_DEFAULTS = {option.name: option.default for option in __import__("pipeline.options").options.DECLARED}


@pytest.fixture(scope="module")
def first_yfcc_release(tmp_path_factory):
    """A first release of the demo world (detection off), read by the two refresh tests below; its
    server stays up for their refreshes. Photo 1005 was busy (a 503, no retries) and is left out."""
    from pipeline.fixtures.demo_world import build_demo_world, demo_image, photo_path
    from pipeline.fixtures.static_server import StaticServer, image, status

    folder = tmp_path_factory.mktemp("yfcc")
    with StaticServer() as server:
        metadata = build_demo_world(server, folder)
        server.add(photo_path("1005"), status(503), image(demo_image("rocket.jpg")))  # busy once, then fine
        assert main(["refresh", f"--output={folder / 'root'}", "--release=r1", f"--input={metadata}",
                     f"--allowed_hosts={server.host}", "--detectors=none", "--max_retries=0", *LOCAL]) == 0
        yield server, metadata, folder / "root" / "releases" / "r1"


def test_a_near_copy_of_a_photo_removed_in_this_refresh_is_a_new_image(first_yfcc_release, tmp_path):
    """The refresh compares new images with the carried images that stay, not with the previous
    release's index: coffee (1004) is taken down, and a re-upload of it is then no duplicate."""
    from pipeline.fixtures.static_server import image
    from pipeline.fixtures.yfcc_rows import yfcc_line

    server, _, first = first_yfcc_release
    assert "1004" in released(first)
    smaller = encode(real_image("coffee.jpg").resize((450, 300)), quality=80)  # a near copy of 1004
    url = server.add("/1/2001_abcdef0123.jpg", image(smaller))
    (tmp_path / "new.tsv").write_text(yfcc_line(1, "2001", url, title="Coffee again") + "\n")
    (tmp_path / "takedowns.txt").write_text("photo_id 1004\n")
    assert main(["refresh", f"--previous={first}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--input={tmp_path / 'new.tsv'}", f"--blocklist={tmp_path / 'takedowns.txt'}",
                 f"--allowed_hosts={server.host}", *LOCAL]) == 0
    second = tmp_path / "root" / "releases" / "r2"
    assert released(second) == (released(first) - {"1004"}) | {"2001"}
    index = pq.read_table(second / "near_dup_index").column("photo_id").to_pylist()
    assert sorted(index) == sorted(released(second))  # the index is exactly what the release holds


def test_a_refresh_of_an_unchanged_dump_downloads_only_what_was_never_decided(first_yfcc_release, tmp_path):
    """The ledger: every photo decided for good is skipped before the fetch; one that failed for a
    transient reason (a 503) is fetched again, and nothing else is."""
    from pipeline.fixtures.demo_world import photo_path

    server, metadata, first = first_yfcc_release
    assert "1005" not in released(first)
    server.hits.clear()
    assert main(["refresh", f"--previous={first}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL]) == 0
    fetched = {path for path, count in server.hits.items() if count}
    second = tmp_path / "root" / "releases" / "r2"
    assert released(second) == released(first) | {"1005"}
    assert fetched == {photo_path("1005")}  # the one transient failure, nothing else
    stats = json.loads((second / "stats.json").read_text())
    assert stats["accounted"] and stats["rejections_by_stage"]["ledger"]["already_decided"] == 14
    assert json.loads((second / "changelog.json").read_text())["skipped_as_decided"] == 14
    ledger = pq.read_table(second / "ledger").to_pylist()
    by_id = {row["photo_id"]: row for row in ledger}
    assert by_id["1005"]["decision"] == "kept" and by_id["1005"]["release"] == "r2"
    assert by_id["1015"] == {"photo_id": "1015", "decision": "rejected", "stage": "fetch", "reason": "not_found",
                             "release": "r1"}
    assert "1013" not in by_id and "1018" not in by_id  # decided from the row itself every time
