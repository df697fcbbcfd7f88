"""Argument types the benchmarks share: counts refused when they are no whole number or below their least (a size of 0
ran the measurement and then divided by it: a ZeroDivisionError, IndexError or AssertionError traceback once its
minutes were spent).

Each benchmark reads its command line with pipeline/usage.py's `OneLineParser` inside `usage_said(NAME)`, as
pass-pipeline and the photo_sets scripts do: a value refused here, an unknown option or a missing argument is one line,
`NAME: error: MESSAGE (see `python -m benchmarks.NAME --help`)`, escaped, exit 2, before anything runs (argparse's own
printed its usage, up to four lines, and then the error, quoting an unknown argument as typed). compat_loaders, which
runs without the project, writes the same line with its own parser."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pipeline.options import decimal, integer


def count(least: int = 1, most: int | None = None) -> Callable[[str], int]:
    """A whole number of at least `least`, and at most `most` where the measured code has a bound (past it, its
    ValueError came only once the measurement had begun)."""
    def count(text: str) -> int:
        value = integer(text)  # spelled as the job's own flags are: ASCII digits and a sign ('1_000', ' 5': refused)
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most}, not {value}")
        return value
    return count


def counts(least: int = 1) -> Callable[[str], list[int]]:
    """Comma-separated whole numbers of at least `least`, one at least, in the order given."""
    one = count(least)

    def counts(text: str) -> list[int]:
        values = [one(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError("must name at least one size")
        return values
    return counts


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    value = decimal(text)  # spelled as the job's own flags are ('nan', 'inf': refused)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value
