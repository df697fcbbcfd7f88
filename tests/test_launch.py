"""What `pass-pipeline` and `python -m pipeline` start (pipeline/launch.py)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

# `python -m pipeline run --help`, with Ctrl-C arriving as the command line's import reaches Beam (a few seconds
# into a real start).
INTERRUPTED_WHILE_IMPORTING = """
import os, runpy, signal, sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "apache_beam":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
sys.argv[1:] = ["run", "--help"]
runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_while_the_command_starts_is_one_line_and_exit_130():
    """Importing the command line takes seconds (Beam, pyarrow, onnxruntime): Ctrl-C in them printed a
    KeyboardInterrupt traceback through the modules being imported, and the process ended by SIGINT."""
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_WHILE_IMPORTING], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 128 + signal.SIGINT and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip() == "pass-pipeline: stopped (Ctrl-C) while starting; nothing was done"
    assert done.stdout == ""  # never reached the command


# INTERRUPTED_WHILE_IMPORTING, with a second Ctrl-C (the operator pressing it twice) as the first one's line is
# written, or as the interpreter shuts down (its exit handlers run).
INTERRUPTED_TWICE = """
import atexit, os, signal, sys, time

class Stderr:
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        if text.strip():
            os.kill(os.getpid(), signal.SIGINT)
        return self.stream.write(text)
    def __getattr__(self, name):
        return getattr(self.stream, name)

def again():
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.1)  # Python runs its handler here

if sys.argv.pop(1) == "at-exit":
    atexit.register(again)
else:
    sys.stderr = Stderr(sys.stderr)
""" + INTERRUPTED_WHILE_IMPORTING


@pytest.mark.parametrize("when", ["as-the-line-is-written", "at-exit"])
def test_ctrl_c_twice_while_the_command_starts_is_still_one_line_and_exit_130(when):
    """A second Ctrl-C after the first was taken raised another KeyboardInterrupt: in the first one's line (a
    traceback, the line lost), or as the interpreter shut down (a traceback, or the process ended by SIGINT, -2,
    with no word). Once the first is taken, later ones are ignored: nothing is left to stop."""
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_TWICE, when], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 128 + signal.SIGINT, done.stderr[-2000:]
    assert done.stderr.strip() == "pass-pipeline: stopped (Ctrl-C) while starting; nothing was done", done.stderr


# `python -m pipeline run --help` with a stop (the signal named first) sent to itself as the module named second is
# first looked for: `signal module`.
STOPPED_WHILE_IMPORTING = """
import os, runpy, signal, sys

signum, module = int(sys.argv.pop(1)), sys.argv.pop(1)

class Stop:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            os.kill(os.getpid(), signum)
        return None

sys.meta_path.insert(0, Stop())
sys.argv[1:] = ["run", "--help"]
runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(("signum", "module"), [(signal.SIGTERM, "apache_beam"), (signal.SIGTERM, "pipeline.cli"),
                                                (signal.SIGTERM, "pipeline.io.stopping"),
                                                (signal.SIGINT, "pipeline.io.stopping")])
def test_a_stop_while_the_command_starts_is_one_line_from_the_first_import_of_the_project(signum, module):
    """SIGTERM in the seconds of imports ended the process by the signal's default (exit -15, no word): only Ctrl-C
    was caught while starting. And the handlers were set once io/stopping.py was imported (the console script's
    first milliseconds), so a stop there was a traceback (Ctrl-C) or -15 (SIGTERM): they are set before it now."""
    done = subprocess.run([sys.executable, "-c", STOPPED_WHILE_IMPORTING, str(int(signum)), module],
                          capture_output=True, text=True, timeout=120)
    said = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}[signum]
    assert done.returncode == 128 + signum and "Traceback" not in done.stderr, (done.returncode, done.stderr[-2000:])
    assert done.stderr.strip() == f"pass-pipeline: stopped ({said}) while starting; nothing was done"
    assert done.stdout == ""  # never reached the command


def test_sigterm_as_soon_as_the_started_command_catches_it_is_a_stop_while_starting(tmp_path):
    """The moment `pass-pipeline` catches SIGTERM (its handler set, read from /proc/PID/status) is within its
    start, before the imports of seconds: a SIGTERM sent then is the starting line, exit 143. SIGTERM was caught
    only once the command's own handling began, after the imports."""
    status, out, err = sigterm_once_caught(["-m", "pipeline", "verify", str(tmp_path)])
    assert status == 128 + signal.SIGTERM, (status, err[-2000:])
    assert err.strip() == "pass-pipeline: stopped (SIGTERM) while starting; nothing was done" and out == ""


def sigterm_once_caught(argv: list[str]) -> tuple[int, str, str]:
    """`python ARGV...` sent SIGTERM as soon as it catches it (its handler set, read from /proc/PID/status): its exit
    status, stdout and stderr."""
    from tests.test_run import _catching_sigterm

    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _catching_sigterm(process)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    return process.returncode, out, err


# `python -m pipeline verify FOLDER --log_level=LEVEL`, saying at exit the level and the handlers its log was set up
# with: `level`.
LOG_AS_SET_UP = """
import atexit, logging, runpy, sys

level = sys.argv.pop(1)

@atexit.register
def said():
    root = logging.getLogger()
    print(logging.getLevelName(root.level), [type(handler.formatter).__name__ for handler in root.handlers])

sys.argv[1:] = ["verify", sys.argv[1], f"--log_level={level}"]
runpy.run_module("pipeline", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("level", ["debug", "info", "error"])
def test_pass_pipelines_log_is_set_up_at_its_own_log_level_once(tmp_path, level):
    """pass-pipeline sets its log up at --log_level (cli.py), once: a `python -m` script's start sets one up before
    its imports at the default level (starting.script), which, done here too, would have left --log_level without
    effect (logging.basicConfig does nothing once a handler is set). Its start is not a script's."""
    done = subprocess.run([sys.executable, "-c", LOG_AS_SET_UP, level, str(tmp_path / "none")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout.strip() == f"{level.upper()} ['PrintableFormatter']", (done.stdout, done.stderr)
