"""What `pass-pipeline` and `python -m pipeline` start (pipeline/launch.py)."""

from __future__ import annotations

import signal
import subprocess
import sys

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
