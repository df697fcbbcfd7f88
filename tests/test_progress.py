"""Progress lines while a job runs, and per-step timing in stats.json."""

import json
import logging
import subprocess
import sys
import time

from pipeline.fixtures.demo_world import build_demo_world, photo_path
from pipeline.fixtures.static_server import Response, StaticServer
from pipeline.io.progress import line
from tests.conftest import FAST


def test_the_line_names_every_step_and_bounds_the_downloads_left():
    text = line({"read": 1200, "fetched": 340, "kept": 0, "rejected": 220}, 160.0, "fetched", 14.2)
    assert text == ("progress: read 1,200 · fetched 340 · rejected 220 · kept 0 so far (counted as photos leave the "
                    "last stage) · fetched at 14.2/s, downloads ~1m00s left at most (2m40s elapsed)")
    assert line({"read": 1, "fetched": 0, "kept": 0, "rejected": 0}, 3.0) == (
        "progress: read 1 · fetched 0 · rejected 0 · kept 0 so far (counted as photos leave the last stage) "
        "(0m03s elapsed)")
    # the heavy stages between, once they have counted a photo (a run with them off never does)
    counts = {"read": 18, "fetched": 11, "deduplicated": 9, "detected": 9, "kept": 6, "rejected": 12}
    assert line(counts, 22.0) == (
        "progress: read 18 · fetched 11 · deduplicated 9 · detected 9 · rejected 12 · kept 6 (0m22s elapsed)")


def test_a_running_job_prints_progress_and_records_step_timing(tmp_path):
    """A slow download keeps the job busy: the heartbeat prints lines meanwhile, read by this test."""
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path / "input")
        # Answers late, and empty: the job waits for it through at least two of the heartbeat's beats.
        server.add(photo_path("1003"), Response(200, b"", delay=2.0))
        done = subprocess.run([sys.executable, "-m", "pipeline", "run", f"--input={metadata}",
                               f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                               "--progress_seconds=0.4", *FAST],
                              capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [text for text in done.stderr.splitlines() if "progress: read " in text]
    reads = [int(text.split("progress: read ", 1)[1].split(" ", 1)[0].replace(",", "")) for text in lines]
    # Lines came while the job was busy (the heartbeat), and the counts only grow.
    assert len(lines) >= 2 and reads == sorted(reads) and max(reads) >= 17
    steps = json.loads((tmp_path / "out" / "stats.json").read_text())["steps"]
    assert steps["read"]["records"] == 18 and steps["fetched"]["records"] == 10  # 11 images, 1 answered empty
    assert steps["kept"]["records"] == 10 and steps["rejected"]["records"] == 8
    # The heavy stages between them are timed too: what left the duplicate stages; detection was off.
    assert steps["deduplicated"]["records"] == 10 and "detected" not in steps


def _progress_reads(records: list[logging.LogRecord]) -> list[int]:
    texts = [record.getMessage() for record in records if record.name == "pipeline.progress"]
    return [int(text.split("progress: read ", 1)[1].split(" ", 1)[0].replace(",", "")) for text in texts]


def test_a_finished_job_stops_its_progress_line_and_the_next_job_counts_from_zero(tmp_path, caplog):
    """The heartbeat went on printing the finished job's counts (its elapsed time growing) through the publish and
    a refresh's changelog, as if the job still ran; and a second job in the process was counted on top of it."""
    from pipeline.commands.run import run

    caplog.set_level(logging.INFO, logger="pipeline.progress")
    heard_after_job = []

    def after_job(staging: str) -> None:  # the run's last step before publishing: the job is done
        before = len(caplog.records)
        time.sleep(0.6)  # six of the heartbeat's beats
        heard_after_job.append(len(_progress_reads(caplog.records[before:])))

    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path / "input")  # 18 rows
        reads = []
        for job in range(2):
            start = len(caplog.records)
            run([f"--input={metadata}", f"--output={tmp_path / f'out{job}'}", f"--allowed_hosts={server.host}",
                 "--progress_seconds=0.1", *FAST], before_publish=after_job)
            reads.append(_progress_reads(caplog.records[start:]))
    assert heard_after_job == [0, 0]
    assert reads[1] and max(reads[1]) <= 18, reads[1]


def _counted(text: str, step: str) -> int:
    return int(text.split(f" {step} ", 1)[1].split(" ", 1)[0].replace(",", ""))


def test_rejections_are_counted_as_each_stage_decides_them_and_kept_says_where_it_is_decided(tmp_path):
    """The line said `kept 0 · rejected 0` until the writers' shuffle, the rejections counted after their Flatten: a
    long run looked stuck for most of its time. The demo world's malformed line, non-CC-BY row and video are decided
    before any download; the line says so while a download is still waited for, and never counts one twice."""
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path / "input")
        server.add(photo_path("1003"), Response(200, b"", delay=2.0))  # the job waits through the heartbeat's beats
        done = subprocess.run([sys.executable, "-m", "pipeline", "run", f"--input={metadata}",
                               f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                               "--progress_seconds=0.4", *FAST],
                              capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [text.split("progress: ", 2)[-1] for text in done.stderr.splitlines() if "progress: read " in text]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    rejected, kept = stats["rejected"], stats["kept"]
    assert (rejected, kept) == (8, 10)
    before_the_cap = [text for text in lines if _counted(text, "kept") == 0]
    # while nothing has reached the owner cap, the rejections already decided are counted, not 0
    assert any(_counted(text, "rejected") >= 3 for text in before_the_cap), lines
    # and "kept 0" says where photos are kept, not that none will be
    assert before_the_cap and all("kept 0 so far (counted as" in text for text in before_the_cap), lines
    assert all(_counted(text, "rejected") <= rejected and _counted(text, "kept") <= kept for text in lines), lines
    assert stats["steps"]["rejected"]["records"] == rejected  # each rejection counted once, whichever stage made it


def test_kept_0_names_no_stage_the_run_has_switched_off(tmp_path):
    """With the owner cap off (--per_owner_cap=0) the line still said `kept 0 so far (counted at the owner cap, the
    last stage)`, of a stage the run did not have."""
    with StaticServer() as server:
        metadata = build_demo_world(server, tmp_path / "input")
        server.add(photo_path("1003"), Response(200, b"", delay=2.0))  # the job waits through the heartbeat's beats
        done = subprocess.run([sys.executable, "-m", "pipeline", "run", f"--input={metadata}",
                               f"--output={tmp_path / 'out'}", f"--allowed_hosts={server.host}",
                               "--progress_seconds=0.4", "--per_owner_cap=0", *FAST],
                              capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [text.split("progress: ", 2)[-1] for text in done.stderr.splitlines() if "progress: read " in text]
    waiting = [text for text in lines if _counted(text, "kept") == 0]
    assert waiting and all("kept 0 so far (counted as photos leave the last stage)" in text for text in waiting), lines
