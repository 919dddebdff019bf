"""Running the hub under uvicorn, with a shutdown that does not wait forever for open streams."""

from __future__ import annotations

import logging
import socket

import uvicorn

from . import disconnect, takeover
from .app import PushHub
from .config import Settings


class HubServer(uvicorn.Server):
    """On SIGTERM, stop accepting, then close every stream with reconnect advice before uvicorn
    waits for connections to finish (an open stream never finishes by itself)."""

    def __init__(self, config: uvicorn.Config, app: PushHub) -> None:
        super().__init__(config)
        self.pushhub = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
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
    )


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class QuietConnections(logging.Filter):
    """Drops the lines uvicorn and websockets log for every WebSocket opened and closed, which
    are an access log by another name: they are kept only with ``--access-log`` (writing them cost
    a tenth of the hub's CPU while clients connected)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in _PER_CONNECTION


_PER_CONNECTION = frozenset({'%s - "WebSocket %s" [accepted]', "connection open", "connection closed"})


def run(settings: Settings, sock: socket.socket | None = None) -> None:
    """One hub process, on ``sock`` if given (a worker), else on the configured address, holding
    the data directory (see :mod:`pushhub.takeover`)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if sock is None:
        sock = takeover.listen(settings)
        data_dir_lock = takeover.hold_data_dir(settings)  # noqa: F841 - held until the process ends
    app = PushHub(settings)
    config = uvicorn_config(app, settings)  # configures uvicorn's loggers
    if not settings.access_log:
        logging.getLogger("uvicorn.error").addFilter(QuietConnections())
    HubServer(config, app).run(sockets=[sock])


def serve(settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    if not (settings.publisher_keys or settings.jwt_secrets or settings.jwt_public_keys):
        logging.getLogger("pushhub").warning(
            "no publisher key configured: anyone who can reach %s:%s can publish", settings.host, settings.port)
    if settings.workers > 1:
        from .workers import Supervisor

        return Supervisor(settings).run()
    run(settings)
    return 0
