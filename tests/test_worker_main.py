"""pipeline/worker_main.py: the local runner's worker processes run Beam's harness and, when it returns,
end without the interpreter's teardown but with everything a normal exit does that a worker needs."""

import subprocess
import sys
import textwrap
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

import pipeline.stage  # noqa: F401 (installs the worker command, as every job does)
from pipeline import beam_workers

# A harness stand-in that leaves work for the exit: a non-daemon thread still writing, an atexit
# callback (logging's flush and tempfile's clean-up are such callbacks), unflushed standard output.
HARNESS = textwrap.dedent("""
    import atexit, os, sys, threading, time
    from pathlib import Path
    from pipeline import worker_main

    folder = Path(sys.argv[1])

    def late_writer():
        time.sleep(0.3)
        (folder / "thread").write_text("done")

    def harness(argv):
        threading.Thread(target=late_writer).start()
        atexit.register(lambda: (folder / "atexit").write_text("ran"))
        sys.stdout.write("no newline, not flushed")
        if sys.argv[2] == "fail":
            raise RuntimeError("the harness failed")

    def exit_now(status):
        (folder / "exit_now").write_text(str(status))
        os._exit(status)

    worker_main.main(sys.argv, harness=harness, exit_now=exit_now)
""")


def run_harness(tmp_path: Path, outcome: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HARNESS, str(tmp_path), outcome], capture_output=True,
                          text=True, timeout=60)


def test_a_harness_that_returns_ends_with_status_0_after_threads_atexit_and_streams(tmp_path):
    done = run_harness(tmp_path, "return")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "exit_now").read_text() == "0"  # ended by os._exit ...
    assert (tmp_path / "thread").read_text() == "done"  # ... after the non-daemon thread finished
    assert (tmp_path / "atexit").read_text() == "ran"  # ... and the atexit callbacks ran
    assert done.stdout == "no newline, not flushed"


def test_a_harness_that_fails_exits_the_normal_way_with_status_1(tmp_path):
    done = run_harness(tmp_path, "fail")
    assert done.returncode == 1 and "RuntimeError: the harness failed" in done.stderr
    assert not (tmp_path / "exit_now").exists()
    assert (tmp_path / "thread").read_text() == "done" and (tmp_path / "atexit").read_text() == "ran"


def test_only_the_local_runners_own_worker_command_is_replaced():
    env = beam.transforms.environments.SubprocessSDKEnvironment
    assert env.from_command_string(beam_workers.BEAMS_WORKER_COMMAND).command_string == \
        beam_workers.OUR_WORKER_COMMAND
    assert env.from_command_string("python -m my.worker").command_string == "python -m my.worker"


def chosen_module(cwd: Path, *flags: str) -> str:
    code = f"import importlib.util as u; print({beam_workers.WORKER_MODULE_CHOICE})"
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


def test_the_worker_command_falls_back_to_beams_worker_where_ours_cannot_be_imported(tmp_path):
    """The local runner never notices a worker process that dies at start: it would wait for ever."""
    assert chosen_module(tmp_path) == "pipeline.worker_main"  # the installed package, from any folder
    # -S: no site-packages, so no installed `pipeline` (as for a package reached by a sys.path edit)
    assert chosen_module(tmp_path, "-S") == beam_workers.BEAMS_WORKER_MODULE
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("")  # someone else's `pipeline` package
    assert chosen_module(tmp_path, "-S") == beam_workers.BEAMS_WORKER_MODULE
    assert chosen_module(Path(__file__).parent.parent, "-S") == "pipeline.worker_main"  # this checkout's


def main_module(_: int) -> str:
    main = sys.modules["__main__"]
    return getattr(main.__spec__, "name", "") if getattr(main, "__spec__", None) else str(main.__file__)


def test_worker_processes_run_this_entry_point():
    options = PipelineOptions(["--runner=FnApiRunner", "--direct_num_workers=2",
                               "--direct_running_mode=multi_processing"])
    with beam.Pipeline(options=options) as p:
        mains = p | beam.Create([1, 2, 3, 4]) | beam.Map(main_module) | beam.Distinct()
        assert_that(mains, equal_to(["pipeline.worker_main"]))
