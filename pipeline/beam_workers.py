"""Local worker processes stopped together, not one after the other, and each quickly.

With `--direct_running_mode=multi_processing` Beam's local runner ends a job by closing each SDK
worker in turn (`WorkerHandlerManager.close_all`): it tells the worker it is done, then waits for
that process to exit (~0.65 s here: the interpreter tears down Beam, gRPC and the stages' modules)
before it tells the next one. Closing the worker processes from threads at once lets their exits
overlap (Beam's own lock still orders the brief closes of their control connections): with two
workers the end of every job is ~0.6 s shorter (about 2% of a 2,000-image run on two cores), with N
workers (N-1) x ~0.65 s. Only worker processes are closed this way; in-process workers (the default
runner, `in_memory`, `multi_threading`) have no process to wait for and are closed one by one in the
calling thread, as Beam does. Each is closed exactly as before, and an error closing one is logged as
Beam logs it, without stopping the others.

Each worker process also ends without the interpreter's teardown: the command the local runner
starts workers with (`python -m apache_beam.runners.worker.sdk_worker_main`, built in
`FnApiRunner.run_pipeline`) is replaced by OUR_WORKER_COMMAND, which runs `pipeline.worker_main`
(or Beam's worker where a fresh interpreter cannot import it): the same harness, and once it has
returned normally, an exit the way `multiprocessing`'s children exit (see that module): the wait
for each worker's exit falls from ~0.5 s to a few hundredths. Only that exact command is replaced;
an environment the user chose (`--environment_type`) is left alone.

Installed only on the Beam version this was checked against (`beam_memo.CHECKED_BEAM`): on any other
the workers are stopped Beam's way, only more slowly.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
from typing import Any

import apache_beam
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.transforms import environments

from pipeline.beam_memo import CHECKED_BEAM

_LOGGER = logging.getLogger(worker_handlers.__name__)  # Beam's own logger for these errors
_original_close_all = getattr(worker_handlers.WorkerHandlerManager.close_all, "beam_original",
                              worker_handlers.WorkerHandlerManager.close_all)


# The worker command FnApiRunner builds for multi_processing, character for character, and ours. Ours
# runs pipeline.worker_main where a fresh interpreter in the job's folder finds it, else Beam's own
# worker: a worker process that cannot start is never noticed by the local runner, which then waits
# for it for ever (a `pipeline` folder without worker_main in the working directory, or the package
# reached only through a sys.path edit of the launching process).
BEAMS_WORKER_MODULE = "apache_beam.runners.worker.sdk_worker_main"
BEAMS_WORKER_COMMAND = f"{sys.executable} -m {BEAMS_WORKER_MODULE}"
WORKER_MODULE_CHOICE = (f"'pipeline.worker_main' if u.find_spec('pipeline') and u.find_spec('pipeline.worker_main') "
                        f"else '{BEAMS_WORKER_MODULE}'")
OUR_WORKER_COMMAND = (f'{sys.executable} -c "import importlib.util as u, runpy; '
                      f"runpy.run_module({WORKER_MODULE_CHOICE}, run_name='__main__', alter_sys=True)\"")
_installed_from_command_string = environments.SubprocessSDKEnvironment.__dict__["from_command_string"]
_original_from_command_string = getattr(_installed_from_command_string.__func__, "beam_original",
                                        _installed_from_command_string)


def _from_command_string(cls: type, command_string: str) -> environments.SubprocessSDKEnvironment:
    """`SubprocessSDKEnvironment.from_command_string`, with the local runner's worker command swapped."""
    if command_string == BEAMS_WORKER_COMMAND:
        command_string = OUR_WORKER_COMMAND
    return _original_from_command_string.__func__(cls, command_string)


def _close(handler: Any) -> None:
    try:
        handler.close()
    except Exception:  # as Beam's close_all: a worker that fails to close does not keep the others open
        _LOGGER.error("Error closing worker_handler %s", handler, exc_info=True)


def close_all(self: Any) -> None:
    """`WorkerHandlerManager.close_all`, with the worker processes' closes run at the same time."""
    handlers = [handler for handler_list in self._cached_handlers.values() for handler in set(handler_list)]
    processes = [handler for handler in handlers if isinstance(handler, worker_handlers.SubprocessSdkWorkerHandler)]
    threads = [threading.Thread(target=_close, args=(handler,), name="close_worker") for handler in processes]
    for thread in threads:
        thread.start()
    for handler in handlers:
        if handler not in processes:
            _close(handler)
    for thread in threads:
        thread.join()
    self._cached_handlers = collections.defaultdict(list)
    self._workers_by_id = {}
    if self._grpc_server is not None:
        self._grpc_server.close()
        self._grpc_server = None


close_all.beam_original = _original_close_all  # type: ignore[attr-defined]
_from_command_string.beam_original = _original_from_command_string  # type: ignore[attr-defined]


def install() -> bool:
    """Puts the concurrent close in place (idempotent); False, leaving Beam as it is, on an unchecked
    version."""
    if apache_beam.__version__ != CHECKED_BEAM:
        return False
    # Beam's methods replaced on purpose; the classmethod wraps the function as Beam's own is wrapped
    worker_handlers.WorkerHandlerManager.close_all = close_all  # type: ignore[method-assign]
    environments.SubprocessSDKEnvironment.from_command_string = classmethod(  # type: ignore[method-assign,assignment]
        _from_command_string)
    return True


def uninstall() -> None:
    """Beam's own close and worker command again (for tests that compare the two)."""
    # Beam's own methods again (the original is the classmethod object itself, from the class's __dict__)
    worker_handlers.WorkerHandlerManager.close_all = _original_close_all  # type: ignore[method-assign]
    environments.SubprocessSDKEnvironment.from_command_string = _original_from_command_string  # type: ignore[method-assign]
