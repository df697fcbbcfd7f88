"""One local file written whole or not at all (pipeline/io/whole_file.py), for evaluate --json, the held-out record,
the fit scripts' models, probes, scores and caches."""

from __future__ import annotations

import argparse
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
from tests.conftest import run_in_a_folder_one_may_not_list, run_in_a_folder_one_may_only_read


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


def test_a_missing_folder_is_refused_before_the_work_by_check_output(tmp_path):
    """evaluate refuses its --json before the scoring: one in a folder that does not exist failed after it, the result
    lost, as "the job failed", exit 1 (which evaluate otherwise gives an image with people kept)."""
    with pytest.raises(whole_file.TargetNotAFile, match=r"^--json .* does not exist: not written"):
        whole_file.check_output("--json", tmp_path / "missing" / "result.json")
    whole_file.check_output("--json", tmp_path / "result.json")  # a new file in a folder that exists: fine


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


@pytest.mark.parametrize("leads_to", ["a file", "nothing"])
def test_a_symbolic_link_is_refused_and_left_as_it_was_with_the_file_it_leads_to(tmp_path, leads_to):
    """The rename replaced the link with a file: the file it led to (a model kept elsewhere) was left stale, though the
    command said it had written it."""
    kept = tmp_path / "kept.json"
    if leads_to == "a file":
        kept.write_text("earlier\n")
    link = tmp_path / "out.json"
    link.symlink_to(kept)
    written: list[str] = []
    with pytest.raises(TargetNotAFile) as refused:
        write_whole(link, b"later\n", written)
    assert str(refused.value) == (
        f"{link} is a symbolic link (to {kept}): the file is written whole under its name, which would replace the "
        "link and leave the file it leads to as it was; give that file's own path")
    assert link.is_symlink() and os.readlink(link) == str(kept) and written == []
    assert (kept.read_text() == "earlier\n") if leads_to == "a file" else not kept.exists()
    assert sorted(os.listdir(tmp_path)) == sorted(["out.json"] + ["kept.json"] * (leads_to == "a file"))


@pytest.mark.parametrize("at", [190, 196, 199])
def test_a_link_whose_target_holds_an_escape_where_the_line_is_cut_is_named_without_half_an_escape(tmp_path, at):
    """The target a link leads to is shown escaped and cut at 200 characters; cut after escaping, an escape there was
    cut in half (`\\x1b` shown as `\\x1`, which reads as other text): what is shown ends before the escape."""
    target = "t" * at + "\x1b" + "u" * 20
    link = tmp_path / "out.json"
    link.symlink_to(target)
    with pytest.raises(TargetNotAFile) as refused:
        write_whole(link, b"later\n")
    shown = str(refused.value).split(" (to ", 1)[1].split("): the file", 1)[0]
    assert shown == (("t" * at + "\\x1b" + "u" * 20)[:200] if at + 4 <= 200 else "t" * at)


def a_dataset(folder: Path) -> Path:
    """A folder `layout.holds_dataset` takes for a run's dataset: a manifest listing files."""
    folder.mkdir()
    (folder / "manifest.json").write_text('{"files": []}\n')
    return folder


REFUSED = {
    "link": ("--out {tmp}/out.json is a symbolic link (to {tmp}/kept.json): the file is written whole under its "
             "name, which would replace the link and leave the file it leads to as it was; give that file's own path"),
    "folder": "--out {tmp}/out.json is a folder, not a file: not written",
    "named pipe": "--out {tmp}/out.json is a named pipe, not a file: not written",
    "missing folder": "--out {tmp}/missing/out.json: its folder {tmp}/missing does not exist: not written",
    "file for a folder": "--out {tmp}/afile/out.json: {tmp}/afile is a file, not a folder: not written",
    "dataset": ("--out {tmp}/dataset/evaluation/out.json lies inside the dataset {tmp}/dataset, whose manifest does "
                "not list it (verify would refuse the dataset): write it outside"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_check_output_refuses_each_output_no_command_may_write_in_one_line_naming_the_flag(tmp_path, case):
    """What each writer checks before its minutes of work (the fit scripts found a folder only at the write, after
    the fit; none of them a link, which the write replaced, or a dataset's folder, which verify then refused)."""
    out = tmp_path / "out.json"
    if case == "link":
        (tmp_path / "kept.json").write_text("earlier\n")
        out.symlink_to(tmp_path / "kept.json")
    elif case == "folder":
        out.mkdir()
    elif case == "named pipe":
        os.mkfifo(out)
    elif case == "missing folder":
        out = tmp_path / "missing" / "out.json"
    elif case == "file for a folder":  # the check's stat of it was a traceback (NotADirectoryError)
        (tmp_path / "afile").write_text("a file\n")
        out = tmp_path / "afile" / "out.json"
    else:
        out = a_dataset(tmp_path / "dataset") / "evaluation" / "out.json"
        out.parent.mkdir()
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    with pytest.raises(TargetNotAFile) as refused:
        whole_file.check_output("--out", out)
    assert str(refused.value) == REFUSED[case].format(tmp=tmp_path)
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before


def test_check_output_with_the_folder_made_takes_a_missing_folder_but_not_a_file_in_the_way(tmp_path):
    """fit_probe makes its --scores_out and --features folders: one named where a file is failed in mkdir, after the
    fit (a traceback); a folder not there yet is made."""
    whole_file.check_output("--scores_out", tmp_path / "new" / "deeper" / "tuning.json", folder_made=True)
    (tmp_path / "scores").write_text("a file\n")
    for path in (tmp_path / "scores" / "tuning.json", tmp_path / "scores" / "deeper" / "tuning.json"):
        with pytest.raises(TargetNotAFile) as refused:
            whole_file.check_output("--scores_out", path, folder_made=True)
        assert str(refused.value) == (f"--scores_out {path}: {tmp_path / 'scores'} is a file, not a folder: "
                                      "not written")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(TargetNotAFile, match=f"{tmp_path / 'pipe'} is a named pipe, not a folder: not written"):
        whole_file.check_output("--features", tmp_path / "pipe" / "tuning.npz", folder_made=True)
    inside = a_dataset(tmp_path / "dataset") / "scores" / "tuning.json"
    with pytest.raises(TargetNotAFile, match=f"lies inside the dataset {tmp_path / 'dataset'}"):
        whole_file.check_output("--scores_out", inside, folder_made=True)
    assert sorted(os.listdir(tmp_path)) == ["dataset", "pipe", "scores"]


def test_the_dataset_marks_are_layouts_own_and_a_path_under_none_imports_no_beam(tmp_path):
    """The fit scripts do not import Beam (seconds at their start): layout is asked only under a dataset's marks."""
    from pipeline.io import layout

    assert whole_file.DATASET_MARKS == (layout.MANIFEST, layout.STAGING)
    script = ("import sys; from pipeline.io.whole_file import check_output; check_output('--out', sys.argv[1]); "
              "print('apache_beam' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out.json")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout == "False\n", done.stderr[-2000:]


CHECKED = ("import sys; from pipeline.io.whole_file import TargetNotAFile, check_output\n"
           "try:\n    check_output('--out', sys.argv[1], folder_made=sys.argv[2] == 'made')\n"
           "except TargetNotAFile as err:\n    print(err)\nelse:\n    print('passed')")


@pytest.mark.parametrize("made", ["", "made"])
def test_check_output_refuses_a_folder_one_may_not_write_in(tmp_path, made):
    """A folder of mode 0o555 (another user's, a read-only copy of the models): the output passed the check, and the
    write failed after the work, a PermissionError traceback once the fit was done (evaluate's "the job failed", exit
    1, once the split was scored). Run without root's capabilities (setpriv), which write in any folder."""
    folder = tmp_path / "shared"
    folder.mkdir()
    out = folder / ("new" if made else "") / "out.json"
    done = run_in_a_folder_one_may_only_read([sys.executable, "-c", CHECKED, str(out), made], folder, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"--out {out}: {folder} is a folder this user may not write in: not written\n"
    assert os.listdir(folder) == []


def test_checked_then_run_checks_each_output_in_turn_its_folders_made_then_runs_the_work(monkeypatch):
    """What each measurement script spelt out around its work: every output checked (a cache, written only when it
    is missing, not as always written), in the order given, before the work runs once."""
    checked: list[tuple[str, object, bool, bool]] = []
    monkeypatch.setattr(whole_file, "check_output", lambda flag, path, folder_made, always_written: checked.append(
        (flag, path, folder_made, always_written)))
    ran: list[int] = []
    cache, out = Path("out/features/tuning.json"), Path("out/tuning.json")
    whole_file.checked_then_run(argparse.ArgumentParser(prog="add.py"), [cache, out], lambda: ran.append(1),
                                caches=[cache])
    assert checked == [("out", cache, True, False), ("out", out, True, True)] and ran == [1]


def test_checked_then_run_refuses_an_output_in_the_parser_s_line_before_the_work_and_one_at_the_write_in_one_line(
        tmp_path, capsys):
    """The first output refused is the parser's error line (exit 2), the outputs after it unchecked and the work not
    run; one that becomes no file while the work runs (a link made in its place) is `PROG: ...`, exit 1, not a
    traceback after the work, the file it leads to as it was."""
    parser = argparse.ArgumentParser(prog="measure.py")
    (tmp_path / "kept.json").write_text("earlier\n")
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(SystemExit) as ended:
        whole_file.checked_then_run(parser, [tmp_path / "folder.json", tmp_path / "missing" / "x" / "y"],
                                    lambda: pytest.fail("worked although refused"))
    assert ended.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (f"measure.py: error: out {tmp_path / 'folder.json'} is a "
                                                        "folder, not a file: not written")

    def a_link_then_the_write() -> None:
        (tmp_path / "out.json").symlink_to(tmp_path / "kept.json")
        write_whole(tmp_path / "out.json", b"later\n")

    with pytest.raises(SystemExit) as ended:
        whole_file.checked_then_run(parser, [tmp_path / "out.json"], a_link_then_the_write)
    assert str(ended.value.code).startswith(f"measure.py: {tmp_path / 'out.json'} is a symbolic link (to ")
    assert (tmp_path / "kept.json").read_text() == "earlier\n"


def test_checked_then_run_writes_an_output_named_with_a_line_break_and_terminal_escapes_escaped_in_one_line(
        tmp_path, capsys):
    """Both lines quote the output's path, which was printed as it came: a folder named with ESC [2J and a line break
    cleared the terminal and printed a forged line of its own. Each unprintable character is written as Python writes
    it in a string, before the work and at the write."""
    parser = argparse.ArgumentParser(prog="measure.py")
    folder = tmp_path / "a\x1b[2J\nmeasure.py: OK"
    (folder / "out.json").mkdir(parents=True)
    shown = f"{tmp_path}/a\\x1b[2J\\nmeasure.py: OK/out.json"
    with pytest.raises(SystemExit) as ended:
        whole_file.checked_then_run(parser, [folder / "out.json"], lambda: pytest.fail("worked although refused"))
    err = capsys.readouterr().err
    assert ended.value.code == 2 and "\x1b" not in err
    assert err.endswith(f"\nmeasure.py: error: out {shown} is a folder, not a file: not written\n")
    with pytest.raises(SystemExit) as ended:
        whole_file.checked_then_run(parser, [], lambda: write_whole(folder / "out.json", b"later\n"))
    assert str(ended.value.code) == f"measure.py: {shown} is a folder, not a file: not written"


FOLDER_CHECKED = ("import sys; from pipeline.io.whole_file import TargetNotAFile, check_output_folder\n"
                  "try:\n    check_output_folder('out', sys.argv[1])\n"
                  "except TargetNotAFile as err:\n    print(err)\nelse:\n    print('passed')")


@pytest.mark.parametrize("new", ["", "new"])
def test_check_output_folder_refuses_a_folder_one_may_not_write_in_whether_there_or_to_be_made_in_it(tmp_path, new):
    """tiny_head.py export and cut write their PNGs into a folder (made where missing) with no check: one of mode
    0o555 was a PermissionError traceback at the first PNG (cut's after MediaPipe loaded). Run without root's
    capabilities (setpriv), which write in any folder."""
    folder = tmp_path / "shared"
    folder.mkdir()
    out = folder / new if new else folder
    done = run_in_a_folder_one_may_only_read([sys.executable, "-c", FOLDER_CHECKED, str(out)], folder, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    said = (f"out {out}: {folder} is a folder this user may not write in: not written\n" if new else
            f"out {folder} is a folder this user may not write in: not written\n")
    assert done.stdout == said
    assert os.listdir(folder) == []
