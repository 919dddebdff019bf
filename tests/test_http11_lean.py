"""The lean route of the hub's HTTP server (:mod:`pushhub.http11`), on bytes: a connection fed
requests through a transport that records what is written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pushhub.forwarded import Proxies
from pushhub.http11 import HttpConnection, LeanAnswer, LeanEndpoint, LeanReply, ServerState
from pushhub.limits import HttpLimits

from .utils import TIMEOUT


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Server:
    """A connection whose ``/lean`` requests go to a lean endpoint, the rest to an ASGI app. The lean
    endpoint replies at once (``at_once``) or in a later loop turn, as the group commit does."""

    def __init__(self, at_once: bool = False) -> None:
        self.at_once = at_once
        self.lean_bodies: list[bytes] = []
        self.asgi_bodies: list[bytes] = []
        self.unanswered = 0
        self.answered: asyncio.Future[None] | None = None
        self.state = ServerState(self.app, lambda scope: None, HttpLimits(), Proxies(), lean=self.route)
        self.transport = RecordingTransport()
        self.conn = HttpConnection(self.state)
        self.conn.connection_made(self.transport)

    def route(self, scope: dict[str, Any]) -> LeanEndpoint | None:
        return self.respond if scope["path"] == "/lean" else None

    def respond(self, scope: dict[str, Any], body: bytes, reply: LeanReply) -> None:
        self.lean_bodies.append(body)
        answer = (202, b"content-type: text/plain\r\n", b"lean %d" % len(self.lean_bodies))
        if self.at_once:
            reply(answer)
            return
        self.unanswered += 1
        asyncio.get_running_loop().call_soon(self.reply, reply, answer)

    def reply(self, reply: LeanReply, answer: LeanAnswer | BaseException) -> None:
        self.unanswered -= 1
        reply(answer)
        if not self.unanswered and self.answered is not None:
            self.answered.set_result(None)

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.asgi_bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"asgi"})

    async def settled(self) -> None:
        """Every request started has been answered."""
        while self.state.tasks or self.unanswered:
            if self.unanswered:
                self.answered = asyncio.get_running_loop().create_future()
                await asyncio.wait_for(self.answered, TIMEOUT)
            if self.state.tasks:
                await asyncio.wait_for(asyncio.gather(*self.state.tasks), TIMEOUT)


def lean(body: bytes) -> bytes:
    return b"POST /lean HTTP/1.1\r\nHost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


async def test_a_lean_endpoint_gets_the_whole_body_and_its_answer_is_one_write() -> None:
    server = Server()
    request = lean(b"0123456789")
    server.conn.data_received(request[:-4])
    await server.settled()
    assert server.lean_bodies == [] and server.transport.writes == []  # nothing before the body is in
    server.conn.data_received(request[-4:])
    await server.settled()
    assert server.lean_bodies == [b"0123456789"]
    assert server.transport.writes == [b"HTTP/1.1 202 Accepted\r\ncontent-type: text/plain\r\ncontent-length: 6"
                                       b"\r\n\r\nlean 1"]
    assert not server.transport.closed


@pytest.mark.parametrize("at_once", [False, True], ids=["later", "at-once"])
async def test_pipelined_lean_requests_are_answered_in_order(at_once: bool) -> None:
    server = Server(at_once)
    server.conn.data_received(lean(b"a") + lean(b"bb") + b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n" + lean(b"ccc"))
    await server.settled()
    assert server.lean_bodies == [b"a", b"bb", b"ccc"]
    assert [write.rpartition(b"\r\n\r\n")[2] for write in server.transport.writes] == [
        b"lean 1", b"lean 2", b"asgi", b"lean 3"]


async def test_chunked_and_100_continue_requests_take_the_asgi_route() -> None:
    server = Server()
    server.conn.data_received(b"POST /lean HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                              b"3\r\nabc\r\n0\r\n\r\n")
    await server.settled()
    server.conn.data_received(b"POST /lean HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\nde")
    await server.settled()
    assert server.asgi_bodies == [b"abc", b"de"] and server.lean_bodies == []


async def test_a_lean_answer_closes_a_connection_that_asked_for_it() -> None:
    server = Server()
    server.conn.data_received(b"POST /lean HTTP/1.1\r\nHost: x\r\nconnection: close\r\ncontent-length: 1\r\n\r\nx")
    await server.settled()
    assert server.transport.writes == [b"HTTP/1.1 202 Accepted\r\ncontent-type: text/plain\r\nconnection: close\r\n"
                                       b"content-length: 6\r\n\r\nlean 1"]
    assert server.transport.closed


async def test_a_lean_endpoint_that_fails_is_answered_500_and_the_connection_closed() -> None:
    server = Server()
    loop = asyncio.get_running_loop()
    failed = loop.create_future()

    def respond(scope: dict[str, Any], body: bytes, reply: LeanReply) -> None:
        def fail() -> None:
            reply(RuntimeError("the endpoint failed"))
            failed.set_result(None)
        loop.call_soon(fail)

    server.respond = respond  # type: ignore[method-assign]
    server.conn.data_received(lean(b"x"))
    await asyncio.wait_for(failed, TIMEOUT)
    assert server.transport.writes[0].startswith(b"HTTP/1.1 500 ")
    assert b'"internal_error"' in server.transport.writes[0] and server.transport.closed


async def test_a_shutdown_waits_for_the_lean_reply_to_a_client_that_left() -> None:
    server = Server()
    server.conn.data_received(lean(b"x"))
    assert not server.state.tasks
    server.conn.connection_lost(None)
    (waiting,) = server.state.tasks  # what a shutdown awaits
    assert not waiting.done()
    await server.settled()
    assert waiting.done() and not server.state.tasks
    assert server.transport.writes == []  # nobody to answer

