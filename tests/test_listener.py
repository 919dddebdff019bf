"""Stopping the listener at shutdown (a takeover's predecessor, beside its successor on the same
port): the connections the kernel had queued but the hub had not accepted yet are served, not reset."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
import uvloop

from pushhub.server import stop_accepting

from .utils import TIMEOUT

QUEUED = 8


class Answer(asyncio.Protocol):
    def __init__(self, closed: list[asyncio.Future[None]]) -> None:
        self.closed = asyncio.get_running_loop().create_future()
        closed.append(self.closed)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b"served")  # type: ignore[attr-defined]  # a stream transport (uvloop's is no subclass)
        transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


async def queue_then_stop(sock: socket.socket) -> list[socket.socket]:
    closed: list[asyncio.Future[None]] = []

    def answer() -> Answer:
        return Answer(closed)

    server = await asyncio.get_running_loop().create_server(answer, sock=sock, start_serving=False)
    clients = [socket.create_connection(sock.getsockname(), timeout=TIMEOUT) for _ in range(QUEUED)]
    await stop_accepting(server, sock, answer)  # nothing was accepted before: all of them are queued
    await asyncio.wait_for(asyncio.gather(*closed), TIMEOUT)
    await server.wait_closed()
    return clients


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_connections_queued_on_the_listener_are_served_when_it_stops(
        loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(QUEUED * 2)
    address = sock.getsockname()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        clients = runner.run(queue_then_stop(sock))
    try:
        answers = []
        for client in clients:
            try:
                answers.append(client.recv(16))
            except ConnectionResetError:
                answers.append(b"reset")
        assert answers == [b"served"] * QUEUED
        with pytest.raises(ConnectionRefusedError):  # and the socket is closed: nothing listens any more
            socket.create_connection(address, timeout=TIMEOUT)
    finally:
        for client in clients:
            client.close()
