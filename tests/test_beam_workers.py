import collections
import logging
import threading

import apache_beam
from apache_beam.runners.portability.fn_api_runner import worker_handlers

import pipeline.stage  # noqa: F401 (installs the concurrent close, as every job does)
from pipeline import beam_workers
from pipeline.beam_memo import CHECKED_BEAM


class Handler:
    """A worker handler whose close returns only once every handler's close has begun: closed one
    after the other (Beam's way) the first one's barrier breaks and nothing is closed."""

    def __init__(self, barrier: threading.Barrier | None, fails: bool = False) -> None:
        self.barrier, self.fails, self.closed, self.thread = barrier, fails, False, ""

    def close(self) -> None:
        self.thread = threading.current_thread().name
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        if self.fails:
            raise RuntimeError("worker would not stop")
        self.closed = True


class Server:
    closed = False

    def close(self) -> None:
        self.closed = True


def manager(handlers: list[Handler]) -> worker_handlers.WorkerHandlerManager:
    made = worker_handlers.WorkerHandlerManager.__new__(worker_handlers.WorkerHandlerManager)
    made._cached_handlers = collections.defaultdict(list, {"python": handlers})
    made._workers_by_id = {str(i): handler for i, handler in enumerate(handlers)}
    made._grpc_server = Server()
    return made


def test_installed_by_the_stages_on_the_checked_beam():
    assert apache_beam.__version__ == CHECKED_BEAM  # else: re-read close_all and move the pin
    assert worker_handlers.WorkerHandlerManager.close_all is beam_workers.close_all


def test_workers_are_closed_at_the_same_time_and_everything_after_as_beam_does():
    barrier = threading.Barrier(3)
    handlers = [Handler(barrier) for _ in range(3)]
    made = manager(handlers)
    server = made._grpc_server
    made.close_all()
    assert all(handler.closed for handler in handlers)
    assert {handler.thread for handler in handlers} == {"close_worker"}
    assert server.closed and made._grpc_server is None
    assert made._cached_handlers == {} and made._workers_by_id == {}


def test_a_worker_that_fails_to_close_is_logged_and_the_others_still_close(caplog):
    barrier = threading.Barrier(2)
    good, bad = Handler(barrier), Handler(barrier, fails=True)
    made = manager([good, bad])
    # (a run in this process may have quietened Beam's runner loggers: pipeline/cli.py)
    with caplog.at_level(logging.ERROR, logger=worker_handlers.__name__):
        made.close_all()
    assert good.closed and not bad.closed
    assert "Error closing worker_handler" in caplog.text and "worker would not stop" in caplog.text
    assert made._grpc_server is None


def test_the_in_process_worker_is_closed_in_the_calling_thread():
    only = Handler(None)
    manager([only]).close_all()
    assert only.closed and only.thread == threading.current_thread().name


def test_beams_own_close_is_back_after_uninstall():
    beam_workers.uninstall()
    try:
        assert worker_handlers.WorkerHandlerManager.close_all is beam_workers.close_all.beam_original
    finally:
        assert beam_workers.install()
