"""pipeline/io/pacing.py: start times evenly spaced at a rate, across threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.io.pacing import Pacer

T0 = 1000.0


class Clock:
    """A clock that moves only when told; optionally checks it is read under the pacer's lock."""

    def __init__(self) -> None:
        self.now = T0
        self.pacer: Pacer | None = None

    def __call__(self) -> float:
        if self.pacer is not None:
            # `now` must be read inside the critical section, or two threads could take the same start
            assert self.pacer._lock.locked()
        return self.now


@given(rate=st.sampled_from([0.0, 0.5, 1.0, 3.0, 50.0]),
       gaps=st.lists(st.floats(min_value=0.0, max_value=3.0, allow_nan=False), max_size=30))
def test_each_start_is_the_later_of_now_and_the_previous_start_plus_the_interval(rate, gaps):
    clock, slept = Clock(), []
    pacer = Pacer(rate, sleep=slept.append, clock=clock)
    interval = 1.0 / rate if rate > 0 else 0.0
    previous, waits = None, 0  # the brute-force recurrence the pacer must follow
    for gap in gaps:
        clock.now += gap
        start = clock.now if previous is None else max(clock.now, previous + interval)
        pacer.wait()
        assert pacer.free_at - T0 == pytest.approx(start + interval - T0, abs=1e-9)
        delay = start - clock.now
        if delay > 0:  # computed as the pacer computes it, so the same float decides
            waits += 1
            assert slept[-1] == pytest.approx(delay, abs=1e-9)
            clock.now += slept[-1]  # the caller slept until its start
        assert len(slept) == waits  # no sleep when the start is now
        previous = start


def test_threads_sharing_a_pacer_each_get_their_own_start():
    """Forty reservations from four threads at one frozen instant: the delays are exactly 0, 1, ..., 39
    intervals, each once, and the clock is read under the lock each time."""
    clock = Clock()
    pacer = Pacer(200.0, sleep=lambda _: None, clock=clock)
    clock.pacer = pacer
    delays, lock = [], threading.Lock()

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
    assert all(delay == pytest.approx(round(delay / 0.005) * 0.005, abs=1e-9) for delay in delays)


@given(rate=st.sampled_from([0.5, 1.0, 3.0]),
       calls=st.lists(st.tuples(st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
                                st.one_of(st.none(), st.floats(min_value=0.0, max_value=5.0, allow_nan=False))),
                      max_size=30))
def test_a_start_is_claimed_only_by_a_caller_that_can_wait_for_it(rate, calls):
    """reserve_within(max_delay) claims the start as reserve() does when its wait fits, else nothing: a caller
    that gives up never moves the next start (given up and claimed, a burst left a host refused for minutes)."""
    clock = Clock()
    pacer = Pacer(rate, sleep=lambda _: None, clock=clock)
    interval, next_start = 1.0 / rate, None  # the brute-force recurrence, counting only claimed starts
    for gap, max_delay in calls:
        clock.now += gap
        start = clock.now if next_start is None else max(clock.now, next_start)
        fits = max_delay is None or start - clock.now <= max_delay
        assert (pacer.reserve_within(max_delay) is not None) == fits
        if fits:
            next_start = start + interval
        assert pacer.free_at == (0.0 if next_start is None else pytest.approx(next_start, abs=1e-9))
