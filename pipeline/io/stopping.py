"""How a run stops when it is asked to from outside: SIGTERM as Ctrl-C, both within a bounded time.

SIGTERM (`docker stop`, systemd, `timeout`, a scheduler cancelling the launcher) killed a run at once by default,
leaving its lock, which no run on gs://, another machine or container takes over: every later run into the output
was refused until someone removed it by hand. Inside `StopSignals` the first SIGTERM raises `StopRequested` in the
main thread, as Ctrl-C raises KeyboardInterrupt, so the run's own cleanup removes its staging folder and releases
its lock. Either raised inside a transform reaches the run as the job's failure (Beam wraps it: "KeyboardInterrupt
[while running 'Fetch']"), which the run reported as "the job failed", exit 1: it is the stop again here.

Two things could keep a stopped process alive. Beam unwinds a stopped bundle by tearing its DoFns down, and a
teardown that waited for its threads (the fetcher's downloads, each up to --fetch_deadline) held the stop for
minutes; a process that had cleaned up still waited at exit for every non-daemon thread. So the job gets `GRACE_S`
seconds to hand control back; past them the lock is released here and the process ends (its staging folder is
removed by the next run, under its lock). Once the job has handed the stop back, the run's own cleanup (removing its
staging folder) gets `CLEANUP_S` more, and is cut short the same way past them: on gs:// a staging folder of many
files took minutes to remove, the lock released only after it, and a container's stop (docker's, Cloud Run's: a
SIGKILL 10 s after the SIGTERM) killed the process first, leaving a lock no run takes over. `cli.entry` ends a
stopped process with `os._exit` once it has cleaned up.
A stop inside the job also ends the job's worker processes (`end_workers`: --direct_running_mode=multi_processing),
which Beam waits for and which otherwise outlived the run; what that does to the job's threads is not printed.
A second signal ends the process at once, as the default did, its lock released first (within
`SECOND_RELEASE_S`); a stop that lands while the lock is being taken or released releases it on the way out.
The local folders a run makes for itself (Beam's `beam-pipeline-temp*`, the demo's world) are made through
`local_folder`, which removes them however the block ends, and before either of those `os._exit`s.
A signal another thread takes (the kernel gives a process's signal to any thread that does not block it) wakes the
main thread, blocked as it may be in a wait for the job (`_MainWaker`), so the stop is heard at once there too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from pipeline.printable import printable

if TYPE_CHECKING:
    from apache_beam.runners.runner import PipelineResult

EXIT_STATUS = 128 + signal.SIGTERM  # what a shell reports for a process SIGTERM ended
INTERRUPTED_STATUS = 128 + signal.SIGINT
GRACE_S = 5.0  # under docker stop's 10 s before its SIGKILL
CLEANUP_S = 3.0  # the cleanup after the job's stop: with the grace, still under those 10 s
STOP_NOTICED_S = 0.5  # how long a failing thread waits for the stop that may have caused it to be noticed
SECOND_RELEASE_S = 2.0  # a second signal ends the process at once, its lock released unless that takes longer
# How long past the grace a remote job's cancel request (Dataflow's API) is waited for: ended by the grace mid-request,
# the launcher left the job running elsewhere, billed, its output never published.
CANCEL_S = 60.0
# Sent to the main thread to wake it when another thread took a stop (`_MainWaker`); its handler does nothing.
WAKE_SIGNAL = signal.SIGRTMIN + 2

T = TypeVar("T")
# What signal.signal returns and takes: a handler, SIG_DFL or SIG_IGN, or None (one not set from Python).
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

# Set by the first stop any `StopSignals` takes, for good: the process is ending (io/read_ahead.py leaves without
# waiting for its reads then; a block entered around another's, the demo's around the run's, knows a stop came).
_STOPPED = threading.Event()
# The local folders this process made for itself, which a stop ending it with `os._exit` removes first (`local_folder`).
_FOLDERS: set[str] = set()
# While `local_folder` makes a folder, a first stop is recorded here and raised once the folder is recorded.
_making = 0
_held: list[int] = []
# `StopSignals` blocks entered and not yet left: one entered with none around it starts afresh (a process going on
# after a stopped block, a notebook's, had its next first stop taken as a second and thread errors unprinted).
_open_blocks = 0
_waker: _MainWaker | None = None  # the outermost block's
# Set by a second signal's handler, which ends the process: the main thread, held in it, never goes on with what it
# was doing (a release of the lock whose turn it holds: io/lock.py does not wait for that turn then).
_ENDING = threading.Event()


def ending_at_once() -> bool:
    """A second signal's handler is ending the process, the main thread held in it for good."""
    return _ENDING.is_set()


def stop_requested() -> bool:
    """A stop (SIGTERM, Ctrl-C) reached a `StopSignals` block of this process."""
    return _STOPPED.is_set()


class StopRequested(SystemExit):
    """SIGTERM asked the run to stop; exit status 143."""

    def __init__(self) -> None:
        super().__init__(EXIT_STATUS)


class _MainWaker:
    """Wakes the main thread when another thread takes a stop. The kernel gives a process's signal to any thread that
    does not block it, and Python runs the handler in the main thread at its next bytecode: a main thread blocked in
    C (a lock, a future's result, Beam's wait for a bundle) heard a SIGTERM a download thread took only when its wait
    ended (a run went on to its slowest photo, or to its end and published, exit 0). Python's C handler writes each
    signal's number to the wakeup fd, whichever thread takes it; a thread reading it sends WAKE_SIGNAL to the main
    thread, whose wait then fails with EINTR and runs the handlers pending (the stop's, once, and this one's, which
    does nothing). Nothing is done where something else holds the wakeup fd (an asyncio loop's)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)  # the C handler must never block on it
        self._before = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        if self._before != -1:  # someone else's: leave it as it was
            signal.set_wakeup_fd(self._before)
            self._close_pipe()
            self._thread: threading.Thread | None = None
            return
        self._handler = signal.signal(WAKE_SIGNAL, _nothing)
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._relay, name="stop-waker", daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        try:
            while data := os.read(self._read, 64):  # b"" once `close` closed the writing end
                if signal.SIGTERM in data or signal.SIGINT in data:
                    with contextlib.suppress(OSError, ValueError):  # the main thread gone: the process is ending
                        signal.pthread_kill(self._main, WAKE_SIGNAL)  # type: ignore[arg-type]
        finally:
            os.close(self._read)  # its own end, however the close that ended it went

    def close(self) -> None:
        # Once, however it ends: a Ctrl-C landing in the join (the block's handlers are put back by then, Python's
        # raises KeyboardInterrupt) left the waker to the next block, its pipe closed, which woke nothing and closed
        # the pipe's numbers again (EBADF, or a file that had taken one). The relay ends on its own.
        thread, self._thread = self._thread, None
        if thread is None:
            return
        signal.set_wakeup_fd(-1)  # no signal's number is written any more: the relay reads what was, then its end
        os.close(self._write)
        thread.join(1)
        if thread.is_alive():
            # It still reads (a forked child holds the pipe): so is the handler that does nothing left, as a wake it
            # sends later must not end the process, which WAKE_SIGNAL's default (a real-time signal's: terminate)
            # would. Not SIG_IGN: an ignored signal stays ignored in every program started later.
            return
        # Every wake the relay sent has been taken by now (the join's return delivered it), and none comes later:
        # the signal is as it was (one a C library set, which Python cannot put back, keeps the one that does nothing).
        if self._handler is not None:
            signal.signal(WAKE_SIGNAL, self._handler)

    def _close_pipe(self) -> None:
        os.close(self._write)
        os.close(self._read)


def _nothing(_signum: int, _frame: object) -> None:
    """WAKE_SIGNAL's handler: being run is the point (the main thread's wait ended, the stop's handler run first)."""


class StopSignals:
    """`with StopSignals(release) as stop:` — SIGTERM inside the block raises `StopRequested` in the main thread,
    SIGINT KeyboardInterrupt as always; `with stop.job():` around the part that runs the Beam job, where a stop that
    has not come back within `grace_s` calls `release` (the lock's) and ends the process. Only the main thread can
    set a signal handler: elsewhere (a test runner's thread) the block runs as it would without it."""

    def __init__(self, release: Callable[[], object] | None = None, grace_s: float | None = None) -> None:
        self._release = release  # none: a block that holds no lock (verify, evaluate), whose lines name none
        self._grace_s = GRACE_S if grace_s is None else grace_s
        self.requested: int | None = None  # the signal that asked
        self._in_job = False
        self._job_left = threading.Event()
        self._previous: dict[int, _Handler] = {}
        self._stopped = threading.Event()  # set with `requested`, for threads
        self._excepthook: Callable[[threading.ExceptHookArgs], object] | None = None
        self._leaving = False
        self._cancelling = False  # a remote job's cancel request is in flight (`wait`)
        self._held: int | None = None  # a first stop that landed as the block was being left (`__exit__`)
        self._submitting = False  # a remote job is being submitted (`submit`): a first stop waits for its handle
        self._submitted = threading.Event()
        self._left = threading.Event()  # the block's cleanup is done: `__exit__` has begun
        self._cleaning = False  # past the job, its cleanup being waited for (`_watch`)

    def __enter__(self) -> StopSignals:
        global _open_blocks
        outermost = _open_blocks == 0
        if outermost:
            _STOPPED.clear()
        _open_blocks += 1
        if threading.current_thread() is threading.main_thread():
            try:
                self._take_signals(outermost)
            except BaseException:
                # A stop whose handler ran here (SIGTERM's set, SIGINT's not yet) raised out of `__enter__`, and a
                # `with` runs no `__exit__` then: the block stayed counted open, its handlers set, and a process going
                # on took its next block's first stop for a second one (ended at once, no cleanup). Left as entered.
                self.__exit__(*sys.exc_info())
                raise
        return self

    def _take_signals(self, outermost: bool) -> None:
        global _waker
        if outermost and _waker is None:
            _waker = _MainWaker()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # An ignored signal stays ignored: a shell starts background jobs (`cmd &` in a script) and nohup
            # its command with SIGINT ignored, and a Ctrl-C meant for the foreground must not stop them.
            if signal.getsignal(signum) != signal.SIG_IGN:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        hook = threading.excepthook
        while outermost and isinstance(stale := getattr(hook, "__self__", None), StopSignals):
            hook = stale._excepthook or threading.__excepthook__  # left by a stopped block, which ended
        self._excepthook, threading.excepthook = hook, self._thread_failed

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, _tb: TracebackType | None) -> None:
        global _open_blocks
        # A first stop landing from here on is raised once the block is left (below): raised where it landed, before
        # the handlers were put back, it left SIGINT's or SIGTERM's set to this block's, so that the process's next
        # Ctrl-C (a notebook, a test run going on) was taken as a second stop and ended it at once, with no cleanup.
        self._leaving = True
        self._left.set()
        _open_blocks -= 1
        released = self.requested is not None
        if released:
            # A stop that landed while the lock was being taken (after it was linked, before the `with` held it) or
            # released (before its delete) left it behind: inside a published release (a refresh stopped as it
            # released its lock), a file no manifest lists, which verify refused, and with it every later refresh
            # built on that release; on gs:// or another machine, a lock no run takes over. `release` removes only
            # this run's lock, and nothing when it is gone.
            self._release_quietly()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        global _waker
        if _open_blocks == 0 and _waker is not None and threading.current_thread() is threading.main_thread():
            waker, _waker = _waker, None  # not left to the next block if a Ctrl-C cuts its close short
            waker.close()
        # Stopped (here, or in a block inside this one: the run's, inside the demo's): the job's threads may fail still.
        if self._excepthook is not None and not _STOPPED.is_set():
            threading.excepthook = self._excepthook
        # Raised inside a transform, the stop reaches here as the job's failure; it is still the stop asked for.
        if self._held is not None:
            if not released:
                self._release_quietly()
            raise _stop(self._held) from err
        if self.requested is not None and isinstance(err, Exception):
            raise _stop(self.requested) from err

    @contextlib.contextmanager
    def job(self) -> Iterator[None]:
        """The part a stop may not come back from in time (Beam's runner, its DoFns' teardowns and threads)."""
        self._in_job = True
        try:
            yield
        finally:
            self._in_job = False
            self._job_left.set()

    def submit(self, run: Callable[[], PipelineResult], remote: bool) -> PipelineResult:
        """`run()`, the job's submission (`Pipeline.run`). When the job runs elsewhere (`remote`: Dataflow), a first
        stop during it is held until it returns: raised inside the request that creates the job, it left a job made
        with no handle here to cancel it, which ran on, billed, its output never published. Once the submission has
        returned, the stop stays held until `wait`, called next, cancels the job and raises it (raised in between, it
        dropped the job's handle as the request did); a submission that fails raises the stop. The
        grace waits up to CANCEL_S for the submission (`_watch`); a second stop ends the process at once, saying to
        look for the job where it runs."""
        if not remote:
            return run()
        self._submitting = True
        try:
            result = run()
        except BaseException as err:
            self._submitting = False
            self._submitted.set()
            if self.requested is not None:
                raise _stop(self.requested) from err
            raise
        # Still held until `wait` takes it: a stop landing as this returns, raised here, left the job made and its
        # handle dropped before `wait` could cancel it.
        self._submitted.set()
        return result

    def wait(self, result: PipelineResult) -> None:
        """`result.wait_until_finish()`, cancelling the job when the run is stopped meanwhile: on a remote runner
        (Dataflow) the job went on without its launcher, billed, its output never published (the launcher
        publishes), and writing into a staging folder the stopped run had removed. A local job has ended by then."""
        try:
            self._submitting = False  # a stop held since the submission (`submit`) is raised here, in the try
            if self.requested is not None:
                raise _stop(self.requested)
            result.wait_until_finish()
        except BaseException:
            if self.requested is not None:
                self._cancel(result)
            raise

    def _cancel(self, result: PipelineResult) -> None:
        self._cancelling = True  # the grace waits for it (`_watch`), up to CANCEL_S more
        try:
            result.cancel()
        except Exception as err:  # a runner that cannot cancel, a job already ended: the stop goes on
            print(f"pass-pipeline: the job could not be cancelled ({type(err).__name__}); cancel it where it "
                  "runs", file=sys.stderr, flush=True)
        finally:
            self._cancelling = False

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Asked twice: at once, as SIGTERM's default did, but not leaving the lock. Also when the first stop was an
        # inner block's (the run's inside the demo's), which has ended: this one's cleanup is what is being cut short.
        if self.requested is not None or _STOPPED.is_set():
            # Ended with no word and the lock in place (a double Ctrl-C does it): a lock that a run on gs:// or in
            # another container never takes over, and one left inside a release that verify refuses.
            _ENDING.set()
            end_workers()
            _remove_folders()
            note = self._release_within(SECOND_RELEASE_S)
            # Asked again while the first stop waits for a remote job's cancel (up to CANCEL_S, without a word): ended
            # as asked, the job goes on where it runs, billed, which the line said nothing of.
            remote = ("; its cancel was not answered: cancel the remote job where it runs" if self._cancelling
                      else "; the remote job was being submitted: if it was, cancel it where it runs"
                      if self._submitting else "")
            print(f"pass-pipeline: stopped ({_NAMES.get(signum, signum)} again): ended at once{note}{remote}",
                  file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.requested = signum
        self._stopped.set()
        _STOPPED.set()
        # Whether it landed in the job is read here, where it landed: read by the thread as it began to run, a thread
        # run once the main thread had left the job (one that hands the stop back at once) saw none, and the cleanup
        # after the job went unbounded.
        threading.Thread(target=self._watch, args=(self._in_job,), name="stop-grace", daemon=True).start()
        if _making:  # a folder being made, not yet recorded: `local_folder` raises the stop once it is
            _held.append(signum)
            return
        if self._submitting:  # a remote job being submitted: `submit` cancels it once its handle is here
            print("pass-pipeline: stopping: the remote job is being submitted; it is cancelled once it is",
                  file=sys.stderr, flush=True)
            return
        if self._leaving:  # its handlers are being put back: `__exit__` raises the stop once they are
            self._held = signum
            return
        raise _stop(signum)

    def _watch(self, in_job: bool) -> None:
        if not in_job:
            return
        end_workers()
        if self._submitting and not self._submitted.wait(CANCEL_S):
            self._abandon()  # the submission never answered: a job it may have made is not ours to cancel
        if self._job_left.wait(self._grace_s):
            self._bound_the_cleanup()
            return
        if self._cancelling:  # a remote job being cancelled: ending now leaves it running
            # Said now: the wait is silent otherwise, and a container stopped with a SIGKILL after 10 s never tells.
            print(f"pass-pipeline: stopping: waiting up to {CANCEL_S:g} s more for the remote job's cancel to be "
                  "answered", file=sys.stderr, flush=True)
            if self._job_left.wait(CANCEL_S):
                self._bound_the_cleanup()
                return
        self._abandon()

    def _bound_the_cleanup(self) -> None:
        """The job has handed the stop back: the run's cleanup gets CLEANUP_S, then the lock is released and the process
        ended (what is left of its staging folder the next run removes, under its lock). Only a stop that landed in the
        job is watched so: one landing after it (while publishing) keeps what it must for the next run to finish."""
        if self._left.wait(CLEANUP_S):
            return
        self._cleaning = True
        self._abandon()

    def _thread_failed(self, args: threading.ExceptHookArgs) -> None:
        """A thread's exception, printed as always unless the run was stopped: then it is what the stop did to the job
        (Beam's "Worker subprocess exited with return code -15" once its worker processes are ended, which a SIGTERM
        sent to the whole process group, as systemd does, can do a moment before this process's handler runs)."""
        if self._stopped.wait(STOP_NOTICED_S):
            return
        if self._excepthook is not None:
            self._excepthook(args)

    def _release_quietly(self) -> str:
        """Releases the lock (this run's only, once); what became of it, for the operator's line (', ...'), which
        a block that holds none leaves out: a second Ctrl-C in `verify` said its lock was released, the next run
        into the output removing its staging folder."""
        if self._release is None:
            return ""
        try:
            self._release()
        except Exception as err:  # ending the process is what matters now
            return f", its lock could not be released ({type(err).__name__})"
        return (", its lock released; the next run into the output removes its staging folder (or finishes its "
                "publish, had it begun)")

    def _release_within(self, seconds: float) -> str:
        """`_release_quietly`, given up after `seconds` (an object store that does not answer)."""
        outcome: list[str] = []
        thread = threading.Thread(target=lambda: outcome.append(self._release_quietly()), name="stop-release",
                                  daemon=True)
        thread.start()
        thread.join(seconds)
        return outcome[0] if outcome else f", its lock not released within {seconds:g} s"

    def _abandon(self) -> NoReturn:
        # The main thread is still inside the job, or in the cleanup after it (`_bound_the_cleanup`), removing what the
        # next run removes too: ended at once after the release, it never works beside a run that took the lock.
        end_workers()
        _remove_folders()  # Beam's pipeline temp folder: the job's own `finally`, which removes it, never runs now
        note = self._release_quietly()
        signum = self.requested or signal.SIGTERM
        what = (f"the remote job's cancel did not answer within {self._grace_s + CANCEL_S:g} s (cancel it where it "
                "runs)" if self._cancelling else
                f"the remote job's submission did not answer within {CANCEL_S:g} s (if it was made, cancel it where "
                "it runs)" if self._submitting else f"its cleanup did not end within {CLEANUP_S:g} s" if self._cleaning
                else f"the job did not stop within {self._grace_s:g} s")
        print(f"pass-pipeline: stopped ({_NAMES.get(signum, signum)}); {what}: ended{note}", file=sys.stderr,
              flush=True)
        os._exit(128 + signum)


_NAMES: dict[int, str] = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}


def end_workers() -> None:
    """Kills the processes this one started and their own (the job's SDK worker processes with
    --direct_running_mode=multi_processing, each `sh -c python ...`). Beam's runner unwinds a stopped job by waiting
    for each worker to exit, and a worker busy with a bundle (a download) did not: the run was ended by the grace,
    and its workers lived on, downloading, holding the terminal or a caller's pipe. A stopped job needs nothing
    more from them. Where /proc is missing, nothing is done."""
    from pipeline.io.process_memory import descendants

    me = os.getpid()
    try:
        below = [pid for pid in descendants(me) if pid != me]
    except OSError:
        return
    for pid in below:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def local_folder(make: Callable[[], T], folder: Callable[[T], str] = str) -> Iterator[T]:
    """`make()`, which creates a local folder (`folder` of what it returns) for this process: the folder is removed when
    the block ends, however it ends, and by a stop that ends the process inside it with `os._exit` (the grace, a second
    signal), which runs no `finally`. Beam's `beam-pipeline-temp*` folder, which its `Pipeline.run` removes only when
    it returns, stayed in TMPDIR when a run was stopped before it (while the job was being built) or ended by the
    grace; the demo's world folder, when SIGTERM (whose default ends the process) came before the run's own stop
    handling. A first stop landing inside `make` is raised once the folder is recorded, so it is removed too."""
    global _making
    path: str | None = None
    _making += 1
    try:
        try:
            made = make()
            path = folder(made)
            _FOLDERS.add(path)
        finally:
            _making -= 1
        if _held:
            raise _stop(_held.pop())
        yield made
    finally:
        _held.clear()
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
            _FOLDERS.discard(path)  # after: a second signal during the removal still finds it


def _remove_folders() -> None:
    for path in list(_FOLDERS):
        shutil.rmtree(path, ignore_errors=True)


def _stop(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else StopRequested()


@contextlib.contextmanager
def stops_saying(aftermath: Callable[[], str]) -> Iterator[None]:
    """`StopSignals` around a command that is no run (verify, evaluate, review apply): SIGTERM stops it as Ctrl-C does,
    and the stop carries `aftermath()`, what the command left, for `cli.entry`'s line (whose fallback is a run's:
    "nothing was published unless publishing had begun..."). Without it, SIGTERM ended the command by its default
    (exit -15, no word), and Ctrl-C's line spoke of publishing, which these commands never do."""
    try:
        with StopSignals():
            yield
    except (KeyboardInterrupt, StopRequested) as stopped:
        stopped.aftermath = aftermath()  # type: ignore[union-attr]
        raise


def end_process(status: int, message: str) -> NoReturn:
    """Ends a process whose run has stopped and cleaned up: `message` on stderr, then `os._exit(status)`. A normal
    exit waited for every non-daemon thread a stopped job left running (a download, up to --fetch_deadline).
    SIGINT and SIGTERM are ignored first: the stopped block has put the default handlers back, and a second Ctrl-C
    (an operator pressing it twice) as the line was written raised a KeyboardInterrupt through it, a traceback, the
    process ended by SIGINT; a second SIGTERM ended it with no line. It is ending anyway."""
    import logging

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # off the main thread no handler can be set: nothing to ignore there
            try:
                signal.signal(signum, signal.SIG_IGN)
            except KeyboardInterrupt:  # one pending as it was set, which Python's handler ran first
                signal.signal(signum, signal.SIG_IGN)
    _remove_folders()  # one whose removal the stop cut short
    print(message, file=sys.stderr)
    # Flushes the log handlers. A signal landing inside a handler's construction leaves it in logging's list without
    # its lock (Handler.__init__ lists it first): shutdown's AttributeError ended a stopped run: exit 1, a traceback.
    with contextlib.suppress(Exception):
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def script_entry(prog: str, main: Callable[[], int]) -> int:
    """What a `python -m` script of the project runs (pipeline/photo_sets/: fetch, fit_fusion, fit_probe,
    cross_validate): `main()`, whose body is a `stops_saying` block; a stop ends the process as `cli.entry` ends
    pass-pipeline's: `PROG: stopped (Ctrl-C|SIGTERM); what it left` in one line, exit 130 or 143, without waiting for
    the threads the stop left (a fetch's downloads). They printed a KeyboardInterrupt traceback on Ctrl-C and ended
    by SIGTERM's default (-15, no word)."""
    try:
        return main()
    except (KeyboardInterrupt, StopRequested) as stopped:
        signum = signal.SIGINT if isinstance(stopped, KeyboardInterrupt) else signal.SIGTERM
        # Escaped (printable), as pass-pipeline's stop line is (cli.aftermath): what a script left names its files as
        # typed, whose escapes reached the terminal and whose line break wrote a forged line of its own.
        left = printable(getattr(stopped, "aftermath", "nothing was done"))
        end_process(128 + signum, f"{prog}: stopped ({_NAMES[signum]}); {left}")
