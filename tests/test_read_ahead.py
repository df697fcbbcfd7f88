"""Calls done ahead of the one needed, in order (io/read_ahead.py)."""

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.io.read_ahead import read_ahead
from tests.conftest import peak_bytes_consuming


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(), max_size=40), st.integers(min_value=0, max_value=6),
       st.lists(st.floats(min_value=0, max_value=0.002), min_size=1, max_size=5))
def test_read_ahead_gives_every_result_in_order(items, depth, delays):
    def slow_square(item: int) -> int:
        time.sleep(delays[item % len(delays)])  # later items finish first, now and then
        return item * item

    assert list(read_ahead(slow_square, items, depth)) == [item * item for item in items]


def test_read_ahead_raises_where_the_failed_call_would_have_been_and_starts_no_more():
    started = []

    def read(item: int) -> int:
        started.append(item)
        if item == 5:
            raise OSError("gone")
        return item

    results = []
    with pytest.raises(OSError, match="gone"):
        for result in read_ahead(read, range(1000), depth=4):
            results.append(result)
    assert results == [0, 1, 2, 3, 4]
    assert max(started) < 5 + 4 + 1  # at most `depth` calls beyond the failed one were ever submitted


def test_read_ahead_keeps_at_most_depth_calls_running():
    running, most = 0, 0
    lock = threading.Lock()

    def read(item: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.002)
        with lock:
            running -= 1
        return item

    assert list(read_ahead(read, range(60), depth=3)) == list(range(60))
    assert 1 < most <= 3


def test_a_consumer_that_stops_early_leaves_no_read_running_and_at_most_depth_results_held():
    closed = []

    def items():
        try:
            yield from range(10_000)
        finally:
            closed.append("closed")

    reads = read_ahead(lambda item: bytes(64 * 1024), items(), depth=4)
    peak = peak_bytes_consuming(next(reads) for _ in range(100))
    reads.close()
    assert closed == ["closed"] and peak < 8 * 64 * 1024
    assert not [t for t in threading.enumerate() if t.name.startswith("read-ahead")]


def test_a_stopped_run_does_not_wait_for_the_reads_under_way(tmp_path):
    """SIGTERM while a shard writer waited on a read that does not answer (an object store): leaving, the read-ahead
    waited for its reads under way, which held the run's stop until the stop's grace ended the process (its staging
    folder left to the next run). The stop comes back at once."""


    script = """
import time
from pipeline.io.stopping import StopRequested, StopSignals, end_process
from pipeline.io.read_ahead import read_ahead

def read(item):
    if item == 0:
        print("reading", flush=True)
        time.sleep(3600)  # a read that does not answer
    return item

try:
    with StopSignals() as stop, stop.job():
        for _ in read_ahead(read, range(100), depth=4):
            pass
except StopRequested as stopped:
    end_process(stopped.code, "stopped")
"""
    _stopped_at_once(script, tmp_path, b"reading", settle=0.2)  # the consumer waiting for the read


def test_a_stop_while_the_writer_holds_a_result_does_not_wait_for_the_reads_under_way(tmp_path):
    """The same stop landing while the shard writer was busy with a result (the read-ahead paused, its next read under
    way and not answering): closing the paused read-ahead waited for that read, as an early stop of the writer's own
    does, so the run's stop was held until the stop's grace ended the process (its staging folder left)."""


    script = """
import time
from pipeline.io.stopping import StopRequested, StopSignals, end_process
from pipeline.io.read_ahead import read_ahead

def read(item):
    if item == 1:
        time.sleep(3600)  # a read that does not answer
    return item

try:
    with StopSignals() as stop, stop.job():
        for item in read_ahead(read, range(100), depth=4):
            print("writing", item, flush=True)
            time.sleep(3600)  # the writer busy with item 0: the read-ahead paused, reading item 1
except StopRequested as stopped:
    end_process(stopped.code, "stopped")
"""
    _stopped_at_once(script, tmp_path, b"writing 0")


def _stopped_at_once(script: str, folder, ready: bytes, settle: float = 0.0) -> None:
    """Runs `script` (which prints `ready`, then stops on SIGTERM printing "stopped"), sends SIGTERM once it is ready:
    it must end with the stop's exit status within the stop's grace, not be ended by the grace."""
    import signal
    import subprocess
    import sys

    from pipeline.io.stopping import EXIT_STATUS, GRACE_S

    process = subprocess.Popen([sys.executable, "-c", script], cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, bufsize=0)
    assert process.stdout is not None and process.stdout.readline().strip() == ready
    time.sleep(settle)
    process.send_signal(signal.SIGTERM)
    begun = time.monotonic()
    _, err = process.communicate(timeout=GRACE_S + 30)
    took = time.monotonic() - begun
    assert process.returncode == EXIT_STATUS and err.decode().strip() == "stopped", err.decode()
    assert took < GRACE_S
