"""Progress while a job runs, and per-step timing for stats.json.

`Progress(step)` passes records through untouched. It counts them per worker process and, every
few seconds, logs one line to the `pipeline.progress` logger (shown by default, on the local
runner and in Dataflow's worker logs): how many records passed each step in this process so far,
the rate of the step records passed most recently, and while downloading an estimate of the time
the downloads still take. A heartbeat keeps the line coming while a long step lets nothing through, until
the process that ran the job says it ended (`job_ended`).
It also records, as Beam metrics, when the first and the last record passed each step, which
`timings` turns into per-step wall time and throughput after the job.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

NAMESPACE = "pipeline_progress"
LOG = logging.getLogger("pipeline.progress")
INTERVAL_SECONDS = 5.0
# Steps in the order records reach them; "read" is the total the others are measured against. The rejections are
# counted where each stage decides them; the kept photos only where they leave the last stage (the owner cap, else
# detection or the duplicate stages), which waits for every photo before it: until then the line says so rather than
# "kept 0". It names no stage: one the run has switched off (--per_owner_cap=0) was named.
STEPS = ("read", "fetched", "deduplicated", "detected", "rejected", "kept")
# Shown once counted: a run with the near-duplicate stage or detection off never counts them.
SHOWN_ONCE_COUNTED = ("deduplicated", "detected")
KEPT_LATER = "(counted as photos leave the last stage)"
# Every step timed for stats.json: the printed ones, and the heavy stages between them (passed by
# the photos that leave the duplicate stages, and by every photo the Detect stage decided).
TIMED_STEPS = ("read", "fetched", "deduplicated", "detected", "kept", "rejected")


class _Counts:
    """Per worker process: shared by every Progress DoFn instance and thread in it. A heartbeat
    thread repeats the line while a long step (detection, a slow download) lets nothing through."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.heartbeat: threading.Thread | None = None
        self.stop = threading.Event()  # the running heartbeat's: set when its job has ended
        self.reset()

    def reset(self) -> None:
        """A job in this process has ended: its heartbeat stops and the next job's counts start from zero."""
        with self.lock:
            self.stop.set()
            self.stop, self.heartbeat = threading.Event(), None
            self.started = time.monotonic()
            self.last_line = 0.0
            self.counts: dict[str, int] = dict.fromkeys(TIMED_STEPS, 0)
            self.first: dict[str, float] = {}
            self.last: dict[str, float] = {}
            self.latest = ""  # the step a record passed most recently

    def add(self, step: str, interval: float) -> str | None:
        with self.lock:
            now = time.monotonic()
            self.counts[step] += 1
            self.first.setdefault(step, now)
            self.last[step] = now
            self.latest = step
            if self.heartbeat is None:
                self.heartbeat = threading.Thread(target=self._beat, args=(interval, self.stop), daemon=True)
                self.heartbeat.start()
            if now - self.last_line < interval:
                return None
            self.last_line = now
            return self._line(now)

    def _line(self, now: float) -> str:
        step = self.latest
        span = self.last[step] - self.first[step] if step else 0.0
        rate = (self.counts[step] - 1) / span if span > 0.5 else 0.0  # between its first and latest record
        return line(dict(self.counts), now - self.started, step, rate)

    def _beat(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            with self.lock:
                now = time.monotonic()
                if stop.is_set() or now - self.last_line < interval:
                    continue
                self.last_line = now
                text = self._line(now)
            LOG.info(text)


_COUNTS = _Counts()


def job_ended() -> None:
    """Called by the process that ran a job once it has ended: a job run in this process (the local runner's
    in-process modes) left its heartbeat printing its last counts through the publish and whatever the process did
    next, and a second job's counts were added to the first's. Worker processes end with their job."""
    _COUNTS.reset()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def line(counts: dict[str, int], elapsed: float, step: str = "", rate: float = 0.0) -> str:
    """'progress: read 1,200 · fetched 340 · rejected 220 · kept 0 so far (counted as photos leave the last stage)
    · fetched at 14.2/s, downloads ~1m05s left at most (2m40s elapsed)'. The estimate needs the rows read so far and
    the download rate; it is an upper bound, since rows rejected before the download are never fetched."""
    parts = [f"{name} {counts.get(name, 0):,}" for name in STEPS
             if name not in SHOWN_ONCE_COUNTED or counts.get(name, 0)]
    if not counts.get("kept", 0):
        parts[-1] += f" so far {KEPT_LATER}"
    if step and rate > 0:
        parts.append(f"{step} at {rate:.1f}/s")
        if step == "fetched" and counts.get("read", 0) > counts.get("fetched", 0):
            parts[-1] += f", downloads ~{_duration((counts['read'] - counts['fetched']) / rate)} left at most"
    return "progress: " + " · ".join(parts) + f" ({_duration(elapsed)} elapsed)"


class _Pass(beam.DoFn):
    def __init__(self, step: str, interval: float) -> None:
        self._step, self._interval = step, interval
        self._times = Metrics.distribution(NAMESPACE, f"{step}.time_ms")

    def process(self, element: Any) -> Iterator[Any]:
        self._times.update(int(time.time() * 1000))
        text = _COUNTS.add(self._step, self._interval)
        if text:
            LOG.info(text)
        yield element


class Progress(beam.PTransform):
    """PCollection[T] -> the same PCollection[T], counted under `step` (one of TIMED_STEPS)."""

    def __init__(self, step: str, interval: float = INTERVAL_SECONDS) -> None:
        super().__init__()
        if step not in TIMED_STEPS:
            raise ValueError(f"unknown progress step {step!r}")
        self._step, self._interval = step, interval

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return records | beam.ParDo(_Pass(self._step, self._interval))


def timings(result: Any) -> dict[str, dict[str, float | None]]:
    """Per step, over every worker: records, seconds from the first to the last, records per second."""
    spans: dict[str, list[int]] = {}  # step -> [records, first ms, last ms], over all its Beam steps
    for metric in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["distributions"]:
        data = metric.committed
        if not data or not data.count:
            continue
        step = metric.key.metric.name.removesuffix(".time_ms")
        span = spans.setdefault(step, [0, data.min, data.max])
        span[0] += data.count
        span[1], span[2] = min(span[1], data.min), max(span[2], data.max)
    found: dict[str, dict[str, float | None]] = {}  # per_second None: no time between the first and the last
    for step in TIMED_STEPS:
        if step in spans:
            records, first, last = spans[step]
            seconds = (last - first) / 1000
            found[step] = {"records": records, "seconds": round(seconds, 3),
                           "per_second": round(records / seconds, 2) if seconds else None}
    return found
