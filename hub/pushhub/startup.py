"""What ``pushhub serve`` checks before it starts, the one line it logs when it does, and the exit
codes of every ``pushhub`` command.

A start-up failure is one line naming the flag to fix and exits with its own code:

====  =====================================================================================
code  meaning
====  =====================================================================================
0     done (a server stopped by SIGTERM or SIGINT, or a client command that succeeded)
1     the hub answered with an error (client commands), or a worker failed
2     bad flag, environment variable or configuration file
3     storage unusable (``--data-dir`` not writable, or its database cannot be opened)
4     Redis unreachable at start (``--redis``)
5     cannot listen (``--host``/``--port`` in use or not an address of this machine)
6     the hub cannot be reached (client commands)
130   interrupted (Ctrl-C in a client command)
====  =====================================================================================
"""

from __future__ import annotations

import os
import socket
import sqlite3

from . import __version__
from .config import Settings, mask_url
from .errors import PushHubError
from .extras import needs

OK, FAILED, USAGE, STORAGE, REDIS, ADDRESS, UNREACHABLE, INTERRUPTED = 0, 1, 2, 3, 4, 5, 6, 130
CHECK_TIMEOUT = 5.0


class StartupError(PushHubError):
    """The hub cannot start; ``exit_code`` is one of the codes above."""

    code = "startup_failed"

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_storage(settings: Settings) -> None:
    if settings.redis or settings.memory:
        return
    where = f"--data-dir {settings.data_dir}"
    try:
        os.makedirs(settings.data_dir, exist_ok=True)
    except OSError as exc:
        raise StartupError(STORAGE, f"{where}: cannot create it ({exc.strerror})") from exc
    if not os.access(settings.data_dir, os.W_OK | os.X_OK):
        raise StartupError(STORAGE, f"{where}: not writable by this user (uid {os.getuid()})")
    path = os.path.join(settings.data_dir, "pushhub.db")
    try:
        db = sqlite3.connect(path, timeout=CHECK_TIMEOUT)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise StartupError(STORAGE, f"{where}: cannot open {path}: {exc}") from exc


def check_redis(settings: Settings) -> None:
    if not settings.redis:
        return
    with needs("redis", "--redis"):
        import redis
    try:
        client = redis.Redis.from_url(settings.redis, socket_connect_timeout=CHECK_TIMEOUT,
                                      socket_timeout=CHECK_TIMEOUT)
    except ValueError as exc:
        raise StartupError(USAGE, f"--redis {mask_url(settings.redis)}: {exc}") from exc
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StartupError(REDIS, f"--redis {mask_url(settings.redis)}: unreachable ({exc})") from exc
    finally:
        client.close()


BACKLOG = 2048  # connections the kernel queues on a listening socket before one is accepted


def listening_socket(settings: Settings, *, shared: bool) -> socket.socket:
    """A socket bound to the hub's address; other workers may bind it too when ``shared``."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise StartupError(ADDRESS, f"--host {settings.host} --port {settings.port}: cannot listen "
                                    f"({exc.strerror})") from exc
    except (socket.gaierror, UnicodeError) as exc:
        sock.close()
        raise StartupError(USAGE, f"--host {settings.host}: not an address ({exc})") from exc
    return sock


def auth_mode(settings: Settings) -> str:
    modes = [name for name, on in (("publisher-keys", settings.publisher_keys), ("admin-keys", settings.admin_keys),
                                   ("jwt", settings.jwt_secrets or settings.jwt_public_keys)) if on]
    return "+".join(modes) if modes else "open (anyone who reaches the port may publish)"


def banner(settings: Settings) -> str:
    """The one start-up line: version, backend and data, URLs, auth mode, dashboard."""
    if settings.redis:
        backend = f"redis {mask_url(settings.redis)}" + (" (cluster)" if settings.redis_cluster else "")
    elif settings.memory:
        backend = "memory (nothing is kept across restarts)"
    else:
        backend = f"sqlite {os.path.abspath(os.path.join(settings.data_dir, 'pushhub.db'))}"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    base = f"http://{host}:{settings.port}"
    return (f"pushhub {__version__} listening on {base} (ws://{host}:{settings.port}/v1/ws, {base}/v1/sse); "
            f"backend {backend}; auth {auth_mode(settings)}; workers {settings.workers}; "
            f"dashboard {base}/dashboard; API {base}/docs; log format {settings.log_format}")
