"""The Flickr fixture server through the real flickrapi client (and the project's fetcher)."""

from __future__ import annotations

import io
import logging
import signal

import flickrapi
import pytest
from PIL import Image

from pipeline.fixtures.flickr_server import OMIT, SEARCH_DEPTH, FixturePhoto, FlickrServer, World
from pipeline.io.http_client import FetchConfig, Fetcher


def world(count: int = 30) -> World:
    return World([FixturePhoto(str(1000 + i), f"owner{i % 3}@N01", license=(4, 11, 1)[i % 3],
                               date_upload=1_600_000_000 + i * 60, owner_name=f"Owner {i % 3}", title=f"Photo {i}")
                  for i in range(count)])


@pytest.fixture
def server():
    with FlickrServer(world(), api_keys={"KEY"}) as srv:
        yield srv


def client(server, key="KEY") -> flickrapi.FlickrAPI:
    api = flickrapi.FlickrAPI(key, "SECRET", format="parsed-json", store_token=False)
    api.REST_URL = server.rest_url
    return api


def test_search_filters_pages_and_extras(server):
    api = client(server)
    first = api.photos.search(license="4,11", per_page=5, page=1, extras="license,owner_name,date_upload,url_z,o_dims")
    photos = first["photos"]
    assert first["stat"] == "ok" and photos["total"] == 20 and photos["pages"] == 4 and len(photos["photo"]) == 5
    entry = photos["photo"][0]
    assert entry["license"] in ("4", "11") and entry["ownername"].startswith("Owner")
    assert entry["url_z"].endswith("_z.jpg") and int(entry["width_z"]) == 640
    seen = {p["id"] for page in range(1, 5)
            for p in api.photos.search(license="4,11", per_page=5, page=page)["photos"]["photo"]}
    assert len(seen) == 20
    window = api.photos.search(min_upload_date=1_600_000_000, max_upload_date=1_600_000_000 + 5 * 60)
    assert window["photos"]["total"] == 6
    assert api.photos.search(user_id="owner1@N01")["photos"]["total"] == 10


def test_search_depth_cap_repeats_results():
    many = World([FixturePhoto(str(i), "o@N01", 4, 1_600_000_000 + i) for i in range(SEARCH_DEPTH + 600)])
    with FlickrServer(many, api_keys={"KEY"}) as srv:
        api = client(srv)
        last = api.photos.search(per_page=500, page=8)["photos"]
        beyond = api.photos.search(per_page=500, page=9)["photos"]
        assert last["total"] == SEARCH_DEPTH + 600 and beyond["pages"] == 10
        assert [p["id"] for p in beyond["photo"]] == [p["id"] for p in last["photo"]]


def test_get_info_licenses_and_history(server):
    api = client(server)
    info = api.photos.getInfo(photo_id="1000")["photo"]
    assert info["license"] == "4" and info["owner"]["nsid"] == "owner0@N01"
    licenses = {int(lic["id"]): lic["name"] for lic in api.photos.licenses.getInfo()["licenses"]["license"]}
    assert len(licenses) == 17 and licenses[4] == "Attribution License" and licenses[11] == "CC BY 4.0"
    server.world.relicense("1000", 2, 1_700_000_000)
    history = api.photos.licenses.getLicenseHistory(photo_id="1000")["license_history"]
    assert history[0]["old_license"] == "Attribution License" and "by-nc" in history[0]["new_license_url"]
    assert api.photos.getInfo(photo_id="1000")["photo"]["license"] == "2"


def test_errors_as_flickr_reports_them(server):
    server.world.delete("1001")
    with pytest.raises(flickrapi.FlickrError) as deleted:
        client(server).photos.getInfo(photo_id="1001")
    assert deleted.value.code == 1
    with pytest.raises(flickrapi.FlickrError) as bad_key:
        client(server, key="WRONG").photos.licenses.getInfo()
    assert bad_key.value.code == 100
    with pytest.raises(flickrapi.FlickrError) as unknown:
        client(server).photos.doesNotExist()
    assert unknown.value.code == 112


def test_injected_faults(server):
    api = client(server)
    server.inject_api_error(105, "Service currently unavailable")
    with pytest.raises(flickrapi.FlickrError) as unavailable:
        api.photos.licenses.getInfo()
    assert unavailable.value.code == 105
    server.inject_http(429, Retry_After="1")
    with pytest.raises(flickrapi.FlickrError, match="429"):
        api.photos.licenses.getInfo()
    assert api.photos.licenses.getInfo()["stat"] == "ok"  # faults are one-shot
    assert server.calls["flickr.photos.licenses.getInfo"] == 3


def test_static_sizes_and_deleted_placeholder(server):
    fetcher = Fetcher(FetchConfig(allowed_hosts=(server.host,), user_agent="test", max_retries=0))
    photo = server.world.by_id()["1003"]
    result = fetcher.fetch(server.static_url(photo, "_b"))
    assert result.ok and max(Image.open(io.BytesIO(result.body)).size) == 1024
    assert max(Image.open(io.BytesIO(fetcher.fetch(server.static_url(photo)).body)).size) == 500
    server.world.delete("1003")
    assert fetcher.fetch(server.static_url(photo)).reason == "deleted"


def test_search_entries_can_be_served_malformed(server):
    by_id = server.world.by_id()
    by_id["1000"].search_overrides = {"license": "abc", "title": {"nested": [1]}, "id": OMIT}
    by_id["1003"].search_overrides = {"id": "../../x"}
    entries = client(server).photos.search(license="4", per_page=100, extras="license")["photos"]["photo"]
    [malformed] = [e for e in entries if "id" not in e]
    assert (malformed["license"], malformed["title"], malformed["owner"]) == ("abc", {"nested": [1]}, "owner0@N01")
    assert "../../x" in {e.get("id") for e in entries} and len(entries) == 10


def test_search_lists_the_documented_copies_at_their_documented_sizes():
    """Every size extra by its documented name, only where Flickr documents the copy to exist,
    with the documented longest side in the entry and in the served image; no `url_b`."""
    from tests.test_flickr_sizes import AFTER_2012_03_01, DOCUMENTED

    photos = [FixturePhoto("1", "o@N01", 4, 1_600_000_000, width=2100, height=1400),  # 2020, large
              FixturePhoto("2", "o@N01", 4, 1_300_000_000, width=1600, height=1200),  # 2011: no c, h, k
              FixturePhoto("3", "o@N01", 4, 1_200_000_000, width=1200, height=900),  # 2008, not very large: no b
              FixturePhoto("4", "o@N01", 4, 1_200_000_001, width=3000, height=2000)]  # 2008, very large: b
    extras = ",".join(extra for _, extra in DOCUMENTED.values()) + ",url_o,url_b"
    with FlickrServer(World(photos), api_keys={"KEY"}) as srv:
        entries = {e["id"]: e for e in client(srv).photos.search(extras=extras)["photos"]["photo"]}
        listed = {photo_id: {suffix for suffix, (_, extra) in DOCUMENTED.items() if extra in entry}
                  for photo_id, entry in entries.items()}
        assert listed["1"] == set(DOCUMENTED)
        assert listed["2"] == listed["4"] == set(DOCUMENTED) - AFTER_2012_03_01
        assert listed["3"] == set(DOCUMENTED) - AFTER_2012_03_01 - {"_b"}
        assert not any("url_b" in entry or "width_b" in entry for entry in entries.values())
        fetcher = Fetcher(FetchConfig(allowed_hosts=(srv.host,), user_agent="test", max_retries=0))
        for suffix, (longest, extra) in DOCUMENTED.items():
            entry, letter = entries["1"], extra.removeprefix("url_")
            name = entry[extra].rsplit("/", 1)[1]
            assert name.startswith("1_") and name.endswith(f"{suffix}.jpg") and name.count("_") == 1 + bool(suffix)
            assert max(int(entry[f"width_{letter}"]), int(entry[f"height_{letter}"])) == longest, extra
            served = fetcher.fetch(entry[extra])
            assert served.ok and max(Image.open(io.BytesIO(served.body)).size) == longest, extra
        by_id = srv.world.by_id()
        for photo_id, suffix in (("2", "_c"), ("3", "_b"), ("2", "_h"), ("4", "_k")):
            assert fetcher.fetch(srv.static_url(by_id[photo_id], suffix)).reason == "not_found", (photo_id, suffix)
        assert fetcher.fetch(srv.static_url(by_id["4"], "_b")).ok


def test_the_fixture_server_command_prints_a_run_that_works(tmp_path):
    """`python -m pipeline.fixtures.flickr_server`, as the README shows: its printed command runs as printed (it
    printed a bare `pass-pipeline`, which a shell without the venv activated does not find; the README writes
    `.venv/bin/pass-pipeline`)."""
    import os
    import shlex
    import subprocess
    import sys

    server = subprocess.Popen([sys.executable, "-m", "pipeline.fixtures.flickr_server"], stdout=subprocess.PIPE,
                              text=True)
    try:
        server.stdout.readline()
        command = shlex.split(server.stdout.readline())
        assert os.path.basename(command[0]) == "pass-pipeline" and command[1:3] == ["run", "--source=flickr"]
        assert os.path.samefile(command[0], os.path.join(os.path.dirname(sys.executable), "pass-pipeline"))
        argv = [a if not a.startswith("--output=") else f"--output={tmp_path / 'out'}" for a in command]
        done = subprocess.run([*argv, "--detectors=none"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-1000:]
        assert "kept 6 of 6 input rows" in done.stdout  # 10 photos: 3 BY-NC, 1 deleted
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_command_answers_help_instead_of_serving(capsys):
    from pipeline.fixtures import flickr_server

    with pytest.raises(SystemExit) as done:
        flickr_server.main(["--help"])
    assert done.value.code == 0 and "Flickr-compatible API" in capsys.readouterr().out


def test_a_librarys_warning_while_the_fixture_server_runs_is_one_escaped_log_line(monkeypatch, capsys):
    """The server's command set up no logging: a library's warning (PIL's, making its photographs) went to logging's
    last resort as it came, its escapes sent to the terminal and its line break printing a forged line. It sets up
    pass-pipeline's log handler first (`printable.log_printably`): one escaped line."""
    from pipeline.fixtures import flickr_server

    level = logging.root.level
    monkeypatch.setattr(logging.root, "handlers", [])  # as a process starts: in a test's body, pytest's are on it
    try:
        with pytest.raises(SystemExit):
            flickr_server.main(["--help"])
        capsys.readouterr()
        logging.getLogger("PIL.Image").warning("image %s", "a\x1b[2J\nflickr fixture: stopped\u202e")
        assert capsys.readouterr().err == "WARNING PIL.Image: image a\\x1b[2J\\nflickr fixture: stopped\\u202e\n"
    finally:
        logging.root.setLevel(level)


def test_a_capped_page_size_is_served_and_said_and_paging_can_be_rewritten(server):
    """What the source's paging tests serve: fewer per page than asked, said in `perpage` as a proxy capping it
    would; and paging fields rewritten (or left out) where a test serves hostile ones."""
    api = client(server)
    server.max_per_page = 3
    capped = api.photos.search(license="4,11", per_page=500, page=2)["photos"]
    assert (capped["perpage"], capped["pages"], capped["total"], len(capped["photo"])) == (3, 7, 20, 3)
    server.search_paging = lambda params, photos: {"perpage": "abc", "total": OMIT} if params["page"] == "2" else {}
    hostile = api.photos.search(license="4,11", per_page=500, page=2)["photos"]
    assert hostile["perpage"] == "abc" and "total" not in hostile and len(hostile["photo"]) == 3
    assert api.photos.search(license="4,11", per_page=500, page=1)["photos"]["perpage"] == 3


@pytest.mark.parametrize(("signum", "said"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_the_fixture_server_command_stopped_says_so_and_leaves_no_folder(tmp_path, signum, said):
    """Ctrl-C, the way the fixture server is stopped, ended it with exit 0 and no word, SIGTERM by the signal's
    default (exit -15): either way its folder of credentials (pass-flickr-fixture-*) stayed in TMPDIR, one per start.
    Now: one line, exit 130 or 143, the folder removed."""
    import os
    import subprocess
    import sys

    temporary = tmp_path / "tmpdir"
    temporary.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "pipeline.fixtures.flickr_server"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(temporary)})
    try:
        assert server.stdout.readline().startswith("Flickr fixture API at ")
        server.stdout.readline()  # the command: the folder is made and written by then
        assert len(list(temporary.glob("pass-flickr-fixture-*"))) == 1
        server.send_signal(signum)
        _, err = server.communicate(timeout=30)
    finally:
        server.kill()
    assert server.returncode == 128 + signum and "Traceback" not in err, err
    assert err.strip().splitlines() == ["flickr fixture: starting (its demo photographs are made first)",
                                        f"flickr fixture: stopped ({said}); the server is down and its credentials "
                                        "folder removed"]
    assert list(temporary.glob("pass-flickr-fixture-*")) == []


def test_verify_per_owner_groups_the_photos_as_the_licence_stage_does(tmp_path):
    """The re-verification DoFn outside Beam, for tests and the call benchmark, grouped photos by the owner id as
    written, where the stage groups by `owner_group` (Flickr's one spelling): one account spelt 7@N01 and 007@n01 was
    two groups there, a getInfo beside the search the job makes, and the search asked for the spelling Flickr does not
    list."""
    import json

    from pipeline.fixtures.flickr_server import verify_per_owner
    from pipeline.records import Photo
    from pipeline.stages.verify_license import VerifyConfig, _VerifyOwner

    world = World([FixturePhoto(str(i), "7@N01", 4, 1_300_000_000 + i) for i in range(1, 4)])
    credentials = tmp_path / "flickr.json"
    credentials.write_text(json.dumps({"key": "KEY", "secret": "s"}))
    records = [Photo(photo_id="1", owner_nsid="007@n01"), *(Photo(photo_id=str(i), owner_nsid="7@N01") for i in (2, 3))]
    with FlickrServer(world, api_keys={"KEY"}) as srv:
        dofn = _VerifyOwner(VerifyConfig(srv.rest_url, str(credentials), "4,11", 0))
        dofn.setup()
        kept, rejected, _ = verify_per_owner(dofn, srv, records)
        assert (set(kept), rejected) == ({"1", "2", "3"}, {})
        assert dict(srv.calls) == {"flickr.photos.search": 1}, srv.calls
