"""What a check read of a file is what a later read reads, or the later read refuses (pipeline/io/file_pins.py): a
local file by its device, inode, size and times (GCS objects by generation: test_cloud_storage.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.io.file_pins import LAUNCH_CHECK, VERIFIED, ChangedSinceChecked, Pins
from pipeline.io.files import open_regular_file


def _checked(*paths: Path, folder: Path | None = None) -> Pins:
    pins = Pins()
    for path in paths:
        with open_regular_file(str(path)) as handle:
            handle.read()
            pins.add(str(path), handle, VERIFIED)
    if folder is not None:
        pins.folders.add(str(folder))
    return pins


def _past_its_change_time(path: Path) -> None:
    """Until the filesystem's clock (coarse: a few ms a tick) is past `path`'s change time, so that a write now is
    given another one (a write in the same tick is given the same), as it is for a release written before a refresh."""
    probe = path.with_name("probe")
    probe.touch()
    while probe.stat().st_ctime_ns <= path.stat().st_ctime_ns:
        os.utime(probe)
    probe.unlink()


def test_a_file_as_it_was_checked_is_read_under_any_spelling_of_its_path(tmp_path):
    path = tmp_path / "a.parquet"
    path.write_bytes(b"checked")
    pins = _checked(path)
    with pins.open(f"{tmp_path}/./a.parquet", VERIFIED) as handle:
        assert handle.read() == b"checked"
        pins.check(str(path), handle, VERIFIED)


def test_a_file_written_in_place_with_its_modification_time_set_back_is_refused(tmp_path):
    """Its inode, size and modification time may all be as they were: its change time is not (no user sets it)."""
    path = tmp_path / "a.parquet"
    path.write_bytes(b"checked")
    pins = _checked(path)
    before = path.stat()
    _past_its_change_time(path)
    with open(path, "r+b") as handle:
        handle.write(b"CHANGED")  # the same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_ino, path.stat().st_size, path.stat().st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)
    with pytest.raises(ChangedSinceChecked, match=r"a\.parquet changed since verify checked it \(written in place\)"):
        pins.open(str(path), VERIFIED)


def test_a_file_written_in_place_as_it_is_read_is_refused_once_read(tmp_path):
    path = tmp_path / "a.parquet"
    path.write_bytes(b"checked")
    pins = _checked(path)
    with pins.open(str(path), VERIFIED) as handle:
        path.write_bytes(b"checked and more")
        assert handle.read() == b"checked and more"
        with pytest.raises(ChangedSinceChecked, match="written in place: 7 bytes then, 16 now"):
            pins.check(str(path), handle, VERIFIED)


def test_another_file_under_its_name_is_refused(tmp_path):
    path = tmp_path / "a.parquet"
    path.write_bytes(b"checked")
    pins = _checked(path)
    (tmp_path / "new").write_bytes(b"checked")  # the same bytes, another file
    os.replace(tmp_path / "new", path)
    with pytest.raises(ChangedSinceChecked, match="another file under its name"):
        pins.open(str(path), VERIFIED)


def test_a_file_added_to_a_checked_folder_or_gone_from_it_is_refused_by_name(tmp_path):
    """A glob read again lists a file added since (never checked) and leaves out one removed (its rows gone unsaid):
    the one is refused, the other listed still, and refused as gone."""
    kept, removed = tmp_path / "a.parquet", tmp_path / "b.parquet"
    kept.write_bytes(b"a")
    removed.write_bytes(b"b")
    pins = _checked(kept, removed, folder=tmp_path)
    removed.unlink()
    (tmp_path / "c.parquet").write_bytes(b"c")
    found = sorted(str(path) for path in tmp_path.glob("*.parquet"))
    assert pins.listed(f"{tmp_path}/*.parquet", found) == sorted([str(kept), str(removed), str(tmp_path / "c.parquet")])
    with pytest.raises(ChangedSinceChecked, match=r"b\.parquet: gone since verify checked it"):
        pins.open(str(removed), VERIFIED)
    with pytest.raises(ChangedSinceChecked, match=r"c\.parquet: added since verify checked its folder"):
        pins.open(str(tmp_path / "c.parquet"), LAUNCH_CHECK)
    pins.open(str(kept), VERIFIED).close()


def test_a_file_known_by_its_bytes_is_read_after_its_inode_changed_and_refused_once_its_bytes_did(tmp_path):
    """Where the check knew the bytes it read (verify: the manifest's hash), a change of the inode alone (its mode set
    again, a hard link made) is no other version: the file is hashed through the handle and read; the version read
    then is the one compared once it is read. Other bytes of the same size, its modification time set back, are
    refused."""
    import hashlib

    path = tmp_path / "a.parquet"
    path.write_bytes(b"checked")
    pins = Pins()
    with open_regular_file(str(path)) as handle:
        pins.add(str(path), handle, VERIFIED, (7, hashlib.sha256(b"checked").hexdigest()))
    _past_its_change_time(path)
    path.chmod(path.stat().st_mode & 0o7777)
    os.link(path, tmp_path / "snapshot")
    with pins.open(str(path), VERIFIED) as handle:
        assert handle.read() == b"checked"
        pins.check(str(path), handle, VERIFIED)
        _past_its_change_time(path)
        path.chmod(path.stat().st_mode & 0o7777)
        with pytest.raises(ChangedSinceChecked, match="written in place"):
            pins.check(str(path), handle, VERIFIED)  # as it was read: what was read is not known to be those bytes
    before = path.stat()
    _past_its_change_time(path)
    with open(path, "r+b") as handle:
        handle.write(b"CHANGED")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ChangedSinceChecked, match="written in place"):
        pins.open(str(path), VERIFIED)


def test_a_checked_file_gone_from_a_glob_of_the_working_folder_is_still_listed(tmp_path, monkeypatch):
    """`--ledger='*.parquet'` given in the ledger's folder: a file the launch check read and that is gone when the job
    lists the glob again was left out unsaid (its folder taken as the pattern's first character), its decisions with
    it; it is listed, and its read says it is gone."""
    monkeypatch.chdir(tmp_path)
    kept, removed = tmp_path / "a.parquet", tmp_path / "b.parquet"
    kept.write_bytes(b"a")
    removed.write_bytes(b"b")
    pins = _checked(kept, removed)
    removed.unlink()
    assert pins.listed("*.parquet", ["a.parquet"]) == sorted(["a.parquet", str(removed)])
    assert pins.listed("?.parquet", []) == sorted([str(kept), str(removed)])
    with pytest.raises(ChangedSinceChecked, match=r"b\.parquet: gone since verify checked it"):
        pins.open(next(path for path in pins.listed("*.parquet", ["a.parquet"]) if path != "a.parquet"), VERIFIED)


def test_a_file_known_by_its_bytes_is_read_through_a_reader_of_another_kind(tmp_path):
    """A worker whose reader gives no descriptor and no GCS blob (another Beam or google-cloud-storage than the
    launcher's) takes the version from the store's listing, another kind than verify's: every read was refused
    ("read otherwise than it was checked"). The bytes verify read are read; others are not."""
    import hashlib
    import io

    path = tmp_path / "a.parquet"
    path.write_bytes(b"checked")
    pins = Pins()
    with open_regular_file(str(path)) as handle:
        pins.add(str(path), handle, VERIFIED, (7, hashlib.sha256(b"checked").hexdigest()))
    with pytest.raises(ChangedSinceChecked, match="read otherwise than it was checked"):
        pins.confirm(str(path), io.BytesIO(b"CHANGED"), VERIFIED)
    pins.confirm(str(path), io.BytesIO(b"checked"), VERIFIED)


def test_the_pins_of_some_files_hold_their_entries_alone_and_refuse_as_the_whole_does(tmp_path):
    """`Pins.only`: what a reader of some of the files carries (each Beam step is pickled with its arguments). It
    holds the entries of the files named (by any spelling of a path, or a glob), with what the check knew of them,
    and refuses a file added since under the folder the check read, and lists and refuses one gone since, as the
    whole does."""
    import hashlib

    (tmp_path / "ledger").mkdir()
    (tmp_path / "parquet").mkdir()
    pins = Pins(folders={str(tmp_path)})
    for name in ("ledger/a.parquet", "ledger/b.parquet", "parquet/c.parquet", "manifest.json"):
        (tmp_path / name).write_bytes(name.encode())
        with open_regular_file(str(tmp_path / name)) as handle:
            pins.add(str(tmp_path / name), handle, VERIFIED, (len(name), hashlib.sha256(name.encode()).hexdigest()))
    ledger = pins.only([f"{tmp_path}/ledger/*.parquet"])
    assert set(ledger.versions) == set(ledger.by) == set(ledger.contents) == {
        str(tmp_path / "ledger/a.parquet"), str(tmp_path / "ledger/b.parquet")}
    assert ledger.folders == pins.folders and pins.versions.keys() > ledger.versions.keys()
    shard = pins.only([f"{tmp_path}/ledger/../parquet/./c.parquet"])
    assert set(shard.versions) == {str(tmp_path / "parquet/c.parquet")}
    assert pins.only([]).versions == {} and pins.only([f"{tmp_path}/parquet/d.parquet"]).versions == {}
    (tmp_path / "ledger/b.parquet").unlink()
    (tmp_path / "ledger/d.parquet").write_bytes(b"d")
    found = [str(tmp_path / "ledger/a.parquet"), str(tmp_path / "ledger/d.parquet")]
    assert ledger.listed(f"{tmp_path}/ledger/*.parquet", found) == pins.listed(f"{tmp_path}/ledger/*.parquet", found)
    with pytest.raises(ChangedSinceChecked, match=r"d\.parquet: added since verify checked its folder"):
        ledger.open(str(tmp_path / "ledger/d.parquet"), LAUNCH_CHECK)
    with pytest.raises(ChangedSinceChecked, match=r"b\.parquet: gone since verify checked it"):
        ledger.open(str(tmp_path / "ledger/b.parquet"), LAUNCH_CHECK)
    ledger.open(str(tmp_path / "ledger/a.parquet"), LAUNCH_CHECK).close()


def test_files_no_check_read_are_read_as_they_are_and_nothing_is_recorded(tmp_path):
    """`UNCHECKED`, what a reader is given where no check read its files before: it opens a regular file (a named
    pipe refused, not waited on), compares nothing, lists what is found, and records nothing (it is one object,
    shared by every reader without pins)."""
    from pipeline.io.file_pins import UNCHECKED

    path = tmp_path / "a.parquet"
    path.write_bytes(b"as it is")
    with UNCHECKED.open(str(path), VERIFIED) as handle:
        UNCHECKED.add(str(path), handle, VERIFIED)
        UNCHECKED.cover(str(tmp_path))
        path.write_bytes(b"written as it is read")
        assert handle.read() == b"written as it is read"
        UNCHECKED.check(str(path), handle, VERIFIED)
        UNCHECKED.confirm(str(path), handle, VERIFIED)
    assert (UNCHECKED.versions, UNCHECKED.folders, UNCHECKED.by, UNCHECKED.contents) == ({}, set(), {}, {})
    assert not UNCHECKED.holds(str(path)) and not UNCHECKED.covers(str(tmp_path))
    assert UNCHECKED.listed(f"{tmp_path}/*.parquet", ["b", "a"]) == ["b", "a"]
    assert UNCHECKED.only([str(path)]) is UNCHECKED
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match="is no regular file"):
        UNCHECKED.open(str(tmp_path / "pipe"), VERIFIED)
