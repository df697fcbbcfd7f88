"""Peak memory of a process and of every process it starts, sampled from /proc while it runs.

The local runner may start SDK worker processes (`--direct_running_mode=multi_processing`), and a
process's own `ru_maxrss` sees none of them while they live (Linux adds a child's only once it has
been waited for, and then only the largest). So a thread sums the proportional set size (PSS:
shared pages counted once over the processes sharing them) of the process and all its descendants
every `interval` seconds and keeps the peak. Where /proc is missing (not Linux) it measures
nothing and says so (`peak_bytes` stays 0).

A sample is not free: reading a process's PSS walks its page tables (~6 ms for a 270 MiB worker,
~12 ms for a 600 MiB process here), and a 2,000-image job with two worker processes spent 1.3 s of
CPU (3% of the job's) sampling every 0.5 s. With `cpu_share` the sampler waits long enough after
each sample that its own CPU time stays under that share of one core (the job uses 1%: ~2.7 s
between samples of that tree, 0.5 s for a small one, never more than MAX_WAIT); a memory peak
shorter than the wait can then be missed, a lasting one (what the in-process runner holds between
stages) cannot.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path
from types import TracebackType

MIB = 1024 * 1024
MAX_WAIT = 5.0  # seconds between samples at most, whatever a sample costs (~1.2 s per GiB of tree at 1%)


def _children() -> dict[int, list[int]]:
    """{parent pid: child pids} of every process now running (from /proc/PID/stat)."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            # Bytes: any process may name itself in bytes that are not UTF-8 (prctl PR_SET_NAME).
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:  # gone since the listing
            continue
        parent = int(stat.rsplit(b")", 1)[1].split()[1])  # the name in () may hold spaces and ")"
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def descendants(root: int) -> list[int]:
    """`root` and every process below it."""
    tree, found, todo = _children(), [root], [root]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pss_bytes(pid: int) -> int:
    """The process's proportional set size (its RSS where smaps_rollup is unreadable); 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


class TreeMemory:
    """Samples the summed PSS of `pid` (default: this process) and its descendants from the start
    of the `with` block to its end; `peak_bytes`, `peak_mib` and `processes` (the most at once)."""

    def __init__(self, pid: int | None = None, interval: float = 0.5, cpu_share: float | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        if cpu_share is not None and not 0 < cpu_share <= 1:
            raise ValueError(f"cpu_share must be within (0, 1], not {cpu_share}")
        self.cpu_share = cpu_share  # None: every `interval`, whatever a sample costs
        self.samples = 0
        self.peak_bytes, self.processes = 0, 0
        self.available = Path("/proc/self/stat").exists()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / MIB

    def sample(self) -> None:
        pids = descendants(self.pid)
        self.processes = max(self.processes, len(pids))
        self.peak_bytes = max(self.peak_bytes, sum(pss_bytes(pid) for pid in pids))
        self.samples += 1

    def _wait_after(self, spent: float) -> float:
        """Seconds to wait after a sample that cost `spent` seconds of this thread's CPU."""
        if self.cpu_share is None:
            return self.interval
        return max(self.interval, min(spent / self.cpu_share, MAX_WAIT))

    def _run(self) -> None:
        while True:
            started = time.thread_time()
            self.sample()
            if self._stop.wait(self._wait_after(time.thread_time() - started)):
                return

    def __enter__(self) -> TreeMemory:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.available:
            self._stop.set()
            self._thread.join()
            self.sample()  # the end state too: a block shorter than one interval is still measured


def _own_peak_kib() -> int:
    """This process's peak resident memory since it was started, in KiB: `VmHWM`, which exec
    resets. `ru_maxrss` is not that: Linux carries a process's peak across fork and exec, so a job
    launched from a large process (a notebook, a benchmark holding its corpus) would report at least
    its launcher's size (measured: a tiny child of an 800 MiB process reports 813 MiB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: the best there is


def peak_rss_mb() -> float:
    """Peak resident memory of the largest single process: this one or a worker process it waited
    for, in MiB. `peak_memory_mb` beside it in stats.json is the peak of the whole process tree at
    once (`TreeMemory`; None where there is no /proc). On Dataflow both are the launcher's only;
    workers report their memory in Dataflow's own metrics. A worker's `ru_maxrss` may include this
    process's size when it started it (the fork carries it over), never more than this process's own
    peak, so the larger of the two is still the largest process's own peak."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(_own_peak_kib(), children) / 1024, 1)  # Linux reports KiB
