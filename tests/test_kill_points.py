"""Killed runs and refreshes lose and corrupt nothing: `pass-pipeline run` and `refresh` run as real processes on the
demo world and are killed (SIGKILL: the OOM killer, a container's stop past its grace) or stopped (SIGTERM) at chosen
filesystem steps (each rename, link, unlink and rmdir the process makes: the lock taken, a staged image or shard renamed
into place, the publish's plan, each file it moves in, the manifest last, the staging folder removed, the lock
released), or once a file appears; after each, what it left is checked against an uninterrupted run of the command:

- `verify` refuses the folder, or passes it and it is the clean run's, byte for byte: never "OK" with rows missing; no
  manifest names a file that is not there, no file of the run lies beside a manifest that does not list it, and no
  temporary lies outside the staging folder;
- the same command run again (with or without `--cache`) takes the dead run's lock over (its pid taken by a later
  process too) and ends with what the clean run wrote, byte for byte, but for the fields README names as measuring or
  dating the run, exit 0 (where the dead run had begun to publish, or published, saying so in one line);
- a refresh's previous release is never touched and still verifies.

The tests here stop it at a few representative steps; `sweep_run` and `sweep_refresh` take any list of steps (by
number or by a pattern of their labels; `steps_of` lists them) and say what each stop left: every step of a run was
swept so (69 on this world: SIGKILL without and with --cache, SIGTERM), and every step of a refresh (131: SIGKILL;
SIGTERM from its datasheet on)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.fixtures.demo_world import build_demo_world, demo_image, photo_path
from pipeline.fixtures.static_server import StaticServer, image
from pipeline.fixtures.static_server import status as answered
from pipeline.io.layout import MANIFEST, PUBLISHING, STAGING, STATS
from pipeline.io.lock import LOCK, STARTED_SLACK_S
from tests.conftest import LOCAL

REPO = Path(__file__).resolve().parent.parent
# The command, in a process of its own, sent SIGNAL (by number: SIGKILL, SIGTERM) at its AT-th filesystem step (0:
# never), or at the first whose label ("rename DESTINATION", "unlink PATH"...) AT, a regular expression, finds; each
# step is written to STEPS_FILE before it is made.
KILLED_AT_STEP = r'''
import os, re, signal, sys
at, steps_file, signum, calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), []
def killing(real, name):
    def step(*args, **kwargs):
        calls.append(name + " " + os.fspath(args[-1] if name in ("rename", "replace", "link") else args[0]))
        with open(steps_file, "a", encoding="utf-8") as steps:
            steps.write(calls[-1] + "\n")
        if (str(len(calls)) == at) if at.isdigit() else re.search(at, calls[-1]):
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)
    return step
for name in ("rename", "replace", "link", "unlink", "remove", "rmdir"):
    setattr(os, name, killing(getattr(os, name), name))
from pipeline.launch import entry
sys.argv[1:] = sys.argv[4:]
sys.exit(entry())
'''
# What two runs of one command may write differently (README, "Output layout"): they measure or date the run.
MEASURED_STATS = ("steps", "peak_memory_mb", "peak_rss_mb", "api_calls")


def outcome(folder: Path) -> dict[str, object]:
    """Every file a reader takes from the folder, less what measures or dates the run: the files by sha256, the
    manifest less its date, stats.json's entry and a refresh's seal, stats.json less its measures."""
    files: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        relative = str(path.relative_to(folder))
        if not path.is_file() or relative.split("/")[0] == STAGING or relative.startswith(LOCK):
            continue
        if relative == MANIFEST:
            manifest = json.loads(path.read_text())
            manifest["files"] = [entry for entry in manifest["files"] if entry["path"] != STATS]
            manifest.pop("created", None)
            manifest.get("refresh_fingerprint", {}).pop("sha256", None)
            files[relative] = manifest
        elif relative == STATS:
            files[relative] = {key: value for key, value in json.loads(path.read_text()).items()
                               if key not in MEASURED_STATS}
        else:
            files[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def left_for_a_reader(folder: Path) -> list[str]:
    """What a kill left that a reader could take for part of a dataset: a temporary outside the staging folder, a
    manifest naming a file that is not there, a file beside a manifest that does not list it."""
    if not folder.exists():
        return []
    problems = [str(path.relative_to(folder)) + ": a temporary outside the staging folder"
                for path in folder.rglob("*") if ".tmp-" in path.name and not path.name.startswith(LOCK)
                and path.relative_to(folder).parts[0] != STAGING]
    if (folder / MANIFEST).exists():
        listed = {entry["path"] for entry in json.loads((folder / MANIFEST).read_text())["files"]}
        present = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()
                   and path.relative_to(folder).parts[0] != STAGING and not path.name.startswith(LOCK)}
        problems += [f"{name}: listed by the manifest, not there" for name in sorted(listed - present)]
        problems += [f"{name}: not listed by the manifest" for name in sorted(present - listed - {MANIFEST})]
    return problems


@dataclass
class Killed:
    """What one killed command left: the step it was signalled at (its label), how it ended, its last stderr line."""
    at: str
    returncode: int
    said: str


def killed_at_step(command: list[str], at: int | str, steps_file: Path, signum: int = signal.SIGKILL,
                   timeout: float = 180) -> Killed:
    steps_file.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-c", KILLED_AT_STEP, str(at), str(steps_file), str(signum), *command],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)
    steps = steps_file.read_text().splitlines() if steps_file.exists() else []
    chosen = [step for index, step in enumerate(steps)
              if (str(index + 1) == str(at) if str(at).isdigit() else re.search(str(at), step))]
    label = chosen[0] if done.returncode != 0 and chosen else "(never: it ended first)"
    return Killed(label, done.returncode, (done.stderr.strip().splitlines() or [""])[-1])


def signalled_once(command: list[str], appears: Callable[[], bool], signum: int, timeout: float = 180) -> Killed:
    """The command, sent `signum` once `appears()` (polled) holds; waited for to its end."""
    process = subprocess.Popen([sys.executable, "-m", "pipeline", *command], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while process.poll() is None and not appears() and time.monotonic() < deadline:
        time.sleep(0.01)
    sent = process.poll() is None
    if sent:
        process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return Killed("sent" if sent else "(never: it ended first)", process.returncode,
                  (err.strip().splitlines() or [""])[-1])


def check_what_a_kill_left(folder: Path, clean: dict[str, object], capsys) -> str:
    """verify's word on the folder as the kill left it: refused (exit 1 or 2), or OK and then the clean run's."""
    if not folder.exists():  # killed before it made the folder
        return "absent"
    capsys.readouterr()
    verdict = main(["verify", str(folder)])
    said = capsys.readouterr()
    assert verdict in (0, 1, 2), verdict
    if verdict == 0:
        assert outcome(folder) == clean, f"verify said OK of a dataset that is not the clean run's: {said.out}"
    else:
        assert (said.out + said.err).strip(), "verify refused the folder without a word"
    assert not left_for_a_reader(folder), left_for_a_reader(folder)
    return "OK" if verdict == 0 else "refused"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[tuple[StaticServer, Path]]:
    folder = tmp_path_factory.mktemp("kill-world")
    with StaticServer() as server:
        metadata = build_demo_world(server, folder / "in")
        yield server, metadata


def run_argv(server: StaticServer, metadata: Path, output: Path, *extra: str) -> list[str]:
    return ["run", f"--input={metadata}", f"--output={output}", f"--allowed_hosts={server.host}", "--shards=2",
            "--detectors=none", *extra, *LOCAL]


@pytest.fixture(scope="module")
def clean_run(world, tmp_path_factory) -> tuple[Path, dict[str, object]]:
    """An uninterrupted run's outcome; every killed run writes into the same folder (once it is cleared), with the
    same flags, so that nothing differs but the kill."""
    server, metadata = world
    where = tmp_path_factory.mktemp("kill-run")
    assert main(run_argv(server, metadata, where / "out")) == 0
    clean = outcome(where / "out")
    shutil.rmtree(where / "out")
    assert main(run_argv(server, metadata, where / "out", f"--cache={where / 'cache'}")) == 0
    assert outcome(where / "out") == clean, "a run with --cache writes what one without writes"
    shutil.rmtree(where / "out")
    shutil.rmtree(where / "cache")
    return where, clean


def rerun_gives_the_clean_run(argv: list[str], output: Path, clean: dict[str, object], capsys) -> str:
    """The same command again: it takes the dead run's lock over and ends with the clean run's dataset, exit 0 (a
    scheduler retrying it sees no failure): run again, or, where the killed run had begun to publish it or published
    it, that publish finished or found done, which one line says."""
    capsys.readouterr()
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 0, (status, err)
    assert outcome(output) == clean
    assert not (output / LOCK).exists() and not (output / STAGING).exists()
    assert main(["verify", str(output)]) == 0
    if "the earlier run of this same command" in err:
        return "its publish finished"
    return "published already" if "already holds the dataset of this same command" in err else "rerun"


def pid_taken_since(folder: Path) -> subprocess.Popen:
    """The dead run's pid in its lock given to a process started since, as the kernel gives a freed pid again (a
    restarted container's first process has its dead run's): that process, for the caller to end. Started once the
    clock has passed the lock's second by more than the slack its start time is judged with."""
    held = json.loads((folder / LOCK).read_text())
    written = dt.datetime.strptime(held["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    time.sleep(max(0.0, written + 1 + STARTED_SLACK_S - time.time()))
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (folder / LOCK).write_text(json.dumps({**held, "pid": later.pid}))
    return later


def sweep_run(world, clean_run, steps: list[int | str], cache: bool, capsys, pid_taken: bool = False,
              signum: int = signal.SIGKILL) -> list[tuple[int | str, str, str, str]]:
    """For each step: the run killed there, what verify said of what it left, how the rerun ended (`pid_taken`: the
    dead run's pid in its lock given to a live process by then)."""
    server, metadata = world
    where, clean = clean_run
    output, cached = where / "out", where / "cache"
    argv = run_argv(server, metadata, output, *([f"--cache={cached}"] if cache else []))
    results = []
    for at in steps:
        shutil.rmtree(output, ignore_errors=True)
        shutil.rmtree(cached, ignore_errors=True)
        killed = killed_at_step(argv, at, where / "steps.txt", signum)
        if killed.returncode == 0:
            results.append((at, killed.at, "not killed", ""))
            continue
        assert killed.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 128 + signum), (at, killed)
        left = check_what_a_kill_left(output, clean, capsys)
        later = pid_taken_since(output) if pid_taken and (output / LOCK).exists() else None
        try:
            results.append((at, killed.at, left, rerun_gives_the_clean_run(argv, output, clean, capsys)))
        finally:
            if later:
                later.kill()
                later.wait()
    return results


def steps_of(argv: list[str], output: Path, steps_file: Path) -> list[str]:
    """The filesystem steps of an uninterrupted run of the command, in order; the folder is cleared before and after."""
    shutil.rmtree(output, ignore_errors=True)
    assert killed_at_step(argv, 0, steps_file).returncode == 0
    shutil.rmtree(output)
    return steps_file.read_text().splitlines()


def test_a_run_killed_at_its_steps_leaves_nothing_verify_passes_wrongly_and_its_rerun_writes_the_clean_run(
        world, clean_run, capsys):
    """Killed as it stages a shard (its lock's pid then taken by another process; rerun on its cache), as the
    publish moves a shard in, and once the manifest is in, as it removes its plan (rerun on its cache)."""
    where, _ = clean_run
    out = re.escape(str(where / "out"))
    done = sweep_run(world, clean_run, [rf"^rename {out}/{STAGING}/[^/]+/parquet/"], cache=True, capsys=capsys,
                     pid_taken=True)
    done += sweep_run(world, clean_run, [rf"^rename {out}/parquet/"], cache=False, capsys=capsys)
    done += sweep_run(world, clean_run, [rf"^unlink {out}/{STAGING}/[^/]+/{PUBLISHING}$"], cache=True, capsys=capsys)
    assert [(left, rerun) for _, _, left, rerun in done] == [
        ("refused", "rerun"), ("refused", "its publish finished"), ("OK", "its publish finished")], done


def test_a_run_stopped_while_or_after_publishing_is_rerun_by_the_same_command_to_exit_0(world, clean_run, capsys):
    """Stopped (SIGTERM) as the publish moves a shard in (the stop keeps the plan), and as it removes the emptied
    staging folder, its last step; killed (SIGKILL) as it releases its lock, its dataset published: the same command
    run again finishes what is left and exits 0 saying so, the clean run's dataset in the folder (it was refused,
    exit 2, "already holds a dataset": a plain run had no record of the command that made the dataset)."""
    where, _ = clean_run
    out = re.escape(str(where / "out"))
    done = sweep_run(world, clean_run, [rf"^rename {out}/parquet/", rf"^rmdir {out}/{STAGING}$"], cache=False,
                     capsys=capsys, signum=signal.SIGTERM)
    done += sweep_run(world, clean_run, [rf"^(unlink|remove) {out}/{LOCK}$"], cache=False, capsys=capsys)
    assert [(left, rerun) for _, _, left, rerun in done] == [
        ("refused", "its publish finished"), ("OK", "published already"), ("OK", "published already")], done


def test_a_run_stopped_while_publishing_rerun_with_another_command_finishes_the_publish_and_is_refused(
        world, clean_run, capsys):
    """Killed as the publish moves a shard in, then run with another option the manifest records, or with its input
    changed at the same path: the publish is finished (the clean run's dataset), and the run is refused, exit 2,
    "already holds a dataset", as before: that dataset is not this command's."""
    server, metadata = world
    where, clean = clean_run
    output = where / "out"
    shutil.rmtree(output, ignore_errors=True)
    argv = run_argv(server, metadata, output)
    killed = killed_at_step(argv, rf"^rename {re.escape(str(output))}/parquet/", where / "steps.txt")
    assert killed.returncode == -signal.SIGKILL, killed
    capsys.readouterr()
    assert main(run_argv(server, metadata, output, "--images_per_shard=4000")) == 2
    err = capsys.readouterr().err
    assert "finished publishing run" in err and "already holds a dataset" in err and "same command" not in err, err
    assert outcome(output) == clean and main(["verify", str(output)]) == 0
    held = metadata.read_bytes()
    try:
        metadata.write_bytes(held + b"\n")  # the same rows, the file one byte longer
        capsys.readouterr()
        assert main(argv) == 2 and "already holds a dataset" in capsys.readouterr().err
    finally:
        metadata.write_bytes(held)
    capsys.readouterr()
    assert main(argv) == 0 and "already holds the dataset of this same command" in capsys.readouterr().err
    assert outcome(output) == clean


def test_a_run_stopped_by_sigterm_as_a_shard_is_staged_is_rerun_to_the_clean_run(world, clean_run, capsys):
    server, metadata = world
    where, clean = clean_run
    output = where / "out"
    shutil.rmtree(output, ignore_errors=True)
    argv = run_argv(server, metadata, output)
    stopped = signalled_once(argv, lambda: bool(list(output.glob(f"{STAGING}/*/parquet/*.parquet"))), signal.SIGTERM)
    assert stopped.at == "sent" and stopped.returncode == 143, stopped
    assert not (output / LOCK).exists()  # released by the stop itself
    check_what_a_kill_left(output, clean, capsys)
    rerun_gives_the_clean_run(argv, output, clean, capsys)


@pytest.fixture(scope="module")
def clean_refresh(tmp_path_factory) -> Iterator[tuple[list[str], Path, Path, dict[str, object]]]:
    """A first release (photo 1005 busy then, a 503) and the uninterrupted refresh that makes r2 from it: its argv,
    the root it writes into (holding a copy of r1), the pristine r1, r2's outcome."""
    where = tmp_path_factory.mktemp("kill-refresh")
    with StaticServer() as server:
        metadata = build_demo_world(server, where / "in")
        server.add(photo_path("1005"), answered(503), image(demo_image("rocket.jpg")))
        assert main(["refresh", f"--output={where / 'first'}", "--release=r1", f"--input={metadata}",
                     f"--allowed_hosts={server.host}", "--detectors=none", "--max_retries=0", *LOCAL]) == 0
        first, root = where / "first" / "releases" / "r1", where / "root"
        argv = ["refresh", f"--previous={root / 'releases' / 'r1'}", f"--output={root}", "--release=r2",
                f"--input={metadata}", f"--allowed_hosts={server.host}", *LOCAL]
        shutil.copytree(first, root / "releases" / "r1")
        assert main(argv) == 0
        clean = outcome(root / "releases" / "r2")
        shutil.rmtree(root)
        yield argv, root, first, clean


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def sweep_refresh(clean_refresh, steps: list[int | str], capsys,
                  signum: int = signal.SIGKILL) -> list[tuple[int | str, str, str, str]]:
    """For each step: the refresh killed there, what verify said of the release it was writing, how its rerun ended;
    the previous release as it was, and verified, after the kill and after the rerun."""
    argv, root, first, clean = clean_refresh
    previous, release = root / "releases" / "r1", root / "releases" / "r2"
    results = []
    for at in steps:
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(first, previous)
        before = files_of(previous)
        killed = killed_at_step(argv, at, root.parent / "steps.txt", signum)
        if killed.returncode == 0:
            results.append((at, killed.at, "not killed", ""))
            continue
        assert killed.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 128 + signum), (at, killed)
        assert files_of(previous) == before and main(["verify", str(previous)]) == 0, (at, killed.at)
        left = check_what_a_kill_left(release, clean, capsys)
        results.append((at, killed.at, left, rerun_gives_the_clean_run(argv, release, clean, capsys)))
        assert files_of(previous) == before and main(["verify", str(previous)]) == 0, (at, killed.at)
    return results


def test_a_refresh_killed_at_its_steps_leaves_the_previous_release_as_it_was_and_its_rerun_writes_the_clean_one(
        clean_refresh, capsys):
    """Killed as its changelog is staged, and once its manifest is moved in, as the publish removes its plan (verify
    refuses a published release holding a staging folder or a lock; the rerun finishes the publish's last step)."""
    _, root, _, _ = clean_refresh
    release = re.escape(str(root / "releases" / "r2"))
    done = sweep_refresh(clean_refresh, [rf"^rename {release}/{STAGING}/[^/]+/changelog\.json$",
                                         rf"^unlink {release}/{STAGING}/[^/]+/{PUBLISHING}$"], capsys)
    assert [left for _, _, left, _ in done] == ["refused", "refused"], done


def test_a_refresh_stopped_by_sigterm_as_it_publishes_is_rerun_to_the_clean_release(clean_refresh, capsys):
    """SIGTERM as the publish moves a shard in: the stop keeps the plan, the rerun finishes it (the emptied staging
    folder stayed in the published release); and as the publish removes the emptied staging folder, its last step:
    the release is whole (verify passes it) and the rerun removes the folder (it was told done, touching nothing)."""
    _, root, _, _ = clean_refresh
    release = re.escape(str(root / "releases" / "r2"))
    done = sweep_refresh(clean_refresh, [rf"^rename {release}/parquet/", rf"^rmdir {release}/{STAGING}$"], capsys,
                         signal.SIGTERM)
    assert [left for _, _, left, _ in done] == ["refused", "OK"], done
