"""The process-tree memory sampler behind stats.json's `peak_memory_mb` and benchmarks/memory.py:
a child process's memory is counted while the child lives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.io.process_memory import MAX_WAIT, TreeMemory, descendants, peak_rss_mb

HOLD = ("import sys, time; block = bytearray(300 * 2**20); sys.stdout.write('ready\\n'); sys.stdout.flush(); "
        "time.sleep(1)")


def test_a_child_holding_300_mib_is_counted_while_it_lives():
    with TreeMemory(interval=0.1) as memory:
        memory.sample()
        before = memory.peak_mib  # this process alone
        child = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "ready\n"
        assert child.pid in descendants(memory.pid)
        child.wait()
    assert memory.available and memory.processes >= 2
    # the bytearray's pages are written (zeroed): resident. Not to the MiB: this process may give memory back while
    # the child lives (under load in a full run it measured 289); without the child counted the rise is ~0
    assert memory.peak_mib >= before + 250


class Costly(TreeMemory):
    """A sampler whose every sample costs ~20 ms of CPU (as PSS of large processes does)."""

    def sample(self) -> None:
        started = time.thread_time()
        while time.thread_time() - started < 0.02:
            pass
        super().sample()


def test_with_a_cpu_share_the_sampler_waits_so_that_its_cpu_stays_under_it():
    # >= 0.5 s between ~0.02 s samples; every 0.01 s (~40 samples here) without the share
    with Costly(interval=0.01, cpu_share=0.04) as capped:
        time.sleep(1.5)
    assert 2 <= capped.samples <= 5  # (one more sample at the end of the block)
    assert capped.peak_mib > 10


def test_the_wait_is_capped_and_the_share_must_be_a_fraction():
    assert Costly(interval=0.5, cpu_share=0.01)._wait_after(0.02) == 2.0
    assert Costly(interval=0.5, cpu_share=0.01)._wait_after(1.0) == MAX_WAIT  # a 100 s wait otherwise
    assert Costly(interval=0.5, cpu_share=0.01)._wait_after(0.001) == 0.5
    for share in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="cpu_share"):
            TreeMemory(cpu_share=share)


def test_a_block_shorter_than_one_interval_is_still_measured():
    with TreeMemory(interval=60) as memory:
        pass
    assert memory.peak_mib > 10  # this Python process, at least


# Any process on the machine may name itself with bytes that are not UTF-8 (prctl PR_SET_NAME):
# /proc/PID/stat of every process is read, so such a name must not stop the sampler or fail the job.
ODD_NAME = ("import ctypes, sys, time; ctypes.CDLL(None).prctl(15, b'\\xff\\xfe odd)', 0, 0, 0); "
            "sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(2)")


def test_a_process_named_in_bytes_that_are_not_utf8_does_not_stop_the_sampler():
    child = subprocess.Popen([sys.executable, "-c", ODD_NAME], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        assert child.pid in descendants(os.getpid())
        with TreeMemory(interval=60) as memory:
            pass
        assert memory.peak_mib > 10
    finally:
        child.kill()
        child.wait()


# A child started (fork + exec) by a process holding 600 MiB: reports its own peak and ru_maxrss.
SMALL_CHILD = ("import resource, json; from pipeline.io.process_memory import peak_rss_mb; "
               "print(json.dumps([peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]))")
LARGE_PARENT = ("import subprocess, sys; block = bytearray(600 * 2**20); "
                f"sys.stdout.write(subprocess.run([sys.executable, '-c', {SMALL_CHILD!r}], capture_output=True, "
                "text=True, check=True).stdout)")


def test_a_small_job_started_by_a_large_process_reports_its_own_peak():
    """stats.json's `peak_rss_mb` is the job's: not the size of whatever launched it (a notebook, a
    benchmark holding its corpus), which Linux carries into ru_maxrss across fork and exec."""
    done = subprocess.run([sys.executable, "-c", LARGE_PARENT], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    own, inherited = json.loads(done.stdout)
    assert inherited >= 600  # what ru_maxrss alone would have reported
    assert own < 200, own  # a bare Python process with this module: tens of MiB


def _resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_the_peak_of_this_process_is_at_least_what_it_holds_now():
    block = bytearray(300 * 2**20)  # written (zeroed): resident
    assert peak_rss_mb() >= _resident_mib() - 1 >= 300 and block  # a peak below the present is wrong
