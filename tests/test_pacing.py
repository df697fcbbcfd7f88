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


def test_threads_sharing_a_pacer_each_get_their_own_start(monkeypatch):
    """Forty reservations from four threads at one frozen instant: the delays are exactly 0, 1, ..., 39
    intervals, each once (no two threads handed the same start)."""
    clock = Clock()
    monkeypatch.setattr(pacing.time, "monotonic", clock.monotonic)
    pacer, delays, lock = Pacer(200.0, sleep=lambda _: None), [], threading.Lock()

    def worker() -> None:
        for _ in range(10):
            delay = pacer.reserve()
            with lock:
                delays.append(delay)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(round(delay / 0.005) for delay in delays) == list(range(40))
    assert all(delay == pytest.approx(round(delay / 0.005) * 0.005) for delay in delays)
