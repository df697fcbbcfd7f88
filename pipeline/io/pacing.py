"""One pacing primitive: evenly spaced start times at a rate, shared by every thread holding the
pacer. Per-host download rates and each Flickr API key's call rate are both made of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Pacer:
    """Start times `1 / per_second` apart; 0 means unpaced."""

    def __init__(self, per_second: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._next_start = 0.0

    @property
    def free_at(self) -> float:
        """The monotonic time the next caller may start at."""
        return self._next_start

    def reserve(self) -> float:
        """Claims the next start time; returns the seconds to wait until it (0 when it is now)."""
        delay = self.reserve_within(None)
        assert delay is not None  # no limit: always claimed
        return delay

    def reserve_within(self, max_delay: float | None) -> float | None:
        """As `reserve`, but None, claiming nothing, when the wait would exceed `max_delay`: a caller that gives
        up leaves the start time to one that can use it (claimed and unused, each pushed the next start one
        interval on, and a burst of photos past their deadlines left a host refused for minutes while it
        received nothing)."""
        with self._lock:  # unpaced callers still record their start: a pool then picks the least recently used
            now = self._clock()
            start = max(now, self._next_start)
            if max_delay is not None and start - now > max_delay:
                return None
            self._next_start = start + self._interval
        return start - now

    def wait(self) -> None:
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
