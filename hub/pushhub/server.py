"""Running one hub process: the event loop, the listening socket, the app's lifespan, and a shutdown
that does not wait forever for open streams.

The hub serves HTTP itself (:mod:`pushhub.http11`, on httptools and uvloop): plain requests go to
the Starlette app as ASGI calls, and the streaming endpoints keep their sockets after the handshake.
On SIGTERM or SIGINT it stops accepting, closes every stream with reconnect advice, lets requests in
flight finish (up to ``--shutdown-timeout``), then runs the app's shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable, MutableMapping
from typing import Any

import uvloop

from . import disconnect, logs, startup, takeover
from .app import PushHub, build_access
from .config import Settings
from .errors import PushHubError
from .forwarded import Proxies
from .http11 import ASGI, HttpConnection, ServerState

logger = logging.getLogger("pushhub")


class LifespanFailed(PushHubError):
    """The app's start-up failed; the hub exits without serving."""


class Lifespan:
    """The ASGI lifespan protocol, driven from the server's side."""

    def __init__(self, app: PushHub) -> None:
        self.app = app
        self.inbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _receive(self) -> MutableMapping[str, Any]:
        return await self.inbox.get()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        await self.outbox.put(message)

    async def _run(self) -> None:
        try:
            await self.app({"type": "lifespan", "asgi": ASGI, "state": {}}, self._receive, self._send)
        except Exception as exc:
            logger.exception("the app's lifespan failed")
            await self.outbox.put({"type": "lifespan.failed", "message": str(exc)})

    async def _step(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        reply = await self.outbox.get()
        if reply["type"] != f"lifespan.{event}.complete":
            raise LifespanFailed(f"{event} failed: {reply.get('message', '')}")

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await self._step("startup")

    async def shutdown(self) -> None:
        await self._step("shutdown")
        if self.task is not None:
            await self.task


FULL_COLLECTION_EVERY = 100
"""Collections of the middle generation per full one (Python's default is 10)."""


def collect_less_often() -> None:
    """Tune the garbage collector for a server holding many long-lived connections, once serving:
    what start-up made is frozen out of every collection, and full collections, which walk every
    connection's objects, come ten times less often. Short-lived garbage (a handshake's protocol
    object is a reference cycle) is still collected young. Measured in-process over 10 000 WebSocket
    connects: 81 -> 64 us each, as with no collection at all."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


async def stop_accepting(server: asyncio.AbstractServer, sock: socket.socket,
                         protocol_factory: Callable[[], asyncio.Protocol]) -> None:
    """Stop listening on ``sock`` without resetting the connections the kernel queued on it.

    Closing a listening socket resets every connection in its accept queue: beside a successor bound
    to the same port (``--takeover``, SO_REUSEPORT) that is a request refused in flight although the
    successor would have served it. So a duplicate keeps the socket open while ``server`` stops, the
    queue is accepted to its end and served like any connection, and only then is it closed. (A
    one-process successor has every new connection steered to itself, :mod:`~pushhub.steering`;
    beside ``--workers``, what the kernel queues in the microseconds between the last accept and the
    close is still reset, unless Linux's ``net.ipv4.tcp_migrate_req`` moves it to the successor.)"""
    loop = asyncio.get_running_loop()
    listener = sock.dup()
    server.close()
    queued = []
    try:
        listener.setblocking(False)
        while True:
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            queued.append(loop.connect_accepted_socket(protocol_factory, conn))
    finally:
        listener.close()
    await asyncio.gather(*queued, return_exceptions=True)  # a client that left meanwhile is no matter


async def serve_app(app: PushHub, settings: Settings, sock: socket.socket,
                    serving: Callable[[], None] | None = None) -> None:
    """Serve on ``sock`` until SIGTERM or SIGINT; ``serving`` is called once connections are served."""
    loop = asyncio.get_running_loop()
    lifespan = Lifespan(app)
    await lifespan.startup()
    host, port = sock.getsockname()[:2]
    state = ServerState(app, app.stream_endpoint, settings.http_limits(), Proxies(settings.forwarded_allow_ips),
                        settings.access_log, None if ipaddress.ip_address(host).is_unspecified else (host, port),
                        app.lean_endpoint)
    def connection() -> HttpConnection:
        return HttpConnection(state)

    server = await loop.create_server(connection, sock=sock, backlog=startup.BACKLOG)
    collect_less_often()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logger.info("pushhub listening on http://%s:%s", f"[{host}]" if ":" in host else host, port)
    if serving is not None:
        serving()
    await stop.wait()
    logger.info("shutting down")
    app.readiness.drain()
    await stop_accepting(server, sock, connection)
    state.stop()
    app.hub.close_connections(disconnect.SHUTDOWN)
    app.dashboard.close()
    deadline = loop.time() + settings.shutdown_timeout
    await state.wait_closed(settings.shutdown_timeout)
    if state.tasks:  # requests whose client left before the answer
        await asyncio.wait(list(state.tasks), timeout=max(0.0, deadline - loop.time()))
    await app.streams.wait_closed(max(0.0, deadline - loop.time()))
    for conn in list(state.connections):
        conn.close()
    await lifespan.shutdown()
    logger.info("shutdown complete")


def run(settings: Settings, sock: socket.socket, serving: Callable[[], None] | None = None) -> None:
    """One hub process, serving on ``sock`` (bound already, so a port in use fails before start);
    ``serving`` is called once it serves."""
    logs.configure(settings.log_format)
    logging.getLogger("websockets").setLevel(logging.WARNING)  # it logs every connection opened and closed
    app = PushHub(settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_app(app, settings, sock, serving))


def serve(settings: Settings) -> int:
    logs.configure(settings.log_format)
    build_access(settings)  # credentials and key files load (or the error is the one line)
    try:
        startup.check_storage(settings)
        startup.check_redis(settings)
        if settings.workers > 1:  # fail here if anything holds the port; each worker binds its own
            if not settings.takeover:
                startup.listening_socket(settings, shared=False).close()
        else:
            sock = takeover.listen(settings)
            data_dir_lock = takeover.hold_data_dir(settings)  # noqa: F841 - held until the process ends
        succession = takeover.Succession(settings).claim() if settings.redis else None
    except startup.StartupError as exc:
        logger.error("cannot start: %s", exc.message, extra={"exit_code": exc.exit_code})
        return exc.exit_code
    logger.info("%s", startup.banner(settings))
    if not (settings.publisher_keys or settings.jwt_secrets or settings.jwt_public_keys):
        logger.warning("no publisher key configured: anyone who can reach %s:%s can publish",
                       settings.host, settings.port)
    if settings.workers > 1:
        from .workers import Supervisor

        return Supervisor(settings, succession.serving if succession else None).run()
    try:
        run(settings, sock, succession.serving if succession else None)
    except LifespanFailed as exc:
        logger.error("cannot start: %s", exc.message, extra={"exit_code": 3})
        return 3
    return 0
