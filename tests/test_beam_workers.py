import collections
import logging
import threading

import apache_beam
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.transforms import environments

import pipeline.stage  # noqa: F401 (installs the concurrent close, as every job does)
from pipeline import beam_workers
from pipeline.beam_memo import CHECKED_BEAM


class InProcess:
    """A worker handler that runs in this process (as Beam's embedded worker)."""

    def __init__(self, barrier: threading.Barrier | None = None, fails: bool = False) -> None:
        self.barrier, self.fails, self.closed, self.thread = barrier, fails, False, ""

    def close(self) -> None:
        self.thread = threading.current_thread().name
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        if self.fails:
            raise RuntimeError("worker would not stop")
        self.closed = True


class Handler(InProcess, worker_handlers.SubprocessSdkWorkerHandler):
    """A worker process's handler (Beam's class, its own start-up left out) whose close returns only once
    every such handler's close has begun: closed one after the other (Beam's way) the first one's barrier
    breaks and nothing is closed."""

    def __init__(self, barrier: threading.Barrier | None, fails: bool = False) -> None:
        InProcess.__init__(self, barrier, fails)


class Server(worker_handlers.GrpcServer):
    """Beam's gRPC server (its own start-up, three servers, left out) as the manager closes it."""

    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def manager(handlers: list[InProcess]) -> worker_handlers.WorkerHandlerManager:
    made = worker_handlers.WorkerHandlerManager.__new__(worker_handlers.WorkerHandlerManager)
    made._cached_handlers = collections.defaultdict(list, {"python": handlers})
    made._workers_by_id = {str(i): handler for i, handler in enumerate(handlers)}
    made._grpc_server = Server()
    return made


def test_installed_by_the_stages_on_the_checked_beam():
    assert apache_beam.__version__ == CHECKED_BEAM  # else: re-read close_all and move the pin
    assert worker_handlers.WorkerHandlerManager.close_all is beam_workers.close_all
    assert environments.SubprocessSDKEnvironment.from_command_string.__func__ is beam_workers._from_command_string


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


def test_in_process_workers_are_closed_in_the_calling_thread_one_by_one():
    """No process to wait for (the default runner, in_memory, multi_threading): as Beam closes them."""
    workers = [InProcess(), InProcess()]
    manager(workers).close_all()
    assert all(worker.closed and worker.thread == threading.current_thread().name for worker in workers)
    # beside worker processes (not a mix Beam makes, but each kind is closed its own way)
    barrier = threading.Barrier(2)
    mixed = [InProcess(), Handler(barrier), Handler(barrier)]
    manager(mixed).close_all()
    assert [worker.closed for worker in mixed] == [True, True, True]
    assert [worker.thread for worker in mixed] == [threading.current_thread().name, "close_worker", "close_worker"]


def test_beams_own_close_is_back_after_uninstall():
    beam_workers.uninstall()
    try:
        assert worker_handlers.WorkerHandlerManager.close_all is beam_workers.close_all.beam_original
        command = environments.SubprocessSDKEnvironment.from_command_string(beam_workers.BEAMS_WORKER_COMMAND)
        assert command.command_string == beam_workers.BEAMS_WORKER_COMMAND  # Beam's worker again
    finally:
        assert beam_workers.install()
