"""What `pass-pipeline` and `python -m pipeline` start: `cli.entry`, imported here.

Importing the command line takes a few seconds (Beam, pyarrow, onnxruntime), and Ctrl-C in them printed a
KeyboardInterrupt's traceback through whichever module was being imported, then ended the process by SIGINT. It is one
line and exit 130 now, as Ctrl-C is once the command runs (`cli.entry`). Nothing has been read or written by then.
A second Ctrl-C (an operator pressing it twice) is ignored once the first was taken: it ended the process by SIGINT
(exit -2, after the line) as the interpreter shut down.
"""

from __future__ import annotations

import signal
import sys

from pipeline.io.stopping import INTERRUPTED_STATUS


def _interrupted(_signum: int, _frame: object) -> None:
    """Ctrl-C while starting: every later one is ignored from here on, before the KeyboardInterrupt is raised, so
    nothing interrupts its line and the exit. Python runs a handler between bytecodes; a second Ctrl-C pending as
    this one sets SIG_IGN runs it again first (`signal.signal` checks), which ignores and raises the same way."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def entry() -> int:
    # Only Python's own handler is replaced: SIGINT ignored (a shell's background job, nohup) stays ignored.
    starting = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if starting:
        signal.signal(signal.SIGINT, _interrupted)
    try:
        from pipeline.cli import entry as command_line

        if starting:  # the command's Ctrl-C is its own (cli.entry, io/stopping.py)
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except KeyboardInterrupt:
        try:  # raised by Python's handler (just restored): ignored now, the same
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except KeyboardInterrupt:  # one pending as it was set, which Python's handler ran first
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("pass-pipeline: stopped (Ctrl-C) while starting; nothing was done", file=sys.stderr)
        return INTERRUPTED_STATUS
    return command_line()
