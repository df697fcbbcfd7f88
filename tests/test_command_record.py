"""A command's record (pipeline/release/command_record.py): what a plain run's rerun compares with the record sealed in
the dataset it finds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.options import PassOptions
from pipeline.release.command_record import RUN_FINGERPRINT, made_by_this_run, seal


def _sealed(folder: Path, made: dict) -> None:
    """A dataset whose manifest lists no files and records `made` as the run that made it, sealed as a run seals it."""
    folder.mkdir(exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"files": [], RUN_FINGERPRINT: {
        **made, "sha256": seal(made, [], "run", ("stats.json",))}}))


def test_a_record_naming_flickrs_own_endpoint_is_the_run_that_gives_no_flag(tmp_path):
    """A dataset an earlier version made with --flickr_rest_url naming Flickr's own endpoint recorded it; this version
    records that flag as none (`api_endpoint`), so the rerun of that very command (a run stopped while publishing) was
    refused as another command. Flickr's own endpoint in a record reads as none; another endpoint still differs."""
    mine = {"options": {"source": "flickr"}, "input_files": {}, "models": []}
    for own in ("https://api.flickr.com/services/rest/", "HTTPS://API.FLICKR.COM:443/services/rest"):
        _sealed(tmp_path / "out", {**mine, "flickr_endpoint": own})
        assert made_by_this_run(str(tmp_path / "out"), mine), own
    for other in ("https://proxy.example/services/rest/", "https://api.flickr.com:0/services/rest/", 7):
        _sealed(tmp_path / "out", {**mine, "flickr_endpoint": other})
        assert not made_by_this_run(str(tmp_path / "out"), mine), other
    _sealed(tmp_path / "out", mine)
    assert made_by_this_run(str(tmp_path / "out"), mine)
    assert not made_by_this_run(str(tmp_path / "out"), {**mine, "flickr_endpoint": "https://proxy.example/"})


def _opts(*argv: str) -> PassOptions:
    return PipelineOptions(list(argv)).view_as(PassOptions)


@pytest.mark.parametrize("url", ["https://api.flickr.com/services/rest/", "https://api.flickr.com/services/rest",
                                 "HTTPS://API.FLICKR.COM/services/rest/", "https://api.flickr.com:443/services/rest/",
                                 "https://API.flickr.com:0443/services/rest"])
def test_flickrs_own_endpoint_however_spelt_is_recorded_as_no_flag(url):
    from pipeline.release.command_record import api_endpoint

    assert api_endpoint(_opts("--source=flickr", f"--flickr_rest_url={url}")) == {}


@pytest.mark.parametrize("url", [
    "http://api.flickr.com/services/rest/", "https://api.flickr.com/services/REST/", "https://api.flickr.com:0/services/rest/",
    "https://api.flickr.com:8443/services/rest/", "https://api.flickr.com/services/rest/?proxy=1",
    "https://api.flickr.com/services/rest/#x", "https://u:p@api.flickr.com/services/rest/",
    "https://api.flickr.com.evil.example/services/rest/", "https://api.flickr.com:99999/services/rest/",
    "https://[api.flickr.com/services/rest/"])
def test_any_other_endpoint_is_recorded_its_secrets_masked(url):
    """Another scheme, path, port (0 too), query, fragment or user, another host, and a URL no parser reads (a port
    out of range, an unclosed bracket): each asks another API than Flickr's own, and is recorded as given but for
    what may be a secret (user info, query, fragment)."""
    from pipeline.io.http_client import masked_url
    from pipeline.release.command_record import api_endpoint

    assert api_endpoint(_opts("--source=flickr", f"--flickr_rest_url={url}")) == {"flickr_endpoint": masked_url(url)}
    recorded = api_endpoint(_opts("--verify_license", f"--flickr_rest_url={url}"))["flickr_endpoint"]
    assert "u:p" not in recorded and "proxy=1" not in recorded


def test_no_endpoint_is_recorded_where_the_run_asks_no_api():
    from pipeline.release.command_record import api_endpoint

    assert api_endpoint(_opts("--flickr_rest_url=https://proxy.example/services/rest/")) == {}  # a YFCC run
    assert api_endpoint(_opts("--source=flickr")) == {}


def test_a_record_naming_flickrs_own_endpoint_reads_as_recorded_now_and_no_other_does():
    from pipeline.release.command_record import as_recorded_now

    mine = {"options": {"source": "flickr"}, "models": []}
    assert as_recorded_now({**mine, "flickr_endpoint": "https://api.flickr.com/services/rest"}) == mine
    for other in ("https://api.flickr.com:0/services/rest/", "https://proxy.example/", 7, None):
        assert as_recorded_now({**mine, "flickr_endpoint": other}) == {**mine, "flickr_endpoint": other}


def test_a_seal_covers_the_record_its_kind_and_the_listed_files_but_those_set_aside():
    files = [{"path": "a.parquet", "sha256": "1"}, {"path": "stats.json", "sha256": "2"}]
    made = {"options": {"max_side": 512}}
    sealed = seal(made, files, "run", ("stats.json",))
    assert sealed == seal(made, list(reversed(files)), "run", ("stats.json",))  # the listing's order is no matter
    assert sealed == seal(made, [files[0], {"path": "stats.json", "sha256": "changed"}], "run", ("stats.json",))
    assert sealed != seal(made, files, "refresh", ("stats.json",))
    assert sealed != seal({"options": {"max_side": 256}}, files, "run", ("stats.json",))
    assert sealed != seal(made, [{"path": "a.parquet", "sha256": "3"}, files[1]], "run", ("stats.json",))
    assert sealed != seal(made, files[1:], "run", ("stats.json",))  # a file dropped from the listing
    assert seal(made, [*files, "not an entry", 7], "run", ("stats.json",)) == sealed


def test_a_sealed_record_is_read_back_only_while_it_matches_its_manifest():
    from pipeline.release.command_record import seal_run, sealed_record

    files = [{"path": "a.parquet", "sha256": "1"}, {"path": "stats.json", "sha256": "2"}]
    made = {"options": {"max_side": 512}, "input_files": {}, "models": []}
    manifest = {"files": files, RUN_FINGERPRINT: seal_run(made, files)}
    assert sealed_record(manifest, RUN_FINGERPRINT, "run", ("stats.json",)) == (made, "")
    assert sealed_record(manifest, RUN_FINGERPRINT, "refresh", ("stats.json",)) == (None, "edited")
    for edited in ({**manifest, "files": [{"path": "a.parquet", "sha256": "9"}, files[1]]},
                   {**manifest, RUN_FINGERPRINT: {**manifest[RUN_FINGERPRINT], "models": ["another"]}},
                   {RUN_FINGERPRINT: manifest[RUN_FINGERPRINT]}, {**manifest, "files": "a.parquet"}):
        assert sealed_record(edited, RUN_FINGERPRINT, "run", ("stats.json",)) == (None, "edited"), edited
    for missing in (None, [], {"files": files}, {**manifest, RUN_FINGERPRINT: "x"},
                    {**manifest, RUN_FINGERPRINT: {**made, "sha256": 7}}):
        assert sealed_record(missing, RUN_FINGERPRINT, "run") == (None, "missing"), missing


def test_the_input_files_are_held_by_content_or_size_and_a_missing_one_as_such(tmp_path, monkeypatch):
    from pipeline.release.command_record import input_files, working_folder

    takedowns, dump = tmp_path / "takedowns.txt", tmp_path / "dump.tsv"
    takedowns.write_text("photo_id:1\n")
    dump.write_text("1\tx\n")
    held = input_files({"blocklist": f"{takedowns},{tmp_path / 'gone.txt'}", "input": str(dump), "max_side": 512})
    listed = hashlib.sha256(takedowns.read_bytes()).hexdigest()
    assert held == {"blocklist": [[str(takedowns), f"sha256:{listed}"],
                                  [str(tmp_path / "gone.txt"), "unreadable (FileNotFoundError)"]],
                    "input": [[str(dump), "4 bytes"]]}
    # a relative path names other files in another folder: the folder is held, by a digest that names none
    assert working_folder({"input": str(dump)}) == {}
    monkeypatch.chdir(tmp_path)
    relative = working_folder({"blocklist": "takedowns.txt"})
    assert list(relative) == ["working_folder"] and len(relative["working_folder"]) == 64
    assert str(tmp_path) not in relative["working_folder"]
    assert working_folder({"input": "gs://bucket/dump-*.tsv"}) == {}


def test_an_option_naming_more_files_than_are_listed_is_held_as_one_digest_any_change_changes(tmp_path):
    from pipeline.release.command_record import LISTED_FILES, input_files

    for index in range(LISTED_FILES):
        (tmp_path / f"part-{index:05d}.tsv").write_bytes(b"x" * (index % 3))
    listed = input_files({"input": f"{tmp_path}/*.tsv"})["input"]
    assert len(listed) == LISTED_FILES and listed[0] == [str(tmp_path / "part-00000.tsv"), "0 bytes"]
    (tmp_path / "part-99999.tsv").write_bytes(b"")
    [[count, digest]] = input_files({"input": f"{tmp_path}/*.tsv"})["input"]
    assert count == f"{LISTED_FILES + 1} files" and digest.startswith("sha256:") and len(digest) == 71
    (tmp_path / "part-99999.tsv").write_bytes(b"y")
    assert input_files({"input": f"{tmp_path}/*.tsv"})["input"] != [[count, digest]]
    (tmp_path / "part-99999.tsv").write_bytes(b"")
    assert input_files({"input": f"{tmp_path}/*.tsv"})["input"] == [[count, digest]]
