"""What `pass-pipeline` and `python -m pipeline` start: `cli.entry`, imported here.

Importing the command line takes a few seconds (Beam, pyarrow, onnxruntime), and Ctrl-C in them printed a
KeyboardInterrupt's traceback through whichever module was being imported, then ended the process by SIGINT. It is one
line and exit 130 now, as Ctrl-C is once the command runs (`cli.entry`). Nothing has been read or written by then.
"""

from __future__ import annotations

import sys

from pipeline.io.stopping import INTERRUPTED_STATUS


def entry() -> int:
    try:
        from pipeline.cli import entry as command_line
    except KeyboardInterrupt:
        print("pass-pipeline: stopped (Ctrl-C) while starting; nothing was done", file=sys.stderr)
        return INTERRUPTED_STATUS
    return command_line()
