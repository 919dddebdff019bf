"""One process per data directory, and restarts without a window (``pushhub serve --takeover``).

Every single-process hub listens with ``SO_REUSEPORT`` (after checking that nothing else holds the
port, unless it is taking over). A hub on SQLite holds an exclusive lock on
``{data_dir}/writer.lock`` while it has the SQLite file open, so a second hub started by mistake on
the same data directory is refused instead of writing beside the first; its pid is in
``{data_dir}/pushhub.pid``. A hub on Redis (one process, or the supervisor of ``--workers``) has
nothing to hand over but its port: it holds ``{data_dir}/pushhub-{port}.lock`` and writes its pid
to ``{data_dir}/pushhub-{port}.pid``, so that a successor can find it.

``--takeover`` on SQLite starts a new hub beside the running one:

1. the new process binds the port beside the old one and listens at once: from then on the kernel
   queues every new connection for it (:mod:`~pushhub.steering`), and none is refused;
2. it sends SIGTERM to the old process, which stops accepting, closes its streams with reconnect
   advice, lets requests in flight finish, commits and closes its SQLite file and exits;
3. the new process waits for the writer lock (the old one's exit releases it), then opens the data
   and serves, starting with the connections that queued meanwhile.

``--takeover`` on Redis has no writer to wait for, so the new hub serves first:

1. the new process binds the port beside the old one (steering every new connection to itself), or
   every new worker binds it beside the old ones (sharing new connections with them by the hash),
   and starts serving;
2. once it serves (every worker has started), it sends SIGTERM to the old process (the old
   supervisor, which passes it to its workers), which drains as above;
3. when the old process has exited, the new one takes the lock and writes its pid.

A hub on ``--memory`` has nothing to hand over, and is refused ``--takeover``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import threading
from typing import IO

from . import steering
from .config import Settings
from .startup import ADDRESS, BACKLOG, STORAGE, StartupError, listening_socket

logger = logging.getLogger("pushhub")

LOCK_FILE = "writer.lock"
PID_FILE = "pushhub.pid"


class DataDirInUse(StartupError):
    code = "data_dir_in_use"

    def __init__(self, message: str) -> None:
        super().__init__(STORAGE, message)


def listen(settings: Settings) -> socket.socket:
    """The listening socket of a single-process hub, beside a predecessor when taking over."""
    try:
        if not settings.takeover:
            listening_socket(settings, shared=False).close()  # fail clearly if anything holds the port
        sock = listening_socket(settings, shared=True)
    except StartupError as exc:
        hint = "" if settings.takeover or exc.exit_code != ADDRESS else (
            " (to replace a hub running there, start this one with --takeover)")
        raise StartupError(exc.exit_code, exc.message + hint) from exc
    if settings.takeover:
        steering.listen_first(sock, BACKLOG)
    else:
        sock.listen(BACKLOG)
    return sock


def hold_data_dir(settings: Settings) -> IO[str] | None:
    """Stop the predecessor when taking over, then lock the data directory for this process (the
    lock lasts as long as the returned file stays open, and ends with the process at the latest).
    A hub without SQLite files (``--memory``, ``--redis``) holds nothing here."""
    if not settings.uses_sqlite:
        return None
    os.makedirs(settings.data_dir, exist_ok=True)
    pid_path = os.path.join(settings.data_dir, PID_FILE)
    lock = open(os.path.join(settings.data_dir, LOCK_FILE), "a+")  # noqa: SIM115 - held for the process's life
    if not _try_lock(lock):
        if not settings.takeover:
            lock.close()
            raise DataDirInUse(f"another hub (pid {_read_pid(pid_path)}) writes {settings.data_dir}: stop it, "
                               "or start this one with --takeover to replace it")
        _stop(_read_pid(pid_path))
        fcntl.flock(lock, fcntl.LOCK_EX)
    _write_pid(pid_path)
    return lock


class Succession:
    """Who serves this port for a hub with no SQLite file to hand over (``--redis``): its lock and
    pid files in the data directory, named by the port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        base = os.path.join(settings.data_dir, f"pushhub-{settings.port}")
        self.lock_path, self.pid_path = base + ".lock", base + ".pid"
        self.lock: IO[str] | None = None
        self.held = False
        self.predecessor: int | None = None

    def claim(self) -> Succession:
        """Take the lock, or with ``--takeover`` note the hub holding it; without ``--takeover`` a
        directory that cannot be written only means no successor will find this hub."""
        try:
            os.makedirs(self.settings.data_dir, exist_ok=True)
            self.lock = open(self.lock_path, "a+")  # noqa: SIM115 - held for the process's life
        except OSError as exc:
            message = f"--data-dir {self.settings.data_dir}: cannot keep this hub's pid there ({exc.strerror})"
            if self.settings.takeover:
                raise StartupError(STORAGE, message + ", where --takeover finds the hub it replaces") from exc
            logger.warning("%s: a hub started with --takeover will not find this one", message)
            return self
        if _try_lock(self.lock):
            self._held()
        elif self.settings.takeover:
            self.predecessor = _read_pid(self.pid_path)
        else:
            self.lock.close()
            raise DataDirInUse(f"another hub (pid {_read_pid(self.pid_path)}) serves port {self.settings.port} "
                               f"from {self.settings.data_dir}: stop it, or start this one with --takeover")
        return self

    def serving(self) -> None:
        """This hub serves now: stop the predecessor, and hold the lock once it has exited."""
        if self.lock is None or self.held:
            return
        logger.info("serving: stopping the hub this one takes over from (pid %s)", self.predecessor)
        _stop(self.predecessor)
        threading.Thread(target=self._wait, name="pushhub-takeover", daemon=True).start()

    def _wait(self) -> None:
        assert self.lock is not None
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self._held()

    def _held(self) -> None:
        self.held = True
        _write_pid(self.pid_path)


def _try_lock(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _stop(pid: int | None) -> None:
    """SIGTERM to the hub that holds the lock (only ever one whose lock is held, so never a stale pid)."""
    if pid is not None and pid != os.getpid():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _write_pid(path: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(path + ".tmp", path)


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None
