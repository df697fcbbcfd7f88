"""What `pass-pipeline` and `python -m pipeline` start: `cli.entry`, imported under the stop handling of
io/starting.py (a stop in its seconds of imports is one line, exit 130 or 143, not a traceback or -15)."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.io.starting import start


def entry() -> int:
    """`pass-pipeline`: `cli.entry`."""

    def command_line() -> Callable[[], int]:
        from pipeline.cli import entry

        return entry

    return start("pass-pipeline", command_line)
