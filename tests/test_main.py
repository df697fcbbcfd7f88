"""`python -m pipeline` (pipeline/__main__.py): the command line's entry, its exit status the process's."""

from __future__ import annotations

import runpy
import subprocess
import sys

import pytest


@pytest.mark.parametrize("status", [0, 1, 2, 143])
def test_python_dash_m_pipeline_runs_the_entry_and_exits_with_its_status(monkeypatch, status):
    import pipeline.launch

    called = []
    monkeypatch.setattr(pipeline.launch, "entry", lambda: called.append(True) or status)
    with pytest.raises(SystemExit) as done:
        runpy.run_module("pipeline", run_name="__main__")
    assert done.value.code == status and called == [True]


def test_python_dash_m_pipeline_is_the_pass_pipeline_command():
    """The module run as a process: its usage is `pass-pipeline`'s, and a usage error its exit 2."""
    done = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: pass-pipeline"), done.stderr[-2000:]
    done = subprocess.run([sys.executable, "-m", "pipeline", "no-such-command"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "pass-pipeline" in done.stderr, done.stderr[-2000:]
