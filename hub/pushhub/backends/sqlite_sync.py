"""``--fsync`` off the event loop: the WAL made durable by a thread of its own, for every commit
that came before each of its syncs at once.

With ``synchronous=FULL`` SQLite fsyncs the WAL inside each ``COMMIT``, on the thread that commits:
the event loop, stalled for as long as the disk takes (2-15 ms here) at every group commit. The
hub's connection stays at ``synchronous=NORMAL`` instead (a commit writes its frames to the WAL,
and checkpoints still sync the WAL before they copy it and the database after), and
:class:`Syncer` ``fdatasync``\\ s the WAL file. What must wait for durability (the answer to a
publisher, the fan-out, what the webhook intake does once its deliveries are in) is handed to
:meth:`Syncer.after` right after its commit and runs on the loop once a sync that began after that
commit is done: it is then in the WAL on disk as it would be after a ``FULL`` commit, and one sync
covers every commit made while the one before it ran.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from ..errors import Unavailable
from .embedded import Durable

logger = logging.getLogger("pushhub")


class Syncer:
    def __init__(self, wal_path: str) -> None:
        self.fd = os.open(wal_path, os.O_RDWR)
        self._lock = threading.Lock()
        self._waiting: list[Durable] = []
        self._due = threading.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="pushhub-fsync", daemon=True)
        self._thread.start()

    def after(self, callback: Durable) -> None:
        """Call ``callback`` on this event loop once what was committed until now is on disk."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        with self._lock:
            self._waiting.append(callback)
        self._due.set()

    def sync(self) -> None:
        """Make what was committed until now durable, on the calling thread."""
        os.fdatasync(self.fd)

    def close(self) -> None:
        """Stop the thread; what still waits is synced and called here."""
        self._stopping = True
        self._due.set()
        self._thread.join()
        with self._lock:
            waiting, self._waiting = self._waiting, []
        self._call(waiting, self._synced())
        os.close(self.fd)

    def _run(self) -> None:
        while True:
            self._due.wait()
            self._due.clear()
            if self._stopping:
                return
            with self._lock:
                waiting, self._waiting = self._waiting, []
            if waiting:
                error = self._synced()
                assert self._loop is not None
                try:
                    self._loop.call_soon_threadsafe(self._call, waiting, error)
                except RuntimeError:  # the loop is closed: nobody is waiting any more
                    return

    def _synced(self) -> Exception | None:
        try:
            self.sync()
        except OSError as exc:
            logger.error("could not fsync the WAL: %s", exc)
            return Unavailable(f"could not make the commit durable: {exc}")
        return None

    @staticmethod
    def _call(waiting: list[Durable], error: Exception | None) -> None:
        for callback in waiting:
            callback(error)
