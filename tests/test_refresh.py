"""Refreshes of releases built from YFCC-style tables: which release is the latest, the guards,
the options a refresh inherits (every one that shaped the release), takedowns and stricter
detectors applied to carried images, near copies of removed photos, and the ledger that skips
every photo already decided. (Monthly Flickr releases are in test_release.py.)"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pipeline.cli import main
from pipeline.commands.refresh import models_for
from pipeline.release.refresh import ReleaseError, check_new_release, refresh_argv
from tests.conftest import FAST, LOCAL, encode, real_image, reseal
from tests.parquet_footers import rows_of, values_of, with_integers


def released(release) -> set[str]:
    return {row["photo_id"] for row in pq.read_table(release / "parquet", columns=["photo_id"]).to_pylist()}


def test_latest_published_release(tmp_path):
    from pipeline.release.refresh import latest_release

    assert latest_release(str(tmp_path)) is None
    for name, published in (("2026-09", True), ("2026-10", True), ("2026-11", False)):
        (tmp_path / "releases" / name).mkdir(parents=True)
        (tmp_path / "releases" / name / "manifest.json").write_text(json.dumps({"release": name if published
                                                                                 else None}))
    assert latest_release(str(tmp_path)) == str(tmp_path / "releases" / "2026-10")  # 2026-11 is unfinished


def test_latest_is_the_release_made_last_not_the_last_name(tmp_path):
    """A first release named `v1` sorted after every YYYY-MM name, and `2026-9` after `2026-10`: each scheduled
    refresh then built on the old release, bringing back what the newer ones had removed."""
    from pipeline.release.refresh import latest_release

    for name, created in (("v1", "2026-10-01T03:00:00Z"), ("2026-9", "2026-10-02T03:00:00Z"),
                          ("2026-11", "2026-11-01T03:00:00Z"), ("2026-12", "2026-12-01T03:00:00Z"),
                          ("z-unfinished", "2026-12-02T03:00:00Z")):
        (tmp_path / "releases" / name).mkdir(parents=True)
        manifest = {"release": name if name != "z-unfinished" else None, "created": created}
        (tmp_path / "releases" / name / "manifest.json").write_text(json.dumps(manifest))
    assert latest_release(str(tmp_path)) == str(tmp_path / "releases" / "2026-12")


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
    # r1 predates --resize_reducing_gap: its images were resized by Lanczos alone, and so are the refresh's
    assert "--resize_reducing_gap=0" in argv
    # What keeps people, takedowns and relicensed photos out is inherited too (the schedule gives none of it)
    assert "--verify_license=true" in argv


@pytest.mark.parametrize("recorded", ["2020-9-10", "\uff12\uff10\uff12\uff10-09-10"])
def test_a_previous_release_s_end_date_recorded_as_typed_is_still_read(tmp_path, recorded):
    """Upload dates are read as YYYY-MM-DD alone now, but a release made before recorded --max_upload_date as typed
    ('2020-9-10', other scripts' digits, which strptime took): its monthly refresh was refused as naming no date, the
    schedule stopped until someone gave --min_upload_date by hand. Its window starts the day after, as it did."""
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"release": "r1", "options": {
        "source": "flickr", "max_upload_date": recorded, "max_side": 256}}))
    argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", [], models_for, today=dt.date(2020, 10, 2))
    assert f"--min_upload_date={int(dt.datetime(2020, 9, 11, tzinfo=dt.UTC).timestamp())}" in argv
    assert "--max_upload_date=2020-10-01" in argv


def test_a_flickr_refresh_retried_the_next_day_is_the_same_refresh_another_window_is_not(tmp_path):
    """A Flickr refresh given no --max_upload_date searches up to yesterday: its retry the next day (the release
    published before a stop in its cleanup) is still that refresh, told done; one given another window is not."""
    from pipeline.release.refresh import fingerprint

    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"release": "r1", "options": {
        "source": "flickr", "max_upload_date": "2020-09-10", "max_side": 256}}))

    def of(rest: list[str], today: dt.date) -> dict:
        argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", rest, models_for, today=today)
        return fingerprint(str(tmp_path / "r1"), "r2", argv, rest, models_for)

    assert of([], dt.date(2020, 10, 2)) == of([], dt.date(2020, 10, 3))
    assert of(["--max_upload_date=2020-10-01"], dt.date(2020, 10, 2)) != of(["--max_upload_date=2020-10-02"],
                                                                             dt.date(2020, 10, 2))
    assert of(["--max_side=512"], dt.date(2020, 10, 2)) != of([], dt.date(2020, 10, 2))



def fingerprinted(tmp_path: Path, rest: list[str]) -> tuple[Callable[[], dict], dict, Path]:
    """Refresh r2 of r1 (a previous release recording one option) given `rest`: a function giving its fingerprint as
    its inputs are now, that fingerprint, and r2's folder published with it (sealed over no files)."""
    from pipeline.release.command_record import seal
    from pipeline.release.refresh import FINGERPRINT, fingerprint

    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"release": "r1", "options": {"max_side": 256}}))

    def of() -> dict:
        argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", rest, models_for)
        return fingerprint(str(tmp_path / "r1"), "r2", argv, rest, models_for)

    made = of()
    release = tmp_path / "releases" / "r2"
    release.mkdir(parents=True)
    (release / "manifest.json").write_text(json.dumps({"release": "r2", "files": [],
                                                       FINGERPRINT: {**made, "sha256": seal(made, [])}}))
    return of, made, release


def test_a_rerun_whose_takedown_list_or_input_changed_at_the_same_path_is_not_the_same_refresh(tmp_path):
    """The record held the inputs by path alone: a takedown added to the list (or a decision to the store, a dump to
    the input's glob, a table replaced) at the same path, the rerun of that release's refresh was told it was the
    same refresh, "the same previous release, inputs and options" (exit 0), the release without the takedown. The
    takedown lists and decisions are held by their content, the other inputs by their files' sizes."""
    from pipeline.release.refresh import made_by_another

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.tsv").write_text("1\tx\n")
    takedowns, decisions = tmp_path / "takedowns.txt", tmp_path / "decisions.csv"
    takedowns.write_text("photo_id:1\n")
    decisions.write_text("photo_id,decision,note,sha256\n5,accept,,ab\n")
    rest = [f"--input={data}/*.tsv", f"--blocklist={takedowns}", f"--review_decisions={decisions}"]
    of, _, release = fingerprinted(tmp_path, rest)
    assert made_by_another(str(release), of()) is None  # nothing changed: the same refresh
    for change, named in ((lambda: takedowns.write_text("photo_id:1\nphoto_id:2\n"), "--blocklist"),
                          (lambda: decisions.write_text("photo_id,decision,note,sha256\n5,reject_human,,ab\n"),
                           "--review_decisions"),
                          (lambda: (data / "b.tsv").write_text("2\ty\n"), "--input"),
                          (lambda: (data / "a.tsv").write_text("1\tx\n3\tz\n"), "--input")):
        saved = {path: path.read_bytes() for path in (takedowns, decisions, data / "a.tsv")}
        change()
        why = made_by_another(str(release), of())
        assert why is not None and named in why, (named, why)
        for path, content in saved.items():
            path.write_bytes(content)
        (data / "b.tsv").unlink(missing_ok=True)
        assert made_by_another(str(release), of()) is None


def test_a_flickr_refresh_rerun_at_another_api_endpoint_is_another_refresh(tmp_path):
    """--flickr_rest_url was in no record: the refresh's rerun at another endpoint (another proxy, another API, other
    answers) was told it was the same refresh, exit 0. The endpoint is recorded, its user info and query masked (a
    proxy's token, renewed, is the same endpoint)."""
    from pipeline.release.refresh import fingerprint, made_by_another

    window = ["--source=flickr", "--min_upload_date=2020-09-01", "--max_upload_date=2020-09-02"]
    endpoint = "http://user:s3cretPW@proxy.example:8080/services/rest/?token=t0kenXY"
    _, made, release = fingerprinted(tmp_path, [*window, f"--flickr_rest_url={endpoint}"])

    def of(rest: list[str]) -> dict:
        argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", rest, models_for)
        return fingerprint(str(tmp_path / "r1"), "r2", argv, rest, models_for)

    assert made["flickr_endpoint"] == "http://…@proxy.example:8080/services/rest/?…"
    assert "s3cretPW" not in json.dumps(made) and "t0kenXY" not in json.dumps(made)
    assert made_by_another(str(release), of([*window, f"--flickr_rest_url={endpoint.replace('XY', 'ZW')}"])) is None
    why = made_by_another(str(release), of([*window, "--flickr_rest_url=http://other.example/services/rest/"]))
    assert why is not None and "--flickr_rest_url=http://…@proxy.example:8080/services/rest/?… there" in why, why
    # no call to the API (a YFCC refresh without --verify_license): no endpoint in the record, as before
    assert "flickr_endpoint" not in of([f"--flickr_rest_url={endpoint}"])


def test_flickrs_own_endpoint_given_by_flag_is_the_same_refresh_as_no_flag(tmp_path):
    """--flickr_rest_url naming Flickr's own endpoint (as flickrapi calls it, its scheme and host in any case, with or
    without its final slash) asks the same API as no flag: a rerun adding or dropping it was told "another refresh"
    (exit 2)."""
    from pipeline.release.refresh import fingerprint, made_by_another

    window = ["--source=flickr", "--min_upload_date=2020-09-01", "--max_upload_date=2020-09-02"]
    _, made, release = fingerprinted(tmp_path, window)

    def of(rest: list[str]) -> dict:
        argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", rest, models_for)
        return fingerprint(str(tmp_path / "r1"), "r2", argv, rest, models_for)

    assert "flickr_endpoint" not in made
    for url in ("https://api.flickr.com/services/rest/", "https://api.flickr.com/services/rest",
                "HTTPS://API.Flickr.com/services/rest/"):
        assert made_by_another(str(release), of([*window, f"--flickr_rest_url={url}"])) is None, url
    for url in ("http://api.flickr.com/services/rest/", "https://api.flickr.com/services/REST/",
                "https://api.flickr.com:8443/services/rest/"):
        assert made_by_another(str(release), of([*window, f"--flickr_rest_url={url}"])) is not None, url


def test_a_release_whose_record_names_flickrs_own_endpoint_is_the_same_refresh_with_or_without_the_flag(tmp_path):
    """A release an earlier version made with --flickr_rest_url naming Flickr's own endpoint recorded it; this version
    records that flag as none, so its rerun given the very same flag (or none) was told "another refresh" (exit 2).
    Flickr's own endpoint in a record reads as none; another endpoint in it still differs."""
    from pipeline.release.command_record import seal
    from pipeline.release.refresh import FINGERPRINT, fingerprint, made_by_another

    window = ["--source=flickr", "--min_upload_date=2020-09-01", "--max_upload_date=2020-09-02"]
    _, made, release = fingerprinted(tmp_path, window)

    def of(rest: list[str]) -> dict:
        argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", rest, models_for)
        return fingerprint(str(tmp_path / "r1"), "r2", argv, rest, models_for)

    def recorded(endpoint: str) -> None:  # as an earlier version sealed it
        earlier = {**made, "flickr_endpoint": endpoint}
        (release / "manifest.json").write_text(json.dumps({"release": "r2", "files": [],
                                                           FINGERPRINT: {**earlier, "sha256": seal(earlier, [])}}))

    own = "https://api.flickr.com/services/rest/"
    recorded(own)
    for rest in ([*window, f"--flickr_rest_url={own}"], window):
        assert made_by_another(str(release), of(rest)) is None, rest
    recorded("https://proxy.example/services/rest/")
    assert made_by_another(str(release), of(window)) is not None
    assert made_by_another(str(release), of([*window, f"--flickr_rest_url={own}"])) is not None


def test_an_endpoint_on_port_0_of_flickrs_host_is_not_flickrs_own(tmp_path):
    """Port 0 was read as no port (`port or 443`), so --flickr_rest_url=https://api.flickr.com:0/services/rest/, whose
    every call fails, recorded as no flag: a rerun of a release made so without the flag (or the other way) was told
    the same refresh. Only the default port, written or not, is Flickr's own endpoint."""
    from pipeline.release.refresh import fingerprint, made_by_another

    window = ["--source=flickr", "--min_upload_date=2020-09-01", "--max_upload_date=2020-09-02"]
    _, made, release = fingerprinted(tmp_path, window)
    assert "flickr_endpoint" not in made

    def of(rest: list[str]) -> dict:
        argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", rest, models_for)
        return fingerprint(str(tmp_path / "r1"), "r2", argv, rest, models_for)

    assert made_by_another(str(release), of([*window, "--flickr_rest_url=https://api.flickr.com:443/services/rest/"])) \
        is None
    for port in ("0", "00", "80"):
        url = f"https://api.flickr.com:{port}/services/rest/"
        assert of([*window, f"--flickr_rest_url={url}"])["flickr_endpoint"] == url
        assert made_by_another(str(release), of([*window, f"--flickr_rest_url={url}"])) is not None, url


def test_a_relative_input_refreshed_again_from_another_folder_is_another_refresh(tmp_path, monkeypatch):
    """A refresh held a relative --input by the path as typed and its size (a plain run's record took the working
    folder in): the same refresh typed in another folder, whose file of that name and size held other rows, was told
    it was the same refresh, exit 0, and those rows never read. The record holds a digest of the working folder
    wherever a path is relative, and no folder's name."""
    from pipeline.release.refresh import made_by_another

    for folder, rows in (("a", "1\tx\n2\ty\n"), ("b", "2\ty\n1\tx\n")):  # the same size, other rows
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "rows.tsv").write_text(rows)
    monkeypatch.chdir(tmp_path / "a")
    of, made, release = fingerprinted(tmp_path, ["--input=rows.tsv"])
    assert made_by_another(str(release), of()) is None  # typed again in its own folder: the same refresh
    assert str(tmp_path) not in json.dumps(made["working_folder"])
    monkeypatch.chdir(tmp_path / "b")
    why = made_by_another(str(release), of())
    assert why is not None and "another working folder" in why, why
    absolute = fingerprinted(tmp_path / "b", [f"--input={tmp_path / 'b' / 'rows.tsv'}"])[1]
    assert "working_folder" not in absolute  # an absolute path names the same file from anywhere


def test_a_refresh_recorded_before_the_working_folder_was_is_not_said_to_be_from_another_folder(tmp_path,
                                                                                               monkeypatch):
    """A release whose refresh was recorded before records held the working folder, rerun by the same words in the
    same folder, is another refresh (which folder its relative path was read from cannot be told), but the refusal
    said it was typed in another working folder, which nothing said. It says the record holds no working folder."""
    from pipeline.release.command_record import seal
    from pipeline.release.refresh import FINGERPRINT, made_by_another

    (tmp_path / "rows.tsv").write_text("1\tx\n")
    monkeypatch.chdir(tmp_path)
    of, made, release = fingerprinted(tmp_path, ["--input=rows.tsv"])
    older = {key: value for key, value in made.items() if key != "working_folder"}
    (release / "manifest.json").write_text(json.dumps({"release": "r2", "files": [],
                                                       FINGERPRINT: {**older, "sha256": seal(older, [])}}))
    why = made_by_another(str(release), of())
    assert why is not None and "another working folder" not in why and "no working folder" in why, why


def test_a_record_resealed_with_unprintable_text_is_said_escaped_as_every_other_line_is(tmp_path):
    """A published release's record (its manifest: outside input, resealed by whoever can write there) holding
    terminal escapes, a line break and a right-to-left override in what it recorded: the refusal naming how it differs
    wrote each such character as `?` (ESC [2J and a newline read as `?[2J?`, like a URL's own `?`, the character
    lost), where every other line writes it as Python writes it in a string (printable). It says it so, on one line,
    each value still cut at its length (80 characters, 200 for a release) where no escape is split."""
    from pipeline.release.command_record import seal
    from pipeline.release.refresh import FINGERPRINT, made_by_another

    of, made, release = fingerprinted(tmp_path, [])
    hostile = {**made, "previous": "r0\x1b[2J\nrefresh: OK\u202e",
               "options": {**made["options"], "max_side": "256\x1b]52;c;cHduZWQ=\x07", "columns": "y" * 78 + "\x1b"}}
    (release / "manifest.json").write_text(json.dumps({"release": "r2", "files": [],
                                                       FINGERPRINT: {**hostile, "sha256": seal(hostile, [])}}))
    why = made_by_another(str(release), of())
    assert why is not None and why.isprintable(), why
    assert "built on r0\\x1b[2J\\nrefresh: OK\\u202e, not on" in why, why
    assert "--max_side=256\\x1b]52;c;cHduZWQ=\\x07 there" in why, why
    assert f"--columns={'y' * 78} there" in why, why  # ESC's escape would pass 80 characters: none of it


def test_an_input_file_whose_name_holds_a_bracket_is_held_by_its_size(tmp_path):
    """Each file the input's glob lists was looked up again by its name for its size, where a '[' is read as a glob:
    `part[1].tsv` was found nowhere and held as unreadable whatever its size, so a dump replaced at that name made the
    rerun the same refresh (exit 0, the release without its rows)."""
    from pipeline.release.refresh import made_by_another

    data = tmp_path / "data"
    data.mkdir()
    dump = data / "part[1].tsv"
    dump.write_text("1\tx\n")
    rest = [f"--input={data}/*.tsv"]
    of, made, release = fingerprinted(tmp_path, rest)
    assert made["input_files"]["input"] == [[str(dump), f"{dump.stat().st_size} bytes"]]
    assert made_by_another(str(release), of()) is None
    dump.write_text("1\tx\n2\ty\n")
    why = made_by_another(str(release), of())
    assert why is not None and "--input" in why, why


def test_an_inherited_relative_path_is_refused_not_read_from_wherever_the_refresh_runs(tmp_path):
    """Recorded as typed, `--blocklist=takedowns.txt` was read from the next refresh's working folder: another
    list, or an old copy of it, applied without a word."""
    def argv_of(options: dict, *given: str) -> list[str]:
        (tmp_path / "r1").mkdir(exist_ok=True)
        (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"release": "r1", "options": options}))
        return refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", list(given), models_for)

    for key, value in (("blocklist", f"{tmp_path}/a.txt,takedowns.txt"), ("review_decisions", "reviews.csv"),
                       ("decontaminate", "eval/*.jpg"), ("fusion", "my_fusion.json"),
                       ("model_registry", "./registry.json")):
        with pytest.raises(ReleaseError, match=rf"--{key}=.* is a relative path.*give --{key}=ABSOLUTE_PATH"):
            argv_of({key: value})
        assert f"--{key}=" in argv_of({key: value}, f"--{key}=")  # given again (here: dropped): not inherited
    kept = argv_of({"blocklist": f"{tmp_path}/a.txt,gs://b/takedowns.txt", "fusion": "none"})
    assert f"--blocklist={tmp_path}/a.txt,gs://b/takedowns.txt" in kept and "--fusion=none" in kept


@pytest.mark.parametrize("given", [["--fusion=models/fusion.json"], ["--blocklist", "lists/takedowns.txt"],
                                   ["--decontaminate=/abs/eval,eval2"]])
def test_a_release_never_records_a_relative_path_its_next_refresh_would_refuse(tmp_path, capsys, given):
    """Taken by the first release, such a path was refused by every later (scheduled) refresh."""
    assert main(["refresh", f"--output={tmp_path / 'root'}", "--release=r1", f"--input={tmp_path}/x.tsv",
                 *given]) == 2
    assert "is a relative path; a release records it for the next refresh" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(("given", "says"), [(["--cache=/elsewhere/cache"], "keeps its own work cache"),
                                             (["--cache", "/elsewhere/cache"], "keeps its own work cache"),
                                             (["--release_name=2027-01"], "give --release")])
def test_a_flag_the_refresh_sets_itself_is_refused_not_silently_overridden(tmp_path, capsys, given, says):
    """The refresh adds its own --cache (ROOT/work/NAME/cache) and --release_name after the user's flags, and the
    last one counts: a user's --cache (a faster disk, a shared bucket) was ignored without a word, and a
    --release_name of another month named a release other than the folder it went into."""
    assert main(["refresh", f"--output={tmp_path / 'root'}", "--release=r1", f"--input={tmp_path}/x.tsv",
                 *given]) == 2
    err = capsys.readouterr().err
    assert says in err and f"--{given[0].removeprefix('--').split('=')[0]}" in err, err
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("key", ["blocklist", "review_decisions"])
def test_a_takedown_list_or_decisions_given_as_a_pipe_is_refused_not_read_empty(tmp_path, capsys, key):
    """`--blocklist=<(cmd)`: the refresh's fingerprint read the pipe whole (a writer that never stops: for good), then
    the run read it again and found it empty, no takedown applied; and the release recorded /dev/fd/63 for the next
    refresh. Refused in one line before anything reads it."""
    pipe = tmp_path / "list.fifo"
    os.mkfifo(pipe)
    assert main(["refresh", f"--output={tmp_path / 'root'}", "--release=r1", f"--input={tmp_path}/x.tsv",
                 f"--{key}={pipe}"]) == 2
    err = capsys.readouterr().err
    assert f"--{key}: '{str(pipe)[:80]}' is no regular file (a pipe?)" in err, err  # a path is shown to 80 characters
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "root").exists()


def test_a_refresh_given_only_input_and_output_keeps_applying_the_takedown_list(tmp_path, capsys):
    """The monthly schedule launches a refresh with its input, output and `--previous=latest` alone: the blocklist
    (and the licence re-check, the review decisions, the evaluation sets) were recorded and not inherited, so
    every scheduled release carried over photos taken down since, and named no takedown list. The list the
    previous release named is read again as it is now."""
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.fixtures.static_server import StaticServer

    root, takedowns = tmp_path / "root", tmp_path / "takedowns.txt"
    takedowns.write_text("photo_id 1005\n")
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        assert main(["refresh", f"--output={root}", "--release=2026-10", f"--input={metadata}",
                     f"--blocklist={takedowns}", f"--allowed_hosts={server.host}", "--detectors=none", *LOCAL]) == 0
        first = root / "releases" / "2026-10"
        assert "1005" not in released(first) and "1006" in released(first)
        takedowns.write_text("photo_id 1005\nphoto_id 1006\n")  # a takedown request arrives in November
        # What the launcher's Cloud Run job runs (terraform/launcher.tf), but for the test's host and speed flags
        assert main(["refresh", f"--input={metadata}", f"--output={root}", "--previous=latest", "--release=2026-11",
                     f"--allowed_hosts={server.host}", *LOCAL]) == 0
    second = root / "releases" / "2026-11"
    assert "1006" not in released(second) and "1005" not in released(second)
    said = capsys.readouterr().out  # what the launch took without being told, defaults left out
    assert f"refresh: from {first}: " in said and f"--blocklist={takedowns}" in said and "--per_owner_cap" not in said
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["options"]["blocklist"] == str(takedowns) and manifest["options"]["detectors"] == "none"


def test_no_spelling_of_a_path_or_name_puts_a_release_inside_or_above_another(tmp_path, capsys):
    """`--previous=ROOT/releases/./2026-09 --release=2026-09/sub` passed the raw prefix check and wrote into the
    published release; `--release=.` published a release at ROOT/releases itself, above every other."""
    from pipeline.release.refresh import RELEASE_NAME, _norm, check_release_name

    r1 = tmp_path / "releases" / "2026-09"
    r1.mkdir(parents=True)
    (r1 / "manifest.json").write_text(json.dumps({"release": "2026-09"}))
    for previous in (f"{tmp_path}/releases/./2026-09", f"{tmp_path}/releases//2026-09/", f"{r1}/x/.."):
        with pytest.raises(ReleaseError, match="inside, above or equal"):
            check_new_release(str(r1 / "sub"), previous)
        with pytest.raises(ReleaseError, match="inside, above or equal"):
            check_new_release(str(tmp_path / "releases"), previous)
    assert _norm("gs://b/root/releases/./2026-09") == _norm("gs://b/root//releases/2026-09/x/../") == \
        "gs://b/root/releases/2026-09/"  # object stores: the same folding, without the network
    check_new_release(str(tmp_path / "releases" / "2026-10"), f"{tmp_path}/releases/./2026-09")  # a sibling
    for name in (".", "..", ".hidden", "2026-09/sub", "a b", "", "x" * 101):
        with pytest.raises(ReleaseError, match="a release name"):
            check_release_name(name)
    for name in ("2026-10", "v1.2", "_x", "-"):
        assert check_release_name(name) == name and RELEASE_NAME.fullmatch(name)
    assert main(["refresh", f"--output={tmp_path}", "--previous=latest", "--release=.", "--input=x"]) == 2
    assert "a release name" in capsys.readouterr().err


def test_a_refresh_never_replaces_a_dataset_a_plain_run_wrote_where_its_release_goes(tmp_path, capsys):
    """A `run` into ROOT/releases/2026-10 is no release: a refresh of 2026-10 took it for one of its own killed
    runs and replaced the finished dataset without a word. What a killed refresh left is still resumed."""
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.fixtures.static_server import StaticServer

    root = tmp_path / "root"
    target = root / "releases" / "2026-10"
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        assert main(["run", f"--input={metadata}", f"--output={target}", f"--allowed_hosts={server.host}",
                     "--detectors=none", *LOCAL]) == 0
        before = (target / "manifest.json").read_bytes()
        capsys.readouterr()
        assert main(["refresh", f"--input={metadata}", f"--output={root}", "--release=2026-10",
                     f"--allowed_hosts={server.host}", "--detectors=none", *LOCAL]) == 2
    assert "no refresh of release 2026-10 wrote" in capsys.readouterr().err
    assert (target / "manifest.json").read_bytes() == before
    # A killed refresh's published run (its manifest names the release, which finish() had not yet added)
    manifest = json.loads(before)
    manifest["options"]["release_name"] = "2026-10"
    (target / "manifest.json").write_text(json.dumps(manifest))
    check_new_release(str(target), None)


def test_an_option_newer_than_the_release_is_inherited_as_recorded_once_recorded(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"release": "r1", "options": {
        "source": "yfcc", "resize_reducing_gap": 1.0}}))
    argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", [], models_for)
    assert "--resize_reducing_gap=1.0" in argv and "--resize_reducing_gap=0" not in argv
    argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", ["--resize_reducing_gap=3"], models_for)
    assert [arg for arg in argv if arg.startswith("--resize_reducing_gap")] == ["--resize_reducing_gap=3"]


def test_a_refresh_reads_the_next_table_the_way_the_release_read_its_own(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r1" / "manifest.json").write_text(json.dumps({"release": "r1", "options": {
        "source": "yfcc", "input": "/data/list-2026-10.csv", "input_format": "csv",
        "columns": "url=photo_url,id=photo_id,license=licence"}}))
    argv = refresh_argv(str(tmp_path / "r1"), str(tmp_path), "r2", ["--input=/data/list-2026-11.csv"], models_for)
    assert "--input_format=csv" in argv and "--columns=url=photo_url,id=photo_id,license=licence" in argv
    assert "--input=/data/list-2026-10.csv" not in argv  # the input itself is the new one, never inherited


@pytest.mark.slow
def test_a_photo_struck_off_the_takedown_list_comes_back_at_the_next_refresh(tmp_path):
    """The ledger recorded a takedown as a verdict for good: once the entry was struck off the list (a takedown
    withdrawn or mistaken, a hostile list replaced), the photo's row was still skipped as decided in every later
    refresh. The list, read again by each refresh as it is then, decides a takedown by id: the photo is fetched and
    kept again. A takedown by content (sha256 here) stays for good, and its image is never fetched again: re-deciding
    it meant downloading flagged material every refresh, and a re-encoding could slip past its sha256 entry."""
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.fixtures.static_server import StaticServer

    root = tmp_path / "root"
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path)
        common = [f"--output={root}", f"--input={metadata}", f"--allowed_hosts={server.host}", *FAST]
        assert main(["refresh", "--release=2026-10", *common]) == 0
        first = released(root / "releases" / "2026-10")
        [stored] = [row["sha256"] for row in pq.read_table(root / "releases" / "2026-10" / "parquet").to_pylist()
                    if row["photo_id"] == "1005"]
        takedowns = tmp_path / "takedowns.txt"
        takedowns.write_text(f"photo_id 1004\nsha256 {stored}\n")
        assert main(["refresh", "--previous=latest", "--release=2026-11", f"--blocklist={takedowns}", *common]) == 0
        assert released(root / "releases" / "2026-11") == first - {"1004", "1005"}
        takedowns.write_text("# both takedowns withdrawn\n")
        server.hits.clear()
        assert main(["refresh", "--previous=latest", "--release=2026-12", *common]) == 0  # the list inherited
    assert released(root / "releases" / "2026-12") == first - {"1005"}
    assert [hit for hit in server.hits if "1004" in hit], server.hits  # fetched again: not in the previous release
    assert not [hit for hit in server.hits if "1005" in hit], server.hits  # taken down by content: never fetched
    log = json.loads((root / "releases" / "2026-12" / "changelog.json").read_text())
    assert log["added"] == ["1004"], log


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
        "fusion": "none", "draft_supersample": "1", "resize_reducing_gap": "2", "skip_canary": "true",
        # A refresh of a release built from a generic table reads the next table the same way; here the
        # YFCC format, stated explicitly (--columns is refused with it, so it stays empty).
        "input_format": "yfcc", "columns": "",
        # What keeps takedowns and reviewed people out (the licence re-check needs the Flickr API: its
        # inheritance is checked in test_guards_and_inherited_options).
        "blocklist": str(tmp_path / "takedowns.txt"), "review_decisions": str(tmp_path / "decisions.csv"),
        "decontaminate": str(tmp_path / "eval"),
    }
    (tmp_path / "takedowns.txt").write_text("photo_id 999999\n")
    (tmp_path / "decisions.csv").write_text("photo_id,decision,note,sha256\n999999,reject_human,,\n")
    (tmp_path / "eval").mkdir()
    noise = np.random.default_rng(3).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    (tmp_path / "eval" / "noise.png").write_bytes(encode(Image.fromarray(noise), "PNG"))
    assert set(shaping) | {"verify_license"} == set(options.INHERITED)  # a new inherited option must be added here
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
        if name not in ("source", "input_format", "columns", "verify_license"):
            assert first[name] != OPTIONS_DEFAULTS[name], name  # really changed from the default
    assert json.loads((root / "releases" / "r2" / "manifest.json").read_text())["models"][0]["name"] == "nsfw_custom"


OPTIONS_DEFAULTS = {option.name: option.default for option in __import__("pipeline.options").options.DECLARED}


def refresh_decontaminated(previous: Path, tmp_path: Path, server) -> Path:
    """Release r2 of `previous`, with --decontaminate naming a near copy of the demo world's coffee photo (1004)."""
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "val_0001.jpg").write_bytes(encode(real_image("coffee.jpg").resize((300, 200)), quality=70))
    assert main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--decontaminate={evaluation}", f"--allowed_hosts={server.host}", *LOCAL]) == 0
    return tmp_path / "root" / "releases" / "r2"


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


def test_a_refresh_of_an_unchanged_dump_downloads_only_what_was_never_decided(first_yfcc_release, tmp_path, capsys):
    """The ledger: every photo decided for good is skipped before the fetch; one that failed for a
    transient reason (a 503) is fetched again, and nothing else is. The release it builds on was made with no
    takedown list and no licence re-check, which the refresh says (it said nothing: a manifest resealed without
    them made refreshes that applied neither, unsaid)."""
    from pipeline.fixtures.demo_world import photo_path

    server, metadata, first = first_yfcc_release
    assert "1005" not in released(first)
    server.hits.clear()
    assert main(["refresh", f"--previous={first}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL]) == 0
    said = capsys.readouterr().out
    assert "refresh: no takedown list applies (--blocklist); the carried photos' licences" in said, said
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


def test_a_carried_photo_removed_for_a_reason_that_may_change_comes_back_later(first_yfcc_release, tmp_path):
    """r2 caps each owner at one photo: carried photos over it leave the release. Their old "kept" ledger entries
    stayed, so r3 (cap lifted) skipped their rows as decided, had no copy to carry, and lost them for good."""
    from pipeline.fixtures.demo_world import photo_path

    server, metadata, first = first_yfcc_release
    root = tmp_path / "root"
    assert main(["refresh", f"--previous={first}", f"--output={root}", "--release=r2", f"--input={metadata}",
                 f"--allowed_hosts={server.host}", "--per_owner_cap=1", *LOCAL]) == 0
    second = root / "releases" / "r2"
    capped = set(json.loads((second / "changelog.json").read_text())["removed"]["owner_cap/owner_cap"])
    assert capped and not capped & released(second)
    assert not capped & {row["photo_id"] for row in pq.read_table(second / "ledger").to_pylist()}  # undecided again
    server.hits.clear()
    assert main(["refresh", f"--previous={second}", f"--output={root}", "--release=r3", f"--input={metadata}",
                 f"--allowed_hosts={server.host}", "--per_owner_cap=80", *LOCAL]) == 0
    third = root / "releases" / "r3"
    assert capped <= released(third)  # fetched again and kept
    assert {photo_path(photo_id) for photo_id in capped} <= {path for path, count in server.hits.items() if count}


def test_the_changelog_gives_the_reason_the_carried_copy_left_for():
    """Photo 9's carried copy left over the owner cap; the new dump also lists 9, now BY-NC. The changelog said
    "license/not_cc_by" (the first rejection by stage name), which is not why the photo left."""
    import tempfile

    import pyarrow as pa

    from pipeline.release.refresh import changelog

    with tempfile.TemporaryDirectory() as folder:
        previous, release = f"{folder}/releases/r1", f"{folder}/releases/r2"
        for where, ids in ((previous, ["7", "8", "9"]), (release, ["7"])):
            (Path(where) / "parquet").mkdir(parents=True)
            pq.write_table(pa.table({"photo_id": ids}), f"{where}/parquet/pass-00000-of-00001.parquet")
        (Path(release) / "rejections").mkdir()
        rows = [("9", "license", "not_cc_by", "new.tsv:9"),  # source_refs as release/carry.py writes them
                ("9", "owner_cap", "owner_cap", "r1/parquet/pass-00000-of-00001.parquet:2"),
                ("8", "blocklist", "takedown", "r1/parquet/pass-00000-of-00001.parquet:1")]
        names = ["photo_id", "stage", "reason", "source_ref"]
        columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        pq.write_table(pa.table(columns), f"{release}/rejections/rejections-00000-of-00001.parquet")
        log = changelog(previous, release)
    assert log["removed"] == {"blocklist/takedown": ["8"], "owner_cap/owner_cap": ["9"]}


def test_a_previous_release_holding_an_id_of_digits_int_refuses_gets_its_changelog(tmp_path):
    """str.isdigit() is true of '²' and '①', which int() refuses: a resealed previous release holding such an id, gone
    from the new one, ended the refresh's changelog with a ValueError; it is listed among the removed ones."""
    import pyarrow as pa

    from pipeline.release.refresh import changelog

    previous, release = tmp_path / "releases" / "r1", tmp_path / "releases" / "r2"
    for where, ids in ((previous, ["7", "²", "①", "٣"]), (release, ["7", "10"])):
        (where / "parquet").mkdir(parents=True)
        pq.write_table(pa.table({"photo_id": ids}), where / "parquet" / "pass-00000-of-00001.parquet")
    log = changelog(str(previous), str(release))
    assert log["added"] == ["10"] and log["removed"] == {"unaccounted": ["²", "①", "٣"]}, log


def test_the_changelog_reads_a_rejections_shard_a_batch_of_rows_at_a_time():
    """A rejections shard holds up to 500,000 rows (a monthly refresh rejects ~1.5 million input rows): each was made a
    dict at once to find the few that say why a photo left, ~230 MB a shard in the process publishing the refresh."""
    import tempfile

    import pyarrow as pa

    from pipeline.release.refresh import changelog
    from tests.conftest import traced_peak

    rows = 100_000
    with tempfile.TemporaryDirectory() as folder:
        previous, release = f"{folder}/releases/r1", f"{folder}/releases/r2"
        for where, ids in ((previous, ["7", "8"]), (release, ["7"])):
            (Path(where) / "parquet").mkdir(parents=True)
            pq.write_table(pa.table({"photo_id": ids}), f"{where}/parquet/pass-00000-of-00001.parquet")
        (Path(release) / "rejections").mkdir()
        carried = "r1/parquet/pass-00000-of-00001.parquet:1"  # photo 8's copy, taken down
        pq.write_table(pa.table({"photo_id": [str(10_000 + i) for i in range(rows)] + ["8"],
                                 "stage": ["license"] * rows + ["blocklist"],
                                 "reason": ["not_cc_by"] * rows + ["takedown"],
                                 "source_ref": [f"new.tsv:{i}" for i in range(rows)] + [carried]}),
                       f"{release}/rejections/rejections-00000-of-00001.parquet")
        log, peak = traced_peak(lambda: changelog(previous, release))
    assert log["removed"] == {"blocklist/takedown": ["8"]} and log["unchanged"] == 1
    assert peak < 12 << 20, f"{peak:,} bytes at the peak for {rows:,} rejections"


# Ids as a release's shards may hold them: numbers (a few, so that releases share some), other spellings of them
# (leading zeros, digits of other scripts, which str.isdigit takes and int() reads or refuses), zero, the largest
# number held as one and the least that is not, ids over 64 bits, digits past int()'s limit, any other text.
_CHANGELOG_IDS = st.one_of(
    st.integers(1, 40).map(str),
    st.integers(0, 40).map(lambda number: f"0{number}"),
    st.sampled_from(["0", "00", "", "x", " 7", "-7", "\u0663", "\u0667", "0\u0667", "\uff17", "\u00b2", "\u2460",
                     "9999999999999999999", "09999999999999999999", "10000000000000000000", "18446744073709551615",
                     "18446744073709551616", "99999999999999999999", "7" * 5000,
                     "r1/parquet/pass-00000-of-00001.parquet:3"]),
    st.text(max_size=3),
)


def _changelog_order(ids) -> list[str]:
    """The changelog's order of ids as its code has given it (`changelog`'s `order`): by the number an id spells
    (str.isdigit and int()), those that spell none first; two ids of one number in the order of text."""
    from pipeline.release.refresh import _as_int

    return sorted(set(ids), key=lambda i: (_as_int(i), i))


@given(st.lists(_CHANGELOG_IDS))
def test_the_changelog_orders_a_set_of_ids_as_it_ordered_their_texts(ids):
    from pipeline.release.id_sets import IdSet
    from pipeline.release.refresh import _ordered

    assert _ordered(IdSet.of(ids)) == _changelog_order(ids)


def test_a_changelog_lists_added_and_removed_ids_in_the_order_it_always_has(tmp_path):
    """Read from the releases' shards: ids that spell no number, numbers, their other spellings and ids past 64 bits,
    added and removed, each list in the order the changelog has given them."""
    import pyarrow as pa

    from pipeline.release.refresh import changelog

    odd = ["x", "", "0", "007", "7", "\u0667", "\uff17", "\u00b2", "18446744073709551616", "10000000000000000000",
           "9999999999999999999", "r1/parquet/pass-00000-of-00001.parquet:3"]
    previous, release = tmp_path / "releases" / "r1", tmp_path / "releases" / "r2"
    before = [str(n) for n in range(1, 3000, 3)] + odd[::2]
    after = [str(n) for n in range(2, 3000, 2)] + [str(2**63 + n) for n in range(5)] + odd[1::2] + ["007"]
    for where, ids in ((previous, before), (release, after)):
        (where / "parquet").mkdir(parents=True)
        pq.write_table(pa.table({"photo_id": ids}), where / "parquet" / "pass-00000-of-00001.parquet")
    log = changelog(str(previous), str(release))
    assert log["added"] == _changelog_order(set(after) - set(before))
    assert log["removed"] == {"unaccounted": _changelog_order(set(before) - set(after))}


def test_a_first_refresh_orders_the_ids_it_adds_without_a_key_for_each():
    """A first refresh adds a whole release: its 1.44 million ids were sorted with a key for each (a tuple and an int,
    ~100 bytes an id beside the ids themselves: ~140 MB at the changelog's peak). The numbers are in order as held; the
    peak beyond the list of ids it returns is a fraction of that for 200,000 ids."""
    import sys
    import tempfile

    import pyarrow as pa

    from pipeline.release.refresh import changelog
    from tests.conftest import traced_peak

    rows = 200_000
    with tempfile.TemporaryDirectory() as folder:
        previous, release = Path(folder, "releases", "r1"), Path(folder, "releases", "r2")
        for where in (previous, release):
            (where / "parquet").mkdir(parents=True)
        pq.write_table(pa.table({"photo_id": ["1", "2"]}), previous / "parquet" / "pass-00000-of-00001.parquet")
        ids = [str(5_000_000_000 + 37 * i) for i in range(rows)]
        for shard in range(8):  # shards of 25,000 ids
            pq.write_table(pa.table({"photo_id": ids[shard::8]}),
                           release / "parquet" / f"pass-{shard:05d}-of-00008.parquet")
        log, peak = traced_peak(lambda: changelog(str(previous), str(release)))
    assert log["added"] == ids
    held = sys.getsizeof(log["added"]) + sum(map(sys.getsizeof, log["added"]))  # what the changelog lists
    assert peak - held < 40 * rows, f"{peak - held:,} bytes at the peak beyond the {held:,} of {rows:,} ids added"


@given(st.lists(st.one_of(_CHANGELOG_IDS, st.sampled_from(["7\n", "\n7", "1" * 19, "1" * 20]), st.none())))
def test_a_releases_ids_are_read_as_their_rows_give_them(values):
    """The ids that are a number's one spelling are taken as numbers from the shard's column, the others as text: the
    same ids as each row's text (a null by its place), and the same places of the ids that are no plain number."""
    import tempfile

    import pyarrow as pa

    from pipeline.release.refresh import photo_ids

    with tempfile.TemporaryDirectory() as folder:
        release = Path(folder, "releases", "r1")
        (release / "parquet").mkdir(parents=True)
        pq.write_table(pa.table({"photo_id": pa.array(values, pa.string())}),
                       release / "parquet" / "pass-00000-of-00001.parquet")
        places: dict[str, str] = {}
        ids = photo_ids(str(release), places)
    shard = "r1/parquet/pass-00000-of-00001.parquet"
    texts = [value if value is not None else f"{shard}:{row}" for row, value in enumerate(values, start=1)]
    assert sorted(ids) == sorted(set(texts))
    assert places == {f"{shard}:{row}": text for row, (value, text) in enumerate(zip(values, texts, strict=True), 1)
                      if not (value is not None and value.isascii() and value.isdigit())}


def test_a_releases_ids_that_are_numbers_are_never_made_text():
    """A release's ids were each made Python text from its shards' columns (~60 bytes an id, a shard at a time; a
    release of one shard, all at once) to be held as numbers: the peak of reading one shard of 200,000 ids is under
    half of what it was (86 bytes an id)."""
    import tempfile

    import pyarrow as pa

    from pipeline.release.refresh import photo_ids
    from tests.conftest import traced_peak

    rows = 200_000
    ids = [str(5_000_000_000 + 37 * i) for i in range(rows)]
    with tempfile.TemporaryDirectory() as folder:
        release = Path(folder, "releases", "r1")
        (release / "parquet").mkdir(parents=True)
        pq.write_table(pa.table({"photo_id": ids}), release / "parquet" / "pass-00000-of-00001.parquet")
        held, peak = traced_peak(lambda: photo_ids(str(release), {}))
    assert held.least(2) == ids[:2] and len(held) == rows
    assert peak < 40 * rows, f"{peak:,} bytes at the peak for {rows:,} ids"


def test_a_real_refresh_names_the_reason_the_carried_copies_left_for(first_yfcc_release, tmp_path):
    """Every released id listed again as BY-NC, and a cap of one photo an owner: the carried copies over the cap
    leave for that, and the changelog says so (it named the new rows' licence)."""
    from pipeline.fixtures.yfcc_rows import yfcc_line

    server, _, first = first_yfcc_release
    non_commercial = ("Attribution-NonCommercial License", "http://creativecommons.org/licenses/by-nc/2.0/")
    (tmp_path / "new.tsv").write_text("".join(yfcc_line(i, photo_id, "http://x/y.jpg", license=non_commercial) + "\n"
                                              for i, photo_id in enumerate(sorted(released(first)), 1)))
    root = tmp_path / "root"
    assert main(["refresh", f"--previous={first}", f"--output={root}", "--release=r2",
                 f"--input={tmp_path / 'new.tsv'}", f"--allowed_hosts={server.host}", "--per_owner_cap=1", *LOCAL]) == 0
    second = root / "releases" / "r2"
    capped = {r["photo_id"] for r in pq.read_table(second / "rejections").to_pylist() if r["stage"] == "owner_cap"}
    removed = json.loads((second / "changelog.json").read_text())["removed"]
    assert capped and set(removed["owner_cap/owner_cap"]) == capped and "license/not_cc_by" not in removed


def test_the_changelog_renders_ids_and_names_as_text_never_as_markup():
    """The previous release's ids are outside input: a resealed shard's id '![x](https://evil.example/b.png)'
    was pasted into CHANGELOG.md as it was, a beacon wherever the file is rendered."""
    from pipeline.release.refresh import changelog_markdown

    hostile = "![x](https://evil.example/b.png)<img src=https://evil.example/c.png>"
    log = {"release": "r2", "previous": "[r1](javascript:alert(1))", "added": ["12", hostile],
           "removed": {"unaccounted": [hostile]}, "unchanged": 0, "totals": {"previous": 1, "release": 1}}
    text = changelog_markdown(log)
    # every character that could open markup is backslash-escaped: shown as the characters they are
    assert not re.search(r"(?<!\\)(<|!\[|\]\()", text), text
    assert "\\!\\[x\\]" in text and "12" in text


def test_carried_rows_are_checked_as_any_source_row_is(first_yfcc_release, tmp_path, monkeypatch):
    """A release read back is outside input. Rows changed in the previous release (manifest resealed, so
    verify passes) are rejections of their own: an id that is no photo number, a licence that is not CC
    BY, an id twice across shards, bytes that are not the row's image. --decontaminate applies to carried
    images too. Before, each was released again (the not-an-image one failed the refresh after the job)."""
    import shutil

    import pyarrow as pa

    import pipeline.release.record_readers
    from pipeline.release.verify import verify

    server, _, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    shards = sorted((previous / "parquet").glob("*.parquet"))
    rows = [row for shard in shards for row in pq.read_table(shard).to_pylist()]
    by_id = {row["photo_id"]: row for row in rows}
    changes = {"1001": {"photo_id": "../../1001<b>x</b>"},
               "1002": {"license_url": "https://creativecommons.org/licenses/by-nc/2.0/",
                        "license_name": "CC BY-NC 2.0"},
               # 1006 twice (its URLs too: a row whose URLs name another photo is a bad_field of its own)
               "1003": {"photo_id": "1006", "page_url": by_id["1006"]["page_url"],
                        "fetched_url": by_id["1006"]["fetched_url"]},
               "1007": {"image": {"bytes": b"not a jpeg", "path": None}}}
    assert set(changes) | {"1004", "1006"} <= set(by_id)
    for shard in shards:
        table = pq.read_table(shard)
        changed = [{**row, **changes.get(row["photo_id"], {})} for row in table.to_pylist()]
        pq.write_table(pa.Table.from_pylist(changed, schema=table.schema), shard)
    reseal(previous)
    # verify finds these Parquet ids against the other formats' (test_verify.py); whoever rewrote the tar shards and
    # ATTRIBUTION.csv to match would pass it, and the refresh must still check every row
    monkeypatch.setattr("pipeline.release.verify._id_problems", lambda ids: iter(()))
    # ...and its image check finds 1007 (test_verify.py); the refresh's own check of each carried row is tested here
    parquet_records = pipeline.release.record_readers._parquet_records
    monkeypatch.setattr("pipeline.release.record_readers._parquet_records",
                        lambda data: (*parquet_records(data)[:1], [], *parquet_records(data)[2:]))
    # ...and its images against the other formats' (test_verify.py)
    monkeypatch.setattr("pipeline.release.verify._Seen.problems", lambda self: iter(()))
    assert list(verify(str(previous))) == []
    second = refresh_decontaminated(previous, tmp_path, server)
    assert released(second) == set(by_id) - {"1001", "1002", "1003", "1004", "1007"}  # one 1006 is kept
    assert len(pq.read_table(second / "parquet").column("photo_id")) == len(released(second))
    rejections = {(r["stage"], r["reason"]) for r in pq.read_table(second / "rejections").to_pylist()}
    assert {("carry", "bad_id"), ("license", "not_cc_by"), ("unique_id", "repeated_id"), ("carry", "image_mismatch"),
            ("decontaminate", "eval_overlap")} <= rejections, rejections
    # The release's copy of 1007 was bad, not the photo: undecided again, fetched from its source next time
    ledger = {row["photo_id"]: row for row in pq.read_table(second / "ledger").to_pylist()}
    assert "1007" not in ledger and ledger["1004"]["reason"] == "eval_overlap"
    monkeypatch.undo()
    assert list(verify(str(second))) == []  # the new release, its ids checked too


def test_a_previous_ledger_with_rows_no_run_writes_decides_nothing_by_them(first_yfcc_release, tmp_path):
    """The previous ledger is outside input too. A row whose id is no number failed the whole refresh at its very end
    (the ledger writer sorted by int); one in another spelling ('01015') never matched its photo and sat beside it
    in the new ledger; a decision or stage that is no word passed as a verdict. Such rows are ignored and counted:
    their photos are decided again, and the new ledger holds only rows a run writes."""
    import shutil

    import pyarrow as pa

    from pipeline.fixtures.demo_world import photo_path
    from pipeline.release.verify import verify

    server, metadata, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    [shard] = sorted((previous / "ledger").glob("*.parquet"))
    table = pq.read_table(shard)
    rows = [row for row in table.to_pylist() if row["photo_id"] not in ("1015", "1016")]
    rows += [{"photo_id": "../../x", "decision": "rejected", "stage": "fetch", "reason": "gone", "release": "r1"},
             {"photo_id": "01015", "decision": "rejected", "stage": "fetch", "reason": "not_found", "release": "r1"},
             {"photo_id": "1016", "decision": "maybe", "stage": "image", "reason": "not_an_image", "release": "r1"}]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    reseal(previous)
    assert list(verify(str(previous))) == []
    server.hits.clear()
    assert main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL]) == 0
    second = tmp_path / "root" / "releases" / "r2"
    stats = json.loads((second / "stats.json").read_text())
    assert stats["accounted"] and stats["ledger_rows_ignored"] == 3
    assert {path for path, count in server.hits.items() if count} == {photo_path(i) for i in ("1005", "1015", "1016")}
    ledger = {row["photo_id"]: row for row in pq.read_table(second / "ledger").to_pylist()}
    assert not {"../../x", "01015"} & ledger.keys()
    assert (ledger["1015"]["reason"], ledger["1015"]["release"]) == ("not_found", "r2")  # decided again
    assert list(verify(str(second))) == []


def test_a_previous_ledger_whose_footer_hides_a_row_is_refused_not_read_short(first_yfcc_release, tmp_path, capsys):
    """Parquet readers read the rows a footer states for a row group and no more: a resealed ledger stating one row
    fewer than it holds (its column chunks' counts too) passed verify, and the refresh read it without its last row,
    a photo the release had decided, which it fetched and decided again. The refresh is refused, naming the file."""
    server, metadata, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    [shard] = sorted((previous / "ledger").glob("*.parquet"))
    footer = pq.ParquetFile(shard).metadata
    rows = footer.num_rows
    with_integers(shard, {(3,): rows - 1, rows_of(0): rows - 1,
                          **{values_of(0, leaf): rows - 1 for leaf in range(footer.num_columns)}})
    reseal(previous)
    assert pq.read_table(shard).num_rows == rows - 1
    server.hits.clear()
    assert main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL]) == 2
    assert f"does not match its manifest ({shard.relative_to(previous).as_posix()}: unreadable: row group 1 states " \
           f"{rows - 1} rows, its column 'photo_id' holds {rows} values" in capsys.readouterr().err
    assert not any(server.hits.values())


@pytest.mark.parametrize(("manifest", "named"), [
    ({"release": "r1", "options": "not an object", "files": []}, '"options" must be an object'),
    ({"release": "r1", "options": {"detectors": ["a", "b"]}, "files": []}, '"options" must be an object'),
    ({"release": "r1", "options": {}, "models": [{"name": "x"}], "files": []}, '"models" must be a list'),
    ({"release": "r1", "options": {"source": "flickr"}, "files": []}, "max_upload_date '' is no date"),
    ({"release": "r1", "options": {"source": "flickr", "max_upload_date": "last week"}, "files": []}, "is no date"),
    ({"release": "r1", "options": {"source": "flickr", "max_upload_date": "9" * 19}, "files": []}, "is no date"),
], ids=["options-text", "options-nested", "models-incomplete", "flickr-no-end", "flickr-bad-end", "flickr-end-9999"])
def test_a_previous_manifest_of_another_shape_is_one_line_naming_it(tmp_path, capsys, manifest, named):
    """verify checks a release's files, not what its manifest says about options: those ended as 'the job
    failed: AttributeError/KeyError' (exit 1) instead of one line naming the manifest (exit 2)."""
    previous = tmp_path / "old" / "r1"
    previous.mkdir(parents=True)
    (previous / "manifest.json").write_text(json.dumps(manifest))
    assert main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2", *LOCAL]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "r1/manifest.json" in err and named in err, err


def test_a_refresh_finishes_its_release_under_the_runs_lock(first_yfcc_release, tmp_path, monkeypatch):
    """The changelog, datasheet and release name are written while the release folder is still locked: a
    second refresh of the same release could otherwise publish between this one's files and its changelog.
    A killed refresh's changelog and datasheet are run files too: its rerun replaces them."""
    from pipeline.commands import refresh as refresh_command
    from pipeline.io.lock import LOCK

    server, _, first = first_yfcc_release
    target = tmp_path / "root" / "releases" / "r2"
    target.mkdir(parents=True)
    (target / "datasheet").mkdir()
    (target / "datasheet" / "plot-from-a-killed-refresh.png").write_bytes(b"stale")
    (target / "CHANGELOG.md").write_text("stale")
    locked, real_finish = [], refresh_command.release.finish
    monkeypatch.setattr(refresh_command.release, "finish",
                        lambda *args: (locked.append((target / LOCK).exists()), real_finish(*args))[1])
    assert main(["refresh", f"--previous={first}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--allowed_hosts={server.host}", *LOCAL]) == 0
    assert locked == [True] and not (target / LOCK).exists()
    assert not (target / "datasheet" / "plot-from-a-killed-refresh.png").exists()
    assert (target / "CHANGELOG.md").read_text() != "stale" and main(["verify", str(target)]) == 0


def test_rows_of_a_shard_that_cannot_be_decoded_are_rejected_by_id_in_a_real_refresh(first_yfcc_release, tmp_path,
                                                                                    monkeypatch):
    """A title that is no UTF-8 in a shard of the previous release (resealed, so verify passes): each of
    that shard's photos is counted as an input and rejected under its id (carry / unreadable_row), the
    changelog names them under that reason, and the ledger does not call them kept — so a later source
    listing them again has them fetched and judged, not skipped as decided."""
    import numpy as np
    import pyarrow as pa

    server, _metadata, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    shard = max(sorted((previous / "parquet").glob("*.parquet")), key=lambda s: pq.read_metadata(s).num_rows)
    table = pq.read_table(shard)
    titles = [(t or "").encode() for t in table.column("title").to_pylist()]
    titles[0] = b"ok\xff\xfe"
    offsets = np.cumsum([0, *map(len, titles)]).astype(np.int32)
    bad = pa.Array.from_buffers(pa.string(), len(titles), [None, pa.py_buffer(offsets.tobytes()),
                                                           pa.py_buffer(b"".join(titles))])
    pq.write_table(table.set_column(table.schema.get_field_index("title"), "title", bad), shard)
    lost = sorted(pq.read_table(shard, columns=["photo_id"]).column(0).to_pylist())
    reseal(previous)
    # verify finds the title against the other formats' credit (test_verify.py); whoever rewrote them all to match
    # would pass it, and the refresh must still reject the rows it cannot decode
    monkeypatch.setattr("pipeline.release.verify._Seen.problems", lambda self: iter(()))
    assert main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--allowed_hosts={server.host}", "--allow_empty", *LOCAL]) == 0
    second = tmp_path / "root" / "releases" / "r2"
    stats = json.loads((second / "stats.json").read_text())
    assert stats["accounted"] and stats["input_rows"] == len(released(first))
    assert stats["rejections_by_stage"]["carry"] == {"unreadable_row": len(lost)}
    assert json.loads((second / "changelog.json").read_text())["removed"] == {"carry/unreadable_row": lost}
    ledger = {row["photo_id"]: row["decision"] for row in pq.read_table(second / "ledger").to_pylist()}
    assert all(ledger.get(photo_id) != "kept" for photo_id in lost)


def test_a_changed_context_column_checks_the_images_again():
    """A fusion model reading a context class decides otherwise when the class points at another column: the
    manifest records the columns and a refresh counts the change like a changed threshold."""
    from pipeline.release.refresh import models_changed

    entry = {"name": "nanodet_person", "sha256": "a" * 64, "thresholds": {"person": 0.35},
             "review_band": {"person": 0.3}, "context_columns": {"boat": 8}}
    assert not models_changed({"models": [entry]}, [dict(entry)])
    assert models_changed({"models": [entry]}, [{**entry, "context_columns": {"boat": 0}}])
    plain = {k: v for k, v in entry.items() if k != "context_columns"}
    assert not models_changed({"models": [plain]}, [dict(plain)])  # manifests from before the key compare as before


def test_a_changed_context_probe_checks_the_images_again():
    """A probe file of another sha256 gives a fusion model reading it other numbers: the manifest records each
    probe's sha256 (pipeline/build.py model_entries) and a refresh counts the change."""
    from pipeline.build import model_entries
    from pipeline.detectors.registry import BUILTIN_REGISTRY, read_registry
    from pipeline.release.refresh import models_changed

    specs = list(read_registry(str(BUILTIN_REGISTRY.parent / "candidate_probe_registry.json")).values())
    entries = model_entries(specs, None)
    probed = next(entry for entry in entries if entry["name"] == "open_nsfw")
    assert probed["context_probes"] == {"scene_person": specs[-1].probes[0].sha256}
    assert not models_changed({"models": entries}, [dict(entry) for entry in entries])
    other = [{**entry, "context_probes": {"scene_person": "b" * 64}} if entry is probed else entry for entry in entries]
    assert models_changed({"models": entries}, other)
    assert models_changed({"models": [{k: v for k, v in e.items() if k != "context_probes"} for e in entries]}, entries)


def test_a_refresh_killed_while_writing_its_changelog_and_datasheet_leaves_no_dataset_verify_refuses(
        first_yfcc_release, tmp_path, monkeypatch, capsys):
    """The changelog, datasheet and release name were written into the release folder after the run had published
    its files there: a refresh killed in between left a manifest (without the release's name) beside files it does not
    list, which verify refused (found by SIGKILLing `refresh` before each of its renames: 11 of 66 kill points left
    such a folder). Now they are written into the staging folder and published with the run's files, the manifest
    last: stopped while writing them, the folder holds nothing of the release, and the rerun publishes it whole."""
    from pipeline.release import datasheet

    server, _, first = first_yfcc_release
    root = tmp_path / "root"
    target = root / "releases" / "r2"
    argv = ["refresh", f"--previous={first}", f"--output={root}", "--release=r2", f"--allowed_hosts={server.host}",
            *LOCAL]

    def killed(*args, **kwargs):  # the changelog is written by then; a kill would stop here as well
        raise KeyboardInterrupt

    monkeypatch.setattr(datasheet, "write_datasheet", killed)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    monkeypatch.undo()
    assert not (target / "manifest.json").exists() or main(["verify", str(target)]) == 0, capsys.readouterr().out
    assert main(argv) == 0
    assert json.loads((target / "manifest.json").read_text())["release"] == "r2"
    assert main(["verify", str(target)]) == 0 and json.loads((target / "changelog.json").read_text())["release"] == "r2"


def test_a_refresh_stopped_while_publishing_is_finished_by_its_rerun_which_succeeds(
        first_yfcc_release, tmp_path, capsys):
    """The rerun finished publishing the release and then exited 2 ("a published release"), though the release was
    complete: the monthly schedule saw a failure. Now the rerun of the same refresh says it finished it and exits 0;
    a plain run into that folder still finishes the publish and is refused, and so is a refresh with another option
    (told done, exit 0, for a release made with other options than its own)."""
    from tests.conftest import publishing_stopped_after

    server, metadata, first = first_yfcc_release
    root = tmp_path / "root"
    target = root / "releases" / "r2"
    argv = ["refresh", f"--previous={first}", f"--output={root}", "--release=r2", f"--allowed_hosts={server.host}",
            *LOCAL]
    plain_run = ["run", f"--input={metadata}", f"--output={target}", f"--allowed_hosts={server.host}", *LOCAL]
    other_option = [*argv, "--max_side=256"]
    for rerun, status in ((argv, 0), (plain_run, 2), (other_option, 2)):
        shutil.rmtree(root, ignore_errors=True)
        with publishing_stopped_after(2), pytest.raises(KeyboardInterrupt):
            main(argv)
        assert not (target / "manifest.json").exists()
        capsys.readouterr()
        assert main(rerun) == status
        said = capsys.readouterr()
        assert "finished publishing" in said.out + said.err
        assert rerun is not other_option or "made by another refresh: --max_side=" in said.err, said.err
        assert json.loads((target / "manifest.json").read_text())["release"] == "r2"
        assert main(["verify", str(target)]) == 0
        assert not (target / "_staging").exists()  # the emptied staging folder stayed in the release for good


@pytest.mark.parametrize("stats", ["[]", '{"kept": 1}', '{"kept": 1, "input_rows": 2, "accounted": true, '
                                   '"rejections_by_stage": {"fetch": 3}}', "{not json", "\udcff"])
def test_a_release_whose_publish_its_rerun_finished_with_a_stats_json_of_another_shape_is_refused_in_one_line(
        first_yfcc_release, tmp_path, capsys, stats):
    """The rerun of a refresh stopped while publishing finishes the publish and sums the release up from its
    stats.json, which nothing checked on that path (a staging folder under a releases' root others may write to): one
    of another shape ended in "the job failed" (a TypeError, a KeyError), exit 1, as if the job had failed. It is a
    one-line refusal naming the file, exit 2: the release stays published as it is, for verify to judge."""
    from tests.conftest import publishing_stopped_after

    server, _, first = first_yfcc_release
    root = tmp_path / "root"
    target = root / "releases" / "r2"
    argv = ["refresh", f"--previous={first}", f"--output={root}", "--release=r2", f"--allowed_hosts={server.host}",
            *LOCAL]
    with publishing_stopped_after(2), pytest.raises(KeyboardInterrupt):
        main(argv)
    (written,) = [path for path in (target / "stats.json", *target.glob("_staging/*/stats.json")) if path.exists()]
    written.write_bytes(stats.encode("utf-8", "surrogateescape"))
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("pass-pipeline: error: ")]
    assert len(lines) == 1 and "the job failed" not in err, err
    # no JSON (or no UTF-8) named no file: "Expecting value: line 1 column 1 (char 0)"
    said = "not the counts a run writes" if stats.startswith(("[", "{\"")) else "not JSON"
    assert f"{target}/stats.json: {said}" in lines[0], lines[0]
    assert json.loads((target / "manifest.json").read_text())["release"] == "r2"


def test_a_photo_a_reviewer_rejects_leaves_the_next_release_though_the_detectors_did_not_change(
        first_yfcc_release, tmp_path):
    """A reviewer looks again at a released photo and rejects it (`review apply`: a later decision replaces an earlier
    one). A refresh given the decisions carried the photo into its release all the same: carried photos meet the
    decisions only in detection, which runs on them only when the detectors changed (--redetect). A rejection always
    holds, whichever image it names; an acceptance keeps what is kept anyway."""
    from pipeline.release.verify import verify

    server, metadata, first = first_yfcc_release
    kept = sorted(released(first), key=int)
    human, other, accepted = kept[:3]
    (tmp_path / "decisions.csv").write_text(
        "photo_id,decision,note,sha256\n"
        f"{human},reject_human,a face in the window,\n"
        f"{other},reject_other,a screenshot,{'ab' * 32}\n"
        f"{accepted},accept,,\n"
        "1005,reject_human,,\n")  # new in r2 (a 503 in r1), with detection off: the decision holds too
    store = tmp_path / "reviews.csv"
    assert main(["review", "apply", str(tmp_path / "decisions.csv"), "--store", str(store)]) == 0
    root = tmp_path / "root"
    assert main(["refresh", f"--previous={first}", f"--output={root}", "--release=r2", f"--input={metadata}",
                 f"--review_decisions={store}", f"--allowed_hosts={server.host}", *LOCAL]) == 0
    second = root / "releases" / "r2"
    assert released(second) == released(first) - {human, other}
    rejections = {(row["photo_id"], row["stage"], row["reason"], row["detail"])
                  for row in pq.read_table(second / "rejections").to_pylist()}
    assert {(human, "detect", "human", "reviewer: a face in the window"),
            (other, "detect", "reviewer_rejected", "a screenshot"),
            ("1005", "detect", "human", "reviewer")} <= rejections
    removed = json.loads((second / "changelog.json").read_text())["removed"]
    assert removed == {"detect/human": [human], "detect/reviewer_rejected": [other]}
    ledger = {row["photo_id"]: row for row in pq.read_table(second / "ledger").to_pylist()}
    assert (ledger[human]["decision"], ledger[human]["reason"]) == ("rejected", "human")
    assert list(verify(str(second))) == []


def test_a_refresh_without_previous_under_a_root_holding_releases_is_refused(first_yfcc_release, tmp_path, capsys):
    """--previous forgotten (its default makes a first release): the refresh wrote a new "first release" beside the
    others, without the takedown list, ledger or carried images of the last one, published a photo that list keeps
    out, and became `latest`, so the monthly refresh built on it and never applied the list again."""
    server, metadata, first = first_yfcc_release
    root = tmp_path / "root"
    shutil.copytree(first, root / "releases" / "r1")
    (tmp_path / "takedowns.txt").write_text("photo_id 1004\n")
    args = [f"--output={root}", f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL]
    assert main(["refresh", "--release=r2", *args]) == 2
    assert re.search(r"holds published releases \(the newest: .*r1\).*--previous=latest", capsys.readouterr().err)
    assert not (root / "releases" / "r2").exists()
    # with it, the release is built on r1 (here with a takedown list): 1004 leaves
    assert main(["refresh", "--release=r2", "--previous=latest", f"--blocklist={tmp_path / 'takedowns.txt'}",
                 *args]) == 0
    assert "1004" not in released(root / "releases" / "r2")
    said = capsys.readouterr().out
    assert "no takedown list applies" not in said and "are not re-checked (--verify_license)" in said, said
    # a root without releases makes a first release without --previous, as before
    assert main(["refresh", f"--output={tmp_path / 'new'}", "--release=r1", f"--input={metadata}",
                 f"--allowed_hosts={server.host}", "--detectors=none", *LOCAL]) == 0


def test_a_review_apply_during_a_refresh_launch_is_applied_to_all_its_photos_or_none(first_yfcc_release, tmp_path,
                                                                                    monkeypatch):
    """The launch read the decisions store once for the carried photos and again for the new ones: a `review apply`
    in between (annotators work at any hour) was applied to the new photos and not to the carried ones, the release
    made from two versions of the store. It is read once."""
    import pipeline.build as build
    from pipeline.release.review import apply_decisions

    server, metadata, first = first_yfcc_release
    carried = sorted(released(first), key=int)[0]
    store = tmp_path / "reviews.csv"
    (tmp_path / "d1.csv").write_text("photo_id,decision,note,sha256\n999,accept,,\n")
    (tmp_path / "d2.csv").write_text(f"photo_id,decision,note,sha256\n{carried},reject_human,,\n1005,reject_human,,\n")
    apply_decisions(str(tmp_path / "d1.csv"), str(store))
    read = build.stage_decisions

    def then_an_apply(path, folder):  # a reviewer's apply lands right after the launch's first read
        decisions = read(path, folder)
        apply_decisions(str(tmp_path / "d2.csv"), str(store))
        return decisions

    monkeypatch.setattr(build, "stage_decisions", then_an_apply)
    root = tmp_path / "root"
    assert main(["refresh", f"--previous={first}", f"--output={root}", "--release=r2", f"--input={metadata}",
                 f"--review_decisions={store}", f"--allowed_hosts={server.host}", *LOCAL]) == 0
    second = released(root / "releases" / "r2")
    assert (carried in second, "1005" in second) == (True, True)  # the store as the launch first read it


def test_a_rerun_of_a_published_refresh_says_the_release_is_there_and_how_to_check_it(first_yfcc_release, tmp_path,
                                                                                       capsys):
    """The rerun of a refresh stopped after it published (a scheduler retrying its exit 143) said only "release r1
    is already published", which read as a failure of the retry: it says the release is finished and how to check
    it, and touches nothing."""
    server, metadata, first = first_yfcc_release
    root = tmp_path / "root"
    shutil.copytree(first, root / "releases" / "r1")
    before = {path: path.stat().st_mtime_ns for path in root.rglob("*")}
    assert main(["refresh", f"--output={root}", "--release=r1", "--previous=latest", f"--input={metadata}",
                 f"--allowed_hosts={server.host}", *LOCAL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "release r1 is already published" in err, err
    assert f"pass-pipeline verify {root / 'releases' / 'r1'}" in err and "name another --release" in err
    assert {path: path.stat().st_mtime_ns for path in root.rglob("*")} == before


@pytest.fixture(scope="module")
def scheduled_refresh(first_yfcc_release, tmp_path_factory):
    """Release r2 of a root holding a copy of r1, made as the monthly schedule launches it (--previous=latest), with
    one option given (--max_side=300): the root and the flags of that refresh."""
    server, metadata, first = first_yfcc_release
    root = tmp_path_factory.mktemp("scheduled") / "root"
    shutil.copytree(first, root / "releases" / "r1")
    argv = ["refresh", f"--output={root}", "--release=r2", "--previous=latest", f"--input={metadata}",
            "--max_side=300", f"--allowed_hosts={server.host}", *LOCAL]
    assert main(argv) == 0
    return root, argv


def files_of(root: Path) -> dict[Path, tuple[int, bytes]]:
    return {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in sorted(root.rglob("*")) if path.is_file()}


def test_the_rerun_of_the_refresh_that_published_the_release_succeeds_and_touches_nothing(scheduled_refresh, capsys):
    """A refresh stopped after its release was published (exit 143 in its cleanup) is retried by its scheduler: the
    rerun of that same refresh (same previous release, inputs and options) exited 2, "release r2 is already
    published", an alert for a release that was whole. It now says the release was published by this same refresh,
    exits 0 and touches nothing; the previous release named by its folder is the same refresh too."""
    root, argv = scheduled_refresh
    before = files_of(root)
    for rerun in (argv, [*argv[:3], f"--previous={root / 'releases' / 'r1'}", *reversed(argv[4:])]):
        capsys.readouterr()
        assert main(rerun) == 0
        said = capsys.readouterr().out
        assert "release r2 was already published by this same refresh" in said, said
        assert f"pass-pipeline verify {root / 'releases' / 'r2'}" in said and "nothing was done" in said
    assert files_of(root) == before


def test_a_published_refresh_leaves_no_work_cache_and_its_rerun_removes_one_a_stop_left(scheduled_refresh, capsys,
                                                                                       monkeypatch):
    """The work cache (ROOT/work/NAME) serves a killed refresh's rerun only; once the release was published it stayed
    beside the releases for good, one about the release's size a month. The refresh removes it after publishing; the
    rerun of a refresh stopped between the publish and the removal removes it; one that cannot be removed is said, and
    the release published all the same (exit 0)."""
    from pipeline.commands import refresh as command

    root, argv = scheduled_refresh
    assert (root / "releases" / "r2" / "manifest.json").exists() and not (root / "work" / "r2").exists()
    left = root / "work" / "r2" / "cache"
    left.mkdir(parents=True)
    (left / "images-0.parquet").write_bytes(b"what the stopped refresh had cached")
    before = files_of(root / "releases")
    capsys.readouterr()
    assert main(argv) == 0
    assert "refresh: removed the work cache" in capsys.readouterr().out
    assert not (root / "work" / "r2").exists() and files_of(root / "releases") == before

    left.mkdir(parents=True)

    def refused(folder: str) -> bool:
        raise PermissionError(13, "Permission denied", folder)

    monkeypatch.setattr(command, "remove_folder", refused)
    assert main(argv) == 0
    said = capsys.readouterr()
    assert "could not be removed (" in said.err and "Permission denied" in said.err and "remove it by hand" in said.err
    assert "removed the work cache" not in said.out and left.is_dir()
    monkeypatch.undo()
    shutil.rmtree(root / "work")  # as the module's other tests found the root


def test_a_refresh_removes_a_published_release_s_cache_left_and_says_an_unpublished_one(scheduled_refresh, tmp_path,
                                                                                       capsys):
    """A refresh retried under its default --release after midnight at a month's end names the new month: the stopped
    month's release folder and work cache (about the release's size) were left for good, and nothing said so. Every
    refresh now says each work cache of an unpublished release (stopped, or running now: never touched) and how to
    finish or drop it, and removes one left by a published release (its removal failed, or was stopped and that
    refresh not rerun)."""
    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases", copy / "releases")
    stopped = copy / "work" / "r9" / "cache"
    stopped.mkdir(parents=True)
    (stopped / "images-0.parquet").write_bytes(b"what the stopped refresh had cached")
    (copy / "releases" / "r9" / "_staging").mkdir(parents=True)
    left = copy / "work" / "r1" / "cache"  # release r1 is published
    left.mkdir(parents=True)
    (left / "images-0.parquet").write_bytes(b"left after r1 was published")
    (copy / "work" / "not a release name").mkdir()  # no refresh names a cache so: not its business
    capsys.readouterr()
    assert main([f"--output={copy}" if arg.startswith("--output=") else arg.replace("--release=r2", "--release=r3")
                 for arg in argv]) == 0
    said = capsys.readouterr().out
    assert (copy / "releases" / "r3" / "manifest.json").exists()
    assert f"refresh: {copy / 'work' / 'r9'} holds the work of a refresh of release r9, which is not published" in said
    assert "rerun it with --release=r9" in said and f"remove that folder and {copy / 'releases' / 'r9'}" in said, said
    assert f"refresh: removed the work cache {copy / 'work' / 'r1'}" in said, said
    assert not (copy / "work" / "r1").exists() and not (copy / "work" / "r3").exists()
    assert (stopped / "images-0.parquet").read_bytes() == b"what the stopped refresh had cached"
    assert (copy / "releases" / "r9" / "_staging").is_dir() and (copy / "work" / "not a release name").is_dir()
    assert "not a release name" not in said


def test_a_work_cache_whose_release_s_manifest_cannot_be_read_is_left_and_said_so_not_as_an_unpublished_one(tmp_path,
                                                                                                            capsys):
    """The work cache of a release whose manifest.json is there but cannot be read (cut, a named pipe, over the size
    any run writes) was said as an unpublished release's, a refresh stopped or running, "if it is abandoned, remove
    that folder and ROOT/releases/NAME": a published release whose manifest was damaged, removed on that word. Whether
    it is published cannot be told: its cache is left, and said so, with verify to say what is wrong."""
    from pipeline.commands import refresh as command

    root = tmp_path / "root"
    for name in ("r5", "r6"):
        (root / "work" / name / "cache").mkdir(parents=True)
        (root / "releases" / name).mkdir(parents=True)
    (root / "releases" / "r5" / "manifest.json").write_text('{"release": "r5", "files": [')  # cut
    os.mkfifo(root / "releases" / "r6" / "manifest.json")
    command._tend_other_work(str(root), "r7")
    said = capsys.readouterr().out
    for name in ("r5", "r6"):
        assert (root / "work" / name / "cache").is_dir()
        assert f"refresh: {root / 'work' / name} is left: {root / 'releases' / name}/manifest.json cannot be read " \
            f"as a published release's" in said, said
        assert f"pass-pipeline verify {root / 'releases' / name}" in said, said
    assert "which is not published" not in said and "remove that folder" not in said, said


def test_more_unreadable_manifests_than_are_shown_are_counted(tmp_path, capsys):
    """Past the first five releases whose manifest cannot be read, the rest went unsaid (the unpublished ones end in
    "and N more such folders"): their caches stay, and the count says there are more to look at."""
    from pipeline.commands import refresh as command

    root = tmp_path / "root"
    names = [f"r{number}" for number in range(10, 18)]
    for name in names:
        (root / "work" / name / "cache").mkdir(parents=True)
        (root / "releases" / name).mkdir(parents=True)
        (root / "releases" / name / "manifest.json").write_text("{")  # cut
    command._tend_other_work(str(root), "r30")
    said = capsys.readouterr().out
    assert all((root / "work" / name / "cache").is_dir() for name in names)
    assert said.count("cannot be read as a published release's") == 5, said
    assert f"refresh: and 3 more work caches under {root}/work whose release's manifest cannot be read" in said, said


def test_the_work_caches_on_an_object_store_other_than_gcs_are_tended_not_said_unlisted(tmp_path, capsys):
    """On a root on another Beam filesystem than gs:// (s3://, azfs://: any Beam reads and writes, as the output's
    lock does, best effort), the look at ROOT/work went through the gs:// client, which refused it, and every refresh
    said "the work caches ... could not be listed (OSError: Beam reads gs:// through ..., not its GCSFileSystem)",
    tending none. The folders there are read from a listing of their objects through Beam: a published release's
    cache is removed, an unpublished one's said, an object directly in ROOT/work is no cache."""
    from apache_beam.io.filesystem import FileMetadata, FileSystem

    from pipeline.commands import refresh as command

    objects: dict[str, bytes] = {}

    class _Store(FileSystem):
        """An object store, as Beam's S3 and Azure filesystems are: flat names, no folders."""

        @classmethod
        def scheme(cls) -> str:
            return "objectstore"

        def join(self, basepath: str, *paths: str) -> str:
            return "/".join([basepath.rstrip("/"), *(path.strip("/") for path in paths)])

        def split(self, path: str) -> tuple[str, str]:
            head, _, tail = path.rpartition("/")
            return head, tail

        def has_dirs(self) -> bool:
            return False

        def _list(self, dir_or_prefix: str) -> list[FileMetadata]:
            return [FileMetadata(name, len(data)) for name, data in sorted(objects.items())
                    if name.startswith(dir_or_prefix)]

        def exists(self, path: str) -> bool:
            return path in objects

        def metadata(self, path: str) -> FileMetadata:
            return FileMetadata(path, len(objects[path]))

        def open(self, path: str, mime_type: str = "", compression_type: str = "") -> io.BytesIO:  # type: ignore[override]
            return io.BytesIO(objects[path])

        def delete(self, paths: list[str]) -> None:
            for path in paths:  # a folder's name ending in '/': every object under it, as Beam's stores delete it
                below = path if path.endswith("/") else None
                for name in [name for name in objects if name == path or (below and name.startswith(below))]:
                    del objects[name]

        mkdirs = create = copy = rename = size = last_updated = checksum = None  # type: ignore[assignment]

    root = "objectstore://bucket/root"
    objects.update({f"{root}/work/r4/cache/images-0.parquet": b"cached", f"{root}/work/r6/cache/images-0.parquet":
                    b"cached", f"{root}/work/r5": b"an object, no folder", f"{root}/releases/r4/manifest.json":
                    json.dumps({"release": "r4"}).encode(), f"{root}/releases/r6/_staging/x": b"stopped"})
    try:
        command._tend_other_work(root, "r7")
        said = capsys.readouterr()
    finally:
        # Beam finds a filesystem among FileSystem's subclasses, this one until it is collected: under another scheme,
        # a rerun's store (its own objects) is the only "objectstore" there is
        _Store.scheme = classmethod(lambda cls: "objectstore-left")  # type: ignore[method-assign,assignment]
    assert said.err == "", said.err
    assert f"refresh: removed the work cache {root}/work/r4" in said.out, said.out
    assert f"refresh: {root}/work/r6 holds the work of a refresh of release r6, which is not published" in said.out
    assert f"remove that folder and {root}/releases/r6" in said.out and "r5" not in said.out, said.out
    assert sorted(objects) == [f"{root}/releases/r4/manifest.json", f"{root}/releases/r6/_staging/x",
                               f"{root}/work/r5", f"{root}/work/r6/cache/images-0.parquet"]


TEND_OTHER_WORK = """
import sys
from pipeline.commands.refresh import _tend_other_work

_tend_other_work(sys.argv[1], "r7")
"""


def test_a_release_whose_manifest_the_disk_refuses_is_said_alone_and_the_other_caches_tended(tmp_path):
    """A permission error reading one release's manifest.json (a file of another user, mode 0600) ended the whole look
    at ROOT/work, "the work caches ... could not be listed (PermissionError ...)": the cache a published release left
    was not removed, nor a stopped refresh's said. That release alone is said as one whose manifest cannot be read,
    with the disk's reason; the others are handled."""
    import subprocess
    import sys

    from tests.conftest import as_a_user_the_disk_refuses

    root = tmp_path / "root"
    for name in ("r4", "r5", "r6"):
        (root / "work" / name / "cache").mkdir(parents=True)
        (root / "work" / name / "cache" / "images-0.parquet").write_bytes(b"cached")
        (root / "releases" / name).mkdir(parents=True)
    for name in ("r4", "r5"):  # published (r4's cache left by a removal that failed)
        (root / "releases" / name / "manifest.json").write_text(json.dumps({"release": name}))
    (root / "releases" / "r5" / "manifest.json").chmod(0)
    command = as_a_user_the_disk_refuses([sys.executable, "-c", TEND_OTHER_WORK, str(root)], "reads any file")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        (root / "releases" / "r5" / "manifest.json").chmod(0o644)
    assert done.returncode == 0 and done.stderr == "", done
    said = done.stdout
    assert f"refresh: {root / 'work' / 'r5'} is left: {root / 'releases' / 'r5'}/manifest.json cannot be read " \
        f"(Permission denied), so whether release r5 is published cannot be told" in said, said
    assert (root / "work" / "r5" / "cache" / "images-0.parquet").read_bytes() == b"cached"
    assert f"refresh: removed the work cache {root / 'work' / 'r4'}" in said and not (root / "work" / "r4").exists()
    assert f"refresh: {root / 'work' / 'r6'} holds the work of a refresh of release r6, which is not published" \
        in said, said
    assert (root / "work" / "r6" / "cache").is_dir() and len(said.splitlines()) == 3, said


def test_a_work_cache_that_is_a_link_is_said_as_a_link_removed_not_as_the_cache_removed(tmp_path, capsys):
    """ROOT/work/NAME made a link to a bigger disk: only the link goes (never followed), and the refresh said it had
    removed the work cache, while the cache it led to stayed there, about the release's size."""
    from pipeline.commands import refresh as command

    elsewhere = tmp_path / "bigger disk" / "cache"
    elsewhere.mkdir(parents=True)
    (elsewhere / "images-0.parquet").write_bytes(b"cached")
    (tmp_path / "root" / "work").mkdir(parents=True)
    (tmp_path / "root" / "work" / "r2").symlink_to(elsewhere.parent, target_is_directory=True)
    command._remove_work_cache(str(tmp_path / "root"), "r2")
    said = capsys.readouterr().out
    assert not os.path.lexists(tmp_path / "root" / "work" / "r2")
    assert (elsewhere / "images-0.parquet").read_bytes() == b"cached"
    assert "removed the work cache" not in said, said
    assert f"removed the link {tmp_path / 'root' / 'work' / 'r2'} that held the work cache" in said, said
    assert f"what it led to, {elsewhere.parent}, is left: remove the cache there by hand" in said, said


def test_a_work_cache_another_refresh_removes_meanwhile_is_not_said_to_be_left(tmp_path, monkeypatch, capsys):
    """Every refresh removes a published release's work cache left under ROOT/work; two at once both set about it, and
    the one whose removal found it gone said "could not be removed (No such file or directory); remove it by hand" of
    a cache no longer there. Gone is what it was to be: nothing is said."""
    import shutil as real_shutil

    from pipeline.commands import refresh as command

    cache = tmp_path / "root" / "work" / "r2" / "cache"
    cache.mkdir(parents=True)
    (cache / "images-0.parquet").write_bytes(b"cached")
    rmtree = real_shutil.rmtree

    def removed_by_another_first(path, *args, **kwargs):
        rmtree(path)  # the other refresh's removal, just before this one's
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr("pipeline.io.layout.shutil.rmtree", removed_by_another_first)
    command._remove_work_cache(str(tmp_path / "root"), "r2")
    said = capsys.readouterr()
    assert said.err == "" and "could not be removed" not in said.out, said
    assert not (tmp_path / "root" / "work" / "r2").exists()


def test_a_rerun_with_another_option_or_previous_release_is_refused_naming_what_differs(scheduled_refresh,
                                                                                      first_yfcc_release, capsys):
    """Only the refresh that made the release is told it is done: one with another option, another input or built on
    another previous release is refused as before (exit 2), and says how it differs."""
    root, argv = scheduled_refresh
    _, _, first = first_yfcc_release
    before = files_of(root)
    other_input = [arg if not arg.startswith("--input=") else f"{arg}.tsv" for arg in argv]
    other_option = [arg.replace("--max_side=300", "--max_side=256") for arg in argv]
    for rerun, differs in ((other_option, "--max_side=300 there, 256 here"), (other_input, "--input="),
                           ([*argv[:3], f"--previous={first}", *argv[4:]], "built on")):
        capsys.readouterr()
        assert main(rerun) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "release r2 is already published" in err, err
        assert "made by another refresh" in err and differs in err and "name another --release" in err, err
    assert files_of(root) == before


def test_a_release_whose_record_of_its_refresh_is_missing_or_edited_is_never_taken_for_this_refresh_s(
        scheduled_refresh, tmp_path, capsys):
    """The release folder is outside input: a record of the refresh that made it removed, edited, or left as it was
    in a release resealed after an edit (the manifest's checksums made to match changed files) does not make a rerun
    "the same refresh": exit 2, as for any other refresh of that name."""
    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    # The same refresh into a copy of its release (same previous release, named by its folder): done
    rerun = [argv[0], f"--output={copy}", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]
    assert main(rerun) == 0
    manifest_path = copy / "releases" / "r2" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    record = manifest["refresh_fingerprint"]

    def edited(options: dict) -> dict:
        return {**record, "options": {**record["options"], **options}}

    for change, why in (({"refresh_fingerprint": None}, "records no fingerprint"),
                        ({"refresh_fingerprint": "same"}, "records no fingerprint"),
                        ({"refresh_fingerprint": edited({"max_side": 256})}, "does not match its manifest"),
                        ({"refresh_fingerprint": {**record, "sha256": "0" * 64}}, "does not match its manifest"),
                        ({"release": "r3"}, "does not match its manifest")):
        manifest_path.write_text(json.dumps({**manifest, **change}))
        capsys.readouterr()
        # the edited record names the options of this rerun
        assert main([arg.replace("--max_side=300", "--max_side=256") for arg in rerun]
                    if "max_side" in str(change) else rerun) == 2
        err = capsys.readouterr().err
        assert "release r2 is already published" in err and why in err, err
    # resealed after an edit (a line added to its dataset card): verify passes it, the record no longer does
    manifest_path.write_text(json.dumps(manifest))
    card = copy / "releases" / "r2" / "README.md"
    card.write_text(card.read_text() + "\nEdited by hand.\n")
    reseal(copy / "releases" / "r2")
    assert main(["verify", str(copy / "releases" / "r2")]) == 0
    capsys.readouterr()
    assert main(rerun) == 2
    assert "does not match its manifest (edited by hand?)" in capsys.readouterr().err



def test_the_rerun_of_the_same_refresh_is_not_told_done_when_its_release_fails_verify(scheduled_refresh, tmp_path,
                                                                                        capsys):
    """A refresh killed after its manifest was moved in and before its publish plan and lock were removed (SIGKILL, the
    OOM killer, a stop landing in the publish's last steps) left them in the published release, which verify refuses
    and no run carries out. Its rerun, the same refresh, said it was done (exit 0); it is refused now (exit 2), naming
    what verify finds, the release untouched."""
    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    rerun = [argv[0], f"--output={copy}", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]
    assert main(rerun) == 0  # the release as published: done
    release = copy / "releases" / "r2"
    for leftover in (release / "_lock.json", release / "_staging" / "20261204T000000-0000abcd" / "PUBLISHING.json"):
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_text("{}")
        before = files_of(copy)
        capsys.readouterr()
        assert main(["verify", str(release)]) != 0
        capsys.readouterr()
        assert main(rerun) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "release r2 is already published" in err, err
        assert leftover.name in err and f"pass-pipeline verify {release}" in err, err
        assert files_of(copy) == before
        leftover.unlink()


def test_the_rerun_of_the_same_refresh_finishes_a_publish_a_kill_cut_short_after_the_manifest_moved_in(
        scheduled_refresh, tmp_path, capsys):
    """SIGKILL (the OOM killer) after the manifest was moved in and before the publish removed its staging folder and
    lock left both in the release: verify refused it, its rerun was refused (exit 2), and `--previous=latest` refused
    every later refresh until someone removed them by hand. The rerun of the same refresh finishes that last step:
    the lock of a process gone is taken over on its machine, the staging folder of a publish whose manifest moved in
    is removed; nothing else changes, and the release verifies."""
    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    release = copy / "releases" / "r2"
    before = files_of(copy)
    staging = _cut_publish(release)  # every file moved in, manifest last
    published = json.loads((staging / "PUBLISHING.json").read_text())["files"]
    assert main(["verify", str(release)]) != 0
    capsys.readouterr()
    rerun = [argv[0], f"--output={copy}", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]
    assert main(rerun) == 0
    out = capsys.readouterr().out
    assert "a kill had left its publish's last step undone" in out and "finished now" in out, out
    assert files_of(copy) == before
    assert main(["verify", str(release)]) == 0
    # Where no rerun came (the scheduler does not retry), the next month's refresh finds them in its previous release
    staging.mkdir(parents=True)
    (staging / "PUBLISHING.json").write_text(json.dumps({"files": published}))
    capsys.readouterr()
    assert main([argv[0], f"--output={copy}", "--release=r3", "--previous=latest", *argv[4:]]) == 0
    assert "the previous release" in capsys.readouterr().out and not staging.parent.exists()
    assert main(["verify", str(release)]) == 0 and main(["verify", str(copy / "releases" / "r3")]) == 0


def _cut_publish(release: Path) -> Path:
    """What a kill after the manifest's move leaves of a publish in `release`: the lock of a process gone (on this
    machine) and the staging folder of the publish, its plan naming every file moved in. The staging folder."""
    import socket
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (release / "_lock.json").write_text(json.dumps({"run_id": "killed", "host": socket.gethostname(),
                                                    "pid": int(gone.stdout), "started": "2026-12-04T00:00:00Z"}))
    published = sorted(str(path.relative_to(release)) for path in release.rglob("*") if path.is_file()
                       and not path.name.startswith("_"))
    staging = release / "_staging" / "20261204T000000-0000abcd"
    staging.mkdir(parents=True)
    (staging / "PUBLISHING.json").write_text(json.dumps({"files": published}))
    return staging


def test_finishing_a_cut_publish_deletes_nothing_through_a_staging_folder_that_is_a_link(scheduled_refresh, tmp_path,
                                                                                         capsys):
    """A release's `_staging` that is a link to another folder (another output's staging area: a live run's staging
    folder beside one whose publish has begun) was entered by the repair of a cut-short publish, which deleted every
    folder there but the planned one; with no plan there, it failed as "the job failed: Cannot call rmtree on a
    symbolic link" (exit 1). A run refuses such a link before its lock; the repair now leaves the release as it is,
    refused with one line (exit 2)."""
    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    release = copy / "releases" / "r2"
    elsewhere = tmp_path / "other-output" / "_staging"
    (elsewhere / "publishing").mkdir(parents=True)
    (elsewhere / "publishing" / "PUBLISHING.json").write_text(json.dumps({"files": ["manifest.json"]}))
    (elsewhere / "publishing" / "manifest.json").write_text("{}")  # its manifest not moved in yet: a plan kept
    (elsewhere / "live-run").mkdir()
    (elsewhere / "live-run" / "shard.parquet").write_bytes(b"a live run's output")
    _cut_publish(release)
    shutil.rmtree(release / "_staging")
    (release / "_staging").symlink_to(elsewhere, target_is_directory=True)
    rerun = [argv[0], f"--output={copy}", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]
    next_month = [argv[0], f"--output={copy}", "--release=r3", f"--previous={release}", *argv[4:]]
    for refresh in (rerun, next_month):
        capsys.readouterr()
        assert main(refresh) == 2
        assert "does not match its manifest" in capsys.readouterr().err
        assert (elsewhere / "live-run" / "shard.parquet").read_bytes() == b"a live run's output"
    (elsewhere / "publishing" / "PUBLISHING.json").unlink()  # no plan there: the whole link was to be removed
    for refresh in (rerun, next_month):
        capsys.readouterr()
        assert main(refresh) == 2
        err = capsys.readouterr().err
        assert "does not match its manifest" in err and "job failed" not in err, err
        assert sorted(path.name for path in elsewhere.iterdir()) == ["live-run", "publishing"]


def test_a_release_edited_beside_a_cut_publish_is_refused_untouched(scheduled_refresh, tmp_path, capsys):
    """A release holding what a kill left of its publish (its lock, its staging folder) and also a file edited since:
    the repair removed the staging folder and took over and removed the lock, and then the refresh was refused for
    the edited file, saying "nothing was done" (the README: "the release untouched"). The leftovers are finished
    only where they are all verify finds; otherwise the release is refused as it is, whichever refresh finds it."""
    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    release = copy / "releases" / "r2"
    _cut_publish(release)
    with open(release / "CHANGELOG.md", "a", encoding="utf-8") as changelog:
        changelog.write("edited by hand\n")
    for captured in _refreshes_refused(root, copy, argv, capsys):
        assert "CHANGELOG.md" in captured.err and "finished now" not in captured.out, captured


def _refreshes_refused(root: Path, copy: Path, argv: list[str], capsys) -> list:
    """The rerun of release r2's refresh into `copy` and the next month's (--previous=latest), each refused (exit 2)
    with the files under `copy` left as they were: what each printed."""
    before = files_of(copy)
    rerun = [argv[0], f"--output={copy}", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]
    next_month = [argv[0], f"--output={copy}", "--release=r3", "--previous=latest", *argv[4:]]
    printed = []
    for refresh in (rerun, next_month):
        capsys.readouterr()
        assert main(refresh) == 2
        printed.append(capsys.readouterr())
        assert files_of(copy) == before
    return printed


def test_a_repair_killed_as_it_took_the_lock_over_is_finished_by_the_next_refresh(scheduled_refresh, tmp_path, capsys):
    """A publish killed after its staging folder was removed and before its lock was (the lock alone left), then the
    refresh finishing it killed as it took that lock over: after removing the dead run's lock, its own was written
    under the temporary name and not yet linked. The temporary alone was left, which verify refuses, and which no
    refresh looked at (only a lock or a staging folder): the release was refused for good. It is finished as the
    lock is."""
    import signal
    import subprocess
    import sys

    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    release = copy / "releases" / "r2"
    before = files_of(copy)
    shutil.rmtree(_cut_publish(release).parent)
    # killed as it links its own lock, the second link of the takeover (the first finds the dead run's lock there)
    takeover = ("import os, signal, sys\nfrom pipeline.io import lock\nlink, links = os.link, []\n"
                "def killed_at_second(*args):\n    links.append(args)\n"
                "    return link(*args) if len(links) < 2 else os.kill(os.getpid(), signal.SIGKILL)\n"
                "os.link = killed_at_second\nlock.OutputLock(sys.argv[1], 'refresh (finishing a publish)').acquire()\n")
    killed = subprocess.run([sys.executable, "-c", takeover, str(release)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = [path.name for path in release.iterdir() if path.name.startswith("_")]
    assert len(left) == 1 and left[0].startswith("_lock.json.tmp-"), left
    capsys.readouterr()
    assert main([argv[0], f"--output={copy}", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]) == 0
    assert "finished now" in capsys.readouterr().out
    assert files_of(copy) == before
    assert main(["verify", str(release)]) == 0


def test_a_cut_publish_whose_lock_another_machine_holds_is_refused_naming_that_run(scheduled_refresh, tmp_path,
                                                                                  capsys):
    """A release holding a publish's staging folder and the lock of a run on another machine (live or not: no run can
    tell from here) is left as it is; the refusal said "_lock.json: not listed in the manifest; run `pass-pipeline
    verify`", and verify says no more, so nothing told the operator whose lock it was or what to do. It names the run
    holding it and the lock to remove once that run is known to be gone, as a run refused by a lock does."""
    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    release = copy / "releases" / "r2"
    _cut_publish(release)
    (release / "_lock.json").write_text(json.dumps({"run_id": "20261204T000000-0000abcd", "host": "another-machine",
                                                    "pid": 4242, "started": "2026-12-04T00:00:00Z"}))
    for captured in _refreshes_refused(root, copy, argv, capsys):
        err = captured.err
        assert "pid 4242 on another-machine" in err and f"remove {release / '_lock.json'}" in err, err
        assert len(err.strip().splitlines()) == 1, err
    print("SAID", err)


def test_a_cut_publish_whose_plan_is_a_named_pipe_is_refused_not_waited_on(scheduled_refresh, tmp_path):
    """The repair of a publish a kill cut short reads the plan in the release's staging folder: one that was a named
    pipe was read as a file, waiting for a writer that never came, and the refresh (its rerun, the next month's)
    hung for good. A plan is read only as a regular file; that one is no plan a publish wrote: refused, exit 2."""
    import os
    import subprocess
    import sys

    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    release = copy / "releases" / "r2"
    plan = _cut_publish(release) / "PUBLISHING.json"
    plan.unlink()
    os.mkfifo(plan)
    rerun = [argv[0], f"--output={copy}", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline", *rerun], capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("the refresh waited on the named pipe")
    assert done.returncode == 2, done.stderr
    assert "pass-pipeline: error:" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert plan.exists()


def test_a_link_in_the_staging_folder_of_a_cut_publish_is_removed_not_followed(scheduled_refresh, tmp_path, capsys):
    """Finishing a cut-short publish removes the staging folders of a release but one holding a plan still to carry
    out (kept, and the release refused); a link among them (`_staging/x -> elsewhere`) failed as "the job failed:
    Cannot call rmtree on a symbolic link" (exit 1). The link is removed, never what it leads to; the release is
    refused in one line for the plan kept (exit 2)."""
    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    release = copy / "releases" / "r2"
    staging = _cut_publish(release)
    (staging / "manifest.json").write_text("{}")  # a plan whose manifest is still to move in: kept
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "thesis.tex").write_text("years of work")
    (staging.parent / "linked").symlink_to(elsewhere, target_is_directory=True)
    rerun = [argv[0], f"--output={copy}", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]
    capsys.readouterr()
    assert main(rerun) == 2
    err = capsys.readouterr().err
    assert "does not match its manifest" in err and "job failed" not in err, err
    assert (elsewhere / "thesis.tex").read_text() == "years of work"
    assert not (staging.parent / "linked").is_symlink() and (staging / "PUBLISHING.json").exists()


def test_a_cut_publish_that_cannot_be_finished_is_refused_in_one_line(scheduled_refresh, tmp_path, capsys):
    """Finishing a cut-short publish that the disk refuses (a staging file that cannot be deleted: a folder of another
    user, an immutable file) ended as "the job failed: [Errno 1] Operation not permitted" (exit 1), as if the job had
    run. It is refused (exit 2), one line naming what verify finds and why it could not be finished."""
    import os
    import subprocess

    root, argv = scheduled_refresh
    copy = tmp_path / "root"
    shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
    release = copy / "releases" / "r2"
    stuck = _cut_publish(release) / "_images" / "stuck.jpg"
    stuck.parent.mkdir()
    stuck.write_bytes(b"a staged image")
    if os.geteuid() == 0:
        # chattr: e2fsprogs, in every Debian install; as root, the one way to make a file undeletable here
        made = subprocess.run(["chattr", "+i", str(stuck)], capture_output=True, text=True)
        assert made.returncode == 0, f"chattr +i (e2fsprogs) is needed to test this as root: {made.stderr}"
        undo = ["chattr", "-i", str(stuck)]
    else:
        stuck.parent.chmod(0o555)
        undo = ["chmod", "755", str(stuck.parent)]
    try:
        rerun = [argv[0], f"--output={copy}", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]
        capsys.readouterr()
        assert main(rerun) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "job failed" not in err, err
        assert "does not match its manifest" in err and "stuck.jpg" in err, err
    finally:
        subprocess.run(undo, check=True)


@pytest.mark.slow
def test_finishing_a_cut_publish_killed_at_any_step_is_finished_by_the_next_refresh(scheduled_refresh, tmp_path,
                                                                                    capsys):
    """SIGKILL at each deletion, link and rename of the refresh finishing a publish a kill cut short (the lock taken
    over, the staging folder removed, the lock released): the next refresh finishes it every time, the release as
    published (nothing else changed) and verified. A kill as it took the lock over had left the lock's temporary
    alone, which no refresh looked at."""
    root, argv = scheduled_refresh
    rerun = [argv[0], "OUTPUT", argv[2], f"--previous={root / 'releases' / 'r1'}", *argv[4:]]
    child = ("import os, signal, sys\nfrom pipeline.cli import entry\nimport pipeline.commands.refresh\n"
             "at, calls = int(sys.argv[1]), []\n"
             "def killing(real):\n"
             "    def step(*args, **kwargs):\n"
             "        calls.append(real)\n"
             "        if len(calls) == at:\n"
             "            os.kill(os.getpid(), signal.SIGKILL)\n"
             "        return real(*args, **kwargs)\n"
             "    return step\n"
             "for name in ('link', 'unlink', 'remove', 'rmdir', 'rename', 'replace'):\n"
             "    setattr(os, name, killing(getattr(os, name)))\n"
             "sys.argv[1:] = sys.argv[2:]\nsys.exit(entry())\n")
    for left in ("lock and staging folder", "lock alone"):  # a kill before or after the publish removed its folder
        killed = _kill_at_each_step(root, rerun, child, tmp_path / left.replace(" ", "-"), left, capsys)
        assert killed >= 4, (left, killed)  # the lock taken over (unlink, link), the staging removed, the lock released


def _kill_at_each_step(root: Path, rerun: list[str], child: str, where: Path, left: str, capsys) -> int:
    import signal
    import subprocess
    import sys

    killed = 0
    for at in range(1, 60):
        copy = where / f"kill-{at}"
        shutil.copytree(root / "releases" / "r2", copy / "releases" / "r2")
        release = copy / "releases" / "r2"
        before = files_of(copy)
        staging = _cut_publish(release)
        if left == "lock alone":
            shutil.rmtree(staging.parent)
        given = [f"--output={copy}" if arg == "OUTPUT" else arg for arg in rerun]
        done = subprocess.run([sys.executable, "-c", child, str(at), *given], capture_output=True, text=True,
                              timeout=120)
        if done.returncode == 0:
            break
        assert done.returncode == -signal.SIGKILL, done.stderr
        killed += 1
        capsys.readouterr()
        assert main(given) == 0, (left, at, capsys.readouterr().err)
        assert files_of(copy) == before, (left, at)
        assert main(["verify", str(release)]) == 0, (left, at)
        shutil.rmtree(copy)
    else:
        pytest.fail(f"{left}: the refresh was still being killed at its 59th step")
    assert "finished now" in done.stdout, done.stdout
    return killed


def test_a_previous_release_that_does_not_exist_is_named_as_such(tmp_path, capsys):
    """A typo in --previous said 'the previous release … does not match its manifest (…/manifest.json: no
    manifest.json); run `pass-pipeline verify`', as if a release there had been damaged."""
    root = tmp_path / "root"
    argv = ["refresh", f"--output={root}", f"--previous={root / 'releases' / '2026-1'}", "--input=/x/*.tsv"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    print("SAID", err)
    assert "holds no manifest.json, so no published release" in err and "does not match" not in err


@pytest.mark.parametrize("typo, meant", [("--previos=latest", "--previous"), ("--ouput=ROOT", "--output"),
                                         ("--relase=2026-11", "--release")])
def test_a_typo_of_refresh_s_own_flags_names_the_flag_meant(typo, meant, tmp_path, capsys):
    """--previos was answered "did you mean --previous_index?" (a run flag, another file), and --ouput "refresh needs
    --output": the suggestions knew run's flags only, and the missing --output was said before the typo."""
    argv = ["refresh", typo.replace("ROOT", str(tmp_path))]
    if meant != "--output":
        argv.append(f"--output={tmp_path / 'root'}")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"unknown flag: {typo.split('=')[0]} (did you mean {meant}?)" in err, err
    assert "refresh --help" in err and len(err.strip().splitlines()) == 1


def test_a_run_s_dataset_given_as_the_releases_root_is_refused(demo_release, tmp_path, capsys):
    """`run --output=out` then `refresh --output=out`: the refresh built a first release from nothing under
    out/releases/, inside the dataset it was meant to build on, and left it there when refused."""
    dataset = tmp_path / "out"
    shutil.copytree(demo_release, dataset)
    assert main(["refresh", f"--output={dataset}", "--input=/nowhere/*.tsv"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    print("SAID", err)
    assert "holds a dataset (manifest.json), not releases" in err and f"--previous={dataset} and another" in err
    assert not (dataset / "releases").exists() and main(["verify", str(dataset)]) == 0


def test_previous_latest_under_a_root_without_releases_says_it_makes_the_first(tmp_path, capsys):
    """--previous=latest under a root holding no release (a misspelled root, or refresh before any release) went on
    as a first release without a word, building on nothing."""
    root = tmp_path / "root"
    assert main(["refresh", f"--output={root}", "--previous=latest", "--input=/nowhere/*.tsv"]) == 2
    out = capsys.readouterr().out
    assert f"refresh: {root} holds no published release (--previous=latest): this is the first release" in out


def test_previous_latest_is_refused_where_a_releases_manifest_cannot_be_read(tmp_path, capsys):
    """A release whose manifest.json cannot be read (damaged, replaced by a pipe) was passed over as no release, so a
    newest release damaged made `latest` the one before it, and the refresh brought back what the newer one removed."""
    from pipeline.release.refresh import latest_release

    root = tmp_path / "root"
    for name, manifest in (("r1", json.dumps({"release": "r1", "created": "2026-10-01T03:00:00Z"})),
                           ("r2", '{"release": "r2", "created": "2026-11-01T03:00:00Z", "files": [')):
        (root / "releases" / name).mkdir(parents=True)
        (root / "releases" / name / "manifest.json").write_text(manifest)
    assert main(["refresh", f"--output={root}", "--release=r3", "--previous=latest", "--input=/nowhere/*.tsv"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{root}/releases/r2/manifest.json cannot be read" in err, err
    assert "--previous=latest cannot tell which release is the newest" in err
    assert not (root / "releases" / "r3").exists()
    (root / "releases" / "r2" / "manifest.json").write_text(json.dumps({"release": "r2"}))
    assert latest_release(str(root)) == str(root / "releases" / "r1")  # r2 states no time it was made: sorted first


def test_a_carried_photo_listed_by_phash_is_taken_down_whatever_phash_its_row_states(first_yfcc_release, tmp_path):
    """A carried row's pHash is the previous release's word: 32 of its bits changed there (the manifest resealed, so
    verify passes), the photo a takedown lists by pHash was carried into the next release. Its stored image's own
    pHash is looked up too."""
    import shutil

    import pyarrow as pa

    server, _, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    listed = None
    for shard in sorted((previous / "parquet").glob("*.parquet")):
        table = pq.read_table(shard)
        rows = table.to_pylist()
        for row in rows:
            if row["photo_id"] == "1004":
                listed = row["phash"]
                row["phash"] = f"{int(listed, 16) ^ 0xFFFFFFFF00000000:016x}"
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    assert listed is not None
    reseal(previous)
    (tmp_path / "takedowns.txt").write_text(f"phash {listed} 2\n")
    assert main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--blocklist={tmp_path / 'takedowns.txt'}", f"--allowed_hosts={server.host}", *LOCAL]) == 0
    second = tmp_path / "root" / "releases" / "r2"
    assert released(second) == released(first) - {"1004"}
    log = json.loads((second / "changelog.json").read_text())
    assert log["removed"] == {"blocklist_content/blocklisted": ["1004"]}, log["removed"]


def test_a_previous_ledger_calling_kept_a_photo_its_release_does_not_hold_decides_nothing(first_yfcc_release, tmp_path):
    """A ledger row calling 1005 kept (r1 does not hold it: a 503 left it out), the ledger resealed with its release:
    each new row of 1005 was skipped as "kept in release r1: carried over, not fetched again", nothing carried it
    over, and the new ledger called it kept again, so it was lost to every later release. Only a release that holds a
    photo carries it over: 1005 is fetched and kept."""
    import shutil

    import pyarrow as pa

    from pipeline.fixtures.demo_world import photo_path

    server, metadata, first = first_yfcc_release
    assert "1005" not in released(first)
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    [shard] = sorted((previous / "ledger").glob("*.parquet"))
    table = pq.read_table(shard)
    rows = [row for row in table.to_pylist() if row["photo_id"] != "1005"]
    rows.append({"photo_id": "1005", "decision": "kept", "stage": "", "reason": "", "release": "r1"})
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    reseal(previous)
    server.hits.clear()
    assert main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL]) == 0
    second = tmp_path / "root" / "releases" / "r2"
    assert released(second) == released(first) | {"1005"}
    assert {path for path, count in server.hits.items() if count} == {photo_path("1005")}
    ledger = {row["photo_id"]: row for row in pq.read_table(second / "ledger").to_pylist()}
    assert (ledger["1005"]["decision"], ledger["1005"]["release"]) == ("kept", "r2")
    assert json.loads((second / "changelog.json").read_text())["added"] == ["1005"]


def test_a_carried_row_rejected_for_its_id_is_removed_for_that_reason_in_the_changelog(first_yfcc_release, tmp_path,
                                                                                      monkeypatch):
    """A carried row whose id is no plain number ('1001x', resealed) is rejected under its place in the release, not
    its id: the changelog listed the id as removed for no known reason ("unaccounted"), as if it had been lost."""
    import shutil

    import pyarrow as pa

    server, _, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    for shard in sorted((previous / "parquet").glob("*.parquet")):
        table = pq.read_table(shard)
        rows = [{**row, "photo_id": "1001x"} if row["photo_id"] == "1001" else row for row in table.to_pylist()]
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    reseal(previous)
    # verify finds this id against the other formats' (test_verify.py); whoever rewrote them to match would pass it
    monkeypatch.setattr("pipeline.release.verify._id_problems", lambda ids: iter(()))
    monkeypatch.setattr("pipeline.release.verify._Seen.problems", lambda self: iter(()))
    assert main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--allowed_hosts={server.host}", *LOCAL]) == 0
    second = tmp_path / "root" / "releases" / "r2"
    assert released(second) == released(first) - {"1001"}
    log = json.loads((second / "changelog.json").read_text())
    assert log["removed"] == {"carry/bad_id": ["1001x"]}, log["removed"]
    assert "## Removed: carry/bad\\_id (1)" in (second / "CHANGELOG.md").read_text()


def test_a_previous_release_whose_ids_are_numbers_not_text_is_refreshed_with_each_row_rejected(first_yfcc_release,
                                                                                            tmp_path, monkeypatch):
    """A resealed release whose Parquet shards hold the photo ids as int64 passed verify; its rows are rejected as
    carry/bad_id, and the changelog then failed the whole refresh after its job ('int' object has no attribute
    'isdigit'), every month until someone found the shard."""
    import shutil

    import pyarrow as pa

    server, _, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    for shard in sorted((previous / "parquet").glob("*.parquet")):
        table = pq.read_table(shard)
        column = table.schema.get_field_index("photo_id")
        numbers = pa.array([int(photo_id) for photo_id in table.column(column).to_pylist()], pa.int64())
        pq.write_table(table.set_column(column, pa.field("photo_id", pa.int64()), numbers), shard)
    reseal(previous)
    # verify reports such a shard (test_verify.py); a refresh's own reading of its ids is tested here
    monkeypatch.setattr("pipeline.commands.refresh.verify", lambda release, pins=None: iter(()))
    assert main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--allowed_hosts={server.host}", "--allow_empty", *LOCAL]) == 0
    second = tmp_path / "root" / "releases" / "r2"
    assert released(second) == set()
    assert json.loads((second / "stats.json").read_text())["accounted"]
    log = json.loads((second / "changelog.json").read_text())
    assert log["removed"] == {"carry/bad_id": sorted(released(first), key=int)}, log["removed"]


def test_a_carried_photo_of_an_evaluation_image_is_removed_whatever_phash_its_row_states(first_yfcc_release,
                                                                                         tmp_path):
    """--decontaminate compared a carried row's pHash, the previous release's word: changed there (resealed), a near
    copy of an evaluation image (1004, coffee) was carried into the next release. Its stored image is hashed too."""
    import shutil

    import pyarrow as pa

    server, _, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    for shard in sorted((previous / "parquet").glob("*.parquet")):
        table = pq.read_table(shard)
        rows = [{**row, "phash": f"{int(row['phash'], 16) ^ 0xFFFFFFFF00000000:016x}"} if row["photo_id"] == "1004"
                else row for row in table.to_pylist()]
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    reseal(previous)
    second = refresh_decontaminated(previous, tmp_path, server)
    assert released(second) == released(first) - {"1004"}
    assert json.loads((second / "changelog.json").read_text())["removed"] == {"decontaminate/eval_overlap": ["1004"]}


def test_an_input_of_many_files_is_held_as_one_digest_that_any_change_changes(tmp_path):
    """Each file an input option lists was one entry of the release's manifest: an evaluation set of 50,000 images as
    --decontaminate made a manifest of megabytes. Beyond LISTED_FILES files they are held as one digest, which still
    tells a rerun whose files changed from the same refresh."""
    from pipeline.release.command_record import LISTED_FILES
    from pipeline.release.refresh import made_by_another

    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    for index in range(LISTED_FILES + 1):
        (evaluation / f"val_{index:05d}.jpg").write_bytes(b"x" * (index % 7))
    rest = [f"--decontaminate={evaluation}"]
    of, made, release = fingerprinted(tmp_path, rest)
    [[count, digest]] = made["input_files"]["decontaminate"]
    assert count == f"{LISTED_FILES + 1} files" and digest.startswith("sha256:") and len(digest) == 71
    assert made_by_another(str(release), of()) is None
    last = evaluation / f"val_{LISTED_FILES:05d}.jpg"
    for change, undo in ((lambda: last.write_bytes(b"longer than before"), lambda: last.write_bytes(b"x" * 6)),
                         (lambda: last.rename(evaluation / "renamed.jpg"),
                          lambda: (evaluation / "renamed.jpg").rename(last)),
                         (lambda: (evaluation / "added.jpg").write_bytes(b""),
                          lambda: (evaluation / "added.jpg").unlink())):
        change()
        why = made_by_another(str(release), of())
        assert why is not None and "--decontaminate's files changed" in why, why
        undo()
        assert made_by_another(str(release), of()) is None
    # At the bound, still file by file (what a release made before the bound records for a small input)
    last.unlink()
    assert len(of()["input_files"]["decontaminate"]) == LISTED_FILES


def test_a_rerun_whose_evaluation_folder_or_list_changed_is_not_the_same_refresh(tmp_path):
    """A --decontaminate folder was held by the folder's own size (4096 bytes), so an evaluation image added to it,
    or changed in a class subfolder, made the rerun "the same refresh" (exit 0, the release not decontaminated
    against it). A folder is held as the stage reads it (its files, every level below), a list file by its
    content."""
    from pipeline.release.refresh import made_by_another

    evaluation, listed = tmp_path / "eval", tmp_path / "more.txt"
    (evaluation / "n01440764").mkdir(parents=True)
    image = evaluation / "n01440764" / "val_1.jpg"
    image.write_bytes(b"jpeg")
    listed.write_text("eval/n01440764/val_1.jpg\n")
    rest = [f"--decontaminate={evaluation},{listed}"]
    of, made, release = fingerprinted(tmp_path, rest)
    assert [path for path, _ in made["input_files"]["decontaminate"]] == [str(image), str(listed)]
    assert made_by_another(str(release), of()) is None
    for change, undo in ((lambda: image.write_bytes(b"another jpeg"), lambda: image.write_bytes(b"jpeg")),
                         (lambda: (evaluation / "val_2.jpg").write_bytes(b"jpeg"),
                          lambda: (evaluation / "val_2.jpg").unlink()),
                         (lambda: listed.write_text("eval/n01440764/val_2.jpg\n"),
                          lambda: listed.write_text("eval/n01440764/val_1.jpg\n"))):
        change()
        why = made_by_another(str(release), of())
        assert why is not None and "--decontaminate's files changed" in why, why
        undo()
        assert made_by_another(str(release), of()) is None


def test_the_changelog_holds_the_two_releases_ids_as_numbers(tmp_path):
    """The changelog held both releases' photo ids as sets of text (184 MiB each for 1.44 million photos, ~600 MiB at
    its peak); ids that are numbers are held as 8 bytes each. 200,000 photos in shards of 5,000, one in fifty gone and
    as many new: the same changelog, at a fraction of the peak (~40 MB before)."""
    import pyarrow as pa

    from pipeline.release.refresh import changelog
    from tests.conftest import traced_peak

    count = 200_000
    gone = {str(20_000_000 + i) for i in range(0, count, 50)}
    previous, release = tmp_path / "releases" / "r1", tmp_path / "releases" / "r2"
    for where, ids in ((previous, [str(20_000_000 + i) for i in range(count)]),
                       (release, [str(20_000_000 + i) for i in range(count + len(gone)) if str(20_000_000 + i)
                                  not in gone])):
        (where / "parquet").mkdir(parents=True)
        for shard in range(0, len(ids), 5_000):
            pq.write_table(pa.table({"photo_id": ids[shard:shard + 5_000]}),
                           where / "parquet" / f"pass-{shard // 5_000:05d}-of-00041.parquet")
    (release / "rejections").mkdir()
    taken_down = sorted(gone)
    pq.write_table(pa.table({"photo_id": taken_down, "stage": ["blocklist"] * len(gone),
                             "reason": ["takedown"] * len(gone), "source_ref": ["r1/parquet/x:1"] * len(gone)}),
                   release / "rejections" / "rejections-00000-of-00001.parquet")
    log, peak = traced_peak(lambda: changelog(str(previous), str(release)))
    assert log["removed"] == {"blocklist/takedown": sorted(gone, key=int)}
    assert log["added"] == [str(20_000_000 + i) for i in range(count, count + len(gone))]
    assert (log["unchanged"], log["totals"]) == (count - len(gone), {"previous": count, "release": count})
    assert peak < 12_000_000, f"{peak:,} bytes at the peak for {count:,} photos"


def _retitled(shard: Path, title: str) -> bytes:
    """The bytes of `shard` with its first row's title `title`: a shard a run could have written."""
    import io

    import pyarrow as pa

    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["title"] = title
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out)
    return out.getvalue()


def _in_place(path: Path, data: bytes) -> None:
    """`data` written into `path`'s own inode, its modification time set back (what `touch -d` can do)."""
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.truncate(0)
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _replaced(path: Path, data: bytes) -> None:
    """Another file put under `path`'s name (written beside it, renamed over it: what a bucket writer does)."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@pytest.mark.parametrize("change", ["shard_replaced", "shard_in_place", "shard_added", "shard_gone",
                                    "ledger_in_place", "ledger_added", "ledger_gone", "manifest_replaced"])
def test_a_previous_release_changed_between_its_verify_and_its_read_is_refused_not_read(
        first_yfcc_release, tmp_path, monkeypatch, capsys, change):
    """The refresh verifies the previous release, then its job, changelog and inherited options read it again by
    name: a shard, ledger or manifest replaced or written (in place, its modification time set back) between the two,
    or a file added under the folders read, got through as if verified, and rows verify never saw entered the new
    release (a title, a ledger's decision, options another manifest named); a shard removed took its photos out
    unsaid. Each read is held to the version verify
    read: the refresh is refused, one line naming the file, and nothing is published."""
    import pyarrow as pa

    import pipeline.commands.refresh as command

    server, metadata, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    shard = next(path for path in sorted((previous / "parquet").glob("*.parquet")) if pq.read_metadata(path).num_rows)
    [ledger] = sorted((previous / "ledger").glob("*.parquet"))
    forged_row = {"photo_id": "999999", "decision": "rejected", "stage": "fetch", "reason": "not_found",
                  "release": "r1"}

    def forged_ledger() -> bytes:
        import io

        table = pq.read_table(ledger)
        out = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([*table.to_pylist(), forged_row], schema=table.schema), out)
        return out.getvalue()

    def change_it() -> Path:
        if change == "shard_replaced":
            _replaced(shard, _retitled(shard, "changed after verify"))
        elif change == "shard_in_place":
            _in_place(shard, _retitled(shard, "changed after verify"))
        elif change == "shard_added":
            (shard.parent / "pass-extra.parquet").write_bytes(_retitled(shard, "changed after verify"))
            return shard.parent / "pass-extra.parquet"
        elif change == "shard_gone":
            shard.unlink()
        elif change == "ledger_in_place":
            _in_place(ledger, forged_ledger())
            return ledger
        elif change == "ledger_gone":
            ledger.unlink()
            return ledger
        elif change == "ledger_added":
            (ledger.parent / "extra.parquet").write_bytes(forged_ledger())
            return ledger.parent / "extra.parquet"
        else:
            manifest = json.loads((previous / "manifest.json").read_text())
            manifest["options"]["per_owner_cap"] = 1
            _replaced(previous / "manifest.json", json.dumps(manifest).encode())
            return previous / "manifest.json"
        return shard

    verified = command._problems_once_finished
    changed: list[Path] = []

    def verified_then_changed(*args, **kwargs):
        found = verified(*args, **kwargs)
        changed.append(change_it())
        return found

    monkeypatch.setattr(command, "_problems_once_finished", verified_then_changed)
    code = main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL])
    err = capsys.readouterr().err
    second = tmp_path / "root" / "releases" / "r2"
    assert changed, f"the previous release was never verified: {code} {err}"
    published = (second / "manifest.json").exists()
    if published:  # what got through, said before the refusal is asserted (the code before this fix)
        titles = set(pq.read_table(second / "parquet", columns=["title"]).column("title").to_pylist())
        ledger_ids = set(pq.read_table(second / "ledger", columns=["photo_id"]).column("photo_id").to_pylist())
        options = json.loads((second / "manifest.json").read_text())["options"]
        assert "changed after verify" not in titles
        assert "999999" not in ledger_ids
        assert options.get("per_owner_cap") != 1
    assert code in (1, 2) and not published, err
    said = {"added": "added since verify checked its folder", "gone": "gone since verify checked it"}
    assert str(changed[0]) in err and said.get(change.split("_")[1], "changed since verify checked it") in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("change", ["metadata", "linked", "put_back"])
def test_a_previous_release_whose_files_hold_the_bytes_verify_read_is_refreshed_whatever_touched_them_since(
        first_yfcc_release, tmp_path, monkeypatch, capsys, change):
    """Between the refresh's verify and its reads, every file of the previous release has its mode set to what it was
    and its access time set back (a permissions sweep, a backup tool that reads with `--atime-preserve`), or is hard
    linked into a snapshot (`cp -al`), or is put back with the same bytes (a restore): each moves the change time or
    the inode the refresh held its reads to, and the refresh was refused ("written in place", "another file under its
    name"), each month such a tool ran during its job. The bytes are those verify read: the refresh reads them."""
    import pipeline.commands.refresh as command

    server, metadata, first = first_yfcc_release
    previous = tmp_path / "previous" / "releases" / "r1"
    shutil.copytree(first, previous)
    files = sorted(path for path in previous.rglob("*") if path.is_file())

    def change_them() -> None:
        for path in files:
            probe = path.with_name(path.name + ".probe")  # past the file's change time: a change now moves it
            probe.touch()
            while probe.stat().st_ctime_ns <= path.stat().st_ctime_ns:
                os.utime(probe)
            probe.unlink()
            info = path.stat()
            if change == "metadata":
                path.chmod(info.st_mode & 0o7777)
                os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
            elif change == "linked":
                snapshot = tmp_path / "snapshot" / path.relative_to(previous)
                snapshot.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, snapshot)
            else:
                _replaced(path, path.read_bytes())
            assert path.stat().st_ctime_ns != info.st_ctime_ns or path.stat().st_ino != info.st_ino

    verified = command._problems_once_finished

    def verified_then_changed(*args, **kwargs):
        found = verified(*args, **kwargs)
        change_them()
        return found

    monkeypatch.setattr(command, "_problems_once_finished", verified_then_changed)
    code = main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
                 f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL])
    err = capsys.readouterr().err
    assert code == 0, err
    assert main(["verify", str(tmp_path / "root" / "releases" / "r2")]) == 0


def test_an_inherited_option_holding_terminal_escapes_is_said_in_one_short_printable_line(first_yfcc_release,
                                                                                          tmp_path, capsys):
    """The refresh says first which options it took from the previous release's manifest, which is outside input (a
    release folder resealed by whoever holds it): a recorded value holding an OSC 52 (which sets the clipboard of the
    terminal showing it), ESC [2J, a line break and a forged line, or 60,000 characters, was printed as it was. Each
    value is shown escaped as Python writes it in a string, and cut."""
    server, metadata, first = first_yfcc_release
    previous = tmp_path / "r1"
    shutil.copytree(first, previous)
    manifest = json.loads((previous / "manifest.json").read_text())
    hostile = "photo_id\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\u202e\nrefresh: OK " + "x" * 60_000
    manifest["options"]["columns"] = hostile
    (previous / "manifest.json").write_text(json.dumps(manifest, indent=2))
    main(["refresh", f"--previous={previous}", f"--output={tmp_path / 'root'}", "--release=r2",
          f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL])
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"refresh: from {previous}: ")]
    assert len(said) == 1, said
    line = said[0]
    assert "--columns=photo_id\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\nrefresh: OK xxx" in line, line[:300]
    assert line.isprintable() and len(line) < 1_000


def test_a_latest_release_whose_folder_name_holds_terminal_escapes_is_named_in_one_printable_line(first_yfcc_release,
                                                                                                     tmp_path, capsys):
    """`--previous=latest` takes the newest release's folder from the releases' root (a bucket others write to): a
    folder named with an OSC 52, ESC [2J, a line break and a forged line was printed as it was in the refresh's first
    line, naming what it took from that release, and in the line saying a publish a kill cut short there was
    finished. Its name is shown escaped as Python writes it in a string."""
    server, metadata, first = first_yfcc_release
    name = "r1\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\u202e\nrefresh: OK"
    previous = tmp_path / "root" / "releases" / name
    shutil.copytree(first, previous)
    _cut_publish(previous)  # a publish killed once its manifest moved in: its lock and staging folder left there
    main(["refresh", "--previous=latest", f"--output={tmp_path / 'root'}", "--release=r2", f"--input={metadata}",
          f"--allowed_hosts={server.host}", *LOCAL])
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if line.startswith("refresh: from ")]
    assert len(said) == 1 and said[0].isprintable(), out[:2000]
    finished = [line for line in out.splitlines() if "a kill had left its publish's last step undone" in line]
    assert len(finished) == 1 and finished[0].isprintable(), out[:2000]
    assert "releases/r1\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\nrefresh: OK: --" in said[0], said[0][:300]
    assert "\x1b" not in out and not any(line.startswith("refresh: OK") for line in out.splitlines()), out[:2000]


def test_a_releases_root_typed_with_terminal_escapes_and_a_line_break_is_named_in_one_printable_line(
        first_yfcc_release, tmp_path, capsys):
    """A refresh's lines name the releases' root as typed (--output): the one saying it holds no published release
    (--previous=latest), the one saying a kill had left the release's publish undone, finished now, and the one saying
    the release was already published by this same refresh. A root named with ESC c (which resets the terminal), a CSI
    as one C1 character, a right-to-left override and a line break was printed as it was, its escapes sent to the
    terminal and a forged `refresh: OK` line of its own. Each is one line, the root escaped as Python writes it in a
    string."""
    server, metadata, first = first_yfcc_release
    root = tmp_path / "root\x1bc\x9b2J\u202e\nrefresh: OK"
    shown = f"{tmp_path}/root\\x1bc\\x9b2J\\u202e\\nrefresh: OK"
    argv = ["refresh", f"--output={root}", "--release=r2", "--previous=latest", f"--input={metadata}",
            f"--allowed_hosts={server.host}", *LOCAL]
    assert main([*argv[:4], f"--input={tmp_path / 'missing.tsv'}", *argv[5:]]) == 2  # refused after the first line
    said = [capsys.readouterr().out]
    shutil.copytree(first, root / "releases" / "r1")
    assert main(argv) == 0
    capsys.readouterr()
    _cut_publish(root / "releases" / "r2")  # a kill once its manifest moved in: finished by the rerun
    for _ in range(2):
        assert main(argv) == 0
        said.append(capsys.readouterr().out)
    for out in said:
        assert "\x1b" not in out and "\x9b" not in out and "\u202e" not in out, out
        assert not any(line.startswith("refresh: OK") for line in out.splitlines()), out
    assert f"refresh: {shown} holds no published release (--previous=latest)" in said[0], said[0]
    assert f"refresh: release r2 was published by this same refresh: {shown}/releases/r2; a kill had left" in said[1]
    assert (f"inputs and options): {shown}/releases/r2; nothing was done (`pass-pipeline verify {shown}/releases/r2` "
            "checks it)") in said[2], said[2]

def test_a_table_release_written_without_creator_links_is_refreshed_with_them_its_photos_unchanged(tmp_path):
    """ATTRIBUTION.csv links a table's row to the account its Flickr page names or its owner column credits; an
    earlier version left such rows without a link. Refreshed, a release that version wrote verifies (a link missing
    is no other credit), its photos are carried as unchanged (first published in it, neither removed nor added
    again), and the new release links them, its own verify passing."""
    import csv

    from pipeline.fixtures.demo_world import demo_image
    from pipeline.fixtures.static_server import StaticServer, image
    from pipeline.io.attribution import ATTRIBUTION_COLUMNS
    from pipeline.io.sinks import csv_bytes
    from pipeline.release.verify import verify

    def attribution(release: Path) -> list[list[str]]:
        return list(csv.reader(io.StringIO((release / "ATTRIBUTION.csv").read_text(encoding="utf-8"))))[1:]

    root, table = tmp_path / "root", tmp_path / "photos.csv"
    columns = "--columns=url=photo_url,id=photo_id,owner=author,page_url=page,license=licence"
    links = {"1": "https://www.flickr.com/people/12345678@N01/", "2": "https://www.flickr.com/people/34@N02/", "3": ""}
    with StaticServer() as server:
        rows = [("1", server.add("/1/chelsea.jpg", image(demo_image("chelsea.jpg"))), "Ann",
                 "https://www.flickr.com/photos/12345678@N01/1/"),
                ("2", server.add("/1/coffee.jpg", image(demo_image("coffee.jpg"))), "0034@n02", ""),
                ("3", server.add("/1/brick.jpg", image(demo_image("brick.jpg"))), "Bo",
                 "https://www.flickr.com/photos/someone/3/")]
        table.write_bytes(csv_bytes(("photo_id", "photo_url", "author", "page", "licence"),
                                    [(*row, "CC BY 4.0") for row in rows]))
        options = [f"--input={table}", "--input_format=csv", columns, f"--allowed_hosts={server.host}",
                   "--max_side=1024", "--min_side=16", *FAST]
        assert main(["refresh", f"--output={root}", "--release=r1", *options]) == 0
        first = root / "releases" / "r1"
        assert {row[0]: row[2] for row in attribution(first)} == links
        # r1 as an earlier version wrote it: no creator link on a row without an owner id
        (first / "ATTRIBUTION.csv").write_bytes(csv_bytes(ATTRIBUTION_COLUMNS, [
            [*row[:2], "", *row[3:]] for row in attribution(first)]))
        reseal(first)
        assert list(verify(str(first))) == []
        assert main(["refresh", f"--previous={first}", f"--output={root}", "--release=r2", *options]) == 0
    second = root / "releases" / "r2"
    assert {row[0]: row[2] for row in attribution(second)} == links
    log = json.loads((second / "changelog.json").read_text())
    assert (log["added"], log["removed"], log["unchanged"]) == ([], {}, 3)
    first_release = pq.read_table(second / "parquet", columns=["photo_id", "first_release"]).to_pylist()
    assert sorted((row["photo_id"], row["first_release"]) for row in first_release) == [("1", "r1"), ("2", "r1"),
                                                                                         ("3", "r1")]
    assert list(verify(str(second))) == []


def test_an_inherited_flag_cut_at_its_bound_never_ends_in_half_an_escape():
    """An inherited flag's value comes from the previous release's manifest (outside input): escaped, then cut at
    200 characters, an ESC across the cut was shown as `\\x1` (read as other text). The cut falls where no escape is
    split, the length said still the flag's own."""
    from pipeline.commands.refresh import _SAID_CHARACTERS, _said

    for before in range(_SAID_CHARACTERS - 4, _SAID_CHARACTERS + 1):
        flag = "7" * before + "\x1b" * 100
        shown, cut = _said(flag).split("…")
        assert (len(shown) - before) % 4 == 0 and _SAID_CHARACTERS - 3 <= len(shown) <= _SAID_CHARACTERS, shown[-8:]
        assert cut == f" (cut: {len(flag):,} characters)"
