"""The streaming endpoints: Server-Sent Events (``GET /v1/sse``) and WebSocket (``/v1/ws``).

Both are plain ASGI handlers in front of the Starlette app, so they receive the server's own ``send``
and can reach the socket's transport: fan-out writes pre-framed bytes there directly. Once the SSE
headers or the WebSocket handshake are out, the socket is taken over from uvicorn (:func:`_take_over`)
so that an idle stream costs only a few small objects. They need uvicorn's ``httptools`` HTTP
protocol and ``websockets-sansio`` WebSocket protocol, which ``pushhub serve`` selects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

from . import cors, disconnect, protocol, sse
from .auth import Access, Grant, TokenExpired
from .channels import compile_patterns, validate_channel
from .connection import Connection, Outbox, SSEConnection, Subscription, WSConnection
from .errors import BadRequest, PushHubError
from .events import EventDraft
from .http_api import positioned
from .hub import Hub

MAX_CHANNELS = 100
logger = logging.getLogger("pushhub")


def _transport(send: Send) -> Any:
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is None:
        raise RuntimeError("pushhub streams run on uvicorn's httptools and websockets-sansio protocols")
    return owner, transport


def _split(values: list[str]) -> list[str]:
    return [part for value in values for part in value.split(",") if part]


def parse_query(scope: Scope) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        query.setdefault(key, []).append(value)
    return query


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def subscription_spec(channels: list[str], types: list[str]) -> tuple[tuple[str, ...], tuple[str, ...], Any]:
    names = tuple(dict.fromkeys(validate_channel(c) for c in channels))
    if not names:
        raise BadRequest("name at least one channel")
    if len(names) > MAX_CHANNELS:
        raise BadRequest(f"at most {MAX_CHANNELS} channels per subscription")
    if not all(isinstance(t, str) for t in types):
        raise BadRequest("'types' must be a list of event-type patterns (strings)")
    type_patterns = tuple(sorted(set(types)))
    return tuple(sorted(names)), type_patterns, compile_patterns(type_patterns)


class MethodNotAllowed(BadRequest):
    status = 405
    code = "method_not_allowed"


async def send_error(send: Send, exc: PushHubError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps({"error": {"code": exc.code, "message": exc.message}})
    await send({"type": "http.response.start", "status": exc.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body)),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


def scope_grant(access: Access, scope: Scope, query: dict[str, list[str]], origins: list[str]) -> Grant:
    """What a stream's credential allows: header, ``token`` query parameter, or cookie."""
    query_token = (query.get("token") or query.get("key") or [""])[-1] or None
    return access.presented(header(scope, b"authorization"), query_token, header(scope, b"cookie"),
                            header(scope, b"origin"), header(scope, b"host"), origins)


class Streams:
    def __init__(self, hub: Hub, *, access: Access, cors_origins: list[str], max_queue_bytes: int,
                 sse_retry_ms: int) -> None:
        self.hub = hub
        self.access = access
        self.cors_origins = cors_origins
        self.max_queue_bytes = max_queue_bytes
        self.sse_retry_ms = sse_retry_ms
        self.sse_connections: dict[SSEConnection, None] = {}
        self.ws_streams: dict[_WSStream, None] = {}
        self.outbox = Outbox()

    def heartbeat(self) -> None:
        """Keep idle streams alive through proxies; close WebSockets that stopped answering pings."""
        for conn in list(self.sse_connections):
            conn.send(sse.HEARTBEAT)
        for stream in list(self.ws_streams):
            stream.keepalive()

    def expire_at(self, grant: Grant, conn: Connection) -> asyncio.TimerHandle | None:
        """One timer per connection: close it with ``token_expired`` when its token does."""
        if grant.expires is None:
            return None
        delay = max(0.0, grant.expires - self.access.clock())
        return asyncio.get_running_loop().call_later(delay, conn.close, disconnect.TOKEN_EXPIRED)

    # Server-Sent Events -----------------------------------------------------------------------

    async def sse(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            await send_error(send, MethodNotAllowed("the event stream is read with GET"))
            return
        query = parse_query(scope)
        try:
            channels, types, match = subscription_spec(_split(query.get("channel", [])),
                                                       _split(query.get("type", [])))
            grant = scope_grant(self.access, scope, query, self.cors_origins)
            self.access.check_subscribe(grant, channels)
        except PushHubError as exc:
            await send_error(send, exc, cors.headers(header(scope, b"origin"), self.cors_origins))
            return
        cursor = header(scope, b"last-event-id") or (query.get("lastEventId") or [""])[-1] or None
        owner, transport = _transport(send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": sse.HEADERS + cors.headers(header(scope, b"origin"), self.cors_origins)})
        if transport.is_closing():
            return
        conn = SSEConnection(transport, self.max_queue_bytes, self.outbox, bool(owner.chunked_encoding))
        self.hub.add_connection(conn)
        self.sse_connections[conn] = None
        owner.disconnected = True  # uvicorn neither waits for nor closes the stream when the handler returns
        _take_over(transport.get_protocol(), transport, _SSEStream(self, conn, self.expire_at(grant, conn)))
        try:
            sub = Subscription(conn, channels, types, match)
            await self.hub.subscribe(
                sub, cursor, lambda sub: conn.send(sse.preamble(self.sse_retry_ms, sub.cursor())))
        except PushHubError as exc:
            logger.warning("SSE subscription to %s failed: %s", ",".join(channels), exc.message)
            conn.close(disconnect.INTERNAL_ERROR)

    def _sse_gone(self, conn: SSEConnection) -> None:
        self.sse_connections.pop(conn, None)
        self.hub.remove_connection(conn)

    # WebSocket --------------------------------------------------------------------------------

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        if scope["path"] != "/v1/ws":
            await send({"type": "websocket.close", "code": 1008})
            return
        offered = scope.get("subprotocols") or []
        chosen = protocol.MSGPACK if protocol.MSGPACK in offered else (
            protocol.JSON if protocol.JSON in offered else None)
        await send({"type": "websocket.accept", "subprotocol": chosen})
        owner, transport = _transport(send)
        if transport.is_closing():
            return
        conn = WSConnection(transport, self.max_queue_bytes, self.outbox, chosen or protocol.JSON)
        self.hub.add_connection(conn)
        try:
            grant = scope_grant(self.access, scope, parse_query(scope), self.cors_origins)
        except PushHubError as exc:
            conn.close(disconnect.TOKEN_EXPIRED if isinstance(exc, TokenExpired) else disconnect.UNAUTHORIZED)
            return
        stream = _WSStream(self, conn, _WSSession(self, conn, grant), self.expire_at(grant, conn))
        self.ws_streams[stream] = None
        owner.stop_keepalive()  # the hub's heartbeat pings every WebSocket instead
        owner.close_timer = _NOT_CLOSING  # uvicorn must not close the socket when the handler returns
        _take_over(owner, transport, stream)

    def _ws_gone(self, stream: _WSStream) -> None:
        self.ws_streams.pop(stream, None)
        self.hub.remove_connection(stream.conn)


def _take_over(server_protocol: Any, transport: Any, protocol: asyncio.Protocol) -> None:
    """Take a stream's socket over from uvicorn once the SSE headers or the WebSocket handshake
    are out.

    From then on a stream needs nothing from uvicorn: events are written to the transport directly,
    an SSE client sends nothing, and WebSocket frames are read by :class:`_WSStream`. Detaching lets
    uvicorn's per-connection objects (parser, queues, flow control, the handler's task and its
    coroutine frames) be freed, which is most of what an idle stream would otherwise cost. The
    handler has told uvicorn not to close the socket when it returns; shutdown still closes every
    stream first (:meth:`pushhub.server.HubServer.shutdown`).
    """
    server_protocol.connections.discard(server_protocol)
    transport.set_protocol(protocol)


class _SSEStream(asyncio.Protocol):
    """The protocol of an SSE socket after :func:`_take_over`: it only learns when the client leaves."""

    __slots__ = ("conn", "expiry", "streams")

    def __init__(self, streams: Streams, conn: SSEConnection, expiry: asyncio.TimerHandle | None) -> None:
        self.streams = streams
        self.conn = conn
        self.expiry = expiry

    def data_received(self, data: bytes) -> None:
        """An EventSource sends nothing after its request; anything else is ignored."""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        self.streams._sse_gone(self.conn)


class _WSStream(asyncio.Protocol):
    """The protocol of a WebSocket after :func:`_take_over`: reads client frames, answers pings,
    completes the closing handshake, and hands messages to the session one at a time."""

    __slots__ = ("conn", "expiry", "heard", "inbox", "pinged", "reader", "session", "streams", "worker")

    def __init__(self, streams: Streams, conn: WSConnection, session: _WSSession,
                 expiry: asyncio.TimerHandle | None) -> None:
        self.streams = streams
        self.conn = conn
        self.session = session
        self.expiry = expiry
        self.reader = protocol.FrameReader()
        self.inbox: list[dict[str, Any]] = []
        self.worker: asyncio.Task[None] | None = None
        self.heard = True
        self.pinged = False

    def data_received(self, data: bytes) -> None:
        self.heard = True
        conn = self.conn
        try:
            frames = self.reader.feed(data)
        except protocol.FrameError as exc:
            conn.close(disconnect.Disconnect(exc.close_code, exc.message))
            return
        for opcode, payload in frames:
            if conn.closed is not None:
                return
            if opcode == protocol.OP_TEXT:
                try:
                    self._receive({"text": payload.decode()})
                except UnicodeDecodeError:
                    conn.close(disconnect.Disconnect(1007, "text frame is not valid UTF-8"))
            elif opcode == protocol.OP_BINARY:
                self._receive({"bytes": payload})
            elif opcode == protocol.OP_PING:
                conn.write(protocol.pong_frame(payload))
            elif opcode == protocol.OP_CLOSE:
                conn.close(CLIENT_CLOSED)

    def _receive(self, message: dict[str, Any]) -> None:
        self.inbox.append(message)
        if len(self.inbox) >= MAX_INBOX:
            self.conn.transport.pause_reading()  # type: ignore[attr-defined]
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        inbox, conn = self.inbox, self.conn
        try:
            while inbox and conn.closed is None:
                message = inbox.pop(0)
                if len(inbox) == MAX_INBOX - 1:
                    conn.transport.resume_reading()  # type: ignore[attr-defined]
                await self.session.handle(message)
        except Exception:
            logger.exception("WebSocket message handler failed")
            conn.close(disconnect.INTERNAL_ERROR)
        finally:
            self.worker = None

    def keepalive(self) -> None:
        if self.pinged and not self.heard:
            self.conn.close(disconnect.PING_TIMEOUT)
            return
        self.heard, self.pinged = False, True
        self.conn.write(protocol.PING_FRAME)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        self.streams._ws_gone(self)


MAX_INBOX = 16
CLIENT_CLOSED = disconnect.Disconnect(1000, "client_gone")


class _NotClosing:
    """Stands in for uvicorn's close timer: a handshake in progress that will close the socket."""

    def cancel(self) -> None:
        """Nothing to cancel."""


_NOT_CLOSING = _NotClosing()


class _WSSession:
    """The state of one WebSocket client's protocol: its subscriptions and rights."""

    def __init__(self, streams: Streams, conn: WSConnection, grant: Grant) -> None:
        self.streams = streams
        self.hub = streams.hub
        self.access = streams.access
        self.conn = conn
        self.grant = grant
        self.subs: dict[str, Subscription] = {}

    async def handle(self, message: Mapping[str, Any]) -> None:
        binary = message.get("bytes") is not None
        msg_id: Any = None
        try:
            if binary != self.conn.encoder.binary:
                kind = "binary" if binary else "text"
                raise BadRequest(f"{kind} frames are not part of this connection's subprotocol")
            request = protocol.decode(message["bytes"] if binary else message["text"], binary=binary)
            msg_id = protocol.message_id(request)
            op = protocol.validate(request)
            await getattr(self, "op_" + op)(request, msg_id)
        except PushHubError as exc:
            if self.conn.closed is None:
                self.conn.reply({"op": "error", "id": msg_id, "code": exc.code, "message": exc.message})

    async def op_ping(self, request: dict[str, Any], msg_id: Any) -> None:
        self.conn.reply({"op": "pong", "id": msg_id})

    async def op_subscribe(self, request: dict[str, Any], msg_id: Any) -> None:
        channel = request.get("channel")
        types = request.get("types") or []
        if not isinstance(types, list):
            raise BadRequest("'types' must be a list of patterns")
        cursor = request.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise BadRequest("'cursor' must be a string")
        channels, type_patterns, match = subscription_spec([channel] if isinstance(channel, str) else [], types)
        name = channels[0]
        self.access.check_subscribe(self.grant, channels)
        if name in self.subs:
            raise BadRequest(f"already subscribed to {name!r}: unsubscribe first")
        sub = Subscription(self.conn, channels, type_patterns, match)
        self.subs[name] = sub

        def announce(sub: Subscription) -> None:
            self.conn.reply({"op": "subscribed", "id": msg_id, "channel": name, "cursor": sub.cursor()})

        try:
            await self.hub.subscribe(sub, cursor, announce)
        except BaseException:
            self.subs.pop(name, None)
            raise

    async def op_unsubscribe(self, request: dict[str, Any], msg_id: Any) -> None:
        channel = request.get("channel")
        sub = self.subs.pop(channel, None) if isinstance(channel, str) else None
        if sub is None:
            raise BadRequest(f"not subscribed to {channel!r}")
        self.hub.unsubscribe(sub)
        self.conn.reply({"op": "unsubscribed", "id": msg_id, "channel": channel})

    async def op_publish(self, request: dict[str, Any], msg_id: Any) -> None:
        channel = request.get("channel")
        if not isinstance(channel, str):
            raise BadRequest("'channel' must be a string")
        validate_channel(channel)
        self.access.check_publish(self.grant, channel)
        draft = EventDraft.from_json(request.get("event"))
        (event,) = await self.hub.publish(channel, [draft])
        self.conn.reply({**positioned(event), "op": "published", "id": msg_id, "event_id": event.id})

