"""How a `python -m` script of the project starts (pipeline/io/starting.py, `script`): its stops handled from before
its imports. `pass-pipeline`'s start, through the same code: tests/test_launch.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.test_launch import sigterm_once_caught

# `python -m pipeline.photo_sets.SCRIPT --help`, run as `python -m` runs it, with a stop (the signal named first) sent
# to itself as the module named second is first looked for: `signal module script`.
A_SCRIPT_STOPPED_WHILE_IMPORTING = """
import os, runpy, signal, sys

signum, module, script = int(sys.argv.pop(1)), sys.argv.pop(1), sys.argv.pop(1)

class Stop:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            os.kill(os.getpid(), signum)
        return None

sys.meta_path.insert(0, Stop())
sys.argv[1:] = ["--help"]
runpy.run_module(f"pipeline.photo_sets.{script}", run_name="__main__", alter_sys=True)
"""

SCRIPTS = ["fetch", "fit_fusion", "fit_probe", "cross_validate"]


@pytest.mark.parametrize(("signum", "module", "script"), [
    *((signum, "pipeline.io.stopping", script) for signum in (signal.SIGTERM, signal.SIGINT) for script in SCRIPTS),
    *((signal.SIGTERM, "numpy", script) for script in SCRIPTS if script != "fetch")])  # fetch imports no numpy
def test_a_stop_while_a_photo_sets_script_starts_is_one_line_and_the_stops_exit(signum, module, script):
    """The scripts set their stop handling in `main`, after their imports (numpy, the detectors: over a second): a
    stop in them ended the process by SIGTERM's default (-15, no word) or with a KeyboardInterrupt's traceback. They
    start as pass-pipeline does now (launch.script): one line, exit 130 or 143."""
    done = subprocess.run([sys.executable, "-c", A_SCRIPT_STOPPED_WHILE_IMPORTING, str(int(signum)), module, script],
                          capture_output=True, text=True, timeout=120)
    said = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}[signum]
    assert done.returncode == 128 + signum and "Traceback" not in done.stderr, (done.returncode, done.stderr[-2000:])
    assert done.stderr.strip() == f"{script}: stopped ({said}) while starting; nothing was done"
    assert done.stdout == ""  # never reached its --help


def test_sigterm_as_soon_as_a_started_script_catches_it_is_a_stop_while_starting(tmp_path):
    """`python -m pipeline.photo_sets.fit_fusion` catches SIGTERM (read from /proc/PID/status) from before its imports
    of over a second on: a SIGTERM sent then is the starting line, exit 143. It was caught only once `main` ran."""
    status, out, err = sigterm_once_caught(["-m", "pipeline.photo_sets.fit_fusion", str(tmp_path / "scores.json"),
                                            str(tmp_path / "fusion.json")])
    assert status == 128 + signal.SIGTERM, (status, err[-2000:])
    assert err.strip() == "fit_fusion: stopped (SIGTERM) while starting; nothing was done" and out == ""
    assert list(tmp_path.iterdir()) == []


def test_a_stop_an_extension_module_turns_into_an_import_error_is_still_a_stop_while_starting(capsys):
    """A stop raised while a C extension imports (numpy's, its `datetime` capsule being imported as SIGTERM came) is
    turned by it into an ImportError ("PyCapsule_Import could not import module ...", numpy's own message around it),
    which ended the start with its traceback, exit 1: the stop was lost. An error of the imports after a stop was
    taken is that stop's."""
    import os

    from pipeline.io.starting import start

    def load():
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, between bytecodes
            for _ in range(1000):
                pass
        except BaseException as stop:  # as an extension's import does with what a handler raised in it
            raise ImportError('PyCapsule_Import could not import module "datetime"') from stop
        raise AssertionError("the stop's handler never ran")

    try:
        assert start("fit_fusion", load) == 128 + signal.SIGTERM
    finally:  # a stop taken leaves both signals ignored to the process's end: this test's process goes on
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert capsys.readouterr().err.strip() == "fit_fusion: stopped (SIGTERM) while starting; nothing was done"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_arriving_the_moment_its_handler_is_set_is_a_stop_while_starting(
        signum: signal.Signals, capsys: pytest.CaptureFixture[str]) -> None:
    """A stop that arrives as its handler is set (what a SIGTERM sent as soon as /proc shows it caught meets when the
    started process is descheduled right after setting it, on a loaded machine) was run by Python at the next
    bytecodes, still in the loop setting the handlers, outside the `try` that says a stop: a traceback of
    _StoppedStarting, exit 1. It is the starting line and exit 130 or 143, as a stop a moment later is."""
    import os

    from pipeline.io.starting import _stopped, start

    set_handler = signal.signal
    sent: list[int] = []

    def set_then_sent(number: int, handler: Any) -> Any:
        previous = set_handler(number, handler)
        if number == signum and handler is _stopped and not sent:
            sent.append(number)
            os.kill(os.getpid(), number)  # its C handler runs now; Python runs `_stopped` at the next bytecodes
        return previous

    def load() -> Callable[[], int]:
        raise AssertionError("the stop sent as its handler was set did not stop the start")

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(signal, "signal", set_then_sent)
            status = start("fit_fusion", load)
    finally:  # a stop taken leaves both signals ignored to the process's end: this test's process goes on
        set_handler(signal.SIGTERM, signal.SIG_DFL)
        set_handler(signal.SIGINT, signal.default_int_handler)
    said = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}[signum]
    assert sent == [signum] and status == 128 + signum
    assert capsys.readouterr().err.strip() == f"fit_fusion: stopped ({said}) while starting; nothing was done"


# `python -m pipeline.photo_sets.SCRIPT --help`, run as `python -m` runs it, with a library logging a warning that
# quotes outside text (terminal escapes, a line break and a forged line) as pipeline.io.stopping is first looked for,
# while the script's module is imported, before its `main`: `script`.
A_WARNING_WHILE_IMPORTING = """
import logging, runpy, sys

script = sys.argv.pop(1)

class Warn:
    def find_spec(self, name, path=None, target=None):
        if name == "pipeline.io.stopping":
            logging.getLogger("somelib").warning("bad header\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\n%s: OK",
                                                 script)
        return None

sys.meta_path.insert(0, Warn())
sys.argv[1:] = ["--help"]
runpy.run_module(f"pipeline.photo_sets.{script}", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_librarys_warning_while_a_script_is_imported_is_one_printable_log_line(script):
    """A library's warning logged while a `python -m` script's module is imported (before its `main` sets up the
    log) went to logging's last resort as it came: its escapes reached the terminal and its line break printed a
    forged line of its own (`fetch: OK`). It is one escaped line, as in pass-pipeline's log (printable.py)."""
    done = subprocess.run([sys.executable, "-c", A_WARNING_WHILE_IMPORTING, script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert all(line.isprintable() for line in lines) and f"{script}: OK" not in lines, done.stderr
    assert "WARNING somelib: bad header\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\n" f"{script}: OK" in lines, lines
