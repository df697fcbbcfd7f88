"""`pass-pipeline demo` (pipeline/commands/demo.py): the whole job on the bundled demo world, run again and again into
its own folder and never over another dataset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_the_world_s_metadata_file_is_named_in_one_printable_line_whatever_tmpdir_is_named(tmp_path, monkeypatch,
                                                                                            capsys):
    """The line saying where the demo world's metadata is names it under TMPDIR as the environment gives it: a TMPDIR
    named with ESC [2J, a right-to-left override and a line break printed its escape to the terminal and a forged
    `demo: OK` line of its own. It is one line, the file escaped as Python writes it in a string."""
    import tempfile

    import pipeline.commands.demo as command

    temporary = tmp_path / "t\x1b[2J\u202e\ndemo: OK"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    given = []
    monkeypatch.setattr(command, "run", lambda argv, overwrite: given.append(argv) or {})
    monkeypatch.setattr(command, "summary", lambda output, stats: "summary")
    assert command.demo(str(tmp_path / "demo"), []) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and not any(line.startswith("demo: OK") for line in
                                                                 out.splitlines()), out
    (metadata,) = [arg.removeprefix("--input=") for arg in given[0] if arg.startswith("--input=")]
    assert metadata.startswith(str(temporary))  # the run reads it as it is
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("demo: serving "), lines
    assert f" metadata {tmp_path}/t\\x1b[2J\\u202e\\ndemo: OK/pass-demo-" in lines[0], lines[0]


def _recorded(folder: Path, recorded: object) -> None:
    """A manifest in `folder` recording `recorded` as its run's --input."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"inputs": {"input": recorded}}))


@pytest.mark.parametrize(("recorded", "demo_s"), [
    ("/tmp/pass-demo-x1y2/yfcc-demo.tsv", True),
    ("gs://bucket/tmp/pass-demo-9/yfcc-demo.tsv", True),
    ("/tmp/pass-demo-x1y2/other.tsv", False),  # another file of the world's folder
    ("/data/yfcc-demo.tsv", False),  # the demo's name in a folder of one's own
    ("/tmp/pass-demo-x1y2/sub/yfcc-demo.tsv", False),
    ("/tmp/pass-demo-x1y2/../yfcc-demo.tsv", False),
    ("/tmp/pass-demo-x1y2/yfcc-demo.tsv/", False),
    ("/tmp/not-pass-demo-1/yfcc-demo.tsv", False),
    (7, False), (None, False), (["/tmp/pass-demo-1/yfcc-demo.tsv"], False),
])
def test_a_dataset_is_a_demo_s_when_its_recorded_input_is_a_demo_world_s_metadata(tmp_path, recorded, demo_s):
    _recorded(tmp_path / "out", recorded)
    assert is_demo_output(str(tmp_path / "out")) is demo_s


@pytest.mark.parametrize("manifest", ["", "[1]", "not json", '{"inputs": []}', '{"inputs": {"other": 1}}', "null"])
def test_a_manifest_of_any_shape_is_no_demo_s_and_no_error(tmp_path, manifest):
    (tmp_path / "manifest.json").write_text(manifest)
    assert not is_demo_output(str(tmp_path))
    assert not is_demo_output(str(tmp_path / "nothing here"))


def test_the_demo_takes_a_folder_holding_nothing_of_a_run_or_a_demo_s_and_no_other(tmp_path):
    """A folder of no run (missing, empty, other files) or holding a demo's dataset is the demo's to write; one holding
    another run's is not, nor one whose run files have no manifest beside them unless a stopped demo's plan is
    staged there (its manifest beside the plan is a demo's)."""
    from pipeline.commands.demo import is_demo_folder

    assert is_demo_folder(str(tmp_path / "missing")) and is_demo_folder(str(tmp_path))
    (tmp_path / "notes.txt").write_text("mine")
    assert is_demo_folder(str(tmp_path))
    _recorded(tmp_path / "demo", "/tmp/pass-demo-1/yfcc-demo.tsv")
    _recorded(tmp_path / "mine", "/data/dump.tsv")
    assert is_demo_folder(str(tmp_path / "demo")) and not is_demo_folder(str(tmp_path / "mine"))
    for folder, recorded, demo_s in (("stopped-demo", "/tmp/pass-demo-1/yfcc-demo.tsv", True),
                                     ("stopped-mine", "/data/dump.tsv", False)):
        output = tmp_path / folder
        output.mkdir()
        (output / "stats.json").write_text("{}")  # run files, no manifest: a publish stopped
        assert not is_demo_folder(str(output))
        staged = output / "_staging" / "20260101T000000-0123abcd"
        _recorded(staged, recorded)
        (staged / "PUBLISHING.json").write_text(json.dumps({"files": ["manifest.json"]}))
        assert is_demo_folder(str(output)) is demo_s, folder
