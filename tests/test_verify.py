import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

import pipeline.release.verify
from pipeline.cli import main
from pipeline.io.formats import decode_example, tfrecord_frame
from pipeline.release.problem import Problem
from pipeline.release.verify import verify
from tests.conftest import as_a_user_the_disk_refuses, as_stored_jpeg, reseal, traced_peak
from tests.parquet_footers import rows_of, values_of, with_integers


@pytest.fixture()
def release(demo_release):
    """The session's demo release (tests/conftest.py): the tests below only read it, or copy it first."""
    return demo_release


def test_intact_release_verifies(release, capsys):
    assert list(verify(str(release))) == []
    assert main(["verify", str(release)]) == 0 and "OK" in capsys.readouterr().out


def test_tampered_and_missing_files_are_reported(release, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    shard = next((copy / "webdataset").iterdir())
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF
    shard.write_bytes(bytes(data))
    next((copy / "tfrecord").iterdir()).unlink()
    problems = {p.path.split("/")[0]: p.message for p in verify(str(copy))}
    assert problems["webdataset"] == "sha256 differs from the manifest"
    assert problems["tfrecord"] == "missing"
    assert main(["verify", str(copy)]) == 1


def test_each_tfrecord_file_is_walked_once(release, monkeypatch):
    """Its ids and its count come from one pass over its records (each pass checks every CRC)."""
    from pipeline.release import record_readers

    walks = []
    real = record_readers.tfrecords
    monkeypatch.setattr(record_readers, "tfrecords", lambda source, *size: walks.append(source) or real(source, *size))
    assert list(verify(str(release))) == []
    files = [path for path in (release / "tfrecord").iterdir() if path.is_file()]
    assert files and len(walks) == len(files)


def test_no_manifest(tmp_path):
    assert [p.message for p in verify(str(tmp_path))] == ["no manifest.json: no published release or dataset here"]
    # a path mistyped, or a file: said as such, not as a folder without a manifest
    assert [(p.path, p.message) for p in verify(str(tmp_path / "typo"))] == [(str(tmp_path / "typo"), "no such folder")]
    (tmp_path / "f.txt").write_text("x")
    assert [p.message for p in verify(str(tmp_path / "f.txt"))] == ["not a folder"]


def _copy(release, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    return copy


def _edit_manifest(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _problems(folder):
    return {(p.path, p.message) for p in verify(str(folder))}


def test_unlisted_files_are_reported_one_line_each(release, tmp_path, capsys):
    """Only manifest.json may be in a release without being listed in it: an extra shard, a stray
    file or a temporary left by a killed writer is a problem, each on its own printed line."""
    copy = _copy(release, tmp_path)
    shutil.copy(copy / "parquet" / "pass-00000-of-00002.parquet", copy / "parquet" / "pass-00002-of-00002.parquet")
    (copy / "notes.txt").write_text("hello")
    (copy / "rejections" / "rejections.parquet.tmp-0123").write_text("half")
    (copy / "evil\nrelease: OK").write_text("forged line")
    assert _problems(copy) == {
        ("parquet/pass-00002-of-00002.parquet", "not listed in the manifest"),
        ("notes.txt", "not listed in the manifest"),
        ("rejections/rejections.parquet.tmp-0123", "not listed in the manifest"),
        ("'evil\\nrelease: OK'", "not listed in the manifest"),
    }
    capsys.readouterr()
    assert main(["verify", str(copy)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[-1] == f"{copy}: 4 problem(s)"


def test_a_file_named_with_a_line_break_and_one_named_with_its_escape_are_two_paths_of_the_report(release, tmp_path):
    """A path is what the report's reader acts on (the file to remove): one holding an unprintable character is shown
    in Python's quoting (its quotes, its backslashes doubled), not merely escaped as a message is (`printable`), so a
    printable name that spells an escape out (`evil\\nx`, a backslash and an n) is not shown as the one holding a
    line break, and the shown path reads back as the file's name."""
    import ast

    copy = _copy(release, tmp_path)
    (copy / "evil\nx").write_text("a line break")
    (copy / "evil\\nx").write_text("a backslash and an n")
    unlisted = sorted(path for path, message in _problems(copy) if message == "not listed in the manifest")
    assert unlisted == ["'evil\\nx'", "evil\\nx"]
    assert ast.literal_eval(unlisted[0]) == "evil\nx"


def test_a_shard_deleted_with_its_entry(release, tmp_path):
    """The file and its entry are gone, so nothing is 'missing'; the shard numbering has a hole and
    the records of the remaining shards no longer add up to the manifest's totals."""
    copy = _copy(release, tmp_path)
    gone = "parquet/pass-00001-of-00002.parquet"
    entry = next(e for e in json.loads((copy / "manifest.json").read_text())["files"] if e["path"] == gone)
    (copy / gone).unlink()
    _edit_manifest(copy, lambda m: m.update(files=[e for e in m["files"] if e["path"] != gone]))
    kept = json.loads((copy / "manifest.json").read_text())["totals"]["kept"]
    problems = _problems(copy)
    assert {(gone, "shard 1 of 2 is not listed in the manifest"),
            ("parquet", f"{kept - entry['records']} records in its files, manifest totals say kept {kept}")} < problems
    [(_, missing)] = problems - {(gone, "shard 1 of 2 is not listed in the manifest"),
                                 ("parquet", f"{kept - entry['records']} records in its files, manifest totals say "
                                             f"kept {kept}")}
    assert missing.startswith(f"{entry['records']} photo ids not in parquet (against webdataset)")
    assert main(["verify", str(copy)]) == 1


def test_rejections_total_is_checked(release, tmp_path):
    copy = _copy(release, tmp_path)
    totals = json.loads((copy / "manifest.json").read_text())["totals"]
    rejected = totals["rejected"]
    _edit_manifest(copy, lambda m: m["totals"].update(rejected=rejected + 1))
    assert _problems(copy) == {
        ("rejections", f"{rejected} records in its files, manifest totals say rejected {rejected + 1}"),
        ("stats.json", f"rejected {rejected}, manifest totals say {rejected + 1}"),
        ("manifest.json", f'"totals": input_rows {totals["input_rows"]} are not kept {totals["kept"]} + rejected '
                          f"{rejected + 1}, as every published run's are")}


def _listed(folder, name, data):
    return {"path": name, "format": "notes", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_entries_that_leave_the_release_are_never_read(tmp_path, monkeypatch):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    folder = tmp_path / "release"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(b"fine")
    os.symlink(outside, folder / "link.txt")
    bad_paths = ["../outside.txt", str(outside), "sub/../../outside.txt", "sub\\..\\..\\outside.txt",
                 "..", "", "./a.txt", "sub//a.txt", "C:/outside.txt", "gs://bucket/outside.txt"]
    entries = [_listed(folder, "a.txt", b"fine"), _listed(folder, "link.txt", b"secret"),
               *(_listed(folder, path, b"secret") for path in bad_paths)]
    (folder / "manifest.json").write_text(json.dumps({"files": entries}))
    read = []
    real_open = pipeline.release.verify.open_regular_file  # the manifest's read too
    monkeypatch.setattr(pipeline.release.verify, "open_regular_file",
                        lambda path: read.append(path) or real_open(path))
    problems = list(verify(str(folder)))
    assert set(read) == {str(folder / "manifest.json"), str(folder / "a.txt")}
    assert {p.message for p in problems} == {"not a plain relative path inside the release; not read",
                                            "a link that leads outside the release; not read"}
    assert len(problems) == len(bad_paths) + 1


MALFORMED = {
    "invalid JSON": (b"{", "manifest.json is not valid JSON"),
    "not UTF-8": (b"\xff\xfe{}", "manifest.json is not valid JSON"),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, "manifest.json is not valid JSON"),
    "a list": (b"[]", "manifest.json is not a JSON object"),
    "null": (b"null", "manifest.json is not a JSON object"),
    "a string": (b'"files"', "manifest.json is not a JSON object"),
    "no files": (b"{}", '"files" must be a list'),
    "files not a list": (b'{"files": {"a": 1}}', '"files" must be a list'),
    "entry not an object": (b'{"files": [3]}', "files[0] is not an object"),
    "path not a string": (b'{"files": [{"path": 5, "bytes": 1, "sha256": "00"}]}', '"path" must be a string'),
    "bytes a string": (b'{"files": [{"path": "a", "bytes": "4", "sha256": "00"}]}',
                       '"bytes" must be a whole number'),
    "bytes a bool": (b'{"files": [{"path": "a", "bytes": true, "sha256": "00"}]}', '"bytes" must be a whole number'),
    "sha256 missing": (b'{"files": [{"path": "a", "bytes": 4}]}', '"sha256" must be a string'),
    "records a float": (b'{"files": [{"path": "a", "bytes": 4, "sha256": "00", "records": 1.5}]}',
                        '"records" must be a whole number'),
    "format a list": (b'{"files": [{"path": "a", "bytes": 4, "sha256": "00", "format": []}]}',
                      '"format" must be a string'),
    "listed twice": (b'{"files": [{"path": "a", "bytes": 4, "sha256": "00"}, {"path": "a", "bytes": 4, '
                     b'"sha256": "00"}]}', "listed more than once"),
    "totals not an object": (b'{"files": [], "totals": 3}', '"totals" must be an object'),
    "totals kept a string": (b'{"files": [], "totals": {"kept": "8"}}', '"totals" must be an object'),
    "a key twice": (b'{"files": [{"path": "a", "bytes": 4, "sha256": "00", "sha256": "3a6eb0790f39ac87c94f3856b2dd2c5d1'
                    b'10e6811602261a9a923d3bb23adc8b7"}]}',  # the last, which Python keeps, is the file's
                    'manifest.json gives "sha256" twice in one object (JSON readers differ on which counts; a run '
                    'writes each key once)'),
    "files twice": (b'{"files": [{"path": "x", "bytes": 1, "sha256": "00"}], "files": []}',
                    'manifest.json gives "files" twice in one object'),
}


@pytest.mark.parametrize("content, expected", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_manifest_is_a_problem_not_a_crash(tmp_path, capsys, content, expected):
    (tmp_path / "a").write_bytes(b"data")
    (tmp_path / "manifest.json").write_bytes(content)
    problems = list(verify(str(tmp_path)))
    assert any(expected in p.message for p in problems), problems
    assert all("\n" not in p.path + p.message for p in problems)
    assert main(["verify", str(tmp_path)]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_a_listed_file_that_is_no_regular_file_or_not_its_size_is_not_read(release, tmp_path, monkeypatch):
    """A named pipe listed in the manifest blocked verify (and so refresh, which runs it first) for ever;
    a listed file of another size than its entry was read whole before it was compared."""
    import os

    from pipeline.release import verify as verify_module

    copy = _copy(release, tmp_path)
    os.mkfifo(copy / "notes.txt")
    (copy / "huge.bin").write_bytes(b"\0" * 1000)
    _edit_manifest(copy, lambda m: m["files"].extend([{"path": "notes.txt", "bytes": 0, "sha256": "0" * 64},
                                                       _listed(copy, "huge.bin", b"\0" * 10)]))
    read = []
    real_open = verify_module.open_regular_file
    monkeypatch.setattr(verify_module, "open_regular_file", lambda path: (read.append(path), real_open(path))[1])
    problems = _problems(copy)
    assert ("notes.txt", "a named pipe, not a regular file; not read") in problems
    assert ("huge.bin", "1000 bytes, manifest says 10; not read") in problems
    assert not [path for path in read if path.endswith(("notes.txt", "huge.bin"))]


def test_a_link_to_a_folder_inside_the_release_is_reported(release, tmp_path):
    """A glob does not enter a linked folder: the link and all it holds went unseen."""
    import os

    copy = _copy(release, tmp_path / "r")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "extra.parquet").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", copy / "more")
    assert _problems(copy) == {("more", "not listed in the manifest")}


def test_a_photo_twice_or_in_one_format_only_is_reported(release, tmp_path):
    """Counts and hashes alone passed a resealed release that held one photo twice (a carried and a new copy under
    one id were written so) or an ATTRIBUTION.csv naming other photos than the shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    copy = _copy(release, tmp_path)
    shards = sorted((copy / "parquet").glob("*.parquet"))
    table = pq.read_table(shards[0])
    rows = table.to_pylist()
    twice = rows[0]["photo_id"]
    rows[1] = {**rows[1], "photo_id": twice}
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shards[0])
    attribution = (copy / "ATTRIBUTION.csv").read_text().splitlines()
    gone = attribution[-1].split(",")[0]
    (copy / "ATTRIBUTION.csv").write_text("\n".join([*attribution[:-1], "999" + attribution[-1]]) + "\n")
    reseal(copy)
    problems = _problems(copy)
    assert ("parquet", f"1 photo ids in more than one record, e.g. {twice}") in problems, problems
    assert any(path == "parquet" and "not in parquet (against webdataset)" in message for path, message in problems)
    assert ("attribution", f"1 photo ids not in attribution (against webdataset), e.g. {gone}") in problems
    assert ("attribution", f"1 photo ids only in attribution (against webdataset), e.g. 999{gone}") in problems


def _tfrecords(path: Path) -> list[bytes]:
    data, offset, records = path.read_bytes(), 0, []
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 8], "little")
        records.append(data[offset + 12:offset + 12 + length])
        offset += 16 + length
    return records


def test_records_inside_each_format_are_checked_not_only_counted(demo_release, tmp_path):
    """Resealed releases verify passed: a TFRecord holding one photo twice (its ids were never read), a tar with an
    extra `9999999.json` (only `.jpg` members were counted), a Parquet row whose image is another row's."""
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    def copy(name: str) -> Path:
        folder = tmp_path / name
        shutil.copytree(demo_release, folder)
        assert list(verify(str(folder))) == []
        return folder

    twice = copy("tfrecord")
    shard = sorted((twice / "tfrecord").glob("*.tfrecord"))[0]
    records = _tfrecords(shard)
    shard.write_bytes(b"".join(tfrecord_frame(record) for record in [records[0], records[0], *records[2:]]))
    reseal(twice)
    assert any("more than one record" in p.message and p.path == "tfrecord" for p in verify(str(twice)))

    stray = copy("webdataset")
    shard = sorted((stray / "webdataset").glob("*.tar"))[0]
    with tarfile.open(shard) as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar.getmembers()]
    rebuilt = io.BytesIO()
    with tarfile.open(fileobj=rebuilt, mode="w") as tar:
        for member, payload in members:
            if member.name == members[1][0].name:  # the first sample's metadata, moved to an id no photo has
                member.name = "9999999.json"
            tar.addfile(member, io.BytesIO(payload))
    shard.write_bytes(rebuilt.getvalue())
    reseal(stray)
    assert any("not as a run writes them" in p.message and "9999999" in p.message for p in verify(str(stray)))

    swapped = copy("parquet")
    shard = sorted((swapped / "parquet").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["image"], rows[1]["image"] = rows[1]["image"], rows[0]["image"]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    reseal(swapped)
    problems = [p for p in verify(str(swapped)) if "not as a run writes them" in p.message]
    assert problems and problems[0].message.startswith("2 records") and rows[0]["photo_id"] in problems[0].message


@pytest.mark.parametrize("fmt", ["webdataset", "parquet", "tfrecord"])
def test_an_image_carrying_what_no_run_writes_is_reported_in_each_format(demo_release, tmp_path, fmt):
    """A resealed shard whose photo's JPEG carries EXIF with GPS (its sha256 beside it made to match, the pixels the
    same) passed verify in its own format: only the images' hashes were compared. Every run strips what an image
    carries besides its pixels, so an image holding EXIF, GPS, a comment or bytes after its end is a record no run
    writes, in whichever format it is."""
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io.formats import encode_example
    from tests import bad_images

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / fmt).glob("*.*"))[0]
    if fmt == "webdataset":
        with tarfile.open(shard) as tar:
            members = [(member, tar.extractfile(member).read()) for member in tar.getmembers()]
        photo_id = members[0][0].name.partition(".")[0]
        image = next(payload for member, payload in members if member.name == f"{photo_id}.jpg")
        hostile = bad_images.not_as_stored(image)["exif"]
        rebuilt = io.BytesIO()
        with tarfile.open(fileobj=rebuilt, mode="w") as tar:
            for member, payload in members:
                if member.name == f"{photo_id}.jpg":
                    payload = hostile
                elif member.name == f"{photo_id}.json":
                    payload = json.dumps({**json.loads(payload), "sha256": hashlib.sha256(hostile).hexdigest()},
                                         separators=(",", ":")).encode()
                member.size = len(payload)
                tar.addfile(member, io.BytesIO(payload))
        shard.write_bytes(rebuilt.getvalue())
    elif fmt == "parquet":
        table = pq.read_table(shard)
        rows = table.to_pylist()
        photo_id, image = rows[0]["photo_id"], rows[0]["image"]
        hostile = bad_images.not_as_stored(image["bytes"] if isinstance(image, dict) else image)["exif"]
        rows[0]["image"] = {**image, "bytes": hostile} if isinstance(image, dict) else hostile
        rows[0]["sha256"] = hashlib.sha256(hostile).hexdigest()
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    else:
        records = _tfrecords(shard)
        example = decode_example(records[0])
        photo_id = example["image/id"].decode()
        hostile = bad_images.not_as_stored(example["image/encoded"])["exif"]
        example.update({"image/encoded": hostile, "image/sha256": hashlib.sha256(hostile).hexdigest().encode()})
        shard.write_bytes(b"".join(tfrecord_frame(record) for record in [encode_example(example), *records[1:]]))
    reseal(copy)
    problems = [p for p in verify(str(copy)) if "not as a run writes them" in p.message]
    assert len(problems) == 1 and problems[0].path.startswith(f"{fmt}/"), problems
    assert problems[0].message.startswith("1 records") and photo_id in problems[0].message, problems


def test_a_crafted_photo_id_cannot_forge_or_hide_report_lines(demo_release, tmp_path, capsys):
    """Photo ids come from the release's own shards and ATTRIBUTION.csv: one holding a newline and a terminal
    escape printed a line "RELEASE: OK" and hid what followed."""
    from tests.conftest import reseal

    copy = _copy(demo_release, tmp_path)
    with open(copy / "ATTRIBUTION.csv", "a", encoding="utf-8") as handle:
        handle.write(f'"9\n{copy}: OK\x1b[8m",x,,t,https://www.flickr.com/photos/x/9/,CC BY 2.0,u\n')
    reseal(copy)
    problems = list(verify(str(copy)))
    assert problems and all(p.message.isprintable() and p.path.isprintable() for p in problems), problems
    assert any("9\\n" in p.message and "\\x1b[8m" in p.message for p in problems)
    capsys.readouterr()
    assert main(["verify", str(copy)]) == 1
    assert len(capsys.readouterr().out.splitlines()) == len(problems) + 1


def test_a_long_photo_id_is_quoted_in_part(demo_release, tmp_path, capsys):
    """A resealed ATTRIBUTION.csv whose id is 100,000 digits was quoted whole in the report's line (an index's or a
    shard's id, of megabytes)."""
    copy = _copy(demo_release, tmp_path)
    with open(copy / "ATTRIBUTION.csv", "a", encoding="utf-8") as handle:
        handle.write(f"{'7' * 100_000},x,,t,https://www.flickr.com/photos/x/9/,CC BY 2.0,u\n")
    reseal(copy)
    capsys.readouterr()
    assert main(["verify", str(copy)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any("7777777… (cut: " in line for line in lines)
    assert max(map(len, lines)) < 2 * 1000 + len(str(copy)) + 100


def test_a_photo_whose_image_differs_between_formats_is_reported(demo_release, tmp_path):
    """A tar resealed with another photo's image under a photo's id (its metadata's sha256 changed to match) kept every
    id and every hash inside its own format, and passed verify: the WebDataset published another image than the
    Parquet and TFRecord shards under that id and credit."""
    import tarfile

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "webdataset").glob("*.tar"))[0]
    with tarfile.open(shard) as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar.getmembers()]
    (first, _), (metadata_member, metadata), (_, other) = members[0], members[1], members[2]
    rebuilt = io.BytesIO()
    with tarfile.open(fileobj=rebuilt, mode="w") as tar:
        for member, payload in members:
            if member is first:
                payload = other
            elif member is metadata_member:
                payload = json.dumps({**json.loads(metadata), "sha256": hashlib.sha256(other).hexdigest()}).encode()
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
    shard.write_bytes(rebuilt.getvalue())
    reseal(copy)
    photo_id = first.name.partition(".")[0]
    assert _problems(copy) == {("webdataset", f"1 photos whose image differs from parquet's, e.g. {photo_id}")}


def test_a_sample_s_metadata_giving_a_key_twice_is_reported(demo_release, tmp_path):
    """A tar resealed with a sample's JSON giving "sha256" twice (first another image's, which a reader keeping the
    first key takes, then its own, which Python keeps) passed verify: Python's reading matched the image."""
    import tarfile

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "webdataset").glob("*.tar"))[0]
    with tarfile.open(shard) as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar.getmembers()]
    metadata_member, metadata = members[1]
    rebuilt = io.BytesIO()
    with tarfile.open(fileobj=rebuilt, mode="w") as tar:
        for member, payload in members:
            if member is metadata_member:
                payload = b'{"sha256": "' + b"0" * 64 + b'", ' + metadata.lstrip()[1:]
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
    shard.write_bytes(rebuilt.getvalue())
    reseal(copy)
    photo_id = metadata_member.name.partition(".")[0]
    assert _problems(copy) == {
        ("webdataset", f"1 photos whose credit differs from attribution's, e.g. {photo_id}"),
        (shard.relative_to(copy).as_posix(), "1 records not as a run writes them (an image that does not hash to the "
                                             "sha256 beside it or holds what no run writes, a stray or unpaired "
                                             f"member), e.g. {photo_id}")}


def test_an_attribution_crediting_a_kept_photo_otherwise_is_reported(demo_release, tmp_path):
    """An ATTRIBUTION.csv resealed with a kept photo's licence URL (or creator, title, page) changed, its ids left as
    they were, passed verify: the file CC BY asks redistributors to follow credited the photo otherwise than its
    shards. So did one whose header named the columns otherwise."""
    copy = _copy(demo_release, tmp_path)
    lines = (copy / "ATTRIBUTION.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    photo_id = lines[1].split(",")[0]
    lines[1] = lines[1].replace("https://creativecommons.org/licenses/by/", "https://creativecommons.org/licenses/by-nc/")
    lines[0] = lines[0].replace("creator,creator_url,title", "title,creator_url,creator")
    (copy / "ATTRIBUTION.csv").write_text("".join(lines), encoding="utf-8")
    reseal(copy)
    assert _problems(copy) == {
        *((fmt, f"1 photos whose credit differs from attribution's, e.g. {photo_id}")
          for fmt in ("parquet", "tfrecord", "webdataset")),
        ("ATTRIBUTION.csv", "1 records not as a run writes them (an image that does not hash to the sha256 beside "
                            "it or holds what no run writes, a stray or unpaired member), e.g. (header)")}


def test_stats_that_disagree_with_the_release_are_reported(demo_release, tmp_path):
    """A stats.json resealed with other counts (12 kept, 6 rejected; or a funnel stage's rejections dropped) passed
    verify, and the datasheet states its figures: its counts are checked against the manifest's totals and its
    funnel against its rejections by stage."""
    copy = _copy(demo_release, tmp_path)
    stats = json.loads((copy / "stats.json").read_text())
    claimed = {**stats, "kept": stats["kept"] + 2, "rejected": stats["rejected"] - 2}
    (copy / "stats.json").write_text(json.dumps(claimed))
    reseal(copy)
    assert _problems(copy) == {
        ("stats.json", f"kept {stats['kept'] + 2}, manifest totals say {stats['kept']}"),
        ("stats.json", f"rejected {stats['rejected'] - 2}, manifest totals say {stats['rejected']}"),
        ("stats.json", "accounted, rejected disagree with its rejections by stage")}
    funnel = [{**stage, "rejected": 0, "out": stage["in"]} if stage["rejected"] else stage for stage in stats["funnel"]]
    (copy / "stats.json").write_text(json.dumps({**stats, "funnel": funnel}))
    reseal(copy)
    assert _problems(copy) == {("stats.json", "funnel disagree with its rejections by stage")}
    (copy / "stats.json").write_text("[]")
    reseal(copy)
    assert _problems(copy) == {("stats.json", "not the counts a run writes (input_rows, kept, rejections_by_stage)")}
    # "kept" given twice, a wrong count first: Python keeps the last (the right one) and passed it; a reader keeping
    # the first (the datasheet's, a mirror's) read 2 more photos kept
    (copy / "stats.json").write_text(f'{{"kept": {stats["kept"] + 2}, ' + json.dumps(stats)[1:])
    reseal(copy)
    assert _problems(copy) == {("stats.json", 'gives the key "kept" twice in one object (readers differ on which '
                                              'counts)')}


@pytest.mark.parametrize("change", [("license: other", "license: cc0-1.0"),
                                    ("path: parquet/pass-*.parquet", "path: rejections/rejections-*.parquet"),
                                    ("path: parquet/pass-*.parquet", "path: hf://datasets/someone/else/*.parquet")])
def test_a_dataset_card_loading_other_files_or_naming_another_licence_is_reported(demo_release, tmp_path, change):
    """A README.md resealed with its default configuration on other files (the rejections, another dataset on the
    Hub) or another licence passed verify: `load_dataset(RELEASE)` would load them, the Hub would show that licence."""
    copy = _copy(demo_release, tmp_path)
    card = (copy / "README.md").read_text(encoding="utf-8")
    assert change[0] in card
    (copy / "README.md").write_text(card.replace(*change), encoding="utf-8")
    reseal(copy)
    assert _problems(copy) == {
        ("README.md", "its front matter (configurations, licence) is not what a run writes for these files")}


# Configurations as earlier versions wrote them into a card's front matter.
_EARLIER_REJECTIONS = ("- config_name: rejections\n  data_files:\n  - split: train\n"
                       "    path: rejections/rejections-*.parquet\n")
_EARLIER_WEBDATASET = ("- config_name: default\n  data_files:\n  - split: train\n"
                       "    path: webdataset/pass-*.tar\n  default: true\n")


@pytest.mark.parametrize(("written", "configs"), [(["tfrecord"], _EARLIER_REJECTIONS),
                                                  (["webdataset"], _EARLIER_WEBDATASET + _EARLIER_REJECTIONS)])
def test_a_release_whose_card_an_earlier_version_wrote_still_verifies(tmp_path, written, configs):
    """A release of --formats=tfrecord without an index (the rejections its card's one configuration), or of
    --formats=webdataset (the rejections named after the WebDataset default), its card as earlier versions wrote it:
    still what a run wrote for these files, so it verifies and a refresh takes it; a card naming other files for it
    does not."""
    from tests.conftest import photo

    earlier = f"---\nlicense: other\npretty_name: PASS-style image dataset\nconfigs:\n{configs}---\n\n# PASS-style\n"
    for card, problems in ((earlier, set()), (earlier.replace("rejections-*", "*"), {
            ("README.md", "its front matter (configurations, licence) is not what a run writes for these files")})):
        image = as_stored_jpeg(b"not decoded by verify")
        folder = _release_of(tmp_path / str(len(problems)), [photo("7", image=image, sha256=hashlib.sha256(
            image).hexdigest())], written)
        (folder / "README.md").write_text(card, encoding="utf-8")
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["files"].append({"path": "README.md", "format": "dataset_card"})
        (folder / "manifest.json").write_text(json.dumps(manifest))
        reseal(folder)
        assert {(problem.path, problem.message) for problem in verify(str(folder))} == problems


def test_a_shard_listed_under_another_format_is_reported_not_left_unread(demo_release, tmp_path):
    """Parquet shards listed as format "notes" (and the options and card made to name the other formats only) were
    never read: their rows could credit photos to a BY-NC licence or hold other images, and verify passed. A file a
    run writes has the format the run gives it."""
    from pipeline.io.dataset_card import card_text

    copy = _copy(demo_release, tmp_path)

    def relabel(manifest):
        for entry in manifest["files"]:
            if entry["format"] == "parquet":
                entry["format"] = "notes"
                del entry["records"]
        manifest["options"]["formats"] = "webdataset,tfrecord"

    _edit_manifest(copy, relabel)
    (copy / "README.md").write_text(card_text(["webdataset", "tfrecord"], True), encoding="utf-8")
    reseal(copy)
    shards = sorted(path.relative_to(copy).as_posix() for path in (copy / "parquet").glob("*.parquet"))
    entries = json.loads((copy / "manifest.json").read_text())["files"]
    assert _problems(copy) == {
        ("manifest.json", f'files[{index}]: "format" must be "parquet" for {entry["path"]}, as a run writes it')
        for index, entry in enumerate(entries) if entry["path"] in shards}


def _release_of(folder: Path, photos: list, formats: list[str]) -> Path:
    """A release of `photos` in `formats` (and ATTRIBUTION.csv) as the writers write them, listed in its manifest."""
    from pipeline.io.attribution import attribution_csv, attribution_row
    from pipeline.io.formats import WRITERS, write_all

    entries: list[dict[str, Any]] = []
    for fmt in formats:
        extension, writer = WRITERS[fmt]
        path = folder / fmt / f"pass-00000-of-00001.{extension}"
        path.parent.mkdir(parents=True)
        with open(path, "wb") as handle:
            write_all(writer(handle), photos)
        entries.append({"path": f"{fmt}/{path.name}", "format": fmt, "records": len(photos)})
    (folder / "ATTRIBUTION.csv").write_bytes(attribution_csv([attribution_row(photo) for photo in photos]))
    entries.append({"path": "ATTRIBUTION.csv", "format": "attribution"})
    for entry in entries:
        data = (folder / entry["path"]).read_bytes()
        entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (folder / "manifest.json").write_text(json.dumps({"files": entries}))
    return folder


def _largest_reads_and_peak(folder: Path, monkeypatch) -> tuple[list[Problem], dict[str, int], int]:
    """verify's problems, the largest single read of each file it opened (every read of every handle it opened a
    file with, `open_regular_file` or FileSystems.open, whatever reads it), and its peak of Python memory
    (tracemalloc)."""

    from apache_beam.io.filesystems import FileSystems

    import pipeline.release.verify as verify_module

    largest: dict[str, int] = {}
    real_open, real_open_regular = FileSystems.open, verify_module.open_regular_file

    class Recorded:
        def __init__(self, path: str, handle) -> None:
            self._path, self._handle = path, handle

        def read(self, size=-1):
            data = self._handle.read(size)
            largest[self._path] = max(largest.get(self._path, 0), len(data))
            return data

        def __getattr__(self, name):
            return getattr(self._handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *error):
            self._handle.close()

    monkeypatch.setattr(FileSystems, "open",
                        staticmethod(lambda path, *args, **kwargs: Recorded(path, real_open(path, *args, **kwargs))))
    monkeypatch.setattr(verify_module, "open_regular_file", lambda path: Recorded(path, real_open_regular(path)))
    problems, peak = traced_peak(lambda: list(verify(str(folder))))
    return problems, {Path(path).relative_to(folder).as_posix(): n for path, n in largest.items()}, peak


def test_verify_holds_one_record_at_a_time_never_a_shard(tmp_path, monkeypatch):
    """verify read each listed file whole, and kept every member of a tar: its memory was a shard or two (5,000
    images, 0.5-1 GB) and grew with --images_per_shard. Each file is now a stream, hashed as it is read: a tar member
    by member, a TFRecord record by record, ATTRIBUTION.csv line by line, Parquet by batches of rows (its least read
    is a page, and a run writes a row group's 512 images into one: a row group is its bound, never a shard)."""
    from tests.conftest import photo

    images = [as_stored_jpeg(os.urandom(2 << 20)) for _ in range(6)]
    big = [photo(str(100 + i), image=image, sha256=hashlib.sha256(image).hexdigest(), title=f"photo {i}")
           for i, image in enumerate(images)]
    folder = _release_of(tmp_path / "big", big, ["webdataset", "tfrecord"])
    problems, largest, peak = _largest_reads_and_peak(folder, monkeypatch)
    shard = min((folder / fmt / name).stat().st_size for fmt, name in (
        ("webdataset", "pass-00000-of-00001.tar"), ("tfrecord", "pass-00000-of-00001.tfrecord")))
    # (manifest.json is read whole, a MiB at a time, bounded: record_readers.read_up_to)
    assert problems == [] and set(largest) == {"manifest.json", "ATTRIBUTION.csv", "webdataset/pass-00000-of-00001.tar",
                                               "tfrecord/pass-00000-of-00001.tfrecord"}
    member = len(images[0])
    assert shard > 5 * member
    # one record at most (a TFRecord's Example, its image and metadata, read in one), never a file
    assert max(n for path, n in largest.items() if path != "manifest.json") <= member + 4096, largest
    assert peak < 3 * member, (peak, shard)  # an image and a copy of it; read whole, a shard (12 MB) and more

    # three row groups of 512
    rows = [photo(str(1000 + i), image=as_stored_jpeg(os.urandom(8 << 10))) for i in range(1100)]
    rows = [row.replace(sha256=hashlib.sha256(row.image).hexdigest()) for row in rows]
    folder = _release_of(tmp_path / "rows", rows, ["parquet"])
    problems, largest, peak = _largest_reads_and_peak(folder, monkeypatch)
    size = (folder / "parquet" / "pass-00000-of-00001.parquet").stat().st_size
    assert problems == [] and size > len(rows) * (8 << 10)
    assert largest["parquet/pass-00000-of-00001.parquet"] < 0.6 * size  # one row group's image page
    assert peak < 0.6 * size, (peak, size)


def test_a_file_read_as_a_stream_is_still_checked_against_its_hash_before_its_records(demo_release, tmp_path):
    """Records are read before the file's hash is known: what a file gave counts only once its size and sha256 are
    the manifest's, so a changed shard is that one line, as when it was read whole first."""
    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "tfrecord").glob("*.tfrecord"))[0]
    records = [decode_example(record)["image/id"].decode() for record in _tfrecords(shard)]
    unread = ("tfrecord", f"{len(records)} photo ids not in tfrecord (against webdataset), e.g. "
                          f"{', '.join(sorted(records)[:3])}")
    shard.write_bytes(shard.read_bytes()[:-3] + b"abc")  # the last record's CRC no longer matches
    assert _problems(copy) == {(shard.relative_to(copy).as_posix(), "sha256 differs from the manifest"), unread}
    reseal(copy)
    assert _problems(copy) == {
        (shard.relative_to(copy).as_posix(), f"unreadable: record {len(records) - 1} has a bad length or CRC"), unread}


def _rewrite(shard: Path, change) -> None:
    """A Parquet file's rows, changed by `change` (rows -> rows), written back with its schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(shard)
    pq.write_table(pa.Table.from_pylist(change(table.to_pylist()), schema=table.schema), shard)


def _kept(release: Path) -> list[str]:
    import pyarrow.parquet as pq

    return sorted(pq.read_table(release / "parquet", columns=["photo_id"]).column(0).to_pylist())


def _fresh(release: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(release, copy)
    return copy


def test_a_kept_photo_rejected_by_a_stage_that_sees_each_photo_once_is_reported(demo_release, tmp_path):
    """Every input row ends kept or rejected, once: after the repeated-id stage and the ledger one row an id goes on,
    and each later stage passes it or rejects it. A resealed release whose rejections named a kept photo (an image
    stage's rejection moved onto it, every count unchanged) passed. A repeated row of a kept photo, or one refused for
    its licence, is a rejection a run writes (a refresh's carried copies too): not reported."""
    import pyarrow.parquet as pq

    kept = _kept(demo_release)
    moved = _fresh(demo_release, tmp_path, "moved")
    [shard] = (moved / "rejections").glob("*.parquet")
    image = next(row for row in pq.read_table(shard).to_pylist() if row["stage"] == "image")
    _rewrite(shard, lambda rows: [{**row, "photo_id": kept[0]} if row == image else row for row in rows])
    reseal(moved)
    assert _problems(moved) == {("rejections", f"1 kept photos also rejected by image, which see each photo once "
                                               f"(against webdataset), e.g. {kept[0]}")}

    repeated = _fresh(demo_release, tmp_path, "repeated")
    [shard] = (repeated / "rejections").glob("*.parquet")
    _rewrite(shard, lambda rows: [{**row, "photo_id": kept[1]} if row["stage"] in ("license", "read") else row
                                  for row in rows])
    reseal(repeated)
    assert _problems(repeated) == set()


def test_rejections_by_stage_and_reason_are_stats_json_s(demo_release, tmp_path):
    """stats.json's rejections by stage and reason (the datasheet's figures) and the rejections table come from one
    tally of one collection: a resealed table whose rejections moved from one reason to another (a takedown made a
    fetch error, every total unchanged) passed."""
    import pyarrow.parquet as pq

    copy = _fresh(demo_release, tmp_path, "copy")
    [shard] = (copy / "rejections").glob("*.parquet")
    first = pq.read_table(shard).to_pylist()[0]
    _rewrite(shard, lambda rows: [{**row, "reason": "moved"} if row == first else row for row in rows])
    reseal(copy)
    stated = json.loads((copy / "stats.json").read_text())["rejections_by_stage"][first["stage"]][first["reason"]]
    stage, reason = first["stage"], first["reason"]
    assert _problems(copy) == {("rejections", f"2 stage/reason counts differ from stats.json's, e.g. {stage}/{reason}: "
                                              f"{stated - 1} in its files, {stated} in stats.json, {stage}/moved: 1 in "
                                              "its files, 0 in stats.json")}


def test_every_input_row_is_kept_or_rejected(demo_release, tmp_path):
    """A run publishes only when input rows = kept + rejected (commands/run.py's refusal). A release resealed without
    one of its rejections, its stats.json and totals rewritten to match (a row lost, every count consistent), passed."""
    import pyarrow.parquet as pq

    from pipeline.io.report import build_stats

    copy = _fresh(demo_release, tmp_path, "copy")
    [shard] = (copy / "rejections").glob("*.parquet")
    _rewrite(shard, lambda rows: rows[1:])
    stats = json.loads((copy / "stats.json").read_text())
    reasons = [((row["stage"], row["reason"]), 1) for row in pq.read_table(shard).to_pylist()]
    stats.update(build_stats(stats["input_rows"], stats["kept"], reasons))
    (copy / "stats.json").write_text(json.dumps(stats))
    _edit_manifest(copy, lambda m: m["totals"].update(rejected=stats["rejected"]))
    reseal(copy)
    assert _problems(copy) == {("manifest.json", f'"totals": input_rows {stats["input_rows"]} are not kept '
                                                 f'{stats["kept"]} + rejected {stats["rejected"]}, as every published '
                                                 "run's are")}


def test_a_ledger_that_does_not_record_the_kept_photos_as_kept_is_reported(demo_release, tmp_path):
    """The ledger a refresh reads to skip what was decided: a run records each photo it keeps once, as kept (its
    decision replaces the previous ledger's). A resealed ledger calling a kept photo rejected (the next refresh would
    skip its row for ever), or lacking one and holding another twice, passed."""
    kept = _kept(demo_release)
    copy = _fresh(demo_release, tmp_path, "copy")
    [shard] = (copy / "ledger").glob("*.parquet")
    listed = shard.relative_to(copy).as_posix()

    def change(rows):
        by_id = {row["photo_id"]: row for row in rows}
        return [{**row, "decision": "rejected", "stage": "detect", "reason": "human"} if row["photo_id"] == kept[0]
                else by_id[kept[2]] if row["photo_id"] == kept[1] else row for row in rows]

    _rewrite(shard, change)
    reseal(copy)
    assert _problems(copy) == {
        ("ledger", f"1 kept photos decided otherwise than kept (against webdataset), e.g. {kept[0]}"),
        ("ledger", f"1 kept photos in more than one row (against webdataset), e.g. {kept[2]}"),
        ("ledger", f"1 kept photos not in the ledger (against webdataset), e.g. {kept[1]}")}
    _edit_manifest(copy, lambda m: [entry.update(format="notes") for entry in m["files"] if entry["path"] == listed])
    index = [entry["path"] for entry in json.loads((copy / "manifest.json").read_text())["files"]].index(listed)
    assert ("manifest.json", f'files[{index}]: "format" must be "ledger" for {listed}, as a run writes it') in \
        _problems(copy)


def test_a_table_whose_ids_are_not_text_is_unreadable(demo_release, tmp_path):
    """A resealed ledger whose photo_id column is int64 passed (cast to text here); the next refresh takes only text
    ids, so it ignored every row and skipped nothing it had decided."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    copy = _fresh(demo_release, tmp_path, "copy")
    [shard] = (copy / "ledger").glob("*.parquet")
    table = pq.read_table(shard)
    ids = pa.array([int(value) for value in table.column("photo_id").to_pylist()], pa.int64())
    pq.write_table(table.set_column(table.schema.get_field_index("photo_id"), "photo_id", ids), shard)
    reseal(copy)
    listed = shard.relative_to(copy).as_posix()
    assert (listed, "unreadable: column photo_id is int64, not text as a run writes it") in \
        _problems(copy)


def test_a_dataset_shard_whose_ids_are_not_text_is_unreadable(demo_release, tmp_path):
    """A resealed Parquet shard whose photo_id column is int64 passed (its ids read as text matched the other
    formats'): a release no run writes, whose next refresh then failed after its job in the changelog."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    copy = _fresh(demo_release, tmp_path, "copy")
    shard = sorted((copy / "parquet").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    ids = pa.array([int(value) for value in table.column("photo_id").to_pylist()], pa.int64())
    pq.write_table(table.set_column(table.schema.get_field_index("photo_id"), "photo_id", ids), shard)
    reseal(copy)
    listed = shard.relative_to(copy).as_posix()
    assert (listed, "unreadable: column photo_id is int64, not text as a run writes it") in _problems(copy)


def test_a_near_duplicate_index_that_is_not_the_kept_photos_is_reported(demo_release, tmp_path):
    """The index the next run compares its images with: a run writes a row for each photo it keeps, and nothing else
    unless it added a previous index's rows (--previous_index). A resealed index lacking kept photos (their near copies
    would pass the next run) or naming others passed."""
    kept = _kept(demo_release)
    copy = _fresh(demo_release, tmp_path, "copy")
    [shard] = (copy / "near_dup_index").glob("*.parquet")
    _rewrite(shard, lambda rows: [{**row, "photo_id": {kept[0]: "99999999", kept[1]: kept[2]}.get(row["photo_id"],
                                                                                                    row["photo_id"])}
                                  for row in rows])
    reseal(copy)
    assert _problems(copy) == {
        ("near_dup_index", f"2 kept photos not in the near-duplicate index (against webdataset), e.g. {kept[0]}, "
                           f"{kept[1]}"),
        ("near_dup_index", f"1 kept photos in more than one row (against webdataset), e.g. {kept[2]}"),
        ("near_dup_index", "1 rows of photos the release does not hold (against webdataset), e.g. 99999999")}
    # A run given --previous_index adds that index's rows, of other photos and of kept ones: only a missing one is wrong
    _edit_manifest(copy, lambda m: m["options"].update(previous_index="gs://bucket/old/near_dup_index/*.parquet"))
    assert _problems(copy) == {
        ("near_dup_index", f"2 kept photos not in the near-duplicate index (against webdataset), e.g. {kept[0]}, "
                           f"{kept[1]}")}


def test_a_changed_shard_is_never_decompressed(demo_release, tmp_path, monkeypatch):
    """A run writes a plain tar. A shard replaced, at its size, by a bzip2 tar (not resealed) was decompressed while
    it was hashed, before its hash was known to differ: a 164 kB file gave a metadata member of 512 MiB, read whole
    (1.8 GB of memory; a few kB more, any number of GB). Read as the plain tar a run writes, it is the one line."""
    import bz2
    import tarfile

    from pipeline.release import record_readers

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "webdataset").glob("*.tar"))[0]
    size = shard.stat().st_size
    member = tarfile.TarInfo("1001.json")
    member.size = 16 << 20
    packed = bz2.compress(member.tobuf(format=tarfile.GNU_FORMAT) + b" " * member.size + b"\0" * 1024)
    assert len(packed) < size
    shard.write_bytes(packed + b"\0" * (size - len(packed)))
    read = []
    real = record_readers._metadata
    monkeypatch.setattr(record_readers, "_metadata", lambda payload: read.append(len(payload)) or real(payload))
    assert (shard.relative_to(copy).as_posix(), "sha256 differs from the manifest") in _problems(copy)
    assert max(read, default=0) <= size, read


def test_a_tar_member_claiming_more_bytes_than_the_file_holds_is_not_skipped_to_its_end(demo_release, tmp_path,
                                                                                        monkeypatch):
    """A tar read as a stream skips an unread member by reading up to its end: a shard replaced at its size by one
    header of a stray member claiming 2^80 bytes (not resealed) had verify read empty blocks for ever (one read per
    10 kB claimed), where reading it whole first had reported the one line 'sha256 differs'. A member that would end
    past the file's end is the file unreadable, found at its header."""
    import tarfile

    from pipeline.io.files import HashingReader

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "webdataset").glob("*.tar"))[0]
    stray = tarfile.TarInfo("stray.txt")
    stray.size = 1 << 32  # 4 GiB: 420,000 reads before; 1 << 80 never ended
    header = stray.tobuf(format=tarfile.GNU_FORMAT)
    data = shard.read_bytes()
    shard.write_bytes(header + b"\0" * (len(data) - len(header)))
    reads = []
    real = HashingReader.read
    monkeypatch.setattr(HashingReader, "read", lambda self, *size: reads.append(1) or real(self, *size))
    assert (shard.relative_to(copy).as_posix(), "sha256 differs from the manifest") in _problems(copy)
    assert len(reads) < 10_000, len(reads)
    reseal(copy)
    assert (shard.relative_to(copy).as_posix(), "unreadable: a member runs past the end of the file") in \
        _problems(copy)


def test_a_file_whose_bytes_are_not_the_manifests_is_never_parsed(demo_release, tmp_path, monkeypatch):
    """Parsed while hashed, a file changed and not resealed went through its format's reader before its hash was
    known: a Parquet shard rebuilt at its size around one zstd image of 1 GiB took 4.3 GB of memory where reading it
    whole first had reported the one line 'sha256 differs'. Each file is hashed first, and parsed only if it matches."""
    import pipeline.release.verify as verify_module

    copy = _copy(demo_release, tmp_path)
    changed = [sorted((copy / folder).iterdir())[0] for folder in ("parquet", "webdataset", "tfrecord", "rejections")]
    for path in changed:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    parsed, real_read = [], verify_module._read
    monkeypatch.setattr(verify_module, "_read", lambda fmt, reader, *rest: parsed.append(fmt) or real_read(
        fmt, reader, *rest))
    problems = {(p.path, p.message) for p in verify(str(copy))}
    for path in changed:
        assert (f"{path.parent.name}/{path.name}", "sha256 differs from the manifest") in problems
    for folder in ("parquet", "webdataset", "tfrecord", "rejections"):  # every file of its format but the changed one
        assert parsed.count(folder) == len(list((copy / folder).iterdir())) - 1, (folder, parsed)


def test_a_resealed_parquet_page_that_would_inflate_past_its_bound_is_never_decompressed(demo_release, tmp_path):
    """A forged shard resealed with one image of 80 MiB of zeros (zstd stores it in kilobytes) was decompressed whole
    (a 1 GiB one took 4.3 GB): a page may grow to 8 times its stored size or 64 MiB, as images and ids do."""
    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "parquet").glob("*.parquet"))[0]
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[0]["image"]["bytes"] = bytes(80 << 20)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard, compression="zstd")
    assert shard.stat().st_size < 1 << 20
    reseal(copy)
    unreadable = [reason for path, reason in _problems(copy) if path == shard.relative_to(copy).as_posix()]
    assert len(unreadable) == 1 and unreadable[0].startswith("unreadable: row group 1, column 'image.bytes': a page")
    assert "over the 67,108,864 allowed" in unreadable[0]


def test_an_attribution_line_of_millions_of_commas_is_refused_in_bounded_memory(demo_release, tmp_path):
    """The csv reader split a resealed ATTRIBUTION.csv line of commas into a list of 8 bytes a comma (and verify then
    printed it into a string of 4 bytes a comma): 12 MB of commas peaked at 244 MB, a 1 GB line at ~20 GB. A line
    longer than any a run writes makes the file unreadable, read no further."""
    copy = _copy(demo_release, tmp_path)
    with open(copy / "ATTRIBUTION.csv", "a", encoding="utf-8") as handle:
        handle.write("9" + "," * 12_000_000 + "\n")
    reseal(copy)
    problems, peak = traced_peak(lambda: list(verify(str(copy))))
    assert any(p.path.endswith("ATTRIBUTION.csv") and "longer than any a run writes" in p.message
               for p in problems), problems
    assert peak < 60_000_000, peak


def test_verify_on_no_dataset_says_what_to_give_in_one_line_exit_2(release, tmp_path, capsys):
    """A newcomer's verify of the wrong path (a typo, the manifest file itself, an empty or releases' root folder)
    printed '…/manifest.json: no manifest.json' and '…: 1 problem(s)', exit 1, as for a damaged dataset."""
    (tmp_path / "empty").mkdir()
    for given, said in ((tmp_path / "missing", "does not exist"), (Path(release) / "manifest.json", "is a file"),
                        (tmp_path / "empty", "holds no manifest.json")):
        assert main(["verify", str(given)]) == 2
        out, err = capsys.readouterr()
        assert not out and len(err.strip().splitlines()) == 1 and said in err, err
        assert "give a dataset's folder: a run's --output" in err
    assert main(["verify", str(release)]) == 0


def test_verify_of_a_local_path_with_a_scheme_like_segment_says_what_it_is(tmp_path, capsys):
    """`runs/a://b` is a local path to Beam (no filesystem's scheme starts it), yet verify took any "://" for an object
    store's and skipped its local checks: a file there, or nothing at all, was said to be a folder holding no
    manifest.json whose stopped publish the next run finishes."""
    (tmp_path / "a:").mkdir()
    (tmp_path / "a:" / "b").write_text("notes\n")
    for given, said in ((f"{tmp_path}/a://b", "is a file"), (f"{tmp_path}/a://missing", "does not exist")):
        assert main(["verify", given]) == 2
        out, err = capsys.readouterr()
        assert not out and len(err.strip().splitlines()) == 1 and f"{given} {said}" in err, err


def test_verify_on_a_refresh_s_root_names_its_releases(release, tmp_path, capsys):
    """Given the root a refresh writes releases under, verify said it held no published dataset and that a run stopped
    while publishing is finished by the next run, which does not apply to a root; it names the releases to give."""
    import shutil

    for name in ("2026-10", "2026-11"):
        shutil.copytree(release, tmp_path / "root" / "releases" / name)
    assert main(["verify", str(tmp_path / "root")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "stopped while publishing" not in err, err
    assert "is a refresh's root, which holds releases (2026-10, 2026-11)" in err
    assert f"give one: {tmp_path / 'root' / 'releases' / '2026-11'}" in err


def test_verify_of_an_intact_dataset_says_what_it_checked(release, capsys):
    """It printed 'RELEASE: OK' alone: nothing of how many files, photos and rows it vouched for."""
    totals = json.loads((Path(release) / "manifest.json").read_text())["totals"]
    assert main(["verify", str(release)]) == 0
    out = capsys.readouterr().out
    assert "OK: " in out and " files as manifest.json lists them (size, sha256, records)" in out
    assert f"{totals['kept']:,} photos kept and {totals['rejected']:,} rejected of {totals['input_rows']:,} rows" in out


def test_an_attribution_record_of_millions_of_commas_over_many_lines_is_refused_in_bounded_memory(demo_release,
                                                                                                  tmp_path):
    """The bound was a line's: a quoted value's line breaks let one record run on over lines of 1 million commas each
    (`9,"` then `",,,…,"`), and the reader made one list of 8 bytes a comma of all of them (12 lines: ~100 MB)."""
    import tracemalloc

    from tests.conftest import reseal

    copy = _copy(demo_release, tmp_path)
    with open(copy / "ATTRIBUTION.csv", "a", encoding="utf-8") as handle:
        handle.write('9,"\n' + ('"' + "," * 1_000_000 + '"\n') * 12 + '"\n')
    reseal(copy)
    tracemalloc.start()
    try:
        problems = list(verify(str(copy)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any(p.path.endswith("ATTRIBUTION.csv") and "longer than any a run writes" in p.message
               for p in problems), problems
    assert peak < 60_000_000, peak


def test_a_manifest_that_is_a_link_out_a_pipe_a_folder_or_too_large_is_one_line_and_not_read(release, tmp_path):
    """The files the manifest lists were read only inside the release and only if regular, the manifest itself
    wherever it led: linked to another release's manifest outside the folder it was read and the release said OK
    as that one (linked to /dev/zero, read until memory ran out); a named pipe blocked verify for ever; a folder
    ended it with 'the job failed: IsADirectoryError'. Each is one line, the manifest not read."""
    import subprocess
    import sys

    copy = _copy(release, tmp_path)
    manifest = copy / "manifest.json"
    outside = tmp_path / "outside.json"
    shutil.move(manifest, outside)
    os.symlink(outside, manifest)
    assert _problems(copy) == {("manifest.json", "manifest.json is a link that leads outside the release; not read")}

    manifest.unlink()
    manifest.mkdir()
    assert _problems(copy) == {("manifest.json", "manifest.json is a folder, not a regular file; not read")}

    manifest.rmdir()
    with manifest.open("wb") as handle:  # sparse: past the bound without writing it
        handle.truncate(pipeline.release.verify._MAX_MANIFEST + 1)
    assert _problems(copy) == {("manifest.json", "manifest.json is 67,108,865 bytes, over the 67,108,864 any run "
                                                 "writes; not read")}

    manifest.unlink()
    os.mkfifo(manifest)  # nothing ever writes it: opened for reading, it blocks (in a process of its own)
    try:
        done = subprocess.run([sys.executable, "-m", "pipeline", "verify", str(copy)], capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("verify blocked on a manifest.json that is a named pipe")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.splitlines()[0] == "manifest.json: manifest.json is a named pipe, not a regular file; not read"


def test_a_set_missing_most_of_its_shards_is_one_line_not_one_per_shard(release, tmp_path, capsys):
    """An entry of 60 bytes naming shard 0 of 99,999 printed 99,998 lines, one per hole in the numbering (each entry
    of a manifest of such entries as many): a few holes are a line each, more are one line for their set."""
    copy = _copy(release, tmp_path)
    (copy / "notes").mkdir()
    (copy / "notes" / "pass-00000-of-99999.txt").write_bytes(b"x")
    (copy / "notes" / "pass-00002-of-00004.txt").write_bytes(b"x")
    _edit_manifest(copy, lambda m: m["files"].extend([_listed(copy, "notes/pass-00000-of-99999.txt", b"x"),
                                                       _listed(copy, "notes/pass-00002-of-00004.txt", b"x")]))
    assert _problems(copy) == {
        ("notes/pass-*-of-99999.txt", "99,998 shards of 99,999 are not listed in the manifest, e.g. 1, 2, 3"),
        ("notes/pass-00000-of-00004.txt", "shard 0 of 4 is not listed in the manifest"),
        ("notes/pass-00001-of-00004.txt", "shard 1 of 4 is not listed in the manifest"),
        ("notes/pass-00003-of-00004.txt", "shard 3 of 4 is not listed in the manifest")}
    assert main(["verify", str(copy)]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 5


@pytest.mark.parametrize("extension", ["pax", "gnu_long_name"])
def test_a_tar_with_an_extended_header_is_unreadable_before_tarfile_parses_it(demo_release, tmp_path, extension):
    """A run writes plain USTAR members. A resealed shard whose members came with pax headers (or GNU long names)
    passed, and Python's tarfile parses a pax header with a search quadratic in its size: a header of 80 kB of digits
    took 6 s of CPU, 1 MB a quarter of an hour, a shard of gigabytes for ever. The first extended header is the file
    unreadable, refused from its type."""
    import tarfile

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "webdataset").glob("*.tar"))[0]
    rewritten = io.BytesIO()
    with tarfile.open(shard) as source, tarfile.open(fileobj=rewritten, mode="w", format=(
            tarfile.PAX_FORMAT if extension == "pax" else tarfile.GNU_FORMAT)) as tar:
        for member in source:
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if extension == "pax":
                member.pax_headers = {"comment": "a run never writes this"}
            else:
                member.name = "0" * 100 + member.name  # over the 100 characters of a USTAR name
            tar.addfile(member, io.BytesIO(data))
    shard.write_bytes(rewritten.getvalue())
    reseal(copy)
    problems = [message for path, message in _problems(copy) if path == shard.relative_to(copy).as_posix()]
    kind = "x" if extension == "pax" else "L"
    assert problems == [f"unreadable: a pax or GNU extended header (type '{kind}'), which a run's USTAR tar never "
                        f"holds"], problems


@pytest.mark.parametrize("level", ["example", "feature entry", "feature", "features"])
def test_a_tfrecord_record_of_millions_of_empty_fields_is_refused_in_bounded_memory(demo_release, tmp_path, level):
    """A record's message was split into a list of all its fields before it was found to hold more than one (or
    other than a key and a value): 2 bytes of a resealed record (an empty field, `0a 00`) took a tuple and a
    memoryview, ~120 times the record (3 MB: ~400 MB; a record may be the whole shard); and each of its features was
    kept, ~15 times its bytes, however many (a run writes 15). Only the fields that decide are read, and a record of
    more than 64 features is unreadable at the 65th."""
    from pipeline.release.record_readers import tfrecords

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "tfrecord").glob("*.tfrecord"))[0]
    records = list(tfrecords(shard.read_bytes()))
    empty = b"\x0a\x00" * 1_500_000

    def field(number: int, payload: bytes) -> bytes:
        length, varint = len(payload), b""
        while True:
            varint += bytes([(length & 0x7F) | (0x80 if length > 0x7F else 0)])
            length >>= 7
            if not length:
                return bytes([number << 3 | 2]) + varint + payload

    many = b"".join(field(1, field(1, b"k%07d" % n) + field(2, field(1, field(1, b"")))) for n in range(600_000))
    crafted = {"example": empty,
               "feature entry": field(1, field(1, empty)),
               "feature": field(1, field(1, field(1, b"image/id") + field(2, empty))),
               "features": field(1, many)}[level]
    shard.write_bytes(b"".join(tfrecord_frame(record) for record in [*records, crafted]))
    reseal(copy)
    problems, peak = traced_peak(lambda: _problems(copy))
    [said] = [message for path, message in problems if path == shard.relative_to(copy).as_posix()]
    assert said.startswith("unreadable: "), problems
    assert peak < 60_000_000, peak


@pytest.mark.parametrize("folder", ["parquet", "rejections"])
def test_a_parquet_file_counting_more_rows_than_its_bytes_can_hold_is_unreadable_before_its_rows(demo_release,
                                                                                                 tmp_path, folder):
    """A dictionary-encoded column repeats one value in a few bytes for any number of rows: a resealed shard (or
    rejections file) of kilobytes gave millions of rows, each hashed, digested and its id kept, so that time and
    memory grew with a count the footer states, not with the file. Past 4 rows a byte (100,000 in any file, as for an
    input table) the file is unreadable from its footer, before its first row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.release import record_readers

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / folder).glob("*.parquet"))[0]
    table = pq.read_table(shard)
    first = table.slice(0, 1).to_pylist()
    if "image" in first[0]:  # a small one: written 400,000 times over before the writer encodes it once
        first[0]["image"]["bytes"] = b"x"
    rows = 400_000
    pq.write_table(pa.concat_tables([pa.Table.from_pylist(first, schema=table.schema)] * rows), shard,
                   row_group_size=rows, compression="zstd")
    size = shard.stat().st_size
    assert size * 4 < rows, size
    reseal(copy)
    batches = []
    real = record_readers.bounded_batches

    def counted(*args, **kwargs):
        for batch in real(*args, **kwargs):
            batches.append(batch.num_rows)
            yield batch

    import unittest.mock

    with unittest.mock.patch.object(record_readers, "bounded_batches", counted), \
            unittest.mock.patch("pipeline.release.verify.bounded_batches", counted):
        problems = _problems(copy)
    limit, rule = (max(100_000, size // 128), "one per 128 bytes") if folder == "parquet" else (
        max(100_000, 4 * size), "4 a byte")
    assert (shard.relative_to(copy).as_posix(), f"unreadable: its footer counts {rows:,} rows, over the {limit:,} a "
            f"file of {size:,} bytes may hold ({rule}, 100,000 in any file)") in problems, problems
    assert sum(batches) < 1_000, batches  # the other files' rows alone


def test_a_dataset_shard_of_more_rows_than_its_images_can_take_is_unreadable_before_its_rows(demo_release, tmp_path):
    """Within 4 rows a byte, a resealed dataset shard of 150,000 rows of 8-byte images in 260 kB was read row by row,
    and verify kept ~100 bytes of each (its id, its digests): up to 400 bytes of memory a byte of such a file. A row of
    a run's shard holds a JPEG (hundreds of bytes at the least, incompressible, none twice): a shard of more than one
    row per 128 bytes (100,000 in any) is unreadable from its footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "parquet").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    first = table.slice(0, 1).to_pylist()
    first[0]["image"]["bytes"] = b"x"
    rows = 150_000
    many = pa.Table.from_pylist(first, schema=table.schema).take(pa.array([0] * rows))
    images = pa.StructArray.from_arrays([pa.array([b"%08d" % n for n in range(rows)]), pa.array(["x.jpg"] * rows)],
                                        fields=list(table.schema.field("image").type))
    pq.write_table(many.set_column(many.schema.get_field_index("image"), "image", images), shard,
                   row_group_size=rows, compression="zstd")
    size = shard.stat().st_size
    assert max(100_000, size // 128) < rows <= 4 * size, size  # past this bound, within 4 rows a byte
    reseal(copy)
    assert (shard.relative_to(copy).as_posix(), f"unreadable: its footer counts {rows:,} rows, over the 100,000 a "
            f"file of {size:,} bytes may hold (one per 128 bytes, 100,000 in any file)") in _problems(copy)


def test_a_tar_metadata_member_larger_than_any_run_writes_is_a_stray_member_not_parsed(demo_release, tmp_path):
    """A sample's `.json` member was read whole and parsed whatever its size: JSON of many short keys takes ~12 times
    its bytes as Python objects (a resealed shard's 12 MB member: ~150 MB; a member may be the whole shard). Past
    4 MiB, more than any run writes, it is a record not as a run writes it, skipped unparsed."""
    import tarfile

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "webdataset").glob("*.tar"))[0]
    rewritten = io.BytesIO()
    with tarfile.open(shard) as source, tarfile.open(fileobj=rewritten, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        members = source.getmembers()
        for member in members:
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member is members[1]:
                assert member.name.endswith(".json")
                metadata = json.loads(data)
                metadata.update({f"k{n}": 0 for n in range(1_000_000)})
                data = json.dumps(metadata, separators=(",", ":")).encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    shard.write_bytes(rewritten.getvalue())
    reseal(copy)
    problems, peak = traced_peak(lambda: _problems(copy))
    key = members[1].name.partition(".")[0]
    assert (shard.relative_to(copy).as_posix(), f"2 records not as a run writes them (an image that does not hash to "
            f"the sha256 beside it or holds what no run writes, a stray or unpaired member), e.g. {key}, "
            f"{members[1].name}") in problems, problems
    assert peak < 60_000_000, peak


def test_an_attribution_of_more_rows_than_its_bytes_can_credit_is_unreadable_in_bounded_memory(demo_release,
                                                                                                tmp_path):
    """Each ATTRIBUTION.csv row's id and credit digest are kept (~80 bytes), and a resealed row of `10,,,,,,` takes 9:
    ~9 bytes of memory a byte of the file (25 for rows of an id alone), where a run's row is over 120 bytes (its
    URLs). Past one row per 64 bytes (100,000 in any file) the file is unreadable, read no further."""
    copy = _copy(demo_release, tmp_path)
    with open(copy / "ATTRIBUTION.csv", "a", encoding="utf-8") as handle:
        handle.write("10,,,,,,\n" * 300_000)
    size = (copy / "ATTRIBUTION.csv").stat().st_size
    reseal(copy)
    problems, peak = traced_peak(lambda: _problems(copy))
    assert ("ATTRIBUTION.csv", f"unreadable: over 100,000 rows, more than a file of {size:,} bytes holds as a run "
            "writes it (a row credits a photo in at least 64 bytes: its licence's name and URL, its id)") in problems, \
        problems
    assert peak < 20_000_000, peak


def test_a_tfrecord_length_past_the_end_of_the_file_is_refused_before_the_rest_is_read(demo_release, tmp_path):
    """A record whose length (its CRC right) claims more than the file holds was read to the file's end, all of it
    held at once, before its length was found wrong: a resealed shard of 32 MB of one such record took 32 MB (a
    shard may be gigabytes). It is refused from its header."""
    import struct

    from pipeline.io.formats import masked_crc

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "tfrecord").glob("*.tfrecord"))[0]
    records = len(_tfrecords(shard))
    length = struct.pack("<Q", 1 << 40)
    with open(shard, "ab") as handle:
        handle.write(length + struct.pack("<I", masked_crc(length)) + bytes(32 << 20))
    reseal(copy)
    problems, peak = traced_peak(lambda: _problems(copy))
    assert (shard.relative_to(copy).as_posix(), f"unreadable: record {records} claims 1,099,511,627,776 bytes, past "
            "the end of the file") in problems, problems
    assert peak < 16 << 20, peak


def test_a_parquet_file_stating_a_footer_over_its_bound_is_unreadable_unparsed(demo_release, tmp_path, monkeypatch):
    """pyarrow parses a footer whole at ~15 times its size before the row-count and page checks can look at it: a
    resealed shard of thousands of one-row row groups (a footer of tens of MB) took hundreds of MB to open. Refused
    from the length its last bytes state (here a shard rewritten in one-row row groups, the bound just under its
    footer and over every other file's)."""
    import pyarrow.parquet as pq

    from pipeline.io import parquet_footer

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "parquet").glob("*.parquet"))[0]  # every Parquet file verify reads opens as this one
    pq.write_table(pq.read_table(shard), shard, row_group_size=1)
    reseal(copy)
    footer = pq.ParquetFile(shard).metadata.serialized_size
    others = [pq.ParquetFile(path).metadata.serialized_size for path in copy.glob("**/*.parquet") if path != shard]
    assert max(others) < footer - 1, (others, footer)
    monkeypatch.setattr(parquet_footer, "MAX_FOOTER_BYTES", footer - 1)
    assert (shard.relative_to(copy).as_posix(), f"unreadable: its Parquet footer is {footer:,} bytes, over the limit "
            f"of {footer - 1:,} (a file of fewer, larger row groups has a smaller one)") in _problems(copy)


def test_the_ok_line_reads_the_manifest_again_bounded(tmp_path, monkeypatch, capsys):
    """After every check passed, the OK line read manifest.json again with no bound: replaced meanwhile by a named pipe
    it hung verify for good (by a link to /dev/zero, read until memory ran out). Read as verify reads it; and one it
    cannot read then is a problem (it said "OK: 0 files as manifest.json lists them", exit 0)."""
    import threading

    import pipeline.commands.verify as command

    (tmp_path / "manifest.json").write_text("{}")
    monkeypatch.setattr(command, "verify", lambda release, previous=None: (tmp_path / "manifest.json").unlink()
                        or os.mkfifo(tmp_path / "manifest.json") or iter(()))
    done: list[int] = []
    checking = threading.Thread(target=lambda: done.append(command.verify_command(str(tmp_path))), daemon=True)
    checking.start()
    checking.join(timeout=30)
    assert done == [1]  # not hung; and no "OK: 0 files" for a manifest that went as it was checked
    assert capsys.readouterr().out.strip().splitlines() == [
        f"{tmp_path}/manifest.json: unreadable once checked (changed while verify ran?)", f"{tmp_path}: 1 problem(s)"]


@pytest.mark.parametrize("replaced", ["[]", '{"totals": [], "files": 3}'])
def test_a_manifest_replaced_by_another_json_value_as_it_was_checked_is_a_problem_not_a_crash(tmp_path, monkeypatch,
                                                                                            capsys, replaced):
    """The OK line reads manifest.json again after every check passed: one replaced meanwhile by a JSON list ended
    verify as "the job failed: AttributeError"; one whose totals or files are of another type too. A manifest that is
    no object then is a problem; fields of another type say no count."""
    import pipeline.commands.verify as command

    (tmp_path / "manifest.json").write_text("{}")
    monkeypatch.setattr(command, "verify", lambda release, previous=None: (tmp_path / "manifest.json").write_text(
        replaced) and iter(()))
    code = command.verify_command(str(tmp_path))
    said = capsys.readouterr().out.strip().splitlines()
    if replaced == "[]":
        assert code == 1 and said == [f"{tmp_path}/manifest.json: unreadable once checked (changed while verify ran?)",
                                      f"{tmp_path}: 1 problem(s)"]
    else:
        assert code == 0 and said == [f"{tmp_path}: OK: 0 files as manifest.json lists them (size, sha256, records)"]


def test_a_listed_file_gone_between_its_checks_is_a_problem_not_the_jobs_failure(release, tmp_path, monkeypatch):
    """A listed file removed between verify's existence check and its stat (a folder being cleaned as it is checked)
    ended verify as "the job failed: FileNotFoundError"."""
    import pipeline.release.verify as checks

    copy = _copy(release, tmp_path)
    real = checks.size_and_kind

    def vanished(path: str):
        if path.endswith("stats.json"):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real(path)

    monkeypatch.setattr(checks, "size_and_kind", vanished)
    problems = _problems(copy)
    assert [message for path, message in problems if path == "stats.json"] == [
        f"unreadable: [Errno 2] No such file or directory: '{copy}/stats.json'"], problems


def test_a_manifest_replaced_by_a_named_pipe_as_it_is_read_is_one_line_not_a_hang(release, tmp_path, monkeypatch):
    """The manifest's kind was taken (a regular file), then it was opened as any file: replaced by a named pipe in
    between, verify waited for a writer for good, the race the OK line's read of it was mended for. It is opened
    without waiting and judged by what was opened."""
    import threading

    import pipeline.release.verify as checks

    copy = _copy(release, tmp_path)
    manifest = copy / "manifest.json"
    real = checks.size_and_kind

    def then_replaced(path: str):
        found = real(path)
        if path.endswith("manifest.json"):
            manifest.unlink()
            os.mkfifo(manifest)  # nothing ever writes it
        return found

    monkeypatch.setattr(checks, "size_and_kind", then_replaced)
    found: list = []
    checking = threading.Thread(target=lambda: found.append(_problems(copy)), daemon=True)
    checking.start()
    checking.join(timeout=60)
    assert found == [{("manifest.json", f"manifest.json changed as it was read ({manifest} is no regular file); not "
                                        "read")}]


def _in_a_thread(check, pipe: Path, timeout: float = 30) -> list:
    """[`check()`'s result], or [] when it did not end within `timeout` (it waits on the named pipe `pipe`, which is
    then opened for writing and closed, so that the waiting read gets its end and the thread ends)."""
    import threading

    found: list = []
    checking = threading.Thread(target=lambda: found.append(check()), daemon=True)
    checking.start()
    checking.join(timeout=timeout)
    if not checking.is_alive():
        return found
    if pipe.exists():
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        checking.join(timeout=timeout)
    return []


@pytest.mark.parametrize("replacement", ["a named pipe", "another shard"])
def test_a_listed_file_replaced_once_hashed_is_parsed_as_hashed_not_opened_again(demo_release, tmp_path, monkeypatch,
                                                                                  replacement):
    """A listed file was hashed, then opened again to be parsed: replaced in between by a named pipe (nothing writes
    it), verify waited for a writer for good; replaced by another file, it read that one's bytes, not those it had
    hashed. It is opened once, and its bytes are hashed and parsed through that one handle: what was hashed is what is
    parsed, and the release as it was when the file was opened is intact."""
    from pipeline.io.files import HashingReader

    copy = _copy(demo_release, tmp_path)
    shard, other = sorted((copy / "tfrecord").glob("*.tfrecord"))[:2]
    inode, replaced = shard.stat().st_ino, []
    real = HashingReader.finish

    def then_replaced(self):
        result = real(self)
        if not replaced and os.fstat(self._handle.fileno()).st_ino == inode:  # its bytes hashed: replaced now
            replaced.append(shard.name)
            if replacement == "a named pipe":
                shard.unlink()
                os.mkfifo(shard)
            else:
                os.replace(shutil.copy(other, tmp_path / "other"), shard)
        return result

    monkeypatch.setattr(HashingReader, "finish", then_replaced)
    assert _in_a_thread(lambda: _problems(copy), shard) == [set()]
    assert replaced == [shard.name]


def test_a_listed_file_written_in_place_between_its_hash_and_its_parse_is_said_to_have_changed(demo_release, tmp_path,
                                                                                                  monkeypatch):
    """A file whose bytes are the manifest's when hashed, then written in place (same inode, same size) before it is
    parsed: what is parsed is hashed again, and the difference is the one line "changed while it was being read".
    Without that second hash, the parse read bytes nothing had checked against the manifest, unsaid."""
    import pipeline.release.verify as checks

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "tfrecord").glob("*.tfrecord"))[0]
    inode, real = shard.stat().st_ino, checks._read

    def written_in_place_first(fmt, reader, size, accounts):
        if os.fstat(reader._handle.fileno()).st_ino == inode:
            with open(shard, "r+b") as out:
                out.seek(size // 2)
                byte = out.read(1)
                out.seek(size // 2)
                out.write(bytes([byte[0] ^ 0xFF]))
        return real(fmt, reader, size, accounts)

    monkeypatch.setattr(checks, "_read", written_in_place_first)
    relative = shard.relative_to(copy).as_posix()
    assert (relative, "changed while it was being read") in _problems(copy)


def test_a_listed_file_replaced_by_a_named_pipe_after_its_kind_was_taken_is_one_line_not_a_hang(demo_release,
                                                                                                  tmp_path,
                                                                                                  monkeypatch):
    """A listed file's kind was taken (a regular file), then it was opened as any file: replaced by a named pipe in
    between, verify waited for a writer for good (as it did for the manifest). It is opened without waiting and judged
    by what was opened."""
    import pipeline.release.verify as checks

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / "tfrecord").glob("*.tfrecord"))[0]
    real = checks.size_and_kind

    def then_replaced(path: str):
        found = real(path)
        if path == str(shard):
            shard.unlink()
            os.mkfifo(shard)  # nothing ever writes it
        return found

    monkeypatch.setattr(checks, "size_and_kind", then_replaced)
    found = _in_a_thread(lambda: _problems(copy), shard)
    relative = shard.relative_to(copy).as_posix()
    assert found and (relative, f"changed as it was read ({shard} is no regular file); not read") in found[0], found


UNLISTABLE = "cannot be listed (Permission denied): a file in it that the manifest does not list would go unseen"


def test_a_folder_verify_cannot_list_is_a_problem_naming_it(demo_release, tmp_path, monkeypatch, capsys):
    """A folder of the release verify could not list was skipped without a word (os.walk's default): an unlisted
    shard in it went unseen, and the release passed. The folder is a problem line, exit 1."""
    copy = _copy(demo_release, tmp_path)
    hidden = copy / "parquet" / "more"
    hidden.mkdir()
    shutil.copy(next((copy / "parquet").glob("*.parquet")), hidden / "pass-00000-of-00001.parquet")
    real = os.scandir

    def refused(path="."):
        if os.fspath(path) == str(hidden):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", refused)
    assert _problems(copy) == {("parquet/more", UNLISTABLE)}
    assert main(["verify", str(copy)]) == 1
    assert f"parquet/more: {UNLISTABLE}" in capsys.readouterr().out.splitlines()


def test_a_folder_gone_as_verify_lists_the_release_is_no_problem(demo_release, tmp_path, monkeypatch):
    """A folder removed between the listing of its parent and its own (a run removing its staging folder beside the
    dataset) holds nothing to check: not a folder verify cannot list."""
    copy = _copy(demo_release, tmp_path)
    gone = copy / "_staging" / "run"
    gone.mkdir(parents=True)
    real = os.scandir

    def removed_first(path="."):
        if os.fspath(path) == str(gone):
            gone.rmdir()
        return real(path)

    monkeypatch.setattr(os, "scandir", removed_first)
    assert _problems(copy) == set()


def test_a_folder_chmod_000_keeps_verify_from_listing_is_a_problem(demo_release, tmp_path):
    """The same with the disk's own refusal (a folder of another user, or chmod 000), verify run as a command. Root
    (or CAP_DAC_READ_SEARCH) lists any folder, so as root the command runs without those capabilities (setpriv)."""
    copy = _copy(demo_release, tmp_path)
    hidden = copy / "more"
    hidden.mkdir()
    (hidden / "extra.parquet").write_bytes(b"x")
    command = as_a_user_the_disk_refuses([sys.executable, "-m", "pipeline", "verify", str(copy)],
                                         "lists a chmod 000 folder")
    hidden.chmod(0)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        hidden.chmod(0o755)
    assert done.returncode == 1 and f"more: {UNLISTABLE}" in done.stdout.splitlines(), (done.stdout, done.stderr)


def _left_staging(output: Path, what: str) -> Path:
    """A staging folder as a run leaves it in `output`: `what` says at which point it was stopped."""
    from pipeline.io.layout import PUBLISHING, STAGED_IMAGES, STAGING

    staging = output / STAGING / "20261204T000000-0000abcd"
    (staging / STAGED_IMAGES).mkdir(parents=True)
    (staging / STAGED_IMAGES / f"{'0' * 64}.jpg").write_bytes(b"\xff\xd8")
    if what == "its publish through but for removing its folder":
        (staging / PUBLISHING).write_text(json.dumps({"files": ["manifest.json"]}))
    elif what == "a plan that is a named pipe beside its manifest":
        (staging / "manifest.json").write_text("{}")
        os.mkfifo(staging / PUBLISHING)
    elif what == "a plan that is a link beside its manifest":  # the next run never follows it: no plan, removed
        (staging / "manifest.json").write_text("{}")
        (output.parent / "plan.json").write_text(json.dumps({"files": ["manifest.json"]}))
        (staging / PUBLISHING).symlink_to(output.parent / "plan.json")
    return staging


@pytest.mark.parametrize("what", ["before publishing", "its publish through but for removing its folder",
                                  "a plan that is a named pipe beside its manifest",
                                  "a plan that is a link beside its manifest"])
def test_a_staging_folder_beside_a_run_s_dataset_is_said_in_a_note(demo_release, tmp_path, capsys, what):
    """What a stopped run left in `_staging/` beside a run's dataset went unmentioned: it is no part of the dataset
    (the next run removes it) and the verdict stands, but one line says it is there and what it is. In a published
    release (a refresh's), where no run writes, each of its files stays a problem."""
    output = _copy(demo_release, tmp_path)
    staging = _left_staging(output, what)
    assert main(["verify", str(output)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"{output}/_staging: note: 1 run folder(s) ({staging.name}) left by a run stopped before "
                        "publishing (or as it removed its folder once published), or by a run under way: no part of "
                        "the dataset, not checked; the next run into the folder removes them")
    assert len(lines) == 2 and lines[1].startswith(f"{output}: OK: ")
    _edit_manifest(output, lambda manifest: manifest.update(release="2026-12"))
    assert main(["verify", str(output)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"_staging/{staging.name}/_images/{'0' * 64}.jpg: not listed in the manifest" in lines
    assert not [line for line in lines if "note:" in line]


def test_a_staging_note_quotes_a_typed_folders_unprintable_name_as_every_report_line_does(tmp_path, capsys):
    """The note on the staging folders runs left beside a run's dataset begins with the folder as typed: one named
    with ESC [2J, a right-to-left override and a line break was printed as it was, its escape sent to the terminal
    and a forged `release: OK` line of its own. Its path is in Python's quoting, as every report line's path is
    (`quoted`), and reads back as the folder."""
    import ast

    from pipeline.release.verify import staging_note

    output = tmp_path / "d\x1b[2J\u202e\nrelease: OK"
    staging = _left_staging(output, "before publishing")
    note = staging_note(str(output))
    assert note.isprintable() and not note.startswith("release: OK"), note
    path, said = note.split(": note: ", 1)
    assert ast.literal_eval(path) == f"{output}/_staging"
    assert said.startswith(f"1 run folder(s) ({staging.name}) left by a run stopped before publishing"), said


def test_a_publish_stopped_before_its_manifest_moved_in_is_a_problem(demo_release, tmp_path, monkeypatch, capsys):
    """A run stopped as it published, its plan written and the dataset before it not yet touched: that dataset
    verified, exit 0, with nothing said of the staging folder, though the next run into the folder replaces it with
    the stopped run's (it carries the plan out first). The folder is no finished dataset: a problem naming the staging
    folder, exit 1; once the next run has carried the publish out, the dataset verifies."""
    import pipeline.io.layout as layout

    output = _copy(demo_release, tmp_path)
    staging = _left_staging(output, "before publishing")
    shutil.copytree(demo_release, staging, dirs_exist_ok=True)  # a rerun's dataset, staged whole
    with monkeypatch.context() as stopped:
        stopped.setattr(layout, "_carry_out", lambda *args: None)  # stopped once its plan was written
        layout.publish(str(staging), str(output))
    assert (staging / layout.PUBLISHING).exists() and (staging / "manifest.json").exists()
    assert main(["verify", str(output)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"_staging/{staging.name}: a publish not through (its plan written, its manifest not moved in): a run stopped "
        "as it published, or publishing now; the next run into the folder carries it out, replacing the dataset "
        "checked here with that run's", f"{output}: 1 problem(s)"]
    assert layout.finish_interrupted_publish(str(output)) == staging.name  # what the next run does first
    layout.remove_staging(str(output))
    assert not (output / "_staging").exists() and main(["verify", str(output)]) == 0


def test_verify_holds_a_releases_photo_ids_as_numbers(tmp_path):
    """verify held each format's photo ids as a Counter of text, the reference format's image and credit digests in
    dicts by id, and the ledger's and index's kept ids in sets: ~1.4 GB for a release of 1.44 million photos. Ids that
    are numbers are held as 8 bytes each, their digests as 16: the peak for 30,000 photos in shards of 1,000 (Parquet,
    ATTRIBUTION.csv, ledger and index) is under half what it was (~21 MB), and the release still verifies."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io.attribution import attribution_csv, attribution_row
    from pipeline.io.formats import WRITERS, write_all
    from tests.conftest import photo

    count, per_shard, shards = 30_000, 1_000, 30
    ids = [str(50_000_000 + 7 * i) for i in range(count)]
    entries, rows = [], []
    (tmp_path / "parquet").mkdir()
    for shard in range(shards):
        photos = []
        for photo_id in ids[shard * per_shard:(shard + 1) * per_shard]:
            image = as_stored_jpeg(hashlib.sha256(photo_id.encode()).digest() * 5)  # incompressible, as a JPEG
            photos.append(photo(photo_id, image=image, sha256=hashlib.sha256(image).hexdigest()))
        path = f"parquet/pass-{shard:05d}-of-{shards:05d}.parquet"
        with open(tmp_path / path, "wb") as handle:
            write_all(WRITERS["parquet"][1](handle), photos)
        entries.append({"path": path, "format": "parquet", "records": len(photos)})
        rows += [attribution_row(each) for each in photos]
    (tmp_path / "ATTRIBUTION.csv").write_bytes(attribution_csv(rows))
    entries.append({"path": "ATTRIBUTION.csv", "format": "attribution"})
    for folder, prefix, columns in (("ledger", "ledger", {"decision": ["kept"] * count}), ("near_dup_index", "index",
                                                                                          {})):
        (tmp_path / folder).mkdir()
        path = f"{folder}/{prefix}-00000-of-00001.parquet"
        pq.write_table(pa.table({"photo_id": ids, **columns}), tmp_path / path)
        entries.append({"path": path, "format": folder, "records": count})
    for entry in entries:
        data = (tmp_path / entry["path"]).read_bytes()
        entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (tmp_path / "manifest.json").write_text(json.dumps({"files": sorted(entries, key=lambda e: e["path"]),
                                                        "options": {}}))
    problems, peak = traced_peak(lambda: list(verify(str(tmp_path))))
    assert problems == []
    assert peak < 9_000_000, f"{peak:,} bytes at the peak for {count:,} photos"


_RECORD_IDS = st.one_of(st.integers(1, 9).map(str), st.sampled_from(["07", "7 ", "x", "", "99999999999999999999"]))


@hypothesis.given(st.lists(st.tuples(st.booleans(), st.booleans(),
                                     st.lists(st.tuples(_RECORD_IDS, st.integers(0, 2))))), st.integers(1, 4))
def test_the_reference_digests_are_compared_as_a_dict_of_them_was(files, chunk):
    """Each file: whether it is the reference format's, whether its ids come as an `IdList` (ATTRIBUTION.csv's) or a
    list, and its records (id, digest). The first digest the reference gave an id is the one compared with; an id it
    has not given yet differs in nothing; an id twice in a file is compared twice. A file's ids are compared `chunk` at
    a time."""
    from unittest import mock

    import pipeline.release.verify as verifying
    from pipeline.release.id_sets import IdList
    from pipeline.release.record_readers import DIGEST

    held, oracle = verifying._Digests(), {}
    with mock.patch.object(verifying, "_CHUNK_IDS", chunk):
        for reference, as_numbers, records in files:
            ids, blob = [photo_id for photo_id, _ in records], b"".join(bytes([d]) * DIGEST for _, d in records)
            given = IdList(ids) if as_numbers else ids
            if reference:
                held.add(given, blob)
                for photo_id, digest in records:
                    oracle.setdefault(photo_id, digest)
            else:
                assert held.differing(given, blob) == [photo_id for photo_id, digest in records
                                                       if oracle.get(photo_id, digest) != digest]


@hypothesis.given(st.lists(st.tuples(_RECORD_IDS, st.integers(0, 2))),
                  st.lists(st.tuples(st.booleans(), st.lists(st.tuples(_RECORD_IDS, st.integers(0, 2),
                                                                       st.integers(0, 2))))), st.integers(1, 4))
def test_a_record_of_two_credits_differs_only_where_neither_is_the_references(reference, files, chunk):
    """A shard's record gives two credit digests (the credit this version writes, the one an earlier one wrote): it
    differs from ATTRIBUTION.csv's (the reference, a digest an id) only where neither is the reference's digest of
    its id; an id the reference has not given differs in nothing."""
    from unittest import mock

    import pipeline.release.verify as verifying
    from pipeline.release.id_sets import IdList
    from pipeline.release.record_readers import DIGEST

    held, oracle = verifying._Digests(), {}
    with mock.patch.object(verifying, "_CHUNK_IDS", chunk):
        held.add(IdList([photo_id for photo_id, _ in reference]), b"".join(bytes([d]) * DIGEST for _, d in reference))
        for photo_id, digest in reference:
            oracle.setdefault(photo_id, digest)
        for as_numbers, records in files:
            ids = [photo_id for photo_id, _, _ in records]
            blob = b"".join(bytes([first]) * DIGEST + bytes([earlier]) * DIGEST for _, first, earlier in records)
            assert held.differing(IdList(ids) if as_numbers else ids, blob, 2) == [
                photo_id for photo_id, first, earlier in records if oracle.get(photo_id, first) not in (first, earlier)]


def test_the_reference_digests_are_let_go_before_the_tables_are_read(demo_release, monkeypatch):
    """The reference format's image and credit digests (~48 bytes a photo with their numbers) are compared only with
    the other formats' records; held until verify ended, they were beside the rejections', ledger's and index's ids as
    those were read and counted, and set verify's peak there (at 1.44 million photos the traced peak of those steps
    157 -> 91 MiB). Every file that is no dataset file is read with none of them held."""
    import pipeline.release.verify as verifying

    made: list = []

    class Seen(verifying._Seen):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    held: dict[str, int] = {}
    real_check = verifying._check_file

    def check(release, entry, ids, seen, accounts, *pins):
        if entry["format"] not in verifying.PHOTO_FORMATS:
            held[entry["format"]] = max(held.get(entry["format"], 0), sum(
                digests.numbers.nbytes + digests.digests.nbytes + sum(n.nbytes + r.nbytes for n, r in digests.pending)
                for digests in seen.digests.values()))
        return (yield from real_check(release, entry, ids, seen, accounts, *pins))

    monkeypatch.setattr(verifying, "_Seen", Seen)
    monkeypatch.setattr(verifying, "_check_file", check)
    kept = json.loads((demo_release / "manifest.json").read_text())["totals"]["kept"]
    assert list(verify(str(demo_release))) == [] and len(made) == 1 and kept > 0
    assert set(held) >= {"rejections", "ledger", "near_dup_index", "stats"}, held
    assert held == dict.fromkeys(held, 0), f"digests held as the tables were read ({kept} photos): {held}"


def test_verify_holds_attribution_ids_as_numbers_not_a_list_of_text(tmp_path):
    """ATTRIBUTION.csv gives a release's photo ids at once: they were one list of text (~100 MiB of verify's peak at
    1.44 million photos), and each part of them compared with the reference's digests was made text again. Held as
    numbers (`IdList`), 8 bytes an id: the peak for 200,000 rows is under two thirds of what it was (151 bytes a row),
    and the file still verifies."""
    from pipeline.io.attribution import attribution_csv, attribution_row
    from tests.conftest import photo

    rows = 200_000
    data = attribution_csv([attribution_row(photo(str(5_000_000_000 + 37 * i))) for i in range(rows)])
    (tmp_path / "ATTRIBUTION.csv").write_bytes(data)
    entry = {"path": "ATTRIBUTION.csv", "format": "attribution", "bytes": len(data),
             "sha256": hashlib.sha256(data).hexdigest()}
    (tmp_path / "manifest.json").write_text(json.dumps({"files": [entry], "options": {}}))
    del data
    problems, peak = traced_peak(lambda: list(verify(str(tmp_path))))
    assert problems == []
    assert peak < 90 * rows, f"{peak:,} bytes at the peak for {rows:,} rows"


@pytest.mark.parametrize(("folder", "hidden"), [("ledger", 1), ("ledger", "all"), ("parquet", 1), ("rejections", 1)])
def test_a_parquet_file_whose_footer_hides_rows_it_holds_is_unreadable(demo_release, tmp_path, folder, hidden):
    """Parquet readers read the rows a footer states for a row group and no more. A resealed ledger whose footer
    stated 14 of its 15 rows, or none, its column chunks' counts too, hid rows the release decided (a photo rejected:
    the next refresh, which reads the ledger after verify, decided it again), and verify passed it; a dataset shard or
    rejections file so forged was said to lack a photo or a rejection, never why. Each row group's columns read must
    hold as many values as it states rows, as the footer and each page header count them."""
    import pyarrow.parquet as pq

    copy = _copy(demo_release, tmp_path)
    shard = sorted((copy / folder).glob("*.parquet"))[0]
    metadata = pq.ParquetFile(shard).metadata
    rows = metadata.row_group(0).num_rows
    stated = 0 if hidden == "all" else rows - hidden
    with_integers(shard, {(3,): metadata.num_rows - rows + stated, rows_of(0): stated,
                          **{values_of(0, leaf): stated for leaf in range(metadata.num_columns)}})
    reseal(copy)
    assert (shard.relative_to(copy).as_posix(), f"unreadable: row group 1 states {stated} rows, its column "
            f"'photo_id' holds {rows} values (as its pages' headers say): the file's rows cannot be told") \
        in _problems(copy)



@pytest.mark.parametrize("folder", ["ledger", "rejections", "near_dup_index"])
def test_a_table_whose_footer_counts_other_rows_than_its_row_groups_is_unreadable(demo_release, tmp_path, folder):
    """verify compared a table's file-level row count (the footer's `num_rows`) with its manifest entry, not the rows
    its row groups state, which is what every reader reads (and verify checks against their values): a resealed
    ledger, rejections or index file stating one row fewer in all than its row groups hold (the manifest resealed to
    match) passed, its `records` one less than the rows it gives. A footer whose count is not its row groups' sum is
    no file a writer makes: the file is unreadable, naming both counts."""
    import pyarrow.parquet as pq

    copy = _copy(demo_release, tmp_path)
    shard = next(path for path in sorted((copy / folder).glob("*.parquet")) if pq.read_metadata(path).num_rows)
    rows = pq.read_metadata(shard).num_rows
    with_integers(shard, {(3,): rows - 1})
    reseal(copy)
    assert pq.read_metadata(shard).num_rows == rows - 1 and pq.read_table(shard).num_rows == rows
    assert (shard.relative_to(copy).as_posix(), f"unreadable: its footer counts {rows - 1} rows in all, its row "
            f"groups {rows}") in _problems(copy)


def test_a_table_rows_creator_link_verifies_as_an_earlier_version_or_this_one_wrote_it(tmp_path):
    """A table's rows hold no owner id: ATTRIBUTION.csv links the account their Flickr page names (or their owner
    column credits) now, where an earlier version wrote no link. A release either wrote verifies (a refresh verifies
    the release it carries first); one linking another account, or linking a row whose account is unknown, does not."""
    import csv

    from pipeline.io.attribution import ATTRIBUTION_COLUMNS
    from pipeline.io.sinks import csv_bytes
    from tests.conftest import photo

    def table_photo(photo_id: str, owner_name: str, page_url: str):
        image = as_stored_jpeg(photo_id.encode() * 64)
        return photo(photo_id, source="table", owner_nsid="", owner_name=owner_name, page_url=page_url, image=image,
                     sha256=hashlib.sha256(image).hexdigest())

    photos = [table_photo("11", "Ann", "https://www.flickr.com/photos/0012@n01/11/"),
              table_photo("12", "34@N02", "https://example.org/12.jpg"),
              table_photo("13", "Bo", "https://www.flickr.com/photos/someone/13/")]
    folder = _release_of(tmp_path / "release", photos, ["webdataset", "parquet", "tfrecord"])
    rows = list(csv.reader(io.StringIO((folder / "ATTRIBUTION.csv").read_text(encoding="utf-8"))))[1:]
    assert [row[2] for row in rows] == ["https://www.flickr.com/people/12@N01/", "https://www.flickr.com/people/34@N02/",
                                        ""]
    assert _problems(folder) == set()

    def rewritten(links: list[str]) -> set:
        (folder / "ATTRIBUTION.csv").write_bytes(csv_bytes(ATTRIBUTION_COLUMNS, [
            [*row[:2], link, *row[3:]] for row, link in zip(rows, links, strict=True)]))
        reseal(folder)
        return _problems(folder)

    assert rewritten(["", "", ""]) == set()  # as an earlier version wrote it
    elsewhere = ["https://www.flickr.com/people/34@N02/", rows[1][2], ""]  # row 11 linked to another account
    unknown = [rows[0][2], rows[1][2], "https://www.flickr.com/people/12@N01/"]  # row 13's account is unknown
    for links, photo_id in ((elsewhere, "11"), (unknown, "13")):
        assert rewritten(links) == {(fmt, f"1 photos whose credit differs from attribution's, e.g. {photo_id}")
                                    for fmt in ("parquet", "tfrecord", "webdataset")}


def test_a_creator_link_or_name_removed_from_attribution_is_reported_though_an_earlier_version_wrote_alike(
        tmp_path):
    """ATTRIBUTION.csv holds no owner id, so read alone, a Flickr row whose page names its owner's account, its
    creator link removed, looked like a table's row an earlier version wrote without one; and a table's row crediting
    an account id by name, that name emptied, like a blank name an earlier version wrote. Both passed verify. Each
    shard's record says which it is; the cells an earlier version did write that way still verify."""
    import csv

    from pipeline.io.attribution import ATTRIBUTION_COLUMNS
    from pipeline.io.sinks import csv_bytes
    from tests.conftest import photo

    def made(photo_id: str, owner_name: str, owner_nsid: str, page_url: str, source: str):
        image = as_stored_jpeg(photo_id.encode() * 64)
        return photo(photo_id, source=source, owner_nsid=owner_nsid, owner_name=owner_name, page_url=page_url,
                     image=image, sha256=hashlib.sha256(image).hexdigest())

    photos = [made("21", "Ann", "12@N01", "https://www.flickr.com/photos/12@N01/21/", "yfcc"),
              made("22", "34@N02", "", "https://example.org/22.jpg", "table"),
              made("23", "", "", "https://www.flickr.com/photos/56@N03/23/", "table")]
    folder = _release_of(tmp_path / "release", photos, ["webdataset", "parquet", "tfrecord"])
    rows = list(csv.reader(io.StringIO((folder / "ATTRIBUTION.csv").read_text(encoding="utf-8"))))[1:]
    assert [row[1:3] for row in rows] == [["Ann", "https://www.flickr.com/people/12@N01/"],
                                          ["34@N02", "https://www.flickr.com/people/34@N02/"],
                                          ["56@N03", "https://www.flickr.com/people/56@N03/"]]
    assert _problems(folder) == set()

    def rewritten(cells: list[list[str]]) -> set:
        (folder / "ATTRIBUTION.csv").write_bytes(csv_bytes(ATTRIBUTION_COLUMNS, [
            [row[0], *written, *row[3:]] for row, written in zip(rows, cells, strict=True)]))
        reseal(folder)
        return _problems(folder)

    # As an earlier version wrote them: a table's rows without links, a blank name blank. That version's TFRecord
    # held the blank name as its creator, this one's the account its page names, as no earlier version's did whose
    # ATTRIBUTION.csv left the name blank: the TFRecord alone differs from the mix (test_record_readers.py checks
    # the TFRecord record an earlier version wrote).
    assert rewritten([rows[0][1:3], ["34@N02", ""], ["", ""]]) == {
        ("tfrecord", "1 photos whose credit differs from attribution's, e.g. 23")}
    assert rewritten([rows[0][1:3], ["34@N02", ""], rows[2][1:3]]) == set()
    for cells, photo_id in (([["Ann", ""], *(row[1:3] for row in rows[1:])], "21"),
                            ([rows[0][1:3], ["", rows[1][2]], rows[2][1:3]], "22")):
        assert rewritten(cells) == {(fmt, f"1 photos whose credit differs from attribution's, e.g. {photo_id}")
                                    for fmt in ("parquet", "tfrecord", "webdataset")}


def test_a_table_row_crediting_its_pages_account_by_id_verifies_as_an_earlier_version_wrote_it(tmp_path):
    """A table made from Flickr's search answers credits the owner's account id by name, its page naming the same
    account. An earlier version wrote its ATTRIBUTION.csv row without a creator link, and the name as the TFRecord's
    creator, as this one does: that release failed verify (the TFRecord's creator read as a blank name credited by
    the account, its row as one an earlier version wrote blank), the Parquet shard and the tar passing."""
    import csv

    from pipeline.io.attribution import ATTRIBUTION_COLUMNS
    from pipeline.io.sinks import csv_bytes
    from tests.conftest import photo

    image = as_stored_jpeg(b"24" * 64)
    folder = _release_of(tmp_path / "release", [
        photo("24", source="table", owner_nsid="", owner_name="56@N03",
              page_url="https://www.flickr.com/photos/56@N03/24/", image=image,
              sha256=hashlib.sha256(image).hexdigest())], ["webdataset", "parquet", "tfrecord"])
    rows = list(csv.reader(io.StringIO((folder / "ATTRIBUTION.csv").read_text(encoding="utf-8"))))[1:]
    assert [row[1:3] for row in rows] == [["56@N03", "https://www.flickr.com/people/56@N03/"]]
    assert _problems(folder) == set()
    (folder / "ATTRIBUTION.csv").write_bytes(csv_bytes(ATTRIBUTION_COLUMNS, [[*rows[0][:2], "", *rows[0][3:]]]))
    reseal(folder)
    assert _problems(folder) == set()


def test_a_dataset_folder_typed_with_terminal_escapes_and_a_line_break_is_named_in_one_printable_last_line(
        tmp_path, monkeypatch, capsys):
    """The last line names the folder as typed (pasted from a listing, a script's variable): one named with an OSC 52,
    ESC [2J, a right-to-left override and a line break was printed as it was, its escapes sent to the terminal and
    a forged `release: OK` line of its own. It is one line, the folder escaped as Python writes it in a string (a
    report line's path keeps Python's quoting: `_reported`)."""
    import pipeline.commands.verify as command

    folder = tmp_path / "d\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\u202e\nrelease: OK"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    monkeypatch.setattr(command, "verify", lambda release, previous=None: iter(()))
    assert command.verify_command(str(folder)) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and not any(line.startswith("release: OK") for line in out.splitlines()), out
    assert out == (f"{tmp_path}/d\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\nrelease: OK: OK: 0 files as "
                   "manifest.json lists them (size, sha256, records)\n")


def test_a_manifest_gone_as_it_was_checked_is_a_report_line_quoting_a_typed_folders_unprintable_name(
        tmp_path, monkeypatch, capsys):
    """The problem line of a manifest gone once checked names it under the folder as typed: a folder named with ESC [2J
    and a line break was printed as it was, its escape sent to the terminal and a forged `release: OK` line of its
    own. The path is in Python's quoting, as every report line's path is (`quoted`)."""
    import ast

    import pipeline.commands.verify as command

    folder = tmp_path / "d\x1b[2J\nrelease: OK"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    monkeypatch.setattr(command, "verify", lambda release, previous=None: (folder / "manifest.json").unlink()
                        or iter(()))
    assert command.verify_command(str(folder)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "\x1b" not in lines[0], lines
    path, said = lines[0].rsplit(": ", 1)
    assert ast.literal_eval(path) == f"{folder}/manifest.json"
    assert said == "unreadable once checked (changed while verify ran?)"
