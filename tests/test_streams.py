"""One pass over records for several writers, reads ahead in order (io/streams.py)."""

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.io.files import write_atomically
from pipeline.io.streams import ProducerFailed, consume_together, read_ahead
from tests.conftest import peak_bytes_consuming


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(), max_size=40), st.integers(min_value=0, max_value=6),
       st.lists(st.floats(min_value=0, max_value=0.002), min_size=1, max_size=5))
def test_read_ahead_gives_every_result_in_order(items, depth, delays):
    def slow_square(item: int) -> int:
        time.sleep(delays[item % len(delays)])  # later items finish first, now and then
        return item * item

    assert list(read_ahead(slow_square, items, depth)) == [item * item for item in items]


def test_read_ahead_raises_where_the_failed_call_would_have_been_and_starts_no_more():
    started = []

    def read(item: int) -> int:
        started.append(item)
        if item == 5:
            raise OSError("gone")
        return item

    results = []
    with pytest.raises(OSError, match="gone"):
        for result in read_ahead(read, range(1000), depth=4):
            results.append(result)
    assert results == [0, 1, 2, 3, 4]
    assert max(started) < 5 + 4 + 1  # at most `depth` calls beyond the failed one were ever submitted


def test_read_ahead_keeps_at_most_depth_calls_running():
    running, most = 0, 0
    lock = threading.Lock()

    def read(item: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.002)
        with lock:
            running -= 1
        return item

    assert list(read_ahead(read, range(60), depth=3)) == list(range(60))
    assert 1 < most <= 3


def _collect(records):
    return list(records)


def _count(records):
    return sum(1 for _ in records)


def _first(count):
    def take(records):
        taken = []
        for record in records:
            if len(taken) == count:
                break
            taken.append(record)
        return taken
    return take


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(), max_size=60), st.integers(min_value=1, max_value=4),
       st.integers(min_value=1, max_value=5), st.integers(min_value=0, max_value=70))
def test_every_consumer_sees_every_item_in_order_and_one_may_stop_early(items, consumers, depth, stop):
    # The oracle: each consumer run on its own list of the items.
    wanted = [_collect] * consumers + [_first(stop)]
    assert consume_together(iter(items), wanted, depth=depth) == [consumer(list(items)) for consumer in wanted]


def test_the_items_are_read_once():
    reads = []

    def items():
        for item in range(100):
            reads.append(item)
            yield item

    assert consume_together(items(), [_collect, sum, _count], depth=2) == [list(range(100)), 4950, 100]
    assert reads == list(range(100))


def test_a_failed_read_makes_every_consumer_fail_and_no_file_appears(tmp_path):
    def items():
        yield from (b"a", b"b", b"c")
        raise OSError("staged image gone")

    def writer(name):
        def write(records):
            return write_atomically(str(tmp_path / name), lambda handle: [handle.write(r) for r in records])
        return write

    seen = []

    def watcher(records):
        try:
            for record in records:
                seen.append(record)
        except ProducerFailed:
            seen.append("failed")
            raise

    with pytest.raises(OSError, match="staged image gone"):
        consume_together(items(), [writer("x.tar"), writer("x.parquet"), watcher], depth=1)
    assert seen == [b"a", b"b", b"c", "failed"]  # told it failed, never that the records ended
    assert not (tmp_path / "x.tar").exists() and not (tmp_path / "x.parquet").exists()


def test_a_failed_consumer_stops_the_reading_and_its_own_error_is_raised():
    reads = []

    def items():
        for item in range(10_000):
            reads.append(item)
            yield item

    def broken(records):
        for record in records:
            if record == 3:
                raise ValueError("cannot write record 3")

    with pytest.raises(ValueError, match="record 3"):  # not the ProducerFailed the others got
        consume_together(items(), [_collect, broken, _collect], depth=1)
    assert len(reads) < 100


def test_one_consumer_runs_in_the_calling_thread():
    threads = []
    consume_together([1], [lambda records: threads.append(threading.current_thread())])
    assert threads == [threading.current_thread()]


def test_memory_is_a_few_queues_of_items_whatever_their_number():
    # 300 items of 256 KiB (75 MiB) through three consumers: at most the queues' items are alive at once.
    size, depth = 256 * 1024, 4

    def items():
        for index in range(300):
            yield bytes([index % 256]) * size

    def checksum(records):
        return sum(record[0] for record in records)

    def run():
        yield consume_together(items(), [checksum, checksum, _count], depth=depth)

    peak = peak_bytes_consuming(run())
    assert peak < (3 * (depth + 2) + 4) * size, peak / size


def test_a_failed_consumer_closes_the_unfinished_reading_and_its_reads_in_flight():
    closed = []

    def items():
        try:
            yield from range(10_000)
        finally:
            closed.append("closed")

    def broken(records):
        for record in records:
            if record == 3:
                raise ValueError("cannot write record 3")

    reads = read_ahead(lambda item: item, items(), depth=4)
    with pytest.raises(ValueError, match="record 3"):
        consume_together(reads, [_collect, broken], depth=1)
    assert closed == ["closed"]  # read_ahead closed its own source in turn: no reads left running
    assert not [t for t in threading.enumerate() if t.name.startswith("read-ahead")]


def test_a_consumer_thread_that_cannot_start_ends_the_ones_started(monkeypatch):
    start = threading.Thread.start

    def second_fails(thread):
        if thread.name == "consumer-1":
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", second_fails)
    with pytest.raises(RuntimeError, match="can't start"):
        consume_together(iter(range(100)), [_collect, _collect, _collect], depth=2)
    monkeypatch.undo()
    assert not [t for t in threading.enumerate() if t.name.startswith("consumer-")]


def test_a_source_whose_close_fails_still_ends_every_consumer():
    class Source:
        def __init__(self):
            self._items = iter(range(1000))

        def __iter__(self):
            return self

        def __next__(self):
            return next(self._items)

        def close(self):
            raise OSError("close failed")

    def broken(records):
        for record in records:
            if record == 2:
                raise ValueError("cannot write record 2")

    with pytest.raises(OSError, match="close failed"):
        consume_together(Source(), [_collect, broken], depth=1)
    assert not [t for t in threading.enumerate() if t.name.startswith("consumer-")]
