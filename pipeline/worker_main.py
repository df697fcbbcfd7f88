"""The local runner's SDK worker process: Beam's own harness, ended without the interpreter's teardown.

With `--direct_running_mode=multi_processing` each worker is `python -m
apache_beam.runners.worker.sdk_worker_main`, and the job's end waits for every worker process to
exit. Once the harness has returned (every bundle done and answered, the DoFns torn down, the log
handler flushed) the interpreter still spends ~0.45 s tearing down the modules of Beam, gRPC,
Pillow and the stages object by object, and the runner waits for that. `beam_workers` starts
workers with this module instead, which runs the same harness and, when it returns normally, ends
the process the way `multiprocessing` ends its forked children: non-daemon threads joined
(`threading._shutdown`), the `atexit` callbacks run (logging's flush among them), the standard
streams flushed, then `os._exit(0)`. A harness that fails raises as before: the interpreter then
prints the error and exits with status 1, as Beam's worker does.

A worker ignores SIGINT: Ctrl-C reaches the whole process group, and the run, which handles it, ends its workers.

The worker also raises the collector's young threshold (`gc_tuning`) before importing Beam, which
otherwise happens only once a stage module is unpickled (~0.05-0.1 s of the ~1.3 s import).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable

from pipeline import gc_tuning


def end_quickly(exit_now: Callable[[int], None] = os._exit) -> None:
    """What the interpreter's exit does that a worker needs, then `exit_now(0)`; the rest (each
    module's objects freed one by one) is left to the operating system. On a Python without
    `threading._shutdown` (there since 3.x; checked on 3.11) it returns, and the interpreter exits its own way."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:
        return
    shutdown()  # joins the non-daemon threads (and the thread pools' workers), as at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    exit_now(0)


def main(argv: list[str], harness: Callable[[list[str]], None] | None = None,
         exit_now: Callable[[int], None] = os._exit) -> None:
    gc_tuning.install()
    if harness is None:
        from apache_beam.runners.worker import sdk_worker_main  # after the threshold: ~300,000 objects
        harness = sdk_worker_main.main
    harness(argv)  # an error propagates: the normal exit, status 1
    end_quickly(exit_now)


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches every process of its group, these workers too: each printed a KeyboardInterrupt's
    # traceback, and one that survived it lived on after the run. The run decides: a stopped run ends its workers
    # (io/stopping.py).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    main(sys.argv)
