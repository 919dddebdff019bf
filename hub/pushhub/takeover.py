"""One process per data directory, and restarts without a window (``pushhub serve --takeover``).

Every single-process hub listens with ``SO_REUSEPORT`` (after checking that nothing else holds the
port, unless it is taking over) and holds an exclusive lock on ``{data_dir}/writer.lock`` while it
has the SQLite files open, so a second hub started by mistake on the same data directory is
refused instead of writing beside the first. Its pid is in ``{data_dir}/pushhub.pid``.

``--takeover`` starts a new hub beside the running one:

1. the new process binds the port beside the old one and listens at once: from then on the kernel
   queues part of the new connections for it, and none is refused;
2. it sends SIGTERM to the old process, which stops accepting, closes its streams with reconnect
   advice, lets requests in flight finish, commits and closes its SQLite files and exits;
3. the new process waits for the writer lock (the old one's exit releases it), then opens the data
   and serves, starting with the connections that queued meanwhile.

``--takeover`` is for one process on a data directory (SQLite); a hub on ``--memory`` has nothing
to hand over, and hubs on ``--redis`` (one process or ``--workers``) are not covered yet.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
from typing import IO

from .config import Settings
from .startup import ADDRESS, STORAGE, StartupError, listening_socket

BACKLOG = 2048
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
    sock.listen(BACKLOG)
    return sock


def hold_data_dir(settings: Settings) -> IO[str] | None:
    """Stop the predecessor when taking over, then lock the data directory for this process (the
    lock lasts as long as the returned file stays open, and ends with the process at the latest).
    A hub without SQLite files (``--memory``, ``--redis``) holds nothing."""
    if not settings.uses_sqlite:
        return None
    os.makedirs(settings.data_dir, exist_ok=True)
    pid_path = os.path.join(settings.data_dir, PID_FILE)
    if settings.takeover:
        predecessor = _read_pid(pid_path)
        if predecessor is not None and predecessor != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(predecessor, signal.SIGTERM)
    lock = open(os.path.join(settings.data_dir, LOCK_FILE), "a+")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | (0 if settings.takeover else fcntl.LOCK_NB))
    except BlockingIOError as exc:
        lock.close()
        raise DataDirInUse(f"another hub (pid {_read_pid(pid_path)}) writes {settings.data_dir}: stop it, "
                           "or start this one with --takeover to replace it") from exc
    with open(pid_path + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(pid_path + ".tmp", pid_path)
    return lock


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None
