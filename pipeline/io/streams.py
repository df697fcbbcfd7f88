"""One pass over a stream of records for several writers, and reads done ahead of it, in order.

A dataset shard is written in up to three formats, each by a writer that takes an iterable once
(`formats.WRITERS`). Listing the shard's images so that every writer could iterate them held the whole
shard in memory (5,000 stored JPEGs of ~60 KiB: ~300 MB per shard, per thread writing one); reading them
back once per writer would read every staged image three times. `consume_together` gives each writer
the same records from one pass, through a bounded queue per writer, so a shard costs a few queues of
images whatever its size; `read_ahead` keeps a few staged-image reads in flight, which an object store
answers in tens of milliseconds each.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_END = object()  # the producer read every item
_ABORT = object()  # the producer failed: a consumer must not finish as if it had seen every item


CHUNK = 8  # items handed to a consumer at once


class ProducerFailed(Exception):
    """Raised inside a consumer when the items it was being given stopped on an error."""


def read_ahead(function: Callable[[T], R], items: Iterable[T], depth: int) -> Iterator[R]:
    """`function(item)` for each item, in the items' order, with up to `depth` calls running ahead on
    threads. An error of a call is raised where its result would have been; calls not started yet are
    cancelled."""
    if depth <= 1:
        yield from (function(item) for item in items)
        return
    pending: deque[Future] = deque()
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="read-ahead") as pool:
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # an error or a consumer that stopped early: nothing more is needed
                future.cancel()


class _Feed:
    """A consumer's view of its queue of chunks: the items, until the end; ProducerFailed if the producer
    failed."""

    def __init__(self, items: queue.Queue) -> None:
        self._items = items
        self.finished = False  # the end (or the abort) was taken off the queue

    def __iter__(self) -> Iterator[Any]:
        while not self.finished:
            chunk = self._items.get()
            if chunk is _END or chunk is _ABORT:
                self.finished = True
                if chunk is _ABORT:
                    raise ProducerFailed("the records stopped on an error")
                return
            yield from chunk

    def put(self, item: Any) -> None:
        self._items.put(item)

    def drain(self) -> None:
        """Take what is left off the queue, so that the producer never waits on a consumer gone."""
        while not self.finished:
            self.finished = self._items.get() in (_END, _ABORT)


def consume_together(items: Iterable[T], consumers: list[Callable[[Iterable[T]], R]],
                     depth: int = 16) -> list[R]:
    """Each consumer's result over the same items, read from `items` once.

    With one consumer it simply runs on `items`. With more, each runs on a thread of its own, fed
    through a queue of chunks: at most about `depth` items are waiting for a consumer or being read
    from its current chunk (never fewer than one chunk of one). A consumer may stop early (its queue is
    then drained). When reading `items` fails, or a consumer fails while items are still being read, the
    reading stops (an unfinished generator is closed) and every other consumer's iteration raises
    ProducerFailed instead of ending (a writer must not close a file that looks complete). A consumer that
    fails after the last item was handed over (a writer's rename, say) cannot stop the others, which may
    have finished. Once every thread has ended, the first error is raised: the reading error, or the
    consumer's own."""
    if len(consumers) == 1:
        return [consumers[0](items)]
    # Items go over in chunks: a queue hand-over costs a lock and a thread switch, ~10-20 us each.
    chunk_size = max(1, min(CHUNK, depth // 2))
    feeds = [_Feed(queue.Queue(maxsize=max(1, depth // chunk_size - 1))) for _ in consumers]
    results: list[Any] = [None] * len(consumers)
    errors: list[BaseException | None] = [None] * len(consumers)
    failed = threading.Event()

    def run(index: int) -> None:
        try:
            results[index] = consumers[index](feeds[index])
        except BaseException as err:  # raised again in the calling thread, after every thread has ended
            errors[index] = err
            failed.set()
        finally:
            feeds[index].drain()

    threads = [threading.Thread(target=run, args=(index,), name=f"consumer-{index}", daemon=True)
               for index in range(len(consumers))]
    started: list[threading.Thread] = []
    last = _ABORT
    try:
        for thread in threads:  # inside the try: a thread that cannot start still ends those started
            thread.start()
            started.append(thread)
        chunk: list[Any] = []
        for item in items:
            if failed.is_set():  # the call fails whatever the others do: they need not finish
                break
            chunk.append(item)
            if len(chunk) == chunk_size:
                for feed in feeds:
                    feed.put(chunk)
                chunk = []
        else:
            if chunk:
                for feed in feeds:
                    feed.put(chunk)
            last = _END
    finally:
        try:
            close = getattr(items, "close", None)
            if last is _ABORT and callable(close):  # a generator left unfinished (read_ahead: its reads in flight)
                close()
        finally:  # whatever closing raised, every started consumer is ended and waited for
            for feed, thread in zip(feeds, threads, strict=True):
                if thread in started:
                    feed.put(last)
            for thread in started:
                thread.join()
    # The error that stopped the others, not the ProducerFailed it caused in them.
    raised = [error for error in errors if error is not None]
    if raised:
        raise next((error for error in raised if not isinstance(error, ProducerFailed)), raised[0])
    return results
