"""One local file written whole or not at all (pipeline/io/whole_file.py), for evaluate --json, the held-out record,
the fit scripts' models, probes, scores and caches."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.io import whole_file
from pipeline.io.whole_file import NEW_MODE, TargetNotAFile, write_whole
from tests.conftest import run_in_a_folder_one_may_not_list


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_is_0o644_whatever_the_umask(tmp_path, umask):
    """The fit scripts and evaluate gave a new file the umask's mode, the record the same: one mode for all now."""
    before = os.umask(umask)
    try:
        written: list[str] = []
        write_whole(tmp_path / "out.json", b"{}\n", written)
    finally:
        os.umask(before)
    assert (tmp_path / "out.json").read_bytes() == b"{}\n" and mode(tmp_path / "out.json") == NEW_MODE == 0o644
    assert written == [str(tmp_path / "out.json")]
    assert os.listdir(tmp_path) == ["out.json"]


@pytest.mark.parametrize("kept", [0o600, 0o640, 0o664])
def test_a_replaced_file_keeps_its_mode(tmp_path, kept):
    """evaluate --json gave the file the umask's mode, whatever the one it replaced had (a result kept private)."""
    out = tmp_path / "out.json"
    out.write_text("earlier\n")
    os.chmod(out, kept)
    write_whole(out, b"later\n", name="--json out.json", written=(written := []))
    assert out.read_bytes() == b"later\n" and mode(out) == kept
    assert written == ["--json out.json"]
    assert os.listdir(tmp_path) == ["out.json"]


@pytest.mark.parametrize("kind", ["folder", "named pipe", "socket"])
def test_a_name_that_is_no_file_is_refused_in_one_line_and_left_alone(tmp_path, kind):
    """A folder failed the rename after the whole write (a traceback); a named pipe (a reader waiting on it) or a
    socket was replaced by the file."""
    out = tmp_path / "out"
    if kind == "folder":
        out.mkdir()
    elif kind == "named pipe":
        os.mkfifo(out)
    else:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(out))
    written: list[str] = []
    with pytest.raises(TargetNotAFile) as refused:
        write_whole(out, b"data", written)
    assert str(refused.value) == f"{out} is a {kind}, not a file: not written"
    assert "\n" not in str(refused.value) and written == []
    kinds = {"folder": stat.S_ISDIR, "named pipe": stat.S_ISFIFO, "socket": stat.S_ISSOCK}
    assert kinds[kind](out.lstat().st_mode) and os.listdir(tmp_path) == ["out"]


def test_a_failed_write_leaves_no_temporary_and_the_file_as_it_was(tmp_path):
    out = tmp_path / "out.json"
    out.write_text("earlier\n")
    written: list[str] = []
    with pytest.raises(TypeError):
        write_whole(out, "not bytes", written)  # type: ignore[arg-type]
    assert out.read_text() == "earlier\n" and written == [] and os.listdir(tmp_path) == ["out.json"]


# Writes a MiB into the file named first under a file size limit of 4 KiB (a full disk, a quota): the write fails
# with EFBIG halfway. Prints what `written` holds and the error.
FILE_TOO_LARGE = """
import resource, signal, sys
from pipeline.io.whole_file import write_whole

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of the process ending
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
written = []
try:
    write_whole(sys.argv[1], b"x" * (1 << 20), written)
except OSError as err:
    print(written, err.errno)
"""


def test_a_write_the_disk_refuses_halfway_leaves_no_temporary_and_the_file_as_it_was(tmp_path):
    import errno

    out = tmp_path / "out.json"
    out.write_text("earlier\n")
    done = subprocess.run([sys.executable, "-c", FILE_TOO_LARGE, str(out)], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["[]", str(errno.EFBIG)], (done.stdout, done.stderr[-2000:])
    assert out.read_text() == "earlier\n" and os.listdir(tmp_path) == ["out.json"]


# write_whole into the file named first with a stop (the signal named second) sent to itself `before` (as the
# temporary is flushed to disk) or `after` the rename over the name (third): prints what `written` holds.
STOPPED = """
import os, pathlib, signal, sys, time
from pipeline.io.stopping import StopRequested, StopSignals
from pipeline.io.whole_file import write_whole

target, signum, when = sys.argv[1], int(sys.argv[2]), sys.argv[3]
name = os.path.basename(target)
fsync, replace = os.fsync, os.replace

def stop():
    os.kill(os.getpid(), signum)
    time.sleep(5)  # the stop is raised here

def syncing(fd):
    fsync(fd)
    if when == "before" and os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(f".{name}."):
        stop()

def replacing(source, destination):
    replace(source, destination)
    if when == "after":
        stop()

os.fsync, os.replace = syncing, replacing
written = []
try:
    with StopSignals():
        write_whole(target, b"later\\n", written)
except (KeyboardInterrupt, StopRequested):
    print(written)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_stop_counts_the_file_written_from_its_rename_on(tmp_path, signum, when):
    """The rename is the commit point: a stop landing after it (in the folder's fsync) left the file noted as not
    written, though it held the new data; one landing before it leaves the file as it was and no temporary."""
    out = tmp_path / "out.json"
    out.write_text("earlier\n")
    done = subprocess.run([sys.executable, "-c", STOPPED, str(out), str(int(signum)), when], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == (f"[{str(out)!r}]" if when == "after" else "[]")
    assert out.read_text() == ("later\n" if when == "after" else "earlier\n")
    assert os.listdir(tmp_path) == ["out.json"]


def test_a_missing_folder_is_refused_before_the_work_by_check_target(tmp_path):
    """evaluate refuses its --json before the scoring: one in a folder that does not exist failed after it, the result
    lost, as "the job failed", exit 1 (which evaluate otherwise gives an image with people kept)."""
    with pytest.raises(whole_file.TargetNotAFile, match="does not exist: not written"):
        whole_file.check_target(tmp_path / "missing" / "result.json")
    whole_file.check_target(tmp_path / "result.json")  # a new file in a folder that exists: fine


def test_a_folder_one_may_write_in_but_not_list_takes_the_file_whole(tmp_path):
    """The folder's fsync opens it for reading: in a folder of mode 0o300 that failed once the file was renamed into
    place, and the command said it had failed though the file was written. Run without root's capabilities (setpriv),
    which open any folder."""
    folder = tmp_path / "drop"
    folder.mkdir()
    script = ("import sys; from pipeline.io.whole_file import write_whole; "
              "write_whole(sys.argv[1], b'{}'); print('written')")
    done = run_in_a_folder_one_may_not_list([sys.executable, "-c", script, str(folder / "result.json")], folder, 60)
    assert done.returncode == 0 and done.stdout.strip() == "written", done.stderr[-2000:]
    assert (folder / "result.json").read_bytes() == b"{}"
