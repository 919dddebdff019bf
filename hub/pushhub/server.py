"""Running the hub under uvicorn, with a shutdown that does not wait forever for open streams."""

from __future__ import annotations

import logging
import socket

import uvicorn

from . import disconnect, logs, startup, takeover
from .app import PushHub, build_access
from .config import Settings

logger = logging.getLogger("pushhub")


class HubServer(uvicorn.Server):
    """On SIGTERM, stop accepting, then close every stream with reconnect advice before uvicorn
    waits for connections to finish (an open stream never finishes by itself)."""

    def __init__(self, config: uvicorn.Config, app: PushHub) -> None:
        super().__init__(config)
        self.pushhub = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.pushhub.readiness.drain()
        for server in self.servers:
            server.close()
        self.pushhub.hub.close_connections(disconnect.SHUTDOWN)
        self.pushhub.dashboard.close()
        await super().shutdown(sockets)


def uvicorn_config(app: PushHub, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        lifespan="on",
        access_log=settings.access_log,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
        log_level="info",
        log_config=None,  # uvicorn's loggers propagate to the one handler of pushhub.logs
    )


class QuietConnections(logging.Filter):
    """Drops the lines uvicorn and websockets log for every WebSocket opened and closed, which
    are an access log by another name: they are kept only with ``--access-log`` (writing them cost
    a tenth of the hub's CPU while clients connected)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in _PER_CONNECTION


_PER_CONNECTION = frozenset({'%s - "WebSocket %s" [accepted]', "connection open", "connection closed"})


def run(settings: Settings, sock: socket.socket) -> None:
    """One hub process, serving on ``sock`` (bound already, so a port in use fails before start)."""
    logs.configure(settings.log_format)
    app = PushHub(settings)
    config = uvicorn_config(app, settings)
    if not settings.access_log:
        logging.getLogger("uvicorn.error").addFilter(QuietConnections())
    HubServer(config, app).run(sockets=[sock])


def serve(settings: Settings) -> int:
    logs.configure(settings.log_format)
    build_access(settings)  # credentials and key files load (or the error is the one line)
    try:
        startup.check_storage(settings)
        startup.check_redis(settings)
        if settings.workers > 1:  # fail here if anything holds the port; each worker binds its own
            startup.listening_socket(settings, shared=False).close()
        else:
            sock = takeover.listen(settings)
            data_dir_lock = takeover.hold_data_dir(settings)  # noqa: F841 - held until the process ends
    except startup.StartupError as exc:
        logger.error("cannot start: %s", exc.message, extra={"exit_code": exc.exit_code})
        return exc.exit_code
    logger.info("%s", startup.banner(settings))
    if not (settings.publisher_keys or settings.jwt_secrets or settings.jwt_public_keys):
        logger.warning("no publisher key configured: anyone who can reach %s:%s can publish",
                       settings.host, settings.port)
    if settings.workers > 1:
        from .workers import Supervisor

        return Supervisor(settings).run()
    run(settings, sock)
    return 0
