"""The process-wide pixel budget: never more than its limit held (one holder alone may exceed it), waiters
admitted in arrival order."""

import random
import threading
import time

import pytest

from pipeline.io.pixel_budget import PixelBudget, process_budget


class Watched(PixelBudget):
    """A budget that records the most pixels and holders it ever saw at once."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.most_held = self.most_holders = 0
        self._now = 0
        self._lock = threading.Lock()

    def note(self, pixels: int, step: int) -> None:
        with self._lock:
            self._now += step
            self.most_holders = max(self.most_holders, self._now)
            self.most_held = max(self.most_held, self.held)


def run_threads(budget: Watched, sizes: list[int], work: float = 0.02) -> None:
    def one(pixels: int) -> None:
        with budget.hold(pixels):
            budget.note(pixels, 1)
            time.sleep(work)
            budget.note(pixels, -1)
    threads = [threading.Thread(target=one, args=(pixels,)) for pixels in sizes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)


def test_never_more_than_the_limit_and_room_is_used():
    budget = Watched(100)
    run_threads(budget, [40] * 8)
    assert budget.most_held <= 100 and budget.most_holders == 2  # two fit, never three
    assert budget.held == 0


def test_an_image_larger_than_the_budget_is_held_alone():
    budget = Watched(100)
    run_threads(budget, [30, 150, 30, 30, 150, 30])
    assert budget.held == 0
    # Whenever a 150 was held nothing else was: the most held is 150 itself, or 90 of three 30s.
    assert budget.most_held in (90, 150)


def test_randomized_sizes_never_exceed_the_limit_unless_alone():
    rng = random.Random(7)
    for _ in range(5):
        budget = Watched(100)
        sizes = [rng.choice([1, 10, 33, 60, 99, 100, 101, 250]) for _ in range(16)]
        run_threads(budget, sizes, work=0.005)
        assert budget.held == 0
        assert budget.most_held <= max(100, max(sizes))


def test_waiters_are_admitted_in_arrival_order():
    # 60 held; a 60 waits; a 10 arriving after it fits but must not pass it (a large image is never starved).
    budget = PixelBudget(100)
    order: list[str] = []
    first_in = threading.Event()
    release_first = threading.Event()

    def holder() -> None:
        with budget.hold(60):
            first_in.set()
            release_first.wait(5)

    def waiter(name: str, pixels: int) -> None:
        with budget.hold(pixels):
            order.append(name)
    threads = [threading.Thread(target=holder)]
    threads[0].start()
    first_in.wait(5)
    for name, pixels in (("large", 60), ("small", 10)):
        thread = threading.Thread(target=waiter, args=(name, pixels))
        thread.start()
        threads.append(thread)
        time.sleep(0.1)  # arrives after the one before
    assert order == []  # the small one fits beside the 60 held, yet waits its turn
    release_first.set()
    for thread in threads:
        thread.join(5)
    assert order == ["large", "small"] and budget.held == 0


def test_a_budget_is_positive_and_one_per_process_and_limit():
    with pytest.raises(ValueError):
        PixelBudget(0)
    assert process_budget(123) is process_budget(123) and process_budget(123) is not process_budget(124)
