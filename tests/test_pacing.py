"""pipeline/io/pacing.py: start times evenly spaced at a rate, across threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.io import pacing
from pipeline.io.pacing import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@given(rate=st.sampled_from([0.0, 0.5, 1.0, 3.0, 50.0]),
       gaps=st.lists(st.floats(min_value=0.0, max_value=3.0, allow_nan=False), max_size=30))
def test_each_start_is_the_later_of_now_and_the_previous_start_plus_the_interval(rate, gaps):
    clock, slept = Clock(), []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pacing.time, "monotonic", clock.monotonic)
        pacer = Pacer(rate, sleep=slept.append)
        interval = 1.0 / rate if rate > 0 else 0.0
        previous = None  # the brute-force recurrence the pacer must follow
        for gap in gaps:
            clock.now += gap
            start = clock.now if previous is None else max(clock.now, previous + interval)
            pacer.wait()
            assert pacer.free_at == pytest.approx(start + interval)
            delay = start - clock.now
            assert (slept[-1] if delay > 0 else 0.0) == pytest.approx(delay)
            if delay > 0:
                clock.now += slept[-1]  # the caller slept until its start
            previous = start


def test_threads_sharing_a_pacer_never_start_closer_than_the_interval():
    pacer, starts, lock = Pacer(200.0), [], threading.Lock()

    def worker() -> None:
        for _ in range(10):
            pacer.wait()
            with lock:
                starts.append(pacing.time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts.sort()
    assert len(starts) == 40
    # 40 starts 5 ms apart span at least 39 intervals (a thread may wake late, never early)
    assert starts[-1] - starts[0] >= 39 * 0.005 * 0.95
