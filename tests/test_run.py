"""`pass-pipeline run` as an operator meets it: killed runs, two runs at once, unwritable outputs,
unreachable endpoints and failed replacements. Each case ends in one complete dataset or one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import apache_beam.pipeline as beam_pipeline
import pytest

import pipeline.commands.run as run_command
import pipeline.stages.license as license_stage
from pipeline.cli import main, run
from pipeline.fixtures.demo_world import build_demo_world, demo_image, photo_path
from pipeline.fixtures.static_server import Response, StaticServer, cut_short
from pipeline.fixtures.yfcc_rows import yfcc_line
from pipeline.io.layout import PUBLISHING, STAGED_IMAGES, STAGING
from pipeline.io.lock import LOCK
from pipeline.records import Photo
from tests.conftest import FAST, killed_runs_lock, pid_gone
from tests.parquet_footers import rows_of, values_of, with_integers
from tests.test_http_client import RawServer, send_then


@pytest.fixture()
def world(tmp_path):
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path / "input")
        yield server, metadata


def argv(server: StaticServer, metadata: Path, output: Path, *extra: str) -> list[str]:
    return [f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}", *extra, *FAST]


def dataset_files(output: Path) -> set[str]:
    return {str(path.relative_to(output)) for path in output.rglob("*") if path.is_file()}


def manifest_files(output: Path) -> set[str]:
    return {entry["path"] for entry in json.loads((output / "manifest.json").read_text())["files"]} | {
        "manifest.json"}


def start_slow_run(server: StaticServer, metadata: Path, output: Path) -> subprocess.Popen:
    """A run in another process that stays busy: one photo answers only after 20 s."""
    server.add(photo_path("1003"), Response(200, demo_image("chelsea.jpg"), delay=20.0))
    command = [sys.executable, "-m", "pipeline", "run", *argv(server, metadata, output)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (output / LOCK).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (output / LOCK).exists(), "the slow run never took the lock"
    return process


def test_a_second_run_into_the_same_output_is_refused_while_the_first_runs(world, tmp_path, capsys):
    server, metadata = world
    output = tmp_path / "out"
    first = start_slow_run(server, metadata, output)
    try:
        assert main(["run", *argv(server, metadata, output)]) == 2
        message = capsys.readouterr().err.strip()
        assert message.count("\n") == 0 and "is in use by run" in message and f"pid {first.pid}" in message
    finally:
        first.kill()
        first.wait()


def stopped_in_a_download(server: StaticServer, command: list[str], signum: int) -> tuple[int, str]:
    """`python COMMAND` (a run of the world's photos), sent `signum` while it downloads a photo the server never
    answers: its exit status and stderr. It must end within 30 s (it waited for the download, up to
    --fetch_deadline)."""
    server.add(photo_path("1003"), Response(200, demo_image("chelsea.jpg"), delay=600.0))
    process = subprocess.Popen([sys.executable, *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, cwd=Path(__file__).parent.parent)
    try:
        deadline = time.monotonic() + 60
        while not server.hits[photo_path("1003")] and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # into the job: the download the server never answers under way
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    return process.returncode, err


def test_a_run_stopped_by_sigterm_removes_its_staging_folder_and_releases_its_lock(world, tmp_path):
    """SIGTERM (`docker stop`, systemd, `timeout`, a scheduler cancelling the launcher) killed the run at once: its
    lock stayed, and where no later run takes one over as stale (gs://, another machine or container) every run into
    the output was refused until someone removed it by hand. It now ends the run as Ctrl-C does, promptly: a download
    under way (here one the server never answers) held the stop first in the fetcher's teardown, then at exit, for
    up to --fetch_deadline each (a stopped run was alive an hour later). Worker processes (multi_processing):
    test_stopping.py."""
    import signal

    server, metadata = world
    output = tmp_path / "out"
    launch = ["-m", "pipeline", "run", *argv(server, metadata, output)]
    status, err = stopped_in_a_download(server, launch, signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("pass-pipeline: stopped (SIGTERM)")
    assert not (output / LOCK).exists() and not (output / STAGING).exists()


def _a_thread_taking(pid: int, signum: int) -> int:
    """A thread of process `pid` other than its main one that does not block `signum` (one the kernel may give the
    process's signal to), by its id; the last such, a thread of the job."""
    import re

    takers = []
    for task in sorted(int(name) for name in os.listdir(f"/proc/{pid}/task") if int(name) != pid):
        status = Path(f"/proc/{pid}/task/{task}/status").read_text()
        blocked = re.search(r"^SigBlk:\s*([0-9a-f]+)", status, re.M)
        if blocked is not None and not int(blocked.group(1), 16) >> (signum - 1) & 1:
            takers.append(task)
    assert takers, "no thread but the main one can take the signal"
    return takers[-1]


def test_a_sigterm_a_job_thread_takes_stops_the_run_at_once(world, tmp_path):
    """The kernel gives a process's SIGTERM to any thread that does not block it. Taken by a thread of the job, it was
    heard only when the main thread's wait for the job ended: the run went on to its slowest photo (16 s here), or
    to its end and published (exit 0), a scheduler's stop ignored. The main thread is woken (io/stopping.py)."""
    import ctypes
    import signal

    server, metadata = world
    output = tmp_path / "out"
    process = start_slow_run(server, metadata, output)  # its photo 1003 answers after 20 s
    try:
        # Into the job, its threads started: photo 1003 asked for. A fixed 2 s after the lock could come before that
        # on a loaded machine (it came 1.6-3 s after the lock with six busy processes on two cores; 0.5 s idle).
        deadline = time.monotonic() + 60
        while not server.hits[photo_path("1003")] and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.hits[photo_path("1003")], "the slow run never asked for photo 1003"
        taker = _a_thread_taking(process.pid, signal.SIGTERM)
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(234, process.pid, taker, signal.SIGTERM) == 0  # tgkill: to that thread
        begun = time.monotonic()
        process.wait(timeout=60)
        took = time.monotonic() - begun
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM and took < 10, (process.returncode, took)
    assert not (output / LOCK).exists()


def test_sigterm_at_any_moment_of_a_run_ends_it_and_never_leaves_its_lock(world, tmp_path):
    """SIGTERM sent at moments spread over a whole run (launch checks, job, publish, after): the process always ends
    within seconds, never leaving its lock; a run stopped before it published leaves the old dataset, one stopped
    after, its own, and either verifies."""
    import signal

    server, metadata = world
    output = tmp_path / "out"
    command = [sys.executable, "-m", "pipeline", "run", "--overwrite", *argv(server, metadata, output)]
    # The moments are counted from the end of its imports (~3 s alone, far more on a loaded machine): counted from its
    # start, every signal of a run on a busy CI machine fell in the imports or after the run, and the test saw no stop
    # of the run at all.
    begun = time.monotonic()
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready = _imported(first) - begun
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-2000:]
    whole = time.monotonic() - begun - ready
    statuses = set()
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _imported(process)
        time.sleep(whole * fraction)
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
        statuses.add(process.returncode)
        assert process.returncode in (0, 128 + signal.SIGTERM, -signal.SIGTERM), err[-2000:]
        assert not (output / LOCK).exists(), (fraction, err[-2000:])
        publishing = list((output / STAGING).glob(f"*/{PUBLISHING}"))  # stopped while publishing: the next run's
        assert publishing or main(["verify", str(output)]) == 0, (fraction, err[-2000:])
    assert 128 + signal.SIGTERM in statuses
    assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
    assert main(["verify", str(output)]) == 0


def _imported(process: subprocess.Popen, timeout: float = 120) -> float:
    """When `process` has imported the command line (onnxruntime's library, among its last imports, mapped: read from
    /proc/PID/maps), or ended; time.monotonic(). SIGTERM is caught from the start (launch.py), so it cannot tell."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if "onnxruntime_pybind11_state" in Path(f"/proc/{process.pid}/maps").read_text():
                break
        except OSError:
            break
        time.sleep(0.02)
    return time.monotonic()


def _catching_sigterm(process: subprocess.Popen, timeout: float = 120) -> float:
    """When `process` catches SIGTERM (a handler set, read from /proc/PID/status), or ended; time.monotonic()."""
    import re
    import signal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            break
        caught = re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.M)
        if caught is None or int(caught.group(1), 16) >> (signal.SIGTERM - 1) & 1:
            break
        time.sleep(0.02)
    return time.monotonic()


def test_a_killed_run_leaves_nothing_a_rerun_does_not_replace(world, tmp_path):
    """Killed mid-run (its lock and staging folder left behind), then rerun with another --shards:
    the folder holds exactly the second run's files and verify agrees."""
    server, metadata = world
    output = tmp_path / "out"
    killed = start_slow_run(server, metadata, output)
    killed.kill()
    killed.wait()
    # Killed between its shards and its manifest: staged shards of 3, and what a run of the
    # previous design wrote straight into the folder (a shard and a temporary file).
    staged = output / STAGING / "20260101T000000-deadbeef" / "parquet"
    staged.mkdir(parents=True)
    (staged / "pass-00002-of-00003.parquet").write_bytes(b"staged shard")
    (staged.parent / STAGED_IMAGES).mkdir()
    (staged.parent / STAGED_IMAGES / f"{'0' * 64}.jpg").write_bytes(b"a staged image")
    (output / "parquet").mkdir(parents=True)
    (output / "parquet" / "pass-00002-of-00003.parquet").write_bytes(b"stale shard")
    (output / "parquet" / "pass-00000-of-00003.parquet.tmp-0123").write_bytes(b"half")
    server.add(photo_path("1003"), Response(200, demo_image("chelsea.jpg")))
    stats = run(argv(server, metadata, output, "--shards=2"))
    assert stats["accounted"] and stats["kept"] == 10
    assert dataset_files(output) == manifest_files(output)
    assert not (output / STAGING).exists() and not (output / LOCK).exists()
    assert main(["verify", str(output)]) == 0


def test_overwrite_replaces_the_old_dataset_only_once_the_new_run_succeeded(world, demo_release, tmp_path,
                                                                             monkeypatch, capsys):
    server, metadata = world
    output = tmp_path / "out"
    shutil.copytree(demo_release, output)  # an earlier run's dataset (the session's, copied)
    before = {name: (output / name).read_bytes() for name in dataset_files(output)}

    def failing_build(pipeline, opts, staging, *pins):
        import apache_beam as beam

        real_build(pipeline, opts, staging, *pins)
        _ = pipeline | "Boom" >> beam.Create([1]) | beam.Map(lambda _: 1 / 0)

    real_build = run_command.build
    monkeypatch.setattr(run_command, "build", failing_build)
    assert main(["run", "--overwrite", *argv(server, metadata, output, "--shards=3")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the job failed" in err[0] and "ZeroDivisionError" in err[0]
    assert {name: (output / name).read_bytes() for name in dataset_files(output)} == before
    assert main(["verify", str(output)]) == 0


def test_a_run_stopped_while_publishing_is_finished_by_the_next_run(world, demo_release, tmp_path, capsys):
    """--overwrite over a dataset, stopped (Ctrl-C) after publishing deleted the old files and moved two new
    ones in: the folder claims no dataset (verify says so), and the next run finishes the stopped run's
    publish before its own: another command is then refused (the folder holds a dataset again and --overwrite is not
    given), exit 2; the same one (--overwrite decides no byte of the dataset) is done, exit 0, in one line."""
    from tests.conftest import publishing_stopped_after

    server, metadata = world
    output = tmp_path / "out"
    shutil.copytree(demo_release, output)
    with publishing_stopped_after(2), pytest.raises(KeyboardInterrupt):
        run(argv(server, metadata, output, "--shards=3"), overwrite=True)
    assert not (output / "manifest.json").exists() and not (output / LOCK).exists()
    assert main(["verify", str(output)]) == 2 and "holds no manifest.json" in capsys.readouterr().err
    published = output.parent / "published"
    shutil.copytree(output, published)
    assert main(["run", *argv(server, metadata, output, "--shards=2")]) == 2
    err = capsys.readouterr().err
    assert "finished publishing run" in err and "already holds a dataset" in err
    assert not (output / STAGING).exists() and dataset_files(output) == manifest_files(output)
    assert len(list((output / "parquet").glob("*.parquet"))) == 3 and main(["verify", str(output)]) == 0
    capsys.readouterr()
    assert main(["run", *argv(server, metadata, published, "--shards=3")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "finished publishing run" in err[0] and "the earlier run of this same command" in err[0]
    assert not (published / STAGING).exists() and main(["verify", str(published)]) == 0


def test_a_stopped_publish_whose_staging_folder_name_holds_terminal_escapes_is_named_in_one_printable_line(
        world, demo_release, tmp_path, capsys):
    """The run whose publish a run finishes is named after its staging folder, read from the output folder (a
    release's under a releases' root others may write to): a folder named with an OSC 52, ESC [2J, a line break and a
    forged line was printed as it was, in the line saying its publish was finished and in the one saying this same
    command's dataset is there. Each is one line, the name escaped as Python writes it in a string."""
    from tests.conftest import publishing_stopped_after

    server, metadata = world
    output = tmp_path / "out"
    shutil.copytree(demo_release, output)
    with publishing_stopped_after(2), pytest.raises(KeyboardInterrupt):
        run(argv(server, metadata, output, "--shards=3"), overwrite=True)
    (staging,) = (output / STAGING).iterdir()
    staging.rename(staging.with_name("r\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\u202e\npass-pipeline: verified"))
    published = output.parent / "published"
    shutil.copytree(output, published)
    capsys.readouterr()
    for folder, shards, status in ((output, "--shards=2", 2), (published, "--shards=3", 0)):
        assert main(["run", *argv(server, metadata, folder, shards)]) == status
        err = capsys.readouterr().err
        assert "\x1b" not in err and not any(line.startswith("pass-pipeline: verified") for line in err.splitlines())
        finished = [line for line in err.splitlines() if "finished publishing run" in line]
        assert len(finished) == 1 and finished[0].isprintable(), err
        assert "run r\\x1b]52;c;cm0gLXJmIH4K\\x07\\x1b[2J\\u202e\\npass-pipeline: verified into" in finished[0], err
    assert files_of(published) == files_of(output)


def test_an_output_typed_with_terminal_escapes_and_a_line_break_is_named_in_one_printable_line(world, tmp_path,
                                                                                               capsys):
    """The lines saying a run finished the publish a stop cut short into --output, and that --output already holds
    this same command's dataset, name the folder as typed: one named with ESC c (which resets the terminal), a CSI
    as one C1 character, a right-to-left override and a line break was printed as it was, its escapes sent to the
    terminal and a forged `pass-pipeline: verified` line of its own. Each is one line, the folder escaped as Python
    writes it in a string."""
    from tests.conftest import publishing_stopped_after

    server, metadata = world
    output = tmp_path / "o\x1bc\x9b2J\u202e\npass-pipeline: verified"
    shown = f"{tmp_path}/o\\x1bc\\x9b2J\\u202e\\npass-pipeline: verified"
    with publishing_stopped_after(2), pytest.raises(KeyboardInterrupt):
        run(argv(server, metadata, output, "--shards=3"), overwrite=True)
    capsys.readouterr()
    for shards, status, said in (("--shards=2", 2, f"into {shown} (it was stopped while publishing)"),
                                 ("--shards=3", 0, f"pass-pipeline: {shown} already holds the dataset of this same "
                                                   "command")):
        assert main(["run", *argv(server, metadata, output, shards)]) == status
        err = capsys.readouterr().err
        assert "\x1b" not in err and "\x9b" not in err and "\u202e" not in err, err
        assert not any(line.startswith("pass-pipeline: verified") for line in err.splitlines()), err
        assert said in err, err


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_only_the_same_command_is_told_done_by_the_dataset_it_published(world, tmp_path, capsys, monkeypatch):
    """A plain run's dataset records the command that made it (its options but the operational ones, its input files,
    its models), sealed over its files: the same command again is done, exit 0, touching nothing, with other thread
    counts or progress too; a dataset without the record (written before runs kept one), with the record or a file's
    checksum edited, or another option, is refused as before, exit 2, and one verify does not pass (its stats.json
    edited) is refused naming the file; --overwrite still runs again and replaces it."""
    server, metadata = world
    output = tmp_path / "out"
    command = ["run", *argv(server, metadata, output, "--shards=2")]
    assert main(command) == 0
    before = files_of(output)
    built = []
    real_build = run_command.build
    monkeypatch.setattr(run_command, "build", lambda *args: (built.append(1), real_build(*args)))
    capsys.readouterr()
    assert main([*command, "--progress_seconds=1", "--fetch_threads=3", "--detect_threads=1"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds the dataset of this same command" in err[0], err
    assert files_of(output) == before
    manifest = json.loads((output / "manifest.json").read_text())
    record = manifest["run_fingerprint"]
    edited_files = [{**entry, "sha256": "0" * 64} if entry["path"].endswith(".parquet") else entry
                    for entry in manifest["files"]]
    for change in ({"run_fingerprint": None}, {"run_fingerprint": {**record, "sha256": "0" * 64}},
                   {"run_fingerprint": {**record, "options": {**record["options"], "max_side": 256}}},
                   {"files": edited_files}):
        (output / "manifest.json").write_text(json.dumps({**manifest, **change}))
        assert main(command) == 2, change
        said = capsys.readouterr().err
        assert "already holds a dataset (manifest.json); pass --overwrite" in said, (change, said)
    (output / "manifest.json").write_bytes(before["manifest.json"])
    (output / "stats.json").write_text("{}")  # outside the record's seal: verify's to find
    assert main(command) == 2
    said = capsys.readouterr().err
    assert "holds the dataset of this same command, but it does not match its manifest (stats.json" in said, said
    (output / "stats.json").write_bytes(before["stats.json"])
    assert main([*command, "--max_side=256"]) == 2 and "already holds a dataset" in capsys.readouterr().err
    assert files_of(output) == before and not built
    assert main([*command, "--overwrite"]) == 0 and built == [1]
    assert "same command" not in capsys.readouterr().err and main(["verify", str(output)]) == 0


def test_a_relative_input_run_again_from_another_folder_is_another_command(world, tmp_path, capsys, monkeypatch):
    """Input files are held by their path as typed and their size: the same command typed in another working folder,
    whose file of that name and size holds other rows, was told "already holds the dataset of this same command",
    exit 0, and its rows were never read. A relative path's folder is part of the record."""
    server, metadata = world
    lines = metadata.read_bytes().splitlines(keepends=True)
    assert len(lines) > 1 and lines[-1].endswith(b"\n")
    for folder, rows in (("a", lines), ("b", lines[::-1])):  # the same size, other content
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "rows.tsv").write_bytes(b"".join(rows))
    output = tmp_path / "out"
    command = ["run", "--input=rows.tsv", f"--output={output}", f"--allowed_hosts={server.host}", *FAST]
    monkeypatch.chdir(tmp_path / "a")
    assert main(command) == 0
    assert main(command) == 0 and "already holds the dataset of this same command" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path / "b")
    assert main(command) == 2
    assert "already holds a dataset (manifest.json); pass --overwrite" in capsys.readouterr().err


def test_leftovers_of_a_killed_run_do_not_fail_verify_and_the_next_run_clears_them(world, demo_release, tmp_path):
    """A lock, its temporary and a staging folder beside an intact dataset are no part of it (verify
    reported each as 'not listed in the manifest', and refresh then refused the release)."""
    server, metadata = world
    output = tmp_path / "out"
    shutil.copytree(demo_release, output)
    (output / LOCK).write_text("")  # what a run of the previous lock code could leave
    (output / f"{LOCK}.tmp-0123").write_text("{}")
    os.utime(output / f"{LOCK}.tmp-0123", (time.time() - 120, time.time() - 120))  # left a while ago
    (output / STAGING / "20260101T000000-deadbeef" / "parquet").mkdir(parents=True)
    (output / STAGING / "20260101T000000-deadbeef" / "parquet" / "pass-00000-of-00002.parquet").write_text("x")
    assert main(["verify", str(output)]) == 0
    (output / LOCK).unlink()
    assert run(argv(server, metadata, output), overwrite=True)["accounted"]
    assert dataset_files(output) == manifest_files(output)  # the next lock removed its stale temporary


def test_a_publish_plan_put_into_a_published_release_is_never_carried_out(world, demo_release, tmp_path, capsys):
    """A release is immutable: a staging folder with a plan in it was put there by hand (no run writes into
    a release). verify reports it, and a run into the release is refused before it takes the lock or
    touches anything."""
    server, metadata = world
    release = tmp_path / "release"
    shutil.copytree(demo_release, release)
    manifest = json.loads((release / "manifest.json").read_text())
    (release / "manifest.json").write_text(json.dumps({**manifest, "release": "2026-10"}))
    planted = release / STAGING / "x"
    (planted / "parquet").mkdir(parents=True)
    (planted / "parquet" / "pass-00000-of-00001.parquet").write_bytes(b"planted")
    (planted / "manifest.json").write_text("{}")
    (planted / "PUBLISHING.json").write_text(json.dumps({"files": ["parquet/pass-00000-of-00001.parquet",
                                                                   "manifest.json"]}))
    before = {path: (release / path).read_bytes() for path in dataset_files(release)}
    assert main(["verify", str(release)]) == 1 and "_staging/x/PUBLISHING.json" in capsys.readouterr().out
    assert main(["run", "--overwrite", *argv(server, metadata, release)]) == 2
    assert "is a published release" in capsys.readouterr().err
    assert {path: (release / path).read_bytes() for path in dataset_files(release)} == before
    assert not (release / LOCK).exists()


def test_an_input_kept_where_the_run_writes_its_own_files_is_refused_not_deleted(world, tmp_path, capsys):
    """Publishing replaces OUTPUT/parquet/*, OUTPUT/stats.json...: a table kept in OUTPUT/parquet/ was read and
    then deleted by the run that read it."""
    server, metadata = world
    output = tmp_path / "mydata"
    (output / "parquet").mkdir(parents=True)
    kept_input = output / "parquet" / "photos.tsv"
    shutil.copy(metadata, kept_input)
    spelled = f"{output}/./parquet/photos.tsv"  # any spelling of the same file
    assert main(["run", *argv(server, Path(spelled), output)]) == 2
    assert "--input" in capsys.readouterr().err and kept_input.read_bytes() == metadata.read_bytes()
    blocklist = output / "stats.json"  # a run file at the top too
    blocklist.write_text("phash 0000000000000000\n")
    assert main(["run", f"--blocklist={blocklist}", *argv(server, metadata, output)]) == 2
    assert "--blocklist" in capsys.readouterr().err and blocklist.exists()
    blocklist.unlink()
    assert main(["run", *argv(server, metadata, output)]) == 0  # an input outside the run's files: runs as ever


def test_a_run_never_writes_through_a_link_nor_inside_a_published_release(world, demo_release, tmp_path, capsys):
    """`OUTPUT/review -> ~/thesis`: the run deleted the thesis through the link and published its review there.
    `--output=RELEASE/parquet/more`: the run wrote inside a published release, which verify then refused."""
    server, metadata = world
    output, victim = tmp_path / "out", tmp_path / "thesis"
    output.mkdir()
    victim.mkdir()
    (victim / "thesis.tex").write_text("three years of work")
    (output / "review").symlink_to(victim)
    assert main(["run", *argv(server, metadata, output)]) == 2
    assert "is a link" in capsys.readouterr().err and (victim / "thesis.tex").read_text() == "three years of work"
    release = tmp_path / "release"
    shutil.copytree(demo_release, release)
    manifest = json.loads((release / "manifest.json").read_text())
    (release / "manifest.json").write_text(json.dumps({**manifest, "release": "2026-10"}))
    before = dataset_files(release)
    assert main(["run", *argv(server, metadata, release / "parquet" / "more")]) == 2
    assert "lies inside the published release" in capsys.readouterr().err
    assert dataset_files(release) == before and not server.hits


@pytest.mark.parametrize("name,make", [
    ("parquet", lambda path: path.write_text("my notes\n")),  # a file where a run puts a folder
    ("stats.json", lambda path: path.mkdir()),  # a folder where a run puts a file
])
def test_a_run_path_of_the_wrong_kind_is_refused_before_the_old_dataset_is_touched(world, demo_release, tmp_path,
                                                                                    capsys, name, make):
    """A file `OUTPUT/parquet` beside a dataset: publishing deleted the old manifest and the old run files, then
    failed to make the folder ('the job failed: OSError: File exists'), and every rerun failed the same way, after
    running the whole job again: the old dataset was gone and the new one never published."""
    server, metadata = world
    output = tmp_path / "out"
    shutil.copytree(demo_release, output)
    if (output / name).is_dir():
        shutil.rmtree(output / name)
    else:
        (output / name).unlink()
    make(output / name)
    before = {str(path.relative_to(output)): path.read_bytes() for path in output.rglob("*") if path.is_file()}
    assert main(["run", *argv(server, metadata, output, "--shards=2"), "--overwrite"]) == 2
    assert f"{output / name} is a " in capsys.readouterr().err and not server.hits
    assert {str(path.relative_to(output)): path.read_bytes() for path in output.rglob("*") if path.is_file()} == before
    assert not (output / STAGING).exists() and not (output / LOCK).exists()


def test_a_run_inside_a_dataset_s_folder_is_refused(world, demo_release, tmp_path, capsys):
    """`--output=DATASET/parquet/more` beside a dataset a plain run wrote (no release: not immutable): the run put a
    second dataset inside the first, which verify then refused (every file 'not listed in the manifest'),
    `pd.read_parquet(DATASET/parquet)` read with its shards, and the next `--overwrite` run into DATASET deleted."""
    server, metadata = world
    dataset = tmp_path / "dataset"
    shutil.copytree(demo_release, dataset)
    before = dataset_files(dataset)
    for inner in (dataset / "parquet" / "more", dataset / "v2"):
        assert main(["run", *argv(server, metadata, inner)]) == 2
        assert f"lies inside the dataset {dataset}" in capsys.readouterr().err
    assert dataset_files(dataset) == before and not server.hits
    assert main(["verify", str(dataset)]) == 0
    assert main(["run", *argv(server, metadata, tmp_path / "beside")]) == 0  # beside it: runs as ever
    project = tmp_path / "extension"  # files of those names that are no dataset's: a run below runs as ever
    project.mkdir()
    (project / "manifest.json").write_text(json.dumps({"manifest_version": 3, "name": "x"}))
    (project / "stats.json").write_text("{}")
    assert main(["run", *argv(server, metadata, project / "data")]) == 0


def test_the_lock_appears_with_its_content(tmp_path, monkeypatch):
    """Created empty and then written, a kill in between left an empty lock nobody could take over."""
    from pipeline.io import lock as lock_module

    seen, real_link = [], os.link

    def watched_link(source, destination):
        seen.append(json.loads(Path(source).read_text())["run_id"])  # complete before it gets the name
        return real_link(source, destination)

    monkeypatch.setattr(lock_module.os, "link", watched_link)
    with lock_module.OutputLock(str(tmp_path), "run-a"):
        assert json.loads((tmp_path / LOCK).read_text())["run_id"] == "run-a"
        assert [p.name for p in tmp_path.iterdir()] == [LOCK]
    assert seen == ["run-a"] and not list(tmp_path.iterdir())


def test_a_fresh_lock_temporary_of_a_killed_run_is_removed_at_once_and_no_other(tmp_path):
    """A run killed after linking its lock but before unlinking the temporary (the slow run of the test above
    is killed the moment its lock appears, which sometimes fell there) left `_lock.json.tmp-*` beside the next
    run's dataset for a minute: now a temporary whose writer was a process on this machine that is gone is
    removed by the next run that takes the lock, however young. One of a live process, of another machine, with
    a pid that is no process id, unreadable, or no regular file is left (and none of them stops the run)."""
    import socket

    from pipeline.io import lock as lock_module

    gone_pid = pid_gone()

    def holder(pid: int, host: str = socket.gethostname()) -> str:  # written now: a live pid is its writer's
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return json.dumps({"run_id": "r", "host": host, "pid": pid, "started": started})

    temporaries = {"killed": holder(gone_pid), "live": holder(os.getpid()), "elsewhere": holder(gone_pid, "other-host"),
                   "huge-pid": holder(2**80), "minus-one": holder(-1), "half-written": '{"run_id": "r", "ho'}
    for name, text in temporaries.items():
        (tmp_path / f"{lock_module.LOCK_TEMPORARY}{name}").write_text(text)
    os.mkfifo(tmp_path / f"{lock_module.LOCK_TEMPORARY}fifo")
    with lock_module.OutputLock(str(tmp_path), "run-b"):
        left = sorted(p.name.removeprefix(lock_module.LOCK_TEMPORARY) for p in tmp_path.iterdir() if p.name != LOCK)
    assert left == ["elsewhere", "fifo", "half-written", "huge-pid", "live", "minus-one"]


def test_a_lock_naming_no_process_id_is_a_refusal_not_a_crash(tmp_path):
    """os.kill(2**80, 0) raises OverflowError and os.kill(-1, 0) asks about every process: a lock that names
    such a pid on this machine is held by an unknown run (refused, naming it), never taken over or a traceback."""
    import socket

    from pipeline.io import lock as lock_module

    for pid in (2**80, -1, 0):
        (tmp_path / LOCK).write_text(json.dumps({"run_id": "odd", "host": socket.gethostname(), "pid": pid,
                                                 "started": "2026-12-02T00:00:00Z"}))
        with pytest.raises(lock_module.OutputLocked, match="in use by run odd"):
            lock_module.OutputLock(str(tmp_path), "run-c").acquire()


@pytest.mark.parametrize("kind", ["a file", "below a file"])
def test_an_unwritable_output_fails_at_launch_in_one_line(world, tmp_path, capsys, kind):
    server, metadata = world
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    output = blocker if kind == "a file" else blocker / "out"
    started = time.monotonic()
    assert main(["run", *argv(server, metadata, output)]) == 2
    message = capsys.readouterr().err.strip()
    # said "cannot write to --output …: File exists" / "Not a directory", which told no newcomer what to give
    said = f"--output {output} is a file" if kind == "a file" else f"lies under {blocker}, which is a file"
    assert message.count("\n") == 0 and said in message and "not a folder: name the folder the dataset" in message
    assert time.monotonic() - started < 10 and not server.hits  # refused before any download


def test_an_unreachable_flickr_endpoint_is_one_line(tmp_path, capsys):
    credentials = tmp_path / "keys.json"
    credentials.write_text(json.dumps({"key": "key-never-shown-123", "secret": "secret-never-shown-456"}))
    assert main(["run", "--source=flickr", "--flickr_rest_url=http://127.0.0.1:9/services/rest/",
                 f"--flickr_credentials={credentials}", "--min_upload_date=2020-01-01",
                 "--max_upload_date=2020-01-02", f"--output={tmp_path / 'out'}", *FAST]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "cannot reach the Flickr API" in message and "never-shown" not in message


def test_a_stale_lock_of_a_dead_process_on_this_machine_is_taken_over(world, tmp_path):
    server, metadata = world
    output = tmp_path / "out"
    output.mkdir()
    killed_runs_lock(output, "old")
    assert run(argv(server, metadata, output))["accounted"]
    assert not (output / LOCK).exists()


@pytest.mark.parametrize("content", [b"\xff\xd8\xff\xe0 a JPEG given as --input",
                                     b"url,caption\nhttp://example.org/a.jpg,a cat\n"])
def test_an_input_that_is_not_yfcc_metadata_fails_at_launch(tmp_path, capsys, content):
    given = tmp_path / "input.tsv"
    given.write_bytes(content)
    assert main(["run", f"--input={given}", f"--output={tmp_path / 'out'}", *FAST]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and f"--input {given}" in message
    assert not (tmp_path / "out").exists()


def test_a_run_without_network_is_refused_and_publishes_nothing(tmp_path, capsys):
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path / "input")
        host = server.host
    # The server is gone: every download is a connection error, as without a network.
    assert main(["run", f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={host}",
                 "--max_retries=0", *FAST]) == 4
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "downloads failed for environmental reasons (connection_error" in message
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_most_downloads_answered_with_what_is_not_http_refuse_the_run_as_failures_of_the_network_do(world, tmp_path,
                                                                                                      capsys):
    """Most downloads from one host answering no HTTP (as every https host "does" behind a TLS-intercepting proxy or
    without CA certificates): each a protocol_error, tried once, and counted against --max_failure_rate, so the run
    is refused, exit 4, naming them, and nothing is published (a release lacking most of its photos); a rate that
    allows them publishes the others."""
    server, metadata = world
    lines = metadata.read_text(encoding="utf-8").splitlines()
    with RawServer(send_then(b"SSH-2.0-OpenSSH_9.6\r\n")) as garbage:
        ids = [str(2000 + n) for n in range(20)]
        lines += [yfcc_line(len(lines) + n + 1, photo_id, garbage.url(photo_path(photo_id)))
                  for n, photo_id in enumerate(ids)]
        metadata.write_text("\n".join(lines) + "\n", encoding="utf-8")
        hosts = f"--allowed_hosts={server.host},{garbage.host}"
        refused = tmp_path / "refused"
        assert main(["run", *argv(server, metadata, refused, hosts)]) == 4
        assert "failed for environmental reasons (protocol_error: 20)" in capsys.readouterr().err
        assert not (refused / "manifest.json").exists()
        output = tmp_path / "out"
        code = main(["run", *argv(server, metadata, output, hosts, "--max_failure_rate=1")])
    assert code == 0, capsys.readouterr().err
    stats = json.loads((output / "stats.json").read_text())
    assert stats["rejections_by_stage"]["fetch"]["protocol_error"] == len(ids) and stats["kept"] > 0


def test_most_bodies_cut_short_refuse_the_run_as_failures_of_the_network_do(world, tmp_path, capsys):
    """Most downloads' bodies cut short (a proxy or a link that drops every transfer part way): each a
    truncated_body, retried, and counted against --max_failure_rate as the network's failures are, so the run is
    refused, exit 4, naming them (it published a release lacking most of its photos, each rejected as the photo's
    fault); a rate that allows them publishes the others."""
    server, metadata = world
    lines = metadata.read_text(encoding="utf-8").splitlines()
    ids = [str(3000 + n) for n in range(20)]
    for photo_id in ids:
        server.add(photo_path(photo_id), cut_short(b"\xff\xd8\xff" + b"0" * 7, 5000))
    lines += [yfcc_line(len(lines) + n + 1, photo_id, server.url(photo_path(photo_id)))
              for n, photo_id in enumerate(ids)]
    metadata.write_text("\n".join(lines) + "\n", encoding="utf-8")
    refused = tmp_path / "refused"
    assert main(["run", *argv(server, metadata, refused, "--max_retries=1")]) == 4
    assert "failed for environmental reasons (truncated_body: 20)" in capsys.readouterr().err
    assert not (refused / "manifest.json").exists()
    output = tmp_path / "out"
    code = main(["run", *argv(server, metadata, output, "--max_retries=1", "--max_failure_rate=1")])
    assert code == 0, capsys.readouterr().err
    stats = json.loads((output / "stats.json").read_text())
    assert stats["rejections_by_stage"]["fetch"]["truncated_body"] == len(ids) and stats["kept"] > 0


def test_a_run_that_keeps_nothing_is_refused_unless_allowed(world, tmp_path, capsys):
    server, metadata = world
    everything = [f"--input={metadata}", f"--allowed_hosts={server.host}", "--min_side=5000", "--max_side=5000",
                  *FAST]
    assert main(["run", f"--output={tmp_path / 'refused'}", *everything]) == 4
    message = capsys.readouterr().err
    assert "kept 0 of 18 rows (image/too_small: " in message and "--allow_empty" in message
    assert not (tmp_path / "refused" / "manifest.json").exists()
    assert main(["run", f"--output={tmp_path / 'allowed'}", "--allow_empty", *everything]) == 0
    assert json.loads((tmp_path / "allowed" / "stats.json").read_text())["kept"] == 0


def test_a_run_whose_rows_are_not_all_accounted_for_is_refused_and_publishes_nothing(world, tmp_path, capsys,
                                                                                    monkeypatch):
    """Kept + rejected != read would be a bug that lost rows silently: such a run must never be
    published (it used to be published with exit status 3). The accounting is made to fail here."""
    server, metadata = world
    real = run_command.report.add_to_stats

    def lose_a_row(output, **facts):
        stats = real(output, **facts)
        return {**stats, "accounted": False, "rejected": stats["rejected"] - 1}

    monkeypatch.setattr(run_command.report, "add_to_stats", lose_a_row)
    assert main(["run", *argv(server, metadata, tmp_path / "out")]) == 4
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "18 rows were read but 10 kept and 7 rejected" in message
    assert "nothing was published" in message and not (tmp_path / "out" / "manifest.json").exists()


def test_a_value_error_inside_the_job_is_the_job_failing_not_a_usage_error(world, tmp_path, capsys, monkeypatch):
    """Exit 2 is for what the user gave (found at launch); a ValueError raised inside a step while the
    job runs (a bug, or input no stage anticipated) is the job failing: exit 1, one line naming it."""
    from pipeline.io import progress

    server, metadata = world

    def broken(step: str, interval: float) -> None:
        raise ValueError("a step broke on purpose")

    monkeypatch.setattr(progress._COUNTS, "add", broken)
    assert main(["run", *argv(server, metadata, tmp_path / "out")]) == 1
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and message.startswith("pass-pipeline: error: the job failed: ValueError: ")
    assert "a step broke on purpose" in message and not (tmp_path / "out" / "manifest.json").exists()


def test_the_summary_names_only_what_was_written(world, tmp_path, capsys):
    server, metadata = world
    assert main(["run", *argv(server, metadata, tmp_path / "out"), f"--output={tmp_path / 'out'}/",
                 "--formats=parquet"]) == 0
    text = capsys.readouterr().out
    assert f"dataset:     {tmp_path / 'out' / 'parquet'}\n" in text
    assert "webdataset" not in text and "tfrecord" not in text and "//" not in text


@pytest.fixture()
def small_disk(tmp_path):
    """A tmpfs of 256 KiB (root only, as in CI): a disk that fills up partway through a run."""
    mount = tmp_path / "disk"
    mount.mkdir()

    def make(*options: str) -> Path:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(["size=256k", *options]), "tmpfs", str(mount)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()[:80]}): needs root")
        return mount

    yield make
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_read_only_output_fails_at_launch_in_one_line(world, small_disk, capsys):
    server, metadata = world
    disk = small_disk("ro")
    assert main(["run", *argv(server, metadata, disk / "out")]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "cannot write to --output" in message and "Read-only" in message
    assert not server.hits


def test_a_disk_that_fills_up_ends_in_one_line_and_leaves_nothing_behind(world, small_disk, capsys):
    server, metadata = world
    disk = small_disk()
    assert main(["run", *argv(server, metadata, disk / "out")]) == 1
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "the job failed" in message and "No space left" in message
    assert [path.name for path in (disk / "out").iterdir()] == []  # no partial dataset, no staging, no lock


@pytest.mark.parametrize("flag", ["--blocklist", "--previous_index", "--ledger", "--review_decisions",
                                  "--decontaminate"])
def test_a_missing_input_file_fails_at_launch_in_one_line(world, tmp_path, capsys, flag):
    server, metadata = world
    assert main(["run", *argv(server, metadata, tmp_path / "out"), f"{flag}={tmp_path / 'missing*.txt'}"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and flag in message and not server.hits


@pytest.mark.parametrize("flag", ["--ledger", "--previous_index"])
@pytest.mark.parametrize("content", [b"", b"PAR1 not parquet", b"photo_id,decision\n7,kept\n"],
                         ids=["empty", "foreign", "csv"])
def test_a_ledger_or_index_that_is_no_parquet_fails_at_launch_in_one_line(world, tmp_path, capsys, flag, content):
    """Read by the job's ReadFromParquet, such a file failed the whole job with ArrowInvalid once it had started."""
    server, metadata = world
    (tmp_path / "ledger-00000-of-00001.parquet").write_bytes(content)
    argv_ = [*argv(server, metadata, tmp_path / "out"), f"{flag}={tmp_path / '*.parquet'}"]
    assert main(["run", *argv_]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and flag in message and "not a readable Parquet file" in message
    assert not server.hits


@pytest.mark.parametrize(("flag", "name"), [("--blocklist", "takedowns.txt"), ("--review_decisions", "decisions.csv"),
                                            ("--decontaminate", "eval.txt"), ("--blocklist", "folder.txt")])
def test_a_list_that_is_a_named_pipe_or_a_folder_fails_at_launch_in_one_line_not_waited_on(world, tmp_path, capsys,
                                                                                           flag, name):
    """A takedown list, a decisions file or a list of evaluation images given as a named pipe (`<(curl …)`, a file
    replaced by one) was opened to be hashed into the run's record: waited on for a writer for good, the run hung
    before its job. Refused in one line, naming the flag and what the path is, as a folder given as a list is."""
    server, metadata = world
    path = tmp_path / name
    path.mkdir() if name == "folder.txt" else os.mkfifo(path)  # nothing ever writes the pipe
    assert main(["run", *argv(server, metadata, tmp_path / "out"), f"{flag}={path}"]) == 2
    message = capsys.readouterr().err.strip()
    kind = "a folder" if name == "folder.txt" else "a named pipe"
    assert message.count("\n") == 0 and f"{flag} {path} is {kind}, not a file" in message, message


@pytest.mark.parametrize("flag", ["--ledger", "--previous_index"])
def test_a_ledger_or_index_that_is_a_named_pipe_fails_at_launch_in_one_line_not_waited_on(world, tmp_path, capsys,
                                                                                           flag):
    """The launch check opened each --ledger and --previous_index file as any file is opened: a named pipe (a
    `<(cmd)` process substitution, a file replaced by one) was waited on for a writer for good, the run hung before
    its job. It is opened without waiting, and refused in one line as no regular file."""
    server, metadata = world
    os.mkfifo(tmp_path / "ledger-00000-of-00001.parquet")  # nothing ever writes it
    assert main(["run", *argv(server, metadata, tmp_path / "out"), f"{flag}={tmp_path / '*.parquet'}"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and flag in message and "no regular file" in message, message
    assert not server.hits


@pytest.mark.parametrize("flag", ["--ledger", "--previous_index"])
def test_a_ledger_or_index_whose_footer_hides_rows_fails_at_launch_in_one_line(world, tmp_path, capsys, flag):
    """Parquet readers read the rows a footer states for a row group and no more: an earlier release's ledger or
    index given by hand, its footer stating 14 of its 15 rows (its column chunks' counts too), was read by the job
    without its last row (a decided photo decided again, an indexed image's near copies kept), with no word. Its row
    groups are checked at launch as verify checks a release's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    server, metadata = world
    path = tmp_path / "ledger-00000-of-00001.parquet"
    pq.write_table(pa.table({"photo_id": [str(2000 + number) for number in range(15)],
                             "decision": ["rejected"] * 15, "stage": ["fetch"] * 15, "reason": ["deleted"] * 15,
                             "release": ["r1"] * 15}), path)
    with_integers(path, {(3,): 14, rows_of(0): 14, **{values_of(0, leaf): 14 for leaf in range(5)}})
    assert main(["run", *argv(server, metadata, tmp_path / "out"), f"{flag}={path}"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and f"{flag} {path}: not a readable Parquet file (RowsMismatch: row group 1 " \
        "states 14 rows, its column 'photo_id' holds 15 values (as its pages' headers say)" in message
    assert not server.hits


@pytest.mark.parametrize("flag", ["--ledger", "--previous_index"])
def test_a_ledger_or_index_glob_reaching_a_linked_folder_or_a_link_leading_nowhere_is_refused_at_launch(
        world, tmp_path, capsys, flag):
    """The job's listing of a glob walks folders without following links: `--previous_index='idx/**'` over
    `idx/2026-10`, a link to where an older release's index is kept, compared no new image with that release's images
    (their near copies kept), and a ledger's rows behind such a link, or behind a link to a disk not mounted, decided
    their photos again, all without a word. Refused at launch in one line naming the link, as --input's glob is; a link
    back into the folders the glob reads (`idx/latest -> 2026-11`) is read by its own folder's name and taken."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.commands.run import check_inputs_exist, pipeline_options
    from pipeline.options import PassOptions

    server, metadata = world
    index, elsewhere = tmp_path / "idx", tmp_path / "disk2" / "2026-10"
    for folder, release in ((index / "2026-11", "r2"), (elsewhere, "r1")):
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"photo_id": ["2001"], "decision": ["rejected"], "stage": ["fetch"],
                                 "reason": ["deleted"], "release": [release]}), folder / "part-00000.parquet")
    (index / "latest").symlink_to("2026-11", target_is_directory=True)
    taken = pipeline_options(argv(server, metadata, tmp_path / "out", f"{flag}={index / '**'}"))
    check_inputs_exist(taken.view_as(PassOptions))
    (index / "2026-10").symlink_to(elsewhere, target_is_directory=True)
    assert main(["run", *argv(server, metadata, tmp_path / "out"), f"{flag}={index / '**'}"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and f"error: {flag} " in message, message
    assert "idx/2026-10 is a link to a folder, whose files the listing leaves out" in message, message
    (index / "2026-11" / "part-00001.parquet").symlink_to(tmp_path / "unmounted" / "part-00001.parquet")
    assert main(["run", *argv(server, metadata, tmp_path / "out"), f"{flag}={index / '2026-11' / '*.parquet'}"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "2026-11/part-00001.parquet is a link leading nowhere" in message, message
    assert not server.hits


def test_a_ledger_stating_a_footer_over_its_bound_fails_at_launch_in_one_line(world, tmp_path, capsys, monkeypatch):
    """pyarrow parses a footer at ~15 times its size: the launch check that opens each --ledger and --previous_index
    file took that much memory for a file stating a footer of gigabytes. Refused from the length it states."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.io import parquet_footer

    server, metadata = world
    path = tmp_path / "ledger-00000-of-00001.parquet"
    pq.write_table(pa.table({"photo_id": ["7"]}), path)
    monkeypatch.setattr(parquet_footer, "MAX_FOOTER_BYTES", pq.ParquetFile(path).metadata.serialized_size - 1)
    assert main(["run", *argv(server, metadata, tmp_path / "out"), f"--ledger={path}"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and "--ledger" in message and "its Parquet footer is" in message, message
    assert not server.hits


def test_review_apply_of_a_missing_file_and_credentials_with_a_wrong_field_are_one_line(tmp_path, capsys):
    assert main(["review", "apply", str(tmp_path / "missing.csv"), "--store", str(tmp_path / "store.csv")]) == 2
    assert "no decisions file" in capsys.readouterr().err
    (tmp_path / "decisions.csv").write_text("photo_id,decision,note\n1,keep,\n")
    assert main(["review", "apply", str(tmp_path / "decisions.csv"), "--store", str(tmp_path)]) == 2  # was exit 1
    assert "is a folder, not a CSV file" in capsys.readouterr().err
    credentials = tmp_path / "keys.json"
    credentials.write_text(json.dumps({"kee": "key-never-shown-123", "secret": "secret-never-shown-456"}))
    assert main(["run", "--source=flickr", f"--flickr_credentials={credentials}", "--min_upload_date=2020-01-01",
                 "--max_upload_date=2020-01-02", f"--output={tmp_path / 'out'}", *FAST]) == 2
    message = capsys.readouterr().err.strip()
    assert 'needs a "key" and a "secret" field' in message and "never-shown" not in message


def test_an_input_file_whose_name_is_no_utf8_text_fails_at_launch(tmp_path, capsys):
    """A name the filesystem decodes with surrogates (Latin-1 bytes on a UTF-8 system) went into every row's
    source_ref, and the job's coder failed on the first one (exit 1, after launch on Dataflow)."""
    folder = tmp_path / "in"
    folder.mkdir()
    os.close(os.open(os.path.join(os.fsencode(folder), b"photos_caf\xe9.tsv"), os.O_CREAT | os.O_WRONLY))
    assert main(["run", f"--input={folder}/*.tsv", f"--output={tmp_path / 'out'}", *FAST]) == 2
    err = capsys.readouterr().err
    assert "the file name is no UTF-8 text" in err and "photos_caf\\udce9.tsv" in err


def test_an_input_file_named_in_utf8_read_by_a_python_without_utf8_names_its_locale_not_the_name(tmp_path):
    """Under a locale without UTF-8 (PYTHONUTF8=0, no C.UTF-8 coercion) Python reads file names as ASCII, so a UTF-8
    name comes with surrogates: the same file that runs under C.UTF-8 was refused as "no UTF-8 text; rename the
    file", though it is UTF-8 and renaming was no answer; the line says what to run it with."""
    folder = tmp_path / "in"
    folder.mkdir()
    os.close(os.open(os.path.join(os.fsencode(folder), b"photos_caf\xc3\xa9.tsv"), os.O_CREAT | os.O_WRONLY))
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    done = subprocess.run([sys.executable, "-m", "pipeline", "run", f"--input={folder}/*.tsv",
                           f"--output={tmp_path / 'out'}", *FAST], env=env, capture_output=True, text=True,
                          errors="replace", timeout=120)
    assert done.returncode == 2, done.stderr
    assert "the file name is UTF-8, which this Python reads as ascii" in done.stderr
    assert "PYTHONUTF8=1 or LC_ALL=C.UTF-8" in done.stderr and "rename" not in done.stderr


def test_the_summary_says_what_a_run_could_not_use(demo_release):
    """A previous ledger's rows no run writes and evaluation images no hash could be taken of were only counted (or
    logged): the summary names them, and says nothing of them when there are none."""
    from pipeline.commands.run import summary

    stats = json.loads((demo_release / "stats.json").read_text())
    quiet = summary(str(demo_release), stats)
    assert "previous ledger" not in quiet and "decontaminate" not in quiet and "review:" not in quiet  # none held
    said = summary(str(demo_release), {**stats, "ledger_rows_ignored": 3, "eval_images_unreadable": 1})
    assert "previous ledger: 3 rows no run writes were ignored" in said
    assert "decontaminate: 1 evaluation images could not be read" in said


def test_the_summary_shows_a_datasets_reasons_and_review_page_and_the_typed_folder_each_in_one_printable_line(
        tmp_path):
    """The summary prints stats.json's rejection reasons and counts and the manifest's review page, read from a dataset
    on disk (this same command's, found done; a refresh's release, its publish finished; a resealed one), and the
    folder as typed: a reason holding a line break and `OK`, ESC [2J, an OSC 52 or a right-to-left override, a page so
    named, was printed as it was, the escapes sent to the terminal and each line break a forged line of its own. Each
    is shown with its unprintable characters escaped as Python writes them in a string, on its own line."""
    from pipeline.commands.run import summary

    output = tmp_path / "o\x1b]52;c;cm0gLXJmIH4K\x07\u202e\nkept 9 of 9 input rows"
    output.mkdir()
    (output / "manifest.json").write_text(json.dumps({"files": [
        {"path": "parquet/pass-00000-of-00001.parquet"},
        {"path": "review/s\x1b[2J\nOK.html", "format": "review_sheet", "held": 2, "records": 2}]}))
    stats = {"kept": "1\nOK", "input_rows": 2, "accounted": True, "ledger_rows_ignored": "3\x1b[2J",
             "rejections_by_stage": {"license\u202e": {"\nOK": 1, "\x1b[2J": "2\nOK"}}}
    text = summary(str(output), stats)
    lines = text.splitlines()
    assert all(line.isprintable() for line in lines), text
    assert not any(line.startswith(("OK", "kept 9")) for line in lines), text
    shown = f"{tmp_path}/o\\x1b]52;c;cm0gLXJmIH4K\\x07\\u202e\\nkept 9 of 9 input rows"
    assert lines[0] == "kept 1\\nOK of 2 input rows (all accounted for)", text
    assert lines[1] == "  rejected: license\\u202e/\\nOK: 1, license\\u202e/\\x1b[2J: 2\\nOK", text
    assert lines[2].startswith("  previous ledger: 3\\x1b[2J rows"), text
    assert f"  dataset:     {shown}/parquet" in lines, text
    assert f"  review:      {shown}/review/s\\x1b[2J\\nOK.html: 2 photos held for review; " in text, text
    assert f"  stats:       {shown}/stats.json   manifest: {shown}/manifest.json" in lines, text

@pytest.mark.parametrize("files", [
    "[1]", '{"files": {"path": "stats.json"}}', '{"files": [{"path": 5}]}',
    '{"files": [{"path": "review/index.html", "format": "review_sheet", "held": "2\\nOK", "records": 2}]}'])
def test_a_manifest_whose_files_the_summary_cannot_read_is_one_line_naming_it(tmp_path, files):
    """The summary reads the manifest's files (each path, the review page's counts) from a dataset on disk, which
    nothing checked where a refresh's rerun finished its publish: one of another shape ended in "the job failed" (a
    TypeError), exit 1, or in int()'s own message naming no file. It is a refusal naming the file (exit 2), as for
    stats.json."""
    from pipeline.commands.run import UsageError, summary

    (tmp_path / "manifest.json").write_text(files)
    stats = {"kept": 1, "input_rows": 2, "accounted": True, "rejections_by_stage": {"fetch": {"http_404": 1}}}
    with pytest.raises(UsageError) as refused:
        summary(str(tmp_path), stats)
    assert str(refused.value).startswith(f"{tmp_path}/manifest.json: not the files a run lists") or str(
        refused.value).startswith(f"{tmp_path}/manifest.json: its review page's held and records are not counts")


def _removed_after_the_launch_check(monkeypatch, path: Path) -> None:
    """`path` is deleted once the launch check has seen it, before the job reads it (as another process might)."""
    checked = run_command.preflight

    def check_then_remove(*args, **kwargs):
        checked(*args, **kwargs)
        path.unlink()

    monkeypatch.setattr(run_command, "preflight", check_then_remove)


def test_an_input_file_gone_after_the_launch_check_is_a_rejection_naming_it(world, demo_release, tmp_path, capsys,
                                                                            monkeypatch):
    """A file named without a wildcard that vanished between the launch check and the reading gave no row and no
    word: beside a carried release the run was published without its rows (every input row ends in the dataset or
    the rejections). It is now one `read/unreadable_file` rejection naming the file."""
    server, metadata = world
    given = tmp_path / "later.tsv"
    shutil.copy(metadata, given)
    _removed_after_the_launch_check(monkeypatch, given)
    output = tmp_path / "out"
    assert main(["run", *argv(server, given, output), f"--carry_over={demo_release}"]) == 0
    assert "read/unreadable_file: 1" in capsys.readouterr().out  # the summary says it
    stats = json.loads((output / "stats.json").read_text())
    assert stats["accounted"] and stats["rejections_by_stage"]["read"] == {"unreadable_file": 1}
    import pyarrow.parquet as pq

    rows = [row for row in pq.read_table(output / "rejections").to_pylist() if row["stage"] == "read"]
    assert [(row["reason"], row["source_ref"]) for row in rows] == [("unreadable_file", "later.tsv:1")]
    assert "FileNotFoundError" in rows[0]["detail"] and str(given) in rows[0]["detail"]


def test_a_lone_input_file_gone_after_the_launch_check_is_named_in_the_refusal(world, tmp_path, capsys, monkeypatch):
    server, metadata = world
    _removed_after_the_launch_check(monkeypatch, metadata)
    assert main(["run", *argv(server, metadata, tmp_path / "out")]) == 4
    message = capsys.readouterr().err
    assert "kept 0 of 1 rows (read/unreadable_file: 1)" in message and not (tmp_path / "out" / "manifest.json").exists()


def test_a_run_whose_hosts_are_not_allowed_names_allowed_hosts(world, tmp_path, capsys):
    """A newcomer's own metadata on another host than Flickr's, without --allowed_hosts: every download refused
    (host_not_allowed), and the refusal named only --allow_empty, which would publish an empty dataset."""
    server, metadata = world
    assert main(["run", f"--input={metadata}", f"--output={tmp_path / 'out'}", *FAST]) == 4
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "fetch/host_not_allowed" in message and "the images' hosts are not in --allowed_hosts (now " in message
    assert "name them with --allowed_hosts=HOST" in message and not server.hits


def test_a_run_allowing_its_host_without_the_port_is_told_the_port_goes_with_it(world, tmp_path, capsys):
    """`--allowed_hosts=127.0.0.1` for images on http://127.0.0.1:PORT allows port 80 only: the refusal told the
    newcomer, who had named the host, to name the host."""
    server, metadata = world
    name = server.host.rsplit(":", 1)[0]
    assert main(["run", f"--input={metadata}", f"--output={tmp_path / 'out'}", f"--allowed_hosts={name}", *FAST]) == 4
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"not in --allowed_hosts (now {name}): name them with --allowed_hosts=HOST,… (HOST:PORT for a port other " \
           "than its scheme's own: 80 for http, 443 for https)" in message and not server.hits


def test_an_input_glob_over_the_output_is_named_before_its_files_are_sniffed(world, demo_release, tmp_path, capsys):
    """--input='data/**' with --output=data/out holding an earlier dataset: the launch sniffed data/out/ATTRIBUTION.csv
    first and said it "does not look like YFCC100M metadata", not that the pattern takes in the output's files."""
    server, metadata = world
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(metadata, data / "photos.tsv")
    shutil.copytree(demo_release, data / "out")
    assert main(["run", *argv(server, data / "**", data / "out", "--overwrite")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "YFCC100M" not in err, err
    assert f"--input '{data}/**' matches {data}/out/" in err and "narrow the pattern or give an --output outside" in err
    assert main(["verify", str(data / "out")]) == 0 and not server.hits


def test_ctrl_c_is_one_line_and_exit_130_not_a_traceback(world, tmp_path):
    """Ctrl-C printed the KeyboardInterrupt's traceback through Beam's runner and the fetcher's threads (dozens of
    lines); the run's cleanup ran all the same. One line now, exit 130, the staging folder and lock gone, at once:
    a download under way held the stop in the fetcher's teardown and again at exit."""
    import signal

    server, metadata = world
    output = tmp_path / "out"
    status, err = stopped_in_a_download(server, ["-m", "pipeline", "run", *argv(server, metadata, output)],
                                        signal.SIGINT)
    assert status == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("pass-pipeline: stopped (Ctrl-C)")
    assert not (output / LOCK).exists() and not (output / STAGING).exists()


def test_an_input_glob_over_a_first_output_is_refused_before_it_reads_the_runs_own_files(world, tmp_path, capsys):
    """--input='data/**' with --output=data/out not there yet: the glob is listed when the job runs, and it read the
    run's lock and its staged copy of the takedown list as input rows (20 rows of an 18-line file, two rejected)."""
    server, metadata = world
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(metadata, data / "photos.tsv")
    takedowns = tmp_path / "takedowns.txt"
    takedowns.write_text("photo_id 999999\n")
    assert main(["run", *argv(server, data / "**", data / "out", f"--blocklist={takedowns}")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"--input '{data}/**' takes in the files a run into --output {data}/out writes" in err
    assert "narrow the pattern or give an --output outside" in err
    assert not (data / "out").exists() and not server.hits
    # a glob that cannot take them in runs
    assert main(["run", *argv(server, data / "*.tsv", data / "out", f"--blocklist={takedowns}")]) == 0
    assert json.loads((data / "out" / "stats.json").read_text())["input_rows"] == len(metadata.read_text().splitlines())


def test_a_staging_folder_the_disk_will_not_let_go_is_one_line_not_the_jobs_failure(world, tmp_path, capsys,
                                                                                    monkeypatch):
    """What killed runs left under _staging that the disk refused to delete (a folder of another user, an immutable
    file) ended the next run as "the job failed: [Errno 1] Operation not permitted" (exit 1) before it ran; and a
    refusal as a run removed its own staging folder after publishing reported the published run as failed."""
    server, metadata = world
    output = tmp_path / "out"
    real = run_command.remove_staging
    refusing = {"at": "start"}

    def remove_staging(folder: str, keep_planned: bool = False) -> None:
        if (refusing["at"] == "start") != keep_planned:
            raise PermissionError(1, "Operation not permitted", f"{folder}/_staging/x/image.jpg")
        real(folder, keep_planned)

    monkeypatch.setattr(run_command, "remove_staging", remove_staging)
    assert main(["run", *argv(server, metadata, output)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"pass-pipeline: error: cannot remove what an earlier run left in {output}/_staging ([Errno 1] "
                   f"Operation not permitted: '{output}/_staging/x/image.jpg'); remove it, then run again"), err
    assert not server.hits
    refusing["at"] = "end"
    assert main(["run", *argv(server, metadata, output)]) == 0
    err = capsys.readouterr().err
    assert f"pass-pipeline: could not remove {output}/_staging ([Errno 1] Operation not permitted" in err, err
    assert main(["verify", str(output)]) == 0


def test_a_cut_publish_the_disk_will_not_let_finish_is_one_line_not_the_jobs_failure(world, tmp_path, capsys):
    """A run killed while publishing, after its files were moved in and before its staging folder was removed, leaves
    that folder and its plan; the next run finishes the publish first. Where the disk refused that removal (a staged
    image made immutable, a folder of another user) it ended as "the job failed: [Errno 1] Operation not permitted"
    (exit 1), as if the job had run: the removal of _staging just after it was told in one line, not this. One line,
    exit 2, and the run after the disk lets go finishes it."""
    import subprocess

    server, metadata = world
    output = tmp_path / "out"
    assert main(["run", *argv(server, metadata, output)]) == 0
    published = sorted(manifest_files(output), key=lambda name: (name == "manifest.json", name))
    staging = output / STAGING / "20261204T000000-0000abcd"
    (staging / STAGED_IMAGES).mkdir(parents=True)
    (staging / PUBLISHING).write_text(json.dumps({"files": published}))  # every file moved in, the manifest last
    stuck = staging / STAGED_IMAGES / "stuck.jpg"
    stuck.write_bytes(b"a staged image")
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode != 0:
            pytest.skip("no way to make a file undeletable here (root without chattr +i)")
        undo = ["chattr", "-i", str(stuck)]
    else:
        (staging / STAGED_IMAGES).chmod(0o555)
        undo = ["chmod", "755", str(staging / STAGED_IMAGES)]
    try:
        capsys.readouterr()
        assert main(["run", *argv(server, metadata, output), "--overwrite"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "job failed" not in err, err
        assert err.startswith(f"pass-pipeline: error: cannot finish publishing the run stopped while publishing into "
                              f"{output} (") and "stuck.jpg" in err, err
        assert (staging / PUBLISHING).exists() and main(["verify", str(output)]) == 0  # left as it was: whole
    finally:
        subprocess.run(undo, check=True)
    assert main(["run", *argv(server, metadata, output), "--overwrite"]) == 0
    assert not (output / STAGING).exists()
    assert main(["verify", str(output)]) == 0


# Runner names in the spellings Beam reads (`create_runner`: any case, "Runner" optional, or a dotted path).
RUNNER_SPELLINGS = ("direct", "Direct", "DIRECT", "directrunner", "DirectRunner",
                    "BundleBasedDirectRunner", "bundlebaseddirect", "SwitchingDirectRunner", "switchingdirect",
                    "FnApiRunner", "fnapi", "PrismRunner", "prism", "TestDirectRunner",
                    "apache_beam.runners.direct.direct_runner.DirectRunner", "apache_beam.runners.DirectRunner",
                    "apache_beam.runners.portability.fn_api_runner.FnApiRunner", "dataflow", "Dataflow",
                    "DataflowRunner", "apache_beam.runners.dataflow.dataflow_runner.DataflowRunner",
                    "TestDataflowRunner", "PortableRunner", "flink", "spark")


def test_a_runner_is_taken_for_the_one_beam_makes_of_its_name():
    """The launch's checks read the runner's name as Beam does: --runner=direct (or directrunner, prism, a dotted
    path) runs here, and was taken for a remote runner by an exact comparison of names."""
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.runner import create_runner

    for name in RUNNER_SPELLINGS:
        made = type(create_runner(name)).__name__  # DirectRunner's is a SwitchingDirectRunner
        assert run_command.runs_here(name) == (made in StandardOptions.LOCAL_RUNNERS), name
        assert run_command.submits_remotely(name) == (made == "DataflowRunner"), name
    assert not run_command.runs_here("nosuchrunner") and not run_command.submits_remotely("nosuchrunner")


def test_a_users_own_runner_is_read_by_its_kinship_with_beams_not_its_name():
    """A dotted --runner names a class of the user's own: read by its name's last part, `mypkg.DirectRunner` was taken
    for Beam's local runner (the launch's GPU check applied) and `mypkg.DataflowRunner` for a remote submission, while
    a subclass of Beam's DirectRunner named otherwise was taken for no local runner. The class is read for what it is
    a kind of."""
    assert not run_command.runs_here("tests.own_runners.DirectRunner")
    assert not run_command.submits_remotely("tests.own_runners.DataflowRunner")
    assert run_command.runs_here("tests.own_runners.LoggedDirectRunner")
    assert not run_command.submits_remotely("tests.own_runners.LoggedDirectRunner")
    assert run_command.submits_remotely("tests.own_runners.LabelledDataflowRunner")
    assert not run_command.runs_here("tests.own_runners.LabelledDataflowRunner")
    assert not run_command.runs_here("tests.own_runners.NoSuchRunner")  # Beam says so when it makes the job
    assert not run_command.runs_here("no_such_package.DirectRunner")


@pytest.mark.parametrize("runner", ["direct", "DIRECTRUNNER", "prism", "FnApiRunner", "dataflow", "TestDataflowRunner",
                                    "apache_beam.runners.direct.direct_runner.DirectRunner"])
def test_a_gpu_required_is_checked_at_launch_whenever_the_job_runs_here(tmp_path, monkeypatch, runner):
    """--require_gpu's provider check is made at launch for every spelling of a runner that runs the job here
    (--runner=direct skipped it: the job failed only in its first bundle); on Dataflow each worker's model
    load makes it, the launcher having no GPU."""
    from apache_beam.options.pipeline_options import StandardOptions
    from apache_beam.runners.runner import create_runner

    from pipeline.commands.run import pipeline_options, preflight
    from pipeline.detectors import handler
    from pipeline.options import PassOptions

    checked: list[str] = []
    monkeypatch.setattr(handler, "create_session", lambda spec, *args, **kwargs: checked.append(spec.name))
    (tmp_path / "in.tsv").write_text("")
    opts = pipeline_options([f"--input={tmp_path / 'in.tsv'}", f"--output={tmp_path / 'out'}", f"--runner={runner}",
                             "--require_gpu", "--skip_canary"]).view_as(PassOptions)
    preflight(opts, runner)
    here = type(create_runner(runner)).__name__ in StandardOptions.LOCAL_RUNNERS
    assert bool(checked) == here, (runner, checked)


def _launch_only_writes_a_spec(monkeypatch):
    """`Pipeline.run` as Beam's Dataflow runner ends it with --template_location (a Flex Template's launch): the job's
    spec written, no job made (`DataflowApplicationClient.create_job` returns none), the result Beam returns then.
    Records each submission. No network: the buckets' check passes as it would on Google Cloud."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions
    from apache_beam.runners.dataflow.dataflow_metrics import DataflowMetrics
    from apache_beam.runners.dataflow.dataflow_runner import DataflowPipelineResult

    submitted: list[str] = []

    def write_the_spec(pipeline, *args, **kwargs):
        submitted.append(pipeline.options.view_as(GoogleCloudOptions).template_location)
        result = DataflowPipelineResult(None, pipeline.runner, pipeline.options)
        result.metric_results = DataflowMetrics(None, result, None)
        return result

    monkeypatch.setattr(beam_pipeline.Pipeline, "run", write_the_spec)
    # Beam's check of the buckets (each asked of Cloud Storage, none here) passes, as on Google Cloud
    monkeypatch.setattr(GoogleCloudOptions, "validate", lambda self, validator: [])
    return submitted


DATAFLOW = ["--runner=DataflowRunner", "--project=p", "--region=us-central1", "--temp_location=gs://b/temp",
            "--template_location=gs://b/staging/template_launches/job/job_object"]


@pytest.mark.parametrize("runner", ["DataflowRunner", "dataflow"])
def test_a_launch_that_only_writes_the_jobs_spec_is_refused_in_one_line(tmp_path, capsys, monkeypatch, runner):
    """A Flex Template's launch passes --template_location: Beam writes the job's spec, makes no job, and the job is
    made once the process has ended; the wait for it returned at once and the run ended on "Can not query metrics. Job
    id is unknown." after its staging (nothing it could publish: the job runs after its launcher)."""
    submitted = _launch_only_writes_a_spec(monkeypatch)
    (tmp_path / "in.tsv").write_text("")
    argv = [f"--input={tmp_path / 'in.tsv'}", f"--output={tmp_path / 'out'}", *FAST, *DATAFLOW, f"--runner={runner}"]
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert "--template_location=gs://b/staging/template_launches/job/job_object: on Dataflow" in err, err
    assert "the job is made once this process has ended" in err and len(err.strip().splitlines()) == 1, err
    assert not submitted and not (tmp_path / "out").exists()


def test_a_refresh_that_only_writes_the_jobs_spec_is_refused_before_it_reads_its_previous_release(tmp_path, capsys,
                                                                                                  monkeypatch):
    submitted = _launch_only_writes_a_spec(monkeypatch)
    (tmp_path / "in.tsv").write_text("")
    argv = [f"--input={tmp_path / 'in.tsv'}", f"--output={tmp_path / 'root'}", "--previous=latest", *FAST, *DATAFLOW]
    assert main(["refresh", *argv]) == 2
    err = capsys.readouterr().err
    assert "the job is made once this process has ended" in err and "holds no published release" not in err, err
    assert not submitted and not (tmp_path / "root").exists()


def test_a_template_location_on_a_local_runner_is_left_to_beam(tmp_path):
    """Only Beam's Dataflow runner reads it; a local runner runs the job here as always."""
    from pipeline.commands.run import pipeline_options

    options = pipeline_options([f"--input={tmp_path / 'in.tsv'}", f"--output={tmp_path / 'out'}", *FAST,
                                "--template_location=gs://b/staging/job_object"])
    assert options.get_all_options()["template_location"] == "gs://b/staging/job_object"


@pytest.mark.parametrize("change", ["ledger_replaced", "ledger_in_place", "ledger_added", "index_replaced"])
def test_a_ledger_or_index_changed_between_the_launch_check_and_the_job_is_refused_not_read(
        world, demo_release, tmp_path, monkeypatch, capsys, change):
    """--ledger and --previous_index files given by hand are checked at launch (footer, row groups), then the job
    opened them again by name: one replaced or written in place (its modification time set back) in between, or one
    added under the glob, was read unchecked, and its rows (a decision, an index entry) entered the dataset. The job
    reads the version the launch check read or fails, one line naming the file, and nothing is published."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    server, metadata = world
    kind = change.split("_")[0]
    folder = tmp_path / kind
    shutil.copytree(demo_release / ("ledger" if kind == "ledger" else "near_dup_index"), folder)
    [path] = sorted(folder.glob("*.parquet"))
    table = pq.read_table(path)
    forged = {name: None for name in table.schema.names} | {"photo_id": "999999"}
    if kind == "ledger":
        forged |= {"decision": "rejected", "stage": "fetch", "reason": "not_found", "release": "r0"}
    else:
        forged |= {"phash": "0123456789abcdef", "dhash": "0123456789abcdef"}
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([*table.to_pylist(), forged], schema=table.schema), out)
    built = run_command.build
    changed: list[Path] = []

    def checked_then_changed(*args, **kwargs):
        before = path.stat()
        if change.endswith("added"):
            changed.append(path.with_name("extra.parquet"))
            changed[0].write_bytes(out.getvalue())
        elif change.endswith("in_place"):
            with open(path, "r+b") as handle:
                handle.truncate(0)
                handle.write(out.getvalue())
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            changed.append(path)
        else:
            path.with_name("new").write_bytes(out.getvalue())
            os.replace(path.with_name("new"), path)
            changed.append(path)
        return built(*args, **kwargs)

    monkeypatch.setattr(run_command, "build", checked_then_changed)
    output = tmp_path / "out"
    flag = "--ledger" if kind == "ledger" else "--previous_index"
    code = main(["run", *argv(server, metadata, output, f"{flag}={folder}/*.parquet", "--allow_empty")])
    err = capsys.readouterr().err
    assert changed, err
    if (output / "manifest.json").exists():  # what got through (the code before this fix)
        table_name = "ledger" if kind == "ledger" else "near_dup_index"
        assert "999999" not in pq.read_table(output / table_name).column("photo_id").to_pylist()
    assert code == 1 and not (output / "manifest.json").exists(), err
    said = "added since the launch check checked its folder" if change.endswith("added") else \
        "changed since the launch check checked it"
    assert str(changed[0]) in err and said in err and len(err.strip().splitlines()) == 1, err


def test_a_cache_inside_the_output_or_another_dataset_is_refused_before_anything_is_written(world, tmp_path,
                                                                                           capsys):
    """--output=out --cache=out/cache published a dataset holding the cache's files, which its manifest does not list:
    verify refused it, and so did the same command run again (exit 2, "does not match its manifest"), the retry a
    kill asks for; under out/_staging every run removed the cache before its job, so a killed run resumed from
    nothing; inside another dataset the run wrote files that dataset's manifest does not list."""
    server, metadata = world
    output, other = tmp_path / "out", tmp_path / "other"
    assert main(["run", *argv(server, metadata, other)]) == 0
    hits = len(server.hits)
    for cache in (output, output / "cache", output / "_staging" / "cache", tmp_path / "." / "out" / "parquet",
                  other / "cache"):
        capsys.readouterr()
        assert main(["run", *argv(server, metadata, output, f"--cache={cache}")]) == 2, cache
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"--cache {cache}" in err, err
        assert ("lies inside the dataset" if cache == other / "cache" else "lies inside --output") in err, err
        assert not output.exists() and not (other / "cache").exists() and len(server.hits) == hits, cache
    assert main(["verify", str(other)]) == 0
    # a cache beside the output is where a resumed run finds it
    assert main(["run", *argv(server, metadata, output, f"--cache={tmp_path / 'cache'}")]) == 0
    assert main(["verify", str(output)]) == 0 and list((tmp_path / "cache").glob("images-*.parquet"))


def test_an_input_glob_reaching_a_linked_folder_or_a_link_leading_nowhere_is_refused_at_launch(tmp_path):
    """The job's listing of a local glob walks folders without following links: `dumps/**` over `dumps/2014`, a link
    to a folder on another disk, read none of its files, and a dump that is a link to a disk not mounted was left out
    too, the run published without their rows and without a word. Refused at launch, naming the link; a link the
    glob does not reach is no matter."""
    from pipeline.commands.run import check_input
    from pipeline.fixtures.yfcc_rows import yfcc_line
    from pipeline.usage import UsageError

    dumps, elsewhere = tmp_path / "dumps", tmp_path / "disk2"
    dumps.mkdir()
    elsewhere.mkdir()
    (dumps / "a.tsv").write_text(yfcc_line(1, "1", "http://h/1_ab.jpg") + "\n")
    (elsewhere / "b.tsv").write_text(yfcc_line(2, "2", "http://h/2_ab.jpg") + "\n")
    (dumps / "2014").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UsageError, match=r"--input .*dumps/2014 is a link to a folder"):
        check_input(str(dumps / "**"))
    check_input(str(dumps / "*.tsv"))  # reaches nothing below the link
    (dumps / "c.tsv").symlink_to(tmp_path / "unmounted" / "c.tsv")
    with pytest.raises(UsageError, match=r"--input .*dumps/c\.tsv is a link leading nowhere"):
        check_input(str(dumps / "*.tsv"))


def test_an_input_file_compressed_another_way_is_refused_at_launch_wherever_it_lies_in_the_glob(tmp_path):
    """A dump compressed as .xz or .zst is read as it is stored, its compressed bytes as lines: among the first 20
    files the launch check said it did not look like a dump (naming --input_format, not the compression), and past
    them each of its lines was a rejection in the job. Refused at launch by its name, naming the ways an input is
    read, wherever it lies."""
    from pipeline.commands.run import SNIFFED_FILES, check_input
    from pipeline.fixtures.yfcc_rows import yfcc_line
    from pipeline.usage import UsageError

    for n in range(SNIFFED_FILES):
        (tmp_path / f"part-{n:03}.tsv").write_text(yfcc_line(1, str(n + 1), f"http://h/{n + 1}_ab.jpg") + "\n")
    (tmp_path / "part-999.tsv.xz").write_bytes(b"\xfd7zXZ\x00\x00")
    with pytest.raises(UsageError, match=r"--input .*part-999\.tsv\.xz: compressed as \.xz, .*plain, \.gz or \.bz2"):
        check_input(str(tmp_path / "part-*"))
    (tmp_path / "part-999.tsv.xz").unlink()
    check_input(str(tmp_path / "part-*"))


def test_an_input_glob_over_a_link_back_into_the_folders_it_reads_is_taken(tmp_path):
    """A dumps folder keeps a link to its newest month (`dumps/latest -> 2026-11`, the usual way to name it): the files
    below the link are read by the glob already, by their own folder's name, and the run took them before the refusal
    of linked folders; refused, every such run stopped at launch. Only a link whose files the listing reads by no
    other name leaves rows out."""
    from pipeline.commands.run import check_input
    from pipeline.fixtures.yfcc_rows import yfcc_line
    from pipeline.io.files import matching
    from pipeline.usage import UsageError

    dumps = tmp_path / "dumps"
    (dumps / "2026-11").mkdir(parents=True)
    (dumps / "2026-11" / "a.tsv").write_text(yfcc_line(1, "1", "http://h/1_ab.jpg") + "\n")
    (dumps / "latest").symlink_to("2026-11", target_is_directory=True)
    for pattern in (dumps / "**", dumps / "*" / "*.tsv"):
        check_input(str(pattern))
        assert matching(str(pattern)) == [str(dumps / "2026-11" / "a.tsv")]  # read once, by its own folder's name
    (tmp_path / "disk2").mkdir()
    (tmp_path / "disk2" / "b.tsv").write_text(yfcc_line(2, "2", "http://h/2_ab.jpg") + "\n")
    (dumps / "2014").symlink_to(tmp_path / "disk2", target_is_directory=True)  # leads out of what the glob reads
    with pytest.raises(UsageError, match=r"--input .*dumps/2014 is a link to a folder"):
        check_input(str(dumps / "**"))


def test_only_beams_own_fn_api_runner_is_given_the_cloud_options():
    """`local_runner` makes Beam's FnApiRunner itself (to hand its workers the run's Google Cloud options) only where
    Beam would make that class: a dotted path of another module ending in FnApiRunner (a user's own runner) is Beam's
    to import, never swapped for Beam's."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner

    for name in ("FnApiRunner", "fnapirunner", "fnapi", "apache_beam.runners.portability.fn_api_runner.FnApiRunner",
                 "apache_beam.runners.portability.fn_api_runner.fn_runner.FnApiRunner"):
        assert isinstance(run_command.local_runner(PipelineOptions([f"--runner={name}"])), FnApiRunner), name
    for name in ("mypkg.FnApiRunner", "mypkg.runners.fn_api_runner.FnApiRunner", "DirectRunner", "PrismRunner",
                 "DataflowRunner"):
        assert run_command.local_runner(PipelineOptions([f"--runner={name}"])) is None, name


def test_a_run_that_loses_a_row_is_refused_exit_4_and_publishes_nothing(world, tmp_path, capsys, monkeypatch):
    """README's exit status 4: a run whose rows are not all accounted for (kept + rejected ≠ read: a bug) is refused
    after the job and publishes nothing. A license stage that drops the demo world's video without a rejection is
    such a bug; the earlier dataset in the output stays as it was."""
    server, metadata = world
    output = tmp_path / "out"
    assert main(["run", *argv(server, metadata, output)]) == 0
    before = {name: (output / name).read_bytes() for name in sorted(dataset_files(output))}
    capsys.readouterr()

    def losing_the_video(self: object, photo: Photo) -> Iterator[object]:
        rejection = license_stage.license_rejection(photo)
        if rejection is None:
            yield photo
        elif rejection.reason != "video":  # the video vanishes: neither kept nor rejected
            yield license_stage.reject(rejection)

    monkeypatch.setattr(license_stage._KeepCcBy, "process", losing_the_video)
    assert main(["run", "--overwrite", *argv(server, metadata, output)]) == 4
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("pass-pipeline: refused: 18 rows were read but ")
    assert "not every row is accounted for (a bug); nothing was published" in message
    assert {name: (output / name).read_bytes() for name in sorted(dataset_files(output))} == before
