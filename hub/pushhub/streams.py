"""The streaming endpoints: Server-Sent Events (``GET /v1/sse``) and WebSocket (``/v1/ws``).

The hub's HTTP server (:mod:`pushhub.http11`) hands these requests over with their sockets once
their heads are read (:meth:`Streams.endpoint`). An endpoint answers with the SSE headers or the
WebSocket handshake, then installs a small protocol of its own on the socket, so an idle stream costs
only a few small objects, and fan-out writes pre-framed bytes to the transport directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Scope

from . import cors, disconnect, protocol, sse
from .auth import NOTHING, Access, Grant, TokenExpired
from .channels import compile_patterns, validate_channel
from .connection import Connection, Outbox, SSEConnection, Subscription, WSConnection
from .errors import BadRequest, PushHubError
from .events import EventDraft
from .http11 import StreamEndpoint, error_response, status_line
from .http_api import positioned
from .hub import Hub
from .limits import HttpLimits
from .provenance import WEBSOCKET, Origin
from .websocket import WSStream, handshake

MAX_CHANNELS = 100
SSE_PATH = "/v1/sse"
WS_PATH = "/v1/ws"
logger = logging.getLogger("pushhub")


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


def is_websocket(scope: Scope) -> bool:
    upgrade = header(scope, b"upgrade")
    return upgrade is not None and upgrade.lower() == "websocket"


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


def send_error(transport: asyncio.Transport, exc: PushHubError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer a stream request with an error, and close its connection."""
    transport.write(error_response(exc.status, exc.code, exc.message, extra))
    transport.close()


def scope_grant(access: Access, scope: Scope, query: dict[str, list[str]], origins: list[str]) -> Grant:
    """What a stream's credential allows: header, ``token`` query parameter, or cookie."""
    query_token = (query.get("token") or query.get("key") or [""])[-1] or None
    return access.presented(header(scope, b"authorization"), query_token, header(scope, b"cookie"),
                            header(scope, b"origin"), header(scope, b"host"), origins)


class Streams:
    def __init__(self, hub: Hub, *, access: Access, cors_origins: list[str], max_queue_bytes: int,
                 sse_retry_ms: int, max_message_bytes: int, limits: HttpLimits) -> None:
        self.hub = hub
        self.access = access
        self.cors_origins = cors_origins
        self.max_queue_bytes = max_queue_bytes
        self.sse_retry_ms = sse_retry_ms
        self.max_message_bytes = max_message_bytes
        self.limits = limits
        self.sse_connections: dict[SSEConnection, None] = {}
        self.ws_streams: dict[WSStream, None] = {}
        self.outbox = Outbox()
        self.tasks: set[asyncio.Task[None]] = set()
        self.all_closed: asyncio.Event | None = None

    async def wait_closed(self, timeout: float) -> None:
        """Wait until no stream has its socket any more (the closing handshakes are done)."""
        if self.sse_connections or self.ws_streams:
            self.all_closed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_closed.wait(), timeout)

    def _closed(self) -> None:
        if self.all_closed is not None and not (self.sse_connections or self.ws_streams):
            self.all_closed.set()

    def endpoint(self, scope: Scope) -> StreamEndpoint | None:
        """The endpoint that takes ``scope``'s request over with its socket, if it is a stream."""
        path = scope["path"]
        if path == WS_PATH and is_websocket(scope):
            return self.websocket
        if path == SSE_PATH and scope["method"] != "OPTIONS":
            return self.sse
        return None

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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # Server-Sent Events -----------------------------------------------------------------------

    def sse(self, scope: Scope, transport: asyncio.Transport, rest: bytes) -> None:
        origin_headers = cors.headers(header(scope, b"origin"), self.cors_origins)
        if scope["method"] != "GET":
            send_error(transport, MethodNotAllowed("the event stream is read with GET"), origin_headers)
            return
        query = parse_query(scope)
        try:
            channels, types, match = subscription_spec(_split(query.get("channel", [])),
                                                       _split(query.get("type", [])))
            grant = scope_grant(self.access, scope, query, self.cors_origins)
            self.access.check_subscribe(grant, channels)
        except PushHubError as exc:
            send_error(transport, exc, origin_headers)
            return
        cursor = header(scope, b"last-event-id") or (query.get("lastEventId") or [""])[-1] or None
        chunked = scope["http_version"] == "1.1"
        head = [status_line(200), *(b"%s: %s\r\n" % pair for pair in sse.HEADERS + origin_headers)]
        if chunked:
            head.append(b"transfer-encoding: chunked\r\n")
        transport.write(b"".join(head) + b"\r\n")
        conn = SSEConnection(transport, self.max_queue_bytes, self.outbox, chunked)
        self.hub.add_connection(conn)
        self.sse_connections[conn] = None
        transport.set_protocol(_SSEStream(self, conn, self.expire_at(grant, conn)))
        if transport.is_closing():
            conn.mark_closed(disconnect.CLIENT_GONE)
            self._sse_gone(conn)
            return
        self._spawn(self._sse_subscribe(conn, Subscription(conn, channels, types, match), cursor))

    async def _sse_subscribe(self, conn: SSEConnection, sub: Subscription, cursor: str | None) -> None:
        try:
            await self.hub.subscribe(
                sub, cursor, lambda sub: conn.send(sse.preamble(self.sse_retry_ms, sub.cursor())))
        except PushHubError as exc:
            logger.warning("SSE subscription to %s failed: %s", ",".join(sub.channels), exc.message)
            conn.close(disconnect.INTERNAL_ERROR)

    def _sse_gone(self, conn: SSEConnection) -> None:
        self.sse_connections.pop(conn, None)
        self.hub.remove_connection(conn)
        self._closed()

    # WebSocket --------------------------------------------------------------------------------

    def websocket(self, scope: Scope, transport: asyncio.Transport, rest: bytes) -> None:
        query = scope["query_string"]
        path = scope["raw_path"].decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        response, subprotocol, accepted = handshake(path, scope["headers"])
        transport.write(response)
        if not accepted:
            transport.close()
            return
        conn = WSConnection(transport, self.max_queue_bytes, self.outbox, subprotocol or protocol.JSON)
        self.hub.add_connection(conn)
        session = _WSSession(self, conn)
        stream = WSStream(conn, session.handle, max_size=self.max_message_bytes,
                          close_timeout=self.limits.close_timeout, gone=self._ws_gone)
        self.ws_streams[stream] = None
        transport.set_protocol(stream)
        if transport.is_closing():
            conn.mark_closed(disconnect.CLIENT_GONE)
            self._ws_gone(stream)
            return
        try:
            session.grant = scope_grant(self.access, scope, parse_query(scope), self.cors_origins)
        except PushHubError as exc:
            conn.close(disconnect.TOKEN_EXPIRED if isinstance(exc, TokenExpired) else disconnect.UNAUTHORIZED)
            return
        stream.expiry = self.expire_at(session.grant, conn)
        if rest:
            stream.data_received(rest)

    def _ws_gone(self, stream: WSStream) -> None:
        self.ws_streams.pop(stream, None)
        self.hub.remove_connection(stream.conn)
        self._closed()


class _SSEStream(asyncio.Protocol):
    """The protocol of an SSE socket after its headers: it only learns when the client leaves."""

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
        if self.conn.closed is None:
            self.conn.mark_closed(disconnect.CLIENT_GONE)
        self.streams._sse_gone(self.conn)


class _WSSession:
    """The state of one WebSocket client's protocol: its subscriptions and rights."""

    def __init__(self, streams: Streams, conn: WSConnection) -> None:
        self.streams = streams
        self.hub = streams.hub
        self.access = streams.access
        self.conn = conn
        self.grant = Grant(NOTHING, NOTHING)  # until the handshake's credential is read
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
            if binary:
                protocol.require_json_values(request)
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
        (event,) = await self.hub.publish(channel, [draft], Origin(WEBSOCKET, self.grant.publisher))
        self.conn.reply({**positioned(event), "op": "published", "id": msg_id, "event_id": event.id})

