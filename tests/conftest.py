"""Shared fixtures: a local-only Beam runner, real photographs, and a Photo factory."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from hypothesis import settings

# No property test is about time (speed is measured in benchmarks/): hypothesis's default 200 ms deadline per
# example failed test_formats' score round trip at 280 ms on a loaded two-core machine. A test that sets its own
# settings keeps them.
settings.register_profile("no_deadline", deadline=None)
settings.load_profile("no_deadline")

# Imported where they are used, not here: pytest-xdist's controlling process loads this file too,
# before it starts the workers, and needs none of them (Beam alone is ~2 s of CPU).
if TYPE_CHECKING:
    from apache_beam.testing.test_pipeline import TestPipeline
    from PIL import Image

    from pipeline.detectors.handler import RuntimeConfig
    from pipeline.records import Photo

T = TypeVar("T")

def _detect_threads() -> int:
    """onnxruntime threads per session in this test process. Under pytest-xdist each core runs a test
    process; onnxruntime's default (a thread per core, spinning while it waits) in each of them
    oversubscribes the cores: two processes scoring 20 photos took 22.3 s each with the default and
    16.4 s with one thread (same scores, bit for bit). Run serially, the default (0)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    return max(1, len(os.sched_getaffinity(0)) // workers) if workers else 0


DETECT_THREADS = _detect_threads()
# FnApiRunner never reaches out to the internet (the default DirectRunner tries to download Prism).
LOCAL = ["--runner=FnApiRunner", f"--detect_threads={DETECT_THREADS}"]
# Whole-job runs whose test is not about detection skip the CPU-heavy detectors.
FAST = [*LOCAL, "--detectors=none"]


# The test files that take longest (measured under pytest-xdist on two cores), first: with
# `--dist loadfile --no-loadscope-reorder` (scripts/test) the workers take whole files in collection
# order, so a long file collected late would run alone at the end while the other worker idles.
# Longest first keeps both busy to the end. (Without --no-loadscope-reorder pytest-xdist reorders
# the files by their number of tests, and this order is lost.)
LONGEST_FIRST = ("test_release.py", "test_build.py", "test_detect.py", "test_refresh.py", "test_evaluation.py",
                 "test_handler.py", "test_run.py", "test_near_dedup.py", "test_funnel.py", "test_cli.py",
                 "test_demo.py", "test_sources_flickr.py", "test_progress.py", "test_review.py", "test_beam_memo.py",
                 "test_flickr_server.py", "test_terraform.py", "test_http_client.py", "test_cloud_storage.py",
                 "test_detect_photos.py", "test_sources_parquet_rows.py", "test_sources_table.py",
                 "test_verify_license.py", "test_review_page.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def runtime(**fields) -> RuntimeConfig:
    """A detector runtime as the job's defaults make it, with this process's share of the cores."""
    from pipeline.detectors.handler import RuntimeConfig

    return RuntimeConfig(**{"intra_op_threads": DETECT_THREADS, **fields})


def local_pipeline() -> TestPipeline:
    """A test pipeline that runs as `pass-pipeline run` runs its job. TestPipeline would first
    round-trip the whole pipeline through its protos and rebuild it in Python (`Pipeline.from_runner_api`),
    which neither the local runner nor Dataflow ever does: they run the protos. It cost a third of a
    small test pipeline's time."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_pipeline import TestPipeline

    pipeline = TestPipeline(options=PipelineOptions(LOCAL))
    pipeline.not_use_test_runner_api = True
    return pipeline


def carried_pins(pipeline: TestPipeline) -> dict[str, list]:
    """The `file_pins.Pins` each step of `pipeline` carries (its arguments, its DoFn's fields), by the step's full
    label: what is pickled into the job graph with it."""
    from apache_beam.pipeline import PipelineVisitor

    from pipeline.io.file_pins import Pins

    found: dict[str, list] = {}

    class Visitor(PipelineVisitor):
        def visit_transform(self, applied) -> None:
            transform = applied.transform
            fn = getattr(transform, "fn", None)
            held = [*(getattr(transform, "args", None) or ()), *getattr(fn, "__dict__", {}).values()]
            if pins := [value for value in held if isinstance(value, Pins)]:
                found[applied.full_label] = pins

    pipeline.visit(Visitor())
    return found


def photo(photo_id: str = "1", **fields) -> Photo:
    from pipeline.records import Photo

    defaults: dict[str, Any] = dict(  # Photo's fields by name, each of its own type
        source="yfcc", source_ref=f"test.tsv:{photo_id}", owner_nsid="owner@N00", owner_name="Owner",
        license_name="Attribution License", license_url="http://creativecommons.org/licenses/by/2.0/")
    defaults.update(fields)
    return Photo(photo_id=photo_id, **defaults)


class Regrouped:
    """A group's values as a GroupByKey hands them over on Dataflow: iterable again and again, each
    value made as it is read (paged in from the shuffle), none held by the group itself."""

    def __init__(self, make: Callable[[int], object], count: int) -> None:
        self._make, self._count = make, count

    def __iter__(self) -> Iterator:
        return (self._make(index) for index in range(self._count))


def traced_peak(function: Callable[[], T]) -> tuple[T, int]:
    """`function()`'s result and the peak of Python's allocations (tracemalloc) while it ran."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peak_bytes_consuming(outputs: Iterable) -> int:
    """Peak Python allocation (tracemalloc) while reading `outputs` one by one and dropping each."""

    def consume() -> None:
        for _ in outputs:
            pass

    return traced_peak(consume)[1]


def corrupt_deflate(packed: bytes) -> bytes:
    """A gzip file whose deflate stream is corrupt past its middle, where reading it raises zlib.error (not the
    CRC's OSError at the end, nor a truncation's EOFError): the first such eight-byte overwrite, deterministic."""
    for offset in range(len(packed) // 2, len(packed) - 16, 97):
        bad = packed[:offset] + b"\xff" * 8 + packed[offset + 8:]
        try:
            gzip.decompress(bad)
        except zlib.error:
            return bad
        except (OSError, EOFError):
            continue
    raise AssertionError("no overwrite that deflate refuses")


def reseal(release: Path) -> None:
    """What whoever controls a release folder can do: its manifest's sizes, checksums and Parquet record counts made
    to match the changed files again, so that the checks against the manifest (verify, which a refresh runs first)
    pass."""
    import json

    import pyarrow.parquet as pq

    manifest = json.loads((release / "manifest.json").read_text())
    for entry in manifest["files"]:
        data = (release / entry["path"]).read_bytes()
        entry["bytes"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
        if entry.get("format") == "parquet" or (entry.get("format") in ("rejections", "ledger", "near_dup_index")
                                                 and "records" in entry):
            entry["records"] = pq.read_metadata(io.BytesIO(data)).num_rows
    (release / "manifest.json").write_text(json.dumps(manifest, indent=2))


def as_a_user_the_disk_refuses(command: list[str], what: str, also: tuple[str, ...] = ()) -> list[str]:
    """`command` run so that a folder's mode binds it: as root (here, in CI) without the capabilities that let root
    read and list any folder (setpriv), so that a test of a folder one may not list runs rather than skips. `what`
    says what root would do, for the skip where setpriv is missing. `also`: more capabilities to drop (`fowner`: the
    one that lets root remove another user's file from a sticky folder)."""
    if os.geteuid() != 0:
        return command
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip(f"running as root, which {what}, and no setpriv to drop that capability")
    dropped = ",".join(f"-{cap}" for cap in ("dac_override", "dac_read_search", *also))
    return [setpriv, f"--inh-caps={dropped}", f"--bounding-set={dropped}", *command]


def run_in_a_folder_one_may_not_list(command: list[str], folder: Path, timeout: float = 120
                                     ) -> subprocess.CompletedProcess[str]:
    """`command` run as a user the disk refuses (`as_a_user_the_disk_refuses`) while `folder` has mode 0300 (written
    and passed through, never listed or opened for reading), its mode given back after; its output as text."""
    return _run_with_folder_mode(command, folder, 0o300, "reads and lists a folder of mode 0300", timeout)


def run_in_a_folder_one_may_only_read(command: list[str], folder: Path, timeout: float = 120
                                      ) -> subprocess.CompletedProcess[str]:
    """`command` run as a user the disk refuses while `folder` has mode 0555 (another user's, a read-only copy), its
    mode given back after; its output as text."""
    return _run_with_folder_mode(command, folder, 0o555, "writes in any folder", timeout)


def _run_with_folder_mode(command: list[str], folder: Path, mode: int, what: str, timeout: float
                          ) -> subprocess.CompletedProcess[str]:
    command = as_a_user_the_disk_refuses(command, what)
    folder.chmod(mode)
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    finally:
        folder.chmod(0o755)


def real_jpeg(name: str = "chelsea.jpg") -> bytes:
    """A real photograph from the bundled demo set (see pipeline/fixtures/demo/LICENSES.md)."""
    from pipeline.fixtures.demo_world import demo_image

    return demo_image(name)


def encode(img: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def real_image(name: str = "chelsea.jpg") -> Image.Image:
    from PIL import Image

    return Image.open(io.BytesIO(real_jpeg(name))).convert("RGB")


def swapped_primaries_profile() -> bytes:
    """sRGB's ICC profile with its red and blue primaries swapped (the rXYZ and bXYZ tags' table entries): a
    valid RGB profile whose conversion to sRGB moves every colour a long way."""
    from PIL import ImageCms

    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    count = int.from_bytes(profile[128:132], "big")
    entries = {bytes(profile[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    profile[red + 4:red + 12], profile[blue + 4:blue + 12] = profile[blue + 4:blue + 12], profile[red + 4:red + 12]
    return bytes(profile)


def grey_profile(gamma: float) -> bytes:
    """A v4 grey display profile (PCS XYZ, D50 white) whose tone curve is a plain `gamma` (its kTRC tag): 1.0 is a
    linear grey, 1.8 the old Mac one; converting either to sRGB moves the mid-greys a long way."""
    import struct

    d50 = struct.pack(">3i", 63190, 65536, 54061)
    tags = [(b"kTRC", b"curv" + bytes(4) + struct.pack(">LH", 1, round(gamma * 256))),
            (b"wtpt", b"XYZ " + bytes(4) + d50)]
    body, table, at = b"", b"", 128 + 4 + 12 * len(tags)
    for sig, data in tags:
        table += sig + struct.pack(">LL", at + len(body), len(data))
        body += data + b"\x00" * (-len(data) % 4)
    header = struct.pack(">L4sL4s4s4s12s4s", at + len(body), b"lcms", 0x04300000, b"mntr", b"GRAY", b"XYZ ", b"",
                         b"acsp") + bytes(28) + d50 + bytes(48)
    return header + struct.pack(">L", len(tags)) + table + body


def pid_gone() -> int:
    """The pid of a process that has ended and been reaped: it names no process now."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def killed_runs_lock(folder: Path, run_id: str = "killed") -> None:
    """Writes into `folder` the output lock a run on this machine left when it was killed (its pid names no process)."""
    from pipeline.io.lock import LOCK

    (folder / LOCK).write_text(json.dumps({"run_id": run_id, "host": os.uname().nodename, "pid": pid_gone(),
                                           "started": "2026-01-01T00:00:00Z"}))


@pytest.fixture(scope="session", autouse=True)
def _stops_not_ignored_in_the_commands_tests_start() -> None:
    """The suite started in the background of a shell without job control (`bash .ci/run &`, a scheduler's job)
    inherits SIGINT ignored, and under `nohup` SIGHUP too; an ignored signal stays ignored across exec. Every command a
    test started then ignored the Ctrl-C or hangup it was sent (Python installs its KeyboardInterrupt handler only
    where SIGINT is at its default), and the tests of what a stop does (18, and the hangup of a `review apply`) failed
    or timed out, the code under test sound. A handler of this process's own is reset to the default in each command
    it starts, as in a terminal's: SIGINT's is Python's own (as this process would have in a terminal), SIGHUP's does
    nothing (this process still outlives a hangup, as nohup meant)."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _hangup_outlived)


def _hangup_outlived(signum: int, frame: object) -> None:
    """SIGHUP in a test process started under nohup: outlived, as ignoring it did (`_stops_not_ignored_...`)."""


@pytest.fixture(scope="session", autouse=True)
def _every_pipeline_module_imported() -> None:
    """Every module of pipeline/ imported before the first test, so that none is first imported while a test has
    patched a name it binds (`from pipeline.detectors.handler import create_session` holds the object as it is at the
    import): a module imported inside a patch keeps the patched object for the rest of the test process. The launch
    imports the canary module on first use; imported under a test's patched session maker, every later run in that
    process scored its canaries with None. The whole suite already imports nearly all of them while collecting
    (each test worker collects every test file); a run of a few files did not (~1 s). Here, not at the top of this
    file: pytest-xdist's controlling process loads this file too and needs none of them."""
    import importlib
    import pkgutil

    import pipeline

    for module in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
        if module.name != "pipeline.__main__":  # `python -m pipeline`: importing it runs the command line
            importlib.import_module(module.name)


@pytest.fixture(autouse=True)
def _no_host_gates_from_earlier_tests() -> Iterator[None]:
    """Every test starts with no host gate: gates are process-wide and keyed by host name, so a Retry-After one
    test's server sent (up to --max_backoff of rest for 127.0.0.1) would delay or fail the next test's photos."""
    from pipeline.io import http_client

    with http_client._GATES_LOCK:
        http_client._GATES.clear()
    yield


@pytest.fixture(autouse=True)
def _no_filesystem_options_from_earlier_tests() -> Iterator[None]:
    """Every test starts and ends with no pipeline options in Beam's filesystems: they are process-wide
    (`FileSystems.set_options`), set by each launch (`commands/run.py`'s `launch_options`) and each job built, and one
    test's (a service account to impersonate, a job name) were those of every storage client a later test made."""
    from apache_beam.io.filesystems import FileSystems

    FileSystems.set_options(None)
    yield
    FileSystems.set_options(None)


@contextlib.contextmanager
def local_time_zone(name: str) -> Iterator[None]:
    """The process's local time zone set to `name` (a worker's machine in that zone) for the block, then the one
    it had: what reads a clock's local time reads that zone's."""
    import time

    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture(scope="session")
def demo_release(tmp_path_factory) -> Iterator[Path]:
    """The demo world's release, written once for the whole session: detectors off, 2 shards, all
    formats. Read-only by convention: a test that changes it works on a copy (shutil.copytree)."""
    from pipeline.cli import run
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.fixtures.static_server import StaticServer

    folder = tmp_path_factory.mktemp("demo_release")
    with StaticServer() as server:
        metadata = build_demo_world(server, folder / "in")
        stats = run([f"--input={metadata}", f"--allowed_hosts={server.host}", f"--output={folder / 'out'}",
                     "--shards=2", *FAST])
    assert stats["accounted"] and stats["kept"] == 10
    before = _digests(folder / "out")
    yield folder / "out"
    assert _digests(folder / "out") == before, "a test changed the shared demo release instead of a copy"


def _digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@contextlib.contextmanager
def publishing_stopped_after(renames: int) -> Iterator[None]:
    """Inside the block, a run's publish (`layout._carry_out`) stops as Ctrl-C stops it (KeyboardInterrupt) once it
    has made `renames` renames; renames outside publishing are not counted."""
    from apache_beam.io.filesystems import FileSystems

    from pipeline.io import layout

    real_rename, real_carry_out = FileSystems.rename, layout._carry_out
    moved: list[str] = []

    def stopped(sources, destinations):  # type: ignore[no-untyped-def]
        if len(moved) == renames:
            raise KeyboardInterrupt
        moved.extend(destinations)
        return real_rename(sources, destinations)

    def carry_out(staging, output, names):  # type: ignore[no-untyped-def]
        with pytest.MonkeyPatch.context() as publishing:
            publishing.setattr(layout.FileSystems, "rename", staticmethod(stopped))
            real_carry_out(staging, output, names)

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(layout, "_carry_out", carry_out)
        yield


def as_stored_jpeg(payload: bytes) -> bytes:
    """`payload` shaped as the JPEG a run stores (`pipeline/io/stored_jpeg.py`: a baseline JPEG's header, `payload` as
    its scan's data with each 0xFF made 0xFE, its end), for tests of files whose images are hashed but never decoded:
    random bytes stay incompressible and keep their size."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG")
    jpeg = out.getvalue()
    scan = jpeg.index(b"\xff\xda")
    header = jpeg[:scan + 2 + int.from_bytes(jpeg[scan + 2:scan + 4], "big")]
    return header + payload.replace(b"\xff", b"\xfe") + b"\xff\xd9"
