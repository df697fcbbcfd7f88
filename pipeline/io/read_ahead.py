"""Calls done ahead of the one needed, in order: the shard writers' reads of staged images.

Writing a dataset shard reads each of its images back from the staging folder (io/sinks.py). On an object
store each read waits tens of milliseconds for an answer; `read_ahead` keeps a few in flight on threads while
the writers take the results in their order, so the wait overlaps the writing, and at most `depth` results are
held at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from pipeline.io.stopping import stop_requested

T = TypeVar("T")
R = TypeVar("R")


def read_ahead(function: Callable[[T], R], items: Iterable[T], depth: int) -> Iterator[R]:
    """`function(item)` for each item, in the items' order, with up to `depth` calls running ahead on
    threads. An error of a call is raised where its result would have been; calls not started yet are
    cancelled."""
    if depth <= 1:
        yield from (function(item) for item in items)
        return
    pending: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="read-ahead")
    wait = True
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except GeneratorExit:  # a consumer that stopped early: the calls under way end before this returns
        # Unless a stop (Ctrl-C, SIGTERM) is why: raised while the writer was busy with a result (this generator
        # paused), it closes the generator, and waiting held the stop on a read that did not answer until the
        # stop's grace ended the process, as a stop raised while it waited here did.
        wait = not stop_requested()
        raise
    except BaseException:
        # An error, or a stop (Ctrl-C, SIGTERM) raised while the consumer waited here: the calls under way are not
        # waited for. Waiting held the run's stop on a read that did not answer (an object store) until the stop's
        # grace ended the process, its staging folder left behind.
        wait = False
        raise
    finally:
        pool.shutdown(wait=wait, cancel_futures=True)  # nothing more is needed: calls not started are cancelled
