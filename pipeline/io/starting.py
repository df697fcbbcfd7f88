"""How a command of the project starts: its stop handling set before its imports of seconds (Beam, pyarrow,
onnxruntime, numpy, the detectors), for `pass-pipeline` (launch.py) and the `python -m` scripts of pipeline/photo_sets/
(fetch, fit_fusion, fit_probe, cross_validate: `script`, called from the top of each, before its own imports).

Ctrl-C in those imports printed a KeyboardInterrupt's traceback through whichever module was being imported, then
ended the process by SIGINT; SIGTERM ended it by the signal's default (exit -15, no word). Either is one line now,
`PROG: stopped (Ctrl-C|SIGTERM) while starting; nothing was done`, exit 130 or 143, as a stop is once the command runs
(`cli.entry`, `stopping.script_entry`). Nothing has been read or written by then. A second signal (an operator
pressing Ctrl-C twice) is ignored once the first was taken: it ended the process by SIGINT (exit -2, after the line)
as the interpreter shut down.

This module imports nothing but `signal` and `sys` (what it starts is imported by the `load` it is given), so that
its handlers are set before anything else of the project is imported. What comes earlier (the interpreter's own
start, ~20 ms) has Python's handlers. It lives apart from launch.py, which names the command line: a script importing
`script` from there drew an import circle through the command line it never runs.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable

_NAMES: dict[int, str] = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
# The stop taken while starting, if one was (`_stopped`): what it raised may come back as another error, an extension
# module's import turning it into an ImportError (numpy's, its `datetime` capsule being imported as SIGTERM came).
_taken: list[int] = []


class _StoppedStarting(BaseException):
    """A stop while the command line is imported: a BaseException, as KeyboardInterrupt is, so that no module's
    `except Exception` around an optional import takes it for a missing module."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stopped(signum: int, _frame: object) -> None:
    """A stop while starting: every later one is ignored from here on, before the stop is raised, so nothing
    interrupts its line and the exit. Python runs a handler between bytecodes; a second signal pending as this one
    sets SIG_IGN runs its handler first (`signal.signal` checks), which ignores and raises the same way."""
    _ignore_both()
    _taken.append(signum)
    raise _StoppedStarting(signum)


def _ignore_both() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(signum, signal.SIG_IGN)
        except (KeyboardInterrupt, _StoppedStarting):  # one pending as it was set, which its handler ran first
            signal.signal(signum, signal.SIG_IGN)


def _terminate(_signum: int, _frame: object) -> None:
    """SIGTERM between the imports and the command's own stop handling (its arguments being read): a stop, as
    Ctrl-C is there (`cli.entry`, `stopping.script_entry` say it in one line, exit 143), not the signal's default."""
    from pipeline.io.stopping import StopRequested

    raise StopRequested


def _said(prog: str, stopped: BaseException) -> int:
    _ignore_both()
    signum = stopped.signum if isinstance(stopped, _StoppedStarting) else (
        signal.SIGINT if isinstance(stopped, KeyboardInterrupt) else signal.SIGTERM)
    print(f"{prog}: stopped ({_NAMES[signum]}) while starting; nothing was done", file=sys.stderr)
    return 128 + signum


def script(prog: str, module: str) -> int:
    """A `python -m` script of the project (`module`, whose `main` is a `stops_saying` block), run from the top of its
    own file before its imports: `if __name__ == "__main__": raise SystemExit(script(PROG, MODULE))`. A stop while it
    is imported is `PROG: stopped (Ctrl-C|SIGTERM) while starting; nothing was done`, exit 130 or 143, as
    pass-pipeline's; once `main` runs, `stopping.script_entry` says what the stop left. Its log is set up (one
    escaped line a record, printable.py) before the module is imported."""

    def command_line() -> Callable[[], int]:
        import importlib

        from pipeline.printable import log_printably

        # Before the module's imports: a library's warning logged while they run (before `main` sets up the log) went
        # to logging's last resort as it came, its escapes to the terminal, its line break a forged line of its own.
        # pass-pipeline's start (launch.py) is not this: its own --log_level sets its log up (cli.py).
        log_printably()
        from pipeline.io.stopping import script_entry

        main = importlib.import_module(module).main
        return lambda: script_entry(prog, main)

    return start(prog, command_line)


def start(prog: str, load: Callable[[], Callable[[], int]]) -> int:
    """`load()`, the imports of seconds, under handlers of its own; then the command it returns, under the command's."""
    # Only Python's own handler is replaced for SIGINT, and only the default for SIGTERM: a signal ignored (a shell's
    # background job, nohup) stays ignored.
    replaced = [signum for signum, usual in ((signal.SIGINT, signal.default_int_handler),
                                             (signal.SIGTERM, signal.SIG_DFL)) if signal.getsignal(signum) == usual]
    _taken.clear()
    try:
        # Set inside the `try`: a stop arriving as its handler is set is run by Python at the next bytecodes, still in
        # this loop (it was a traceback of _StoppedStarting, exit 1, when the loop came before the `try`)
        for signum in replaced:
            signal.signal(signum, _stopped)
        command_line = load()
        from pipeline.io.stopping import StopRequested
    except (_StoppedStarting, KeyboardInterrupt) as stopped:  # KeyboardInterrupt: a caller's own handler raised it
        return _said(prog, stopped)
    except BaseException:
        if _taken:  # the stop, come back as what an import made of it: said as the stop, not as that error
            return _said(prog, _StoppedStarting(_taken[0]))
        raise
    try:
        # The command's stops are its own from here on (cli.entry, io/stopping.py)
        if signal.SIGINT in replaced:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if signal.SIGTERM in replaced:
            signal.signal(signal.SIGTERM, _terminate)
        return command_line()
    except (_StoppedStarting, KeyboardInterrupt, StopRequested) as stopped:  # in the few bytecodes before cli.entry
        return _said(prog, stopped)  # takes its stops (which it ends with os._exit: none comes back here)
    finally:
        if signal.SIGTERM in replaced:  # a caller in the same process (a test) gets its default back
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
