"""``--workers N``: N hub processes on one machine, sharing one port.

Every worker is a whole hub (its own server, so SIGTERM still closes its streams with reconnect
advice) listening on the port with ``SO_REUSEPORT``: the kernel spreads new
connections over the workers. Workers share channels only through Redis, which is why ``--workers``
needs ``--redis``. This supervisor forwards SIGTERM and SIGINT to the workers, waits for them, and
restarts a worker killed by a signal (a worker that exits with an error stops them all: it would
fail again). Each worker says on a pipe when it serves; once all of them do, a supervisor started
with ``--takeover`` stops the hub it replaces (:class:`pushhub.takeover.Succession`). A worker
whose supervisor is gone (killed with SIGKILL, say) stops as on SIGTERM: it sees the end of a pipe
that only the supervisor holds open, so no worker is left serving, and holding the port, unsupervised.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType

from . import metrics, steering
from .config import Settings
from .startup import BACKLOG, FAILED, listening_socket

logger = logging.getLogger("pushhub")


def follow_supervisor(lifeline: Connection) -> None:
    """Stop this process as SIGTERM does once the supervisor, the only writer of ``lifeline``, is gone."""
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()  # nothing is ever sent: this returns at the end of the pipe
    os.kill(os.getpid(), signal.SIGTERM)


def run_worker(settings: Settings, serving: Connection, lifeline: Connection) -> None:
    """One worker; it says on ``serving`` when it serves, and stops when ``lifeline`` ends."""
    from .server import run

    threading.Thread(target=follow_supervisor, args=(lifeline,), name="pushhub-lifeline", daemon=True).start()
    try:
        sock = listening_socket(settings, shared=True)
        steering.listen_shared(sock, BACKLOG)
        run(settings, sock, lambda: serving.send(os.getpid()))
    except Exception:  # one log line (JSON with --log-format json), not multiprocessing's traceback
        logger.critical("worker %s failed", multiprocessing.current_process().pid, exc_info=True)
        sys.exit(FAILED)


class Supervisor:
    def __init__(self, settings: Settings, serving: Callable[[], None] | None = None) -> None:
        """``serving`` is called once every worker serves (a takeover stops the old hub then)."""
        self.settings = settings
        self.serving = serving
        self.starting: list[Connection] = []  # the pipes of workers that do not serve yet
        self.served = 0
        self.context = multiprocessing.get_context("spawn")
        self.workers: list[BaseProcess] = []
        self.stopping = False
        self.failed = 0  # the exit code of a worker that failed by itself
        self.lifeline, self.alive = self.context.Pipe(duplex=False)  # the end of ``alive`` is this process's end

    def _start_worker(self) -> BaseProcess:
        reader, writer = self.context.Pipe(duplex=False)
        worker = self.context.Process(target=run_worker, args=(self.settings, writer, self.lifeline),
                                      name="pushhub-worker")
        worker.start()
        writer.close()
        self.starting.append(reader)
        return worker

    def _started(self, ready: Sequence[object]) -> None:
        """Count the workers that said they serve; once all of them do, call ``serving``."""
        for reader in [r for r in self.starting if r in ready]:
            self.starting.remove(reader)
            with contextlib.suppress(EOFError):  # EOF: the worker ended before it served
                reader.recv()
                self.served += 1
            reader.close()
        if self.serving is not None and self.served >= self.settings.workers:
            self.serving()
            self.serving = None

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        for worker in self.workers:
            if worker.is_alive() and worker.pid is not None:
                worker.terminate()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        with tempfile.TemporaryDirectory(prefix="pushhub-metrics-") as shared:
            os.environ.setdefault(metrics.MULTIPROC_ENV, shared)  # the workers' metrics, added up by any of them
            return self._run()

    def _run(self) -> int:
        self.workers = [self._start_worker() for _ in range(self.settings.workers)]
        logger.info("started %d workers on %s:%s", len(self.workers), self.settings.host, self.settings.port)
        while any(worker.is_alive() for worker in self.workers):
            ready = multiprocessing.connection.wait(
                [*self.starting, *(w.sentinel for w in self.workers if w.is_alive())], timeout=1.0)
            self._started(ready)
            if self.stopping:
                continue
            for index, worker in enumerate(self.workers):
                if worker.is_alive():
                    continue
                if worker.exitcode is not None and worker.exitcode > 0:
                    logger.error("worker %s failed with exit code %s; stopping", worker.pid, worker.exitcode)
                    self.failed = worker.exitcode
                    self._stop(signal.SIGTERM, None)
                    break
                logger.warning("worker %s was killed (%s); starting another", worker.pid, worker.exitcode)
                if worker.pid is not None:
                    metrics.mark_process_dead(worker.pid)
                self.workers[index] = self._start_worker()
        for worker in self.workers:
            worker.join()
        return self.failed
