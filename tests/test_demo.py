"""`pass-pipeline demo` (pipeline/commands/demo.py): the whole job on the bundled demo world, run again and again into
its own folder and never over another dataset."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipeline.cli import main
from pipeline.commands.demo import is_demo_output
from tests.conftest import DETECT_THREADS


@pytest.mark.slow
def test_python_dash_m_runs_the_demo(tmp_path):
    """The README's first command in miniature: the demo through `python -m pipeline`."""
    done = subprocess.run([sys.executable, "-m", "pipeline", "demo", "--output", str(tmp_path / "demo"),
                           f"--detect_threads={DETECT_THREADS}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "kept 6 of 18 input rows (all accounted for)" in done.stdout
    # the cat and the deep field, held: the summary said where the dataset was, never where the photos to review were
    assert f"review:      {tmp_path / 'demo' / 'review' / 'index.html'}: 2 photos held for review" in done.stdout
    # Nothing that reads like a failure on a successful run (Beam's batch-size estimator warned once).
    assert "warning" not in done.stderr.lower(), [line for line in done.stderr.splitlines() if "arning" in line]
    stats = json.loads((tmp_path / "demo" / "stats.json").read_text())
    assert stats["accounted"] and stats["kept"] == 6
    assert is_demo_output(str(tmp_path / "demo"))  # so the quick start's command may run again into it


def test_the_demo_never_replaces_a_dataset_that_is_not_a_demo_s(demo_release, tmp_path, capsys):
    """`demo --output=DIR` replaced whatever dataset DIR held (it runs with --overwrite, to run again into
    its own folder)."""
    import shutil

    output = tmp_path / "mine"
    shutil.copytree(demo_release, output)
    before = {path: path.read_bytes() for path in output.rglob("*") if path.is_file()}
    assert main(["demo", "--output", str(output), "--detectors=none"]) == 2
    assert "not a demo's" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in output.rglob("*") if path.is_file()} == before
    assert not is_demo_output(str(output))
    manifest = json.loads((output / "manifest.json").read_text())
    manifest["inputs"]["input"] = "/tmp/pass-demo-x1y2/yfcc-demo.tsv"  # what a demo records
    (output / "manifest.json").write_text(json.dumps(manifest))
    assert is_demo_output(str(output))
    (output / "manifest.json").write_text("[1]")  # any shape: not a demo's, no exception
    assert not is_demo_output(str(output))


def test_a_demo_stopped_while_publishing_runs_again_into_its_own_folder(tmp_path, capsys):
    """A demo stopped (Ctrl-C, or killed) while publishing over its earlier demo leaves the folder without a
    manifest but with run files and the stopped run's plan: the demo then refused its own folder for good ('holds
    a dataset that is not a demo's'), though the next run finishes that publish."""
    from tests.conftest import FAST, publishing_stopped_after

    output = tmp_path / "demo"
    command = ["demo", "--output", str(output), *FAST]
    assert main(command) == 0
    with publishing_stopped_after(2), pytest.raises(KeyboardInterrupt):
        main(command)
    assert not (output / "manifest.json").exists() and (output / "stats.json").exists()
    capsys.readouterr()
    assert main(command) == 0
    assert "finished publishing run" in capsys.readouterr().err
    assert is_demo_output(str(output)) and not (output / "_staging").exists()
    assert main(["verify", str(output)]) == 0


def test_the_demo_still_refuses_a_folder_whose_stopped_publish_is_not_a_demo_s(demo_release, tmp_path, capsys):
    """Only a stopped demo's plan makes a folder without a manifest the demo's: run files without one, or a plan
    of another run, are not."""
    import shutil

    output = tmp_path / "mine"
    shutil.copytree(demo_release, output)
    staged = output / "_staging" / "20260101T000000-0123abcd"
    staged.mkdir(parents=True)
    (output / "manifest.json").rename(staged / "manifest.json")
    (staged / "PUBLISHING.json").write_text(json.dumps({"files": ["manifest.json"]}))
    before = {path: path.read_bytes() for path in output.rglob("*") if path.is_file()}
    assert main(["demo", "--output", str(output), "--detectors=none"]) == 2
    assert "not a demo's" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in output.rglob("*") if path.is_file()} == before


# `pass-pipeline demo ...` (the argv), with SIGTERM arriving as the run's launch checks begin: the demo world is
# built and served by then, the output's lock not yet taken.
DEMO_STOPPED_AT_LAUNCH = """
import os, signal, sys
import pipeline.commands.run as run
checked = run.preflight
def preflight(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return checked(*args, **kwargs)
run.preflight = preflight
from pipeline.launch import entry
sys.exit(entry())
"""


def test_a_demo_stopped_before_its_run_takes_the_lock_leaves_no_world_folder(tmp_path):
    """SIGTERM before the run takes its lock (the demo world built, the launch checks running: seconds) ended the
    demo by SIGTERM's default, no `finally` run: its world folder (`pass-demo-*`, 12 kB of metadata) stayed in
    TMPDIR, one per stopped demo. It is a stop as the run's is now: exit 143, one line, the folder removed."""
    import os
    import signal

    temporary = tmp_path / "tmpdir"
    temporary.mkdir()
    done = subprocess.run([sys.executable, "-c", DEMO_STOPPED_AT_LAUNCH, "demo", "--output", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(temporary)})
    assert done.returncode == 128 + signal.SIGTERM and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("pass-pipeline: stopped (SIGTERM)"), done.stderr[-2000:]
    assert "demo: serving" in done.stdout  # stopped after the world was made
    assert list(temporary.glob("pass-demo-*")) == [] and list(temporary.glob("beam-pipeline-temp*")) == []
