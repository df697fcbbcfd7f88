"""The output lock (io/lock.py): one run at a time per output folder, a killed run's lock taken over once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.io import lock
from pipeline.io.lock import LOCK, OutputLock, OutputLocked
from tests.conftest import killed_runs_lock, pid_gone


def test_two_runs_meeting_one_stale_lock_do_not_both_take_it(tmp_path, monkeypatch):
    """B reads the killed run's lock and judges it stale; before B acts, A takes the lock over. B used to delete
    whatever lay at the lock's name, A's fresh lock included, and then take it too: both ran into one folder."""
    killed_runs_lock(tmp_path)
    b_judged, a_done = threading.Event(), threading.Event()
    real_holder = lock._holder

    def holder(path):
        seen = real_holder(path)
        if threading.current_thread().name == "B" and not b_judged.is_set():
            b_judged.set()
            assert a_done.wait(30)  # A runs its whole takeover while B holds its stale reading
        return seen

    monkeypatch.setattr(lock, "_holder", holder)
    outcome: dict[str, str] = {}

    def take(name: str) -> None:
        try:
            OutputLock(str(tmp_path), name).acquire()
            outcome[name] = "held"
        except OutputLocked:
            outcome[name] = "refused"

    b = threading.Thread(target=take, args=("B",), name="B")
    b.start()
    assert b_judged.wait(30)
    a = threading.Thread(target=take, args=("A",), name="A")
    a.start()
    a.join(30)
    a_done.set()
    b.join(30)
    assert outcome == {"A": "held", "B": "refused"}
    assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "A"


def test_a_stale_lock_alone_is_taken_over_and_a_live_one_refused(tmp_path):
    killed_runs_lock(tmp_path)
    with OutputLock(str(tmp_path), "mine"):
        assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "mine"
        with pytest.raises(OutputLocked, match="run mine"):
            OutputLock(str(tmp_path), "other").acquire()
    assert not (tmp_path / LOCK).exists()


def _taking(output: Path) -> tuple[threading.Thread, list[BaseException | None]]:
    """A thread (not started) taking the lock of `output` as run "mine", and the list it puts its outcome in: None
    once taken, else what the taking raised (which the test checks)."""
    outcome: list[BaseException | None] = []

    def take() -> None:
        try:
            OutputLock(str(output), "mine").acquire()
            outcome.append(None)
        except BaseException as err:  # what the main thread checks
            outcome.append(err)

    return threading.Thread(target=take, daemon=True), outcome


def test_a_lock_that_is_a_named_pipe_is_held_by_an_unknown_run_not_read_for_ever(tmp_path):
    """A `_lock.json` that is a named pipe (in a release, where the repair of a publish a kill cut short takes the
    lock; in any output) was read as a file: the read waited for a writer that never came, and the refresh or run
    hung for good. It is no lock a run writes: held by an unknown run, refused in one line."""
    os.mkfifo(tmp_path / LOCK)
    taker, outcome = _taking(tmp_path)
    taker.start()
    taker.join(30)
    if taker.is_alive():
        with open(os.open(tmp_path / LOCK, os.O_WRONLY | os.O_NONBLOCK), "wb"):  # lets the blocked read end
            pass
        taker.join(30)
        pytest.fail("taking the lock waited on the named pipe")
    assert len(outcome) == 1 and isinstance(outcome[0], OutputLocked), outcome
    assert "another run" in str(outcome[0])


def test_a_lock_temporary_swapped_for_a_pipe_as_it_is_read_is_not_waited_on(tmp_path):
    """A killed run's lock temporary is judged by its kind, then read: swapped for a named pipe in between, the read
    waited for a writer for good (every run into the output hung taking its lock). It is read as a regular file
    only, and anything else is no stale temporary of a run's (left as it is)."""
    temporary = tmp_path / f"{lock.LOCK_TEMPORARY}x"
    temporary.write_text("{}")
    entry = next(os.scandir(tmp_path))  # judged a regular file here
    temporary.unlink()
    os.mkfifo(temporary)
    judged: list[bool] = []
    reader = threading.Thread(target=lambda: judged.append(lock._temporary_is_stale(entry, "here")), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():
        os.close(os.open(temporary, os.O_WRONLY | os.O_NONBLOCK))  # releases the reader stuck on the code before
        reader.join(5)
        pytest.fail("reading the lock temporary waited for a writer")
    assert judged == [False]


def test_a_lock_released_by_a_stop_s_thread_meanwhile_is_released_without_an_error(tmp_path, monkeypatch):
    """The main thread's release as the run ends and a stop's thread's (io/stopping.py) could both find the lock theirs
    and both delete it: the second delete failed, and the stop's line said "its lock could not be released" just
    before the process ended, of a lock that was gone."""
    taken = OutputLock(str(tmp_path), "run")
    taken.acquire()
    real_read = lock._read_holder
    read: list[str] = []

    def holder(path):  # the other thread's whole release lands between this one's reading and its delete
        seen = real_read(path)
        os.unlink(path)
        read.append(path)
        return seen

    # What a release reads the lock by (`_holder`, patched here before, is what taking the lock reads it by: the
    # release never met the removal, and the test passed whatever a release did with a lock gone before its delete)
    monkeypatch.setattr(lock, "_read_holder", holder)
    taken.release()
    assert read and not (tmp_path / LOCK).exists()
    monkeypatch.setattr(lock, "_read_holder", real_read)
    again = OutputLock(str(tmp_path), "next")  # a run taking the lock meanwhile keeps it
    again.acquire()
    taken.release()
    assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "next"


def test_a_stop_s_release_beside_the_run_s_own_never_deletes_a_lock_another_run_took_meanwhile(tmp_path, monkeypatch):
    """The main thread's release and a stop's thread's both found the lock theirs before either deleted it; the
    main thread's delete came first, another run took the lock, and the stop's delete removed that run's lock: two
    runs then wrote one output. They take turns now, and the second finds the lock released."""
    taken = OutputLock(str(tmp_path), "run")
    taken.acquire()
    stop_checked, other_took = threading.Event(), threading.Event()
    stop = threading.Thread(target=taken.release, name="stop-release", daemon=True)
    real_delete = lock.FileSystems.delete

    def delete(paths):
        if threading.current_thread() is stop:
            stop_checked.set()  # the stop's thread found the lock its own and is deleting it
            other_took.wait(10)
        else:  # the run's own release, as it ends: a stop comes now
            stop.start()
            stop_checked.wait(1.0)
        real_delete(paths)

    monkeypatch.setattr(lock.FileSystems, "delete", delete)
    monkeypatch.setattr(lock, "RELEASE_WAIT_S", 30.0, raising=False)
    taken.release()
    other = OutputLock(str(tmp_path), "other")
    other.acquire()
    other_took.set()
    stop.join(40)
    assert not stop.is_alive()
    assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "other"


SECOND_SIGNAL_IN_A_RELEASE = """
import sys, threading, time
from pipeline.io import lock
from pipeline.io.stopping import StopSignals

taken = lock.OutputLock(sys.argv[1], "run")
real_exists = lock.FileSystems.exists

def exists(path):
    if threading.current_thread() is threading.main_thread():
        print("releasing", flush=True)  # the main thread's release, its turn held: an object store not answering
        time.sleep(3600)
    return real_exists(path)

with StopSignals(release=taken.release), taken:
    lock.FileSystems.exists = exists
    print("ready", flush=True)
    time.sleep(3600)
"""


def test_a_second_signal_during_the_main_threads_own_release_still_releases_the_lock(tmp_path):
    """A second signal's handler runs in the main thread, which it never hands back (the process ends), and releases
    the lock from a thread within SECOND_RELEASE_S. Landing while the main thread's own release held its turn (a
    delete on gs:// not answering), that thread waited the whole RELEASE_WAIT_S for a turn never to be handed back,
    and the process ended saying 'its lock not released within 2 s', the lock left for good on gs://."""
    process = subprocess.Popen([sys.executable, "-c", SECOND_SIGNAL_IN_A_RELEASE, str(tmp_path / "out")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready", process.communicate()
    assert (tmp_path / "out" / LOCK).exists()
    process.send_signal(signal.SIGTERM)  # the first: the run stops, and releases its lock on the way out
    assert process.stdout.readline().strip() == b"releasing", process.communicate()
    process.send_signal(signal.SIGTERM)  # the second, as that release hangs
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, (out + err).decode()
    assert "its lock released" in err.decode() and not (tmp_path / "out" / LOCK).exists(), (out + err).decode()


def test_a_lock_read_failing_once_at_release_is_read_again_and_released(tmp_path, monkeypatch, capsys):
    """A release read the lock once and took an error (an object store's transient one) for "not this run's": the
    lock was marked released and stayed, and on gs://, where nothing takes a lock over, the next run was refused
    until someone removed it. It is read again; one that cannot be read at all is left, said, and not marked
    released, so a later release reads it again."""
    taken = OutputLock(str(tmp_path), "run")
    taken.acquire()
    real_read = lock.read_regular_file
    failures = iter([OSError("transient")])

    def read_once_failing(path, limit):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_read(path, limit)

    monkeypatch.setattr(lock, "RELEASE_READ_PAUSE_S", 0)
    monkeypatch.setattr(lock, "read_regular_file", read_once_failing)
    taken.release()
    assert not (tmp_path / LOCK).exists()

    again = OutputLock(str(tmp_path), "again")
    again.acquire()
    failures = iter([OSError("down")] * lock.RELEASE_READS)
    again.release()
    assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "again"  # whose, unknown: left
    assert "could not be read to release it (OSError); remove it once no run is using" in capsys.readouterr().err
    again.release()  # the store answers again: the later release reads it and removes it
    assert not (tmp_path / LOCK).exists()


@pytest.mark.parametrize("put_there", ["named pipe", "link to a device", "file larger than any lock"])
def test_a_lock_no_run_wrote_is_left_at_release_as_another_runs_without_a_word(tmp_path, capsys, put_there):
    """A named pipe, a device or a file over MAX_LOCK_BYTES at the lock's name is no run's lock (a run writes a regular
    file of ~150 bytes): read again as if the store had failed, each release waited and said the lock could not be
    read, "remove it", and none marked it released. It is left as another run's lock is."""
    taken = OutputLock(str(tmp_path), "run")
    taken.acquire()
    path = tmp_path / LOCK
    path.unlink()
    if put_there == "named pipe":
        os.mkfifo(path)
    elif put_there == "link to a device":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(b" " * (lock.MAX_LOCK_BYTES + 1))
    taken.release()
    taken.release()
    assert capsys.readouterr().err == "" and os.path.lexists(path)


def test_a_lock_gone_as_the_release_reads_it_is_not_said_to_be_left(tmp_path, monkeypatch, capsys):
    """A lock removed between the release's look and its read (an operator's hand, another run's takeover) was said
    to be left, "remove it", though nothing was there."""
    taken = OutputLock(str(tmp_path), "run")
    taken.acquire()
    real_read = lock.read_regular_file

    def removed_first(path, limit):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return real_read(path, limit)

    monkeypatch.setattr(lock, "RELEASE_READ_PAUSE_S", 0)
    monkeypatch.setattr(lock, "read_regular_file", removed_first)
    taken.release()
    assert capsys.readouterr().err == "" and not (tmp_path / LOCK).exists()


def test_a_dead_run_s_lock_whose_pid_a_later_process_took_is_taken_over(tmp_path):
    """A run killed (the OOM killer, a container's SIGKILL) in a container that is then restarted: the new run has the
    same host name and, as the container's first process, the same pid, so the dead run's lock named a live process,
    the rerun itself, and every rerun was refused for good ("is in use by run ... if that run is gone, remove ...").
    Any pid a later process took is the same. A process that started after the lock was written is not its writer:
    the lock is taken over. A lock its live writer holds is still refused, and so is one whose pid is a process
    that started before it."""
    import datetime as dt
    import socket

    def written(pid: int, seconds_ago: float) -> None:
        started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
        (tmp_path / LOCK).write_text(json.dumps({"run_id": "killed", "host": socket.gethostname(), "pid": pid,
                                                 "started": started.strftime("%Y-%m-%dT%H:%M:%SZ")}))

    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (os.getpid(), later.pid):  # the rerun's own pid; another process's, started since
            written(pid, seconds_ago=3600)
            with OutputLock(str(tmp_path), "rerun"):
                assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "rerun"
        written(later.pid, seconds_ago=0)  # its writer, alive: held
        with pytest.raises(OutputLocked, match=f"in use by run killed \\(pid {later.pid} "):
            OutputLock(str(tmp_path), "rerun").acquire()
    finally:
        later.kill()
        later.wait()
    written(os.getpid(), seconds_ago=0)  # held by this process, which wrote it: refused, never taken from itself
    with pytest.raises(OutputLocked, match="in use by run killed"):
        OutputLock(str(tmp_path), "rerun").acquire()


def test_a_live_run_s_lock_is_refused_after_the_clock_steps_forward(tmp_path):
    """A run's process wrote its lock; then the wall clock stepped forward (a virtual machine resumed and set right,
    NTP's first step after boot): read as a time of day, the live writer's start came an hour after its own lock, so
    the lock was taken as a later process's pid and taken over, and two runs wrote one output. The writer's start in
    clock ticks after boot is what the lock is judged by: held. A lock recording another process's ticks, whose pid a
    live process has now, is taken over whatever its time says."""
    import datetime as dt

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pipeline.io.lock import OutputLock\n"
         f"OutputLock({str(tmp_path)!r}, 'live').acquire()\nprint('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        written = json.loads((tmp_path / LOCK).read_text())
        assert written["pid"] == holder.pid
        stepped = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)  # the clock then, as this clock reads it now
        # Written anew, not in place: the live writer's flock on its own file refused the second run whatever the
        # ticks said, so this part tested the flock only; a file no process holds is judged by its ticks alone.
        (tmp_path / LOCK).unlink()
        (tmp_path / LOCK).write_text(json.dumps({**written, "started": stepped.strftime("%Y-%m-%dT%H:%M:%SZ")}))
        with pytest.raises(OutputLocked, match=f"in use by run live \\(pid {holder.pid} "):
            OutputLock(str(tmp_path), "second").acquire()
        # the same pid, another process's start: a later process took the dead writer's pid (the dead writer's file,
        # which no live process holds: the live one's is written anew, not in place)
        (tmp_path / LOCK).unlink()
        (tmp_path / LOCK).write_text(json.dumps({**written, "ticks": written["ticks"] - 1,
                                                 "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}))
        with OutputLock(str(tmp_path), "rerun"):
            assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "rerun"
    finally:
        holder.kill()
        holder.wait()


def _seen_from_another_pid_namespace_is_refused(folder, dead_pid: int) -> None:
    """The live run's lock rewritten in place (the file its writer holds) as a run in another pid namespace reads it,
    the writer's pid naming no process there: a second run is refused, the lock left the live run's."""
    written = json.loads((folder / LOCK).read_text())
    with open(folder / LOCK, "r+", encoding="utf-8") as seen:
        seen.truncate()
        seen.write(json.dumps({**written, "pid": dead_pid}))
    with pytest.raises(OutputLocked, match="in use by run live"):
        OutputLock(str(folder), "second").acquire()
    assert json.loads((folder / LOCK).read_text())["run_id"] == "live"


def _a_lock_taken_here_is_refused_from_another_pid_namespace(folder: Path,
                                                            taken: Callable[[], None] = lambda: None) -> None:
    """This process takes the lock of `folder` as run "live" (`taken` runs once it holds it), and a run in another pid
    namespace, reading the lock's pid as no process, is refused (`_seen_from_another_pid_namespace_is_refused`)."""
    gone_pid = pid_gone()
    live = OutputLock(str(folder), "live")
    live.acquire()
    try:
        taken()
        _seen_from_another_pid_namespace_is_refused(folder, gone_pid)
    finally:
        live.release()


def test_a_live_run_s_lock_read_from_another_pid_namespace_is_refused_and_taken_over_once_it_ends(tmp_path):
    """Two containers on one machine sharing a host name (`docker run --network=host`, a Kubernetes pod on the host's
    network) and an output folder: each sees the other's pid as no process of its own (or as another process, started
    at another tick), so the second run read the first one's live lock as a dead run's, took it over, and two runs
    wrote one output. The lock file's flock, which its writer holds while it runs, is seen from every namespace: held.
    Once the writer is gone (killed), the lock is taken over as before."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pipeline.io.lock import OutputLock\n"
         f"OutputLock({str(tmp_path)!r}, 'live').acquire()\nprint('held', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    gone_pid = pid_gone()
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        _seen_from_another_pid_namespace_is_refused(tmp_path, gone_pid)
    finally:
        holder.kill()
        holder.wait()
    with OutputLock(str(tmp_path), "rerun"):  # its writer killed: a dead run's lock, taken over
        assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "rerun"
    assert not (tmp_path / LOCK).exists()


def test_the_writer_s_flock_is_held_where_an_exclusive_one_needs_the_file_open_for_writing(tmp_path, monkeypatch):
    """An NFS client emulates flock() by a lock of the whole file's bytes, and an exclusive one needs the file open for
    writing (flock(2)). The writer took its flock on a descriptor opened read-only: refused there (EBADF), unsaid, so
    a run's lock on an NFS output (a Kubernetes volume, two pods on the host's network) held no flock, and a run in
    another pid namespace took the live run's lock over. The flock is taken as that client allows it."""
    import errno
    import fcntl
    import stat

    real = fcntl.flock

    def nfs_flock(descriptor: int, operation: int) -> None:
        if (operation & fcntl.LOCK_EX and stat.S_ISREG(os.fstat(descriptor).st_mode)
                and fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", nfs_flock)
    _a_lock_taken_here_is_refused_from_another_pid_namespace(tmp_path)


def test_a_lock_holding_hostile_text_is_refused_in_one_short_printable_line(tmp_path):
    """A lock is a file in the output folder, outside input: one holding terminal escapes (OSC 52 sets the clipboard of
    the terminal showing the error, ESC [2J clears it), line breaks and 60,000 characters in its fields was quoted
    whole into the refusal, three lines of 60 kB with the escapes in them. Each field is shown escaped and cut."""
    (tmp_path / LOCK).write_text(json.dumps({
        "run_id": "\x1b]52;c;ZWNobyBoaQ==\x07" + "x" * 60_000 + "\nsecond line", "host": "h\x1b[2J\u202e",
        "pid": int("9" * 4000), "started": "2026-01-01T00:00:00Z\nthird"}))
    with pytest.raises(OutputLocked) as refused:
        OutputLock(str(tmp_path), "mine").acquire()
    said = str(refused.value)
    assert said.isprintable() and len(said) < 1000, (len(said), said[:300])
    assert "in use by run \\x1b]52;c;ZWNobyBoaQ==\\x07xxx" in said and "on h\\x1b[2J\\u202e, started" in said, said
    assert f"remove {tmp_path / LOCK}" in said


def test_a_folder_that_cannot_be_listed_once_the_lock_is_taken_still_leaves_the_run_its_lock(tmp_path, monkeypatch):
    """The lock's stale temporaries are looked for once it is taken: a listing that failed (EACCES on a folder the run
    may write but not read, an NFS hiccup) raised OutputNotWritable with the lock already made, and no run could
    release it: the output stayed locked by a run that never started. Clearing old temporaries is housekeeping."""
    def unlistable(path):
        raise PermissionError(13, "Permission denied")

    output = tmp_path / "out"
    monkeypatch.setattr(lock.os, "scandir", unlistable)
    held = OutputLock(str(output), "mine")
    held.acquire()
    monkeypatch.undo()
    assert (output / LOCK).exists()
    held.release()
    assert not (output / LOCK).exists()
    second = OutputLock(str(output), "next")
    second.acquire()
    second.release()


def _temporary_of(folder, pid: int) -> os.DirEntry[str]:
    """A lock temporary as `_create_if_absent` writes it, its writer `pid` on this host, written now."""
    import datetime as dt
    import socket

    (folder / f"{lock.LOCK_TEMPORARY}writer").write_text(json.dumps({
        "run_id": "writer", "host": socket.gethostname(), "pid": pid,
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}))
    return next(entry for entry in os.scandir(folder) if entry.name.startswith(lock.LOCK_TEMPORARY))


@pytest.mark.parametrize("seen", ["its pid as no process", "its file a minute old (the clock stepped forward)"])
def test_a_live_writer_s_lock_temporary_is_no_leftover_however_its_pid_or_age_reads(tmp_path, seen):
    """A run in another container of the machine sharing its host name (another pid namespace) writing its lock's
    temporary as this run took the lock: its pid read here as no process's (or the wall clock stepped forward, its
    file then older than a minute) made it a killed run's leftover, and it was removed under the live writer, whose
    link then failed: "cannot write to --output: No such file or directory" for a run in use by another. The writer
    holds a flock on its temporary from the moment it is created, seen from every namespace: left while held, and
    removed once its writer is gone."""
    import fcntl
    import socket

    gone_pid = pid_gone()
    entry = _temporary_of(tmp_path, gone_pid if seen.startswith("its pid") else os.getpid())
    if not seen.startswith("its pid"):
        os.utime(entry.path, (entry.stat().st_atime - 120, entry.stat().st_mtime - 120))
        entry = next(os.scandir(tmp_path))
    writer = os.open(entry.path, os.O_RDWR)  # another open file: its flock is another holder's, as another process's
    try:
        fcntl.flock(writer, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert not lock._temporary_is_stale(entry, socket.gethostname())
    finally:
        os.close(writer)
    assert lock._temporary_is_stale(entry, socket.gethostname())  # its writer gone: a leftover


def test_a_probe_of_a_temporary_as_its_writer_takes_its_flock_leaves_the_lock_held(tmp_path, monkeypatch):
    """Whether a temporary's writer lives is asked of its flock (a shared one, taken and dropped at once). One landing
    as the writer took its own exclusive flock made the writer's fail, unsaid: its lock was then linked holding none,
    and a run in another pid namespace took the live run's lock over. The writer takes its flock again, a probe's
    being over in a moment."""
    import fcntl

    real = fcntl.flock
    probed: list[int] = []

    def probed_once(descriptor: int, operation: int) -> None:
        named = os.readlink(f"/proc/self/fd/{descriptor}")
        if operation & fcntl.LOCK_EX and os.path.basename(named).startswith(lock.LOCK_TEMPORARY) and not probed:
            probe = os.open(named, os.O_RDONLY | os.O_NONBLOCK)  # a probe holds its shared flock at this moment
            real(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
            probed.append(probe)
            try:
                real(descriptor, operation)
            finally:
                os.close(probe)  # and drops it
            return
        real(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", probed_once)

    def taken() -> None:
        assert probed
        monkeypatch.setattr(fcntl, "flock", real)

    _a_lock_taken_here_is_refused_from_another_pid_namespace(tmp_path, taken)


def test_a_live_writer_s_temporary_is_no_leftover_at_any_of_its_steps(tmp_path, monkeypatch):
    """The writer wrote its temporary, closed it, and only then took its flock: judged in between by a run in another
    pid namespace (the writer's pid no process there), it was a leftover, held by no one, and removed under the
    writer. It is created, held, and only then written: empty, it is no lock; written, it is held."""
    import fcntl
    import socket

    real_flock, real_link = fcntl.flock, os.link
    judged: list[tuple[str, bool]] = []

    def judge(step: str) -> None:
        with monkeypatch.context() as elsewhere:
            elsewhere.setattr(lock, "_pid_alive", lambda pid: False)  # the writer's pid, read in another namespace
            elsewhere.setattr(fcntl, "flock", real_flock)
            for entry in os.scandir(tmp_path):
                if entry.name.startswith(lock.LOCK_TEMPORARY):
                    judged.append((step, lock._temporary_is_stale(entry, socket.gethostname())))

    def flock(descriptor: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX:
            judge("before its flock")
        real_flock(descriptor, operation)

    def link(source, destination, **kwargs) -> None:
        judge("before its link")
        real_link(source, destination, **kwargs)

    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(os, "link", link)
    mine = OutputLock(str(tmp_path), "live")
    mine.acquire()
    monkeypatch.undo()
    mine.release()
    assert judged == [("before its flock", False), ("before its link", False)]


def _a_is_refused_naming_b(output: Path, runs: dict[str, OutputLock]) -> None:
    """Run A takes the lock of `output` while run B's takeover (the test's, put in `runs` once made) happens under
    it: A is refused naming B, B's lock is what is left there, and it goes as B releases it."""
    try:
        with pytest.raises(OutputLocked, match="in use by run B"):
            OutputLock(str(output), "A").acquire()
        assert "B" in runs and json.loads((output / LOCK).read_text())["run_id"] == "B"
    finally:
        if "B" in runs:
            runs["B"].release()
    assert not (output / LOCK).exists()


def test_a_dead_run_s_lock_in_a_folder_another_process_holds_a_flock_on_is_taken_over(tmp_path):
    """`flock OUTPUT pass-pipeline run --output=OUTPUT` (flock(1), the usual guard of a scheduled job against runs that
    overlap) holds an exclusive flock on the output folder for the whole run. Taking a killed run's lock over took
    turns with other takeovers by that same flock of the folder: the run waited for its own wrapper for good, and
    later was refused after a while, every scheduled run after a killed one, until someone removed the lock. Takeovers
    take turns by the dead lock file's own flock: the folder's is none of their business."""
    import fcntl

    killed_runs_lock(tmp_path)
    wrapper = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(wrapper, fcntl.LOCK_EX)
    taker, outcome = _taking(tmp_path)
    try:
        taker.start()
        taker.join(30)
        assert outcome == [None] and json.loads((tmp_path / LOCK).read_text())["run_id"] == "mine"
        probe = os.open(tmp_path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):  # the wrapper's flock untouched
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)
    finally:
        os.close(wrapper)


def test_a_dead_run_s_lock_file_another_process_holds_a_flock_on_is_refused_not_waited_on(tmp_path, monkeypatch):
    """A process other than its writer holding a flock on a dead run's lock file (a look at it, a takeover under way)
    is waited for a while, then the run is refused in one line naming the dead run and the lock to remove."""
    import fcntl

    killed_runs_lock(tmp_path)
    monkeypatch.setattr(lock, "TAKEOVER_WAIT_S", 0.2)
    other = os.open(tmp_path / LOCK, os.O_RDONLY)
    fcntl.flock(other, fcntl.LOCK_SH)  # shared: the look that judges a lock's writer gone takes one too
    taker, outcome = _taking(tmp_path)
    try:
        taker.start()
        taker.join(30)
    finally:
        os.close(other)
    assert len(outcome) == 1 and isinstance(outcome[0], OutputLocked), outcome
    said = str(outcome[0])
    assert "run killed" in said and "holds a lock (flock) of that file" in said and f"remove {tmp_path / LOCK}" in said
    assert "\n" not in said and json.loads((tmp_path / LOCK).read_text())["run_id"] == "killed"


def test_a_takeover_that_gets_the_dead_lock_s_flock_after_another_took_it_over_removes_nothing(tmp_path,
                                                                                                monkeypatch):
    """Two runs judge one killed run's lock stale; B takes its flock first, removes it and makes its own lock while A
    waits for that flock. A then holds the flock of a file no name leads to: removing the lock by its name, it would
    remove B's, and both would run. A removes nothing, judges again, and is refused: B's lock is a live run's."""
    import fcntl

    killed_runs_lock(tmp_path)
    dead = os.stat(tmp_path / LOCK).st_ino
    real_flock = fcntl.flock
    runs: dict[str, OutputLock] = {}

    def flock(descriptor: int, operation: int) -> None:
        if operation & fcntl.LOCK_EX and os.fstat(descriptor).st_ino == dead and "B" not in runs:
            runs["B"] = OutputLock(str(tmp_path), "B")  # B's whole takeover, as A's waits
            runs["B"].acquire()
        real_flock(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    _a_is_refused_naming_b(tmp_path, runs)


def test_a_takeover_that_opens_the_lock_another_took_over_since_it_was_judged_is_refused_naming_that_run(tmp_path,
                                                                                                          monkeypatch):
    """A judges a killed run's lock stale; before A opens it for its flock, B takes it over and its own lock, which B
    holds a flock on, is there. A removes nothing and judges again: refused naming B at once, not after waiting
    TAKEOVER_WAIT_S for B's flock and then naming the dead run, with "remove" the lock that is B's."""
    killed_runs_lock(tmp_path)
    real_remove = lock._remove_dead_lock
    runs: dict[str, OutputLock] = {}

    def remove(path: str, judged: lock.Holder) -> None:
        if "B" not in runs:
            runs["B"] = OutputLock(str(tmp_path), "B")  # B's whole takeover, between A's judgement and A's open
            runs["B"].acquire()
        real_remove(path, judged)

    monkeypatch.setattr(lock, "_remove_dead_lock", remove)
    monkeypatch.setattr(lock, "TAKEOVER_WAIT_S", 0.2)
    _a_is_refused_naming_b(tmp_path, runs)


def test_a_run_meeting_a_dead_lock_as_another_takes_it_over_is_refused_naming_that_run(tmp_path, monkeypatch):
    """Two runs meet one killed run's lock at the same moment. B holds the dead lock file's flock while it takes it
    over (`_remove_dead_lock`), and A's look at that flock, which tells a live run in another pid namespace of the
    machine (`_held_by_a_live_process`), found it held: A was refused as if the killed run still ran, "in use by run
    killed ...; if that run is gone, remove OUTPUT/_lock.json", a file that by then held B's lock, B running. A waits
    for the takeover, judges again and is refused naming B."""
    import fcntl

    killed_runs_lock(tmp_path)
    real_probe = lock._held_by_a_live_process
    runs: dict[str, OutputLock] = {}

    def probe(path: str) -> bool:
        if "B" in runs:
            return real_probe(path)
        taking = os.open(tmp_path / LOCK, os.O_RDWR)
        fcntl.flock(taking, fcntl.LOCK_EX)  # B's takeover under way as A looks
        try:
            held = real_probe(path)
            os.unlink(tmp_path / LOCK)
        finally:
            os.close(taking)
        runs["B"] = OutputLock(str(tmp_path), "B")  # B's takeover ends: its own lock made
        runs["B"].acquire()
        return held

    monkeypatch.setattr(lock, "_held_by_a_live_process", probe)
    _a_is_refused_naming_b(tmp_path, runs)


def test_a_dead_run_s_lock_of_another_user_removed_by_another_takeover_as_it_is_opened_is_taken(tmp_path,
                                                                                                monkeypatch):
    """A killed run's lock this user may not open for writing (another user's) is opened read-only for its flock; a
    takeover by another run that removed it between the two opens made that second open's "No such file or directory"
    a refusal, "cannot be taken over (No such file or directory); remove OUTPUT/_lock.json", with no lock there to
    remove. The lock gone, it is judged again and taken."""
    killed_runs_lock(tmp_path)
    dead = str(tmp_path / LOCK)
    real_open = os.open

    def opening(path: str, flags: int, *args: int, **kwargs: int | None) -> int:
        if str(path) == dead and flags & os.O_RDWR and os.path.exists(dead):
            os.unlink(dead)  # the other run's takeover, as this one is refused the file for writing
            raise PermissionError(13, "Permission denied", dead)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", opening)
    taking = OutputLock(str(tmp_path), "mine")
    taking.acquire()
    monkeypatch.undo()
    try:
        assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "mine"
    finally:
        taking.release()
    assert not (tmp_path / LOCK).exists()


TAKE_THE_LOCK = """
import sys
from pipeline.io.lock import OutputLock, OutputLocked, OutputNotWritable

try:
    OutputLock(sys.argv[1], "mine").acquire()
    print("taken")
except (OutputLocked, OutputNotWritable) as err:
    print(type(err).__name__, err)
"""


def test_a_dead_run_s_lock_in_a_folder_the_run_may_write_but_not_read_is_taken_over(tmp_path):
    """A folder the run may write and pass through but not read (mode 0300, another user's): its takeover of a killed
    run's lock opened the folder to take turns by its flock, which the disk refused: a PermissionError out of the lock,
    "the job failed", exit 1 (later a refusal in one line). Takeovers take turns by the dead lock file's own flock,
    which needs no listing of the folder: the lock is taken over."""
    from tests.conftest import run_in_a_folder_one_may_not_list

    output = tmp_path / "out"
    output.mkdir()
    killed_runs_lock(output)
    done = run_in_a_folder_one_may_not_list([sys.executable, "-c", TAKE_THE_LOCK, str(output)], output)
    assert done.returncode == 0 and done.stdout.strip() == "taken", (done.stdout, done.stderr)
    assert json.loads((output / LOCK).read_text())["run_id"] == "mine"


def test_a_dead_run_s_lock_of_another_user_in_a_sticky_folder_is_refused_in_one_line(tmp_path):
    """A killed run's lock that this user may not remove (another user's, in a sticky folder such as a shared /tmp
    output, nor writable to this one): refused in one line naming the dead run, the disk's reason and the lock to
    remove, exit 2, not a PermissionError out of the lock ("the job failed", exit 1, as if the job had run)."""
    from tests.conftest import as_a_user_the_disk_refuses

    if os.geteuid() != 0:
        pytest.skip("a lock and a folder of another user can only be made as root")
    output = tmp_path / "shared"
    output.mkdir()
    killed_runs_lock(output)
    nobody = 65534
    os.chown(output / LOCK, nobody, nobody)
    os.chown(output, nobody, nobody)
    output.chmod(0o1777)
    command = as_a_user_the_disk_refuses([sys.executable, "-c", TAKE_THE_LOCK, str(output)],
                                         "removes anyone's file from a sticky folder", also=("fowner",))
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("OutputLocked "), (done.stdout, done.stderr)
    said = done.stdout.removeprefix("OutputLocked ").strip()
    assert "run killed" in said and "Operation not permitted" in said and f"remove {output / LOCK}" in said, said
    assert "\n" not in said and json.loads((output / LOCK).read_text())["run_id"] == "killed"


@pytest.mark.parametrize("leads_to", ["a dead run's lock", "a live run's lock", "nothing", "a device"])
def test_a_lock_that_is_a_symbolic_link_is_refused_saying_so_and_left(tmp_path, leads_to):
    """A `_lock.json` that is a symbolic link is none a run makes (a run links its lock as a file of its own). One
    leading to a dead run's lock was refused "cannot be taken over (Too many levels of symbolic links)", one leading
    to a live run's as in use by that run, one leading nowhere as in use by "another run": the refusal says plainly
    that the lock is a symbolic link, where it leads, and to remove it if no run uses it. The link is neither
    followed (the lock it leads to, a dead run's, is not taken over) nor removed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    output = tmp_path / "out"
    output.mkdir()
    live = OutputLock(str(elsewhere), "live")
    if leads_to == "a dead run's lock":
        killed_runs_lock(elsewhere)
    elif leads_to == "a live run's lock":
        live.acquire()
    target = {"a device": "/dev/zero"}.get(leads_to, str(elsewhere / LOCK))
    (output / LOCK).symlink_to(target)
    before = (elsewhere / LOCK).read_bytes() if (elsewhere / LOCK).exists() else None
    try:
        with pytest.raises(OutputLocked) as refused:
            OutputLock(str(output), "mine").acquire()
        assert str(refused.value) == (f"{output} cannot be locked: {output / LOCK} is a symbolic link (to {target}), "
                                      f"which no run makes; remove the link if no run uses it, and run again")
        assert os.readlink(output / LOCK) == target
        assert ((elsewhere / LOCK).read_bytes() if (elsewhere / LOCK).exists() else None) == before
    finally:
        live.release()


def test_a_lock_field_cut_at_its_bound_never_ends_in_half_an_escape():
    """A lock's fields (outside input, read from the output folder) are escaped and cut at SHOWN_CHARACTERS: cut
    after escaping, an ESC across the cut was shown as `\\x1` (read as other text). The cut falls where no escape is
    split, the length said still the escaped field's."""
    for before in range(lock.SHOWN_CHARACTERS - 4, lock.SHOWN_CHARACTERS + 1):
        said = lock.Holder("7" * before + "\x1b" * 50, "host", 1, "2026-12-04T00:00:00Z").describe()
        shown = said.removeprefix("run ").split("…")[0]
        assert (len(shown) - before) % 4 == 0 and len(shown) >= lock.SHOWN_CHARACTERS - 3, shown[-8:]
        assert said.startswith(f"run {shown}… ({before + 200:,} characters) (pid 1 on host"), said


def test_a_lock_left_unreleased_is_named_in_one_printable_line_whatever_its_folder_is_named(tmp_path, monkeypatch,
                                                                                            capsys):
    """The line saying a lock could not be read to release it names the lock and its folder (--output, as typed): a
    folder named with an OSC 52, ESC [2J, a right-to-left override and a line break was printed as it was, its
    escapes sent to the terminal and a forged `pass-pipeline: OK` line of its own. It is one line, the names in
    Python's quoting (files to act on)."""
    folder = tmp_path / "o\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\u202e\npass-pipeline: OK"
    folder.mkdir()
    held = OutputLock(str(folder), "run")
    held.acquire()
    monkeypatch.setattr(lock, "RELEASE_READ_PAUSE_S", 0)

    def unreadable(path: str, limit: int) -> bytes:
        raise OSError("down")

    monkeypatch.setattr(lock, "read_regular_file", unreadable)
    held.release()
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\u202e" not in err and err.count("\n") == 1, err
    shown = f"{tmp_path}/o\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\npass-pipeline: OK"
    assert err == (f"pass-pipeline: the lock '{shown}/{LOCK}' could not be read to release it (OSError); remove it "
                   f"once no run is using '{shown}'\n"), err
    monkeypatch.undo()
    held.release()  # readable again: released
    assert not (folder / LOCK).exists()


def test_a_lock_left_unreleased_whose_folder_holds_a_backslash_is_named_apart_from_one_holding_a_line_break(
        tmp_path, monkeypatch, capsys):
    """The line saying a lock could not be read to release it asks the reader to remove the lock: the path is one to
    act on, shown in Python's quoting as a verify report line's is (`quoted`). Escaped as a message is, a folder named
    with a backslash and an `n` and one named with a line break were the same text: the reader could not tell which
    lock to remove. Each reads back as the path it is."""
    monkeypatch.setattr(lock, "RELEASE_READ_PAUSE_S", 0)

    def unreadable(path: str, limit: int) -> bytes:
        raise OSError("down")

    monkeypatch.setattr(lock, "read_regular_file", unreadable)
    shown = []
    for name in ("a\\nb", "a\nb"):
        folder = tmp_path / name
        folder.mkdir()
        held = OutputLock(str(folder), "run")
        held.acquire()
        held.release()
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.rstrip("\n").isprintable(), err
        shown.append(err)
    broken = str(tmp_path / "a\nb")
    assert shown[0] != shown[1], shown
    assert shown[1].startswith(f"pass-pipeline: the lock {f'{broken}/{LOCK}'!r} could not be read"), shown
    assert shown[1].rstrip("\n").endswith(f"remove it once no run is using {broken!r}"), shown
    assert shown[0].startswith(f"pass-pipeline: the lock {tmp_path}/a\\nb/{LOCK} could not be read"), shown
