"""A command's record (pipeline/release/command_record.py): what a plain run's rerun compares with the record sealed in
the dataset it finds."""

from __future__ import annotations

import json
from pathlib import Path

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
