"""A process-wide bound on the pixels being decoded at once.

`--max_pixels` bounds one image; it does not bound a worker. A Dataflow SDK process runs many bundles
at once (one per harness thread), and a hostile source can make every one of them a 64 MP PNG with alpha
of a few hundred kB: ~1 GiB each to decode, composite and convert (`stages/image.py`), ~12 GiB for twelve
threads. Images take their decoded pixels from this budget before any pixel is decoded and give them back
when the stored JPEG is made, each pixel counted as the 16 bytes a PNG with alpha takes and a source whose
pixels take more (a WebP with alpha: 24; a progressive JPEG, whose every DCT coefficient libjpeg holds at any
scale) as more (`image.budget_pixels`); an image larger than the whole
budget decodes alone. Waiters are admitted in
arrival order, so a large image is not starved by a stream of small ones.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class PixelBudget:
    """At most `limit` pixels held at once; one holder may exceed it alone."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"a pixel budget must be positive, not {limit}")
        self.limit = limit
        self._held = 0
        self._holders = 0
        self._queue: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def held(self) -> int:
        return self._held

    def _admits(self, ticket: object, pixels: int) -> bool:
        first = self._queue[0] is ticket
        return first and (self._holders == 0 or self._held + pixels <= self.limit)

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Waits for `pixels` (its turn, and room for them), holds them for the `with` block."""
        pixels = max(0, pixels)
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            try:
                self._changed.wait_for(lambda: self._admits(ticket, pixels))
            finally:
                self._queue.remove(ticket)
                self._changed.notify_all()  # the next in line may fit too
            self._held += pixels
            self._holders += 1
        try:
            yield
        finally:
            with self._changed:
                self._held -= pixels
                self._holders -= 1
                self._changed.notify_all()


_BUDGETS: dict[int, PixelBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def process_budget(limit: int) -> PixelBudget:
    """The one budget of this process for `limit` (every DoFn instance and thread shares it)."""
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(limit)
        if budget is None:
            budget = _BUDGETS[limit] = PixelBudget(limit)
        return budget
