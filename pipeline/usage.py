"""A command line read wrong is one line and exit 2: for `pass-pipeline` (cli.py, its subcommands, the Beam flags of
`run`: commands/run.py) and the `python -m` scripts of pipeline/photo_sets/ (fetch, fit_fusion, fit_probe,
cross_validate). argparse's own errors (a missing argument, an unknown option, a value it cannot read) printed its
usage line and then the error; the scripts still did, while pass-pipeline had two copies of the one-line parser.

This module imports nothing but the standard library and pipeline/printable.py (itself none): the scripts do not
import Beam (seconds at their start; the fit scripts read the detectors' registry and fusion models through
pipeline/io/file_reads.py, which imports it only for a path on an object store), and run.py gives the parser Beam's
own (`_BeamArgumentParser`) by mixing it in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from pipeline.printable import said


def split_list(value: str | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']: the comma-separated flags' one parser (pipeline.options names it too)."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


class UsageError(Exception):
    """The command line asks for something that cannot be: one line naming what, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse's parser (its subcommands' too: they take its class), but a missing or bad argument is a UsageError,
    `MESSAGE (see `PROG --help`)`, the one line every other usage error is, not argparse's usage line and then its
    error. `--help` and `--version` are argparse's own."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


@contextmanager
def usage_said(name: str) -> Iterator[None]:
    """Around a script's `main`: a UsageError (its parser's, or `parser.error` for a value that cannot be) is
    `NAME: error: MESSAGE (see `PROG --help`)` on stderr and SystemExit(2), as argparse's exit was. The message is
    written as pass-pipeline's error line writes it (`said`: each unprintable character as Python writes it in a
    string): argparse quotes an unknown argument as typed and a script's refusal can quote a file's text, whose
    escapes reached the terminal and whose line break printed a forged line of its own."""
    try:
        yield
    except UsageError as err:
        print(f"{name}: error: {said(err)}", file=sys.stderr)
        raise SystemExit(2) from None
