"""SIGTERM's stop (io/stopping.py), each case in a process of its own: a signal handler is the main thread's,
and a case that fails ends its process, never the test runner's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.io.layout import STAGING
from pipeline.io.lock import LOCK
from pipeline.io.stopping import CLEANUP_S, EXIT_STATUS, GRACE_S, INTERRUPTED_STATUS
from tests.conftest import FAST

PRELUDE = """
import os, signal, sys, time
from pipeline.io.stopping import StopRequested, StopSignals

def ready():
    print("ready", flush=True)
"""


def start(body: str, tmp_path: Path) -> subprocess.Popen:
    """`body` run after PRELUDE in a new process, once it has printed "ready"."""
    process = subprocess.Popen([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    # Unbuffered: a line read here must not take what `communicate` reads next from the pipe.
    assert process.stdout is not None and process.stdout.readline().strip() == b"ready", process.communicate()
    return process


def finish(process: subprocess.Popen, within: float) -> tuple[int, str, float]:
    begun = time.monotonic()
    out, err = process.communicate(timeout=within)
    return process.returncode, (out + err).decode(), time.monotonic() - begun


def test_a_job_that_does_not_come_back_from_the_stop_is_ended_with_its_lock_released(tmp_path):
    """Beam unwinds a stopped bundle through its DoFns' teardowns: one that waited for its threads (the fetcher's
    downloads, up to --fetch_deadline each) kept a run alive for minutes after SIGTERM, its lock held. Past the grace
    the lock is released and the process ends, exit 143."""
    process = start("""
        with StopSignals(release=lambda: open("released", "w").close()) as stop, stop.job():
            while True:
                try:
                    ready()  # in the try: a stop landing just after "ready" is swallowed too
                    time.sleep(3600)
                except StopRequested:  # what a runner that swallows the stop does
                    pass
    """, tmp_path)
    process.send_signal(signal.SIGTERM)
    status, output, took = finish(process, within=GRACE_S + 30)
    assert status == EXIT_STATUS and (tmp_path / "released").exists(), output
    assert took >= GRACE_S - 0.5 and "did not stop within" in output and "its lock released" in output, output


def test_a_stop_the_job_comes_back_from_runs_the_caller_s_cleanup_before_the_release(tmp_path):
    """Once the job has handed the stop back, the run's own cleanup runs (removing its staging folder), and the release
    on the way out comes after it."""
    process = start("""
        with StopSignals(release=lambda: open("released", "w").write(str(os.path.exists("cleaned")))) as stop:
            try:
                with stop.job():
                    ready()
                    time.sleep(3600)
            finally:
                time.sleep(0.5)  # the cleanup
                open("cleaned", "w").close()
    """, tmp_path)
    process.send_signal(signal.SIGTERM)
    status, output, _ = finish(process, within=GRACE_S + 30)
    assert status == EXIT_STATUS and (tmp_path / "cleaned").exists() and "within" not in output, output
    assert (tmp_path / "released").read_text() == "True"


# A job that waits for its stop, then a cleanup that does not end (the removal of a very large staging folder).
ENDLESS_CLEANUP = textwrap.dedent("""
    with StopSignals(release=lambda: open("released", "w").close()) as stop:
        try:
            with stop.job():
                ready()
                time.sleep(3600)
        finally:
            time.sleep(3600)  # the cleanup of a very large staging folder
            open("cleaned", "w").close()
""")


def _cut_short(process: subprocess.Popen, tmp_path: Path) -> float:
    """SIGTERM to `process` (running ENDLESS_CLEANUP): it ends as the cleanup's bound ends it, its lock released;
    the seconds it took."""
    begun = time.monotonic()
    process.send_signal(signal.SIGTERM)
    status, output, _ = finish(process, within=GRACE_S + 30)
    took = time.monotonic() - begun
    assert status == EXIT_STATUS and (tmp_path / "released").exists() and not (tmp_path / "cleaned").exists(), output
    assert f"its cleanup did not end within {CLEANUP_S:g} s" in output and "its lock released" in output, output
    assert took < GRACE_S + CLEANUP_S, took
    return took


def test_a_cleanup_after_the_job_that_outlasts_its_bound_is_cut_short_with_the_lock_released(tmp_path):
    """A gs:// staging folder of many files took minutes to remove after the job's stop, the lock released only after
    it: a container's stop (docker's, Cloud Run's: SIGKILL 10 s after SIGTERM) killed the process first, and the lock
    was left where no run takes it over. Past CLEANUP_S the lock is released and the process ends, exit 143; what is
    left of the staging folder the next run removes."""
    assert _cut_short(start(ENDLESS_CLEANUP, tmp_path), tmp_path) >= CLEANUP_S - 0.5


def test_a_stop_that_landed_in_the_job_bounds_the_cleanup_however_late_its_grace_thread_runs(tmp_path):
    """Whether the stop landed in the job was read by the grace thread when it began to run, not where the signal
    landed: a thread the scheduler ran once the main thread had already left the job (a job that hands the stop back
    at once, a remote job's cancel answered at once) saw no job, and the cleanup after it went unbounded, the lock held
    until a container's SIGKILL. Here the grace thread runs only once the job is left."""
    late_grace_thread = """
        import pipeline.io.stopping as stopping
        watch = stopping.StopSignals._watch
        def late(self, *args):
            self._job_left.wait(30)  # scheduled late: the main thread has left the job by now
            watch(self, *args)
        stopping.StopSignals._watch = late
    """
    _cut_short(start(textwrap.dedent(late_grace_thread) + ENDLESS_CLEANUP, tmp_path), tmp_path)


def test_a_second_sigterm_ends_the_process_at_once(tmp_path):
    """The operator insisting (or a cleanup that hangs outside the job): a second SIGTERM ends it, as the default."""
    process = start("""
        with StopSignals():
            try:
                ready()
                time.sleep(3600)
            finally:  # the run's cleanup, inside the block as the lock's release is
                print("stopping", flush=True)
                time.sleep(3600)  # one that never ends
    """, tmp_path)
    process.send_signal(signal.SIGTERM)
    assert process.stdout is not None and process.stdout.readline().strip() == b"stopping"
    process.send_signal(signal.SIGTERM)
    status, output, took = finish(process, within=30)
    assert status == EXIT_STATUS and took < GRACE_S, output
    # A block that holds no lock (verify, evaluate) said "its lock released; the next run into the output removes its
    # staging folder": its line says what happened, nothing of a lock or a run.
    assert output.splitlines()[-1] == "pass-pipeline: stopped (SIGTERM again): ended at once", output


@pytest.mark.parametrize(("signum", "stop"), [(signal.SIGTERM, "StopRequested"), (signal.SIGINT, "KeyboardInterrupt")])
def test_a_stop_a_transform_met_is_still_a_stop_not_a_failed_job(tmp_path, signum, stop):
    """Raised inside a transform, Beam reports the stop as the job's failure: the run said 'the job failed:
    KeyboardInterrupt [while running 'Fetch']' (or 'SystemExit: 143') and exited 1. It is still the stop that was
    asked for; any other failure stays one; the handlers are put back after the block."""
    process = start(f"""
        before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        ready()
        try:
            with StopSignals():
                try:
                    os.kill(os.getpid(), {int(signum)})
                    time.sleep(10)
                except BaseException as err:  # what Beam does with an exception in a DoFn
                    raise RuntimeError(f"{{type(err).__name__}} [while running 'Fetch']") from err
        except {stop}:
            print("stopped", (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before)
        try:
            with StopSignals():
                raise RuntimeError("a worker failed")
        except RuntimeError:
            print("failure")
    """, tmp_path)
    status, output, _ = finish(process, within=60)
    assert status == 0 and output.split() == ["stopped", "True", "failure"], output


def test_off_the_main_thread_the_block_runs_as_without_it(tmp_path):
    """Only the main thread can set a signal handler (a test runner's thread, a library's caller): the block runs,
    and SIGTERM keeps the meaning it had."""
    process = start("""
        import threading
        def body():
            with StopSignals():
                print("ran", file=sys.stderr)
        thread = threading.Thread(target=body)
        thread.start(); thread.join()
        print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, file=sys.stderr)
        ready()
        time.sleep(3600)
    """, tmp_path)
    process.send_signal(signal.SIGTERM)
    status, output, _ = finish(process, within=30)
    assert status == -signal.SIGTERM and output.split() == ["ran", "True"], output


def test_a_stopped_run_cancels_its_remote_job_and_a_finished_one_is_left_alone(tmp_path):
    """On Dataflow the launcher waits for a job that runs elsewhere: stopped, the launcher ended and the job went on,
    billed, its output never published (the launcher publishes). The stop cancels it; a job that finished or failed
    on its own is not cancelled."""
    process = start("""
        class RemoteJob:  # a PipelineResult whose job runs elsewhere
            def __init__(self, wait):
                self._wait = wait
            def wait_until_finish(self):
                self._wait()
            def cancel(self):
                open("cancelled", "a").write("x")

        def failed():
            raise RuntimeError("the job failed")

        with StopSignals() as stop, stop.job():
            stop.wait(RemoteJob(lambda: None))  # finished
            try:
                stop.wait(RemoteJob(failed))
            except RuntimeError:
                pass
            stop.wait(RemoteJob(lambda: (ready(), time.sleep(3600))))
    """, tmp_path)
    process.send_signal(signal.SIGTERM)
    status, output, _ = finish(process, within=30)
    assert status == EXIT_STATUS and (tmp_path / "cancelled").read_text() == "x", output


@pytest.mark.parametrize("answers", [True, False])
def test_a_remote_job_s_cancel_is_waited_for_past_the_grace_and_only_so_long(tmp_path, answers):
    """The grace (5 s, under docker stop's 10) ended a stopped launcher in the middle of its cancel request when the
    job's API was slow to answer: the remote job went on, billed, its output never published. The cancel is waited
    for up to CANCEL_S past the grace; one that never answers ends the process then, saying to cancel the job."""
    process = start(f"""
        import pipeline.io.stopping as stopping
        stopping.CANCEL_S = 3.0

        class RemoteJob:
            def wait_until_finish(self):
                ready()
                time.sleep(3600)
            def cancel(self):
                time.sleep(1.0 if {answers} else 3600)  # past the grace, 0.2 s
                open("cancelled", "w").close()

        with StopSignals(grace_s=0.2) as stop, stop.job():
            stop.wait(RemoteJob())
    """, tmp_path)
    process.send_signal(signal.SIGTERM)
    status, output, took = finish(process, within=30)
    assert status == EXIT_STATUS, output
    # Said as the wait begins: silent, a container's SIGKILL 10 s after its SIGTERM left no word of it.
    assert "pass-pipeline: stopping: waiting up to 3 s more for the remote job's cancel to be answered" in output
    if answers:
        assert (tmp_path / "cancelled").exists() and "did not" not in output, output
    else:
        assert not (tmp_path / "cancelled").exists() and took < 10, (output, took)
        assert "the remote job's cancel did not answer within 3.2 s (cancel it where it runs)" in output, output


def test_a_signal_the_process_ignores_stays_ignored(tmp_path):
    """A shell starts a script's background jobs (`pass-pipeline run ... &`) with SIGINT ignored, nohup too: a Ctrl-C
    meant for the foreground stopped them once the run set its own handler."""
    process = start("""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with StopSignals():
            ready()
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
            print("still running", flush=True)
        print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    """, tmp_path)
    status, output, _ = finish(process, within=30)
    assert status == 0 and output.split() == ["still", "running", "True"], output
def test_a_second_signal_ends_the_process_at_once_its_lock_released(tmp_path):
    """A double Ctrl-C (or SIGTERM twice) while the run cleaned up ended it with no word and its lock in place: a
    lock that no run on gs:// or in another container takes over. The lock is released first, and the end said."""
    process = start("""
        with StopSignals(release=lambda: open("released", "w").close()):
            try:
                ready()
                time.sleep(3600)
            finally:  # a cleanup the operator does not wait for
                print("stopping", flush=True)
                time.sleep(3600)
    """, tmp_path)
    process.send_signal(signal.SIGINT)
    assert process.stdout is not None and process.stdout.readline().strip() == b"stopping"
    process.send_signal(signal.SIGINT)
    status, output, took = finish(process, within=30)
    assert status == INTERRUPTED_STATUS and took < GRACE_S and (tmp_path / "released").exists(), output
    assert "stopped (Ctrl-C again): ended at once, its lock released" in output


# Runs the command with a stop (SIGTERM to itself) arriving as the named function of pipeline.io.lock begins.
STOPPED_AT = """
import os, signal, sys
import pipeline.io.lock as lock
owner, _, name = sys.argv.pop(1).rpartition(".")
holder = getattr(lock, owner) if owner else lock
original = getattr(holder, name)
def stopped(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)
setattr(holder, name, stopped)
from pipeline.cli import entry
sys.exit(entry())
"""


@pytest.fixture()
def world(tmp_path):
    from pipeline.fixtures.demo_world import build_demo_world
    from pipeline.fixtures.static_server import StaticServer

    with StaticServer() as server:
        yield server, build_demo_world(server, tmp_path / "input")


def stopped_at(function: str, command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", STOPPED_AT, function, *command], capture_output=True, text=True,
                          timeout=120)


def test_a_stop_while_the_lock_is_being_taken_does_not_leave_it(world, tmp_path):
    """SIGTERM after the lock was linked and before the run held it (the lock's own cleanup of its temporaries
    runs in between): the run ended, exit 143, its lock left in the output."""
    server, metadata = world
    output = tmp_path / "out"
    done = stopped_at("_remove_stale_temporaries", ["run", f"--input={metadata}", f"--output={output}",
                                                    f"--allowed_hosts={server.host}", *FAST])
    assert done.returncode == EXIT_STATUS and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not (output / LOCK).exists()


def test_a_refresh_stopped_as_it_releases_its_lock_leaves_a_release_verify_passes(world, tmp_path):
    """SIGTERM as a refresh, its release published, began releasing its lock: `_lock.json` stayed inside the
    published release, which nothing may change: verify refused it ('_lock.json: not listed in the manifest'), and so
    did every later refresh built on it (--previous=latest) until someone removed the file by hand. Its rerun (a
    scheduler retrying exit 143) finds the release its own and exits 0."""
    server, metadata = world
    root = tmp_path / "root"
    command = ["refresh", f"--output={root}", "--release=r1", f"--input={metadata}", f"--allowed_hosts={server.host}",
               *FAST]
    done = stopped_at("OutputLock.release", command)
    release = root / "releases" / "r1"
    assert done.returncode == EXIT_STATUS and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert (release / "manifest.json").exists() and not (release / LOCK).exists()
    checked = subprocess.run([sys.executable, "-m", "pipeline", "verify", str(release)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # A scheduler retrying the exit 143 reruns the same command: the release is this refresh's, done (it was exit 2,
    # "release r1 is already published", an alert for a whole release), and nothing in it is touched
    manifest = (release / "manifest.json").read_bytes()
    retried = subprocess.run([sys.executable, "-m", "pipeline", *command], capture_output=True, text=True, timeout=120)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "release r1 was already published by this same refresh" in retried.stdout
    assert (release / "manifest.json").read_bytes() == manifest and not (release / LOCK).exists()



# A refresh with SIGTERM arriving as its publish, the release's manifest moved in, begins removing its staging folder
# (the staged images, not published: seconds for a large run).
STOPPED_AS_STAGING_IS_REMOVED = """
import os, signal, sys
import pipeline.io.layout as layout
removed = layout.remove_folder
def remove_folder(folder):
    if os.path.exists(os.path.join(folder, layout.PUBLISHING)):
        os.kill(os.getpid(), signal.SIGTERM)
    return removed(folder)
layout.remove_folder = remove_folder
from pipeline.cli import entry
sys.exit(entry())
"""


def test_a_refresh_stopped_as_it_removes_its_staging_folder_after_publishing_leaves_a_release_verify_passes(
        world, tmp_path):
    """SIGTERM after the release's manifest was moved in, as the publish removed its staging folder: the cleanup kept
    the folder for its publish plan ('the next run finishes it'), but no run touches a published release, and verify
    refused it for good (`_staging/RUN/PUBLISHING.json: not listed in the manifest`), with it every refresh built on it.
    A plan whose manifest was moved in is carried out: the folder is removed, exit 143, verify passes."""
    server, metadata = world
    root = tmp_path / "root"
    command = ["refresh", f"--output={root}", "--release=r1", f"--input={metadata}", f"--allowed_hosts={server.host}",
               *FAST]
    done = subprocess.run([sys.executable, "-c", STOPPED_AS_STAGING_IS_REMOVED, *command], capture_output=True,
                          text=True, timeout=120)
    release = root / "releases" / "r1"
    assert done.returncode == EXIT_STATUS and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert (release / "manifest.json").exists() and not (release / STAGING).exists() and not (release / LOCK).exists()
    checked = subprocess.run([sys.executable, "-m", "pipeline", "verify", str(release)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr



def test_a_process_that_goes_on_after_a_stopped_block_stops_its_next_block_as_a_first_stop(tmp_path):
    """The first stop was kept for the whole process: a Python session going on after a stopped run (a notebook
    catching its KeyboardInterrupt) had its next run's first Ctrl-C taken as a second one (the interpreter ended at
    once, exit 130, "Ctrl-C again"), and every later thread's exception went unprinted. A block entered with none
    around it starts afresh."""
    process = start("""
        import threading
        ready()
        for attempt in (1, 2):
            try:
                with StopSignals():
                    if attempt == 2:
                        # Joined: its error hook waits up to STOP_NOTICED_S for a stop before printing, and a Ctrl-C
                        # sent after a fixed 0.5 s fell inside that wait on a loaded machine (the error unprinted).
                        failing = threading.Thread(target=lambda: 1 / 0)
                        failing.start()
                        failing.join()
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(1)
            except KeyboardInterrupt:
                print("stopped", attempt, flush=True)
    """, tmp_path)
    status, output, _ = finish(process, within=30)
    assert status == 0 and "stopped 1" in output and "stopped 2" in output, output
    assert "ZeroDivisionError" in output and "again" not in output, output


def _in_session(session: int) -> list[int]:
    """The live processes of a session (zombies aside), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session and fields[0] != b"Z":
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize(("signum", "whole_group"), [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_a_stopped_run_with_worker_processes_ends_them_and_itself_at_once(world, tmp_path, signum, whole_group):
    """With --direct_running_mode=multi_processing, Beam unwinds a stopped job by waiting for each worker process to
    exit, and one busy with a download did not: the run was ended by the grace, its staging folder left, and its
    workers lived on (a minute later, still downloading; a caller reading the run's output waited for them). Ctrl-C
    in a terminal reaches the workers too: each printed a KeyboardInterrupt's traceback, and Beam's thread another."""
    from pipeline.fixtures.demo_world import demo_image, photo_path
    from pipeline.fixtures.static_server import Response

    server, metadata = world
    output = tmp_path / "out"
    server.add(photo_path("1003"), Response(200, demo_image("chelsea.jpg"), delay=600.0))
    command = [sys.executable, "-m", "pipeline", "run", f"--input={metadata}", f"--output={output}",
               f"--allowed_hosts={server.host}", *FAST, "--direct_num_workers=2",
               "--direct_running_mode=multi_processing"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not server.hits[photo_path("1003")] and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until a worker is downloading the photo the server never answers
        time.sleep(0.5)
        (os.killpg if whole_group else os.kill)(process.pid, signum)
        begun = time.monotonic()
        _, err = process.communicate(timeout=30)  # until every process holding the pipe has ended
        took = time.monotonic() - begun
    finally:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signum and "Traceback" not in err, err[-3000:]
    assert took < GRACE_S and "did not stop within" not in err, err[-3000:]
    assert _in_session(process.pid) == [] and not (output / STAGING).exists() and not (output / LOCK).exists()


# The run as STOPPED_AT runs it, with TMPDIR a folder of the test's own, where Beam makes its `beam-pipeline-temp*`
# folder: any found there is the run's. (onnxruntime writes a `.ses` file there as it is imported, every process.)
PATCHED_RUN = """
import os, signal, sys, time
import pipeline.commands.run as run
{patch}
from pipeline.cli import entry
sys.exit(entry())
"""


def run_patched(patch: str, command: list[str], tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """The command, with `patch` (Python) applied first, started in a process whose TMPDIR is empty."""
    temporary = tmp_path / "tmpdir"
    temporary.mkdir()
    process = subprocess.Popen([sys.executable, "-c", PATCHED_RUN.format(patch=textwrap.dedent(patch)), *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                               env={**os.environ, "TMPDIR": str(temporary)})
    return process, temporary


def test_a_run_stopped_while_its_job_is_built_leaves_no_beam_temp_folder(world, tmp_path):
    """SIGTERM (or Ctrl-C) after `beam.Pipeline(...)` made its `beam-pipeline-temp*` folder in TMPDIR and before
    `Pipeline.run`, which alone removes it: the run stopped cleanly (exit 143, lock and staging gone) and left the
    folder in TMPDIR, one per stopped run."""
    server, metadata = world
    output = tmp_path / "out"
    process, temporary = run_patched("""
        built = run.build
        def build(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return built(*args, **kwargs)
        run.build = build
    """, ["run", f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}", *FAST], tmp_path)
    status, output_text, _ = finish(process, within=120)
    assert status == EXIT_STATUS and "Traceback" not in output_text, output_text[-2000:]
    assert not (output / LOCK).exists() and not (output / STAGING).exists()
    assert list(temporary.glob("beam-pipeline-temp*")) == []


def test_a_run_the_grace_ends_leaves_no_beam_temp_folder(world, tmp_path):
    """A job that does not hand the stop back within the grace is ended by `os._exit`, which runs no `finally`:
    `Pipeline.run`'s, which removes Beam's `beam-pipeline-temp*` folder, never ran and the folder stayed in TMPDIR."""
    server, metadata = world
    output = tmp_path / "out"
    process, temporary = run_patched("""
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        def run_pipeline(self, pipeline, options):  # a job that swallows the stop, as a hung teardown did
            while True:
                try:
                    print("ready", flush=True)
                    time.sleep(3600)
                except BaseException:
                    pass
        fn_runner.FnApiRunner.run_pipeline = run_pipeline
    """, ["run", f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}", *FAST], tmp_path)
    assert process.stdout is not None and process.stdout.readline().strip() == b"ready", process.communicate()
    assert len(list(temporary.glob("beam-pipeline-temp*"))) == 1  # the job's, made before it runs
    process.send_signal(signal.SIGTERM)
    status, output_text, _ = finish(process, within=GRACE_S + 60)
    assert status == EXIT_STATUS and "did not stop within" in output_text, output_text[-2000:]
    assert list(temporary.glob("beam-pipeline-temp*")) == []


def test_a_folder_made_for_the_process_is_removed_however_its_block_ends_and_no_other(tmp_path):
    """`local_folder`: removed when its block ends; a stop landing while the folder is being made (Beam's pipeline
    temp folder, inside `beam.Pipeline(...)`) is raised once the folder is recorded, else the stop left the folder
    it interrupted. Another folder with the same prefix (another process's) is left alone."""
    (tmp_path / "pass-x-other").mkdir()
    process = start("""
        import tempfile
        from pipeline.io.stopping import local_folder
        tempfile.tempdir = os.getcwd()
        def listed():
            print("listed", "|".join(sorted(os.listdir())), file=sys.stderr)
        ready()
        with local_folder(lambda: tempfile.mkdtemp(prefix="pass-x-")):
            listed()
        listed()
        def interrupted():
            made = tempfile.mkdtemp(prefix="pass-x-")
            os.kill(os.getpid(), signal.SIGTERM)  # lands here, before the folder is recorded
            time.sleep(0.2)
            return made
        with StopSignals():
            try:
                with local_folder(interrupted):
                    print("not reached", file=sys.stderr)
            except StopRequested:
                listed()
    """, tmp_path)
    status, output, _ = finish(process, within=30)
    lines = [line.split()[1].split("|") for line in output.splitlines() if line.startswith("listed")]
    assert status == 0 and len(lines) == 3 and "not reached" not in output, output
    assert len(lines[0]) == 2 and "pass-x-other" in lines[0] and lines[1:] == [["pass-x-other"]] * 2, output


def test_a_second_signal_removes_the_process_s_folders_before_it_ends(tmp_path):
    """A second signal ends the process at once with `os._exit`, which runs no `finally`: the folders made for it
    (Beam's pipeline temp folder, the demo's world) are removed first."""
    process = start("""
        import tempfile
        from pipeline.io.stopping import local_folder
        tempfile.tempdir = os.getcwd()
        with StopSignals(), local_folder(lambda: tempfile.mkdtemp(prefix="pass-x-")):
            try:
                ready()
                time.sleep(3600)
            finally:
                print("stopping", flush=True)
                time.sleep(3600)  # a cleanup the operator does not wait for
    """, tmp_path)
    assert [path.name[:7] for path in tmp_path.iterdir()] == ["pass-x-"]
    process.send_signal(signal.SIGTERM)
    assert process.stdout is not None and process.stdout.readline().strip() == b"stopping"
    process.send_signal(signal.SIGTERM)
    status, output, _ = finish(process, within=30)
    assert status == EXIT_STATUS and "ended at once" in output, output
    assert list(tmp_path.iterdir()) == []


# A stopped block's process ending through `end_process`, with a second signal (the one named) arriving as its line
# is written: the block has put the default handlers back by then.
SECOND_AS_IT_ENDS = PRELUDE + """
from pipeline.io.stopping import end_process

class Stderr:
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        if text.startswith("pass-pipeline: stopped"):
            os.kill(os.getpid(), int(sys.argv[1]))
            time.sleep(0.2)  # Python runs a handler here
        return self.stream.write(text)
    def __getattr__(self, name):
        return getattr(self.stream, name)

try:
    with StopSignals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
except StopRequested:
    sys.stderr = Stderr(sys.stderr)
    end_process(143, "pass-pipeline: stopped (SIGTERM); ended")
"""


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_as_the_stopped_process_ends_changes_nothing(second):
    """Once the stopped block has ended, the default handlers are back: a second Ctrl-C (an operator pressing it
    twice) while `end_process` wrote its line raised a KeyboardInterrupt through it (a traceback, the process ended
    by SIGINT), a second SIGTERM ended it with no line (-15). The process is ending anyway: both are ignored."""
    done = subprocess.run([sys.executable, "-c", SECOND_AS_IT_ENDS, str(int(second))], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == EXIT_STATUS, done.stderr[-2000:]
    assert done.stderr.strip() == "pass-pipeline: stopped (SIGTERM); ended", done.stderr[-2000:]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_another_thread_takes_stops_a_main_thread_blocked_in_a_wait(tmp_path, signum):
    """The kernel gives a process's signal to any thread that does not block it, and Python runs the handler in the
    main thread at its next bytecode: a main thread blocked in C (a lock, a future's result, Beam's wait for a bundle)
    heard a stop another thread took only when its wait ended. A run a SIGTERM reached through a download thread ran
    on to its slowest photo (16 s here), or to its end and published, exit 0. The thread that takes it wakes the main
    thread (the stop's handler runs once: a second would end the process at once)."""
    process = start(f"""
        import threading
        from pipeline.io.stopping import StopSignals

        def take_the_signal():
            time.sleep(0.2)
            signal.pthread_kill(threading.get_ident(), {int(signum)})  # this thread, not the main one, takes it
            time.sleep(60)

        try:
            with StopSignals():
                threading.Thread(target=take_the_signal, daemon=True).start()
                ready()
                threading.Event().wait()  # blocked in C, with no timeout
        except (StopRequested, KeyboardInterrupt) as stopped:
            print(f"stopped once: {{type(stopped).__name__}}", flush=True)
            os._exit(3)
        """, tmp_path)
    try:
        status, output, took = finish(process, within=30)
    finally:
        process.kill()  # on the code before, it waited for good
    expected = "StopRequested" if signum == signal.SIGTERM else "KeyboardInterrupt"
    assert (status, output.strip()) == (3, f"stopped once: {expected}") and took < 5, (status, output, took)


def test_a_block_leaves_the_wake_signal_as_it_found_it_for_the_processes_started_after_it(tmp_path):
    """The signal that wakes the main thread (`WAKE_SIGNAL`) was left ignored once a block ended, and an ignored
    signal, unlike a handled one, stays ignored across exec: every program the process started afterwards (pytest's
    later commands, a caller that goes on after `main()`) began with it ignored. It is as it was once the block ends."""
    process = start("""
        import subprocess
        from pipeline.io.stopping import WAKE_SIGNAL

        signal.signal(WAKE_SIGNAL, signal.SIG_DFL)
        ready()
        for _ in range(3):
            with StopSignals():
                with StopSignals():
                    pass
        child = subprocess.run([sys.executable, "-c", "import signal, sys; "
                                f"print(signal.getsignal({int(WAKE_SIGNAL)}).name)"],
                               capture_output=True, text=True, check=True)
        print(signal.getsignal(WAKE_SIGNAL).name, child.stdout.strip(), flush=True)
        """, tmp_path)
    status, output, _ = finish(process, within=30)
    assert (status, output.strip()) == (0, "SIG_DFL SIG_DFL"), output


def test_a_ctrl_c_as_a_block_s_waker_closes_leaves_the_next_block_a_waker_of_its_own(tmp_path):
    """A Ctrl-C that landed as a block's waker was closing (the block's handlers put back: Python's raises
    KeyboardInterrupt) cut its close short and left it as the process's waker, its pipe closed: the next block used it,
    so a stop another thread took no longer woke the main thread, and closed its pipe again at the end (EBADF, or a
    file of the run's that had taken the number). Here a forked child holding the pipe keeps the close waiting for its
    reader, which the Ctrl-C lands in."""
    process = start("""
        import threading

        def take_the_signal(signum):
            time.sleep(0.2)
            signal.pthread_kill(threading.get_ident(), signum)  # this thread, not the main one, takes it

        ready()
        try:
            with StopSignals():
                child = os.fork()
                if child == 0:
                    time.sleep(3)
                    os._exit(0)
                main = threading.main_thread().ident
                threading.Thread(target=lambda: (time.sleep(0.3), signal.pthread_kill(main, signal.SIGINT))).start()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        try:
            with StopSignals():
                threading.Thread(target=take_the_signal, args=(signal.SIGTERM,), daemon=True).start()
                threading.Event().wait(15)
            print("not woken", flush=True)
        except StopRequested:
            print("stopped", flush=True)
        os.kill(child, signal.SIGKILL)
        """, tmp_path)
    status, output, took = finish(process, within=30)
    assert (status, output.split()) == (0, ["interrupted", "stopped"]) and took < 10, (output, took)


def test_a_stop_landing_as_a_block_sets_its_handlers_leaves_no_block_open(tmp_path):
    """A SIGTERM whose handler ran inside `__enter__` (set for SIGTERM, SIGINT not yet) raised out of it, so `__exit__`
    never ran: the block stayed counted open, its handlers set, and in a process going on (a notebook, a test run) the
    next block's first stop was taken as a second one, the process ended at once with no cleanup."""
    process = start("""
        import pipeline.io.stopping as stopping

        ready()
        real = signal.signal

        def setting(signum, handler):  # the SIGTERM comes just as SIGINT's handler is to be set
            if signum == signal.SIGINT and handler != signal.SIG_IGN and getattr(handler, "__self__", None):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)  # its handler, now StopSignals', runs here
            return real(signum, handler)

        signal.signal = setting
        try:
            with StopSignals():
                pass
        except StopRequested:
            pass
        signal.signal = real
        print("open blocks:", stopping._open_blocks, flush=True)
        try:
            with StopSignals():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        except StopRequested:
            print("a first stop", flush=True)
        """, tmp_path)
    try:
        status, output, _ = finish(process, within=30)
    finally:
        process.kill()
    assert (status, output.strip().splitlines()) == (0, ["open blocks: 0", "a first stop"]), (status, output)


def test_a_stop_landing_as_a_block_puts_its_handlers_back_leaves_none_of_them_set(tmp_path):
    """A Ctrl-C whose handler ran inside `__exit__` (SIGTERM's handler put back, SIGINT's not yet) raised out of it,
    leaving SIGINT's handler the block's: the process's next Ctrl-C, outside any block (a notebook, a test run going
    on), was taken as a second stop and ended the process at once, with no cleanup."""
    process = start("""
        real = signal.signal
        armed = [True]

        def setting(signum, handler):  # the Ctrl-C comes just as SIGTERM's handler has been put back
            previous = real(signum, handler)
            if armed[0] and signum == signal.SIGTERM and not getattr(handler, "__self__", None):
                armed[0] = False
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)  # its handler, still StopSignals' for SIGINT, runs here
            return previous

        ready()
        signal.signal = setting
        try:
            with StopSignals():
                pass
            print("not stopped", flush=True)
        except KeyboardInterrupt:
            print("stopped", flush=True)
        signal.signal = real
        print("SIGINT:", signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            print("a plain Ctrl-C", flush=True)
        """, tmp_path)
    try:
        status, output, _ = finish(process, within=30)
    finally:
        process.kill()
    assert (status, output.strip().splitlines()) == (0, ["stopped", "SIGINT: True", "a plain Ctrl-C"]), (status, output)


def test_a_second_stop_while_the_remote_job_is_being_cancelled_says_to_cancel_it_where_it_runs(tmp_path):
    """The first stop now waits up to a minute for a slow cancel request, with no word meanwhile: an operator's second
    Ctrl-C ended the launcher at once, as asked, but its line said nothing of the remote job left running, billed."""
    process = start("""
        class RemoteJob:
            def wait_until_finish(self):
                ready()
                time.sleep(3600)
            def cancel(self):
                print("cancelling", flush=True)
                time.sleep(3600)

        with StopSignals(grace_s=0.2) as stop, stop.job():
            stop.wait(RemoteJob())
    """, tmp_path)
    try:
        process.send_signal(signal.SIGTERM)
        assert process.stdout is not None and process.stdout.readline().strip() == b"cancelling"
        process.send_signal(signal.SIGINT)
        status, output, _ = finish(process, within=30)
    finally:
        process.kill()
    assert status == INTERRUPTED_STATUS and "stopped (Ctrl-C again): ended at once" in output, output
    assert "its cancel was not answered: cancel the remote job where it runs" in output, output


SUBMITTING = """
    import pipeline.io.stopping as stopping
    stopping.CANCEL_S = {cancel_s}

    class RemoteJob:  # a PipelineResult whose job runs elsewhere
        def wait_until_finish(self):
            time.sleep(3600)
        def cancel(self):
            open("cancelled", "w").close()

    def submit():  # Pipeline.run on Dataflow: the job's files staged, then the request that makes the job
        ready()
        time.sleep({submit_s})
        open("submitted", "w").close()
        return RemoteJob()

    with StopSignals(grace_s=0.2) as stop, stop.job():
        stop.wait(stop.submit(submit, remote={remote}))
"""


def test_a_stop_while_a_remote_job_is_submitted_waits_for_it_and_cancels_it(tmp_path):
    """Raised inside Pipeline.run, the stop could land in the request that makes the Dataflow job: the job was made,
    with no handle here to cancel it, and ran on, billed, its output never published. The stop waits for the
    submission's answer, then cancels the job it made."""
    process = start(SUBMITTING.format(cancel_s=30.0, submit_s=1.5, remote=True), tmp_path)
    process.send_signal(signal.SIGTERM)
    status, output, _ = finish(process, within=30)
    assert status == EXIT_STATUS, output
    assert (tmp_path / "submitted").exists() and (tmp_path / "cancelled").exists(), output
    assert "pass-pipeline: stopping: the remote job is being submitted; it is cancelled once it is" in output, output


def test_a_local_runs_stop_is_raised_inside_the_run_at_once(tmp_path):
    """A local runner's Pipeline.run runs the whole job: the stop is not held for it."""
    process = start(SUBMITTING.format(cancel_s=30.0, submit_s=3600, remote=False), tmp_path)
    process.send_signal(signal.SIGTERM)
    status, output, took = finish(process, within=30)
    assert status == EXIT_STATUS and took < 10 and not (tmp_path / "submitted").exists(), output
    assert "being submitted" not in output, output


def test_a_submission_that_never_answers_ends_the_stop_saying_to_look_for_the_job(tmp_path):
    process = start(SUBMITTING.format(cancel_s=2.0, submit_s=3600, remote=True), tmp_path)
    process.send_signal(signal.SIGTERM)
    status, output, took = finish(process, within=30)
    assert status == EXIT_STATUS and took < 10, (output, took)
    assert ("the remote job's submission did not answer within 2 s (if it was made, cancel it where it runs)"
            in output), output


def test_a_second_stop_while_a_remote_job_is_submitted_says_to_look_for_it(tmp_path):
    process = start(SUBMITTING.format(cancel_s=30.0, submit_s=3600, remote=True), tmp_path)
    try:
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None and b"being submitted" in process.stderr.readline()
        process.send_signal(signal.SIGINT)
        status, output, _ = finish(process, within=30)
    finally:
        process.kill()
    assert status == INTERRUPTED_STATUS and "stopped (Ctrl-C again): ended at once" in output, output
    assert "the remote job was being submitted: if it was, cancel it where it runs" in output, output


def test_only_dataflow_submits_a_job_that_runs_elsewhere():
    from pipeline.commands.run import submits_remotely

    assert submits_remotely("DataflowRunner")
    assert submits_remotely("apache_beam.runners.dataflow.dataflow_runner.DataflowRunner")
    assert not any(submits_remotely(runner) for runner in ("FnApiRunner", "DirectRunner", "PrismRunner", None, ""))


def test_every_short_name_beam_runs_on_dataflow_submits_remotely():
    """Beam reads a runner's short name in any case, "Runner" optional: --runner=dataflow ran on Dataflow while its
    stop was raised inside the submission, as a local run's is, leaving a job made with no handle to cancel."""
    from apache_beam.runners.runner import create_runner

    from pipeline.commands.run import submits_remotely

    for name in ("dataflow", "Dataflow", "dataflowrunner", "DATAFLOWRUNNER", "DataflowRunner"):
        assert type(create_runner(name)).__name__ == "DataflowRunner", name
        assert submits_remotely(name), name
    # Beam's test runner waits for the job inside its submission: a stop held for it would be held to the job's end
    assert not submits_remotely("TestDataflowRunner") and not submits_remotely("direct")


def test_a_stop_landing_as_a_remote_jobs_submission_returns_still_cancels_the_job(tmp_path):
    """Between the submission's return and the wait for the job (`submit`, then `wait`) the stop was no longer held:
    raised there, it dropped the job's handle, and the job ran on, billed, as when it was raised inside the request."""
    process = start("""
        class RemoteJob:
            def wait_until_finish(self):
                time.sleep(3600)
            def cancel(self):
                open("cancelled", "w").close()

        def submit():
            ready()
            return RemoteJob()

        with StopSignals(grace_s=5) as stop, stop.job():
            result = stop.submit(submit, remote=True)
            os.kill(os.getpid(), signal.SIGTERM)  # lands once the job is made, before it is waited for
            stop.wait(result)
    """, tmp_path)
    status, output, _ = finish(process, within=30)
    assert status == EXIT_STATUS and (tmp_path / "cancelled").exists(), output


def test_a_stop_landing_while_a_log_handler_is_made_still_ends_with_its_status_and_line():
    """SIGTERM landing inside a log handler's construction (Handler.__init__ lists it before making its lock) left a
    handler without a lock in logging's list: `end_process`'s logging.shutdown() raised AttributeError, and the stopped
    run ended with exit 1 and a traceback (seen once in the SIGTERM-at-any-moment test on a loaded machine)."""
    code = ("import logging\n"
            "half_made = object.__new__(logging.StreamHandler)\n"
            "logging._addHandlerRef(half_made)  # what Handler.__init__ does before createLock()\n"
            "from pipeline.io.stopping import end_process\n"
            "end_process(143, 'pass-pipeline: stopped (SIGTERM); nothing was published')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr[-2000:]
    assert done.stderr.strip() == "pass-pipeline: stopped (SIGTERM); nothing was published"


def test_a_command_a_test_starts_takes_ctrl_c_and_a_hangup() -> None:
    """What the suite's stop tests rely on: a command they start turns Ctrl-C into KeyboardInterrupt and is ended by
    a hangup (SIGHUP at its default)."""
    script = ("import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, "
              "signal.getsignal(signal.SIGHUP) is signal.SIG_DFL)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True True", (done.stdout, done.stderr)


def test_the_suite_started_with_ctrl_c_ignored_still_starts_commands_that_take_it() -> None:
    """Started in the background of a shell without job control (`nohup bash .ci/run &`, a scheduler's job), the
    suite inherited SIGINT and SIGHUP ignored, which an exec keeps: every command a test started ignored the Ctrl-C or
    hangup it was sent, and the tests of what a stop does failed or timed out, the code under test sound. The suite's
    own (tests/conftest.py) hands its commands both signals as a terminal does."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         f"{Path(__file__).resolve()}::test_a_command_a_test_starts_takes_ctrl_c_and_a_hangup"],
        cwd=root, capture_output=True, text=True, timeout=300,
        preexec_fn=_ignoring_ctrl_c_and_hangups)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]


def _ignoring_ctrl_c_and_hangups() -> None:
    """As `nohup cmd &` in a shell without job control starts `cmd`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


# A `python -m` script of the project (`script_entry`) whose stop says what it left naming a file as typed (argv[1]),
# stopped by SIGTERM inside its block.
SCRIPT_STOPPED_NAMING_A_FILE = """
import os, signal, sys, time
from pipeline.io.stopping import script_entry, stops_saying

def main():
    with stops_saying(lambda: f"{sys.argv[1]} not written (as it was)"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    return 0

sys.exit(script_entry("fit_probe", main))
"""


def test_a_scripts_stop_line_naming_a_file_typed_with_terminal_escapes_and_a_line_break_is_one_printable_line(
        tmp_path):
    """A `python -m` script's stop line (`script_entry`: fetch, fit_fusion, fit_probe, cross_validate) says what the
    stop left, which names the files as typed: printed as it came, a name holding an OSC 52, ESC [2J, a right-to-left
    override and a line break sent its escapes to the terminal and wrote a forged `fit_probe: OK` line of its own. The
    line is one line, each unprintable character escaped as Python writes it in a string (as pass-pipeline's is)."""
    evil = f"{tmp_path}/p\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\u202e\nfit_probe: OK.json"
    done = subprocess.run([sys.executable, "-c", SCRIPT_STOPPED_NAMING_A_FILE, evil], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 128 + signal.SIGTERM and "Traceback" not in done.stderr, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].isprintable(), done.stderr
    assert lines[0] == (f"fit_probe: stopped (SIGTERM); {tmp_path}/p\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\n"
                        "fit_probe: OK.json not written (as it was)"), lines[0]
